//! Which config each server runs: its `/varz` `config_digest`, read over HTTP.
//!
//! Contract: [`config_digest`] makes one HTTP/1.1 GET of `/varz` with `Connection: close`,
//! bounded by [`TIMEOUT`] in all and [`MAX_RESPONSE`] bytes, and returns the digest (empty when
//! the server runs without a config file). [`decide`] is pure: the `ConfigApplied` condition
//! from what each server reported.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::conditions::Decided;
use crate::crd::ConditionType;

pub const TIMEOUT: Duration = Duration::from_secs(2);
pub const MAX_RESPONSE: usize = 1024 * 1024;

/// What one server said, or why it said nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reported {
    Digest(String),
    Unreachable(String),
}

/// `config_digest` from `/varz` at `address`.
pub async fn config_digest(address: SocketAddr) -> Reported {
    match tokio::time::timeout(TIMEOUT, fetch(address)).await {
        Ok(Ok(digest)) => Reported::Digest(digest),
        Ok(Err(reason)) => Reported::Unreachable(reason),
        Err(_) => Reported::Unreachable(format!("no answer from {address} within {TIMEOUT:?}")),
    }
}

async fn fetch(address: SocketAddr) -> Result<String, String> {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|error| format!("cannot connect to {address}: {error}"))?;
    let request = format!("GET /varz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|error| format!("cannot ask {address}: {error}"))?;
    let mut response = Vec::new();
    (&mut stream)
        .take(u64::try_from(MAX_RESPONSE).unwrap_or(u64::MAX))
        .read_to_end(&mut response)
        .await
        .map_err(|error| format!("cannot read from {address}: {error}"))?;
    parse(&response).ok_or_else(|| format!("{address} answered no /varz config_digest"))
}

/// The digest from a whole HTTP response (`200`, JSON body with `config_digest`).
fn parse(response: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(response).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return None;
    }
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    Some(value.get("config_digest")?.as_str()?.to_string())
}

/// `ConfigApplied` from what each pod (by name) reported, against the digests expected.
pub fn decide(
    expected: &BTreeMap<String, String>,
    reported: &BTreeMap<String, Reported>,
) -> Decided {
    let mut behind = Vec::new();
    let mut unreachable = Vec::new();
    for (pod, digest) in expected {
        match reported.get(pod) {
            Some(Reported::Digest(current)) if current == digest => {}
            Some(Reported::Digest(_)) => behind.push(pod.clone()),
            Some(Reported::Unreachable(reason)) => unreachable.push(format!("{pod}: {reason}")),
            None => unreachable.push(format!("{pod}: not running")),
        }
    }
    let current = expected.len() - behind.len() - unreachable.len();
    if behind.is_empty() && unreachable.is_empty() {
        Decided::new(
            ConditionType::ConfigApplied,
            true,
            "AllServersCurrent",
            format!(
                "{current} of {} servers run the current config",
                expected.len()
            ),
        )
    } else if behind.is_empty() {
        Decided::new(
            ConditionType::ConfigApplied,
            false,
            "Unreachable",
            format!(
                "{current} of {} servers run the current config; not asked: {}",
                expected.len(),
                unreachable.join("; ")
            ),
        )
    } else {
        Decided::new(
            ConditionType::ConfigApplied,
            false,
            "Propagating",
            format!(
                "{current} of {} servers run the current config; still on an older one: {}",
                expected.len(),
                behind.join(", ")
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_read_from_a_varz_response() {
        let response = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"server_id\":\"x\",\"config_digest\":\"sha256:ab\"}";
        assert_eq!(parse(response).as_deref(), Some("sha256:ab"));
        assert_eq!(parse(b"HTTP/1.1 404 Not Found\r\n\r\n{}"), None);
        assert_eq!(parse(b"HTTP/1.1 200 OK\r\n\r\nnot json"), None);
    }

    #[test]
    fn config_applied_only_when_every_server_reports_its_digest() {
        let expected = BTreeMap::from([
            ("nats-0".to_string(), "sha256:a".to_string()),
            ("nats-1".to_string(), "sha256:b".to_string()),
        ]);
        let mut reported = BTreeMap::from([
            (
                "nats-0".to_string(),
                Reported::Digest("sha256:a".to_string()),
            ),
            (
                "nats-1".to_string(),
                Reported::Digest("sha256:old".to_string()),
            ),
        ]);
        let behind = decide(&expected, &reported);
        assert!(!behind.status);
        assert_eq!(behind.reason, "Propagating");
        assert!(
            behind.message.ends_with("still on an older one: nats-1"),
            "{}",
            behind.message
        );

        reported.insert(
            "nats-1".to_string(),
            Reported::Unreachable("refused".to_string()),
        );
        assert_eq!(decide(&expected, &reported).reason, "Unreachable");

        reported.insert(
            "nats-1".to_string(),
            Reported::Digest("sha256:b".to_string()),
        );
        let current = decide(&expected, &reported);
        assert!(current.status);
        assert_eq!(current.message, "2 of 2 servers run the current config");
    }
}
