//! The kubelet's path: CRI over gRPC against the private containerd's CRI
//! plugin, with the RuntimeClass handler `wasmhttp`. No kubelet exists on
//! these machines, so this suite plays its part, call for call.
//!
//! Pods get a real network namespace (CNI bridge plugin, private bridge);
//! requests reach a pod only by entering that namespace and connecting to
//! 127.0.0.1, as a probe or a sidecar would.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use support::containerd::PrivateContainerd;
use support::harness;
use support::http;
use support::images;

const PAUSE_IMAGE: &str = "docker.io/wasmhttp/pause:local";
const HANDLER: &str = "wasmhttp";

type Runtime = RuntimeServiceClient<tonic_cri::transport::Channel>;

struct Suite {
    containerd: PrivateContainerd,
    work: PathBuf,
    rt: tokio::runtime::Runtime,
}

const CASES: &[harness::Case<Suite>] = &[(
    "pod_serves_in_its_network_namespace_and_stops_cleanly",
    pod_serves_in_its_network_namespace_and_stops_cleanly,
)];

fn main() {
    harness::run(
        CASES,
        || {
            let work = std::env::temp_dir().join(format!("wasmhttp-cri-{}", std::process::id()));
            std::fs::create_dir_all(&work).unwrap();
            let suite = Suite {
                containerd: PrivateContainerd::start(),
                work,
                rt: tokio::runtime::Runtime::new().unwrap(),
            };
            suite.import_k8s(&images::pause_image(&suite.work, PAUSE_IMAGE));
            suite
        },
        |suite| suite.containerd.log_tail(),
        |suite| {
            // A failed case may leave its pod: remove every sandbox the way the
            // kubelet would, so its network namespace and mounts go too.
            suite.remove_all_pods();
            let leaks = suite.containerd.stop();
            let _ = std::fs::remove_dir_all(&suite.work);
            leaks
        },
    )
}

impl Suite {
    fn import_k8s(&self, tar: &Path) {
        let output = self
            .containerd
            .ctr_command_in("k8s.io")
            .args(["images", "import"])
            .arg(tar)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "import failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn remove_all_pods(&self) {
        let mut cri = self.cri();
        let pods = self
            .call(cri.list_pod_sandbox(ListPodSandboxRequest { filter: None }))
            .map(|r| r.items)
            .unwrap_or_default();
        for pod in pods {
            let _ = self.call(cri.stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: pod.id.clone(),
            }));
            let _ = self.call(cri.remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: pod.id,
            }));
        }
    }

    fn cri(&self) -> Runtime {
        let socket = self.containerd.socket();
        self.rt.block_on(async {
            let channel = tonic_cri::transport::Endpoint::try_from("http://[::]:50051")
                .unwrap()
                .connect_with_connector(tower::service_fn(move |_| {
                    let socket = socket.clone();
                    async move {
                        Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                            tokio::net::UnixStream::connect(socket).await?,
                        ))
                    }
                }))
                .await
                .expect("connecting to CRI");
            RuntimeServiceClient::new(channel)
        })
    }

    fn call<T>(
        &self,
        future: impl Future<Output = Result<tonic_cri::Response<T>, tonic_cri::Status>>,
    ) -> Result<T, tonic_cri::Status> {
        self.rt
            .block_on(future)
            .map(tonic_cri::Response::into_inner)
    }
}

/// A pod as the kubelet would describe it.
fn sandbox_config(name: &str, log_directory: &Path) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}"),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: name.into(),
        log_directory: log_directory.display().to_string(),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: String::new(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn container_config(name: &str, image: &str, env: &[(&str, &str)]) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        envs: env
            .iter()
            .map(|(k, v)| KeyValue {
                key: k.to_string(),
                value: v.to_string(),
            })
            .collect(),
        log_path: format!("{name}/0.log"),
        ..Default::default()
    }
}

/// The pod's network namespace, from the verbose sandbox status.
fn netns_of(status: &PodSandboxStatusResponse) -> PathBuf {
    let info: serde_json::Value =
        serde_json::from_str(&status.info["info"]).expect("verbose sandbox info");
    let namespaces = info["runtimeSpec"]["linux"]["namespaces"]
        .as_array()
        .expect("namespaces in the sandbox spec");
    let network = namespaces
        .iter()
        .find(|ns| ns["type"] == "network")
        .expect("a network namespace");
    PathBuf::from(network["path"].as_str().expect("a netns path"))
}

