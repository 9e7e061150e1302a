//! One route connection: handshake, pool slot, compression, interest, forwarded messages and
//! liveness.
//!
//! Contract: `run_route` owns a connected socket until the route closes and returns what the
//! dial loop needs to decide on reconnecting. The soliciting side sends CONNECT at once and,
//! as nats-server 2.10+ does, holds its INFO back until the peer's INFO has been processed
//! when it pools or may compress (so the INFO can name the pool slot it picked); the
//! accepting side sends INFO at once and expects CONNECT first when routes must authenticate.
//! The first INFO negotiates compression (reference §2.10): when the outcome is to compress,
//! the soliciting side sends its INFO plain and switches both directions to S2; the accepting
//! side switches its writer, answers with a compressed INFO and switches its reader; the
//! route then registers on the next INFO. No PING goes out before that negotiation is over.
//! Registration places the connection in the pool (or refuses it, with nats-server's `-ERR`
//! texts for impossible slots and dedicated routes), sends the local interest of the
//! accounts it carries, and on a server's first connection announces it to the other routes
//! and dials the pinned accounts' routes. A solicited pool member that leaves the pool short
//! dials the next one once its first PONG proves the peer accepted it. Messages received
//! here go to local subscribers only (one hop). Any protocol error closes the route, as it
//! does in nats-server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::info::{RouteConnect, RouteInfo};
use super::pool::{Registration, Request, RouteRole};
use super::{Cluster, DialTarget, RemoteServer};
use crate::compression::mode::{auto_level, negotiate};
use crate::compression::{CompressionMode, Decoded, Negotiated, S2Decoder, S2Level};
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
    /// The peer or the pool refused this connection for good: do not dial it again.
    pub no_reconnect: bool,
}

/// A route this server dialled.
#[derive(Debug, Clone)]
pub struct Solicited {
    pub url: RouteUrl,
    /// Configured (dialled for ever) rather than gossiped.
    pub configured: bool,
    /// The account this connection is dedicated to, for a pinned account's route.
    pub account: Option<String>,
}

