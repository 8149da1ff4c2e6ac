//! Starts a container through containerd's gRPC API without unpacking its
//! image — what containerd ≥ 1.6.25 / 1.7.7 does for images whose layers are
//! wasm blobs rather than tar archives (runwasi's and wkg's layouts). The
//! containerd 1.6.20 on these machines refuses to unpack such images, so
//! `ctr run` cannot start them; this helper creates an empty snapshot, the
//! container record and the task itself, and the shim reads the wasm layer
//! from the content store exactly as it would under a newer containerd.

use std::collections::HashMap;
use std::path::PathBuf;

use containerd_client::services::v1::container::Runtime;
use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::snapshots::{PrepareSnapshotRequest, RemoveSnapshotRequest};
use containerd_client::services::v1::tasks_client::TasksClient;
use containerd_client::services::v1::{
    Container, CreateContainerRequest, CreateTaskRequest, DeleteContainerRequest,
    DeleteTaskRequest, KillRequest, StartRequest, WaitRequest,
};
use containerd_client::tonic::Request;
use containerd_client::with_namespace;

use super::containerd::{NAMESPACE, PrivateContainerd, RUNTIME};

const SNAPSHOTTER: &str = "overlayfs";

/// A container created without unpacking; stopped and removed by [`UnpackedLess::remove`].
pub struct UnpackLess {
    pub id: String,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    socket: PathBuf,
}

impl UnpackLess {
    /// Creates and starts container `id` from `image` with host networking.
    pub fn start(
        containerd: &PrivateContainerd,
        id: &str,
        image: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let this = Self::new(containerd, id);
        this.create(containerd, image, args, env, false)
            .expect("creating the task");
        this
    }

    fn new(containerd: &PrivateContainerd, id: &str) -> Self {
        let stdout = containerd.dir.join(format!("{id}.stdout"));
        let stderr = containerd.dir.join(format!("{id}.stderr"));
        std::fs::write(&stdout, b"").unwrap();
        std::fs::write(&stderr, b"").unwrap();
        Self {
            id: id.to_string(),
            stdout,
            stderr,
            socket: containerd.socket(),
        }
    }

    fn create(
        &self,
        containerd: &PrivateContainerd,
        image: &str,
        args: &[&str],
        env: &[(&str, &str)],
        expect_failure: bool,
    ) -> Result<(), String> {
        let this = self;
        let id = self.id.as_str();
        let spec = default_spec(containerd, args, env);
        this.block_on(async {
            let channel = containerd_client::connect(&this.socket)
                .await
                .expect("connecting to containerd");
            // The container first: it holds the snapshot against containerd's
            // garbage collector, which (woken by an earlier case's deletions)
            // removed a snapshot prepared first before the task could mount it.
            let container = Container {
                id: id.into(),
                image: image.into(),
                runtime: Some(Runtime {
                    name: RUNTIME.into(),
                    options: None,
                }),
                spec: Some(prost_types::Any {
                    type_url: "types.containerd.io/opencontainers/runtime-spec/1/Spec".into(),
                    value: serde_json::to_vec(&spec).unwrap(),
                }),
                snapshotter: SNAPSHOTTER.into(),
                snapshot_key: id.into(),
                ..Default::default()
            };
            ContainersClient::new(channel.clone())
                .create(with_namespace!(
                    CreateContainerRequest {
                        container: Some(container)
                    },
                    NAMESPACE
                ))
                .await
                .expect("creating the container");
            let prepare = PrepareSnapshotRequest {
                snapshotter: SNAPSHOTTER.into(),
                key: id.into(),
                parent: String::new(),
                labels: HashMap::new(),
            };
            let mounts = SnapshotsClient::new(channel.clone())
                .prepare(with_namespace!(prepare, NAMESPACE))
                .await
                .expect("preparing an empty snapshot")
                .into_inner()
                .mounts;
            let task = CreateTaskRequest {
                container_id: id.into(),
                rootfs: mounts,
                stdout: this.stdout.display().to_string(),
                stderr: this.stderr.display().to_string(),
                ..Default::default()
            };
            let created = TasksClient::new(channel.clone())
                .create(with_namespace!(task, NAMESPACE))
                .await;
            if let Err(status) = created {
                if expect_failure {
                    this.remove_container(channel).await;
                    return Err(status.message().to_string());
                }
                panic!(
                    "creating the task failed: {}\ncontainer stderr:\n{}",
                    status.message(),
                    std::fs::read_to_string(&this.stderr).unwrap_or_default()
                );
            }
            assert!(!expect_failure, "the task of {id} was created");
            TasksClient::new(channel)
                .start(with_namespace!(
                    StartRequest {
                        container_id: id.into(),
                        exec_id: String::new()
                    },
                    NAMESPACE
                ))
                .await
                .expect("starting the task");
            Ok(())
        })
    }

