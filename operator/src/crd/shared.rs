//! Spec and status pieces shared by `NatsCluster`, `SuperCluster` and `LeafNode`.
//!
//! Every default lives in the schema (through `#[serde(default = ...)]`, which schemars copies
//! into the CRD), so an object read back from the API server shows what the operator runs with
//! and GitOps tools see no drift. Rules that relate two fields are CEL rules next to the
//! fields; rules about a single value are OpenAPI constraints. The Rust validation in
//! `crate::validate` enforces the same rules for objects that never went through an API server
//! (`tern-operator render -f`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, EnvVar, LocalObjectReference, PodSecurityContext, ResourceRequirements,
    SecurityContext, Toleration, TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The image repository used when a resource names none.
pub const DEFAULT_IMAGE_REPOSITORY: &str = "tern";
pub const DEFAULT_CLIENT_PORT: i32 = 4222;
pub const DEFAULT_ROUTE_PORT: i32 = 6222;
pub const DEFAULT_MONITOR_PORT: i32 = 8222;
pub const DEFAULT_GATEWAY_PORT: i32 = 7222;
pub const DEFAULT_LEAFNODE_PORT: i32 = 7422;
pub const DEFAULT_WEBSOCKET_PORT: i32 = 8080;
/// The broker refuses a shorter `lame_duck_duration`.
pub const MINIMUM_LAME_DUCK_SECONDS: i64 = 30;
/// Time the broker needs after lame duck to close listeners and flush, on top of lame duck.
pub const SHUTDOWN_MARGIN_SECONDS: i64 = 10;

/// A Go-style duration such as `30s`, `1m30s` or `500ms`.
pub const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$";
/// A DNS-1035 label: what Service names (and so our object names) must be.
pub const DNS_LABEL_PATTERN: &str = r"^[a-z]([-a-z0-9]*[a-z0-9])?$";
/// Names that end up in server names, gateway names and JetStream domains: no spaces, no dots
/// (subjects use dots), nothing a config file would need to quote twice.
pub const NATS_NAME_PATTERN: &str = r"^[A-Za-z0-9][-A-Za-z0-9_]*$";

fn default_image_repository() -> String {
    DEFAULT_IMAGE_REPOSITORY.to_string()
}
fn default_client_port() -> i32 {
    DEFAULT_CLIENT_PORT
}
fn default_route_port() -> i32 {
    DEFAULT_ROUTE_PORT
}
fn default_monitor_port() -> i32 {
    DEFAULT_MONITOR_PORT
}
fn default_leafnode_port() -> i32 {
    DEFAULT_LEAFNODE_PORT
}
fn default_websocket_port() -> i32 {
    DEFAULT_WEBSOCKET_PORT
}
fn default_true() -> bool {
    true
}
fn default_lame_duck_duration() -> String {
    "30s".to_string()
}
fn default_lame_duck_grace_period() -> String {
    "10s".to_string()
}
fn default_termination_grace_period_seconds() -> i64 {
    60
}
fn default_max_unavailable() -> i32 {
    1
}
fn default_auth_key() -> String {
    "auth.conf".to_string()
}

/// The broker image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageSpec {
    /// Image repository of the Tern broker (the image runs `tern`).
    #[serde(default = "default_image_repository")]
    #[schemars(length(min = 1))]
    pub repository: String,
    /// Image tag; when absent, the operator's own version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Image digest (`sha256:...`); pins the image in addition to the tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^sha256:[a-f0-9]{64}$"))]
    pub digest: Option<String>,
    #[serde(default)]
    pub pull_policy: PullPolicy,
    /// Secrets used to pull the image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pull_secrets: Vec<LocalObjectReference>,
}

impl Default for ImageSpec {
    fn default() -> Self {
        Self {
            repository: default_image_repository(),
            tag: None,
            digest: None,
            pull_policy: PullPolicy::default(),
            pull_secrets: Vec::new(),
        }
    }
}

/// When the kubelet pulls the image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PullPolicy {
    Always,
    #[default]
    IfNotPresent,
    Never,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "Always",
            Self::IfNotPresent => "IfNotPresent",
            Self::Never => "Never",
        }
    }
}

