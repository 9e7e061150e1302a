//! Messages across routes: a subscriber anywhere gets every message published anywhere exactly
//! once (one hop, one copy per server however many local subscriptions match), and a queue
//! group gets each message once cluster-wide, its members on every server sharing the work.

use std::collections::BTreeSet;

use futures::future::try_join_all;
use tern_e2e::{for_each_topology, wait_until, Cluster, RouteLayout, MESH_TIMEOUT};

use crate::support::{
    assert_fanout_exactly_once, collect, connect, ids, publish_ids, wait_for_interest,
    wait_for_interest_everywhere, Tally, POLL_INTERVAL,
};

/// Messages each publisher sends.
const PER_PUBLISHER: usize = 100;

#[test]
fn subscribers_on_every_server_get_every_message_exactly_once() {
    for_each_topology(|topology| async move {
        let cluster = Cluster::start(topology.kinds())?;
        assert_fanout_exactly_once(&cluster, PER_PUBLISHER).await
    });
}

#[test]
fn a_configured_full_mesh_settles_without_duplicate_routes() {
    for_each_topology(|topology| async move {
        // Each server is configured with routes to all earlier ones, and gossip announces the
        // same servers: both sides may dial each other, and one of the two routes must go.
        let cluster =
            Cluster::start_with_layout(topology.kinds(), RouteLayout::EveryEarlierServer)?;
        let mut last_seen = String::new();
        let settled = wait_until(
            "both ends of every route to count the same connections",
            MESH_TIMEOUT,
            POLL_INTERVAL,
            || match route_connection_counts(&cluster) {
                Ok(counts) => {
                    last_seen = format!("{counts:?}");
                    let symmetric = counts
                        .iter()
                        .all(|&(from, to, here)| counts.contains(&(to, from, here)));
                    symmetric.then_some(())
                }
                Err(error) => {
                    last_seen = error.to_string();
                    None
                }
            },
        );
        // Pooled (2.10+) peers keep several connections to each other; both ends count them.
        settled.map_err(|error| {
            anyhow::anyhow!("{error}; (from, to, connections) last seen: {last_seen}")
        })?;
        assert_fanout_exactly_once(&cluster, PER_PUBLISHER / 5).await
    });
}

/// `(from, to, route connections from → to)` for every ordered pair of members.
fn route_connection_counts(cluster: &Cluster) -> anyhow::Result<Vec<(usize, usize, usize)>> {
    let views = (0..cluster.len())
        .map(|index| cluster.routez(index))
        .collect::<Result<Vec<_>, _>>()?;
    let mut counts = Vec::new();
    for (from, view) in views.iter().enumerate() {
        for (to, peer) in views.iter().enumerate().filter(|(to, _)| *to != from) {
            counts.push((from, to, view.towards(&peer.server_id).connections));
        }
    }
    Ok(counts)
}

#[test]
fn queue_group_delivers_each_message_once_across_the_cluster() {
    for_each_topology(|topology| async move {
        let cluster = Cluster::start(topology.kinds())?;
        // No member on node-0, where the messages are published: each must cross a route.
        let publisher = connect(cluster.server(0)).await?;
        let member_clients = [
            connect(cluster.server(1)).await?,
            connect(cluster.server(2)).await?,
            connect(cluster.server(2)).await?,
        ];
        let member_servers = [1, 2, 2];
        let mut members = Vec::new();
        for client in &member_clients {
            members.push(
                client
                    .queue_subscribe("jobs", "workers".to_string())
                    .await?,
            );
        }
        let observer_client = connect(cluster.server(1)).await?;
        let mut observer = [observer_client.subscribe("jobs").await?];
        for client in member_clients.iter().chain([&observer_client]) {
            wait_for_interest(client, &publisher).await?;
        }

        let sent = ids("job", 2 * PER_PUBLISHER);
        let expected: BTreeSet<String> = sent.iter().cloned().collect();
        publish_ids(&publisher, "jobs", &sent).await?;

        let tallies = collect(&mut members, |tallies| union_has_all(tallies, &expected)).await;
        union(&tallies).assert_exactly_once(&expected, "the queue group as a whole")?;
        for server in [1, 2] {
            let received: usize = tallies
                .iter()
                .zip(member_servers)
                .filter(|(_, member_server)| *member_server == server)
                .map(|(tally, _)| tally.total())
                .sum();
            assert!(
                received > 0,
                "members on node-{server} got none of {} messages: the group is not spread",
                sent.len()
            );
        }
        // A plain subscription on the same subject is not part of the group: it gets all.
        let observed = collect(&mut observer, |tallies| tallies[0].has_all(&expected)).await;
        observed[0].assert_exactly_once(&expected, "the plain subscriber on node-1")?;
        Ok(())
    });
}

#[test]
fn queue_group_members_on_every_server_share_messages_published_everywhere() {
    for_each_topology(|topology| async move {
        let cluster = Cluster::start(topology.kinds())?;
        let clients = try_join_all(cluster.servers().iter().map(connect)).await?;
        let mut members = Vec::new();
        for client in &clients {
            members.push(
                client
                    .queue_subscribe("tasks", "workers".to_string())
                    .await?,
            );
        }
        wait_for_interest_everywhere(&clients).await?;

        let mut expected = BTreeSet::new();
        for (index, client) in clients.iter().enumerate() {
            let sent = ids(&format!("from-node-{index}"), PER_PUBLISHER);
            publish_ids(client, "tasks", &sent).await?;
            expected.extend(sent);
        }
        let tallies = collect(&mut members, |tallies| union_has_all(tallies, &expected)).await;
        union(&tallies).assert_exactly_once(&expected, "the queue group as a whole")?;
        // nats-server picks among local and remote members alike (a remote server weighs as
        // many members as it has), so with one member per server each gets a share; a server
        // that kept everything for its own member would also give each member some.
        for (index, tally) in tallies.iter().enumerate() {
            assert!(
                tally.total() > 0,
                "the member on node-{index} got none of {} messages",
                expected.len()
            );
        }
        Ok(())
    });
}

fn union(tallies: &[Tally]) -> Tally {
    let mut union = Tally::default();
    for tally in tallies {
        for (id, count) in tally.counts() {
            for _ in 0..count {
                union.record(id.as_bytes());
            }
        }
    }
    union
}

fn union_has_all(tallies: &[Tally], expected: &BTreeSet<String>) -> bool {
    let received: BTreeSet<&str> = tallies.iter().flat_map(Tally::ids).collect();
    expected.iter().all(|id| received.contains(id.as_str()))
}
