//! The client listeners: the NATS port and the WebSocket port.
//!
//! Contract: an accept loop only admits a connection — it takes a connection id, applies
//! `max_connections` and spawns the connection's task — so a slow or silent peer never holds
//! it up. The task then establishes the transport: on the NATS port
//! [`crate::transport::accept_client`] writes INFO and runs TLS as configured (bounded by the
//! TLS timeout); on the WebSocket port [`crate::transport::accept_websocket`] runs HTTPS and
//! the upgrade (bounded by `handshake_timeout`) and the session sends INFO as the first frame.
//! Shutdown and lame duck interrupt a handshake in progress.
//!
//! A connection over `connection_rate_per_ip` (new connections a second from its address)
//! is refused in the accept loop itself: one non-blocking write of
//! `-ERR 'connection rate exceeded'` and the socket closes, before any TLS or upgrade.
//!
//! As in nats-server: a connection over `max_connections` gets INFO and
//! `-ERR 'maximum connections exceeded'` (in plain text on the NATS port, before any TLS; in
//! frames on the WebSocket port, after the upgrade) and is closed; a failed TLS handshake is
//! logged at error level and closes the socket without a word, and the connection shows in
//! `/connz?state=closed` as `TLS Handshake Failure`; a refused WebSocket upgrade is answered
//! with its HTTP status and logged, and never becomes a client (no closed-connection record).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

use super::Server;
use crate::client::run_client;
use crate::connection::writer::run_writer;
use crate::connection::{CloseReason, Connection, ConnectionKind};
use crate::logging;
use crate::protocol::errors::text;
use crate::protocol::server_operations;
use crate::transport::{
    accept_client, accept_websocket, AcceptError, HandshakeFirst, TlsError, Transport,
    WebSocketError,
};

/// Which client port a connection arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ClientListener {
    Nats,
    WebSocket,
}

impl ClientListener {
    fn name(self) -> &'static str {
        match self {
            Self::Nats => "Client",
            Self::WebSocket => "Websocket",
        }
    }
}

/// Accept errors are retried after a pause that doubles up to this.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);
const FIRST_ACCEPT_BACKOFF: Duration = Duration::from_millis(5);

/// An established transport and whether INFO already went out on it.
struct Established {
    transport: Transport,
    info_sent: bool,
}

