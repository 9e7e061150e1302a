//! The kubelet stand-in: [`NodeAgent`] plays the kubelet (and the scheduler) of one node.
//!
//! No kubelet and no container runtime can run where the end-to-end tests run, so the agent
//! runs each Pod bound to its node as a host process: the Pod's first (and only) container, its
//! command `tern` mapped to the broker binary under test.
//!
//! Contract:
//! - **Node.** [`NodeAgent::start`] registers a `Node` that is `Ready` (address `10.a.b.1`,
//!   8 CPUs, 16Gi, 110 pods) and renews its `Lease` in `kube-node-lease` every 10 s.
//! - **Scheduling.** Every Pod without `spec.nodeName` (not being deleted, without scheduling
//!   gates) is bound to this node through `pods/binding`; no placement rule is consulted.
//! - **Sandbox.** Each Pod gets a network namespace with the lowest free address of
//!   `10.a.b.0/24` (see [`super::network`]), a private mount namespace (`unshare --mount`) in
//!   which every volume directory is bind-mounted on its `mountPath` (`readOnly` honoured), the
//!   agent's hosts file on `/etc/hosts`, and its own UTS namespace with the Pod's hostname.
//!   Mount points missing on the host are created and removed again by [`NodeAgent::stop`].
//! - **Volumes.** `configMap`, `secret`, `projected` (configMap, secret, downwardAPI,
//!   serviceAccountToken), `downwardAPI`, `emptyDir`, `persistentVolumeClaim` (a directory per
//!   claim that outlives the Pod, so a recreated StatefulSet Pod finds its data) and `hostPath`.
//!   File volumes are written like the kubelet's atomic writer (`..data` symlink swap) and kept
//!   in sync with their ConfigMaps and Secrets every second, so a broker watching its config
//!   sees changes. Other volume kinds, more than one container, init containers, a missing
//!   `command` or `hostNetwork` mark the Pod `Failed` with reason [`UNSUPPORTED_REASON`].
//! - **Environment.** `envFrom`, `value` (with `$(VAR)` expansion of earlier variables),
//!   `fieldRef`, `resourceFieldRef` (the quantity as written, else the node's capacity),
//!   `secretKeyRef` and `configMapKeyRef` (a missing required reference keeps the Pod `Pending`
//!   and is retried with backoff). `$(VAR)` in `command` and `args` is expanded as the kubelet
//!   does: `$$` escapes, unknown variables stay as written.
//! - **Probes.** `httpGet` and `tcpSocket` (against the Pod's address); `exec` and `grpc` count
//!   as success. A startup probe gates the others and restarts the container once
//!   `initialDelaySeconds + periodSeconds × failureThreshold` pass without a success; a failing
//!   liveness probe restarts it; readiness drives the `Ready` condition. Until their first
//!   success, startup and readiness probes are retried every second instead of every period,
//!   which makes Pods ready sooner without ever failing them sooner than the kubelet would.
//! - **Restarts.** A container that exits or fails its liveness probe is restarted with
//!   backoff 1 s, 2 s, 4 s … 10 s (reset after a minute of running); `restartCount` and
//!   `lastState` follow.
//! - **Status.** Phase, addresses, conditions and the container status are merge-patched
//!   through the status subresource whenever they change, never otherwise.
//! - **Deletion.** When a Pod gets a `deletionTimestamp`: its `preStop` hook (`exec` inside the
//!   Pod's namespaces through `nsenter`, `httpGet`, `tcpSocket` or `sleep`) within the grace
//!   period, then SIGTERM, then SIGKILL when the grace period (counted from when the deletion
//!   was seen) runs out; then the sandbox goes and the Pod object is deleted with grace period 0
//!   and a UID precondition. A Pod that vanishes from the API is killed at once.
//! - **Stop.** [`NodeAgent::stop`] stops every Pod (SIGTERM, SIGKILL after 10 s) without
//!   deleting Pod objects, and removes network namespaces, the bridge and the mount points it
//!   created. Dropping the agent without `stop` does the same synchronously, best effort.
//! - **Files.** Under `work_directory`: `hosts`, `pods/<ns>/<pod>/container.log` (stdout and
//!   stderr, appended across restarts), `pods/<ns>/<uid>/` (volumes and the start script) and
//!   `claims/<ns>/<claim>/`.
//!
//! Every task the agent starts belongs to its task tracker and stops with its cancellation
//! token; watches reconnect with kube's capped backoff; at most [`MAX_PODS`] Pods run at once.
//! Everything here needs root.
//!
//! Layout: `registration` (the Node and its Lease), `watch` (caches, binding, one supervisor per
//! Pod), `supervisor` (one Pod's run and restarts), `container` (preparing and starting it),
//! `termination` (preStop, signals, deletion), `status`, `probes`, `objects` (the ConfigMaps,
//! Secrets and token a Pod refers to), `hosts` (the hosts file), `shared` (what every task
//! shares), `pod_spec` (shape, environment, `$(VAR)`), `volumes` (what backs each volume, the
//! atomic writer) and `mounts` (bind mounts, mount points, the start script).

