//! The server side of NATS over WebSocket: the HTTP/1.1 upgrade, checked the way nats-server
//! checks it, then a [`WebSocketTransport`] that carries the NATS byte stream.
//!
//! Contract of [`accept_websocket`]: HTTPS first when the listener has TLS, then one HTTP
//! request, all within `handshake_timeout`. The request must be `GET` with `Host`,
//! `Upgrade: websocket`, `Connection: Upgrade`, a `Sec-WebSocket-Key` and
//! `Sec-WebSocket-Version: 13`; `Origin` is checked when `same_origin` or `allowed_origins` is
//! set (a request without `Origin` passes, as in nats-server). A refused request gets
//! nats-server's status (405, 400, 403) with a plain-text body and the connection closes; so
//! does a client that sends data before the 101 answer. The path picks the connection kind:
//! `/leafnode…` and `/mqtt…` prefixes, anything else is a NATS client.
//!
//! The 101 answer echoes `Nats-No-Masking: true` when the client asked (the server then
//! accepts unmasked frames), agrees to permessage-deflate (without context takeover, as
//! nats-server words it) when `compression` is set and the client offered it, and adds the
//! configured `headers`. `X-Forwarded-For` (a single valid IP) and the configured credential
//! cookies are returned for authentication. The frames themselves are
//! [`super::websocket_frame`]'s.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::options::WebSocketOptions;
use super::tls::{ServerTls, TlsError};
use super::websocket_frame::Role;
use super::websocket_stream::{
    Agreement, WebSocketTransport, PERMESSAGE_DEFLATE, PERMESSAGE_DEFLATE_RESPONSE,
};
use super::Transport;

/// The upgrade request (request line and headers) may not be larger than this.
pub const MAX_UPGRADE_REQUEST_SIZE: usize = 16 * 1024;
/// Headers in the upgrade request, at most.
const MAX_UPGRADE_HEADERS: usize = 64;
/// The largest WebSocket message accepted, whatever `max_payload` says.
pub const MAX_MESSAGE_SIZE_CAP: usize = 64 * 1024 * 1024;

/// Why a WebSocket connection was not established.
#[derive(Debug, thiserror::Error)]
pub enum WebSocketError {
    #[error("websocket handshake error: {reason}")]
    Rejected { status: u16, reason: String },

    #[error("websocket handshake timeout (after {0:?})")]
    HandshakeTimeout(Duration),

    #[error("websocket: error reading the upgrade request: {0}")]
    Read(io::Error),

    #[error("websocket: error writing the upgrade response: {0}")]
    Write(io::Error),

    #[error("websocket: allowed origin {origin:?} is not a URL of the form scheme://host[:port]")]
    InvalidAllowedOrigin { origin: String },

    #[error(
        "websocket: header {name:?} can not be sent: names and values must be single-line text"
    )]
    InvalidHeader { name: String },

    #[error("websocket client handshake failed: {0}")]
    Client(String),

    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// A WebSocket listener's settings, built once from the options (and again on reload).
#[derive(Debug, Clone)]
pub struct WebSocketSettings {
    tls: Option<ServerTls>,
    same_origin: bool,
    allowed_origins: Vec<Origin>,
    handshake_timeout: Duration,
    max_message_size: usize,
    /// Agree to permessage-deflate when a client offers it.
    compression: bool,
    headers: Vec<(String, String)>,
    user_cookie: Option<String>,
    pass_cookie: Option<String>,
    token_cookie: Option<String>,
}

