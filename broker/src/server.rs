//! The server: binds listeners, owns accounts and connections, and drives the lifecycle
//! (ready, reload, lame duck, shutdown).
//!
//! Contract: `Server::start` binds everything or fails with the reason, writes the pid and
//! ports files, and returns a `RunningServer` whose `wait` resolves after shutdown. Every task
//! the server spawns is tracked and stops when the server's shutdown token fires; shutdown
//! closes listeners, then connections (flushing what they have queued), then removes the files
//! it wrote. Lock order: `options` → `connections` → a connection's locks → an account's index.
//! The transport settings (`client_security`, `websocket`) are leaves: their `Arc` is cloned
//! out and the lock released at once.
//!
//! Client listeners (`accept`): the NATS port and, with a `websocket { }` block, the WebSocket
//! port. Accept loops only admit (connection id, `max_connections`); TLS handshakes and
//! WebSocket upgrades run in each connection's own task, bounded by their timeouts.

mod accept;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::{Mutex, RwLock};
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::account::{Account, GLOBAL_ACCOUNT, SYSTEM_ACCOUNT};
use crate::auth::{AuthError, AuthenticatedUser, Authenticator, Credentials};
use crate::cluster::info::{RouteInfo, ROUTE_PROTOCOL};
use crate::cluster::{self, Cluster};
use crate::connection::{unix_millis, CloseReason, Connection, ConnectionKind};
use crate::identity;
use crate::logging;
use crate::monitoring;
use crate::options::{Listen, ServerOptions};
use crate::protocol::info::ServerInfo;
use crate::protocol::ConnectOptions;
use crate::transport::{ClientSecurity, ServerTls, TlsError, WebSocketError, WebSocketSettings};

