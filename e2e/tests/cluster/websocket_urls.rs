//! WebSocket clients are told the cluster's WebSocket URLs: each server announces its
//! WebSocket listener to its routes (`ws_connect_urls`), and a WebSocket client's INFO lists
//! the other servers' WebSocket addresses in `connect_urls`, never their NATS ports.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use anyhow::Context as _;
use futures::StreamExt as _;
use tern_e2e::{for_each_topology, ClusterBlock, MemberSetup, CLUSTER_NAME, MESH_TIMEOUT};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{connect_urls, POLL_INTERVAL};

/// How long a server may take to merge its peers' URLs, and one INFO to arrive.
const INFO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
const WEBSOCKET: &str = "websocket { host: 127.0.0.1, port: -1, no_tls: true }";

/// The INFO a WebSocket client gets from `address`.
async fn websocket_info(address: SocketAddr) -> anyhow::Result<serde_json::Value> {
    let request = format!("ws://{address}/").into_client_request()?;
    let stream = TcpStream::connect(address).await?;
    let (mut client, _) = tokio_tungstenite::client_async(request, stream).await?;
    let frame = tokio::time::timeout(INFO_TIMEOUT, client.next())
        .await
        .context("no INFO in time")?
        .context("closed before INFO")??;
    let Message::Binary(payload) = frame else {
        anyhow::bail!("the first frame is not binary: {frame:?}");
    };
    let line = String::from_utf8_lossy(&payload);
    let json = line
        .strip_prefix("INFO ")
        .context("not an INFO")?
        .trim_end();
    Ok(serde_json::from_str(json)?)
}

#[test]
fn websocket_clients_are_told_the_other_servers_websocket_urls() {
    for_each_topology(|topology| async move {
        let members = MemberSetup::new(ClusterBlock::new(CLUSTER_NAME)).with_config_line(WEBSOCKET);
        let cluster = members.start_cluster(topology.kinds())?;
        cluster.wait_for_mesh(MESH_TIMEOUT)?;
        let websockets: Vec<SocketAddr> = cluster
            .servers()
            .iter()
            .map(|server| server.websocket_address().context("no websocket listener"))
            .collect::<anyhow::Result<_>>()?;
        let nats_ports: BTreeSet<String> = cluster
            .client_addresses()
            .iter()
            .map(ToString::to_string)
            .collect();
        for (index, address) in websockets.iter().enumerate() {
            let others: BTreeSet<String> = websockets
                .iter()
                .enumerate()
                .filter(|(other, _)| *other != index)
                .map(|(_, address)| address.to_string())
                .collect();
            let mut last_seen = BTreeSet::new();
            // Bounded: one INFO per POLL_INTERVAL until INFO_TIMEOUT.
            let deadline = tokio::time::Instant::now() + INFO_TIMEOUT;
            loop {
                if let Ok(info) = websocket_info(*address).await {
                    last_seen = connect_urls(&info);
                    if last_seen.is_superset(&others) {
                        break;
                    }
                }
                anyhow::ensure!(
                    tokio::time::Instant::now() < deadline,
                    "node-{index}: no WebSocket INFO named {others:?} within {INFO_TIMEOUT:?}; last saw {last_seen:?}"
                );
                tokio::time::sleep(POLL_INTERVAL).await;
            }
            anyhow::ensure!(
                last_seen.is_disjoint(&nats_ports),
                "node-{index} told a WebSocket client NATS ports: {last_seen:?}"
            );
        }
        Ok(())
    });
}
