//! The `tls { }` block (top level, and inside other blocks), `allow_non_tls`, and the
//! `websocket { }` (alias `ws`) block, parsed into `TlsOptions` and `WebSocketOptions` with
//! file:line:column errors.
//!
//! Names and value forms are nats-server's: `timeout` is seconds (integer or fraction) or a
//! duration string; `handshake_first` (aliases `first`, `immediate`) is a boolean, `"auto"`
//! or a duration; `min_version` is `"1.2"` or `"1.3"` (nats-server refuses older versions
//! too); `cipher_suites` takes Go's or rustls' suite names. A server-side block must name
//! both `cert_file` and `key_file`. A `websocket` block without a port (or with port 0) turns
//! WebSocket off, as in nats-server, and one with a port needs `tls` or `no_tls: true`.
//! Files are not opened here: `transport::tls` reads them when the server starts or reloads.

use std::time::Duration;

use super::{
    authorization_timeout, boolean, host_and_port, integer, invalid, map, path,
    seconds_or_duration, string, wrong_type, Builder, TimeoutWording,
};
use crate::config::duration::parse_duration;
use crate::config::value::{Entry, ValueKind};
use crate::config::ConfigError;
use crate::options::{Authorization, Listen};
use crate::transport::options::{
    defaults, HandshakeFirst, TlsOptions, TlsVersion, WebSocketOptions,
};
use crate::transport::tls::{cipher_suite_by_name, supported_cipher_suite_names};
use crate::transport::websocket::is_valid_origin;

/// `tls { }` options of nats-server that Tern does not have yet.
const UNSUPPORTED_TLS_OPTIONS: &[&str] = &[
    "allow_insecure_cipher_suites",
    "ca_certs_match",
    "cert_match",
    "cert_match_by",
    "cert_match_skip_invalid",
    "cert_store",
    "certificates",
    "certs",
    "connection_rate_limit",
    "curve_preferences",
    "ocsp_peer",
    "pinned_certs",
    "verify_cert_and_check_known_urls",
];

/// `websocket { }` options of nats-server that Tern does not have yet.
const UNSUPPORTED_WEBSOCKET_OPTIONS: &[&str] = &["jwt_cookie", "ping_interval"];

/// Whether a `tls` block configures a server (which must have a certificate) or a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TlsRole {
    Server,
    #[allow(dead_code)] // For remotes dialing out (routes, leaf nodes) as they land.
    Client,
}

