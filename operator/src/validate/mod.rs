//! Validation: a custom resource as written becomes a [`ServerSet`], the one value the
//! renderer reads.
//!
//! Contract:
//! - The checks are the CRD's (its CEL rules and OpenAPI constraints) plus those only the
//!   operator can make (references to other resources, names the renderer derives, overrides
//!   of operator-owned keys). Objects applied through an API server pass the first half
//!   already; files given to `tern-operator render` have seen no API server, so every rule is
//!   checked here again.
//! - Every problem is reported, each naming the field it concerns as a path from the object's
//!   root (`spec.members[1].gateway.urls`).
//! - Pure: what the world looks like (this Kubernetes cluster's name, other resources) comes
//!   in as an [`Environment`]; nothing is read from a cluster.
//! - References that are not there yet are not errors: they become `waiting_for` entries and
//!   the part that needs them is left out until they appear.

mod leaf_node;
mod nats_cluster;
mod server_set;
mod shared;
mod super_cluster;
mod units;

use std::collections::BTreeMap;
use std::fmt;

use crate::crd::NatsCluster;

pub use leaf_node::validate_leaf_node;
pub use nats_cluster::validate_nats_cluster;
pub use server_set::*;
pub use super_cluster::{
    validate_super_cluster, LocalMember, MemberSource, Membership, SuperClusterPlan,
    SUPER_CLUSTER_LABEL,
};
pub use units::{go_duration, quantity_bytes};

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Path from the object's root, such as `spec.listeners.client.port`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}: {}", self.field, self.message)
    }
}

/// Why a resource can not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum ValidationError {
    /// Every field that is wrong, one per line.
    #[error("{} {}/{} is invalid:\n{}", kind, namespace, name, join(.errors))]
    Invalid {
        kind: &'static str,
        namespace: String,
        name: String,
        errors: Vec<FieldError>,
    },
    #[error("{kind} has no {what}")]
    MissingMetadata {
        kind: &'static str,
        what: &'static str,
    },
}

impl ValidationError {
    /// The field errors, for callers that report them one by one (conditions, tests).
    pub fn field_errors(&self) -> &[FieldError] {
        match self {
            Self::Invalid { errors, .. } => errors,
            Self::MissingMetadata { .. } => &[],
        }
    }
}

fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|error| format!("  {error}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What the world looks like to a validation or a render: facts an operator reads from its
/// flags and its Kubernetes cluster, given as values.
#[derive(Debug, Clone)]
pub struct Environment {
    /// This operator's `--kubernetes-cluster-name`: which super-cluster members are local.
    pub kubernetes_cluster_name: Option<String>,
    /// DNS suffix of Services (`cluster.local` unless the cluster says otherwise).
    pub cluster_domain: String,
    /// Image tag used when a resource names none: the operator's own version.
    pub default_image_tag: String,
    /// NatsClusters that references (`natsClusterRef`, `hubRef`) may point at, by namespace
    /// and name.
    pub nats_clusters: BTreeMap<(String, String), NatsCluster>,
    /// External addresses of exposed Services (LoadBalancer ingress), by namespace and
    /// Service name: host name or IP address.
    pub external_addresses: BTreeMap<(String, String), String>,
}

impl Default for Environment {
    fn default() -> Self {
        Self {
            kubernetes_cluster_name: None,
            cluster_domain: "cluster.local".to_string(),
            default_image_tag: env!("CARGO_PKG_VERSION").to_string(),
            nats_clusters: BTreeMap::new(),
            external_addresses: BTreeMap::new(),
        }
    }
}

impl Environment {
    pub fn nats_cluster(&self, namespace: &str, name: &str) -> Option<&NatsCluster> {
        self.nats_clusters
            .get(&(namespace.to_string(), name.to_string()))
    }

    pub fn external_address(&self, namespace: &str, service: &str) -> Option<&str> {
        self.external_addresses
            .get(&(namespace.to_string(), service.to_string()))
            .map(String::as_str)
    }
}

/// Collects field errors while a resource is checked.
#[derive(Debug, Default)]
pub(crate) struct Problems {
    errors: Vec<FieldError>,
}

impl Problems {
    pub(crate) fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    pub(crate) fn into_result<T>(
        self,
        kind: &'static str,
        namespace: &str,
        name: &str,
        value: T,
    ) -> Result<T, ValidationError> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(ValidationError::Invalid {
                kind,
                namespace: namespace.to_string(),
                name: name.to_string(),
                errors: self.errors,
            })
        }
    }
}
