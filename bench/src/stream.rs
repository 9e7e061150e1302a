//! The byte stream under one client connection: plain TCP, TLS over TCP, or WebSocket over TCP.
//!
//! All three are blocking and keep the socket's timeouts (a read waits at most the socket's
//! read timeout and then fails with `WouldBlock`/`TimedOut`, which [`crate::client`] treats as
//! "nothing yet"; a write fails after the write timeout without progress), so every wait stays
//! bounded. Contract of [`Stream::read`]: returns plaintext NATS bytes (decrypted, or unframed
//! from WebSocket messages), `Ok(0)` when the server closed the connection. Contract of
//! [`Stream::write_all`]: the bytes are on the socket when it returns.
//!
//! - TLS ([`TlsStream`]) drives a rustls [`ClientConnection`] by hand: the socket is read up to
//!   [`TLS_READ_BUFFER_CAPACITY`] bytes at a time (rustls' own `read_tls` would read it 4 KiB
//!   per system call) and every complete record in that read is decrypted before the read
//!   returns, so one read syscall serves many NATS messages, as for plain TCP.
//! - WebSocket ([`WebSocketStream`]) uses tungstenite's blocking client. Each
//!   [`Stream::write_all`] sends one masked binary message (clients must mask), so a publisher's
//!   64 KiB batch of `PUB` frames is one WebSocket frame. A read returns (part of) one received
//!   message; what does not fit stays pending for the next read. Ping frames are answered by
//!   tungstenite while reading; a close frame reads as end of stream.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Instant;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};
use tokio_tungstenite::tungstenite::handshake::HandshakeError;
use tokio_tungstenite::tungstenite::{self, Bytes, Message, WebSocket};

use crate::client::{remaining, ClientError};

/// Ciphertext read from the socket per system call.
const TLS_READ_BUFFER_CAPACITY: usize = 256 * 1024;
/// Control frames (ping, pong) one WebSocket read skips before reporting "nothing yet".
const MAX_CONTROL_FRAMES_PER_READ: usize = 16;

#[derive(Debug)]
pub enum Stream {
    Tcp(TcpStream),
    Tls(Box<TlsStream>),
    WebSocket(Box<WebSocketStream>),
}

impl Stream {
    pub fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(socket) => socket.read(buffer),
            Self::Tls(stream) => stream.read(buffer),
            Self::WebSocket(stream) => stream.read(buffer),
        }
    }

    pub fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Self::Tcp(socket) => socket.write_all(bytes),
            Self::Tls(stream) => stream.write_all(bytes),
            Self::WebSocket(stream) => stream.write_all(bytes),
        }
    }
}

/// A rustls client session over a blocking socket, with a large ciphertext read buffer.
#[derive(Debug)]
pub struct TlsStream {
    connection: ClientConnection,
    socket: TcpStream,
    /// Ciphertext read from the socket; `incoming[start..end]` is not yet given to rustls.
    incoming: Vec<u8>,
    start: usize,
    end: usize,
}

impl TlsStream {
    /// Performs the TLS handshake on `socket` (which already carried the plaintext INFO), as
    /// a client of `address` verified against `config`'s roots, by `deadline`.
    pub fn handshake(
        mut socket: TcpStream,
        address: SocketAddr,
        config: Arc<ClientConfig>,
        deadline: Instant,
    ) -> Result<Self, ClientError> {
        let mut connection = ClientConnection::new(config, ServerName::from(address.ip()))
            .map_err(|error| ClientError::Tls(error.to_string()))?;
        // Whole publisher batches are encrypted at once and then written out.
        connection.set_buffer_limit(None);
        while connection.is_handshaking() {
            remaining(deadline, "the TLS handshake")?;
            match connection.complete_io(&mut socket) {
                Ok(_) => {}
                Err(error) if is_timeout(&error) => {}
                Err(error) => return Err(ClientError::Tls(error.to_string())),
            }
        }
        let mut stream = Self {
            connection,
            socket,
            incoming: vec![0; TLS_READ_BUFFER_CAPACITY],
            start: 0,
            end: 0,
        };
        stream.flush_records()?;
        Ok(stream)
    }

