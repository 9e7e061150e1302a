//! `LeafNode`: Tern servers at the edge that connect out to a hub as leaf nodes.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::shared::{
    conditions_schema, AuthSpec, ClientServiceSpec, Conditions, ConfigSpec, ImageSpec,
    JetStreamSpec, LifecycleSpec, Listeners, PodDisruptionBudgetSpec, PodTemplate,
    SecretKeyReference, SecretReference, UpdateStrategySpec,
};

fn default_replicas() -> i32 {
    1
}

/// Edge servers connected to a hub over leaf node connections.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "tern.dev",
    version = "v1alpha1",
    kind = "LeafNode",
    namespaced,
    status = "LeafNodeStatus",
    shortname = "nln",
    category = "tern",
    derive = "PartialEq",
    doc = "Tern servers that connect out to a hub as leaf nodes (nats://, tls:// or wss://), optionally with their own JetStream domain.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Remotes", type_ = "string", json_path = ".status.conditions[?(@.type==\"RemotesConnected\")].status"),
    printcolumn(name = "Domain", type_ = "string", json_path = ".spec.jetstream.domain"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 40")
        .message("metadata.name must be a DNS label of at most 40 characters: it names Services, pods and per-server Services")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.jetstream) || has(self.jetstream.domain)")
        .message("a leaf node with JetStream needs jetstream.domain (different from its hub's), or its streams would join the hub's")
        .field_path(".jetstream.domain"),
    validation = Rule::new("!has(self.jetstream) || self.replicas == 1 || self.replicas >= 3")
        .message("with JetStream, replicas must be 1 or at least 3: two servers lose quorum when either fails")
        .field_path(".replicas"),
    validation = Rule::new("has(self.clusterName) == has(oldSelf.clusterName) && (!has(self.clusterName) || self.clusterName == oldSelf.clusterName)")
        .message("clusterName is immutable")
        .field_path(".clusterName"),
    validation = Rule::new("(has(self.jetstream) && has(self.jetstream.fileStorage)) == (has(oldSelf.jetstream) && has(oldSelf.jetstream.fileStorage))")
        .message("jetstream.fileStorage can not be added or removed after creation: the StatefulSet's volume claim templates are immutable")
        .field_path(".jetstream")
)]
pub struct LeafNodeSpec {
    /// Number of servers; more than one form a cluster with routes, each server with its own
    /// connections to the hub.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 99))]
    pub replicas: i32,
    #[serde(default)]
    pub image: ImageSpec,
    /// Cluster name (must differ from the hub's); absent: metadata.name. Server names are
    /// `<clusterName>-<ordinal>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 40),
        regex(pattern = r"^[A-Za-z0-9][-A-Za-z0-9_]*$")
    )]
    pub cluster_name: Option<String>,
    /// Connections to hubs.
    #[schemars(length(min = 1, max = 32))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub remotes: Vec<LeafNodeRemote>,
    #[serde(default)]
    pub listeners: Listeners,
    #[serde(default)]
    pub service: ClientServiceSpec,
    /// Present: JetStream is on, in its own domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jetstream: Option<JetStreamSpec>,
    #[serde(default)]
    pub auth: AuthSpec,
    #[serde(default)]
    pub lifecycle: LifecycleSpec,
    #[serde(default)]
    pub update_strategy: UpdateStrategySpec,
    #[serde(default)]
    pub pod_disruption_budget: PodDisruptionBudgetSpec,
    #[serde(default)]
    pub pod_template: PodTemplate,
    #[serde(default)]
    pub config: ConfigSpec,
}

/// One connection to a hub.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("(has(self.urls) && size(self.urls) > 0) != has(self.hubRef)")
        .message("set either urls or hubRef")
        .field_path(".urls"),
    validation = Rule::new("!has(self.urls) || self.urls.all(u, url(u).getScheme() in ['ws', 'wss']) || self.urls.all(u, url(u).getScheme() in ['nats', 'tls'])")
        .message("one remote can not mix WebSocket (ws://, wss://) and plain (nats://, tls://) URLs")
        .field_path(".urls"),
    validation = Rule::new("!has(self.websocket) || (has(self.urls) && size(self.urls) > 0 && self.urls.all(u, url(u).getScheme() in ['ws', 'wss']))")
        .message("websocket settings need ws:// or wss:// URLs")
        .field_path(".websocket")
)]
pub struct LeafNodeRemote {
    /// Names this remote in status and in mounted file paths.
    #[schemars(
        length(min = 1, max = 40),
        regex(pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Hub URLs: `nats://`, `tls://`, `ws://` or `wss://` (for WebSocket, the path must reach the
    /// hub's WebSocket listener).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    // Bounded, so the API server's estimate of the CEL rules' cost stays within its budget.
    #[schemars(length(max = 16), inner(length(max = 512)))]
    #[x_kube(validation = Rule::new("self.all(u, isURL(u) && url(u).getScheme() in ['nats', 'tls', 'ws', 'wss'])")
        .message("remote URLs use nats://, tls://, ws:// or wss://"))]
    pub urls: Vec<String>,
    /// A NatsCluster in this Kubernetes cluster with a leaf node listener: the URL comes from
    /// its client Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub_ref: Option<HubReference>,
    /// Local account bound to this connection; absent: the global account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub account: Option<String>,
    /// A credentials file (user JWT and seed) the leaf node presents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretKeyReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<RemoteTlsSpec>,
    /// Subjects not received from the hub.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny_imports: Vec<String>,
    /// Subjects not sent to the hub.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny_exports: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub websocket: Option<RemoteWebsocketSpec>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HubReference {
    #[schemars(length(min = 1, max = 40))]
    pub name: String,
    /// Namespace of the hub NatsCluster; absent: this LeafNode's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// TLS toward the hub.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RemoteTlsSpec {
    /// A Secret whose `ca.crt` verifies the hub; absent: the image's system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretReference>,
    /// A `kubernetes.io/tls` Secret presented as the client certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate_secret_ref: Option<SecretReference>,
    /// TLS before the hub's INFO line (hubs behind TLS-terminating load balancers).
    #[serde(default)]
    pub handshake_first: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RemoteWebsocketSpec {
    /// Ask for permessage-deflate.
    #[serde(default)]
    pub compression: bool,
    /// Send unmasked frames (only where no proxy inspects the stream).
    #[serde(default)]
    pub no_masking: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeafNodeStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// One per type: Ready, SpecValid, ConfigApplied, Progressing, RemotesConnected,
    /// JetStreamReady.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Conditions,
    #[serde(default)]
    pub replicas: i32,
    #[serde(default)]
    pub ready_replicas: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub remotes: Vec<RemoteStatus>,
    /// JetStream domain and API prefix, for mirrors defined on the hub side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jetstream: Option<LeafJetStreamStatus>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RemoteStatus {
    pub name: String,
    #[serde(default)]
    pub connected: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeafJetStreamStatus {
    pub domain: String,
    /// `$JS.<domain>.API`: the prefix hub-side mirrors and sources use to reach this domain.
    pub api_prefix: String,
}
