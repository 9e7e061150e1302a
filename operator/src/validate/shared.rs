//! Checks of the spec fields NatsCluster and LeafNode share, building the common part of a
//! [`ServerSet`].

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::server_set::{
    Component, FileStorage, Image, JetStream, Lifecycle, Owner, ServerSet, ValidLeafnodeListener,
    ValidListeners, ValidWebsocketListener,
};
use super::units::{go_duration, quantity_bytes};
use super::{Environment, Problems};
use crate::crd::{
    AuthSpec, ClientServiceSpec, ConfigSpec, ImageSpec, JetStreamSpec, LifecycleSpec, Listeners,
    PodDisruptionBudgetSpec, PodTemplate, UpdateStrategySpec, MINIMUM_LAME_DUCK_SECONDS,
    SHUTDOWN_MARGIN_SECONDS,
};

/// Longest object name: leaves room for `-<ordinal>-leafnodes` within a 63-character DNS label.
pub(crate) const MAX_NAME_LENGTH: usize = 40;
/// `max_file_store` as a share of the volume when the spec gives none, leaving room for the
/// file system and JetStream's own metadata.
const DEFAULT_FILE_STORE_PERCENT: u64 = 90;
/// Environment variables the operator sets on the broker container.
pub(crate) const RESERVED_ENV_PREFIX: &str = "TERN_";

/// The spec fields NatsCluster and LeafNode have in common, borrowed from either.
pub(crate) struct CommonSpec<'a> {
    pub replicas: i32,
    pub image: &'a ImageSpec,
    pub cluster_name: Option<&'a str>,
    pub listeners: &'a Listeners,
    pub service: &'a ClientServiceSpec,
    pub jetstream: Option<&'a JetStreamSpec>,
    pub auth: &'a AuthSpec,
    pub lifecycle: &'a LifecycleSpec,
    pub update_strategy: &'a UpdateStrategySpec,
    pub pod_disruption_budget: &'a PodDisruptionBudgetSpec,
    pub pod_template: &'a PodTemplate,
    pub config: &'a ConfigSpec,
}

/// Checks the common fields and builds a set without gateway or remotes.
pub(crate) fn validate_common(
    owner: Owner,
    component: Component,
    namespace: &str,
    spec: &CommonSpec<'_>,
    environment: &Environment,
    problems: &mut Problems,
) -> ServerSet {
    let name = owner.name.clone();
    check_object_name(&name, "metadata.name", problems);
    if !(1..=99).contains(&spec.replicas) {
        problems.add(
            "spec.replicas",
            format!("must be between 1 and 99, got {}", spec.replicas),
        );
    }
    if let Some(cluster_name) = spec.cluster_name {
        check_nats_name(cluster_name, "spec.clusterName", problems);
    }
    let cluster_name = spec.cluster_name.unwrap_or(&name).to_string();
    let listeners = validate_listeners(spec.listeners, problems);
    let jetstream = spec
        .jetstream
        .map(|jetstream| validate_jetstream(jetstream, spec.replicas, problems));
    let lifecycle = validate_lifecycle(spec.lifecycle, problems);
    if spec.pod_disruption_budget.max_unavailable < 1 {
        problems.add(
            "spec.podDisruptionBudget.maxUnavailable",
            "must be at least 1: 0 blocks node drains forever",
        );
    }
    for (index, variable) in spec.pod_template.env.iter().enumerate() {
        if variable.name.starts_with(RESERVED_ENV_PREFIX) {
            problems.add(
                format!("spec.podTemplate.env[{index}].name"),
                format!(
                    "{:?}: names starting with {RESERVED_ENV_PREFIX} are set by the operator",
                    variable.name
                ),
            );
        }
    }
    if let Some(account) = &spec.auth.system_account {
        if account.is_empty() {
            problems.add("spec.auth.systemAccount", "must not be empty");
        }
    }
    ServerSet {
        owner,
        component,
        name,
        namespace: namespace.to_string(),
        cluster_name,
        replicas: u16::try_from(spec.replicas.clamp(1, 99)).unwrap_or(1),
        super_cluster: None,
        image: validate_image(spec.image, environment, problems),
        listeners,
        client_service: spec.service.clone(),
        jetstream,
        auth: spec.auth.clone(),
        lifecycle,
        reload_policy: spec.update_strategy.reload_policy,
        disruption_budget: spec
            .pod_disruption_budget
            .enabled
            .then_some(spec.pod_disruption_budget.max_unavailable),
        pod_template: spec.pod_template.clone(),
        gateway: None,
        leafnode_remotes: Vec::new(),
        overrides: spec.config.overrides.clone(),
        waiting_for: Vec::new(),
    }
}

