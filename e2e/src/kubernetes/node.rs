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

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::io::{Read, Seek, SeekFrom};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Component, Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    Binding, ConfigMap, Container, ContainerPort, ContainerState, ContainerStateRunning,
    ContainerStateTerminated, ContainerStateWaiting, ContainerStatus, HTTPGetAction, HostIP,
    KeyToPath, LifecycleHandler, Node, NodeSpec, ObjectFieldSelector, ObjectReference, Pod,
    PodCondition, PodIP, PodStatus, Probe, ResourceFieldSelector, Secret, Service, ServiceAccount,
    TCPSocketAction, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::network::{
    bridge_name, create_bridge, create_sandbox, delete_bridge, delete_sandbox, http_get_status,
    namespace_name, render_hosts, tcp_connect, write_in_place, AddressPool, HostEntry,
    NetworkError,
};

/// The most Pods the agent runs at once.
pub const MAX_PODS: usize = 64;
/// `status.reason` of Pods the agent can not run.
pub const UNSUPPORTED_REASON: &str = "UnsupportedByTernNodeAgent";
/// How long a Pod has between SIGTERM and SIGKILL when the agent stops.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long [`NodeAgent::stop`] waits for its tasks (Pods get [`STOP_GRACE`] plus the kill).
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a process may take to be reaped after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// How long one API call may take.
const API_TIMEOUT: Duration = Duration::from_secs(10);
const RESTART_BACKOFF_FIRST: Duration = Duration::from_secs(1);
const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A container that ran this long restarts with the first backoff again.
const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(60);
/// How often file volumes are compared with their ConfigMaps and Secrets (and a failed status
/// write is retried).
const REFRESH_INTERVAL: Duration = Duration::from_secs(1);
/// How often startup and readiness probes are retried until their first success.
const FAST_PROBE_INTERVAL: Duration = Duration::from_secs(1);
const LEASE_RENEW_INTERVAL: Duration = Duration::from_secs(10);
const LEASE_DURATION_SECONDS: i32 = 40;
/// Attempts at deleting a Pod object once its process is gone.
const DELETE_ATTEMPTS: u32 = 5;
/// The agent's own log lines kept for [`NodeAgent::pod_logs`].
const EVENT_LIMIT: usize = 256;
const LOG_TAIL_LINES: usize = 80;
const LOG_TAIL_BYTES: u64 = 64 * 1024;
/// Output of a `preStop` exec hook kept in the agent's log.
const HOOK_OUTPUT_LIMIT: usize = 1024;
const DEFAULT_FILE_MODE: u32 = 0o644;
const DEFAULT_GRACE_SECONDS: i64 = 30;
/// What the kubelet's container runtime would put in `PATH`.
const CONTAINER_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The node's capacity, as reported and as `resourceFieldRef` defaults.
const NODE_CPU: &str = "8";
const NODE_MEMORY: &str = "16Gi";
const NODE_MEMORY_BYTES: &str = "17179869184";
const NODE_PODS: &str = "110";
/// The container command that means the broker under test.
const BROKER_COMMAND: &str = "tern";

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

/// Absolute paths of the programs the agent runs, found once (a container's `PATH` must not
/// change which `ip` runs).
#[derive(Debug)]
struct Programs {
    ip: PathBuf,
    unshare: PathBuf,
    nsenter: PathBuf,
}

impl Programs {
    fn find() -> Self {
        Self {
            ip: find_program("ip"),
            unshare: find_program("unshare"),
            nsenter: find_program("nsenter"),
        }
    }
}

fn find_program(name: &str) -> PathBuf {
    [
        "/usr/sbin",
        "/sbin",
        "/usr/bin",
        "/bin",
        "/usr/local/sbin",
        "/usr/local/bin",
    ]
    .iter()
    .map(|directory| Path::new(directory).join(name))
    .find(|path| path.is_file())
    .unwrap_or_else(|| PathBuf::from(name))
}

/// What every task of the agent shares. Lock order: `state` before `hosts_written`; neither is
/// held across an `.await`.
struct Shared {
    client: Client,
    settings: NodeSettings,
    bridge: String,
    gateway: Ipv4Addr,
    hosts_path: PathBuf,
    programs: Programs,
    state: Mutex<State>,
    /// The hosts file content last written.
    hosts_written: Mutex<Option<String>>,
    services: Store<Service>,
    config_maps: Store<ConfigMap>,
    secrets: Store<Secret>,
}

struct State {
    /// Pods with a sandbox, by UID.
    pods: BTreeMap<String, PodRecord>,
    addresses: AddressPool,
    /// Log file of every Pod run so far, by namespace and name.
    logs: BTreeMap<(String, String), PathBuf>,
    /// Mount points (directories and files) the agent created on the host.
    created_paths: BTreeSet<PathBuf>,
    /// The agent's own log, newest last.
    events: VecDeque<String>,
}

/// A Pod with a sandbox: what name resolution and cleanup need.
#[derive(Debug, Clone)]
struct PodRecord {
    namespace: String,
    name: String,
    hostname: String,
    subdomain: Option<String>,
    labels: BTreeMap<String, String>,
    address: Ipv4Addr,
    network_namespace: String,
    pid: Option<u32>,
    ready: bool,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a line to the agent's own log.
    fn record(&self, message: String) {
        let line = format!("{} {message}", Timestamp::now());
        let mut state = self.state();
        if state.events.len() >= EVENT_LIMIT {
            state.events.pop_front();
        }
        state.events.push_back(line);
    }

    fn update_pod(&self, uid: &str, change: impl FnOnce(&mut PodRecord)) {
        if let Some(record) = self.state().pods.get_mut(uid) {
            change(record);
        }
    }

    /// Rewrites the hosts file (in place) when the Pods or Services it lists have changed.
    fn refresh_hosts(&self) {
        let pods: Vec<PodAddress> = self
            .state()
            .pods
            .values()
            .map(|record| PodAddress {
                namespace: record.namespace.clone(),
                name: record.name.clone(),
                hostname: record.hostname.clone(),
                subdomain: record.subdomain.clone(),
                labels: record.labels.clone(),
                address: record.address,
                ready: record.ready,
            })
            .collect();
        let services = self.services.state();
        let content = render_hosts(&host_entries(
            &pods,
            &services,
            &self.settings.cluster_domain,
        ));
        let mut written = self
            .hosts_written
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if written.as_deref() == Some(content.as_str()) {
            return;
        }
        match write_in_place(&self.hosts_path, &content) {
            Ok(()) => *written = Some(content),
            Err(error) => {
                drop(written);
                self.record(format!("writing {}: {error}", self.hosts_path.display()));
            }
        }
    }

    /// A ConfigMap or Secret: from the watch cache, else from the API (`None`: it does not
    /// exist).
    async fn lookup<K>(
        &self,
        store: &Store<K>,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<K>>, NodeError>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug
            + 'static,
    {
        if let Some(found) = store.get(&ObjectRef::new(name).within(namespace)) {
            return Ok(Some(found));
        }
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        let found = api_call(
            || format!("reading {} {namespace}/{name}", K::kind(&())),
            api.get_opt(name),
        )
        .await?;
        Ok(found.map(Arc::new))
    }

    /// Kills every process still known, deletes every network namespace and the bridge, and
    /// removes the mount points the agent created (only if empty). Synchronous, best effort.
    fn release_everything(&self) {
        let (records, created) = {
            let mut state = self.state();
            let records: Vec<PodRecord> = std::mem::take(&mut state.pods).into_values().collect();
            for record in &records {
                state.addresses.release(record.address);
            }
            (records, std::mem::take(&mut state.created_paths))
        };
        for record in &records {
            if let Some(pid) = record.pid {
                send_signal(pid, nix::sys::signal::Signal::SIGKILL);
            }
        }
        for record in &records {
            let _ = delete_sandbox(&record.network_namespace);
        }
        let _ = delete_bridge(&self.bridge);
        remove_created_paths(created);
        self.refresh_hosts();
    }
}

/// Removes the mount points the agent created, deepest first; non-empty ones stay.
fn remove_created_paths(created: BTreeSet<PathBuf>) {
    let mut created: Vec<PathBuf> = created.into_iter().collect();
    created.sort_by_key(|path| std::cmp::Reverse(path.components().count()));
    for path in created {
        match std::fs::symlink_metadata(&path) {
            Ok(metadata) if metadata.is_dir() => {
                let _ = std::fs::remove_dir(&path);
            }
            Ok(metadata) if metadata.is_file() && metadata.len() == 0 => {
                let _ = std::fs::remove_file(&path);
            }
            _ => {}
        }
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

// ---- the Node and its Lease ---------------------------------------------------------------

fn now() -> Time {
    Time(Timestamp::now())
}

fn architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

async fn register_node(
    client: &Client,
    settings: &NodeSettings,
    addresses: &AddressPool,
) -> Result<(), NodeError> {
    let name = settings.node_name.as_str();
    let api: Api<Node> = Api::all(client.clone());
    let node = Node {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(BTreeMap::from([
                ("kubernetes.io/hostname".to_string(), name.to_string()),
                ("kubernetes.io/os".to_string(), "linux".to_string()),
                ("kubernetes.io/arch".to_string(), architecture().to_string()),
            ])),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            pod_cidr: Some(addresses.network()),
            pod_cidrs: Some(vec![addresses.network()]),
            ..NodeSpec::default()
        }),
        status: None,
    };
    let created = api_call(
        || format!("creating node {name}"),
        api.create(&PostParams::default(), &node),
    )
    .await;
    match created {
        Ok(_) => {}
        Err(error) if is_api_status(&error, 409) => {}
        Err(error) => return Err(error),
    }
    let time = serde_json::to_value(now()).unwrap_or(Value::Null);
    let condition = |kind: &str, status: &str, reason: &str, message: &str| {
        json!({
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": time,
            "lastTransitionTime": time,
        })
    };
    let capacity = json!({
        "cpu": NODE_CPU,
        "memory": NODE_MEMORY,
        "pods": NODE_PODS,
        "ephemeral-storage": "100Gi",
    });
    let status = json!({
        "status": {
            "conditions": [
                condition("Ready", "True", "KubeletReady", "the tern node agent is ready"),
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "no pressure"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "no pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "no pressure"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": addresses.gateway().to_string()},
                {"type": "Hostname", "address": name},
            ],
            "capacity": capacity,
            "allocatable": capacity,
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": architecture(),
                "operatingSystem": "linux",
                "kubeletVersion": "v1.33.0-tern",
                "kubeProxyVersion": "",
                "containerRuntimeVersion": concat!("tern://", env!("CARGO_PKG_VERSION")),
                "bootID": "",
                "kernelVersion": "",
                "machineID": "",
                "osImage": "tern node agent",
                "systemUUID": "",
            },
        }
    });
    api_call(
        || format!("setting the status of node {name}"),
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)),
    )
    .await?;
    Ok(())
}

/// Renews the node's Lease every [`LEASE_RENEW_INTERVAL`] until `stop`.
async fn renew_lease(shared: Arc<Shared>, stop: CancellationToken) {
    let name = shared.settings.node_name.clone();
    let api: Api<Lease> = Api::namespaced(shared.client.clone(), "kube-node-lease");
    loop {
        let renew = json!({
            "spec": {
                "holderIdentity": name,
                "leaseDurationSeconds": LEASE_DURATION_SECONDS,
                "renewTime": MicroTime(Timestamp::now()),
            }
        });
        let patched = api_call(
            || format!("renewing lease {name}"),
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&renew)),
        )
        .await;
        let result = match patched {
            Err(error) if is_api_status(&error, 404) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        namespace: Some("kube-node-lease".to_string()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(name.clone()),
                        lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
                        renew_time: Some(MicroTime(Timestamp::now())),
                        ..LeaseSpec::default()
                    }),
                };
                api_call(
                    || format!("creating lease {name}"),
                    api.create(&PostParams::default(), &lease),
                )
                .await
                .map(|_| ())
            }
            other => other.map(|_| ()),
        };
        if let Err(error) = result {
            shared.record(error.to_string());
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(LEASE_RENEW_INTERVAL) => {}
        }
    }
}

// ---- watches --------------------------------------------------------------------------------

/// Keeps `writer`'s store in sync with the cluster until `stop`; `changed` runs after each
/// event. Errors are logged; kube's watcher backoff (capped) spaces the reconnects.
async fn reflect<K>(
    api: Api<K>,
    writer: reflector::store::Writer<K>,
    stop: CancellationToken,
    shared: Arc<Shared>,
    changed: impl Fn(&Shared) + Send + 'static,
) where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let stream =
        reflector::reflector(writer, watcher(api, watcher::Config::default())).default_backoff();
    let mut stream = std::pin::pin!(stream);
    loop {
        let item = tokio::select! {
            () = stop.cancelled() => return,
            item = stream.next() => item,
        };
        match item {
            None => return,
            Some(Ok(_)) => changed(&shared),
            Some(Err(error)) => shared.record(format!("watching {}: {error}", K::plural(&()))),
        }
    }
}

/// What the Pod watch keeps of each running supervisor.
struct SupervisorHandle {
    updates: watch::Sender<Arc<Pod>>,
    /// Cancelled when the Pod is gone from the API.
    removed: CancellationToken,
}

