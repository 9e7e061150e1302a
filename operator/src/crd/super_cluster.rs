//! `SuperCluster`: NATS clusters joined by gateways, across Kubernetes clusters.
//!
//! The same manifest is applied in every Kubernetes cluster. Each operator runs the members
//! whose `kubernetesCluster` equals its own `--kubernetes-cluster-name` (local members) and
//! reaches the others through their `gateway.urls` (or, for members in the same Kubernetes
//! cluster, through their Services).

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::nats_cluster::NatsClusterSpec;
use super::shared::{
    conditions_schema, Conditions, ExposeSpec, SecretReference, TlsSpec, DEFAULT_GATEWAY_PORT,
};

fn default_gateway_port() -> i32 {
    DEFAULT_GATEWAY_PORT
}
fn default_true() -> bool {
    true
}
fn default_connect_retries() -> i32 {
    10
}

/// NATS clusters joined by gateways into one super-cluster.
// Printer columns repeat `type_ = "string"`, which this lint mistakes for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "tern.dev",
    version = "v1alpha1",
    kind = "SuperCluster",
    namespaced,
    status = "SuperClusterStatus",
    shortname = "nsc",
    category = "tern",
    derive = "PartialEq",
    doc = "NATS clusters joined by gateways. Apply the same manifest in every Kubernetes cluster: each operator runs the members that name its Kubernetes cluster.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Local Members",
        type_ = "string",
        json_path = ".status.localMembers"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct SuperClusterSpec {
    #[serde(default)]
    pub gateway: GatewaySpec,
    /// The member clusters; each member's name is its NATS cluster name and gateway name.
    #[schemars(length(min = 1, max = 64))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub members: Vec<SuperClusterMember>,
}

/// Gateway settings every member shares.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewaySpec {
    #[serde(default = "default_gateway_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// TLS between gateways; every member must trust the others' CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
    /// A `kubernetes.io/basic-auth` Secret with the same content in every Kubernetes cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_secret_ref: Option<SecretReference>,
    /// Refuse gateways that are not members.
    #[serde(default = "default_true")]
    pub reject_unknown_cluster: bool,
    /// Attempts to reach a gateway learned by gossip before giving up.
    #[serde(default = "default_connect_retries")]
    #[schemars(range(min = 0))]
    pub connect_retries: i32,
}

impl Default for GatewaySpec {
    fn default() -> Self {
        Self {
            port: default_gateway_port(),
            tls: None,
            auth_secret_ref: None,
            reject_unknown_cluster: true,
            connect_retries: default_connect_retries(),
        }
    }
}

/// One member cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!(has(self.natsClusterRef) && has(self.template))")
        .message("set natsClusterRef or template, not both"),
    validation = Rule::new("has(self.kubernetesCluster) == (has(self.natsClusterRef) || has(self.template))")
        .message("a member run by a Tern operator (natsClusterRef or template) names its kubernetesCluster; an external member names neither")
        .field_path(".kubernetesCluster"),
    validation = Rule::new("has(self.natsClusterRef) || has(self.template) || (has(self.gateway.urls) && size(self.gateway.urls) > 0)")
        .message("an external member (neither natsClusterRef nor template) needs gateway.urls")
        .field_path(".gateway.urls"),
    validation = Rule::new("!has(self.gateway.expose) || has(self.natsClusterRef) || has(self.template)")
        .message("gateway.expose applies only to members run by a Tern operator")
        .field_path(".gateway.expose"),
    validation = Rule::new("!has(self.template) || !has(self.template.clusterName) || self.template.clusterName == self.name")
        .message("template.clusterName must be absent or equal to the member name (gateway name = cluster name)")
        .field_path(".template.clusterName")
)]
pub struct SuperClusterMember {
    /// NATS cluster name and gateway name; also names the NatsCluster a template creates.
    #[schemars(
        length(min = 1, max = 40),
        regex(pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// The Kubernetes cluster whose operator runs this member (its `--kubernetes-cluster-name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub kubernetes_cluster: Option<String>,
    /// An existing NatsCluster, in this namespace, that becomes this member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats_cluster_ref: Option<NatsClusterReference>,
    /// The spec of a NatsCluster the operator creates (named after the member) for this member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Box<NatsClusterSpec>>,
    #[serde(default)]
    pub gateway: MemberGateway,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NatsClusterReference {
    #[schemars(length(min = 1, max = 40))]
    pub name: String,
}

/// How the other members reach this one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberGateway {
    /// Gateway URLs (`nats://` or `tls://`) that members in other Kubernetes clusters dial,
    /// such as DNS names of this member's load balancers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    // Bounded, so the API server's estimate of the CEL rules' cost stays within its budget.
    #[schemars(length(max = 16), inner(length(max = 512)))]
    #[x_kube(validation = Rule::new("self.all(u, isURL(u) && url(u).getScheme() in ['nats', 'tls'])")
        .message("gateway URLs use nats:// or tls://"))]
    pub urls: Vec<String>,
    /// Expose this member's gateways outside its Kubernetes cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expose: Option<ExposeSpec>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SuperClusterStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// One per type: Ready, SpecValid, MembersReady, AdvertiseAddressesResolved,
    /// GatewaysConnected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Conditions,
    /// Comma-separated names of the members this operator runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_members: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub members: Vec<MemberStatus>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberStatus {
    pub name: String,
    /// Run by this operator.
    #[serde(default)]
    pub local: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    /// Gateway URLs this member advertises (local members with known addresses).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub advertised_urls: Vec<String>,
    /// Members this one has an outbound gateway to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outbound_gateways: Vec<String>,
}
