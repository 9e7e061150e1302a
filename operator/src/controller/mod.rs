//! The controllers: `tern-operator run`.
//!
//! Contract:
//! - One controller per custom resource kind (NatsCluster, SuperCluster, LeafNode) per watched
//!   scope: every namespace, or each `--namespace` given (so a namespaced Role is enough).
//! - With leader election on, nothing is reconciled before this replica holds the Lease, and
//!   the process exits (non-zero) as soon as it cannot renew it; a clean shutdown (SIGTERM or
//!   SIGINT) stops the controllers, finishes reconciles in flight and releases the Lease.
//! - Reconciles of one object never run concurrently (kube-runtime's guarantee); failures are
//!   retried per object with exponential backoff ([`context::backoff_delay`]); an invalid spec
//!   is reported on the resource and waits for the next change.
//! - `/metrics`, `/healthz` and `/readyz` are served on `--http-address` from the start.

mod apply;
pub mod conditions;
pub mod context;
pub mod leader;
pub mod log;
pub mod metrics;
mod resources;
pub mod rollout;
pub mod server_set;
pub mod varz;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use tokio_util::sync::CancellationToken;

use crate::crd::{LeafNode, NatsCluster, SuperCluster};
use crate::render::metadata::{MANAGED_BY, MANAGED_BY_LABEL};
use crate::render::RenderError;
use context::{Context, Settings, FIELD_MANAGER};
use leader::LeaderElection;
use metrics::Metrics;

/// How long reconciles in flight may take to finish once the operator stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Why one reconcile failed (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("cannot {action} {kind} {namespace}/{name}: {source}")]
    Kubernetes {
        action: &'static str,
        kind: String,
        namespace: String,
        name: String,
        source: Box<kube::Error>,
    },
    #[error("cannot render: {0}")]
    Render(Box<RenderError>),
    #[error("SuperCluster {super_cluster}, which runs this cluster, is invalid; its servers keep their running config until it is fixed: {message}")]
    SuperClusterInvalid {
        super_cluster: String,
        message: String,
    },
    #[error("{0}")]
    Internal(String),
}

impl ReconcileError {
    pub fn kubernetes(
        action: &'static str,
        kind: impl std::fmt::Display,
        namespace: &str,
        name: &str,
        source: kube::Error,
    ) -> Self {
        Self::Kubernetes {
            action,
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
            source: Box::new(source),
        }
    }

    /// The `reason` label of the failure metric.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Kubernetes { action, .. } => match *action {
                "apply" => "ApplyFailed",
                "delete" => "DeleteFailed",
                "evict" => "EvictFailed",
                "update status of" => "StatusFailed",
                _ => "ReadFailed",
            },
            Self::Render(_) => "RenderFailed",
            Self::SuperClusterInvalid { .. } => "SuperClusterInvalid",
            Self::Internal(_) => "Internal",
        }
    }
}

/// Why the operator stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot reach the Kubernetes API: {0}")]
    Client(kube::Error),
    #[error(transparent)]
    Metrics(#[from] metrics::MetricsError),
    #[error(transparent)]
    Leader(#[from] leader::LeaderError),
    #[error("cannot install the signal handler: {0}")]
    Signal(std::io::Error),
}

/// Leader election settings.
#[derive(Debug, Clone)]
pub struct LeaderSettings {
    pub namespace: String,
    pub lease: String,
    pub identity: String,
    pub lease_duration: Duration,
}

/// Everything `run` needs.
#[derive(Debug, Clone)]
pub struct RunSettings {
    pub settings: Settings,
    /// Empty: every namespace.
    pub namespaces: Vec<String>,
    pub http_address: SocketAddr,
    pub leader: Option<LeaderSettings>,
    pub identity: String,
}

fn object_key<K: Resource<DynamicType = ()>>(object: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        object.namespace().unwrap_or_default(),
        object.name_any()
    )
}

fn error_policy<K>(object: Arc<K>, error: &ReconcileError, context: Arc<Context>) -> Action
where
    K: Resource<DynamicType = ()>,
{
    let kind = K::kind(&());
    context.metrics.failed(&kind, error.reason());
    let key = object_key(object.as_ref());
    let delay = context.backoff(&key);
    log::warn(
        "reconcile failed",
        &[
            ("object", &key),
            ("reason", error.reason()),
            ("error", &error.to_string()),
            ("retry_in", &format!("{}s", delay.as_secs())),
        ],
    );
    Action::requeue(delay)
}

