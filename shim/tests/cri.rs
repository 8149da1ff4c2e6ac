//! The kubelet's path: CRI over gRPC against the private containerd's CRI
//! plugin, with the RuntimeClass handler `wasmhttp`. No kubelet exists on
//! these machines, so this suite plays its part, call for call.
//!
//! Pods get a real network namespace (CNI bridge plugin, private bridge);
//! requests reach a pod only by entering that namespace and connecting to
//! 127.0.0.1, as a probe or a sidecar would.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use support::containerd::{self, PrivateContainerd};
use support::eventually::{eventually, until};
use support::harness;
use support::http;
use support::images;
use support::served::metric_in;

const PAUSE_IMAGE: &str = "docker.io/wasmhttp/pause:local";
const HANDLER: &str = "wasmhttp";

type Runtime = RuntimeServiceClient<tonic_cri::transport::Channel>;
type Images = ImageServiceClient<tonic_cri::transport::Channel>;

struct Suite {
    containerd: PrivateContainerd,
    work: PathBuf,
    rt: tokio::runtime::Runtime,
}

const CASES: &[harness::Case<Suite>] = &[
    (
        "images_imported_into_k8s_io_are_found_by_reference",
        images_imported_into_k8s_io_are_found_by_reference,
    ),
    (
        "pod_serves_in_its_network_namespace_and_stops_cleanly",
        pod_serves_in_its_network_namespace_and_stops_cleanly,
    ),
    (
        "a_wasi_http_0_3_service_shares_instances_and_drains_in_its_pod",
        a_wasi_http_0_3_service_shares_instances_and_drains_in_its_pod,
    ),
    (
        "two_wasm_containers_serve_one_pod_on_their_own_ports",
        two_wasm_containers_serve_one_pod_on_their_own_ports,
    ),
    (
        "wasm_container_and_native_sidecar_share_the_pod",
        wasm_container_and_native_sidecar_share_the_pod,
    ),
    (
        "container_stats_report_memory_and_cpu",
        container_stats_report_memory_and_cpu,
    ),
    (
        "an_oom_killed_container_is_reported_oomkilled",
        an_oom_killed_container_is_reported_oomkilled,
    ),
    (
        "invalid_component_fails_start_container_with_the_reason",
        invalid_component_fails_start_container_with_the_reason,
    ),
    (
        "volume_mounts_are_the_guests_directories",
        volume_mounts_are_the_guests_directories,
    ),
    (
        "sockets_are_granted_inside_the_pod_network_namespace",
        sockets_are_granted_inside_the_pod_network_namespace,
    ),
    (
        "images_pulled_from_a_registry_run_precompiled",
        images_pulled_from_a_registry_run_precompiled,
    ),
    (
        "the_wasm_oci_artifact_runs_with_a_command_where_containerd_unpacks_it",
        the_wasm_oci_artifact_runs_with_a_command_where_containerd_unpacks_it,
    ),
    // last: it restarts the suite's containerd with a config of its own
    (
        "node_installer_registers_the_handler_with_a_running_containerd",
        node_installer_registers_the_handler_with_a_running_containerd,
    ),
];

