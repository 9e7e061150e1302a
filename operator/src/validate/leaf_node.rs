//! LeafNode → [`ServerSet`] with leaf node remotes.

use std::collections::BTreeSet;

use super::server_set::{Component, Owner, Remote, ServerSet};
use super::shared::{validate_common, CommonSpec};
use super::super_cluster::check_url;
use super::{Environment, Problems, ValidationError};
use crate::crd::{LeafNode, LeafNodeRemote, API_VERSION};

const KIND: &str = "LeafNode";
const WEBSOCKET_SCHEMES: &[&str] = &["ws", "wss"];
const PLAIN_SCHEMES: &[&str] = &["nats", "tls"];

/// Validates a LeafNode; `hubRef`s are resolved through `environment.nats_clusters`.
pub fn validate_leaf_node(
    leaf_node: &LeafNode,
    environment: &Environment,
) -> Result<ServerSet, ValidationError> {
    let name = leaf_node
        .metadata
        .name
        .clone()
        .ok_or(ValidationError::MissingMetadata {
            kind: KIND,
            what: "metadata.name",
        })?;
    let namespace = leaf_node
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_string());
    let spec = &leaf_node.spec;
    let mut problems = Problems::default();
    let owner = Owner {
        api_version: API_VERSION.to_string(),
        kind: KIND.to_string(),
        name: name.clone(),
        uid: leaf_node.metadata.uid.clone(),
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
        Component::LeafNode,
        &namespace,
        &common,
        environment,
        &mut problems,
    );
    if let Some(jetstream) = &spec.jetstream {
        if jetstream.domain.is_none() {
            problems.add(
                "spec.jetstream.domain",
                "a leaf node with JetStream needs a domain (different from its hub's), or its streams would join the hub's",
            );
        }
    }
    if spec.remotes.is_empty() {
        problems.add("spec.remotes", "needs at least one remote");
    }
    let mut names = BTreeSet::new();
    for (index, remote) in spec.remotes.iter().enumerate() {
        let field = format!("spec.remotes[{index}]");
        if !names.insert(remote.name.as_str()) {
            problems.add(
                format!("{field}.name"),
                format!("{:?} is listed twice", remote.name),
            );
        }
        check_remote(remote, &field, &mut problems);
        let urls = match &remote.hub_ref {
            Some(hub) => {
                let hub_namespace = hub.namespace.as_deref().unwrap_or(&namespace);
                match environment.nats_cluster(hub_namespace, &hub.name) {
                    Some(cluster) => {
                        let hub_field = format!("{field}.hubRef");
                        let Some(listener) = &cluster.spec.listeners.leafnodes else {
                            problems.add(
                                hub_field,
                                format!(
                                    "NatsCluster {hub_namespace}/{} has no leafnodes listener",
                                    hub.name
                                ),
                            );
                            continue;
                        };
                        let hub_cluster = cluster.spec.cluster_name.as_deref().unwrap_or(&hub.name);
                        if hub_cluster == set.cluster_name {
                            problems.add(
                                "spec.clusterName",
                                format!("{hub_cluster:?} is also the hub's cluster name; a leaf node's must differ"),
                            );
                        }
                        let hub_domain = cluster
                            .spec
                            .jetstream
                            .as_ref()
                            .and_then(|js| js.domain.as_deref());
                        let leaf_domain =
                            spec.jetstream.as_ref().and_then(|js| js.domain.as_deref());
                        if hub_domain.is_some() && hub_domain == leaf_domain {
                            problems.add(
                                "spec.jetstream.domain",
                                format!("{:?} is also the hub's JetStream domain; a leaf node's must differ", leaf_domain.unwrap_or_default()),
                            );
                        }
                        let scheme = if listener.tls.is_some() {
                            "tls"
                        } else {
                            "nats"
                        };
                        vec![format!(
                            "{scheme}://{}.{hub_namespace}.svc.{}:{}",
                            hub.name, environment.cluster_domain, listener.port
                        )]
                    }
                    None => {
                        set.waiting_for.push(format!(
                            "NatsCluster {hub_namespace}/{} ({field}.hubRef)",
                            hub.name
                        ));
                        continue;
                    }
                }
            }
            None => remote.urls.clone(),
        };
        set.leafnode_remotes.push(Remote {
            name: remote.name.clone(),
            urls,
            account: remote.account.clone(),
            credentials: remote.credentials_secret_ref.clone(),
            tls: remote.tls.clone(),
            deny_imports: remote.deny_imports.clone(),
            deny_exports: remote.deny_exports.clone(),
            websocket: remote.websocket.clone(),
        });
    }
    problems.into_result(KIND, &namespace, &name, set)
}

/// The CRD's rules for one remote.
fn check_remote(remote: &LeafNodeRemote, field: &str, problems: &mut Problems) {
    super::shared::check_object_name(&remote.name, &format!("{field}.name"), problems);
    if remote.urls.is_empty() == remote.hub_ref.is_none() {
        problems.add(format!("{field}.urls"), "set either urls or hubRef");
    }
    let all_schemes = [WEBSOCKET_SCHEMES, PLAIN_SCHEMES].concat();
    let mut websocket = 0;
    for (index, url) in remote.urls.iter().enumerate() {
        match check_url(url, &all_schemes) {
            Ok(()) => {
                if WEBSOCKET_SCHEMES
                    .iter()
                    .any(|scheme| url.starts_with(&format!("{scheme}://")))
                {
                    websocket += 1;
                }
            }
            Err(message) => problems.add(format!("{field}.urls[{index}]"), message),
        }
    }
    if websocket > 0 && websocket < remote.urls.len() {
        problems.add(
            format!("{field}.urls"),
            "one remote can not mix WebSocket (ws://, wss://) and plain (nats://, tls://) URLs",
        );
    }
    if remote.websocket.is_some() && (remote.urls.is_empty() || websocket < remote.urls.len()) {
        problems.add(
            format!("{field}.websocket"),
            "websocket settings need ws:// or wss:// URLs",
        );
    }
    for (list, subjects) in [
        ("denyImports", &remote.deny_imports),
        ("denyExports", &remote.deny_exports),
    ] {
        for (index, subject) in subjects.iter().enumerate() {
            if subject.is_empty() || subject.contains(char::is_whitespace) {
                problems.add(
                    format!("{field}.{list}[{index}]"),
                    format!("{subject:?} is not a subject"),
                );
            }
        }
    }
}