/// Binds unscheduled Pods to this node and runs a [`PodSupervisor`] for each Pod bound to it.
async fn watch_pods(shared: Arc<Shared>, tasks: TaskTracker, stop: CancellationToken) {
    let api: Api<Pod> = Api::all(shared.client.clone());
    let stream = watcher(api, watcher::Config::default()).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut handles: HashMap<String, SupervisorHandle> = HashMap::new();
    let mut listed: HashSet<String> = HashSet::new();
    loop {
        let item = tokio::select! {
            () = stop.cancelled() => return,
            item = stream.next() => item,
        };
        let event = match item {
            None => return,
            Some(Ok(event)) => event,
            Some(Err(error)) => {
                shared.record(format!("watching pods: {error}"));
                continue;
            }
        };
        match event {
            watcher::Event::Init => listed.clear(),
            watcher::Event::InitApply(pod) => {
                if let Some(uid) = pod.metadata.uid.clone() {
                    listed.insert(uid);
                }
                apply_pod(&shared, &tasks, &stop, &mut handles, pod).await;
            }
            watcher::Event::InitDone => handles.retain(|uid, handle| {
                let present = listed.contains(uid);
                if !present {
                    handle.removed.cancel();
                }
                present
            }),
            watcher::Event::Apply(pod) => {
                apply_pod(&shared, &tasks, &stop, &mut handles, pod).await;
            }
            watcher::Event::Delete(pod) => {
                if let Some(handle) = pod
                    .metadata
                    .uid
                    .as_ref()
                    .and_then(|uid| handles.remove(uid))
                {
                    handle.removed.cancel();
                }
            }
        }
    }
}

async fn apply_pod(
    shared: &Arc<Shared>,
    tasks: &TaskTracker,
    stop: &CancellationToken,
    handles: &mut HashMap<String, SupervisorHandle>,
    pod: Pod,
) {
    let Some(uid) = pod.metadata.uid.clone() else {
        return;
    };
    let spec = pod.spec.as_ref();
    let node_name = spec
        .and_then(|spec| spec.node_name.as_deref())
        .unwrap_or("");
    if node_name.is_empty() {
        let gated = spec
            .and_then(|spec| spec.scheduling_gates.as_ref())
            .is_some_and(|gates| !gates.is_empty());
        if pod.metadata.deletion_timestamp.is_none() && !gated {
            bind(shared, &pod, &uid).await;
        }
        return;
    }
    if node_name != shared.settings.node_name {
        return;
    }
    if let Some(handle) = handles.get(&uid) {
        if !handle.updates.is_closed() {
            handle.updates.send_replace(Arc::new(pod));
            return;
        }
        handles.remove(&uid);
    }
    let phase = pod
        .status
        .as_ref()
        .and_then(|status| status.phase.as_deref());
    let terminal = matches!(phase, Some("Succeeded" | "Failed"));
    if terminal && pod.metadata.deletion_timestamp.is_none() {
        return;
    }
    handles.retain(|_, handle| !handle.updates.is_closed());
    if handles.len() >= MAX_PODS {
        shared.record(format!(
            "not running pod {}: {MAX_PODS} pods already run on this node",
            pod_label(&pod)
        ));
        return;
    }
    let (updates, receiver) = watch::channel(Arc::new(pod));
    let removed = CancellationToken::new();
    let supervisor = PodSupervisor::new(
        Arc::clone(shared),
        receiver,
        removed.clone(),
        stop.child_token(),
    );
    handles.insert(uid, SupervisorHandle { updates, removed });
    tasks.spawn(supervisor.run());
}

/// Binds `pod` to this node, as the scheduler would.
async fn bind(shared: &Shared, pod: &Pod, uid: &str) {
    let (Some(namespace), Some(name)) = (&pod.metadata.namespace, &pod.metadata.name) else {
        return;
    };
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.clone()),
            uid: Some(uid.to_string()),
            ..ObjectMeta::default()
        },
        target: ObjectReference {
            api_version: Some("v1".to_string()),
            kind: Some("Node".to_string()),
            name: Some(shared.settings.node_name.clone()),
            ..ObjectReference::default()
        },
    };
    let api: Api<Pod> = Api::namespaced(shared.client.clone(), namespace);
    let bound = api_call(
        || format!("binding pod {namespace}/{name}"),
        api.create_subresource::<_, Value>("binding", name, &PostParams::default(), &binding),
    )
    .await;
    match bound {
        Ok(_) => shared.record(format!(
            "bound pod {namespace}/{name} to {}",
            shared.settings.node_name
        )),
        // Bound already, or gone: the watch tells what happened.
        Err(error) if is_api_status(&error, 409) || is_api_status(&error, 404) => {}
        Err(error) => shared.record(error.to_string()),
    }
}

fn pod_label(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

// ---- one Pod ------------------------------------------------------------------------------

/// Why a Pod's run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interrupt {
    /// The Pod has a `deletionTimestamp`: terminate gracefully, then delete the object.
    Deleting,
    /// The Pod is gone from the API: kill at once.
    Removed,
    /// The agent stops: terminate with [`STOP_GRACE`], keep the object.
    Stopping,
}

/// How one run of the container ended.
enum RunEnd {
    Exited(ExitStatus),
    Unhealthy(String),
    Interrupted(Interrupt),
}

/// The Pod's sandbox: its address and network namespace.
#[derive(Debug, Clone)]
struct Sandbox {
    address: Ipv4Addr,
    network_namespace: String,
}

/// Everything needed to (re)start the container, resolved once per Pod.
struct Prepared {
    container: Container,
    program: String,
    arguments: Vec<String>,
    environment: Vec<(String, String)>,
    script: PathBuf,
    log_path: PathBuf,
    /// File volumes and what was last written into them.
    file_volumes: Vec<FileVolume>,
    objects: Objects,
}

struct FileVolume {
    volume: Volume,
    directory: PathBuf,
    files: Files,
    generation: u64,
}

/// A started container process and the probes watching it.
struct RunningContainer {
    child: Child,
    pid: u32,
    started: Instant,
    started_at: Time,
    probe_events: mpsc::Receiver<ProbeEvent>,
    /// Dropping the set aborts the probes.
    _probes: JoinSet<()>,
}

/// Runs one Pod from its first sighting to its deletion (or the agent's stop).
struct PodSupervisor {
    shared: Arc<Shared>,
    pod: Arc<Pod>,
    uid: String,
    namespace: String,
    name: String,
    updates: watch::Receiver<Arc<Pod>>,
    updates_open: bool,
    removed: CancellationToken,
    stop: CancellationToken,
    sandbox: Option<Sandbox>,
    status: StatusTracker,
    /// When the deletion was first seen: the grace period counts from here.
    deletion_seen: Option<Instant>,
    /// A status write failed: retry on the next refresh.
    status_dirty: bool,
}

impl PodSupervisor {
    fn new(
        shared: Arc<Shared>,
        updates: watch::Receiver<Arc<Pod>>,
        removed: CancellationToken,
        stop: CancellationToken,
    ) -> Self {
        let pod = Arc::clone(&updates.borrow());
        let metadata = &pod.metadata;
        Self {
            uid: metadata.uid.clone().unwrap_or_default(),
            namespace: metadata.namespace.clone().unwrap_or_default(),
            name: metadata.name.clone().unwrap_or_default(),
            shared,
            pod,
            updates,
            updates_open: true,
            removed,
            stop,
            sandbox: None,
            status: StatusTracker::default(),
            deletion_seen: None,
            status_dirty: false,
        }
    }

    fn label(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    fn record(&self, message: impl std::fmt::Display) {
        self.shared
            .record(format!("pod {}: {message}", self.label()));
    }

    fn is_deleting(&mut self) -> bool {
        let deleting = self.pod.metadata.deletion_timestamp.is_some();
        if deleting && self.deletion_seen.is_none() {
            self.deletion_seen = Some(Instant::now());
        }
        deleting
    }

    /// The grace period the API gave the deletion (else the Pod's, else 30 s).
    fn grace_period(&self) -> Duration {
        let seconds = self
            .pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| {
                self.pod
                    .spec
                    .as_ref()
                    .and_then(|spec| spec.termination_grace_period_seconds)
            })
            .unwrap_or(DEFAULT_GRACE_SECONDS);
        Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
    }

    async fn run(mut self) {
        let (interrupt, container) = self.drive().await;
        self.finish(interrupt, container).await;
    }

    /// Prepares and runs the Pod until something interrupts it.
    async fn drive(&mut self) -> (Interrupt, Option<RunningContainer>) {
        if self.is_deleting() {
            return (Interrupt::Deleting, None);
        }
        let container = match supported_container(&self.pod) {
            Ok(container) => container,
            Err(error) => return (self.fail(error.to_string()).await, None),
        };
        if let Err(error) = self.create_sandbox().await {
            return (self.fail(error.to_string()).await, None);
        }
        let mut backoff = RESTART_BACKOFF_FIRST;
        let mut prepared = loop {
            match self.prepare(&container).await {
                Ok(prepared) => break prepared,
                Err(NodeError::Unsupported(reason)) => {
                    return (self.fail(reason).await, None);
                }
                Err(error) => {
                    self.record(format_args!("not ready to start: {error}"));
                    self.status.waiting =
                        Some(("CreateContainerConfigError".to_string(), error.to_string()));
                    self.publish_status().await;
                    if let Some(interrupt) = self.pause(backoff).await {
                        return (interrupt, None);
                    }
                    backoff = (backoff * 2).min(RESTART_BACKOFF_MAX);
                }
            }
        };
        backoff = RESTART_BACKOFF_FIRST;
        loop {
            let mut running = match self.start_container(&prepared) {
                Ok(running) => running,
                Err(error) => {
                    self.record(format_args!("starting the container: {error}"));
                    self.status.waiting =
                        Some(("CreateContainerError".to_string(), error.to_string()));
                    self.publish_status().await;
                    if let Some(interrupt) = self.pause(backoff).await {
                        return (interrupt, None);
                    }
                    backoff = (backoff * 2).min(RESTART_BACKOFF_MAX);
                    continue;
                }
            };
            self.publish_status().await;
            let end = self.supervise(&mut running, &mut prepared).await;
            let exit = match end {
                RunEnd::Interrupted(interrupt) => {
                    return (interrupt, Some(running));
                }
                RunEnd::Exited(exit) => {
                    self.record(format_args!("container exited ({exit}); restarting"));
                    exit
                }
                RunEnd::Unhealthy(reason) => {
                    self.record(format_args!("{reason}; restarting the container"));
                    match self.terminate(&mut running, STOP_GRACE, false).await {
                        Ok(exit) => exit,
                        Err(interrupt) => return (interrupt, Some(running)),
                    }
                }
            };
            self.container_stopped(&running, exit);
            if running.started.elapsed() >= BACKOFF_RESET_AFTER {
                backoff = RESTART_BACKOFF_FIRST;
            }
            drop(running);
            self.status.restart_count += 1;
            self.status.waiting = Some((
                "CrashLoopBackOff".to_string(),
                format!("back-off {backoff:?} restarting the container"),
            ));
            self.publish_status().await;
            if let Some(interrupt) = self.pause(backoff).await {
                return (interrupt, None);
            }
            backoff = (backoff * 2).min(RESTART_BACKOFF_MAX);
        }
    }

    /// Marks the Pod `Failed` (it can not run here) and waits for its end.
    async fn fail(&mut self, reason: String) -> Interrupt {
        self.record(format_args!("failed: {reason}"));
        self.status.failure = Some(reason);
        self.publish_status().await;
        loop {
            if let Some(interrupt) = self.pause(Duration::from_secs(3600)).await {
                return interrupt;
            }
        }
    }

    /// Waits for `duration` unless the Pod is deleted or removed or the agent stops first.
    async fn pause(&mut self, duration: Duration) -> Option<Interrupt> {
        let deadline = Instant::now() + duration;
        let mut refresh = tokio::time::interval(REFRESH_INTERVAL);
        loop {
            tokio::select! {
                biased;
                () = self.stop.cancelled() => return Some(Interrupt::Stopping),
                () = self.removed.cancelled() => return Some(Interrupt::Removed),
                changed = self.updates.changed(), if self.updates_open => {
                    if let Some(interrupt) = self.take_update(changed) {
                        return Some(interrupt);
                    }
                }
                () = tokio::time::sleep_until(deadline) => return None,
                _ = refresh.tick() => {
                    if self.status_dirty {
                        self.publish_status().await;
                    }
                }
            }
        }
    }

    fn take_update(&mut self, changed: Result<(), watch::error::RecvError>) -> Option<Interrupt> {
        match changed {
            Ok(()) => {
                self.pod = Arc::clone(&self.updates.borrow_and_update());
                self.is_deleting().then_some(Interrupt::Deleting)
            }
            Err(_) => {
                // The Pod watch has ended: only the stop token can end this Pod now.
                self.updates_open = false;
                None
            }
        }
    }

    async fn create_sandbox(&mut self) -> Result<(), NodeError> {
        let address = self.shared.state().addresses.allocate();
        let Some(address) = address else {
            return Err(NodeError::Unsupported(format!(
                "no free pod address left in {}",
                self.shared.state().addresses.network()
            )));
        };
        let network_namespace = namespace_name(&self.uid);
        let spec = self.pod.spec.clone().unwrap_or_default();
        self.shared.state().pods.insert(
            self.uid.clone(),
            PodRecord {
                namespace: self.namespace.clone(),
                name: self.name.clone(),
                hostname: pod_hostname(&self.pod),
                subdomain: spec.subdomain.filter(|subdomain| !subdomain.is_empty()),
                labels: self.pod.metadata.labels.clone().unwrap_or_default(),
                address,
                network_namespace: network_namespace.clone(),
                pid: None,
                ready: false,
            },
        );
        self.sandbox = Some(Sandbox {
            address,
            network_namespace: network_namespace.clone(),
        });
        self.status.address = Some(address);
        let bridge = self.shared.bridge.clone();
        let gateway = self.shared.gateway;
        blocking(move || {
            create_sandbox(&network_namespace, &bridge, address, gateway).map_err(NodeError::from)
        })
        .await?;
        self.shared.refresh_hosts();
        Ok(())
    }

