//! A blocking NATS client connection for one load-generator role.
//!
//! One thread owns one connection. It runs over plain TCP, TLS or WebSocket ([`Endpoint`],
//! [`crate::stream`]); everything above the byte stream is the same for all three. Reads are
//! batched into a fixed buffer and parsed in place ([`FrameParser`]); the server's PINGs are
//! answered here and INFO/+OK are ignored, so callers only see messages and PONGs. Every
//! socket operation is bounded: reads wake up every [`POLL_INTERVAL`] so callers can check
//! their deadlines and stop flags, and writes fail after [`WRITE_TIMEOUT`].

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::protocol::{Frame, FrameParser, ParseError};
use crate::stream::{Stream, TlsStream, WebSocketStream};

/// How long one read waits before returning to its caller with nothing.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// A write that makes no progress for this long fails the run.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Read buffer for connections that carry load.
pub const LOAD_BUFFER_CAPACITY: usize = 256 * 1024;
/// Read buffer for connections that only do the handshake.
pub const HANDSHAKE_BUFFER_CAPACITY: usize = 8 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connecting to {address}: {source}")]
    Connect {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
    #[error("server closed the connection")]
    Closed,
    #[error("server sent -ERR {0}")]
    Server(String),
    #[error(transparent)]
    Protocol(#[from] ParseError),
    #[error("timed out waiting for {0}")]
    DeadlineExceeded(&'static str),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("WebSocket upgrade: {0}")]
    WebSocket(String),
    #[error("the server sent {0} bytes after INFO, before the TLS handshake")]
    DataBeforeTls(usize),
}

/// How a client reaches a server's client port.
#[derive(Debug, Clone)]
pub enum ClientTransport {
    Tcp,
    /// The server sends INFO in plaintext, then the client starts TLS (nats-server's default,
    /// without `handshake_first`); the certificate is verified against the configured roots.
    Tls(Arc<rustls::ClientConfig>),
    /// `address` is the server's WebSocket port; the upgrade comes first, then INFO.
    WebSocket,
}

/// Where and how a client connects.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub address: SocketAddr,
    pub transport: ClientTransport,
}

impl Endpoint {
    pub fn tcp(address: SocketAddr) -> Self {
        Self {
            address,
            transport: ClientTransport::Tcp,
        }
    }
}

/// Whether a read returned data or only waited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadStatus {
    Data,
    Idle,
}

#[derive(Debug)]
pub struct Connection {
    stream: Stream,
    buffer: Vec<u8>,
    filled: usize,
    parser: FrameParser,
    info_received: bool,
}

impl Connection {
    /// Connects over plain TCP, waits for INFO, sends CONNECT and completes a PING/PONG round
    /// trip.
    pub fn connect(
        address: SocketAddr,
        name: &str,
        buffer_capacity: usize,
        deadline: Instant,
    ) -> Result<Self, ClientError> {
        Self::connect_to(&Endpoint::tcp(address), name, buffer_capacity, deadline)
    }

    /// [`Connection::connect`] over the endpoint's transport: for TLS, INFO arrives in
    /// plaintext and the handshake follows it; for WebSocket, the upgrade comes first.
    pub fn connect_to(
        endpoint: &Endpoint,
        name: &str,
        buffer_capacity: usize,
        deadline: Instant,
    ) -> Result<Self, ClientError> {
        let address = endpoint.address;
        let timeout = remaining(deadline, "the TCP connection")?;
        let socket = TcpStream::connect_timeout(&address, timeout)
            .map_err(|source| ClientError::Connect { address, source })?;
        socket.set_nodelay(true)?;
        socket.set_read_timeout(Some(POLL_INTERVAL))?;
        socket.set_write_timeout(Some(WRITE_TIMEOUT))?;
        let stream = match &endpoint.transport {
            ClientTransport::Tcp | ClientTransport::Tls(_) => Stream::Tcp(socket),
            ClientTransport::WebSocket => Stream::WebSocket(Box::new(WebSocketStream::handshake(
                socket, address, deadline,
            )?)),
        };
        let mut connection = Self {
            stream,
            buffer: vec![0; buffer_capacity],
            filled: 0,
            parser: FrameParser::default(),
            info_received: false,
        };
        connection.wait_for_info(deadline)?;
        if let ClientTransport::Tls(config) = &endpoint.transport {
            connection = connection.start_tls(address, Arc::clone(config), deadline)?;
        }
        let connect = format!(
            "CONNECT {{\"verbose\":false,\"pedantic\":false,\"echo\":false,\"headers\":false,\
             \"protocol\":1,\"name\":\"{name}\",\"lang\":\"tern-bench\",\"version\":\"{}\"}}\r\n",
            env!("CARGO_PKG_VERSION")
        );
        connection.write_all(connect.as_bytes())?;
        connection.round_trip(deadline)?;
        Ok(connection)
    }

    /// Registers a subscription and waits until the server has processed it.
    pub fn subscribe(
        &mut self,
        subject: &str,
        queue_group: Option<&str>,
        sid: u32,
        deadline: Instant,
    ) -> Result<(), ClientError> {
        let line = match queue_group {
            Some(queue_group) => format!("SUB {subject} {queue_group} {sid}\r\n"),
            None => format!("SUB {subject} {sid}\r\n"),
        };
        self.write_all(line.as_bytes())?;
        self.round_trip(deadline)
    }

