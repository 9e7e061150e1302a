//! What every task of the agent shares ([`Shared`]): the client, the settings, the programs it
//! runs, the watch caches, and the Pod records (addresses, pids, readiness) that name
//! resolution and cleanup read.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::jiff::Timestamp;
use k8s_openapi::NamespaceResourceScope;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use crate::kubernetes::network::{delete_bridge, delete_sandbox, AddressPool};

use super::mounts::remove_created_paths;
use super::termination::send_signal;
use super::{api_call, NodeError, NodeSettings, EVENT_LIMIT};

/// Absolute paths of the programs the agent runs, found once (a container's `PATH` must not
/// change which `ip` runs).
#[derive(Debug)]
pub(super) struct Programs {
    pub(super) ip: PathBuf,
    pub(super) unshare: PathBuf,
    pub(super) nsenter: PathBuf,
}

impl Programs {
    pub(super) fn find() -> Self {
        Self {
            ip: find_program("ip"),
            unshare: find_program("unshare"),
            nsenter: find_program("nsenter"),
        }
    }
}

fn find_program(name: &str) -> PathBuf {
    [
        "/usr/sbin",
        "/sbin",
        "/usr/bin",
        "/bin",
        "/usr/local/sbin",
        "/usr/local/bin",
    ]
    .iter()
    .map(|directory| Path::new(directory).join(name))
    .find(|path| path.is_file())
    .unwrap_or_else(|| PathBuf::from(name))
}

/// What every task of the agent shares. Lock order: `state` before `hosts_written`; neither is
/// held across an `.await`.
pub(super) struct Shared {
    pub(super) client: Client,
    pub(super) settings: NodeSettings,
    pub(super) bridge: String,
    pub(super) gateway: Ipv4Addr,
    pub(super) hosts_path: PathBuf,
    pub(super) programs: Programs,
    pub(super) state: Mutex<State>,
    /// The hosts file content last written.
    pub(super) hosts_written: Mutex<Option<String>>,
    pub(super) services: Store<Service>,
    pub(super) config_maps: Store<ConfigMap>,
    pub(super) secrets: Store<Secret>,
}

pub(super) struct State {
    /// Pods with a sandbox, by UID.
    pub(super) pods: BTreeMap<String, PodRecord>,
    pub(super) addresses: AddressPool,
    /// Log file of every Pod run so far, by namespace and name.
    pub(super) logs: BTreeMap<(String, String), PathBuf>,
    /// Mount points (directories and files) the agent created on the host.
    pub(super) created_paths: BTreeSet<PathBuf>,
    /// The agent's own log, newest last.
    pub(super) events: VecDeque<String>,
}

/// A Pod with a sandbox: what name resolution and cleanup need.
#[derive(Debug, Clone)]
pub(super) struct PodRecord {
    pub(super) namespace: String,
    pub(super) name: String,
    pub(super) hostname: String,
    pub(super) subdomain: Option<String>,
    pub(super) labels: BTreeMap<String, String>,
    pub(super) address: Ipv4Addr,
    pub(super) network_namespace: String,
    pub(super) pid: Option<u32>,
    pub(super) ready: bool,
}

impl Shared {
    pub(super) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a line to the agent's own log.
    pub(super) fn record(&self, message: String) {
        let line = format!("{} {message}", Timestamp::now());
        let mut state = self.state();
        if state.events.len() >= EVENT_LIMIT {
            state.events.pop_front();
        }
        state.events.push_back(line);
    }

    pub(super) fn update_pod(&self, uid: &str, change: impl FnOnce(&mut PodRecord)) {
        if let Some(record) = self.state().pods.get_mut(uid) {
            change(record);
        }
    }

    /// ConfigMaps or Secrets of `namespace` by name: from the watch cache, else from the API;
    /// those that do not exist are left out.
    pub(super) async fn lookup<K>(
        &self,
        store: &Store<K>,
        namespace: &str,
        names: &BTreeSet<String>,
    ) -> Result<BTreeMap<String, Arc<K>>, NodeError>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug
            + 'static,
    {
        let mut found = BTreeMap::new();
        for name in names {
            if let Some(object) = store.get(&ObjectRef::new(name).within(namespace)) {
                found.insert(name.clone(), object);
                continue;
            }
            let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
            let object = api_call(
                || format!("reading {} {namespace}/{name}", K::kind(&())),
                api.get_opt(name),
            )
            .await?;
            if let Some(object) = object {
                found.insert(name.clone(), Arc::new(object));
            }
        }
        Ok(found)
    }

    /// Kills every process still known, deletes every network namespace and the bridge, and
    /// removes the mount points the agent created (only if empty). Synchronous, best effort.
    pub(super) fn release_everything(&self) {
        let (records, created) = {
            let mut state = self.state();
            let records: Vec<PodRecord> = std::mem::take(&mut state.pods).into_values().collect();
            for record in &records {
                state.addresses.release(record.address);
            }
            (records, std::mem::take(&mut state.created_paths))
        };
        for record in &records {
            if let Some(pid) = record.pid {
                send_signal(pid, nix::sys::signal::Signal::SIGKILL);
            }
        }
        for record in &records {
            let _ = delete_sandbox(&record.network_namespace);
        }
        let _ = delete_bridge(&self.bridge);
        remove_created_paths(created);
        self.refresh_hosts();
    }
}
