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
use crate::connection::{CloseReason, Connection, ConnectionKind};
use crate::protocol::route_parser::OutgoingRoutedMessage;
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

    /// A number in `0..bound` (`bound` > 0).
    pub fn next_below(&mut self, bound: u64) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state % bound
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

/// Where a message entered this server, which decides where it may go next.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// Published by a client of this server: it may go to every route with interest.
    Client,
    /// Received from a route: it never goes to another route (one hop), and reaches queue
    /// subscribers only for the queue groups the sending server named.
    Route { queue_groups: &'a [u8] },
}

/// A route that gets one copy of the message, with the queue groups it was chosen for.
struct RouteTarget<'m> {
    subscription: &'m Subscription,
    queue_groups: Vec<&'m [u8]>,
}

fn add_route_target<'m>(
    targets: &mut Vec<RouteTarget<'m>>,
    subscription: &'m Subscription,
    queue_group: Option<&'m [u8]>,
) {
    let connection_id = subscription.connection.id;
    let index = match targets
        .iter()
        .position(|target| target.subscription.connection.id == connection_id)
    {
        Some(index) => index,
        None => {
            targets.push(RouteTarget {
                subscription,
                queue_groups: Vec::new(),
            });
            targets.len() - 1
        }
    };
    if let Some(queue_group) = queue_group {
        targets[index].queue_groups.push(queue_group);
    }
}

/// What one session keeps across deliveries: receivers to wake, its queue picker, and the
/// counts of the current read batch.
#[derive(Debug)]
pub struct Dispatcher {
    pub flush_set: FlushSet,
    pub picker: QueuePicker,
    pub outcome: DeliveryOutcome,
}

impl Dispatcher {
    pub fn new(seed: u64) -> Self {
        Self {
            flush_set: FlushSet::default(),
            picker: QueuePicker::new(seed),
            outcome: DeliveryOutcome::default(),
        }
    }

    /// Delivers `message` (published in `account`) to everything in `matches`.
    pub fn deliver(
        &mut self,
        matches: &MatchResult<SubscriptionRef>,
        message: &Message<'_>,
        publisher: Publisher,
        source: Source<'_>,
        account: &[u8],
    ) {
        deliver(
            matches,
            message,
            publisher,
            source,
            account,
            &mut self.flush_set,
            &mut self.picker,
            &mut self.outcome,
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn deliver(
    matches: &MatchResult<SubscriptionRef>,
    message: &Message<'_>,
    publisher: Publisher,
    source: Source<'_>,
    account: &[u8],
    flush_set: &mut FlushSet,
    picker: &mut QueuePicker,
    outcome: &mut DeliveryOutcome,
) {
    let from_route = matches!(source, Source::Route { .. });
    let mut routes: Vec<RouteTarget<'_>> = Vec::new();
    for subscription in &matches.plain {
        if subscription.connection.kind == ConnectionKind::Route {
            if !from_route {
                add_route_target(&mut routes, subscription, None);
            }
            continue;
        }
        if !publisher.echo && subscription.connection.id == publisher.connection_id {
            continue;
        }
        deliver_to(subscription, message, flush_set, outcome);
    }
    for group in &matches.queue_groups {
        if let Source::Route { queue_groups } = source {
            let named = queue_groups
                .split(|byte| *byte == b' ')
                .any(|name| name == &group.name[..]);
            if !named {
                continue;
            }
        }
        let members = &group.members;
        let Some(start) = pick_member(members, from_route, picker) else {
            continue;
        };
        for offset in 0..members.len() {
            let member = &members[(start + offset) % members.len()];
            if member.connection.kind == ConnectionKind::Route {
                if from_route {
                    continue;
                }
                add_route_target(&mut routes, member, Some(&group.name));
                break;
            }
            if !publisher.echo && member.connection.id == publisher.connection_id {
                continue;
            }
            if deliver_to(member, message, flush_set, outcome) {
                break;
            }
        }
    }
    for target in &routes {
        send_to_route(target, account, message, flush_set, outcome);
    }
}

/// The first member to try: weighted by members per server for a local publisher; among local
/// members only for a message from a route (the sender already chose this server).
fn pick_member(
    members: &[SubscriptionRef],
    from_route: bool,
    picker: &mut QueuePicker,
) -> Option<usize> {
    let weight = |member: &SubscriptionRef| -> u64 {
        match (member.connection.kind, from_route) {
            (ConnectionKind::Route, true) => 0,
            (ConnectionKind::Route, false) => u64::from(member.weight()),
            (ConnectionKind::Client, _) => 1,
        }
    };
    let total: u64 = members.iter().map(weight).sum();
    if total == 0 {
        return None;
    }
    let mut chosen = picker.next_below(total);
    for (index, member) in members.iter().enumerate() {
        let member_weight = weight(member);
        if chosen < member_weight {
            return Some(index);
        }
        chosen -= member_weight;
    }
    Some(0)
}

fn send_to_route(
    target: &RouteTarget<'_>,
    account: &[u8],
    message: &Message<'_>,
    flush_set: &mut FlushSet,
    outcome: &mut DeliveryOutcome,
) {
    let connection = &target.subscription.connection;
    if connection.is_closing() {
        return;
    }
    // A route dedicated to the account leaves the account token out.
    let account = if connection.dedicated_account().is_some() {
        &[][..]
    } else {
        account
    };
    let outgoing = OutgoingRoutedMessage {
        account,
        subject: message.subject,
        reply: message.reply,
        queue_groups: &target.queue_groups,
        header_length: message.header_length,
        payload: message.payload,
    };
    let queued = connection
        .outbound
        .lock()
        .push_routed(&outgoing, connection.supports_headers());
    match queued {
        Ok(_) => {
            connection.statistics.count_out(message.payload.len());
            outcome.deliveries += 1;
            outcome.bytes += message.payload.len() as u64;
            flush_set.add(connection);
        }
        Err(Refused::SlowConsumer) => connection.close(CloseReason::SlowConsumerPendingBytes),
        Err(Refused::Closed) => {}
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
    if let Some(rules) = connection.delivery_rules() {
        if let Some(filter) = &rules.filter {
            if !filter.deliver_allowed(message.subject, subscription.queue_group.as_deref()) {
                return false;
            }
        }
        if let (Some(responses), Some(reply)) = (&rules.responses, message.reply) {
            responses.lock().record(reply, std::time::Instant::now());
        }
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
    let queued = {
        let mut outbound = connection.outbound.lock();
        // Checked again under the lock: a subscription removed (and its client told so) since
        // the claim above gets nothing after that notice.
        if subscription.is_removed() {
            return false;
        }
        outbound.push_delivery(&delivery, connection.supports_headers())
    };
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
            Source::Client,
            b"test",
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