/// The NATS server version whose client protocol Tern speaks; clients enable features by it.
pub const PROTOCOL_VERSION: &str = "2.10.0";
/// Tern's own version.
pub const TERN_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Why the server could not start or reload.
#[derive(Debug, Error)]
pub enum ServerError {
    #[error("cannot listen for {what} on {address}: {source}")]
    Bind {
        what: &'static str,
        address: String,
        source: std::io::Error,
    },
    #[error("cannot write {what} {path}: {source}")]
    WriteFile {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} TLS: {message}")]
    Tls { what: &'static str, message: String },
    #[error("config reload not supported for {option}: old={old}, new={new}")]
    ReloadNotSupported {
        option: &'static str,
        old: String,
        new: String,
    },
    #[error(transparent)]
    WebSocket(#[from] WebSocketError),
    /// An option Tern parses but does not apply yet, where ignoring it would weaken security.
    #[error("{option} is not supported yet: {reason}")]
    Unsupported {
        option: &'static str,
        reason: &'static str,
    },
}

/// Server-wide counters, updated once per read batch rather than per message.
#[derive(Debug, Default)]
pub struct ServerStatistics {
    pub in_messages: AtomicU64,
    pub in_bytes: AtomicU64,
    pub out_messages: AtomicU64,
    pub out_bytes: AtomicU64,
    pub slow_consumers: AtomicU64,
    pub total_connections: AtomicU64,
}

impl ServerStatistics {
    pub fn count_batch(&self, in_messages: u64, in_bytes: u64, out_messages: u64, out_bytes: u64) {
        if in_messages > 0 {
            self.in_messages.fetch_add(in_messages, Ordering::Relaxed);
            self.in_bytes.fetch_add(in_bytes, Ordering::Relaxed);
        }
        if out_messages > 0 {
            self.out_messages.fetch_add(out_messages, Ordering::Relaxed);
            self.out_bytes.fetch_add(out_bytes, Ordering::Relaxed);
        }
    }
}

/// What `/connz?state=closed` reports about a connection that is gone.
#[derive(Debug, Clone)]
pub struct ClosedConnection {
    pub id: u64,
    pub kind: ConnectionKind,
    pub remote_address: SocketAddr,
    pub started: SystemTime,
    pub stopped: SystemTime,
    pub last_activity_millis: u64,
    pub reason: CloseReason,
    pub websocket: bool,
    pub tls: Option<crate::transport::TlsDetails>,
    pub metadata: crate::connection::ClientMetadata,
    pub in_messages: u64,
    pub in_bytes: u64,
    pub out_messages: u64,
    pub out_bytes: u64,
    pub round_trip_nanos: u64,
    pub subjects: Vec<String>,
}

/// Addresses the server actually bound (ports from the OS are known only after binding).
#[derive(Debug, Clone, Copy)]
pub struct BoundAddresses {
    pub client: SocketAddr,
    pub monitoring: Option<SocketAddr>,
    pub websocket: Option<SocketAddr>,
}

#[derive(Debug)]
pub struct Server {
    options: RwLock<Arc<ServerOptions>>,
    authenticator: RwLock<Arc<Authenticator>>,
    /// WebSocket clients' authenticator when the `websocket {}` block overrides authentication.
    websocket_authenticator: RwLock<Option<Arc<Authenticator>>>,
    reloads: watch::Sender<u64>,
    pub server_id: String,
    pub started: SystemTime,
    pub config_load_time: Mutex<SystemTime>,
    /// `sha256:<hex>` of the config file as last loaded, for `/varz` (empty without a file).
    pub config_digest: Mutex<String>,
    global_account: Arc<Account>,
    accounts: RwLock<HashMap<String, Arc<Account>>>,
    connections: Mutex<HashMap<u64, Arc<Connection>>>,
    closed_connections: Mutex<VecDeque<ClosedConnection>>,
    next_connection_id: AtomicU64,
    pub statistics: ServerStatistics,
    shutdown: CancellationToken,
    accepting: CancellationToken,
    lame_duck: AtomicBool,
    tasks: TaskTracker,
    addresses: Mutex<Option<BoundAddresses>>,
    /// TLS and `allow_non_tls` of the NATS client port, as of the last start or reload.
    client_security: RwLock<Arc<ClientSecurity>>,
    /// The WebSocket listener's settings, when it is configured.
    websocket: RwLock<Option<Arc<WebSocketSettings>>>,
    /// Routes to the other servers, when a cluster is configured.
    cluster: Option<Arc<Cluster>>,
    /// The server's own connection, which owns import subscriptions.
    internal: Arc<Connection>,
    /// The installed import subscriptions (replaced on reload).
    imports: Mutex<Vec<crate::imports::ImportSubscription>>,
    /// Open connections per user with a `max_connections`.
    user_connections: crate::limits::UserConnections,
    /// New connections per IP address (`connection_rate_per_ip`), for the accept loops.
    pub(super) connection_rates: Mutex<crate::limits::ConnectionRateLimiter>,
    /// Each exporting account's response router, kept across reloads.
    response_routers: Mutex<HashMap<String, Arc<crate::imports::ResponseRouter>>>,
}

impl Server {
    pub fn new(options: ServerOptions) -> Arc<Self> {
        let digest = config_digest(options.config_file.as_deref());
        let global_account = Arc::new(Account::new(GLOBAL_ACCOUNT));
        let system_name = options
            .system_account
            .clone()
            .unwrap_or_else(|| SYSTEM_ACCOUNT.to_string());
        let mut accounts = HashMap::new();
        accounts.insert(GLOBAL_ACCOUNT.to_string(), Arc::clone(&global_account));
        accounts.insert(
            system_name.clone(),
            Arc::new(Account::new(system_name.clone())),
        );
        for name in &options.accounts {
            accounts
                .entry(name.clone())
                .or_insert_with(|| Arc::new(Account::new(name.clone())));
        }
        apply_account_limits(&accounts, &options);
        let shutdown = CancellationToken::new();
        let accepting = shutdown.child_token();
        let cluster = options
            .cluster
            .clone()
            .map(|cluster| Arc::new(Cluster::new(cluster, &system_name)));
        let now = SystemTime::now();
        let internal = Arc::new(Connection::new(
            0,
            ConnectionKind::Internal,
            std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            options.max_pending,
            &shutdown,
        ));
        let imported = options.clone();
        let server = Arc::new(Self {
            authenticator: RwLock::new(Arc::new(Authenticator::from_options(&options))),
            websocket_authenticator: RwLock::new(
                Authenticator::for_websocket(&options).map(Arc::new),
            ),
            options: RwLock::new(Arc::new(options)),
            reloads: watch::channel(0).0,
            server_id: identity::new_server_id(),
            started: now,
            config_load_time: Mutex::new(now),
            config_digest: Mutex::new(digest),
            global_account,
            accounts: RwLock::new(accounts),
            connections: Mutex::new(HashMap::new()),
            closed_connections: Mutex::new(VecDeque::new()),
            next_connection_id: AtomicU64::new(0),
            statistics: ServerStatistics::default(),
            shutdown,
            accepting,
            lame_duck: AtomicBool::new(false),
            tasks: TaskTracker::new(),
            addresses: Mutex::new(None),
            client_security: RwLock::new(Arc::new(ClientSecurity::default())),
            websocket: RwLock::new(None),
            user_connections: crate::limits::UserConnections::default(),
            connection_rates: Mutex::new(crate::limits::ConnectionRateLimiter::default()),
            cluster,
            internal,
            imports: Mutex::new(Vec::new()),
            response_routers: Mutex::new(HashMap::new()),
        });
        server.install_imports(&imported);
        server
    }

    /// Replaces the import subscriptions with those `options` asks for.
    fn install_imports(&self, options: &ServerOptions) {
        let mut installed = self.imports.lock();
        for old in installed.drain(..) {
            if old.account.unsubscribe_one(&old.subscription) && old.local_interest {
                self.change_interest(&old.account, &old.subscription, -1);
            }
        }
        let fresh = crate::imports::subscriptions(
            options,
            |name| self.account(name.as_bytes()),
            &mut self.response_routers.lock(),
            &self.internal,
        );
        for import in &fresh {
            match import.account.subscribe(&import.subscription) {
                Ok(()) if import.local_interest => {
                    self.change_interest(&import.account, &import.subscription, 1);
                }
                Ok(()) => {}
                Err(error) => logging::error(format_args!(
                    "Could not install an import in account {:?}: {error}",
                    import.account.name
                )),
            }
        }
        *installed = fresh;
    }

    pub fn options(&self) -> Arc<ServerOptions> {
        Arc::clone(&self.options.read())
    }

    /// Fires after every successful reload.
    pub fn reloads(&self) -> watch::Receiver<u64> {
        self.reloads.subscribe()
    }

    pub fn server_name(&self) -> String {
        self.options
            .read()
            .server_name
            .clone()
            .unwrap_or_else(|| self.server_id.clone())
    }

    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.as_ref()
    }

    /// The tracker every server task is spawned on.
    pub fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }

