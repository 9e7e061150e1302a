//! Health-gated rolling restarts, decided from what the API server shows.
//!
//! StatefulSets are rendered with `updateStrategy: OnDelete`, so a new pod template (a
//! restart-only config change, a new image) changes nothing until the operator deletes a pod;
//! the StatefulSet controller then recreates it from the new revision.
//!
//! Contract of [`next_step`] (pure):
//! - One server at a time: a pod is restarted only when every one of the set's pods exists,
//!   none is terminating and every one is Ready (their readiness probe is the broker's
//!   `/healthz`, which fails from the start of lame duck mode). So a restart waits for the
//!   previous one to come back healthy, and never starts while another server is down.
//! - Highest ordinal first: server 0, the one new servers gossip through first, goes last.
//! - Nothing is decided before the StatefulSet controller has observed the current spec
//!   (`status.observedGeneration`), so a stale `updateRevision` never drives a restart.

/// A pod as the rollout sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    pub name: String,
    pub ordinal: u32,
    /// The pod's `controller-revision-hash` label.
    pub revision: Option<String>,
    pub ready: bool,
    pub terminating: bool,
}

/// The StatefulSet as the rollout sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetView {
    pub replicas: u32,
    pub generation: Option<i64>,
    pub observed_generation: Option<i64>,
    pub update_revision: Option<String>,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Every pod runs the current revision.
    Settled,
    /// Pods are out of date, but restarting one now would take a second server down (or the
    /// StatefulSet controller has not caught up); the text says what is waited for.
    Waiting { outdated: usize, reason: String },
    /// Delete this pod; it comes back with the current revision.
    Restart { pod: String, outdated: usize },
}

/// The next step of the rollout; see the module contract.
pub fn next_step(set: &SetView, pods: &[PodView]) -> Step {
    let Some(update_revision) = set.update_revision.as_deref() else {
        return Step::Waiting {
            outdated: 0,
            reason: "the StatefulSet controller has not reported a revision yet".to_string(),
        };
    };
    if set.observed_generation < set.generation {
        return Step::Waiting {
            outdated: 0,
            reason: "the StatefulSet controller has not observed the current spec yet".to_string(),
        };
    }
    let mut outdated: Vec<&PodView> = pods
        .iter()
        .filter(|pod| pod.ordinal < set.replicas)
        .filter(|pod| pod.revision.as_deref() != Some(update_revision))
        .collect();
    if outdated.is_empty() {
        return Step::Settled;
    }
    outdated.sort_by_key(|pod| std::cmp::Reverse(pod.ordinal));
    let count = outdated.len();
    if let Some(pod) = pods.iter().find(|pod| pod.terminating) {
        return Step::Waiting {
            outdated: count,
            reason: format!("{} is terminating", pod.name),
        };
    }
    let present = pods.iter().filter(|pod| pod.ordinal < set.replicas).count();
    if present < set.replicas as usize {
        return Step::Waiting {
            outdated: count,
            reason: format!("{present} of {} servers exist", set.replicas),
        };
    }
    if let Some(pod) = pods
        .iter()
        .filter(|pod| pod.ordinal < set.replicas)
        .find(|pod| !pod.ready)
    {
        return Step::Waiting {
            outdated: count,
            reason: format!("{} is not ready", pod.name),
        };
    }
    Step::Restart {
        pod: outdated[0].name.clone(),
        outdated: count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(replicas: u32) -> SetView {
        SetView {
            replicas,
            generation: Some(2),
            observed_generation: Some(2),
            update_revision: Some("new".to_string()),
        }
    }

    fn pod(ordinal: u32, revision: &str, ready: bool) -> PodView {
        PodView {
            name: format!("nats-{ordinal}"),
            ordinal,
            revision: Some(revision.to_string()),
            ready,
            terminating: false,
        }
    }

    #[test]
    fn settled_when_every_pod_runs_the_update_revision() {
        let pods = [pod(0, "new", true), pod(1, "new", false)];
        assert_eq!(next_step(&set(2), &pods), Step::Settled);
    }

    #[test]
    fn restarts_the_highest_outdated_ordinal_first() {
        let pods = [
            pod(0, "old", true),
            pod(1, "old", true),
            pod(2, "new", true),
        ];
        assert_eq!(
            next_step(&set(3), &pods),
            Step::Restart {
                pod: "nats-1".to_string(),
                outdated: 2
            }
        );
    }

    #[test]
    fn waits_while_any_server_is_not_ready_missing_or_terminating() {
        let not_ready = [
            pod(0, "old", true),
            pod(1, "new", false),
            pod(2, "new", true),
        ];
        assert!(matches!(
            next_step(&set(3), &not_ready),
            Step::Waiting { outdated: 1, ref reason } if reason == "nats-1 is not ready"
        ));
        let missing = [pod(0, "old", true), pod(2, "new", true)];
        assert!(matches!(
            next_step(&set(3), &missing),
            Step::Waiting { ref reason, .. } if reason == "2 of 3 servers exist"
        ));
        let mut terminating = pod(2, "old", true);
        terminating.terminating = true;
        let pods = [pod(0, "old", true), pod(1, "old", true), terminating];
        assert!(matches!(
            next_step(&set(3), &pods),
            Step::Waiting { ref reason, .. } if reason == "nats-2 is terminating"
        ));
    }

    #[test]
    fn waits_until_the_statefulset_controller_saw_the_spec() {
        let mut view = set(1);
        view.observed_generation = Some(1);
        assert!(matches!(
            next_step(&view, &[pod(0, "old", true)]),
            Step::Waiting { .. }
        ));
        view.observed_generation = Some(2);
        view.update_revision = None;
        assert!(matches!(
            next_step(&view, &[pod(0, "old", true)]),
            Step::Waiting { .. }
        ));
    }

    #[test]
    fn pods_above_the_replica_count_do_not_hold_a_rollout() {
        // Scaling down: nats-3 is on its way out and is not part of the rollout.
        let pods = [pod(0, "old", true), pod(3, "old", false)];
        assert_eq!(
            next_step(&set(1), &pods),
            Step::Restart {
                pod: "nats-0".to_string(),
                outdated: 1
            }
        );
    }
}
