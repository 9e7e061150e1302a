//! `cluster { no_advertise: true }`: servers neither announce their client URLs to their routes
//! nor pass their peers' URLs to clients, so clients are told of no other server, neither in
//! the first INFO nor in an async INFO as servers join.

use std::collections::BTreeSet;

use futures::future::try_join_all;
use tern_e2e::{
    for_each_topology, ClusterBlock, Frame, MemberSetup, RawClient, CLUSTER_NAME, MESH_TIMEOUT,
};

use crate::support::{connect, connect_urls, wait_for_interest_everywhere, PROTOCOL_1_CONNECT};

#[test]
fn with_no_advertise_clients_are_told_of_no_other_server() {
    for_each_topology(|topology| async move {
        let members =
            MemberSetup::new(ClusterBlock::new(CLUSTER_NAME).with_setting("no_advertise: true"));
        let mut cluster = members.start_cluster(&topology.kinds()[..1])?;
        // Connected before the others join: it would get an async INFO naming them.
        let mut early = RawClient::connected(cluster.server(0), PROTOCOL_1_CONNECT)?;
        members.join(&mut cluster, topology.kind(1), &[0])?;
        members.join(&mut cluster, topology.kind(2), &[0])?;
        cluster.wait_for_mesh(MESH_TIMEOUT)?;
        // Interest crosses every route both ways: every server has registered every route,
        // which is when the URLs of connect_urls would be merged.
        let clients = try_join_all(cluster.servers().iter().map(connect)).await?;
        wait_for_interest_everywhere(&clients).await?;

        let addresses: Vec<String> = cluster
            .client_addresses()
            .iter()
            .map(ToString::to_string)
            .collect();
        let others = |index: usize| -> BTreeSet<String> {
            addresses
                .iter()
                .enumerate()
                .filter(|(other, _)| *other != index)
                .map(|(_, address)| address.clone())
                .collect()
        };
        for (index, (server, client)) in cluster.servers().iter().zip(&clients).enumerate() {
            let info = RawClient::connect_to(server)?.read_info()?;
            let told: Vec<String> = connect_urls(&info)
                .intersection(&others(index))
                .cloned()
                .collect();
            anyhow::ensure!(
                told.is_empty(),
                "node-{index} ({}) told a new client of {told:?}: {info}",
                server.kind()
            );
            let known: BTreeSet<String> = client.server_info().connect_urls.into_iter().collect();
            let told: Vec<String> = known.intersection(&others(index)).cloned().collect();
            anyhow::ensure!(
                told.is_empty(),
                "node-{index} ({}) told async-nats of {told:?}",
                server.kind()
            );
        }
        for frame in early.frames_until_pong()? {
            if let Frame::Info(info) = frame {
                let told: Vec<String> = connect_urls(&info)
                    .intersection(&others(0))
                    .cloned()
                    .collect();
                anyhow::ensure!(
                    told.is_empty(),
                    "node-0 ({}) sent a protocol-1 client an async INFO naming {told:?}: {info}",
                    cluster.server(0).kind()
                );
            }
        }
        Ok(())
    });
}
