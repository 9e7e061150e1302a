//! A subscription: one connection's interest in a subject, optionally in a queue group.
//!
//! Contract: subscriptions are shared between the owning connection (by sid) and its account's
//! subject index (by subject). Delivery counts toward an optional auto-unsubscribe limit;
//! `claim_delivery` decides atomically whether one more message may go out, so publishers on
//! several threads never exceed the limit.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use crate::connection::Connection;

#[derive(Debug)]
pub struct Subscription {
    pub connection: Arc<Connection>,
    pub subject: Bytes,
    pub queue_group: Option<Bytes>,
    pub sid: Bytes,
    delivered: AtomicU64,
    /// 0 means no limit.
    max_messages: AtomicU64,
    removed: AtomicBool,
    /// Queue members this subscription stands for: 1 for a local one, the member count a
    /// peer announced for a route's queue subscription.
    weight: AtomicU32,
    /// Where an import subscription (the server's own) leads a matching message.
    pub import: Option<Arc<crate::imports::ImportRoute>>,
}

/// Whether a delivery may proceed, and whether it is the last one allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryClaim {
    Deliver,
    DeliverLast,
    Refuse,
}

impl Subscription {
    pub fn new(
        connection: Arc<Connection>,
        subject: Bytes,
        queue_group: Option<Bytes>,
        sid: Bytes,
    ) -> Self {
        Self {
            connection,
            subject,
            queue_group,
            sid,
            delivered: AtomicU64::new(0),
            max_messages: AtomicU64::new(0),
            removed: AtomicBool::new(false),
            weight: AtomicU32::new(1),
            import: None,
        }
    }

    /// An import's subscription, owned by the server's internal connection.
    pub fn for_import(
        connection: Arc<Connection>,
        subject: Bytes,
        sid: Bytes,
        import: Arc<crate::imports::ImportRoute>,
    ) -> Self {
        Self {
            import: Some(import),
            ..Self::new(connection, subject, None, sid)
        }
    }

    pub fn weight(&self) -> u32 {
        self.weight.load(Ordering::Relaxed)
    }

    pub fn set_weight(&self, weight: u32) {
        self.weight.store(weight, Ordering::Relaxed);
    }

    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    pub fn max_messages(&self) -> u64 {
        self.max_messages.load(Ordering::Relaxed)
    }

    /// Sets the auto-unsubscribe limit; `false` when it is already reached (unsubscribe now).
    pub fn limit_to(&self, max_messages: u64) -> bool {
        if max_messages == 0 || max_messages <= self.delivered() {
            return false;
        }
        self.max_messages.store(max_messages, Ordering::Relaxed);
        true
    }

    /// Counts one delivery against the limit.
    pub fn claim_delivery(&self) -> DeliveryClaim {
        if self.is_removed() {
            return DeliveryClaim::Refuse;
        }
        let max = self.max_messages();
        if max == 0 {
            self.delivered.fetch_add(1, Ordering::Relaxed);
            return DeliveryClaim::Deliver;
        }
        let count = self.delivered.fetch_add(1, Ordering::AcqRel) + 1;
        match count.cmp(&max) {
            std::cmp::Ordering::Less => DeliveryClaim::Deliver,
            std::cmp::Ordering::Equal => DeliveryClaim::DeliverLast,
            std::cmp::Ordering::Greater => DeliveryClaim::Refuse,
        }
    }

    /// Marks it removed; `true` only for the caller that removed it first.
    pub fn mark_removed(&self) -> bool {
        !self.removed.swap(true, Ordering::AcqRel)
    }

    pub fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }
}

/// A subscription as the subject index holds it: equal by identity, not by content.
#[derive(Debug, Clone)]
pub struct SubscriptionRef(pub Arc<Subscription>);

impl PartialEq for SubscriptionRef {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for SubscriptionRef {}

impl std::ops::Deref for SubscriptionRef {
    type Target = Subscription;

    fn deref(&self) -> &Subscription {
        &self.0
    }
}
