//! Pure parser for the server-to-client half of the NATS client protocol.
//!
//! The load generator only needs to know *that* a message arrived (and, for the responder, its
//! reply subject), so payloads are skipped, never copied: a `MSG` whose payload is already in
//! the input is reported with a reply subject borrowed from the input; one whose payload spans
//! reads is remembered (reply subject copied into a reused buffer) and reported once its last
//! byte has been consumed. Nothing here allocates per message.

use memchr::memchr;

/// Longest control line accepted from the server; INFO lines are the longest we expect.
pub const MAX_CONTROL_LINE: usize = 64 * 1024;

/// One complete operation sent by the server.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A `MSG` or `HMSG`, reported after its payload was consumed.
    Message {
        reply_to: Option<&'a [u8]>,
    },
    Ping,
    Pong,
    Info,
    Ok,
    /// `-ERR` with the text after the operation name.
    Error(&'a [u8]),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("unknown operation from server: {line:?}")]
    UnknownOperation { line: String },
    #[error("malformed message line from server: {line:?}")]
    MalformedMessage { line: String },
    #[error("control line from server longer than {limit} bytes")]
    ControlLineTooLong { limit: usize },
}

/// Parser state carried between reads.
#[derive(Debug, Default)]
pub struct FrameParser {
    /// Bytes of the current message's payload and trailing CRLF still to skip.
    payload_remaining: usize,
    /// Reply subject of a message whose payload spans reads; capacity is reused.
    pending_reply_to: Vec<u8>,
    pending_has_reply_to: bool,
}

impl FrameParser {
    /// Parses every complete frame in `input`, calling `on_frame` for each, and returns how many
    /// bytes were consumed. An incomplete control line at the end is left unconsumed; payload
    /// bytes are consumed as they arrive.
    pub fn parse(
        &mut self,
        input: &[u8],
        mut on_frame: impl FnMut(Frame<'_>),
    ) -> Result<usize, ParseError> {
        let mut position = 0;
        // Every iteration consumes at least one byte or returns, so this ends.
        while position < input.len() {
            if self.payload_remaining > 0 {
                let available = input.len() - position;
                if available < self.payload_remaining {
                    self.payload_remaining -= available;
                    return Ok(input.len());
                }
                position += self.payload_remaining;
                self.payload_remaining = 0;
                let reply_to = self
                    .pending_has_reply_to
                    .then_some(self.pending_reply_to.as_slice());
                on_frame(Frame::Message { reply_to });
                continue;
            }
            let rest = &input[position..];
            let Some(newline) = memchr(b'\n', rest) else {
                if rest.len() > MAX_CONTROL_LINE {
                    return Err(ParseError::ControlLineTooLong {
                        limit: MAX_CONTROL_LINE,
                    });
                }
                return Ok(position);
            };
            let line = rest[..newline]
                .strip_suffix(b"\r")
                .unwrap_or(&rest[..newline]);
            position += newline + 1;
            match operation(line) {
                Operation::Message { reply_to, size } => {
                    let framed = size + 2;
                    if input.len() - position >= framed {
                        position += framed;
                        on_frame(Frame::Message { reply_to });
                    } else {
                        self.pending_reply_to.clear();
                        self.pending_reply_to
                            .extend_from_slice(reply_to.unwrap_or_default());
                        self.pending_has_reply_to = reply_to.is_some();
                        self.payload_remaining = framed;
                    }
                }
                Operation::Ping => on_frame(Frame::Ping),
                Operation::Pong => on_frame(Frame::Pong),
                Operation::Info => on_frame(Frame::Info),
                Operation::Ok => on_frame(Frame::Ok),
                Operation::Error(text) => on_frame(Frame::Error(text)),
                Operation::MalformedMessage => {
                    return Err(ParseError::MalformedMessage {
                        line: String::from_utf8_lossy(line).into_owned(),
                    })
                }
                Operation::Unknown => {
                    return Err(ParseError::UnknownOperation {
                        line: String::from_utf8_lossy(line).into_owned(),
                    })
                }
            }
        }
        Ok(position)
    }
}

enum Operation<'a> {
    Message {
        reply_to: Option<&'a [u8]>,
        size: usize,
    },
    Ping,
    Pong,
    Info,
    Ok,
    Error(&'a [u8]),
    MalformedMessage,
    Unknown,
}

fn operation(line: &[u8]) -> Operation<'_> {
    if let Some(arguments) = line.strip_prefix(b"MSG ") {
        // MSG <subject> <sid> [reply-to] <#bytes>
        return message_operation(arguments, 3);
    }
    if let Some(arguments) = line.strip_prefix(b"HMSG ") {
        // HMSG <subject> <sid> [reply-to] <#header bytes> <#total bytes>
        return message_operation(arguments, 4);
    }
    match line {
        b"PING" => Operation::Ping,
        b"PONG" => Operation::Pong,
        b"+OK" => Operation::Ok,
        _ if line.starts_with(b"INFO") => Operation::Info,
        _ if line.starts_with(b"-ERR") => Operation::Error(line[4..].trim_ascii()),
        _ => Operation::Unknown,
    }
}

