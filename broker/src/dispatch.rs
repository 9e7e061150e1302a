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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::SocketAddr;

    use bytes::Bytes;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::account::Account;
    use crate::connection::ConnectionKind;

    fn connection(id: u64, max_pending: usize, shutdown: &CancellationToken) -> Arc<Connection> {
        let address: SocketAddr = "127.0.0.1:1".parse().unwrap();
        Arc::new(Connection::new(
            id,
            ConnectionKind::Client,
            address,
            max_pending,
            shutdown,
        ))
    }

    fn subscribe(
        account: &Account,
        connection: &Arc<Connection>,
        subject: &str,
        queue_group: Option<&str>,
        sid: &str,
    ) -> Arc<Subscription> {
        let subscription = Arc::new(Subscription::new(
            Arc::clone(connection),
            Bytes::copy_from_slice(subject.as_bytes()),
            queue_group.map(|name| Bytes::copy_from_slice(name.as_bytes())),
            Bytes::copy_from_slice(sid.as_bytes()),
        ));
        connection.add_subscription(&subscription);
        account.subscribe(&subscription).unwrap();
        subscription
    }

    fn publish(account: &Account, subject: &str, publisher: Publisher) -> DeliveryOutcome {
        publish_with(account, subject, publisher, &mut QueuePicker::new(7))
    }

    fn publish_with(
        account: &Account,
        subject: &str,
        publisher: Publisher,
        picker: &mut QueuePicker,
    ) -> DeliveryOutcome {
        let message = Message {
            subject: subject.as_bytes(),
            reply: None,
            header_length: 0,
            payload: b"hello",
        };
        let mut outcome = DeliveryOutcome::default();
        deliver(
            &account.matches(subject.as_bytes()),
            &message,
            publisher,
            &mut FlushSet::default(),
            picker,
            &mut outcome,
        );
        outcome
    }

    const PUBLISHER: Publisher = Publisher {
        connection_id: 1000,
        echo: true,
    };

    #[test]
    fn queue_group_delivers_to_exactly_one_member_and_plain_subscribers_to_all() {
        let shutdown = CancellationToken::new();
        let account = Account::new("test");
        let members: Vec<_> = (1..=4)
            .map(|id| connection(id, 1 << 20, &shutdown))
            .collect();
        for member in &members {
            subscribe(&account, member, "jobs.*", Some("workers"), "1");
            subscribe(&account, member, "jobs.>", None, "2");
        }
        let mut picker = QueuePicker::new(42);
        for _ in 0..100 {
            let outcome = publish_with(&account, "jobs.one", PUBLISHER, &mut picker);
            assert_eq!(outcome.deliveries, 5);
        }
        let queued: usize = members.iter().map(|member| member.pending_bytes()).sum();
        let frame = b"MSG jobs.one 1 5\r\nhello\r\n".len();
        assert_eq!(queued, 100 * 5 * frame);
        // Random picks spread over members: every member got some queue messages.
        assert!(members
            .iter()
            .all(|member| member.pending_bytes() > 100 * frame));
    }

    #[test]
    fn echo_false_skips_the_publishers_own_subscriptions() {
        let shutdown = CancellationToken::new();
        let account = Account::new("test");
        let own = connection(1, 1 << 20, &shutdown);
        let other = connection(2, 1 << 20, &shutdown);
        subscribe(&account, &own, "chat", None, "1");
        subscribe(&account, &other, "chat", None, "1");
        let quiet = Publisher {
            connection_id: 1,
            echo: false,
        };
        assert_eq!(publish(&account, "chat", quiet).deliveries, 1);
        assert_eq!(own.pending_bytes(), 0);
        assert!(other.pending_bytes() > 0);
    }

    #[test]
    fn overflowing_receiver_is_closed_as_a_slow_consumer() {
        let shutdown = CancellationToken::new();
        let account = Account::new("test");
        let frame = b"MSG data 1 5\r\nhello\r\n".len();
        let slow = connection(1, 3 * frame, &shutdown);
        subscribe(&account, &slow, "data", None, "1");
        for _ in 0..3 {
            assert_eq!(publish(&account, "data", PUBLISHER).deliveries, 1);
        }
        assert!(!slow.is_closing());
        assert_eq!(publish(&account, "data", PUBLISHER).deliveries, 0);
        assert!(slow.is_closing());
        assert_eq!(
            slow.close_reason(),
            Some(CloseReason::SlowConsumerPendingBytes)
        );
    }

    #[test]
    fn auto_unsubscribe_limit_is_never_exceeded_by_concurrent_publishers() {
        let shutdown = CancellationToken::new();
        let account = Arc::new(Account::new("test"));
        let receiver = connection(1, 1 << 24, &shutdown);
        let subscription = subscribe(&account, &receiver, "limited", None, "1");
        assert!(subscription.limit_to(50));
        let expired: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|thread| {
                    let account = Arc::clone(&account);
                    scope.spawn(move || {
                        let mut expired = 0;
                        for _ in 0..100 {
                            let publisher = Publisher {
                                connection_id: 100 + thread,
                                echo: true,
                            };
                            expired += publish(&account, "limited", publisher).expired.len();
                        }
                        expired
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|handle| handle.join().unwrap())
                .sum()
        });
        let frame = b"MSG limited 1 5\r\nhello\r\n".len();
        assert_eq!(receiver.pending_bytes(), 50 * frame);
        assert_eq!(expired, 1, "exactly one publisher sees the last delivery");
    }
}