impl Server {
    pub(super) async fn accept_clients(
        self: Arc<Self>,
        listener: TcpListener,
        kind: ClientListener,
    ) {
        let mut backoff = FIRST_ACCEPT_BACKOFF;
        loop {
            let accepted = tokio::select! {
                () = self.accepting.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let (stream, address) = match accepted {
                Ok(accepted) => {
                    backoff = FIRST_ACCEPT_BACKOFF;
                    accepted
                }
                Err(error) => {
                    // Out of descriptors and the like: wait, then try again, bounded.
                    logging::error(format_args!(
                        "Temporary {} Accept Error ({error}), sleeping {}ms",
                        kind.name(),
                        backoff.as_millis()
                    ));
                    tokio::select! {
                        () = self.accepting.cancelled() => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                    continue;
                }
            };
            self.admit_client(stream, address, kind);
        }
        logging::debug(format_args!("{} accept loop exiting", kind.name()));
    }

    /// Registers the connection (or finds it over `max_connections`) and spawns its task; no
    /// I/O happens here.
    fn admit_client(
        self: &Arc<Self>,
        stream: TcpStream,
        address: SocketAddr,
        kind: ClientListener,
    ) {
        let _ = stream.set_nodelay(true);
        let options = self.options();
        let rate = options.connection_rate_per_ip;
        if rate > 0
            && !self
                .connection_rates
                .lock()
                .admit(address.ip(), rate, std::time::Instant::now())
        {
            // Refused before any work: no id, no task, no TLS. The one write cannot block.
            logging::debug(format_args!(
                "{address} - {} connection refused: {}",
                kind.name(),
                text::CONNECTION_RATE_EXCEEDED
            ));
            let refusal = format!("-ERR '{}'\r\n", text::CONNECTION_RATE_EXCEEDED);
            let _ = stream.try_write(refusal.as_bytes());
            return;
        }
        let id = self.next_connection_id();
        let connection = Arc::new(
            Connection::new(
                id,
                ConnectionKind::Client,
                address,
                options.max_pending,
                &self.shutdown,
            )
            .with_local_address(stream.local_addr().ok())
            .with_nonce(
                self.authenticator_for(kind == ClientListener::WebSocket)
                    .needs_nonce()
                    .then(crate::identity::new_nonce),
            )
            .with_websocket(kind == ClientListener::WebSocket),
        );
        let admitted = {
            let mut connections = self.connections.lock();
            if connections.len() >= options.max_connections {
                false
            } else {
                connections.insert(id, Arc::clone(&connection));
                true
            }
        };
        if admitted {
            self.global_account
                .client_connections
                .fetch_add(1, Ordering::Relaxed);
            // A WebSocket peer becomes a client only once upgraded (counted then).
            if kind == ClientListener::Nats {
                self.count_client(&connection);
            }
        }
        let server = Arc::clone(self);
        self.tasks
            .spawn(server.serve_client(connection, stream, kind, admitted));
    }

    fn count_client(&self, connection: &Connection) {
        self.statistics
            .total_connections
            .fetch_add(1, Ordering::Relaxed);
        logging::debug(format_args!(
            "{} - cid:{} - Client connection created",
            connection.remote_address, connection.id
        ));
    }

    /// One client connection's task: establish the transport, then run the session (or
    /// refuse the connection when it was over `max_connections`).
    async fn serve_client(
        self: Arc<Self>,
        connection: Arc<Connection>,
        stream: TcpStream,
        kind: ClientListener,
        admitted: bool,
    ) {
        let established = tokio::select! {
            () = connection.closing().cancelled() => Err(None),
            result = self.establish(&connection, stream, kind, admitted) => result,
        };
        let established = match established {
            Ok(established) => established,
            Err(reason) => {
                if admitted {
                    self.handshake_failed(&connection, kind, reason);
                }
                return;
            }
        };
        if let Some(details) = established.transport.tls_details() {
            connection.set_tls_details(details);
            logging::debug(format_args!(
                "{} - cid:{} - TLS version {}, cipher suite {}",
                connection.remote_address, connection.id, details.version, details.cipher_suite
            ));
        }
        if self
            .authenticator_for(kind == ClientListener::WebSocket)
            .maps_certificates()
        {
            self.read_certificate_identity(&connection, &established.transport);
        }
        if kind == ClientListener::WebSocket && admitted {
            self.count_client(&connection);
        }
        let write_deadline = self.options().write_deadline;
        match established.transport {
            // Plain TCP keeps its lock-free owned halves: the hot path is unchanged.
            Transport::Tcp(stream) => {
                let (reader, writer) = stream.into_split();
                self.run_session(
                    connection,
                    reader,
                    writer,
                    established.info_sent,
                    admitted,
                    write_deadline,
                )
                .await;
            }
            transport => {
                let (reader, writer) = tokio::io::split(transport);
                self.run_session(
                    connection,
                    reader,
                    writer,
                    established.info_sent,
                    admitted,
                    write_deadline,
                )
                .await;
            }
        }
    }

    async fn run_session<R, W>(
        self: Arc<Self>,
        connection: Arc<Connection>,
        reader: R,
        writer: W,
        info_sent: bool,
        admitted: bool,
        write_deadline: Duration,
    ) where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        if admitted {
            run_client(self, connection, reader, writer, info_sent).await;
            return;
        }
        logging::error(format_args!(
            "{} - cid:{} - {}",
            connection.remote_address,
            connection.id,
            text::MAX_CONNECTIONS_EXCEEDED
        ));
        if !info_sent {
            let info = self.client_info(&connection).to_protocol_line();
            connection.send_control(&info);
        }
        connection
            .outbound
            .lock()
            .push_with(|out| server_operations::encode_error(out, text::MAX_CONNECTIONS_EXCEEDED));
        connection.close(CloseReason::MaxConnectionsExceeded);
        drop(reader);
        run_writer(connection, writer, write_deadline).await;
    }

    /// Keeps the identity in the client's certificate for `verify_and_map`; a certificate that
    /// does not parse leaves none (the login then fails as unmapped).
    fn read_certificate_identity(&self, connection: &Connection, transport: &Transport) {
        let Some(leaf) = transport
            .peer_certificates()
            .and_then(|chain| chain.first())
        else {
            return;
        };
        match crate::auth::certificate::CertificateIdentity::from_der(leaf) {
            Ok(identity) => connection.set_certificate_identity(Arc::new(identity)),
            Err(error) => logging::debug(format_args!(
                "{} - cid:{} - {error}",
                connection.remote_address, connection.id
            )),
        }
    }

    /// Runs TLS or the WebSocket upgrade. `Err(None)`: interrupted by shutdown;
    /// `Err(Some(reason))`: the handshake failed (already logged).
    async fn establish(
        &self,
        connection: &Connection,
        stream: TcpStream,
        kind: ClientListener,
        admitted: bool,
    ) -> Result<Established, Option<CloseReason>> {
        let address = connection.remote_address;
        let id = connection.id;
        match kind {
            ClientListener::Nats if !admitted => {
                // Refused in plain text before any TLS, as nats-server does; a client doing
                // TLS first hears nothing it could parse, so it gets no INFO either.
                let tls_first = self
                    .client_security()
                    .tls
                    .as_ref()
                    .is_some_and(|tls| tls.handshake_first() == HandshakeFirst::On);
                Ok(Established {
                    transport: Transport::Tcp(stream),
                    info_sent: tls_first,
                })
            }
            ClientListener::Nats => {
                let security = self.client_security();
                if security.tls.is_some() {
                    logging::debug(format_args!(
                        "{address} - cid:{id} - Starting TLS client connection handshake"
                    ));
                }
                let info = self.client_info(connection);
                let write_deadline = self.options().write_deadline;
                match accept_client(stream, &security, info, write_deadline).await {
                    Ok(transport) => Ok(Established {
                        transport,
                        info_sent: true,
                    }),
                    Err(error) => Err(Some(log_accept_error(address, id, &error))),
                }
            }
            ClientListener::WebSocket => {
                let Some(settings) = self.websocket_settings() else {
                    return Err(Some(CloseReason::ServerShutdown));
                };
                match accept_websocket(stream, &settings).await {
                    Ok(upgrade) => Ok(Established {
                        transport: {
                            connection.set_cookie_credentials(upgrade.credentials);
                            upgrade.transport
                        },
                        info_sent: false,
                    }),
                    Err(error) => Err(Some(log_websocket_error(address, &error))),
                }
            }
        }
    }

    /// An admitted connection that never became a session: a failed TLS handshake closes a
    /// client (recorded as nats-server records it); a failed upgrade was never one.
    fn handshake_failed(
        &self,
        connection: &Arc<Connection>,
        kind: ClientListener,
        reason: Option<CloseReason>,
    ) {
        let reason = reason
            .or_else(|| connection.close_reason())
            .unwrap_or(CloseReason::ServerShutdown);
        connection.close(reason);
        match kind {
            ClientListener::Nats => self.connection_closed(connection, &[]),
            ClientListener::WebSocket => {
                self.connections.lock().remove(&connection.id);
                self.global_account
                    .client_connections
                    .fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

/// Logs why INFO and TLS failed the way nats-server does (TLS at error level, the rest at
/// debug: a peer that hangs up is no server error) and returns the close reason.
fn log_accept_error(address: SocketAddr, id: u64, error: &AcceptError) -> CloseReason {
    match error {
        AcceptError::Tls(_) => {
            logging::error(format_args!("{address} - cid:{id} - {error}"));
            CloseReason::TlsHandshakeError
        }
        AcceptError::ClosedBeforeHandshake => {
            logging::debug(format_args!("{address} - cid:{id} - {error}"));
            CloseReason::ClientClosed
        }
        AcceptError::Read(_) => {
            logging::debug(format_args!("{address} - cid:{id} - {error}"));
            CloseReason::ReadError
        }
        AcceptError::WriteInfo(_) | AcceptError::WriteInfoTimeout(_) => {
            logging::debug(format_args!("{address} - cid:{id} - {error}"));
            CloseReason::WriteError
        }
    }
}

/// Logs a failed upgrade: refusals and TLS failures at error level (nats-server's
/// `websocket handshake error: ...`), a peer that went quiet or away at debug.
fn log_websocket_error(address: SocketAddr, error: &WebSocketError) -> CloseReason {
    match error {
        WebSocketError::Rejected { .. } => {
            logging::error(format_args!("{address} - {error}"));
            CloseReason::ProtocolViolation
        }
        WebSocketError::Tls(TlsError::Handshake(_) | TlsError::HandshakeTimeout { .. }) => {
            logging::error(format_args!("{address} - websocket: {error}"));
            CloseReason::TlsHandshakeError
        }
        _ => {
            logging::debug(format_args!("{address} - {error}"));
            CloseReason::ReadError
        }
    }
}