/// A Secret in the resource's namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretReference {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// One key of a Secret in the resource's namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyReference {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret; it becomes a file name, so no slashes.
    #[schemars(length(min = 1), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// TLS for one listener, from Secrets (cert-manager `Certificate`s produce exactly these).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// A `kubernetes.io/tls` Secret: `tls.crt` and `tls.key`, and `ca.crt` when `caSecretRef`
    /// is absent and peers are verified.
    pub secret_ref: SecretReference,
    /// A Secret whose `ca.crt` verifies peers; defaults to `ca.crt` of `secretRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretReference>,
    /// Require and verify client certificates (routes and gateways always verify peers).
    #[serde(default)]
    pub verify: bool,
    /// Start with the TLS handshake instead of the plaintext INFO line (for TLS-terminating
    /// proxies that expect TLS first).
    #[serde(default)]
    pub handshake_first: bool,
}

/// The listeners of every server.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "self.client.port != self.routes.port && self.client.port != self.monitor.port && self.routes.port != self.monitor.port \
     && (!has(self.leafnodes) || !(self.leafnodes.port in [self.client.port, self.routes.port, self.monitor.port])) \
     && (!has(self.websocket) || !(self.websocket.port in [self.client.port, self.routes.port, self.monitor.port])) \
     && (!has(self.websocket) || !has(self.leafnodes) || self.websocket.port != self.leafnodes.port)"
).message("every listener needs its own port").field_path(".client.port"))]
pub struct Listeners {
    #[serde(default)]
    pub client: ClientListener,
    /// Routes between the servers of one cluster (rendered when there is more than one server).
    #[serde(default)]
    pub routes: RouteListener,
    /// HTTP monitoring; the probes use its `/healthz`.
    #[serde(default)]
    pub monitor: MonitorListener,
    /// Accept leaf node connections (this cluster is a hub). Absent: no leaf node listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leafnodes: Option<LeafnodeListener>,
    /// Accept clients over WebSocket. Absent: no WebSocket listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub websocket: Option<WebsocketListener>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientListener {
    #[serde(default = "default_client_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
}

impl Default for ClientListener {
    fn default() -> Self {
        Self {
            port: default_client_port(),
            tls: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteListener {
    #[serde(default = "default_route_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// TLS between the servers; peers are always verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
    /// A `kubernetes.io/basic-auth` Secret (`username`, `password`) the servers of this
    /// cluster present to each other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_secret_ref: Option<SecretReference>,
    /// Route connections per server pair (nats-server 2.10 `pool_size`); absent: the broker's
    /// default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1, max = 32))]
    pub pool_size: Option<i32>,
}

impl Default for RouteListener {
    fn default() -> Self {
        Self {
            port: default_route_port(),
            tls: None,
            auth_secret_ref: None,
            pool_size: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MonitorListener {
    #[serde(default = "default_monitor_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
}

impl Default for MonitorListener {
    fn default() -> Self {
        Self {
            port: default_monitor_port(),
        }
    }
}

/// The hub side of leaf node connections.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeafnodeListener {
    #[serde(default = "default_leafnode_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
    /// A `kubernetes.io/basic-auth` Secret leaf nodes must present; absent: leaf nodes
    /// authenticate like clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_secret_ref: Option<SecretReference>,
    /// Reach this listener from outside the Kubernetes cluster through LoadBalancer Services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expose: Option<ExposeSpec>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebsocketListener {
    #[serde(default = "default_websocket_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// TLS on the pod's port; absent, the listener is plain (`no_tls`), as behind an ingress
    /// that terminates TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
    /// Offer permessage-deflate compression.
    #[serde(default)]
    pub compression: bool,
    /// Browser origins allowed to connect; empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_origins: Vec<String>,
}

/// External exposure of a listener through LoadBalancer Services. With `perServer`, each server
/// gets its own Service and advertises its own address; otherwise one Service fronts them all
/// and every server advertises its address. The address is rendered into the config only once
/// the Service has one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExposeSpec {
    #[serde(default = "default_true")]
    pub per_server: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_class: Option<String>,
    #[serde(default)]
    pub external_traffic_policy: TrafficPolicy,
    /// Client CIDRs allowed through the load balancer; empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub load_balancer_source_ranges: Vec<String>,
}

/// `Local` keeps the client's address and avoids a second hop; `Cluster` spreads load across
/// nodes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TrafficPolicy {
    Cluster,
    #[default]
    Local,
}

impl TrafficPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cluster => "Cluster",
            Self::Local => "Local",
        }
    }
}