/// Object names become Service names and pod names: DNS labels with room for suffixes.
pub(crate) fn check_object_name(name: &str, field: &str, problems: &mut Problems) {
    if !is_dns_label(name) || name.len() > MAX_NAME_LENGTH {
        problems.add(
            field,
            format!("{name:?} must be a DNS label (lowercase letters, digits, '-', starting with a letter) of at most {MAX_NAME_LENGTH} characters"),
        );
    }
}

pub(crate) fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_lowercase()
        && bytes[bytes.len() - 1] != b'-'
        && bytes
            .iter()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || *byte == b'-')
}

/// Cluster names and JetStream domains: they appear in server names, subjects and configs.
pub(crate) fn check_nats_name(name: &str, field: &str, problems: &mut Problems) {
    let bytes = name.as_bytes();
    let valid = !bytes.is_empty()
        && bytes.len() <= 64
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|byte| byte.is_ascii_alphanumeric() || *byte == b'-' || *byte == b'_');
    if !valid {
        problems.add(
            field,
            format!(
                "{name:?} must be letters, digits, '-' and '_', starting with a letter or digit"
            ),
        );
    }
}

fn validate_image(image: &ImageSpec, environment: &Environment, problems: &mut Problems) -> Image {
    if image.repository.is_empty() {
        problems.add("spec.image.repository", "must not be empty");
    }
    let tag = image
        .tag
        .clone()
        .unwrap_or_else(|| environment.default_image_tag.clone());
    let mut reference = format!("{}:{tag}", image.repository);
    if let Some(digest) = &image.digest {
        let valid = digest
            .strip_prefix("sha256:")
            .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
        if !valid {
            problems.add(
                "spec.image.digest",
                format!("{digest:?} must be sha256: followed by 64 hex digits"),
            );
        }
        reference = format!("{reference}@{digest}");
    }
    Image {
        reference,
        pull_policy: image.pull_policy,
        pull_secrets: image
            .pull_secrets
            .iter()
            .map(|secret| secret.name.clone())
            .collect(),
    }
}

fn port(value: i32, field: &str, problems: &mut Problems) -> u16 {
    match u16::try_from(value) {
        Ok(port) if port > 0 => port,
        _ => {
            problems.add(field, format!("must be between 1 and 65535, got {value}"));
            1
        }
    }
}

fn validate_listeners(listeners: &Listeners, problems: &mut Problems) -> ValidListeners {
    let valid = ValidListeners {
        client_port: port(
            listeners.client.port,
            "spec.listeners.client.port",
            problems,
        ),
        client_tls: listeners.client.tls.clone(),
        route_port: port(
            listeners.routes.port,
            "spec.listeners.routes.port",
            problems,
        ),
        route_tls: listeners.routes.tls.clone(),
        route_auth: listeners.routes.auth_secret_ref.clone(),
        route_pool_size: listeners.routes.pool_size,
        monitor_port: port(
            listeners.monitor.port,
            "spec.listeners.monitor.port",
            problems,
        ),
        leafnodes: listeners
            .leafnodes
            .as_ref()
            .map(|leafnodes| ValidLeafnodeListener {
                port: port(leafnodes.port, "spec.listeners.leafnodes.port", problems),
                tls: leafnodes.tls.clone(),
                auth: leafnodes.auth_secret_ref.clone(),
                expose: leafnodes.expose.clone(),
            }),
        websocket: listeners
            .websocket
            .as_ref()
            .map(|websocket| ValidWebsocketListener {
                port: port(websocket.port, "spec.listeners.websocket.port", problems),
                tls: websocket.tls.clone(),
                compression: websocket.compression,
                allowed_origins: websocket.allowed_origins.clone(),
            }),
    };
    if let Some(size) = listeners.routes.pool_size {
        if !(-1..=32).contains(&size) {
            problems.add(
                "spec.listeners.routes.poolSize",
                format!("must be between -1 and 32, got {size}"),
            );
        }
    }
    check_distinct_ports(&listener_ports(&valid), problems);
    valid
}

/// Every listener port with the field that sets it.
pub(crate) fn listener_ports(listeners: &ValidListeners) -> Vec<(String, u16)> {
    let mut ports = vec![
        (
            "spec.listeners.client.port".to_string(),
            listeners.client_port,
        ),
        (
            "spec.listeners.routes.port".to_string(),
            listeners.route_port,
        ),
        (
            "spec.listeners.monitor.port".to_string(),
            listeners.monitor_port,
        ),
    ];
    if let Some(leafnodes) = &listeners.leafnodes {
        ports.push(("spec.listeners.leafnodes.port".to_string(), leafnodes.port));
    }
    if let Some(websocket) = &listeners.websocket {
        ports.push(("spec.listeners.websocket.port".to_string(), websocket.port));
    }
    ports
}

