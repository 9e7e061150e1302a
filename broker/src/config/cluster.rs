//! The `cluster { }` block: nats-server's option names for routes, parsed into
//! `ClusterOptions` with file:line:column errors.
//!
//! `pool_size` (default 3, `-1` for one connection per server as 2.9), `accounts` (accounts
//! with a dedicated route) and `compression` (a boolean, a mode, or `{ mode, rtt_thresholds }`;
//! default `accept`) are nats-server's 2.10+ options with their meanings.

use super::{
    boolean, host_and_port, integer, invalid, map, string, wrong_type, Builder, ConfigWarning,
};
use std::time::Duration;

use crate::compression::mode::normalize_thresholds;
use crate::compression::CompressionMode;
use crate::config::duration::parse_duration;
use crate::config::value::{Entry, Value, ValueKind};
use crate::config::ConfigError;
use crate::options::{ClusterOptions, RouteUrl};

/// Options inside `cluster { }` that Tern does not have yet.
const UNSUPPORTED_CLUSTER_OPTIONS: &[&str] = &["permissions"];

impl Builder {
    pub(super) fn cluster(&mut self, entry: &Entry) -> Result<(), ConfigError> {
        let block = map(entry)?;
        let mut cluster = ClusterOptions::default();
        for item in block.entries() {
            let name = item.key.to_ascii_lowercase();
            let applied = match name.as_str() {
                "name" => string(item).map(|name| cluster.name = Some(name)),
                "listen" => host_and_port(item).and_then(|(host, port)| {
                    if let Some(host) = host {
                        cluster.listen.host = host;
                    }
                    cluster_port(item, port).map(|port| cluster.listen.port = port)
                }),
                "host" | "net" => string(item).map(|host| cluster.listen.host = host),
                "port" => integer(item)
                    .and_then(|port| cluster_port(item, port))
                    .map(|port| cluster.listen.port = port),
                "advertise" | "cluster_advertise" => {
                    string(item).map(|address| cluster.advertise = Some(address))
                }
                "no_advertise" => boolean(item).map(|flag| cluster.no_advertise = flag),
                "connect_retries" => integer(item).and_then(|retries| {
                    u32::try_from(retries)
                        .map(|retries| cluster.connect_retries = retries)
                        .map_err(|_| {
                            invalid(&item.value.position, "connect_retries can not be negative")
                        })
                }),
                "routes" => routes(item).map(|routes| cluster.routes = routes),
                "authorization" => self.cluster_authorization(item, &mut cluster),
                "tls" => self
                    .tls_block(item, super::transport::TlsRole::Server)
                    .map(|tls| cluster.tls = Some(tls)),
                "pool_size" => integer(item).and_then(|size| match size {
                    -1 | 1..=crate::options::MAX_ROUTE_POOL_SIZE => {
                        cluster.pool_size = size;
                        Ok(())
                    }
                    0 => {
                        cluster.pool_size = crate::options::DEFAULT_ROUTE_POOL_SIZE;
                        Ok(())
                    }
                    _ => Err(invalid(
                        &item.value.position,
                        format!(
                            "pool_size must be -1 (no pooling) or between 1 and 1024; got {size}"
                        ),
                    )),
                }),
                "accounts" => string_list(item).map(|accounts| {
                    self.pinned_accounts_position = Some(item.value.position.clone());
                    cluster.pinned_accounts = accounts;
                }),
                "compression" => compression(item).map(|(mode, thresholds)| {
                    cluster.compression = mode;
                    if let Some(thresholds) = thresholds {
                        cluster.compression_thresholds = thresholds;
                    }
                }),
                "ping_interval" | "ping_max" | "write_deadline" | "connect_backoff" => {
                    self.note(item, "not used by Tern's routes yet");
                    Ok(())
                }
                unsupported if UNSUPPORTED_CLUSTER_OPTIONS.contains(&unsupported) => {
                    Self::unsupported(item)
                }
                _ => {
                    self.warn_unknown(item);
                    Ok(())
                }
            };
            if let Err(error) = applied {
                self.errors.push(error);
            }
        }
        self.options.cluster = Some(cluster);
        Ok(())
    }

    fn cluster_authorization(
        &mut self,
        entry: &Entry,
        cluster: &mut ClusterOptions,
    ) -> Result<(), ConfigError> {
        let block = map(entry)?;
        for item in block.entries() {
            let name = item.key.to_ascii_lowercase();
            let applied = match name.as_str() {
                "user" | "username" => string(item).map(|user| cluster.user = Some(user)),
                "pass" | "password" => {
                    string(item).map(|password| cluster.password = Some(password))
                }
                "timeout" => {
                    super::authorization_timeout(item).map(|timeout| cluster.auth_timeout = timeout)
                }
                _ => {
                    self.warn_unknown(item);
                    Ok(())
                }
            };
            if let Err(error) = applied {
                self.errors.push(error);
            }
        }
        Ok(())
    }

