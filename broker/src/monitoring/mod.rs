//! Monitoring HTTP endpoints (placeholder until the monitoring module lands).

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::server::Server;

/// Serves monitoring requests until `stop` fires.
pub async fn serve(_server: Arc<Server>, _listener: TcpListener, stop: CancellationToken) {
    stop.cancelled().await;
}
