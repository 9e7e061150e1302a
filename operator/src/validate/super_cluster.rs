//! SuperCluster → [`SuperClusterPlan`]: which members this operator runs, and what each of them
//! needs to join the others (its [`Membership`]).

use std::collections::{BTreeMap, BTreeSet};

use super::server_set::{Gateway, GatewayPeer};
use super::shared::{check_object_name, is_dns_label};
use super::{Environment, Problems, ValidationError};
use crate::crd::{NatsCluster, NatsClusterSpec, SuperCluster, SuperClusterMember, API_VERSION};

const KIND: &str = "SuperCluster";
/// Label on NatsClusters that are members of a super-cluster.
pub const SUPER_CLUSTER_LABEL: &str = "tern.dev/super-cluster";

/// What a member NatsCluster needs to join its super-cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub super_cluster: String,
    /// The member's name: its cluster name and gateway name.
    pub member: String,
    pub gateway: Gateway,
}

/// Where a local member's NatsCluster comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum MemberSource {
    /// The operator creates this NatsCluster (owned by the SuperCluster).
    Template(Box<NatsCluster>),
    /// An existing NatsCluster of this name, in the SuperCluster's namespace.
    Reference(String),
}

/// A member this operator runs.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalMember {
    pub source: MemberSource,
    pub membership: Membership,
}

/// The validated SuperCluster, seen from this operator's Kubernetes cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct SuperClusterPlan {
    pub name: String,
    pub namespace: String,
    pub uid: Option<String>,
    /// Sorted by member name.
    pub local_members: Vec<LocalMember>,
    /// Members run elsewhere (other Kubernetes clusters, or not by Tern), sorted.
    pub remote_members: Vec<String>,
}

/// Validates a SuperCluster as the operator of `environment.kubernetes_cluster_name` sees it.
pub fn validate_super_cluster(
    super_cluster: &SuperCluster,
    environment: &Environment,
) -> Result<SuperClusterPlan, ValidationError> {
    let name = super_cluster
        .metadata
        .name
        .clone()
        .ok_or(ValidationError::MissingMetadata {
            kind: KIND,
            what: "metadata.name",
        })?;
    let namespace = super_cluster
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_string());
    let spec = &super_cluster.spec;
    let mut problems = Problems::default();
    if !is_dns_label(&name) {
        problems.add("metadata.name", format!("{name:?} must be a DNS label"));
    }
    let gateway_port = match u16::try_from(spec.gateway.port) {
        Ok(port) if port > 0 => port,
        _ => {
            problems.add(
                "spec.gateway.port",
                format!("must be between 1 and 65535, got {}", spec.gateway.port),
            );
            1
        }
    };
    if spec.gateway.connect_retries < 0 {
        problems.add("spec.gateway.connectRetries", "must not be negative");
    }
    if spec.members.is_empty() {
        problems.add("spec.members", "needs at least one member");
    }
    let mut names = BTreeSet::new();
    for (index, member) in spec.members.iter().enumerate() {
        let field = format!("spec.members[{index}]");
        if !names.insert(member.name.as_str()) {
            problems.add(
                format!("{field}.name"),
                format!("{:?} is listed twice", member.name),
            );
        }
        check_member(member, &field, &mut problems);
    }
    let local_cluster = environment.kubernetes_cluster_name.as_deref();
    let is_local = |member: &SuperClusterMember| {
        member.kubernetes_cluster.is_some() && member.kubernetes_cluster.as_deref() == local_cluster
    };
    if local_cluster.is_none() {
        problems.add(
            "spec.members",
            "which members are local depends on the operator's --kubernetes-cluster-name, and none is set",
        );
    }
    let has_local = spec.members.iter().any(is_local);
    let scheme = if spec.gateway.tls.is_some() {
        "tls"
    } else {
        "nats"
    };
    // Every member's URLs as the local members dial them.
    let mut urls: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (index, member) in spec.members.iter().enumerate() {
        let member_urls = if is_local(member) {
            vec![format!(
                "{scheme}://{}-headless.{namespace}.svc.{}:{gateway_port}",
                object_name(member),
                environment.cluster_domain
            )]
        } else {
            if has_local && member.gateway.urls.is_empty() && member.kubernetes_cluster.is_some() {
                problems.add(
                    format!("spec.members[{index}].gateway.urls"),
                    format!(
                        "member {:?} runs in Kubernetes cluster {:?}: members in {:?} reach it only through gateway.urls",
                        member.name,
                        member.kubernetes_cluster.as_deref().unwrap_or_default(),
                        local_cluster.unwrap_or_default()
                    ),
                );
            }
            member.gateway.urls.clone()
        };
        urls.insert(member.name.as_str(), member_urls);
    }
    let mut local_members = Vec::new();
    let mut remote_members = Vec::new();
    for member in &spec.members {
        if !is_local(member) {
            remote_members.push(member.name.clone());
            continue;
        }
        let peers = urls
            .iter()
            .filter(|(peer, _)| **peer != member.name)
            .map(|(peer, peer_urls)| GatewayPeer {
                name: peer.to_string(),
                urls: peer_urls.clone(),
            })
            .collect();
        let membership = Membership {
            super_cluster: name.clone(),
            member: member.name.clone(),
            gateway: Gateway {
                port: gateway_port,
                tls: spec.gateway.tls.clone(),
                auth: spec.gateway.auth_secret_ref.clone(),
                reject_unknown_cluster: spec.gateway.reject_unknown_cluster,
                connect_retries: spec.gateway.connect_retries,
                expose: member.gateway.expose.clone(),
                peers,
            },
        };
        let source = match (&member.template, &member.nats_cluster_ref) {
            (Some(template), _) => MemberSource::Template(Box::new(member_cluster(
                &name,
                &namespace,
                super_cluster.metadata.uid.as_deref(),
                member,
                template,
            ))),
            (None, Some(reference)) => MemberSource::Reference(reference.name.clone()),
            // check_member reported it: a local member always has one of the two.
            (None, None) => continue,
        };
        local_members.push(LocalMember { source, membership });
    }
    local_members.sort_by(|a, b| a.membership.member.cmp(&b.membership.member));
    remote_members.sort();
    let plan = SuperClusterPlan {
        name: name.clone(),
        namespace: namespace.clone(),
        uid: super_cluster.metadata.uid.clone(),
        local_members,
        remote_members,
    };
    problems.into_result(KIND, &namespace, &name, plan)
}

