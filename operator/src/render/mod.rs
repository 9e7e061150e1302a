//! Rendering: validated resources → broker configs and Kubernetes objects.
//!
//! Contract:
//! - Pure and deterministic: the same resource and [`Environment`] give byte-identical output.
//!   Objects come sorted by kind and name; every map is a `BTreeMap`.
//! - Every config is checked by the broker's own parser before it is returned (see
//!   [`conf::check_with_broker`]), so the operator never ships a config the broker rejects.
//! - Each object carries the set's labels, an owner reference once the owner's UID is known,
//!   and a `tern.dev/spec-hash` annotation over its own content.
//! - What can not be rendered yet (external addresses not assigned, referenced resources not
//!   found) is left out and listed in [`Rendered::waiting_for`]; that is not an error.

pub mod conf;
pub mod layout;
pub mod metadata;
mod nats_conf;
mod objects;
mod output;
mod stateful_set;

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use crate::crd::{LeafNode, NatsCluster, SuperCluster};
use crate::validate::{
    validate_leaf_node, validate_nats_cluster, validate_super_cluster, Environment, MemberSource,
    Membership, ServerSet, ValidationError,
};
use layout::{config_file_name, CONFIG_DIRECTORY, GATEWAY_PORT_NAME, LEAFNODE_PORT_NAME};
use metadata::{sha256, SPEC_HASH_ANNOTATION};
pub use output::{output_files, yaml_stream};

/// Why rendering failed.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// An override touches what the operator renders, or has no config form.
    #[error("{field}: {message}")]
    Override { field: String, message: String },
    /// The broker's parser refused a rendered config: a bug in the renderer, or an override
    /// the broker does not accept.
    #[error("the broker rejects the config rendered for {file}: {message}")]
    BrokerRejected { file: String, message: String },
    #[error("cannot serialize {kind} {name}: {source}")]
    Serialize {
        kind: &'static str,
        name: String,
        source: serde_json::Error,
    },
}

/// A rendered object, ready for server-side apply.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    ConfigMap(Box<ConfigMap>),
    NatsCluster(Box<NatsCluster>),
    PodDisruptionBudget(Box<PodDisruptionBudget>),
    Service(Box<Service>),
    ServiceAccount(Box<ServiceAccount>),
    StatefulSet(Box<StatefulSet>),
}

impl Object {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ConfigMap(_) => "ConfigMap",
            Self::NatsCluster(_) => "NatsCluster",
            Self::PodDisruptionBudget(_) => "PodDisruptionBudget",
            Self::Service(_) => "Service",
            Self::ServiceAccount(_) => "ServiceAccount",
            Self::StatefulSet(_) => "StatefulSet",
        }
    }

    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Self::ConfigMap(object) => &object.metadata,
            Self::NatsCluster(object) => &object.metadata,
            Self::PodDisruptionBudget(object) => &object.metadata,
            Self::Service(object) => &object.metadata,
            Self::ServiceAccount(object) => &object.metadata,
            Self::StatefulSet(object) => &object.metadata,
        }
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Self::ConfigMap(object) => &mut object.metadata,
            Self::NatsCluster(object) => &mut object.metadata,
            Self::PodDisruptionBudget(object) => &mut object.metadata,
            Self::Service(object) => &mut object.metadata,
            Self::ServiceAccount(object) => &mut object.metadata,
            Self::StatefulSet(object) => &mut object.metadata,
        }
    }

    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or_default()
    }

    /// The object as JSON, with `apiVersion` and `kind`.
    pub fn to_value(&self) -> Result<serde_json::Value, RenderError> {
        fn value(
            object: &impl Serialize,
            kind: &'static str,
            name: &str,
        ) -> Result<serde_json::Value, RenderError> {
            serde_json::to_value(object).map_err(|source| RenderError::Serialize {
                kind,
                name: name.to_string(),
                source,
            })
        }
        let (kind, name) = (self.kind(), self.name());
        match self {
            Self::ConfigMap(object) => value(object, kind, name),
            Self::NatsCluster(object) => value(object, kind, name),
            Self::PodDisruptionBudget(object) => value(object, kind, name),
            Self::Service(object) => value(object, kind, name),
            Self::ServiceAccount(object) => value(object, kind, name),
            Self::StatefulSet(object) => value(object, kind, name),
        }
    }

    /// Sets the spec-hash annotation from the object's content (without that annotation).
    fn annotate_spec_hash(&mut self) -> Result<(), RenderError> {
        if let Some(annotations) = self.metadata_mut().annotations.as_mut() {
            annotations.remove(SPEC_HASH_ANNOTATION);
        }
        let hash = sha256(self.to_value()?.to_string().as_bytes());
        self.metadata_mut()
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(SPEC_HASH_ANNOTATION.to_string(), hash);
        Ok(())
    }
}

