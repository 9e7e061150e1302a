//! Authentication and permissions: CONNECT credentials → an authenticated user and what that
//! user may publish and subscribe to. Pure: no I/O, no clock except where passed in.
//!
//! Contract (nats-server's `processClientOrLeafAuthentication`):
//! - [`Authenticator`] is built once from the options (and again on reload) and shared.
//! - Without `authorization`, everyone is let in as an anonymous user with no permissions.
//! - `token`: CONNECT `auth_token` must equal it (plain or bcrypt).
//! - `user`/`password`: CONNECT `user` must equal it and `pass` must match (plain or bcrypt).
//!   Such a single user has no permissions: `authorization { permissions }` is nats-server's
//!   alias of `default_permissions`, which applies to `users` entries only.
//! - `users`: when NKEY users exist and CONNECT carries `nkey`, that key must be one of them
//!   and `sig` must be its ed25519 signature of the INFO nonce (so INFO must carry a nonce
//!   whenever NKEY users exist: [`needs_nonce`]). Otherwise CONNECT `user` selects a user whose
//!   password must match. A CONNECT with no user, password or token is bound to
//!   `no_auth_user` when set, without a password check.
//! - A user's permissions are its own, else `default_permissions`, else none (everything
//!   allowed).
//! - Every refusal answers the client with the same `Authorization Violation`
//!   ([`AuthError::client_message`]); the error itself says why, for the server log, and
//!   never contains a password, token or signature. [`Credentials`] redacts them in `Debug`.
//! - Checking a bcrypt password takes tens to hundreds of milliseconds by design: call
//!   [`Authenticator::authenticate`] on a blocking thread ([`Authenticator::may_be_slow`]).

pub mod certificate;
mod nkey;
mod password;
mod permissions;
mod responses;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::options::{Authorization, ServerOptions};
use crate::protocol::info::ConnectOptions;
use crate::transport::websocket::CookieCredentials;

pub use nkey::{is_valid_user_public_key, NkeyError, UserPublicKey};
pub use password::{constant_time_equal, is_bcrypt, StoredPassword};
pub use permissions::{
    PermissionChecker, PermissionEntry, PermissionError, Permissions, SubjectPermission,
    DELIVERY_CACHE_CAPACITY, PUBLISH_CACHE_CAPACITY,
};
pub use responses::{
    ResponsePermission, ResponseTracker, DEFAULT_MAX_RESPONSES, DEFAULT_RESPONSE_EXPIRY,
    DEFAULT_TRACKED_REPLIES,
};

/// The text of every authentication refusal on the wire.
pub const AUTHORIZATION_VIOLATION: &str = "Authorization Violation";

/// Why a CONNECT was refused. The client only ever sees [`AUTHORIZATION_VIOLATION`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no credentials were presented")]
    MissingCredentials,
    #[error("unknown user {user:?}")]
    UnknownUser { user: String },
    #[error("wrong password for user {user:?}")]
    WrongPassword { user: String },
    #[error("wrong token")]
    WrongToken,
    #[error("unknown nkey {nkey:?}")]
    UnknownNkey { nkey: String },
    #[error("nkey {nkey:?} sent no signature")]
    MissingSignature { nkey: String },
    #[error("nkey {nkey:?} can not be checked: no nonce was sent in INFO")]
    MissingNonce { nkey: String },
    #[error("nkey {nkey:?}: {source}")]
    Nkey { nkey: String, source: NkeyError },
    #[error("user required in certificate, but no client certificate was presented")]
    NoCertificate,
    #[error("user in certificate [{subject}] not found")]
    UnmappedCertificate { subject: String },
    #[error("user {user:?} requires a client certificate")]
    CertificateRequired { user: String },
}

impl AuthError {
    /// What the client is told (inside `-ERR '...'`), whatever the reason.
    pub fn client_message(&self) -> &'static str {
        AUTHORIZATION_VIOLATION
    }
}

/// What a client presented in CONNECT. Empty strings mean "not sent".
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
    pub token: String,
    pub nkey: String,
    /// CONNECT `sig`: the signature of the INFO nonce, base64.
    pub signature: String,
    /// The identity in the client's TLS certificate, when its listener maps certificates.
    pub certificate: Option<Arc<certificate::CertificateIdentity>>,
}

impl Credentials {
    /// Fills what CONNECT did not send from a WebSocket client's cookies, as nats-server does.
    pub fn with_cookies(mut self, cookies: Option<&CookieCredentials>) -> Self {
        let Some(cookies) = cookies else {
            return self;
        };
        let fill = |field: &mut String, cookie: &Option<String>| {
            if field.is_empty() {
                if let Some(value) = cookie {
                    field.clone_from(value);
                }
            }
        };
        fill(&mut self.user, &cookies.user);
        fill(&mut self.password, &cookies.password);
        fill(&mut self.token, &cookies.token);
        self
    }

