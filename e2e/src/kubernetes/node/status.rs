//! The Pod's status: [`StatusTracker`] keeps the facts and renders them (phase, conditions whose
//! times change only with them, the container status); the supervisor merge-patches the status
//! subresource when the rendering differs from what it last wrote, never otherwise.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::Api;
use serde_json::{json, Value};

use super::container::RunningContainer;
use super::pod_spec::first_container;
use super::supervisor::PodSupervisor;
use super::{api_call, is_api_status, now, UNSUPPORTED_REASON};

/// What the Pod's status says, kept between writes so times only change with their facts.
#[derive(Debug, Default)]
pub(super) struct StatusTracker {
    /// Why the Pod can not run here (phase `Failed`).
    pub(super) failure: Option<String>,
    pub(super) start_time: Option<Time>,
    pub(super) address: Option<Ipv4Addr>,
    pub(super) restart_count: i32,
    pub(super) pid: Option<u32>,
    pub(super) running_since: Option<Time>,
    pub(super) started: bool,
    pub(super) ready: bool,
    pub(super) waiting: Option<(String, String)>,
    pub(super) last_terminated: Option<ContainerStateTerminated>,
    /// Each condition's status and when it last changed.
    pub(super) transitions: BTreeMap<&'static str, (bool, Time)>,
    /// The status last written.
    pub(super) written: Option<Value>,
}

impl StatusTracker {
    /// The `status` to write for a Pod whose container is `container_name`.
    fn render(&mut self, container_name: &str, image: &str, host: Ipv4Addr) -> Value {
        let failed = self.failure.is_some();
        let ready = self.ready && self.pid.is_some() && !failed;
        let conditions = [
            ("PodScheduled", true),
            ("Initialized", !failed),
            ("PodReadyToStartContainers", self.address.is_some()),
            ("ContainersReady", ready),
            ("Ready", ready),
        ]
        .into_iter()
        .map(|(kind, value)| {
            let (_, since) = self
                .transitions
                .entry(kind)
                .and_modify(|(status, since)| {
                    if *status != value {
                        *status = value;
                        *since = now();
                    }
                })
                .or_insert_with(|| (value, now()));
            PodCondition {
                type_: kind.to_string(),
                status: if value { "True" } else { "False" }.to_string(),
                last_transition_time: Some(since.clone()),
                ..PodCondition::default()
            }
        })
        .collect();
        let phase = if failed {
            "Failed"
        } else if self.start_time.is_some() {
            "Running"
        } else {
            "Pending"
        };
        let state = match (&self.running_since, &self.waiting) {
            (Some(since), _) => ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(since.clone()),
                }),
                ..ContainerState::default()
            },
            (None, Some((reason, message))) => ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.clone()),
                    message: Some(message.clone()),
                }),
                ..ContainerState::default()
            },
            (None, None) => ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some("ContainerCreating".to_string()),
                    message: None,
                }),
                ..ContainerState::default()
            },
        };
        let container_status = ContainerStatus {
            name: container_name.to_string(),
            image: image.to_string(),
            image_id: String::new(),
            container_id: self.pid.map(container_id),
            ready,
            started: Some(self.started && self.pid.is_some()),
            restart_count: self.restart_count,
            state: Some(state),
            last_state: Some(
                self.last_terminated
                    .clone()
                    .map(|terminated| ContainerState {
                        terminated: Some(terminated),
                        ..ContainerState::default()
                    })
                    .unwrap_or_default(),
            ),
            ..ContainerStatus::default()
        };
        let status = PodStatus {
            phase: Some(phase.to_string()),
            reason: failed.then(|| UNSUPPORTED_REASON.to_string()),
            message: self.failure.clone(),
            host_ip: Some(host.to_string()),
            host_ips: Some(vec![HostIP {
                ip: host.to_string(),
            }]),
            pod_ip: self.address.map(|address| address.to_string()),
            pod_ips: self.address.map(|address| {
                vec![PodIP {
                    ip: address.to_string(),
                }]
            }),
            start_time: self.start_time.clone(),
            conditions: Some(conditions),
            container_statuses: (!failed && !container_name.is_empty())
                .then(|| vec![container_status]),
            ..PodStatus::default()
        };
        serde_json::to_value(status).unwrap_or(Value::Null)
    }
}

impl PodSupervisor {
    /// Writes the Pod's status when it differs from what was last written.
    pub(super) async fn publish_status(&mut self) {
        let container = first_container(&self.pod);
        let name = container
            .map(|container| container.name.clone())
            .unwrap_or_default();
        let image = container
            .and_then(|container| container.image.clone())
            .unwrap_or_default();
        let status = self.status.render(&name, &image, self.shared.gateway);
        if self.status.written.as_ref() == Some(&status) {
            self.status_dirty = false;
            return;
        }
        let api: Api<Pod> = Api::namespaced(self.shared.client.clone(), &self.namespace);
        let patch = json!({ "status": status });
        let written = api_call(
            || format!("writing the status of pod {}", self.label()),
            api.patch_status(&self.name, &PatchParams::default(), &Patch::Merge(&patch)),
        )
        .await;
        match written {
            Ok(_) => {
                self.status.written = Some(status);
                self.status_dirty = false;
            }
            Err(error) if is_api_status(&error, 404) => self.status_dirty = false,
            Err(error) => {
                self.record(error);
                self.status_dirty = true;
            }
        }
    }
}

pub(super) fn terminated_state(
    running: &RunningContainer,
    exit: ExitStatus,
) -> ContainerStateTerminated {
    let (exit_code, signal) = match (exit.code(), exit.signal()) {
        (Some(code), _) => (code, None),
        (None, Some(signal)) => (128 + signal, Some(signal)),
        (None, None) => (255, None),
    };
    ContainerStateTerminated {
        container_id: Some(container_id(running.pid)),
        exit_code,
        finished_at: Some(now()),
        message: None,
        reason: Some(if exit_code == 0 { "Completed" } else { "Error" }.to_string()),
        signal,
        started_at: Some(running.started_at.clone()),
    }
}

fn container_id(pid: u32) -> String {
    format!("tern://{pid}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_times_change_only_with_their_conditions() {
        let mut tracker = StatusTracker {
            address: Some(Ipv4Addr::new(10, 250, 7, 2)),
            ..StatusTracker::default()
        };
        let host = Ipv4Addr::new(10, 250, 7, 1);
        let pending = tracker.render("tern", "tern:1", host);
        assert_eq!(pending["phase"], "Pending");
        assert_eq!(pending["podIP"], "10.250.7.2");
        assert_eq!(tracker.render("tern", "tern:1", host), pending);
        tracker.start_time = Some(now());
        tracker.pid = Some(42);
        tracker.running_since = Some(now());
        tracker.started = true;
        tracker.ready = true;
        let running = tracker.render("tern", "tern:1", host);
        assert_eq!(running["phase"], "Running");
        let container = &running["containerStatuses"][0];
        assert_eq!(container["containerID"], "tern://42");
        assert_eq!(container["ready"], true);
        assert!(container["state"]["running"]["startedAt"].is_string());
        let ready = running["conditions"]
            .as_array()
            .and_then(|conditions| {
                conditions
                    .iter()
                    .find(|condition| condition["type"] == "Ready")
            })
            .cloned()
            .unwrap_or_default();
        assert_eq!(ready["status"], "True");
        tracker.failure = Some("nope".to_string());
        let failed = tracker.render("tern", "tern:1", host);
        assert_eq!(failed["phase"], "Failed");
        assert_eq!(failed["reason"], UNSUPPORTED_REASON);
        assert!(failed.get("containerStatuses").is_none());
    }
}
