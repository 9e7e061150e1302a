//! The cluster: routes to the other servers, and what flows over them.
//!
//! Contract: the connections to each server are kept in a [`pool::Registry`]: a pool of
//! `pool_size` connections to a server that pools too, one connection to one that does not
//! (nats-server 2.9, `pool_size: -1`), and a dedicated connection per pinned account (the
//! system account and `cluster { accounts }`). A connection for a taken slot is a duplicate
//! and is closed; the survivor inherits the URL to reconnect to. Configured routes are retried
//! for ever, gossiped (implicit) ones `connect_retries` times; every solicited pool member and
//! pinned route reconnects by itself. A newly registered connection is sent the local interest
//! of the accounts it carries, and a new server is announced to the other routes, so a server
//! given one seed meets everyone. Local interest changes reach, in the order they happened,
//! the connection carrying their account to each server. Client connect URLs learned from
//! routes are merged into the client INFO and pushed to clients that take asynchronous INFO.
//! Lock order: an account's interest lock, then `registry`, then a connection's outbound.

pub mod info;
pub mod pool;
pub mod route;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use parking_lot::{Mutex, RwLock};
use tokio::net::{TcpListener, TcpStream};

use crate::account::{Account, InterestChange, InterestKey};
use crate::connection::{CloseReason, Connection};
use crate::logging;
use crate::options::{ClusterOptions, RouteUrl};
use crate::protocol::route_parser::{encode_subscribe, encode_unsubscribe};
use crate::server::Server;
use crate::transport::tls::{ClientTls, ServerTls};
use crate::transport::Transport;

use self::info::RouteInfo;
use self::pool::{pool_index, Registration, Registry, Request, RouteRole, Unregistered};

/// Delay before a configured route is dialled again.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);
/// A dial that takes longer than this has failed.
const DIAL_TIMEOUT: Duration = Duration::from_secs(1);

/// What is known about the server at the other end of a registered route.
#[derive(Debug, Clone)]
pub struct RemoteServer {
    pub id: String,
    pub name: String,
    pub connect_urls: Vec<String>,
    /// Its WebSocket listener's URLs (`host:port`), for WebSocket clients.
    pub ws_connect_urls: Vec<String>,
    /// `nats-route://host:port/` to reach it, as announced to other routes.
    pub url: String,
    pub solicited: bool,
    pub configured: bool,
    pub started: SystemTime,
    pub remote_address: SocketAddr,
}

/// A snapshot of one route connection for monitoring.
#[derive(Debug, Clone)]
pub struct RouteSnapshot {
    pub connection: Arc<Connection>,
    pub remote: RemoteServer,
    pub role: RouteRole,
}

/// Which connection a dial loop makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialTarget {
    /// The first (or only) connection to a server; one loop per address.
    Route,
    /// Another connection of a pool, asked for once the previous one proved itself.
    PoolMember,
    /// The dedicated connection of an account; one loop per address and account.
    Pinned(String),
}

#[derive(Debug)]
pub struct Cluster {
    options: RwLock<ClusterOptions>,
    name: RwLock<String>,
    dynamic: AtomicBool,
    registry: Mutex<Registry>,
    /// Accounts with dedicated routes: the configured ones and the system account, when
    /// routes pool.
    pinned_accounts: Vec<String>,
    /// Dial loops running, by address (and account), so gossip does not start a second one.
    dialling: Mutex<HashSet<String>>,
    /// Configured route addresses that turned out to be this server.
    to_self: Mutex<HashSet<String>>,
    listen_address: Mutex<Option<SocketAddr>>,
    /// TLS for accepted and dialled routes, when `cluster { tls }` is set.
    tls: Mutex<Option<(ServerTls, ClientTls)>>,
}

