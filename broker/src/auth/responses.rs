//! `allow_responses`: a responder may publish to the reply subjects of requests it received,
//! even where its publish permissions would refuse them.
//!
//! Contract (nats-server's `allow_responses`, `client.replies`):
//! - Each reply subject of a message delivered to the responder is recorded with the time it
//!   arrived. Recording the same reply subject again starts it afresh.
//! - A publish to a recorded reply subject is allowed at most `max` times and only within
//!   `expires` of its arrival; the entry is forgotten once used up or expired.
//! - The tracker is bounded: it holds at most its capacity (4096 by default, nats-server's
//!   `replyPermLimit`). When full, expired entries go first, then the oldest.
//! - Time is passed in, so the tracker is pure and tested without sleeping.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// nats-server's default: one response per request.
pub const DEFAULT_MAX_RESPONSES: usize = 1;
/// nats-server's default: a reply subject may be answered for two minutes.
pub const DEFAULT_RESPONSE_EXPIRY: Duration = Duration::from_secs(120);
/// How many reply subjects one responder's tracker remembers at most.
pub const DEFAULT_TRACKED_REPLIES: usize = 4096;

/// How many responses a reply subject allows, and for how long.
///
/// `usize::MAX` and `Duration::MAX` stand for no limit (a negative value in the config file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponsePermission {
    pub max: usize,
    pub expires: Duration,
}

