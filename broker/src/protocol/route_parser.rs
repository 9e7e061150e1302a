//! The route protocol (server to server inside a cluster) as pure values.
//!
//! Contract: `parse_route_operation` looks at the front of a buffer and returns one complete
//! operation borrowed from it, `Incomplete`, or an error (any error closes the route, as in
//! nats-server). `RS+`/`RS-` carry interest per account, `RMSG`/`HMSG` carry messages with an
//! optional reply and the queue groups the sender chose a member for on this server; `LS+`,
//! `LS-` and `LMSG` are the leaf-origin variants and are parsed the same way (their origin
//! cluster is kept). Encoders append complete frames. Nothing here allocates per message.

use bytes::{BufMut, BytesMut};
use memchr::memchr;

use super::client_parser::parse_size;
use super::errors::ProtocolError;
use super::server_operations::put_decimal;

const CRLF_LENGTH: usize = 2;

/// Bounds for one route connection.
#[derive(Debug, Clone, Copy)]
pub struct RouteLimits {
    /// Longest control line (routes carry long queue lists, so this is generous).
    pub max_control_line: usize,
    /// Largest routed payload accepted.
    pub max_payload: usize,
}

/// A message forwarded by another server of the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoutedMessage<'a> {
    /// Origin cluster of an `LMSG`.
    pub origin: Option<&'a [u8]>,
    pub account: &'a [u8],
    pub subject: &'a [u8],
    pub reply: Option<&'a [u8]>,
    /// Queue group names separated by spaces (empty when none were chosen).
    pub queue_groups: &'a [u8],
    pub header_length: usize,
    pub payload: &'a [u8],
}

impl<'a> RoutedMessage<'a> {
    /// The queue group names the sender chose members for.
    pub fn queue_group_names(&self) -> impl Iterator<Item = &'a [u8]> {
        self.queue_groups
            .split(|byte| *byte == b' ')
            .filter(|name| !name.is_empty())
    }
}