/// Records duration and resets the backoff of a successful reconcile.
async fn measured<K, F>(
    object: Arc<K>,
    context: Arc<Context>,
    reconcile: impl FnOnce(Arc<K>, Arc<Context>) -> F,
) -> Result<Action, ReconcileError>
where
    K: Resource<DynamicType = ()>,
    F: std::future::Future<Output = Result<Action, ReconcileError>>,
{
    let started = Instant::now();
    let key = object_key(object.as_ref());
    let result = reconcile(object, Arc::clone(&context)).await;
    context
        .metrics
        .reconciled(&K::kind(&()), started.elapsed().as_secs_f64());
    if result.is_ok() {
        context.succeeded(&key);
        log::debug("reconciled", &[("object", &key)]);
    }
    result
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}

/// The NatsClusters a SuperCluster may run as members (over-approximated: every member name
/// and reference; a reconcile of a non-member changes nothing).
fn member_references(super_cluster: SuperCluster) -> Vec<ObjectRef<NatsCluster>> {
    let namespace = super_cluster.namespace().unwrap_or_default();
    super_cluster
        .spec
        .members
        .iter()
        .flat_map(|member| {
            let mut names = vec![member.name.clone()];
            if let Some(reference) = &member.nats_cluster_ref {
                names.push(reference.name.clone());
            }
            names
        })
        .map(|name| ObjectRef::new(&name).within(&namespace))
        .collect()
}

/// Every resource of `store` in the namespace of `secret` (a reconcile of one that does not use
/// it changes nothing).
fn in_namespace_of<K>(store: &Store<K>, secret: &PartialObjectMeta<Secret>) -> Vec<ObjectRef<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    let namespace = secret.namespace();
    store
        .state()
        .iter()
        .filter(|object| object.namespace() == namespace)
        .map(|object| ObjectRef::from_obj(object.as_ref()))
        .collect()
}

/// Logs what a controller stream yields besides successful reconciles (watch errors, objects
/// gone before their reconcile ran); reconcile failures are logged by [`error_policy`].
async fn report<K: Resource>(
    kind: &'static str,
    result: Result<
        (ObjectRef<K>, Action),
        kube::runtime::controller::Error<ReconcileError, watcher::Error>,
    >,
) {
    match result {
        Ok(_) | Err(kube::runtime::controller::Error::ReconcilerFailed(..)) => {}
        // A SuperCluster's members that are not NatsClusters here (remote ones, or not made
        // yet): nothing to reconcile.
        Err(kube::runtime::controller::Error::ObjectNotFound(reference)) => log::debug(
            "nothing to reconcile",
            &[("kind", kind), ("object", &reference.to_string())],
        ),
        Err(error) => log::warn(
            "controller",
            &[("kind", kind), ("error", &error.to_string())],
        ),
    }
}

/// Runs the three controllers for one scope until `stop` fires.
async fn run_controllers(
    context: Arc<Context>,
    namespace: Option<String>,
    stop: CancellationToken,
) {
    let client = context.client.clone();
    let scope = namespace.as_deref();
    let owned = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"));
    let nats_clusters = Controller::new(
        api::<NatsCluster>(&client, scope),
        watcher::Config::default(),
    );
    let cluster_store = nats_clusters.store();
    let nats_clusters = nats_clusters
        // Secrets by their metadata only (no Secret data is held): a rotated password or
        // certificate must reach the servers that use it (`server_set::SECRETS_HASH_ANNOTATION`).
        .watches(
            api::<PartialObjectMeta<Secret>>(&client, scope),
            watcher::Config::default(),
            move |secret| in_namespace_of(&cluster_store, &secret),
        )
        .owns(api::<StatefulSet>(&client, scope), owned.clone())
        .owns(api::<ConfigMap>(&client, scope), owned.clone())
        .owns(api::<Service>(&client, scope), owned.clone())
        .watches(
            api::<SuperCluster>(&client, scope),
            watcher::Config::default(),
            member_references,
        )
        .graceful_shutdown_on(stop.clone().cancelled_owned())
        .run(
            |object, context| measured(object, context, resources::reconcile_nats_cluster),
            error_policy,
            Arc::clone(&context),
        )
        .for_each(|result| report("NatsCluster", result));
    let super_clusters = Controller::new(
        api::<SuperCluster>(&client, scope),
        watcher::Config::default(),
    )
    .owns(
        api::<NatsCluster>(&client, scope),
        watcher::Config::default(),
    )
    .graceful_shutdown_on(stop.clone().cancelled_owned())
    .run(
        |object, context| measured(object, context, resources::reconcile_super_cluster),
        error_policy,
        Arc::clone(&context),
    )
    .for_each(|result| report("SuperCluster", result));
    let leaf_nodes = Controller::new(api::<LeafNode>(&client, scope), watcher::Config::default());
    let leaf_store = leaf_nodes.store();
    let leaf_nodes = leaf_nodes
        .watches(
            api::<PartialObjectMeta<Secret>>(&client, scope),
            watcher::Config::default(),
            move |secret| in_namespace_of(&leaf_store, &secret),
        )
        .owns(api::<StatefulSet>(&client, scope), owned.clone())
        .owns(api::<ConfigMap>(&client, scope), owned.clone())
        .owns(api::<Service>(&client, scope), owned)
        .graceful_shutdown_on(stop.clone().cancelled_owned())
        .run(
            |object, context| measured(object, context, resources::reconcile_leaf_node),
            error_policy,
            Arc::clone(&context),
        )
        .for_each(|result| report("LeafNode", result));
    tokio::join!(nats_clusters, super_clusters, leaf_nodes);
}

