//! What every connection kind shares: the handle other tasks hold to deliver to it, its
//! counters, how it closes, and the writer task that drains its outbound buffer.
//!
//! Contract: a `Connection` is created by the task that accepted it and shared (`Arc`) with
//! the subject index through its subscriptions. Anyone may queue frames and call `close`; only
//! the connection's own tasks touch its socket. `close` is idempotent and the first reason
//! wins. Lock order: a connection's `outbound` lock is a leaf (nothing else is locked while it
//! is held), so publishers on any thread may take it.

pub mod outbound;
pub mod writer;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use self::outbound::Outbound;
use crate::subscription::Subscription;
use crate::transport::TlsDetails;

type SubscriptionsBySid = std::collections::HashMap<Bytes, Arc<Subscription>>;

/// Which protocol a connection speaks. Gateways and leaf nodes join later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionKind {
    Client,
    /// Another server of this cluster.
    Route,
    /// The server itself, owning import subscriptions (no socket).
    Internal,
}

impl ConnectionKind {
    /// The name `/connz` reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Client => "Client",
            Self::Route => "Router",
            Self::Internal => "Internal",
        }
    }
}

/// Why a connection closed, with nats-server's wording for `/connz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    ClientClosed,
    AuthenticationTimeout,
    AuthenticationViolation,
    SlowConsumerPendingBytes,
    SlowConsumerWriteDeadline,
    WriteError,
    ReadError,
    ParseError,
    StaleConnection,
    ProtocolViolation,
    BadClientProtocolVersion,
    MaxConnectionsExceeded,
    MaxAccountConnectionsExceeded,
    MaxUserConnectionsExceeded,
    MaxPayloadExceeded,
    MaxControlLineExceeded,
    ServerShutdown,
    NoRespondersRequiresHeaders,
    LameDuck,
    DuplicateRoute,
    ClusterNameConflict,
    DuplicateServerName,
    RouteRemoved,
    WrongPort,
    TlsHandshakeError,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientClosed => "Client Closed",
            Self::AuthenticationTimeout => "Authentication Timeout",
            Self::AuthenticationViolation => "Authentication Failure",
            Self::SlowConsumerPendingBytes => "Slow Consumer (Pending Bytes)",
            Self::SlowConsumerWriteDeadline => "Slow Consumer (Write Deadline)",
            Self::WriteError => "Write Error",
            Self::ReadError => "Read Error",
            Self::ParseError => "Parse Error",
            Self::StaleConnection => "Stale Connection",
            Self::ProtocolViolation => "Protocol Violation",
            Self::BadClientProtocolVersion => "Bad Client Protocol Version",
            Self::MaxConnectionsExceeded => "Maximum Connections Exceeded",
            Self::MaxAccountConnectionsExceeded => "Maximum Account Connections Exceeded",
            Self::MaxUserConnectionsExceeded => "Maximum User Connections Exceeded",
            Self::MaxPayloadExceeded => "Maximum Message Payload Exceeded",
            Self::MaxControlLineExceeded => "Maximum Control Line Exceeded",
            Self::ServerShutdown | Self::LameDuck => "Server Shutdown",
            Self::NoRespondersRequiresHeaders => "No Responders Requires Headers",
            Self::DuplicateRoute => "Duplicate Route",
            Self::ClusterNameConflict => "Cluster Name Conflict",
            Self::DuplicateServerName => "Duplicate Server Name",
            Self::RouteRemoved => "Route Removed",
            Self::WrongPort => "Incorrect Port",
            Self::TlsHandshakeError => "TLS Handshake Failure",
        }
    }

    /// Whether what is already queued should still be written before the socket closes.
    /// A slow consumer is cut off at once; everything else flushes (an `-ERR`, say).
    pub fn flushes_pending(self) -> bool {
        !matches!(
            self,
            Self::SlowConsumerPendingBytes
                | Self::SlowConsumerWriteDeadline
                | Self::WriteError
                | Self::ReadError
        )
    }

    pub fn is_slow_consumer(self) -> bool {
        matches!(
            self,
            Self::SlowConsumerPendingBytes | Self::SlowConsumerWriteDeadline
        )
    }
}

/// Message and byte counters of one connection, updated without locks.
#[derive(Debug, Default)]
pub struct ConnectionStatistics {
    pub in_messages: AtomicU64,
    pub in_bytes: AtomicU64,
    pub out_messages: AtomicU64,
    pub out_bytes: AtomicU64,
}

