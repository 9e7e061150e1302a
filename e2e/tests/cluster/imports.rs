//! Account imports across a route: a stream the exporter publishes on one server reaches the
//! importer's subscribers on both servers exactly once, and a request made through a service
//! import on one server is answered by the exporter's responder on the other. Runs on the
//! first two servers of each topology, so Tern shares accounts with nats-server too.

use std::collections::BTreeSet;
use std::time::Duration;

use async_nats::Client;
use bytes::Bytes;
use tern_e2e::{for_each_topology, ClusterBlock, MemberSetup, ServerProcess, CLUSTER_NAME};
use tokio::time::Instant;

use crate::support::{collect, ids, publish_ids, wait_for_interest, POLL_INTERVAL};

const ACCOUNTS: &str = r#"accounts {
  SHOP: {
    users: [ {user: shop, password: s} ]
    exports: [ {stream: "orders.>"}, {service: "stock.check"} ]
  }
  AUDIT: {
    users: [ {user: audit, password: a} ]
    imports: [
      {stream: {account: SHOP, subject: "orders.>"}, prefix: "shop"}
      {service: {account: SHOP, subject: "stock.check"}, to: "shop.stock"}
    ]
  }
}"#;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

async fn connect_as(server: &ServerProcess, user: &str, password: &str) -> anyhow::Result<Client> {
    Ok(
        async_nats::ConnectOptions::with_user_and_password(user.into(), password.into())
            .connection_timeout(Duration::from_secs(5))
            .connect(server.client_url())
            .await?,
    )
}

#[test]
fn streams_and_services_cross_the_route_once() {
    for_each_topology(|topology| async move {
        let setup = MemberSetup::new(ClusterBlock::new(CLUSTER_NAME)).with_config_line(ACCOUNTS);
        let cluster = setup.start_cluster(&topology.kinds()[..2])?;

        // The stream: published in SHOP on node-0, read in AUDIT on both servers.
        let publisher = connect_as(cluster.server(0), "shop", "s").await?;
        let mut subscriptions = Vec::new();
        for index in 0..2 {
            let audit = connect_as(cluster.server(index), "audit", "a").await?;
            subscriptions.push(audit.subscribe("shop.orders.>").await?);
            audit.flush().await?;
            // A probe in SHOP proves node-0 knows node-1's import interest.
            let shop_here = connect_as(cluster.server(index), "shop", "s").await?;
            wait_for_interest(&shop_here, &publisher).await?;
        }
        let sent = ids("order", 40);
        publish_ids(&publisher, "orders.created", &sent).await?;
        let expected: BTreeSet<String> = sent.iter().cloned().collect();
        let tallies = collect(&mut subscriptions, |tallies| {
            tallies.iter().all(|tally| tally.has_all(&expected))
        })
        .await;
        for (index, tally) in tallies.iter().enumerate() {
            tally.assert_exactly_once(&expected, &format!("AUDIT on node-{index}"))?;
        }

        // The service: the responder in SHOP on node-0, the requester in AUDIT on node-1.
        let responder = connect_as(cluster.server(0), "shop", "s").await?;
        let mut requests = responder.subscribe("stock.check").await?;
        responder.flush().await?;
        tokio::spawn(async move {
            use futures::StreamExt;
            while let Some(request) = requests.next().await {
                if let Some(reply) = request.reply {
                    let mut answer = b"in stock: ".to_vec();
                    answer.extend_from_slice(&request.payload);
                    let _ = responder.publish(reply, Bytes::from(answer)).await;
                }
            }
        });
        let requester = connect_as(cluster.server(1), "audit", "a").await?;
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        let answer = loop {
            match requester
                .request("shop.stock", Bytes::from_static(b"sku-1"))
                .await
            {
                Ok(answer) => break answer,
                // The responder's interest may not have crossed yet.
                Err(error) if Instant::now() < deadline => {
                    eprintln!("request not answered yet: {error}");
                    tokio::time::sleep(POLL_INTERVAL).await;
                }
                Err(error) => anyhow::bail!("no answer through the service import: {error}"),
            }
        };
        assert_eq!(&answer.payload[..], b"in stock: sku-1");
        Ok(())
    });
}
