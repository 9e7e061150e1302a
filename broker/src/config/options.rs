//! Turns a parsed config [`Map`] into validated [`ServerOptions`].
//!
//! Option names and aliases are nats-server's and are matched case-insensitively. Each value is
//! checked for type and range where it stands, and every problem is collected (like
//! nats-server, which reports all of them at once). Unknown options become warnings in
//! `ServerOptions::warnings`, worded the way nats-server words them; options of features Tern
//! does not have yet are errors, unless they are switched off (`false`), in which case they ask
//! for nothing and are accepted.
//!
//! Zero means "the default" for sizes, counts and durations, as in nats-server.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use crate::auth::is_valid_user_public_key;
use crate::options::{
    defaults, Authorization, ConfigWarning, Listen, NkeyUser, ServerOptions, User,
};

use super::duration::parse_duration;
use super::value::{Entry, Map, Position, Value, ValueKind};
use super::ConfigError;

#[path = "accounts.rs"]
mod accounts;
#[path = "cluster.rs"]
mod cluster;
#[path = "permissions.rs"]
mod permissions;
#[path = "transport.rs"]
mod transport;

/// nats-server options (and aliases) whose features Tern does not have yet.
const UNSUPPORTED_OPTIONS: &[&str] = &[
    "account_resolver",
    "accounts_resolver",
    "connect_error_reports",
    "default_js_domain",
    "disable_sublist_cache",
    "gateway",
    "http_base_path",
    "https",
    "https_port",
    "jetstream",
    "leaf",
    "leafnodes",
    "log_max_num",
    "log_size_limit",
    "logfile_size_limit",
    "mappings",
    "maps",
    "max_sub_tokens",
    "max_subscription_tokens",
    "max_traced_msg_len",
    "mqtt",
    "no_sublist_cache",
    "no_sys_acc",
    "no_system",
    "no_system_account",
    "ocsp",
    "ocsp_cache",
    "operator",
    "operators",
    "prof_port",
    "proxies",
    "proxy_protocol",
    "reconnect_error_reports",
    "remote_syslog",
    "resolver",
    "resolver_pinned_accounts",
    "resolver_preload",
    "resolver_tls",
    "root",
    "root_operator",
    "root_operators",
    "roots",
    "server_tags",
    "store_dir",
    "storedir",
    "syslog",
    "trace_verbose",
    "trusted",
    "trusted_keys",
    "write_timeout",
];

/// Options inside `authorization { }` (and its users) that Tern does not have yet.
const UNSUPPORTED_AUTHORIZATION_OPTIONS: &[&str] = &["auth_callout"];
const UNSUPPORTED_USER_OPTIONS: &[&str] =
    &["allowed_connection_types", "clients", "connection_types"];

/// The largest values nats-server stores these in (`int32`).
const MAX_CONTROL_LINE_LIMIT: i64 = i32::MAX as i64;
const MAX_PAYLOAD_LIMIT: i64 = i32::MAX as i64;
const MINIMUM_LAME_DUCK_DURATION: Duration = Duration::from_secs(30);

/// Builds options from a parsed config file, starting from nats-server's defaults.
pub fn options_from_map(map: &Map) -> Result<ServerOptions, ConfigError> {
    let mut builder = Builder::default();
    for entry in map.entries() {
        if let Err(error) = builder.apply(entry) {
            builder.errors.push(error);
        }
    }
    builder.finish()
}