/// The client Service.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientServiceSpec {
    #[serde(default, rename = "type")]
    pub service_type: ClientServiceType,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ClientServiceType {
    #[default]
    ClusterIP,
    LoadBalancer,
    NodePort,
}

impl ClientServiceType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClusterIP => "ClusterIP",
            Self::LoadBalancer => "LoadBalancer",
            Self::NodePort => "NodePort",
        }
    }
}

/// JetStream persistence. Present: JetStream is on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.fileStorage) || has(self.memoryStorage)")
        .message("JetStream needs fileStorage, memoryStorage or both"),
    validation = Rule::new("has(self.domain) == has(oldSelf.domain) && (!has(self.domain) || self.domain == oldSelf.domain)")
        .message("jetstream.domain is immutable: streams and mirrors address the domain by name")
        .field_path(".domain")
)]
pub struct JetStreamSpec {
    /// JetStream domain; leaf nodes need one different from their hub's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 64),
        regex(pattern = r"^[A-Za-z0-9][-A-Za-z0-9_]*$")
    )]
    pub domain: Option<String>,
    /// A PersistentVolumeClaim per server for streams on disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_storage: Option<FileStorageSpec>,
    /// Memory for memory-backed streams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_storage: Option<MemoryStorageSpec>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.maxBytes) || quantity(string(self.maxBytes)).compareTo(quantity(string(self.size))) <= 0")
        .message("fileStorage.maxBytes can not exceed fileStorage.size")
        .field_path(".maxBytes"),
    validation = Rule::new("quantity(string(self.size)).compareTo(quantity(string(oldSelf.size))) >= 0")
        .message("fileStorage.size can only grow")
        .field_path(".size"),
    validation = Rule::new("has(self.storageClassName) == has(oldSelf.storageClassName) && (!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)")
        .message("fileStorage.storageClassName is immutable: volume claim templates can not change")
        .field_path(".storageClassName")
)]
pub struct FileStorageSpec {
    /// Size of each server's volume claim.
    #[schemars(schema_with = "bounded_quantity_schema")]
    pub size: Quantity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub storage_class_name: Option<String>,
    /// JetStream's `max_file_store`; absent: 90% of `size`, never the broker's auto-sizing
    /// (which shrinks across restarts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "bounded_quantity_schema")]
    pub max_bytes: Option<Quantity>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemoryStorageSpec {
    /// JetStream's `max_memory_store`.
    pub max_bytes: Quantity,
}

/// Client authentication and accounts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthSpec {
    /// A Secret key holding a nats.conf fragment (`authorization { ... }`, `accounts { ... }`,
    /// `no_auth_user`), included by every server; changes reload without restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_secret_ref: Option<AuthConfigSecretReference>,
    /// The system account's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub system_account: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthConfigSecretReference {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    #[serde(default = "default_auth_key")]
    #[schemars(regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// Lame duck on the way down: a stopping server first stops accepting, then closes its clients
/// spread over `lameDuckDuration`, so they reconnect elsewhere without a thundering herd.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("duration(self.lameDuckDuration) >= duration('30s')")
        .message("lameDuckDuration must be at least 30s (the broker's minimum)")
        .field_path(".lameDuckDuration"),
    validation = Rule::new("duration(self.lameDuckGracePeriod) < duration(self.lameDuckDuration)")
        .message("lameDuckGracePeriod must be shorter than lameDuckDuration")
        .field_path(".lameDuckGracePeriod"),
    validation = Rule::new("self.terminationGracePeriodSeconds >= (duration(self.lameDuckDuration) + duration(self.lameDuckGracePeriod)).getSeconds() + 10")
        .message("terminationGracePeriodSeconds must be at least lameDuckDuration + lameDuckGracePeriod + 10s, or the kubelet kills servers in the middle of lame duck")
        .field_path(".terminationGracePeriodSeconds")
)]
pub struct LifecycleSpec {
    #[serde(default = "default_lame_duck_duration")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$"))]
    pub lame_duck_duration: String,
    /// Wait this long after entering lame duck before closing the first client.
    #[serde(default = "default_lame_duck_grace_period")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$"))]
    pub lame_duck_grace_period: String,
    #[serde(default = "default_termination_grace_period_seconds")]
    #[schemars(range(min = 40))]
    pub termination_grace_period_seconds: i64,
}

