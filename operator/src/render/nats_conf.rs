//! A [`ServerSet`] → one nats.conf per server.
//!
//! Each server gets its own file (`<pod>.conf`) in the shared ConfigMap, so that what differs
//! per server (`server_name`, `advertise` addresses) is plain text in the config rather than
//! something an init container computes.

use std::path::PathBuf;

use super::conf::{from_json, BrokerCheck, ConfMap, ConfValue};
use super::layout::{
    include_path, per_server_service_name, shared_service_name, Credentials, RemotePart,
    TlsListener, AUTH_DIRECTORY, CONFIG_DIRECTORY, GATEWAY_PORT_NAME, LEAFNODE_PORT_NAME, PID_FILE,
    STORE_DIRECTORY,
};
use super::RenderError;
use crate::crd::{ExposeSpec, TlsSpec};
use crate::validate::{Environment, ServerSet};

/// Top-level keys the operator renders or reserves, with the spec field that controls each;
/// overrides may not set them (but may add keys inside the blocks the operator renders).
const OPERATOR_KEYS: &[(&str, &str)] = &[
    ("server_name", "metadata.name and spec.clusterName"),
    ("port", "spec.listeners.client.port"),
    ("listen", "spec.listeners.client.port"),
    ("http", "spec.listeners.monitor.port"),
    ("http_port", "spec.listeners.monitor.port"),
    ("monitor_port", "spec.listeners.monitor.port"),
    ("https", "spec.listeners.monitor.port"),
    ("https_port", "spec.listeners.monitor.port"),
    ("pid_file", "the operator (lame duck in preStop needs it)"),
    ("pidfile", "the operator (lame duck in preStop needs it)"),
    ("ports_file_dir", "the operator"),
    ("lame_duck_duration", "spec.lifecycle.lameDuckDuration"),
    (
        "lame_duck_grace_period",
        "spec.lifecycle.lameDuckGracePeriod",
    ),
    ("system_account", "spec.auth.systemAccount"),
    ("system", "spec.auth.systemAccount"),
    ("include", "spec.auth.configSecretRef"),
    ("cluster", "spec.listeners.routes and spec.replicas"),
    ("gateway", "the SuperCluster's spec.gateway"),
    ("leafnodes", "spec.listeners.leafnodes and spec.remotes"),
    ("leaf", "spec.listeners.leafnodes and spec.remotes"),
    ("websocket", "spec.listeners.websocket"),
    ("ws", "spec.listeners.websocket"),
    ("jetstream", "spec.jetstream"),
    ("store_dir", "spec.jetstream"),
    ("storedir", "spec.jetstream"),
];

/// Keys whose changes the broker reloads; a restart-only change is any other.
const RELOADABLE_KEYS: &[&str] = &[
    "server_name",
    "include",
    "authorization",
    "accounts",
    "no_auth_user",
    "debug",
    "trace",
    "trace_verbose",
    "logtime",
    "logtime_utc",
    "log_file",
    "max_connections",
    "max_payload",
    "max_pending",
    "max_control_line",
    "max_subscriptions",
    "ping_interval",
    "ping_max",
    "write_deadline",
    "lame_duck_duration",
    "lame_duck_grace_period",
    "tls",
    "mappings",
];