/// Cross-field rules, checked once the config file and the command line are both applied.
pub fn validate(options: &ServerOptions) -> Result<(), ConfigError> {
    let inconsistent = |message: String| Err(ConfigError::Inconsistent { message });
    if options.lame_duck_grace_period >= options.lame_duck_duration {
        return inconsistent(format!(
            "lame_duck_grace_period ({:?}) must be shorter than lame_duck_duration ({:?})",
            options.lame_duck_grace_period, options.lame_duck_duration
        ));
    }
    if options.max_payload > options.max_pending {
        return inconsistent(format!(
            "max_payload ({}) can not be higher than max_pending ({})",
            options.max_payload, options.max_pending
        ));
    }
    let authorization = &options.authorization;
    let mut user_names = HashSet::new();
    for user in &authorization.users {
        if !user_names.insert(user.user.as_str()) {
            return inconsistent(format!(
                "user {:?} is defined more than once (users are unique across accounts)",
                user.user
            ));
        }
    }
    if authorization.user.is_some() && authorization.token.is_some() {
        return inconsistent("can not have both a user and a token".to_string());
    }
    if authorization.password.is_some() && authorization.user.is_none() {
        return inconsistent("a password is set without a user".to_string());
    }
    if !authorization.users.is_empty() {
        if authorization.user.is_some() {
            return inconsistent("can not have both a single user and a users array".to_string());
        }
        if authorization.token.is_some() {
            return inconsistent("can not have both a token and a users array".to_string());
        }
    }
    let known_user = |no_auth_user: &str| {
        if authorization.users.is_empty() {
            return Err(format!(
                "no_auth_user {no_auth_user:?} is set, but no users are defined"
            ));
        }
        if !authorization
            .users
            .iter()
            .any(|user| user.user == no_auth_user)
        {
            return Err(format!(
                "no_auth_user {no_auth_user:?} is not one of the authorization users"
            ));
        }
        Ok(())
    };
    if let Some(no_auth_user) = &options.no_auth_user {
        if let Err(message) = known_user(no_auth_user) {
            return inconsistent(message);
        }
    }
    if let Some(websocket) = &options.websocket {
        if let Some(no_auth_user) = &websocket.no_auth_user {
            if let Err(message) = known_user(no_auth_user) {
                return inconsistent(format!("websocket {message}"));
            }
        }
        // nats-server's checks: a WebSocket user or token of its own excludes users lists.
        let has_users = !authorization.users.is_empty() || !authorization.nkey_users.is_empty();
        let own = websocket.authorization.as_ref();
        if has_users && own.is_some_and(|own| own.user.is_some()) {
            return inconsistent(
                "websocket authentication username not compatible with presence of users/nkeys"
                    .to_string(),
            );
        }
        if has_users && own.is_some_and(|own| own.token.is_some()) {
            return inconsistent(
                "websocket authentication token not compatible with presence of users/nkeys"
                    .to_string(),
            );
        }
    }
    Ok(())
}

/// The client port as nats-server reads it: `-1` asks the OS for one (`None`), `0` is the
/// default port.
pub(super) fn client_port(port: i64) -> Result<Option<u16>, String> {
    match port {
        -1 => Ok(None),
        0 => Ok(Some(defaults::CLIENT_PORT)),
        _ => u16::try_from(port).map(Some).map_err(|_| {
            format!("port must be between 0 and 65535, or -1 for a random port; got {port}")
        }),
    }
}

/// The monitoring port as nats-server reads it: `0` turns monitoring off (`None`), `-1` asks
/// the OS for a port (`Some(None)`).
pub(super) fn monitoring_port(port: i64) -> Result<Option<Option<u16>>, String> {
    match port {
        0 => Ok(None),
        -1 => Ok(Some(None)),
        _ => u16::try_from(port).map(|port| Some(Some(port))).map_err(|_| {
            format!("monitoring port must be between 0 (off) and 65535, or -1 for a random port; got {port}")
        }),
    }
}

#[derive(Default)]
struct Builder {
    options: ServerOptions,
    errors: Vec<ConfigError>,
    warnings: Vec<ConfigWarning>,
    /// Monitoring inherits the client host unless `http` names one, so both are resolved last.
    monitoring_host: Option<String>,
    monitoring_port: Option<Option<Option<u16>>>,
    /// Where `cluster { accounts }` was given, to check its names once every account is known.
    pinned_accounts_position: Option<Position>,
    /// Where each of `options.imports` was given, to check them once every export is known.
    import_positions: Vec<Position>,
}

fn invalid(position: &Position, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        position: position.clone(),
        message: message.into(),
    }
}