    fn pod_directory(&self) -> PathBuf {
        self.shared
            .settings
            .work_directory
            .join("pods")
            .join(&self.namespace)
            .join(&self.uid)
    }

    /// Resolves the environment, materialises the volumes and writes the start script.
    async fn prepare(&mut self, container: &Container) -> Result<Prepared, NodeError> {
        let Some(sandbox) = self.sandbox.clone() else {
            return Err(NodeError::Configuration(
                "the pod has no sandbox".to_string(),
            ));
        };
        let objects = self.fetch_objects(container).await?;
        let facts = PodFacts {
            pod: &self.pod,
            address: sandbox.address,
            host: self.shared.gateway,
            node_name: &self.shared.settings.node_name,
        };
        let environment = resolve_environment(&facts, container, &objects)?;
        let variables: HashMap<&str, &str> = environment
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        let mut command_line: Vec<String> = container
            .command
            .iter()
            .flatten()
            .chain(container.args.iter().flatten())
            .map(|word| expand(word, &variables))
            .collect();
        if command_line.is_empty() {
            return Err(NodeError::Unsupported(
                "the container has no command".to_string(),
            ));
        }
        let program = command_line.remove(0);
        let program = self.map_program(&program);
        let pod_directory = self.pod_directory();
        let volumes_directory = pod_directory.join("volumes");
        let mut file_volumes = Vec::new();
        let mut volume_paths: HashMap<String, PathBuf> = HashMap::new();
        for volume in self
            .pod
            .spec
            .iter()
            .flat_map(|spec| spec.volumes.iter().flatten())
        {
            let path = match volume_backing(volume, &facts, &objects)? {
                Backing::Scratch => volumes_directory.join(&volume.name),
                Backing::Claim(claim) => self
                    .shared
                    .settings
                    .work_directory
                    .join("claims")
                    .join(&self.namespace)
                    .join(claim),
                Backing::Host(path) => path,
                Backing::Files(files) => {
                    let directory = volumes_directory.join(&volume.name);
                    let target = directory.clone();
                    let written = files.clone();
                    blocking(move || {
                        write_files(&target, &written, 1).map_err(|error| {
                            NodeError::io(format!("writing volume {}", target.display()), error)
                        })
                    })
                    .await?;
                    file_volumes.push(FileVolume {
                        volume: volume.clone(),
                        directory: directory.clone(),
                        files,
                        generation: 1,
                    });
                    directory
                }
            };
            std::fs::create_dir_all(&path)
                .map_err(|error| NodeError::io(format!("creating {}", path.display()), error))?;
            volume_paths.insert(volume.name.clone(), path);
        }
        let mounts = plan_mounts(container, &volume_paths, &variables)?;
        self.create_mount_points(&mounts)?;
        let script = render_start_script(
            &mounts,
            &self.shared.hosts_path,
            &pod_hostname(&self.pod),
            container.working_dir.as_deref(),
        );
        let script_path = pod_directory.join("start.sh");
        std::fs::write(&script_path, script)
            .map_err(|error| NodeError::io(format!("writing {}", script_path.display()), error))?;
        let log_path = self
            .shared
            .settings
            .work_directory
            .join("pods")
            .join(&self.namespace)
            .join(&self.name)
            .join("container.log");
        if let Some(parent) = log_path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|error| NodeError::io(format!("creating {}", parent.display()), error))?;
        }
        self.shared.state().logs.insert(
            (self.namespace.clone(), self.name.clone()),
            log_path.clone(),
        );
        Ok(Prepared {
            container: container.clone(),
            program,
            arguments: command_line,
            environment,
            script: script_path,
            log_path,
            file_volumes,
            objects,
        })
    }

    /// `tern` is the broker under test; anything else runs as named.
    fn map_program(&self, program: &str) -> String {
        if program == BROKER_COMMAND {
            self.shared.settings.broker_binary.display().to_string()
        } else {
            program.to_string()
        }
    }

    /// The ConfigMaps and Secrets the Pod refers to (absent ones left out), and a token when a
    /// projected volume asks for one.
    async fn fetch_objects(&self, container: &Container) -> Result<Objects, NodeError> {
        let references = references(&self.pod, container);
        let mut objects = Objects::default();
        for name in &references.config_maps {
            let store = &self.shared.config_maps;
            if let Some(found) = self.shared.lookup(store, &self.namespace, name).await? {
                objects.config_maps.insert(name.clone(), found);
            }
        }
        for name in &references.secrets {
            let store = &self.shared.secrets;
            if let Some(found) = self.shared.lookup(store, &self.namespace, name).await? {
                objects.secrets.insert(name.clone(), found);
            }
        }
        if let Some(projection) = &references.token {
            let account = self
                .pod
                .spec
                .as_ref()
                .and_then(|spec| spec.service_account_name.clone())
                .unwrap_or_else(|| "default".to_string());
            let request = TokenRequest {
                spec: TokenRequestSpec {
                    audiences: projection.audience.iter().cloned().collect(),
                    expiration_seconds: projection.expiration_seconds,
                    bound_object_ref: None,
                },
                ..TokenRequest::default()
            };
            let api: Api<ServiceAccount> =
                Api::namespaced(self.shared.client.clone(), &self.namespace);
            let response = api_call(
                || {
                    format!(
                        "requesting a token for service account {}/{account}",
                        self.namespace
                    )
                },
                api.create_token_request(&account, &PostParams::default(), &request),
            )
            .await?;
            objects.service_account_token = response.status.map(|status| status.token);
        }
        Ok(objects)
    }

    /// Creates the mount points missing on the host, remembering them for [`NodeAgent::stop`].
    fn create_mount_points(&self, mounts: &[PlannedMount]) -> Result<(), NodeError> {
        let mut created = Vec::new();
        let result = mounts.iter().try_for_each(|mount| {
            create_mount_point(Path::new(&mount.target), mount.is_file, &mut created).map_err(
                |error| NodeError::io(format!("creating mount point {}", mount.target), error),
            )
        });
        self.shared.state().created_paths.extend(created);
        result
    }

    fn start_container(&mut self, prepared: &Prepared) -> Result<RunningContainer, NodeError> {
        let Some(sandbox) = self.sandbox.clone() else {
            return Err(NodeError::Configuration(
                "the pod has no sandbox".to_string(),
            ));
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&prepared.log_path)
            .map_err(|error| {
                NodeError::io(format!("opening {}", prepared.log_path.display()), error)
            })?;
        let error_log = log.try_clone().map_err(|error| {
            NodeError::io(format!("opening {}", prepared.log_path.display()), error)
        })?;
        let programs = &self.shared.programs;
        let mut command = Command::new(&programs.ip);
        command
            .arg("netns")
            .arg("exec")
            .arg(&sandbox.network_namespace)
            .arg(&programs.unshare)
            .args([
                "--mount",
                "--uts",
                "--propagation",
                "private",
                "--",
                "/bin/sh",
            ])
            .arg(&prepared.script)
            .arg(&prepared.program)
            .args(&prepared.arguments)
            .env_clear()
            .envs(base_environment(&pod_hostname(&self.pod)))
            .envs(
                prepared
                    .environment
                    .iter()
                    .map(|(name, value)| (name, value)),
            )
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(error_log))
            .kill_on_drop(true);
        let child = command
            .spawn()
            .map_err(|error| NodeError::io(format!("spawning {}", programs.ip.display()), error))?;
        let Some(pid) = child.id() else {
            return Err(NodeError::Configuration(
                "the container exited before its pid was known".to_string(),
            ));
        };
        let started_at = now();
        self.record(format_args!(
            "started {} (pid {pid}, address {})",
            prepared.program, sandbox.address
        ));
        self.shared.update_pod(&self.uid, |record| {
            record.pid = Some(pid);
            record.ready = false;
        });
        self.status.start_time.get_or_insert_with(now);
        self.status.pid = Some(pid);
        self.status.running_since = Some(started_at.clone());
        self.status.started = false;
        self.status.ready = false;
        self.status.waiting = None;
        let (sender, probe_events) = mpsc::channel(8);
        let mut probes = JoinSet::new();
        probes.spawn(run_probes(
            prepared.container.clone(),
            sandbox.address,
            sender,
        ));
        Ok(RunningContainer {
            child,
            pid,
            started: Instant::now(),
            started_at,
            probe_events,
            _probes: probes,
        })
    }

    /// Watches the running container until it exits, fails a probe, or the Pod's run is
    /// interrupted.
    async fn supervise(
        &mut self,
        running: &mut RunningContainer,
        prepared: &mut Prepared,
    ) -> RunEnd {
        let mut refresh = tokio::time::interval(REFRESH_INTERVAL);
        loop {
            tokio::select! {
                biased;
                () = self.stop.cancelled() => return RunEnd::Interrupted(Interrupt::Stopping),
                () = self.removed.cancelled() => return RunEnd::Interrupted(Interrupt::Removed),
                changed = self.updates.changed(), if self.updates_open => {
                    if let Some(interrupt) = self.take_update(changed) {
                        return RunEnd::Interrupted(interrupt);
                    }
                }
                exit = running.child.wait() => {
                    return RunEnd::Exited(exit.unwrap_or_else(|_| ExitStatus::from_raw(255 << 8)));
                }
                Some(event) = running.probe_events.recv() => match event {
                    ProbeEvent::Started => self.status.started = true,
                    ProbeEvent::Ready(ready) => {
                        self.status.ready = ready;
                        self.shared.update_pod(&self.uid, |record| record.ready = ready);
                        self.shared.refresh_hosts();
                        self.record(format_args!("ready: {ready}"));
                    }
                    ProbeEvent::Unhealthy(reason) => return RunEnd::Unhealthy(reason),
                },
                _ = refresh.tick() => self.refresh_volumes(prepared).await,
            }
            self.publish_status().await;
        }
    }

    /// Rewrites file volumes whose ConfigMaps or Secrets changed (from the watch caches).
    async fn refresh_volumes(&mut self, prepared: &mut Prepared) {
        if prepared.file_volumes.is_empty() {
            return;
        }
        // From the watch caches; an object they miss keeps its last known content.
        let references = references(&self.pod, &prepared.container);
        let mut objects = prepared.objects.clone();
        for name in references.config_maps {
            let key = ObjectRef::new(&name).within(&self.namespace);
            if let Some(current) = self.shared.config_maps.get(&key) {
                objects.config_maps.insert(name, current);
            }
        }
        for name in references.secrets {
            let key = ObjectRef::new(&name).within(&self.namespace);
            if let Some(current) = self.shared.secrets.get(&key) {
                objects.secrets.insert(name, current);
            }
        }
        let facts = PodFacts {
            pod: &self.pod,
            address: self.status.address.unwrap_or(Ipv4Addr::UNSPECIFIED),
            host: self.shared.gateway,
            node_name: &self.shared.settings.node_name,
        };
        let mut changes = Vec::new();
        for (index, file_volume) in prepared.file_volumes.iter().enumerate() {
            if let Ok(Backing::Files(files)) = volume_backing(&file_volume.volume, &facts, &objects)
            {
                if files != file_volume.files {
                    changes.push((index, files));
                }
            }
        }
        prepared.objects = objects;
        for (index, files) in changes {
            let Some(file_volume) = prepared.file_volumes.get_mut(index) else {
                continue;
            };
            let generation = file_volume.generation + 1;
            let directory = file_volume.directory.clone();
            let written = files.clone();
            let result = blocking(move || {
                write_files(&directory, &written, generation).map_err(|error| {
                    NodeError::io(format!("updating volume {}", directory.display()), error)
                })
            })
            .await;
            match result {
                Ok(()) => {
                    self.record(format_args!("updated volume {}", file_volume.volume.name));
                    file_volume.files = files;
                    file_volume.generation = generation;
                }
                Err(error) => self.record(error),
            }
        }
    }

    fn container_stopped(&mut self, running: &RunningContainer, exit: ExitStatus) {
        self.status.last_terminated = Some(terminated_state(running, exit));
        self.status.pid = None;
        self.status.running_since = None;
        self.status.started = false;
        self.status.ready = false;
        self.shared.update_pod(&self.uid, |record| {
            record.pid = None;
            record.ready = false;
        });
        self.shared.refresh_hosts();
    }

    /// SIGTERM, then SIGKILL once `grace` has passed (or at once when the Pod is removed; after
    /// at most [`STOP_GRACE`] when the agent stops). Runs the `preStop` hook first when asked.
    /// `Err` when the Pod's run was interrupted meanwhile (the process is dead by then).
    async fn terminate(
        &mut self,
        running: &mut RunningContainer,
        grace: Duration,
        pre_stop: bool,
    ) -> Result<ExitStatus, Interrupt> {
        let start = self.deletion_seen.unwrap_or_else(Instant::now);
        let mut deadline = start + grace;
        let mut interrupted = None;
        if pre_stop {
            let hook = self
                .pod
                .spec
                .as_ref()
                .and_then(|spec| spec.containers.first())
                .and_then(|container| container.lifecycle.as_ref())
                .and_then(|lifecycle| lifecycle.pre_stop.clone());
            if let Some(hook) = hook {
                let hook_deadline = deadline;
                tokio::select! {
                    biased;
                    () = self.removed.cancelled() => {
                        interrupted = Some(Interrupt::Removed);
                        deadline = Instant::now();
                    }
                    () = self.stop.cancelled() => {
                        interrupted = Some(Interrupt::Stopping);
                        deadline = deadline.min(Instant::now() + STOP_GRACE);
                    }
                    outcome = tokio::time::timeout_at(hook_deadline, self.run_hook(&hook, running.pid)) => {
                        match outcome {
                            Ok(Ok(summary)) => self.record(format_args!("preStop hook: {summary}")),
                            Ok(Err(error)) => self.record(format_args!("preStop hook failed: {error}")),
                            Err(_) => self.record("preStop hook ran out of the grace period"),
                        }
                    }
                }
            }
        }
        send_signal(running.pid, nix::sys::signal::Signal::SIGTERM);
        loop {
            tokio::select! {
                biased;
                exit = running.child.wait() => {
                    let exit = exit.unwrap_or_else(|_| ExitStatus::from_raw(255 << 8));
                    return interrupted.map_or(Ok(exit), Err);
                }
                () = self.removed.cancelled(), if interrupted != Some(Interrupt::Removed) => {
                    interrupted = Some(Interrupt::Removed);
                    deadline = Instant::now();
                }
                () = self.stop.cancelled(), if interrupted.is_none() => {
                    interrupted = Some(Interrupt::Stopping);
                    deadline = deadline.min(Instant::now() + STOP_GRACE);
                }
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        self.record(format_args!(
            "killing pid {} (grace period over)",
            running.pid
        ));
        send_signal(running.pid, nix::sys::signal::Signal::SIGKILL);
        let exit = tokio::time::timeout(KILL_WAIT, running.child.wait())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_else(|| ExitStatus::from_raw(9));
        interrupted.map_or(Ok(exit), Err)
    }

    /// Runs a lifecycle hook against the container with process `pid`; a summary of it.
    async fn run_hook(&self, hook: &LifecycleHandler, pid: u32) -> Result<String, String> {
        let address = self.status.address.unwrap_or(Ipv4Addr::LOCALHOST);
        let ports = self
            .pod
            .spec
            .as_ref()
            .and_then(|spec| spec.containers.first())
            .and_then(|container| container.ports.clone())
            .unwrap_or_default();
        if let Some(exec) = &hook.exec {
            let mut command_line = exec.command.clone().unwrap_or_default();
            if command_line.is_empty() {
                return Err("the exec hook has no command".to_string());
            }
            let program = self.map_program(&command_line.remove(0));
            let mut command = Command::new(&self.shared.programs.nsenter);
            command
                .arg("-t")
                .arg(pid.to_string())
                .args(["-m", "-n", "-u", "--"])
                .arg(&program)
                .args(&command_line)
                .env_clear()
                .envs(base_environment(&pod_hostname(&self.pod)))
                .stdin(Stdio::null())
                .kill_on_drop(true);
            let output = command
                .output()
                .await
                .map_err(|error| format!("running {program}: {error}"))?;
            let mut text = String::from_utf8_lossy(&output.stdout).to_string();
            text.push_str(&String::from_utf8_lossy(&output.stderr));
            let text: String = text.trim().chars().take(HOOK_OUTPUT_LIMIT).collect();
            let summary = format!(
                "{program} {} ({}): {text}",
                command_line.join(" "),
                output.status
            );
            return if output.status.success() {
                Ok(summary)
            } else {
                Err(summary)
            };
        }
        if let Some(http) = &hook.http_get {
            let status = http_probe(http, address, &ports, Duration::from_secs(30)).await?;
            return Ok(format!("GET answered {status}"));
        }
        if let Some(tcp) = &hook.tcp_socket {
            tcp_probe(tcp, address, &ports, Duration::from_secs(5)).await?;
            return Ok("connected".to_string());
        }
        if let Some(sleep) = &hook.sleep {
            let seconds = u64::try_from(sleep.seconds).unwrap_or(0);
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            return Ok(format!("slept {seconds}s"));
        }
        Err("the hook has no handler".to_string())
    }

    /// Ends the Pod's run: stops the process, removes the sandbox, deletes the Pod object when
    /// it was being deleted.
    async fn finish(&mut self, interrupt: Interrupt, running: Option<RunningContainer>) {
        let mut interrupt = interrupt;
        if let Some(mut running) = running {
            let outcome = match interrupt {
                Interrupt::Deleting => {
                    self.record(format_args!(
                        "deleting (grace period {:?})",
                        self.grace_period()
                    ));
                    let grace = self.grace_period();
                    self.terminate(&mut running, grace, true).await
                }
                Interrupt::Removed => self.terminate(&mut running, Duration::ZERO, false).await,
                Interrupt::Stopping => {
                    self.deletion_seen = None;
                    self.terminate(&mut running, STOP_GRACE, false).await
                }
            };
            let exit = match outcome {
                Ok(exit) => exit,
                Err(later) => {
                    // A removal or stop during a graceful deletion: the object goes with the
                    // removal; a stop leaves it.
                    if interrupt == Interrupt::Deleting && later == Interrupt::Stopping {
                        interrupt = Interrupt::Stopping;
                    }
                    if later == Interrupt::Removed {
                        interrupt = Interrupt::Removed;
                    }
                    ExitStatus::from_raw(9)
                }
            };
            self.record(format_args!("container stopped ({exit})"));
            self.container_stopped(&running, exit);
        }
        self.release_sandbox().await;
        if interrupt != Interrupt::Stopping {
            let directory = self.pod_directory();
            let _ = blocking(move || {
                let _ = std::fs::remove_dir_all(&directory);
                Ok(())
            })
            .await;
        }
        if interrupt == Interrupt::Deleting {
            self.delete_object().await;
        }
    }

    async fn release_sandbox(&mut self) {
        let Some(sandbox) = self.sandbox.take() else {
            return;
        };
        {
            let mut state = self.shared.state();
            state.pods.remove(&self.uid);
            state.addresses.release(sandbox.address);
        }
        self.shared.refresh_hosts();
        let namespace = sandbox.network_namespace;
        if let Err(error) =
            blocking(move || delete_sandbox(&namespace).map_err(NodeError::from)).await
        {
            self.record(error);
        }
    }

    /// Deletes the Pod object now (grace period 0, this UID only), as the kubelet does once a
    /// Pod's containers are gone.
    async fn delete_object(&mut self) {
        let api: Api<Pod> = Api::namespaced(self.shared.client.clone(), &self.namespace);
        let parameters = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        for attempt in 1..=DELETE_ATTEMPTS {
            let deleted = api_call(
                || format!("deleting pod {}", self.label()),
                api.delete(&self.name, &parameters),
            )
            .await;
            match deleted {
                Ok(_) => {
                    self.record("deleted");
                    return;
                }
                Err(error) if is_api_status(&error, 404) || is_api_status(&error, 409) => return,
                Err(error) => {
                    self.record(format_args!("attempt {attempt}: {error}"));
                    tokio::select! {
                        () = self.stop.cancelled() => return,
                        () = tokio::time::sleep(RESTART_BACKOFF_FIRST * attempt) => {}
                    }
                }
            }
        }
    }

    /// Writes the Pod's status when it differs from what was last written.
    async fn publish_status(&mut self) {
        let container = self
            .pod
            .spec
            .as_ref()
            .and_then(|spec| spec.containers.first());
        let name = container
            .map(|container| container.name.clone())
            .unwrap_or_default();
        let image = container
            .and_then(|container| container.image.clone())
            .unwrap_or_default();
        let status = self.status.render(&name, &image, self.shared.gateway);
        if self.status.written.as_ref() == Some(&status) {
            self.status_dirty = false;
            return;
        }
        let api: Api<Pod> = Api::namespaced(self.shared.client.clone(), &self.namespace);
        let patch = json!({ "status": status });
        let written = api_call(
            || format!("writing the status of pod {}", self.label()),
            api.patch_status(&self.name, &PatchParams::default(), &Patch::Merge(&patch)),
        )
        .await;
        match written {
            Ok(_) => {
                self.status.written = Some(status);
                self.status_dirty = false;
            }
            Err(error) if is_api_status(&error, 404) => self.status_dirty = false,
            Err(error) => {
                self.record(error);
                self.status_dirty = true;
            }
        }
    }
}

fn send_signal(pid: u32, signal: nix::sys::signal::Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
    }
}