impl Cluster {
    pub fn new(options: ClusterOptions, system_account: &str) -> Self {
        let (name, dynamic) = match &options.name {
            Some(name) => (name.clone(), false),
            None => (crate::identity::new_nonce() + "dyn", true),
        };
        let mut pinned_accounts = Vec::new();
        if options.pools() {
            pinned_accounts.clone_from(&options.pinned_accounts);
            if !pinned_accounts.iter().any(|name| name == system_account) {
                pinned_accounts.push(system_account.to_string());
            }
        }
        Self {
            options: RwLock::new(options),
            name: RwLock::new(name),
            dynamic: AtomicBool::new(dynamic),
            registry: Mutex::new(Registry::default()),
            pinned_accounts,
            dialling: Mutex::new(HashSet::new()),
            to_self: Mutex::new(HashSet::new()),
            listen_address: Mutex::new(None),
            tls: Mutex::new(None),
        }
    }

    /// Reads the route TLS material; an error names the file or setting.
    pub fn load_tls(&self) -> Result<(), crate::transport::tls::TlsError> {
        let loaded = match &self.options.read().tls {
            Some(options) => Some((
                ServerTls::from_options(options)?,
                ClientTls::from_options(options)?,
            )),
            None => None,
        };
        *self.tls.lock() = loaded;
        Ok(())
    }

    pub fn tls_required(&self) -> bool {
        self.tls.lock().is_some()
    }

    fn server_tls(&self) -> Option<ServerTls> {
        self.tls.lock().as_ref().map(|(server, _)| server.clone())
    }

    fn client_tls(&self) -> Option<ClientTls> {
        self.tls.lock().as_ref().map(|(_, client)| client.clone())
    }

    pub fn name(&self) -> String {
        self.name.read().clone()
    }

    pub fn is_dynamic(&self) -> bool {
        self.dynamic.load(Ordering::Acquire)
    }

    pub fn options(&self) -> ClusterOptions {
        self.options.read().clone()
    }

    pub fn listen_address(&self) -> Option<SocketAddr> {
        *self.listen_address.lock()
    }

    /// Whether routes pool (`pool_size` is not -1).
    pub fn pools(&self) -> bool {
        self.options.read().pools()
    }

    /// This server's pool size (1 when it does not pool).
    pub fn pool_size(&self) -> usize {
        usize::try_from(self.options.read().pool_size.max(1)).unwrap_or(1)
    }

    /// Accounts with a dedicated route to each server.
    pub fn pinned_accounts(&self) -> &[String] {
        &self.pinned_accounts
    }

    pub fn is_pinned(&self, account: &str) -> bool {
        self.pinned_accounts.iter().any(|name| name == account)
    }

    /// A dynamic name gives way to a configured one, or to a greater dynamic one, as in
    /// nats-server; returns whether the name changed.
    pub fn adopt_name(&self, remote: &str, remote_dynamic: bool) -> bool {
        if !self.is_dynamic() {
            return false;
        }
        let mut name = self.name.write();
        if remote_dynamic && name.as_str() >= remote {
            return false;
        }
        *name = remote.to_string();
        if !remote_dynamic {
            self.dynamic.store(false, Ordering::Release);
        }
        true
    }

    /// Every registered route connection, by connection id.
    pub fn routes(&self) -> Vec<RouteSnapshot> {
        let mut routes: Vec<_> = self
            .registry
            .lock()
            .connections()
            .into_iter()
            .map(|registered| RouteSnapshot {
                connection: registered.connection,
                remote: registered.remote,
                role: registered.role,
            })
            .collect();
        routes.sort_by_key(|route| route.connection.id);
        routes
    }

    /// Registered route connections (pools count each member, as nats-server's `routes`).
    pub fn route_count(&self) -> usize {
        self.registry.lock().connections().len()
    }

    pub fn is_connected_to(&self, server_id: &str) -> bool {
        self.registry.lock().is_connected_to(server_id)
    }

    fn has_pinned(&self, account: &str, server_id: &str) -> bool {
        self.registry.lock().has_pinned(account, server_id)
    }