fn wrong_type(entry: &Entry, expected: &str) -> ConfigError {
    invalid(
        &entry.value.position,
        format!(
            "{:?} must be {expected}, got {}",
            entry.key,
            entry.value.kind.type_name()
        ),
    )
}

fn string(entry: &Entry) -> Result<String, ConfigError> {
    match &entry.value.kind {
        ValueKind::String(text) => Ok(text.clone()),
        _ => Err(wrong_type(entry, "a string")),
    }
}

fn path(entry: &Entry) -> Result<PathBuf, ConfigError> {
    string(entry).map(PathBuf::from)
}

fn integer(entry: &Entry) -> Result<i64, ConfigError> {
    match entry.value.kind {
        ValueKind::Integer(number) => Ok(number),
        _ => Err(wrong_type(entry, "an integer")),
    }
}

/// A count limit as nats-server writes them: a negative number is no limit (`None`).
pub(super) fn count_limit(entry: &Entry) -> Result<Option<u32>, ConfigError> {
    let number = integer(entry)?;
    if number < 0 {
        return Ok(None);
    }
    u32::try_from(number).map(Some).map_err(|_| {
        invalid(
            &entry.value.position,
            format!("{:?} must be at most {}", entry.key, u32::MAX),
        )
    })
}

fn boolean(entry: &Entry) -> Result<bool, ConfigError> {
    match entry.value.kind {
        ValueKind::Bool(flag) => Ok(flag),
        _ => Err(wrong_type(entry, "a boolean")),
    }
}

fn map(entry: &Entry) -> Result<&Map, ConfigError> {
    match &entry.value.kind {
        ValueKind::Map(map) => Ok(map),
        _ => Err(wrong_type(entry, "a map")),
    }
}

/// A non-negative size up to `limit`; `None` for zero, which selects the default.
fn size(entry: &Entry, limit: i64) -> Result<Option<usize>, ConfigError> {
    let number = integer(entry)?;
    let position = &entry.value.position;
    if number < 0 {
        return Err(invalid(
            position,
            format!("{:?} can not be negative", entry.key),
        ));
    }
    if number > limit {
        return Err(invalid(
            position,
            format!(
                "{:?} value {number} is too big (the maximum is {limit})",
                entry.key
            ),
        ));
    }
    let size = usize::try_from(number).map_err(|_| {
        invalid(
            position,
            format!("{:?} value {number} is too big", entry.key),
        )
    })?;
    Ok((size != 0).then_some(size))
}

/// `host:port`, `[ipv6]:port`, or a bare port number. An empty host means the default.
fn host_and_port(entry: &Entry) -> Result<(Option<String>, i64), ConfigError> {
    let position = &entry.value.position;
    let text = match &entry.value.kind {
        ValueKind::Integer(port) => return Ok((None, *port)),
        ValueKind::String(text) => text,
        _ => return Err(wrong_type(entry, "a port or a \"host:port\" string")),
    };
    let unparsable = || {
        invalid(
            position,
            format!("could not parse address {text:?}: expected host:port"),
        )
    };
    let (host, port) = text.rsplit_once(':').ok_or_else(unparsable)?;
    let host = match host.strip_prefix('[') {
        Some(bracketed) => bracketed.strip_suffix(']').ok_or_else(unparsable)?,
        None if host.contains(':') => return Err(unparsable()),
        None => host,
    };
    let port = port.parse().map_err(|_| {
        invalid(
            position,
            format!("could not parse port {port:?} in {text:?}"),
        )
    })?;
    Ok(((!host.is_empty()).then(|| host.to_string()), port))
}

/// Whether an option of a missing feature is switched off, so accepting it changes nothing.
fn is_switched_off(value: &Value) -> bool {
    match &value.kind {
        ValueKind::Bool(flag) => !flag,
        ValueKind::String(text) => text.eq_ignore_ascii_case("disabled"),
        _ => false,
    }
}

