//! A client connection's session: its read loop and what each client operation means.
//!
//! Contract: `run_client` owns one established transport (TCP, TLS or WebSocket) until it
//! closes. It sends INFO unless the caller already did (`transport::accept_client` writes it
//! before or after TLS), then reads in batches, parses every complete operation in the batch, queues replies and deliveries,
//! and wakes each receiver's writer once per batch. Authentication (when required) must come
//! as the first operation within the auth timeout; PINGs go out after a quiet ping interval
//! and `ping_max` unanswered ones close the connection as stale. Every violation answers with
//! nats-server's `-ERR` text (or none, where nats-server closes silently). On exit the
//! session removes its subscriptions, so no delivery reaches a closed connection for long.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

use crate::account::{Account, Matches};
use crate::auth::{AuthError, AuthenticatedUser, AuthenticationMethod, PermissionChecker};
use crate::connection::writer::run_writer;
use crate::connection::{CloseReason, Connection, DeliveryRules};
use crate::dispatch::{Dispatcher, Message, Publisher, Source};
use crate::logging;
use crate::options::ServerOptions;
use crate::protocol::errors::text;
use crate::protocol::info::CLIENT_PROTOCOL_INFO;
use crate::protocol::server_operations::{self, NO_RESPONDERS_HEADER};
use crate::protocol::{
    parse_client_operation, ClientOperation, ConnectOptions, Parsed, ParserLimits, ProtocolError,
    Publish,
};
use crate::server::Server;
use crate::subject;
use crate::subscription::Subscription;

/// The first read buffer; it doubles while reads fill it, up to `MAX_READ_SIZE`.
const MIN_READ_SIZE: usize = 512;
const MAX_READ_SIZE: usize = 64 * 1024;
/// The first server PING after CONNECT comes no later than this (nats-server's value).
const FIRST_PING_INTERVAL: Duration = Duration::from_secs(2);
/// Entries in a connection's private match cache before it is cleared.
const MATCH_CACHE_CAPACITY: usize = 512;

/// Runs a client connection to completion. `info_sent` says INFO already went out on this
/// transport; otherwise it is the first thing queued (over WebSocket: the first frame).
pub async fn run_client<R, W>(
    server: Arc<Server>,
    connection: Arc<Connection>,
    reader: R,
    writer: W,
    info_sent: bool,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let options = server.options();
    let writer_task = tokio::spawn(run_writer(
        Arc::clone(&connection),
        writer,
        options.write_deadline,
    ));
    if !info_sent {
        connection.send_control(&server.client_info(&connection).to_protocol_line());
    }

    let mut session = ClientSession::new(Arc::clone(&server), Arc::clone(&connection), options);
    let reason = session.read_loop(reader).await;
    connection.close(reason);
    let subscriptions = session.finish();
    // The writer ends once it has flushed what the close reason allows.
    let _ = writer_task.await;
    server.connection_closed(&connection, &subscriptions);
}

/// A connection's private cache of match results, valid for one account generation.
#[derive(Debug, Default)]
struct MatchCache {
    generation: u64,
    results: HashMap<Box<[u8]>, Matches, foldhash::fast::RandomState>,
}

struct ClientSession {
    server: Arc<Server>,
    connection: Arc<Connection>,
    options: Arc<ServerOptions>,
    account: Arc<Account>,
    connect: ConnectOptions,
    connect_received: bool,
    awaiting_authentication: bool,
    /// The user's permissions, when it has any.
    permissions: Option<PermissionChecker>,
    limits: ParserLimits,
    /// Subscriptions this connection may hold (server and account limits); `None`: any.
    max_subscriptions: Option<usize>,
    /// This connection's place in its user's connection count, when the user has a limit.
    user_slot: Option<crate::limits::UserConnectionSlot>,
    match_cache: MatchCache,
    dispatcher: Dispatcher,
    pings_outstanding: u32,
    ping_sent_at: Option<Instant>,
    next_ping: Instant,
    authentication_deadline: Instant,
    last_inbound: Instant,
    last_ping_received: Option<Instant>,
    batch_in_messages: u64,
    batch_in_bytes: u64,
    reloads: tokio::sync::watch::Receiver<u64>,
}