    /// Client URLs (or, with `websocket`, WebSocket URLs) of every other server, for the
    /// client INFO.
    pub fn remote_connect_urls(&self, websocket: bool) -> Vec<String> {
        let registry = self.registry.lock();
        let mut urls: Vec<String> = registry
            .remotes()
            .flat_map(|remote| {
                if websocket {
                    remote.ws_connect_urls.iter().cloned()
                } else {
                    remote.connect_urls.iter().cloned()
                }
            })
            .collect();
        urls.sort();
        urls.dedup();
        urls
    }

    /// A server in lame duck mode is no place to send clients any more.
    pub fn forget_connect_urls(&self, server_id: &str) {
        if let Some(remote) = self.registry.lock().remote_mut(server_id) {
            remote.connect_urls.clear();
            remote.ws_connect_urls.clear();
        }
    }

    /// Tells every route this server entered lame duck mode.
    pub fn announce_lame_duck(&self, info: &RouteInfo) {
        let mut info = info.clone();
        info.ldm = true;
        self.broadcast(&info.to_protocol_line(), None, false);
    }

    fn register(
        &self,
        connection: &Arc<Connection>,
        remote: RemoteServer,
        request: Request,
        retry_url: Option<(RouteUrl, bool)>,
    ) -> Registration {
        let pool_size = self.pool_size();
        self.registry
            .lock()
            .register(connection, remote, request, pool_size, retry_url)
    }

    fn unregister(
        &self,
        connection: &Arc<Connection>,
        remote_id: &str,
        role: &RouteRole,
    ) -> Option<Unregistered> {
        self.registry.lock().unregister(connection, remote_id, role)
    }

    /// Queues `bytes` on one connection to every remote server except `except` (by id),
    /// optionally only servers that pool.
    fn broadcast(&self, bytes: &[u8], except: Option<&str>, pooled_only: bool) {
        for (id, connection) in self.registry.lock().one_per_remote(pooled_only) {
            if except != Some(id.as_str()) {
                connection.send_control(bytes);
            }
        }
    }

    /// Tells the routes carrying `account` about a change of local interest (called under the
    /// account's interest lock, so announcements keep their order).
    pub fn announce_interest(&self, account: &str, key: &InterestKey, change: &InterestChange) {
        let mut named = BytesMut::new();
        encode_interest(&mut named, account.as_bytes(), key, change);
        if named.is_empty() {
            return;
        }
        let pinned = self.is_pinned(account);
        let pool_size = self.pool_size();
        let targets = self
            .registry
            .lock()
            .interest_targets(account, pinned, pool_size);
        let mut unnamed = BytesMut::new();
        for (connection, omits_account) in targets {
            if omits_account {
                if unnamed.is_empty() {
                    encode_interest(&mut unnamed, b"", key, change);
                }
                connection.send_control(&unnamed);
            } else {
                connection.send_control(&named);
            }
        }
    }

    /// Sends a newly registered route the local interest of the accounts it carries.
    fn send_all_interest(
        &self,
        connection: &Connection,
        role: &RouteRole,
        accounts: &[Arc<Account>],
    ) {
        let pool_size = self.pool_size();
        for account in accounts {
            let (carried, token) = match role {
                RouteRole::Single => (true, account.name.as_bytes()),
                RouteRole::Pooled { index } => (
                    !self.is_pinned(&account.name)
                        && pool_index(account.name.as_bytes(), pool_size) == *index,
                    account.name.as_bytes(),
                ),
                RouteRole::Pinned { account: pinned } => (*pinned == account.name, &b""[..]),
            };
            if !carried {
                continue;
            }
            account.with_local_interest(|interest| {
                if interest.is_empty() {
                    return;
                }
                let mut frame = BytesMut::new();
                for (key, count) in interest {
                    let change = InterestChange::Added { weight: *count };
                    encode_interest(&mut frame, token, key, &change);
                }
                connection.send_control(&frame);
            });
        }
    }

