//! `/metrics`: the server's counters in the Prometheus text format.
//!
//! Contract: the registry belongs to the monitoring server, not the process, so several servers
//! in one process (tests) never share series. Values are read from the server at scrape time;
//! nothing on the message path touches Prometheus types. Scrapes are serialised, because a
//! scrape first copies the server's counters into the registry and then encodes it. Series:
//!
//! | name | type | value |
//! |---|---|---|
//! | `tern_info{version,server_id,server_name}` | gauge | always 1 |
//! | `tern_uptime_seconds` | gauge | since the server started |
//! | `tern_connections` | gauge | open client connections |
//! | `tern_connections_total` | counter | client connections ever accepted |
//! | `tern_subscriptions` | gauge | subscriptions over all accounts |
//! | `tern_in_messages_total`, `tern_in_bytes_total` | counter | received from clients |
//! | `tern_out_messages_total`, `tern_out_bytes_total` | counter | delivered to clients |
//! | `tern_slow_consumers_total` | counter | connections closed as slow consumers |
//! | `tern_account_connections{account}` | gauge | open client connections per account |
//! | `tern_account_subscriptions{account}` | gauge | subscriptions per account |
//! | `tern_routes` | gauge | open route connections to other servers of the cluster (each pool member and dedicated account route counts) |
//! | `tern_route_in_messages{remote_name}`, `tern_route_out_messages{remote_name}` | gauge | messages over the open routes to each server (pool members added up) |
//! | `tern_route_subscriptions{remote_name}` | gauge | interest the peer announced on each route |

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use parking_lot::Mutex;
use prometheus::core::Collector;
use prometheus::{Encoder, Gauge, IntCounter, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

use super::time_format::elapsed_between;
use super::MonitoringError;
use crate::server::{Server, TERN_VERSION};

/// The Prometheus text exposition format, version 0.0.4.
pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// The monitoring server's registry and the series it exports.
pub struct Metrics {
    registry: Registry,
    info: IntGaugeVec,
    uptime_seconds: Gauge,
    connections: IntGauge,
    total_connections: IntCounter,
    subscriptions: IntGauge,
    in_messages: IntCounter,
    in_bytes: IntCounter,
    out_messages: IntCounter,
    out_bytes: IntCounter,
    slow_consumers: IntCounter,
    account_connections: IntGaugeVec,
    account_subscriptions: IntGaugeVec,
    routes: IntGauge,
    route_in_messages: IntGaugeVec,
    route_out_messages: IntGaugeVec,
    route_subscriptions: IntGaugeVec,
    /// Held from copying values in to encoding them, so concurrent scrapes cannot interleave.
    scrape: Mutex<()>,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let metrics = Self {
            info: register(
                &registry,
                IntGaugeVec::new(
                    Opts::new(
                        "tern_info",
                        "Version and identity of this server; always 1.",
                    ),
                    &["version", "server_id", "server_name"],
                )?,
            )?,
            uptime_seconds: register(
                &registry,
                Gauge::new("tern_uptime_seconds", "Seconds since the server started.")?,
            )?,
            connections: register(
                &registry,
                IntGauge::new("tern_connections", "Open client connections.")?,
            )?,
            total_connections: register(
                &registry,
                IntCounter::new(
                    "tern_connections_total",
                    "Client connections accepted since the server started.",
                )?,
            )?,
            subscriptions: register(
                &registry,
                IntGauge::new("tern_subscriptions", "Subscriptions over all accounts.")?,
            )?,
            in_messages: register(
                &registry,
                IntCounter::new("tern_in_messages_total", "Messages received from clients.")?,
            )?,
            in_bytes: register(
                &registry,
                IntCounter::new(
                    "tern_in_bytes_total",
                    "Payload bytes received from clients.",
                )?,
            )?,
            out_messages: register(
                &registry,
                IntCounter::new("tern_out_messages_total", "Messages delivered to clients.")?,
            )?,
            out_bytes: register(
                &registry,
                IntCounter::new(
                    "tern_out_bytes_total",
                    "Payload bytes delivered to clients.",
                )?,
            )?,
            slow_consumers: register(
                &registry,
                IntCounter::new(
                    "tern_slow_consumers_total",
                    "Client connections closed as slow consumers.",
                )?,
            )?,
            account_connections: register(
                &registry,
                IntGaugeVec::new(
                    Opts::new(
                        "tern_account_connections",
                        "Open client connections per account.",
                    ),
                    &["account"],
                )?,
            )?,
            account_subscriptions: register(
                &registry,
                IntGaugeVec::new(
                    Opts::new("tern_account_subscriptions", "Subscriptions per account."),
                    &["account"],
                )?,
            )?,
            routes: register(
                &registry,
                IntGauge::new(
                    "tern_routes",
                    "Open routes to other servers of the cluster.",
                )?,
            )?,
            route_in_messages: register(
                &registry,
                IntGaugeVec::new(
                    Opts::new("tern_route_in_messages", "Messages received over a route."),
                    &["remote_name"],
                )?,
            )?,
            route_out_messages: register(
                &registry,
                IntGaugeVec::new(
                    Opts::new("tern_route_out_messages", "Messages sent over a route."),
                    &["remote_name"],
                )?,
            )?,
            route_subscriptions: register(
                &registry,
                IntGaugeVec::new(
                    Opts::new(
                        "tern_route_subscriptions",
                        "Subscriptions the peer of a route announced.",
                    ),
                    &["remote_name"],
                )?,
            )?,
            registry,
            scrape: Mutex::new(()),
        };
        Ok(metrics)
    }

    /// Copies the server's current values in and encodes every series.
    pub fn render(&self, server: &Server) -> Result<Vec<u8>, MonitoringError> {
        let _scrape = self.scrape.lock();
        self.update(server);
        let mut text = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut text)?;
        Ok(text)
    }

    fn update(&self, server: &Server) {
        // Reset first: a reload may rename the server, and accounts may go away.
        self.info.reset();
        self.info
            .with_label_values(&[TERN_VERSION, &server.server_id, &server.server_name()])
            .set(1);
        self.uptime_seconds
            .set(elapsed_between(server.started, SystemTime::now()).as_secs_f64());
        self.connections
            .set(gauge_value(server.connection_count() as u64));
        let statistics = &server.statistics;
        set_counter(&self.total_connections, &statistics.total_connections);
        set_counter(&self.in_messages, &statistics.in_messages);
        set_counter(&self.in_bytes, &statistics.in_bytes);
        set_counter(&self.out_messages, &statistics.out_messages);
        set_counter(&self.out_bytes, &statistics.out_bytes);
        set_counter(&self.slow_consumers, &statistics.slow_consumers);
        self.account_connections.reset();
        self.account_subscriptions.reset();
        let mut subscriptions = 0;
        for account in server.accounts() {
            let account_subscriptions = account.with_index(|index| index.len()) as u64;
            subscriptions += account_subscriptions;
            self.account_connections
                .with_label_values(&[account.name.as_str()])
                .set(gauge_value(
                    account.client_connections.load(Ordering::Relaxed),
                ));
            self.account_subscriptions
                .with_label_values(&[account.name.as_str()])
                .set(gauge_value(account_subscriptions));
        }
        self.subscriptions.set(gauge_value(subscriptions));
        // Per-route series are gauges, not counters: a route that reconnects starts again.
        self.route_in_messages.reset();
        self.route_out_messages.reset();
        self.route_subscriptions.reset();
        let routes = server
            .cluster()
            .map(|cluster| cluster.routes())
            .unwrap_or_default();
        self.routes.set(gauge_value(routes.len() as u64));
        // A pooled peer has several connections: its series add them up.
        let mut per_peer: std::collections::BTreeMap<String, (u64, u64, u64)> =
            std::collections::BTreeMap::new();
        for route in routes {
            let statistics = &route.connection.statistics;
            let totals = per_peer.entry(route.remote.name.clone()).or_default();
            totals.0 += statistics.in_messages.load(Ordering::Relaxed);
            totals.1 += statistics.out_messages.load(Ordering::Relaxed);
            totals.2 += route.connection.subscription_count() as u64;
        }
        for (name, (in_messages, out_messages, subscriptions)) in per_peer {
            let name = name.as_str();
            self.route_in_messages
                .with_label_values(&[name])
                .set(gauge_value(in_messages));
            self.route_out_messages
                .with_label_values(&[name])
                .set(gauge_value(out_messages));
            self.route_subscriptions
                .with_label_values(&[name])
                .set(gauge_value(subscriptions));
        }
    }
}

