//! A client over a plain `TcpStream` for exact-byte protocol tests.
//!
//! Every read has a deadline (the client's timeout, 5s unless changed) and fails with what was
//! received so far; nothing sleeps. Bytes read but not yet consumed stay buffered, so `expect`,
//! `read_line` and `read_frame` can be mixed freely. A close shows as EOF or a reset; both count.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::error::{escaped, preview, HarnessError};
use crate::process::ServerProcess;

/// How long a read waits unless the test says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long "nothing arrives" is watched by [`RawClient::expect_silence`].
pub const SILENCE_WINDOW: Duration = Duration::from_millis(250);
/// A CONNECT that turns off `+OK` and pedantic checks (both default to true when absent).
pub const QUIET_CONNECT: &str = r#"{"verbose":false,"pedantic":false}"#;
/// [`QUIET_CONNECT`] with headers negotiated.
pub const QUIET_CONNECT_WITH_HEADERS: &str = r#"{"verbose":false,"pedantic":false,"headers":true}"#;

/// Upper bound on frames read while waiting for one PONG.
const MAX_FRAMES_BEFORE_PONG: usize = 100_000;
/// Size of one socket read.
const READ_CHUNK: usize = 64 * 1024;

/// One MSG or HMSG as delivered to a client.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Message {
    pub subject: String,
    pub sid: String,
    pub reply: Option<String>,
    /// The header block of an HMSG (from `NATS/1.0` through the blank line), `None` for MSG.
    pub headers: Option<Vec<u8>>,
    pub payload: Vec<u8>,
}

/// One server operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Info(serde_json::Value),
    Message(Message),
    Ping,
    Pong,
    Ok,
    /// The text of `-ERR '<text>'`, without the quotes.
    Error(String),
}

/// A raw protocol connection.
#[derive(Debug)]
pub struct RawClient {
    stream: TcpStream,
    /// Received, not yet consumed.
    buffer: Vec<u8>,
    /// EOF or a reset was seen.
    closed: bool,
    timeout: Duration,
}

/// What one attempt to read more bytes found.
enum Fill {
    Data,
    Closed,
    DeadlinePassed,
}

