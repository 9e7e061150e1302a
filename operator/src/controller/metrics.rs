//! The operator's own metrics and its HTTP endpoint: `/metrics` (Prometheus text format),
//! `/healthz` (the process serves; 200 `ok`) and `/readyz` (200 once the controllers run or
//! this replica waits as a standby).
//!
//! Contract: every metric is registered once in [`Metrics::new`]; recording never fails. The
//! HTTP server serves at most [`MAX_CONNECTIONS`] connections at once, each for at most
//! [`CONNECTION_LIFETIME`], and stops when its token fires.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus::{
    Encoder as _, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::log;

pub const MAX_CONNECTIONS: usize = 32;
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

/// Why the metrics could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot register metric: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

/// Reconcile and leadership metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    reconciles: IntCounterVec,
    failures: IntCounterVec,
    duration: HistogramVec,
    restarts: IntCounterVec,
    leader: IntGauge,
    ready: Arc<AtomicBool>,
}

impl Metrics {
    pub fn new() -> Result<Self, MetricsError> {
        let registry = Registry::new();
        let reconciles = IntCounterVec::new(
            Opts::new(
                "tern_operator_reconciles_total",
                "Reconciles run, by resource kind.",
            ),
            &["kind"],
        )?;
        let failures = IntCounterVec::new(
            Opts::new(
                "tern_operator_reconcile_failures_total",
                "Reconciles that failed, by resource kind and reason.",
            ),
            &["kind", "reason"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "tern_operator_reconcile_duration_seconds",
                "How long reconciles take, by resource kind.",
            )
            .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &["kind"],
        )?;
        let restarts = IntCounterVec::new(
            Opts::new(
                "tern_operator_server_restarts_total",
                "Servers restarted by a rolling restart, by resource kind.",
            ),
            &["kind"],
        )?;
        let leader = IntGauge::new(
            "tern_operator_leader",
            "1 while this replica holds the leader Lease and reconciles.",
        )?;
        registry.register(Box::new(reconciles.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(restarts.clone()))?;
        registry.register(Box::new(leader.clone()))?;
        Ok(Self {
            registry,
            reconciles,
            failures,
            duration,
            restarts,
            leader,
            ready: Arc::new(AtomicBool::new(false)),
        })
    }

    pub fn reconciled(&self, kind: &str, seconds: f64) {
        self.reconciles.with_label_values(&[kind]).inc();
        self.duration.with_label_values(&[kind]).observe(seconds);
    }

    pub fn failed(&self, kind: &str, reason: &str) {
        self.failures.with_label_values(&[kind, reason]).inc();
    }

    pub fn restarted(&self, kind: &str) {
        self.restarts.with_label_values(&[kind]).inc();
    }

    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    fn text(&self) -> Result<String, prometheus::Error> {
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        Ok(String::from_utf8_lossy(&buffer).into_owned())
    }

    fn answer(&self, request: &Request<Incoming>) -> (StatusCode, &'static str, String) {
        const TEXT: &str = "text/plain; charset=utf-8";
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return (
                StatusCode::METHOD_NOT_ALLOWED,
                TEXT,
                "method not allowed\n".into(),
            );
        }
        match request.uri().path() {
            "/healthz" | "/livez" => (StatusCode::OK, TEXT, "ok\n".into()),
            "/readyz" if self.ready.load(Ordering::Relaxed) => {
                (StatusCode::OK, TEXT, "ok\n".into())
            }
            "/readyz" => (StatusCode::SERVICE_UNAVAILABLE, TEXT, "starting\n".into()),
            "/metrics" => match self.text() {
                Ok(text) => (StatusCode::OK, "text/plain; version=0.0.4", text),
                Err(error) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    TEXT,
                    format!("cannot gather metrics: {error}\n"),
                ),
            },
            _ => (StatusCode::NOT_FOUND, TEXT, "not found\n".into()),
        }
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` until `stop` fires.
pub async fn serve(metrics: Metrics, listener: TcpListener, stop: CancellationToken) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let connections = TaskTracker::new();
    loop {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            break;
        };
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                log::warn("accept failed", &[("error", &error.to_string())]);
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                }
            }
        };
        let metrics = metrics.clone();
        connections.spawn(async move {
            let _slot = slot;
            let service = service_fn(move |request: Request<Incoming>| {
                let (status, content_type, body) = metrics.answer(&request);
                let mut response = Response::new(Full::new(Bytes::from(body)));
                *response.status_mut() = status;
                response
                    .headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
                async move { Ok::<_, Infallible>(response) }
            });
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10));
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            // Dropping the connection at the deadline closes it.
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
        });
    }
    connections.close();
    // A scraper's keep-alive connection must not hold up the operator's exit.
    let _ = tokio::time::timeout(Duration::from_secs(2), connections.wait()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_values_appear_in_the_text_format() {
        let metrics = Metrics::new().expect("metrics");
        metrics.reconciled("NatsCluster", 0.02);
        metrics.failed("NatsCluster", "ApplyFailed");
        metrics.restarted("LeafNode");
        metrics.set_leader(true);
        let text = metrics.text().expect("text");
        assert!(text.contains("tern_operator_reconciles_total{kind=\"NatsCluster\"} 1"));
        assert!(text.contains(
            "tern_operator_reconcile_failures_total{kind=\"NatsCluster\",reason=\"ApplyFailed\"} 1"
        ));
        assert!(text.contains("tern_operator_server_restarts_total{kind=\"LeafNode\"} 1"));
        assert!(text.contains("tern_operator_leader 1"));
        assert!(text.contains("tern_operator_reconcile_duration_seconds_bucket"));
    }
}
