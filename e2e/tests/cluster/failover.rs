//! A server killed with SIGKILL while messages flow: its clients fail over to servers they
//! learnt from `connect_urls`, the restarted server rejoins the mesh on its old ports, and
//! subscribers that stayed connected lose nothing and see nothing twice.

use std::collections::BTreeSet;
use std::time::Duration;

use async_nats::connection::State;
use bytes::Bytes;
use tern_e2e::{for_each_topology, Cluster, MESH_TIMEOUT};
use tokio::sync::watch;

use crate::support::{
    connect, eventually, ids, wait_for_interest, Recorder, LATE_MESSAGE_WINDOW, RECEIVE_TIMEOUT,
};

/// The server that is killed: the seed, so the others' configured routes must reconnect to it.
const VICTIM: usize = 0;
/// Time between two published messages.
const PUBLISH_PERIOD: Duration = Duration::from_millis(2);
/// Upper bound on messages published, whatever happens.
const MAX_PUBLISHED: usize = 20_000;
/// Messages a subscriber must receive to count as "receiving" at some step.
const PROGRESS: usize = 20;
const RECONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[test]
fn killed_server_rejoins_while_its_clients_fail_over_without_duplicates() {
    for_each_topology(|topology| async move {
        let mut cluster = Cluster::start(topology.kinds())?;
        let surviving_ports: BTreeSet<u16> = [1, 2]
            .map(|index| cluster.server(index).client_address().port())
            .into();
        let publisher = connect(cluster.server(1)).await?;
        let stayers = [
            connect(cluster.server(1)).await?,
            connect(cluster.server(2)).await?,
        ];
        // Given the victim's URL only: the rest it must learn from INFO.
        let failing_over = connect(cluster.server(VICTIM)).await?;
        let told: BTreeSet<u16> = failing_over
            .server_info()
            .connect_urls
            .iter()
            .filter_map(|url| url.rsplit(':').next()?.parse().ok())
            .collect();
        anyhow::ensure!(
            told.is_superset(&surviving_ports),
            "the victim's INFO named {told:?}, not the other servers {surviving_ports:?}"
        );

        let mut recorders = Vec::new();
        for client in stayers.iter().chain([&failing_over]) {
            recorders.push(Recorder::start(client.subscribe("failover.events").await?));
            wait_for_interest(client, &publisher).await?;
        }
        let [stayer_on_1, stayer_on_2, failed_over] =
            <[Recorder; 3]>::try_from(recorders).map_err(|_| anyhow::anyhow!("three recorders"))?;

        let (stop, stopped) = watch::channel(false);
        let publishing = tokio::spawn(publish_until_stopped(publisher.clone(), stopped));
        eventually("every subscriber to receive", RECEIVE_TIMEOUT, || {
            [&stayer_on_1, &stayer_on_2, &failed_over]
                .iter()
                .all(|recorder| recorder.snapshot().total() >= PROGRESS)
        })
        .await?;

        cluster.kill(VICTIM)?;
        eventually(
            "the victim's client to reconnect to another server",
            RECONNECT_TIMEOUT,
            || {
                failing_over.connection_state() == State::Connected
                    && surviving_ports.contains(&failing_over.server_info().port)
            },
        )
        .await?;
        let at_reconnect = failed_over.snapshot().total();
        eventually(
            "messages to reach the victim's client through its new server",
            RECEIVE_TIMEOUT,
            || failed_over.snapshot().total() >= at_reconnect + PROGRESS,
        )
        .await?;

        cluster.restart(VICTIM)?;
        cluster.wait_for_mesh(MESH_TIMEOUT)?;
        let rejoined = connect(cluster.server(VICTIM)).await?;
        let _rejoined_subscription = rejoined.subscribe("failover.events").await?;
        wait_for_interest(&rejoined, &publisher).await?;
        wait_for_interest(&stayers[1], &rejoined).await?;

        stop.send(true)?;
        let sent = tokio::time::timeout(RECEIVE_TIMEOUT, publishing).await???;
        let expected: BTreeSet<String> = ids("event", sent).into_iter().collect();
        let complete = eventually(
            "the subscribers that stayed connected to receive every message",
            RECEIVE_TIMEOUT,
            || {
                stayer_on_1.snapshot().has_all(&expected)
                    && stayer_on_2.snapshot().has_all(&expected)
            },
        )
        .await;
        // When incomplete, the assertions below name what is missing.
        if complete.is_ok() {
            // Duplicates that trail the originals would arrive within this window.
            tokio::time::sleep(LATE_MESSAGE_WINDOW).await;
        }
        stayer_on_1
            .snapshot()
            .assert_exactly_once(&expected, "the subscriber on node-1")?;
        stayer_on_2
            .snapshot()
            .assert_exactly_once(&expected, "the subscriber on node-2")?;
        failed_over
            .snapshot()
            .assert_no_duplicates("the client that failed over")?;
        Ok(())
    });
}

/// Publishes `event-0`, `event-1`, ... every [`PUBLISH_PERIOD`] until told to stop; returns
/// how many it published.
async fn publish_until_stopped(
    publisher: async_nats::Client,
    stopped: watch::Receiver<bool>,
) -> anyhow::Result<usize> {
    let mut ticker = tokio::time::interval(PUBLISH_PERIOD);
    let mut sent = 0;
    while !*stopped.borrow() && sent < MAX_PUBLISHED {
        ticker.tick().await;
        publisher
            .publish("failover.events", Bytes::from(format!("event-{sent}")))
            .await?;
        sent += 1;
    }
    publisher.flush().await?;
    Ok(sent)
}
