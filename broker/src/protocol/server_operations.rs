//! Encoding of what the server sends to clients: `MSG`, `HMSG` and the fixed replies.
//!
//! Contract: every function appends complete protocol frames to a `BytesMut` and never fails.
//! A message with headers goes out as `HMSG` only to a connection that negotiated headers;
//! anyone else receives a `MSG` with the body alone, as nats-server does.

use bytes::{BufMut, BytesMut};

pub const PONG: &[u8] = b"PONG\r\n";
pub const PING: &[u8] = b"PING\r\n";
pub const OK: &[u8] = b"+OK\r\n";

/// `HMSG` payload of the no-responders status that nats-server 2.9–2.11 send.
pub const NO_RESPONDERS_HEADER: &[u8] = b"NATS/1.0 503\r\n\r\n";

/// Appends `-ERR '<text>'\r\n`.
pub fn encode_error(out: &mut BytesMut, text: &str) {
    out.reserve(text.len() + 9);
    out.put_slice(b"-ERR '");
    out.put_slice(text.as_bytes());
    out.put_slice(b"'\r\n");
}

/// One message as delivered to one subscription.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    pub subject: &'a [u8],
    pub sid: &'a [u8],
    pub reply: Option<&'a [u8]>,
    /// Length of the header block at the front of `payload` (0 when there are none).
    pub header_length: usize,
    pub payload: &'a [u8],
}

impl Delivery<'_> {
    /// Exactly the bytes `encode` appends for a receiver with or without header support.
    pub fn encoded_length(&self, receiver_supports_headers: bool) -> usize {
        let reply = self.reply.map_or(0, |reply| reply.len() + 1);
        let with_headers = receiver_supports_headers && self.header_length > 0;
        let (operation, sizes, body) = if with_headers {
            (
                5,
                decimal_length(self.header_length) + 1 + decimal_length(self.payload.len()),
                self.payload.len(),
            )
        } else {
            let body = self.payload.len() - self.header_length;
            (4, decimal_length(body), body)
        };
        operation + self.subject.len() + 1 + self.sid.len() + 1 + reply + sizes + 2 + body + 2
    }

    /// Appends the frame for a receiver with or without header support.
    pub fn encode(&self, out: &mut BytesMut, receiver_supports_headers: bool) {
        out.reserve(self.encoded_length(receiver_supports_headers));
        let with_headers = receiver_supports_headers && self.header_length > 0;
        out.put_slice(if with_headers { b"HMSG " } else { b"MSG " });
        out.put_slice(self.subject);
        out.put_u8(b' ');
        out.put_slice(self.sid);
        out.put_u8(b' ');
        if let Some(reply) = self.reply {
            out.put_slice(reply);
            out.put_u8(b' ');
        }
        let body = if with_headers {
            put_decimal(out, self.header_length);
            out.put_u8(b' ');
            self.payload
        } else {
            &self.payload[self.header_length..]
        };
        put_decimal(out, body.len());
        out.put_slice(b"\r\n");
        out.put_slice(body);
        out.put_slice(b"\r\n");
    }
}

/// Number of decimal digits of `value`.
pub fn decimal_length(mut value: usize) -> usize {
    let mut digits = 1;
    while value >= 10 {
        value /= 10;
        digits += 1;
    }
    digits
}

/// Appends `value` in decimal without allocating.
pub fn put_decimal(out: &mut BytesMut, mut value: usize) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.put_slice(&digits[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(delivery: Delivery<'_>, headers: bool) -> BytesMut {
        let mut out = BytesMut::new();
        delivery.encode(&mut out, headers);
        assert_eq!(out.len(), delivery.encoded_length(headers));
        out
    }

    #[test]
    fn plain_message_frame() {
        let delivery = Delivery {
            subject: b"foo.bar",
            sid: b"12",
            reply: None,
            header_length: 0,
            payload: b"hello",
        };
        assert_eq!(
            &encoded(delivery, true)[..],
            b"MSG foo.bar 12 5\r\nhello\r\n"
        );
    }

    #[test]
    fn reply_goes_between_sid_and_size() {
        let delivery = Delivery {
            subject: b"foo",
            sid: b"1",
            reply: Some(b"_INBOX.x"),
            header_length: 0,
            payload: b"",
        };
        assert_eq!(
            &encoded(delivery, false)[..],
            b"MSG foo 1 _INBOX.x 0\r\n\r\n"
        );
    }

    #[test]
    fn headers_are_kept_for_header_clients_and_stripped_for_others() {
        let delivery = Delivery {
            subject: b"foo",
            sid: b"1",
            reply: None,
            header_length: 12,
            payload: b"NATS/1.0\r\n\r\nhi",
        };
        assert_eq!(
            &encoded(delivery, true)[..],
            b"HMSG foo 1 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"
        );
        assert_eq!(&encoded(delivery, false)[..], b"MSG foo 1 2\r\nhi\r\n");
    }

    #[test]
    fn error_is_quoted() {
        let mut out = BytesMut::new();
        encode_error(&mut out, "Stale Connection");
        assert_eq!(&out[..], b"-ERR 'Stale Connection'\r\n");
    }

    #[test]
    fn decimal_edges() {
        for value in [0usize, 9, 10, 4096, usize::MAX] {
            let mut out = BytesMut::new();
            put_decimal(&mut out, value);
            assert_eq!(out, value.to_string().as_bytes());
        }
    }
}