fn terminated_state(running: &RunningContainer, exit: ExitStatus) -> ContainerStateTerminated {
    let (exit_code, signal) = match (exit.code(), exit.signal()) {
        (Some(code), _) => (code, None),
        (None, Some(signal)) => (128 + signal, Some(signal)),
        (None, None) => (255, None),
    };
    ContainerStateTerminated {
        container_id: Some(container_id(running.pid)),
        exit_code,
        finished_at: Some(now()),
        message: None,
        reason: Some(if exit_code == 0 { "Completed" } else { "Error" }.to_string()),
        signal,
        started_at: Some(running.started_at.clone()),
    }
}

fn container_id(pid: u32) -> String {
    format!("tern://{pid}")
}

/// The variables every container starts with (before its own `env`).
fn base_environment(hostname: &str) -> Vec<(String, String)> {
    vec![
        ("PATH".to_string(), CONTAINER_PATH.to_string()),
        ("HOSTNAME".to_string(), hostname.to_string()),
        ("HOME".to_string(), "/root".to_string()),
    ]
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

// ---- probes ---------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum ProbeEvent {
    /// The startup probe succeeded (or there is none).
    Started,
    Ready(bool),
    /// The startup or liveness probe failed for good: restart the container.
    Unhealthy(String),
}

/// A probe's schedule, with the kubelet's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProbeTiming {
    initial_delay: Duration,
    period: Duration,
    timeout: Duration,
    success_threshold: u32,
    failure_threshold: u32,
}

fn probe_timing(probe: &Probe) -> ProbeTiming {
    let seconds = |value: Option<i32>, default: u64| {
        Duration::from_secs(
            value
                .and_then(|value| u64::try_from(value).ok())
                .unwrap_or(default),
        )
    };
    let count = |value: Option<i32>, default: u32| {
        value
            .and_then(|value| u32::try_from(value).ok())
            .unwrap_or(default)
            .max(1)
    };
    ProbeTiming {
        initial_delay: seconds(probe.initial_delay_seconds, 0),
        period: seconds(probe.period_seconds, 10).max(Duration::from_secs(1)),
        timeout: seconds(probe.timeout_seconds, 1).max(Duration::from_secs(1)),
        success_threshold: count(probe.success_threshold, 1),
        failure_threshold: count(probe.failure_threshold, 3),
    }
}

/// Runs the container's probes and reports to its supervisor; ends when a startup or liveness
/// probe fails for good, else runs until aborted (its owner drops it with the container).
async fn run_probes(container: Container, address: Ipv4Addr, events: mpsc::Sender<ProbeEvent>) {
    let ports = container.ports.clone().unwrap_or_default();
    if let Some(probe) = &container.startup_probe {
        let timing = probe_timing(probe);
        let give_up =
            Instant::now() + timing.initial_delay + timing.period * timing.failure_threshold;
        tokio::time::sleep(timing.initial_delay).await;
        loop {
            let result = probe_once(probe, address, &ports, timing.timeout).await;
            let Err(reason) = result else {
                break;
            };
            if Instant::now() >= give_up {
                let _ = events
                    .send(ProbeEvent::Unhealthy(format!(
                        "startup probe failed: {reason}"
                    )))
                    .await;
                return;
            }
            tokio::time::sleep(timing.period.min(FAST_PROBE_INTERVAL)).await;
        }
    }
    if events.send(ProbeEvent::Started).await.is_err() {
        return;
    }
    tokio::join!(
        readiness(container.readiness_probe.as_ref(), address, &ports, &events),
        liveness(container.liveness_probe.as_ref(), address, &ports, &events),
    );
}

async fn readiness(
    probe: Option<&Probe>,
    address: Ipv4Addr,
    ports: &[ContainerPort],
    events: &mpsc::Sender<ProbeEvent>,
) {
    let Some(probe) = probe else {
        let _ = events.send(ProbeEvent::Ready(true)).await;
        return;
    };
    let timing = probe_timing(probe);
    tokio::time::sleep(timing.initial_delay).await;
    let mut successes = 0;
    while successes < timing.success_threshold {
        match probe_once(probe, address, ports, timing.timeout).await {
            Ok(()) => successes += 1,
            Err(_) => successes = 0,
        }
        if successes < timing.success_threshold {
            tokio::time::sleep(timing.period.min(FAST_PROBE_INTERVAL)).await;
        }
    }
    if events.send(ProbeEvent::Ready(true)).await.is_err() {
        return;
    }
    let mut ready = true;
    let (mut successes, mut failures) = (0, 0);
    loop {
        tokio::time::sleep(timing.period).await;
        let result = probe_once(probe, address, ports, timing.timeout).await;
        if result.is_ok() {
            failures = 0;
            successes += 1;
        } else {
            successes = 0;
            failures += 1;
        }
        let now_ready = if ready {
            failures < timing.failure_threshold
        } else {
            successes >= timing.success_threshold
        };
        if now_ready != ready {
            ready = now_ready;
            if events.send(ProbeEvent::Ready(ready)).await.is_err() {
                return;
            }
        }
    }
}

async fn liveness(
    probe: Option<&Probe>,
    address: Ipv4Addr,
    ports: &[ContainerPort],
    events: &mpsc::Sender<ProbeEvent>,
) {
    let Some(probe) = probe else {
        return;
    };
    let timing = probe_timing(probe);
    tokio::time::sleep(timing.initial_delay).await;
    let mut failures = 0;
    loop {
        match probe_once(probe, address, ports, timing.timeout).await {
            Ok(()) => failures = 0,
            Err(reason) => {
                failures += 1;
                if failures >= timing.failure_threshold {
                    let _ = events
                        .send(ProbeEvent::Unhealthy(format!(
                            "liveness probe failed {failures} times: {reason}"
                        )))
                        .await;
                    return;
                }
            }
        }
        tokio::time::sleep(timing.period).await;
    }
}