    /// Whether nothing that identifies a user was sent (what `no_auth_user` applies to).
    fn is_anonymous(&self) -> bool {
        self.user.is_empty() && self.password.is_empty() && self.token.is_empty()
    }
}

impl From<&ConnectOptions> for Credentials {
    fn from(connect: &ConnectOptions) -> Self {
        Self {
            user: connect.username.clone(),
            password: connect.password.clone(),
            token: connect.auth_token.clone(),
            nkey: connect.nkey.clone(),
            signature: connect.sig.clone(),
            certificate: None,
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |secret: &str| if secret.is_empty() { "" } else { "<redacted>" };
        formatter
            .debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &redacted(&self.password))
            .field("token", &redacted(&self.token))
            .field("nkey", &self.nkey)
            .field("signature", &redacted(&self.signature))
            .field("certificate", &self.certificate.is_some())
            .finish()
    }
}

/// How a connection proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthenticationMethod {
    /// No authorization is configured.
    None,
    Token,
    /// The single `authorization { user, password }`.
    SingleUser,
    /// An entry of `users` with a password.
    User,
    /// A connection without credentials bound to `no_auth_user`.
    NoAuthUser,
    Nkey,
    /// A user picked by the client certificate (`verify_and_map`).
    Certificate,
}

/// Who a connection is and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedUser {
    /// The user name; for NKEY users the public key; empty for token and open servers.
    pub name: String,
    pub method: AuthenticationMethod,
    /// `None`: everything is allowed.
    pub permissions: Option<Arc<Permissions>>,
    /// The account the connection binds to; `None` is the global account.
    pub account: Option<String>,
    /// Open connections this user may have on this server; `None` is no limit.
    pub max_connections: Option<u32>,
}

impl AuthenticatedUser {
    /// A checker for the connection's session, when it has permissions to check.
    pub fn permission_checker(&self) -> Option<PermissionChecker> {
        self.permissions.clone().map(PermissionChecker::new)
    }
}

#[derive(Debug)]
struct PasswordUser {
    password: StoredPassword,
    permissions: Option<Arc<Permissions>>,
    account: Option<String>,
    max_connections: Option<u32>,
}

#[derive(Debug)]
struct NkeyEntry {
    permissions: Option<Arc<Permissions>>,
    account: Option<String>,
    max_connections: Option<u32>,
}

#[derive(Debug)]
enum Mode {
    Open,
    Token(StoredPassword),
    SingleUser {
        user: String,
        password: StoredPassword,
    },
    Users {
        users: HashMap<String, PasswordUser>,
        nkeys: HashMap<String, NkeyEntry>,
        no_auth_user: Option<String>,
    },
}

/// Checks CONNECT credentials against the configured authorization.
#[derive(Debug)]
pub struct Authenticator {
    mode: Mode,
    /// `verify_and_map` on this listener: users come from client certificates.
    maps_certificates: bool,
    /// `verify_and_map` on some listener: a user without a password is then a certificate
    /// identity, never a password login elsewhere.
    any_listener_maps: bool,
}

impl Authenticator {
    /// From the server's options: `authorization` and `no_auth_user`.
    pub fn from_options(options: &ServerOptions) -> Self {
        Self::new(&options.authorization, options.no_auth_user.as_deref())
            .with_certificate_mapping(client_port_maps(options), any_listener_maps(options))
    }

    /// Sets whether this listener maps certificates to users, and whether any listener does.
    pub fn with_certificate_mapping(mut self, here: bool, anywhere: bool) -> Self {
        self.maps_certificates = here;
        self.any_listener_maps = anywhere || here;
        self
    }

    /// The authenticator of WebSocket clients when the `websocket {}` block overrides
    /// authentication (its own user, token or `no_auth_user`, as nats-server decides), else
    /// `None`: WebSocket clients then authenticate as on the client port. An override keeps the
    /// `users` lists and takes the block's user, password, token and `no_auth_user` (none if
    /// the block sets none) instead of the top-level ones.
    pub fn for_websocket(options: &ServerOptions) -> Option<Self> {
        let websocket = options.websocket.as_ref()?;
        let own = websocket.authorization.clone().unwrap_or_default();
        let maps = websocket.tls.as_ref().is_some_and(|tls| tls.verify_and_map);
        let overrides =
            own.user.is_some() || own.token.is_some() || websocket.no_auth_user.is_some();
        if !overrides {
            // `verify_and_map` is the listener's own, as in nats-server.
            return (maps != client_port_maps(options)).then(|| {
                Self::new(&options.authorization, options.no_auth_user.as_deref())
                    .with_certificate_mapping(maps, any_listener_maps(options))
            });
        }
        let mut authorization = options.authorization.clone();
        authorization.user = own.user;
        authorization.password = own.password;
        authorization.token = own.token;
        if own.timeout.is_some() {
            authorization.timeout = own.timeout;
        }
        Some(
            Self::new(&authorization, websocket.no_auth_user.as_deref())
                .with_certificate_mapping(maps, any_listener_maps(options)),
        )
    }