impl Builder {
    /// Parses one `tls { }` block.
    pub(super) fn tls_block(
        &mut self,
        entry: &Entry,
        role: TlsRole,
    ) -> Result<TlsOptions, ConfigError> {
        let block = map(entry)?;
        let mut tls = TlsOptions::default();
        for item in block.entries() {
            let name = item.key.to_ascii_lowercase();
            let applied = match name.as_str() {
                "cert_file" => path(item).map(|file| tls.cert_file = Some(file)),
                "key_file" => path(item).map(|file| tls.key_file = Some(file)),
                "ca_file" => path(item).map(|file| tls.ca_file = Some(file)),
                "verify" => boolean(item).map(|verify| tls.verify = verify),
                "verify_and_map" => boolean(item).map(|map| {
                    tls.verify_and_map = map;
                    tls.verify |= map;
                }),
                "insecure" => boolean(item).map(|insecure| tls.insecure = insecure),
                "timeout" => tls_timeout(item).map(|timeout| tls.timeout = timeout),
                "handshake_first" | "first" | "immediate" => {
                    handshake_first(item).map(|mode| tls.handshake_first = mode)
                }
                "min_version" => min_version(item).map(|version| tls.min_version = version),
                "cipher_suites" => cipher_suites(item).map(|suites| tls.cipher_suites = suites),
                unsupported if UNSUPPORTED_TLS_OPTIONS.contains(&unsupported) => {
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
        let position = &entry.value.position;
        match (&tls.cert_file, &tls.key_file) {
            (Some(_), None) => {
                return Err(invalid(position, "missing 'key_file' in TLS configuration"))
            }
            (None, Some(_)) => {
                return Err(invalid(
                    position,
                    "missing 'cert_file' in TLS configuration",
                ))
            }
            (None, None) if role == TlsRole::Server => {
                return Err(invalid(
                    position,
                    "TLS for a server requires 'cert_file' and 'key_file'",
                ))
            }
            _ => {}
        }
        Ok(tls)
    }

    /// Parses `websocket { }`; `None` when it has no port.
    pub(super) fn websocket_block(
        &mut self,
        entry: &Entry,
    ) -> Result<Option<WebSocketOptions>, ConfigError> {
        let block = map(entry)?;
        let mut websocket = WebSocketOptions::default();
        let mut port = 0;
        for item in block.entries() {
            let name = item.key.to_ascii_lowercase();
            let applied = match name.as_str() {
                "listen" => host_and_port(item).map(|(host, listen_port)| {
                    if let Some(host) = host {
                        websocket.listen.host = host;
                    }
                    port = listen_port;
                }),
                "host" | "net" => string(item).map(|host| websocket.listen.host = host),
                "port" => integer(item).map(|number| port = number),
                "advertise" => string(item).map(|address| websocket.advertise = Some(address)),
                "no_tls" => boolean(item).map(|no_tls| websocket.no_tls = no_tls),
                "tls" => self
                    .tls_block(item, TlsRole::Server)
                    .map(|tls| websocket.tls = Some(tls)),
                "same_origin" => boolean(item).map(|same| websocket.same_origin = same),
                "allowed_origins" | "allowed_origin" | "allow_origins" | "allow_origin"
                | "origins" | "origin" => {
                    allowed_origins(item).map(|origins| websocket.allowed_origins = origins)
                }
                "compression" => boolean(item).map(|compress| websocket.compression = compress),
                "handshake_timeout" => self.duration(item).map(|timeout| {
                    if !timeout.is_zero() {
                        websocket.handshake_timeout = timeout;
                    }
                }),
                "authorization" | "authentication" => self
                    .websocket_authorization(item)
                    .map(|authorization| websocket.authorization = Some(authorization)),
                "no_auth_user" => string(item).map(|user| websocket.no_auth_user = Some(user)),
                "user_cookie" => string(item).map(|name| websocket.user_cookie = Some(name)),
                "pass_cookie" => string(item).map(|name| websocket.pass_cookie = Some(name)),
                "token_cookie" => string(item).map(|name| websocket.token_cookie = Some(name)),
                "headers" => headers(item).map(|headers| websocket.headers = headers),
                unsupported if UNSUPPORTED_WEBSOCKET_OPTIONS.contains(&unsupported) => {
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
        let position = &entry.value.position;
        websocket.listen = Listen {
            host: websocket.listen.host,
            port: match port {
                0 => return Ok(None),
                -1 => None,
                _ => Some(u16::try_from(port).map_err(|_| {
                    invalid(
                        position,
                        format!("websocket port must be between 0 and 65535, or -1 for a random port; got {port}"),
                    )
                })?),
            },
        };
        if websocket.tls.is_none() && !websocket.no_tls {
            return Err(invalid(
                position,
                "websocket requires TLS configuration (a tls block, or no_tls: true)",
            ));
        }
        Ok(Some(websocket))
    }

    /// `websocket { authorization { user, password, token, timeout } }`.
    fn websocket_authorization(&mut self, entry: &Entry) -> Result<Authorization, ConfigError> {
        let block = map(entry)?;
        let mut authorization = Authorization::default();
        for item in block.entries() {
            let name = item.key.to_ascii_lowercase();
            let applied = match name.as_str() {
                "user" | "username" => string(item).map(|user| authorization.user = Some(user)),
                "pass" | "password" => {
                    string(item).map(|password| authorization.password = Some(password))
                }
                "token" => string(item).map(|token| authorization.token = Some(token)),
                "timeout" => {
                    authorization_timeout(item).map(|timeout| authorization.timeout = timeout)
                }
                "users" | "nkeys" | "permissions" => Self::unsupported(item),
                _ => {
                    self.warn_unknown(item);
                    Ok(())
                }
            };
            if let Err(error) = applied {
                self.errors.push(error);
            }
        }
        if authorization.token.is_some()
            && (authorization.user.is_some() || authorization.password.is_some())
        {
            return Err(invalid(
                &entry.value.position,
                "websocket authorization can not have both a user/password and a token",
            ));
        }
        Ok(authorization)
    }
}

/// Seconds (integer or fraction) or a duration string; zero means the default.
fn tls_timeout(entry: &Entry) -> Result<Duration, ConfigError> {
    let timeout = seconds_or_duration(
        entry,
        &TimeoutWording {
            negative: "error parsing tls config, 'timeout' can not be negative",
            parse_prefix: "error parsing tls config, 'timeout' ",
            invalid_prefix: "invalid tls timeout ",
        },
    )?;
    Ok(if timeout.is_zero() {
        defaults::TLS_TIMEOUT
    } else {
        timeout
    })
}

fn handshake_first(entry: &Entry) -> Result<HandshakeFirst, ConfigError> {
    let text = match &entry.value.kind {
        ValueKind::Bool(true) => return Ok(HandshakeFirst::On),
        ValueKind::Bool(false) => return Ok(HandshakeFirst::Off),
        ValueKind::String(text) => text,
        _ => return Err(wrong_type(entry, "a boolean or a string")),
    };
    match text.to_ascii_lowercase().as_str() {
        "true" | "on" => Ok(HandshakeFirst::On),
        "false" | "off" => Ok(HandshakeFirst::Off),
        "auto" | "auto_fallback" => Ok(HandshakeFirst::Fallback(
            defaults::HANDSHAKE_FIRST_FALLBACK_DELAY,
        )),
        _ => match parse_duration(text) {
            Ok(parsed) if !parsed.negative && !parsed.magnitude.is_zero() => {
                Ok(HandshakeFirst::Fallback(parsed.magnitude))
            }
            _ => Err(invalid(
                &entry.value.position,
                format!(
                    "field {:?} value {text:?} is invalid: expected true, false, \"auto\" or a duration such as \"300ms\"",
                    entry.key
                ),
            )),
        },
    }
}

fn min_version(entry: &Entry) -> Result<TlsVersion, ConfigError> {
    let text = match &entry.value.kind {
        ValueKind::String(text) => text.clone(),
        // An unquoted 1.2 is read as a number; take it as meant.
        ValueKind::Float(number) => number.to_string(),
        _ => return Err(wrong_type(entry, "a version string such as \"1.2\"")),
    };
    TlsVersion::parse(&text).ok_or_else(|| {
        invalid(
            &entry.value.position,
            format!("error parsing tls config: unsupported TLS version {text:?}: use \"1.2\" or \"1.3\""),
        )
    })
}

fn cipher_suites(entry: &Entry) -> Result<Vec<rustls::CipherSuite>, ConfigError> {
    let ValueKind::Array(items) = &entry.value.kind else {
        return Err(invalid(
            &entry.value.position,
            "error parsing tls config, expected 'cipher_suites' to be an array",
        ));
    };
    if items.is_empty() {
        return Err(invalid(
            &entry.value.position,
            "error parsing tls config, 'cipher_suites' cannot be empty",
        ));
    }
    let mut suites = Vec::with_capacity(items.len());
    for item in items {
        let ValueKind::String(name) = &item.kind else {
            return Err(invalid(
                &item.position,
                format!(
                    "error parsing tls config, expected string in 'cipher_suites', got {}",
                    item.kind.type_name()
                ),
            ));
        };
        let suite = cipher_suite_by_name(name).ok_or_else(|| {
            invalid(
                &item.position,
                format!(
                    "error parsing tls config: cipher suite {name:?} is not supported; supported: {}",
                    supported_cipher_suite_names().join(", ")
                ),
            )
        })?;
        if !suites.contains(&suite) {
            suites.push(suite);
        }
    }
    Ok(suites)
}

fn allowed_origins(entry: &Entry) -> Result<Vec<String>, ConfigError> {
    let items: Vec<(&str, &crate::config::value::Position)> = match &entry.value.kind {
        ValueKind::String(origin) => vec![(origin.as_str(), &entry.value.position)],
        ValueKind::Array(items) => items
            .iter()
            .map(|item| match &item.kind {
                ValueKind::String(origin) => Ok((origin.as_str(), &item.position)),
                other => Err(invalid(
                    &item.position,
                    format!(
                        "an allowed origin must be a string, got {}",
                        other.type_name()
                    ),
                )),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(wrong_type(entry, "a string or an array of strings")),
    };
    items
        .into_iter()
        .map(|(origin, position)| {
            if is_valid_origin(origin) {
                Ok(origin.to_string())
            } else {
                Err(invalid(
                    position,
                    format!(
                        "unable to parse allowed origin {origin:?}: expected scheme://host[:port]"
                    ),
                ))
            }
        })
        .collect()
}

fn headers(entry: &Entry) -> Result<Vec<(String, String)>, ConfigError> {
    let block = map(entry)?;
    block
        .entries()
        .map(|item| {
            let value = string(item)?;
            let single_line = |text: &str| !text.contains(['\r', '\n']);
            if item.key.is_empty()
                || item.key.contains(':')
                || !single_line(&item.key)
                || !single_line(&value)
            {
                return Err(invalid(
                    &item.key_position,
                    format!("websocket header {:?} is not a valid HTTP header", item.key),
                ));
            }
            Ok((item.key.clone(), value))
        })
        .collect()
}

#[cfg(test)]
#[path = "transport_tests.rs"]
mod tests;
