//! The `cluster { }` block: nats-server's option names for routes, parsed into
//! `ClusterOptions` with file:line:column errors.
//!
//! Tern opens one connection per remote server and does not compress routes, which is what a
//! nats-server 2.10+ peer does with `pool_size: -1` and `compression: off`; other values of
//! those two options are accepted with a warning, so existing files load.

use super::{
    boolean, host_and_port, integer, invalid, map, string, wrong_type, Builder, ConfigWarning,
};
use crate::config::value::{Entry, ValueKind};
use crate::config::ConfigError;
use crate::options::{ClusterOptions, RouteUrl};

/// Options inside `cluster { }` that Tern does not have yet.
const UNSUPPORTED_CLUSTER_OPTIONS: &[&str] = &["permissions", "accounts"];

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
                "pool_size" => {
                    if integer(item)? != -1 {
                        self.note(
                            item,
                            "Tern opens one route connection per server (as pool_size: -1)",
                        );
                    }
                    Ok(())
                }
                "compression" => {
                    let off = match &item.value.kind {
                        ValueKind::Bool(flag) => !flag,
                        ValueKind::String(mode) => mode.eq_ignore_ascii_case("off"),
                        ValueKind::Map(_) => false,
                        _ => return Err(wrong_type(item, "a boolean, a mode or a map")),
                    };
                    if !off {
                        self.note(
                            item,
                            "Tern does not compress routes yet (as compression: off)",
                        );
                    }
                    Ok(())
                }
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
    fn random_cluster_port_and_pool_size_warning() {
        let options = load("cluster { port: -1, pool_size: 3 }").unwrap();
        assert_eq!(options.cluster.unwrap().listen.port, None);
        assert!(options
            .warnings
            .iter()
            .any(|w| w.message.contains("pool_size")));
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