/// One server's config as a document.
pub fn server_config(
    set: &ServerSet,
    ordinal: u16,
    environment: &Environment,
    waiting_for: &mut Vec<String>,
) -> Result<ConfMap, RenderError> {
    let mut conf = ConfMap::new();
    conf.set("server_name", set.server_name(ordinal));
    conf.set("port", set.listeners.client_port);
    conf.set("http_port", set.listeners.monitor_port);
    conf.set("pid_file", PID_FILE);
    conf.set(
        "lame_duck_duration",
        set.lifecycle.lame_duck_duration.as_str(),
    );
    conf.set(
        "lame_duck_grace_period",
        set.lifecycle.lame_duck_grace_period.as_str(),
    );
    if let Some(account) = &set.auth.system_account {
        conf.set("system_account", account.as_str());
    }
    if let Some(secret) = &set.auth.config_secret_ref {
        conf.include(&include_path(AUTH_DIRECTORY, &secret.key));
    }
    if let Some(tls) = &set.listeners.client_tls {
        conf.set("tls", tls_block(tls, TlsListener::Client, tls.verify));
    }
    if set.replicas > 1 {
        conf.set("cluster", cluster_block(set, environment));
    }
    if set.gateway.is_some() {
        conf.set(
            "gateway",
            gateway_block(set, ordinal, environment, waiting_for),
        );
    }
    if set.listeners.leafnodes.is_some() || !set.leafnode_remotes.is_empty() {
        conf.set(
            "leafnodes",
            leafnodes_block(set, ordinal, environment, waiting_for),
        );
    }
    if let Some(websocket) = &set.listeners.websocket {
        let mut block = ConfMap::new();
        block.set("port", websocket.port);
        match &websocket.tls {
            Some(tls) => {
                block.set("tls", tls_block(tls, TlsListener::Websocket, tls.verify));
            }
            None => {
                block.set("no_tls", true);
            }
        }
        if websocket.compression {
            block.set("compression", true);
        }
        if !websocket.allowed_origins.is_empty() {
            block.set("allowed_origins", websocket.allowed_origins.clone());
        }
        conf.set("websocket", block);
    }
    if let Some(jetstream) = &set.jetstream {
        let mut block = ConfMap::new();
        block.set("store_dir", STORE_DIRECTORY);
        block.set(
            "max_file_store",
            jetstream
                .file_storage
                .as_ref()
                .map_or(0, |file| file.max_bytes),
        );
        block.set("max_memory_store", jetstream.max_memory_bytes);
        if let Some(domain) = &jetstream.domain {
            block.set("domain", domain.as_str());
        }
        conf.set("jetstream", block);
    }
    merge_overrides(&mut conf, &set.overrides)?;
    Ok(conf)
}

/// What a restart-only change looks like: the config without what the broker reloads and
/// without what differs per server. Its hash goes on the pod template.
pub fn restart_view(conf: &ConfMap) -> ConfMap {
    let mut view = conf.without(RELOADABLE_KEYS);
    let strip = |view: &mut ConfMap, block: &str, keys: &[&str]| {
        if let Some(ConfValue::Map(inner)) = view.get_mut(block) {
            *inner = inner.without(keys);
        }
    };
    strip(&mut view, "cluster", &["routes", "authorization", "tls"]);
    strip(&mut view, "gateway", &["advertise"]);
    strip(
        &mut view,
        "leafnodes",
        &["remotes", "tls", "advertise", "authorization"],
    );
    view
}

/// What the broker's check needs to stand in for the pod's mounts and environment.
pub fn broker_check(set: &ServerSet) -> BrokerCheck {
    let mut check = BrokerCheck::default();
    if let Some(secret) = &set.auth.config_secret_ref {
        check
            .included_files
            .push(PathBuf::from(format!("{AUTH_DIRECTORY}/{}", secret.key)));
        check.included_files.push(PathBuf::from(format!(
            "{CONFIG_DIRECTORY}/{}",
            include_path(AUTH_DIRECTORY, &secret.key)
        )));
    }
    for credentials in [
        Credentials::Routes,
        Credentials::Gateway,
        Credentials::Leafnodes,
    ] {
        check
            .environment_variables
            .push(credentials.username_variable().to_string());
        check
            .environment_variables
            .push(credentials.password_variable().to_string());
    }
    check
}

fn tls_block(tls: &TlsSpec, listener: TlsListener, verify_peers: bool) -> ConfMap {
    let mut block = ConfMap::new();
    let directory = listener.certificate_directory();
    block.set("cert_file", format!("{directory}/tls.crt"));
    block.set("key_file", format!("{directory}/tls.key"));
    if tls.ca_secret_ref.is_some() {
        block.set("ca_file", format!("{}/ca.crt", listener.ca_directory()));
    } else if verify_peers {
        block.set("ca_file", format!("{directory}/ca.crt"));
    }
    if tls.verify {
        block.set("verify", true);
    }
    if tls.handshake_first {
        block.set("handshake_first", true);
    }
    block
}