    pub fn next_connection_id(&self) -> u64 {
        self.next_connection_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The account with this name, if it exists.
    pub fn account(&self, name: &[u8]) -> Option<Arc<Account>> {
        let name = std::str::from_utf8(name).ok()?;
        self.accounts.read().get(name).cloned()
    }

    /// Registers a client's subscription in its account and tells the routes.
    pub fn subscribe_local(
        &self,
        account: &Account,
        subscription: &Arc<crate::subscription::Subscription>,
    ) -> Result<(), crate::subject::SubjectError> {
        account.subscribe(subscription)?;
        self.change_interest(account, subscription, 1);
        Ok(())
    }

    /// Removes clients' subscriptions from their account and tells the routes.
    pub fn unsubscribe_local(
        &self,
        account: &Account,
        subscriptions: &[Arc<crate::subscription::Subscription>],
    ) {
        for subscription in subscriptions {
            if account.unsubscribe_one(subscription) {
                self.change_interest(account, subscription, -1);
            }
        }
    }

    /// Subscriptions that reached their auto-unsubscribe limit, of any connection kind.
    pub fn expire_subscriptions(&self, expired: &[Arc<crate::subscription::Subscription>]) {
        for subscription in expired {
            subscription.connection.remove_subscription(subscription);
            // A client's subscriptions live in the account it is bound to.
            let bound = subscription.connection.metadata.lock().account.clone();
            let account = self
                .account(bound.as_bytes())
                .unwrap_or_else(|| self.global_account());
            if subscription.connection.kind == ConnectionKind::Client {
                self.unsubscribe_local(&account, std::slice::from_ref(subscription));
            } else {
                account.unsubscribe([subscription]);
            }
        }
    }

    fn change_interest(
        &self,
        account: &Account,
        subscription: &crate::subscription::Subscription,
        delta: i32,
    ) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        account.change_local_interest(subscription, delta, |key, change| {
            cluster.announce_interest(&account.name, key, change);
        });
    }

    /// INFO for a route connection; `local_address` is where the peer reached this server.
    pub fn route_info(&self, cluster: &Cluster, local_address: Option<SocketAddr>) -> RouteInfo {
        let options = self.options();
        let cluster_options = cluster.options();
        let listen = cluster.listen_address();
        let (host, port, ip) = match &cluster_options.advertise {
            Some(advertise) => {
                let (host, port) = advertise
                    .rsplit_once(':')
                    .and_then(|(host, port)| Some((host.to_string(), port.parse().ok()?)))
                    .unwrap_or_else(|| {
                        (
                            advertise.clone(),
                            listen.map_or(0, |address| address.port()),
                        )
                    });
                (host.clone(), port, format!("nats-route://{host}:{port}/"))
            }
            None => (
                cluster_options.listen.host.clone(),
                listen.map_or(0, |address| address.port()),
                String::new(),
            ),
        };
        let reached_at = local_address.map(|address| address.ip());
        let (connect_urls, ws_connect_urls) = if cluster_options.no_advertise {
            (Vec::new(), Vec::new())
        } else {
            (
                vec![self.own_client_url(&options, reached_at)],
                self.own_websocket_url(&options, reached_at)
                    .into_iter()
                    .collect(),
            )
        };
        RouteInfo {
            server_id: self.server_id.clone(),
            server_name: self.server_name(),
            version: PROTOCOL_VERSION.to_string(),
            proto: ROUTE_PROTOCOL,
            go: format!("tern {TERN_VERSION}"),
            host,
            port,
            headers: !options.no_header_support,
            max_payload: options.max_payload,
            jetstream: false,
            ip,
            auth_required: cluster_options.user.is_some(),
            tls_required: cluster.tls_required(),
            cluster: cluster.name(),
            cluster_dynamic: cluster.is_dynamic(),
            connect_urls,
            ws_connect_urls,
            ldm: self.is_lame_duck(),
            gateway: String::new(),
            route_account: String::new(),
            route_pool_size: if cluster_options.pools() {
                cluster_options.pool_size
            } else {
                0
            },
            route_pool_idx: 0,
            compression: String::new(),
        }
    }