impl Builder {
    fn finish(mut self) -> Result<ServerOptions, ConfigError> {
        if let Some(port) = self.monitoring_port {
            let host = self
                .monitoring_host
                .take()
                .unwrap_or_else(|| self.options.listen.host.clone());
            self.options.monitoring = port.map(|port| Listen { host, port });
        }
        self.check_pinned_accounts();
        self.check_imports();
        match self.errors.len() {
            0 => {
                self.options.warnings = self.warnings;
                Ok(self.options)
            }
            1 => Err(self.errors.remove(0)),
            _ => Err(ConfigError::Multiple(self.errors)),
        }
    }

    /// Dedicated routes are for accounts this server has.
    fn check_pinned_accounts(&mut self) {
        let (Some(position), Some(cluster)) =
            (&self.pinned_accounts_position, &self.options.cluster)
        else {
            return;
        };
        let system = self
            .options
            .system_account
            .as_deref()
            .unwrap_or(crate::account::SYSTEM_ACCOUNT);
        for name in &cluster.pinned_accounts {
            let known = name == crate::account::GLOBAL_ACCOUNT
                || name == system
                || self.options.accounts.contains(name);
            if !known {
                self.errors.push(invalid(
                    position,
                    format!("cluster accounts: account {name:?} is not defined"),
                ));
            }
        }
    }

    fn warn_unknown(&mut self, entry: &Entry) {
        if !entry.used_as_variable {
            self.warnings.push(ConfigWarning {
                message: format!("{}: unknown field {:?}", entry.key_position, entry.key),
            });
        }
    }

    fn unsupported(entry: &Entry) -> Result<(), ConfigError> {
        if is_switched_off(&entry.value) {
            return Ok(());
        }
        Err(ConfigError::Unsupported {
            position: entry.key_position.clone(),
            name: entry.key.clone(),
        })
    }

    /// Durations are Go duration strings; a bare number is read as seconds, with the warning
    /// nats-server gives for that older form.
    fn duration(&mut self, entry: &Entry) -> Result<Duration, ConfigError> {
        let position = &entry.value.position;
        match &entry.value.kind {
            ValueKind::String(text) => {
                let parsed = parse_duration(text).map_err(|reason| {
                    invalid(position, format!("error parsing {:?}: {reason}", entry.key))
                })?;
                if parsed.negative && !parsed.magnitude.is_zero() {
                    return Err(invalid(
                        position,
                        format!("{:?} can not be negative", entry.key),
                    ));
                }
                Ok(parsed.magnitude)
            }
            ValueKind::Integer(seconds) => {
                self.warnings.push(ConfigWarning {
                    message: format!(
                        "{}: invalid use of field {:?}: the number {seconds} is read as seconds; write a quoted duration such as \"{seconds}s\" (unquoted, 2m is the number 2000000)",
                        entry.key_position, entry.key
                    ),
                });
                u64::try_from(*seconds)
                    .map(Duration::from_secs)
                    .map_err(|_| invalid(position, format!("{:?} can not be negative", entry.key)))
            }
            _ => Err(wrong_type(
                entry,
                "a duration such as \"30s\" or a number of seconds",
            )),
        }
    }