impl ClientSession {
    fn new(server: Arc<Server>, connection: Arc<Connection>, options: Arc<ServerOptions>) -> Self {
        let now = Instant::now();
        let account = server.global_account();
        let reloads = server.reloads();
        Self {
            reloads,
            awaiting_authentication: server.authenticator_for(connection.websocket).is_required(),
            permissions: None,
            limits: ParserLimits {
                max_control_line: options.max_control_line,
                max_payload: options.max_payload,
            },
            max_subscriptions: (options.max_subscriptions > 0).then_some(options.max_subscriptions),
            user_slot: None,
            next_ping: now + options.ping_interval,
            authentication_deadline: now
                + if connection.websocket {
                    options.websocket_auth_timeout()
                } else {
                    options.auth_timeout()
                },
            server,
            connection,
            options,
            account,
            connect: ConnectOptions::default(),
            connect_received: false,
            match_cache: MatchCache::default(),
            dispatcher: Dispatcher::new(rand::random::<u64>()),
            pings_outstanding: 0,
            ping_sent_at: None,
            last_inbound: now,
            last_ping_received: None,
            batch_in_messages: 0,
            batch_in_bytes: 0,
        }
    }

    /// Reads until the connection closes; returns why.
    async fn read_loop<R: AsyncRead + Unpin>(&mut self, mut reader: R) -> CloseReason {
        let mut buffer = BytesMut::new();
        let mut read_size = MIN_READ_SIZE;
        let closing = self.connection.closing().clone();
        // Timers stay armed across reads and are reset only when their deadline moves.
        let ping = tokio::time::sleep_until(self.next_ping.into());
        let authentication = tokio::time::sleep_until(self.authentication_deadline.into());
        tokio::pin!(ping, authentication);
        let mut armed_ping = self.next_ping;
        loop {
            if buffer.capacity() - buffer.len() < read_size {
                buffer.reserve(read_size);
            }
            if armed_ping != self.next_ping {
                armed_ping = self.next_ping;
                ping.as_mut().reset(armed_ping.into());
            }
            tokio::select! {
                biased;
                () = closing.cancelled() => {
                    return self.connection.close_reason().unwrap_or(CloseReason::ServerShutdown);
                }
                read = reader.read_buf(&mut buffer) => {
                    let count = match read {
                        Ok(0) => return CloseReason::ClientClosed,
                        Ok(count) => count,
                        Err(_) => return CloseReason::ReadError,
                    };
                    self.last_inbound = Instant::now();
                    self.connection.touch();
                    read_size = next_read_size(read_size, count);
                    let processed = self.process_buffer(&mut buffer);
                    self.finish_batch();
                    if let Err(reason) = processed {
                        return reason;
                    }
                    if buffer.is_empty() && buffer.capacity() > 2 * MAX_READ_SIZE {
                        buffer = BytesMut::new();
                    }
                }
                changed = self.reloads.changed() => {
                    if changed.is_ok() {
                        if let Err(reason) = self.apply_reload() {
                            return reason;
                        }
                    }
                }
                () = &mut ping => {
                    if let Err(reason) = self.ping_timer() {
                        return reason;
                    }
                }
                () = &mut authentication, if self.awaiting_authentication => {
                    self.send_error(text::AUTHENTICATION_TIMEOUT);
                    return CloseReason::AuthenticationTimeout;
                }
            }
        }
    }

    /// Handles every complete operation at the front of `buffer`.
    fn process_buffer(&mut self, buffer: &mut BytesMut) -> Result<(), CloseReason> {
        let mut offset = 0;
        let result = loop {
            let remaining = &buffer[offset..];
            if remaining.is_empty() {
                break Ok(());
            }
            if self.awaiting_authentication && !matches!(remaining[0], b'C' | b'c') {
                if let Err(reason) = self.authenticate_without_connect() {
                    break Err(reason);
                }
            }
            match parse_client_operation(remaining, &self.limits) {
                Ok(Parsed::Complete {
                    operation,
                    consumed,
                }) => {
                    if let Err(reason) = self.handle(operation) {
                        break Err(reason);
                    }
                    offset += consumed;
                }
                Ok(Parsed::Incomplete { minimum_total }) => {
                    if let Some(total) = minimum_total {
                        buffer.reserve(total.saturating_sub(remaining.len()));
                    }
                    break Ok(());
                }
                Err(error) => break Err(self.protocol_violation(&error)),
            }
        };
        buffer.advance(offset);
        result
    }

