//! Per-user publish and subscribe permissions, with nats-server's semantics.
//!
//! Contract:
//! - **Publish** to a subject is allowed when there is no allow list or an allow entry matches
//!   the subject, and no deny entry matches it. Entries are patterns and the published subject
//!   is literal, so deny `foo.*` blocks `foo.bar`, while deny `foo.bar` does not block a
//!   publish to the literal subject `foo.*`. With `allow_responses` and no publish allow list,
//!   the allow list is empty: the user may publish only responses (nats-server turns the
//!   blanket allow off the same way). A publish refused by these rules may still be allowed as
//!   a response, see [`PermissionChecker::publish_allowed`].
//! - **Subscribe** to a subject is allowed when there is no allow list or the subject lies
//!   entirely within an allow entry (`foo.*` is within `foo.>` and `foo.*`, not within
//!   `foo.bar`; `foo.>` is not within `foo.*`), and no deny entry matches the subject with its
//!   wildcards read literally (nats-server's check): deny `foo.*` blocks `foo.bar` and `foo.>`
//!   but deny `foo.bar` does not block `foo.*`. Messages on denied subjects that reach such a
//!   wider subscription are then dropped at delivery: see [`Permissions::deliver_allowed`].
//! - **Queue permissions**: a subscribe entry `"foo v1"` names subject `foo` and queue group
//!   `v1` (a queue name may hold wildcards: `"foo v1.*"`). When a queue subscription's subject
//!   is within queue-qualified allow entries, it is allowed only if its queue group is one of
//!   theirs; a plain allow entry allows any queue group, and queue-qualified entries allow no
//!   plain subscription. A queue-qualified deny entry refuses only its queue groups.
//! - Everything here is immutable and cheap to share (`Arc`); [`PermissionChecker`] adds a
//!   small bounded cache and response tracking for one connection.
//!
//! Where Tern is stricter than nats-server 2.9: an allow entry `foo.*` does not allow a
//! subscription to `foo.>` (nats-server reads the `>` literally and allows it, which would
//! deliver `foo.a.b`), and a plain deny entry is never undone by a queue-qualified one.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use crate::subject::{is_valid_subject, pattern_is_subset_of, subject_matches_pattern};

use super::responses::{ResponsePermission, ResponseTracker};

/// Published subjects whose verdict one connection remembers (nats-server's `maxPermCacheSize`).
pub const PUBLISH_CACHE_CAPACITY: usize = 128;
/// Delivered subjects whose deny verdict one connection remembers (`maxDenyPermCacheSize`).
pub const DELIVERY_CACHE_CAPACITY: usize = 256;
/// Entries dropped at once when a cache is full, so a full cache is not cleared wholesale.
const CACHE_PRUNE_COUNT: usize = 32;

/// Everything that can go wrong turning configuration text into permissions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PermissionError {
    #[error("subject {subject:?} is not a valid subject")]
    InvalidSubject { subject: String },
    #[error("{entry:?} is not a subject, nor a subject and a queue group")]
    InvalidEntry { entry: String },
}

/// One entry of an allow or deny list: a subject pattern and, for subscribe permissions, an
/// optional queue group (itself possibly a wildcard pattern).
#[derive(Clone, PartialEq, Eq)]
pub struct PermissionEntry {
    subject: String,
    queue_group: Option<String>,
}

impl PermissionEntry {
    /// Parses `"subject"` or `"subject queue"` (separated by whitespace), as nats-server does.
    pub fn parse(text: &str) -> Result<Self, PermissionError> {
        let mut fields = text.split_whitespace();
        let (Some(subject), queue_group, None) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(PermissionError::InvalidEntry {
                entry: text.to_string(),
            });
        };
        if !is_valid_subject(subject.as_bytes()) {
            return Err(PermissionError::InvalidSubject {
                subject: subject.to_string(),
            });
        }
        Ok(Self {
            subject: subject.to_string(),
            queue_group: queue_group.map(str::to_string),
        })
    }

    pub fn subject(&self) -> &str {
        &self.subject
    }

    pub fn queue_group(&self) -> Option<&str> {
        self.queue_group.as_deref()
    }

    /// Whether `queue_group` is this entry's queue group, or within its pattern.
    fn names_queue_group(&self, queue_group: &[u8]) -> bool {
        self.queue_group.as_deref().is_some_and(|own| {
            own.as_bytes() == queue_group || pattern_is_subset_of(queue_group, own.as_bytes())
        })
    }
}