impl RawClient {
    /// Opens a TCP connection; nothing is read yet (INFO stays unread).
    pub fn connect(address: SocketAddr) -> Result<Self, HarnessError> {
        let stream = TcpStream::connect_timeout(&address, DEFAULT_TIMEOUT)
            .map_err(|error| HarnessError::io(format!("connecting to {address}"), error))?;
        stream
            .set_nodelay(true)
            .map_err(|error| HarnessError::io("setting TCP_NODELAY", error))?;
        Ok(Self {
            stream,
            buffer: Vec::new(),
            closed: false,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Opens a TCP connection to `server`'s client port.
    pub fn connect_to(server: &ServerProcess) -> Result<Self, HarnessError> {
        Self::connect(server.client_address())
    }

    /// Connects to `server` and completes [`RawClient::handshake`] with `connect_json`.
    pub fn connected(server: &ServerProcess, connect_json: &str) -> Result<Self, HarnessError> {
        let mut client = Self::connect_to(server)?;
        client.handshake(connect_json)?;
        Ok(client)
    }

    /// This end of the connection, as the server sees it (its logs and `/connz` name it).
    pub fn local_address(&self) -> Result<SocketAddr, HarnessError> {
        self.stream
            .local_addr()
            .map_err(|error| HarnessError::io("reading the local address", error))
    }

    /// Changes how long reads wait.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Reads INFO, sends `CONNECT <connect_json>` and `PING`, expects exactly `PONG` (so
    /// `connect_json` must turn `verbose` off). Returns the INFO.
    pub fn handshake(&mut self, connect_json: &str) -> Result<serde_json::Value, HarnessError> {
        let info = self.read_info()?;
        self.send(format!("CONNECT {connect_json}\r\nPING\r\n"))?;
        self.expect("PONG\r\n")?;
        Ok(info)
    }

    /// Writes all of `bytes`.
    pub fn send(&mut self, bytes: impl AsRef<[u8]>) -> Result<(), HarnessError> {
        self.stream
            .write_all(bytes.as_ref())
            .and_then(|()| self.stream.flush())
            .map_err(|error| HarnessError::io("sending to the server", error))
    }

    /// Reads one line, up to and including `\n`.
    pub fn read_line(&mut self) -> Result<Vec<u8>, HarnessError> {
        self.take_when("a line", |buffer| {
            buffer
                .iter()
                .position(|&byte| byte == b'\n')
                .map(|end| end + 1)
        })
    }

    /// Reads exactly `count` bytes.
    pub fn read_exact_bytes(&mut self, count: usize) -> Result<Vec<u8>, HarnessError> {
        self.take_when(&format!("{count} bytes"), |buffer| {
            (buffer.len() >= count).then_some(count)
        })
    }

    /// Asserts the next bytes equal `expected`; fails as soon as they diverge.
    pub fn expect(&mut self, expected: impl AsRef<[u8]>) -> Result<(), HarnessError> {
        let expected = expected.as_ref();
        let deadline = Instant::now() + self.timeout;
        loop {
            let available = self.buffer.len().min(expected.len());
            if self.buffer[..available] != expected[..available] {
                return Err(self.unexpected(expected));
            }
            if available == expected.len() {
                self.buffer.drain(..available);
                return Ok(());
            }
            match self.fill(deadline)? {
                Fill::Data => {}
                Fill::Closed => {
                    return Err(HarnessError::ClosedUnexpectedly {
                        what: format!("\"{}\"", escaped(expected)),
                        received: preview(&self.buffer),
                    })
                }
                Fill::DeadlinePassed => {
                    return Err(HarnessError::Timeout {
                        what: format!("\"{}\"", escaped(expected)),
                        timeout: self.timeout,
                        received: preview(&self.buffer),
                    })
                }
            }
        }
    }

    /// Reads the INFO line and parses its JSON.
    pub fn read_info(&mut self) -> Result<serde_json::Value, HarnessError> {
        match self.read_frame()? {
            Frame::Info(info) => Ok(info),
            other => Err(HarnessError::UnexpectedBytes {
                expected: "INFO {...}".to_string(),
                received: format!("{other:?}"),
            }),
        }
    }

    /// Reads and parses the next server operation (including a MSG/HMSG payload).
    pub fn read_frame(&mut self) -> Result<Frame, HarnessError> {
        let line = self.read_line()?;
        let text = String::from_utf8_lossy(&line).into_owned();
        let trimmed = text.trim_end_matches(['\r', '\n']);
        let invalid = |reason: &str| HarnessError::InvalidFrame {
            line: escaped(&line),
            reason: reason.to_string(),
        };
        let (operation, arguments) = trimmed
            .split_once(' ')
            .map_or((trimmed, ""), |(operation, rest)| (operation, rest));
        match operation {
            "PING" => Ok(Frame::Ping),
            "PONG" => Ok(Frame::Pong),
            "+OK" => Ok(Frame::Ok),
            "-ERR" => {
                let quoted = arguments.trim();
                let text = quoted
                    .strip_prefix('\'')
                    .and_then(|rest| rest.strip_suffix('\''))
                    .ok_or_else(|| invalid("-ERR text is not in single quotes"))?;
                Ok(Frame::Error(text.to_string()))
            }
            "INFO" => serde_json::from_str(arguments.trim())
                .map(Frame::Info)
                .map_err(|error| invalid(&format!("INFO JSON: {error}"))),
            "MSG" | "HMSG" => {
                let fields: Vec<&str> = arguments.split_whitespace().collect();
                let with_headers = operation == "HMSG";
                let sizes = if with_headers { 2 } else { 1 };
                let reply = match fields.len() - fields.len().min(sizes) {
                    2 => None,
                    3 => Some(fields[2].to_string()),
                    _ => return Err(invalid("wrong number of arguments")),
                };
                let size = |text: &str| -> Result<usize, HarnessError> {
                    text.parse().map_err(|_| invalid("size is not a number"))
                };
                let total = size(fields[fields.len() - 1])?;
                let header_size = if with_headers {
                    size(fields[fields.len() - 2])?
                } else {
                    0
                };
                if header_size > total {
                    return Err(invalid("header size exceeds total size"));
                }
                let mut body = self.read_exact_bytes(total + 2)?;
                if !body.ends_with(b"\r\n") {
                    return Err(invalid(&format!(
                        "payload not followed by CRLF: \"{}\"",
                        preview(&body)
                    )));
                }
                body.truncate(total);
                let payload = body.split_off(header_size);
                Ok(Frame::Message(Message {
                    subject: fields[0].to_string(),
                    sid: fields[1].to_string(),
                    reply,
                    headers: with_headers.then_some(body),
                    payload,
                }))
            }
            _ => Err(invalid("unknown operation")),
        }
    }

    /// Reads the next frame and requires it to be a MSG or HMSG.
    pub fn read_message(&mut self) -> Result<Message, HarnessError> {
        match self.read_frame()? {
            Frame::Message(message) => Ok(message),
            other => Err(HarnessError::UnexpectedBytes {
                expected: "MSG or HMSG".to_string(),
                received: format!("{other:?}"),
            }),
        }
    }

    /// Sends `PING` and returns every frame that arrives before the `PONG`. PINGs from the
    /// server on the way are answered and left out.
    pub fn frames_until_pong(&mut self) -> Result<Vec<Frame>, HarnessError> {
        self.send("PING\r\n")?;
        let mut frames = Vec::new();
        for _ in 0..MAX_FRAMES_BEFORE_PONG {
            match self.read_frame()? {
                Frame::Pong => return Ok(frames),
                Frame::Ping => self.send("PONG\r\n")?,
                frame => frames.push(frame),
            }
        }
        Err(HarnessError::Timeout {
            what: format!("PONG within {MAX_FRAMES_BEFORE_PONG} frames"),
            timeout: self.timeout,
            received: format!("{} frames", frames.len()),
        })
    }

    /// Asserts the server closes the connection (EOF or reset) within the timeout, sending
    /// nothing more first.
    pub fn expect_closed(&mut self) -> Result<(), HarnessError> {
        let deadline = Instant::now() + self.timeout;
        loop {
            if !self.buffer.is_empty() {
                return Err(HarnessError::UnexpectedBytes {
                    expected: "the connection to close".to_string(),
                    received: preview(&self.buffer),
                });
            }
            match self.fill(deadline)? {
                Fill::Data => {}
                Fill::Closed => return Ok(()),
                Fill::DeadlinePassed => {
                    return Err(HarnessError::NotClosed {
                        timeout: self.timeout,
                        received: preview(&self.buffer),
                    })
                }
            }
        }
    }

    /// Reads until the server closes the connection and returns everything received; fails
    /// after `timeout` or when more than `max_bytes` arrive.
    pub fn read_until_closed(
        &mut self,
        max_bytes: usize,
        timeout: Duration,
    ) -> Result<Vec<u8>, HarnessError> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.buffer.len() > max_bytes {
                return Err(HarnessError::NotClosed {
                    timeout,
                    received: format!("more than {max_bytes} bytes"),
                });
            }
            match self.fill(deadline)? {
                Fill::Data => {}
                Fill::Closed => return Ok(std::mem::take(&mut self.buffer)),
                Fill::DeadlinePassed => {
                    return Err(HarnessError::NotClosed {
                        timeout,
                        received: format!("{} bytes", self.buffer.len()),
                    })
                }
            }
        }
    }

    /// Asserts nothing arrives (and the connection stays open) for `window`. Use only where
    /// silence is the behaviour under test.
    pub fn expect_silence(&mut self, window: Duration) -> Result<(), HarnessError> {
        let deadline = Instant::now() + window;
        loop {
            if !self.buffer.is_empty() {
                return Err(HarnessError::UnexpectedData {
                    window,
                    received: preview(&self.buffer),
                });
            }
            match self.fill(deadline)? {
                Fill::Data => {}
                Fill::Closed => {
                    return Err(HarnessError::ClosedUnexpectedly {
                        what: format!("silence for {window:?}"),
                        received: preview(&self.buffer),
                    })
                }
                Fill::DeadlinePassed => return Ok(()),
            }
        }
    }

    /// Waits until `complete` finds a prefix of the buffer, then removes and returns it.
    fn take_when(
        &mut self,
        what: &str,
        complete: impl Fn(&[u8]) -> Option<usize>,
    ) -> Result<Vec<u8>, HarnessError> {
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(length) = complete(&self.buffer) {
                return Ok(self.buffer.drain(..length).collect());
            }
            match self.fill(deadline)? {
                Fill::Data => {}
                Fill::Closed => {
                    return Err(HarnessError::ClosedUnexpectedly {
                        what: what.to_string(),
                        received: preview(&self.buffer),
                    })
                }
                Fill::DeadlinePassed => {
                    return Err(HarnessError::Timeout {
                        what: what.to_string(),
                        timeout: self.timeout,
                        received: preview(&self.buffer),
                    })
                }
            }
        }
    }