    /// Creates container `id` whose task creation must fail; returns
    /// containerd's error, after removing the container and its snapshot.
    pub fn start_fails(
        containerd: &PrivateContainerd,
        id: &str,
        image: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> String {
        let this = Self::new(containerd, id);
        this.create(containerd, image, args, env, true)
            .expect_err("the task was created")
    }

    async fn remove_container(&self, channel: containerd_client::tonic::transport::Channel) {
        ContainersClient::new(channel.clone())
            .delete(with_namespace!(
                DeleteContainerRequest {
                    id: self.id.clone()
                },
                NAMESPACE
            ))
            .await
            .expect("deleting the container");
        let removed = SnapshotsClient::new(channel)
            .remove(with_namespace!(
                RemoveSnapshotRequest {
                    snapshotter: SNAPSHOTTER.into(),
                    key: self.id.clone()
                },
                NAMESPACE
            ))
            .await;
        // containerd's garbage collector, woken by the container's deletion,
        // may have removed the snapshot first (seen once on 1.6)
        match removed {
            Err(status) if status.code() != containerd_client::tonic::Code::NotFound => {
                panic!("removing the snapshot: {status:?}")
            }
            _ => {}
        }
    }

    /// SIGTERM, waits for the exit code, then deletes task, container and snapshot.
    pub fn stop(&self) -> u32 {
        self.block_on(async {
            let channel = containerd_client::connect(&self.socket).await.unwrap();
            let code = signal_and_wait(channel.clone(), &self.id, 15).await;
            TasksClient::new(channel.clone())
                .delete(with_namespace!(
                    DeleteTaskRequest {
                        container_id: self.id.clone()
                    },
                    NAMESPACE
                ))
                .await
                .expect("deleting the task");
            self.remove_container(channel).await;
            code
        })
    }

    pub fn output(&self) -> String {
        format!(
            "--- stdout\n{}--- stderr\n{}",
            std::fs::read_to_string(&self.stdout).unwrap_or_default(),
            std::fs::read_to_string(&self.stderr).unwrap_or_default()
        )
    }

    fn block_on<T>(&self, future: impl Future<Output = T>) -> T {
        block_on(future)
    }
}

fn block_on<T>(future: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// Sends `signal` to task `id` and waits for its exit code (Tasks.Wait).
async fn signal_and_wait(
    channel: containerd_client::tonic::transport::Channel,
    id: &str,
    signal: u32,
) -> u32 {
    let mut tasks = TasksClient::new(channel.clone());
    let wait = tasks.wait(with_namespace!(
        WaitRequest {
            container_id: id.to_string(),
            exec_id: String::new()
        },
        NAMESPACE
    ));
    let kill = KillRequest {
        container_id: id.to_string(),
        exec_id: String::new(),
        signal,
        all: false,
    };
    let mut killer = TasksClient::new(channel);
    let (status, _) = tokio::join!(wait, async {
        // give the wait call a moment to register before the signal
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        killer.kill(with_namespace!(kill, NAMESPACE)).await
    });
    status
        .expect("waiting for the task")
        .into_inner()
        .exit_status
}

/// Sends `signal` to task `id` and returns its exit code, or `None` if it
/// has not exited within `bound`.
pub fn signal_and_wait_for_exit(
    containerd: &PrivateContainerd,
    id: &str,
    signal: u32,
    bound: std::time::Duration,
) -> Option<u32> {
    block_on(async {
        let channel = containerd_client::connect(containerd.socket())
            .await
            .unwrap();
        tokio::time::timeout(bound, signal_and_wait(channel, id, signal))
            .await
            .ok()
    })
}

/// Tasks.Kill as CRI sends it, with containerd's whole answer (ctr prints
/// only the message, not the status code CRI decides by).
pub fn kill(
    containerd: &PrivateContainerd,
    id: &str,
    signal: u32,
) -> Result<(), containerd_client::tonic::Status> {
    block_on(async {
        let channel = containerd_client::connect(containerd.socket())
            .await
            .unwrap();
        let kill = KillRequest {
            container_id: id.to_string(),
            exec_id: String::new(),
            signal,
            all: false,
        };
        TasksClient::new(channel)
            .kill(with_namespace!(kill, NAMESPACE))
            .await
            .map(drop)
    })
}

/// ctr's default OCI spec, with our process and the host's network namespace.
fn default_spec(
    containerd: &PrivateContainerd,
    args: &[&str],
    env: &[(&str, &str)],
) -> serde_json::Value {
    let spec = containerd.ctr_ok(&["oci", "spec"]);
    let mut spec: serde_json::Value = serde_json::from_str(&spec).unwrap();
    spec["process"]["args"] = serde_json::json!(args);
    let mut vars =
        vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string()];
    vars.extend(env.iter().map(|(n, v)| format!("{n}={v}")));
    spec["process"]["env"] = serde_json::json!(vars);
    spec["root"]["path"] = "rootfs".into();
    let namespaces = spec["linux"]["namespaces"].as_array_mut().unwrap();
    namespaces.retain(|ns| ns["type"] != "network");
    spec
}
