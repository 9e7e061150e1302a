//! The one error type of the harness: every variant names what was expected and shows what was
//! actually seen (received bytes escaped, the server's log), so a failing test explains itself.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::kind::ServerKind;

/// Everything that can go wrong while starting servers or talking to them.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("TERN_E2E_SERVERS names an unknown server kind {name:?} (known: tern, nats-server, nats-server-current)")]
    UnknownServerKind { name: String },

    #[error("TERN_E2E_SERVERS={value:?} selects no server kind")]
    NoServerKindSelected { value: String },

    #[error("the {kind} binary was not found: {reason}")]
    BinaryNotFound { kind: ServerKind, reason: String },

    #[error("could not start {kind} from {binary}: {source}")]
    Spawn {
        kind: ServerKind,
        binary: PathBuf,
        source: io::Error,
    },

    #[error("{kind} exited ({status}) before it was ready; its log:\n{log}")]
    ExitedBeforeReady {
        kind: ServerKind,
        status: String,
        log: String,
    },

    #[error(
        "{kind} wrote no ports file {expected} within {timeout:?} (directory holds: {found}); its log:\n{log}"
    )]
    PortsFileTimeout {
        kind: ServerKind,
        expected: PathBuf,
        found: String,
        timeout: Duration,
        log: String,
    },

    #[error("the ports file {path} is not what the harness understands ({reason}): {content}")]
    InvalidPortsFile {
        path: PathBuf,
        reason: String,
        content: String,
    },

    #[error("the server is not running (it was stopped or has exited)")]
    NotRunning,

    #[error("{kind} did not exit within {timeout:?} after {action}")]
    ExitTimeout {
        kind: ServerKind,
        action: String,
        timeout: Duration,
    },

    #[error("the cluster did not form a full mesh within {timeout:?}; last seen: {observed}")]
    ClusterNotMeshed { timeout: Duration, observed: String },

    #[error("TERN_E2E_TOPOLOGIES names an unknown topology {name:?} (known: {known})")]
    UnknownTopology { name: String, known: String },

    #[error("TERN_E2E_TOPOLOGIES={value:?} selects no topology")]
    NoTopologySelected { value: String },

    #[error("i/o failed while {action}: {source}")]
    Io { action: String, source: io::Error },

    #[error("timed out after {timeout:?} waiting for {what}; received so far: \"{received}\"")]
    Timeout {
        what: String,
        timeout: Duration,
        received: String,
    },

    #[error(
        "the connection closed while waiting for {what}; received before the close: \"{received}\""
    )]
    ClosedUnexpectedly { what: String, received: String },

    #[error("expected \"{expected}\" but received \"{received}\"")]
    UnexpectedBytes { expected: String, received: String },

    #[error("expected the connection to be closed within {timeout:?}, but it is still open; received: \"{received}\"")]
    NotClosed { timeout: Duration, received: String },

    #[error("expected nothing within {window:?}, but received \"{received}\"")]
    UnexpectedData { window: Duration, received: String },

    #[error("could not parse a server operation from \"{line}\": {reason}")]
    InvalidFrame { line: String, reason: String },

    #[error("the HTTP response is not what the harness understands ({reason}): \"{received}\"")]
    InvalidHttpResponse { reason: String, received: String },
}

impl HarnessError {
    pub(crate) fn io(action: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            action: action.into(),
            source,
        }
    }
}

/// Bytes as readable text: printable ASCII as is, everything else escaped (`\r`, `\n`, `\x00`).
pub fn escaped(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

/// Like [`escaped`], cut after the first 1000 bytes so a flood does not drown the message.
pub(crate) fn preview(bytes: &[u8]) -> String {
    const LIMIT: usize = 1000;
    if bytes.len() <= LIMIT {
        escaped(bytes)
    } else {
        format!(
            "{}... ({} more bytes)",
            escaped(&bytes[..LIMIT]),
            bytes.len() - LIMIT
        )
    }
}
