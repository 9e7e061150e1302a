//! Status conditions: one per type, with `lastTransitionTime` kept while the status holds.
//!
//! Contract: [`merge`] returns the conditions to write, given those on the object now and those
//! the reconcile computed. A condition whose `status` did not change keeps its
//! `lastTransitionTime`; one whose status flipped (or that is new) gets `now`. Types the
//! reconcile did not compute are dropped, so a resource never shows a stale condition. The
//! result is sorted by type so the status is deterministic.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::crd::ConditionType;

/// A condition as a reconcile decides it, before times are filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    pub type_: ConditionType,
    pub status: bool,
    /// PascalCase, machine-readable.
    pub reason: &'static str,
    /// For people: what is wrong and what to do.
    pub message: String,
}

impl Decided {
    pub fn new(
        type_: ConditionType,
        status: bool,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason,
            message: message.into(),
        }
    }
}

fn status_text(status: bool) -> &'static str {
    if status {
        "True"
    } else {
        "False"
    }
}

/// The conditions to write; see the module contract.
pub fn merge(
    existing: &[Condition],
    decided: &[Decided],
    generation: Option<i64>,
    now: Time,
) -> Vec<Condition> {
    let mut conditions: Vec<Condition> = decided
        .iter()
        .map(|decided| {
            let type_ = decided.type_.as_str();
            let status = status_text(decided.status);
            let last_transition_time = existing
                .iter()
                .find(|condition| condition.type_ == type_ && condition.status == status)
                .map_or_else(
                    || now.clone(),
                    |condition| condition.last_transition_time.clone(),
                );
            Condition {
                type_: type_.to_string(),
                status: status.to_string(),
                reason: decided.reason.to_string(),
                message: truncate(&decided.message, 32 * 1024),
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect();
    conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
    conditions.dedup_by(|a, b| a.type_ == b.type_);
    conditions
}

/// The API server refuses condition messages over 32768 bytes.
fn truncate(message: &str, limit: usize) -> String {
    if message.len() <= limit {
        return message.to_string();
    }
    let mut end = limit - 3;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &message[..end])
}

/// Whether `conditions` hold `type_` with status True.
pub fn is_true(conditions: &[Condition], type_: ConditionType) -> bool {
    conditions
        .iter()
        .any(|condition| condition.type_ == type_.as_str() && condition.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn time(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).expect("valid timestamp"))
    }

    #[test]
    fn unchanged_status_keeps_its_transition_time_and_a_flip_gets_now() {
        let first = merge(
            &[],
            &[
                Decided::new(ConditionType::Ready, false, "Starting", "0 of 3 ready"),
                Decided::new(ConditionType::SpecValid, true, "Valid", ""),
            ],
            Some(1),
            time(100),
        );
        assert_eq!(first.len(), 2);
        assert!(first.iter().all(|c| c.last_transition_time == time(100)));

        let second = merge(
            &first,
            &[
                Decided::new(
                    ConditionType::Ready,
                    true,
                    "AllServersReady",
                    "3 of 3 ready",
                ),
                Decided::new(ConditionType::SpecValid, true, "Valid", ""),
            ],
            Some(2),
            time(200),
        );
        let ready = second.iter().find(|c| c.type_ == "Ready").expect("Ready");
        let valid = second
            .iter()
            .find(|c| c.type_ == "SpecValid")
            .expect("SpecValid");
        assert_eq!(ready.last_transition_time, time(200));
        assert_eq!(ready.status, "True");
        assert_eq!(valid.last_transition_time, time(100));
        assert_eq!(valid.observed_generation, Some(2));
    }

    #[test]
    fn conditions_not_decided_are_dropped_and_types_are_unique_and_sorted() {
        let existing = merge(
            &[],
            &[Decided::new(
                ConditionType::Progressing,
                true,
                "Rolling",
                "",
            )],
            None,
            time(1),
        );
        let merged = merge(
            &existing,
            &[
                Decided::new(ConditionType::SpecValid, true, "Valid", ""),
                Decided::new(ConditionType::Ready, true, "AllServersReady", ""),
                Decided::new(ConditionType::Ready, false, "Duplicate", ""),
            ],
            None,
            time(2),
        );
        let types: Vec<&str> = merged.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["Ready", "SpecValid"]);
        assert!(is_true(&merged, ConditionType::Ready));
        assert!(!is_true(&merged, ConditionType::Progressing));
    }

    #[test]
    fn long_messages_are_cut_at_a_character_boundary() {
        let message = "é".repeat(20_000);
        let cut = truncate(&message, 32 * 1024);
        assert!(cut.len() <= 32 * 1024);
        assert!(cut.ends_with("..."));
    }
}