    /// Publishes the batch's counters and wakes every receiver once.
    fn finish_batch(&mut self) {
        self.dispatcher.flush_set.flush();
        let expired = std::mem::take(&mut self.dispatcher.outcome.expired);
        if !expired.is_empty() {
            self.expire_subscriptions(&expired);
        }
        self.server.statistics.count_batch(
            self.batch_in_messages,
            self.batch_in_bytes,
            self.dispatcher.outcome.deliveries,
            self.dispatcher.outcome.bytes,
        );
        self.batch_in_messages = 0;
        self.batch_in_bytes = 0;
        self.dispatcher.outcome.deliveries = 0;
        self.dispatcher.outcome.bytes = 0;
    }

    fn protocol_violation(&mut self, error: &ProtocolError) -> CloseReason {
        if let Some(text) = error.client_error_text() {
            self.send_error(text);
        }
        logging::debug(format_args!(
            "{} - Client protocol error: {error}",
            self.describe()
        ));
        match error {
            ProtocolError::UnknownOperation | ProtocolError::PayloadTerminator => {
                CloseReason::ParseError
            }
            ProtocolError::MaxControlLineExceeded => CloseReason::MaxControlLineExceeded,
            ProtocolError::MaxPayloadExceeded { .. } => CloseReason::MaxPayloadExceeded,
            ProtocolError::InvalidClientProtocol => CloseReason::BadClientProtocolVersion,
            ProtocolError::NoRespondersRequiresHeaders => CloseReason::NoRespondersRequiresHeaders,
            ProtocolError::MalformedArguments { .. }
            | ProtocolError::HeadersNotNegotiated
            | ProtocolError::InvalidConnect(_) => CloseReason::ProtocolViolation,
        }
    }

    fn handle(&mut self, operation: ClientOperation<'_>) -> Result<(), CloseReason> {
        if logging::is_trace() {
            self.trace_inbound(&operation);
        }
        match operation {
            ClientOperation::Publish(publish) => self.publish(&publish),
            ClientOperation::Ping => {
                self.last_ping_received = Some(Instant::now());
                self.queue_own(server_operations::PONG);
                Ok(())
            }
            ClientOperation::Pong => {
                self.pings_outstanding = 0;
                if let Some(sent) = self.ping_sent_at.take() {
                    let round_trip = sent.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
                    self.connection
                        .round_trip_nanos
                        .store(round_trip, std::sync::atomic::Ordering::Relaxed);
                }
                Ok(())
            }
            ClientOperation::Subscribe {
                subject,
                queue_group,
                sid,
            } => {
                self.subscribe(subject, queue_group, sid);
                Ok(())
            }
            ClientOperation::Unsubscribe { sid, max_messages } => {
                self.unsubscribe(sid, max_messages);
                Ok(())
            }
            ClientOperation::Connect(json) => self.connect(json),
            ClientOperation::Ok | ClientOperation::Info(_) => Ok(()),
            ClientOperation::Error(text) => {
                logging::error(format_args!(
                    "{} - Client Error {}",
                    self.describe(),
                    String::from_utf8_lossy(text)
                ));
                Err(CloseReason::ParseError)
            }
        }
    }