/// One probe attempt. `exec` and `grpc` probes can not run here and count as success.
async fn probe_once(
    probe: &Probe,
    address: Ipv4Addr,
    ports: &[ContainerPort],
    timeout: Duration,
) -> Result<(), String> {
    if let Some(http) = &probe.http_get {
        let status = http_probe(http, address, ports, timeout).await?;
        return if (200..400).contains(&status) {
            Ok(())
        } else {
            Err(format!(
                "GET {} answered {status}",
                http.path.as_deref().unwrap_or("/")
            ))
        };
    }
    if let Some(tcp) = &probe.tcp_socket {
        return tcp_probe(tcp, address, ports, timeout).await;
    }
    Ok(())
}

/// A port given by number or by the name of a container port.
fn resolve_port(port: &IntOrString, ports: &[ContainerPort]) -> Result<u16, String> {
    let number = match port {
        IntOrString::Int(number) => *number,
        IntOrString::String(name) => match name.parse::<i32>() {
            Ok(number) => number,
            Err(_) => ports
                .iter()
                .find(|port| port.name.as_deref() == Some(name.as_str()))
                .map(|port| port.container_port)
                .ok_or_else(|| format!("the container has no port named {name:?}"))?,
        },
    };
    u16::try_from(number).map_err(|_| format!("port {number} is out of range"))
}

fn probe_host(host: Option<&str>, address: Ipv4Addr) -> IpAddr {
    host.and_then(|host| host.parse().ok())
        .unwrap_or(IpAddr::V4(address))
}

/// The status code of an `httpGet` action. HTTPS is checked as a TCP connection only.
async fn http_probe(
    http: &HTTPGetAction,
    address: Ipv4Addr,
    ports: &[ContainerPort],
    timeout: Duration,
) -> Result<u16, String> {
    let port = resolve_port(&http.port, ports)?;
    let target = SocketAddr::new(probe_host(http.host.as_deref(), address), port);
    if http.scheme.as_deref() == Some("HTTPS") {
        tcp_connect(target, timeout)
            .await
            .map_err(|error| error.to_string())?;
        return Ok(200);
    }
    let path = http.path.as_deref().unwrap_or("/");
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    let headers: Vec<(String, String)> = http
        .http_headers
        .iter()
        .flatten()
        .map(|header| (header.name.clone(), header.value.clone()))
        .collect();
    http_get_status(target, &path, &headers, timeout)
        .await
        .map_err(|error| error.to_string())
}

async fn tcp_probe(
    tcp: &TCPSocketAction,
    address: Ipv4Addr,
    ports: &[ContainerPort],
    timeout: Duration,
) -> Result<(), String> {
    let port = resolve_port(&tcp.port, ports)?;
    let target = SocketAddr::new(probe_host(tcp.host.as_deref(), address), port);
    tcp_connect(target, timeout)
        .await
        .map_err(|error| error.to_string())
}

// ---- status ---------------------------------------------------------------------------------

/// What the Pod's status says, kept between writes so times only change with their facts.
#[derive(Debug, Default)]
struct StatusTracker {
    /// Why the Pod can not run here (phase `Failed`).
    failure: Option<String>,
    start_time: Option<Time>,
    address: Option<Ipv4Addr>,
    restart_count: i32,
    pid: Option<u32>,
    running_since: Option<Time>,
    started: bool,
    ready: bool,
    waiting: Option<(String, String)>,
    last_terminated: Option<ContainerStateTerminated>,
    /// Each condition's status and when it last changed.
    transitions: BTreeMap<&'static str, (bool, Time)>,
    /// The status last written.
    written: Option<Value>,
}

impl StatusTracker {
    /// The `status` to write for a Pod whose container is `container_name`.
    fn render(&mut self, container_name: &str, image: &str, host: Ipv4Addr) -> Value {
        let failed = self.failure.is_some();
        let ready = self.ready && self.pid.is_some() && !failed;
        let conditions = [
            ("PodScheduled", true),
            ("Initialized", !failed),
            ("PodReadyToStartContainers", self.address.is_some()),
            ("ContainersReady", ready),
            ("Ready", ready),
        ]
        .into_iter()
        .map(|(kind, value)| {
            let (_, since) = self
                .transitions
                .entry(kind)
                .and_modify(|(status, since)| {
                    if *status != value {
                        *status = value;
                        *since = now();
                    }
                })
                .or_insert_with(|| (value, now()));
            PodCondition {
                type_: kind.to_string(),
                status: if value { "True" } else { "False" }.to_string(),
                last_transition_time: Some(since.clone()),
                ..PodCondition::default()
            }
        })
        .collect();
        let phase = if failed {
            "Failed"
        } else if self.start_time.is_some() {
            "Running"
        } else {
            "Pending"
        };
        let state = match (&self.running_since, &self.waiting) {
            (Some(since), _) => ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(since.clone()),
                }),
                ..ContainerState::default()
            },
            (None, Some((reason, message))) => ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.clone()),
                    message: Some(message.clone()),
                }),
                ..ContainerState::default()
            },
            (None, None) => ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some("ContainerCreating".to_string()),
                    message: None,
                }),
                ..ContainerState::default()
            },
        };
        let container_status = ContainerStatus {
            name: container_name.to_string(),
            image: image.to_string(),
            image_id: String::new(),
            container_id: self.pid.map(container_id),
            ready,
            started: Some(self.started && self.pid.is_some()),
            restart_count: self.restart_count,
            state: Some(state),
            last_state: Some(
                self.last_terminated
                    .clone()
                    .map(|terminated| ContainerState {
                        terminated: Some(terminated),
                        ..ContainerState::default()
                    })
                    .unwrap_or_default(),
            ),
            ..ContainerStatus::default()
        };
        let status = PodStatus {
            phase: Some(phase.to_string()),
            reason: failed.then(|| UNSUPPORTED_REASON.to_string()),
            message: self.failure.clone(),
            host_ip: Some(host.to_string()),
            host_ips: Some(vec![HostIP {
                ip: host.to_string(),
            }]),
            pod_ip: self.address.map(|address| address.to_string()),
            pod_ips: self.address.map(|address| {
                vec![PodIP {
                    ip: address.to_string(),
                }]
            }),
            start_time: self.start_time.clone(),
            conditions: Some(conditions),
            container_statuses: (!failed && !container_name.is_empty())
                .then(|| vec![container_status]),
            ..PodStatus::default()
        };
        serde_json::to_value(status).unwrap_or(Value::Null)
    }
}

// ---- the Pod's shape, environment and volumes (pure) ----------------------------------------

/// The container the agent runs, or why it can not run the Pod.
fn supported_container(pod: &Pod) -> Result<Container, NodeError> {
    let unsupported = |reason: &str| Err(NodeError::Unsupported(reason.to_string()));
    let Some(spec) = &pod.spec else {
        return unsupported("the pod has no spec");
    };
    if spec.host_network == Some(true) {
        return unsupported("hostNetwork pods are not supported");
    }
    if spec
        .init_containers
        .as_ref()
        .is_some_and(|containers| !containers.is_empty())
    {
        return unsupported("init containers are not supported");
    }
    let [container] = spec.containers.as_slice() else {
        return Err(NodeError::Unsupported(format!(
            "exactly one container is supported, the pod has {}",
            spec.containers.len()
        )));
    };
    if container
        .command
        .as_ref()
        .is_none_or(|command| command.is_empty())
    {
        return unsupported("the container has no command (image entrypoints are unknown here)");
    }
    Ok(container.clone())
}

/// The Pod's hostname: `spec.hostname`, else its name.
fn pod_hostname(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|spec| spec.hostname.clone())
        .filter(|hostname| !hostname.is_empty())
        .or_else(|| pod.metadata.name.clone())
        .unwrap_or_default()
}

/// Expands `$(NAME)` in `input` as the kubelet does: `$$` is a literal `$`, names not in
/// `variables` (and unterminated references) stay as written.
fn expand(input: &str, variables: &HashMap<&str, &str>) -> String {
    let bytes = input.as_bytes();
    let mut output: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < bytes.len() {
        if bytes[cursor] == b'$' && cursor + 1 < bytes.len() {
            output.extend_from_slice(&bytes[checkpoint..cursor]);
            let rest = &bytes[cursor + 1..];
            let advance = match rest[0] {
                b'$' => {
                    output.push(b'$');
                    1
                }
                b'(' => match rest.iter().position(|&byte| byte == b')') {
                    Some(close) => {
                        let name = String::from_utf8_lossy(&rest[1..close]);
                        match variables.get(name.as_ref()) {
                            Some(value) => output.extend_from_slice(value.as_bytes()),
                            None => {
                                output.push(b'$');
                                output.extend_from_slice(&rest[..=close]);
                            }
                        }
                        close + 1
                    }
                    None => {
                        output.extend_from_slice(b"$(");
                        1
                    }
                },
                other => {
                    output.push(b'$');
                    output.push(other);
                    1
                }
            };
            cursor += advance;
            checkpoint = cursor + 1;
        }
        cursor += 1;
    }
    output.extend_from_slice(&bytes[checkpoint.min(bytes.len())..]);
    String::from_utf8(output)
        .unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned())
}

/// The ConfigMaps and Secrets (of the Pod's namespace) a Pod refers to, by name; absent ones
/// are missing from the maps.
#[derive(Debug, Default, Clone)]
struct Objects {
    config_maps: BTreeMap<String, Arc<ConfigMap>>,
    secrets: BTreeMap<String, Arc<Secret>>,
    service_account_token: Option<String>,
}

#[derive(Debug, Default)]
struct References {
    config_maps: BTreeSet<String>,
    secrets: BTreeSet<String>,
    token: Option<TokenProjection>,
}

#[derive(Debug)]
struct TokenProjection {
    audience: Option<String>,
    expiration_seconds: Option<i64>,
}

fn references(pod: &Pod, container: &Container) -> References {
    let mut found = References::default();
    for source in container.env_from.iter().flatten() {
        if let Some(reference) = &source.config_map_ref {
            found.config_maps.insert(reference.name.clone());
        }
        if let Some(reference) = &source.secret_ref {
            found.secrets.insert(reference.name.clone());
        }
    }
    for variable in container.env.iter().flatten() {
        if let Some(source) = &variable.value_from {
            if let Some(selector) = &source.config_map_key_ref {
                found.config_maps.insert(selector.name.clone());
            }
            if let Some(selector) = &source.secret_key_ref {
                found.secrets.insert(selector.name.clone());
            }
        }
    }
    for volume in pod
        .spec
        .iter()
        .flat_map(|spec| spec.volumes.iter().flatten())
    {
        if let Some(source) = &volume.config_map {
            found.config_maps.insert(source.name.clone());
        }
        if let Some(name) = volume
            .secret
            .as_ref()
            .and_then(|source| source.secret_name.clone())
        {
            found.secrets.insert(name);
        }
        for projection in volume
            .projected
            .iter()
            .flat_map(|projected| projected.sources.iter().flatten())
        {
            if let Some(source) = &projection.config_map {
                found.config_maps.insert(source.name.clone());
            }
            if let Some(source) = &projection.secret {
                found.secrets.insert(source.name.clone());
            }
            if let Some(source) = &projection.service_account_token {
                found.token = Some(TokenProjection {
                    audience: source.audience.clone(),
                    expiration_seconds: source.expiration_seconds,
                });
            }
        }
    }
    found
}

/// What the downward API can tell about a Pod.
struct PodFacts<'a> {
    pod: &'a Pod,
    address: Ipv4Addr,
    host: Ipv4Addr,
    node_name: &'a str,
}

/// The value of a `fieldRef` path.
fn field_value(facts: &PodFacts<'_>, selector: &ObjectFieldSelector) -> Result<String, NodeError> {
    let metadata = &facts.pod.metadata;
    let spec = facts.pod.spec.as_ref();
    let path = selector.field_path.as_str();
    let quoted_key = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix("']"))
            .map(str::to_string)
    };
    let value = match path {
        "metadata.name" => metadata.name.clone().unwrap_or_default(),
        "metadata.namespace" => metadata.namespace.clone().unwrap_or_default(),
        "metadata.uid" => metadata.uid.clone().unwrap_or_default(),
        "metadata.labels" => render_map(metadata.labels.as_ref()),
        "metadata.annotations" => render_map(metadata.annotations.as_ref()),
        "spec.nodeName" => facts.node_name.to_string(),
        "spec.serviceAccountName" => spec
            .and_then(|spec| spec.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" | "status.podIPs" => facts.address.to_string(),
        "status.hostIP" | "status.hostIPs" => facts.host.to_string(),
        _ => {
            if let Some(key) = quoted_key("metadata.labels['") {
                metadata
                    .labels
                    .as_ref()
                    .and_then(|labels| labels.get(&key).cloned())
                    .unwrap_or_default()
            } else if let Some(key) = quoted_key("metadata.annotations['") {
                metadata
                    .annotations
                    .as_ref()
                    .and_then(|annotations| annotations.get(&key).cloned())
                    .unwrap_or_default()
            } else {
                return Err(NodeError::Unsupported(format!(
                    "field path {path:?} is not supported"
                )));
            }
        }
    };
    Ok(value)
}