impl Default for LifecycleSpec {
    fn default() -> Self {
        Self {
            lame_duck_duration: default_lame_duck_duration(),
            lame_duck_grace_period: default_lame_duck_grace_period(),
            termination_grace_period_seconds: default_termination_grace_period_seconds(),
        }
    }
}

/// How configuration changes reach running servers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateStrategySpec {
    #[serde(default)]
    pub reload_policy: ReloadPolicy,
}

/// `PreferReload`: changes the broker can reload go out as a new ConfigMap that each server
/// picks up by itself; only the others restart pods, one at a time. `AlwaysRestart`: every
/// change restarts pods, one at a time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ReloadPolicy {
    #[default]
    PreferReload,
    AlwaysRestart,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodDisruptionBudgetSpec {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Never 0: that would block node drains forever.
    #[serde(default = "default_max_unavailable")]
    #[schemars(range(min = 1))]
    pub max_unavailable: i32,
}

impl Default for PodDisruptionBudgetSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            max_unavailable: default_max_unavailable(),
        }
    }
}

/// The pod fields users may set; the operator owns the rest of the pod.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplate {
    /// Extra pod labels (never part of the StatefulSet's selector).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Extra environment variables of the broker container; names starting with `TERN_` are
    /// the operator's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    /// Pod security context; absent: non-root (uid and gid 1000), RuntimeDefault seccomp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<PodSecurityContext>,
    /// Broker container security context; absent: read-only root file system, no privilege
    /// escalation, all capabilities dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_security_context: Option<SecurityContext>,
    /// Run as this ServiceAccount instead of the one the operator creates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// Absent: spread across nodes (required) and zones (preferred). Empty: no constraints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_spread_constraints: Option<Vec<TopologySpreadConstraint>>,
}

/// Raw nats.conf settings for what the spec does not cover.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigSpec {
    /// nats.conf keys merged over the rendered config (maps merge key by key). Keys the
    /// operator renders itself are refused, naming the spec field that controls them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub overrides: BTreeMap<String, serde_json::Value>,
}

fn preserve_unknown_fields(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// A quantity (`50Gi`, or a number) of bounded length: the API server estimates the cost of
/// the CEL rules that compare quantities from the longest string a field may hold, and refuses
/// the CRD when an unbounded one makes the estimate exceed its budget.
pub fn bounded_quantity_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "x-kubernetes-int-or-string": true,
        "maxLength": 64,
    })
}

/// Status conditions, one per type; see `ConditionType` for the meaning of each.
pub type Conditions = Vec<Condition>;

/// The schema of `status.conditions`: a list keyed by `type`, so there is one per type.
pub fn conditions_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut schema = <Vec<Condition> as JsonSchema>::json_schema(generator);
    schema.insert("x-kubernetes-list-type".to_string(), "map".into());
    schema.insert(
        "x-kubernetes-list-map-keys".to_string(),
        serde_json::json!(["type"]),
    );
    schema
}

/// Condition types the controllers set. Each resource uses the subset that applies to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConditionType {
    /// Everything is running as specified: the summary.
    Ready,
    /// The spec is valid; when False, the message names the field.
    SpecValid,
    /// Every server runs the current config (`/varz` config digest matches).
    ConfigApplied,
    /// A rollout (restart of servers one at a time) is under way.
    Progressing,
    /// External addresses of exposed listeners are known and advertised.
    AdvertiseAddressesResolved,
    /// Scale-down is refused (JetStream would lose data or quorum).
    ScaleDownBlocked,
    /// JetStream is enabled and current on every server.
    JetStreamReady,
    /// Every local super-cluster member is ready.
    MembersReady,
    /// Every member has outbound gateways to every other member.
    GatewaysConnected,
    /// Every leaf node remote is connected.
    RemotesConnected,
}

impl ConditionType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "Ready",
            Self::SpecValid => "SpecValid",
            Self::ConfigApplied => "ConfigApplied",
            Self::Progressing => "Progressing",
            Self::AdvertiseAddressesResolved => "AdvertiseAddressesResolved",
            Self::ScaleDownBlocked => "ScaleDownBlocked",
            Self::JetStreamReady => "JetStreamReady",
            Self::MembersReady => "MembersReady",
            Self::GatewaysConnected => "GatewaysConnected",
            Self::RemotesConnected => "RemotesConnected",
        }
    }
}

/// Where clients and peers reach a cluster, published in status for apps and tools.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Endpoints {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub websocket: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leafnodes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
}