    fn connect(&mut self, json: &[u8]) -> Result<(), CloseReason> {
        let connect = match ConnectOptions::parse(json) {
            Ok(connect) => connect,
            Err(error) => {
                let error = ProtocolError::InvalidConnect(error.to_string());
                return Err(self.protocol_violation(&error));
            }
        };
        let now = Instant::now();
        if !self.connect_received {
            // nats-server's first PING comes soon after CONNECT, then every ping interval.
            let first = self.options.ping_interval.min(FIRST_PING_INTERVAL);
            self.next_ping = now + first + jitter(first, self.connection.id);
        }
        if !self.connect_received {
            // Like nats-server: a first estimate from accept to CONNECT, until a PONG measures it.
            let since_accept = self
                .connection
                .started
                .elapsed()
                .unwrap_or_default()
                .as_nanos()
                .clamp(1_000, u128::from(u64::MAX)) as u64;
            self.connection
                .round_trip_nanos
                .store(since_accept, std::sync::atomic::Ordering::Relaxed);
        }
        self.connect_received = true;
        let user = match self.server.authenticate(&self.connection, &connect) {
            Ok(user) => user,
            Err(error) => {
                logging::debug(format_args!("{} - {error}", self.describe()));
                return Err(self.authorization_violation(&connect.username));
            }
        };
        if connect.new_account || !connect.account.is_empty() {
            return Err(self.authorization_violation(&connect.username));
        }
        self.awaiting_authentication = false;
        if !(0..=CLIENT_PROTOCOL_INFO).contains(&connect.protocol) {
            return Err(self.protocol_violation(&ProtocolError::InvalidClientProtocol));
        }
        self.connection
            .set_accepts_async_info(connect.protocol >= CLIENT_PROTOCOL_INFO);
        let headers = connect.headers && !self.options.no_header_support;
        self.connection.set_supports_headers(headers);
        if connect.no_responders && !headers {
            return Err(self.protocol_violation(&ProtocolError::NoRespondersRequiresHeaders));
        }
        {
            let mut metadata = self.connection.metadata.lock();
            metadata.name.clone_from(&connect.name);
            metadata.lang.clone_from(&connect.lang);
            metadata.version.clone_from(&connect.version);
            metadata.authorized_user.clone_from(&user.name);
            metadata.account.clone_from(&self.account.name);
        }
        self.take_up_permissions(&user);
        self.claim_user_connection(&user)?;
        self.bind_account(user.account.as_deref())?;
        if connect.verbose {
            self.queue_own(server_operations::OK);
        }
        self.connect = connect;
        Ok(())
    }

    /// nats-server lets a connection skip CONNECT when `no_auth_user` names a known user.
    fn authenticate_without_connect(&mut self) -> Result<(), CloseReason> {
        let anonymous = ConnectOptions::default();
        match self.server.authenticate(&self.connection, &anonymous) {
            Ok(user) if user.method == AuthenticationMethod::NoAuthUser => {
                self.awaiting_authentication = false;
                self.connect_received = true;
                self.connection
                    .metadata
                    .lock()
                    .authorized_user
                    .clone_from(&user.name);
                self.take_up_permissions(&user);
                self.claim_user_connection(&user)?;
                self.bind_account(user.account.as_deref())
            }
            _ => Err(self.authorization_violation("")),
        }
    }

    /// Counts the connection against its user's `max_connections`, if the user has one.
    fn claim_user_connection(&mut self, user: &AuthenticatedUser) -> Result<(), CloseReason> {
        if self
            .user_slot
            .as_ref()
            .is_some_and(|slot| slot.user() == user.name)
        {
            return Ok(());
        }
        match self.server.claim_user_connection(user) {
            Ok(slot) => {
                self.user_slot = slot;
                Ok(())
            }
            Err(crate::limits::LimitExceeded::UserConnections) => Err(self.refuse_over_limit(
                text::MAX_USER_CONNECTIONS_EXCEEDED,
                CloseReason::MaxUserConnectionsExceeded,
            )),
        }
    }

    /// Moves the connection into its user's account (the global one without a name), within
    /// the account's `max_connections`, and takes up the account's limits. Only before it has
    /// subscribed: CONNECT comes first whenever accounts have users.
    fn bind_account(&mut self, name: Option<&str>) -> Result<(), CloseReason> {
        let name = name.unwrap_or(crate::account::GLOBAL_ACCOUNT);
        let Some(account) = self.server.account(name.as_bytes()) else {
            logging::error(format_args!(
                "{} - account {name:?} does not exist",
                self.describe()
            ));
            return Ok(());
        };
        if !Arc::ptr_eq(&account, &self.account) {
            if !account.admit_client_connection() {
                return Err(self.refuse_over_limit(
                    text::MAX_ACCOUNT_CONNECTIONS_EXCEEDED,
                    CloseReason::MaxAccountConnectionsExceeded,
                ));
            }
            self.account
                .client_connections
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            self.account = account;
            // Generations of different accounts are unrelated: start the cache afresh.
            self.match_cache.results.clear();
            self.match_cache.generation = self.account.generation();
            self.connection
                .metadata
                .lock()
                .account
                .clone_from(&self.account.name);
        }
        self.take_up_account_limits();
        Ok(())
    }