/// Everything one resource becomes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rendered {
    /// Config file name (`<pod>.conf`) → text; the same files are in the ConfigMaps.
    pub configs: BTreeMap<String, String>,
    /// Sorted by kind, then name.
    pub objects: Vec<Object>,
    /// What is left out until it exists, sorted.
    pub waiting_for: Vec<String>,
    /// One entry per set of servers rendered (a member of a super-cluster is one set), sorted
    /// by name: what a controller needs to report status.
    pub sets: Vec<SetSummary>,
}

/// What a controller reports about one rendered set of servers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetSummary {
    /// The StatefulSet's name (and the set's).
    pub name: String,
    pub namespace: String,
    pub replicas: i32,
    /// The pods' label selector, as `key=value,...`.
    pub selector: String,
    /// Hash over every config file of the set.
    pub config_hash: String,
    /// `nats://<client Service>.<namespace>.svc.<domain>:<port>`.
    pub client_url: String,
    /// `ws://` or `wss://` URL of the WebSocket listener through the client Service.
    pub websocket_url: Option<String>,
    /// JetStream runs on these servers: removing one can lose data or quorum.
    pub jetstream: bool,
    /// The monitoring port, where `/varz` reports each server's `config_digest`.
    pub monitor_port: u16,
    /// Pod name → `sha256:<hex>` of its config file: what its `/varz` `config_digest` reads
    /// once it runs the current config.
    pub config_digests: BTreeMap<String, String>,
}

impl Rendered {
    fn absorb(&mut self, other: Rendered) {
        self.configs.extend(other.configs);
        self.objects.extend(other.objects);
        self.waiting_for.extend(other.waiting_for);
        self.sets.extend(other.sets);
    }

    fn finish(mut self) -> Result<Self, RenderError> {
        for object in &mut self.objects {
            object.annotate_spec_hash()?;
        }
        self.objects
            .sort_by(|a, b| (a.kind(), a.name()).cmp(&(b.kind(), b.name())));
        self.waiting_for.sort();
        self.waiting_for.dedup();
        self.sets.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(self)
    }
}

/// A NatsCluster, standing alone or (with `membership`) as a super-cluster member.
pub fn render_nats_cluster(
    cluster: &NatsCluster,
    membership: Option<&Membership>,
    environment: &Environment,
) -> Result<Rendered, RenderError> {
    let set = validate_nats_cluster(cluster, membership, environment)?;
    render_server_set(&set, environment)?.finish()
}

/// A LeafNode.
pub fn render_leaf_node(
    leaf_node: &LeafNode,
    environment: &Environment,
) -> Result<Rendered, RenderError> {
    let set = validate_leaf_node(leaf_node, environment)?;
    render_server_set(&set, environment)?.finish()
}

/// The members of a SuperCluster this operator runs: the NatsClusters created from templates,
/// and every member's objects with its gateway block. Members referring to a NatsCluster that
/// `environment` does not hold are waited for.
pub fn render_super_cluster(
    super_cluster: &SuperCluster,
    environment: &Environment,
) -> Result<Rendered, RenderError> {
    let plan = validate_super_cluster(super_cluster, environment)?;
    let mut rendered = Rendered::default();
    for member in &plan.local_members {
        let cluster = match &member.source {
            MemberSource::Template(cluster) => {
                rendered.objects.push(Object::NatsCluster(cluster.clone()));
                Some(cluster.as_ref())
            }
            MemberSource::Reference(name) => {
                let found = environment.nats_cluster(&plan.namespace, name);
                if found.is_none() {
                    rendered.waiting_for.push(format!(
                        "NatsCluster {}/{name} (member {})",
                        plan.namespace, member.membership.member
                    ));
                }
                found
            }
        };
        if let Some(cluster) = cluster {
            let set = validate_nats_cluster(cluster, Some(&member.membership), environment)?;
            rendered.absorb(render_server_set(&set, environment)?);
        }
    }
    rendered.finish()
}

