//! The watch loops: reflectors that keep the Service, ConfigMap and Secret caches, and the Pod
//! watch, which binds unscheduled Pods to this node (the scheduler's part) and runs one
//! [`PodSupervisor`] for each Pod bound here, at most [`MAX_PODS`] at once.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::shared::Shared;
use super::supervisor::PodSupervisor;
use super::{api_call, is_api_status, MAX_PODS};

/// Keeps `writer`'s store in sync with the cluster until `stop`; `changed` runs after each
/// event. Errors are logged; kube's watcher backoff (capped) spaces the reconnects.
pub(super) async fn reflect<K>(
    api: Api<K>,
    writer: reflector::store::Writer<K>,
    stop: CancellationToken,
    shared: Arc<Shared>,
    changed: impl Fn(&Shared) + Send + 'static,
) where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let stream =
        reflector::reflector(writer, watcher(api, watcher::Config::default())).default_backoff();
    let mut stream = std::pin::pin!(stream);
    loop {
        let item = tokio::select! {
            () = stop.cancelled() => return,
            item = stream.next() => item,
        };
        match item {
            None => return,
            Some(Ok(_)) => changed(&shared),
            Some(Err(error)) => shared.record(format!("watching {}: {error}", K::plural(&()))),
        }
    }
}

/// What the Pod watch keeps of each running supervisor.
struct SupervisorHandle {
    updates: watch::Sender<Arc<Pod>>,
    /// Cancelled when the Pod is gone from the API.
    removed: CancellationToken,
}

/// Binds unscheduled Pods to this node and runs a [`PodSupervisor`] for each Pod bound to it.
pub(super) async fn watch_pods(shared: Arc<Shared>, tasks: TaskTracker, stop: CancellationToken) {
    let api: Api<Pod> = Api::all(shared.client.clone());
    let stream = watcher(api, watcher::Config::default()).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut handles: HashMap<String, SupervisorHandle> = HashMap::new();
    let mut listed: HashSet<String> = HashSet::new();
    loop {
        let item = tokio::select! {
            () = stop.cancelled() => return,
            item = stream.next() => item,
        };
        let event = match item {
            None => return,
            Some(Ok(event)) => event,
            Some(Err(error)) => {
                shared.record(format!("watching pods: {error}"));
                continue;
            }
        };
        match event {
            watcher::Event::Init => listed.clear(),
            watcher::Event::InitApply(pod) => {
                if let Some(uid) = pod.metadata.uid.clone() {
                    listed.insert(uid);
                }
                apply_pod(&shared, &tasks, &stop, &mut handles, pod).await;
            }
            watcher::Event::InitDone => handles.retain(|uid, handle| {
                let present = listed.contains(uid);
                if !present {
                    handle.removed.cancel();
                }
                present
            }),
            watcher::Event::Apply(pod) => {
                apply_pod(&shared, &tasks, &stop, &mut handles, pod).await;
            }
            watcher::Event::Delete(pod) => {
                if let Some(handle) = pod
                    .metadata
                    .uid
                    .as_ref()
                    .and_then(|uid| handles.remove(uid))
                {
                    handle.removed.cancel();
                }
            }
        }
    }
}

async fn apply_pod(
    shared: &Arc<Shared>,
    tasks: &TaskTracker,
    stop: &CancellationToken,
    handles: &mut HashMap<String, SupervisorHandle>,
    pod: Pod,
) {
    let Some(uid) = pod.metadata.uid.clone() else {
        return;
    };
    let spec = pod.spec.as_ref();
    let node_name = spec
        .and_then(|spec| spec.node_name.as_deref())
        .unwrap_or("");
    if node_name.is_empty() {
        let gated = spec
            .and_then(|spec| spec.scheduling_gates.as_ref())
            .is_some_and(|gates| !gates.is_empty());
        if pod.metadata.deletion_timestamp.is_none() && !gated {
            bind(shared, &pod, &uid).await;
        }
        return;
    }
    if node_name != shared.settings.node_name {
        return;
    }
    if let Some(handle) = handles.get(&uid) {
        if !handle.updates.is_closed() {
            handle.updates.send_replace(Arc::new(pod));
            return;
        }
        handles.remove(&uid);
    }
    let phase = pod
        .status
        .as_ref()
        .and_then(|status| status.phase.as_deref());
    let terminal = matches!(phase, Some("Succeeded" | "Failed"));
    if terminal && pod.metadata.deletion_timestamp.is_none() {
        return;
    }
    handles.retain(|_, handle| !handle.updates.is_closed());
    if handles.len() >= MAX_PODS {
        shared.record(format!(
            "not running pod {}: {MAX_PODS} pods already run on this node",
            pod_label(&pod)
        ));
        return;
    }
    let (updates, receiver) = watch::channel(Arc::new(pod));
    let removed = CancellationToken::new();
    let supervisor = PodSupervisor::new(
        Arc::clone(shared),
        receiver,
        removed.clone(),
        stop.child_token(),
    );
    handles.insert(uid, SupervisorHandle { updates, removed });
    tasks.spawn(supervisor.run());
}

/// Binds `pod` to this node, as the scheduler would.
async fn bind(shared: &Shared, pod: &Pod, uid: &str) {
    let (Some(namespace), Some(name)) = (&pod.metadata.namespace, &pod.metadata.name) else {
        return;
    };
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.clone()),
            uid: Some(uid.to_string()),
            ..ObjectMeta::default()
        },
        target: ObjectReference {
            api_version: Some("v1".to_string()),
            kind: Some("Node".to_string()),
            name: Some(shared.settings.node_name.clone()),
            ..ObjectReference::default()
        },
    };
    let api: Api<Pod> = Api::namespaced(shared.client.clone(), namespace);
    let bound = api_call(
        || format!("binding pod {namespace}/{name}"),
        api.create_subresource::<_, Value>("binding", name, &PostParams::default(), &binding),
    )
    .await;
    match bound {
        Ok(_) => shared.record(format!(
            "bound pod {namespace}/{name} to {}",
            shared.settings.node_name
        )),
        // Bound already, or gone: the watch tells what happened.
        Err(error) if is_api_status(&error, 409) || is_api_status(&error, 404) => {}
        Err(error) => shared.record(error.to_string()),
    }
}

fn pod_label(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}
