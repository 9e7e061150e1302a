//! Route pooling, dedicated account routes and compression as nats-server 2.10+ negotiates
//! them (reference §2.9–2.10), checked on both ends through `/routez`:
//! - two servers that pool keep `pool_size` connections plus one dedicated `$SYS` route to each
//!   other; with a 2.9 server there is one connection;
//! - different pool sizes settle on the larger one, and `pool_size: -1` means one connection;
//! - an account listed in `cluster { accounts }` gets a dedicated route, and its messages
//!   cross on it;
//! - compression settles on the mode nats-server picks for the pair of settings, and traffic
//!   (small messages and a large, compressible one) arrives exactly once through it.
//!
//! Pair tests use the first two kinds of each topology, so Tern meets Tern, nats-server 2.9
//! and nats-server 2.12 on either side.

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use tern_e2e::{
    for_each_topology, wait_until, Cluster, ClusterBlock, MemberSetup, Routez, ServerKind,
    ServerProcess, CLUSTER_NAME, MESH_TIMEOUT,
};

use crate::support::{assert_fanout_exactly_once, connect, wait_for_interest, POLL_INTERVAL};

/// How long pool members take to connect after the first one.
const POOL_TIMEOUT: Duration = Duration::from_secs(15);
/// Messages each server publishes in a fan-out check.
const PER_PUBLISHER: usize = 50;
/// nats-server's (and Tern's) default pool size.
const DEFAULT_POOL_SIZE: usize = 3;

/// Starts `kinds[0]` and `kinds[1]` with the extra cluster settings of each; the second dials
/// the first.
fn start_pair(
    kinds: [ServerKind; 2],
    settings: [&[&str]; 2],
    config_lines: &[&str],
) -> anyhow::Result<Cluster> {
    let mut cluster = Cluster::start(&[])?;
    for (index, kind) in kinds.into_iter().enumerate() {
        let mut block = ClusterBlock::new(CLUSTER_NAME);
        for setting in settings[index] {
            block = block.with_setting(*setting);
        }
        let mut setup = MemberSetup::new(block);
        for line in config_lines {
            setup = setup.with_config_line(*line);
        }
        let route_to: Vec<usize> = (0..index).collect();
        setup.join(&mut cluster, kind, &route_to)?;
    }
    cluster.wait_for_mesh(MESH_TIMEOUT)?;
    Ok(cluster)
}

/// Waits until member `index` has exactly `expected` connections to member `peer`, and
/// returns its `/routez` then.
fn wait_for_connections(
    cluster: &Cluster,
    index: usize,
    peer: usize,
    expected: usize,
) -> anyhow::Result<Routez> {
    let peer_id = cluster.server_id(peer)?;
    let mut seen = 0;
    wait_until(
        &format!("node-{index} to have {expected} route connections to node-{peer}"),
        POOL_TIMEOUT,
        POLL_INTERVAL,
        || {
            let routez = cluster.routez(index).ok()?;
            seen = routez.towards(&peer_id).connections;
            (seen == expected).then_some(routez)
        },
    )
    .map_err(|error| anyhow::anyhow!("{error} (last seen: {seen})"))
}

/// The accounts of the dedicated connections from `routez` towards `peer_id`.
fn dedicated_accounts(routez: &Routez, peer_id: &str) -> BTreeSet<String> {
    routez
        .routes
        .iter()
        .filter(|route| route.remote_id == peer_id)
        .filter_map(|route| route.account.clone())
        .collect()
}

fn first_two(kinds: &[ServerKind]) -> [ServerKind; 2] {
    [kinds[0], kinds[1]]
}

#[test]
fn servers_that_pool_keep_a_pool_and_a_system_route_and_a_2_9_server_one_connection() {
    for_each_topology(|topology| async move {
        let cluster = Cluster::start(topology.kinds())?;
        for index in 0..cluster.len() {
            for peer in (0..cluster.len()).filter(|&peer| peer != index) {
                let old = [index, peer]
                    .iter()
                    .any(|&member| topology.kind(member) == ServerKind::NatsServer);
                let expected = if old { 1 } else { DEFAULT_POOL_SIZE + 1 };
                let routez = wait_for_connections(&cluster, index, peer, expected)?;
                let accounts = dedicated_accounts(&routez, &cluster.server_id(peer)?);
                let wanted: BTreeSet<String> = if old {
                    BTreeSet::new()
                } else {
                    BTreeSet::from(["$SYS".to_string()])
                };
                assert_eq!(
                    accounts,
                    wanted,
                    "node-{index} ({}) dedicated routes to node-{peer} ({})",
                    topology.kind(index),
                    topology.kind(peer)
                );
            }
        }
        assert_fanout_exactly_once(&cluster, PER_PUBLISHER).await
    });
}