    /// The payload and subscription limits: the smaller of the server's and the account's.
    fn take_up_account_limits(&mut self) {
        let limits = self.account.limits();
        self.limits.max_payload = limits.effective_max_payload(self.options.max_payload);
        self.max_subscriptions = limits.effective_max_subscriptions(self.options.max_subscriptions);
    }

    /// Answers a connection over a connection limit with `-ERR` and closes it.
    fn refuse_over_limit(&mut self, message: &str, reason: CloseReason) -> CloseReason {
        logging::error(format_args!("{} - {message}", self.describe()));
        self.send_error(message);
        reason
    }

    /// Installs the user's permissions: checked here for what the client sends, and on the
    /// connection for what is delivered to it.
    fn take_up_permissions(&mut self, user: &AuthenticatedUser) {
        self.permissions = user.permission_checker();
        let rules = self.permissions.as_ref().map(|checker| DeliveryRules {
            filter: checker
                .permissions()
                .filters_delivery()
                .then(|| Arc::clone(checker.permissions())),
            responses: checker.response_tracker().cloned(),
        });
        self.connection.set_delivery_rules(rules);
    }

    fn publish_violation(&mut self, subject: &[u8]) {
        let message = format!("Permissions Violation for Publish to {}", go_quote(subject));
        logging::debug(format_args!("{} - {message}", self.describe()));
        self.send_error(&message);
    }

    fn authorization_violation(&mut self, user: &str) -> CloseReason {
        if user.is_empty() {
            logging::error(format_args!("{} - authentication error", self.describe()));
        } else {
            logging::error(format_args!(
                "{} - authentication error - User {user:?}",
                self.describe()
            ));
        }
        self.send_error(text::AUTHORIZATION_VIOLATION);
        CloseReason::AuthenticationViolation
    }

    fn publish(&mut self, publish: &Publish<'_>) -> Result<(), CloseReason> {
        if publish.with_headers && !self.connection.supports_headers() {
            return Err(self.protocol_violation(&ProtocolError::HeadersNotNegotiated));
        }
        self.batch_in_messages += 1;
        self.batch_in_bytes += publish.payload.len() as u64;
        self.connection.statistics.count_in(publish.payload.len());
        if self.connect.pedantic && !subject::is_valid_literal_subject(publish.subject) {
            self.send_error(text::INVALID_PUBLISH_SUBJECT);
        }
        // nats-server's order: the gateway reply prefix, the publish permissions, then the
        // reserved reply prefixes; a refused message is dropped and gets no +OK.
        if has_gateway_reply_prefix(publish.subject) {
            self.publish_violation(publish.subject);
            return Ok(());
        }
        if let Some(checker) = &mut self.permissions {
            if !checker.publish_allowed(publish.subject) {
                self.publish_violation(publish.subject);
                return Ok(());
            }
        }
        if let Some(reply) = publish.reply.filter(|reply| is_reserved_reply(reply)) {
            let message = format!(
                "Permissions Violation for Publish with Reply of {}",
                go_quote(reply)
            );
            self.send_error(&message);
            return Ok(());
        }
        if self.connect.verbose {
            self.queue_own(server_operations::OK);
        }
        let matches = self.matches(publish.subject);
        let message = Message {
            subject: publish.subject,
            reply: publish.reply,
            header_length: publish.header_length,
            payload: publish.payload,
        };
        let publisher = Publisher {
            connection_id: self.connection.id,
            echo: self.connect.echo,
        };
        let before = self.dispatcher.outcome.deliveries;
        self.dispatcher.deliver(
            &matches,
            &message,
            publisher,
            Source::Client,
            self.account.name.as_bytes(),
        );
        if self.dispatcher.outcome.deliveries == before && self.connect.no_responders {
            if let Some(reply) = publish.reply {
                self.send_no_responders(reply);
            }
        }
        Ok(())
    }