    pub fn new(authorization: &Authorization, no_auth_user: Option<&str>) -> Self {
        let has_users = !authorization.users.is_empty() || !authorization.nkey_users.is_empty();
        let mode = if has_users {
            let defaults = authorization.default_permissions.clone().map(Arc::new);
            let with_defaults = |own: &Option<Permissions>| match own {
                Some(own) => Some(Arc::new(own.clone())),
                None => defaults.clone(),
            };
            Mode::Users {
                users: authorization
                    .users
                    .iter()
                    .map(|user| {
                        let entry = PasswordUser {
                            password: StoredPassword::new(user.password.clone()),
                            permissions: with_defaults(&user.permissions),
                            account: user.account.clone(),
                            max_connections: user.max_connections,
                        };
                        (user.user.clone(), entry)
                    })
                    .collect(),
                nkeys: authorization
                    .nkey_users
                    .iter()
                    .map(|user| {
                        let entry = NkeyEntry {
                            permissions: with_defaults(&user.permissions),
                            account: user.account.clone(),
                            max_connections: user.max_connections,
                        };
                        (user.nkey.clone(), entry)
                    })
                    .collect(),
                no_auth_user: no_auth_user.map(str::to_string),
            }
        } else if let Some(token) = &authorization.token {
            Mode::Token(StoredPassword::new(token.clone()))
        } else if let Some(user) = &authorization.user {
            Mode::SingleUser {
                user: user.clone(),
                password: StoredPassword::new(authorization.password.clone().unwrap_or_default()),
            }
        } else {
            Mode::Open
        };
        Self {
            mode,
            maps_certificates: false,
            any_listener_maps: false,
        }
    }

    /// Whether clients must present credentials (INFO `auth_required`, unless `no_auth_user`).
    pub fn is_required(&self) -> bool {
        !matches!(self.mode, Mode::Open)
    }

    /// Whether users come from client certificates on this listener (`verify_and_map`).
    pub fn maps_certificates(&self) -> bool {
        self.maps_certificates
    }

    /// Whether INFO must carry a `nonce` for clients to sign.
    pub fn needs_nonce(&self) -> bool {
        matches!(&self.mode, Mode::Users { nkeys, .. } if !nkeys.is_empty())
    }

    /// Whether checking these credentials may verify a bcrypt hash (slow by design).
    pub fn may_be_slow(&self) -> bool {
        match &self.mode {
            Mode::Open => false,
            Mode::Token(password) | Mode::SingleUser { password, .. } => password.is_bcrypt(),
            Mode::Users { users, .. } => users.values().any(|user| user.password.is_bcrypt()),
        }
    }