    fn apply(&mut self, entry: &Entry) -> Result<(), ConfigError> {
        let position = &entry.value.position;
        let port_error = |message: String| invalid(position, message);
        let name = entry.key.to_ascii_lowercase();
        let options = &mut self.options;
        match name.as_str() {
            "listen" => {
                let (host, port) = host_and_port(entry)?;
                options.listen.port = client_port(port).map_err(port_error)?;
                options.listen.host = host.unwrap_or_else(|| defaults::HOST.to_string());
            }
            "host" | "net" => options.listen.host = string(entry)?,
            "port" => options.listen.port = client_port(integer(entry)?).map_err(port_error)?,
            "server_name" => options.server_name = Some(string(entry)?),
            "client_advertise" => options.client_advertise = Some(string(entry)?),
            "http" => {
                let (host, port) = host_and_port(entry)?;
                self.monitoring_port = Some(monitoring_port(port).map_err(port_error)?);
                self.monitoring_host = host;
            }
            "http_port" | "monitor_port" => {
                self.monitoring_port = Some(monitoring_port(integer(entry)?).map_err(port_error)?);
            }
            "max_control_line" => {
                options.max_control_line =
                    size(entry, MAX_CONTROL_LINE_LIMIT)?.unwrap_or(defaults::MAX_CONTROL_LINE);
            }
            "max_payload" => {
                options.max_payload =
                    size(entry, MAX_PAYLOAD_LIMIT)?.unwrap_or(defaults::MAX_PAYLOAD);
            }
            "max_pending" => {
                options.max_pending = size(entry, i64::MAX)?.unwrap_or(defaults::MAX_PENDING);
            }
            "max_connections" | "max_conn" => {
                // nats-server treats a negative limit as no limit.
                let limit = integer(entry)?;
                options.max_connections = match usize::try_from(limit) {
                    Ok(0) => defaults::MAX_CONNECTIONS,
                    Ok(limit) => limit,
                    Err(_) => usize::MAX,
                };
            }
            "max_subscriptions" | "max_subs" => {
                // Zero and negative both mean unlimited in nats-server.
                options.max_subscriptions = usize::try_from(integer(entry)?).unwrap_or(0);
            }
            "connection_rate_per_ip" => {
                options.connection_rate_per_ip = count_limit(entry)?.unwrap_or(0);
            }
            "ping_interval" => {
                let interval = self.duration(entry)?;
                self.options.ping_interval = non_zero_or(interval, defaults::PING_INTERVAL);
            }
            "ping_max" => {
                let count = integer(entry)?;
                options.ping_max = match u32::try_from(count) {
                    Ok(0) => defaults::PING_MAX,
                    Ok(count) => count,
                    Err(_) => {
                        return Err(invalid(
                            position,
                            format!(
                                "\"ping_max\" must be between 0 and {}, got {count}",
                                u32::MAX
                            ),
                        ))
                    }
                };
            }
            "write_deadline" => {
                let deadline = self.duration(entry)?;
                self.options.write_deadline = non_zero_or(deadline, defaults::WRITE_DEADLINE);
            }
            "lame_duck_duration" => {
                let duration = self.duration(entry)?;
                if duration < MINIMUM_LAME_DUCK_DURATION {
                    return Err(invalid(
                        position,
                        format!(
                            "invalid lame_duck_duration of {duration:?}: the minimum is {MINIMUM_LAME_DUCK_DURATION:?}"
                        ),
                    ));
                }
                self.options.lame_duck_duration = duration;
            }
            "lame_duck_grace_period" => {
                let grace = self.duration(entry)?;
                self.options.lame_duck_grace_period =
                    non_zero_or(grace, defaults::LAME_DUCK_GRACE_PERIOD);
            }
            "no_header_support" => options.no_header_support = boolean(entry)?,
            "authorization" => self.authorization(entry)?,
            "cluster" => self.cluster(entry)?,
            "accounts" => self.accounts(entry)?,
            "tls" => self.options.tls = Some(self.tls_block(entry, transport::TlsRole::Server)?),
            "allow_non_tls" => options.allow_non_tls = boolean(entry)?,
            "websocket" | "ws" => self.options.websocket = self.websocket_block(entry)?,
            "no_auth_user" => options.no_auth_user = Some(string(entry)?),
            "system_account" | "system" => options.system_account = Some(string(entry)?),
            "debug" => options.logging.debug = boolean(entry)?,
            "trace" => options.logging.trace = boolean(entry)?,
            "logtime" => options.logging.logtime = boolean(entry)?,
            "logtime_utc" => options.logging.logtime_utc = boolean(entry)?,
            "log_file" | "logfile" => options.logging.log_file = Some(path(entry)?),
            "pid_file" | "pidfile" => options.pid_file = Some(path(entry)?),
            "ports_file_dir" => options.ports_file_dir = Some(path(entry)?),
            "max_closed_clients" => {
                options.max_closed_clients =
                    size(entry, i64::MAX)?.unwrap_or(defaults::MAX_CLOSED_CLIENTS);
            }
            unsupported if UNSUPPORTED_OPTIONS.contains(&unsupported) => {
                return Self::unsupported(entry)
            }
            _ => self.warn_unknown(entry),
        }
        Ok(())
    }

