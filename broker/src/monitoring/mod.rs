//! The monitoring HTTP server: nats-server's monitoring endpoints and Prometheus metrics.
//!
//! Contract:
//! - `serve` answers HTTP/1.1 on the listener it is given until `stop` fires, then stops
//!   accepting, lets requests in flight finish (bounded) and returns. At most
//!   `http::MAX_CONNECTIONS` connections are served at once; a client must send its request
//!   head within `http::HEADER_READ_TIMEOUT`.
//! - `GET` (and `HEAD`) on `/`, `/varz`, `/connz`, `/routez`, `/gatewayz`, `/leafz`, `/subsz`
//!   (alias `/subscriptionsz`), `/accountz`, `/healthz` and `/metrics`; any other path is 404,
//!   any other method 405. JSON answers carry `Content-Type: application/json`, every answer
//!   `Access-Control-Allow-Origin: *`.
//! - Field names, types and value formats follow nats-server 2.9 for what Tern has; fields of
//!   features Tern lacks are omitted or empty exactly as nats-server shows them with the feature
//!   off. A malformed or invalid query parameter is HTTP 400 with nats-server's error text.
//! - Every answer is built from a snapshot taken at request time: no endpoint holds a server,
//!   connection or account lock while encoding, and list endpoints page (`offset`, `limit`,
//!   at most `query::MAX_LIMIT` entries) so one request's output is bounded.
//! - Handlers run on the blocking pool: a large `/connz` never stalls a runtime worker that
//!   also moves messages.
//!
//! Known differences from nats-server 2.9: `limit` is capped; `sort=rtt` is accepted (as in
//! 2.10); JSONP `callback` is not supported; `<`, `>` and `&` in strings are not written as
//! `\u003c`-style escapes (the JSON means the same); methods other than GET and HEAD get 405.

mod accountz;
mod connz;
mod http;
mod json;
mod metrics;
mod peers;
mod query;
mod subsz;
mod time_format;
mod varz;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hyper::{Method, StatusCode};
use serde::Serialize;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::logging;
use crate::server::Server;

use self::metrics::Metrics;
use self::query::Query;

/// Serves monitoring requests until `stop` fires.
pub async fn serve(server: Arc<Server>, listener: TcpListener, stop: CancellationToken) {
    let monitor = Arc::new(Monitor::new(server));
    http::run(monitor, listener, stop).await;
}

