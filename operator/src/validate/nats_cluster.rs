//! NatsCluster → [`ServerSet`], joined to a super-cluster when it is a member of one.

use super::server_set::{Component, Owner, ServerSet};
use super::shared::{check_distinct_ports, listener_ports, validate_common, CommonSpec};
use super::super_cluster::Membership;
use super::{Environment, Problems, ValidationError};
use crate::crd::{NatsCluster, API_VERSION};

const KIND: &str = "NatsCluster";

/// Validates a NatsCluster; `membership` is the super-cluster it is a member of, if any.
pub fn validate_nats_cluster(
    cluster: &NatsCluster,
    membership: Option<&Membership>,
    environment: &Environment,
) -> Result<ServerSet, ValidationError> {
    let (name, namespace) = identity(cluster)?;
    let spec = &cluster.spec;
    let mut problems = Problems::default();
    let owner = Owner {
        api_version: API_VERSION.to_string(),
        kind: KIND.to_string(),
        name: name.clone(),
        uid: cluster.metadata.uid.clone(),
    };
    let common = CommonSpec {
        replicas: spec.replicas,
        image: &spec.image,
        cluster_name: spec.cluster_name.as_deref(),
        listeners: &spec.listeners,
        service: &spec.service,
        jetstream: spec.jetstream.as_ref(),
        auth: &spec.auth,
        lifecycle: &spec.lifecycle,
        update_strategy: &spec.update_strategy,
        pod_disruption_budget: &spec.pod_disruption_budget,
        pod_template: &spec.pod_template,
        config: &spec.config,
    };
    let mut set = validate_common(
        owner,
        Component::NatsCluster,
        &namespace,
        &common,
        environment,
        &mut problems,
    );
    if let Some(membership) = membership {
        if set.cluster_name != membership.member {
            problems.add(
                "spec.clusterName",
                format!(
                    "cluster name {:?} differs from its SuperCluster {} member name {:?}: a gateway's name is its cluster's name, so set spec.clusterName to {:?}",
                    set.cluster_name, membership.super_cluster, membership.member, membership.member
                ),
            );
        }
        let mut ports = listener_ports(&set.listeners);
        ports.push((
            format!(
                "SuperCluster {} spec.gateway.port",
                membership.super_cluster
            ),
            membership.gateway.port,
        ));
        if problems.is_empty() {
            check_distinct_ports(&ports, &mut problems);
        }
        set.cluster_name = membership.member.clone();
        set.super_cluster = Some(membership.super_cluster.clone());
        set.gateway = Some(membership.gateway.clone());
    }
    problems.into_result(KIND, &namespace, &name, set)
}

/// Name and namespace; a resource read from a file may lack the namespace, which then is
/// `default` as kubectl would make it.
pub(crate) fn identity(cluster: &NatsCluster) -> Result<(String, String), ValidationError> {
    let name = cluster
        .metadata
        .name
        .clone()
        .ok_or(ValidationError::MissingMetadata {
            kind: KIND,
            what: "metadata.name",
        })?;
    let namespace = cluster
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_string());
    Ok((name, namespace))
}