/// Labels or annotations as the downward API writes them: `key="value"` lines, sorted.
fn render_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.iter()
        .flat_map(|map| map.iter())
        .map(|(key, value)| format!("{key}={value:?}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A `resourceFieldRef`: the container's quantity as written, else the node's capacity.
fn resource_value(container: &Container, selector: &ResourceFieldSelector) -> String {
    let resources = container.resources.as_ref();
    let (kind, resource) = selector
        .resource
        .split_once('.')
        .unwrap_or(("limits", selector.resource.as_str()));
    let quantities = match kind {
        "requests" => resources.and_then(|resources| resources.requests.as_ref()),
        _ => resources.and_then(|resources| resources.limits.as_ref()),
    };
    if let Some(quantity) = quantities.and_then(|quantities| quantities.get(resource)) {
        return quantity.0.clone();
    }
    match resource {
        "cpu" => NODE_CPU.to_string(),
        "memory" => NODE_MEMORY_BYTES.to_string(),
        _ => "0".to_string(),
    }
}

fn config_map_value(map: &ConfigMap, key: &str) -> Option<Vec<u8>> {
    map.data
        .as_ref()
        .and_then(|data| data.get(key))
        .map(|value| value.as_bytes().to_vec())
        .or_else(|| {
            map.binary_data
                .as_ref()
                .and_then(|data| data.get(key))
                .map(|value| value.0.clone())
        })
}

fn secret_value(secret: &Secret, key: &str) -> Option<Vec<u8>> {
    secret
        .data
        .as_ref()
        .and_then(|data| data.get(key))
        .map(|value| value.0.clone())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|data| data.get(key))
                .map(|value| value.as_bytes().to_vec())
        })
}

/// The container's environment as the kubelet builds it: `envFrom` sources in order, then
/// `env` in order (a later definition replaces an earlier one); `value`s may refer to earlier
/// variables with `$(NAME)`.
fn resolve_environment(
    facts: &PodFacts<'_>,
    container: &Container,
    objects: &Objects,
) -> Result<Vec<(String, String)>, NodeError> {
    let mut environment: Vec<(String, String)> = Vec::new();
    let set =
        |environment: &mut Vec<(String, String)>, name: String, value: String| match environment
            .iter_mut()
            .find(|(existing, _)| *existing == name)
        {
            Some(entry) => entry.1 = value,
            None => environment.push((name, value)),
        };
    let missing = |what: String| NodeError::Configuration(format!("{what} not found"));
    for source in container.env_from.iter().flatten() {
        let prefix = source.prefix.clone().unwrap_or_default();
        if let Some(reference) = &source.config_map_ref {
            match objects.config_maps.get(&reference.name) {
                Some(map) => {
                    for (key, value) in map.data.iter().flatten() {
                        set(&mut environment, format!("{prefix}{key}"), value.clone());
                    }
                }
                None if reference.optional == Some(true) => {}
                None => return Err(missing(format!("configMap {:?}", reference.name))),
            }
        }
        if let Some(reference) = &source.secret_ref {
            match objects.secrets.get(&reference.name) {
                Some(secret) => {
                    for (key, value) in secret.data.iter().flatten() {
                        let value = String::from_utf8_lossy(&value.0).into_owned();
                        set(&mut environment, format!("{prefix}{key}"), value);
                    }
                }
                None if reference.optional == Some(true) => {}
                None => return Err(missing(format!("secret {:?}", reference.name))),
            }
        }
    }
    for variable in container.env.iter().flatten() {
        let value = if let Some(source) = &variable.value_from {
            if let Some(selector) = &source.field_ref {
                Some(field_value(facts, selector)?)
            } else if let Some(selector) = &source.resource_field_ref {
                Some(resource_value(container, selector))
            } else if let Some(selector) = &source.config_map_key_ref {
                let map = objects.config_maps.get(&selector.name);
                match map.map(|map| config_map_value(map, &selector.key)) {
                    Some(Some(value)) => Some(String::from_utf8_lossy(&value).into_owned()),
                    _ if selector.optional == Some(true) => None,
                    Some(None) => {
                        return Err(missing(format!(
                            "key {:?} of configMap {:?}",
                            selector.key, selector.name
                        )))
                    }
                    None => return Err(missing(format!("configMap {:?}", selector.name))),
                }
            } else if let Some(selector) = &source.secret_key_ref {
                let secret = objects.secrets.get(&selector.name);
                match secret.map(|secret| secret_value(secret, &selector.key)) {
                    Some(Some(value)) => Some(String::from_utf8_lossy(&value).into_owned()),
                    _ if selector.optional == Some(true) => None,
                    Some(None) => {
                        return Err(missing(format!(
                            "key {:?} of secret {:?}",
                            selector.key, selector.name
                        )))
                    }
                    None => return Err(missing(format!("secret {:?}", selector.name))),
                }
            } else {
                return Err(NodeError::Unsupported(format!(
                    "environment variable {:?} has an unsupported source",
                    variable.name
                )));
            }
        } else {
            let defined: HashMap<&str, &str> = environment
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str()))
                .collect();
            Some(expand(variable.value.as_deref().unwrap_or(""), &defined))
        };
        if let Some(value) = value {
            set(&mut environment, variable.name.clone(), value);
        }
    }
    Ok(environment)
}

/// A file of a volume: its bytes and permission bits.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileEntry {
    content: Vec<u8>,
    mode: u32,
}

/// A file volume's content, by path relative to the volume.
type Files = BTreeMap<String, FileEntry>;

/// What backs a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Backing {
    /// A fresh directory of the Pod (`emptyDir`).
    Scratch,
    /// The directory of a claim, kept across Pods.
    Claim(String),
    /// A directory of the host.
    Host(PathBuf),
    /// Files written by the agent.
    Files(Files),
}

fn file_mode(mode: Option<i32>, default: u32) -> u32 {
    mode.and_then(|mode| u32::try_from(mode).ok())
        .map_or(default, |mode| mode & 0o7777)
}

/// A volume file path: relative, without `..`, not starting with `..` (kept for the writer).
fn checked_path(path: &str) -> Result<String, NodeError> {
    let valid = !path.is_empty()
        && !path.starts_with("..")
        && Path::new(path)
            .components()
            .all(|component| matches!(component, Component::Normal(_)));
    if valid {
        Ok(path.to_string())
    } else {
        Err(NodeError::Unsupported(format!(
            "volume file path {path:?} is not a plain relative path"
        )))
    }
}

/// Files of a ConfigMap or Secret (`entries`: every key and its bytes; `None`: the object does
/// not exist), all keys or the `items` chosen.
fn key_files(
    what: &str,
    entries: Option<BTreeMap<String, Vec<u8>>>,
    items: Option<&Vec<KeyToPath>>,
    optional: bool,
    default_mode: u32,
    files: &mut Files,
) -> Result<(), NodeError> {
    let Some(entries) = entries else {
        return if optional {
            Ok(())
        } else {
            Err(NodeError::Configuration(format!("{what} not found")))
        };
    };
    match items {
        None => {
            for (key, content) in entries {
                files.insert(
                    checked_path(&key)?,
                    FileEntry {
                        content,
                        mode: default_mode,
                    },
                );
            }
        }
        Some(items) => {
            for item in items {
                match entries.get(&item.key) {
                    Some(content) => {
                        files.insert(
                            checked_path(&item.path)?,
                            FileEntry {
                                content: content.clone(),
                                mode: file_mode(item.mode, default_mode),
                            },
                        );
                    }
                    None if optional => {}
                    None => {
                        return Err(NodeError::Configuration(format!(
                            "key {:?} of {what} not found",
                            item.key
                        )))
                    }
                }
            }
        }
    }
    Ok(())
}

fn config_map_entries(objects: &Objects, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
    objects.config_maps.get(name).map(|map| {
        let mut entries: BTreeMap<String, Vec<u8>> = map
            .data
            .iter()
            .flatten()
            .map(|(key, value)| (key.clone(), value.as_bytes().to_vec()))
            .collect();
        for (key, value) in map.binary_data.iter().flatten() {
            entries.insert(key.clone(), value.0.clone());
        }
        entries
    })
}

fn secret_entries(objects: &Objects, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
    objects.secrets.get(name).map(|secret| {
        secret
            .data
            .iter()
            .flatten()
            .map(|(key, value)| (key.clone(), value.0.clone()))
            .collect()
    })
}

fn downward_files(
    facts: &PodFacts<'_>,
    items: &[k8s_openapi::api::core::v1::DownwardAPIVolumeFile],
    default_mode: u32,
    files: &mut Files,
) -> Result<(), NodeError> {
    let container = facts
        .pod
        .spec
        .as_ref()
        .and_then(|spec| spec.containers.first())
        .cloned()
        .unwrap_or_default();
    for item in items {
        let value = if let Some(selector) = &item.field_ref {
            field_value(facts, selector)?
        } else if let Some(selector) = &item.resource_field_ref {
            resource_value(&container, selector)
        } else {
            String::new()
        };
        files.insert(
            checked_path(&item.path)?,
            FileEntry {
                content: value.into_bytes(),
                mode: file_mode(item.mode, default_mode),
            },
        );
    }
    Ok(())
}

/// What backs `volume`, its files rendered from `objects` for file volumes.
fn volume_backing(
    volume: &Volume,
    facts: &PodFacts<'_>,
    objects: &Objects,
) -> Result<Backing, NodeError> {
    let mut files = Files::new();
    if volume.empty_dir.is_some() {
        return Ok(Backing::Scratch);
    }
    if let Some(claim) = &volume.persistent_volume_claim {
        return Ok(Backing::Claim(checked_path(&claim.claim_name)?));
    }
    if let Some(host) = &volume.host_path {
        return Ok(Backing::Host(PathBuf::from(&host.path)));
    }
    if let Some(source) = &volume.config_map {
        key_files(
            &format!("configMap {:?}", source.name),
            config_map_entries(objects, &source.name),
            source.items.as_ref(),
            source.optional == Some(true),
            file_mode(source.default_mode, DEFAULT_FILE_MODE),
            &mut files,
        )?;
        return Ok(Backing::Files(files));
    }
    if let Some(source) = &volume.secret {
        let name = source.secret_name.clone().unwrap_or_default();
        key_files(
            &format!("secret {name:?}"),
            secret_entries(objects, &name),
            source.items.as_ref(),
            source.optional == Some(true),
            file_mode(source.default_mode, DEFAULT_FILE_MODE),
            &mut files,
        )?;
        return Ok(Backing::Files(files));
    }
    if let Some(source) = &volume.downward_api {
        let mode = file_mode(source.default_mode, DEFAULT_FILE_MODE);
        downward_files(
            facts,
            source.items.as_deref().unwrap_or(&[]),
            mode,
            &mut files,
        )?;
        return Ok(Backing::Files(files));
    }
    if let Some(projected) = &volume.projected {
        let mode = file_mode(projected.default_mode, DEFAULT_FILE_MODE);
        for source in projected.sources.iter().flatten() {
            if let Some(source) = &source.config_map {
                key_files(
                    &format!("configMap {:?}", source.name),
                    config_map_entries(objects, &source.name),
                    source.items.as_ref(),
                    source.optional == Some(true),
                    mode,
                    &mut files,
                )?;
            } else if let Some(source) = &source.secret {
                key_files(
                    &format!("secret {:?}", source.name),
                    secret_entries(objects, &source.name),
                    source.items.as_ref(),
                    source.optional == Some(true),
                    mode,
                    &mut files,
                )?;
            } else if let Some(source) = &source.downward_api {
                downward_files(
                    facts,
                    source.items.as_deref().unwrap_or(&[]),
                    mode,
                    &mut files,
                )?;
            } else if let Some(source) = &source.service_account_token {
                let token = objects.service_account_token.clone().ok_or_else(|| {
                    NodeError::Configuration("no service account token".to_string())
                })?;
                files.insert(
                    checked_path(&source.path)?,
                    FileEntry {
                        content: token.into_bytes(),
                        mode,
                    },
                );
            } else {
                return Err(NodeError::Unsupported(format!(
                    "volume {:?} has an unsupported projection",
                    volume.name
                )));
            }
        }
        return Ok(Backing::Files(files));
    }
    Err(NodeError::Unsupported(format!(
        "volume {:?} is of an unsupported kind",
        volume.name
    )))
}

/// Writes `files` into `directory` the way the kubelet's atomic writer does: the files go into
/// a fresh `..<generation>` directory, the `..data` symlink is swapped to it in one rename, and
/// each top-level name is a symlink through `..data`. A reader never sees a half-written volume.
fn write_files(directory: &Path, files: &Files, generation: u64) -> std::io::Result<()> {
    std::fs::create_dir_all(directory)?;
    let version = format!("..{generation}");
    let version_directory = directory.join(&version);
    if version_directory.exists() {
        std::fs::remove_dir_all(&version_directory)?;
    }
    std::fs::create_dir(&version_directory)?;
    for (path, entry) in files {
        let target = version_directory.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&target, &entry.content)?;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(entry.mode))?;
    }
    let temporary = directory.join("..data_tmp");
    let _ = std::fs::remove_file(&temporary);
    std::os::unix::fs::symlink(&version, &temporary)?;
    std::fs::rename(&temporary, directory.join("..data"))?;
    let top_level: BTreeSet<String> = files
        .keys()
        .filter_map(|path| path.split('/').next().map(str::to_string))
        .collect();
    for name in &top_level {
        let link = directory.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{name}"), &link)?;
        }
    }
    for entry in std::fs::read_dir(directory)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let stale_version = name.starts_with("..") && name != "..data" && name != version;
        let stale_link = !name.starts_with("..") && !top_level.contains(&name);
        if stale_version {
            std::fs::remove_dir_all(entry.path())?;
        } else if stale_link {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// One bind mount of the container.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PlannedMount {
    source: PathBuf,
    target: String,
    read_only: bool,
    is_file: bool,
}

