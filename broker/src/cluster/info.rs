//! INFO and CONNECT as routes exchange them (JSON), with nats-server's field names.
//!
//! Tern announces `route_pool_size` and `compression` as nats-server 2.10+ does (so 2.10+
//! peers pool and negotiate compression with it, and 2.9 peers ignore both), but not `lnoc`:
//! it carries no leaf-node interest over routes.

use serde::{Deserialize, Serialize};

/// The server-to-server protocol level of 2.9/2.10 (RouteProtoV2).
pub const ROUTE_PROTOCOL: i64 = 2;

/// INFO on a route, both what Tern sends and what it reads (unknown fields are ignored).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct RouteInfo {
    pub server_id: String,
    pub server_name: String,
    pub version: String,
    pub proto: i64,
    pub go: String,
    pub host: String,
    pub port: u16,
    pub headers: bool,
    pub max_payload: usize,
    #[serde(skip_serializing_if = "is_false")]
    pub jetstream: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ip: String,
    #[serde(skip_serializing_if = "is_false")]
    pub auth_required: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub tls_required: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    #[serde(skip_serializing_if = "is_false")]
    pub cluster_dynamic: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub connect_urls: Vec<String>,
    /// Where WebSocket clients reach the server (`host:port`), for WebSocket clients' INFO.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ws_connect_urls: Vec<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub ldm: bool,
    /// Set on gateway gossip carried over routes; such an INFO is not about a route.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub gateway: String,
    /// Set on a connection dedicated to one account (pinned accounts, 2.10+).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub route_account: String,
    /// The sender's pool size; absent (0) from servers that do not pool.
    #[serde(skip_serializing_if = "is_zero")]
    pub route_pool_size: i64,
    /// The pool slot the soliciting side chose for this connection (0 is omitted).
    #[serde(skip_serializing_if = "is_zero")]
    pub route_pool_idx: i64,
    /// The sender's compression mode; absent from servers that predate compression.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub compression: String,
}

fn is_zero(value: &i64) -> bool {
    *value == 0
}

fn is_false(value: &bool) -> bool {
    !*value
}

impl RouteInfo {
    /// `INFO {json} \r\n`.
    pub fn to_protocol_line(&self) -> Vec<u8> {
        protocol_line("INFO ", self)
    }
}

/// CONNECT as a soliciting server sends it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct RouteConnect {
    pub echo: bool,
    pub verbose: bool,
    pub pedantic: bool,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub user: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub pass: String,
    pub tls_required: bool,
    pub headers: bool,
    /// The sender's server id.
    pub name: String,
    pub cluster: String,
    #[serde(skip_serializing_if = "is_false")]
    pub cluster_dynamic: bool,
    /// A client library's CONNECT carries a language: a client on the route port.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub lang: String,
    /// A gateway's CONNECT names its gateway: a gateway on the route port.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub gateway: String,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Option::<String>::deserialize(deserializer).map(Option::unwrap_or_default)
}

impl RouteConnect {
    pub fn to_protocol_line(&self) -> Vec<u8> {
        let mut line = protocol_line("CONNECT ", self);
        // CONNECT goes without the space before CRLF that INFO has.
        let length = line.len();
        line.remove(length - 3);
        line
    }
}

fn protocol_line(operation: &str, value: &impl Serialize) -> Vec<u8> {
    let json = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut line = Vec::with_capacity(json.len() + operation.len() + 3);
    line.extend_from_slice(operation.as_bytes());
    line.extend_from_slice(&json);
    line.extend_from_slice(b" \r\n");
    line
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn info_from_nats_server_parses_and_ignores_unknown_fields() {
        let info: RouteInfo = serde_json::from_str(
            r#"{"server_id":"NA","server_name":"a","version":"2.9.10","proto":2,"host":"127.0.0.1","port":6222,"headers":true,"max_payload":1048576,"nonce":"x","cluster":"c1","connect_urls":["127.0.0.1:4222"],"lnoc":true,"route_pool_size":3}"#,
        )
        .unwrap();
        assert_eq!(info.server_id, "NA");
        assert_eq!(info.cluster, "c1");
        assert_eq!(info.connect_urls, ["127.0.0.1:4222"]);
    }

    #[test]
    fn connect_line_has_no_space_before_crlf() {
        let connect = RouteConnect {
            echo: true,
            headers: true,
            name: "NA".into(),
            cluster: "c1".into(),
            ..RouteConnect::default()
        };
        let line = String::from_utf8(connect.to_protocol_line()).unwrap();
        assert!(line.starts_with("CONNECT {\"echo\":true"));
        assert!(line.ends_with("}\r\n"), "{line:?}");
        assert!(!line.contains("\"user\""));
    }
}