/// Interest announced by a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteInterest<'a> {
    pub origin: Option<&'a [u8]>,
    pub account: &'a [u8],
    pub subject: &'a [u8],
    pub queue_group: Option<&'a [u8]>,
    /// Members of the queue group on the peer (`RS+` only; 1 for plain interest).
    pub weight: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteOperation<'a> {
    Info(&'a [u8]),
    Connect(&'a [u8]),
    Ping,
    Pong,
    Ok,
    Error(&'a [u8]),
    Subscribe(RemoteInterest<'a>),
    Unsubscribe(RemoteInterest<'a>),
    Message(RoutedMessage<'a>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParsedRoute<'a> {
    Complete {
        operation: RouteOperation<'a>,
        consumed: usize,
    },
    Incomplete,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Name {
    Info,
    Connect,
    Ping,
    Pong,
    Ok,
    Error,
    RemoteSubscribe,
    RemoteUnsubscribe,
    LeafSubscribe,
    LeafUnsubscribe,
    RoutedMessage,
    HeaderMessage,
    LeafMessage,
}

const NAMES: [(&[u8], Name); 13] = [
    (b"RS+", Name::RemoteSubscribe),
    (b"RS-", Name::RemoteUnsubscribe),
    (b"RMSG", Name::RoutedMessage),
    (b"HMSG", Name::HeaderMessage),
    (b"LS+", Name::LeafSubscribe),
    (b"LS-", Name::LeafUnsubscribe),
    (b"LMSG", Name::LeafMessage),
    (b"PING", Name::Ping),
    (b"PONG", Name::Pong),
    (b"INFO", Name::Info),
    (b"CONNECT", Name::Connect),
    (b"+OK", Name::Ok),
    (b"-ERR", Name::Error),
];

/// Parses the route operation at the front of `buffer`. On a dedicated account route
/// (`pinned_account`), operations carry no account token and are in that account.
pub fn parse_route_operation<'a>(
    buffer: &'a [u8],
    limits: &RouteLimits,
    pinned_account: Option<&'a [u8]>,
) -> Result<ParsedRoute<'a>, ProtocolError> {
    let Some(newline) = memchr(b'\n', buffer) else {
        if buffer.len() > limits.max_control_line + 16 {
            return Err(ProtocolError::MaxControlLineExceeded);
        }
        check_name_prefix(buffer)?;
        return Ok(ParsedRoute::Incomplete);
    };
    let line_end = if newline > 0 && buffer[newline - 1] == b'\r' {
        newline - 1
    } else {
        newline
    };
    let line = &buffer[..line_end];
    if line.len() > limits.max_control_line + 16 {
        return Err(ProtocolError::MaxControlLineExceeded);
    }
    let name_end = line
        .iter()
        .position(|byte| matches!(byte, b' ' | b'\t'))
        .unwrap_or(line.len());
    let name = lookup(&line[..name_end]).ok_or(ProtocolError::UnknownOperation)?;
    let arguments = trim_start(&line[name_end..]);
    let consumed = newline + 1;
    let complete = |operation| {
        Ok(ParsedRoute::Complete {
            operation,
            consumed,
        })
    };
    match name {
        Name::Info => complete(RouteOperation::Info(arguments)),
        Name::Connect => complete(RouteOperation::Connect(arguments)),
        Name::Ping => complete(RouteOperation::Ping),
        Name::Pong => complete(RouteOperation::Pong),
        Name::Ok => complete(RouteOperation::Ok),
        Name::Error => complete(RouteOperation::Error(arguments)),
        Name::RemoteSubscribe => complete(RouteOperation::Subscribe(interest(
            arguments,
            false,
            true,
            pinned_account,
        )?)),
        Name::RemoteUnsubscribe => complete(RouteOperation::Unsubscribe(interest(
            arguments,
            false,
            false,
            pinned_account,
        )?)),
        Name::LeafSubscribe => complete(RouteOperation::Subscribe(interest(
            arguments,
            true,
            true,
            pinned_account,
        )?)),
        Name::LeafUnsubscribe => complete(RouteOperation::Unsubscribe(interest(
            arguments,
            false,
            false,
            pinned_account,
        )?)),
        Name::RoutedMessage | Name::HeaderMessage | Name::LeafMessage => {
            routed_message(buffer, arguments, consumed, name, limits, pinned_account)
        }
    }
}

fn lookup(word: &[u8]) -> Option<Name> {
    NAMES
        .iter()
        .find(|(spelling, _)| spelling.eq_ignore_ascii_case(word))
        .map(|(_, name)| *name)
}

/// An unterminated line must at least start like some operation.
fn check_name_prefix(buffer: &[u8]) -> Result<(), ProtocolError> {
    let word_end = buffer
        .iter()
        .position(|byte| matches!(byte, b' ' | b'\t' | b'\r'))
        .unwrap_or(buffer.len());
    let word = &buffer[..word_end];
    let complete_word = word_end < buffer.len();
    let plausible = NAMES.iter().any(|(spelling, _)| {
        if complete_word {
            spelling.eq_ignore_ascii_case(word)
        } else {
            word.len() <= spelling.len() && spelling[..word.len()].eq_ignore_ascii_case(word)
        }
    });
    if plausible {
        Ok(())
    } else {
        Err(ProtocolError::UnknownOperation)
    }
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    let skipped = bytes
        .iter()
        .position(|byte| !matches!(byte, b' ' | b'\t'))
        .unwrap_or(bytes.len());
    &bytes[skipped..]
}

/// Splits off the first field: `(field, rest)`.
fn next_field(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let bytes = trim_start(bytes);
    if bytes.is_empty() {
        return None;
    }
    let end = bytes
        .iter()
        .position(|byte| matches!(byte, b' ' | b'\t'))
        .unwrap_or(bytes.len());
    Some((&bytes[..end], &bytes[end..]))
}

/// The account: the pinned one (no token on a dedicated route), or the next field.
fn account_field<'a>(
    bytes: &'a [u8],
    pinned_account: Option<&'a [u8]>,
) -> Option<(&'a [u8], &'a [u8])> {
    match pinned_account {
        Some(account) => Some((account, bytes)),
        None => next_field(bytes),
    }
}

/// Splits off the last field: `(rest, field)`.
fn last_field(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = bytes
        .iter()
        .rposition(|byte| !matches!(byte, b' ' | b'\t'))?
        + 1;
    let start = bytes[..end]
        .iter()
        .rposition(|byte| matches!(byte, b' ' | b'\t'))
        .map_or(0, |at| at + 1);
    Some((&bytes[..start], &bytes[start..end]))
}

fn malformed(operation: &'static str, arguments: &[u8]) -> ProtocolError {
    ProtocolError::MalformedArguments {
        operation,
        arguments: String::from_utf8_lossy(arguments).into_owned(),
    }
}

/// `[origin] account subject [queue weight]` (`RS+`), `account subject [queue]` (`RS-`).
fn interest<'a>(
    arguments: &'a [u8],
    with_origin: bool,
    subscribe: bool,
    pinned_account: Option<&'a [u8]>,
) -> Result<RemoteInterest<'a>, ProtocolError> {
    let operation = if subscribe { "RS+" } else { "RS-" };
    let error = || malformed(operation, arguments);
    let mut rest = arguments;
    let origin = if with_origin {
        let (origin, after) = next_field(rest).ok_or_else(error)?;
        rest = after;
        Some(origin)
    } else {
        None
    };
    let (account, rest) = account_field(rest, pinned_account).ok_or_else(error)?;
    let (subject, rest) = next_field(rest).ok_or_else(error)?;
    let (queue_group, weight) = match next_field(rest) {
        None => (None, 1),
        Some((queue_group, rest)) => {
            let weight = match next_field(rest) {
                Some((weight, rest)) => {
                    if next_field(rest).is_some() {
                        return Err(error());
                    }
                    let weight = parse_size(weight).ok_or_else(error)?;
                    u32::try_from(weight).map_err(|_| error())?
                }
                // An unsubscribe names the queue without a weight; nats-server's RS+ always
                // carries one.
                None if subscribe => return Err(error()),
                None => 0,
            };
            (Some(queue_group), weight)
        }
    };
    Ok(RemoteInterest {
        origin,
        account,
        subject,
        queue_group,
        weight,
    })
}

fn routed_message<'a>(
    buffer: &'a [u8],
    arguments: &'a [u8],
    payload_start: usize,
    name: Name,
    limits: &RouteLimits,
    pinned_account: Option<&'a [u8]>,
) -> Result<ParsedRoute<'a>, ProtocolError> {
    let operation = match name {
        Name::HeaderMessage => "HMSG",
        Name::LeafMessage => "LMSG",
        _ => "RMSG",
    };
    let error = || malformed(operation, arguments);
    let mut rest = arguments;
    let origin = if name == Name::LeafMessage {
        let (origin, after) = next_field(rest).ok_or_else(error)?;
        rest = after;
        Some(origin)
    } else {
        None
    };
    let (account, rest) = account_field(rest, pinned_account).ok_or_else(error)?;
    let (subject, rest) = next_field(rest).ok_or_else(error)?;
    let (rest, total) = last_field(rest).ok_or_else(error)?;
    let total = parse_size(total).ok_or_else(error)?;
    // LMSG always carries a header size, HMSG too; RMSG never.
    let (middle, header_length) = if name == Name::RoutedMessage {
        (rest, 0)
    } else {
        let (rest, header) = last_field(rest).ok_or_else(error)?;
        (rest, parse_size(header).ok_or_else(error)?)
    };
    if header_length > total {
        return Err(error());
    }
    let (reply, queue_groups) = match next_field(middle) {
        None => (None, &middle[..0]),
        Some((first, after)) => match first {
            b"+" => {
                let (reply, queues) = next_field(after).ok_or_else(error)?;
                (Some(reply), trim_start(queues))
            }
            b"|" => (None, trim_start(after)),
            _ if next_field(after).is_none() => (Some(first), &after[..0]),
            _ => return Err(error()),
        },
    };
    if total > limits.max_payload {
        return Err(ProtocolError::MaxPayloadExceeded {
            size: total,
            max: limits.max_payload,
        });
    }
    let payload_end = payload_start + total;
    let end = payload_end + CRLF_LENGTH;
    if buffer.len() < end {
        if buffer.len() > payload_end && buffer[payload_end] != b'\r' {
            return Err(ProtocolError::PayloadTerminator);
        }
        return Ok(ParsedRoute::Incomplete);
    }
    if &buffer[payload_end..end] != b"\r\n" {
        return Err(ProtocolError::PayloadTerminator);
    }
    Ok(ParsedRoute::Complete {
        operation: RouteOperation::Message(RoutedMessage {
            origin,
            account,
            subject,
            reply,
            queue_groups: trim_end(queue_groups),
            header_length,
            payload: &buffer[payload_start..payload_end],
        }),
        consumed: end,
    })
}

