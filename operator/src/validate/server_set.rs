//! [`ServerSet`]: a validated StatefulSet's worth of Tern servers, whichever resource asked for
//! it. A NatsCluster, a super-cluster member and a LeafNode all become one; the renderer knows
//! nothing else.

use std::collections::BTreeMap;

use crate::crd::{
    AuthSpec, ClientServiceSpec, ExposeSpec, PodTemplate, PullPolicy, ReloadPolicy, RemoteTlsSpec,
    RemoteWebsocketSpec, SecretKeyReference, SecretReference, TlsSpec,
};

/// What kind of servers a set runs; it is part of the frozen pod selector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Component {
    NatsCluster,
    LeafNode,
}

impl Component {
    /// Value of the `app.kubernetes.io/component` label.
    pub fn label(self) -> &'static str {
        match self {
            Self::NatsCluster => "nats-cluster",
            Self::LeafNode => "leaf-node",
        }
    }
}

/// The resource the rendered objects belong to (their owner reference).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    /// Known once the resource exists in a cluster; without it no owner reference is rendered.
    pub uid: Option<String>,
}

/// A validated set of servers.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerSet {
    pub owner: Owner,
    pub component: Component,
    /// Base name of every object (StatefulSet, Services, ConfigMap) and of the pods.
    pub name: String,
    pub namespace: String,
    /// NATS cluster name; servers are `<cluster_name>-<ordinal>`.
    pub cluster_name: String,
    pub replicas: u16,
    /// Label `tern.dev/super-cluster` for members of a super-cluster.
    pub super_cluster: Option<String>,
    pub image: Image,
    pub listeners: ValidListeners,
    pub client_service: ClientServiceSpec,
    pub jetstream: Option<JetStream>,
    pub auth: AuthSpec,
    pub lifecycle: Lifecycle,
    pub reload_policy: ReloadPolicy,
    /// `maxUnavailable` of the PodDisruptionBudget, when there is one.
    pub disruption_budget: Option<i32>,
    pub pod_template: PodTemplate,
    pub gateway: Option<Gateway>,
    pub leafnode_remotes: Vec<Remote>,
    /// Raw nats.conf keys merged over the rendered config (checked not to touch
    /// operator-owned keys).
    pub overrides: BTreeMap<String, serde_json::Value>,
    /// References not resolvable yet; what they feed is left out until they are.
    pub waiting_for: Vec<String>,
}

impl ServerSet {
    pub fn pod_name(&self, ordinal: u16) -> String {
        format!("{}-{ordinal}", self.name)
    }

    pub fn server_name(&self, ordinal: u16) -> String {
        format!("{}-{ordinal}", self.cluster_name)
    }

    pub fn headless_service_name(&self) -> String {
        format!("{}-headless", self.name)
    }

    pub fn config_map_name(&self) -> String {
        format!("{}-config", self.name)
    }

    /// DNS name of one pod through the headless Service.
    pub fn pod_host(&self, ordinal: u16, cluster_domain: &str) -> String {
        format!(
            "{}.{}.{}.svc.{cluster_domain}",
            self.pod_name(ordinal),
            self.headless_service_name(),
            self.namespace
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// `repository:tag` or `repository:tag@digest`.
    pub reference: String,
    pub pull_policy: PullPolicy,
    pub pull_secrets: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidListeners {
    pub client_port: u16,
    pub client_tls: Option<TlsSpec>,
    pub route_port: u16,
    pub route_tls: Option<TlsSpec>,
    pub route_auth: Option<SecretReference>,
    pub route_pool_size: Option<i32>,
    pub monitor_port: u16,
    pub leafnodes: Option<ValidLeafnodeListener>,
    pub websocket: Option<ValidWebsocketListener>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidLeafnodeListener {
    pub port: u16,
    pub tls: Option<TlsSpec>,
    pub auth: Option<SecretReference>,
    pub expose: Option<ExposeSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidWebsocketListener {
    pub port: u16,
    pub tls: Option<TlsSpec>,
    pub compression: bool,
    pub allowed_origins: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JetStream {
    pub domain: Option<String>,
    pub file_storage: Option<FileStorage>,
    /// `max_memory_store` in bytes; 0 turns memory storage off.
    pub max_memory_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStorage {
    /// The volume claim's request, as written (a Kubernetes quantity).
    pub size: String,
    pub storage_class_name: Option<String>,
    /// `max_file_store` in bytes.
    pub max_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lifecycle {
    pub lame_duck_duration: String,
    pub lame_duck_grace_period: String,
    pub termination_grace_period_seconds: i64,
}

/// Gateway settings of a super-cluster member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gateway {
    pub port: u16,
    pub tls: Option<TlsSpec>,
    pub auth: Option<SecretReference>,
    pub reject_unknown_cluster: bool,
    pub connect_retries: i32,
    pub expose: Option<ExposeSpec>,
    /// The other members, sorted by name.
    pub peers: Vec<GatewayPeer>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayPeer {
    pub name: String,
    pub urls: Vec<String>,
}

/// One validated leaf node remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    pub name: String,
    /// Never empty: a remote whose hub is not known yet is left out (see `waiting_for`).
    pub urls: Vec<String>,
    pub account: Option<String>,
    pub credentials: Option<SecretKeyReference>,
    pub tls: Option<RemoteTlsSpec>,
    pub deny_imports: Vec<String>,
    pub deny_exports: Vec<String>,
    pub websocket: Option<RemoteWebsocketSpec>,
}