impl fmt::Display for PermissionEntry {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.queue_group {
            Some(queue_group) => write!(formatter, "{} {queue_group}", self.subject),
            None => formatter.write_str(&self.subject),
        }
    }
}

impl fmt::Debug for PermissionEntry {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{:?}", self.to_string())
    }
}

/// The allow and deny lists for publishing or for subscribing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubjectPermission {
    /// `None`: everything not denied is allowed. `Some(empty)`: nothing is.
    pub allow: Option<Vec<PermissionEntry>>,
    pub deny: Vec<PermissionEntry>,
}

/// A user's permissions: `permissions { publish, subscribe, allow_responses }`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Permissions {
    pub publish: SubjectPermission,
    pub subscribe: SubjectPermission,
    /// `allow_responses`; `None` when responses get no special treatment.
    pub responses: Option<ResponsePermission>,
}

impl Permissions {
    /// The publish rules alone (no response tracking): allow list, then deny list.
    pub fn publish_allowed(&self, subject: &[u8]) -> bool {
        let allow = match (&self.publish.allow, &self.responses) {
            (Some(allow), _) => Some(allow.as_slice()),
            // `allow_responses` turns the blanket allow off.
            (None, Some(_)) => Some(&[][..]),
            (None, None) => None,
        };
        let allowed = allow.is_none_or(|allow| {
            allow
                .iter()
                .any(|entry| subject_matches_pattern(entry.subject.as_bytes(), subject))
        });
        allowed
            && !self
                .publish
                .deny
                .iter()
                .any(|entry| subject_matches_pattern(entry.subject.as_bytes(), subject))
    }

    /// Whether the user may subscribe to `subject`, in `queue_group` if given.
    pub fn subscribe_allowed(&self, subject: &[u8], queue_group: Option<&[u8]>) -> bool {
        let queue_group = queue_group.filter(|queue_group| !queue_group.is_empty());
        if let Some(allow) = &self.subscribe.allow {
            let mut plain_allowed = false;
            let mut queue_entries_match = false;
            let mut queue_allowed = false;
            for entry in allow {
                if !pattern_is_subset_of(subject, entry.subject.as_bytes()) {
                    continue;
                }
                if entry.queue_group.is_none() {
                    plain_allowed = true;
                } else {
                    queue_entries_match = true;
                    queue_allowed |= queue_group.is_some_and(|name| entry.names_queue_group(name));
                }
            }
            let allowed = match queue_group {
                Some(_) if queue_entries_match => queue_allowed,
                _ => plain_allowed,
            };
            if !allowed {
                return false;
            }
        }
        !self.subscribe.deny.iter().any(|entry| {
            subject_matches_pattern(entry.subject.as_bytes(), subject)
                && match &entry.queue_group {
                    None => true,
                    Some(_) => queue_group.is_some_and(|name| entry.names_queue_group(name)),
                }
        })
    }

    /// Whether a message published on `subject` may be delivered to one of this user's
    /// subscriptions (in `queue_group`, if it is a queue subscription). False when a subscribe
    /// deny entry covers the subject: a wider wildcard subscription was allowed, but the
    /// denied subjects inside it are not delivered.
    pub fn deliver_allowed(&self, subject: &[u8], queue_group: Option<&[u8]>) -> bool {
        let queue_group = queue_group.filter(|queue_group| !queue_group.is_empty());
        !self.subscribe.deny.iter().any(|entry| {
            subject_matches_pattern(entry.subject.as_bytes(), subject)
                && match &entry.queue_group {
                    None => true,
                    Some(_) => queue_group.is_some_and(|name| entry.names_queue_group(name)),
                }
        })
    }

    /// Whether delivery needs [`Self::deliver_allowed`] at all; false lets the hot path skip it.
    pub fn filters_delivery(&self) -> bool {
        !self.subscribe.deny.is_empty()
    }

    /// Whether every publish is allowed without looking (no lists, no response rules).
    pub fn publishes_freely(&self) -> bool {
        self.publish.allow.is_none() && self.publish.deny.is_empty() && self.responses.is_none()
    }
}