/// Why a monitoring request could not be answered. The text of the request errors is
/// nats-server's, word for word, because scripts match on it.
#[derive(Debug, Error)]
pub enum MonitoringError {
    #[error("invalid sorting option: {sort}")]
    InvalidSortOption { sort: String },
    #[error("sort by {sort} only valid on closed connections")]
    SortRequiresClosedConnections { sort: &'static str },
    #[error("Error decoding state for {state}")]
    InvalidState { state: String },
    #[error("Error decoding boolean for '{parameter}': strconv.ParseBool: parsing {value:?}: invalid syntax")]
    InvalidBoolean {
        parameter: &'static str,
        value: String,
    },
    #[error("Error decoding int for '{parameter}': strconv.Atoi: parsing {value:?}: {}", parse_failure(.out_of_range))]
    InvalidInteger {
        parameter: &'static str,
        value: String,
        out_of_range: bool,
    },
    #[error("Error decoding uint64 for '{parameter}': strconv.ParseUint: parsing {value:?}: {}", parse_failure(.out_of_range))]
    InvalidUnsigned {
        parameter: &'static str,
        value: String,
        out_of_range: bool,
    },
    #[error("invalid test subject, must be valid publish subject: {subject}")]
    InvalidTestSubject { subject: String },
    #[error("Account {account} does not exist")]
    UnknownAccount { account: String },
    #[error("cannot encode the response: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("cannot gather metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("metrics are unavailable: the registry could not be built")]
    MetricsUnavailable,
    #[error("the request handler failed: {0}")]
    Handler(#[from] tokio::task::JoinError),
}

fn parse_failure(out_of_range: &bool) -> &'static str {
    if *out_of_range {
        "value out of range"
    } else {
        "invalid syntax"
    }
}

impl MonitoringError {
    fn status(&self) -> StatusCode {
        match self {
            Self::Encode(_) | Self::Metrics(_) | Self::Handler(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            Self::MetricsUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// The endpoints, each counted in `/varz`'s `http_req_stats` under its canonical path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Root,
    Varz,
    Connz,
    Routez,
    Gatewayz,
    Leafz,
    Subsz,
    Accountz,
    Healthz,
    Metrics,
}

impl Endpoint {
    const ALL: [Endpoint; 10] = [
        Self::Root,
        Self::Varz,
        Self::Connz,
        Self::Routez,
        Self::Gatewayz,
        Self::Leafz,
        Self::Subsz,
        Self::Accountz,
        Self::Healthz,
        Self::Metrics,
    ];

    fn from_path(path: &str) -> Option<Self> {
        match path {
            "/subscriptionsz" => Some(Self::Subsz),
            _ => Self::ALL
                .into_iter()
                .find(|endpoint| endpoint.path() == path),
        }
    }

    fn path(self) -> &'static str {
        match self {
            Self::Root => "/",
            Self::Varz => "/varz",
            Self::Connz => "/connz",
            Self::Routez => "/routez",
            Self::Gatewayz => "/gatewayz",
            Self::Leafz => "/leafz",
            Self::Subsz => "/subsz",
            Self::Accountz => "/accountz",
            Self::Healthz => "/healthz",
            Self::Metrics => "/metrics",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One answer, before it becomes an HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reply {
    status: StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
}

const JSON: &str = "application/json";
const PLAIN_TEXT: &str = "text/plain; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";

impl Reply {
    fn ok(content_type: &'static str, body: Vec<u8>) -> Self {
        Self {
            status: StatusCode::OK,
            content_type,
            body,
        }
    }

    fn json(value: &impl Serialize) -> Result<Self, MonitoringError> {
        Ok(Self::ok(JSON, json::pretty(value)?))
    }

    fn text(status: StatusCode, text: impl Into<String>) -> Self {
        Self {
            status,
            content_type: PLAIN_TEXT,
            body: text.into().into_bytes(),
        }
    }

    fn error(error: &MonitoringError) -> Self {
        let status = error.status();
        if status.is_server_error() {
            logging::error(format_args!("Monitoring request failed: {error}"));
        }
        Self::text(status, error.to_string())
    }
}

/// What every request handler shares: the server it reports on and the monitor's own state.
struct Monitor {
    server: Arc<Server>,
    requests: [AtomicU64; Endpoint::ALL.len()],
    metrics: Option<Metrics>,
    process: varz::ProcessUsage,
}

impl Monitor {
    fn new(server: Arc<Server>) -> Self {
        let metrics = match Metrics::new() {
            Ok(metrics) => Some(metrics),
            Err(error) => {
                logging::error(format_args!("Cannot register monitoring metrics: {error}"));
                None
            }
        };
        Self {
            server,
            requests: Default::default(),
            metrics,
            process: varz::ProcessUsage::default(),
        }
    }

    /// Answers one request; never fails, errors become their HTTP answer.
    fn respond(&self, method: &Method, path: &str, query: &Query) -> Reply {
        let Some(endpoint) = Endpoint::from_path(path) else {
            return Reply::text(StatusCode::NOT_FOUND, "404 page not found\n");
        };
        if method != Method::GET && method != Method::HEAD {
            return Reply::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        }
        self.requests[endpoint.index()].fetch_add(1, Ordering::Relaxed);
        self.dispatch(endpoint, query)
            .unwrap_or_else(|error| Reply::error(&error))
    }

    fn dispatch(&self, endpoint: Endpoint, query: &Query) -> Result<Reply, MonitoringError> {
        let server = &self.server;
        match endpoint {
            Endpoint::Root => Ok(Reply::ok(HTML, root_page().into_bytes())),
            Endpoint::Varz => {
                Reply::json(&varz::varz(server, &self.process, self.request_counts()))
            }
            Endpoint::Connz => Reply::json(&connz::connz(server, query)?),
            Endpoint::Routez => Reply::json(&peers::routez(server, query)?),
            Endpoint::Gatewayz => Reply::json(&peers::gatewayz(server, query)?),
            Endpoint::Leafz => Reply::json(&peers::leafz(server, query)?),
            Endpoint::Subsz => subsz::subsz(server, query)?.into_reply(),
            Endpoint::Accountz => Reply::json(&accountz::accountz(server, query)?),
            Endpoint::Healthz => healthz(server, query),
            Endpoint::Metrics => {
                let metrics = self
                    .metrics
                    .as_ref()
                    .ok_or(MonitoringError::MetricsUnavailable)?;
                Ok(Reply::ok(metrics::CONTENT_TYPE, metrics.render(server)?))
            }
        }
    }

    /// Requests per path so far, for `/varz` (only paths that were asked for, like nats-server).
    fn request_counts(&self) -> BTreeMap<&'static str, u64> {
        Endpoint::ALL
            .into_iter()
            .filter_map(|endpoint| {
                let count = self.requests[endpoint.index()].load(Ordering::Relaxed);
                (count > 0).then_some((endpoint.path(), count))
            })
            .collect()
    }
}

#[derive(Serialize)]
struct HealthStatus {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
}

/// `/healthz`: ready unless in lame duck mode, when the client listener is closed. The
/// JetStream switches are checked for well-formedness and otherwise ignored (no JetStream).
fn healthz(server: &Server, query: &Query) -> Result<Reply, MonitoringError> {
    for switch in ["js-enabled", "js-enabled-only", "js-server-only"] {
        query.boolean(switch)?;
    }
    if server.is_lame_duck() {
        let status = HealthStatus {
            status: "error",
            error: Some("failed to be ready for connections after 1ms: server"),
        };
        return Ok(Reply {
            status: StatusCode::SERVICE_UNAVAILABLE,
            content_type: JSON,
            body: json::compact(&status)?,
        });
    }
    let status = HealthStatus {
        status: "ok",
        error: None,
    };
    Ok(Reply::ok(JSON, json::compact(&status)?))
}

/// A small index of the endpoints, with links relative to wherever we are mounted.
fn root_page() -> String {
    let links: String = [
        ("varz", "General"),
        ("connz", "Connections"),
        ("accountz", "Accounts"),
        ("subsz", "Subscriptions"),
        ("routez", "Routes"),
        ("leafz", "LeafNodes"),
        ("gatewayz", "Gateways"),
        ("healthz", "Health Probe"),
        ("metrics", "Prometheus Metrics"),
    ]
    .iter()
    .map(|(path, title)| format!("    <a href=./{path}>{title}</a><br/>\n"))
    .collect();
    format!(
        "<html lang=\"en\">\n  <head><title>Tern monitoring</title></head>\n  <body>\n    \
         <h1>Tern {}</h1>\n{links}  </body>\n</html>\n",
        crate::server::TERN_VERSION
    )
}