    /// A warning about an accepted value Tern treats differently, at the value's position.
    fn note(&mut self, entry: &Entry, message: &str) {
        self.warnings.push(ConfigWarning {
            message: format!("{}: {:?}: {message}", entry.key_position, entry.key),
        });
    }
}

/// `-1` (or absent) asks the OS for a port; `0` is refused, as a cluster has no default port.
fn cluster_port(entry: &Entry, port: i64) -> Result<Option<u16>, ConfigError> {
    match port {
        -1 => Ok(None),
        1..=65535 => Ok(u16::try_from(port).ok()),
        _ => Err(invalid(
            &entry.value.position,
            format!(
                "cluster port must be between 1 and 65535, or -1 for a random port; got {port}"
            ),
        )),
    }
}

/// `compression: true | false | "<mode>" | { mode, rtt_thresholds }`; `true` is `s2_fast` for
/// routes, as in nats-server.
fn compression(entry: &Entry) -> Result<(CompressionMode, Option<Vec<Duration>>), ConfigError> {
    let mode_of = |value: &Value, text: &str| {
        CompressionMode::parse(text, CompressionMode::S2Fast)
            .map_err(|message| invalid(&value.position, message))
    };
    match &entry.value.kind {
        ValueKind::Bool(true) => Ok((CompressionMode::S2Fast, None)),
        ValueKind::Bool(false) => Ok((CompressionMode::Off, None)),
        ValueKind::String(text) => Ok((mode_of(&entry.value, text)?, None)),
        ValueKind::Map(fields) => {
            let mut mode = CompressionMode::Accept;
            let mut thresholds: Option<Vec<Duration>> = None;
            for field in fields.entries() {
                match field.key.to_ascii_lowercase().as_str() {
                    "mode" => mode = mode_of(&field.value, &string(field)?)?,
                    "rtt_thresholds" | "thresholds" | "rtts" | "rtt" => {
                        let ValueKind::Array(items) = &field.value.kind else {
                            return Err(wrong_type(field, "an array of durations"));
                        };
                        let mut parsed = Vec::with_capacity(items.len());
                        for item in items {
                            let ValueKind::String(text) = &item.kind else {
                                return Err(invalid(
                                    &item.position,
                                    "an RTT threshold must be a duration string such as \"10ms\"",
                                ));
                            };
                            let duration = parse_duration(text)
                                .map_err(|message| invalid(&item.position, message))?;
                            // nats-server reads a negative threshold as zero.
                            parsed.push(if duration.negative {
                                Duration::ZERO
                            } else {
                                duration.magnitude
                            });
                        }
                        thresholds = Some(parsed);
                    }
                    _ => {
                        return Err(invalid(
                            &field.key_position,
                            format!("unknown field {:?}", field.key),
                        ))
                    }
                }
            }
            let thresholds = match (mode, thresholds) {
                (CompressionMode::S2Auto, Some(thresholds)) => Some(
                    normalize_thresholds(&thresholds)
                        .map_err(|message| invalid(&entry.value.position, message))?,
                ),
                (_, thresholds) => thresholds,
            };
            Ok((mode, thresholds))
        }
        _ => Err(wrong_type(entry, "a boolean, a mode or a map")),
    }
}

/// An array of strings, or one string.
fn string_list(entry: &Entry) -> Result<Vec<String>, ConfigError> {
    match &entry.value.kind {
        ValueKind::Array(items) => items
            .iter()
            .map(|item| match &item.kind {
                ValueKind::String(text) => Ok(text.clone()),
                other => Err(invalid(
                    &item.position,
                    format!("expected a string, got {}", other.type_name()),
                )),
            })
            .collect(),
        ValueKind::String(text) => Ok(vec![text.clone()]),
        _ => Err(wrong_type(entry, "an array of account names")),
    }
}

