//! Delivering one published message to the subscriptions that match it.
//!
//! Contract: every plain subscription gets one copy; each queue group gets exactly one copy,
//! to a member picked at random (walking on past members that are closing or at their limit);
//! a publisher that asked for `echo: false` never receives its own messages. Frames are queued
//! in the receivers' outbound buffers and the receivers are collected in a `FlushSet`, so each
//! receiver's writer is woken once per batch of reads instead of once per message. A receiver
//! whose buffer overflows is closed as a slow consumer. Subscriptions that reach their
//! auto-unsubscribe limit are returned for removal.

use std::sync::Arc;

use crate::connection::outbound::Refused;
use crate::connection::{CloseReason, Connection};
use crate::protocol::server_operations::Delivery;
use crate::subject::MatchResult;
use crate::subscription::{DeliveryClaim, Subscription, SubscriptionRef};

/// A message as published, before it is addressed to a subscription.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub subject: &'a [u8],
    pub reply: Option<&'a [u8]>,
    pub header_length: usize,
    pub payload: &'a [u8],
}

/// Who published, as far as delivery cares.
#[derive(Debug, Clone, Copy)]
pub struct Publisher {
    pub connection_id: u64,
    pub echo: bool,
}

/// Connections that have new frames queued and whose writers must be woken.
#[derive(Debug, Default)]
pub struct FlushSet {
    connections: Vec<Arc<Connection>>,
}

/// Beyond this many receivers duplicates are tolerated rather than searched for.
const FLUSH_SET_SCAN_LIMIT: usize = 32;

impl FlushSet {
    pub fn add(&mut self, connection: &Arc<Connection>) {
        if self
            .connections
            .last()
            .is_some_and(|last| last.id == connection.id)
        {
            return;
        }
        if self.connections.len() <= FLUSH_SET_SCAN_LIMIT
            && self
                .connections
                .iter()
                .any(|known| known.id == connection.id)
        {
            return;
        }
        self.connections.push(Arc::clone(connection));
    }

    /// Wakes every collected writer once.
    pub fn flush(&mut self) {
        for connection in self.connections.drain(..) {
            connection.flush.notify_one();
        }
    }
}

/// A small, fast generator for queue member picks (quality needs are modest).
#[derive(Debug)]
pub struct QueuePicker {
    state: u64,
}

impl QueuePicker {
    pub fn new(seed: u64) -> Self {
        Self { state: seed | 1 }
    }

    fn next_index(&mut self, length: usize) -> usize {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        (self.state % length as u64) as usize
    }
}

/// What delivering one message did.
#[derive(Debug, Default)]
pub struct DeliveryOutcome {
    /// Messages queued to receivers.
    pub deliveries: u64,
    /// Bytes of payload delivered.
    pub bytes: u64,
    /// Subscriptions that reached their auto-unsubscribe limit.
    pub expired: Vec<Arc<Subscription>>,
}

/// Delivers `message` to everything in `matches`.
pub fn deliver(
    matches: &MatchResult<SubscriptionRef>,
    message: &Message<'_>,
    publisher: Publisher,
    flush_set: &mut FlushSet,
    picker: &mut QueuePicker,
    outcome: &mut DeliveryOutcome,
) {
    for subscription in &matches.plain {
        if !publisher.echo && subscription.connection.id == publisher.connection_id {
            continue;
        }
        deliver_to(subscription, message, flush_set, outcome);
    }
    for group in &matches.queue_groups {
        let members = &group.members;
        if members.is_empty() {
            continue;
        }
        let start = picker.next_index(members.len());
        for offset in 0..members.len() {
            let member = &members[(start + offset) % members.len()];
            if !publisher.echo && member.connection.id == publisher.connection_id {
                continue;
            }
            if deliver_to(member, message, flush_set, outcome) {
                break;
            }
        }
    }
}

/// Queues one copy for one subscription; `false` when it could not take it.
fn deliver_to(
    subscription: &Subscription,
    message: &Message<'_>,
    flush_set: &mut FlushSet,
    outcome: &mut DeliveryOutcome,
) -> bool {
    let connection = &subscription.connection;
    if connection.is_closing() {
        return false;
    }
    let claim = subscription.claim_delivery();
    if claim == DeliveryClaim::Refuse {
        return false;
    }
    let delivery = Delivery {
        subject: message.subject,
        sid: &subscription.sid,
        reply: message.reply,
        header_length: message.header_length,
        payload: message.payload,
    };
    let queued = connection
        .outbound
        .lock()
        .push_delivery(&delivery, connection.supports_headers());
    match queued {
        Ok(_) => {
            connection.statistics.count_out(message.payload.len());
            outcome.deliveries += 1;
            outcome.bytes += message.payload.len() as u64;
            flush_set.add(connection);
        }
        Err(Refused::SlowConsumer) => {
            connection.close(CloseReason::SlowConsumerPendingBytes);
            return false;
        }
        Err(Refused::Closed) => return false,
    }
    if claim == DeliveryClaim::DeliverLast {
        if let Some(owned) = connection.subscription(&subscription.sid) {
            outcome.expired.push(owned);
        }
    }
    true
}