mod container;
#[cfg(test)]
mod fixtures;
mod hosts;
mod mounts;
mod objects;
mod pod_spec;
mod probes;
mod registration;
mod shared;
mod status;
mod supervisor;
mod termination;
mod volumes;
mod watch;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::io::{Read, Seek, SeekFrom};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::reflector;
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::network::{
    bridge_name, create_bridge, delete_bridge, render_hosts, write_in_place, AddressPool,
    NetworkError,
};

use registration::{register_node, renew_lease};
use shared::{Programs, Shared, State};
use watch::{reflect, watch_pods};

/// The most Pods the agent runs at once.
pub const MAX_PODS: usize = 64;
/// `status.reason` of Pods the agent can not run.
pub const UNSUPPORTED_REASON: &str = "UnsupportedByTernNodeAgent";
/// How long a Pod has between SIGTERM and SIGKILL when the agent stops.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long [`NodeAgent::stop`] waits for its tasks (Pods get [`STOP_GRACE`] plus the kill).
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one API call may take.
const API_TIMEOUT: Duration = Duration::from_secs(10);
const RESTART_BACKOFF_FIRST: Duration = Duration::from_secs(1);
const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(10);
/// The agent's own log lines kept for [`NodeAgent::pod_logs`].
const EVENT_LIMIT: usize = 256;
const LOG_TAIL_LINES: usize = 80;
const LOG_TAIL_BYTES: u64 = 64 * 1024;
/// The node's capacity, as reported and as `resourceFieldRef` defaults.
const NODE_CPU: &str = "8";
const NODE_MEMORY: &str = "16Gi";
const NODE_MEMORY_BYTES: &str = "17179869184";
const NODE_PODS: &str = "110";

/// Where and how the node runs Pods.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    /// The Node object's name, e.g. `tern-e2e-node`.
    pub node_name: String,
    /// The built `tern` binary; a container command `tern` runs it.
    pub broker_binary: PathBuf,
    /// Volumes, logs and the hosts file go here (a directory the caller owns).
    pub work_directory: PathBuf,
    /// Pods get `10.<a>.<b>.<n>/24`, the node `10.<a>.<b>.1`.
    pub network_prefix: [u8; 2],
    /// DNS suffix of Services, `cluster.local`.
    pub cluster_domain: String,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("{what}: {source}")]
    Api {
        what: String,
        source: Box<kube::Error>,
    },
    #[error("{what}: no answer within {API_TIMEOUT:?}")]
    ApiTimeout { what: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// The Pod asks for something the agent does not do; it is marked `Failed`.
    #[error("{0}")]
    Unsupported(String),
    /// The Pod's configuration can not be resolved now (a missing Secret key, say); retried.
    #[error("{0}")]
    Configuration(String),
    #[error("a blocking task failed: {0}")]
    Join(String),
}

impl NodeError {
    fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}

/// An API call bounded by [`API_TIMEOUT`], its error naming `what` was attempted.
async fn api_call<T>(
    what: impl FnOnce() -> String,
    call: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T, NodeError> {
    match tokio::time::timeout(API_TIMEOUT, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(source)) => Err(NodeError::Api {
            what: what(),
            source: Box::new(source),
        }),
        Err(_) => Err(NodeError::ApiTimeout { what: what() }),
    }
}

/// The API answered with HTTP status `code`.
fn is_api_status(error: &NodeError, code: u16) -> bool {
    matches!(error, NodeError::Api { source, .. }
        if matches!(source.as_ref(), kube::Error::Api(status) if status.code == code))
}

/// Stands in for the kubelet (and the scheduler) of one node; see the module docs.
pub struct NodeAgent {
    shared: Arc<Shared>,
    tasks: TaskTracker,
    stop: CancellationToken,
    stopped: bool,
}

impl std::fmt::Debug for NodeAgent {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("NodeAgent")
            .field("node_name", &self.shared.settings.node_name)
            .field("bridge", &self.shared.bridge)
            .finish_non_exhaustive()
    }
}

