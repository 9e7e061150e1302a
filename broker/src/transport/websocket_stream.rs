//! A byte stream over WebSocket frames, and the client side of the upgrade.
//!
//! Contract of [`WebSocketTransport`]:
//! - reading yields the payloads of binary and text messages, in order, as one stream (a NATS
//!   operation may span messages, and a message may hold several operations); ping frames
//!   are answered with pong by tungstenite while reading; a close frame is answered and reads
//!   as end of stream;
//! - each write sends one binary frame of at most 64 KiB (4 KiB for browsers, as nats-server
//!   does), unmasked on the server side and masked on the client side; a flush pushes out
//!   everything queued; shutdown sends a close frame;
//! - messages larger than the configured maximum fail the read (tungstenite answers with close
//!   status 1009), unmasked client frames fail it unless `Nats-No-Masking` was agreed, and a
//!   frame with reserved bits set (compression was never negotiated) fails it with 1002.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as TungsteniteError, Message};
use tokio_tungstenite::WebSocketStream;

use super::websocket::{stream_config, WebSocketError};
use super::Transport;

/// Payload bytes per frame written to non-browser peers.
const FRAME_PAYLOAD_LIMIT: usize = 64 * 1024;
/// nats-server's frame size for browsers, which cope badly with larger frames.
const BROWSER_FRAME_PAYLOAD_LIMIT: usize = 4096;

pub(super) fn frame_payload_limit(browser: bool) -> usize {
    if browser {
        BROWSER_FRAME_PAYLOAD_LIMIT
    } else {
        FRAME_PAYLOAD_LIMIT
    }
}

/// NATS bytes over a WebSocket connection (see the module docs).
pub struct WebSocketTransport {
    stream: WebSocketStream<Transport>,
    /// The unread rest of the last message.
    pending: Bytes,
    frame_payload_limit: usize,
}

impl WebSocketTransport {
    pub(super) async fn new(
        transport: Transport,
        role: Role,
        config: WebSocketConfig,
        browser: bool,
    ) -> Self {
        Self {
            stream: WebSocketStream::from_raw_socket(transport, role, Some(config)).await,
            pending: Bytes::new(),
            frame_payload_limit: frame_payload_limit(browser),
        }
    }

    /// The transport under the frames (TCP or TLS).
    pub fn inner(&self) -> &Transport {
        self.stream.get_ref()
    }
}

fn to_io_error(error: TungsteniteError) -> io::Error {
    match error {
        TungsteniteError::Io(error) => error,
        TungsteniteError::ConnectionClosed | TungsteniteError::AlreadyClosed => {
            io::ErrorKind::BrokenPipe.into()
        }
        other => io::Error::new(io::ErrorKind::InvalidData, other),
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
            match ready!(Pin::new(&mut this.stream).poll_next(context)) {
                Some(Ok(Message::Binary(payload))) => this.pending = payload,
                Some(Ok(Message::Text(text))) => this.pending = Bytes::from(text),
                // Pings are answered inside tungstenite's read; pongs need nothing.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Close(_))) | None => return Poll::Ready(Ok(())),
                Some(Err(TungsteniteError::ConnectionClosed | TungsteniteError::AlreadyClosed)) => {
                    return Poll::Ready(Ok(()))
                }
                Some(Err(error)) => return Poll::Ready(Err(to_io_error(error))),
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
        ready!(Pin::new(&mut this.stream).poll_ready(context)).map_err(to_io_error)?;
        let count = buffer.len().min(this.frame_payload_limit);
        let frame = Message::Binary(Bytes::copy_from_slice(&buffer[..count]));
        Pin::new(&mut this.stream)
            .start_send(frame)
            .map_err(to_io_error)?;
        Poll::Ready(Ok(count))
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream)
            .poll_flush(context)
            .map_err(to_io_error)
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        match ready!(Pin::new(&mut self.get_mut().stream).poll_close(context)) {
            Ok(()) | Err(TungsteniteError::ConnectionClosed | TungsteniteError::AlreadyClosed) => {
                Poll::Ready(Ok(()))
            }
            Err(error) => Poll::Ready(Err(to_io_error(error))),
        }
    }
}

/// The client side's settings (leaf node remotes over `ws://` and `wss://`).
#[derive(Debug, Clone)]
pub struct ClientWebSocketSettings {
    pub handshake_timeout: Duration,
    pub max_message_size: usize,
    /// Ask the server for `Nats-No-Masking` (`ws_no_masking`). tungstenite masks client
    /// frames regardless, which every server accepts.
    pub no_masking: bool,
}

/// Upgrades an established transport (TCP, or TLS for `wss://`) with `GET <url>`, bounded
/// by the handshake timeout. `url` is `ws://host[:port]/path` or `wss://...`; the caller
/// appends `/leafnode` for leaf nodes.
pub async fn connect_websocket(
    transport: Transport,
    url: &str,
    settings: &ClientWebSocketSettings,
) -> Result<Transport, WebSocketError> {
    let mut request = url.into_client_request()?;
    if settings.no_masking {
        request
            .headers_mut()
            .insert("Nats-No-Masking", HeaderValue::from_static("true"));
    }
    let config = stream_config(settings.max_message_size, false);
    let handshake = tokio_tungstenite::client_async_with_config(request, transport, Some(config));
    let (stream, _response) = tokio::time::timeout(settings.handshake_timeout, handshake)
        .await
        .map_err(|_| WebSocketError::HandshakeTimeout(settings.handshake_timeout))??;
    Ok(Transport::WebSocket(Box::new(WebSocketTransport {
        stream,
        pending: Bytes::new(),
        frame_payload_limit: FRAME_PAYLOAD_LIMIT,
    })))
}