/// Runs a route on `transport` (TLS already done when configured) until it closes.
/// `solicited` is set when this server dialled it.
pub async fn run_route(
    server: Arc<Server>,
    cluster: Arc<Cluster>,
    transport: Transport,
    addresses: (SocketAddr, Option<SocketAddr>),
    solicited: Option<Solicited>,
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
    if let Some(Solicited { url, .. }) = &solicited {
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
    let compression_mode = cluster_options.compression;
    let pinned_account = solicited
        .as_ref()
        .and_then(|solicited| solicited.account.clone());
    // nats-server 2.10+ holds a solicited route's INFO back until the peer's INFO is in when
    // it may compress, and for pool members (to name the slot).
    let delay_info = solicited.is_some()
        && (compression_mode != CompressionMode::Off
            || (pinned_account.is_none() && cluster.pools()));
    let own_info = server.route_info(&cluster, local_address);
    if !delay_info {
        let mut info = own_info.clone();
        info.compression = compression_mode.as_str().to_string();
        info.route_account = pinned_account.clone().unwrap_or_default();
        connection.send_control(&info.to_protocol_line());
    }

    let now = Instant::now();
    let expects_connect = solicited.is_none();
    let authentication_required = expects_connect && cluster_options.user.is_some();
    let mut session = RouteSession {
        server: Arc::clone(&server),
        cluster: Arc::clone(&cluster),
        connection: Arc::clone(&connection),
        solicited,
        own_info,
        info_sent: !delay_info,
        started: now,
        compression_mode,
        compression_thresholds: cluster_options.compression_thresholds.clone(),
        negotiation_done: false,
        compression: Negotiated::NotSupported,
        switch_reader: false,
        pinned_account: pinned_account.map(Bytes::from),
        role: None,
        request_pool_member: false,
        no_reconnect: false,
        remote_id: None,
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
    solicited: Option<Solicited>,
    /// This server's INFO as of the connection's start (slot, account and mode are added).
    own_info: RouteInfo,
    /// Whether this side's INFO went out (a soliciting side may hold it back).
    info_sent: bool,
    started: Instant,
    compression_mode: CompressionMode,
    compression_thresholds: Vec<Duration>,
    /// The first INFO was processed and compression settled (no PING before that).
    negotiation_done: bool,
    compression: Negotiated,
    /// Everything read after the operation being handled is S2-compressed.
    switch_reader: bool,
    /// A dedicated route's account: operations on it carry no account token.
    pinned_account: Option<Bytes>,
    /// Set once registered.
    role: Option<RouteRole>,
    /// Dial the next pool member on the next PONG.
    request_pool_member: bool,
    no_reconnect: bool,
    remote_id: Option<String>,
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
        // Bytes as read from the socket once they are compressed.
        let mut compressed = BytesMut::new();
        let mut decoder: Option<S2Decoder> = None;
        let closing = self.connection.closing().clone();
        let ping = tokio::time::sleep_until(self.next_ping.into());
        let authentication = tokio::time::sleep_until(self.authentication_deadline.into());
        tokio::pin!(ping, authentication);
        let mut armed_ping = self.next_ping;
        loop {
            let into = if decoder.is_some() {
                &mut compressed
            } else {
                &mut buffer
            };
            if into.capacity() - into.len() < READ_SIZE / 2 {
                into.reserve(READ_SIZE);
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
                read = reader.read_buf(into) => {
                    match read {
                        Ok(0) => return CloseReason::ClientClosed,
                        Ok(_) => {}
                        Err(_) => return CloseReason::ReadError,
                    }
                    self.connection.touch();
                    let processed = match &mut decoder {
                        Some(decoder) => self.process_compressed(decoder, &mut compressed, &mut buffer),
                        None => self.process_buffer(&mut buffer),
                    };
                    let processed = processed.and_then(|()| {
                        if !self.switch_reader {
                            return Ok(());
                        }
                        // What follows the operation that switched is compressed.
                        self.switch_reader = false;
                        let mut started = S2Decoder::new();
                        let rest = buffer.split();
                        let outcome = self.process_compressed(&mut started, &mut BytesMut::from(&rest[..]), &mut buffer);
                        decoder = Some(started);
                        outcome
                    });
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

    /// Feeds compressed bytes through `decoder` and processes what comes out, a chunk at a
    /// time.
    fn process_compressed(
        &mut self,
        decoder: &mut S2Decoder,
        compressed: &mut BytesMut,
        buffer: &mut BytesMut,
    ) -> Result<(), CloseReason> {
        let pushed = decoder.push(compressed);
        compressed.clear();
        if compressed.capacity() > READ_SIZE * 4 {
            *compressed = BytesMut::new();
        }
        pushed.map_err(|error| self.decompression_failed(&error))?;
        loop {
            match decoder.decode(buffer) {
                Ok(Decoded::Produced(_)) => self.process_buffer(buffer)?,
                Ok(Decoded::NeedInput) => return Ok(()),
                Err(error) => return Err(self.decompression_failed(&error)),
            }
        }
    }

    fn decompression_failed(&self, error: &crate::compression::S2Error) -> CloseReason {
        logging::error(format_args!(
            "{} - Route decompression error: {error}",
            self.describe()
        ));
        CloseReason::ParseError
    }

    fn process_buffer(&mut self, buffer: &mut BytesMut) -> Result<(), CloseReason> {
        let mut offset = 0;
        let result = loop {
            let remaining = &buffer[offset..];
            if remaining.is_empty() {
                break Ok(());
            }
            let pinned_account = self.pinned_account.clone();
            match parse_route_operation(remaining, &self.limits, pinned_account.as_deref()) {
                Ok(ParsedRoute::Complete {
                    operation,
                    consumed,
                }) => {
                    if let Err(reason) = self.handle(operation) {
                        break Err(reason);
                    }
                    offset += consumed;
                    if self.switch_reader {
                        break Ok(());
                    }
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
                self.pong();
                Ok(())
            }
            RouteOperation::Connect(json) => self.connect(json),
            RouteOperation::Info(json) => self.info(json),
            RouteOperation::Ok => Ok(()),
            RouteOperation::Error(message) => {
                let message = String::from_utf8_lossy(message);
                logging::error(format_args!("{} - Route Error {message}", self.describe()));
                // A peer that refuses a dedicated or surplus route refuses it for good.
                if message.contains("Not possible to have a dedicated route")
                    || message.contains("No route for account")
                {
                    self.no_reconnect = true;
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
            self.later_info(&info);
            return Ok(());
        }
        if info.server_id == self.server.server_id {
            self.remote_id = Some(info.server_id);
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
        if !self.negotiation_done {
            self.negotiation_done = true;
            if self.negotiate_compression(&info)? {
                // The route registers on the INFO that follows, compressed.
                return Ok(());
            }
        }
        self.register(info, json)
    }

    /// Settles compression on the first INFO; `true` when both directions now compress.
    fn negotiate_compression(&mut self, info: &RouteInfo) -> Result<bool, CloseReason> {
        if self.compression_mode == CompressionMode::Off {
            self.compression = if info.compression.is_empty() {
                Negotiated::NotSupported
            } else {
                Negotiated::Off
            };
            return Ok(false);
        }
        let negotiated = match negotiate(self.compression_mode, &info.compression) {
            Ok(Negotiated::Compress(CompressionMode::S2Auto)) => Negotiated::Compress(auto_level(
                self.started.elapsed(),
                &self.compression_thresholds,
            )),
            Ok(negotiated) => negotiated,
            Err(message) => {
                logging::error(format_args!("{} - {message}", self.describe()));
                self.send_error(&message);
                return Err(CloseReason::ProtocolViolation);
            }
        };
        self.compression = negotiated;
        let Negotiated::Compress(mode) = negotiated else {
            return Ok(false);
        };
        let level = mode.level().unwrap_or(S2Level::Fast);
        let line = self.info_line(0).to_protocol_line();
        if self.solicited.is_some() {
            // This INFO tells the peer the mode, then everything else is compressed; the INFO
            // that registers (with the pool slot) follows once the peer's compressed INFO is in.
            self.connection.send_control(&line);
            self.connection.outbound.lock().start_compression(level);
        } else {
            self.connection.outbound.lock().start_compression(level);
            self.connection.send_control(&line);
        }
        self.switch_reader = true;
        self.next_ping = Instant::now() + FIRST_PING;
        logging::debug(format_args!(
            "{} - Route compression: {}",
            self.describe(),
            mode.as_str()
        ));
        Ok(true)
    }

    /// This side's INFO for this connection: pool slot, dedicated account and the mode it
    /// compresses in (`s2_auto` stays `s2_auto`, as nats-server announces it).
    fn info_line(&self, pool_index: usize) -> RouteInfo {
        let mut info = self.own_info.clone();
        info.route_pool_idx = i64::try_from(pool_index).unwrap_or(0);
        info.route_account = self
            .pinned_account
            .as_ref()
            .map(|account| String::from_utf8_lossy(account).into_owned())
            .unwrap_or_default();
        info.compression = match (self.compression_mode, self.compression) {
            (CompressionMode::S2Auto, _) => CompressionMode::S2Auto.as_str().to_string(),
            (_, Negotiated::NotSupported) if !self.negotiation_done => {
                self.compression_mode.as_str().to_string()
            }
            (_, negotiated) => negotiated.as_str().to_string(),
        };
        info
    }

    /// What this connection asks to be among the connections to its server, or the `-ERR`
    /// that refuses it.
    fn request(&self, info: &RouteInfo) -> Result<Request, (String, bool)> {
        let account = match (&self.solicited, info.route_account.is_empty()) {
            (Some(solicited), _) => solicited.account.clone(),
            (None, false) => Some(info.route_account.clone()),
            (None, true) => None,
        };
        let remote_pools = info.route_pool_size > 0;
        let both_pool = remote_pools && self.cluster.pools();
        if let Some(account) = account {
            if !both_pool {
                return Err((
                    format!(
                        "Not possible to have a dedicated route for account {account:?} between those servers"
                    ),
                    true,
                ));
            }
            if !self.cluster.is_pinned(&account) {
                return Err((format!("No route for account {account:?}"), false));
            }
            return Ok(Request::Pinned { account });
        }
        if !both_pool {
            return Ok(Request::Single);
        }
        // A peer may not make this server hold more slots than any server may configure.
        let remote_pool_size = match usize::try_from(info.route_pool_size) {
            Ok(size) if size as i64 <= crate::options::MAX_ROUTE_POOL_SIZE => size,
            _ => {
                return Err((
                    format!("Invalid route pool size: {}", info.route_pool_size),
                    true,
                ))
            }
        };
        let effective = remote_pool_size.max(self.cluster.pool_size());
        if self.solicited.is_some() {
            if info.route_pool_idx != 0 {
                return Err((
                    format!(
                        "Route pool index should not be set but is set to {}",
                        info.route_pool_idx
                    ),
                    false,
                ));
            }
            return Ok(Request::Pooled {
                remote_pool_size,
                index: None,
            });
        }
        match usize::try_from(info.route_pool_idx) {
            Ok(index) if index < effective => Ok(Request::Pooled {
                remote_pool_size,
                index: Some(index),
            }),
            _ => Err((
                format!(
                    "Invalid route pool index: {} - pool size is {}",
                    info.route_pool_idx, info.route_pool_size
                ),
                false,
            )),
        }
    }

    /// Registers the route from the peer's INFO: its slot, its interest, and the news.
    fn register(&mut self, info: RouteInfo, json: &[u8]) -> Result<(), CloseReason> {
        self.info_received = true;
        self.connection.set_compression(self.compression.as_str());
        self.remote_id = Some(info.server_id.clone());
        self.connection.set_supports_headers(info.headers);
        let request = match self.request(&info) {
            Ok(request) => request,
            Err((message, no_reconnect)) => {
                logging::error(format_args!("{} - {message}", self.describe()));
                self.send_error(&message);
                self.no_reconnect = no_reconnect;
                return Err(CloseReason::ProtocolViolation);
            }
        };
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
                .is_some_and(|solicited| solicited.configured),
            started: SystemTime::now(),
            remote_address: address,
        };
        let retry_url = self
            .solicited
            .as_ref()
            .filter(|solicited| solicited.account.is_none())
            .map(|solicited| (solicited.url.clone(), solicited.configured));
        let (role, first, pool_full) =
            match self
                .cluster
                .register(&self.connection, remote, request, retry_url)
            {
                Registration::Added {
                    role,
                    first,
                    pool_full,
                } => (role, first, pool_full),
                Registration::Duplicate { no_reconnect } => {
                    logging::debug(format_args!(
                        "{} - Detected duplicate remote route {:?}",
                        self.describe(),
                        info.server_id
                    ));
                    self.no_reconnect = no_reconnect;
                    return Err(CloseReason::DuplicateRoute);
                }
            };
        if let RouteRole::Pinned { account } = &role {
            let account = Bytes::from(account.clone());
            self.connection.set_dedicated_account(account.clone());
            self.pinned_account = Some(account);
        }
        if !self.info_sent {
            let index = match role {
                RouteRole::Pooled { index } => index,
                _ => 0,
            };
            let line = self.info_line(index).to_protocol_line();
            self.connection.send_control(&line);
            self.info_sent = true;
        }
        logging::debug(format_args!(
            "{} - Registering remote route {:?} ({role:?})",
            self.describe(),
            info.server_id
        ));
        self.cluster
            .send_all_interest(&self.connection, &role, &self.server.accounts());
        let pinned = matches!(role, RouteRole::Pinned { .. });
        if first || pinned {
            self.announce_to_other_routes(json, &url, pinned);
        }
        if first {
            self.server.connect_urls_changed();
            self.dial_pinned_routes(&info);
        }
        if matches!(role, RouteRole::Pooled { .. }) && self.solicited.is_some() && !pool_full {
            // The next member is dialled once the peer answers a PING on this one.
            self.request_pool_member = true;
            self.send_ping();
        }
        self.role = Some(role);
        Ok(())
    }

    /// A server that pools gets a dedicated route per pinned account from the side that
    /// solicited its first connection.
    fn dial_pinned_routes(&self, info: &RouteInfo) {
        let Some(solicited) = &self.solicited else {
            return;
        };
        if info.route_pool_size <= 0 || !self.cluster.pools() {
            return;
        }
        for account in self.cluster.pinned_accounts() {
            super::dial(
                &self.server,
                &self.cluster,
                solicited.url.clone(),
                solicited.configured,
                DialTarget::Pinned(account.clone()),
            );
        }
    }

    /// Gossip: the other routes learn how to reach the new server (a dedicated route's INFO
    /// names its account and goes only to servers that pool).
    fn announce_to_other_routes(&self, json: &[u8], url: &str, pinned: bool) {
        let Ok(serde_json::Value::Object(mut fields)) = serde_json::from_slice(json) else {
            return;
        };
        fields.remove("nonce");
        fields.remove("route_pool_idx");
        fields.insert("ip".into(), serde_json::Value::String(url.to_string()));
        if let Some(account) = &self.pinned_account {
            fields.insert(
                "route_account".into(),
                serde_json::Value::String(String::from_utf8_lossy(account).into_owned()),
            );
        }
        let mut line = b"INFO ".to_vec();
        line.extend_from_slice(serde_json::Value::Object(fields).to_string().as_bytes());
        line.extend_from_slice(b"\r\n");
        self.cluster
            .broadcast(&line, self.remote_id.as_deref(), pinned);
    }

    /// INFO after the handshake: news of another server, or an update about this one.
    fn later_info(&mut self, info: &RouteInfo) {
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
        if info.server_id == self.server.server_id {
            return;
        }
        let target = if info.route_account.is_empty() {
            if self.cluster.is_connected_to(&info.server_id) {
                return;
            }
            DialTarget::Route
        } else {
            if !self.cluster.pools()
                || !self.cluster.is_pinned(&info.route_account)
                || self
                    .cluster
                    .has_pinned(&info.route_account, &info.server_id)
            {
                return;
            }
            DialTarget::Pinned(info.route_account.clone())
        };
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
        super::dial(&self.server, &self.cluster, url, false, target);
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
        if self.awaiting_negotiation() {
            // Nothing may go out before compression is settled: count the missed beat.
            self.pings_outstanding += 1;
            self.next_ping = Instant::now() + self.ping_interval;
            return Ok(());
        }
        self.send_ping();
        Ok(())
    }

    /// No PING before compression is settled (a plain PING would land in the peer's
    /// decompressor).
    fn awaiting_negotiation(&self) -> bool {
        self.compression_mode != CompressionMode::Off && !self.negotiation_done
    }

    fn send_ping(&mut self) {
        self.pings_outstanding += 1;
        self.ping_sent_at = Some(Instant::now());
        self.connection.send_control(server_operations::PING);
        self.next_ping = Instant::now() + self.ping_interval;
    }

    fn pong(&mut self) {
        self.pings_outstanding = 0;
        if let Some(sent) = self.ping_sent_at.take() {
            let round_trip = sent.elapsed();
            let nanos = round_trip.as_nanos().min(u128::from(u64::MAX)) as u64;
            self.connection
                .round_trip_nanos
                .store(nanos, std::sync::atomic::Ordering::Relaxed);
            if self.compression_mode == CompressionMode::S2Auto {
                if let Negotiated::Compress(_) = self.compression {
                    let mode = auto_level(round_trip, &self.compression_thresholds);
                    self.compression = Negotiated::Compress(mode);
                    self.connection.set_compression(mode.as_str());
                    if let Some(level) = mode.level() {
                        self.connection.outbound.lock().start_compression(level);
                    }
                }
            }
        }
        if std::mem::take(&mut self.request_pool_member) {
            if let Some(solicited) = &self.solicited {
                super::dial(
                    &self.server,
                    &self.cluster,
                    solicited.url.clone(),
                    solicited.configured,
                    DialTarget::PoolMember,
                );
            }
        }
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
            no_reconnect: self.no_reconnect,
        };
        if let (Some(role), Some(id)) = (&self.role, &self.remote_id) {
            if let Some(unregistered) = self.cluster.unregister(&self.connection, id, role) {
                // A solicited route dials its own URL again; an accepted one the URL its
                // server's routes inherited.
                outcome.retry = self.solicited.is_some() || unregistered.retry_url.is_some();
                outcome.retry_url = unregistered.retry_url;
                if unregistered.last {
                    self.server.connect_urls_changed();
                }
            }
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
