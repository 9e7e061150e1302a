//! `NatsCluster`: one NATS cluster of Tern servers (a StatefulSet with full-mesh routes).

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::shared::{
    conditions_schema, AuthSpec, ClientServiceSpec, Conditions, ConfigSpec, Endpoints, ImageSpec,
    JetStreamSpec, LifecycleSpec, Listeners, PodDisruptionBudgetSpec, PodTemplate,
    UpdateStrategySpec,
};

fn default_replicas() -> i32 {
    3
}

/// A NATS cluster of Tern servers.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "tern.dev",
    version = "v1alpha1",
    kind = "NatsCluster",
    namespaced,
    status = "NatsClusterStatus",
    shortname = "nc",
    category = "tern",
    derive = "PartialEq",
    doc = "A NATS cluster of Tern servers: a StatefulSet with routes between every server, its config, Services and PodDisruptionBudget.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".spec.replicas"),
    printcolumn(name = "Ready Replicas", type_ = "integer", json_path = ".status.readyReplicas"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 40")
        .message("metadata.name must be a DNS label of at most 40 characters: it names Services, pods and per-server Services")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.jetstream) || self.replicas == 1 || self.replicas >= 3")
        .message("with JetStream, replicas must be 1 or at least 3: two servers lose quorum when either fails")
        .field_path(".replicas"),
    validation = Rule::new("has(self.clusterName) == has(oldSelf.clusterName) && (!has(self.clusterName) || self.clusterName == oldSelf.clusterName)")
        .message("clusterName is immutable: routes, gateways and JetStream placement use it")
        .field_path(".clusterName"),
    validation = Rule::new("(has(self.jetstream) && has(self.jetstream.fileStorage)) == (has(oldSelf.jetstream) && has(oldSelf.jetstream.fileStorage))")
        .message("jetstream.fileStorage can not be added or removed after creation: the StatefulSet's volume claim templates are immutable")
        .field_path(".jetstream")
)]
pub struct NatsClusterSpec {
    /// Number of servers.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 99))]
    pub replicas: i32,
    #[serde(default)]
    pub image: ImageSpec,
    /// NATS cluster name (and gateway name in a super-cluster); absent: metadata.name.
    /// Server names are `<clusterName>-<ordinal>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 40),
        regex(pattern = r"^[A-Za-z0-9][-A-Za-z0-9_]*$")
    )]
    pub cluster_name: Option<String>,
    #[serde(default)]
    pub listeners: Listeners,
    #[serde(default)]
    pub service: ClientServiceSpec,
    /// Present: JetStream is on.
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

impl Default for NatsClusterSpec {
    fn default() -> Self {
        Self {
            replicas: default_replicas(),
            image: ImageSpec::default(),
            cluster_name: None,
            listeners: Listeners::default(),
            service: ClientServiceSpec::default(),
            jetstream: None,
            auth: AuthSpec::default(),
            lifecycle: LifecycleSpec::default(),
            update_strategy: UpdateStrategySpec::default(),
            pod_disruption_budget: PodDisruptionBudgetSpec::default(),
            pod_template: PodTemplate::default(),
            config: ConfigSpec::default(),
        }
    }
}

/// What the controller observed, written through the status subresource only.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NatsClusterStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// One per type: Ready, SpecValid, ConfigApplied, Progressing, AdvertiseAddressesResolved,
    /// ScaleDownBlocked, JetStreamReady.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Conditions,
    /// Servers that exist (for the scale subresource).
    #[serde(default)]
    pub replicas: i32,
    #[serde(default)]
    pub ready_replicas: i32,
    /// Label selector of the servers' pods (for the scale subresource and autoscalers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Hash of the rendered config the servers should run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Endpoints>,
}