fn authorization(credentials: Credentials) -> ConfMap {
    let mut block = ConfMap::new();
    block.set(
        "user",
        ConfValue::Variable(credentials.username_variable().to_string()),
    );
    block.set(
        "password",
        ConfValue::Variable(credentials.password_variable().to_string()),
    );
    block
}

fn cluster_block(set: &ServerSet, environment: &Environment) -> ConfMap {
    let listeners = &set.listeners;
    let scheme = if listeners.route_tls.is_some() {
        "tls"
    } else {
        "nats"
    };
    let mut block = ConfMap::new();
    block.set("name", set.cluster_name.as_str());
    block.set("port", listeners.route_port);
    // Clients reach the cluster through its Service; pod addresses gossiped to them would be
    // unreachable from outside the Kubernetes cluster.
    block.set("no_advertise", true);
    if let Some(size) = listeners.route_pool_size {
        block.set("pool_size", size);
    }
    if listeners.route_auth.is_some() {
        block.set("authorization", authorization(Credentials::Routes));
    }
    if let Some(tls) = &listeners.route_tls {
        block.set("tls", tls_block(tls, TlsListener::Routes, true));
    }
    // Every ordinal, own included: a server skips the route to itself, and one list for all
    // servers keeps their configs alike.
    let routes: Vec<String> = (0..set.replicas)
        .map(|ordinal| {
            format!(
                "{scheme}://{}:{}",
                set.pod_host(ordinal, &environment.cluster_domain),
                listeners.route_port
            )
        })
        .collect();
    block.set("routes", routes);
    block
}

/// The address a server advertises for an exposed listener, once its Service has one.
fn advertise(
    set: &ServerSet,
    ordinal: u16,
    expose: &ExposeSpec,
    port_name: &str,
    port: u16,
    environment: &Environment,
    waiting_for: &mut Vec<String>,
) -> Option<String> {
    let service = if expose.per_server {
        per_server_service_name(set, ordinal, port_name)
    } else {
        shared_service_name(set, port_name)
    };
    match environment.external_address(&set.namespace, &service) {
        Some(host) if host.contains(':') && !host.starts_with('[') => {
            Some(format!("[{host}]:{port}"))
        }
        Some(host) => Some(format!("{host}:{port}")),
        None => {
            waiting_for.push(format!(
                "external address of Service {}/{service} ({port_name} advertise)",
                set.namespace
            ));
            None
        }
    }
}

fn gateway_block(
    set: &ServerSet,
    ordinal: u16,
    environment: &Environment,
    waiting_for: &mut Vec<String>,
) -> ConfMap {
    let mut block = ConfMap::new();
    let Some(gateway) = &set.gateway else {
        return block;
    };
    block.set("name", set.cluster_name.as_str());
    block.set("port", gateway.port);
    if let Some(expose) = &gateway.expose {
        if let Some(address) = advertise(
            set,
            ordinal,
            expose,
            GATEWAY_PORT_NAME,
            gateway.port,
            environment,
            waiting_for,
        ) {
            block.set("advertise", address);
        }
    }
    block.set("reject_unknown_cluster", gateway.reject_unknown_cluster);
    block.set("connect_retries", gateway.connect_retries);
    if gateway.auth.is_some() {
        block.set("authorization", authorization(Credentials::Gateway));
    }
    if let Some(tls) = &gateway.tls {
        block.set("tls", tls_block(tls, TlsListener::Gateway, true));
    }
    let peers = gateway
        .peers
        .iter()
        .map(|peer| {
            let mut entry = ConfMap::new();
            entry.set("name", peer.name.as_str());
            entry.set("urls", peer.urls.clone());
            ConfValue::Map(entry)
        })
        .collect();
    block.set("gateways", ConfValue::Array(peers));
    block
}

