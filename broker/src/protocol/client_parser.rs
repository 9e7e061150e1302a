//! Parser for what clients send: one complete operation at a time, borrowed from the read buffer.
//!
//! Contract: `parse_client_operation(buffer, limits)` looks at the front of `buffer` and returns
//! either a complete operation with the number of bytes it used, `Incomplete` when more bytes
//! are needed (a value, not an error), or the `ProtocolError` nats-server would raise for the
//! same bytes. Payloads are borrowed, never copied. Leniency follows nats-server's parser:
//! operation names are case-insensitive, arguments are separated by any run of spaces or tabs,
//! control lines end with `\n` (a `\r` before it is dropped), anything after `PING`, `PONG` or
//! `+OK` up to the newline is ignored, and a payload must be followed by exactly `\r\n`.

use memchr::memchr;

use super::errors::ProtocolError;

const CRLF_LENGTH: usize = 2;

/// Limits the parser enforces for one connection.
#[derive(Debug, Clone, Copy)]
pub struct ParserLimits {
    pub max_control_line: usize,
    pub max_payload: usize,
}

/// A message published by a client (`PUB` or `HPUB`).
#[derive(Debug, PartialEq, Eq)]
pub struct Publish<'a> {
    pub subject: &'a [u8],
    pub reply: Option<&'a [u8]>,
    /// Length of the header block at the front of `payload` (0 for `PUB`).
    pub header_length: usize,
    /// Headers followed by the body, without the trailing CRLF.
    pub payload: &'a [u8],
    /// Sent as `HPUB`, which needs header support even with an empty header block.
    pub with_headers: bool,
}

