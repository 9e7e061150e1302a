//! Leader election with a `coordination.k8s.io/v1` Lease, so two operator replicas are safe:
//! one reconciles, the other waits to take over.
//!
//! Contract:
//! - [`decide`] is pure: given the Lease as read, this replica's identity and the time, it says
//!   whether to create, take, renew or wait. A Lease held by someone else is taken only once
//!   `renewTime + leaseDurationSeconds` has passed.
//! - Every write carries the `resourceVersion` read, so two replicas racing for an expired
//!   Lease cannot both win: the loser gets a conflict and reads again.
//! - [`LeaderElection::acquire`] returns once this replica leads; [`LeaderElection::hold`]
//!   renews every third of the lease duration and returns an error as soon as a renewal cannot
//!   be made before the lease would expire (the caller stops reconciling and exits, so two
//!   leaders never overlap by more than clock skew). [`LeaderElection::release`] hands the
//!   Lease back on a clean shutdown so the other replica takes over at once.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use tokio_util::sync::CancellationToken;

use super::log;

/// Why leading failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("Lease {namespace}/{name}: {source}")]
    Api {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error("lost Lease {namespace}/{name}: {reason}")]
    Lost {
        namespace: String,
        name: String,
        reason: String,
    },
    #[error("stopped before leading")]
    Stopped,
}

/// What to do with the Lease as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// There is no Lease: create it, held by us.
    Create,
    /// Someone else held it and it expired (or nobody holds it): take it.
    Take,
    /// We hold it: renew it.
    Renew,
    /// Someone else holds it until `until`.
    Wait { holder: String, until: Timestamp },
}

/// See the module contract.
pub fn decide(lease: Option<&Lease>, identity: &str, now: Timestamp) -> Decision {
    let Some(lease) = lease else {
        return Decision::Create;
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.unwrap_or_default();
    if holder == identity {
        return Decision::Renew;
    }
    if holder.is_empty() {
        return Decision::Take;
    }
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(15).max(1));
    let renewed = spec
        .renew_time
        .or(spec.acquire_time)
        .map_or(Timestamp::UNIX_EPOCH, |time| time.0);
    let until = renewed
        .checked_add(SignedDuration::from_secs(duration))
        .unwrap_or(Timestamp::MAX);
    if now >= until {
        Decision::Take
    } else {
        Decision::Wait { holder, until }
    }
}

/// One replica's side of the election.
#[derive(Clone)]
pub struct LeaderElection {
    pub api: Api<Lease>,
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub lease_duration: Duration,
}

impl LeaderElection {
    fn api_error(&self, source: kube::Error) -> LeaderError {
        LeaderError::Api {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            source,
        }
    }