    fn authorization(&mut self, entry: &Entry) -> Result<(), ConfigError> {
        let block = map(entry)?;
        let mut authorization = Authorization::default();
        let mut users = None;
        for item in block.entries() {
            let name = item.key.to_ascii_lowercase();
            let applied = match name.as_str() {
                "user" | "username" => string(item).map(|user| authorization.user = Some(user)),
                "pass" | "password" => {
                    string(item).map(|password| authorization.password = Some(password))
                }
                "token" => string(item).map(|token| authorization.token = Some(token)),
                "timeout" => {
                    authorization_timeout(item).map(|timeout| authorization.timeout = timeout)
                }
                "users" => self.users(item).map(|list| users = Some(list)),
                // nats-server reads `permissions` here as the users' default permissions.
                "default_permissions" | "default_permission" | "permissions" => self
                    .permissions(item)
                    .map(|permissions| authorization.default_permissions = Some(permissions)),
                unsupported if UNSUPPORTED_AUTHORIZATION_OPTIONS.contains(&unsupported) => {
                    Self::unsupported(item)
                }
                _ => {
                    self.warn_unknown(item);
                    Ok(())
                }
            };
            if let Err(error) = applied {
                self.errors.push(error);
            }
        }
        let position = &entry.value.position;
        let has_single_user = authorization.user.is_some() || authorization.password.is_some();
        if has_single_user && authorization.token.is_some() {
            return Err(invalid(
                position,
                "can not have both a user/password and a token",
            ));
        }
        if users.is_some() && authorization.user.is_some() {
            return Err(invalid(
                position,
                "can not have both a single user/password and a users array",
            ));
        }
        if users.is_some() && authorization.token.is_some() {
            return Err(invalid(
                position,
                "can not have both a token and a users array",
            ));
        }
        if authorization.default_permissions.is_some() && users.is_none() {
            self.warnings.push(ConfigWarning {
                message: format!(
                    "{}: default permissions apply only to the users of a users array; the single user or token has no permissions",
                    entry.key_position
                ),
            });
        }
        (authorization.users, authorization.nkey_users) = users.unwrap_or_default();
        // Users declared in `accounts { }` (which may come first in the file) stay.
        let previous = std::mem::take(&mut self.options.authorization);
        authorization.users.extend(
            previous
                .users
                .into_iter()
                .filter(|user| user.account.is_some()),
        );
        authorization.nkey_users.extend(
            previous
                .nkey_users
                .into_iter()
                .filter(|user| user.account.is_some()),
        );
        self.options.authorization = authorization;
        Ok(())
    }

