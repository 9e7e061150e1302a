//! Server-side apply of rendered objects, and removal of objects a resource no longer renders.
//!
//! Contract:
//! - Every object is applied with one field manager ([`FIELD_MANAGER`]) and `force`, so the
//!   operator owns exactly the fields it renders and takes them back from anyone who edited
//!   them; fields others set that the operator does not render are left alone.
//! - Orphans are objects labelled `app.kubernetes.io/managed-by: tern-operator` whose owner
//!   reference points at the resource being reconciled and that its render no longer holds.
//!   Nothing else is ever deleted; PersistentVolumeClaims are never touched.

use std::collections::BTreeSet;
use std::fmt::Debug;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::context::FIELD_MANAGER;
use super::ReconcileError;
use crate::crd::NatsCluster;
use crate::render::metadata::{MANAGED_BY, MANAGED_BY_LABEL};
use crate::render::Object;

/// A namespaced object kind the typed API can read and write.
pub trait NamespacedObject:
    Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + DeserializeOwned + Debug
{
}

impl<K> NamespacedObject for K where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Debug
{
}

fn parameters() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

async fn apply_value<K>(
    client: &Client,
    namespace: &str,
    name: &str,
    value: &serde_json::Value,
) -> Result<(), ReconcileError>
where
    K: NamespacedObject,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    api.patch(name, &parameters(), &Patch::Apply(value))
        .await
        .map(|_| ())
        .map_err(|source| {
            ReconcileError::kubernetes("apply", K::kind(&()), namespace, name, source)
        })
}

/// Applies one rendered object.
pub async fn apply(client: &Client, object: &Object) -> Result<(), ReconcileError> {
    let value = object
        .to_value()
        .map_err(|error| ReconcileError::Render(Box::new(error)))?;
    let namespace = object.metadata().namespace.as_deref().unwrap_or("default");
    let name = object.name();
    match object {
        Object::ConfigMap(_) => apply_value::<ConfigMap>(client, namespace, name, &value).await,
        Object::NatsCluster(_) => apply_value::<NatsCluster>(client, namespace, name, &value).await,
        Object::PodDisruptionBudget(_) => {
            apply_value::<PodDisruptionBudget>(client, namespace, name, &value).await
        }
        Object::Service(_) => apply_value::<Service>(client, namespace, name, &value).await,
        Object::ServiceAccount(_) => {
            apply_value::<ServiceAccount>(client, namespace, name, &value).await
        }
        Object::StatefulSet(_) => apply_value::<StatefulSet>(client, namespace, name, &value).await,
    }
}

/// Deletes objects of kind `K` in `namespace` owned by `owner_uid` whose names are not in
/// `keep`; returns the names deleted.
async fn delete_orphans_of<K>(
    client: &Client,
    namespace: &str,
    owner_uid: &str,
    keep: &BTreeSet<String>,
) -> Result<Vec<String>, ReconcileError>
where
    K: NamespacedObject,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let listed = api
        .list(&ListParams::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}")))
        .await
        .map_err(|source| {
            ReconcileError::kubernetes("list", K::kind(&()), namespace, "", source)
        })?;
    let mut deleted = Vec::new();
    for object in listed {
        let owned = object
            .owner_references()
            .iter()
            .any(|reference| reference.uid == owner_uid);
        let name = object.name_any();
        if !owned || keep.contains(&name) || object.meta().deletion_timestamp.is_some() {
            continue;
        }
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => deleted.push(format!("{} {name}", K::kind(&()))),
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(source) => {
                return Err(ReconcileError::kubernetes(
                    "delete",
                    K::kind(&()),
                    namespace,
                    &name,
                    source,
                ))
            }
        }
    }
    Ok(deleted)
}

/// Deletes every object `owner_uid` owns in `namespace` that `objects` no longer holds;
/// returns `Kind name` of each one deleted.
pub async fn delete_orphans(
    client: &Client,
    namespace: &str,
    owner_uid: &str,
    objects: &[Object],
) -> Result<Vec<String>, ReconcileError> {
    let keep = |kind: &str| -> BTreeSet<String> {
        objects
            .iter()
            .filter(|object| object.kind() == kind)
            .map(|object| object.name().to_string())
            .collect()
    };
    let mut deleted = Vec::new();
    deleted.extend(
        delete_orphans_of::<ConfigMap>(client, namespace, owner_uid, &keep("ConfigMap")).await?,
    );
    deleted.extend(
        delete_orphans_of::<Service>(client, namespace, owner_uid, &keep("Service")).await?,
    );
    deleted.extend(
        delete_orphans_of::<ServiceAccount>(client, namespace, owner_uid, &keep("ServiceAccount"))
            .await?,
    );
    deleted.extend(
        delete_orphans_of::<StatefulSet>(client, namespace, owner_uid, &keep("StatefulSet"))
            .await?,
    );
    deleted.extend(
        delete_orphans_of::<PodDisruptionBudget>(
            client,
            namespace,
            owner_uid,
            &keep("PodDisruptionBudget"),
        )
        .await?,
    );
    Ok(deleted)
}

/// Deletes NatsClusters `owner_uid` (a SuperCluster) created from templates that `objects` no
/// longer holds.
pub async fn delete_orphan_members(
    client: &Client,
    namespace: &str,
    owner_uid: &str,
    objects: &[Object],
) -> Result<Vec<String>, ReconcileError> {
    let keep: BTreeSet<String> = objects
        .iter()
        .filter(|object| object.kind() == "NatsCluster")
        .map(|object| object.name().to_string())
        .collect();
    delete_orphans_of::<NatsCluster>(client, namespace, owner_uid, &keep).await
}