/// The container's mounts, parents before children.
fn plan_mounts(
    container: &Container,
    volume_paths: &HashMap<String, PathBuf>,
    variables: &HashMap<&str, &str>,
) -> Result<Vec<PlannedMount>, NodeError> {
    let mut mounts = Vec::new();
    for mount in container.volume_mounts.iter().flatten() {
        let Some(volume_path) = volume_paths.get(&mount.name) else {
            return Err(NodeError::Unsupported(format!(
                "mount {} refers to volume {:?}, which the pod does not have",
                mount.mount_path, mount.name
            )));
        };
        let sub_path = match (&mount.sub_path, &mount.sub_path_expr) {
            (Some(path), _) if !path.is_empty() => Some(path.clone()),
            (_, Some(expression)) if !expression.is_empty() => Some(expand(expression, variables)),
            _ => None,
        };
        let source = match sub_path {
            Some(path) => volume_path.join(checked_path(&path)?),
            None => volume_path.clone(),
        };
        if !Path::new(&mount.mount_path).is_absolute() {
            return Err(NodeError::Unsupported(format!(
                "mount path {:?} is not absolute",
                mount.mount_path
            )));
        }
        let is_file = source.is_file();
        mounts.push(PlannedMount {
            source,
            target: mount.mount_path.clone(),
            read_only: mount.read_only == Some(true),
            is_file,
        });
    }
    mounts.sort_by_key(|mount| Path::new(&mount.target).components().count());
    Ok(mounts)
}

/// Creates `target` (a directory, or an empty file when `is_file`) and its missing parents;
/// each path it creates is added to `created`.
fn create_mount_point(
    target: &Path,
    is_file: bool,
    created: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    let directory = if is_file {
        target.parent()
    } else {
        Some(target)
    };
    if let Some(directory) = directory {
        let missing: Vec<&Path> = directory
            .ancestors()
            .take_while(|ancestor| !ancestor.exists())
            .collect();
        for path in missing.into_iter().rev() {
            std::fs::create_dir(path)?;
            created.push(path.to_path_buf());
        }
    }
    if is_file && !target.exists() {
        std::fs::File::create(target)?;
        created.push(target.to_path_buf());
    }
    Ok(())
}

/// Quotes `text` for `sh`.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The script that runs inside the Pod's fresh mount and UTS namespaces: it sets the hostname,
/// bind-mounts the volumes (read-only ones remounted read-only after all binds) and the hosts
/// file, then `exec`s its arguments (the container's command line).
fn render_start_script(
    mounts: &[PlannedMount],
    hosts_file: &Path,
    hostname: &str,
    working_directory: Option<&str>,
) -> String {
    let mut script = String::from("#!/bin/sh\n# Written by the tern node agent.\nset -e\n");
    let _ = writeln!(
        script,
        "printf '%s' {} > /proc/sys/kernel/hostname || true",
        shell_quote(hostname)
    );
    for mount in mounts {
        let target = shell_quote(&mount.target);
        if mount.is_file {
            let _ = writeln!(script, "[ -e {target} ] || : > {target}");
        } else {
            let _ = writeln!(script, "mkdir -p {target}");
        }
        let _ = writeln!(
            script,
            "mount --bind {} {target}",
            shell_quote(&mount.source.display().to_string())
        );
    }
    for mount in mounts.iter().filter(|mount| mount.read_only) {
        let _ = writeln!(
            script,
            "mount -o remount,bind,ro {}",
            shell_quote(&mount.target)
        );
    }
    let _ = writeln!(
        script,
        "mount --bind {} /etc/hosts",
        shell_quote(&hosts_file.display().to_string())
    );
    if let Some(directory) = working_directory.filter(|directory| !directory.is_empty()) {
        let _ = writeln!(script, "cd {}", shell_quote(directory));
    }
    script.push_str("exec \"$@\"\n");
    script
}

/// A Pod with a sandbox, as name resolution sees it.
#[derive(Debug, Clone)]
struct PodAddress {
    namespace: String,
    name: String,
    hostname: String,
    subdomain: Option<String>,
    labels: BTreeMap<String, String>,
    address: Ipv4Addr,
    ready: bool,
}