    /// Tells the publisher nobody received its request, on its own subscription to the reply.
    fn send_no_responders(&mut self, reply: &[u8]) {
        let matches = self.account.matches(reply);
        let Some(subscription) = matches
            .plain
            .iter()
            .find(|subscription| subscription.connection.id == self.connection.id)
        else {
            return;
        };
        let delivery = server_operations::Delivery {
            subject: reply,
            sid: &subscription.sid,
            reply: None,
            header_length: NO_RESPONDERS_HEADER.len(),
            payload: NO_RESPONDERS_HEADER,
        };
        let _ = self
            .connection
            .outbound
            .lock()
            .push_delivery(&delivery, true);
        self.dispatcher.flush_set.add(&self.connection);
    }

    fn matches(&mut self, subject: &[u8]) -> Matches {
        let generation = self.account.generation();
        if generation != self.match_cache.generation {
            self.match_cache.results.clear();
            self.match_cache.generation = generation;
        } else if let Some(found) = self.match_cache.results.get(subject) {
            return Arc::clone(found);
        }
        let found = self.account.matches(subject);
        if self.match_cache.results.len() >= MATCH_CACHE_CAPACITY {
            self.match_cache.results.clear();
        }
        self.match_cache
            .results
            .insert(Box::from(subject), Arc::clone(&found));
        found
    }

    fn subscribe(&mut self, subject: &[u8], queue_group: Option<&[u8]>, sid: &[u8]) {
        let allowed = queue_group != Some(SYSTEM_QUEUE_GROUP)
            && self
                .permissions
                .as_ref()
                .is_none_or(|checker| checker.subscribe_allowed(subject, queue_group));
        if !allowed {
            self.subscription_violation(subject, queue_group);
            return;
        }
        if self
            .max_subscriptions
            .is_some_and(|max| self.connection.subscription_count() >= max)
        {
            logging::error(format_args!(
                "{} - {}",
                self.describe(),
                text::MAX_SUBSCRIPTIONS_EXCEEDED
            ));
            self.send_error(text::MAX_SUBSCRIPTIONS_EXCEEDED);
            return;
        }
        let subscription = Arc::new(Subscription::new(
            Arc::clone(&self.connection),
            Bytes::copy_from_slice(subject),
            queue_group.map(Bytes::copy_from_slice),
            Bytes::copy_from_slice(sid),
        ));
        if self.connection.add_subscription(&subscription).is_none()
            && self
                .server
                .subscribe_local(&self.account, &subscription)
                .is_err()
        {
            self.connection.remove_subscription(&subscription);
            self.send_error(text::INVALID_SUBJECT);
            return;
        }
        if self.connect.verbose {
            self.queue_own(server_operations::OK);
        }
    }

    fn unsubscribe(&mut self, sid: &[u8], max_messages: Option<u64>) {
        if let Some(subscription) = self.connection.subscription(sid) {
            let keep = max_messages.is_some_and(|max| subscription.limit_to(max));
            if !keep {
                self.connection.remove_subscription(&subscription);
                self.server
                    .unsubscribe_local(&self.account, std::slice::from_ref(&subscription));
            }
        }
        if self.connect.verbose {
            self.queue_own(server_operations::OK);
        }
    }

    fn subscription_violation(&mut self, subject: &[u8], queue_group: Option<&[u8]>) {
        let message = match queue_group {
            Some(queue_group) => format!(
                "Permissions Violation for Subscription to {} using queue {}",
                go_quote(subject),
                go_quote(queue_group)
            ),
            None => format!(
                "Permissions Violation for Subscription to {}",
                go_quote(subject)
            ),
        };
        logging::debug(format_args!("{} - {message}", self.describe()));
        self.send_error(&message);
    }

    /// Removes subscriptions that reached their auto-unsubscribe limit in this batch.
    fn expire_subscriptions(&mut self, expired: &[Arc<Subscription>]) {
        self.server.expire_subscriptions(expired);
    }

    /// Takes up reloaded options; a client whose credentials no longer pass is closed.
    fn apply_reload(&mut self) -> Result<(), CloseReason> {
        self.options = self.server.options();
        self.limits.max_control_line = self.options.max_control_line;
        self.take_up_account_limits();
        if !self.connect_received || self.awaiting_authentication {
            return Ok(());
        }
        match self.server.authenticate(&self.connection, &self.connect) {
            Ok(user) => {
                self.take_up_permissions(&user);
                self.drop_subscriptions_no_longer_allowed();
                Ok(())
            }
            // A user that no longer exists is closed without a word, as nats-server does
            // (it counts as moving to another account); other refusals are told.
            Err(AuthError::UnknownUser { .. } | AuthError::UnknownNkey { .. }) => {
                logging::debug(format_args!(
                    "{} - user removed by reload, closing",
                    self.describe()
                ));
                Err(CloseReason::ClientClosed)
            }
            Err(_) => {
                let user = self.connect.username.clone();
                Err(self.authorization_violation(&user))
            }
        }
    }

