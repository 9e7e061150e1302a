//! One Pod's life: [`PodSupervisor`] creates the sandbox, prepares and starts the container,
//! restarts it with backoff when it exits or fails its liveness probe, and ends the run when
//! the Pod is deleted or removed or the agent stops. It is the only writer of the Pod's status.

use std::net::Ipv4Addr;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::kubernetes::network::{create_sandbox, delete_sandbox, namespace_name};

use super::container::{Prepared, RunningContainer};
use super::pod_spec::{pod_hostname, supported_container};
use super::probes::ProbeEvent;
use super::shared::{PodRecord, Shared};
use super::status::{terminated_state, StatusTracker};
use super::{blocking, NodeError, RESTART_BACKOFF_FIRST, RESTART_BACKOFF_MAX, STOP_GRACE};

/// A container that ran this long restarts with the first backoff again.
const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(60);
/// How often file volumes are compared with their ConfigMaps and Secrets (and a failed status
/// write is retried).
const REFRESH_INTERVAL: Duration = Duration::from_secs(1);
const DEFAULT_GRACE_SECONDS: i64 = 30;

/// Why a Pod's run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Interrupt {
    /// The Pod has a `deletionTimestamp`: terminate gracefully, then delete the object.
    Deleting,
    /// The Pod is gone from the API: kill at once.
    Removed,
    /// The agent stops: terminate with [`STOP_GRACE`], keep the object.
    Stopping,
}

/// How one run of the container ended.
enum RunEnd {
    Exited(ExitStatus),
    Unhealthy(String),
    Interrupted(Interrupt),
}

/// The Pod's sandbox: its address and network namespace.
#[derive(Debug, Clone)]
pub(super) struct Sandbox {
    pub(super) address: Ipv4Addr,
    pub(super) network_namespace: String,
}

/// Runs one Pod from its first sighting to its deletion (or the agent's stop).
pub(super) struct PodSupervisor {
    pub(super) shared: Arc<Shared>,
    pub(super) pod: Arc<Pod>,
    pub(super) uid: String,
    pub(super) namespace: String,
    pub(super) name: String,
    pub(super) updates: watch::Receiver<Arc<Pod>>,
    pub(super) updates_open: bool,
    pub(super) removed: CancellationToken,
    pub(super) stop: CancellationToken,
    pub(super) sandbox: Option<Sandbox>,
    pub(super) status: StatusTracker,
    /// When the deletion was first seen: the grace period counts from here.
    pub(super) deletion_seen: Option<Instant>,
    /// A status write failed: retry on the next refresh.
    pub(super) status_dirty: bool,
}

impl PodSupervisor {
    pub(super) fn new(
        shared: Arc<Shared>,
        updates: watch::Receiver<Arc<Pod>>,
        removed: CancellationToken,
        stop: CancellationToken,
    ) -> Self {
        let pod = Arc::clone(&updates.borrow());
        let metadata = &pod.metadata;
        Self {
            uid: metadata.uid.clone().unwrap_or_default(),
            namespace: metadata.namespace.clone().unwrap_or_default(),
            name: metadata.name.clone().unwrap_or_default(),
            shared,
            pod,
            updates,
            updates_open: true,
            removed,
            stop,
            sandbox: None,
            status: StatusTracker::default(),
            deletion_seen: None,
            status_dirty: false,
        }
    }

    pub(super) fn label(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    pub(super) fn record(&self, message: impl std::fmt::Display) {
        self.shared
            .record(format!("pod {}: {message}", self.label()));
    }

    fn is_deleting(&mut self) -> bool {
        let deleting = self.pod.metadata.deletion_timestamp.is_some();
        if deleting && self.deletion_seen.is_none() {
            self.deletion_seen = Some(Instant::now());
        }
        deleting
    }

    /// The grace period the API gave the deletion (else the Pod's, else 30 s).
    pub(super) fn grace_period(&self) -> Duration {
        let seconds = self
            .pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| {
                self.pod
                    .spec
                    .as_ref()
                    .and_then(|spec| spec.termination_grace_period_seconds)
            })
            .unwrap_or(DEFAULT_GRACE_SECONDS);
        Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
    }

    pub(super) async fn run(mut self) {
        let (interrupt, container) = self.drive().await;
        self.finish(interrupt, container).await;
    }