    fn spec(&self, previous: Option<&LeaseSpec>, now: Timestamp, taking: bool) -> LeaseSpec {
        let previous = previous.cloned().unwrap_or_default();
        let transitions = previous.lease_transitions.unwrap_or(0);
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.lease_duration.as_secs()).unwrap_or(15),
            ),
            acquire_time: if taking {
                Some(MicroTime(now))
            } else {
                previous.acquire_time
            },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(if taking { transitions + 1 } else { transitions }),
            ..LeaseSpec::default()
        }
    }

    /// One attempt: `Ok(true)` when we hold the Lease afterwards.
    async fn attempt(&self) -> Result<bool, LeaderError> {
        let now = Timestamp::now();
        let current = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|error| self.api_error(error))?;
        let result = match decide(current.as_ref(), &self.identity, now) {
            Decision::Wait { .. } => return Ok(false),
            Decision::Create => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        namespace: Some(self.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(self.spec(None, now, true)),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            decision @ (Decision::Take | Decision::Renew) => {
                let Some(mut lease) = current else {
                    return Ok(false);
                };
                lease.spec = Some(self.spec(lease.spec.as_ref(), now, decision == Decision::Take));
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match result {
            Ok(_) => Ok(true),
            // Someone else wrote first: not ours this round.
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(self.api_error(error)),
        }
    }

    /// Returns once this replica leads, or [`LeaderError::Stopped`] when `stop` fires first.
    pub async fn acquire(&self, stop: &CancellationToken) -> Result<(), LeaderError> {
        let retry = (self.lease_duration / 5).max(Duration::from_millis(200));
        let mut announced = false;
        loop {
            let attempt = tokio::time::timeout(self.lease_duration, self.attempt())
                .await
                .unwrap_or(Ok(false));
            match attempt {
                Ok(true) => {
                    log::info(
                        "leading",
                        &[("lease", &format!("{}/{}", self.namespace, self.name))],
                    );
                    return Ok(());
                }
                Ok(false) if !announced => {
                    announced = true;
                    log::info(
                        "waiting to lead",
                        &[("lease", &format!("{}/{}", self.namespace, self.name))],
                    );
                }
                Ok(false) => {}
                Err(error) => log::warn("leader election", &[("error", &error.to_string())]),
            }
            tokio::select! {
                () = stop.cancelled() => return Err(LeaderError::Stopped),
                () = tokio::time::sleep(retry) => {}
            }
        }
    }

    /// Renews until `stop` fires (`Ok`) or the Lease is lost (`Err`).
    pub async fn hold(&self, stop: &CancellationToken) -> Result<(), LeaderError> {
        let period = self.lease_duration / 3;
        let mut last_renewal = tokio::time::Instant::now();
        loop {
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                () = tokio::time::sleep(period) => {}
            }
            // Every renewal must finish while the lease still holds, keeping one period in hand:
            // an API server that stops answering must not keep this replica leading.
            let budget = self
                .lease_duration
                .saturating_sub(last_renewal.elapsed())
                .saturating_sub(period);
            let attempt = match tokio::time::timeout(budget, self.attempt()).await {
                Ok(result) => result,
                Err(_) => {
                    return Err(LeaderError::Lost {
                        namespace: self.namespace.clone(),
                        name: self.name.clone(),
                        reason: "the API server did not answer a renewal in time".to_string(),
                    })
                }
            };
            match attempt {
                Ok(true) => last_renewal = tokio::time::Instant::now(),
                Ok(false) => {
                    return Err(LeaderError::Lost {
                        namespace: self.namespace.clone(),
                        name: self.name.clone(),
                        reason: "another replica holds it".to_string(),
                    })
                }
                Err(error) => {
                    // Give up before the lease runs out, keeping one period in hand.
                    if last_renewal.elapsed() + period >= self.lease_duration {
                        return Err(LeaderError::Lost {
                            namespace: self.namespace.clone(),
                            name: self.name.clone(),
                            reason: format!("cannot renew: {error}"),
                        });
                    }
                    log::warn("lease renewal failed", &[("error", &error.to_string())]);
                }
            }
        }
    }

    /// Hands the Lease back (best effort) so another replica can lead at once.
    pub async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        if let Err(error) = self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            log::warn("cannot release the Lease", &[("error", &error.to_string())]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: Option<&str>, renewed_at: i64, duration: i32) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_string),
                lease_duration_seconds: Some(duration),
                renew_time: Some(MicroTime(
                    Timestamp::from_second(renewed_at).expect("valid timestamp"),
                )),
                ..LeaseSpec::default()
            }),
        }
    }

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).expect("valid timestamp")
    }

    #[test]
    fn no_lease_is_created() {
        assert_eq!(decide(None, "a", at(0)), Decision::Create);
    }

    #[test]
    fn our_own_lease_is_renewed_even_when_expired() {
        assert_eq!(
            decide(Some(&lease(Some("a"), 0, 15)), "a", at(100)),
            Decision::Renew
        );
    }

    #[test]
    fn another_holder_is_waited_for_until_its_lease_expires() {
        let held = lease(Some("b"), 100, 15);
        assert_eq!(
            decide(Some(&held), "a", at(114)),
            Decision::Wait {
                holder: "b".to_string(),
                until: at(115)
            }
        );
        assert_eq!(decide(Some(&held), "a", at(115)), Decision::Take);
    }

    #[test]
    fn a_released_lease_is_taken_at_once() {
        assert_eq!(
            decide(Some(&lease(None, 100, 1)), "a", at(100)),
            Decision::Take
        );
    }
}
