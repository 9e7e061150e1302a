//! The server's validated options: what a config file and the command line become.
//!
//! Every field carries nats-server's default (see `Default`), so a server started with no config
//! behaves like `nats-server` started with none. `config::load` builds this from a `.conf` file
//! and `config::cli` applies command-line flags on top; nothing downstream reads raw input.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::compression::CompressionMode;

pub use crate::auth::Permissions;
pub use crate::transport::options::{HandshakeFirst, TlsOptions, TlsVersion, WebSocketOptions};

/// nats-server's defaults, named once.
pub mod defaults {
    use std::time::Duration;

    pub const CLIENT_PORT: u16 = 4222;
    pub const HOST: &str = "0.0.0.0";
    pub const MAX_CONTROL_LINE: usize = 4096;
    pub const MAX_PAYLOAD: usize = 1024 * 1024;
    pub const MAX_PENDING: usize = 64 * 1024 * 1024;
    pub const MAX_CONNECTIONS: usize = 64 * 1024;
    pub const PING_INTERVAL: Duration = Duration::from_secs(120);
    pub const PING_MAX: u32 = 2;
    pub const WRITE_DEADLINE: Duration = Duration::from_secs(10);
    pub const AUTH_TIMEOUT: Duration = Duration::from_secs(2);
    pub const LAME_DUCK_DURATION: Duration = Duration::from_secs(120);
    pub const LAME_DUCK_GRACE_PERIOD: Duration = Duration::from_secs(10);
    pub const MAX_CLOSED_CLIENTS: usize = 10_000;
}

/// Where the client listener binds. `port: None` is nats-server's `-1`: a port from the OS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    pub host: String,
    pub port: Option<u16>,
}

/// Credentials that `authorization { ... }` or `--user/--pass/--auth` configure.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Authorization {
    pub user: Option<String>,
    /// Plain text or a bcrypt hash (`$2a$...`).
    pub password: Option<String>,
    pub token: Option<String>,
    /// Users of `authorization { users: [...] }` that have a user name and password.
    pub users: Vec<User>,
    /// Users of `authorization { users: [...] }` that authenticate with an NKEY.
    pub nkey_users: Vec<NkeyUser>,
    /// `default_permissions` (alias `permissions`): for `users` entries without their own.
    pub default_permissions: Option<Permissions>,
    /// `authorization { timeout }`; `None` means the server default.
    pub timeout: Option<Duration>,
}

/// One entry of `authorization { users: [...] }` with a user name.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct User {
    pub user: String,
    pub password: String,
    pub permissions: Option<Permissions>,
    /// The account (`accounts { NAME { users } }`) the user belongs to; `None` is `$G`.
    pub account: Option<String>,
    /// Open connections the user may have on this server (`max_connections`, a Tern
    /// extension); `None` is no limit.
    pub max_connections: Option<u32>,
}

/// One entry of `authorization { users: [...] }` with an `nkey` (a validated user public key).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NkeyUser {
    pub nkey: String,
    pub permissions: Option<Permissions>,
    /// The account the user belongs to; `None` is `$G`.
    pub account: Option<String>,
    /// Open connections the user may have on this server; `None` is no limit.
    pub max_connections: Option<u32>,
}

impl Authorization {
    /// Whether clients must present credentials.
    pub fn is_required(&self) -> bool {
        self.user.is_some()
            || self.token.is_some()
            || !self.users.is_empty()
            || !self.nkey_users.is_empty()
    }
}

/// Passwords and tokens never reach logs through `Debug`.
fn redacted(secret: &Option<String>) -> Option<&'static str> {
    secret.as_ref().map(|_| "<redacted>")
}

