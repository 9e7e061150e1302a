//! How servers and clients find the cluster: gossip meshes a server that was given one seed,
//! and clients are told every server's client URL (`connect_urls`), in the first INFO and, for
//! protocol-1 clients, in an async INFO whenever a server joins or leaves.

use std::collections::BTreeSet;
use std::time::Duration;

use tern_e2e::{
    for_each_topology, wait_until, Cluster, Frame, RawClient, MESH_TIMEOUT, QUIET_CONNECT,
};

use crate::support::{connect, connect_urls, wait_for_info, wait_for_interest, POLL_INTERVAL};

/// A client that announces protocol 1 (dynamic reconfiguration: async INFO).
const PROTOCOL_1_CONNECT: &str = r#"{"verbose":false,"pedantic":false,"protocol":1}"#;
const INFO_TIMEOUT: Duration = Duration::from_secs(10);

#[test]
fn a_server_given_one_seed_meets_every_server() {
    for_each_topology(|topology| async move {
        let mut cluster = Cluster::start(&topology.kinds()[..2])?;
        // node-2 knows node-1 only, which is not the seed: node-1 must announce node-0 to it
        // (or node-2 to node-0).
        let third = cluster.join(topology.kind(2), &[1])?;
        cluster.wait_for_mesh(MESH_TIMEOUT)?;
        for index in 0..cluster.len() {
            let routez = cluster.routez(index)?;
            assert_eq!(routez.peers().len(), 2, "node-{index}: {routez:?}");
            assert!(
                routez.num_routes >= 2,
                "node-{index} counts {} routes for two peers",
                routez.num_routes
            );
        }
        // A message from a route is never forwarded to another route, so node-2 reaching
        // node-0 proves a direct route, both ways.
        let seed_client = connect(cluster.server(0)).await?;
        let third_client = connect(cluster.server(third)).await?;
        wait_for_interest(&seed_client, &third_client).await?;
        wait_for_interest(&third_client, &seed_client).await?;
        Ok(())
    });
}

#[test]
fn clients_are_told_every_server_in_connect_urls() {
    for_each_topology(|topology| async move {
        let cluster = Cluster::start(topology.kinds())?;
        let addresses: Vec<String> = cluster
            .client_addresses()
            .iter()
            .map(ToString::to_string)
            .collect();
        for index in 0..cluster.len() {
            let others: BTreeSet<String> = addresses
                .iter()
                .enumerate()
                .filter(|(other, _)| *other != index)
                .map(|(_, address)| address.clone())
                .collect();
            let mut last_seen = BTreeSet::new();
            // The mesh is complete; a server may still be merging its peers' URLs.
            let found = wait_until(
                "a client INFO naming the other servers",
                INFO_TIMEOUT,
                POLL_INTERVAL,
                || {
                    let info = RawClient::connect_to(cluster.server(index))
                        .and_then(|mut client| client.read_info())
                        .ok()?;
                    last_seen = connect_urls(&info);
                    last_seen.is_superset(&others).then_some(())
                },
            );
            found.map_err(|error| {
                anyhow::anyhow!(
                    "node-{index}: {error}; expected {others:?} in connect_urls, last saw {last_seen:?}"
                )
            })?;
        }

        // async-nats keeps what INFO told it: its server list grows to the whole cluster.
        let client = connect(cluster.server(0)).await?;
        let known: BTreeSet<String> = client.server_info().connect_urls.into_iter().collect();
        let expected: BTreeSet<String> = addresses[1..].iter().cloned().collect();
        assert!(
            known.is_superset(&expected),
            "async-nats was told {known:?}, expected {expected:?} among them"
        );
        Ok(())
    });
}

#[test]
fn protocol_1_clients_get_async_info_as_servers_join_and_leave() {
    for_each_topology(|topology| async move {
        let mut cluster = Cluster::start(&topology.kinds()[..1])?;
        let mut dynamic = RawClient::connected(cluster.server(0), PROTOCOL_1_CONNECT)?;
        let mut original = RawClient::connected(cluster.server(0), QUIET_CONNECT)?;
        let address =
            |cluster: &Cluster, index: usize| cluster.server(index).client_address().to_string();

        let second = cluster.join(topology.kind(1), &[0])?;
        let second_address = address(&cluster, second);
        wait_for_info(&mut dynamic, INFO_TIMEOUT, "the joining server", |info| {
            connect_urls(info).contains(&second_address)
        })?;

        let third = cluster.join(topology.kind(2), &[0])?;
        let third_address = address(&cluster, third);
        wait_for_info(&mut dynamic, INFO_TIMEOUT, "both joined servers", |info| {
            let urls = connect_urls(info);
            urls.contains(&second_address) && urls.contains(&third_address)
        })?;
        cluster.wait_for_mesh(MESH_TIMEOUT)?;

        // A protocol-0 client never gets an INFO after the first.
        let frames = original.frames_until_pong()?;
        assert!(
            !frames.iter().any(|frame| matches!(frame, Frame::Info(_))),
            "a protocol-0 client was sent {frames:?}"
        );

        cluster.kill(second)?;
        wait_for_info(
            &mut dynamic,
            INFO_TIMEOUT,
            "the killed server withdrawn",
            |info| {
                let urls = connect_urls(info);
                !urls.contains(&second_address) && urls.contains(&third_address)
            },
        )?;
        let frames = original.frames_until_pong()?;
        assert!(
            !frames.iter().any(|frame| matches!(frame, Frame::Info(_))),
            "a protocol-0 client was sent {frames:?}"
        );
        Ok(())
    });
}