    /// Closes every route (cluster name changed, or shutdown).
    fn close_all_except(&self, keep: &Connection, reason: CloseReason) {
        for registered in self.registry.lock().connections() {
            if registered.connection.id != keep.id {
                registered.connection.close(reason);
            }
        }
    }
}

fn encode_interest(
    frame: &mut BytesMut,
    account: &[u8],
    key: &InterestKey,
    change: &InterestChange,
) {
    let (subject, queue_group) = key;
    match change {
        InterestChange::Added { weight } => encode_subscribe(
            frame,
            account,
            subject,
            queue_group
                .as_deref()
                .map(|queue_group| (queue_group, *weight)),
        ),
        InterestChange::Removed => {
            encode_unsubscribe(frame, account, subject, queue_group.as_deref());
        }
        InterestChange::Unchanged => {}
    }
}

/// Binds the route listener.
pub async fn bind(options: &ClusterOptions) -> std::io::Result<TcpListener> {
    TcpListener::bind((
        options.listen.host.as_str(),
        options.listen.port.unwrap_or(0),
    ))
    .await
}

/// Starts accepting routes and dialling the configured ones.
pub fn start(server: &Arc<Server>, cluster: &Arc<Cluster>, listener: TcpListener) {
    *cluster.listen_address.lock() = listener.local_addr().ok();
    let accept_server = Arc::clone(server);
    server
        .tasks()
        .spawn(accept_routes(accept_server, Arc::clone(cluster), listener));
    for url in cluster.options().routes {
        dial(server, cluster, url, true, DialTarget::Route);
    }
}

async fn accept_routes(server: Arc<Server>, cluster: Arc<Cluster>, listener: TcpListener) {
    let stop = server.shutdown_token();
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, address)) => {
                let _ = stream.set_nodelay(true);
                let session_server = Arc::clone(&server);
                let session_cluster = Arc::clone(&cluster);
                server.tasks().spawn(async move {
                    let local_address = stream.local_addr().ok();
                    // Routes start with TLS, before any protocol byte.
                    let transport = match session_cluster.server_tls() {
                        Some(tls) => match tls.accept_transport(stream).await {
                            Ok(transport) => transport,
                            Err(error) => {
                                logging::error(format_args!(
                                    "{address} - Route TLS handshake error: {error}"
                                ));
                                return;
                            }
                        },
                        None => Transport::Tcp(stream),
                    };
                    let outcome = route::run_route(
                        Arc::clone(&session_server),
                        Arc::clone(&session_cluster),
                        transport,
                        (address, local_address),
                        None,
                    )
                    .await;
                    after_route_closed(&session_server, &session_cluster, outcome);
                });
            }
            Err(error) => {
                logging::error(format_args!("Error accepting route connection: {error}"));
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            }
        }
    }
}

/// Starts a dial loop for `url` and `target` unless one runs already (pool members are not
/// deduplicated: a full pool refuses the extra one for good).
pub fn dial(
    server: &Arc<Server>,
    cluster: &Arc<Cluster>,
    url: RouteUrl,
    configured: bool,
    target: DialTarget,
) {
    let address = url.address();
    if cluster.to_self.lock().contains(&address) {
        return;
    }
    let key = match &target {
        DialTarget::Route => Some(address),
        DialTarget::PoolMember => None,
        DialTarget::Pinned(account) => Some(format!("{address} {account}")),
    };
    if let Some(key) = &key {
        if !cluster.dialling.lock().insert(key.clone()) {
            return;
        }
    }
    let dial_server = Arc::clone(server);
    server.tasks().spawn(dial_loop(
        dial_server,
        Arc::clone(cluster),
        DialPlan {
            url,
            configured,
            target,
            key,
        },
    ));
}

/// What one dial loop connects.
#[derive(Debug)]
struct DialPlan {
    url: RouteUrl,
    configured: bool,
    target: DialTarget,
    /// Its entry in `dialling`, removed when the loop ends.
    key: Option<String>,
}

