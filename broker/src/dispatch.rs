//! Delivering one published message to the subscriptions that match it.
//!
//! Contract: every plain subscription gets one copy; each queue group gets exactly one copy,
//! to a member picked at random (walking on past members that are closing or at their limit);
//! a publisher that asked for `echo: false` never receives its own messages. Frames are queued
//! in the receivers' outbound buffers and the receivers are collected in a `FlushSet`, so each
//! receiver's writer is woken once per batch of reads instead of once per message. A receiver
//! whose buffer overflows is closed as a slow consumer. Subscriptions that reach their
//! auto-unsubscribe limit are returned for removal. A match on an import subscription is
//! followed into the other account once the direct deliveries are queued (see `imports`),
//! at most `MAX_IMPORT_DEPTH` imports deep.

use std::sync::Arc;
use std::time::Instant;

use crate::connection::outbound::Refused;
use crate::connection::{CloseReason, Connection, ConnectionKind};
use crate::imports::ImportRoute;
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
    /// Brought into an account by a stream import: this server's subscribers only (each
    /// server holding the import delivers to its own).
    Import,
}

/// Imports followed from one another at most this deep (a cycle of imports ends here).
const MAX_IMPORT_DEPTH: usize = 4;

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

    /// Delivers `message` (published in `account`) to everything in `matches`, and on
    /// through the imports it matches.
    pub fn deliver(
        &mut self,
        matches: &MatchResult<SubscriptionRef>,
        message: &Message<'_>,
        publisher: Publisher,
        source: Source<'_>,
        account: &[u8],
    ) {
        self.deliver_at_depth(matches, message, publisher, source, account, 0);
    }

    fn deliver_at_depth(
        &mut self,
        matches: &MatchResult<SubscriptionRef>,
        message: &Message<'_>,
        publisher: Publisher,
        source: Source<'_>,
        account: &[u8],
        depth: usize,
    ) {
        let mut imports = Vec::new();
        deliver(
            matches,
            message,
            publisher,
            source,
            account,
            &mut Receivers {
                flush_set: &mut self.flush_set,
                picker: &mut self.picker,
                outcome: &mut self.outcome,
                imports: &mut imports,
            },
        );
        if depth >= MAX_IMPORT_DEPTH {
            return;
        }
        for import in imports {
            self.follow_import(&import, message, publisher, source, depth + 1);
        }
    }

    /// Takes a message through one import into the other account.
    fn follow_import(
        &mut self,
        import: &ImportRoute,
        message: &Message<'_>,
        publisher: Publisher,
        source: Source<'_>,
        depth: usize,
    ) {
        match import {
            ImportRoute::Stream { into, mapping } => {
                let subject = mapping.map(message.subject);
                let forwarded = Message {
                    subject: &subject,
                    ..*message
                };
                self.deliver_in(into, &forwarded, publisher, Source::Import, depth);
            }
            ImportRoute::Service {
                importer,
                exporter,
                mapping,
                responses,
                response_type,
                response_threshold,
            } => {
                // A request is served where it was published; copies that reach other
                // servers (over routes, or through a stream import) are not requests here.
                if !matches!(source, Source::Client) {
                    return;
                }
                let subject = mapping.map(message.subject);
                let reply = message.reply.map(|reply| {
                    responses.register(
                        importer,
                        reply,
                        *response_type,
                        *response_threshold,
                        Instant::now(),
                    )
                });
                let forwarded = Message {
                    subject: &subject,
                    reply: reply.as_deref(),
                    ..*message
                };
                self.deliver_in(exporter, &forwarded, publisher, Source::Client, depth);
            }
            ImportRoute::Responses { router } => {
                let Some((into, reply)) = router.resolve(message.subject, Instant::now()) else {
                    return;
                };
                let forwarded = Message {
                    subject: &reply,
                    reply: None,
                    ..*message
                };
                self.deliver_in(&into, &forwarded, publisher, Source::Client, depth);
            }
        }
    }

    /// Delivers `message` in `account`, looking its subscriptions up there.
    fn deliver_in(
        &mut self,
        account: &crate::account::Account,
        message: &Message<'_>,
        publisher: Publisher,
        source: Source<'_>,
        depth: usize,
    ) {
        let matches = account.matches(message.subject);
        self.deliver_at_depth(
            &matches,
            message,
            publisher,
            source,
            account.name.as_bytes(),
            depth,
        );
    }
}

/// What one delivery writes into: the dispatcher's state and the imports met.
struct Receivers<'d> {
    flush_set: &'d mut FlushSet,
    picker: &'d mut QueuePicker,
    outcome: &'d mut DeliveryOutcome,
    imports: &'d mut Vec<Arc<ImportRoute>>,
}