    /// Sends PING and reads until the matching PONG; messages arriving meanwhile are dropped.
    pub fn round_trip(&mut self, deadline: Instant) -> Result<(), ClientError> {
        self.write_all(b"PING\r\n")?;
        let mut pong = false;
        while !pong {
            remaining(deadline, "PONG")?;
            self.read_frames(|frame| pong |= frame == Frame::Pong)?;
        }
        Ok(())
    }

    pub fn write_all(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.stream.write_all(bytes).map_err(ClientError::from)
    }

    /// Replaces the plain socket that carried INFO by a TLS session over it.
    fn start_tls(
        self,
        address: SocketAddr,
        config: Arc<rustls::ClientConfig>,
        deadline: Instant,
    ) -> Result<Self, ClientError> {
        let Self {
            stream,
            buffer,
            filled,
            parser,
            info_received,
        } = self;
        // The server waits for the ClientHello, so nothing may follow INFO yet.
        if filled > 0 {
            return Err(ClientError::DataBeforeTls(filled));
        }
        let Stream::Tcp(socket) = stream else {
            return Err(ClientError::Tls("TLS over a non-TCP stream".to_owned()));
        };
        let stream = TlsStream::handshake(socket, address, config, deadline)?;
        Ok(Self {
            stream: Stream::Tls(Box::new(stream)),
            buffer,
            filled,
            parser,
            info_received,
        })
    }

    /// Performs one read (waiting at most [`POLL_INTERVAL`]) and reports every complete
    /// message and PONG in it. Answers server PINGs.
    pub fn read_frames(
        &mut self,
        mut on_frame: impl FnMut(Frame<'_>),
    ) -> Result<ReadStatus, ClientError> {
        let read = match self.stream.read(&mut self.buffer[self.filled..]) {
            Ok(0) => return Err(ClientError::Closed),
            Ok(read) => read,
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Ok(ReadStatus::Idle)
            }
            Err(error) if error.kind() == ErrorKind::Interrupted => return Ok(ReadStatus::Idle),
            Err(error) => return Err(error.into()),
        };
        self.filled += read;
        let mut ping_received = false;
        let mut info_received = false;
        let mut server_error = None;
        let consumed = self
            .parser
            .parse(&self.buffer[..self.filled], |frame| match frame {
                Frame::Ping => ping_received = true,
                Frame::Info => info_received = true,
                Frame::Ok => {}
                Frame::Error(text) => {
                    server_error = Some(String::from_utf8_lossy(text).into_owned());
                }
                other => on_frame(other),
            })?;
        self.buffer.copy_within(consumed..self.filled, 0);
        self.filled -= consumed;
        self.info_received |= info_received;
        if let Some(text) = server_error {
            return Err(ClientError::Server(text));
        }
        if ping_received {
            self.write_all(b"PONG\r\n")?;
        }
        Ok(ReadStatus::Data)
    }

    /// Gives up the parser and buffer, keeping only the stream (for idle connections).
    pub fn into_stream(self) -> Stream {
        self.stream
    }

    fn wait_for_info(&mut self, deadline: Instant) -> Result<(), ClientError> {
        while !self.info_received {
            remaining(deadline, "INFO")?;
            self.read_frames(|_| {})?;
        }
        Ok(())
    }
}

/// Publishes `probe` on `sender`, again and again, until `wanted` of `receivers` (all of them
/// if `wanted` is larger) have each read a message that `is_probe` accepts, or `deadline`.
///
/// For clients on different servers of a cluster, a subscription acknowledged by its own
/// server (SUB then PING/PONG) may not yet be known to the other server: the route propagates
/// interest asynchronously, and a message published there before it arrives is dropped. A
/// delivered probe proves the interest has arrived. Each round writes one probe and reads
/// every receiver still waiting once (at most [`POLL_INTERVAL`] each), so probes go out at most
/// every few tens of milliseconds; anything else the receivers read meanwhile is discarded.
/// Probes still in flight afterwards reach the receivers later, so measured traffic must be
/// told apart from them (the scenarios use the presence or absence of a reply subject).
pub fn probe_until_delivered(
    sender: &mut Connection,
    probe: &[u8],
    receivers: &mut [Connection],
    wanted: usize,
    is_probe: impl Fn(&Frame<'_>) -> bool,
    deadline: Instant,
) -> Result<(), ClientError> {
    let wanted = wanted.min(receivers.len());
    let mut reached = vec![false; receivers.len()];
    while reached.iter().filter(|reached| **reached).count() < wanted {
        remaining(
            deadline,
            "a probe message from the other server (route interest)",
        )?;
        sender.write_all(probe)?;
        for (receiver, reached) in receivers.iter_mut().zip(reached.iter_mut()) {
            if !*reached {
                receiver.read_frames(|frame| *reached |= is_probe(&frame))?;
            }
        }
    }
    Ok(())
}

/// Time left until `deadline`, or an error naming what was being waited for.
pub fn remaining(deadline: Instant, waiting_for: &'static str) -> Result<Duration, ClientError> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|left| !left.is_zero())
        .ok_or(ClientError::DeadlineExceeded(waiting_for))
}