/// One set of servers: its configs and objects (without spec hashes; see `Rendered::finish`).
fn render_server_set(set: &ServerSet, environment: &Environment) -> Result<Rendered, RenderError> {
    let mut waiting_for = set.waiting_for.clone();
    let mut configs = BTreeMap::new();
    let mut restart_view = None;
    let check = nats_conf::broker_check(set);
    for ordinal in 0..set.replicas {
        let conf = nats_conf::server_config(set, ordinal, environment, &mut waiting_for)?;
        let file = config_file_name(set, ordinal);
        let text = format!(
            "# Generated by tern-operator from {} {}/{} for server {}; do not edit.\n{}",
            set.owner.kind,
            set.namespace,
            set.owner.name,
            set.server_name(ordinal),
            conf.to_text()
        );
        conf::check_with_broker(&text, &Path::new(CONFIG_DIRECTORY).join(&file), &check).map_err(
            |message| RenderError::BrokerRejected {
                file: file.clone(),
                message,
            },
        )?;
        if ordinal == 0 {
            restart_view = Some(nats_conf::restart_view(&conf));
        }
        configs.insert(file, text);
    }
    let config_hash = sha256(
        configs
            .iter()
            .map(|(file, text)| format!("{file}\n{text}"))
            .collect::<String>()
            .as_bytes(),
    );
    let restart_hash = match set.reload_policy {
        crate::crd::ReloadPolicy::AlwaysRestart => config_hash.clone(),
        crate::crd::ReloadPolicy::PreferReload => sha256(
            restart_view
                .map(|view| view.to_text())
                .unwrap_or_default()
                .as_bytes(),
        ),
    };
    let mut objects = vec![
        Object::ConfigMap(Box::new(objects::config_map(set, &configs, &config_hash))),
        Object::Service(Box::new(objects::headless_service(set))),
        Object::Service(Box::new(objects::client_service(set))),
        Object::ServiceAccount(Box::new(objects::service_account(set))),
        Object::StatefulSet(Box::new(stateful_set::stateful_set(set, &restart_hash))),
    ];
    if let Some(max_unavailable) = set.disruption_budget {
        objects.push(Object::PodDisruptionBudget(Box::new(
            objects::pod_disruption_budget(set, max_unavailable),
        )));
    }
    let ports = objects::ports(set);
    let exposures = [
        (
            set.gateway
                .as_ref()
                .and_then(|gateway| gateway.expose.as_ref()),
            GATEWAY_PORT_NAME,
        ),
        (
            set.listeners
                .leafnodes
                .as_ref()
                .and_then(|leafnodes| leafnodes.expose.as_ref()),
            LEAFNODE_PORT_NAME,
        ),
    ];
    for (expose, port_name) in exposures {
        let port = ports.iter().find(|port| port.name == port_name);
        if let (Some(expose), Some(port)) = (expose, port) {
            objects.extend(
                objects::exposed_services(set, expose, port)
                    .into_iter()
                    .map(|service| Object::Service(Box::new(service))),
            );
        }
    }
    let service_host = format!(
        "{}.{}.svc.{}",
        set.name, set.namespace, environment.cluster_domain
    );
    let summary = SetSummary {
        name: set.name.clone(),
        namespace: set.namespace.clone(),
        replicas: i32::from(set.replicas),
        selector: metadata::selector_string(set),
        config_hash,
        client_url: format!("nats://{service_host}:{}", set.listeners.client_port),
        websocket_url: set.listeners.websocket.as_ref().map(|websocket| {
            let scheme = if websocket.tls.is_some() { "wss" } else { "ws" };
            format!("{scheme}://{service_host}:{}", websocket.port)
        }),
        jetstream: set.jetstream.is_some(),
        monitor_port: set.listeners.monitor_port,
        config_digests: (0..set.replicas)
            .filter_map(|ordinal| {
                let text = configs.get(&config_file_name(set, ordinal))?;
                Some((set.pod_name(ordinal), sha256(text.as_bytes())))
            })
            .collect(),
    };
    Ok(Rendered {
        configs,
        objects,
        waiting_for,
        sets: vec![summary],
    })
}
