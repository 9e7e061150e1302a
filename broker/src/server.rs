//! The server: binds listeners, owns accounts and connections, and drives the lifecycle
//! (ready, reload, lame duck, shutdown).
//!
//! Contract: `Server::start` binds everything or fails with the reason, writes the pid and
//! ports files, and returns a `RunningServer` whose `wait` resolves after shutdown. Every task
//! the server spawns is tracked and stops when the server's shutdown token fires; shutdown
//! closes listeners, then connections (flushing what they have queued), then removes the files
//! it wrote. Lock order: `options` → `connections` → a connection's locks → an account's index.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::{Mutex, RwLock};
use thiserror::Error;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::account::{Account, GLOBAL_ACCOUNT, SYSTEM_ACCOUNT};
use crate::client::run_client;
use crate::cluster::info::{RouteInfo, ROUTE_PROTOCOL};
use crate::cluster::{self, Cluster};
use crate::connection::{unix_millis, CloseReason, Connection, ConnectionKind};
use crate::identity;
use crate::logging;
use crate::monitoring;
use crate::options::{Listen, ServerOptions};
use crate::protocol::errors::text;
use crate::protocol::info::ServerInfo;
use crate::protocol::server_operations;
use crate::protocol::ConnectOptions;

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
}

#[derive(Debug)]
pub struct Server {
    options: RwLock<Arc<ServerOptions>>,
    reloads: watch::Sender<u64>,
    pub server_id: String,
    pub started: SystemTime,
    pub config_load_time: Mutex<SystemTime>,
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
    /// Routes to the other servers, when a cluster is configured.
    cluster: Option<Arc<Cluster>>,
}