/// One connection's view of its user's permissions: bounded caches for the per-message
/// checks, and the replies it may answer. Owned by the client session, never shared; the
/// response tracker inside is shared with whoever delivers messages to this connection.
#[derive(Debug)]
pub struct PermissionChecker {
    permissions: Arc<Permissions>,
    publish_cache: BoundedCache,
    delivery_cache: BoundedCache,
    responses: Option<Arc<Mutex<ResponseTracker>>>,
}

impl PermissionChecker {
    pub fn new(permissions: Arc<Permissions>) -> Self {
        let responses = permissions
            .responses
            .map(|permission| Arc::new(Mutex::new(ResponseTracker::new(permission))));
        Self {
            permissions,
            publish_cache: BoundedCache::new(PUBLISH_CACHE_CAPACITY),
            delivery_cache: BoundedCache::new(DELIVERY_CACHE_CAPACITY),
            responses,
        }
    }

    pub fn permissions(&self) -> &Arc<Permissions> {
        &self.permissions
    }

    /// Whether this connection may publish to `subject`: the publish rules (cached), or else
    /// a reply subject it received and may still answer under `allow_responses`.
    pub fn publish_allowed(&mut self, subject: &[u8]) -> bool {
        self.publish_allowed_at(subject, Instant::now())
    }

    /// [`Self::publish_allowed`] at a given time, for tests and batch callers.
    pub fn publish_allowed_at(&mut self, subject: &[u8], now: Instant) -> bool {
        if self.permissions.publishes_freely() {
            return true;
        }
        let permissions = &self.permissions;
        let allowed = self
            .publish_cache
            .get_or_insert_with(subject, || permissions.publish_allowed(subject));
        if allowed {
            return true;
        }
        // Responses are never cached: each one uses up an allowance.
        self.responses
            .as_ref()
            .is_some_and(|responses| responses.lock().try_respond(subject, now))
    }

    pub fn subscribe_allowed(&self, subject: &[u8], queue_group: Option<&[u8]>) -> bool {
        self.permissions.subscribe_allowed(subject, queue_group)
    }

    /// [`Permissions::deliver_allowed`], cached.
    pub fn deliver_allowed(&mut self, subject: &[u8], queue_group: Option<&[u8]>) -> bool {
        if !self.permissions.filters_delivery() {
            return true;
        }
        let permissions = &self.permissions;
        match queue_group {
            None => self
                .delivery_cache
                .get_or_insert_with(subject, || permissions.deliver_allowed(subject, None)),
            // Queue deliveries are keyed by subject and queue group; a space separates them
            // because neither may contain one.
            Some(queue_group) => {
                let key = [subject, b" ", queue_group].concat();
                self.delivery_cache.get_or_insert_with(&key, || {
                    permissions.deliver_allowed(subject, Some(queue_group))
                })
            }
        }
    }

    /// The replies this connection may answer, when its user has `allow_responses`: whoever
    /// delivers a message with a reply subject to this connection records it here.
    pub fn response_tracker(&self) -> Option<&Arc<Mutex<ResponseTracker>>> {
        self.responses.as_ref()
    }

    /// Records a reply subject delivered to this connection (for callers that own both ends).
    pub fn record_reply(&self, reply: &[u8], now: Instant) {
        if let Some(responses) = &self.responses {
            responses.lock().record(reply, now);
        }
    }
}

/// Subject → verdict, holding at most `capacity` entries.
#[derive(Debug)]
struct BoundedCache {
    capacity: usize,
    verdicts: HashMap<Box<[u8]>, bool>,
}

impl BoundedCache {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            verdicts: HashMap::new(),
        }
    }

    fn get_or_insert_with(&mut self, key: &[u8], compute: impl FnOnce() -> bool) -> bool {
        if let Some(verdict) = self.verdicts.get(key) {
            return *verdict;
        }
        let verdict = compute();
        if self.verdicts.len() >= self.capacity {
            // Hash order is arbitrary, so this drops an arbitrary handful, as nats-server does.
            let victims: Vec<Box<[u8]>> = self
                .verdicts
                .keys()
                .take(CACHE_PRUNE_COUNT)
                .cloned()
                .collect();
            for victim in victims {
                self.verdicts.remove(&victim);
            }
        }
        self.verdicts.insert(key.into(), verdict);
        verdict
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.verdicts.len()
    }
}

#[cfg(test)]
#[path = "permissions_tests.rs"]
mod tests;