/// One operation sent by a client.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientOperation<'a> {
    Connect(&'a [u8]),
    Publish(Publish<'a>),
    /// `HPUB` arrived; whether the connection may use headers is decided by the caller.
    Subscribe {
        subject: &'a [u8],
        queue_group: Option<&'a [u8]>,
        sid: &'a [u8],
    },
    Unsubscribe {
        sid: &'a [u8],
        /// `None` for no limit; nats-server treats an unparsable limit like 0 (unsubscribe now).
        max_messages: Option<u64>,
    },
    Ping,
    Pong,
    Ok,
    Info(&'a [u8]),
    Error(&'a [u8]),
}

/// Outcome of looking at the front of the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    Complete {
        operation: ClientOperation<'a>,
        consumed: usize,
    },
    /// More bytes are needed; `minimum_total` is the buffer length that will complete the
    /// operation when it is known (a payload being received).
    Incomplete { minimum_total: Option<usize> },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum OperationName {
    Publish,
    HeaderPublish,
    Subscribe,
    Unsubscribe,
    Connect,
    Info,
    Error,
    Ping,
    Pong,
    Ok,
}

/// Names in the order they are tried. The flag says whether the name must be followed by
/// whitespace before its arguments (`CONNECT` and `INFO` need not be).
const OPERATION_NAMES: [(&[u8], OperationName, Separator); 10] = [
    (b"PUB", OperationName::Publish, Separator::Required),
    (b"HPUB", OperationName::HeaderPublish, Separator::Required),
    (b"SUB", OperationName::Subscribe, Separator::Required),
    (b"UNSUB", OperationName::Unsubscribe, Separator::Required),
    (b"CONNECT", OperationName::Connect, Separator::Optional),
    (b"INFO", OperationName::Info, Separator::Optional),
    (b"-ERR", OperationName::Error, Separator::Required),
    (b"PING", OperationName::Ping, Separator::RestIgnored),
    (b"PONG", OperationName::Pong, Separator::RestIgnored),
    (b"+OK", OperationName::Ok, Separator::RestIgnored),
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Separator {
    Required,
    Optional,
    RestIgnored,
}

/// Parses the operation at the front of `buffer`.
pub fn parse_client_operation<'a>(
    buffer: &'a [u8],
    limits: &ParserLimits,
) -> Result<Parsed<'a>, ProtocolError> {
    let (name, name_length, separator) = match recognise_operation(buffer)? {
        Some(found) => found,
        None => {
            return Ok(Parsed::Incomplete {
                minimum_total: None,
            })
        }
    };
    let Some(newline) = memchr(b'\n', &buffer[name_length..]).map(|at| at + name_length) else {
        // Bound what an unterminated line may hold, as nats-server does for split lines
        // (one byte of slack for a `\r` whose `\n` has not arrived).
        if argument_start(buffer, name_length, separator)
            .is_some_and(|start| buffer.len() - start > limits.max_control_line + 1)
        {
            return Err(ProtocolError::MaxControlLineExceeded);
        }
        return Ok(Parsed::Incomplete {
            minimum_total: None,
        });
    };
    let line_end = if newline > 0 && buffer[newline - 1] == b'\r' {
        newline - 1
    } else {
        newline
    };
    let consumed_line = newline + 1;
    if separator == Separator::RestIgnored {
        // nats-server ignores what follows PING/PONG/+OK however long; Tern bounds it like
        // any control line, whether it arrives whole or split.
        if line_end.saturating_sub(name_length) > limits.max_control_line {
            return Err(ProtocolError::MaxControlLineExceeded);
        }
        let operation = match name {
            OperationName::Ping => ClientOperation::Ping,
            OperationName::Pong => ClientOperation::Pong,
            _ => ClientOperation::Ok,
        };
        return Ok(Parsed::Complete {
            operation,
            consumed: consumed_line,
        });
    }
    let start = argument_start(buffer, name_length, separator)
        .ok_or(ProtocolError::UnknownOperation)?
        .min(line_end);
    let arguments = &buffer[start..line_end];
    if arguments.len() > limits.max_control_line {
        return Err(ProtocolError::MaxControlLineExceeded);
    }
    let operation = match name {
        OperationName::Connect => ClientOperation::Connect(arguments),
        OperationName::Info => ClientOperation::Info(arguments),
        OperationName::Error => ClientOperation::Error(arguments),
        OperationName::Subscribe => parse_subscribe(arguments)?,
        OperationName::Unsubscribe => parse_unsubscribe(arguments)?,
        OperationName::Publish | OperationName::HeaderPublish => {
            return parse_publish(
                buffer,
                arguments,
                consumed_line,
                name == OperationName::HeaderPublish,
                limits,
            );
        }
        OperationName::Ping | OperationName::Pong | OperationName::Ok => {
            return Err(ProtocolError::UnknownOperation)
        }
    };
    Ok(Parsed::Complete {
        operation,
        consumed: consumed_line,
    })
}

/// Finds which operation the buffer starts with. `Ok(None)` means the bytes so far are a valid
/// prefix of some operation name.
fn recognise_operation(
    buffer: &[u8],
) -> Result<Option<(OperationName, usize, Separator)>, ProtocolError> {
    // Only names that start with the first byte can match; anything else fails at once.
    let first = match buffer.first() {
        Some(byte) => byte.to_ascii_uppercase(),
        None => return Ok(None),
    };
    let mut could_continue = false;
    for (spelling, name, separator) in OPERATION_NAMES {
        if spelling[0] != first {
            continue;
        }
        let compared = buffer.len().min(spelling.len());
        if !buffer[..compared].eq_ignore_ascii_case(&spelling[..compared]) {
            continue;
        }
        if compared < spelling.len() {
            could_continue = true;
            continue;
        }
        match (separator, buffer.get(spelling.len())) {
            (Separator::RestIgnored | Separator::Optional, _) => {
                return Ok(Some((name, spelling.len(), separator)))
            }
            (Separator::Required, None) => could_continue = true,
            (Separator::Required, Some(b' ' | b'\t')) => {
                return Ok(Some((name, spelling.len(), separator)))
            }
            // `PUBX` is no operation, but `PUB` may still be a prefix of another name.
            (Separator::Required, Some(_)) => {}
        }
    }
    if could_continue {
        Ok(None)
    } else {
        Err(ProtocolError::UnknownOperation)
    }
}

/// Where the arguments begin: after the name and any run of spaces and tabs. `None` when a
/// required separator is missing.
fn argument_start(buffer: &[u8], name_length: usize, separator: Separator) -> Option<usize> {
    let rest = &buffer[name_length..];
    let skipped = rest
        .iter()
        .position(|byte| !matches!(byte, b' ' | b'\t'))
        .unwrap_or(rest.len());
    if separator == Separator::Required && skipped == 0 && !rest.is_empty() {
        return None;
    }
    Some(name_length + skipped)
}

/// Splits arguments on runs of spaces and tabs into at most `N` parts; `None` if more.
fn split_arguments<const N: usize>(arguments: &[u8]) -> Option<([&[u8]; N], usize)> {
    let mut parts: [&[u8]; N] = [&[]; N];
    let mut count = 0;
    for part in arguments
        .split(|byte| matches!(byte, b' ' | b'\t' | b'\r'))
        .filter(|part| !part.is_empty())
    {
        if count == N {
            return None;
        }
        parts[count] = part;
        count += 1;
    }
    Some((parts, count))
}

/// nats-server's size rule: decimal digits only, anything else is no size.
pub fn parse_size(digits: &[u8]) -> Option<usize> {
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    digits.iter().try_fold(0usize, |total, byte| {
        byte.is_ascii_digit()
            .then(|| total * 10 + usize::from(byte - b'0'))
    })
}

fn malformed(operation: &'static str, arguments: &[u8]) -> ProtocolError {
    ProtocolError::MalformedArguments {
        operation,
        arguments: String::from_utf8_lossy(arguments).into_owned(),
    }
}

fn parse_subscribe(arguments: &[u8]) -> Result<ClientOperation<'_>, ProtocolError> {
    match split_arguments::<3>(arguments) {
        Some((parts, 2)) => Ok(ClientOperation::Subscribe {
            subject: parts[0],
            queue_group: None,
            sid: parts[1],
        }),
        Some((parts, 3)) => Ok(ClientOperation::Subscribe {
            subject: parts[0],
            queue_group: Some(parts[1]),
            sid: parts[2],
        }),
        _ => Err(malformed("SUB", arguments)),
    }
}

