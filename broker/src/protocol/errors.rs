//! Protocol violations and the exact `-ERR` text nats-server answers them with.
//!
//! A violation either answers `-ERR '<text>'` and keeps the connection (`is_fatal() == false`),
//! answers and closes, or closes without a word (nats-server closes on malformed arguments
//! without telling the client). `client_error_text` is the single place that knows which.

use thiserror::Error;

/// Everything the client protocol can get wrong.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtocolError {
    #[error("unknown protocol operation")]
    UnknownOperation,
    #[error("maximum control line exceeded")]
    MaxControlLineExceeded,
    #[error("maximum payload exceeded: {size} > {max}")]
    MaxPayloadExceeded { size: usize, max: usize },
    #[error("malformed arguments for {operation}: {arguments}")]
    MalformedArguments {
        operation: &'static str,
        arguments: String,
    },
    #[error("payload not terminated by CRLF")]
    PayloadTerminator,
    #[error("headers used without header support negotiated")]
    HeadersNotNegotiated,
    #[error("invalid CONNECT: {0}")]
    InvalidConnect(String),
    #[error("invalid client protocol")]
    InvalidClientProtocol,
    #[error("no responders requires headers support")]
    NoRespondersRequiresHeaders,
}

impl ProtocolError {
    /// The text nats-server sends in `-ERR '<text>'`, or `None` when it closes silently.
    pub fn client_error_text(&self) -> Option<&'static str> {
        match self {
            // A payload not followed by CRLF is a parse error like any unknown byte.
            Self::UnknownOperation | Self::PayloadTerminator => Some("Unknown Protocol Operation"),
            Self::MaxControlLineExceeded => Some("maximum control line exceeded"),
            Self::MaxPayloadExceeded { .. } => Some("Maximum Payload Violation"),
            Self::InvalidClientProtocol => Some("invalid client protocol"),
            Self::NoRespondersRequiresHeaders => Some("no responders requires headers support"),
            Self::MalformedArguments { .. }
            | Self::HeadersNotNegotiated
            | Self::InvalidConnect(_) => None,
        }
    }
}

/// `-ERR` texts for conditions outside the parser (auth, limits, liveness).
pub mod text {
    pub const AUTHORIZATION_VIOLATION: &str = "Authorization Violation";
    pub const AUTHENTICATION_TIMEOUT: &str = "Authentication Timeout";
    pub const MAX_CONNECTIONS_EXCEEDED: &str = "maximum connections exceeded";
    pub const MAX_SUBSCRIPTIONS_EXCEEDED: &str = "maximum subscriptions exceeded";
    pub const MAX_ACCOUNT_CONNECTIONS_EXCEEDED: &str =
        "maximum account active connections exceeded";
    /// Tern's own limit (`users [{ max_connections }]`), worded like the account one.
    pub const MAX_USER_CONNECTIONS_EXCEEDED: &str = "maximum user active connections exceeded";
    /// Tern's own limit (`connection_rate_per_ip`).
    pub const CONNECTION_RATE_EXCEEDED: &str = "connection rate exceeded";
    pub const STALE_CONNECTION: &str = "Stale Connection";
    pub const INVALID_SUBJECT: &str = "Invalid Subject";
    pub const INVALID_PUBLISH_SUBJECT: &str = "Invalid Publish Subject";
}
