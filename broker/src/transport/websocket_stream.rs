//! A byte stream over WebSocket frames, and the client side of the upgrade.
//!
//! Contract of [`WebSocketTransport`]:
//! - reading yields the payloads of binary and text messages, in order, as one stream (a NATS
//!   operation may span messages, and a message may hold several operations); ping frames
//!   are answered with pong while reading; a close frame is answered with a close frame and
//!   reads as end of stream;
//! - each write sends one binary frame of at most 64 KiB of the caller's bytes (4 KiB for
//!   browsers, as nats-server does), unmasked on the server side and masked on the client side
//!   unless `Nats-No-Masking` was agreed; with permessage-deflate agreed, a write of more than
//!   64 bytes is deflated (as one message, no context takeover) when that makes it smaller;
//!   at most one frame waits unwritten, so a slow peer holds up the writer instead of growing
//!   a buffer; a flush pushes out everything queued; shutdown sends a close frame;
//! - the frame rules and their close codes are [`super::websocket_frame`]'s: a broken frame
//!   fails the read after a close frame with the code is queued (1002, 1007, 1009).

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_tungstenite::tungstenite::handshake::{client::generate_key, derive_accept_key};
use tokio_tungstenite::tungstenite::http::Uri;

use super::websocket::{header, header_lists, owned_headers, read_more, WebSocketError};
use super::websocket_frame::{
    close_code, encode_frame, Compressor, DecoderSettings, FrameDecoder, Incoming, Opcode, Role,
};
use super::Transport;

/// Payload bytes per frame written to non-browser peers.
const FRAME_PAYLOAD_LIMIT: usize = 64 * 1024;
/// nats-server's frame size for browsers, which cope badly with larger frames.
const BROWSER_FRAME_PAYLOAD_LIMIT: usize = 4096;
/// Writes this small are not worth deflating (nats-server's threshold).
const COMPRESSION_THRESHOLD: usize = 64;
/// Read at least this much from the socket at a time.
const READ_CHUNK: usize = 16 * 1024;
/// Reading pauses while more than this waits to be written (pongs to a peer that never
/// reads them, say).
const MAX_QUEUED_WHILE_READING: usize = FRAME_PAYLOAD_LIMIT + 16 * 1024;
/// The response to the client's upgrade request may not be larger than this.
const MAX_UPGRADE_RESPONSE_SIZE: usize = 16 * 1024;

pub(super) const PERMESSAGE_DEFLATE: &str = "permessage-deflate";
/// The extension header a server sends when it agrees to compress (as nats-server words it).
pub(super) const PERMESSAGE_DEFLATE_RESPONSE: &str =
    "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n";

pub(super) fn frame_payload_limit(browser: bool) -> usize {
    if browser {
        BROWSER_FRAME_PAYLOAD_LIMIT
    } else {
        FRAME_PAYLOAD_LIMIT
    }
}

/// How a WebSocket connection was agreed.
#[derive(Debug, Clone, Copy)]
pub(super) struct Agreement {
    pub role: Role,
    /// `Nats-No-Masking: true` was agreed: the client does not mask.
    pub no_masking: bool,
    /// permessage-deflate was agreed.
    pub compression: bool,
    pub max_message_size: usize,
    pub browser: bool,
}

/// NATS bytes over a WebSocket connection (see the module docs).
pub struct WebSocketTransport {
    inner: Transport,
    role: Role,
    no_masking: bool,
    decoder: FrameDecoder,
    compressor: Option<Compressor>,
    deflated: Vec<u8>,
    /// The unread rest of the last message.
    pending: Bytes,
    /// Encoded frames not yet written.
    outgoing: BytesMut,
    frame_payload_limit: usize,
    /// A close frame (or the end of the socket) was read: reads return end of stream.
    read_closed: bool,
    close_sent: bool,
}

impl std::fmt::Debug for WebSocketTransport {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("WebSocketTransport")
            .field("role", &self.role)
            .field("compression", &self.compressor.is_some())
            .finish_non_exhaustive()
    }
}

impl WebSocketTransport {
    pub(super) fn new(inner: Transport, agreement: Agreement, already_read: &[u8]) -> Self {
        let mut decoder = FrameDecoder::new(DecoderSettings {
            role: agreement.role,
            accept_unmasked: agreement.no_masking,
            compression: agreement.compression,
            max_message_size: agreement.max_message_size,
        });
        decoder.buffer().extend_from_slice(already_read);
        Self {
            inner,
            role: agreement.role,
            no_masking: agreement.no_masking,
            decoder,
            compressor: agreement.compression.then(Compressor::default),
            deflated: Vec::new(),
            pending: Bytes::new(),
            outgoing: BytesMut::new(),
            frame_payload_limit: frame_payload_limit(agreement.browser),
            read_closed: false,
            close_sent: false,
        }
    }

