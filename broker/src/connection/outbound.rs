//! The bounded outbound buffer of one connection and its overflow policy.
//!
//! Publishers append whole frames under the connection's lock; the connection's writer task
//! takes everything queued in one swap and writes it without holding the lock. Pending bytes
//! (queued plus being written) never exceed `max_pending`: a frame that would cross it makes
//! the connection a slow consumer, which nats-server answers by closing it without an `-ERR`.
//! Once compression starts (routes, after negotiation), everything queued after that point
//! goes out S2-compressed: the writer learns where the plain bytes end from the batch it takes.

use bytes::BytesMut;

use crate::compression::S2Level;
use crate::protocol::route_parser::OutgoingRoutedMessage;
use crate::protocol::server_operations::Delivery;

/// Read buffers and write buffers shrink back to this after a burst.
pub const RETAINED_CAPACITY: usize = 64 * 1024;

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Queuing it would exceed `max_pending`: the connection must close as a slow consumer.
    SlowConsumer,
    /// The connection is closing; the frame is dropped.
    Closed,
}

#[derive(Debug)]
pub struct Outbound {
    buffer: BytesMut,
    /// Bytes the writer took and has not finished writing.
    in_flight: usize,
    max_pending: usize,
    closed: bool,
    /// The level the writer compresses at, once compression started.
    compression: Option<S2Level>,
    /// How many bytes at the front of `buffer` were queued before compression started.
    plain_prefix: Option<usize>,
}

/// What the writer took in one swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    pub length: usize,
    /// Compress the batch at this level, except its first `plain` bytes.
    pub compression: Option<(S2Level, usize)>,
}

impl Outbound {
    pub fn new(max_pending: usize) -> Self {
        Self {
            buffer: BytesMut::new(),
            in_flight: 0,
            max_pending,
            closed: false,
            compression: None,
            plain_prefix: None,
        }
    }

    /// Everything queued from now on is compressed at `level` (called again, it only changes
    /// the level of what follows).
    pub fn start_compression(&mut self, level: S2Level) {
        if self.compression.is_none() {
            self.plain_prefix = Some(self.buffer.len());
        }
        self.compression = Some(level);
    }

    pub fn compression(&self) -> Option<S2Level> {
        self.compression
    }

    pub fn pending_bytes(&self) -> usize {
        self.buffer.len() + self.in_flight
    }

    fn admit(&self, length: usize) -> Result<(), Refused> {
        if self.closed {
            return Err(Refused::Closed);
        }
        if self.pending_bytes() + length > self.max_pending {
            return Err(Refused::SlowConsumer);
        }
        Ok(())
    }

    /// Queues one message for a receiver with or without header support; returns its size.
    pub fn push_delivery(
        &mut self,
        delivery: &Delivery<'_>,
        supports_headers: bool,
    ) -> Result<usize, Refused> {
        self.admit(delivery.encoded_length(supports_headers))?;
        let before = self.buffer.len();
        delivery.encode(&mut self.buffer, supports_headers);
        Ok(self.buffer.len() - before)
    }

    /// Queues one message for a route; returns its size.
    pub fn push_routed(
        &mut self,
        message: &OutgoingRoutedMessage<'_>,
        peer_supports_headers: bool,
    ) -> Result<usize, Refused> {
        self.admit(message.payload.len())?;
        Ok(message.encode(&mut self.buffer, peer_supports_headers))
    }

    /// Queues protocol bytes (PONG, +OK, -ERR, INFO). Control traffic is small and bounded by
    /// what the client sends, so it is admitted even past `max_pending` unless closed.
    pub fn push_control(&mut self, bytes: &[u8]) {
        if !self.closed {
            self.buffer.extend_from_slice(bytes);
        }
    }

    /// Queues an encoded frame produced by `encode`.
    pub fn push_with(&mut self, encode: impl FnOnce(&mut BytesMut)) {
        if !self.closed {
            encode(&mut self.buffer);
        }
    }

    /// Moves everything queued into `spare` (which must be empty) for the writer.
    pub fn take_into(&mut self, spare: &mut BytesMut) -> Batch {
        std::mem::swap(&mut self.buffer, spare);
        self.in_flight = spare.len();
        let plain = self.plain_prefix.take().unwrap_or(0);
        Batch {
            length: self.in_flight,
            compression: self.compression.map(|level| (level, plain)),
        }
    }

    /// The writer finished writing what it took.
    pub fn written(&mut self) {
        self.in_flight = 0;
    }

    /// No more frames are accepted.
    pub fn close(&mut self) {
        self.closed = true;
    }

    pub fn set_max_pending(&mut self, max_pending: usize) {
        self.max_pending = max_pending;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn delivery(payload: &[u8]) -> Delivery<'_> {
        Delivery {
            subject: b"foo",
            sid: b"1",
            reply: None,
            header_length: 0,
            payload,
        }
    }

    #[test]
    fn frames_beyond_max_pending_make_a_slow_consumer() {
        let mut outbound = Outbound::new(64);
        let size = outbound
            .push_delivery(&delivery(b"0123456789"), false)
            .unwrap();
        assert_eq!(size, b"MSG foo 1 10\r\n0123456789\r\n".len());
        assert_eq!(
            outbound.push_delivery(&delivery(&[b'x'; 40]), false),
            Err(Refused::SlowConsumer)
        );
    }

    #[test]
    fn bytes_being_written_still_count_as_pending() {
        let mut outbound = Outbound::new(40);
        outbound
            .push_delivery(&delivery(b"0123456789"), false)
            .unwrap();
        let mut spare = BytesMut::new();
        let taken = outbound.take_into(&mut spare);
        assert_eq!(outbound.pending_bytes(), taken.length);
        assert_eq!(
            outbound.push_delivery(&delivery(b"0123456789"), false),
            Err(Refused::SlowConsumer)
        );
        outbound.written();
        assert!(outbound
            .push_delivery(&delivery(b"0123456789"), false)
            .is_ok());
    }

    #[test]
    fn bytes_queued_before_compression_starts_stay_plain() {
        let mut outbound = Outbound::new(1024);
        outbound.push_control(b"INFO {}\r\n");
        outbound.start_compression(S2Level::Fast);
        outbound.push_control(b"PING\r\n");
        let mut spare = BytesMut::new();
        let batch = outbound.take_into(&mut spare);
        assert_eq!(batch.length, 15);
        assert_eq!(batch.compression, Some((S2Level::Fast, 9)));
        spare.clear();
        outbound.written();
        outbound.push_control(b"PONG\r\n");
        let batch = outbound.take_into(&mut spare);
        assert_eq!(batch.compression, Some((S2Level::Fast, 0)));
    }

    #[test]
    fn closed_outbound_refuses_everything() {
        let mut outbound = Outbound::new(1024);
        outbound.close();
        assert_eq!(
            outbound.push_delivery(&delivery(b"x"), false),
            Err(Refused::Closed)
        );
        outbound.push_control(b"PONG\r\n");
        assert_eq!(outbound.pending_bytes(), 0);
    }
}