fn deliver(
    matches: &MatchResult<SubscriptionRef>,
    message: &Message<'_>,
    publisher: Publisher,
    source: Source<'_>,
    account: &[u8],
    receivers: &mut Receivers<'_>,
) {
    let Receivers {
        flush_set,
        picker,
        outcome,
        imports,
    } = receivers;
    // Routes get nothing from a route (one hop) or an import (each server imports itself).
    let local_only = matches!(source, Source::Route { .. } | Source::Import);
    let mut routes: Vec<RouteTarget<'_>> = Vec::new();
    for subscription in &matches.plain {
        match subscription.connection.kind {
            ConnectionKind::Route => {
                if !local_only {
                    add_route_target(&mut routes, subscription, None);
                }
                continue;
            }
            ConnectionKind::Internal => {
                if let Some(import) = &subscription.import {
                    imports.push(Arc::clone(import));
                }
                continue;
            }
            ConnectionKind::Client => {}
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
        let Some(start) = pick_member(members, local_only, picker) else {
            continue;
        };
        for offset in 0..members.len() {
            let member = &members[(start + offset) % members.len()];
            if member.connection.kind == ConnectionKind::Route {
                if local_only {
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
/// members only for a message from a route (the sender already chose this server) or an
/// import.
fn pick_member(
    members: &[SubscriptionRef],
    local_only: bool,
    picker: &mut QueuePicker,
) -> Option<usize> {
    let weight = |member: &SubscriptionRef| -> u64 {
        match (member.connection.kind, local_only) {
            (ConnectionKind::Route, true) | (ConnectionKind::Internal, _) => 0,
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
            &mut Receivers {
                flush_set: &mut FlushSet::default(),
                picker,
                outcome: &mut outcome,
                imports: &mut Vec::new(),
            },
        );
        outcome
    }

    /// Queued bytes of `connection`, as text.
    fn queued(connection: &Connection) -> String {
        let mut taken = bytes::BytesMut::new();
        connection.outbound.lock().take_into(&mut taken);
        String::from_utf8_lossy(&taken).into_owned()
    }

    #[test]
    fn imports_carry_streams_requests_and_responses_between_accounts() {
        use crate::imports::{ImportRoute, ResponseRouter};
        use crate::options::ResponseType;
        use crate::subject::mapping::SubjectMapping;

        let shutdown = CancellationToken::new();
        let exporter = Arc::new(Account::new("A"));
        let importer = Arc::new(Account::new("B"));
        let internal = Arc::new(Connection::new(
            0,
            ConnectionKind::Internal,
            "127.0.0.1:1".parse().unwrap(),
            1 << 20,
            &shutdown,
        ));
        let install = |account: &Account, subject: &str, route: ImportRoute| {
            let subscription = Arc::new(Subscription::for_import(
                Arc::clone(&internal),
                Bytes::copy_from_slice(subject.as_bytes()),
                Bytes::from_static(b"import"),
                Arc::new(route),
            ));
            account.subscribe(&subscription).unwrap();
        };
        install(
            &exporter,
            "orders.>",
            ImportRoute::Stream {
                into: Arc::clone(&importer),
                mapping: SubjectMapping::new("orders.>", "from_a.orders.>").unwrap(),
            },
        );
        let router = Arc::new(ResponseRouter::new("t"));
        install(
            &exporter,
            "_R_.t.>",
            ImportRoute::Responses {
                router: Arc::clone(&router),
            },
        );
        install(
            &importer,
            "a.help",
            ImportRoute::Service {
                importer: Arc::clone(&importer),
                exporter: Arc::clone(&exporter),
                mapping: SubjectMapping::new("a.help", "help").unwrap(),
                responses: router,
                response_type: ResponseType::Singleton,
                response_threshold: std::time::Duration::from_secs(60),
            },
        );
        let in_b = connection(1, 1 << 20, &shutdown);
        subscribe(&importer, &in_b, "from_a.orders.>", None, "1");
        subscribe(&importer, &in_b, "_INBOX.b.>", None, "2");
        let responder = connection(2, 1 << 20, &shutdown);
        subscribe(&exporter, &responder, "help", None, "9");

        let mut dispatcher = Dispatcher::new(7);
        let send = |dispatcher: &mut Dispatcher, account: &Account, subject: &str, reply| {
            let message = Message {
                subject: subject.as_bytes(),
                reply,
                header_length: 0,
                payload: b"hi",
            };
            let matches = account.matches(subject.as_bytes());
            dispatcher.deliver(&matches, &message, PUBLISHER, Source::Client, b"x");
        };
        send(&mut dispatcher, &exporter, "orders.eu", None);
        assert_eq!(queued(&in_b), "MSG from_a.orders.eu 1 2\r\nhi\r\n");

        send(
            &mut dispatcher,
            &importer,
            "a.help",
            Some(&b"_INBOX.b.1"[..]),
        );
        let request = queued(&responder);
        assert!(
            request.starts_with("MSG help 9 _R_.t.1 2\r\n"),
            "{request:?}"
        );
        send(&mut dispatcher, &exporter, "_R_.t.1", None);
        assert_eq!(queued(&in_b), "MSG _INBOX.b.1 2 2\r\nhi\r\n");
        // A singleton service takes one response.
        send(&mut dispatcher, &exporter, "_R_.t.1", None);
        assert_eq!(queued(&in_b), "");
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