impl WebSocketSettings {
    /// Loads the TLS files (when a `tls` block is given, whatever `no_tls` says, as
    /// nats-server does) and parses the allowed origins. The message size bound is eight
    /// times a maximal operation, capped at [`MAX_MESSAGE_SIZE_CAP`]: clients put several
    /// operations in one message, and a frame may not split an operation's reading.
    pub fn from_options(
        options: &WebSocketOptions,
        max_payload: usize,
        max_control_line: usize,
    ) -> Result<Self, WebSocketError> {
        let tls = options
            .tls
            .as_ref()
            .map(ServerTls::from_options)
            .transpose()?;
        let allowed_origins = options
            .allowed_origins
            .iter()
            .map(|origin| {
                Origin::parse(origin).ok_or_else(|| WebSocketError::InvalidAllowedOrigin {
                    origin: origin.clone(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        for (name, value) in &options.headers {
            let single_line = |text: &str| !text.is_empty() && !text.contains(['\r', '\n']);
            if !single_line(name) || name.contains(':') || value.contains(['\r', '\n']) {
                return Err(WebSocketError::InvalidHeader { name: name.clone() });
            }
        }
        let operation = max_payload.saturating_add(max_control_line);
        Ok(Self {
            tls,
            same_origin: options.same_origin,
            allowed_origins,
            handshake_timeout: options.handshake_timeout,
            max_message_size: operation.saturating_mul(8).min(MAX_MESSAGE_SIZE_CAP),
            compression: options.compression,
            headers: options.headers.clone(),
            user_cookie: options.user_cookie.clone(),
            pass_cookie: options.pass_cookie.clone(),
            token_cookie: options.token_cookie.clone(),
        })
    }

    /// Whether the listener serves `wss://`.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }
}

/// Whether `text` is an origin that `allowed_origins` can hold (`scheme://host[:port]`).
pub fn is_valid_origin(text: &str) -> bool {
    Origin::parse(text).is_some()
}

/// What the path of the upgrade request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebSocketPath {
    Client,
    Leafnode,
    Mqtt,
}

/// Credentials the client sent as cookies (names from `user_cookie`, `pass_cookie`,
/// `token_cookie`); used when CONNECT lacks them. `Debug` never shows the values.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CookieCredentials {
    pub user: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
}

impl fmt::Debug for CookieCredentials {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |value: &Option<String>| value.as_ref().map(|_| "<redacted>");
        formatter
            .debug_struct("CookieCredentials")
            .field("user", &shown(&self.user))
            .field("password", &shown(&self.password))
            .field("token", &shown(&self.token))
            .finish()
    }
}

/// An upgraded connection and what its request said.
#[derive(Debug)]
pub struct WebSocketUpgrade {
    /// A [`Transport::WebSocket`]; the session sends INFO on it as its first frame.
    pub transport: Transport,
    pub path: WebSocketPath,
    /// From `X-Forwarded-For`, when it holds one valid IP address.
    pub client_ip: Option<IpAddr>,
    /// `User-Agent` starts with `Mozilla/`: frames are kept to 4 KiB for browsers.
    pub browser: bool,
    pub credentials: CookieCredentials,
}

/// An allowed origin, or the origin of a request: lower-case host, explicit port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    /// `scheme://host[:port][/...]`; the default port follows the scheme (443 for https).
    fn parse(text: &str) -> Option<Self> {
        let (scheme, rest) = text.split_once("://")?;
        let authority = rest.split(['/', '?', '#']).next()?;
        if scheme.is_empty() || authority.is_empty() || authority.contains('@') {
            return None;
        }
        let scheme = scheme.to_ascii_lowercase();
        let (host, port) = split_host_port(authority, scheme == "https")?;
        Some(Self { scheme, host, port })
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`, with the default port for `tls`.
fn split_host_port(authority: &str, tls: bool) -> Option<(String, u16)> {
    let default_port = if tls { 443 } else { 80 };
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']')?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => return None,
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some(port) => port.parse().ok()?,
        None => default_port,
    };
    Some((host.to_ascii_lowercase(), port))
}

/// The parts of the upgrade request the checks need.
#[derive(Debug, Default)]
struct UpgradeRequest {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

/// The first `name` header's value (names compare without case).
pub(super) fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

/// Whether any `name` header lists `token` (comma-separated, case-insensitive; parameters
/// after `;` are not compared, so `permessage-deflate; ...` lists `permessage-deflate`).
pub(super) fn header_lists(headers: &[(String, String)], name: &str, token: &str) -> bool {
    headers
        .iter()
        .filter(|(key, _)| key.eq_ignore_ascii_case(name))
        .flat_map(|(_, value)| value.split(','))
        .filter_map(|item| item.split(';').next())
        .any(|item| item.trim().eq_ignore_ascii_case(token))
}

/// httparse's headers as owned name and value pairs.
pub(super) fn owned_headers(headers: &[httparse::Header<'_>]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|header| {
            (
                header.name.to_string(),
                String::from_utf8_lossy(header.value).into_owned(),
            )
        })
        .collect()
}

impl UpgradeRequest {
    fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    fn header_contains(&self, name: &str, token: &str) -> bool {
        header_lists(&self.headers, name, token)
    }

    fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .filter(|(key, _)| key.eq_ignore_ascii_case("cookie"))
            .flat_map(|(_, value)| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.trim_matches('"').to_string())
    }
}

/// A refused upgrade: the HTTP status and the reason nats-server logs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rejection {
    status: u16,
    reason: String,
}

fn reject(status: u16, reason: impl Into<String>) -> Rejection {
    Rejection {
        status,
        reason: reason.into(),
    }
}

/// Parses a complete request; `Ok(None)` means more bytes are needed.
fn parse_request(bytes: &[u8]) -> Result<Option<UpgradeRequest>, Rejection> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_UPGRADE_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let length = match request.parse(bytes) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(reject(431, "too many headers")),
        Err(error) => return Err(reject(400, format!("malformed request: {error}"))),
    };
    if length < bytes.len() {
        return Err(reject(400, "client sent data before handshake is complete"));
    }
    Ok(Some(UpgradeRequest {
        method: request.method.unwrap_or_default().to_string(),
        path: request.path.unwrap_or_default().to_string(),
        headers: owned_headers(request.headers),
    }))
}

/// What an accepted request asks of the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Accepted {
    accept_key: String,
    no_masking: bool,
    /// permessage-deflate is agreed.
    compression: bool,
    path: WebSocketPath,
}

/// nats-server's checks, in its order (RFC 6455 §4.2.1).
fn check_request(
    request: &UpgradeRequest,
    settings: &WebSocketSettings,
    tls: bool,
) -> Result<Accepted, Rejection> {
    if request.method != "GET" {
        return Err(reject(405, "request method must be GET"));
    }
    let host = request.header("host").unwrap_or_default();
    if host.is_empty() {
        return Err(reject(400, "'Host' missing in request"));
    }
    if !request.header_contains("upgrade", "websocket") {
        return Err(reject(400, "invalid value for header 'Upgrade'"));
    }
    if !request.header_contains("connection", "upgrade") {
        return Err(reject(400, "invalid value for header 'Connection'"));
    }
    let key = request.header("sec-websocket-key").unwrap_or_default();
    if key.is_empty() {
        return Err(reject(400, "key missing"));
    }
    if !request.header_contains("sec-websocket-version", "13") {
        return Err(reject(400, "invalid version"));
    }
    check_origin(request, settings, host, tls)
        .map_err(|reason| reject(403, format!("origin not allowed: {reason}")))?;
    let path = request.path.split('?').next().unwrap_or_default();
    let path = if path.starts_with("/leafnode") {
        WebSocketPath::Leafnode
    } else if path.starts_with("/mqtt") {
        WebSocketPath::Mqtt
    } else {
        WebSocketPath::Client
    };
    Ok(Accepted {
        accept_key: tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes()),
        no_masking: request.header("nats-no-masking") == Some("true"),
        compression: settings.compression
            && request.header_contains("sec-websocket-extensions", PERMESSAGE_DEFLATE),
        path,
    })
}

fn check_origin(
    request: &UpgradeRequest,
    settings: &WebSocketSettings,
    host: &str,
    tls: bool,
) -> Result<(), &'static str> {
    if !settings.same_origin && settings.allowed_origins.is_empty() {
        return Ok(());
    }
    let origin = request
        .header("origin")
        .filter(|origin| !origin.is_empty())
        .or_else(|| request.header("sec-websocket-origin"))
        .unwrap_or_default();
    // Non-browser clients may send any Origin, so its absence is not held against them
    // (RFC 6455 §1.6); browsers always send it.
    if origin.is_empty() {
        return Ok(());
    }
    let origin = Origin::parse(origin).ok_or("invalid origin")?;
    if settings.same_origin {
        let (request_host, request_port) = split_host_port(host, tls).ok_or("invalid host")?;
        if origin.host != request_host || origin.port != request_port {
            return Err("not same origin");
        }
    }
    if !settings.allowed_origins.is_empty() && !settings.allowed_origins.contains(&origin) {
        return Err("not in the allowed list");
    }
    Ok(())
}

fn switching_protocols(accepted: &Accepted, settings: &WebSocketSettings) -> Vec<u8> {
    let mut response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
        accepted.accept_key
    );
    if accepted.compression {
        response.push_str(PERMESSAGE_DEFLATE_RESPONSE);
    }
    if accepted.no_masking {
        response.push_str("Nats-No-Masking: true\r\n");
    }
    for (name, value) in &settings.headers {
        response.push_str(&format!("{name}: {value}\r\n"));
    }
    response.push_str("\r\n");
    response.into_bytes()
}

/// The error page Go's `http.Error` writes.
fn refusal(rejection: &Rejection) -> Vec<u8> {
    let text = status_text(rejection.status);
    format!(
        "HTTP/1.1 {status} {text}\r\nContent-Type: text/plain; charset=utf-8\r\nSec-Websocket-Version: 13\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\nContent-Length: {length}\r\n\r\n{text}\n",
        status = rejection.status,
        length = text.len() + 1,
    )
    .into_bytes()
}

fn status_text(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        403 => "Forbidden",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Internal Server Error",
    }
}

/// Runs HTTPS (when configured) and the upgrade on an accepted connection, bounded by
/// `handshake_timeout`; see the module docs.
pub async fn accept_websocket(
    stream: TcpStream,
    settings: &WebSocketSettings,
) -> Result<WebSocketUpgrade, WebSocketError> {
    let timeout = settings.handshake_timeout;
    tokio::time::timeout(timeout, upgrade(stream, settings))
        .await
        .unwrap_or(Err(WebSocketError::HandshakeTimeout(timeout)))
}

async fn upgrade(
    stream: TcpStream,
    settings: &WebSocketSettings,
) -> Result<WebSocketUpgrade, WebSocketError> {
    let mut transport = match &settings.tls {
        Some(tls) => Transport::TlsServer(Box::new(tls.accept(stream).await?)),
        None => Transport::Tcp(stream),
    };
    let request = match read_request(&mut transport).await? {
        Ok(request) => request,
        Err(rejection) => return Err(refuse(&mut transport, rejection).await),
    };
    let accepted = match check_request(&request, settings, settings.is_tls()) {
        Ok(accepted) => accepted,
        Err(rejection) => return Err(refuse(&mut transport, rejection).await),
    };
    transport
        .write_all(&switching_protocols(&accepted, settings))
        .await
        .map_err(WebSocketError::Write)?;
    transport.flush().await.map_err(WebSocketError::Write)?;
    let browser = request
        .header("user-agent")
        .is_some_and(|agent| agent.starts_with("Mozilla/"));
    let agreement = Agreement {
        role: Role::Server,
        no_masking: accepted.no_masking,
        compression: accepted.compression,
        max_message_size: settings.max_message_size,
        browser,
    };
    let cookie = |name: &Option<String>| name.as_deref().and_then(|name| request.cookie(name));
    Ok(WebSocketUpgrade {
        transport: Transport::WebSocket(Box::new(WebSocketTransport::new(
            transport,
            agreement,
            &[],
        ))),
        path: accepted.path,
        client_ip: request
            .header("x-forwarded-for")
            .and_then(|value| value.parse().ok()),
        browser,
        credentials: CookieCredentials {
            user: cookie(&settings.user_cookie),
            password: cookie(&settings.pass_cookie),
            token: cookie(&settings.token_cookie),
        },
    })
}

/// Appends what one read returns to `buffer` (an HTTP head being read); the end of the
/// stream is an error.
pub(super) async fn read_more(
    transport: &mut Transport,
    buffer: &mut Vec<u8>,
) -> Result<(), WebSocketError> {
    let mut chunk = [0u8; 2048];
    let read = transport
        .read(&mut chunk)
        .await
        .map_err(WebSocketError::Read)?;
    if read == 0 {
        return Err(WebSocketError::Read(io::ErrorKind::UnexpectedEof.into()));
    }
    buffer.extend_from_slice(&chunk[..read]);
    Ok(())
}

/// Reads one request, bounded by [`MAX_UPGRADE_REQUEST_SIZE`]. The outer `Err` is an I/O
/// failure; the inner one a request to refuse.
async fn read_request(
    transport: &mut Transport,
) -> Result<Result<UpgradeRequest, Rejection>, WebSocketError> {
    let mut buffer = Vec::with_capacity(1024);
    loop {
        read_more(transport, &mut buffer).await?;
        match parse_request(&buffer) {
            Ok(Some(request)) => return Ok(Ok(request)),
            Ok(None) if buffer.len() >= MAX_UPGRADE_REQUEST_SIZE => {
                return Ok(Err(reject(431, "request headers too large")))
            }
            Ok(None) => {}
            Err(rejection) => return Ok(Err(rejection)),
        }
    }
}

/// Answers a refused request (best effort: the client may be gone) and returns the error.
async fn refuse(transport: &mut Transport, rejection: Rejection) -> WebSocketError {
    let _ = transport.write_all(&refusal(&rejection)).await;
    let _ = transport.shutdown().await;
    WebSocketError::Rejected {
        status: rejection.status,
        reason: rejection.reason,
    }
}

#[cfg(test)]
#[path = "websocket_tests.rs"]
mod tests;