impl fmt::Debug for Authorization {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Authorization")
            .field("user", &self.user)
            .field("password", &redacted(&self.password))
            .field("token", &redacted(&self.token))
            .field("users", &self.users)
            .field("nkey_users", &self.nkey_users)
            .field("default_permissions", &self.default_permissions)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl fmt::Debug for User {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("User")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("permissions", &self.permissions)
            .field("account", &self.account)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

/// A route URL from `cluster { routes }` or `--routes`: `nats-route://[user:pass@]host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteUrl {
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<String>,
}

impl RouteUrl {
    /// Parses `scheme://[user[:pass]@]host:port[/]`; the scheme may be `nats-route`, `nats`
    /// or absent.
    pub fn parse(text: &str) -> Result<Self, String> {
        let rest = text
            .split_once("://")
            .map_or(text, |(scheme, rest)| match scheme {
                "nats-route" | "nats" | "route" | "tls" => rest,
                _ => "",
            });
        if rest.is_empty() {
            return Err(format!(
                "{text:?} is not a route URL (nats-route://host:port)"
            ));
        }
        let rest = rest.trim_end_matches('/');
        let (credentials, address) = match rest.rsplit_once('@') {
            Some((credentials, address)) => (Some(credentials), address),
            None => (None, rest),
        };
        let (host, port) = address
            .rsplit_once(':')
            .ok_or_else(|| format!("{text:?} has no port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("{text:?} has no host"));
        }
        let port = port
            .parse::<u16>()
            .map_err(|_| format!("{text:?} has an invalid port {port:?}"))?;
        let (user, password) = match credentials {
            Some(credentials) => match credentials.split_once(':') {
                Some((user, password)) => (Some(user.to_string()), Some(password.to_string())),
                None => (Some(credentials.to_string()), None),
            },
            None => (None, None),
        };
        Ok(Self {
            host: host.to_string(),
            port,
            user,
            password,
        })
    }

    /// `host:port`, for comparing with what a peer announces.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The `cluster { }` block: routes to other servers of this cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterOptions {
    /// `None` means a name is generated and may be replaced by a peer's (dynamic).
    pub name: Option<String>,
    pub listen: Listen,
    pub advertise: Option<String>,
    pub no_advertise: bool,
    pub routes: Vec<RouteUrl>,
    /// Attempts for implicit (gossiped) routes; configured routes retry for ever.
    pub connect_retries: u32,
    /// Credentials routes must present (`cluster { authorization { user, password } }`).
    pub user: Option<String>,
    pub password: Option<String>,
    pub auth_timeout: Option<Duration>,
    /// TLS for routes, both accepted and dialled: routes start with the TLS handshake.
    pub tls: Option<TlsOptions>,
    /// Route connections to each other server (`pool_size`, default 3); `-1` means one
    /// connection and no dedicated account routes, as a 2.9 server.
    pub pool_size: i64,
    /// Accounts with a dedicated route to each server (`accounts`); the system account is
    /// added unless pooling is off.
    pub pinned_accounts: Vec<String>,
    /// How routes compress (`compression`, default `accept`).
    pub compression: CompressionMode,
    /// `s2_auto` round-trip thresholds.
    pub compression_thresholds: Vec<Duration>,
}

/// nats-server's default route pool size.
pub const DEFAULT_ROUTE_POOL_SIZE: i64 = 3;
/// The largest pool a config may set, and a peer may announce.
pub const MAX_ROUTE_POOL_SIZE: i64 = 1024;

impl ClusterOptions {
    /// Whether routes pool (and pin accounts): `pool_size` is not `-1`.
    pub fn pools(&self) -> bool {
        self.pool_size > 0
    }
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            name: None,
            listen: Listen {
                host: defaults::HOST.to_string(),
                port: None,
            },
            advertise: None,
            no_advertise: false,
            routes: Vec::new(),
            connect_retries: 0,
            user: None,
            password: None,
            auth_timeout: None,
            tls: None,
            pool_size: DEFAULT_ROUTE_POOL_SIZE,
            pinned_accounts: Vec::new(),
            compression: CompressionMode::Accept,
            compression_thresholds: crate::compression::mode::DEFAULT_RTT_THRESHOLDS.to_vec(),
        }
    }
}

/// Logging switches (`debug`, `trace`, `logtime`, `log_file`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logging {
    pub debug: bool,
    pub trace: bool,
    pub logtime: bool,
    pub logtime_utc: bool,
    pub log_file: Option<PathBuf>,
}

impl Default for Logging {
    fn default() -> Self {
        Self {
            debug: false,
            trace: false,
            logtime: true,
            logtime_utc: false,
            log_file: None,
        }
    }
}

/// A warning found while loading (an unknown option, a deprecated form), printed at startup the
/// way nats-server prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    pub message: String,
}

