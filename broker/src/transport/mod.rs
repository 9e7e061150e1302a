//! Transports: TCP, TLS (rustls) and WebSocket (tokio-tungstenite) behind one stream type that
//! every connection kind (client, route, gateway, leaf node) runs its session on.
//!
//! Contract:
//! - [`Transport`] implements `AsyncRead + AsyncWrite + Unpin + Send`; the session and writer
//!   code take it through `tokio::io::split(transport)`, whose halves satisfy the generic
//!   `R: AsyncRead` / `W: AsyncWrite` bounds of `client::run_client` and
//!   `connection::writer::run_writer`. Over WebSocket the byte stream is the concatenation of
//!   the binary (or text) frames' payloads, as nats-server reads it, and every write becomes
//!   binary frames.
//! - Establishing a transport is bounded in time: TLS handshakes by `tls { timeout }`, the
//!   WebSocket upgrade by `websocket { handshake_timeout }`; a failed or late handshake returns
//!   an error and drops the socket.
//! - [`accept::accept_client`] runs nats-server's client sequence on an accepted TCP stream
//!   (INFO, TLS, `handshake_first`, `allow_non_tls`) and always writes the INFO itself;
//!   [`websocket::accept_websocket`] runs the HTTP upgrade (after HTTPS when configured).
//!   Routes and gateways call [`tls::ServerTls::accept`] / [`tls::ClientTls::connect`]
//!   directly: they do TLS before anything else.
//! - Nothing here logs: errors carry what failed (file, setting, HTTP reason) for the caller
//!   to log with the connection's address, and no error holds key material or credentials.

pub mod accept;
pub mod options;
pub mod tls;
pub mod websocket;
mod websocket_frame;
mod websocket_stream;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

pub use accept::{accept_client, AcceptError, ClientSecurity};
pub use options::{HandshakeFirst, TlsOptions, TlsVersion, WebSocketOptions};
pub use tls::{ClientTls, ServerTls, TlsError};
pub use websocket::{accept_websocket, WebSocketError, WebSocketSettings, WebSocketUpgrade};
pub use websocket_stream::{connect_websocket, ClientWebSocketSettings, WebSocketTransport};

/// One established connection, whatever carries it.
pub enum Transport {
    Tcp(TcpStream),
    /// TLS accepted by this server (clients, inbound routes, leaf nodes, `wss://`).
    TlsServer(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// TLS dialed by this server (outbound routes, gateways, leaf node remotes).
    TlsClient(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// NATS over WebSocket frames, itself over TCP or TLS.
    WebSocket(Box<WebSocketTransport>),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            Transport::Tcp(_) => "Transport::Tcp",
            Transport::TlsServer(_) => "Transport::TlsServer",
            Transport::TlsClient(_) => "Transport::TlsClient",
            Transport::WebSocket(_) => "Transport::WebSocket",
        })
    }
}

/// The negotiated TLS parameters, for `/connz` (`tls_version`, `tls_cipher_suite`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsDetails {
    /// `"1.2"` or `"1.3"`.
    pub version: &'static str,
    /// The IANA name, as nats-server reports it.
    pub cipher_suite: &'static str,
}

impl Transport {
    /// Whether TLS protects this connection (directly or under WebSocket).
    pub fn is_tls(&self) -> bool {
        self.tls_details().is_some()
    }

    pub fn is_websocket(&self) -> bool {
        matches!(self, Transport::WebSocket(_))
    }

    /// The certificate chain the peer presented, end entity first (for `verify_and_map`).
    pub fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        match self {
            Transport::Tcp(_) => None,
            Transport::TlsServer(stream) => stream.get_ref().1.peer_certificates(),
            Transport::TlsClient(stream) => stream.get_ref().1.peer_certificates(),
            Transport::WebSocket(stream) => stream.inner().peer_certificates(),
        }
    }

    pub fn tls_details(&self) -> Option<TlsDetails> {
        let (version, suite) = match self {
            Transport::Tcp(_) => return None,
            Transport::TlsServer(stream) => {
                let connection = stream.get_ref().1;
                (
                    connection.protocol_version(),
                    connection.negotiated_cipher_suite(),
                )
            }
            Transport::TlsClient(stream) => {
                let connection = stream.get_ref().1;
                (
                    connection.protocol_version(),
                    connection.negotiated_cipher_suite(),
                )
            }
            Transport::WebSocket(stream) => return stream.inner().tls_details(),
        };
        let version = match version? {
            rustls::ProtocolVersion::TLSv1_3 => "1.3",
            rustls::ProtocolVersion::TLSv1_2 => "1.2",
            _ => "unknown",
        };
        let cipher_suite = suite?.suite().as_str().unwrap_or("unknown");
        Some(TlsDetails {
            version,
            cipher_suite: cipher_suite
                .strip_prefix("TLS13_")
                .map_or(cipher_suite, |rest| {
                    // IANA (and Go) name TLS 1.3 suites without rustls' "13".
                    TLS13_IANA_NAMES
                        .iter()
                        .find(|(rustls_name, _)| rustls_name == &rest)
                        .map_or(cipher_suite, |(_, iana)| iana)
                }),
        })
    }
}

const TLS13_IANA_NAMES: &[(&str, &str)] = &[
    ("AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256"),
    ("AES_256_GCM_SHA384", "TLS_AES_256_GCM_SHA384"),
    ("CHACHA20_POLY1305_SHA256", "TLS_CHACHA20_POLY1305_SHA256"),
];

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(stream) => Pin::new(stream).poll_read(context, buffer),
            Transport::TlsServer(stream) => Pin::new(stream.as_mut()).poll_read(context, buffer),
            Transport::TlsClient(stream) => Pin::new(stream.as_mut()).poll_read(context, buffer),
            Transport::WebSocket(stream) => Pin::new(stream.as_mut()).poll_read(context, buffer),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Tcp(stream) => Pin::new(stream).poll_write(context, buffer),
            Transport::TlsServer(stream) => Pin::new(stream.as_mut()).poll_write(context, buffer),
            Transport::TlsClient(stream) => Pin::new(stream.as_mut()).poll_write(context, buffer),
            Transport::WebSocket(stream) => Pin::new(stream.as_mut()).poll_write(context, buffer),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(stream) => Pin::new(stream).poll_flush(context),
            Transport::TlsServer(stream) => Pin::new(stream.as_mut()).poll_flush(context),
            Transport::TlsClient(stream) => Pin::new(stream.as_mut()).poll_flush(context),
            Transport::WebSocket(stream) => Pin::new(stream.as_mut()).poll_flush(context),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(stream) => Pin::new(stream).poll_shutdown(context),
            Transport::TlsServer(stream) => Pin::new(stream.as_mut()).poll_shutdown(context),
            Transport::TlsClient(stream) => Pin::new(stream.as_mut()).poll_shutdown(context),
            Transport::WebSocket(stream) => Pin::new(stream.as_mut()).poll_shutdown(context),
        }
    }
}

#[cfg(test)]
mod test_support;