impl Server {
    pub fn new(options: ServerOptions) -> Arc<Self> {
        let global_account = Arc::new(Account::new(GLOBAL_ACCOUNT));
        let system_name = options
            .system_account
            .clone()
            .unwrap_or_else(|| SYSTEM_ACCOUNT.to_string());
        let mut accounts = HashMap::new();
        accounts.insert(GLOBAL_ACCOUNT.to_string(), Arc::clone(&global_account));
        accounts.insert(system_name.clone(), Arc::new(Account::new(system_name)));
        let shutdown = CancellationToken::new();
        let accepting = shutdown.child_token();
        let cluster = options
            .cluster
            .clone()
            .map(|cluster| Arc::new(Cluster::new(cluster)));
        let now = SystemTime::now();
        Arc::new(Self {
            options: RwLock::new(Arc::new(options)),
            reloads: watch::channel(0).0,
            server_id: identity::new_server_id(),
            started: now,
            config_load_time: Mutex::new(now),
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
            cluster,
        })
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
            let account = self.global_account();
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
        let connect_urls = if cluster_options.no_advertise {
            Vec::new()
        } else {
            vec![self.own_client_url(&options, local_address.map(|address| address.ip()))]
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
            ldm: self.is_lame_duck(),
            gateway: String::new(),
            route_account: String::new(),
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

    /// Client URLs of the whole cluster for the client INFO (empty without a cluster).
    pub fn client_connect_urls(
        &self,
        options: &ServerOptions,
        reached_at: Option<std::net::IpAddr>,
    ) -> Vec<String> {
        let Some(cluster) = &self.cluster else {
            return Vec::new();
        };
        if cluster.options().no_advertise {
            return Vec::new();
        }
        let mut urls = Vec::new();
        if !self.is_lame_duck() {
            urls.push(self.own_client_url(options, reached_at));
        }
        for url in cluster.remote_connect_urls() {
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

    /// INFO for one client connection.
    pub fn client_info(&self, connection: &Connection) -> ServerInfo {
        let options = self.options();
        let (host, port) = self.advertised_client_address(&options);
        ServerInfo {
            server_id: self.server_id.clone(),
            server_name: self.server_name(),
            version: PROTOCOL_VERSION.to_string(),
            proto: 1,
            go: format!("tern {TERN_VERSION}"),
            host,
            port,
            headers: !options.no_header_support,
            max_payload: options.max_payload,
            auth_required: options.authorization.is_required() && options.no_auth_user.is_none(),
            tls_required: false,
            tls_verify: false,
            tls_available: false,
            client_id: connection.id,
            client_ip: connection.remote_address.ip().to_string(),
            nonce: String::new(),
            cluster: self
                .cluster
                .as_ref()
                .map(|cluster| cluster.name())
                .unwrap_or_default(),
            connect_urls: self.client_connect_urls(
                &options,
                connection.local_address.map(|address| address.ip()),
            ),
            ldm: self.is_lame_duck(),
        }
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

    /// Checks CONNECT credentials; returns the authorised user name (empty without auth).
    pub fn authenticate(&self, connect: &ConnectOptions) -> Option<String> {
        let options = self.options();
        let authorization = &options.authorization;
        if !authorization.is_required() {
            return Some(String::new());
        }
        let no_credentials =
            connect.username.is_empty() && connect.auth_token.is_empty() && connect.nkey.is_empty();
        if no_credentials {
            if let Some(user) = &options.no_auth_user {
                return Some(user.clone());
            }
        }
        if let Some(token) = &authorization.token {
            if constant_time_equal(connect.auth_token.as_bytes(), token.as_bytes()) {
                return Some(String::new());
            }
        }
        if let (Some(user), Some(password)) = (&authorization.user, &authorization.password) {
            if connect.username == *user
                && constant_time_equal(connect.password.as_bytes(), password.as_bytes())
            {
                return Some(user.clone());
            }
        }
        authorization
            .users
            .iter()
            .find(|user| {
                user.user == connect.username
                    && constant_time_equal(connect.password.as_bytes(), user.password.as_bytes())
            })
            .map(|user| user.user.clone())
    }

    /// The user a connection without CONNECT binds to, if `no_auth_user` names a known one.
    pub fn no_auth_user(&self) -> Option<String> {
        let options = self.options();
        let user = options.no_auth_user.as_ref()?;
        options
            .authorization
            .users
            .iter()
            .any(|known| known.user == *user)
            .then(|| user.clone())
    }

    /// Binds listeners and starts serving.
    pub async fn start(self: &Arc<Self>) -> Result<RunningServer, ServerError> {
        let options = self.options();
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
        *self.addresses.lock() = Some(BoundAddresses {
            client: client_address,
            monitoring: monitoring_address,
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
        logging::notice(format_args!(
            "Listening for client connections on {}",
            display_address(client_address)
        ));
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
        self.tasks.spawn(server.accept_clients(client_listener));
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
        ports.insert(
            "nats".into(),
            serde_json::json!([format!("nats://{}", reachable_address(addresses.client))]),
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
        serde_json::Value::Object(ports).to_string()
    }

    async fn accept_clients(self: Arc<Self>, listener: TcpListener) {
        let mut backoff = Duration::from_millis(5);
        loop {
            let accepted = tokio::select! {
                () = self.accepting.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let (stream, address) = match accepted {
                Ok(accepted) => {
                    backoff = Duration::from_millis(5);
                    accepted
                }
                Err(error) => {
                    // Out of descriptors and the like: wait, then try again, bounded.
                    logging::error(format_args!(
                        "Temporary Client Accept Error ({error}), sleeping {}ms",
                        backoff.as_millis()
                    ));
                    tokio::select! {
                        () = self.accepting.cancelled() => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            };
            self.admit_client(stream, address);
        }
        logging::debug(format_args!("Client accept loop exiting"));
    }

    fn admit_client(self: &Arc<Self>, stream: TcpStream, address: SocketAddr) {
        let _ = stream.set_nodelay(true);
        let options = self.options();
        let id = self.next_connection_id();
        let connection = Arc::new(
            Connection::new(
                id,
                ConnectionKind::Client,
                address,
                options.max_pending,
                &self.shutdown,
            )
            .with_local_address(stream.local_addr().ok()),
        );
        let (reader, writer) = stream.into_split();
        let over_limit = {
            let mut connections = self.connections.lock();
            if connections.len() >= options.max_connections {
                true
            } else {
                connections.insert(id, Arc::clone(&connection));
                false
            }
        };
        if over_limit {
            logging::error(format_args!(
                "{} - cid:{id} - {}",
                address,
                text::MAX_CONNECTIONS_EXCEEDED
            ));
            let info = self.client_info(&connection).to_protocol_line();
            connection.send_control(&info);
            connection.outbound.lock().push_with(|out| {
                server_operations::encode_error(out, text::MAX_CONNECTIONS_EXCEEDED)
            });
            connection.close(CloseReason::MaxConnectionsExceeded);
            self.tasks.spawn(crate::connection::writer::run_writer(
                connection,
                writer,
                options.write_deadline,
            ));
            return;
        }
        self.statistics
            .total_connections
            .fetch_add(1, Ordering::Relaxed);
        self.global_account
            .client_connections
            .fetch_add(1, Ordering::Relaxed);
        logging::debug(format_args!(
            "{address} - cid:{id} - Client connection created"
        ));
        self.tasks
            .spawn(run_client(Arc::clone(self), connection, reader, writer));
    }

    /// Called by a connection's task when it has closed.
    pub fn connection_closed(
        &self,
        connection: &Arc<Connection>,
        subscriptions: &[Arc<crate::subscription::Subscription>],
    ) {
        self.connections.lock().remove(&connection.id);
        self.global_account
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
    pub fn reload(&self, new_options: ServerOptions) -> Result<(), ServerError> {
        let current = self.options();
        check_unchanged("listen", &current.listen, &new_options.listen)?;
        check_unchanged("http", &current.monitoring, &new_options.monitoring)?;
        if let Err(error) = logging::configure(&new_options.logging) {
            logging::error(format_args!("Reload: cannot open log file: {error}"));
        }
        let max_pending = new_options.max_pending;
        *self.options.write() = Arc::new(new_options);
        *self.config_load_time.lock() = SystemTime::now();
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

fn constant_time_equal(left: &[u8], right: &[u8]) -> bool {
    if left.len() != right.len() {
        return false;
    }
    left.iter()
        .zip(right)
        .fold(0u8, |difference, (a, b)| difference | (a ^ b))
        == 0
}

/// Milliseconds since the epoch, for monitoring.
pub fn now_millis() -> u64 {
    unix_millis(SystemTime::now())
}