/// Everything the server needs to run, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerOptions {
    pub server_name: Option<String>,
    pub listen: Listen,
    pub client_advertise: Option<String>,
    /// `http`/`http_port`/`monitor_port`/`-m`.
    pub monitoring: Option<Listen>,
    pub max_control_line: usize,
    pub max_payload: usize,
    pub max_pending: usize,
    pub max_connections: usize,
    /// 0 means unlimited.
    pub max_subscriptions: usize,
    pub ping_interval: Duration,
    pub ping_max: u32,
    pub write_deadline: Duration,
    pub lame_duck_duration: Duration,
    pub lame_duck_grace_period: Duration,
    pub no_header_support: bool,
    pub authorization: Authorization,
    pub no_auth_user: Option<String>,
    pub system_account: Option<String>,
    /// Routes to the other servers of a cluster, when configured.
    pub cluster: Option<ClusterOptions>,
    /// Accounts declared in `accounts { }` (their users are in `authorization`, tagged with
    /// the account), in file order.
    pub accounts: Vec<String>,
    /// What accounts offer to others (`exports`), checked against `imports` at load.
    pub exports: Vec<Export>,
    /// What accounts take from others (`imports`).
    pub imports: Vec<Import>,
    /// Each account's `limits { }`, by account name.
    pub account_limits: std::collections::BTreeMap<String, crate::limits::AccountLimits>,
    /// New client connections a second from one IP address (`connection_rate_per_ip`, a
    /// Tern extension); 0 is no limit.
    pub connection_rate_per_ip: u32,
    pub logging: Logging,
    pub pid_file: Option<PathBuf>,
    pub ports_file_dir: Option<PathBuf>,
    pub max_closed_clients: usize,
    /// The top-level `tls { }` block: TLS for client connections.
    pub tls: Option<TlsOptions>,
    /// `allow_non_tls`: with `tls`, clients may also connect without TLS.
    pub allow_non_tls: bool,
    /// `websocket { }` with a port; `None` when absent or without a port.
    pub websocket: Option<WebSocketOptions>,
    /// The config file this was loaded from, if any (for reload and `/varz`).
    pub config_file: Option<PathBuf>,
    /// Opt-in: reload when the config file changes on disk (for Kubernetes ConfigMaps).
    pub watch_config: bool,
    pub warnings: Vec<ConfigWarning>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            server_name: None,
            listen: Listen {
                host: defaults::HOST.to_string(),
                port: Some(defaults::CLIENT_PORT),
            },
            client_advertise: None,
            monitoring: None,
            max_control_line: defaults::MAX_CONTROL_LINE,
            max_payload: defaults::MAX_PAYLOAD,
            max_pending: defaults::MAX_PENDING,
            max_connections: defaults::MAX_CONNECTIONS,
            max_subscriptions: 0,
            ping_interval: defaults::PING_INTERVAL,
            ping_max: defaults::PING_MAX,
            write_deadline: defaults::WRITE_DEADLINE,
            lame_duck_duration: defaults::LAME_DUCK_DURATION,
            lame_duck_grace_period: defaults::LAME_DUCK_GRACE_PERIOD,
            no_header_support: false,
            authorization: Authorization::default(),
            no_auth_user: None,
            system_account: None,
            cluster: None,
            accounts: Vec::new(),
            exports: Vec::new(),
            account_limits: std::collections::BTreeMap::new(),
            connection_rate_per_ip: 0,
            imports: Vec::new(),
            logging: Logging::default(),
            pid_file: None,
            ports_file_dir: None,
            max_closed_clients: defaults::MAX_CLOSED_CLIENTS,
            tls: None,
            allow_non_tls: false,
            websocket: None,
            config_file: None,
            watch_config: false,
            warnings: Vec::new(),
        }
    }
}

impl ServerOptions {
    /// The auth timeout in force: `authorization { timeout }`, else the default, which with
    /// TLS is the TLS timeout plus a second (as in nats-server, so the handshake does not eat
    /// the time to authenticate).
    /// How long a WebSocket client has to authenticate: the `websocket { authorization {
    /// timeout } }` when set, else [`ServerOptions::auth_timeout`], as nats-server decides.
    pub fn websocket_auth_timeout(&self) -> Duration {
        self.websocket
            .as_ref()
            .and_then(|websocket| websocket.authorization.as_ref())
            .and_then(|authorization| authorization.timeout)
            .unwrap_or_else(|| self.auth_timeout())
    }

    pub fn auth_timeout(&self) -> Duration {
        self.authorization
            .timeout
            .unwrap_or_else(|| match &self.tls {
                Some(tls) => tls.timeout + Duration::from_secs(1),
                None => defaults::AUTH_TIMEOUT,
            })
    }

    /// Bind address for a listener, resolving nats-server's `-1` to port 0.
    pub fn bind_address(listen: &Listen) -> Result<SocketAddr, std::net::AddrParseError> {
        let host = if listen.host.contains(':') && !listen.host.starts_with('[') {
            format!("[{}]", listen.host)
        } else {
            listen.host.clone()
        };
        format!("{}:{}", host, listen.port.unwrap_or(0)).parse()
    }
}

/// A stream (messages) or a service (requests and their responses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeKind {
    Stream,
    Service,
}

/// How many responses one request to an exported service may get back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseType {
    /// One (the default).
    Singleton,
    /// Any number until the response threshold passes (`stream` and `chunked`).
    Stream,
}

/// One entry of an account's `exports`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    /// The exporting account.
    pub account: String,
    pub kind: ExchangeKind,
    pub subject: String,
    /// Accounts allowed to import it; empty for a public export.
    pub allowed: Vec<String>,
    pub response_type: ResponseType,
    /// How long a service's responses are waited for (`response_threshold`, default 2m).
    pub response_threshold: Duration,
}

/// One entry of an account's `imports`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// The importing account.
    pub account: String,
    pub kind: ExchangeKind,
    /// The exporting account.
    pub from: String,
    /// The subject in the exporting account.
    pub subject: String,
    /// The subject in the importing account: a stream's messages arrive on it, a service is
    /// requested on it. Defaults to `subject`; a stream's `prefix` makes it `prefix.subject`.
    pub to: String,
}
