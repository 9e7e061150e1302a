//! One route connection: handshake, interest, forwarded messages and liveness.
//!
//! Contract: `run_route` owns a connected socket until the route closes and returns what the
//! dial loop needs to decide on reconnecting. The soliciting side sends CONNECT and its INFO at
//! once (as nats-server 2.9 does, which 2.10+ peers accept from servers that do not pool); the
//! accepting side sends INFO at once and expects CONNECT first when routes must authenticate.
//! Once the peer's INFO arrives the route is registered (or closed as a duplicate), sent all
//! local interest and announced to the other routes. Messages received here go to local
//! subscribers only (one hop). Any protocol error closes the route, as it does in nats-server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::info::{RouteConnect, RouteInfo};
use super::{Cluster, RemoteServer};
use crate::connection::writer::run_writer;
use crate::connection::{CloseReason, Connection, ConnectionKind};
use crate::dispatch::{Dispatcher, Message, Publisher, Source};
use crate::logging;
use crate::options::RouteUrl;
use crate::protocol::errors::text;
use crate::protocol::route_parser::{
    parse_route_operation, ParsedRoute, RemoteInterest, RouteLimits, RouteOperation, RoutedMessage,
};
use crate::protocol::server_operations;
use crate::server::Server;
use crate::subscription::Subscription;
use crate::transport::Transport;

/// Routes ping at most this far apart, as nats-server's routes do.
const MAX_PING_INTERVAL: Duration = Duration::from_secs(30);
/// The first PING goes out soon after the handshake.
const FIRST_PING: Duration = Duration::from_secs(1);
/// Read buffer size for routes, which carry batches from whole servers.
const READ_SIZE: usize = 64 * 1024;

/// What a finished route tells its dial loop.
#[derive(Debug, Default)]
pub struct RouteOutcome {
    /// The peer's server id, once its INFO arrived.
    pub remote_id: Option<String>,
    /// Whether the route should be dialled again.
    pub retry: bool,
    pub retry_url: Option<(RouteUrl, bool)>,
}

/// Runs a route on `transport` (TLS already done when configured) until it closes.
/// `solicited` carries the URL this server dialled and whether it was configured.
pub async fn run_route(
    server: Arc<Server>,
    cluster: Arc<Cluster>,
    transport: Transport,
    addresses: (SocketAddr, Option<SocketAddr>),
    solicited: Option<(RouteUrl, bool)>,
) -> RouteOutcome {
    let options = server.options();
    let (remote_address, local_address) = addresses;
    let connection = Arc::new(Connection::new(
        server.next_connection_id(),
        ConnectionKind::Route,
        remote_address,
        options.max_pending,
        &server.shutdown_token(),
    ));
    let (reader, writer) = tokio::io::split(transport);
    let writer_task = tokio::spawn(run_writer(
        Arc::clone(&connection),
        writer,
        options.write_deadline,
    ));
    logging::notice(format_args!(
        "{remote_address} - rid:{} - Route connection created",
        connection.id
    ));
    let cluster_options = cluster.options();
    if let Some((url, _)) = &solicited {
        // A route URL without credentials presents the cluster's own: servers of one cluster
        // share them, and rendered configs (the operator's) keep secrets out of URLs.
        let (user, password) = match &url.user {
            Some(user) => (user.clone(), url.password.clone().unwrap_or_default()),
            None => (
                cluster_options.user.clone().unwrap_or_default(),
                cluster_options.password.clone().unwrap_or_default(),
            ),
        };
        let connect = RouteConnect {
            echo: true,
            user,
            pass: password,
            headers: !options.no_header_support,
            name: server.server_id.clone(),
            cluster: cluster.name(),
            cluster_dynamic: cluster.is_dynamic(),
            ..RouteConnect::default()
        };
        connection.send_control(&connect.to_protocol_line());
    }
    connection.send_control(
        &server
            .route_info(&cluster, local_address)
            .to_protocol_line(),
    );

    let now = Instant::now();
    let expects_connect = solicited.is_none();
    let authentication_required = expects_connect && cluster_options.user.is_some();
    let mut session = RouteSession {
        server: Arc::clone(&server),
        cluster: Arc::clone(&cluster),
        connection: Arc::clone(&connection),
        solicited,
        remote_id: None,
        registered: false,
        info_received: false,
        connect_received: !expects_connect,
        authentication_required,
        authentication_deadline: now
            + cluster_options
                .auth_timeout
                .unwrap_or(crate::options::defaults::AUTH_TIMEOUT),
        limits: RouteLimits {
            max_control_line: options.max_control_line.max(4096) * 16,
            max_payload: options.max_pending,
        },
        ping_interval: options.ping_interval.min(MAX_PING_INTERVAL),
        ping_max: options.ping_max,
        pings_outstanding: 0,
        ping_sent_at: None,
        next_ping: now + FIRST_PING,
        dispatcher: Dispatcher::new(rand::random::<u64>()),
        batch_in_messages: 0,
        batch_in_bytes: 0,
    };
    let reason = session.read_loop(reader).await;
    connection.close(reason);
    let outcome = session.finish(reason);
    let _ = writer_task.await;
    logging::notice(format_args!(
        "{remote_address} - rid:{} - Router connection closed: {}",
        connection.id,
        connection.close_reason().unwrap_or(reason).as_str()
    ));
    outcome
}

