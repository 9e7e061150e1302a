//! The ConfigMaps, Secrets and service account token a Pod refers to: which ones
//! ([`references`]), fetched once (watch cache, else API), refreshed from the watch caches, and
//! read by key for environment variables and volume files ([`KeySource`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, ServiceAccount};
use kube::api::PostParams;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource};

use super::supervisor::PodSupervisor;
use super::{api_call, NodeError};

/// The ConfigMaps and Secrets (of the Pod's namespace) a Pod refers to, by name; absent ones
/// are missing from the maps.
#[derive(Debug, Default, Clone)]
pub(super) struct Objects {
    pub(super) config_maps: BTreeMap<String, Arc<ConfigMap>>,
    pub(super) secrets: BTreeMap<String, Arc<Secret>>,
    pub(super) service_account_token: Option<String>,
}

/// The names of the objects a Pod refers to, and whether a projected volume asks for a token.
#[derive(Debug, Default)]
pub(super) struct References {
    pub(super) config_maps: BTreeSet<String>,
    pub(super) secrets: BTreeSet<String>,
    pub(super) token: Option<TokenProjection>,
}

/// What a `serviceAccountToken` projection asks the token to be.
#[derive(Debug)]
pub(super) struct TokenProjection {
    pub(super) audience: Option<String>,
    pub(super) expiration_seconds: Option<i64>,
}

/// A ConfigMap or a Secret of the Pod's namespace, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeySource<'a> {
    ConfigMap(&'a str),
    Secret(&'a str),
}

impl std::fmt::Display for KeySource<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ConfigMap(name) => write!(formatter, "configMap {name:?}"),
            Self::Secret(name) => write!(formatter, "secret {name:?}"),
        }
    }
}

/// The error for a required ConfigMap, Secret or key that is absent (retried: it may appear).
pub(super) fn not_found(what: impl std::fmt::Display) -> NodeError {
    NodeError::Configuration(format!("{what} not found"))
}

impl Objects {
    /// Every key of `source` and its bytes (a ConfigMap's `data` and `binaryData`, a Secret's
    /// `data`); `None`: the object does not exist.
    pub(super) fn entries(&self, source: KeySource<'_>) -> Option<BTreeMap<String, Vec<u8>>> {
        match source {
            KeySource::ConfigMap(name) => self.config_maps.get(name).map(|map| {
                let mut entries: BTreeMap<String, Vec<u8>> = map
                    .data
                    .iter()
                    .flatten()
                    .map(|(key, value)| (key.clone(), value.as_bytes().to_vec()))
                    .collect();
                for (key, value) in map.binary_data.iter().flatten() {
                    entries.insert(key.clone(), value.0.clone());
                }
                entries
            }),
            KeySource::Secret(name) => self.secrets.get(name).map(|secret| {
                secret
                    .data
                    .iter()
                    .flatten()
                    .map(|(key, value)| (key.clone(), value.0.clone()))
                    .collect()
            }),
        }
    }

    /// The bytes of `key` of `source`: `None` when the object does not exist, `Some(None)` when
    /// it has no such key.
    pub(super) fn value(&self, source: KeySource<'_>, key: &str) -> Option<Option<Vec<u8>>> {
        match source {
            KeySource::ConfigMap(name) => self.config_maps.get(name).map(|map| {
                let text = map.data.as_ref().and_then(|data| data.get(key));
                let binary = map.binary_data.as_ref().and_then(|data| data.get(key));
                text.map(|value| value.as_bytes().to_vec())
                    .or_else(|| binary.map(|value| value.0.clone()))
            }),
            KeySource::Secret(name) => self.secrets.get(name).map(|secret| {
                let binary = secret.data.as_ref().and_then(|data| data.get(key));
                let text = secret.string_data.as_ref().and_then(|data| data.get(key));
                binary
                    .map(|value| value.0.clone())
                    .or_else(|| text.map(|value| value.as_bytes().to_vec()))
            }),
        }
    }

    /// The text of every `data` key of `source`, as `envFrom` imports it; `None`: the object
    /// does not exist.
    pub(super) fn text_entries(&self, source: KeySource<'_>) -> Option<Vec<(String, String)>> {
        match source {
            KeySource::ConfigMap(name) => self.config_maps.get(name).map(|map| {
                map.data
                    .iter()
                    .flatten()
                    .map(|(key, value)| (key.clone(), value.clone()))
                    .collect()
            }),
            KeySource::Secret(name) => self.secrets.get(name).map(|secret| {
                secret
                    .data
                    .iter()
                    .flatten()
                    .map(|(key, value)| {
                        (key.clone(), String::from_utf8_lossy(&value.0).into_owned())
                    })
                    .collect()
            }),
        }
    }
}

