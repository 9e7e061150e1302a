//! nats-server's client connection sequence on the NATS port: INFO, then TLS when configured.
//!
//! Contract of [`accept_client`], given an accepted TCP stream and the INFO to send:
//! - no TLS configured: INFO is written in plain text and the stream is returned as is;
//! - TLS configured (`tls_required: true` in INFO): INFO in plain text, then the TLS handshake,
//!   bounded by `tls { timeout }`;
//! - `handshake_first: true`: the TLS handshake first, then INFO inside TLS;
//! - `handshake_first: "300ms"` / `auto`: TLS first if the client sends anything within the
//!   delay; otherwise INFO in plain text and then TLS as usual (the client upgrades after
//!   reading INFO);
//! - `allow_non_tls: true` (INFO says `tls_available` instead of `tls_required`): after INFO,
//!   the first byte the client sends decides: 0x16 (a TLS handshake record) starts TLS,
//!   anything else, or silence for the TLS timeout, continues in plain text. The byte is
//!   peeked, not consumed, so the session reads it.
//!
//! INFO is always written here, exactly once, so the session must not send it again. Its
//! `tls_required`, `tls_verify` and `tls_available` fields are set from [`ClientSecurity`].
//! The auth timer should start once this returns: nats-server starts it after TLS.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::protocol::info::ServerInfo;

use super::options::HandshakeFirst;
use super::tls::{ServerTls, TlsError};
use super::Transport;

/// The first byte of every TLS handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// How connections on the client port are secured: the top-level `tls { }` block and
/// `allow_non_tls`.
#[derive(Debug, Clone, Default)]
pub struct ClientSecurity {
    pub tls: Option<ServerTls>,
    pub allow_non_tls: bool,
}

impl ClientSecurity {
    /// Sets INFO's TLS fields the way nats-server sets them for every INFO it sends to
    /// clients (including asynchronous ones).
    pub fn apply_to(&self, info: &mut ServerInfo) {
        let Some(tls) = &self.tls else {
            info.tls_required = false;
            info.tls_verify = false;
            info.tls_available = false;
            return;
        };
        info.tls_required = !self.allow_non_tls;
        info.tls_available = self.allow_non_tls;
        info.tls_verify = tls.verifies_clients();
    }

    /// nats-server's default auth timeout with TLS: the TLS timeout plus a second, so a slow
    /// handshake does not eat the time a client has to authenticate.
    pub fn default_auth_timeout(&self) -> Option<Duration> {
        self.tls
            .as_ref()
            .map(|tls| tls.timeout() + Duration::from_secs(1))
    }
}

/// Why a client connection did not get past INFO and TLS.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error("error writing INFO: {0}")]
    WriteInfo(io::Error),

    #[error("timed out writing INFO (after {0:?})")]
    WriteInfoTimeout(Duration),

    #[error("error waiting for the client's first bytes: {0}")]
    Read(io::Error),

    #[error("client closed the connection before the TLS handshake")]
    ClosedBeforeHandshake,

    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Runs INFO and TLS on a freshly accepted client connection; see the module docs. INFO
/// writes are bounded by `write_deadline`.
pub async fn accept_client(
    stream: TcpStream,
    security: &ClientSecurity,
    mut info: ServerInfo,
    write_deadline: Duration,
) -> Result<Transport, AcceptError> {
    security.apply_to(&mut info);
    let Some(tls) = &security.tls else {
        let mut stream = stream;
        write_info(&mut stream, &info, write_deadline).await?;
        return Ok(Transport::Tcp(stream));
    };
    let tls_first = match tls.handshake_first() {
        HandshakeFirst::Off => false,
        HandshakeFirst::On => true,
        HandshakeFirst::Fallback(delay) => client_spoke_within(&stream, delay).await?,
    };
    if tls_first {
        // A client doing TLS first is told TLS is required, even under allow_non_tls.
        info.tls_required = true;
        info.tls_available = false;
        let mut stream = tls.accept(stream).await?;
        write_info(&mut stream, &info, write_deadline).await?;
        return Ok(Transport::TlsServer(Box::new(stream)));
    }
    let mut stream = stream;
    write_info(&mut stream, &info, write_deadline).await?;
    if security.allow_non_tls && !starts_with_tls_record(&stream, tls.timeout()).await? {
        return Ok(Transport::Tcp(stream));
    }
    let stream = tls.accept(stream).await?;
    Ok(Transport::TlsServer(Box::new(stream)))
}

async fn write_info<S: AsyncWrite + Unpin>(
    stream: &mut S,
    info: &ServerInfo,
    deadline: Duration,
) -> Result<(), AcceptError> {
    let line = info.to_protocol_line();
    let write = async {
        stream.write_all(&line).await?;
        stream.flush().await
    };
    match tokio::time::timeout(deadline, write).await {
        Ok(result) => result.map_err(AcceptError::WriteInfo),
        Err(_) => Err(AcceptError::WriteInfoTimeout(deadline)),
    }
}

/// Whether the client sent anything within `delay`; any byte means it is starting TLS (a
/// client that is not will fail the handshake, as with nats-server).
async fn client_spoke_within(stream: &TcpStream, delay: Duration) -> Result<bool, AcceptError> {
    let mut first = [0u8; 1];
    match tokio::time::timeout(delay, stream.peek(&mut first)).await {
        Ok(Ok(0)) => Err(AcceptError::ClosedBeforeHandshake),
        Ok(Ok(_)) => Ok(true),
        Ok(Err(error)) => Err(AcceptError::Read(error)),
        Err(_) => Ok(false),
    }
}

/// Whether the client's first byte opens a TLS handshake; silence for `wait` means plain
/// text, as in nats-server.
async fn starts_with_tls_record(stream: &TcpStream, wait: Duration) -> Result<bool, AcceptError> {
    let mut first = [0u8; 1];
    match tokio::time::timeout(wait, stream.peek(&mut first)).await {
        Ok(Ok(0)) => Err(AcceptError::ClosedBeforeHandshake),
        Ok(Ok(_)) => Ok(first[0] == TLS_HANDSHAKE_RECORD),
        Ok(Err(error)) => Err(AcceptError::Read(error)),
        Err(_) => Ok(false),
    }
}

#[cfg(test)]
#[path = "accept_tests.rs"]
mod tests;