impl ConnectionStatistics {
    pub fn count_in(&self, bytes: usize) {
        self.in_messages.fetch_add(1, Ordering::Relaxed);
        self.in_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub fn count_out(&self, bytes: usize) {
        self.out_messages.fetch_add(1, Ordering::Relaxed);
        self.out_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

/// What a client said about itself, for monitoring.
#[derive(Debug, Clone, Default)]
pub struct ClientMetadata {
    pub name: String,
    pub lang: String,
    pub version: String,
    pub authorized_user: String,
    pub account: String,
}

/// What deliveries to a connection must respect, from its user's permissions: subjects it
/// may not receive (a deny list under a wider subscription), and the reply subjects it is
/// allowed to answer (`allow_responses`), recorded as requests reach it.
#[derive(Debug, Default)]
pub struct DeliveryRules {
    pub filter: Option<Arc<crate::auth::Permissions>>,
    pub responses: Option<Arc<Mutex<crate::auth::ResponseTracker>>>,
}

/// The shared handle of one connection.
#[derive(Debug)]
pub struct Connection {
    pub id: u64,
    pub kind: ConnectionKind,
    pub remote_address: SocketAddr,
    /// The local address the peer connected to (for advertising a reachable URL).
    pub local_address: Option<SocketAddr>,
    /// Whether the client came through the WebSocket listener (its INFO and `/connz` differ).
    pub websocket: bool,
    /// The negotiated TLS parameters, once a handshake completed (set once, by the session).
    tls: OnceLock<TlsDetails>,
    /// Credentials a WebSocket client sent as cookies in its upgrade request (set once).
    cookies: OnceLock<crate::transport::websocket::CookieCredentials>,
    /// The identity in the client's certificate, read when its listener maps certificates.
    certificate: OnceLock<Arc<crate::auth::certificate::CertificateIdentity>>,
    pub started: SystemTime,
    pub outbound: Mutex<Outbound>,
    /// Wakes the writer task when frames were queued.
    pub flush: Notify,
    pub statistics: ConnectionStatistics,
    supports_headers: AtomicBool,
    accepts_async_info: AtomicBool,
    close_reason: Mutex<Option<CloseReason>>,
    closing: CancellationToken,
    pub metadata: Mutex<ClientMetadata>,
    /// Milliseconds since the UNIX epoch of the last inbound activity.
    pub last_activity_millis: AtomicU64,
    /// This connection's subscriptions by sid. Holding the lock, one may take an account's
    /// index lock, never the reverse.
    subscriptions: Mutex<SubscriptionsBySid>,
    /// Round-trip time of the last server PING, in nanoseconds (0 until measured).
    pub round_trip_nanos: AtomicU64,
    /// The nonce sent in INFO for clients to sign (NKEY users), if any.
    pub nonce: Option<String>,
    has_delivery_rules: AtomicBool,
    delivery_rules: Mutex<Option<Arc<DeliveryRules>>>,
    /// A route dedicated to one account: operations on it carry no account token (set once,
    /// when the route registers).
    dedicated_account: OnceLock<Bytes>,
    /// A route's negotiated compression mode, for `/routez` (empty until negotiated).
    compression: Mutex<&'static str>,
}

impl Connection {
    pub fn new(
        id: u64,
        kind: ConnectionKind,
        remote_address: SocketAddr,
        max_pending: usize,
        server_shutdown: &CancellationToken,
    ) -> Self {
        let started = SystemTime::now();
        Self {
            nonce: None,
            has_delivery_rules: AtomicBool::new(false),
            delivery_rules: Mutex::new(None),
            id,
            kind,
            remote_address,
            local_address: None,
            websocket: false,
            tls: OnceLock::new(),
            cookies: OnceLock::new(),
            certificate: OnceLock::new(),
            started,
            outbound: Mutex::new(Outbound::new(max_pending)),
            flush: Notify::new(),
            statistics: ConnectionStatistics::default(),
            supports_headers: AtomicBool::new(false),
            accepts_async_info: AtomicBool::new(false),
            close_reason: Mutex::new(None),
            closing: server_shutdown.child_token(),
            metadata: Mutex::new(ClientMetadata::default()),
            last_activity_millis: AtomicU64::new(unix_millis(started)),
            subscriptions: Mutex::new(SubscriptionsBySid::default()),
            round_trip_nanos: AtomicU64::new(0),
            dedicated_account: OnceLock::new(),
            compression: Mutex::new(""),
        }
    }

    pub fn set_compression(&self, mode: &'static str) {
        *self.compression.lock() = mode;
    }

    /// A route's negotiated compression mode (empty for other connections).
    pub fn compression(&self) -> &'static str {
        *self.compression.lock()
    }

    /// Marks a route as dedicated to `account` (only the first call counts).
    pub fn set_dedicated_account(&self, account: Bytes) {
        let _ = self.dedicated_account.set(account);
    }

    /// The account of a dedicated route.
    pub fn dedicated_account(&self) -> Option<&Bytes> {
        self.dedicated_account.get()
    }

    /// Sets the INFO nonce (before sharing).
    pub fn with_nonce(mut self, nonce: Option<String>) -> Self {
        self.nonce = nonce;
        self
    }

    /// Replaces the delivery rules (at CONNECT and on reload).
    pub fn set_delivery_rules(&self, rules: Option<DeliveryRules>) {
        let rules = rules.filter(|rules| rules.filter.is_some() || rules.responses.is_some());
        self.has_delivery_rules
            .store(rules.is_some(), Ordering::Release);
        *self.delivery_rules.lock() = rules.map(Arc::new);
    }

    /// The delivery rules, without taking a lock for connections that have none.
    pub fn delivery_rules(&self) -> Option<Arc<DeliveryRules>> {
        if !self.has_delivery_rules.load(Ordering::Acquire) {
            return None;
        }
        self.delivery_rules.lock().clone()
    }

    /// Records the local address the peer reached (set once, before sharing).
    pub fn with_local_address(mut self, address: Option<SocketAddr>) -> Self {
        self.local_address = address;
        self
    }

    /// Marks a client of the WebSocket listener (set once, before sharing).
    pub fn with_websocket(mut self, websocket: bool) -> Self {
        self.websocket = websocket;
        self
    }

    /// Records the TLS parameters of the completed handshake; only the first call counts.
    pub fn set_tls_details(&self, details: TlsDetails) {
        let _ = self.tls.set(details);
    }

    pub fn tls_details(&self) -> Option<TlsDetails> {
        self.tls.get().copied()
    }

    pub fn set_cookie_credentials(&self, cookies: crate::transport::websocket::CookieCredentials) {
        let _ = self.cookies.set(cookies);
    }

    pub fn set_certificate_identity(
        &self,
        identity: Arc<crate::auth::certificate::CertificateIdentity>,
    ) {
        let _ = self.certificate.set(identity);
    }

    /// The identity in the client's certificate (`verify_and_map`), when it was read.
    pub fn certificate_identity(
        &self,
    ) -> Option<&Arc<crate::auth::certificate::CertificateIdentity>> {
        self.certificate.get()
    }

    /// What a WebSocket client's cookies carry, used where CONNECT lacks credentials.
    pub fn cookie_credentials(&self) -> Option<&crate::transport::websocket::CookieCredentials> {
        self.cookies.get()
    }

    pub fn supports_headers(&self) -> bool {
        self.supports_headers.load(Ordering::Relaxed)
    }

    pub fn set_supports_headers(&self, supported: bool) {
        self.supports_headers.store(supported, Ordering::Relaxed);
    }

    /// Whether the client said it accepts INFO updates at any time (protocol 1).
    pub fn accepts_async_info(&self) -> bool {
        self.accepts_async_info.load(Ordering::Relaxed)
    }

    pub fn set_accepts_async_info(&self, accepts: bool) {
        self.accepts_async_info.store(accepts, Ordering::Relaxed);
    }

    /// Queues protocol bytes and wakes the writer.
    pub fn send_control(&self, bytes: &[u8]) {
        self.outbound.lock().push_control(bytes);
        self.flush.notify_one();
    }

    /// Starts closing: the first reason is kept, the connection's tasks are told to stop.
    pub fn close(&self, reason: CloseReason) {
        {
            let mut current = self.close_reason.lock();
            if current.is_none() {
                *current = Some(reason);
            }
        }
        if !reason.flushes_pending() {
            self.outbound.lock().close();
        }
        self.closing.cancel();
        self.flush.notify_one();
    }

    pub fn close_reason(&self) -> Option<CloseReason> {
        *self.close_reason.lock()
    }

    pub fn is_closing(&self) -> bool {
        self.closing.is_cancelled()
    }

    /// Resolves once `close` was called or the server shuts down.
    pub fn closing(&self) -> &CancellationToken {
        &self.closing
    }

    pub fn pending_bytes(&self) -> usize {
        self.outbound.lock().pending_bytes()
    }

    pub fn subscription(&self, sid: &[u8]) -> Option<Arc<Subscription>> {
        self.subscriptions.lock().get(sid).cloned()
    }

    pub fn subscription_count(&self) -> usize {
        self.subscriptions.lock().len()
    }

    /// Registers a subscription under its sid unless the sid is taken; returns the one in place.
    pub fn add_subscription(&self, subscription: &Arc<Subscription>) -> Option<Arc<Subscription>> {
        let mut subscriptions = self.subscriptions.lock();
        if let Some(existing) = subscriptions.get(&subscription.sid) {
            return Some(Arc::clone(existing));
        }
        subscriptions.insert(subscription.sid.clone(), Arc::clone(subscription));
        None
    }

    /// Forgets the subscription under `sid` if it is this very one.
    pub fn remove_subscription(&self, subscription: &Arc<Subscription>) {
        let mut subscriptions = self.subscriptions.lock();
        if subscriptions
            .get(&subscription.sid)
            .is_some_and(|current| Arc::ptr_eq(current, subscription))
        {
            subscriptions.remove(&subscription.sid);
        }
    }

    /// Takes every subscription (on close; breaks the connection ↔ subscription cycle).
    pub fn take_subscriptions(&self) -> Vec<Arc<Subscription>> {
        self.subscriptions
            .lock()
            .drain()
            .map(|(_, subscription)| subscription)
            .collect()
    }

    /// A copy of the subscriptions, for monitoring.
    pub fn subscriptions_snapshot(&self) -> Vec<Arc<Subscription>> {
        self.subscriptions.lock().values().cloned().collect()
    }

    pub fn touch(&self) {
        self.last_activity_millis
            .store(unix_millis(SystemTime::now()), Ordering::Relaxed);
    }
}

pub fn unix_millis(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}