/// The hosts file lines: every Pod by its hostname (and, with a subdomain, its
/// `<hostname>.<subdomain>.<namespace>.svc[.<domain>]` names), then every Service with a
/// selector by `<service>.<namespace>.svc[.<domain>]`, resolving to one Pod it selects: a ready
/// one, or any when the Service publishes not-ready addresses. Sorted, so equal inputs give
/// equal files.
fn host_entries(pods: &[PodAddress], services: &[Arc<Service>], domain: &str) -> Vec<HostEntry> {
    let mut pods: Vec<&PodAddress> = pods.iter().collect();
    pods.sort_by(|left, right| (&left.namespace, &left.name).cmp(&(&right.namespace, &right.name)));
    let mut entries: Vec<HostEntry> = pods
        .iter()
        .map(|pod| {
            let mut names = Vec::new();
            if let Some(subdomain) = &pod.subdomain {
                let service_name = format!("{}.{subdomain}.{}.svc", pod.hostname, pod.namespace);
                names.push(format!("{service_name}.{domain}"));
                names.push(service_name);
            }
            names.push(pod.hostname.clone());
            HostEntry {
                address: pod.address,
                names,
            }
        })
        .collect();
    let mut services: Vec<&Service> = services.iter().map(AsRef::as_ref).collect();
    services.sort_by(|left, right| {
        (&left.metadata.namespace, &left.metadata.name)
            .cmp(&(&right.metadata.namespace, &right.metadata.name))
    });
    for service in services {
        let (Some(namespace), Some(name), Some(spec)) = (
            &service.metadata.namespace,
            &service.metadata.name,
            &service.spec,
        ) else {
            continue;
        };
        if spec.type_.as_deref() == Some("ExternalName") {
            continue;
        }
        let Some(selector) = spec
            .selector
            .as_ref()
            .filter(|selector| !selector.is_empty())
        else {
            continue;
        };
        let publish_not_ready = spec.publish_not_ready_addresses == Some(true);
        let chosen = pods.iter().find(|pod| {
            pod.namespace == *namespace
                && (pod.ready || publish_not_ready)
                && selector
                    .iter()
                    .all(|(key, value)| pod.labels.get(key) == Some(value))
        });
        if let Some(pod) = chosen {
            let service_name = format!("{name}.{namespace}.svc");
            entries.push(HostEntry {
                address: pod.address,
                names: vec![format!("{service_name}.{domain}"), service_name],
            });
        }
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ConfigMapKeySelector, ConfigMapVolumeSource, EnvVar, EnvVarSource, PodSpec,
        SecretKeySelector, SecretVolumeSource, ServiceSpec, VolumeMount,
    };
    use k8s_openapi::ByteString;

    fn variables<'a>(pairs: &[(&'a str, &'a str)]) -> HashMap<&'a str, &'a str> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn expansion_replaces_known_variables_and_keeps_unknown_ones() {
        let known = variables(&[("TERN_POD_NAME", "nats-0"), ("EMPTY", "")]);
        assert_eq!(
            expand("/etc/tern/config/$(TERN_POD_NAME).conf", &known),
            "/etc/tern/config/nats-0.conf"
        );
        assert_eq!(
            expand("$(UNKNOWN)-$(TERN_POD_NAME)", &known),
            "$(UNKNOWN)-nats-0"
        );
        assert_eq!(expand("a$(EMPTY)b", &known), "ab");
        assert_eq!(expand("no references", &known), "no references");
        assert_eq!(expand("", &known), "");
    }

    #[test]
    fn expansion_treats_dollar_dollar_as_an_escape() {
        let known = variables(&[("NAME", "value")]);
        assert_eq!(expand("$$(NAME)", &known), "$(NAME)");
        assert_eq!(expand("$$$(NAME)", &known), "$value");
        assert_eq!(expand("cost: $$5", &known), "cost: $5");
        assert_eq!(expand("$$", &known), "$");
    }

    #[test]
    fn expansion_keeps_lone_and_unterminated_operators() {
        let known = variables(&[("NAME", "value")]);
        assert_eq!(expand("$", &known), "$");
        assert_eq!(expand("trailing $", &known), "trailing $");
        assert_eq!(expand("$x$(NAME)", &known), "$xvalue");
        assert_eq!(expand("$(NAME", &known), "$(NAME");
        assert_eq!(expand("$(NAME)$(", &known), "value$(");
        assert_eq!(expand("é$(NAME)ü", &known), "évalueü");
    }

    fn pod_with(container: Container, volumes: Vec<Volume>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("nats-1".to_string()),
                namespace: Some("messaging".to_string()),
                uid: Some("uid-1".to_string()),
                labels: Some(BTreeMap::from([
                    ("app".to_string(), "nats".to_string()),
                    ("tier".to_string(), "broker".to_string()),
                ])),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                containers: vec![container],
                volumes: Some(volumes),
                hostname: Some("nats-1".to_string()),
                subdomain: Some("nats-headless".to_string()),
                ..PodSpec::default()
            }),
            status: None,
        }
    }

    fn field(name: &str, path: &str) -> EnvVar {
        EnvVar {
            name: name.to_string(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: path.to_string(),
                    ..ObjectFieldSelector::default()
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        }
    }

    fn value(name: &str, value: &str) -> EnvVar {
        EnvVar {
            name: name.to_string(),
            value: Some(value.to_string()),
            ..EnvVar::default()
        }
    }

    fn secret_key(name: &str, secret: &str, key: &str, optional: bool) -> EnvVar {
        EnvVar {
            name: name.to_string(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret.to_string(),
                    key: key.to_string(),
                    optional: Some(optional),
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        }
    }

    fn objects() -> Objects {
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some("routes".to_string()),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([
                ("username".to_string(), ByteString(b"router".to_vec())),
                ("password".to_string(), ByteString(b"s3cret".to_vec())),
            ])),
            ..Secret::default()
        };
        let config_map = ConfigMap {
            metadata: ObjectMeta {
                name: Some("settings".to_string()),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([
                ("nats-0.conf".to_string(), "port: 4222\n".to_string()),
                ("nats-1.conf".to_string(), "port: 4223\n".to_string()),
            ])),
            ..ConfigMap::default()
        };
        Objects {
            config_maps: BTreeMap::from([("settings".to_string(), Arc::new(config_map))]),
            secrets: BTreeMap::from([("routes".to_string(), Arc::new(secret))]),
            service_account_token: None,
        }
    }

    fn facts(pod: &Pod) -> PodFacts<'_> {
        PodFacts {
            pod,
            address: Ipv4Addr::new(10, 250, 7, 3),
            host: Ipv4Addr::new(10, 250, 7, 1),
            node_name: "tern-e2e-node",
        }
    }

    #[test]
    fn environment_resolves_fields_secrets_config_maps_and_earlier_variables() {
        let container = Container {
            name: "tern".to_string(),
            env: Some(vec![
                field("TERN_POD_NAME", "metadata.name"),
                field("NAMESPACE", "metadata.namespace"),
                field("POD_IP", "status.podIP"),
                field("NODE", "spec.nodeName"),
                field("TIER", "metadata.labels['tier']"),
                secret_key("ROUTE_USER", "routes", "username", false),
                secret_key("ROUTE_PASSWORD", "routes", "password", false),
                secret_key("ABSENT", "routes", "missing", true),
                secret_key("ABSENT_SECRET", "nowhere", "key", true),
                EnvVar {
                    name: "CONFIG".to_string(),
                    value_from: Some(EnvVarSource {
                        config_map_key_ref: Some(ConfigMapKeySelector {
                            name: "settings".to_string(),
                            key: "nats-0.conf".to_string(),
                            optional: None,
                        }),
                        ..EnvVarSource::default()
                    }),
                    ..EnvVar::default()
                },
                value(
                    "URL",
                    "nats://$(ROUTE_USER):$(ROUTE_PASSWORD)@$(POD_IP):6222/$(LATER)",
                ),
                value("LATER", "defined too late"),
            ]),
            ..Container::default()
        };
        let pod = pod_with(container.clone(), Vec::new());
        let environment =
            resolve_environment(&facts(&pod), &container, &objects()).expect("resolved");
        let lookup = |name: &str| {
            environment
                .iter()
                .find(|(variable, _)| variable == name)
                .map(|(_, value)| value.as_str())
        };
        assert_eq!(lookup("TERN_POD_NAME"), Some("nats-1"));
        assert_eq!(lookup("NAMESPACE"), Some("messaging"));
        assert_eq!(lookup("POD_IP"), Some("10.250.7.3"));
        assert_eq!(lookup("NODE"), Some("tern-e2e-node"));
        assert_eq!(lookup("TIER"), Some("broker"));
        assert_eq!(lookup("ROUTE_USER"), Some("router"));
        assert_eq!(lookup("ROUTE_PASSWORD"), Some("s3cret"));
        assert_eq!(lookup("ABSENT"), None);
        assert_eq!(lookup("ABSENT_SECRET"), None);
        assert_eq!(lookup("CONFIG"), Some("port: 4222\n"));
        assert_eq!(
            lookup("URL"),
            Some("nats://router:s3cret@10.250.7.3:6222/$(LATER)")
        );
        assert_eq!(
            environment.first().map(|(name, _)| name.as_str()),
            Some("TERN_POD_NAME")
        );
    }

    #[test]
    fn a_missing_required_secret_key_is_a_configuration_error() {
        let container = Container {
            name: "tern".to_string(),
            env: Some(vec![secret_key("PASSWORD", "routes", "missing", false)]),
            ..Container::default()
        };
        let pod = pod_with(container.clone(), Vec::new());
        let error = resolve_environment(&facts(&pod), &container, &objects())
            .expect_err("the key is missing");
        assert!(matches!(error, NodeError::Configuration(_)), "{error}");
        assert_eq!(
            error.to_string(),
            "key \"missing\" of secret \"routes\" not found"
        );
        let absent = Container {
            env: Some(vec![secret_key("PASSWORD", "nowhere", "password", false)]),
            ..container
        };
        let error = resolve_environment(&facts(&pod), &absent, &objects())
            .expect_err("the secret is missing");
        assert_eq!(error.to_string(), "secret \"nowhere\" not found");
    }

    fn files_of(backing: Result<Backing, NodeError>) -> Option<Files> {
        match backing {
            Ok(Backing::Files(files)) => Some(files),
            _ => None,
        }
    }

    #[test]
    fn volumes_render_all_keys_or_chosen_items_with_modes() {
        let pod = pod_with(Container::default(), Vec::new());
        let all_keys = Volume {
            name: "config".to_string(),
            config_map: Some(ConfigMapVolumeSource {
                name: "settings".to_string(),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        };
        let files = files_of(volume_backing(&all_keys, &facts(&pod), &objects()))
            .expect("a config map volume has files");
        assert_eq!(
            files.keys().collect::<Vec<_>>(),
            vec!["nats-0.conf", "nats-1.conf"]
        );
        assert_eq!(files.get("nats-1.conf").map(|file| file.mode), Some(0o644));
        let chosen = Volume {
            name: "credentials".to_string(),
            secret: Some(SecretVolumeSource {
                secret_name: Some("routes".to_string()),
                default_mode: Some(0o440),
                items: Some(vec![
                    KeyToPath {
                        key: "password".to_string(),
                        path: "auth/password.txt".to_string(),
                        mode: Some(0o400),
                    },
                    KeyToPath {
                        key: "username".to_string(),
                        path: "user".to_string(),
                        mode: None,
                    },
                ]),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        };
        let files = files_of(volume_backing(&chosen, &facts(&pod), &objects()))
            .expect("a secret volume has files");
        assert_eq!(
            files.get("auth/password.txt"),
            Some(&FileEntry {
                content: b"s3cret".to_vec(),
                mode: 0o400
            })
        );
        assert_eq!(files.get("user").map(|file| file.mode), Some(0o440));
        assert_eq!(files.len(), 2);
    }

    #[test]
    fn missing_volume_sources_fail_unless_optional() {
        let pod = pod_with(Container::default(), Vec::new());
        let mut volume = Volume {
            name: "tls".to_string(),
            secret: Some(SecretVolumeSource {
                secret_name: Some("absent".to_string()),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        };
        let error = volume_backing(&volume, &facts(&pod), &objects()).expect_err("missing");
        assert!(matches!(error, NodeError::Configuration(_)));
        if let Some(secret) = volume.secret.as_mut() {
            secret.optional = Some(true);
        }
        assert_eq!(
            volume_backing(&volume, &facts(&pod), &objects()).ok(),
            Some(Backing::Files(Files::new()))
        );
        let escaping = Volume {
            name: "escape".to_string(),
            config_map: Some(ConfigMapVolumeSource {
                name: "settings".to_string(),
                items: Some(vec![KeyToPath {
                    key: "nats-0.conf".to_string(),
                    path: "../outside".to_string(),
                    mode: None,
                }]),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        };
        assert!(matches!(
            volume_backing(&escaping, &facts(&pod), &objects()),
            Err(NodeError::Unsupported(_))
        ));
    }

    #[test]
    fn atomic_writes_swap_the_data_link_and_drop_stale_names() {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let volume = directory.path().join("config");
        let file = |content: &str| FileEntry {
            content: content.as_bytes().to_vec(),
            mode: 0o644,
        };
        let first = Files::from([
            ("a.conf".to_string(), file("one")),
            ("old.conf".to_string(), file("old")),
            ("nested/b.conf".to_string(), file("two")),
        ]);
        write_files(&volume, &first, 1).expect("first write");
        assert_eq!(
            std::fs::read_to_string(volume.join("a.conf")).expect("a"),
            "one"
        );
        assert_eq!(
            std::fs::read_to_string(volume.join("nested/b.conf")).expect("b"),
            "two"
        );
        let second = Files::from([("a.conf".to_string(), file("three"))]);
        write_files(&volume, &second, 2).expect("second write");
        assert_eq!(
            std::fs::read_to_string(volume.join("a.conf")).expect("a"),
            "three"
        );
        assert!(std::fs::symlink_metadata(volume.join("old.conf")).is_err());
        assert!(std::fs::symlink_metadata(volume.join("nested")).is_err());
        assert!(!volume.join("..1").exists());
        assert_eq!(
            std::fs::read_link(volume.join("..data")).expect("link"),
            PathBuf::from("..2")
        );
    }

    #[test]
    fn mounts_resolve_volumes_and_sub_paths_parents_first() {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let config = directory.path().join("config");
        std::fs::create_dir_all(&config).expect("config");
        std::fs::write(config.join("nats-0.conf"), "port: 1").expect("file");
        let container = Container {
            volume_mounts: Some(vec![
                VolumeMount {
                    name: "tls".to_string(),
                    mount_path: "/etc/tern/tls/client".to_string(),
                    read_only: Some(true),
                    ..VolumeMount::default()
                },
                VolumeMount {
                    name: "config".to_string(),
                    mount_path: "/etc/tern".to_string(),
                    ..VolumeMount::default()
                },
                VolumeMount {
                    name: "config".to_string(),
                    mount_path: "/etc/single.conf".to_string(),
                    sub_path_expr: Some("$(POD).conf".to_string()),
                    ..VolumeMount::default()
                },
            ]),
            ..Container::default()
        };
        let paths = HashMap::from([
            ("config".to_string(), config.clone()),
            ("tls".to_string(), directory.path().join("tls")),
        ]);
        let mounts =
            plan_mounts(&container, &paths, &variables(&[("POD", "nats-0")])).expect("mounts");
        let targets: Vec<&str> = mounts.iter().map(|mount| mount.target.as_str()).collect();
        assert_eq!(
            targets,
            vec!["/etc/tern", "/etc/single.conf", "/etc/tern/tls/client"]
        );
        assert_eq!(mounts[1].source, config.join("nats-0.conf"));
        assert!(mounts[1].is_file);
        assert!(mounts[2].read_only);
        let unknown = Container {
            volume_mounts: Some(vec![VolumeMount {
                name: "nowhere".to_string(),
                mount_path: "/x".to_string(),
                ..VolumeMount::default()
            }]),
            ..Container::default()
        };
        assert!(plan_mounts(&unknown, &paths, &HashMap::new()).is_err());
    }

    #[test]
    fn mount_points_remember_exactly_what_they_created() {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let target = directory.path().join("etc/tern/config");
        let mut created = Vec::new();
        create_mount_point(&target, false, &mut created).expect("created");
        assert_eq!(
            created,
            vec![
                directory.path().join("etc"),
                directory.path().join("etc/tern"),
                target.clone()
            ]
        );
        let file = directory.path().join("etc/tern/single.conf");
        let mut more = Vec::new();
        create_mount_point(&file, true, &mut more).expect("created");
        assert_eq!(more, vec![file]);
        remove_created_paths(created.into_iter().chain(more).collect());
        assert!(!directory.path().join("etc").exists());
    }

    #[test]
    fn start_script_quotes_mounts_and_execs_its_arguments() {
        let mounts = vec![
            PlannedMount {
                source: PathBuf::from("/work/pods/ns/uid/volumes/config"),
                target: "/etc/tern/config".to_string(),
                read_only: true,
                is_file: false,
            },
            PlannedMount {
                source: PathBuf::from("/work/it's here"),
                target: "/data".to_string(),
                read_only: false,
                is_file: false,
            },
        ];
        let script = render_start_script(&mounts, Path::new("/work/hosts"), "nats-0", None);
        assert!(script.contains("mkdir -p '/etc/tern/config'\n"));
        assert!(
            script.contains("mount --bind '/work/pods/ns/uid/volumes/config' '/etc/tern/config'\n")
        );
        assert!(script.contains("mount --bind '/work/it'\\''s here' '/data'\n"));
        assert!(script.contains("mount -o remount,bind,ro '/etc/tern/config'\n"));
        assert!(!script.contains("remount,bind,ro '/data'"));
        assert!(script.contains("mount --bind '/work/hosts' /etc/hosts\n"));
        assert!(script.ends_with("exec \"$@\"\n"));
        let remount = script.find("remount").expect("a remount");
        let last_bind = script.rfind("mount --bind '/work/it").expect("a bind");
        assert!(remount > last_bind, "read-only remounts follow every bind");
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
    }

    fn pod_address(name: &str, last: u8, ready: bool) -> PodAddress {
        PodAddress {
            namespace: "messaging".to_string(),
            name: name.to_string(),
            hostname: name.to_string(),
            subdomain: Some("nats-headless".to_string()),
            labels: BTreeMap::from([("app".to_string(), "nats".to_string())]),
            address: Ipv4Addr::new(10, 250, 7, last),
            ready,
        }
    }

    fn service(name: &str, publish_not_ready: bool) -> Arc<Service> {
        Arc::new(Service {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some("messaging".to_string()),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                selector: Some(BTreeMap::from([("app".to_string(), "nats".to_string())])),
                publish_not_ready_addresses: Some(publish_not_ready),
                ..ServiceSpec::default()
            }),
            status: None,
        })
    }

    #[test]
    fn hosts_name_every_pod_and_each_service_by_one_selected_pod() {
        let pods = vec![
            pod_address("nats-1", 3, true),
            pod_address("nats-0", 2, false),
        ];
        let mut other = (*service("other", false)).clone();
        if let Some(spec) = other.spec.as_mut() {
            spec.selector = Some(BTreeMap::from([("app".to_string(), "other".to_string())]));
        }
        let services = [
            service("nats", false),
            service("nats-headless", true),
            Arc::new(other),
        ];
        let text = render_hosts(&host_entries(&pods, &services, "cluster.local"));
        assert_eq!(
            text,
            "127.0.0.1 localhost\n\
             ::1 localhost ip6-localhost ip6-loopback\n\
             10.250.7.2 nats-0.nats-headless.messaging.svc.cluster.local nats-0.nats-headless.messaging.svc nats-0\n\
             10.250.7.3 nats-1.nats-headless.messaging.svc.cluster.local nats-1.nats-headless.messaging.svc nats-1\n\
             10.250.7.3 nats.messaging.svc.cluster.local nats.messaging.svc\n\
             10.250.7.2 nats-headless.messaging.svc.cluster.local nats-headless.messaging.svc\n"
        );
    }

    #[test]
    fn a_service_without_ready_pods_is_not_listed() {
        let pods = vec![pod_address("nats-0", 2, false)];
        let entries = host_entries(&pods, &[service("nats", false)], "cluster.local");
        assert_eq!(entries.len(), 1);
    }

    #[test]
    fn pods_with_unsupported_shapes_are_refused_with_a_reason() {
        let runnable = Container {
            name: "tern".to_string(),
            command: Some(vec!["tern".to_string()]),
            ..Container::default()
        };
        let pod = pod_with(runnable.clone(), Vec::new());
        assert!(supported_container(&pod).is_ok());
        let mut two = pod.clone();
        if let Some(spec) = two.spec.as_mut() {
            spec.containers.push(runnable.clone());
        }
        let error = supported_container(&two).expect_err("two containers");
        assert!(error.to_string().contains("has 2"), "{error}");
        let no_command = pod_with(
            Container {
                command: None,
                ..runnable
            },
            Vec::new(),
        );
        assert!(matches!(
            supported_container(&no_command),
            Err(NodeError::Unsupported(_))
        ));
    }

    #[test]
    fn probe_ports_resolve_by_number_or_container_port_name() {
        let ports = vec![ContainerPort {
            name: Some("monitor".to_string()),
            container_port: 8222,
            ..ContainerPort::default()
        }];
        assert_eq!(resolve_port(&IntOrString::Int(4222), &ports), Ok(4222));
        assert_eq!(
            resolve_port(&IntOrString::String("monitor".to_string()), &ports),
            Ok(8222)
        );
        assert!(resolve_port(&IntOrString::String("client".to_string()), &ports).is_err());
        let defaults = probe_timing(&Probe::default());
        assert_eq!(defaults.period, Duration::from_secs(10));
        assert_eq!(defaults.timeout, Duration::from_secs(1));
        assert_eq!(defaults.failure_threshold, 3);
        assert_eq!(defaults.success_threshold, 1);
    }

    #[test]
    fn status_times_change_only_with_their_conditions() {
        let mut tracker = StatusTracker {
            address: Some(Ipv4Addr::new(10, 250, 7, 2)),
            ..StatusTracker::default()
        };
        let host = Ipv4Addr::new(10, 250, 7, 1);
        let pending = tracker.render("tern", "tern:1", host);
        assert_eq!(pending["phase"], "Pending");
        assert_eq!(pending["podIP"], "10.250.7.2");
        assert_eq!(tracker.render("tern", "tern:1", host), pending);
        tracker.start_time = Some(now());
        tracker.pid = Some(42);
        tracker.running_since = Some(now());
        tracker.started = true;
        tracker.ready = true;
        let running = tracker.render("tern", "tern:1", host);
        assert_eq!(running["phase"], "Running");
        let container = &running["containerStatuses"][0];
        assert_eq!(container["containerID"], "tern://42");
        assert_eq!(container["ready"], true);
        assert!(container["state"]["running"]["startedAt"].is_string());
        let ready = running["conditions"]
            .as_array()
            .and_then(|conditions| {
                conditions
                    .iter()
                    .find(|condition| condition["type"] == "Ready")
            })
            .cloned()
            .unwrap_or_default();
        assert_eq!(ready["status"], "True");
        tracker.failure = Some("nope".to_string());
        let failed = tracker.render("tern", "tern:1", host);
        assert_eq!(failed["phase"], "Failed");
        assert_eq!(failed["reason"], UNSUPPORTED_REASON);
        assert!(failed.get("containerStatuses").is_none());
    }
}