/// Name of the NatsCluster behind a member.
fn object_name(member: &SuperClusterMember) -> &str {
    match &member.nats_cluster_ref {
        Some(reference) if member.template.is_none() => &reference.name,
        _ => &member.name,
    }
}

/// The CRD's CEL rules for one member.
fn check_member(member: &SuperClusterMember, field: &str, problems: &mut Problems) {
    check_object_name(&member.name, &format!("{field}.name"), problems);
    let managed = member.nats_cluster_ref.is_some() || member.template.is_some();
    if member.nats_cluster_ref.is_some() && member.template.is_some() {
        problems.add(field, "set natsClusterRef or template, not both");
    }
    if member.kubernetes_cluster.is_some() != managed {
        problems.add(
            format!("{field}.kubernetesCluster"),
            "a member run by a Tern operator (natsClusterRef or template) names its kubernetesCluster; an external member names neither",
        );
    }
    if !managed && member.gateway.urls.is_empty() {
        problems.add(
            format!("{field}.gateway.urls"),
            "an external member (neither natsClusterRef nor template) needs gateway.urls",
        );
    }
    if !managed && member.gateway.expose.is_some() {
        problems.add(
            format!("{field}.gateway.expose"),
            "gateway.expose applies only to members run by a Tern operator",
        );
    }
    if let Some(template) = &member.template {
        if template
            .cluster_name
            .as_ref()
            .is_some_and(|cluster_name| *cluster_name != member.name)
        {
            problems.add(
                format!("{field}.template.clusterName"),
                "must be absent or equal to the member name (gateway name = cluster name)",
            );
        }
    }
    for (index, url) in member.gateway.urls.iter().enumerate() {
        if let Err(message) = check_url(url, &["nats", "tls"]) {
            problems.add(format!("{field}.gateway.urls[{index}]"), message);
        }
    }
}

/// `scheme://host[:port][/path]` with one of `schemes`.
pub(crate) fn check_url(url: &str, schemes: &[&str]) -> Result<(), String> {
    let expected = schemes
        .iter()
        .map(|scheme| format!("{scheme}://"))
        .collect::<Vec<_>>()
        .join(", ");
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!("{url:?} is not a URL; use {expected}"));
    };
    if !schemes.contains(&scheme) {
        return Err(format!("{url:?} uses {scheme}://; use {expected}"));
    }
    let authority = rest.split('/').next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let (host, port) = match host_port.strip_prefix('[') {
        Some(bracketed) => match bracketed.split_once(']') {
            Some((host, after)) => (host, after.strip_prefix(':')),
            None => return Err(format!("{url:?} has an unclosed [")),
        },
        None => match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        },
    };
    if port.is_some_and(|port| port.parse::<u16>().is_err()) {
        return Err(format!("{url:?} has an invalid port"));
    }
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!("{url:?} has no host"));
    }
    Ok(())
}

/// The NatsCluster a template member becomes.
fn member_cluster(
    super_cluster: &str,
    namespace: &str,
    super_cluster_uid: Option<&str>,
    member: &SuperClusterMember,
    template: &NatsClusterSpec,
) -> NatsCluster {
    let mut spec = template.clone();
    spec.cluster_name = Some(member.name.clone());
    let mut cluster = NatsCluster::new(&member.name, spec);
    cluster.metadata.namespace = Some(namespace.to_string());
    cluster.metadata.labels = Some(BTreeMap::from([
        (
            "app.kubernetes.io/managed-by".to_string(),
            "tern-operator".to_string(),
        ),
        (SUPER_CLUSTER_LABEL.to_string(), super_cluster.to_string()),
    ]));
    cluster.metadata.owner_references = super_cluster_uid.map(|uid| {
        vec![
            k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                api_version: API_VERSION.to_string(),
                kind: KIND.to_string(),
                name: super_cluster.to_string(),
                uid: uid.to_string(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            },
        ]
    });
    cluster
}