#[test]
fn different_pool_sizes_settle_on_the_larger_and_pool_size_minus_one_means_one_connection() {
    for_each_topology(|topology| async move {
        let kinds = first_two(topology.kinds());
        if kinds.contains(&ServerKind::NatsServer) {
            eprintln!("=== {topology}: nats-server 2.9 has no pool_size");
            return Ok(());
        }
        let cluster = start_pair(kinds, [&["pool_size: 2"], &["pool_size: 5"]], &[])?;
        for (index, peer) in [(0, 1), (1, 0)] {
            wait_for_connections(&cluster, index, peer, 5 + 1)?;
        }
        assert_fanout_exactly_once(&cluster, PER_PUBLISHER).await?;
        drop(cluster);

        let cluster = start_pair(kinds, [&["pool_size: -1"], &[]], &[])?;
        for (index, peer) in [(0, 1), (1, 0)] {
            let routez = wait_for_connections(&cluster, index, peer, 1)?;
            assert!(
                dedicated_accounts(&routez, &cluster.server_id(peer)?).is_empty(),
                "no dedicated route with pool_size: -1: {routez:?}"
            );
        }
        assert_fanout_exactly_once(&cluster, PER_PUBLISHER).await
    });
}

/// An account with users on both servers, pinned to a dedicated route.
const ACCOUNTS: &str = "accounts { ORDERS: { users: [ { user: orders, password: orders } ] } }";

async fn connect_as_orders(server: &ServerProcess) -> anyhow::Result<async_nats::Client> {
    Ok(
        async_nats::ConnectOptions::with_user_and_password("orders".into(), "orders".into())
            .connection_timeout(Duration::from_secs(5))
            .connect(server.client_url())
            .await?,
    )
}

#[test]
fn a_pinned_account_gets_a_dedicated_route_that_carries_its_messages() {
    for_each_topology(|topology| async move {
        let kinds = first_two(topology.kinds());
        if kinds.contains(&ServerKind::NatsServer) {
            eprintln!("=== {topology}: nats-server 2.9 has no dedicated account routes");
            return Ok(());
        }
        let pinned: &[&str] = &["accounts: [ORDERS]"];
        let cluster = start_pair(kinds, [pinned, pinned], &[ACCOUNTS])?;
        for (index, peer) in [(0, 1), (1, 0)] {
            let routez = wait_for_connections(&cluster, index, peer, DEFAULT_POOL_SIZE + 2)?;
            assert_eq!(
                dedicated_accounts(&routez, &cluster.server_id(peer)?),
                BTreeSet::from(["$SYS".to_string(), "ORDERS".to_string()]),
                "node-{index} ({}) dedicated routes",
                kinds[index]
            );
        }
        let subscriber = connect_as_orders(cluster.server(1)).await?;
        let publisher = connect_as_orders(cluster.server(0)).await?;
        let mut subscription = subscriber.subscribe("orders.created").await?;
        wait_for_interest(&subscriber, &publisher).await?;
        const COUNT: usize = 40;
        for sequence in 0..COUNT {
            publisher
                .publish("orders.created", Bytes::from(sequence.to_string()))
                .await?;
        }
        publisher.flush().await?;
        for sequence in 0..COUNT {
            let message = tokio::time::timeout(Duration::from_secs(10), subscription.next())
                .await?
                .ok_or_else(|| anyhow::anyhow!("the subscription ended"))?;
            assert_eq!(message.payload, Bytes::from(sequence.to_string()));
        }
        // Both ends count the messages on the ORDERS route.
        let receiver_id = cluster.server_id(1)?;
        let sender_id = cluster.server_id(0)?;
        wait_until(
            "the ORDERS routes to count the messages",
            Duration::from_secs(5),
            POLL_INTERVAL,
            || {
                let out = cluster.routez(0).ok()?.routes.into_iter().find(|route| {
                    route.remote_id == receiver_id && route.account.as_deref() == Some("ORDERS")
                })?;
                let inbound = cluster.routez(1).ok()?.routes.into_iter().find(|route| {
                    route.remote_id == sender_id && route.account.as_deref() == Some("ORDERS")
                })?;
                (out.out_msgs >= COUNT as u64 && inbound.in_msgs >= COUNT as u64).then_some(())
            },
        )?;
        Ok(())
    });
}

