//! The cluster: routes to the other servers, and what flows over them.
//!
//! Contract: one route connection per remote server (the first one registered wins; a
//! duplicate is closed, and the survivor inherits the URL to reconnect to). Configured routes
//! are retried for ever, gossiped (implicit) ones `connect_retries` times. A newly registered
//! route is sent this server's whole local interest and is announced to the other routes, so a
//! server given one seed meets everyone. Local interest changes reach every route as `RS+`/
//! `RS-` in the order they happened. Client connect URLs learned from routes are merged into
//! the client INFO and pushed to clients that take asynchronous INFO. Lock order: an account's
//! interest lock, then `routes`, then a connection's outbound.

pub mod info;
pub mod route;

use std::collections::{HashMap, HashSet};
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

#[derive(Debug)]
struct RegisteredRoute {
    connection: Arc<Connection>,
    remote: RemoteServer,
    /// The URL to dial again should this route drop (it was solicited, or a duplicate that
    /// was solicited handed its URL over).
    retry_url: Option<(RouteUrl, bool)>,
}

/// A snapshot of one route for monitoring.
#[derive(Debug, Clone)]
pub struct RouteSnapshot {
    pub connection: Arc<Connection>,
    pub remote: RemoteServer,
}

#[derive(Debug)]
pub struct Cluster {
    options: RwLock<ClusterOptions>,
    name: RwLock<String>,
    dynamic: AtomicBool,
    routes: Mutex<HashMap<String, RegisteredRoute>>,
    /// Addresses with a dial loop running, so gossip does not start a second one.
    dialling: Mutex<HashSet<String>>,
    /// Configured route addresses that turned out to be this server.
    to_self: Mutex<HashSet<String>>,
    listen_address: Mutex<Option<SocketAddr>>,
    /// TLS for accepted and dialled routes, when `cluster { tls }` is set.
    tls: Mutex<Option<(ServerTls, ClientTls)>>,
}

