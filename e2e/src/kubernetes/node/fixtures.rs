//! A Pod, its objects and its downward-API facts, shared by the node agent's unit tests.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, PodSpec, Secret, Volume};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;

use super::objects::Objects;
use super::pod_spec::PodFacts;

pub(super) fn variables<'a>(pairs: &[(&'a str, &'a str)]) -> HashMap<&'a str, &'a str> {
    pairs.iter().copied().collect()
}

pub(super) fn pod_with(container: Container, volumes: Vec<Volume>) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("nats-1".to_string()),
            namespace: Some("messaging".to_string()),
            uid: Some("uid-1".to_string()),
            labels: Some(BTreeMap::from([
                ("app".to_string(), "nats".to_string()),
                ("tier".to_string(), "broker".to_string()),
            ])),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers: vec![container],
            volumes: Some(volumes),
            hostname: Some("nats-1".to_string()),
            subdomain: Some("nats-headless".to_string()),
            ..PodSpec::default()
        }),
        status: None,
    }
}

pub(super) fn objects() -> Objects {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("routes".to_string()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([
            ("username".to_string(), ByteString(b"router".to_vec())),
            ("password".to_string(), ByteString(b"s3cret".to_vec())),
        ])),
        ..Secret::default()
    };
    let config_map = ConfigMap {
        metadata: ObjectMeta {
            name: Some("settings".to_string()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([
            ("nats-0.conf".to_string(), "port: 4222\n".to_string()),
            ("nats-1.conf".to_string(), "port: 4223\n".to_string()),
        ])),
        ..ConfigMap::default()
    };
    Objects {
        config_maps: BTreeMap::from([("settings".to_string(), Arc::new(config_map))]),
        secrets: BTreeMap::from([("routes".to_string(), Arc::new(secret))]),
        service_account_token: None,
    }
}

pub(super) fn facts(pod: &Pod) -> PodFacts<'_> {
    PodFacts {
        pod,
        address: Ipv4Addr::new(10, 250, 7, 3),
        host: Ipv4Addr::new(10, 250, 7, 1),
        node_name: "tern-e2e-node",
    }
}