    /// Users with a name and password, and users with an NKEY.
    fn users(&mut self, entry: &Entry) -> Result<(Vec<User>, Vec<NkeyUser>), ConfigError> {
        let ValueKind::Array(items) = &entry.value.kind else {
            return Err(wrong_type(entry, "an array of users"));
        };
        let mut users: Vec<User> = Vec::with_capacity(items.len());
        let mut nkey_users: Vec<NkeyUser> = Vec::new();
        let mut seen = HashSet::with_capacity(items.len());
        for item in items {
            let ValueKind::Map(fields) = &item.kind else {
                self.errors.push(invalid(
                    &item.position,
                    format!("a user entry must be a map, got {}", item.kind.type_name()),
                ));
                continue;
            };
            let mut user = None;
            let mut password = None;
            let mut nkey = None;
            let mut permissions = None;
            let mut max_connections = None;
            for field in fields.entries() {
                let name = field.key.to_ascii_lowercase();
                let applied = match name.as_str() {
                    "max_connections" | "max_conn" => {
                        count_limit(field).map(|limit| max_connections = limit)
                    }
                    "user" | "username" => string(field).map(|text| user = Some(text)),
                    "pass" | "password" => string(field).map(|text| password = Some(text)),
                    "nkey" => string(field).map(|text| nkey = Some(text)),
                    "permission" | "permissions" | "authorization" => self
                        .permissions(field)
                        .map(|parsed| permissions = Some(parsed)),
                    unsupported if UNSUPPORTED_USER_OPTIONS.contains(&unsupported) => {
                        Self::unsupported(field)
                    }
                    _ => {
                        self.warn_unknown(field);
                        Ok(())
                    }
                };
                if let Err(error) = applied {
                    self.errors.push(error);
                }
            }
            if let Some(nkey) = nkey {
                let problem = if user.is_some() || password.is_some() {
                    Some("nkey users do not take user names or passwords".to_string())
                } else if !is_valid_user_public_key(&nkey) {
                    Some(format!("{nkey:?} is not a valid public nkey for a user"))
                } else if !seen.insert(nkey.clone()) {
                    Some(format!("duplicate nkey {nkey:?}"))
                } else {
                    None
                };
                match problem {
                    Some(message) => self.errors.push(invalid(&item.position, message)),
                    None => nkey_users.push(NkeyUser {
                        nkey,
                        permissions,
                        account: None,
                        max_connections,
                    }),
                }
                continue;
            }
            let Some(user) = user else {
                self.errors
                    .push(invalid(&item.position, "a user entry requires a user"));
                continue;
            };
            if !seen.insert(user.clone()) {
                self.errors
                    .push(invalid(&item.position, format!("duplicate user {user:?}")));
                continue;
            }
            users.push(User {
                user,
                password: password.unwrap_or_default(),
                permissions,
                account: None,
                max_connections,
            });
        }
        Ok((users, nkey_users))
    }
}

/// How the errors of one seconds-or-duration option read (nats-server words them per option).
pub(super) struct TimeoutWording<'a> {
    pub negative: &'a str,
    pub parse_prefix: &'a str,
    pub invalid_prefix: &'a str,
}

/// Seconds as a number (fractions allowed, as in nats-server) or a Go duration string.
pub(super) fn seconds_or_duration(
    entry: &Entry,
    wording: &TimeoutWording<'_>,
) -> Result<Duration, ConfigError> {
    let position = &entry.value.position;
    let negative = || invalid(position, wording.negative);
    match &entry.value.kind {
        ValueKind::Integer(seconds) => u64::try_from(*seconds)
            .map(Duration::from_secs)
            .map_err(|_| negative()),
        ValueKind::Float(seconds) if *seconds < 0.0 => Err(negative()),
        ValueKind::Float(seconds) => Duration::try_from_secs_f64(*seconds)
            .map_err(|_| invalid(position, format!("{}{seconds}", wording.invalid_prefix))),
        ValueKind::String(text) => {
            let parsed = parse_duration(text)
                .map_err(|reason| invalid(position, format!("{}{reason}", wording.parse_prefix)))?;
            if parsed.negative && !parsed.magnitude.is_zero() {
                return Err(negative());
            }
            Ok(parsed.magnitude)
        }
        _ => Err(wrong_type(
            entry,
            "a number of seconds or a duration string",
        )),
    }
}

/// The authorization timeout; zero means the default.
fn authorization_timeout(entry: &Entry) -> Result<Option<Duration>, ConfigError> {
    let timeout = seconds_or_duration(
        entry,
        &TimeoutWording {
            negative: "authorization timeout can not be negative",
            parse_prefix: "error parsing authorization timeout: ",
            invalid_prefix: "invalid authorization timeout ",
        },
    )?;
    Ok((!timeout.is_zero()).then_some(timeout))
}

fn non_zero_or(duration: Duration, default: Duration) -> Duration {
    if duration.is_zero() {
        default
    } else {
        duration
    }
}

#[cfg(test)]
#[path = "options_tests.rs"]
mod tests;