    /// This server's client address as other servers and clients should dial it; an
    /// unspecified listen host is replaced by the address a peer reached us at.
    fn own_client_url(
        &self,
        options: &ServerOptions,
        reached_at: Option<std::net::IpAddr>,
    ) -> String {
        let (host, port) = self.advertised_client_address(options);
        if options.client_advertise.is_none() {
            let unspecified = host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|address| address.is_unspecified());
            if unspecified {
                if let Some(address) = reached_at {
                    return SocketAddr::new(address, port).to_string();
                }
            }
        }
        if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        }
    }

    /// This server's WebSocket address as clients should dial it (`advertise`, else the
    /// listener, an unspecified host replaced by the address a peer reached us at); `None`
    /// without a WebSocket listener.
    fn own_websocket_url(
        &self,
        options: &ServerOptions,
        reached_at: Option<std::net::IpAddr>,
    ) -> Option<String> {
        let websocket = options.websocket.as_ref()?;
        let port = self.addresses()?.websocket?.port();
        if let Some(advertise) = &websocket.advertise {
            return Some(if advertise.contains(':') {
                advertise.clone()
            } else {
                format!("{advertise}:{port}")
            });
        }
        let host = &websocket.listen.host;
        let unspecified = host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_unspecified());
        Some(match reached_at {
            Some(address) if unspecified => SocketAddr::new(address, port).to_string(),
            _ if host.contains(':') => format!("[{host}]:{port}"),
            _ => format!("{host}:{port}"),
        })
    }

    /// Client URLs of the whole cluster for the client INFO (empty without a cluster).
    pub fn client_connect_urls(
        &self,
        options: &ServerOptions,
        reached_at: Option<std::net::IpAddr>,
        websocket: bool,
    ) -> Vec<String> {
        let Some(cluster) = &self.cluster else {
            return Vec::new();
        };
        if cluster.options().no_advertise {
            return Vec::new();
        }
        let mut urls = Vec::new();
        if !self.is_lame_duck() {
            let own = if websocket {
                self.own_websocket_url(options, reached_at)
            } else {
                Some(self.own_client_url(options, reached_at))
            };
            urls.extend(own);
        }
        for url in cluster.remote_connect_urls(websocket) {
            if !urls.contains(&url) {
                urls.push(url);
            }
        }
        urls
    }

    /// The cluster's client URLs changed: clients that take asynchronous INFO hear of it.
    pub fn connect_urls_changed(&self) {
        for connection in self.connections() {
            if connection.accepts_async_info() && !connection.is_closing() {
                let info = self.client_info(&connection);
                connection.send_control(&info.to_protocol_line());
            }
        }
    }

    pub fn global_account(&self) -> Arc<Account> {
        Arc::clone(&self.global_account)
    }

    pub fn accounts(&self) -> Vec<Arc<Account>> {
        let mut accounts: Vec<_> = self.accounts.read().values().cloned().collect();
        accounts.sort_by(|left, right| left.name.cmp(&right.name));
        accounts
    }

    pub fn system_account_name(&self) -> String {
        self.options
            .read()
            .system_account
            .clone()
            .unwrap_or_else(|| SYSTEM_ACCOUNT.to_string())
    }

    pub fn addresses(&self) -> Option<BoundAddresses> {
        *self.addresses.lock()
    }

    pub fn is_lame_duck(&self) -> bool {
        self.lame_duck.load(Ordering::Acquire)
    }

    pub fn connections(&self) -> Vec<Arc<Connection>> {
        let mut connections: Vec<_> = self.connections.lock().values().cloned().collect();
        connections.sort_by_key(|connection| connection.id);
        connections
    }

    /// Open connections, without copying the registry.
    pub fn connection_count(&self) -> usize {
        self.connections.lock().len()
    }

    pub fn closed_connections(&self) -> Vec<ClosedConnection> {
        self.closed_connections.lock().iter().cloned().collect()
    }

    /// INFO for one client connection. A WebSocket client is told about the WebSocket
    /// listener (its address, whether it is `wss://`), and its `connect_urls` are the
    /// cluster's WebSocket URLs (learnt from routes' `ws_connect_urls`), never NATS ports it
    /// could not use; as nats-server does.
    pub fn client_info(&self, connection: &Connection) -> ServerInfo {
        let options = self.options();
        let (host, port) = self.advertised_client_address(&options);
        let mut info = ServerInfo {
            server_id: self.server_id.clone(),
            server_name: self.server_name(),
            version: PROTOCOL_VERSION.to_string(),
            proto: 1,
            go: format!("tern {TERN_VERSION}"),
            host,
            port,
            headers: !options.no_header_support,
            max_payload: options.max_payload,
            // nats-server: a WebSocket override makes authentication required there.
            auth_required: (self.authenticator().is_required() && options.no_auth_user.is_none())
                || (connection.websocket && self.websocket_authenticator.read().is_some()),
            tls_required: false,
            tls_verify: false,
            tls_available: false,
            client_id: connection.id,
            client_ip: connection.remote_address.ip().to_string(),
            nonce: connection.nonce.clone().unwrap_or_default(),
            cluster: self
                .cluster
                .as_ref()
                .map(|cluster| cluster.name())
                .unwrap_or_default(),
            connect_urls: self.client_connect_urls(
                &options,
                connection.local_address.map(|address| address.ip()),
                connection.websocket,
            ),
            ldm: self.is_lame_duck(),
        };
        if !connection.websocket {
            self.client_security().apply_to(&mut info);
            return info;
        }
        let websocket_tls = self
            .websocket_settings()
            .is_some_and(|settings| settings.is_tls());
        info.tls_required = websocket_tls;
        info.tls_available = websocket_tls;
        info.tls_verify = false;
        if let (Some(websocket), Some(address)) = (
            &options.websocket,
            self.addresses().and_then(|addresses| addresses.websocket),
        ) {
            info.host = websocket.listen.host.clone();
            info.port = address.port();
        }
        info
    }

    /// TLS and `allow_non_tls` of the NATS client port, as of the last start or reload.
    pub fn client_security(&self) -> Arc<ClientSecurity> {
        Arc::clone(&self.client_security.read())
    }

    /// The WebSocket listener's settings, when one is configured.
    pub fn websocket_settings(&self) -> Option<Arc<WebSocketSettings>> {
        self.websocket.read().clone()
    }

    /// Host and port clients are told to use: `client_advertise`, else the listener.
    pub fn advertised_client_address(&self, options: &ServerOptions) -> (String, u16) {
        if let Some(advertise) = &options.client_advertise {
            if let Some((host, port)) = advertise.rsplit_once(':') {
                if let Ok(port) = port.parse() {
                    return (host.to_string(), port);
                }
            }
            return (advertise.clone(), self.client_port());
        }
        (options.listen.host.clone(), self.client_port())
    }

    fn client_port(&self) -> u16 {
        self.addresses()
            .map_or(0, |addresses| addresses.client.port())
    }

    /// The authenticator in force (rebuilt on reload).
    pub fn authenticator(&self) -> Arc<Authenticator> {
        Arc::clone(&self.authenticator.read())
    }

    /// The authenticator of a client of the NATS port or (`websocket`) of the WebSocket port.
    pub fn authenticator_for(&self, websocket: bool) -> Arc<Authenticator> {
        if websocket {
            if let Some(authenticator) = self.websocket_authenticator.read().as_ref() {
                return Arc::clone(authenticator);
            }
        }
        self.authenticator()
    }

    /// Checks a connection's CONNECT credentials (a WebSocket client's completed by its
    /// cookies) against the authorization in force for its port; the nonce is the one its INFO
    /// carried. A bcrypt check runs off the async workers.
    /// Counts a connection of `user` when the user has a connection limit; `Err` when the
    /// user already has that many open.
    pub fn claim_user_connection(
        &self,
        user: &crate::auth::AuthenticatedUser,
    ) -> Result<Option<crate::limits::UserConnectionSlot>, crate::limits::LimitExceeded> {
        match user.max_connections {
            None => Ok(None),
            Some(limit) => self
                .user_connections
                .claim(&user.name, limit)
                .map(Some)
                .ok_or(crate::limits::LimitExceeded::UserConnections),
        }
    }

    pub fn authenticate(
        &self,
        connection: &Connection,
        connect: &ConnectOptions,
    ) -> Result<AuthenticatedUser, AuthError> {
        let nonce = connection.nonce.as_deref();
        let authenticator = self.authenticator_for(connection.websocket);
        let mut credentials =
            Credentials::from(connect).with_cookies(connection.cookie_credentials());
        credentials.certificate = connection.certificate_identity().cloned();
        let check = || authenticator.authenticate(&credentials, nonce);
        let multi_threaded = tokio::runtime::Handle::try_current().is_ok_and(|handle| {
            handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
        });
        if authenticator.may_be_slow() && multi_threaded {
            tokio::task::block_in_place(check)
        } else {
            check()
        }
    }

    /// Binds listeners and starts serving.
    pub async fn start(self: &Arc<Self>) -> Result<RunningServer, ServerError> {
        let options = self.options();
        // Certificates are read before any port opens, so a bad file fails the start.
        *self.client_security.write() = Arc::new(client_security(&options)?);
        *self.websocket.write() = websocket_settings(&options)?;
        let client_listener = bind(&options.listen, "client connections").await?;
        let client_address = local_address(&client_listener, &options.listen)?;
        let monitoring_listener = match &options.monitoring {
            Some(listen) => Some(bind(listen, "monitoring").await?),
            None => None,
        };
        let monitoring_address = match (&monitoring_listener, &options.monitoring) {
            (Some(listener), Some(listen)) => Some(local_address(listener, listen)?),
            _ => None,
        };
        let websocket_listener = match &options.websocket {
            Some(websocket) => {
                let listener = bind(&websocket.listen, "websocket clients").await?;
                let address = local_address(&listener, &websocket.listen)?;
                Some((listener, address))
            }
            None => None,
        };
        *self.addresses.lock() = Some(BoundAddresses {
            client: client_address,
            monitoring: monitoring_address,
            websocket: websocket_listener.as_ref().map(|(_, address)| *address),
        });
        self.log_startup(&options);
        if let (Some(listener), Some(address)) = (monitoring_listener, monitoring_address) {
            logging::notice(format_args!(
                "Starting http monitor on {}",
                display_address(address)
            ));
            let server = Arc::clone(self);
            let stop = self.shutdown.clone();
            self.tasks.spawn(monitoring::serve(server, listener, stop));
        }
        if let (Some((_, address)), Some(websocket)) = (&websocket_listener, &options.websocket) {
            let tls = self
                .websocket_settings()
                .is_some_and(|settings| settings.is_tls());
            logging::notice(format_args!(
                "Listening for websocket clients on {}://{}:{}",
                if tls { "wss" } else { "ws" },
                websocket.listen.host,
                address.port()
            ));
            if !tls {
                logging::warning(format_args!(
                    "Websocket not configured with TLS. DO NOT USE IN PRODUCTION!"
                ));
            }
            if websocket.compression {
                logging::warning(format_args!(
                    "Websocket compression is not supported: clients fall back to uncompressed frames"
                ));
            }
        }
        logging::notice(format_args!(
            "Listening for client connections on {}",
            display_address(client_address)
        ));
        if let Some(tls) = &self.client_security().tls {
            logging::notice(format_args!("TLS required for client connections"));
            if tls.handshake_first() == crate::transport::HandshakeFirst::On {
                logging::warning(format_args!(
                    "Clients that are not using \"TLS Handshake First\" option will fail to connect"
                ));
            }
        }
        if let (Some(cluster), Some(cluster_options)) = (&self.cluster, &options.cluster) {
            cluster.load_tls().map_err(|error| ServerError::Tls {
                what: "route",
                message: error.to_string(),
            })?;
            let listener =
                cluster::bind(cluster_options)
                    .await
                    .map_err(|source| ServerError::Bind {
                        what: "route connections",
                        address: format!(
                            "{}:{}",
                            cluster_options.listen.host,
                            cluster_options.listen.port.unwrap_or(0)
                        ),
                        source,
                    })?;
            if cluster.is_dynamic() {
                logging::warning(format_args!(
                    "Cluster name was dynamically generated, consider setting one"
                ));
            }
            logging::notice(format_args!("Cluster name is {}", cluster.name()));
            if let Ok(address) = listener.local_addr() {
                logging::notice(format_args!("Listening for route connections on {address}"));
            }
            cluster::start(self, cluster, listener);
        }
        let files = self.write_process_files(&options)?;
        let server = Arc::clone(self);
        self.tasks
            .spawn(server.accept_clients(client_listener, accept::ClientListener::Nats));
        if let Some((listener, _)) = websocket_listener {
            let server = Arc::clone(self);
            self.tasks
                .spawn(server.accept_clients(listener, accept::ClientListener::WebSocket));
        }
        logging::notice(format_args!("Server is ready"));
        Ok(RunningServer {
            server: Arc::clone(self),
            files,
        })
    }

    fn log_startup(&self, options: &ServerOptions) {
        logging::notice(format_args!("Starting tern {TERN_VERSION}"));
        logging::notice(format_args!(
            "  Version:  {TERN_VERSION} (NATS protocol {PROTOCOL_VERSION})"
        ));
        logging::notice(format_args!("  Name:     {}", self.server_name()));
        logging::notice(format_args!("  ID:       {}", self.server_id));
        if let Some(file) = &options.config_file {
            logging::notice(format_args!("Using configuration file: {}", file.display()));
        }
        for warning in &options.warnings {
            logging::warning(format_args!("{}", warning.message));
        }
    }

    fn write_process_files(&self, options: &ServerOptions) -> Result<Vec<PathBuf>, ServerError> {
        let mut files = Vec::new();
        if let Some(path) = &options.pid_file {
            std::fs::write(path, std::process::id().to_string()).map_err(|source| {
                ServerError::WriteFile {
                    what: "pid file",
                    path: path.clone(),
                    source,
                }
            })?;
            files.push(path.clone());
        }
        if let Some(directory) = &options.ports_file_dir {
            let path = directory.join(ports_file_name());
            let json = self.ports_json();
            std::fs::write(&path, json).map_err(|source| ServerError::WriteFile {
                what: "ports file",
                path: path.clone(),
                source,
            })?;
            files.push(path);
        }
        Ok(files)
    }

    /// The ports file content, in nats-server's shape.
    pub fn ports_json(&self) -> String {
        let Some(addresses) = self.addresses() else {
            return "{}".to_string();
        };
        let mut ports = serde_json::Map::new();
        let client_scheme = if self.client_security().tls.is_some() {
            "tls"
        } else {
            "nats"
        };
        ports.insert(
            "nats".into(),
            serde_json::json!([format!(
                "{client_scheme}://{}",
                reachable_address(addresses.client)
            )]),
        );
        if let Some(address) = self
            .cluster
            .as_ref()
            .and_then(|cluster| cluster.listen_address())
        {
            ports.insert(
                "cluster".into(),
                serde_json::json!([format!("nats://{}", reachable_address(address))]),
            );
        }
        if let Some(monitoring) = addresses.monitoring {
            ports.insert(
                "monitoring".into(),
                serde_json::json!([format!("http://{}", reachable_address(monitoring))]),
            );
        }
        if let Some(websocket) = addresses.websocket {
            let scheme = match self.websocket_settings() {
                Some(settings) if settings.is_tls() => "wss",
                _ => "ws",
            };
            ports.insert(
                "websocket".into(),
                serde_json::json!([format!("{scheme}://{}", reachable_address(websocket))]),
            );
        }
        serde_json::Value::Object(ports).to_string()
    }

    /// Called by a connection's task when it has closed.
    pub fn connection_closed(
        &self,
        connection: &Arc<Connection>,
        subscriptions: &[Arc<crate::subscription::Subscription>],
    ) {
        self.connections.lock().remove(&connection.id);
        let account_name = connection.metadata.lock().account.clone();
        self.account(account_name.as_bytes())
            .unwrap_or_else(|| self.global_account())
            .client_connections
            .fetch_sub(1, Ordering::Relaxed);
        let reason = connection
            .close_reason()
            .unwrap_or(CloseReason::ServerShutdown);
        let address = connection.remote_address;
        if reason.is_slow_consumer() {
            self.statistics
                .slow_consumers
                .fetch_add(1, Ordering::Relaxed);
            let detail = match reason {
                CloseReason::SlowConsumerWriteDeadline => format!(
                    "WriteDeadline of {:?} exceeded",
                    self.options().write_deadline
                ),
                _ => format!("MaxPending of {} exceeded", self.options().max_pending),
            };
            logging::notice(format_args!(
                "{address} - cid:{} - Slow Consumer Detected: {detail}",
                connection.id
            ));
        }
        logging::debug(format_args!(
            "{address} - cid:{} - Client connection closed: {}",
            connection.id,
            reason.as_str()
        ));
        let statistics = &connection.statistics;
        let record = ClosedConnection {
            id: connection.id,
            kind: connection.kind,
            remote_address: address,
            started: connection.started,
            stopped: SystemTime::now(),
            last_activity_millis: connection.last_activity_millis.load(Ordering::Relaxed),
            reason,
            websocket: connection.websocket,
            tls: connection.tls_details(),
            metadata: connection.metadata.lock().clone(),
            in_messages: statistics.in_messages.load(Ordering::Relaxed),
            in_bytes: statistics.in_bytes.load(Ordering::Relaxed),
            out_messages: statistics.out_messages.load(Ordering::Relaxed),
            out_bytes: statistics.out_bytes.load(Ordering::Relaxed),
            round_trip_nanos: connection.round_trip_nanos.load(Ordering::Relaxed),
            subjects: subscriptions
                .iter()
                .map(|subscription| String::from_utf8_lossy(&subscription.subject).into_owned())
                .collect(),
        };
        let capacity = self.options().max_closed_clients;
        let mut closed = self.closed_connections.lock();
        if capacity > 0 {
            while closed.len() >= capacity {
                closed.pop_front();
            }
            closed.push_back(record);
        }
    }

    /// Applies reloadable options; anything else refuses the whole reload.
    ///
    /// TLS material is read again from the files (even when their paths are unchanged), so a
    /// renewed certificate applies to new connections; established ones keep theirs. The
    /// `websocket` block may change only in its `tls` (nats-server's rule).
    pub fn reload(&self, new_options: ServerOptions) -> Result<(), ServerError> {
        let current = self.options();
        check_unchanged("listen", &current.listen, &new_options.listen)?;
        check_unchanged("http", &current.monitoring, &new_options.monitoring)?;
        let without_tls = |websocket: &Option<crate::options::WebSocketOptions>| {
            websocket.clone().map(|mut websocket| {
                websocket.tls = None;
                websocket
            })
        };
        check_unchanged(
            "websocket",
            &without_tls(&current.websocket),
            &without_tls(&new_options.websocket),
        )?;
        // Everything that can fail is built before anything changes.
        let security = Arc::new(client_security(&new_options)?);
        let websocket = websocket_settings(&new_options)?;
        *self.client_security.write() = security;
        *self.websocket.write() = websocket;
        if current.cluster != new_options.cluster {
            // Routes keep the settings they started with; say so rather than pretend.
            logging::warning(format_args!(
                "Reload: changes to the cluster block (routes, pool_size, accounts, compression, ...) take effect after a restart"
            ));
        }
        if let Err(error) = logging::configure(&new_options.logging) {
            logging::error(format_args!("Reload: cannot open log file: {error}"));
        }
        let max_pending = new_options.max_pending;
        *self.authenticator.write() = Arc::new(Authenticator::from_options(&new_options));
        *self.websocket_authenticator.write() =
            Authenticator::for_websocket(&new_options).map(Arc::new);
        {
            // Accounts are added by a reload, never removed: connections bound to one whose
            // users went away fail re-authentication and close.
            let mut accounts = self.accounts.write();
            for name in &new_options.accounts {
                accounts
                    .entry(name.clone())
                    .or_insert_with(|| Arc::new(Account::new(name.clone())));
            }
            apply_account_limits(&accounts, &new_options);
        }
        self.install_imports(&new_options);
        *self.options.write() = Arc::new(new_options);
        *self.config_load_time.lock() = SystemTime::now();
        *self.config_digest.lock() = config_digest(self.options().config_file.as_deref());
        for connection in self.connections() {
            connection.outbound.lock().set_max_pending(max_pending);
        }
        self.reloads.send_modify(|generation| *generation += 1);
        logging::notice(format_args!("Reloaded server configuration"));
        Ok(())
    }

    /// Lame duck mode: stop accepting, tell clients, then close them spread over the
    /// lame duck duration and shut down.
    pub async fn enter_lame_duck(self: &Arc<Self>) {
        if self.lame_duck.swap(true, Ordering::AcqRel) {
            return;
        }
        let options = self.options();
        logging::notice(format_args!(
            "Entering lame duck mode, stop accepting new clients"
        ));
        self.accepting.cancel();
        if let Some(cluster) = &self.cluster {
            cluster.announce_lame_duck(&self.route_info(cluster, None));
        }
        for connection in self.connections() {
            if connection.accepts_async_info() {
                let mut info = self.client_info(&connection);
                info.ldm = true;
                connection.send_control(&info.to_protocol_line());
            }
        }
        if self.connection_count() == 0 {
            logging::notice(format_args!("No clients: shutting down now"));
            self.shutdown.cancel();
            return;
        }
        let grace = options.lame_duck_grace_period;
        logging::notice(format_args!("Waiting {grace:?} before closing clients"));
        tokio::select! {
            () = self.shutdown.cancelled() => return,
            () = tokio::time::sleep(grace) => {}
        }
        let spread = options
            .lame_duck_duration
            .checked_sub(grace)
            .filter(|spread| !spread.is_zero())
            .unwrap_or(Duration::from_secs(1));
        let connections = self.connections();
        let count = connections.len().max(1) as u32;
        // As nats-server: spread closes evenly, but never more than a second apart, with
        // some randomness so reconnecting clients do not arrive together elsewhere.
        let pause = (spread / count).min(Duration::from_secs(1));
        logging::notice(format_args!("Closing existing clients over {spread:?}"));
        let last = connections.len().saturating_sub(1);
        for (index, connection) in connections.into_iter().enumerate() {
            connection.close(CloseReason::LameDuck);
            if index == last {
                break;
            }
            let jittered = pause.mul_f64(0.5 + rand::random::<f64>() / 2.0);
            tokio::select! {
                () = self.shutdown.cancelled() => return,
                () = tokio::time::sleep(jittered) => {}
            }
        }
        self.shutdown.cancel();
    }

    /// Starts shutdown; `RunningServer::wait` resolves when it is done.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

