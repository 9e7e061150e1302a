//! HTTP/1.1 plumbing: the accept loop and one task per connection.
//!
//! Contract: at most [`MAX_CONNECTIONS`] connections are open at once (further clients wait in
//! the listen backlog); each must send a request head within [`HEADER_READ_TIMEOUT`] and lives
//! at most [`CONNECTION_LIFETIME`]; request heads are capped by [`MAX_BUFFER_SIZE`]. When `stop`
//! fires the loop stops accepting and every connection finishes its request in flight within
//! [`SHUTDOWN_GRACE`] or is dropped; `run` returns once all connection tasks have ended.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCESS_CONTROL_ALLOW_ORIGIN, ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::query::Query;
use super::{Monitor, MonitoringError, Reply};
use crate::logging;

/// Connections served at once; monitoring is for a few scrapers and humans, not a crowd.
pub const MAX_CONNECTIONS: usize = 128;
/// How long a client may take to send a request head, also while idle between requests.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest one connection is kept, so a client that stops reading cannot hold a slot.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);
/// How long requests in flight may take to finish once the server stops.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// hyper's read buffer per connection, which bounds a request head (hyper's minimum is 8 KiB).
pub const MAX_BUFFER_SIZE: usize = 64 * 1024;

const FIRST_ACCEPT_BACKOFF: Duration = Duration::from_millis(5);
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Accepts and serves connections until `stop` fires.
pub(super) async fn run(monitor: Arc<Monitor>, listener: TcpListener, stop: CancellationToken) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let connections = TaskTracker::new();
    let mut backoff = FIRST_ACCEPT_BACKOFF;
    loop {
        let slot = tokio::select! {
            () = stop.cancelled() => break,
            slot = Arc::clone(&slots).acquire_owned() => slot,
        };
        // The semaphore is never closed, so this only guards against a future change.
        let Ok(slot) = slot else { break };
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                backoff = FIRST_ACCEPT_BACKOFF;
                let monitor = Arc::clone(&monitor);
                connections.spawn(serve_connection(monitor, stream, stop.clone(), slot));
            }
            Err(error) => {
                // Out of descriptors and the like: wait, then try again, bounded.
                logging::error(format_args!(
                    "Temporary Monitoring Accept Error ({error}), sleeping {}ms",
                    backoff.as_millis()
                ));
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
            }
        }
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    logging::debug(format_args!("Monitoring listener exiting"));
}

async fn serve_connection(
    monitor: Arc<Monitor>,
    stream: TcpStream,
    stop: CancellationToken,
    _slot: OwnedSemaphorePermit,
) {
    let service = service_fn(move |request| {
        let monitor = Arc::clone(&monitor);
        async move { Ok::<_, Infallible>(answer(monitor, request).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_BUFFER_SIZE);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    let finished = tokio::select! {
        result = connection.as_mut() => Some(result),
        () = stop.cancelled() => None,
        () = tokio::time::sleep(CONNECTION_LIFETIME) => None,
    };
    let result = match finished {
        Some(result) => result,
        None => {
            connection.as_mut().graceful_shutdown();
            match tokio::time::timeout(SHUTDOWN_GRACE, connection).await {
                Ok(result) => result,
                Err(_) => return,
            }
        }
    };
    if let Err(error) = result {
        logging::debug(format_args!("Monitoring connection error: {error}"));
    }
}

/// Answers one request on the blocking pool; the request body, if any, is not read.
async fn answer(monitor: Arc<Monitor>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let query = Query::parse(request.uri().query());
    drop(request);
    let reply = tokio::task::spawn_blocking(move || monitor.respond(&method, &path, &query))
        .await
        .unwrap_or_else(|error| Reply::error(&MonitoringError::from(error)));
    into_response(reply)
}

fn into_response(reply: Reply) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(reply.body)));
    *response.status_mut() = reply.status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(reply.content_type));
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    if reply.status == StatusCode::METHOD_NOT_ALLOWED {
        headers.insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    response
}