    /// The transport under the frames (TCP or TLS).
    pub fn inner(&self) -> &Transport {
        &self.inner
    }

    /// Whether permessage-deflate was agreed.
    pub fn is_compressed(&self) -> bool {
        self.compressor.is_some()
    }

    fn mask(&self) -> Option<[u8; 4]> {
        (self.role == Role::Client && !self.no_masking).then(rand::random)
    }

    fn queue_control(&mut self, opcode: Opcode, payload: &[u8]) {
        let mask = self.mask();
        encode_frame(&mut self.outgoing, opcode, payload, mask, false);
    }

    fn queue_close(&mut self, code: u16) {
        if !self.close_sent {
            self.close_sent = true;
            self.queue_control(Opcode::Close, &code.to_be_bytes());
        }
    }

    /// Writes queued frames until none is left (or the socket is not ready).
    fn poll_drain(&mut self, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.outgoing.is_empty() {
            let written = ready!(Pin::new(&mut self.inner).poll_write(context, &self.outgoing))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.outgoing.advance(written);
        }
        Poll::Ready(Ok(()))
    }

    /// Control replies go out while reading, as far as the socket takes them now; the rest
    /// goes with the next write or flush.
    fn push_replies(&mut self, context: &mut Context<'_>) -> io::Result<()> {
        match self.poll_drain(context) {
            Poll::Ready(Err(error)) => Err(error),
            _ => Ok(()),
        }
    }
}

impl AsyncRead for WebSocketTransport {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.pending.is_empty() {
                let count = this.pending.len().min(buffer.remaining());
                buffer.put_slice(&this.pending[..count]);
                this.pending.advance(count);
                return Poll::Ready(Ok(()));
            }
            if this.read_closed {
                return Poll::Ready(Ok(()));
            }
            if this.outgoing.len() > MAX_QUEUED_WHILE_READING {
                // A peer that pings and never reads the pongs waits here.
                ready!(this.poll_drain(context))?;
            }
            match this.decoder.decode() {
                Ok(Some(Incoming::Data(message))) => this.pending = message,
                Ok(Some(Incoming::Ping(payload))) => {
                    this.queue_control(Opcode::Pong, &payload);
                    this.push_replies(context)?;
                }
                Ok(Some(Incoming::Pong)) => {}
                Ok(Some(Incoming::Close(code))) => {
                    this.queue_close(code.unwrap_or(close_code::NORMAL));
                    this.read_closed = true;
                    // Best effort: the peer is leaving anyway.
                    let _ = this.push_replies(context);
                }
                Err(error) => {
                    this.queue_close(error.code);
                    let _ = this.push_replies(context);
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, error)));
                }
                Ok(None) => {
                    let read = this.decoder.buffer();
                    if read.capacity() - read.len() < READ_CHUNK / 4 {
                        read.reserve(READ_CHUNK);
                    }
                    let count = ready!(tokio_util::io::poll_read_buf(
                        Pin::new(&mut this.inner),
                        context,
                        read
                    ))?;
                    if count == 0 {
                        this.read_closed = true;
                    }
                }
            }
        }
    }
}

impl AsyncWrite for WebSocketTransport {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buffer.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let this = self.get_mut();
        ready!(this.poll_drain(context))?;
        let count = buffer.len().min(this.frame_payload_limit);
        let payload = &buffer[..count];
        let mask = this.mask();
        let deflated = match &mut this.compressor {
            Some(compressor) if count > COMPRESSION_THRESHOLD => {
                compressor.compress(payload, &mut this.deflated);
                this.deflated.len() < count
            }
            _ => false,
        };
        if deflated {
            encode_frame(
                &mut this.outgoing,
                Opcode::Binary,
                &this.deflated,
                mask,
                true,
            );
        } else {
            encode_frame(&mut this.outgoing, Opcode::Binary, payload, mask, false);
        }
        // The frame is queued: it is written now as far as the socket allows, and by the next
        // write or flush otherwise.
        if let Poll::Ready(Err(error)) = this.poll_drain(context) {
            return Poll::Ready(Err(error));
        }
        Poll::Ready(Ok(count))
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(context))?;
        Pin::new(&mut this.inner).poll_flush(context)
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.queue_close(close_code::NORMAL);
        ready!(this.poll_drain(context))?;
        Pin::new(&mut this.inner).poll_shutdown(context)
    }
}