/// Runs `f` on a thread that has entered the network namespace at `netns`.
fn in_netns<T: Send>(netns: &Path, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let file = std::fs::File::open(netns)
                    .unwrap_or_else(|e| panic!("opening {}: {e}", netns.display()));
                nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
                    .expect("entering the pod's network namespace");
                f()
            })
            .join()
            .unwrap()
    })
}

fn pod_serves_in_its_network_namespace_and_stops_cleanly(s: &Suite) {
    let wasm = images::fixture(&s.work, "hello");
    let tar = images::wasmhttp_image(&s.work, &wasm, "wasmhttp-test/cri-hello:1");
    s.import_k8s(&tar);
    let image = "docker.io/wasmhttp-test/cri-hello:1";
    let logs = s.work.join("pods/hello");
    std::fs::create_dir_all(&logs).unwrap();
    let mut cri = s.cri();

    let pod_config = sandbox_config("hello", &logs);
    let pod = s
        .call(cri.run_pod_sandbox(RunPodSandboxRequest {
            config: Some(pod_config.clone()),
            runtime_handler: HANDLER.into(),
        }))
        .unwrap_or_else(|e| {
            panic!(
                "RunPodSandbox: {}\n{}",
                e.message(),
                s.containerd.log_tail()
            )
        })
        .pod_sandbox_id;
    let container = s
        .call(cri.create_container(CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: Some(container_config("hello", image, &[])),
            sandbox_config: Some(pod_config),
        }))
        .unwrap_or_else(|e| panic!("CreateContainer: {}", e.message()))
        .container_id;
    s.call(cri.start_container(StartContainerRequest {
        container_id: container.clone(),
    }))
    .unwrap_or_else(|e| panic!("StartContainer: {}", e.message()));

    let status = s
        .call(cri.pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: pod.clone(),
            verbose: true,
        }))
        .unwrap();
    let netns = netns_of(&status);
    let addr = "127.0.0.1:8080".parse().unwrap();
    let response = in_netns(&netns, || {
        http::wait_until_serving(addr, Duration::from_secs(60))
    })
    .expect("the pod answers");
    assert_eq!(response.status, 200);
    assert!(response.text().contains("Hello"), "{}", response.text());
    assert!(
        http::get(addr, "/").is_err(),
        "the pod's listener must not be reachable from the host's namespace"
    );

    let state = s
        .call(cri.container_status(ContainerStatusRequest {
            container_id: container.clone(),
            verbose: false,
        }))
        .unwrap();
    assert_eq!(
        state.status.unwrap().state,
        ContainerState::ContainerRunning as i32
    );

    // what `kubectl logs` reads: CRI's log file, with the guest's stdout line
    let log_file = logs.join("hello/0.log");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log_file)
        .unwrap_or_default()
        .contains("stdout F hello fixture: handling a request")
    {
        assert!(
            Instant::now() < deadline,
            "the guest's line is not in {}",
            log_file.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let stopping = Instant::now();
    s.call(cri.stop_container(StopContainerRequest {
        container_id: container.clone(),
        timeout: 10,
    }))
    .unwrap();
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "StopContainer took {:?}",
        stopping.elapsed()
    );
    let stopped = s
        .call(cri.container_status(ContainerStatusRequest {
            container_id: container.clone(),
            verbose: false,
        }))
        .unwrap();
    let stopped = stopped.status.unwrap();
    assert_eq!(
        (stopped.state, stopped.exit_code),
        (ContainerState::ContainerExited as i32, 0),
        "{stopped:?}"
    );

    s.call(cri.remove_container(RemoveContainerRequest {
        container_id: container,
    }))
    .unwrap();
    s.call(cri.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: pod.clone(),
    }))
    .unwrap();
    s.call(cri.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: pod.clone(),
    }))
    .unwrap();
    assert!(
        !netns.exists(),
        "the pod's network namespace {} is left behind",
        netns.display()
    );
    s.containerd.assert_no_shim_or_mount_of(&pod);
}