    /// After a reload tightened permissions, subscriptions outside them go, each with the
    /// violation nats-server reports.
    fn drop_subscriptions_no_longer_allowed(&mut self) {
        let Some(checker) = &self.permissions else {
            return;
        };
        let refused: Vec<Arc<Subscription>> = self
            .connection
            .subscriptions_snapshot()
            .into_iter()
            .filter(|subscription| {
                !checker
                    .subscribe_allowed(&subscription.subject, subscription.queue_group.as_deref())
            })
            .collect();
        for subscription in &refused {
            self.connection.remove_subscription(subscription);
        }
        // Removed (and marked so) before the client is told: a publisher that matched one of
        // them a moment ago checks the mark under the outbound lock, so no message on it can
        // follow the -ERR, as nats-server guarantees.
        self.server.unsubscribe_local(&self.account, &refused);
        for subscription in &refused {
            // nats-server names the sid when a reload takes a subscription away.
            let message = format!(
                "Permissions Violation for Subscription to {} (sid {})",
                go_quote(&subscription.subject),
                go_quote(&subscription.sid)
            );
            self.send_error(&message);
        }
    }

    fn ping_timer(&mut self) -> Result<(), CloseReason> {
        let now = Instant::now();
        let interval = self.options.ping_interval;
        let quiet = now.duration_since(self.last_inbound) >= interval
            && self
                .last_ping_received
                .is_none_or(|received| now.duration_since(received) >= interval);
        if quiet || !self.connect_received {
            if self.pings_outstanding + 1 > self.options.ping_max {
                logging::debug(format_args!(
                    "{} - Stale Client Connection - Closing",
                    self.describe()
                ));
                self.send_error(text::STALE_CONNECTION);
                return Err(CloseReason::StaleConnection);
            }
            self.pings_outstanding += 1;
            self.ping_sent_at = Some(now);
            self.connection.send_control(server_operations::PING);
        }
        self.next_ping = now + interval;
        Ok(())
    }

    /// Queues bytes for this connection itself; they go out with the batch.
    fn queue_own(&mut self, bytes: &[u8]) {
        self.connection.outbound.lock().push_control(bytes);
        self.dispatcher.flush_set.add(&self.connection);
    }

    fn send_error(&mut self, text: &str) {
        self.connection
            .outbound
            .lock()
            .push_with(|out| server_operations::encode_error(out, text));
        self.dispatcher.flush_set.add(&self.connection);
        self.dispatcher.flush_set.flush();
    }

    /// `-V`: each received operation as nats-server traces it; passwords and tokens masked.
    fn trace_inbound(&self, operation: &ClientOperation<'_>) {
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        let line = match operation {
            ClientOperation::Connect(json) => format!("CONNECT {}", redact_secrets(&text(json))),
            ClientOperation::Publish(publish) => {
                let operation = if publish.with_headers { "HPUB" } else { "PUB" };
                let reply = publish.reply.map(|reply| format!(" {}", text(reply)));
                let sizes = if publish.with_headers {
                    format!("{} {}", publish.header_length, publish.payload.len())
                } else {
                    publish.payload.len().to_string()
                };
                format!(
                    "{operation} {}{} {sizes}",
                    text(publish.subject),
                    reply.unwrap_or_default()
                )
            }
            ClientOperation::Subscribe {
                subject,
                queue_group,
                sid,
            } => match queue_group {
                Some(queue_group) => {
                    format!("SUB {} {} {}", text(subject), text(queue_group), text(sid))
                }
                None => format!("SUB {} {}", text(subject), text(sid)),
            },
            ClientOperation::Unsubscribe { sid, max_messages } => match max_messages {
                Some(max) => format!("UNSUB {} {max}", text(sid)),
                None => format!("UNSUB {}", text(sid)),
            },
            ClientOperation::Ping => "PING".to_string(),
            ClientOperation::Pong => "PONG".to_string(),
            ClientOperation::Ok => "+OK".to_string(),
            ClientOperation::Info(json) => format!("INFO {}", text(json)),
            ClientOperation::Error(message) => format!("-ERR {}", text(message)),
        };
        logging::trace(format_args!("{} - <<- [{line}]", self.describe()));
        if let ClientOperation::Publish(publish) = operation {
            logging::trace(format_args!(
                "{} - <<- MSG_PAYLOAD: [{:?}]",
                self.describe(),
                text(publish.payload)
            ));
        }
    }