/// A started server; dropping it does not stop it, `shutdown` and `wait` do.
#[derive(Debug)]
pub struct RunningServer {
    pub server: Arc<Server>,
    files: Vec<PathBuf>,
}

impl RunningServer {
    /// Waits for shutdown to be requested, then for every task to finish (bounded).
    pub async fn wait(self) {
        self.server.shutdown.cancelled().await;
        logging::notice(format_args!("Initiating Shutdown..."));
        self.server.tasks.close();
        let deadline = self.server.options().write_deadline + Duration::from_secs(1);
        if tokio::time::timeout(deadline, self.server.tasks.wait())
            .await
            .is_err()
        {
            logging::warning(format_args!("Some connections did not close in time"));
        }
        for file in &self.files {
            let _ = std::fs::remove_file(file);
        }
        logging::notice(format_args!("Server Exiting.."));
    }
}

async fn bind(listen: &Listen, what: &'static str) -> Result<TcpListener, ServerError> {
    let port = listen.port.unwrap_or(0);
    TcpListener::bind((listen.host.as_str(), port))
        .await
        .map_err(|source| ServerError::Bind {
            what,
            address: format!("{}:{}", listen.host, port),
            source,
        })
}

fn local_address(listener: &TcpListener, listen: &Listen) -> Result<SocketAddr, ServerError> {
    listener.local_addr().map_err(|source| ServerError::Bind {
        what: "listener address",
        address: format!("{}:{}", listen.host, listen.port.unwrap_or(0)),
        source,
    })
}

