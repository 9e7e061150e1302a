//! What every reconcile shares: the API client, settings, metrics, the Event recorder, and
//! per-object failure counts for backoff.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::Client;

use super::log;
use super::metrics::Metrics;

/// Field manager of every server-side apply, and the Events' reporting controller.
pub const FIELD_MANAGER: &str = "tern-operator";

/// Settings from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `--kubernetes-cluster-name`: which SuperCluster members are local.
    pub kubernetes_cluster_name: Option<String>,
    /// `--cluster-domain`.
    pub cluster_domain: String,
    /// How often a settled resource is looked at again without any change.
    pub resync: Duration,
    /// How often a resource that is still changing (rolling, starting) is looked at.
    pub poll: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            kubernetes_cluster_name: None,
            cluster_domain: "cluster.local".to_string(),
            resync: Duration::from_secs(300),
            poll: Duration::from_secs(5),
        }
    }
}

/// Shared by all reconciles.
pub struct Context {
    pub client: Client,
    pub settings: Settings,
    pub metrics: Metrics,
    pub recorder: Recorder,
    failures: Mutex<HashMap<String, u32>>,
}

/// The first retry after a failure; doubled per consecutive failure up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(2);
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

impl Context {
    pub fn new(client: Client, settings: Settings, metrics: Metrics, recorder: Recorder) -> Self {
        Self {
            client,
            settings,
            metrics,
            recorder,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a failure of `key` and returns how long to wait before the next attempt.
    pub fn backoff(&self, key: &str) -> Duration {
        let count = match self.failures.lock() {
            Ok(mut failures) => {
                let count = failures.entry(key.to_string()).or_insert(0);
                *count = count.saturating_add(1);
                *count
            }
            Err(_) => 1,
        };
        backoff_delay(count, key)
    }

    /// Forgets the failures of `key` after a successful reconcile.
    pub fn succeeded(&self, key: &str) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(key);
        }
    }

    /// Publishes an Event about `regarding`; a failure to publish is logged, never fatal.
    pub async fn event(
        &self,
        regarding: &ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = Event {
            type_,
            reason: reason.to_string(),
            note: Some(note),
            action: action.to_string(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, regarding).await {
            log::warn(
                "cannot publish Event",
                &[("reason", reason), ("error", &error.to_string())],
            );
        }
    }
}

/// `FIRST_BACKOFF * 2^(failures-1)`, at most [`MAX_BACKOFF`], with up to 10% jitter derived
/// from the key so objects that fail together do not retry in lockstep.
pub fn backoff_delay(failures: u32, key: &str) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    let base = FIRST_BACKOFF
        .saturating_mul(1u32 << exponent)
        .min(MAX_BACKOFF);
    let spread = key.bytes().fold(u64::from(failures), |hash, byte| {
        hash.wrapping_mul(31).wrapping_add(u64::from(byte))
    }) % 100;
    let jitter_millis = u64::try_from(base.as_millis() / 1000).unwrap_or(0) * spread;
    base + Duration::from_millis(jitter_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_per_failure_and_is_capped() {
        let first = backoff_delay(1, "ns/a");
        let second = backoff_delay(2, "ns/a");
        let many = backoff_delay(40, "ns/a");
        assert!(
            first >= FIRST_BACKOFF && first < FIRST_BACKOFF * 11 / 10 + Duration::from_millis(1)
        );
        assert!(second >= FIRST_BACKOFF * 2);
        assert!(many >= MAX_BACKOFF && many <= MAX_BACKOFF * 11 / 10);
    }
}