    fn describe(&self) -> String {
        format!(
            "{}:{} - cid:{}",
            self.connection.remote_address.ip(),
            self.connection.remote_address.port(),
            self.connection.id
        )
    }

    /// Removes everything this session registered; returns the subscriptions it had.
    fn finish(&mut self) -> Vec<Arc<Subscription>> {
        self.dispatcher.flush_set.flush();
        let subscriptions = self.connection.take_subscriptions();
        self.server.unsubscribe_local(&self.account, &subscriptions);
        subscriptions
    }
}

/// Replaces the values of `pass`, `auth_token`, `sig` and `jwt` in CONNECT JSON for logs.
fn redact_secrets(json: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(json) {
        Ok(serde_json::Value::Object(mut fields)) => {
            for key in ["pass", "auth_token", "sig", "jwt"] {
                if let Some(value) = fields.get_mut(key) {
                    *value = serde_json::Value::String("[REDACTED]".into());
                }
            }
            serde_json::Value::Object(fields).to_string()
        }
        _ => "[unparsable]".to_string(),
    }
}

/// Queue group name reserved for the system (nats-server refuses it to clients).
const SYSTEM_QUEUE_GROUP: &[u8] = b"_sys_";

/// Subjects of gateway-routed replies, which clients may not publish to.
fn has_gateway_reply_prefix(subject: &[u8]) -> bool {
    subject.starts_with(b"_GR_.") || subject.starts_with(b"$GR.")
}

/// Reply subjects reserved for the server: service import replies, JetStream acks, gateway
/// routed replies.
fn is_reserved_reply(reply: &[u8]) -> bool {
    [&b"_R_."[..], b"$JS.ACK.", b"_GR_."]
        .iter()
        .any(|prefix| reply.len() > prefix.len() && reply.starts_with(prefix))
}

/// Go's `%q` of a subject: double quotes, with `"` and `\` escaped (subjects hold no other
/// characters that need it).
fn go_quote(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for character in text.chars() {
        if matches!(character, '"' | '\\') {
            quoted.push('\\');
        }
        quoted.push(character);
    }
    quoted.push('"');
    quoted
}

/// Doubles the read size while reads fill the buffer and halves it when they use little.
fn next_read_size(current: usize, read: usize) -> usize {
    if read >= current {
        (current * 2).min(MAX_READ_SIZE)
    } else if read < current / 4 {
        (current / 2).max(MIN_READ_SIZE)
    } else {
        current
    }
}

/// Up to 20% extra delay so pings of many connections do not fire together.
fn jitter(base: Duration, seed: u64) -> Duration {
    let fifth = base.as_millis() as u64 / 5;
    if fifth == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) % fifth)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn traced_connect_never_shows_secrets() {
        let traced =
            redact_secrets(r#"{"user":"a","pass":"secret","auth_token":"t","verbose":false}"#);
        assert!(!traced.contains("secret") && !traced.contains("\"t\""));
        assert!(traced.contains("\"user\":\"a\""));
        assert_eq!(redact_secrets("{not json"), "[unparsable]");
    }

    #[test]
    fn read_size_grows_while_reads_fill_it_and_shrinks_when_they_do_not() {
        assert_eq!(next_read_size(512, 512), 1024);
        assert_eq!(next_read_size(MAX_READ_SIZE, MAX_READ_SIZE), MAX_READ_SIZE);
        assert_eq!(next_read_size(4096, 100), 2048);
        assert_eq!(next_read_size(MIN_READ_SIZE, 1), MIN_READ_SIZE);
    }
}