/// The objects `pod` refers to in its volumes and `container` in its environment.
pub(super) fn references(pod: &Pod, container: &Container) -> References {
    let mut found = References::default();
    for source in container.env_from.iter().flatten() {
        if let Some(reference) = &source.config_map_ref {
            found.config_maps.insert(reference.name.clone());
        }
        if let Some(reference) = &source.secret_ref {
            found.secrets.insert(reference.name.clone());
        }
    }
    for variable in container.env.iter().flatten() {
        if let Some(source) = &variable.value_from {
            if let Some(selector) = &source.config_map_key_ref {
                found.config_maps.insert(selector.name.clone());
            }
            if let Some(selector) = &source.secret_key_ref {
                found.secrets.insert(selector.name.clone());
            }
        }
    }
    for volume in pod
        .spec
        .iter()
        .flat_map(|spec| spec.volumes.iter().flatten())
    {
        if let Some(source) = &volume.config_map {
            found.config_maps.insert(source.name.clone());
        }
        if let Some(name) = volume
            .secret
            .as_ref()
            .and_then(|source| source.secret_name.clone())
        {
            found.secrets.insert(name);
        }
        for projection in volume
            .projected
            .iter()
            .flat_map(|projected| projected.sources.iter().flatten())
        {
            if let Some(source) = &projection.config_map {
                found.config_maps.insert(source.name.clone());
            }
            if let Some(source) = &projection.secret {
                found.secrets.insert(source.name.clone());
            }
            if let Some(source) = &projection.service_account_token {
                found.token = Some(TokenProjection {
                    audience: source.audience.clone(),
                    expiration_seconds: source.expiration_seconds,
                });
            }
        }
    }
    found
}

impl PodSupervisor {
    /// The ConfigMaps and Secrets the Pod refers to (absent ones left out), and a token when a
    /// projected volume asks for one.
    pub(super) async fn fetch_objects(&self, container: &Container) -> Result<Objects, NodeError> {
        let references = references(&self.pod, container);
        let (shared, namespace) = (&self.shared, &self.namespace);
        let mut objects = Objects {
            config_maps: shared
                .lookup(&shared.config_maps, namespace, &references.config_maps)
                .await?,
            secrets: shared
                .lookup(&shared.secrets, namespace, &references.secrets)
                .await?,
            service_account_token: None,
        };
        if let Some(projection) = &references.token {
            let account = self
                .pod
                .spec
                .as_ref()
                .and_then(|spec| spec.service_account_name.clone())
                .unwrap_or_else(|| "default".to_string());
            let request = TokenRequest {
                spec: TokenRequestSpec {
                    audiences: projection.audience.iter().cloned().collect(),
                    expiration_seconds: projection.expiration_seconds,
                    bound_object_ref: None,
                },
                ..TokenRequest::default()
            };
            let api: Api<ServiceAccount> =
                Api::namespaced(self.shared.client.clone(), &self.namespace);
            let response = api_call(
                || {
                    format!(
                        "requesting a token for service account {}/{account}",
                        self.namespace
                    )
                },
                api.create_token_request(&account, &PostParams::default(), &request),
            )
            .await?;
            objects.service_account_token = response.status.map(|status| status.token);
        }
        Ok(objects)
    }

    /// `previous` brought up to date from the watch caches; an object they miss keeps its last
    /// known content.
    pub(super) fn cached_objects(&self, container: &Container, previous: &Objects) -> Objects {
        let references = references(&self.pod, container);
        let shared = &self.shared;
        let mut objects = previous.clone();
        let config_maps = cached(&shared.config_maps, &self.namespace, references.config_maps);
        objects.config_maps.extend(config_maps);
        let secrets = cached(&shared.secrets, &self.namespace, references.secrets);
        objects.secrets.extend(secrets);
        objects
    }
}

/// The objects of `namespace` named in `names` that the watch cache `store` holds.
fn cached<K>(store: &Store<K>, namespace: &str, names: BTreeSet<String>) -> Vec<(String, Arc<K>)>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    names
        .into_iter()
        .filter_map(|name| {
            let object = store.get(&ObjectRef::new(&name).within(namespace))?;
            Some((name, object))
        })
        .collect()
}
