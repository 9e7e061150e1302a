//! Interest across routes: a subscription withdrawn on one server stops the traffic other
//! servers send it (seen in `/routez` counters and subscription lists), and a request whose only
//! responder left fails at once with no responders.

use std::time::Duration;

use async_nats::{Client, RequestErrorKind, Subscriber};
use bytes::Bytes;
use futures::StreamExt;
use tern_e2e::{for_each_topology, wait_until, Cluster, RouteTotals};

use crate::support::{
    collect, connect, ids, publish_ids, wait_for_interest, POLL_INTERVAL, RECEIVE_TIMEOUT,
};

/// Messages published in each phase.
const BATCH: usize = 200;
/// Messages other than the test's that may cross the route during one phase (`$SYS`
/// advisories and statistics): far fewer than [`BATCH`], so the bound still catches a route
/// that keeps carrying the withdrawn subject.
const UNRELATED_MESSAGE_ALLOWANCE: u64 = 20;
const COUNTER_TIMEOUT: Duration = Duration::from_secs(5);

/// Publishes `payload` on `subject` from `client` and waits until `receiver` gets it: everything
/// `client`'s server received from it before, and routed to the receiver's server, has been
/// handled there.
async fn fence(
    client: &Client,
    subject: &str,
    receiver: &mut Subscriber,
    payload: &'static str,
) -> anyhow::Result<()> {
    client
        .publish(subject.to_string(), Bytes::from_static(payload.as_bytes()))
        .await?;
    client.flush().await?;
    loop {
        match tokio::time::timeout(RECEIVE_TIMEOUT, receiver.next()).await {
            Ok(Some(message)) if message.payload.as_ref() == payload.as_bytes() => return Ok(()),
            Ok(Some(_)) => {}
            Ok(None) => anyhow::bail!("the fence subscription on {subject} ended"),
            Err(_) => anyhow::bail!("the fence {payload:?} on {subject} did not arrive"),
        }
    }
}

/// What node-0 reports about its routes towards node-1 (whose id is `remote_id`).
fn towards(cluster: &Cluster, remote_id: &str) -> anyhow::Result<RouteTotals> {
    Ok(cluster.routez(0)?.towards(remote_id))
}

#[test]
fn unsubscribe_stops_traffic_towards_that_server() {
    for_each_topology(|topology| async move {
        let cluster = Cluster::start(topology.kinds())?;
        let publisher = connect(cluster.server(0)).await?;
        let subscriber = connect(cluster.server(1)).await?;
        let mut events = [subscriber.subscribe("interest.events").await?];
        let mut fence_at_subscriber = subscriber.subscribe("interest.fence").await?;
        let mut fence_at_publisher = publisher.subscribe("interest.withdrawn").await?;
        wait_for_interest(&subscriber, &publisher).await?;
        wait_for_interest(&publisher, &subscriber).await?;
        let subscriber_server_id = cluster.server_id(1)?;

        let before = towards(&cluster, &subscriber_server_id)?;
        assert!(
            before.subjects.contains("interest.events"),
            "node-0's /routez does not list node-1's interest in interest.events: {:?}",
            before.subjects
        );
        let sent = ids("while-subscribed", BATCH);
        publish_ids(&publisher, "interest.events", &sent).await?;
        let expected = sent.iter().cloned().collect();
        let received = collect(&mut events, |tallies| tallies[0].has_all(&expected)).await;
        received[0].assert_exactly_once(&expected, "the subscriber on node-1")?;
        let mut last = before.out_msgs;
        wait_until(
            "node-0's out_msgs towards node-1 to count the batch",
            COUNTER_TIMEOUT,
            POLL_INTERVAL,
            || {
                last = towards(&cluster, &subscriber_server_id).ok()?.out_msgs;
                (last >= before.out_msgs + BATCH as u64).then_some(())
            },
        )
        .map_err(|error| {
            anyhow::anyhow!(
                "{error}: out_msgs went from {} to {last} for {BATCH} messages",
                before.out_msgs
            )
        })?;

        let [mut events] = events;
        events.unsubscribe().await?;
        // node-1 sends the withdrawal before this message on the same route.
        fence(
            &subscriber,
            "interest.withdrawn",
            &mut fence_at_publisher,
            "unsubscribed",
        )
        .await?;
        let withdrawn = towards(&cluster, &subscriber_server_id)?;
        assert!(
            !withdrawn.subjects.contains("interest.events"),
            "node-0's /routez still lists node-1's interest in interest.events after UNSUB"
        );

        publish_ids(
            &publisher,
            "interest.events",
            &ids("after-unsubscribe", BATCH),
        )
        .await?;
        // node-0 handles the batch before this fence, which node-1 still wants.
        fence(
            &publisher,
            "interest.fence",
            &mut fence_at_subscriber,
            "published",
        )
        .await?;
        let after = towards(&cluster, &subscriber_server_id)?;
        let grew = after.out_msgs - withdrawn.out_msgs;
        assert!(
            grew <= 1 + UNRELATED_MESSAGE_ALLOWANCE,
            "node-0 sent node-1 {grew} messages while publishing {BATCH} on a subject node-1 \
             withdrew (and one fence)"
        );
        Ok(())
    });
}

#[test]
fn request_fails_with_no_responders_once_the_remote_responder_unsubscribes() {
    for_each_topology(|topology| async move {
        let cluster = Cluster::start(topology.kinds())?;
        let requester = connect(cluster.server(0)).await?;
        let responder = connect(cluster.server(2)).await?;
        let mut requests = responder.subscribe("service.time").await?;
        let mut fence_at_requester = requester.subscribe("service.left").await?;
        wait_for_interest(&responder, &requester).await?;
        wait_for_interest(&requester, &responder).await?;

        let answered = tokio::spawn({
            let responder = responder.clone();
            async move {
                let request = requests.next().await?;
                responder
                    .publish(request.reply?, Bytes::from_static(b"noon"))
                    .await
                    .ok()?;
                responder.flush().await.ok()?;
                Some(requests)
            }
        });
        let response = tokio::time::timeout(
            RECEIVE_TIMEOUT,
            requester.request("service.time", Bytes::from_static(b"?")),
        )
        .await??;
        assert_eq!(response.payload.as_ref(), b"noon");
        let mut requests = tokio::time::timeout(RECEIVE_TIMEOUT, answered)
            .await??
            .ok_or_else(|| anyhow::anyhow!("the responder saw no request"))?;

        requests.unsubscribe().await?;
        fence(&responder, "service.left", &mut fence_at_requester, "gone").await?;
        let result = tokio::time::timeout(
            RECEIVE_TIMEOUT,
            requester.request("service.time", Bytes::from_static(b"?")),
        )
        .await?;
        let error = result.expect_err("nobody subscribes to service.time any more");
        assert_eq!(error.kind(), RequestErrorKind::NoResponders, "{error}");
        Ok(())
    });
}
