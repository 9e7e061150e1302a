//! Labels, owner references and hashes every rendered object carries.
//!
//! The selector labels are frozen: StatefulSet selectors are immutable, so they hold only what
//! never changes for a set (no version, no user labels).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use sha2::{Digest, Sha256};

use crate::validate::{ServerSet, SUPER_CLUSTER_LABEL};

pub const NAME_LABEL: &str = "app.kubernetes.io/name";
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "tern-operator";
/// Set by the StatefulSet controller on each pod; per-server Services select on it.
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";

/// Hash of an object's rendered content: the controller skips applying unchanged objects.
pub const SPEC_HASH_ANNOTATION: &str = "tern.dev/spec-hash";
/// Hash of every config file of a set, on the ConfigMap.
pub const CONFIG_HASH_ANNOTATION: &str = "tern.dev/config-hash";
/// Hash of the restart-only part of the config, on the pod template: a change makes a new
/// StatefulSet revision, which the operator rolls out one server at a time.
pub const RESTART_HASH_ANNOTATION: &str = "tern.dev/restart-hash";

/// Labels that select a set's pods.
pub fn selector_labels(set: &ServerSet) -> BTreeMap<String, String> {
    BTreeMap::from([
        (NAME_LABEL.to_string(), "tern".to_string()),
        (INSTANCE_LABEL.to_string(), set.name.clone()),
        (
            COMPONENT_LABEL.to_string(),
            set.component.label().to_string(),
        ),
    ])
}

/// Labels of every object of a set.
pub fn labels(set: &ServerSet) -> BTreeMap<String, String> {
    let mut labels = selector_labels(set);
    labels.insert(MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string());
    if let Some(super_cluster) = &set.super_cluster {
        labels.insert(SUPER_CLUSTER_LABEL.to_string(), super_cluster.clone());
    }
    labels
}

/// The label selector as a string (for the scale subresource's `status.selector`).
pub fn selector_string(set: &ServerSet) -> String {
    selector_labels(set)
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Metadata of an object of `set` named `name`: labels, and an owner reference to the
/// resource once its UID is known (so garbage collection removes the object with it).
pub fn object_meta(set: &ServerSet, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(set.namespace.clone()),
        labels: Some(labels(set)),
        owner_references: set.owner.uid.as_ref().map(|uid| {
            vec![OwnerReference {
                api_version: set.owner.api_version.clone(),
                kind: set.owner.kind.clone(),
                name: set.owner.name.clone(),
                uid: uid.clone(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]
        }),
        ..ObjectMeta::default()
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut text = String::with_capacity(7 + 64);
    text.push_str("sha256:");
    for byte in digest {
        text.push(hex_digit(byte >> 4));
        text.push(hex_digit(byte & 0x0f));
    }
    text
}

fn hex_digit(nibble: u8) -> char {
    char::from_digit(u32::from(nibble), 16).unwrap_or('0')
}