/// Reports each port that an earlier listener already uses.
pub(crate) fn check_distinct_ports(ports: &[(String, u16)], problems: &mut Problems) {
    let mut seen: BTreeMap<u16, &str> = BTreeMap::new();
    for (field, number) in ports {
        match seen.get(number) {
            Some(first) => problems.add(
                field.clone(),
                format!(
                    "port {number} is already used by {first}; every listener needs its own port"
                ),
            ),
            None => {
                seen.insert(*number, field);
            }
        }
    }
}

fn bytes_of(quantity: &Quantity, field: &str, problems: &mut Problems) -> u64 {
    quantity_bytes(&quantity.0).unwrap_or_else(|message| {
        problems.add(field, message);
        0
    })
}

fn validate_jetstream(
    jetstream: &JetStreamSpec,
    replicas: i32,
    problems: &mut Problems,
) -> JetStream {
    if jetstream.file_storage.is_none() && jetstream.memory_storage.is_none() {
        problems.add(
            "spec.jetstream",
            "JetStream needs fileStorage, memoryStorage or both",
        );
    }
    if replicas == 2 {
        problems.add(
            "spec.replicas",
            "with JetStream, replicas must be 1 or at least 3: two servers lose quorum when either fails",
        );
    }
    if let Some(domain) = &jetstream.domain {
        check_nats_name(domain, "spec.jetstream.domain", problems);
    }
    let file_storage = jetstream.file_storage.as_ref().map(|file| {
        let size = bytes_of(&file.size, "spec.jetstream.fileStorage.size", problems);
        if size == 0 {
            problems.add("spec.jetstream.fileStorage.size", "must be more than 0");
        }
        let max_bytes = match &file.max_bytes {
            Some(max) => {
                let max = bytes_of(max, "spec.jetstream.fileStorage.maxBytes", problems);
                if max > size {
                    problems.add(
                        "spec.jetstream.fileStorage.maxBytes",
                        format!("{max} bytes can not exceed fileStorage.size ({size} bytes)"),
                    );
                }
                max
            }
            None => size / 100 * DEFAULT_FILE_STORE_PERCENT,
        };
        FileStorage {
            size: file.size.0.clone(),
            storage_class_name: file.storage_class_name.clone(),
            max_bytes,
        }
    });
    let max_memory_bytes = jetstream.memory_storage.as_ref().map_or(0, |memory| {
        bytes_of(
            &memory.max_bytes,
            "spec.jetstream.memoryStorage.maxBytes",
            problems,
        )
    });
    JetStream {
        domain: jetstream.domain.clone(),
        file_storage,
        max_memory_bytes,
    }
}

fn validate_lifecycle(lifecycle: &LifecycleSpec, problems: &mut Problems) -> Lifecycle {
    let parse = |text: &str, field: &str, problems: &mut Problems| {
        go_duration(text)
            .map_err(|message| problems.add(field, message))
            .ok()
    };
    let duration = parse(
        &lifecycle.lame_duck_duration,
        "spec.lifecycle.lameDuckDuration",
        problems,
    );
    let grace = parse(
        &lifecycle.lame_duck_grace_period,
        "spec.lifecycle.lameDuckGracePeriod",
        problems,
    );
    if let (Some(duration), Some(grace)) = (duration, grace) {
        if duration < Duration::from_secs(MINIMUM_LAME_DUCK_SECONDS as u64) {
            problems.add(
                "spec.lifecycle.lameDuckDuration",
                format!("must be at least {MINIMUM_LAME_DUCK_SECONDS}s (the broker's minimum), got {:?}", lifecycle.lame_duck_duration),
            );
        }
        if grace >= duration {
            problems.add(
                "spec.lifecycle.lameDuckGracePeriod",
                "must be shorter than lameDuckDuration",
            );
        }
        let needed = (duration + grace).as_secs() as i64 + SHUTDOWN_MARGIN_SECONDS;
        if lifecycle.termination_grace_period_seconds < needed {
            problems.add(
                "spec.lifecycle.terminationGracePeriodSeconds",
                format!(
                    "{} is too short: lameDuckDuration + lameDuckGracePeriod + {SHUTDOWN_MARGIN_SECONDS}s needs at least {needed}, or the kubelet kills servers in the middle of lame duck",
                    lifecycle.termination_grace_period_seconds
                ),
            );
        }
    }
    Lifecycle {
        lame_duck_duration: lifecycle.lame_duck_duration.clone(),
        lame_duck_grace_period: lifecycle.lame_duck_grace_period.clone(),
        termination_grace_period_seconds: lifecycle.termination_grace_period_seconds,
    }
}
