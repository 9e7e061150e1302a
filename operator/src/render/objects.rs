//! The objects around the StatefulSet: ConfigMap, Services, PodDisruptionBudget,
//! ServiceAccount.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount, ServicePort, ServiceSpec};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::layout::{
    per_server_service_name, shared_service_name, CLIENT_PORT_NAME, GATEWAY_PORT_NAME,
    LEAFNODE_PORT_NAME, MONITOR_PORT_NAME, ROUTE_PORT_NAME, WEBSOCKET_PORT_NAME,
};
use super::metadata::{object_meta, selector_labels, CONFIG_HASH_ANNOTATION, POD_NAME_LABEL};
use crate::crd::ExposeSpec;
use crate::validate::ServerSet;

/// A port a Service or container offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedPort {
    pub name: &'static str,
    pub port: u16,
    /// `tcp`, `tls`, `http` or `https`: lets meshes skip protocol sniffing.
    pub app_protocol: &'static str,
}

/// Every port of a set's servers, in a fixed order.
pub fn ports(set: &ServerSet) -> Vec<NamedPort> {
    let listeners = &set.listeners;
    let tcp_or_tls = |tls: bool| if tls { "tls" } else { "tcp" };
    let mut ports = vec![NamedPort {
        name: CLIENT_PORT_NAME,
        port: listeners.client_port,
        app_protocol: tcp_or_tls(listeners.client_tls.is_some()),
    }];
    if set.replicas > 1 {
        ports.push(NamedPort {
            name: ROUTE_PORT_NAME,
            port: listeners.route_port,
            app_protocol: tcp_or_tls(listeners.route_tls.is_some()),
        });
    }
    if let Some(gateway) = &set.gateway {
        ports.push(NamedPort {
            name: GATEWAY_PORT_NAME,
            port: gateway.port,
            app_protocol: tcp_or_tls(gateway.tls.is_some()),
        });
    }
    if let Some(leafnodes) = &listeners.leafnodes {
        ports.push(NamedPort {
            name: LEAFNODE_PORT_NAME,
            port: leafnodes.port,
            app_protocol: tcp_or_tls(leafnodes.tls.is_some()),
        });
    }
    if let Some(websocket) = &listeners.websocket {
        ports.push(NamedPort {
            name: WEBSOCKET_PORT_NAME,
            port: websocket.port,
            app_protocol: if websocket.tls.is_some() {
                "https"
            } else {
                "http"
            },
        });
    }
    ports.push(NamedPort {
        name: MONITOR_PORT_NAME,
        port: listeners.monitor_port,
        app_protocol: "http",
    });
    ports
}

fn service_port(port: &NamedPort) -> ServicePort {
    ServicePort {
        name: Some(port.name.to_string()),
        port: i32::from(port.port),
        target_port: Some(IntOrString::String(port.name.to_string())),
        app_protocol: Some(port.app_protocol.to_string()),
        protocol: Some("TCP".to_string()),
        ..ServicePort::default()
    }
}

pub fn config_map(
    set: &ServerSet,
    configs: &BTreeMap<String, String>,
    config_hash: &str,
) -> ConfigMap {
    let mut metadata = object_meta(set, &set.config_map_name());
    metadata.annotations = Some(BTreeMap::from([(
        CONFIG_HASH_ANNOTATION.to_string(),
        config_hash.to_string(),
    )]));
    ConfigMap {
        metadata,
        data: Some(configs.clone()),
        ..ConfigMap::default()
    }
}

/// Every server by name, ready or not: routes must resolve while servers start (a JetStream
/// server waits for its peers before it reports ready).
pub fn headless_service(set: &ServerSet) -> Service {
    Service {
        metadata: object_meta(set, &set.headless_service_name()),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_string()),
            publish_not_ready_addresses: Some(true),
            selector: Some(selector_labels(set)),
            ports: Some(ports(set).iter().map(service_port).collect()),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The Service clients connect to: client, leaf node and WebSocket ports of ready servers.
pub fn client_service(set: &ServerSet) -> Service {
    let mut metadata = object_meta(set, &set.name);
    if !set.client_service.annotations.is_empty() {
        metadata.annotations = Some(set.client_service.annotations.clone());
    }
    let client_ports = ports(set)
        .iter()
        .filter(|port| {
            [CLIENT_PORT_NAME, LEAFNODE_PORT_NAME, WEBSOCKET_PORT_NAME].contains(&port.name)
        })
        .map(service_port)
        .collect();
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some(set.client_service.service_type.as_str().to_string()),
            selector: Some(selector_labels(set)),
            ports: Some(client_ports),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// LoadBalancer Services for an exposed listener: one per server, or one for all.
pub fn exposed_services(set: &ServerSet, expose: &ExposeSpec, port: &NamedPort) -> Vec<Service> {
    let service = |name: String, selector: BTreeMap<String, String>| {
        let mut metadata = object_meta(set, &name);
        if !expose.annotations.is_empty() {
            metadata.annotations = Some(expose.annotations.clone());
        }
        Service {
            metadata,
            spec: Some(ServiceSpec {
                type_: Some("LoadBalancer".to_string()),
                external_traffic_policy: Some(expose.external_traffic_policy.as_str().to_string()),
                load_balancer_class: expose.load_balancer_class.clone(),
                load_balancer_source_ranges: (!expose.load_balancer_source_ranges.is_empty())
                    .then(|| expose.load_balancer_source_ranges.clone()),
                // A server advertises this address while it starts, before it is ready.
                publish_not_ready_addresses: Some(true),
                selector: Some(selector),
                ports: Some(vec![service_port(port)]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        }
    };
    if expose.per_server {
        (0..set.replicas)
            .map(|ordinal| {
                let mut selector = selector_labels(set);
                selector.insert(POD_NAME_LABEL.to_string(), set.pod_name(ordinal));
                service(per_server_service_name(set, ordinal, port.name), selector)
            })
            .collect()
    } else {
        vec![service(
            shared_service_name(set, port.name),
            selector_labels(set),
        )]
    }
}

/// At most `maxUnavailable` servers down for voluntary disruptions (drains).
pub fn pod_disruption_budget(set: &ServerSet, max_unavailable: i32) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: object_meta(set, &set.name),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(max_unavailable)),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(set)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

/// The servers' identity; they need no API access, so no token is mounted.
pub fn service_account(set: &ServerSet) -> ServiceAccount {
    ServiceAccount {
        metadata: object_meta(set, &set.name),
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    }
}