impl NodeAgent {
    /// Registers the Node object (Ready), creates the network, starts the watch loop task.
    pub async fn start(client: Client, settings: NodeSettings) -> Result<NodeAgent, NodeError> {
        let pods_directory = settings.work_directory.join("pods");
        std::fs::create_dir_all(&pods_directory).map_err(|error| {
            NodeError::io(format!("creating {}", pods_directory.display()), error)
        })?;
        let addresses = AddressPool::new(settings.network_prefix);
        let gateway = addresses.gateway();
        let bridge = bridge_name(settings.network_prefix);
        let hosts_path = settings.work_directory.join("hosts");
        write_in_place(&hosts_path, &render_hosts(&[]))
            .map_err(|error| NodeError::io(format!("writing {}", hosts_path.display()), error))?;
        let programs = Programs::find();
        {
            let bridge = bridge.clone();
            blocking(move || create_bridge(&bridge, gateway).map_err(NodeError::from)).await?;
        }
        if let Err(error) = register_node(&client, &settings, &addresses).await {
            let bridge = bridge.clone();
            let _ = blocking(move || delete_bridge(&bridge).map_err(NodeError::from)).await;
            return Err(error);
        }
        let (services, services_writer) = reflector::store::<Service>();
        let (config_maps, config_maps_writer) = reflector::store::<ConfigMap>();
        let (secrets, secrets_writer) = reflector::store::<Secret>();
        let shared = Arc::new(Shared {
            client: client.clone(),
            settings,
            bridge,
            gateway,
            hosts_path,
            programs,
            state: Mutex::new(State {
                pods: BTreeMap::new(),
                addresses,
                logs: BTreeMap::new(),
                created_paths: BTreeSet::new(),
                events: VecDeque::new(),
            }),
            hosts_written: Mutex::new(None),
            services,
            config_maps,
            secrets,
        });
        let tasks = TaskTracker::new();
        let stop = CancellationToken::new();
        tasks.spawn(reflect(
            Api::<Service>::all(client.clone()),
            services_writer,
            stop.clone(),
            Arc::clone(&shared),
            |shared: &Shared| shared.refresh_hosts(),
        ));
        tasks.spawn(reflect(
            Api::<ConfigMap>::all(client.clone()),
            config_maps_writer,
            stop.clone(),
            Arc::clone(&shared),
            |_: &Shared| {},
        ));
        tasks.spawn(reflect(
            Api::<Secret>::all(client.clone()),
            secrets_writer,
            stop.clone(),
            Arc::clone(&shared),
            |_: &Shared| {},
        ));
        tasks.spawn(renew_lease(Arc::clone(&shared), stop.clone()));
        tasks.spawn(watch_pods(Arc::clone(&shared), tasks.clone(), stop.clone()));
        shared.record(format!(
            "node {} ready on bridge {} ({})",
            shared.settings.node_name,
            shared.bridge,
            shared.state().addresses.network()
        ));
        Ok(NodeAgent {
            shared,
            tasks,
            stop,
            stopped: false,
        })
    }

    /// Logs of every pod run so far (name + last ~80 lines of each), then the agent's own log,
    /// for failure messages.
    pub fn pod_logs(&self) -> String {
        let (logs, events) = {
            let state = self.shared.state();
            (state.logs.clone(), state.events.clone())
        };
        let mut text = String::new();
        for ((namespace, name), path) in &logs {
            let _ = writeln!(
                text,
                "==== pod {namespace}/{name} ({}) ====",
                path.display()
            );
            match log_tail(path) {
                Ok(tail) => text.push_str(&tail),
                Err(error) => {
                    let _ = writeln!(text, "(unreadable: {error})");
                }
            }
        }
        let _ = writeln!(
            text,
            "==== node agent {} ====",
            self.shared.settings.node_name
        );
        for event in &events {
            let _ = writeln!(text, "{event}");
        }
        text
    }

    /// IP of a running pod, if any.
    ///
    /// A Pod keeps its address while its container restarts, until the Pod is gone.
    pub fn pod_ip(&self, namespace: &str, name: &str) -> Option<Ipv4Addr> {
        self.shared
            .state()
            .pods
            .values()
            .find(|pod| pod.namespace == namespace && pod.name == name)
            .map(|pod| pod.address)
    }

    /// Stops every pod (SIGTERM, then SIGKILL after 10 s), removes network namespaces, bridge,
    /// and mount-point dirs it created. Pod objects stay in the API.
    pub async fn stop(mut self) {
        self.stop.cancel();
        self.tasks.close();
        if tokio::time::timeout(STOP_TIMEOUT, self.tasks.wait())
            .await
            .is_err()
        {
            self.shared.record(format!(
                "tasks still running after {STOP_TIMEOUT:?}; killing"
            ));
        }
        let shared = Arc::clone(&self.shared);
        let _ = blocking(move || {
            shared.release_everything();
            Ok(())
        })
        .await;
        self.stopped = true;
    }
}

impl Drop for NodeAgent {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        self.stop.cancel();
        self.shared.release_everything();
    }
}

/// Runs blocking work (`ip`, file trees) off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, NodeError> + Send + 'static,
) -> Result<T, NodeError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| NodeError::Join(error.to_string()))?
}

/// The current time, as the API writes it.
fn now() -> Time {
    Time(Timestamp::now())
}

/// The last [`LOG_TAIL_LINES`] lines of the file at `path`.
fn log_tail(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let length = file.metadata()?.len();
    file.seek(SeekFrom::Start(length.saturating_sub(LOG_TAIL_BYTES)))?;
    let mut bytes = Vec::new();
    file.take(LOG_TAIL_BYTES).read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let mut tail = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n");
    tail.push('\n');
    Ok(tail)
}