fn routes(entry: &Entry) -> Result<Vec<RouteUrl>, ConfigError> {
    let parse = |value: &crate::config::value::Value, text: &str| {
        RouteUrl::parse(text).map_err(|message| invalid(&value.position, message))
    };
    match &entry.value.kind {
        ValueKind::Array(items) => items
            .iter()
            .map(|item| match &item.kind {
                ValueKind::String(text) => parse(item, text),
                other => Err(invalid(
                    &item.position,
                    format!("a route must be a URL string, got {}", other.type_name()),
                )),
            })
            .collect(),
        ValueKind::String(text) => text
            .split(',')
            .map(|part| parse(&entry.value, part.trim()))
            .collect(),
        _ => Err(wrong_type(entry, "an array of route URLs")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use std::path::Path;

    use std::time::Duration;

    use crate::compression::CompressionMode;
    use crate::config::{load_str, MemorySources};

    fn load(text: &str) -> Result<crate::options::ServerOptions, String> {
        load_str(text, Path::new("cluster.conf"), &MemorySources::new()).map_err(|e| e.to_string())
    }

    #[test]
    fn cluster_block_with_routes_and_authorization() {
        let options = load(
            "cluster {\n  name: east\n  listen: 127.0.0.1:6222\n  authorization { user: route, password: secret, timeout: 2 }\n  routes: [\n    nats-route://route:secret@10.0.0.2:6222\n    nats://10.0.0.3:6222/\n  ]\n  no_advertise: true\n  connect_retries: 5\n}\n",
        )
        .unwrap();
        let cluster = options.cluster.unwrap();
        assert_eq!(cluster.name.as_deref(), Some("east"));
        assert_eq!(cluster.listen.host, "127.0.0.1");
        assert_eq!(cluster.listen.port, Some(6222));
        assert_eq!(cluster.user.as_deref(), Some("route"));
        assert_eq!(cluster.routes.len(), 2);
        assert_eq!(cluster.routes[0].user.as_deref(), Some("route"));
        assert_eq!(cluster.routes[0].password.as_deref(), Some("secret"));
        assert_eq!(cluster.routes[1].address(), "10.0.0.3:6222");
        assert!(cluster.no_advertise);
        assert_eq!(cluster.connect_retries, 5);
    }

    #[test]
    fn random_cluster_port_pool_size_accounts_and_compression() {
        let options = load(
            "accounts { A: {} }\ncluster { port: -1, pool_size: 5, accounts: [A], compression: s2_better }",
        )
        .unwrap();
        let cluster = options.cluster.unwrap();
        assert_eq!(cluster.listen.port, None);
        assert_eq!(cluster.pool_size, 5);
        assert_eq!(cluster.pinned_accounts, ["A"]);
        assert_eq!(cluster.compression, CompressionMode::S2Better);
        let defaults = load("cluster { port: -1 }").unwrap().cluster.unwrap();
        assert_eq!(defaults.pool_size, 3);
        assert_eq!(defaults.compression, CompressionMode::Accept);
        let off = load("cluster { pool_size: -1, compression: false }").unwrap();
        let off = off.cluster.unwrap();
        assert!(!off.pools());
        assert_eq!(off.compression, CompressionMode::Off);
        assert_eq!(
            load("cluster { compression: true }")
                .unwrap()
                .cluster
                .unwrap()
                .compression,
            CompressionMode::S2Fast
        );
    }

    #[test]
    fn compression_map_with_thresholds() {
        let cluster = load(
            "cluster { compression: { mode: s2_auto, rtt_thresholds: [\"5ms\", \"20ms\", \"40ms\"] } }",
        )
        .unwrap()
        .cluster
        .unwrap();
        assert_eq!(cluster.compression, CompressionMode::S2Auto);
        assert_eq!(cluster.compression_thresholds[1], Duration::from_millis(20));
        let error = load(
            "cluster {\n  compression: { mode: s2_auto, rtt_thresholds: [\"20ms\", \"5ms\"] }\n}",
        )
        .unwrap_err();
        assert!(error.starts_with("cluster.conf:2:"), "{error}");
        assert!(error.contains("ascending"), "{error}");
        let error = load("cluster {\n  compression: lz4\n}").unwrap_err();
        assert!(error.starts_with("cluster.conf:2:"), "{error}");
        let error = load("cluster {\n  pool_size: 0x7fffffff\n}").unwrap_err();
        assert!(error.contains("pool_size"), "{error}");
    }

    #[test]
    fn pinned_accounts_must_exist() {
        let error = load("cluster { port: -1, accounts: [NOPE] }").unwrap_err();
        assert!(error.contains("\"NOPE\""), "{error}");
    }

    #[test]
    fn bad_route_url_names_its_position() {
        let error = load("cluster {\n  routes: [\"nats-route://nohost\"]\n}\n").unwrap_err();
        assert!(error.starts_with("cluster.conf:2:"), "{error}");
        assert!(error.contains("has no port"), "{error}");
    }

    #[test]
    fn cluster_tls_needs_a_certificate_and_key() {
        let error = load("cluster {\n  tls { ca_file: ca.pem }\n}\n").unwrap_err();
        assert!(error.starts_with("cluster.conf:2:"), "{error}");
        let options = load(
            "cluster { tls { cert_file: c.pem, key_file: k.pem, ca_file: ca.pem, verify: true } }",
        )
        .unwrap();
        let tls = options.cluster.unwrap().tls.unwrap();
        assert!(tls.verify);
    }

    #[test]
    fn cluster_permissions_are_not_supported_yet() {
        let error = load("cluster { permissions { import: \">\" } }").unwrap_err();
        assert!(error.contains("not supported yet"), "{error}");
    }
}