fn register<M: Collector + Clone + 'static>(
    registry: &Registry,
    metric: M,
) -> Result<M, prometheus::Error> {
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

/// Prometheus counters only go up; the server's own counter is the truth, so it is copied in.
fn set_counter(counter: &IntCounter, source: &AtomicU64) {
    counter.reset();
    counter.inc_by(source.load(Ordering::Relaxed));
}

fn gauge_value(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::options::ServerOptions;

    fn scrape(metrics: &Metrics, server: &Server) -> String {
        String::from_utf8(metrics.render(server).unwrap()).unwrap()
    }

    #[test]
    fn scrape_reports_server_counters_and_identity() {
        let server = Server::new(ServerOptions::default());
        server.statistics.in_messages.store(7, Ordering::Relaxed);
        server.statistics.out_bytes.store(42, Ordering::Relaxed);
        let metrics = Metrics::new().unwrap();
        let text = scrape(&metrics, &server);
        assert!(text.contains("tern_in_messages_total 7\n"), "{text}");
        assert!(text.contains("tern_out_bytes_total 42\n"), "{text}");
        assert!(text.contains("tern_connections 0\n"), "{text}");
        assert!(
            text.contains("tern_account_connections{account=\"$G\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("tern_account_subscriptions{account=\"$SYS\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains(&format!("server_id=\"{}\"", server.server_id)),
            "{text}"
        );
    }

    #[test]
    fn counters_are_copied_not_accumulated() {
        let server = Server::new(ServerOptions::default());
        let metrics = Metrics::new().unwrap();
        server.statistics.in_messages.store(7, Ordering::Relaxed);
        scrape(&metrics, &server);
        server.statistics.in_messages.store(9, Ordering::Relaxed);
        let text = scrape(&metrics, &server);
        assert!(text.contains("tern_in_messages_total 9\n"), "{text}");
    }
}
