//! The validated `tls { }` and `websocket { }` options, as the config file and the command
//! line produce them.
//!
//! These are plain values: paths are not opened here. [`crate::transport::tls::ServerTls`] and
//! [`crate::transport::websocket::WebSocketSettings`] turn them into live settings (reading the
//! certificate files), at startup and again on every reload. Defaults are nats-server's.

use std::path::PathBuf;
use std::time::Duration;

use crate::options::{Authorization, Listen};

/// nats-server's defaults for these blocks.
pub mod defaults {
    use std::time::Duration;

    /// `tls { timeout }`: how long a TLS handshake may take.
    pub const TLS_TIMEOUT: Duration = Duration::from_secs(2);
    /// `handshake_first: auto`: how long to wait for a TLS ClientHello before sending INFO.
    pub const HANDSHAKE_FIRST_FALLBACK_DELAY: Duration = Duration::from_millis(50);
    /// `websocket { handshake_timeout }`. nats-server leaves the HTTP upgrade unbounded when it
    /// is not set; Tern bounds it with the TLS timeout's value instead.
    pub const WEBSOCKET_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);
}

/// The lowest TLS protocol version accepted (`min_version`). rustls implements 1.2 and 1.3
/// only, so nats-server's `"1.0"` and `"1.1"` are refused when the config is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsVersion {
    #[default]
    Tls12,
    Tls13,
}

impl TlsVersion {
    /// Parses nats-server's spelling (`"1.2"`, `"1.3"`).
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "1.2" => Some(Self::Tls12),
            "1.3" => Some(Self::Tls13),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tls12 => "1.2",
            Self::Tls13 => "1.3",
        }
    }
}

/// `tls { handshake_first }`: whether client connections start with TLS instead of INFO.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HandshakeFirst {
    /// INFO in plain text first, then TLS (the NATS default).
    #[default]
    Off,
    /// TLS first; INFO is sent inside TLS once the handshake is done.
    On,
    /// TLS first if the client speaks within the delay; otherwise INFO in plain text, then TLS
    /// as usual (`"300ms"`, or `auto` for 50ms).
    Fallback(Duration),
}

/// One `tls { }` block: the top-level one for clients, or one inside `websocket`, `cluster`,
/// `leafnodes`... (the same fields serve the server side and the client side).
#[derive(Debug, Clone, PartialEq)]
pub struct TlsOptions {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    /// Require and verify a client certificate (server side).
    pub verify: bool,
    /// `verify_and_map`: also map the certificate's identity to a user (implies `verify`).
    /// Recorded only: the mapping belongs to authentication.
    pub verify_and_map: bool,
    /// Do not verify the server's certificate (client side only).
    pub insecure: bool,
    pub timeout: Duration,
    pub handshake_first: HandshakeFirst,
    pub min_version: TlsVersion,
    /// Restricts the suites offered; empty means rustls' defaults. TLS 1.3 suites are only
    /// restricted when the list names at least one of them (Go ignores the list for 1.3).
    pub cipher_suites: Vec<rustls::CipherSuite>,
}

impl Default for TlsOptions {
    fn default() -> Self {
        Self {
            cert_file: None,
            key_file: None,
            ca_file: None,
            verify: false,
            verify_and_map: false,
            insecure: false,
            timeout: defaults::TLS_TIMEOUT,
            handshake_first: HandshakeFirst::Off,
            min_version: TlsVersion::Tls12,
            cipher_suites: Vec::new(),
        }
    }
}

/// The `websocket { }` (alias `ws`) block.
#[derive(Debug, Clone, PartialEq)]
pub struct WebSocketOptions {
    /// `port: None` asks the OS for a port (`-1`).
    pub listen: Listen,
    pub advertise: Option<String>,
    /// Serve plain `ws://`; without it a `tls` block is required.
    pub no_tls: bool,
    pub tls: Option<TlsOptions>,
    /// Refuse upgrades whose `Origin` differs from the request's `Host`.
    pub same_origin: bool,
    /// Origins (`scheme://host[:port]`) that may upgrade; empty accepts any.
    pub allowed_origins: Vec<String>,
    /// Agree to permessage-deflate with clients that offer it.
    pub compression: bool,
    pub handshake_timeout: Duration,
    /// `websocket { authorization { user, password, token, timeout } }`: overrides the
    /// top-level authorization for WebSocket clients.
    pub authorization: Option<Authorization>,
    pub no_auth_user: Option<String>,
    pub user_cookie: Option<String>,
    pub pass_cookie: Option<String>,
    pub token_cookie: Option<String>,
    /// Extra headers sent in the upgrade response.
    pub headers: Vec<(String, String)>,
}

impl Default for WebSocketOptions {
    fn default() -> Self {
        Self {
            listen: Listen {
                host: crate::options::defaults::HOST.to_string(),
                port: Some(0),
            },
            advertise: None,
            no_tls: false,
            tls: None,
            same_origin: false,
            allowed_origins: Vec::new(),
            compression: false,
            handshake_timeout: defaults::WEBSOCKET_HANDSHAKE_TIMEOUT,
            authorization: None,
            no_auth_user: None,
            user_cookie: None,
            pass_cookie: None,
            token_cookie: None,
            headers: Vec::new(),
        }
    }
}