/// `/routez` compression of every connection of member `index` to `peer`, once the pool is up.
fn compression_modes(
    cluster: &Cluster,
    index: usize,
    peer: usize,
    connections: usize,
) -> anyhow::Result<BTreeSet<Option<String>>> {
    let routez = wait_for_connections(cluster, index, peer, connections)?;
    let peer_id = cluster.server_id(peer)?;
    Ok(routez
        .routes
        .iter()
        .filter(|route| route.remote_id == peer_id)
        .map(|route| route.compression.clone())
        .collect())
}

/// A large payload that compresses well, sent both ways, arrives intact.
async fn assert_large_message_crosses(cluster: &Cluster) -> anyhow::Result<()> {
    let payload: Vec<u8> = (0..600 * 1024)
        .map(|offset: usize| b"route compression "[offset % 18])
        .collect();
    let payload = Bytes::from(payload);
    for (from, to) in [(0, 1), (1, 0)] {
        let publisher = connect(cluster.server(from)).await?;
        let subscriber = connect(cluster.server(to)).await?;
        let mut subscription = subscriber.subscribe("large.payload").await?;
        wait_for_interest(&subscriber, &publisher).await?;
        publisher.publish("large.payload", payload.clone()).await?;
        publisher.flush().await?;
        let message = tokio::time::timeout(Duration::from_secs(10), subscription.next())
            .await?
            .ok_or_else(|| anyhow::anyhow!("the subscription ended"))?;
        assert!(
            message.payload == payload,
            "node-{from} -> node-{to}: the large payload changed on the way ({} bytes arrived)",
            message.payload.len()
        );
    }
    Ok(())
}

#[test]
fn routes_compress_in_the_mode_both_sides_settle_on() {
    for_each_topology(|topology| async move {
        let kinds = first_two(topology.kinds());
        if kinds.contains(&ServerKind::NatsServer) {
            // A 2.9 peer announces no mode: Tern, asked to compress, does not.
            let Some(tern) = kinds.iter().position(|kind| *kind == ServerKind::Tern) else {
                eprintln!("=== {topology}: no Tern server beside nats-server 2.9");
                return Ok(());
            };
            let mut settings: [&[&str]; 2] = [&[], &[]];
            settings[tern] = &["compression: s2_fast"];
            let cluster = start_pair(kinds, settings, &[])?;
            let modes = compression_modes(&cluster, tern, 1 - tern, 1)?;
            assert_eq!(modes, BTreeSet::from([Some("not supported".to_string())]));
            assert_fanout_exactly_once(&cluster, PER_PUBLISHER).await?;
            return assert_large_message_crosses(&cluster).await;
        }
        let connections = DEFAULT_POOL_SIZE + 1;
        // (settings of node-0, of node-1, the mode node-0 shows, the mode node-1 shows)
        let cases: [(&[&str], &[&str], &str, &str); 3] = [
            (&["compression: s2_fast"], &[], "s2_fast", "s2_fast"),
            (&[], &["compression: s2_better"], "s2_better", "s2_better"),
            // On loopback s2_auto picks the uncompressed level; the accepting side answers
            // an `s2_auto` peer with s2_fast.
            (&["compression: s2_auto"], &[], "s2_uncompressed", "s2_fast"),
        ];
        for (first, second, first_shows, second_shows) in cases {
            let cluster = start_pair(kinds, [first, second], &[])?;
            for (index, peer, shows) in [(0, 1, first_shows), (1, 0, second_shows)] {
                let modes = compression_modes(&cluster, index, peer, connections)?;
                assert_eq!(
                    modes,
                    BTreeSet::from([Some(shows.to_string())]),
                    "node-{index} ({}) with {first:?} / {second:?}",
                    kinds[index]
                );
            }
            assert_fanout_exactly_once(&cluster, PER_PUBLISHER).await?;
            assert_large_message_crosses(&cluster).await?;
        }
        Ok(())
    });
}