    /// Checks `credentials`; `nonce` is the one sent in this connection's INFO, if any.
    pub fn authenticate(
        &self,
        credentials: &Credentials,
        nonce: Option<&str>,
    ) -> Result<AuthenticatedUser, AuthError> {
        match &self.mode {
            Mode::Open => Ok(AuthenticatedUser {
                name: String::new(),
                method: AuthenticationMethod::None,
                permissions: None,
                account: None,
                max_connections: None,
            }),
            Mode::Token(token) => {
                if credentials.token.is_empty() {
                    return Err(AuthError::MissingCredentials);
                }
                if !token.matches(&credentials.token) {
                    return Err(AuthError::WrongToken);
                }
                Ok(AuthenticatedUser {
                    name: String::new(),
                    method: AuthenticationMethod::Token,
                    permissions: None,
                    account: None,
                    max_connections: None,
                })
            }
            Mode::SingleUser { user, password } => {
                if credentials.user.is_empty() {
                    return Err(AuthError::MissingCredentials);
                }
                if credentials.user != *user {
                    return Err(AuthError::UnknownUser {
                        user: credentials.user.clone(),
                    });
                }
                if !password.matches(&credentials.password) {
                    return Err(AuthError::WrongPassword { user: user.clone() });
                }
                Ok(AuthenticatedUser {
                    name: user.clone(),
                    method: AuthenticationMethod::SingleUser,
                    permissions: None,
                    account: None,
                    max_connections: None,
                })
            }
            Mode::Users {
                users,
                nkeys,
                no_auth_user,
            } => {
                if !nkeys.is_empty() && !credentials.nkey.is_empty() {
                    return authenticate_nkey(nkeys, credentials, nonce);
                }
                if self.maps_certificates && !users.is_empty() {
                    return authenticate_certificate(users, credentials);
                }
                if credentials.is_anonymous() {
                    if let Some(name) = no_auth_user {
                        if let Some(user) = users.get(name) {
                            return Ok(AuthenticatedUser {
                                name: name.clone(),
                                method: AuthenticationMethod::NoAuthUser,
                                permissions: user.permissions.clone(),
                                account: user.account.clone(),
                                max_connections: user.max_connections,
                            });
                        }
                    }
                    return Err(AuthError::MissingCredentials);
                }
                let Some(user) = users.get(&credentials.user) else {
                    return Err(AuthError::UnknownUser {
                        user: credentials.user.clone(),
                    });
                };
                let certificate_only = self.any_listener_maps
                    && user.password.is_empty()
                    && no_auth_user.as_deref() != Some(credentials.user.as_str());
                if certificate_only {
                    return Err(AuthError::CertificateRequired {
                        user: credentials.user.clone(),
                    });
                }
                if !user.password.matches(&credentials.password) {
                    return Err(AuthError::WrongPassword {
                        user: credentials.user.clone(),
                    });
                }
                Ok(AuthenticatedUser {
                    name: credentials.user.clone(),
                    method: AuthenticationMethod::User,
                    permissions: user.permissions.clone(),
                    account: user.account.clone(),
                    max_connections: user.max_connections,
                })
            }
        }
    }
}

/// `verify_and_map`: the certificate picks the user; a password the user has must still be
/// sent (nats-server compares it too, and a mapped user usually has none).
fn authenticate_certificate(
    users: &HashMap<String, PasswordUser>,
    credentials: &Credentials,
) -> Result<AuthenticatedUser, AuthError> {
    let identity = credentials
        .certificate
        .as_ref()
        .ok_or(AuthError::NoCertificate)?;
    let name = identity
        .map_user(users.keys().map(String::as_str), |name| {
            users.contains_key(name)
        })
        .ok_or_else(|| AuthError::UnmappedCertificate {
            subject: identity.subject.to_string(),
        })?;
    let Some(user) = users.get(&name) else {
        return Err(AuthError::UnknownUser { user: name });
    };
    if !user.password.matches(&credentials.password) {
        return Err(AuthError::WrongPassword { user: name });
    }
    Ok(AuthenticatedUser {
        name,
        method: AuthenticationMethod::Certificate,
        permissions: user.permissions.clone(),
        account: user.account.clone(),
        max_connections: user.max_connections,
    })
}

fn client_port_maps(options: &ServerOptions) -> bool {
    options.tls.as_ref().is_some_and(|tls| tls.verify_and_map)
}

fn any_listener_maps(options: &ServerOptions) -> bool {
    let websocket_maps = options
        .websocket
        .as_ref()
        .and_then(|websocket| websocket.tls.as_ref())
        .is_some_and(|tls| tls.verify_and_map);
    client_port_maps(options) || websocket_maps
}

fn authenticate_nkey(
    nkeys: &HashMap<String, NkeyEntry>,
    credentials: &Credentials,
    nonce: Option<&str>,
) -> Result<AuthenticatedUser, AuthError> {
    let nkey = &credentials.nkey;
    let Some(entry) = nkeys.get(nkey) else {
        return Err(AuthError::UnknownNkey { nkey: nkey.clone() });
    };
    if credentials.signature.is_empty() {
        return Err(AuthError::MissingSignature { nkey: nkey.clone() });
    }
    let Some(nonce) = nonce else {
        return Err(AuthError::MissingNonce { nkey: nkey.clone() });
    };
    let nkey_error = |source| AuthError::Nkey {
        nkey: nkey.clone(),
        source,
    };
    let key = UserPublicKey::parse(nkey).map_err(nkey_error)?;
    key.verify_nonce(nonce.as_bytes(), &credentials.signature)
        .map_err(nkey_error)?;
    Ok(AuthenticatedUser {
        name: nkey.clone(),
        method: AuthenticationMethod::Nkey,
        permissions: entry.permissions.clone(),
        account: entry.account.clone(),
        max_connections: entry.max_connections,
    })
}

/// Whether INFO must carry a `nonce`: some user authenticates with an NKEY.
pub fn needs_nonce(authorization: &Authorization) -> bool {
    !authorization.nkey_users.is_empty()
}

#[cfg(test)]
#[path = "authenticator_tests.rs"]
mod tests;