/// Stops on SIGTERM or SIGINT.
fn stop_on_signals(stop: CancellationToken) -> Result<(), RunError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).map_err(RunError::Signal)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(RunError::Signal)?;
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        log::info("stopping", &[]);
        stop.cancel();
    });
    Ok(())
}

/// Runs the operator until a signal stops it (`Ok`) or leadership is lost (`Err`).
pub async fn run(run: RunSettings) -> Result<(), RunError> {
    let stop = CancellationToken::new();
    stop_on_signals(stop.clone())?;
    let metrics = Metrics::new()?;
    let listener = tokio::net::TcpListener::bind(run.http_address)
        .await
        .map_err(|source| RunError::Listen {
            address: run.http_address,
            source,
        })?;
    let http_address = listener.local_addr().unwrap_or(run.http_address);
    let http = tokio::spawn(metrics::serve(metrics.clone(), listener, stop.clone()));
    log::info(
        "starting",
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("http", &http_address.to_string()),
            ("identity", &run.identity),
            (
                "namespaces",
                &if run.namespaces.is_empty() {
                    "*".to_string()
                } else {
                    run.namespaces.join(",")
                },
            ),
        ],
    );
    let client = Client::try_default().await.map_err(RunError::Client)?;
    metrics.set_ready(true);
    let election = run.leader.as_ref().map(|leader| LeaderElection {
        api: Api::<Lease>::namespaced(client.clone(), &leader.namespace),
        namespace: leader.namespace.clone(),
        name: leader.lease.clone(),
        identity: leader.identity.clone(),
        lease_duration: leader.lease_duration,
    });
    if let Some(election) = &election {
        match election.acquire(&stop).await {
            Ok(()) => {}
            Err(leader::LeaderError::Stopped) => {
                let _ = http.await;
                return Ok(());
            }
            Err(error) => return Err(error.into()),
        }
    }
    metrics.set_leader(true);
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: FIELD_MANAGER.to_string(),
            instance: Some(run.identity.clone()),
        },
    );
    let context = Arc::new(Context::new(
        client,
        run.settings.clone(),
        metrics.clone(),
        recorder,
    ));
    let scopes: Vec<Option<String>> = if run.namespaces.is_empty() {
        vec![None]
    } else {
        run.namespaces.iter().cloned().map(Some).collect()
    };
    let controllers = futures_util::future::join_all(
        scopes
            .into_iter()
            .map(|scope| run_controllers(Arc::clone(&context), scope, stop.clone())),
    );
    let outcome = match &election {
        Some(election) => {
            let holding = election.hold(&stop);
            tokio::pin!(controllers);
            tokio::select! {
                held = holding => {
                    // Lost (or stopping): stop reconciling before anyone else starts. Reconciles
                    // in flight get a bounded time to finish; then the process goes anyway.
                    stop.cancel();
                    if tokio::time::timeout(SHUTDOWN_GRACE, controllers).await.is_err() {
                        log::warn("reconciles still running at shutdown; exiting anyway", &[]);
                    }
                    held
                }
                _ = &mut controllers => Ok(()),
            }
        }
        None => {
            controllers.await;
            Ok(())
        }
    };
    metrics.set_leader(false);
    if let (Some(election), Ok(())) = (&election, &outcome) {
        election.release().await;
    }
    stop.cancel();
    let _ = http.await;
    outcome.map_err(RunError::from)
}
