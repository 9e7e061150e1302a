//! Manifests as users write them: a YAML stream of NatsCluster, SuperCluster and LeafNode
//! documents, rendered without a Kubernetes cluster (`tern-operator render -f`).
//!
//! Resources in one file see each other: a SuperCluster's `natsClusterRef` and a LeafNode's
//! `hubRef` resolve to NatsClusters of the same file. A NatsCluster that a SuperCluster in the
//! file runs as a local member is rendered as that member (with its gateway block), not again
//! on its own.

use std::collections::BTreeSet;

use serde::Deserialize;

use crate::crd::{LeafNode, NatsCluster, SuperCluster, API_VERSION};
use crate::render::{
    render_leaf_node, render_nats_cluster, render_super_cluster, RenderError, Rendered,
};
use crate::validate::{validate_super_cluster, Environment, MemberSource};

/// One resource of a manifest.
#[derive(Debug, Clone, PartialEq)]
pub enum Resource {
    NatsCluster(Box<NatsCluster>),
    SuperCluster(Box<SuperCluster>),
    LeafNode(Box<LeafNode>),
}

impl Resource {
    /// `Kind namespace/name`, as rendered output names its source.
    pub fn describe(&self) -> String {
        let (kind, metadata) = match self {
            Self::NatsCluster(object) => ("NatsCluster", &object.metadata),
            Self::SuperCluster(object) => ("SuperCluster", &object.metadata),
            Self::LeafNode(object) => ("LeafNode", &object.metadata),
        };
        format!(
            "{kind} {}/{}",
            metadata.namespace.as_deref().unwrap_or("default"),
            metadata.name.as_deref().unwrap_or_default()
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("document {document}: {source}")]
    Yaml {
        document: usize,
        source: serde_yaml::Error,
    },
    #[error("document {document}: {api_version} {kind} is not a Tern resource (expected {API_VERSION} NatsCluster, SuperCluster or LeafNode)")]
    UnknownKind {
        document: usize,
        api_version: String,
        kind: String,
    },
    #[error("{source_name}: {error}")]
    Render {
        source_name: String,
        error: RenderError,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypeMeta {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
}

/// Parses every document of a YAML stream (documents are numbered from 1 in errors).
pub fn parse_manifests(text: &str) -> Result<Vec<Resource>, ManifestError> {
    let mut resources = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let number = index + 1;
        let yaml = |source| ManifestError::Yaml {
            document: number,
            source,
        };
        let value = serde_yaml::Value::deserialize(document).map_err(yaml)?;
        if value.is_null() {
            continue;
        }
        let type_meta: TypeMeta = serde_yaml::from_value(value.clone()).map_err(yaml)?;
        let resource = match (type_meta.api_version.as_str(), type_meta.kind.as_str()) {
            (API_VERSION, "NatsCluster") => {
                Resource::NatsCluster(Box::new(serde_yaml::from_value(value).map_err(yaml)?))
            }
            (API_VERSION, "SuperCluster") => {
                Resource::SuperCluster(Box::new(serde_yaml::from_value(value).map_err(yaml)?))
            }
            (API_VERSION, "LeafNode") => {
                Resource::LeafNode(Box::new(serde_yaml::from_value(value).map_err(yaml)?))
            }
            _ => {
                return Err(ManifestError::UnknownKind {
                    document: number,
                    api_version: type_meta.api_version,
                    kind: type_meta.kind,
                })
            }
        };
        resources.push(resource);
    }
    Ok(resources)
}

/// Renders each resource, in file order, with the file's NatsClusters added to `environment`.
/// Returns each rendered resource with its description.
pub fn render_manifests(
    resources: &[Resource],
    environment: &Environment,
) -> Result<Vec<(String, Rendered)>, ManifestError> {
    let mut environment = environment.clone();
    for resource in resources {
        if let Resource::NatsCluster(cluster) = resource {
            let key = (
                cluster
                    .metadata
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".to_string()),
                cluster.metadata.name.clone().unwrap_or_default(),
            );
            environment
                .nats_clusters
                .insert(key, cluster.as_ref().clone());
        }
    }
    // NatsClusters some SuperCluster of the file runs as members.
    let mut members = BTreeSet::new();
    for resource in resources {
        if let Resource::SuperCluster(super_cluster) = resource {
            if let Ok(plan) = validate_super_cluster(super_cluster, &environment) {
                for member in plan.local_members {
                    if let MemberSource::Reference(name) = member.source {
                        members.insert((plan.namespace.clone(), name));
                    }
                }
            }
        }
    }
    let mut rendered = Vec::new();
    for resource in resources {
        let source_name = resource.describe();
        let result = match resource {
            Resource::NatsCluster(cluster) => {
                let key = (
                    cluster
                        .metadata
                        .namespace
                        .clone()
                        .unwrap_or_else(|| "default".to_string()),
                    cluster.metadata.name.clone().unwrap_or_default(),
                );
                if members.contains(&key) {
                    continue;
                }
                render_nats_cluster(cluster, None, &environment)
            }
            Resource::SuperCluster(super_cluster) => {
                render_super_cluster(super_cluster, &environment)
            }
            Resource::LeafNode(leaf_node) => render_leaf_node(leaf_node, &environment),
        };
        let output = result.map_err(|error| ManifestError::Render {
            source_name: source_name.clone(),
            error,
        })?;
        rendered.push((source_name, output));
    }
    Ok(rendered)
}