    /// Prepares and runs the Pod until something interrupts it.
    async fn drive(&mut self) -> (Interrupt, Option<RunningContainer>) {
        if self.is_deleting() {
            return (Interrupt::Deleting, None);
        }
        let container = match supported_container(&self.pod) {
            Ok(container) => container,
            Err(error) => return (self.fail(error.to_string()).await, None),
        };
        if let Err(error) = self.create_sandbox().await {
            return (self.fail(error.to_string()).await, None);
        }
        let mut backoff = RESTART_BACKOFF_FIRST;
        let mut prepared = loop {
            match self.prepare(&container).await {
                Ok(prepared) => break prepared,
                Err(NodeError::Unsupported(reason)) => {
                    return (self.fail(reason).await, None);
                }
                Err(error) => {
                    self.record(format_args!("not ready to start: {error}"));
                    let waiting = ("CreateContainerConfigError", error.to_string());
                    if let Some(interrupt) = self.back_off(waiting, &mut backoff).await {
                        return (interrupt, None);
                    }
                }
            }
        };
        backoff = RESTART_BACKOFF_FIRST;
        loop {
            let mut running = match self.start_container(&prepared) {
                Ok(running) => running,
                Err(error) => {
                    self.record(format_args!("starting the container: {error}"));
                    let waiting = ("CreateContainerError", error.to_string());
                    if let Some(interrupt) = self.back_off(waiting, &mut backoff).await {
                        return (interrupt, None);
                    }
                    continue;
                }
            };
            self.publish_status().await;
            let end = self.supervise(&mut running, &mut prepared).await;
            let exit = match end {
                RunEnd::Interrupted(interrupt) => {
                    return (interrupt, Some(running));
                }
                RunEnd::Exited(exit) => {
                    self.record(format_args!("container exited ({exit}); restarting"));
                    exit
                }
                RunEnd::Unhealthy(reason) => {
                    self.record(format_args!("{reason}; restarting the container"));
                    match self.terminate(&mut running, STOP_GRACE, false).await {
                        Ok(exit) => exit,
                        Err(interrupt) => return (interrupt, Some(running)),
                    }
                }
            };
            self.container_stopped(&running, exit);
            if running.started.elapsed() >= BACKOFF_RESET_AFTER {
                backoff = RESTART_BACKOFF_FIRST;
            }
            drop(running);
            self.status.restart_count += 1;
            let message = format!("back-off {backoff:?} restarting the container");
            if let Some(interrupt) = self
                .back_off(("CrashLoopBackOff", message), &mut backoff)
                .await
            {
                return (interrupt, None);
            }
        }
    }

    /// Shows the container waiting (reason and message), then waits out `backoff` unless the
    /// Pod's run is interrupted first; `backoff` doubles (up to [`RESTART_BACKOFF_MAX`]).
    async fn back_off(
        &mut self,
        (reason, message): (&str, String),
        backoff: &mut Duration,
    ) -> Option<Interrupt> {
        self.status.waiting = Some((reason.to_string(), message));
        self.publish_status().await;
        let interrupt = self.pause(*backoff).await;
        *backoff = (*backoff * 2).min(RESTART_BACKOFF_MAX);
        interrupt
    }

    /// Marks the Pod `Failed` (it can not run here) and waits for its end.
    async fn fail(&mut self, reason: String) -> Interrupt {
        self.record(format_args!("failed: {reason}"));
        self.status.failure = Some(reason);
        self.publish_status().await;
        loop {
            if let Some(interrupt) = self.pause(Duration::from_secs(3600)).await {
                return interrupt;
            }
        }
    }

    /// Waits for `duration` unless the Pod is deleted or removed or the agent stops first.
    async fn pause(&mut self, duration: Duration) -> Option<Interrupt> {
        let deadline = Instant::now() + duration;
        let mut refresh = tokio::time::interval(REFRESH_INTERVAL);
        loop {
            tokio::select! {
                biased;
                () = self.stop.cancelled() => return Some(Interrupt::Stopping),
                () = self.removed.cancelled() => return Some(Interrupt::Removed),
                changed = self.updates.changed(), if self.updates_open => {
                    if let Some(interrupt) = self.take_update(changed) {
                        return Some(interrupt);
                    }
                }
                () = tokio::time::sleep_until(deadline) => return None,
                _ = refresh.tick() => {
                    if self.status_dirty {
                        self.publish_status().await;
                    }
                }
            }
        }
    }