impl Cluster {
    pub fn new(options: ClusterOptions) -> Self {
        let (name, dynamic) = match &options.name {
            Some(name) => (name.clone(), false),
            None => (crate::identity::new_nonce() + "dyn", true),
        };
        Self {
            options: RwLock::new(options),
            name: RwLock::new(name),
            dynamic: AtomicBool::new(dynamic),
            routes: Mutex::new(HashMap::new()),
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

    pub fn routes(&self) -> Vec<RouteSnapshot> {
        let mut routes: Vec<_> = self
            .routes
            .lock()
            .values()
            .map(|route| RouteSnapshot {
                connection: Arc::clone(&route.connection),
                remote: route.remote.clone(),
            })
            .collect();
        routes.sort_by_key(|route| route.connection.id);
        routes
    }

    pub fn route_count(&self) -> usize {
        self.routes.lock().len()
    }

    pub fn is_connected_to(&self, server_id: &str) -> bool {
        self.routes.lock().contains_key(server_id)
    }

    /// Client URLs (or, with `websocket`, WebSocket URLs) of every other server, for the
    /// client INFO.
    pub fn remote_connect_urls(&self, websocket: bool) -> Vec<String> {
        let routes = self.routes.lock();
        let mut urls: Vec<String> = routes
            .values()
            .flat_map(|route| {
                if websocket {
                    route.remote.ws_connect_urls.iter().cloned()
                } else {
                    route.remote.connect_urls.iter().cloned()
                }
            })
            .collect();
        urls.sort();
        urls.dedup();
        urls
    }

    /// A server in lame duck mode is no place to send clients any more.
    pub fn forget_connect_urls(&self, server_id: &str) {
        if let Some(route) = self.routes.lock().get_mut(server_id) {
            route.remote.connect_urls.clear();
            route.remote.ws_connect_urls.clear();
        }
    }

    /// Tells every route this server entered lame duck mode.
    pub fn announce_lame_duck(&self, info: &RouteInfo) {
        let mut info = info.clone();
        info.ldm = true;
        self.broadcast(&info.to_protocol_line(), None);
    }

    /// Registers a route whose INFO arrived; `false` when this server is already connected to
    /// that remote (the caller closes the duplicate, and its URL moves to the survivor).
    fn register(
        &self,
        connection: &Arc<Connection>,
        remote: RemoteServer,
        retry_url: Option<(RouteUrl, bool)>,
    ) -> bool {
        let mut routes = self.routes.lock();
        if let Some(existing) = routes.get_mut(&remote.id) {
            if existing.retry_url.is_none() {
                existing.retry_url = retry_url;
            }
            return false;
        }
        routes.insert(
            remote.id.clone(),
            RegisteredRoute {
                connection: Arc::clone(connection),
                remote,
                retry_url,
            },
        );
        true
    }

    /// Forgets a closed route if it is the registered one; returns its URL to dial again.
    fn unregister(
        &self,
        connection: &Arc<Connection>,
        remote_id: &str,
    ) -> Option<Option<(RouteUrl, bool)>> {
        let mut routes = self.routes.lock();
        let registered = routes
            .get(remote_id)
            .is_some_and(|route| Arc::ptr_eq(&route.connection, connection));
        if !registered {
            return None;
        }
        routes.remove(remote_id).map(|route| route.retry_url)
    }

    /// Queues `bytes` to every registered route except `except` (by remote id).
    fn broadcast(&self, bytes: &[u8], except: Option<&str>) {
        let routes = self.routes.lock();
        for (id, route) in routes.iter() {
            if except == Some(id.as_str()) {
                continue;
            }
            route.connection.send_control(bytes);
        }
    }

    /// Tells every route about a change of local interest (called under the account's interest
    /// lock, so announcements keep their order).
    pub fn announce_interest(&self, account: &str, key: &InterestKey, change: &InterestChange) {
        let mut frame = BytesMut::new();
        encode_interest(&mut frame, account.as_bytes(), key, change);
        if !frame.is_empty() {
            self.broadcast(&frame, None);
        }
    }

    /// Sends a new route this server's whole local interest.
    fn send_all_interest(&self, connection: &Connection, accounts: &[Arc<Account>]) {
        for account in accounts {
            account.with_local_interest(|interest| {
                if interest.is_empty() {
                    return;
                }
                let mut frame = BytesMut::new();
                for (key, count) in interest {
                    let change = InterestChange::Added { weight: *count };
                    encode_interest(&mut frame, account.name.as_bytes(), key, &change);
                }
                connection.send_control(&frame);
            });
        }
    }

    /// Closes every route (cluster name changed, or shutdown).
    fn close_all_except(&self, keep: &Connection, reason: CloseReason) {
        let routes = self.routes.lock();
        for route in routes.values() {
            if route.connection.id != keep.id {
                route.connection.close(reason);
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
        dial(server, cluster, url, true);
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

/// Starts a dial loop for `url` unless one runs already.
pub fn dial(server: &Arc<Server>, cluster: &Arc<Cluster>, url: RouteUrl, configured: bool) {
    let address = url.address();
    if cluster.to_self.lock().contains(&address) || !cluster.dialling.lock().insert(address) {
        return;
    }
    let dial_server = Arc::clone(server);
    server
        .tasks()
        .spawn(dial_loop(dial_server, Arc::clone(cluster), url, configured));
}

/// Dials until connected (configured routes: for ever; gossiped ones: `connect_retries`
/// times), runs the route, and dials again after it drops while it should.
async fn dial_loop(server: Arc<Server>, cluster: Arc<Cluster>, url: RouteUrl, configured: bool) {
    let stop = server.shutdown_token();
    let address = url.address();
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
                    Some((url.clone(), configured)),
                )
                .await;
                match outcome.remote_id.as_deref() {
                    Some(id) if id == server.server_id => {
                        cluster.to_self.lock().insert(address.clone());
                        break;
                    }
                    // Connected to that server through another connection: that one inherited
                    // the URL and reconnects if it drops.
                    Some(id) if cluster.is_connected_to(id) => break,
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
    cluster.dialling.lock().remove(&address);
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
        dial(server, cluster, url, configured);
    }
}