fn main() {
    harness::run(
        &containerd::versions(),
        CASES,
        &[],
        |version| {
            let work = std::env::temp_dir().join(format!(
                "wasmhttp-cri-{}-{}",
                std::process::id(),
                version.name()
            ));
            std::fs::create_dir_all(&work).unwrap();
            let suite = Suite {
                containerd: PrivateContainerd::start(*version),
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
    /// What `ctr -n k8s.io images import` (or a node's image preloader) does.
    fn import_k8s(&self, tar: &Path) {
        self.containerd
            .ctr_ok_in("k8s.io", &["images", "import", tar.to_str().unwrap()]);
    }

    /// Builds fixture `fixture` into a `wasmhttp image` and imports it as `reference`.
    fn import_fixture(&self, fixture: &str, reference: &str) {
        let wasm = images::fixture(&self.work, fixture);
        self.import_k8s(&images::wasmhttp_image(&self.work, &wasm, reference));
    }

    /// After a restart containerd answers before its CRI plugin has
    /// initialised ("server is not initialized yet"); a kubelet retries, so
    /// does this.
    fn wait_for_cri(&self) {
        eventually(
            Duration::from_secs(30),
            "CRI comes up after the restart",
            || {
                self.call(
                    self.cri()
                        .list_pod_sandbox(ListPodSandboxRequest { filter: None }),
                )
                .map(drop)
                .map_err(|err| err.message().to_string())
            },
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

    fn channel(&self) -> tonic_cri::transport::Channel {
        let socket = self.containerd.socket();
        self.rt.block_on(async {
            tonic_cri::transport::Endpoint::try_from("http://[::]:50051")
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
                .expect("connecting to CRI")
        })
    }

    fn cri(&self) -> Runtime {
        RuntimeServiceClient::new(self.channel())
    }

    fn images(&self) -> Images {
        ImageServiceClient::new(self.channel())
    }

    fn call<T>(
        &self,
        future: impl Future<Output = Result<tonic_cri::Response<T>, tonic_cri::Status>>,
    ) -> Result<T, tonic_cri::Status> {
        self.rt
            .block_on(future)
            .map(tonic_cri::Response::into_inner)
    }

    /// Whether the manifest `reference` names in `k8s.io` carries the shim's
    /// precompile label in containerd's content store.
    fn is_precompiled(&self, reference: &str) -> bool {
        let ctr = |args: &[&str]| self.containerd.ctr_ok_in("k8s.io", args);
        let manifest = ctr(&["images", "ls"])
            .lines()
            .find(|l| l.starts_with(&format!("{reference} ")))
            .and_then(|l| l.split_whitespace().nth(2).map(str::to_string))
            .unwrap_or_else(|| panic!("{reference} is not listed in k8s.io"));
        ctr(&["content", "ls"])
            .lines()
            .any(|l| l.starts_with(&manifest) && l.contains("runwasi.io/precompiled/wasmhttp/"))
    }

    /// The kubelet's `imagePullPolicy: IfNotPresent` step: ImageStatus by the
    /// pod's reference; a present image is not pulled, and the container is
    /// created from the image ID that ImageStatus returned.
    fn image_status(&self, reference: &str) -> Option<Image> {
        self.call(self.images().image_status(ImageStatusRequest {
            image: Some(ImageSpec {
                image: reference.into(),
                ..Default::default()
            }),
            verbose: false,
        }))
        .unwrap_or_else(|e| panic!("ImageStatus {reference}: {}", e.message()))
        .image
    }
}

/// A pod sandbox with the `wasmhttp` handler, driven as the kubelet drives it.
struct Pod<'a> {
    suite: &'a Suite,
    id: String,
    config: PodSandboxConfig,
    logs: PathBuf,
    cri: Runtime,
    /// `resources.limits.memory` of the containers started from now on
    memory_limit: Option<i64>,
}

impl<'a> Pod<'a> {
    fn run(suite: &'a Suite, name: &str) -> Self {
        Self::try_run(suite, name).unwrap_or_else(|e| {
            panic!(
                "RunPodSandbox: {}\n{}",
                e.message(),
                suite.containerd.log_tail()
            )
        })
    }

    fn try_run(suite: &'a Suite, name: &str) -> Result<Self, tonic_cri::Status> {
        let logs = suite.work.join("pods").join(name);
        std::fs::create_dir_all(&logs).unwrap();
        let config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.into(),
                uid: format!("uid-{name}"),
                namespace: "default".into(),
                attempt: 0,
            }),
            hostname: name.into(),
            log_directory: logs.display().to_string(),
            linux: Some(LinuxPodSandboxConfig {
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(kubelet_namespaces()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut cri = suite.cri();
        let id = suite
            .call(cri.run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: HANDLER.into(),
            }))?
            .pod_sandbox_id;
        Ok(Pod {
            suite,
            id,
            config,
            logs,
            cri,
            memory_limit: None,
        })
    }

    /// CreateContainer + StartContainer for `reference`, by the image ID, as
    /// the kubelet does; returns the container ID, or the status of the call
    /// that failed.
    fn start(
        &mut self,
        name: &str,
        reference: &str,
        env: &[(&str, &str)],
    ) -> Result<String, tonic_cri::Status> {
        self.start_with(name, reference, env, Vec::new(), &[], &[])
    }

    /// `start` with volumes (a pod's volumeMounts), a command (its
    /// `command`) and arguments (its `args`).
    fn start_with(
        &mut self,
        name: &str,
        reference: &str,
        env: &[(&str, &str)],
        mounts: Vec<Mount>,
        command: &[&str],
        args: &[&str],
    ) -> Result<String, tonic_cri::Status> {
        // containerd 2's CRI learns of an image imported into k8s.io from an
        // event, a moment after `ctr images import` has returned
        let image = eventually(
            Duration::from_secs(10),
            &format!("{reference} is in CRI's images (k8s.io)"),
            || {
                self.suite
                    .image_status(reference)
                    .ok_or("not yet".to_string())
            },
        );
        let config = ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: image.id,
                user_specified_image: reference.into(),
                ..Default::default()
            }),
            envs: env
                .iter()
                .map(|(key, value)| KeyValue {
                    key: key.to_string(),
                    value: value.to_string(),
                })
                .collect(),
            log_path: format!("{name}/0.log"),
            mounts,
            command: command.iter().map(|a| a.to_string()).collect(),
            args: args.iter().map(|a| a.to_string()).collect(),
            linux: Some(LinuxContainerConfig {
                security_context: Some(LinuxContainerSecurityContext {
                    namespace_options: Some(kubelet_namespaces()),
                    ..Default::default()
                }),
                resources: self.memory_limit.map(|limit| LinuxContainerResources {
                    memory_limit_in_bytes: limit,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let id = self
            .suite
            .call(self.cri.create_container(CreateContainerRequest {
                pod_sandbox_id: self.id.clone(),
                config: Some(config),
                sandbox_config: Some(self.config.clone()),
            }))?
            .container_id;
        self.suite
            .call(self.cri.start_container(StartContainerRequest {
                container_id: id.clone(),
            }))?;
        Ok(id)
    }

    fn started(&mut self, name: &str, reference: &str, env: &[(&str, &str)]) -> String {
        self.start(name, reference, env)
            .unwrap_or_else(|e| panic!("starting {name}: {}", e.message()))
    }

    fn status(&mut self, container: &str) -> ContainerStatus {
        self.suite
            .call(self.cri.container_status(ContainerStatusRequest {
                container_id: container.into(),
                verbose: false,
            }))
            .unwrap()
            .status
            .unwrap()
    }

    /// The pod's network namespace, from the verbose sandbox status.
    fn netns(&mut self) -> PathBuf {
        let status = self
            .suite
            .call(self.cri.pod_sandbox_status(PodSandboxStatusRequest {
                pod_sandbox_id: self.id.clone(),
                verbose: true,
            }))
            .unwrap();
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

    /// Waits until `port` answers `path` inside the pod, as a probe would.
    fn get(&mut self, port: u16, path: &str) -> http::Response {
        let netns = self.netns();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        in_netns(&netns, || {
            let response = http::wait_until_serving(addr, Duration::from_secs(60))?;
            if path == "/" {
                Ok(response)
            } else {
                http::get(addr, path).map_err(|e| e.to_string())
            }
        })
        .unwrap_or_else(|e| panic!("port {port} of the pod does not answer: {e}"))
    }

    /// StopContainer as the kubelet sends it (a 10 s grace period): the
    /// container drains and exits 0 well within it.
    fn stop_gracefully(&mut self, container: &str) {
        let stopping = Instant::now();
        self.suite
            .call(self.cri.stop_container(StopContainerRequest {
                container_id: container.to_string(),
                timeout: 10,
            }))
            .unwrap();
        assert!(
            stopping.elapsed() < Duration::from_secs(5),
            "StopContainer took {:?}",
            stopping.elapsed()
        );
        let stopped = self.status(container);
        assert_eq!(
            (stopped.state, stopped.exit_code),
            (ContainerState::ContainerExited as i32, 0),
            "{stopped:?}"
        );
    }

    /// Waits for `line` in a container's CRI log file (what `kubectl logs` reads).
    fn wait_for_log(&self, container_name: &str, line: &str) {
        let log_file = self.logs.join(container_name).join("0.log");
        let read = || std::fs::read_to_string(&log_file).unwrap_or_default();
        until(
            Duration::from_secs(10),
            &format!("{line:?} is in {}", log_file.display()),
            || read().contains(line),
            read,
        );
    }

    /// StopPodSandbox + RemovePodSandbox; checks that nothing of it is left.
    fn remove(mut self) {
        let netns = self.netns();
        let id = self.id.clone();
        self.suite
            .call(self.cri.stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: id.clone(),
            }))
            .unwrap();
        self.suite
            .call(self.cri.remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: id.clone(),
            }))
            .unwrap();
        assert!(
            !netns.exists(),
            "the pod's network namespace {} is left behind",
            netns.display()
        );
        self.suite.containerd.assert_no_shim_or_mount_of(&id);
    }
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

fn images_imported_into_k8s_io_are_found_by_reference(s: &Suite) {
    s.import_fixture("hello", "wasmhttp-test/cri-lookup:1");
    // the short name a Deployment carries is normalised the way the kubelet's is
    for reference in [
        "wasmhttp-test/cri-lookup:1",
        "docker.io/wasmhttp-test/cri-lookup:1",
    ] {
        let image = s
            .image_status(reference)
            .unwrap_or_else(|| panic!("ImageStatus does not find {reference}"));
        assert!(image.id.starts_with("sha256:"), "{image:?}");
        assert!(
            image
                .repo_tags
                .contains(&"docker.io/wasmhttp-test/cri-lookup:1".to_string()),
            "{image:?}"
        );
        assert!(image.size > 0, "{image:?}");
    }
    let listed = s
        .call(s.images().list_images(ListImagesRequest { filter: None }))
        .unwrap()
        .images;
    assert!(
        listed
            .iter()
            .any(|i| i.repo_tags.iter().any(|t| t.ends_with("cri-lookup:1"))),
        "ListImages misses the image: {listed:?}"
    );
    assert!(
        s.image_status("wasmhttp-test/not-imported:1").is_none(),
        "an image that was never imported must be reported absent (the kubelet then pulls)"
    );
}

fn pod_serves_in_its_network_namespace_and_stops_cleanly(s: &Suite) {
    let image = "wasmhttp-test/cri-hello:1";
    s.import_fixture("hello", image);
    let mut pod = Pod::run(s, "hello");
    let container = pod.started("hello", image, &[]);

    let response = pod.get(8080, "/");
    assert_eq!(response.status, 200);
    assert!(response.text().contains("Hello"), "{}", response.text());
    assert!(
        http::get("127.0.0.1:8080".parse().unwrap(), "/").is_err(),
        "the pod's listener must not be reachable from the host's namespace"
    );
    assert_eq!(
        pod.status(&container).state,
        ContainerState::ContainerRunning as i32
    );
    pod.wait_for_log("hello", "stdout F hello fixture: handling a request");
    // what the example Deployments' probes ask, on the admin port
    let ready = pod.get(9090, "/readyz");
    assert_eq!((ready.status, ready.text().as_str()), (200, "ready\n"));
    assert_eq!(pod.get(9090, "/healthz").status, 200);
    let metrics = pod.get(9090, "/metrics").text();
    assert!(
        metrics.contains("wasmhttp_requests_total{status=\"200\"} 1"),
        "{metrics}"
    );

    pod.stop_gracefully(&container);
    s.call(pod.cri.remove_container(RemoveContainerRequest {
        container_id: container,
    }))
    .unwrap();
    pod.remove();
}

/// A wasi:http 0.3 component (examples/service-py) as a pod's container: one
/// instance serves several requests at once, up to the setting, and a
/// StopContainer waits for the request still being served.
fn a_wasi_http_0_3_service_shares_instances_and_drains_in_its_pod(s: &Suite) {
    let image = "wasmhttp-test/cri-service-py:1";
    let component = images::example("service-py");
    s.import_k8s(&images::wasmhttp_image(&s.work, &component, image));
    let mut pod = Pod::run(s, "service-py");
    let container = pod.started(
        "service",
        image,
        &[
            ("WASMHTTP_INSTANCE_REUSE", "1000"),
            ("WASMHTTP_INSTANCE_CONCURRENCY", "3"),
        ],
    );
    let warm = pod.get(8080, "/");
    assert!(warm.text().contains("served 1, 1 at once"), "{warm:?}");

    let netns = pod.netns();
    let addr: SocketAddr = ([127, 0, 0, 1], 8080).into();
    // 6 requests that each await a clock for 1.5 s, arriving 50 ms apart
    let answers: Vec<_> = in_netns(&netns, || {
        std::thread::scope(|scope| {
            let requests: Vec<_> = (0..6)
                .map(|i| {
                    std::thread::sleep(Duration::from_millis(50));
                    scope.spawn(move || http::get(addr, &format!("/c{i}?sleep=1500")))
                })
                .collect();
            requests.into_iter().map(|r| r.join().unwrap()).collect()
        })
    });
    let mut most_at_once = 0;
    for answer in answers {
        let answer = answer.expect("an answer from the pod");
        assert_eq!(answer.status, 200, "{answer:?}");
        let at_once = images::service_py_at_once(&answer.text());
        assert!(at_once <= 3, "an instance served {at_once} at once");
        most_at_once = most_at_once.max(at_once);
    }
    assert!(most_at_once >= 2, "no instance served two requests at once");
    let metrics = pod.get(9090, "/metrics").text();
    assert!(
        metric_in(&metrics, "wasmhttp_instances_reused_total") >= 1.0,
        "{metrics}"
    );
    assert_eq!(
        metric_in(&metrics, "wasmhttp_requests_total{status=\"200\"}"),
        7.0
    );

    // a request still awaiting its clock when the kubelet stops the container
    let in_flight = {
        let netns = netns.clone();
        std::thread::spawn(move || in_netns(&netns, || http::get(addr, "/last?sleep=1500")))
    };
    std::thread::sleep(Duration::from_millis(300));
    pod.stop_gracefully(&container);
    let last = in_flight
        .join()
        .unwrap()
        .expect("the request in flight is answered");
    assert_eq!(last.status, 200, "{last:?}");
    pod.remove();
}

fn two_wasm_containers_serve_one_pod_on_their_own_ports(s: &Suite) {
    s.import_fixture("hello", "wasmhttp-test/cri-hello:2");
    s.import_fixture("echo", "wasmhttp-test/cri-echo:2");
    let mut pod = Pod::run(s, "two-wasm");
    pod.started("hello", "wasmhttp-test/cri-hello:2", &[]);
    pod.started(
        "echo",
        "wasmhttp-test/cri-echo:2",
        // two containers in one pod share its ports: the second moves both listeners
        &[
            ("WASMHTTP_LISTEN", "0.0.0.0:8081"),
            ("WASMHTTP_ADMIN_LISTEN", "0.0.0.0:9091"),
            ("WHO", "echo"),
        ],
    );

    let hello = pod.get(8080, "/");
    assert!(hello.text().contains("Hello"), "{}", hello.text());
    let echo = pod.get(8081, "/from/the/pod");
    assert_eq!(echo.status, 200);
    assert_eq!(echo.header("x-echo-path"), Some("/from/the/pod"));
    assert!(echo.all("x-echo-env").contains(&"WHO=echo"), "{echo:?}");
    // each container has its own settings and its own environment
    assert!(
        !echo
            .all("x-echo-env")
            .iter()
            .any(|e| e.starts_with("WASMHTTP_")),
        "{echo:?}"
    );
    pod.wait_for_log("hello", "hello fixture: handling a request");
    pod.remove();
}

fn wasm_container_and_native_sidecar_share_the_pod(s: &Suite) {
    s.import_fixture("hello", "wasmhttp-test/cri-hello:3");
    let sidecar = "docker.io/wasmhttp-test/native-sidecar:1";
    s.import_k8s(&images::busybox_image(
        &s.work,
        sidecar,
        &[("www/index.html", b"native sidecar\n")],
        &["httpd", "-f", "-v", "-p", "9000", "-h", "/www"],
    ));
    let mut pod = Pod::run(s, "sidecar");
    let wasm = pod.started("app", "wasmhttp-test/cri-hello:3", &[]);
    let native = pod.started("sidecar", sidecar, &[]);

    let from_wasm = pod.get(8080, "/");
    assert!(from_wasm.text().contains("Hello"), "{}", from_wasm.text());
    let from_native = pod.get(9000, "/index.html");
    assert_eq!(from_native.status, 200);
    assert_eq!(from_native.text(), "native sidecar\n");
    for container in [&wasm, &native] {
        assert_eq!(
            pod.status(container).state,
            ContainerState::ContainerRunning as i32
        );
    }
    pod.remove();
}

fn container_stats_report_memory_and_cpu(s: &Suite) {
    let image = "wasmhttp-test/cri-hello:4";
    s.import_fixture("hello", image);
    let mut pod = Pod::run(s, "stats");
    let container = pod.started("hello", image, &[]);
    // some work for the CPU counter: a bounded number of requests
    let netns = pod.netns();
    in_netns(&netns, || {
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        http::wait_until_serving(addr, Duration::from_secs(60)).unwrap();
        for _ in 0..200 {
            assert_eq!(http::get(addr, "/").unwrap().status, 200);
        }
    });

    let one = s
        .call(pod.cri.container_stats(ContainerStatsRequest {
            container_id: container.clone(),
        }))
        .unwrap()
        .stats
        .expect("ContainerStats has stats");
    let listed = s
        .call(pod.cri.list_container_stats(ListContainerStatsRequest {
            filter: Some(ContainerStatsFilter {
                pod_sandbox_id: pod.id.clone(),
                ..Default::default()
            }),
        }))
        .unwrap()
        .stats;
    let from_list = listed
        .into_iter()
        .find(|stats| stats.attributes.as_ref().map(|a| a.id.as_str()) == Some(&container))
        .expect("ListContainerStats lists the container");
    for (call, stats) in [("ContainerStats", one), ("ListContainerStats", from_list)] {
        let memory = stats
            .memory
            .and_then(|m| m.working_set_bytes)
            .map(|v| v.value)
            .unwrap_or(0);
        let cpu = stats
            .cpu
            .and_then(|c| c.usage_core_nano_seconds)
            .map(|v| v.value)
            .unwrap_or(0);
        assert!(memory > 0, "{call}: no memory working set");
        // 200 requests take well over a millisecond of CPU; a counter in the
        // wrong unit (microseconds read as nanoseconds) would stay under it
        assert!(
            cpu > 1_000_000,
            "{call}: CPU usage {cpu} ns is not a plausible count for 200 requests"
        );
    }
    pod.remove();
}

/// A guest that grows its memory past the container's limit (64 MiB; the
/// instance limit set above it, 1 GiB): the kernel OOM-kills the container,
/// and CRI says so (`OOMKilled`, what `kubectl get pod` and `describe` show),
/// not `Error`, because the shim publishes TaskOOM before the exit.
fn an_oom_killed_container_is_reported_oomkilled(s: &Suite) {
    let image = "wasmhttp-test/cri-grow:1";
    s.import_fixture("grow-memory", image);
    let mut pod = Pod::run(s, "oom");
    pod.memory_limit = Some(64 << 20);
    let container = pod.started("grow", image, &[("WASMHTTP_MAX_INSTANCE_MEMORY", "1Gi")]);
    let netns = pod.netns();
    in_netns(&netns, || {
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        // ready, asked on the admin port: a request to the guest is fatal
        let admin: SocketAddr = "127.0.0.1:9090".parse().unwrap();
        until(
            Duration::from_secs(60),
            "the container is ready",
            || http::get(admin, "/readyz").is_ok_and(|r| r.status == 200),
            String::new,
        );
        // the kernel kills the container mid-request: no response
        let killed = http::get(addr, "/");
        assert!(killed.is_err(), "answered: {killed:?}");
    });
    let status = eventually(
        Duration::from_secs(30),
        "the container exits OOMKilled",
        || {
            let status = pod.status(&container);
            match status.state() {
                ContainerState::ContainerExited => Ok(status),
                _ => Err(format!("{status:?}")),
            }
        },
    );
    assert_eq!(
        (status.reason.as_str(), status.exit_code),
        ("OOMKilled", 137),
        "{status:?}\n{}",
        s.containerd.log_tail()
    );
    pod.remove();
}

fn invalid_component_fails_start_container_with_the_reason(s: &Suite) {
    let core = "docker.io/wasmhttp-test/cri-core-module:1";
    s.import_k8s(&images::rootfs_image(
        &s.work,
        &wasmhttp_fixtures::build("core-module").unwrap(),
        "/component.wasm",
        core,
        images::Platform::LinuxAmd64,
    ));
    let mut pod = Pod::run(s, "invalid");
    let error = pod
        .start("app", core, &[])
        .expect_err("a core module must not start");
    // what the kubelet puts in the pod's events
    let message = error.message();
    assert!(
        message.contains("core WebAssembly module"),
        "the reason is not in the CRI error: {message}"
    );
    // and `kubectl logs` says it too
    pod.wait_for_log("app", "wasmhttp: cannot start this container");

    // the same for a setting the shim cannot accept
    s.import_fixture("hello", "wasmhttp-test/cri-hello:5");
    let error = pod
        .start(
            "bad-setting",
            "wasmhttp-test/cri-hello:5",
            &[("WASMHTTP_LISTEN", "not-an-address")],
        )
        .expect_err("a bad setting must not start");
    assert!(
        error.message().contains("WASMHTTP_LISTEN") && error.message().contains("not-an-address"),
        "{}",
        error.message()
    );

    // a truncated component
    let truncated = "docker.io/wasmhttp-test/cri-truncated:1";
    let hello = wasmhttp_fixtures::build("hello").unwrap();
    s.import_k8s(&images::rootfs_image(
        &s.work,
        &hello[..hello.len() / 2],
        "/component.wasm",
        truncated,
        images::Platform::LinuxAmd64,
    ));
    let error = pod
        .start("truncated", truncated, &[])
        .expect_err("a truncated component must not start");
    assert!(
        error.message().contains("malformed WebAssembly component"),
        "{}",
        error.message()
    );
    pod.remove();

    // a port another container of the pod holds
    let mut pod = Pod::run(s, "busy-port");
    let no_admin = [("WASMHTTP_ADMIN_LISTEN", "off")];
    pod.started("first", "wasmhttp-test/cri-hello:5", &no_admin);
    match pod.start("second", "wasmhttp-test/cri-hello:5", &no_admin) {
        // the port is taken once the component is loaded: the container
        // starts, then exits saying why in its log
        Ok(_) => pod.wait_for_log("second", "cannot listen on 0.0.0.0:8080"),
        Err(error) => assert!(
            error.message().contains("cannot listen on 0.0.0.0:8080"),
            "{}",
            error.message()
        ),
    }
    pod.remove();
}

/// The kubelet's pull: images pushed to a registry on 127.0.0.1 (by ctr, as
/// a CI pipeline pushes), PullImage through CRI — on containerd 2.1 through
/// its transfer service —, then a pod that serves from the pulled image, whose
/// component is precompiled after the pull as after an import. The Wasm OCI
/// artifact too, where containerd unpacks it.
fn images_pulled_from_a_registry_run_precompiled(s: &Suite) {
    let registry = support::registry::Registry::start();
    let hello = images::fixture(&s.work, "hello");
    let mut pulls = vec![(
        format!("{}/wasmhttp-test/pulled:1", registry.address),
        images::wasmhttp_image(
            &s.work,
            &hello,
            &format!("{}/wasmhttp-test/pulled:1", registry.address),
        ),
        &[][..],
    )];
    if s.containerd.version != containerd::Version::V1_6 {
        let reference = format!("{}/wasmhttp-test/pulled-artifact:1", registry.address);
        let tar = images::wasm_artifact(&s.work, &hello, &reference);
        pulls.push((reference, tar, &["/"][..]));
    }
    {
        let reference = format!("{}/wasmhttp-test/pulled-wasi:1", registry.address);
        let wasm = std::fs::read(&hello).unwrap();
        let tar = images::rootfs_image(
            &s.work,
            &wasm,
            "/app/hello.wasm",
            &reference,
            images::Platform::WasiWasm,
        );
        pulls.push((reference, tar, &[][..]));
    }
    let mut pod = Pod::run(s, "pulled");
    for (i, (reference, tar, command)) in pulls.iter().enumerate() {
        // pushed from a namespace of its own, so the pull finds nothing local
        let push = |args: &[&str]| s.containerd.ctr_ok_in("wasmhttp-push", args);
        push(&[
            "images",
            "import",
            "--no-unpack",
            "--all-platforms",
            tar.to_str().unwrap(),
        ]);
        push(&["images", "push", "--plain-http", reference]);
        push(&["images", "rm", "--sync", reference]);
        assert!(
            s.image_status(reference).is_none(),
            "{reference} is already in k8s.io"
        );

        let pulled = s
            .call(s.images().pull_image(PullImageRequest {
                image: Some(ImageSpec {
                    image: reference.clone(),
                    ..Default::default()
                }),
                auth: None,
                sandbox_config: Some(pod.config.clone()),
            }))
            .unwrap_or_else(|e| panic!("PullImage {reference}: {}", e.message()));
        assert!(pulled.image_ref.starts_with("sha256:"), "{pulled:?}");
        // the containers of one pod share its ports
        let port = 8080 + i as u16;
        let listen = format!("0.0.0.0:{port}");
        let admin = format!("0.0.0.0:{}", 9090 + i);
        pod.start_with(
            &format!("pulled-{i}"),
            reference,
            &[
                ("WASMHTTP_LISTEN", &listen),
                ("WASMHTTP_ADMIN_LISTEN", &admin),
            ],
            Vec::new(),
            command,
            &[],
        )
        .unwrap_or_else(|e| panic!("starting {reference}: {}", e.message()));
        assert!(pod.get(port, "/").text().contains("Hello"), "{reference}");
        assert!(
            s.is_precompiled(reference),
            "{reference}: the pulled component was not precompiled"
        );
    }
    pod.remove();
}

/// The CNCF Wasm OCI artifact (`wasmhttp image --artifact`, the layout of
/// `wkg oci push`) through the kubelet's path. Its config has no entrypoint,
/// so CRI refuses a container without a `command` ("no command specified");
/// with `command: ["/"]` (any value: the shim runs the image's one component)
/// it serves, precompiled once; so does an app in that layout. containerd
/// 1.6 cannot unpack a layer that is not a tar archive, so there the import
/// itself fails, saying so.
fn the_wasm_oci_artifact_runs_with_a_command_where_containerd_unpacks_it(s: &Suite) {
    let reference = "docker.io/wasmhttp-test/artifact:1";
    let wasm = images::fixture(&s.work, "hello");
    let tar = images::wasm_artifact(&s.work, &wasm, reference);
    let output = s
        .containerd
        .ctr_command_in("k8s.io")
        .args(["images", "import"])
        .arg(&tar)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    if s.containerd.version == containerd::Version::V1_6 {
        assert!(
            !output.status.success()
                && said.contains("mismatched image rootfs and manifest layers"),
            "{said}"
        );
        return;
    }
    assert!(output.status.success(), "import failed: {said}");

    let mut pod = Pod::run(s, "artifact");
    let refused = pod
        .start("no-command", reference, &[])
        .expect_err("an artifact has no entrypoint: CRI needs a command");
    assert!(
        refused.message().contains("no command specified"),
        "{}",
        refused.message()
    );
    pod.start_with("hello", reference, &[], Vec::new(), &["/"], &[])
        .unwrap_or_else(|e| panic!("starting the artifact: {}", e.message()));
    assert!(pod.get(8080, "/").text().contains("Hello"));
    pod.remove();
    assert!(
        s.is_precompiled(reference),
        "the artifact's component was not precompiled"
    );
    an_app_runs_from_the_wasm_oci_artifact(s);
}

/// An app in the artifact layout (`wasmhttp image --artifact` of routes):
/// the shim finds the manifest's layer, each route's component by its
/// layer's digest, precompiled; started twice, the second time from the
/// cache (the manifest's layer, which holds no code, is read as it is). A
/// hand-made artifact whose manifest names a layer it lacks fails its start
/// with the route and the digest named.
fn an_app_runs_from_the_wasm_oci_artifact(s: &Suite) {
    let reference = "docker.io/wasmhttp-test/app-artifact:1";
    let hello = images::fixture(&s.work, "hello");
    let cgi = images::fixture(&s.work, "cgi");
    s.import_k8s(&images::app_artifact(
        &s.work,
        &[
            format!("/...={}", hello.display()),
            format!(
                "/cgi-bin/...={},env=WASMHTTP_MODE=cgi,env=GREETING=from-the-manifest",
                cgi.display()
            ),
        ],
        reference,
    ));
    for start in ["first", "cached"] {
        let mut pod = Pod::run(s, &format!("app-artifact-{start}"));
        pod.start_with("app", reference, &[], Vec::new(), &["app.toml"], &[])
            .unwrap_or_else(|e| panic!("starting the app artifact ({start}): {}", e.message()));
        assert!(pod.get(8080, "/").text().contains("Hello"), "{start}");
        let cgi = pod.get(8080, "/cgi-bin/request");
        let said = cgi.text();
        assert!(
            cgi.status == 201
                && said.contains("SCRIPT_NAME=/cgi-bin\n")
                && said.contains("PATH_INFO=/request\n")
                && said.contains("GREETING=from-the-manifest\n"),
            "{start}: {cgi:?}"
        );
        pod.remove();
        assert!(
            s.is_precompiled(reference),
            "{start}: the app's components were not precompiled"
        );
    }

    let broken = "docker.io/wasmhttp-test/app-artifact-broken:1";
    let missing = format!("sha256:{}", "0".repeat(64));
    let manifest =
        format!("[[route]]\npath = \"/...\"\ncomponent = \"{missing}\"\nname = \"front\"\n");
    let hello = std::fs::read(&hello).unwrap();
    s.import_k8s(&images::hand_made_artifact(
        &s.work,
        &[
            ("application/vnd.wasmhttp.app.v1+toml", manifest.as_bytes()),
            ("application/wasm", &hello),
        ],
        broken,
    ));
    let mut pod = Pod::run(s, "app-artifact-broken");
    let error = pod
        .start_with("app", broken, &[], Vec::new(), &["/"], &[])
        .expect_err("a manifest naming a layer the image lacks must not start");
    let message = error.message();
    assert!(
        message.contains("route /... (front)")
            && message.contains(&missing)
            && message.contains("is not a layer of the image"),
        "the reason is not in the CRI error: {message}"
    );
    pod.wait_for_log("app", "is not a layer of the image");
    pod.remove();
}

/// How a node's containerd is configured, as the installer meets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NodeLayout {
    /// `/etc/containerd/config.toml` in the release's own format, edited in place.
    Plain,
    /// The same with `imports = ["conf.d/*.toml"]`: containerd 2 gets our
    /// drop-in file there and an untouched config; containerd 1.x, which would
    /// let that file replace its whole CRI section, gets its config edited.
    DropIns,
    /// k3s: `config.toml` generated from `config.toml.tmpl` at each start. No
    /// k3s runs here: this case renders the template as k3s does (the base
    /// config in place of `{{ template "base" . }}`) and restarts containerd.
    K3sTemplate,
}

/// The installer, run as its DaemonSet runs it, against the config file the
/// suite's containerd is actually reading, for each layout a node of this
/// containerd release may have: it adds the handler, restarts containerd by
/// signal (this case plays the supervisor that starts it again), a pod then
/// runs with the shim it copied, a second run changes nothing, and uninstall
/// takes the handler away again.
fn node_installer_registers_the_handler_with_a_running_containerd(s: &Suite) {
    let mut layouts = vec![NodeLayout::Plain, NodeLayout::DropIns];
    if s.containerd.version.is_2x() {
        layouts.push(NodeLayout::K3sTemplate);
    }
    for layout in layouts {
        install_use_and_uninstall(s, layout);
    }
}

fn install_use_and_uninstall(s: &Suite, layout: NodeLayout) {
    let installer = Path::new(env!("CARGO_BIN_EXE_containerd-shim-wasmhttp-v1"))
        .with_file_name("wasmhttp-node-installer");
    assert!(
        installer.exists(),
        "{} is missing: `make test` builds it (cargo build --workspace --bins)",
        installer.display()
    );
    let version = s.containerd.version;
    // the node before the installer: the suite's config without our runtime
    let node = s.work.join(format!("node-{layout:?}").to_lowercase());
    let config_dir = node.join(match layout {
        NodeLayout::K3sTemplate => "var/lib/rancher/k3s/agent/etc/containerd",
        _ => "etc/containerd",
    });
    let node_config = config_dir.join("config.toml");
    let node_bin = node.join("opt/wasmhttp/bin");
    std::fs::create_dir_all(config_dir.join("conf.d")).unwrap();
    let ours = format!(
        "[{}.wasmhttp]\n  runtime_type = \"io.containerd.wasmhttp.v1\"\n",
        version.runtimes_table()
    );
    let suite_config = std::fs::read_to_string(s.containerd.config()).unwrap();
    assert!(suite_config.contains(&ours), "{suite_config}");
    let mut base = suite_config.replace(&ours, "");
    // an operator's drop-in of its own, which the installer leaves alone
    let operators = config_dir.join("conf.d/10-operator.toml");
    if layout == NodeLayout::DropIns {
        base = base.replacen("\nroot = ", "\nimports = [\"conf.d/*.toml\"]\nroot = ", 1);
        let format = if version.is_2x() { 3 } else { 2 };
        std::fs::write(&operators, format!("version = {format}\n")).unwrap();
    }
    std::fs::write(&node_config, &base).unwrap();
    let context = format!("{layout:?} on {version}");
    // k3s renders its template into config.toml at each start
    let render_k3s_template = || {
        let template = std::fs::read_to_string(config_dir.join("config.toml.tmpl"))
            .unwrap_or_else(|_| "{{ template \"base\" . }}\n".into());
        std::fs::write(
            &node_config,
            template.replace("{{ template \"base\" . }}", &base),
        )
        .unwrap();
    };
    let stop_containerd = || {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(s.containerd.pid() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
    };
    stop_containerd();
    s.containerd
        .restart_after_exit(&node_config, &node_bin, Duration::from_secs(10));
    s.wait_for_cri();
    let refused = Pod::try_run(s, "before-install").err().unwrap_or_else(|| {
        panic!("{context}: a node without the installer has no wasmhttp handler")
    });
    assert!(
        refused.message().contains("wasmhttp"),
        "{context}: {}",
        refused.message()
    );

    let run_installer = |command: &str| {
        std::process::Command::new(&installer)
            .arg(command)
            .arg("--host-root")
            .arg(&node)
            .arg("--shim")
            .arg(env!("CARGO_BIN_EXE_containerd-shim-wasmhttp-v1"))
            .args(match layout {
                // there is no k3s process to signal: this case is k3s
                NodeLayout::K3sTemplate => ["--restart", "never"],
                _ => ["--restart", "signal"],
            })
            .env_remove("NODE_NAME")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let finish = |child: std::process::Child| {
        let output = child.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success(),
            "{context}: the installer failed:\n{text}"
        );
        text
    };
    // runs the installer while playing containerd's supervisor (and k3s)
    let install_or_uninstall = |command: &str| {
        let child = run_installer(command);
        if layout == NodeLayout::K3sTemplate {
            let said = finish(child);
            render_k3s_template();
            stop_containerd();
            s.containerd
                .restart_after_exit(&node_config, &node_bin, Duration::from_secs(30));
            s.wait_for_cri();
            said
        } else {
            s.containerd
                .restart_after_exit(&node_config, &node_bin, Duration::from_secs(30));
            s.wait_for_cri();
            finish(child)
        }
    };

    let said = install_or_uninstall("install");
    let written = match (layout, version.is_2x()) {
        (NodeLayout::DropIns, true) => config_dir.join("conf.d/wasmhttp.toml"),
        (NodeLayout::K3sTemplate, _) => config_dir.join("config.toml.tmpl"),
        _ => node_config.clone(),
    };
    assert!(
        said.contains(&format!("changed {}", written.display())),
        "{context}: {said}"
    );
    if written != node_config && layout != NodeLayout::K3sTemplate {
        assert_eq!(
            std::fs::read_to_string(&node_config).unwrap(),
            base,
            "{context}: the node's own config was edited"
        );
    }
    if layout == NodeLayout::DropIns && !version.is_2x() {
        assert!(
            !config_dir.join("conf.d/wasmhttp.toml").exists(),
            "{context}: a drop-in would replace containerd 1's whole CRI section"
        );
    }

    let image = "wasmhttp-test/cri-hello:6";
    s.import_fixture("hello", image);
    let mut pod = Pod::run(s, "installed");
    pod.started("hello", image, &[]);
    assert!(pod.get(8080, "/").text().contains("Hello"), "{context}");
    // the shim serving the pod is the copy the installer put on the node
    let (shim_pid, _) = s
        .containerd
        .shim_processes(Some(&pod.id))
        .into_iter()
        .next()
        .expect("a shim for the pod");
    assert_eq!(
        std::fs::read_link(format!("/proc/{shim_pid}/exe")).unwrap(),
        node_bin.join("containerd-shim-wasmhttp-v1"),
        "{context}"
    );
    pod.remove();

    // a second run changes nothing and leaves containerd alone
    let before = containerd_pids(&node_config);
    let said = finish(run_installer("install"));
    assert!(said.contains("nothing to change"), "{context}: {said}");
    assert_eq!(
        containerd_pids(&node_config),
        before,
        "{context}: containerd was restarted for nothing"
    );

    install_or_uninstall("uninstall");
    assert!(!node_bin.join("containerd-shim-wasmhttp-v1").exists());
    let config_now = std::fs::read_to_string(&node_config).unwrap();
    if written == node_config {
        assert!(
            !config_now.contains(".wasmhttp]"),
            "{context}: {config_now}"
        );
    } else {
        assert!(
            !written.exists(),
            "{context}: {} is left",
            written.display()
        );
        // (k3s's rendering ends the template's last line)
        assert_eq!(
            config_now.trim_end(),
            base.trim_end(),
            "{context}: uninstall must leave the node's config as it found it"
        );
    }
    if layout == NodeLayout::DropIns {
        assert!(
            operators.exists(),
            "{context}: the operator's drop-in went too"
        );
    }
    assert!(
        Pod::try_run(s, "after-uninstall").is_err(),
        "{context}: the handler must be gone after uninstall"
    );
}

/// containerd processes started with `--config config`.
fn containerd_pids(config: &Path) -> Vec<i32> {
    let wanted = config.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let args: Vec<String> = cmdline
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            (args.first().is_some_and(|a| a.ends_with("containerd"))
                && args
                    .windows(2)
                    .any(|w| w[0] == "--config" && w[1] == wanted))
            .then_some(pid)
        })
        .collect()
}

/// A pod's volumeMounts (what configMap, secret, emptyDir and hostPath volumes
/// become in CRI): each a directory of the guest at its mount path,
/// `readOnly` ones read-only.
fn volume_mounts_are_the_guests_directories(s: &Suite) {
    let wasm = images::example("files-py");
    s.import_k8s(&images::wasmhttp_image(
        &s.work,
        &wasm,
        "wasmhttp-test/files-py:cri",
    ));
    let config = s.work.join("volumes/config");
    let scratch = s.work.join("volumes/scratch");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::create_dir_all(&scratch).unwrap();
    std::fs::write(config.join("app.conf"), "from a configMap-like volume\n").unwrap();
    let mut pod = Pod::run(s, "volumes");
    pod.start_with(
        "files",
        "wasmhttp-test/files-py:cri",
        &[],
        vec![
            Mount {
                container_path: "/etc/app".into(),
                host_path: config.display().to_string(),
                readonly: true,
                ..Default::default()
            },
            Mount {
                container_path: "/scratch".into(),
                host_path: scratch.display().to_string(),
                readonly: false,
                ..Default::default()
            },
        ],
        &[],
        &[],
    )
    .unwrap_or_else(|e| panic!("starting files-py: {}", e.message()));
    let conf = pod.get(8080, "/etc/app/app.conf");
    assert_eq!(
        (conf.status, conf.text().as_str()),
        (200, "from a configMap-like volume\n")
    );
    let netns = pod.netns();
    let (written, refused) = in_netns(&netns, || {
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        (
            http::request(addr, "PUT", "/scratch/note.txt", &[], b"kept\n").unwrap(),
            http::request(addr, "PUT", "/etc/app/app.conf", &[], b"changed\n").unwrap(),
        )
    });
    assert_eq!(written.status, 201, "{}", written.text());
    assert_eq!(
        std::fs::read_to_string(scratch.join("note.txt")).unwrap(),
        "kept\n"
    );
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert_eq!(
        std::fs::read_to_string(config.join("app.conf")).unwrap(),
        "from a configMap-like volume\n"
    );
    // CRI's own files (/etc/hosts, /etc/resolv.conf, /dev/termination-log) are not volumes
    assert_ne!(pod.get(8080, "/etc/hosts").status, 200);
    pod.remove();
}

/// A command component with its own TCP server (wasi:sockets), as under plain
/// `wasmtime run`: refused by default, serving inside the pod's network
/// namespace with WASMHTTP_ALLOW_SOCKETS=1.
fn sockets_are_granted_inside_the_pod_network_namespace(s: &Suite) {
    s.import_fixture("tcp-server", "wasmhttp-test/tcp-server:1");
    let mut pod = Pod::run(s, "sockets");
    let denied = pod
        .start_with(
            "denied",
            "wasmhttp-test/tcp-server:1",
            &[],
            Vec::new(),
            &[],
            &["7001"],
        )
        .unwrap_or_else(|e| panic!("starting the refused server: {}", e.message()));
    let allowed = pod
        .start_with(
            "allowed",
            "wasmhttp-test/tcp-server:1",
            &[("WASMHTTP_ALLOW_SOCKETS", "1")],
            Vec::new(),
            &[],
            &["7000"],
        )
        .unwrap_or_else(|e| panic!("starting the socket server: {}", e.message()));
    let netns = pod.netns();
    let greeting = in_netns(&netns, || {
        http::read_all_once_listening("127.0.0.1:7000".parse().unwrap(), Duration::from_secs(30))
    });
    assert_eq!(greeting, "hello from a wasi:sockets server\n");
    // the server exits 0 after its one connection; the other was refused
    let exited = |pod: &mut Pod, id: &str| {
        eventually(Duration::from_secs(30), &format!("{id} exits"), || {
            let status = pod.status(id);
            if status.state == ContainerState::ContainerExited as i32 {
                return Ok(status.exit_code);
            }
            Err(format!("{status:?}"))
        })
    };
    assert_eq!(exited(&mut pod, &allowed), 0);
    assert_eq!(exited(&mut pod, &denied), 1);
    pod.wait_for_log("denied", "tcp-server fixture: refused: create-tcp-socket");
    pod.remove();
}

/// The namespaces the kubelet asks for, for a pod without
/// `shareProcessNamespace`: the pod's network and IPC, a PID namespace of
/// each container's own. (CRI's zero value would put every container in the
/// pod's PID namespace, where youki's cgroup v1 mount looks its process up
/// in the host's /proc by the pod's PID, and a container fails to start when
/// the host has no process of that number: `failed to mount cgroup v1:
/// procfs failed`.)
fn kubelet_namespaces() -> NamespaceOption {
    NamespaceOption {
        network: NamespaceMode::Pod as i32,
        pid: NamespaceMode::Container as i32,
        ipc: NamespaceMode::Pod as i32,
        ..Default::default()
    }
}
