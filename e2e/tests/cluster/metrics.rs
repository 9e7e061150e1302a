//! Route metrics (Tern's own): `/metrics` of a Tern server in a three-server cluster counts
//! its route connections as `/routez` does (pool members and dedicated account routes
//! included), names the two peers by their server names, and counts the messages sent over each as
//! traffic crosses it. Runs in every topology with a Tern server, on each Tern server.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::future::try_join_all;
use tern_e2e::{for_each_topology, http_get, wait_until, Cluster, ServerKind};

use crate::support::{collect, connect, ids, publish_ids, wait_for_interest, POLL_INTERVAL};

/// Messages published from the Tern server in each round.
const BATCH: u64 = 100;
const METRICS_TIMEOUT: Duration = Duration::from_secs(5);

/// The samples of `/metrics` (Prometheus text) of member `index`, keyed by series
/// (`name` or `name{labels}`, as written).
fn metrics(cluster: &Cluster, index: usize) -> anyhow::Result<BTreeMap<String, f64>> {
    let address = cluster
        .server(index)
        .monitoring_address()
        .ok_or_else(|| anyhow::anyhow!("node-{index} has no monitoring"))?;
    let response = http_get(address, "/metrics")?;
    anyhow::ensure!(
        response.status == 200,
        "GET /metrics of node-{index} answered {}: {}",
        response.status,
        response.body
    );
    let mut samples = BTreeMap::new();
    for line in response.body.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .ok_or_else(|| anyhow::anyhow!("a /metrics line without a value: {line:?}"))?;
        let value: f64 = value
            .parse()
            .map_err(|error| anyhow::anyhow!("the value of {line:?}: {error}"))?;
        samples.insert(series.to_string(), value);
    }
    Ok(samples)
}

/// `tern_route_out_messages` per `remote_name`.
fn route_out_messages(samples: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    samples
        .iter()
        .filter_map(|(series, value)| {
            let labels = series
                .strip_prefix("tern_route_out_messages{")?
                .strip_suffix('}')?;
            let name = labels
                .split(',')
                .find_map(|label| label.strip_prefix("remote_name=\""))?
                .strip_suffix('"')?;
            Some((name.to_string(), *value))
        })
        .collect()
}

#[test]
fn tern_route_metrics_count_routes_and_messages_sent_to_each_peer() {
    for_each_topology(|topology| async move {
        if !topology.kinds().contains(&ServerKind::Tern) {
            eprintln!("=== nothing to check in {topology}: /metrics is Tern's own");
            return Ok(());
        }
        let cluster = Cluster::start(topology.kinds())?;
        let clients = try_join_all(cluster.servers().iter().map(connect)).await?;
        for (index, server) in cluster.servers().iter().enumerate() {
            if server.kind() != ServerKind::Tern {
                continue;
            }
            let subject = format!("metrics.from.node-{index}");
            let peers: BTreeSet<usize> = (0..cluster.len()).filter(|&peer| peer != index).collect();
            let mut subscriptions = Vec::new();
            for &peer in &peers {
                subscriptions.push(clients[peer].subscribe(subject.clone()).await?);
                wait_for_interest(&clients[peer], &clients[index]).await?;
            }
            let peer_names: BTreeSet<String> =
                peers.iter().map(|peer| format!("node-{peer}")).collect();

            // Pool members may still be connecting: wait until both views agree.
            let mut counts = (None, 0);
            wait_until(
                "tern_routes to count the connections /routez lists",
                METRICS_TIMEOUT,
                POLL_INTERVAL,
                || {
                    let routez = cluster.routez(index).ok()?;
                    let samples = metrics(&cluster, index).ok()?;
                    counts = (samples.get("tern_routes").copied(), routez.num_routes);
                    (routez.peers().len() == 2 && counts.0 == Some(routez.num_routes as f64))
                        .then_some(())
                },
            )
            .map_err(|error| {
                anyhow::anyhow!("node-{index}: {error}; tern_routes and num_routes: {counts:?}")
            })?;
            let before = metrics(&cluster, index)?;
            let out_before = route_out_messages(&before);
            assert_eq!(
                out_before.keys().cloned().collect::<BTreeSet<_>>(),
                peer_names,
                "node-{index}: remote_name labels of tern_route_out_messages"
            );

            let sent = ids(&format!("metrics-{index}"), BATCH as usize);
            publish_ids(&clients[index], &subject, &sent).await?;
            let expected = sent.iter().cloned().collect();
            let tallies = collect(&mut subscriptions, |tallies| {
                tallies.iter().all(|tally| tally.has_all(&expected))
            })
            .await;
            for tally in &tallies {
                tally.assert_exactly_once(&expected, &format!("a subscriber of {subject}"))?;
            }

            let mut last = BTreeMap::new();
            wait_until(
                "tern_route_out_messages to count the batch towards each peer",
                METRICS_TIMEOUT,
                POLL_INTERVAL,
                || {
                    last = route_out_messages(&metrics(&cluster, index).ok()?);
                    peer_names
                        .iter()
                        .all(|name| {
                            let before = out_before.get(name).copied().unwrap_or_default();
                            let now = last.get(name).copied().unwrap_or_default();
                            now >= before + BATCH as f64
                        })
                        .then_some(())
                },
            )
            .map_err(|error| {
                anyhow::anyhow!(
                    "node-{index}: {error}; tern_route_out_messages went from {out_before:?} to \
                     {last:?} for {BATCH} messages to each peer"
                )
            })?;
        }
        Ok(())
    });
}