fn trim_end(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|byte| !matches!(byte, b' ' | b'\t'))
        .map_or(0, |at| at + 1);
    &bytes[..end]
}

/// Appends `RS+ <account> <subject>[ <queue> <weight>]`; an empty `account` leaves the token
/// out (a dedicated account route).
pub fn encode_subscribe(
    out: &mut BytesMut,
    account: &[u8],
    subject: &[u8],
    queue_group: Option<(&[u8], u32)>,
) {
    out.put_slice(b"RS+ ");
    put_account(out, account);
    out.put_slice(subject);
    if let Some((queue_group, weight)) = queue_group {
        out.put_u8(b' ');
        out.put_slice(queue_group);
        out.put_u8(b' ');
        put_decimal(out, weight as usize);
    }
    out.put_slice(b"\r\n");
}

/// Appends `RS- <account> <subject>[ <queue>]` (an empty `account`: no token).
pub fn encode_unsubscribe(
    out: &mut BytesMut,
    account: &[u8],
    subject: &[u8],
    queue_group: Option<&[u8]>,
) {
    out.put_slice(b"RS- ");
    put_account(out, account);
    out.put_slice(subject);
    if let Some(queue_group) = queue_group {
        out.put_u8(b' ');
        out.put_slice(queue_group);
    }
    out.put_slice(b"\r\n");
}

