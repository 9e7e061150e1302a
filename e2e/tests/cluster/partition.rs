//! Routes broken underneath running servers (their sockets destroyed with `ss -K`, as a network
//! fault would) come back by themselves: configured and gossiped routes alike reconnect, the
//! mesh heals, and messages again reach every server exactly once.

use tern_e2e::{for_each_topology, wait_until, Cluster, Connection, MESH_TIMEOUT};

use crate::support::{assert_fanout_exactly_once, POLL_INTERVAL};

/// Messages each server publishes once the mesh has healed.
const PER_PUBLISHER: usize = 50;

#[test]
fn closed_routes_reconnect_and_the_mesh_heals_without_manual_steps() {
    for_each_topology(|topology| async move {
        let cluster = Cluster::start(topology.kinds())?;
        // node-1 has a configured route to the seed (node-0) and a gossiped one to node-2.
        let isolated = 1;
        let mut closed: Vec<(usize, Vec<Connection>)> = Vec::new();
        for peer in [0, 2] {
            let connections = cluster.close_routes(isolated, peer)?;
            anyhow::ensure!(
                !connections.is_empty(),
                "node-{isolated} and node-{peer} had no connection to close"
            );
            closed.push((peer, connections));
        }

        let mut last_seen = String::new();
        let reconnected = wait_until(
            "node-1 to open new routes to node-0 and node-2",
            MESH_TIMEOUT,
            POLL_INTERVAL,
            || {
                let mut views = Vec::new();
                let mut all_new = true;
                for (peer, old) in &closed {
                    let now = cluster.route_connections(isolated, *peer).ok()?;
                    all_new &=
                        !now.is_empty() && now.iter().all(|connection| !old.contains(connection));
                    views.push(format!("node-{peer}: {now:?}"));
                }
                last_seen = views.join("; ");
                all_new.then_some(())
            },
        );
        reconnected.map_err(|error| {
            anyhow::anyhow!("{error}; closed {closed:?}, connections now: {last_seen}")
        })?;
        cluster.wait_for_mesh(MESH_TIMEOUT)?;
        assert_fanout_exactly_once(&cluster, PER_PUBLISHER).await
    });
}