fn parse_unsubscribe(arguments: &[u8]) -> Result<ClientOperation<'_>, ProtocolError> {
    match split_arguments::<2>(arguments) {
        Some((parts, 1)) => Ok(ClientOperation::Unsubscribe {
            sid: parts[0],
            max_messages: None,
        }),
        Some((parts, 2)) => Ok(ClientOperation::Unsubscribe {
            sid: parts[0],
            max_messages: Some(parse_size(parts[1]).map_or(0, |size| size as u64)),
        }),
        _ => Err(malformed("UNSUB", arguments)),
    }
}

fn parse_publish<'a>(
    buffer: &'a [u8],
    arguments: &'a [u8],
    payload_start: usize,
    with_headers: bool,
    limits: &ParserLimits,
) -> Result<Parsed<'a>, ProtocolError> {
    let operation = if with_headers { "HPUB" } else { "PUB" };
    let (parts, count) = split_arguments::<4>(arguments).ok_or(malformed(operation, arguments))?;
    let (subject, reply, header_size, total_size) = match (with_headers, count) {
        (false, 2) => (parts[0], None, None, parts[1]),
        (false, 3) => (parts[0], Some(parts[1]), None, parts[2]),
        (true, 3) => (parts[0], None, Some(parts[1]), parts[2]),
        (true, 4) => (parts[0], Some(parts[1]), Some(parts[2]), parts[3]),
        _ => return Err(malformed(operation, arguments)),
    };
    let header_length = match header_size {
        Some(digits) => parse_size(digits).ok_or(malformed(operation, arguments))?,
        None => 0,
    };
    let size = parse_size(total_size).ok_or(malformed(operation, arguments))?;
    if header_length > size {
        return Err(malformed(operation, arguments));
    }
    if size > limits.max_payload {
        return Err(ProtocolError::MaxPayloadExceeded {
            size,
            max: limits.max_payload,
        });
    }
    let payload_end = payload_start + size;
    let total = payload_end + CRLF_LENGTH;
    if buffer.len() < total {
        // A byte that cannot be the terminator is an error as soon as it arrives.
        if buffer.len() > payload_end && buffer[payload_end] != b'\r' {
            return Err(ProtocolError::PayloadTerminator);
        }
        return Ok(Parsed::Incomplete {
            minimum_total: Some(total),
        });
    }
    if &buffer[payload_end..total] != b"\r\n" {
        return Err(ProtocolError::PayloadTerminator);
    }
    Ok(Parsed::Complete {
        operation: ClientOperation::Publish(Publish {
            subject,
            reply,
            header_length,
            payload: &buffer[payload_start..payload_end],
            with_headers,
        }),
        consumed: total,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    const LIMITS: ParserLimits = ParserLimits {
        max_control_line: 4096,
        max_payload: 1024 * 1024,
    };

    fn complete(input: &[u8]) -> (ClientOperation<'_>, usize) {
        match parse_client_operation(input, &LIMITS).unwrap() {
            Parsed::Complete {
                operation,
                consumed,
            } => (operation, consumed),
            other => panic!("expected a complete operation, got {other:?}"),
        }
    }

    #[test]
    fn publish_borrows_subject_reply_and_payload() {
        let (operation, consumed) = complete(b"PUB foo bar 5\r\nhello\r\nPING\r\n");
        assert_eq!(consumed, 22);
        assert_eq!(
            operation,
            ClientOperation::Publish(Publish {
                subject: b"foo",
                reply: Some(b"bar"),
                header_length: 0,
                payload: b"hello",
                with_headers: false,
            })
        );
    }

    #[test]
    fn operation_names_are_case_insensitive_and_separators_lenient() {
        let (operation, _) = complete(b"pUb\t foo  \t 2\r\nhi\r\n");
        assert!(matches!(
            operation,
            ClientOperation::Publish(Publish {
                subject: b"foo",
                ..
            })
        ));
        assert_eq!(complete(b"ping\n").0, ClientOperation::Ping);
        assert_eq!(complete(b"PING whatever\r\n").0, ClientOperation::Ping);
        assert_eq!(complete(b"PONG\r\n").0, ClientOperation::Pong);
        assert_eq!(complete(b"+ok\r\n").0, ClientOperation::Ok);
    }

    #[test]
    fn header_publish_carries_header_length() {
        let input = b"HPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n";
        let (operation, consumed) = complete(input);
        assert_eq!(consumed, input.len());
        assert_eq!(
            operation,
            ClientOperation::Publish(Publish {
                subject: b"foo",
                reply: None,
                header_length: 12,
                payload: b"NATS/1.0\r\n\r\nhi",
                with_headers: true,
            })
        );
    }

    #[test]
    fn subscribe_with_and_without_queue_group() {
        assert_eq!(
            complete(b"SUB foo 1\r\n").0,
            ClientOperation::Subscribe {
                subject: b"foo",
                queue_group: None,
                sid: b"1"
            }
        );
        assert_eq!(
            complete(b"SUB foo workers 1\r\n").0,
            ClientOperation::Subscribe {
                subject: b"foo",
                queue_group: Some(b"workers"),
                sid: b"1"
            }
        );
    }

    #[test]
    fn unsubscribe_limit_that_is_not_a_number_means_now() {
        assert_eq!(
            complete(b"UNSUB 1 x\r\n").0,
            ClientOperation::Unsubscribe {
                sid: b"1",
                max_messages: Some(0)
            }
        );
        assert_eq!(
            complete(b"UNSUB 1 5\r\n").0,
            ClientOperation::Unsubscribe {
                sid: b"1",
                max_messages: Some(5)
            }
        );
    }

    #[test]
    fn connect_needs_no_space_before_its_json() {
        assert_eq!(
            complete(b"CONNECT{}\r\n").0,
            ClientOperation::Connect(b"{}")
        );
        assert_eq!(
            complete(b"CONNECT {\"verbose\":false}\r\n").0,
            ClientOperation::Connect(b"{\"verbose\":false}")
        );
    }

    #[test]
    fn partial_input_is_incomplete_not_an_error() {
        for input in [
            &b"P"[..],
            b"PU",
            b"PUB",
            b"PUB foo 5",
            b"CONN",
            b"UNS",
            b"+O",
        ] {
            assert!(
                matches!(
                    parse_client_operation(input, &LIMITS).unwrap(),
                    Parsed::Incomplete { .. }
                ),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        assert_eq!(
            parse_client_operation(b"PUB foo 5\r\nhel", &LIMITS).unwrap(),
            Parsed::Incomplete {
                minimum_total: Some(18)
            }
        );
    }

    #[test]
    fn unknown_operations_are_rejected_at_the_first_wrong_byte() {
        for input in [
            &b"X"[..],
            b"PUBX foo 1\r\n",
            b"MSG foo 1 1\r\n",
            b"\r\n",
            b"SUBSCRIBE",
        ] {
            assert_eq!(
                parse_client_operation(input, &LIMITS),
                Err(ProtocolError::UnknownOperation),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn payload_must_end_with_crlf() {
        assert_eq!(
            parse_client_operation(b"PUB foo 2\r\nhiX\n", &LIMITS),
            Err(ProtocolError::PayloadTerminator)
        );
        assert_eq!(
            parse_client_operation(b"PUB foo 2\r\nhi\rX", &LIMITS),
            Err(ProtocolError::PayloadTerminator)
        );
        assert_eq!(
            parse_client_operation(b"PUB foo 2\r\nhiX", &LIMITS),
            Err(ProtocolError::PayloadTerminator)
        );
    }

    #[test]
    fn limits_are_enforced_before_the_payload_arrives() {
        let small = ParserLimits {
            max_control_line: 16,
            max_payload: 4,
        };
        assert_eq!(
            parse_client_operation(b"PUB foo 5\r\n", &small),
            Err(ProtocolError::MaxPayloadExceeded { size: 5, max: 4 })
        );
        assert_eq!(
            parse_client_operation(b"SUB a.very.long.subject.name 1\r\n", &small),
            Err(ProtocolError::MaxControlLineExceeded)
        );
        assert_eq!(
            parse_client_operation(b"SUB a.very.long.subject.name", &small),
            Err(ProtocolError::MaxControlLineExceeded)
        );
    }

    #[test]
    fn long_text_after_ping_is_bounded_whole_or_split() {
        let mut input = b"PING".to_vec();
        input.extend(std::iter::repeat_n(b'x', 5000));
        assert_eq!(
            parse_client_operation(&input, &LIMITS),
            Err(ProtocolError::MaxControlLineExceeded)
        );
        input.extend_from_slice(b"\r\n");
        assert_eq!(
            parse_client_operation(&input, &LIMITS),
            Err(ProtocolError::MaxControlLineExceeded)
        );
    }

    #[test]
    fn malformed_arguments_close_without_an_error_text() {
        for input in [
            &b"PUB foo\r\n"[..],
            b"PUB foo bar baz 1\r\n",
            b"PUB foo x\r\n",
            b"HPUB foo 5 2\r\n",
            b"SUB foo\r\n",
            b"UNSUB 1 2 3\r\n",
        ] {
            let error = parse_client_operation(input, &LIMITS).unwrap_err();
            assert_eq!(error.client_error_text(), None, "{error}");
        }
    }

    #[test]
    fn size_accepts_digits_only() {
        assert_eq!(parse_size(b"0"), Some(0));
        assert_eq!(parse_size(b"1024"), Some(1024));
        assert_eq!(parse_size(b"-1"), None);
        assert_eq!(parse_size(b"1k"), None);
        assert_eq!(parse_size(b""), None);
    }
}