fn put_account(out: &mut BytesMut, account: &[u8]) {
    if !account.is_empty() {
        out.put_slice(account);
        out.put_u8(b' ');
    }
}

/// A message as it goes over a route; an empty `account` is a dedicated account route's
/// (no account token).
#[derive(Debug, Clone, Copy)]
pub struct OutgoingRoutedMessage<'a> {
    pub account: &'a [u8],
    pub subject: &'a [u8],
    pub reply: Option<&'a [u8]>,
    pub queue_groups: &'a [&'a [u8]],
    pub header_length: usize,
    pub payload: &'a [u8],
}

impl OutgoingRoutedMessage<'_> {
    /// Appends `RMSG`, or `HMSG` when there are headers and the peer takes them (otherwise
    /// the headers are stripped, as nats-server does).
    pub fn encode(&self, out: &mut BytesMut, peer_supports_headers: bool) -> usize {
        let with_headers = peer_supports_headers && self.header_length > 0;
        let body = if with_headers {
            self.payload
        } else {
            &self.payload[self.header_length..]
        };
        let queues: usize = self.queue_groups.iter().map(|name| name.len() + 1).sum();
        out.reserve(
            self.account.len()
                + self.subject.len()
                + self.reply.map_or(0, <[u8]>::len)
                + queues
                + body.len()
                + 64,
        );
        let before = out.len();
        out.put_slice(if with_headers { b"HMSG " } else { b"RMSG " });
        put_account(out, self.account);
        out.put_slice(self.subject);
        out.put_u8(b' ');
        if self.queue_groups.is_empty() {
            if let Some(reply) = self.reply {
                out.put_slice(reply);
                out.put_u8(b' ');
            }
        } else {
            match self.reply {
                Some(reply) => {
                    out.put_slice(b"+ ");
                    out.put_slice(reply);
                    out.put_u8(b' ');
                }
                None => out.put_slice(b"| "),
            }
            for name in self.queue_groups {
                out.put_slice(name);
                out.put_u8(b' ');
            }
        }
        if with_headers {
            put_decimal(out, self.header_length);
            out.put_u8(b' ');
        }
        put_decimal(out, body.len());
        out.put_slice(b"\r\n");
        out.put_slice(body);
        out.put_slice(b"\r\n");
        out.len() - before
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    const LIMITS: RouteLimits = RouteLimits {
        max_control_line: 4096,
        max_payload: 1 << 20,
    };

    fn complete(input: &[u8]) -> RouteOperation<'_> {
        match parse_route_operation(input, &LIMITS, None).unwrap() {
            ParsedRoute::Complete {
                operation,
                consumed,
            } => {
                assert_eq!(
                    consumed,
                    input.len(),
                    "{:?}",
                    String::from_utf8_lossy(input)
                );
                operation
            }
            ParsedRoute::Incomplete => panic!("incomplete: {:?}", String::from_utf8_lossy(input)),
        }
    }

    fn message(input: &[u8]) -> RoutedMessage<'_> {
        match complete(input) {
            RouteOperation::Message(message) => message,
            other => panic!("not a message: {other:?}"),
        }
    }

    #[test]
    fn plain_and_queue_interest() {
        assert_eq!(
            complete(b"RS+ $G foo.bar\r\n"),
            RouteOperation::Subscribe(RemoteInterest {
                origin: None,
                account: b"$G",
                subject: b"foo.bar",
                queue_group: None,
                weight: 1
            })
        );
        assert_eq!(
            complete(b"RS+ $G foo workers 3\r\n"),
            RouteOperation::Subscribe(RemoteInterest {
                origin: None,
                account: b"$G",
                subject: b"foo",
                queue_group: Some(b"workers"),
                weight: 3
            })
        );
        assert_eq!(
            complete(b"RS- $G foo workers\r\n"),
            RouteOperation::Unsubscribe(RemoteInterest {
                origin: None,
                account: b"$G",
                subject: b"foo",
                queue_group: Some(b"workers"),
                weight: 0
            })
        );
        assert!(parse_route_operation(b"RS+ $G foo workers\r\n", &LIMITS, None).is_err());
        assert!(parse_route_operation(b"RS+ $G\r\n", &LIMITS, None).is_err());
    }

    #[test]
    fn leaf_interest_keeps_its_origin() {
        let RouteOperation::Subscribe(interest) = complete(b"LS+ hub $G foo q 2\r\n") else {
            panic!("not a subscribe");
        };
        assert_eq!(interest.origin, Some(&b"hub"[..]));
        assert_eq!(interest.weight, 2);
    }

    #[test]
    fn routed_message_forms() {
        let plain = message(b"RMSG $G foo 5\r\nhello\r\n");
        assert_eq!(
            (plain.account, plain.subject, plain.reply),
            (&b"$G"[..], &b"foo"[..], None)
        );
        assert_eq!(plain.payload, b"hello");
        let with_reply = message(b"RMSG $G foo _INBOX.1 2\r\nhi\r\n");
        assert_eq!(with_reply.reply, Some(&b"_INBOX.1"[..]));
        let queues_and_reply = message(b"RMSG $G foo + _INBOX.1 q1 q2 2\r\nhi\r\n");
        assert_eq!(queues_and_reply.reply, Some(&b"_INBOX.1"[..]));
        let names: Vec<_> = queues_and_reply.queue_group_names().collect();
        assert_eq!(names, [&b"q1"[..], b"q2"]);
        let queues_only = message(b"RMSG $G foo | q1 2\r\nhi\r\n");
        assert_eq!(queues_only.reply, None);
        assert_eq!(queues_only.queue_groups, b"q1");
        let headers = message(b"HMSG $G foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n");
        assert_eq!(headers.header_length, 12);
        let leaf = message(b"LMSG hub $G foo | q 0 2\r\nhi\r\n");
        assert_eq!(leaf.origin, Some(&b"hub"[..]));
        assert_eq!(leaf.header_length, 0);
    }

    #[test]
    fn bad_reply_indicator_is_an_error() {
        assert!(parse_route_operation(b"RMSG $G foo x y 2\r\nhi\r\n", &LIMITS, None).is_err());
    }

    #[test]
    fn partial_input_waits_and_garbage_fails() {
        assert_eq!(
            parse_route_operation(b"RMSG $G foo 5\r\nhel", &LIMITS, None).unwrap(),
            ParsedRoute::Incomplete
        );
        assert_eq!(
            parse_route_operation(b"RS", &LIMITS, None).unwrap(),
            ParsedRoute::Incomplete
        );
        assert!(parse_route_operation(b"PUB foo 1\r\n", &LIMITS, None).is_err());
        assert!(parse_route_operation(b"XYZ", &LIMITS, None).is_err());
    }

    #[test]
    fn encoded_messages_parse_back() {
        type Case<'a> = (Option<&'a [u8]>, &'a [&'a [u8]], usize, bool);
        let cases: [Case<'_>; 5] = [
            (None, &[], 0, true),
            (Some(b"_INBOX.x"), &[], 0, true),
            (Some(b"_INBOX.x"), &[b"q1", b"q2"], 0, true),
            (None, &[b"q1"], 12, true),
            (None, &[], 12, false),
        ];
        let payload = b"NATS/1.0\r\n\r\nhi";
        for (reply, queues, header_length, peer_headers) in cases {
            let outgoing = OutgoingRoutedMessage {
                account: b"$G",
                subject: b"orders",
                reply,
                queue_groups: queues,
                header_length,
                payload: if header_length > 0 { payload } else { b"hi" },
            };
            let mut out = BytesMut::new();
            let written = outgoing.encode(&mut out, peer_headers);
            assert_eq!(written, out.len());
            let parsed = message(&out);
            assert_eq!(parsed.reply, reply);
            assert_eq!(parsed.queue_group_names().count(), queues.len());
            let expected_header = if peer_headers { header_length } else { 0 };
            assert_eq!(parsed.header_length, expected_header);
            assert!(parsed.payload.ends_with(b"hi"));
        }
    }

    #[test]
    fn encoded_interest_parses_back() {
        let mut out = BytesMut::new();
        encode_subscribe(&mut out, b"$G", b"foo.*", Some((b"q", 4)));
        encode_unsubscribe(&mut out, b"$G", b"foo.*", Some(b"q"));
        assert_eq!(&out[..], b"RS+ $G foo.* q 4\r\nRS- $G foo.* q\r\n");
    }

    #[test]
    fn dedicated_account_routes_carry_no_account_token() {
        let pinned = Some(&b"$SYS"[..]);
        let operation =
            |input: &'static [u8]| match parse_route_operation(input, &LIMITS, pinned).unwrap() {
                ParsedRoute::Complete { operation, .. } => operation,
                ParsedRoute::Incomplete => panic!("incomplete"),
            };
        let RouteOperation::Subscribe(interest) = operation(b"RS+ foo.> q 2\r\n") else {
            panic!("not a subscribe");
        };
        assert_eq!(
            (
                interest.account,
                interest.subject,
                interest.queue_group,
                interest.weight
            ),
            (&b"$SYS"[..], &b"foo.>"[..], Some(&b"q"[..]), 2)
        );
        let RouteOperation::Message(routed) = operation(b"RMSG foo + _INBOX.1 q 2\r\nhi\r\n")
        else {
            panic!("not a message");
        };
        assert_eq!(routed.account, b"$SYS");
        assert_eq!(routed.reply, Some(&b"_INBOX.1"[..]));
        assert_eq!(routed.queue_groups, b"q");
        let mut out = BytesMut::new();
        encode_subscribe(&mut out, b"", b"foo", None);
        OutgoingRoutedMessage {
            account: b"",
            subject: b"foo",
            reply: None,
            queue_groups: &[],
            header_length: 0,
            payload: b"hi",
        }
        .encode(&mut out, true);
        assert_eq!(&out[..], b"RS+ foo\r\nRMSG foo 2\r\nhi\r\n");
    }
}
