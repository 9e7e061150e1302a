//! A minimal HTTP/1.1 GET over a std `TcpStream`, for the monitoring endpoints.
//!
//! One request per connection (`Connection: close`), read until the server closes or the body
//! is complete, with a deadline and a size bound. The body is decoded from `Content-Length`,
//! `Transfer-Encoding: chunked` (Go's `net/http` chunks bodies it did not size), or the close.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::error::{preview, HarnessError};

/// How long one request may take.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
/// Responses larger than this are an error (monitoring pages are small).
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;
const READ_CHUNK: usize = 64 * 1024;

/// A response: status code, headers (names lower-cased) and body.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(header, _)| *header == name)
            .map(|(_, value)| value.as_str())
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Result<serde_json::Value, HarnessError> {
        serde_json::from_str(&self.body).map_err(|error| HarnessError::InvalidHttpResponse {
            reason: format!("the body is not JSON: {error}"),
            received: preview(self.body.as_bytes()),
        })
    }
}

/// `GET <path_and_query>` from the HTTP server at `address`.
pub fn http_get(address: SocketAddr, path_and_query: &str) -> Result<HttpResponse, HarnessError> {
    let deadline = Instant::now() + HTTP_TIMEOUT;
    let mut stream = TcpStream::connect_timeout(&address, HTTP_TIMEOUT)
        .map_err(|error| HarnessError::io(format!("connecting to http://{address}"), error))?;
    let request = format!(
        "GET {path_and_query} HTTP/1.1\r\nHost: {address}\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|error| HarnessError::io(format!("sending GET {path_and_query}"), error))?;
    let mut received = Vec::new();
    let mut chunk = vec![0_u8; READ_CHUNK];
    loop {
        if let Some(response) = parse_complete(&received)? {
            return Ok(response);
        }
        if received.len() > MAX_RESPONSE_BYTES {
            return Err(HarnessError::InvalidHttpResponse {
                reason: format!("more than {MAX_RESPONSE_BYTES} bytes"),
                received: preview(&received),
            });
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(HarnessError::Timeout {
                what: format!("the response to GET {path_and_query}"),
                timeout: HTTP_TIMEOUT,
                received: preview(&received),
            });
        }
        stream
            .set_read_timeout(Some((deadline - now).max(Duration::from_millis(1))))
            .map_err(|error| HarnessError::io("setting the read timeout", error))?;
        match stream.read(&mut chunk) {
            Ok(0) => return parse_at_close(&received),
            Ok(count) => received.extend_from_slice(&chunk[..count]),
            Err(error)
                if matches!(
                    error.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(error) => {
                return Err(HarnessError::io(
                    format!("reading the response to GET {path_and_query}"),
                    error,
                ))
            }
        }
    }
}

/// The head of a response: status and headers, and where the body starts.
struct Head {
    status: u16,
    headers: Vec<(String, String)>,
    body_start: usize,
}

/// `Some` once `received` holds a whole response whose length is known from its headers.
fn parse_complete(received: &[u8]) -> Result<Option<HttpResponse>, HarnessError> {
    let Some(head) = parse_head(received)? else {
        return Ok(None);
    };
    let body = &received[head.body_start..];
    let decoded = if is_chunked(&head.headers) {
        decode_chunked(body)?
    } else if let Some(length) = content_length(&head.headers, received)? {
        (body.len() >= length).then(|| body[..length].to_vec())
    } else {
        None
    };
    Ok(decoded.map(|body| response(head, &body)))
}

/// The response when the server closed the connection.
fn parse_at_close(received: &[u8]) -> Result<HttpResponse, HarnessError> {
    if let Some(response) = parse_complete(received)? {
        return Ok(response);
    }
    let incomplete = |reason: &str| HarnessError::InvalidHttpResponse {
        reason: reason.to_string(),
        received: preview(received),
    };
    let head =
        parse_head(received)?.ok_or_else(|| incomplete("closed before the headers ended"))?;
    if is_chunked(&head.headers) || content_length(&head.headers, received)?.is_some() {
        return Err(incomplete("closed before the body was complete"));
    }
    let body = received[head.body_start..].to_vec();
    Ok(response(head, &body))
}

fn response(head: Head, body: &[u8]) -> HttpResponse {
    HttpResponse {
        status: head.status,
        headers: head.headers,
        body: String::from_utf8_lossy(body).into_owned(),
    }
}

fn parse_head(received: &[u8]) -> Result<Option<Head>, HarnessError> {
    let Some(end) = find(received, b"\r\n\r\n") else {
        return Ok(None);
    };
    let invalid = |reason: &str| HarnessError::InvalidHttpResponse {
        reason: reason.to_string(),
        received: preview(received),
    };
    let text = String::from_utf8_lossy(&received[..end]);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut fields = status_line.split_whitespace();
    if !fields
        .next()
        .is_some_and(|version| version.starts_with("HTTP/1."))
    {
        return Err(invalid("the status line does not start with HTTP/1.x"));
    }
    let status = fields
        .next()
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid("the status line has no status code"))?;
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| invalid("a header line has no colon"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    Ok(Some(Head {
        status,
        headers,
        body_start: end + 4,
    }))
}

fn is_chunked(headers: &[(String, String)]) -> bool {
    headers.iter().any(|(name, value)| {
        name == "transfer-encoding" && value.to_ascii_lowercase().contains("chunked")
    })
}

fn content_length(
    headers: &[(String, String)],
    received: &[u8],
) -> Result<Option<usize>, HarnessError> {
    headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .map(|(_, value)| {
            value
                .parse()
                .map_err(|_| HarnessError::InvalidHttpResponse {
                    reason: format!("Content-Length {value:?} is not a number"),
                    received: preview(received),
                })
        })
        .transpose()
}

/// The decoded body once the terminating zero-size chunk has arrived.
fn decode_chunked(mut body: &[u8]) -> Result<Option<Vec<u8>>, HarnessError> {
    let mut decoded = Vec::new();
    loop {
        let Some(line_end) = find(body, b"\r\n") else {
            return Ok(None);
        };
        let size_text = String::from_utf8_lossy(&body[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| {
            HarnessError::InvalidHttpResponse {
                reason: format!("chunk size {size_text:?} is not hexadecimal"),
                received: preview(body),
            }
        })?;
        let data_start = line_end + 2;
        if size == 0 {
            return Ok(Some(decoded));
        }
        if body.len() < data_start + size + 2 {
            return Ok(None);
        }
        decoded.extend_from_slice(&body[data_start..data_start + size]);
        body = &body[data_start + size + 2..];
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_bodies_are_complete_only_when_all_bytes_arrived() {
        let partial = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc";
        assert!(parse_complete(partial).expect("valid").is_none());
        let whole =
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nabcde";
        let response = parse_complete(whole).expect("valid").expect("complete");
        assert_eq!(response.status, 200);
        assert_eq!(response.body, "abcde");
        assert_eq!(response.header("content-type"), Some("text/plain"));
    }

    #[test]
    fn chunked_bodies_are_decoded() {
        let whole = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\na\r\n0123456789\r\n0\r\n\r\n";
        let response = parse_complete(whole).expect("valid").expect("complete");
        assert_eq!(response.status, 404);
        assert_eq!(response.body, "abc0123456789");
        let partial = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n";
        assert!(parse_complete(partial).expect("valid").is_none());
    }

    #[test]
    fn a_body_without_length_ends_at_the_close() {
        let response = parse_at_close(b"HTTP/1.0 200 OK\r\n\r\n{}").expect("valid");
        assert_eq!(response.body, "{}");
        assert!(parse_at_close(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{}").is_err());
    }
}
