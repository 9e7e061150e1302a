//! The `INFO` a server sends and the `CONNECT` a client answers with, as JSON.
//!
//! Field names and omission rules follow nats-server, because clients key features off them
//! (for example `headers`, `connect_urls`, `ldm`). CONNECT fields that are absent keep
//! nats-server's defaults: `verbose`, `pedantic` and `echo` are true unless the client says no.

use serde::{Deserialize, Deserializer, Serialize};

/// The client protocol level: 1 means the client accepts asynchronous INFO updates.
pub const CLIENT_PROTOCOL_INFO: i64 = 1;

/// `INFO` for client connections.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ServerInfo {
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
    pub auth_required: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub tls_required: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub tls_verify: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub tls_available: bool,
    #[serde(skip_serializing_if = "is_zero")]
    pub client_id: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub client_ip: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub nonce: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub connect_urls: Vec<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub ldm: bool,
}

fn is_false(value: &bool) -> bool {
    !*value
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

impl ServerInfo {
    /// The wire form: `INFO {json} \r\n`, with the space nats-server puts before CRLF.
    pub fn to_protocol_line(&self) -> Vec<u8> {
        let json = serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec());
        let mut line = Vec::with_capacity(json.len() + 8);
        line.extend_from_slice(b"INFO ");
        line.extend_from_slice(&json);
        line.extend_from_slice(b" \r\n");
        line
    }
}

/// `CONNECT` options from a client. A JSON `null` leaves a field at its default, as Go's
/// decoder does (clients send `"jwt":null` and the like).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct ConnectOptions {
    #[serde(deserialize_with = "null_as_true")]
    pub verbose: bool,
    #[serde(deserialize_with = "null_as_true")]
    pub pedantic: bool,
    #[serde(deserialize_with = "null_as_true")]
    pub echo: bool,
    #[serde(deserialize_with = "null_as_default")]
    pub tls_required: bool,
    #[serde(rename = "user")]
    #[serde(deserialize_with = "null_as_default")]
    pub username: String,
    #[serde(rename = "pass")]
    #[serde(deserialize_with = "null_as_default")]
    pub password: String,
    #[serde(deserialize_with = "null_as_default")]
    pub auth_token: String,
    #[serde(deserialize_with = "null_as_default")]
    pub nkey: String,
    #[serde(deserialize_with = "null_as_default")]
    pub sig: String,
    #[serde(deserialize_with = "null_as_default")]
    pub jwt: String,
    #[serde(deserialize_with = "null_as_default")]
    pub name: String,
    #[serde(deserialize_with = "null_as_default")]
    pub lang: String,
    #[serde(deserialize_with = "null_as_default")]
    pub version: String,
    #[serde(deserialize_with = "null_as_default")]
    pub protocol: i64,
    #[serde(deserialize_with = "null_as_default")]
    pub account: String,
    #[serde(deserialize_with = "null_as_default")]
    pub new_account: bool,
    #[serde(deserialize_with = "null_as_default")]
    pub headers: bool,
    #[serde(deserialize_with = "null_as_default")]
    pub no_responders: bool,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            verbose: true,
            pedantic: true,
            echo: true,
            tls_required: false,
            username: String::new(),
            password: String::new(),
            auth_token: String::new(),
            nkey: String::new(),
            sig: String::new(),
            jwt: String::new(),
            name: String::new(),
            lang: String::new(),
            version: String::new(),
            protocol: 0,
            account: String::new(),
            new_account: false,
            headers: false,
            no_responders: false,
        }
    }
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(deserializer).map(Option::unwrap_or_default)
}

fn null_as_true<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Option::<bool>::deserialize(deserializer).map(|value| value.unwrap_or(true))
}

impl ConnectOptions {
    /// Parses CONNECT JSON on top of nats-server's defaults.
    pub fn parse(json: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(json)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn absent_connect_fields_keep_nats_server_defaults() {
        let options = ConnectOptions::parse(b"{}").unwrap();
        assert!(options.verbose && options.pedantic && options.echo);
        assert!(!options.headers && !options.no_responders);
        let options =
            ConnectOptions::parse(br#"{"verbose":false,"echo":false,"user":"a","pass":"b"}"#)
                .unwrap();
        assert!(!options.verbose && options.pedantic && !options.echo);
        assert_eq!(
            (options.username.as_str(), options.password.as_str()),
            ("a", "b")
        );
    }

    #[test]
    fn null_fields_keep_their_defaults() {
        let options = ConnectOptions::parse(
            br#"{"verbose":null,"echo":null,"jwt":null,"user":null,"protocol":null,"x":1}"#,
        )
        .unwrap();
        assert!(options.verbose && options.echo);
        assert!(options.jwt.is_empty() && options.username.is_empty());
        assert_eq!(options.protocol, 0);
    }

    #[test]
    fn connect_that_is_not_json_is_an_error() {
        assert!(ConnectOptions::parse(b"").is_err());
        assert!(ConnectOptions::parse(b"{\"verbose\":").is_err());
    }

    #[test]
    fn info_line_has_the_trailing_space_and_omits_empty_fields() {
        let info = ServerInfo {
            server_id: "NID".into(),
            server_name: "n".into(),
            version: "2.10.0".into(),
            proto: 1,
            go: "tern".into(),
            host: "0.0.0.0".into(),
            port: 4222,
            headers: true,
            max_payload: 1024,
            auth_required: false,
            tls_required: false,
            tls_verify: false,
            tls_available: false,
            client_id: 7,
            client_ip: String::new(),
            nonce: String::new(),
            cluster: String::new(),
            connect_urls: Vec::new(),
            ldm: false,
        };
        let line = String::from_utf8(info.to_protocol_line()).unwrap();
        assert!(line.starts_with("INFO {\"server_id\":\"NID\""));
        assert!(line.ends_with("} \r\n"));
        assert!(line.contains("\"client_id\":7"));
        assert!(!line.contains("auth_required"));
        assert!(!line.contains("connect_urls"));
    }
}