/// Parses message arguments; `without_reply` is the argument count when no reply subject is
/// present. The size is always the last argument.
fn message_operation(arguments: &[u8], without_reply: usize) -> Operation<'_> {
    let mut tokens: [&[u8]; 6] = [&[]; 6];
    let mut count = 0;
    for token in arguments
        .split(|byte| *byte == b' ' || *byte == b'\t')
        .filter(|token| !token.is_empty())
    {
        if count == tokens.len() {
            return Operation::MalformedMessage;
        }
        tokens[count] = token;
        count += 1;
    }
    let reply_to = if count == without_reply + 1 {
        Some(tokens[2])
    } else if count == without_reply {
        None
    } else {
        return Operation::MalformedMessage;
    };
    match parse_size(tokens[count - 1]) {
        Some(size) => Operation::Message { reply_to, size },
        None => Operation::MalformedMessage,
    }
}

fn parse_size(digits: &[u8]) -> Option<usize> {
    if digits.is_empty() || digits.len() > 12 {
        return None;
    }
    digits.iter().try_fold(0usize, |size, digit| {
        digit
            .is_ascii_digit()
            .then(|| size * 10 + usize::from(digit - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    enum Owned {
        Message(Option<Vec<u8>>),
        Ping,
        Pong,
        Info,
        Ok,
        Error(Vec<u8>),
    }

    fn parse_all(parser: &mut FrameParser, input: &[u8]) -> (usize, Vec<Owned>) {
        let mut frames = Vec::new();
        let consumed = parser
            .parse(input, |frame| {
                frames.push(match frame {
                    Frame::Message { reply_to } => Owned::Message(reply_to.map(<[u8]>::to_vec)),
                    Frame::Ping => Owned::Ping,
                    Frame::Pong => Owned::Pong,
                    Frame::Info => Owned::Info,
                    Frame::Ok => Owned::Ok,
                    Frame::Error(text) => Owned::Error(text.to_vec()),
                })
            })
            .expect("valid input");
        (consumed, frames)
    }

    #[test]
    fn complete_frames_are_reported_in_order() {
        let mut parser = FrameParser::default();
        let input = b"INFO {\"a\":1} \r\nMSG foo 1 5\r\nhello\r\nMSG foo 1 _INBOX.x 2\r\nhi\r\nPING\r\nPONG\r\n+OK\r\n-ERR 'Stale Connection'\r\n";
        let (consumed, frames) = parse_all(&mut parser, input);
        assert_eq!(consumed, input.len());
        assert_eq!(
            frames,
            vec![
                Owned::Info,
                Owned::Message(None),
                Owned::Message(Some(b"_INBOX.x".to_vec())),
                Owned::Ping,
                Owned::Pong,
                Owned::Ok,
                Owned::Error(b"'Stale Connection'".to_vec()),
            ]
        );
    }

    #[test]
    fn partial_control_line_is_left_for_the_next_read() {
        let mut parser = FrameParser::default();
        let (consumed, frames) = parse_all(&mut parser, b"PONG\r\nMSG foo 1");
        assert_eq!(consumed, 6);
        assert_eq!(frames, vec![Owned::Pong]);
    }

    #[test]
    fn payload_spanning_reads_is_reported_once_complete_with_its_reply_subject() {
        let mut parser = FrameParser::default();
        let (consumed, frames) = parse_all(&mut parser, b"MSG foo 1 reply.subject 10\r\nhello");
        assert_eq!(consumed, 33);
        assert!(frames.is_empty());
        let (consumed, frames) = parse_all(&mut parser, b"world");
        assert_eq!(consumed, 5);
        assert!(frames.is_empty());
        let (consumed, frames) = parse_all(&mut parser, b"\r\nPING\r\n");
        assert_eq!(consumed, 8);
        assert_eq!(
            frames,
            vec![Owned::Message(Some(b"reply.subject".to_vec())), Owned::Ping]
        );
    }

    #[test]
    fn header_messages_use_the_total_size() {
        let mut parser = FrameParser::default();
        let input =
            b"HMSG foo 1 12 14\r\nNATS/1.0\r\n\r\nhi\r\nHMSG foo 1 r 12 12\r\nNATS/1.0\r\n\r\n\r\n";
        let (consumed, frames) = parse_all(&mut parser, input);
        assert_eq!(consumed, input.len());
        assert_eq!(
            frames,
            vec![Owned::Message(None), Owned::Message(Some(b"r".to_vec()))]
        );
    }

    #[test]
    fn malformed_and_unknown_lines_are_errors() {
        let mut parser = FrameParser::default();
        assert!(matches!(
            parser.parse(b"MSG foo 1 x\r\n", |_| {}),
            Err(ParseError::MalformedMessage { .. })
        ));
        let mut parser = FrameParser::default();
        assert!(matches!(
            parser.parse(b"BOGUS\r\n", |_| {}),
            Err(ParseError::UnknownOperation { .. })
        ));
    }
}