impl Default for ResponsePermission {
    fn default() -> Self {
        Self {
            max: DEFAULT_MAX_RESPONSES,
            expires: DEFAULT_RESPONSE_EXPIRY,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct TrackedReply {
    received: Instant,
    responses: usize,
    /// Tells this entry apart from stale copies of its key in the arrival queue.
    sequence: u64,
}

/// The reply subjects one responder may still answer.
#[derive(Debug)]
pub struct ResponseTracker {
    permission: ResponsePermission,
    capacity: usize,
    replies: HashMap<Box<[u8]>, TrackedReply>,
    /// Keys in arrival order, so the oldest is found without a scan. Entries whose sequence no
    /// longer matches `replies` are stale and skipped.
    arrivals: VecDeque<(Box<[u8]>, u64)>,
    next_sequence: u64,
}

impl ResponseTracker {
    pub fn new(permission: ResponsePermission) -> Self {
        Self::with_capacity(permission, DEFAULT_TRACKED_REPLIES)
    }

    /// A tracker remembering at most `capacity` reply subjects (at least one).
    pub fn with_capacity(permission: ResponsePermission, capacity: usize) -> Self {
        Self {
            permission,
            capacity: capacity.max(1),
            replies: HashMap::new(),
            arrivals: VecDeque::new(),
            next_sequence: 0,
        }
    }

    pub fn permission(&self) -> ResponsePermission {
        self.permission
    }

    /// Reply subjects currently answerable (expired ones may linger until the next prune).
    pub fn len(&self) -> usize {
        self.replies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.replies.is_empty()
    }

    /// Notes that a message with reply subject `reply` was delivered to the responder.
    pub fn record(&mut self, reply: &[u8], now: Instant) {
        if reply.is_empty() || self.permission.max == 0 {
            return;
        }
        if !self.replies.contains_key(reply) && self.replies.len() >= self.capacity {
            self.make_room(now);
        }
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.replies.insert(
            reply.into(),
            TrackedReply {
                received: now,
                responses: 0,
                sequence,
            },
        );
        self.arrivals.push_back((reply.into(), sequence));
        self.compact_arrivals();
    }

    /// Whether the responder may publish to `subject` now as a response; counts the response
    /// when it may.
    pub fn try_respond(&mut self, subject: &[u8], now: Instant) -> bool {
        let permission = self.permission;
        let Some(reply) = self.replies.get_mut(subject) else {
            return false;
        };
        if now.saturating_duration_since(reply.received) > permission.expires {
            self.replies.remove(subject);
            return false;
        }
        reply.responses += 1;
        if reply.responses >= permission.max {
            // The last allowed response: nothing further can use the entry.
            self.replies.remove(subject);
        }
        true
    }

    fn is_expired(&self, received: Instant, now: Instant) -> bool {
        now.saturating_duration_since(received) > self.permission.expires
    }

    /// Frees at least one slot: expired and stale entries first, then the oldest.
    fn make_room(&mut self, now: Instant) {
        while let Some((key, sequence)) = self.arrivals.front() {
            match self.replies.get(key) {
                Some(reply) if reply.sequence == *sequence => {
                    let expired = self.is_expired(reply.received, now);
                    if !expired && self.replies.len() < self.capacity {
                        return;
                    }
                    self.replies.remove(key);
                }
                _ => {}
            }
            self.arrivals.pop_front();
        }
    }

    /// Keeps the arrival queue proportional to the live entries: answered and re-recorded
    /// replies leave stale keys behind.
    fn compact_arrivals(&mut self) {
        if self.arrivals.len() > 2 * self.capacity {
            let replies = &self.replies;
            self.arrivals.retain(|(key, sequence)| {
                replies
                    .get(key)
                    .is_some_and(|reply| reply.sequence == *sequence)
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker(max: usize, expires: Duration) -> ResponseTracker {
        ResponseTracker::new(ResponsePermission { max, expires })
    }

    #[test]
    fn defaults_are_one_response_within_two_minutes() {
        let permission = ResponsePermission::default();
        assert_eq!(permission.max, 1);
        assert_eq!(permission.expires, Duration::from_secs(120));
    }

    #[test]
    fn a_received_reply_subject_may_be_answered_once_by_default() {
        let start = Instant::now();
        let mut responses = ResponseTracker::new(ResponsePermission::default());
        assert!(!responses.try_respond(b"_INBOX.a", start));
        responses.record(b"_INBOX.a", start);
        assert!(responses.try_respond(b"_INBOX.a", start));
        assert!(!responses.try_respond(b"_INBOX.a", start));
        assert!(!responses.try_respond(b"_INBOX.b", start));
        assert!(responses.is_empty());
    }

    #[test]
    fn max_responses_are_counted_per_reply_subject() {
        let start = Instant::now();
        let mut responses = tracker(3, Duration::from_secs(60));
        responses.record(b"reply.1", start);
        responses.record(b"reply.2", start);
        for _ in 0..3 {
            assert!(responses.try_respond(b"reply.1", start));
        }
        assert!(!responses.try_respond(b"reply.1", start));
        assert!(responses.try_respond(b"reply.2", start));
    }

    #[test]
    fn replies_expire() {
        let start = Instant::now();
        let mut responses = tracker(5, Duration::from_secs(60));
        responses.record(b"reply", start);
        assert!(responses.try_respond(b"reply", start + Duration::from_secs(60)));
        assert!(!responses.try_respond(b"reply", start + Duration::from_secs(61)));
        assert!(responses.is_empty(), "an expired reply is forgotten");
    }

    #[test]
    fn recording_again_starts_afresh() {
        let start = Instant::now();
        let mut responses = tracker(1, Duration::from_secs(10));
        responses.record(b"reply", start);
        assert!(responses.try_respond(b"reply", start));
        let later = start + Duration::from_secs(30);
        responses.record(b"reply", later);
        assert!(responses.try_respond(b"reply", later + Duration::from_secs(5)));
    }

    #[test]
    fn unlimited_permissions_never_run_out() {
        let start = Instant::now();
        let mut responses = tracker(usize::MAX, Duration::MAX);
        responses.record(b"reply", start);
        let much_later = start + Duration::from_secs(10 * 365 * 24 * 3600);
        for _ in 0..1000 {
            assert!(responses.try_respond(b"reply", much_later));
        }
    }

    #[test]
    fn the_tracker_is_bounded_and_forgets_the_oldest_first() {
        let start = Instant::now();
        let mut responses = ResponseTracker::with_capacity(ResponsePermission::default(), 3);
        for (index, reply) in [b"r.1", b"r.2", b"r.3", b"r.4"].iter().enumerate() {
            responses.record(*reply, start + Duration::from_millis(index as u64));
        }
        assert_eq!(responses.len(), 3);
        let now = start + Duration::from_secs(1);
        assert!(
            !responses.try_respond(b"r.1", now),
            "the oldest was evicted"
        );
        for reply in [b"r.2", b"r.3", b"r.4"] {
            assert!(responses.try_respond(reply, now));
        }
    }

    #[test]
    fn expired_entries_make_room_before_live_ones() {
        let start = Instant::now();
        let permission = ResponsePermission {
            max: 1,
            expires: Duration::from_secs(10),
        };
        let mut responses = ResponseTracker::with_capacity(permission, 2);
        responses.record(b"old", start);
        let later = start + Duration::from_secs(20);
        responses.record(b"fresh", later);
        responses.record(b"newest", later);
        assert!(responses.try_respond(b"fresh", later));
        assert!(responses.try_respond(b"newest", later));
    }

    #[test]
    fn churn_keeps_memory_bounded() {
        let start = Instant::now();
        let mut responses = ResponseTracker::with_capacity(ResponsePermission::default(), 8);
        for round in 0..10_000u32 {
            let reply = format!("reply.{}", round % 20);
            responses.record(reply.as_bytes(), start);
            if round % 3 == 0 {
                responses.try_respond(reply.as_bytes(), start);
            }
            assert!(responses.len() <= 8);
            assert!(responses.arrivals.len() <= 2 * 8 + 1);
        }
    }

    #[test]
    fn empty_reply_subjects_are_not_recorded() {
        let start = Instant::now();
        let mut responses = ResponseTracker::new(ResponsePermission::default());
        responses.record(b"", start);
        assert!(responses.is_empty());
    }
}