    /// Decrypted bytes into `buffer`: what rustls already holds plus every complete record of
    /// at most one socket read (which waits at most the socket's read timeout).
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let mut total = 0;
        // Each pass fills `buffer`, hands rustls a part of `incoming` (which shrinks), or
        // reads the socket once and then only hands over what that read returned.
        let mut socket_read = false;
        loop {
            let (taken, closed) = self.take_plaintext(&mut buffer[total..])?;
            total += taken;
            if total == buffer.len() || (closed && taken == 0) {
                return Ok(total);
            }
            if self.start < self.end {
                let mut ciphertext = &self.incoming[self.start..self.end];
                let consumed = self.connection.read_tls(&mut ciphertext)?;
                if consumed == 0 {
                    return Err(io::Error::other("rustls accepted no ciphertext"));
                }
                self.start += consumed;
                self.connection
                    .process_new_packets()
                    .map_err(|error| io::Error::new(ErrorKind::InvalidData, error))?;
                // A key update or alert to answer.
                self.flush_records()?;
                continue;
            }
            if total > 0 {
                return Ok(total);
            }
            if socket_read {
                // Only part of a record so far: "nothing yet", like a read that timed out.
                return Err(ErrorKind::WouldBlock.into());
            }
            let read = self.socket.read(&mut self.incoming)?;
            if read == 0 {
                return Ok(0);
            }
            socket_read = true;
            self.start = 0;
            self.end = read;
        }
    }

    /// Plaintext rustls has decrypted; `closed` once the server sent close_notify.
    fn take_plaintext(&mut self, buffer: &mut [u8]) -> io::Result<(usize, bool)> {
        if buffer.is_empty() {
            return Ok((0, false));
        }
        match self.connection.reader().read(buffer) {
            Ok(0) => Ok((0, true)),
            Ok(read) => Ok((read, false)),
            Err(error) if error.kind() == ErrorKind::WouldBlock => Ok((0, false)),
            Err(error) => Err(error),
        }
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.connection.writer().write_all(bytes)?;
        self.flush_records()
    }

    /// Writes every record rustls has queued.
    fn flush_records(&mut self) -> io::Result<()> {
        while self.connection.wants_write() {
            if self.connection.write_tls(&mut self.socket)? == 0 {
                return Err(ErrorKind::WriteZero.into());
            }
        }
        Ok(())
    }
}

/// A blocking tungstenite client over a socket, read as one byte stream.
#[derive(Debug)]
pub struct WebSocketStream {
    socket: WebSocket<TcpStream>,
    /// The unread rest of the last message.
    pending: Bytes,
}

impl WebSocketStream {
    /// Upgrades `socket` to WebSocket (`GET ws://<address>/`) by `deadline`.
    pub fn handshake(
        socket: TcpStream,
        address: SocketAddr,
        deadline: Instant,
    ) -> Result<Self, ClientError> {
        let url = format!("ws://{address}/");
        let failed = |error: tungstenite::Error| ClientError::WebSocket(error.to_string());
        let mut attempt = tungstenite::client::client(url.as_str(), socket);
        // Each attempt waits at most the socket's read timeout.
        let socket = loop {
            match attempt {
                Ok((socket, _response)) => break socket,
                Err(HandshakeError::Failure(error)) => return Err(failed(error)),
                Err(HandshakeError::Interrupted(handshake)) => {
                    remaining(deadline, "the WebSocket upgrade")?;
                    attempt = handshake.handshake();
                }
            }
        };
        Ok(Self {
            socket,
            pending: Bytes::new(),
        })
    }

    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let mut control_frames = 0;
        while self.pending.is_empty() {
            if control_frames == MAX_CONTROL_FRAMES_PER_READ {
                return Err(ErrorKind::WouldBlock.into());
            }
            match self.socket.read() {
                Ok(Message::Binary(payload)) => self.pending = payload,
                Ok(Message::Text(text)) => self.pending = Bytes::from(text),
                Ok(Message::Close(_)) => return Ok(0),
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => control_frames += 1,
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    return Ok(0)
                }
                Err(error) => return Err(into_io_error(error)),
            }
        }
        let length = self.pending.len().min(buffer.len());
        buffer[..length].copy_from_slice(&self.pending.split_to(length));
        Ok(length)
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.socket
            .send(Message::Binary(Bytes::copy_from_slice(bytes)))
            .map_err(into_io_error)
    }
}

fn into_io_error(error: tungstenite::Error) -> io::Error {
    match error {
        tungstenite::Error::Io(error) => error,
        other => io::Error::new(ErrorKind::InvalidData, other),
    }
}

/// Whether a socket operation only ran into its timeout (or a signal).
pub fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}
