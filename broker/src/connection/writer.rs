//! The writer task of a connection: drains the outbound buffer to the socket.
//!
//! Contract: runs until the connection closes. Each wake-up takes everything queued in one
//! swap and writes and flushes it with the write deadline; a write that misses the deadline
//! closes the connection as a slow consumer (write deadline), a failed write as a write error.
//! On close it writes what is still queued when the close reason asks for it (an `-ERR` must
//! reach the client before the socket closes), then shuts the socket down. A batch the
//! outbound buffer marks for compression goes through one S2 stream encoder kept for the
//! connection's life (its plain prefix, queued before compression started, is written first).

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::outbound::{Batch, RETAINED_CAPACITY};
use super::{CloseReason, Connection};
use crate::compression::S2Encoder;

/// Writes queued frames until the connection closes.
pub async fn run_writer<W: AsyncWrite + Unpin>(
    connection: Arc<Connection>,
    mut socket: W,
    write_deadline: Duration,
) {
    let mut spare = BytesMut::new();
    let mut encoder: Option<S2Encoder> = None;
    let mut compressed = BytesMut::new();
    loop {
        if connection.is_closing() && !flushes_on_close(&connection) {
            break;
        }
        let batch = connection.outbound.lock().take_into(&mut spare);
        if batch.length == 0 {
            if connection.is_closing() {
                break;
            }
            tokio::select! {
                () = connection.flush.notified() => continue,
                () = connection.closing().cancelled() => continue,
            }
        }
        let bytes = if compress(&batch, &spare, &mut encoder, &mut compressed) {
            &compressed
        } else {
            &spare
        };
        // The flush is free on TCP; TLS and WebSocket transports buffer until it.
        let write = async {
            socket.write_all(bytes).await?;
            socket.flush().await
        };
        let outcome = tokio::time::timeout(write_deadline, write).await;
        connection.outbound.lock().written();
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                connection.close(CloseReason::WriteError);
                break;
            }
            Err(_) => {
                connection.close(CloseReason::SlowConsumerWriteDeadline);
                break;
            }
        }
        spare.clear();
        if spare.capacity() > RETAINED_CAPACITY {
            spare = BytesMut::new();
        }
        compressed.clear();
        if compressed.capacity() > RETAINED_CAPACITY {
            compressed = BytesMut::new();
        }
    }
    connection.outbound.lock().close();
    // Best effort: the peer may already be gone.
    let _ = tokio::time::timeout(write_deadline, socket.shutdown()).await;
}

/// Encodes a batch marked for compression into `output`; `false` when it goes out as is.
fn compress(
    batch: &Batch,
    taken: &[u8],
    encoder: &mut Option<S2Encoder>,
    output: &mut BytesMut,
) -> bool {
    let Some((level, plain)) = batch.compression else {
        return false;
    };
    let plain = plain.min(taken.len());
    output.extend_from_slice(&taken[..plain]);
    let encoder = encoder.get_or_insert_with(|| S2Encoder::new(level));
    encoder.set_level(level);
    encoder.write(&taken[plain..], output);
    encoder.flush(output);
    true
}

/// A close without a reason is the server shutting down, which flushes like most reasons.
fn flushes_on_close(connection: &Connection) -> bool {
    connection
        .close_reason()
        .is_none_or(CloseReason::flushes_pending)
}