fn leafnodes_block(
    set: &ServerSet,
    ordinal: u16,
    environment: &Environment,
    waiting_for: &mut Vec<String>,
) -> ConfMap {
    let mut block = ConfMap::new();
    if let Some(listener) = &set.listeners.leafnodes {
        block.set("port", listener.port);
        let advertised = listener.expose.as_ref().and_then(|expose| {
            advertise(
                set,
                ordinal,
                expose,
                LEAFNODE_PORT_NAME,
                listener.port,
                environment,
                waiting_for,
            )
        });
        match advertised {
            Some(address) => block.set("advertise", address),
            // Leaf nodes outside the Kubernetes cluster could not reach pod addresses.
            None => block.set("no_advertise", true),
        };
        if listener.auth.is_some() {
            block.set("authorization", authorization(Credentials::Leafnodes));
        }
        if let Some(tls) = &listener.tls {
            block.set("tls", tls_block(tls, TlsListener::Leafnodes, tls.verify));
        }
    }
    if !set.leafnode_remotes.is_empty() {
        let remotes = set
            .leafnode_remotes
            .iter()
            .map(|remote| {
                let mut entry = ConfMap::new();
                entry.set("urls", remote.urls.clone());
                if let Some(account) = &remote.account {
                    entry.set("account", account.as_str());
                }
                if let Some(credentials) = &remote.credentials {
                    entry.set(
                        "credentials",
                        format!(
                            "{}/{}",
                            RemotePart::Credentials.directory(&remote.name),
                            credentials.key
                        ),
                    );
                }
                if let Some(tls) = &remote.tls {
                    let mut tls_entry = ConfMap::new();
                    if tls.ca_secret_ref.is_some() {
                        tls_entry.set(
                            "ca_file",
                            format!("{}/ca.crt", RemotePart::Ca.directory(&remote.name)),
                        );
                    }
                    if tls.client_certificate_secret_ref.is_some() {
                        let directory = RemotePart::Certificate.directory(&remote.name);
                        tls_entry.set("cert_file", format!("{directory}/tls.crt"));
                        tls_entry.set("key_file", format!("{directory}/tls.key"));
                    }
                    if tls.handshake_first {
                        tls_entry.set("handshake_first", true);
                    }
                    entry.set("tls", tls_entry);
                }
                if !remote.deny_imports.is_empty() {
                    entry.set("deny_imports", remote.deny_imports.clone());
                }
                if !remote.deny_exports.is_empty() {
                    entry.set("deny_exports", remote.deny_exports.clone());
                }
                if let Some(websocket) = &remote.websocket {
                    if websocket.compression {
                        entry.set("ws_compression", true);
                    }
                    if websocket.no_masking {
                        entry.set("ws_no_masking", true);
                    }
                }
                ConfValue::Map(entry)
            })
            .collect();
        block.set("remotes", ConfValue::Array(remotes));
    }
    block
}

/// Merges overrides key by key into what the operator rendered; refuses operator keys.
fn merge_overrides(
    conf: &mut ConfMap,
    overrides: &std::collections::BTreeMap<String, serde_json::Value>,
) -> Result<(), RenderError> {
    for (key, value) in overrides {
        let field = format!("spec.config.overrides.{key}");
        let owner = OPERATOR_KEYS
            .iter()
            .find(|(owned, _)| owned.eq_ignore_ascii_case(key))
            .map(|(_, owner)| *owner);
        let value = from_json(value).map_err(|message| RenderError::Override {
            field: field.clone(),
            message,
        })?;
        match (owner, conf.get_mut(key), value) {
            (None, _, value) => {
                conf.set(key, value);
            }
            (Some(_), Some(ConfValue::Map(rendered)), ConfValue::Map(extra)) => {
                merge_into_block(rendered, extra, &field)?;
            }
            (Some(owner), _, _) => {
                return Err(RenderError::Override {
                    field,
                    message: format!("{key:?} is set by the operator from {owner}"),
                });
            }
        }
    }
    Ok(())
}

/// Adds keys inside a block the operator renders; keys it renders there stay its own.
fn merge_into_block(
    rendered: &mut ConfMap,
    extra: ConfMap,
    field: &str,
) -> Result<(), RenderError> {
    for entry in extra.entries() {
        let super::conf::ConfEntry::Pair(key, value) = entry else {
            continue;
        };
        if rendered.contains(key) {
            return Err(RenderError::Override {
                field: format!("{field}.{key}"),
                message: format!("{key:?} is set by the operator from the spec"),
            });
        }
        rendered.set(key, value.clone());
    }
    Ok(())
}