/// The client side's settings (leaf node remotes over `ws://` and `wss://`).
#[derive(Debug, Clone)]
pub struct ClientWebSocketSettings {
    pub handshake_timeout: Duration,
    pub max_message_size: usize,
    /// Ask the server for `Nats-No-Masking` (`ws_no_masking`); frames go unmasked only if the
    /// server agrees.
    pub no_masking: bool,
    /// Offer permessage-deflate.
    pub compression: bool,
}

/// Upgrades an established transport (TCP, or TLS for `wss://`) with `GET <url>`, bounded
/// by the handshake timeout. `url` is `ws://host[:port]/path` or `wss://...`; the caller
/// appends `/leafnode` for leaf nodes.
pub async fn connect_websocket(
    transport: Transport,
    url: &str,
    settings: &ClientWebSocketSettings,
) -> Result<Transport, WebSocketError> {
    let timeout = settings.handshake_timeout;
    tokio::time::timeout(timeout, client_upgrade(transport, url, settings))
        .await
        .unwrap_or(Err(WebSocketError::HandshakeTimeout(timeout)))
}

fn client_refusal(reason: impl Into<String>) -> WebSocketError {
    WebSocketError::Client(reason.into())
}

async fn client_upgrade(
    mut transport: Transport,
    url: &str,
    settings: &ClientWebSocketSettings,
) -> Result<Transport, WebSocketError> {
    let uri: Uri = url
        .parse()
        .map_err(|_| client_refusal(format!("{url:?} is not a URL")))?;
    let authority = uri
        .authority()
        .ok_or_else(|| client_refusal(format!("{url:?} names no host")))?;
    let path = uri.path_and_query().map_or("/", |path| path.as_str());
    let key = generate_key();
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    );
    if settings.no_masking {
        request.push_str("Nats-No-Masking: true\r\n");
    }
    if settings.compression {
        request.push_str("Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; server_no_context_takeover\r\n");
    }
    request.push_str("\r\n");
    transport
        .write_all(request.as_bytes())
        .await
        .map_err(WebSocketError::Write)?;
    transport.flush().await.map_err(WebSocketError::Write)?;

    let mut received = Vec::with_capacity(1024);
    let (head_length, response) = loop {
        read_more(&mut transport, &mut received).await?;
        if let Some(parsed) = parse_response(&received)? {
            break parsed;
        }
        if received.len() >= MAX_UPGRADE_RESPONSE_SIZE {
            return Err(client_refusal("upgrade response headers too large"));
        }
    };
    if response.status != 101 {
        return Err(client_refusal(format!(
            "the server answered the upgrade with status {}",
            response.status
        )));
    }
    if response.header("sec-websocket-accept") != Some(derive_accept_key(key.as_bytes()).as_str()) {
        return Err(client_refusal("wrong Sec-WebSocket-Accept"));
    }
    let compression = settings.compression && response.offers_permessage_deflate();
    let agreement = Agreement {
        role: Role::Client,
        no_masking: settings.no_masking && response.header("nats-no-masking") == Some("true"),
        compression,
        max_message_size: settings.max_message_size,
        browser: false,
    };
    // Whatever followed the head (INFO, often) is the first frames.
    Ok(Transport::WebSocket(Box::new(WebSocketTransport::new(
        transport,
        agreement,
        &received[head_length..],
    ))))
}

/// The parts of the server's answer the client checks.
struct UpgradeResponse {
    status: u16,
    headers: Vec<(String, String)>,
}

impl UpgradeResponse {
    fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    fn offers_permessage_deflate(&self) -> bool {
        header_lists(
            &self.headers,
            "sec-websocket-extensions",
            PERMESSAGE_DEFLATE,
        )
    }
}

/// The head's length and the response, once the head is complete.
fn parse_response(bytes: &[u8]) -> Result<Option<(usize, UpgradeResponse)>, WebSocketError> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(bytes) {
        Ok(httparse::Status::Complete(length)) => Ok(Some((
            length,
            UpgradeResponse {
                status: response.code.unwrap_or_default(),
                headers: owned_headers(response.headers),
            },
        ))),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(error) => Err(client_refusal(format!(
            "malformed upgrade response: {error}"
        ))),
    }
}
