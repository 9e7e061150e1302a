//! INFO and CONNECT as routes exchange them (JSON), with nats-server's field names.
//!
//! Tern announces neither `route_pool_size` nor `compression` nor `lnoc`, so a nats-server
//! 2.10+ peer treats it as it treats a 2.9 server or one with `pool_size: -1`: one connection
//! per server pair, account names in every operation, no compression.

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
    /// A 2.10+ peer's dedicated connection for one account, which Tern (not pooling) closes
    /// as a duplicate so the peer stops asking.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub route_account: String,
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