    /// One socket read that waits no later than `deadline`.
    fn fill(&mut self, deadline: Instant) -> Result<Fill, HarnessError> {
        if self.closed {
            return Ok(Fill::Closed);
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(Fill::DeadlinePassed);
        }
        let wait = (deadline - now).max(Duration::from_millis(1));
        self.stream
            .set_read_timeout(Some(wait))
            .map_err(|error| HarnessError::io("setting the read timeout", error))?;
        let mut chunk = [0_u8; READ_CHUNK];
        match self.stream.read(&mut chunk) {
            Ok(0) => {
                self.closed = true;
                Ok(Fill::Closed)
            }
            Ok(count) => {
                self.buffer.extend_from_slice(&chunk[..count]);
                Ok(Fill::Data)
            }
            Err(error) if is_timeout(&error) => Ok(if Instant::now() >= deadline {
                Fill::DeadlinePassed
            } else {
                Fill::Data
            }),
            Err(error) if error.kind() == ErrorKind::Interrupted => Ok(Fill::Data),
            Err(error) if is_reset(&error) => {
                self.closed = true;
                Ok(Fill::Closed)
            }
            Err(error) => Err(HarnessError::io("reading from the server", error)),
        }
    }

    fn unexpected(&self, expected: &[u8]) -> HarnessError {
        HarnessError::UnexpectedBytes {
            expected: escaped(expected),
            received: preview(&self.buffer),
        }
    }
}

fn is_timeout(error: &io::Error) -> bool {
    matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

fn is_reset(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
    )
}