fn display_address(address: SocketAddr) -> String {
    address.to_string()
}

/// The client port's TLS settings, reading the certificate files the options name.
fn client_security(options: &ServerOptions) -> Result<ClientSecurity, ServerError> {
    let tls = options
        .tls
        .as_ref()
        .map(ServerTls::from_options)
        .transpose()
        .map_err(|error| client_tls_error("client", &error))?;
    Ok(ClientSecurity {
        tls,
        allow_non_tls: options.allow_non_tls,
    })
}

/// The WebSocket listener's settings, reading its TLS files.
fn websocket_settings(
    options: &ServerOptions,
) -> Result<Option<Arc<WebSocketSettings>>, ServerError> {
    let Some(websocket) = &options.websocket else {
        return Ok(None);
    };
    let settings =
        WebSocketSettings::from_options(websocket, options.max_payload, options.max_control_line)
            .map_err(|error| match error {
            WebSocketError::Tls(error) => client_tls_error("websocket", &error),
            other => ServerError::WebSocket(other),
        })?;
    Ok(Some(Arc::new(settings)))
}

fn client_tls_error(what: &'static str, error: &TlsError) -> ServerError {
    ServerError::Tls {
        what,
        message: error.to_string(),
    }
}

/// An address a local client can dial: the unspecified address becomes loopback.
fn reachable_address(address: SocketAddr) -> String {
    let mut address = address;
    if address.ip().is_unspecified() {
        address.set_ip(if address.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    address.to_string()
}

/// `<executable name>_<pid>.ports`, as nats-server names it.
fn ports_file_name() -> String {
    let executable = std::env::args()
        .next()
        .and_then(|path| {
            std::path::Path::new(&path)
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "tern".to_string());
    format!("{executable}_{}.ports", std::process::id())
}

fn check_unchanged<T: PartialEq + std::fmt::Debug>(
    option: &'static str,
    old: &T,
    new: &T,
) -> Result<(), ServerError> {
    if old == new {
        return Ok(());
    }
    Err(ServerError::ReloadNotSupported {
        option,
        old: format!("{old:?}"),
        new: format!("{new:?}"),
    })
}

/// Gives every account its configured limits (and none to those without a `limits` block).
/// Connections already bound keep their place; the new limits apply to what comes next.
fn apply_account_limits(accounts: &HashMap<String, Arc<Account>>, options: &ServerOptions) {
    for (name, account) in accounts {
        account.set_limits(
            options
                .account_limits
                .get(name)
                .copied()
                .unwrap_or_default(),
        );
    }
}

/// `sha256:<hex>` of a config file's bytes, as nats-server's `/varz` reports it; empty when
/// there is no file or it cannot be read.
fn config_digest(path: Option<&std::path::Path>) -> String {
    use sha2::{Digest, Sha256};
    let Some(bytes) = path.and_then(|path| std::fs::read(path).ok()) else {
        return String::new();
    };
    let hash = Sha256::digest(&bytes);
    let hex: String = hash.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("sha256:{hex}")
}

/// Milliseconds since the epoch, for monitoring.
pub fn now_millis() -> u64 {
    unix_millis(SystemTime::now())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::options::{Authorization, TlsOptions, WebSocketOptions};

    fn local_options() -> ServerOptions {
        ServerOptions {
            listen: Listen {
                host: "127.0.0.1".to_string(),
                port: None,
            },
            ..ServerOptions::default()
        }
    }

    #[test]
    fn a_websocket_override_gets_its_own_authenticator_and_the_nats_port_keeps_its_own() {
        let with_websocket =
            |authorization: Option<Authorization>, no_auth_user: Option<&str>| ServerOptions {
                websocket: Some(WebSocketOptions {
                    no_tls: true,
                    authorization,
                    no_auth_user: no_auth_user.map(str::to_string),
                    ..WebSocketOptions::default()
                }),
                ..local_options()
            };
        // No user, token or no_auth_user of its own: WebSocket clients authenticate as others.
        assert!(Authenticator::for_websocket(&with_websocket(None, None)).is_none());
        let only_timeout = Authorization {
            timeout: Some(std::time::Duration::from_secs(3)),
            ..Authorization::default()
        };
        assert!(Authenticator::for_websocket(&with_websocket(Some(only_timeout), None)).is_none());
        // A token of its own: required over WebSocket, not on the NATS port.
        let token = Authorization {
            token: Some("secret".to_string()),
            ..Authorization::default()
        };
        let options = with_websocket(Some(token), None);
        let websocket = Authenticator::for_websocket(&options).expect("an override");
        assert!(websocket.is_required());
        assert!(!Authenticator::from_options(&options).is_required());
    }

    #[tokio::test]
    async fn start_fails_before_listening_when_a_certificate_is_missing() {
        let options = ServerOptions {
            tls: Some(TlsOptions {
                cert_file: Some(PathBuf::from("/nonexistent/server.pem")),
                key_file: Some(PathBuf::from("/nonexistent/server-key.pem")),
                ..TlsOptions::default()
            }),
            ..local_options()
        };
        let server = Server::new(options);
        let error = server.start().await.unwrap_err();
        assert!(
            error.to_string().contains("/nonexistent/server.pem"),
            "{error}"
        );
        assert!(server.addresses().is_none());
    }
}