struct RouteSession {
    server: Arc<Server>,
    cluster: Arc<Cluster>,
    connection: Arc<Connection>,
    solicited: Option<(RouteUrl, bool)>,
    remote_id: Option<String>,
    registered: bool,
    info_received: bool,
    connect_received: bool,
    authentication_required: bool,
    authentication_deadline: Instant,
    limits: RouteLimits,
    ping_interval: Duration,
    ping_max: u32,
    pings_outstanding: u32,
    ping_sent_at: Option<Instant>,
    next_ping: Instant,
    dispatcher: Dispatcher,
    batch_in_messages: u64,
    batch_in_bytes: u64,
}

impl RouteSession {
    async fn read_loop<R: AsyncRead + Unpin>(&mut self, mut reader: R) -> CloseReason {
        let mut buffer = BytesMut::with_capacity(READ_SIZE);
        let closing = self.connection.closing().clone();
        let ping = tokio::time::sleep_until(self.next_ping.into());
        let authentication = tokio::time::sleep_until(self.authentication_deadline.into());
        tokio::pin!(ping, authentication);
        let mut armed_ping = self.next_ping;
        loop {
            if buffer.capacity() - buffer.len() < READ_SIZE / 2 {
                buffer.reserve(READ_SIZE);
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
                    match read {
                        Ok(0) => return CloseReason::ClientClosed,
                        Ok(_) => {}
                        Err(_) => return CloseReason::ReadError,
                    }
                    self.connection.touch();
                    let processed = self.process_buffer(&mut buffer);
                    self.finish_batch();
                    if let Err(reason) = processed {
                        return reason;
                    }
                }
                () = &mut ping => {
                    if let Err(reason) = self.ping_timer() {
                        return reason;
                    }
                }
                () = &mut authentication, if self.authentication_required && !self.connect_received => {
                    self.send_error(text::AUTHENTICATION_TIMEOUT);
                    return CloseReason::AuthenticationTimeout;
                }
            }
        }
    }

    fn process_buffer(&mut self, buffer: &mut BytesMut) -> Result<(), CloseReason> {
        let mut offset = 0;
        let result = loop {
            let remaining = &buffer[offset..];
            if remaining.is_empty() {
                break Ok(());
            }
            match parse_route_operation(remaining, &self.limits) {
                Ok(ParsedRoute::Complete {
                    operation,
                    consumed,
                }) => {
                    if let Err(reason) = self.handle(operation) {
                        break Err(reason);
                    }
                    offset += consumed;
                }
                Ok(ParsedRoute::Incomplete) => break Ok(()),
                Err(error) => {
                    logging::error(format_args!(
                        "{} - Route protocol error: {error}",
                        self.describe()
                    ));
                    if let Some(text) = error.client_error_text() {
                        self.send_error(text);
                    }
                    break Err(CloseReason::ParseError);
                }
            }
        };
        buffer.advance(offset);
        result
    }

    fn finish_batch(&mut self) {
        self.dispatcher.flush_set.flush();
        let expired = std::mem::take(&mut self.dispatcher.outcome.expired);
        if !expired.is_empty() {
            self.server.expire_subscriptions(&expired);
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

    fn handle(&mut self, operation: RouteOperation<'_>) -> Result<(), CloseReason> {
        if !self.connect_received && !matches!(operation, RouteOperation::Connect(_)) {
            if self.authentication_required {
                self.send_error(text::AUTHORIZATION_VIOLATION);
                return Err(CloseReason::AuthenticationViolation);
            }
            // Without route authentication, 2.9 peers are not held to CONNECT first.
            self.connect_received = true;
        }
        match operation {
            RouteOperation::Message(message) => {
                self.routed_message(&message);
                Ok(())
            }
            RouteOperation::Subscribe(interest) => {
                self.remote_subscribe(&interest);
                Ok(())
            }
            RouteOperation::Unsubscribe(interest) => {
                self.remote_unsubscribe(&interest);
                Ok(())
            }
            RouteOperation::Ping => {
                self.connection.send_control(server_operations::PONG);
                Ok(())
            }
            RouteOperation::Pong => {
                self.pings_outstanding = 0;
                if let Some(sent) = self.ping_sent_at.take() {
                    let round_trip = sent.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
                    self.connection
                        .round_trip_nanos
                        .store(round_trip, std::sync::atomic::Ordering::Relaxed);
                }
                Ok(())
            }
            RouteOperation::Connect(json) => self.connect(json),
            RouteOperation::Info(json) => self.info(json),
            RouteOperation::Ok => Ok(()),
            RouteOperation::Error(message) => {
                let message = String::from_utf8_lossy(message);
                // A 2.10+ peer asking for a dedicated account route is told no by its own
                // side once it sees Tern does not pool: expected, not worth an error line.
                if message.contains("Not possible to have a dedicated route") {
                    logging::debug(format_args!("{} - Route Error {message}", self.describe()));
                } else {
                    logging::error(format_args!("{} - Route Error {message}", self.describe()));
                }
                Err(CloseReason::ParseError)
            }
        }
    }

    fn connect(&mut self, json: &[u8]) -> Result<(), CloseReason> {
        if self.solicited.is_some() {
            return Ok(());
        }
        let connect: RouteConnect = serde_json::from_slice(json).map_err(|error| {
            logging::error(format_args!(
                "{} - Invalid route CONNECT: {error}",
                self.describe()
            ));
            CloseReason::ProtocolViolation
        })?;
        if !connect.lang.is_empty() {
            self.send_error("attempted to connect to route port");
            return Err(CloseReason::WrongPort);
        }
        if !connect.gateway.is_empty() {
            let message = format!(
                "Rejecting connection from gateway {:?} on the Route port",
                connect.gateway
            );
            self.send_error(&message);
            return Err(CloseReason::WrongPort);
        }
        self.check_cluster_name(&connect.cluster, connect.cluster_dynamic, true)?;
        let options = self.cluster.options();
        if let Some(user) = &options.user {
            let password = options.password.clone().unwrap_or_default();
            if connect.user != *user || connect.pass != password {
                logging::error(format_args!(
                    "{} - authentication error - User {:?}",
                    self.describe(),
                    connect.user
                ));
                self.send_error(text::AUTHORIZATION_VIOLATION);
                return Err(CloseReason::AuthenticationViolation);
            }
        }
        self.connect_received = true;
        self.connection.set_supports_headers(connect.headers);
        Ok(())
    }

    /// A name mismatch closes the route unless this server's name is dynamic and gives way.
    fn check_cluster_name(
        &mut self,
        remote: &str,
        remote_dynamic: bool,
        answer: bool,
    ) -> Result<(), CloseReason> {
        let local = self.cluster.name();
        if remote.is_empty() || remote == local {
            return Ok(());
        }
        if self.cluster.adopt_name(remote, remote_dynamic) {
            logging::notice(format_args!("Cluster name updated to {remote}"));
            self.cluster
                .close_all_except(&self.connection, CloseReason::ClusterNameConflict);
            return Ok(());
        }
        let message =
            format!("Rejecting connection, cluster name {remote:?} does not match {local:?}");
        logging::error(format_args!("{} - {message}", self.describe()));
        if answer {
            self.send_error(&message);
        }
        Err(CloseReason::ClusterNameConflict)
    }

    fn info(&mut self, json: &[u8]) -> Result<(), CloseReason> {
        let info: RouteInfo = serde_json::from_slice(json).map_err(|error| {
            logging::error(format_args!(
                "{} - Invalid route INFO: {error}",
                self.describe()
            ));
            CloseReason::ProtocolViolation
        })?;
        if self.info_received {
            self.later_info(&info, json);
            return Ok(());
        }
        if info.server_id == self.server.server_id {
            self.remote_id = Some(info.server_id);
            return Err(CloseReason::DuplicateRoute);
        }
        if !info.route_account.is_empty() {
            logging::debug(format_args!(
                "{} - Refusing a dedicated route for account {:?}: routes are not pooled",
                self.describe(),
                info.route_account
            ));
            return Err(CloseReason::DuplicateRoute);
        }
        self.check_cluster_name(&info.cluster, info.cluster_dynamic, false)?;
        if self.solicited.is_none() && info.server_name == self.server.server_name() {
            logging::error(format_args!(
                "{} - Remote server has a duplicate name: {:?}",
                self.describe(),
                info.server_name
            ));
            return Err(CloseReason::DuplicateServerName);
        }
        self.info_received = true;
        self.remote_id = Some(info.server_id.clone());
        self.connection.set_supports_headers(info.headers);
        let address = self.connection.remote_address;
        let url = if info.ip.is_empty() {
            format!("nats-route://{}:{}/", address.ip(), info.port)
        } else {
            info.ip.clone()
        };
        let remote = RemoteServer {
            id: info.server_id.clone(),
            name: info.server_name.clone(),
            connect_urls: info.connect_urls.clone(),
            ws_connect_urls: info.ws_connect_urls.clone(),
            url: url.clone(),
            solicited: self.solicited.is_some(),
            configured: self
                .solicited
                .as_ref()
                .is_some_and(|(_, configured)| *configured),
            started: SystemTime::now(),
            remote_address: address,
        };
        if !self
            .cluster
            .register(&self.connection, remote, self.solicited.clone())
        {
            logging::debug(format_args!(
                "{} - Detected duplicate remote route {:?}",
                self.describe(),
                info.server_id
            ));
            return Err(CloseReason::DuplicateRoute);
        }
        self.registered = true;
        logging::debug(format_args!(
            "{} - Registering remote route {:?}",
            self.describe(),
            info.server_id
        ));
        self.cluster
            .send_all_interest(&self.connection, &self.server.accounts());
        if self.cluster.route_count() > 1 {
            self.announce_to_other_routes(json, &url);
        }
        self.server.connect_urls_changed();
        Ok(())
    }

    /// Gossip: the other routes learn how to reach the new server.
    fn announce_to_other_routes(&self, json: &[u8], url: &str) {
        let Ok(serde_json::Value::Object(mut fields)) = serde_json::from_slice(json) else {
            return;
        };
        fields.remove("nonce");
        fields.insert("ip".into(), serde_json::Value::String(url.to_string()));
        let mut line = b"INFO ".to_vec();
        line.extend_from_slice(serde_json::Value::Object(fields).to_string().as_bytes());
        line.extend_from_slice(b"\r\n");
        self.cluster.broadcast(&line, self.remote_id.as_deref());
    }

    /// INFO after the handshake: news of another server, or an update about this one.
    fn later_info(&mut self, info: &RouteInfo, _json: &[u8]) {
        if !info.gateway.is_empty() {
            return;
        }
        if self.remote_id.as_deref() != Some(info.server_id.as_str()) {
            self.implicit_route(info);
            return;
        }
        if info.ldm {
            logging::notice(format_args!(
                "{} - Remote server entered lame duck mode",
                self.describe()
            ));
            self.cluster.forget_connect_urls(&info.server_id);
            self.server.connect_urls_changed();
        }
    }

    fn implicit_route(&self, info: &RouteInfo) {
        if info.server_id == self.server.server_id || self.cluster.is_connected_to(&info.server_id)
        {
            return;
        }
        let Ok(mut url) = RouteUrl::parse(&info.ip) else {
            logging::debug(format_args!(
                "{} - Gossiped route {:?} has no usable URL {:?}",
                self.describe(),
                info.server_id,
                info.ip
            ));
            return;
        };
        let options = self.cluster.options();
        if options
            .routes
            .iter()
            .any(|configured| configured.address() == url.address())
        {
            return;
        }
        if info.auth_required {
            url.user.clone_from(&options.user);
            url.password.clone_from(&options.password);
        }
        super::dial(&self.server, &self.cluster, url, false);
    }

    fn remote_subscribe(&mut self, interest: &RemoteInterest<'_>) {
        let Some(account) = self.server.account(interest.account) else {
            logging::debug(format_args!(
                "{} - Unknown account {:?} for remote subject {:?}",
                self.describe(),
                String::from_utf8_lossy(interest.account),
                String::from_utf8_lossy(interest.subject)
            ));
            return;
        };
        let key = interest_key(interest);
        if let Some(existing) = self.connection.subscription(&key) {
            if interest.queue_group.is_some() {
                existing.set_weight(interest.weight.max(1));
            }
            return;
        }
        let subscription = Arc::new(Subscription::new(
            Arc::clone(&self.connection),
            Bytes::copy_from_slice(interest.subject),
            interest.queue_group.map(Bytes::copy_from_slice),
            key,
        ));
        subscription.set_weight(interest.weight.max(1));
        if self.connection.add_subscription(&subscription).is_some() {
            return;
        }
        if let Err(error) = account.subscribe(&subscription) {
            self.connection.remove_subscription(&subscription);
            logging::error(format_args!(
                "{} - Could not insert remote subscription: {error}",
                self.describe()
            ));
        }
    }

    fn remote_unsubscribe(&mut self, interest: &RemoteInterest<'_>) {
        let key = interest_key(interest);
        let Some(subscription) = self.connection.subscription(&key) else {
            return;
        };
        self.connection.remove_subscription(&subscription);
        if let Some(account) = self.server.account(interest.account) {
            account.unsubscribe([&subscription]);
        }
    }

    fn routed_message(&mut self, message: &RoutedMessage<'_>) {
        self.batch_in_messages += 1;
        self.batch_in_bytes += message.payload.len() as u64;
        self.connection.statistics.count_in(message.payload.len());
        let Some(account) = self.server.account(message.account) else {
            logging::debug(format_args!(
                "{} - Unknown account {:?} for routed message on subject {:?}",
                self.describe(),
                String::from_utf8_lossy(message.account),
                String::from_utf8_lossy(message.subject)
            ));
            return;
        };
        let matches = account.matches(message.subject);
        let delivered = Message {
            subject: message.subject,
            reply: message.reply,
            header_length: message.header_length,
            payload: message.payload,
        };
        let publisher = Publisher {
            connection_id: self.connection.id,
            echo: true,
        };
        self.dispatcher.deliver(
            &matches,
            &delivered,
            publisher,
            Source::Route {
                queue_groups: message.queue_groups,
            },
            account.name.as_bytes(),
        );
    }

    fn ping_timer(&mut self) -> Result<(), CloseReason> {
        if self.pings_outstanding + 1 > self.ping_max {
            logging::error(format_args!(
                "{} - Stale Route Connection - Closing",
                self.describe()
            ));
            self.send_error(text::STALE_CONNECTION);
            return Err(CloseReason::StaleConnection);
        }
        self.pings_outstanding += 1;
        self.ping_sent_at = Some(Instant::now());
        self.connection.send_control(server_operations::PING);
        self.next_ping = Instant::now() + self.ping_interval;
        Ok(())
    }

    fn send_error(&self, message: &str) {
        self.connection
            .outbound
            .lock()
            .push_with(|out| server_operations::encode_error(out, message));
        self.connection.flush.notify_one();
    }

    fn describe(&self) -> String {
        format!(
            "{} - rid:{}",
            self.connection.remote_address, self.connection.id
        )
    }

    /// Unregisters, removes the peer's interest, and says whether to dial again.
    fn finish(&mut self, reason: CloseReason) -> RouteOutcome {
        self.dispatcher.flush_set.flush();
        let subscriptions = self.connection.take_subscriptions();
        for subscription in &subscriptions {
            let account_name = subscription
                .sid
                .split(|byte| *byte == b' ')
                .next()
                .unwrap_or_default();
            if let Some(account) = self.server.account(account_name) {
                account.unsubscribe([subscription]);
            }
        }
        let mut outcome = RouteOutcome {
            remote_id: self.remote_id.clone(),
            retry: false,
            retry_url: None,
        };
        if self.registered {
            if let Some(id) = &self.remote_id {
                if let Some(retry_url) = self.cluster.unregister(&self.connection, id) {
                    outcome.retry = retry_url.is_some();
                    outcome.retry_url = retry_url;
                }
            }
            self.server.connect_urls_changed();
        }
        if reason == CloseReason::DuplicateRoute || reason == CloseReason::ServerShutdown {
            outcome.retry = false;
        }
        outcome
    }
}

/// The key a remote subscription is stored under: `account subject [queue]`.
fn interest_key(interest: &RemoteInterest<'_>) -> Bytes {
    let mut key = BytesMut::with_capacity(
        interest.account.len()
            + interest.subject.len()
            + interest.queue_group.map_or(0, <[u8]>::len)
            + 2,
    );
    key.extend_from_slice(interest.account);
    key.extend_from_slice(b" ");
    key.extend_from_slice(interest.subject);
    if let Some(queue_group) = interest.queue_group {
        key.extend_from_slice(b" ");
        key.extend_from_slice(queue_group);
    }
    key.freeze()
}