/// Dials until connected (configured routes: for ever; gossiped ones: `connect_retries`
/// times), runs the route, and dials again after it drops while it should.
async fn dial_loop(server: Arc<Server>, cluster: Arc<Cluster>, plan: DialPlan) {
    let stop = server.shutdown_token();
    let DialPlan {
        url,
        configured,
        target,
        key,
    } = plan;
    let address = url.address();
    let account = match &target {
        DialTarget::Pinned(account) => Some(account.clone()),
        _ => None,
    };
    let mut failures: u32 = 0;
    loop {
        if stop.is_cancelled() {
            break;
        }
        logging::debug(format_args!("Trying to connect to route on {address}"));
        let dialled =
            tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(address.as_str())).await;
        match dialled {
            Ok(Ok(stream)) => {
                failures = 0;
                let _ = stream.set_nodelay(true);
                let remote_address = stream
                    .peer_addr()
                    .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
                let local_address = stream.local_addr().ok();
                let transport = match cluster.client_tls() {
                    Some(tls) => match tls.connect_transport(&url.host, stream).await {
                        Ok(transport) => transport,
                        Err(error) => {
                            failures += 1;
                            log_dial_failure(&address, failures, &format!("TLS: {error}"));
                            if !configured && failures > cluster.options().connect_retries {
                                break;
                            }
                            tokio::select! {
                                () = stop.cancelled() => break,
                                () = tokio::time::sleep(RECONNECT_DELAY) => {}
                            }
                            continue;
                        }
                    },
                    None => Transport::Tcp(stream),
                };
                let outcome = route::run_route(
                    Arc::clone(&server),
                    Arc::clone(&cluster),
                    transport,
                    (remote_address, local_address),
                    Some(route::Solicited {
                        url: url.clone(),
                        configured,
                        account: account.clone(),
                    }),
                )
                .await;
                if outcome.no_reconnect {
                    break;
                }
                match outcome.remote_id.as_deref() {
                    Some(id) if id == server.server_id => {
                        cluster.to_self.lock().insert(address.clone());
                        break;
                    }
                    // Without pooling, a server is reached through one connection: if another
                    // one is up, it inherited the URL and reconnects if it drops.
                    Some(id) if !cluster.pools() && cluster.is_connected_to(id) => break,
                    _ => {}
                }
                if !configured && outcome.remote_id.is_some() && !outcome.retry {
                    break;
                }
            }
            Ok(Err(error)) => {
                failures += 1;
                log_dial_failure(&address, failures, &error.to_string());
            }
            Err(_) => {
                failures += 1;
                log_dial_failure(&address, failures, "timed out");
            }
        }
        if !configured && failures > cluster.options().connect_retries {
            break;
        }
        // Random extra delay so two servers dialling each other do not collide again.
        let jitter = Duration::from_millis(rand::random::<u64>() % 100);
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(RECONNECT_DELAY + jitter) => {}
        }
    }
    if let Some(key) = key {
        cluster.dialling.lock().remove(&key);
    }
}

fn log_dial_failure(address: &str, attempt: u32, error: &str) {
    // Like nats-server: report the first failure, then only now and then.
    if attempt == 1 || attempt.is_multiple_of(30) {
        logging::error(format_args!(
            "Error trying to connect to route (attempt {attempt}): dial tcp {address}: {error}"
        ));
    } else {
        logging::debug(format_args!(
            "Error trying to connect to route (attempt {attempt}): dial tcp {address}: {error}"
        ));
    }
}

/// An accepted route that inherited a URL dials it again after dropping.
fn after_route_closed(server: &Arc<Server>, cluster: &Arc<Cluster>, outcome: route::RouteOutcome) {
    if !outcome.retry || server.shutdown_token().is_cancelled() {
        return;
    }
    if let Some((url, configured)) = outcome.retry_url {
        dial(server, cluster, url, configured, DialTarget::Route);
    }
}
