//! The bounded outbound buffer of one connection and its overflow policy.
//!
//! Publishers append whole frames under the connection's lock; the connection's writer task
//! takes everything queued in one swap and writes it without holding the lock. Pending bytes
//! (queued plus being written) never exceed `max_pending`: a frame that would cross it makes
//! the connection a slow consumer, which nats-server answers by closing it without an `-ERR`.

use bytes::BytesMut;

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
}

impl Outbound {
    pub fn new(max_pending: usize) -> Self {
        Self {
            buffer: BytesMut::new(),
            in_flight: 0,
            max_pending,
            closed: false,
        }
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
    pub fn take_into(&mut self, spare: &mut BytesMut) -> usize {
        std::mem::swap(&mut self.buffer, spare);
        self.in_flight = spare.len();
        self.in_flight
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
        assert_eq!(outbound.pending_bytes(), taken);
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