    fn take_update(&mut self, changed: Result<(), watch::error::RecvError>) -> Option<Interrupt> {
        match changed {
            Ok(()) => {
                self.pod = Arc::clone(&self.updates.borrow_and_update());
                self.is_deleting().then_some(Interrupt::Deleting)
            }
            Err(_) => {
                // The Pod watch has ended: only the stop token can end this Pod now.
                self.updates_open = false;
                None
            }
        }
    }

    async fn create_sandbox(&mut self) -> Result<(), NodeError> {
        let address = self.shared.state().addresses.allocate();
        let Some(address) = address else {
            return Err(NodeError::Unsupported(format!(
                "no free pod address left in {}",
                self.shared.state().addresses.network()
            )));
        };
        let network_namespace = namespace_name(&self.uid);
        let spec = self.pod.spec.clone().unwrap_or_default();
        self.shared.state().pods.insert(
            self.uid.clone(),
            PodRecord {
                namespace: self.namespace.clone(),
                name: self.name.clone(),
                hostname: pod_hostname(&self.pod),
                subdomain: spec.subdomain.filter(|subdomain| !subdomain.is_empty()),
                labels: self.pod.metadata.labels.clone().unwrap_or_default(),
                address,
                network_namespace: network_namespace.clone(),
                pid: None,
                ready: false,
            },
        );
        self.sandbox = Some(Sandbox {
            address,
            network_namespace: network_namespace.clone(),
        });
        self.status.address = Some(address);
        let bridge = self.shared.bridge.clone();
        let gateway = self.shared.gateway;
        blocking(move || {
            create_sandbox(&network_namespace, &bridge, address, gateway).map_err(NodeError::from)
        })
        .await?;
        self.shared.refresh_hosts();
        Ok(())
    }

    /// `pods/<namespace>` of the work directory: the Pod's files and its log live below.
    pub(super) fn namespace_directory(&self) -> PathBuf {
        let work_directory = &self.shared.settings.work_directory;
        work_directory.join("pods").join(&self.namespace)
    }

    /// The Pod's volumes and start script.
    pub(super) fn pod_directory(&self) -> PathBuf {
        self.namespace_directory().join(&self.uid)
    }

    /// Watches the running container until it exits, fails a probe, or the Pod's run is
    /// interrupted.
    async fn supervise(
        &mut self,
        running: &mut RunningContainer,
        prepared: &mut Prepared,
    ) -> RunEnd {
        let mut refresh = tokio::time::interval(REFRESH_INTERVAL);
        loop {
            tokio::select! {
                biased;
                () = self.stop.cancelled() => return RunEnd::Interrupted(Interrupt::Stopping),
                () = self.removed.cancelled() => return RunEnd::Interrupted(Interrupt::Removed),
                changed = self.updates.changed(), if self.updates_open => {
                    if let Some(interrupt) = self.take_update(changed) {
                        return RunEnd::Interrupted(interrupt);
                    }
                }
                exit = running.child.wait() => {
                    return RunEnd::Exited(exit.unwrap_or_else(|_| ExitStatus::from_raw(255 << 8)));
                }
                Some(event) = running.probe_events.recv() => match event {
                    ProbeEvent::Started => self.status.started = true,
                    ProbeEvent::Ready(ready) => {
                        self.status.ready = ready;
                        self.shared.update_pod(&self.uid, |record| record.ready = ready);
                        self.shared.refresh_hosts();
                        self.record(format_args!("ready: {ready}"));
                    }
                    ProbeEvent::Unhealthy(reason) => return RunEnd::Unhealthy(reason),
                },
                _ = refresh.tick() => self.refresh_volumes(prepared).await,
            }
            self.publish_status().await;
        }
    }

    pub(super) fn container_stopped(&mut self, running: &RunningContainer, exit: ExitStatus) {
        self.status.last_terminated = Some(terminated_state(running, exit));
        self.status.pid = None;
        self.status.running_since = None;
        self.status.started = false;
        self.status.ready = false;
        self.shared.update_pod(&self.uid, |record| {
            record.pid = None;
            record.ready = false;
        });
        self.shared.refresh_hosts();
    }

    pub(super) async fn release_sandbox(&mut self) {
        let Some(sandbox) = self.sandbox.take() else {
            return;
        };
        {
            let mut state = self.shared.state();
            state.pods.remove(&self.uid);
            state.addresses.release(sandbox.address);
        }
        self.shared.refresh_hosts();
        let namespace = sandbox.network_namespace;
        if let Err(error) =
            blocking(move || delete_sandbox(&namespace).map_err(NodeError::from)).await
        {
            self.record(error);
        }
    }
}
