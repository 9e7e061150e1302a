//! Lame duck mode announced to the cluster: a server told SIGUSR2 tells its routes, and the
//! other servers withdraw its client URL from the `connect_urls` they push to protocol-1
//! clients while its routes are still up (nats-server route.go processRouteInfo, `ldm`).

use std::collections::BTreeSet;
use std::time::Duration;

use tern_e2e::{for_each_topology, MemberSetup, RawClient, Signal, QUIET_CONNECT};

use crate::support::{connect_urls, wait_for_info, PROTOCOL_1_CONNECT};

const INFO_TIMEOUT: Duration = Duration::from_secs(10);
/// The server put in lame duck mode.
const LAME_DUCK: usize = 0;
/// Clients kept on the lame duck server: a server without clients shuts down as soon as it
/// enters lame duck mode; with these it waits the grace period, then closes one about every
/// second, so its routes outlive the announcement by a few seconds.
const LAME_DUCK_CLIENTS: usize = 4;

#[test]
fn a_lame_duck_server_is_withdrawn_from_other_servers_connect_urls_while_still_routed() {
    for_each_topology(|topology| async move {
        let members = MemberSetup::default()
            .with_config_line("lame_duck_duration: \"30s\"")
            .with_config_line("lame_duck_grace_period: \"1s\"");
        let cluster = members.start_cluster(topology.kinds())?;
        let address = |index: usize| cluster.server(index).client_address().to_string();
        let lame_duck_address = address(LAME_DUCK);
        let lame_duck_id = cluster.server_id(LAME_DUCK)?;

        let _kept_on_the_lame_duck = (0..LAME_DUCK_CLIENTS)
            .map(|_| RawClient::connected(cluster.server(LAME_DUCK), QUIET_CONNECT))
            .collect::<Result<Vec<_>, _>>()?;
        let everyone: BTreeSet<String> = (0..cluster.len()).map(address).collect();
        let mut watchers = Vec::new();
        for index in (0..cluster.len()).filter(|&index| index != LAME_DUCK) {
            let mut watcher = RawClient::connect_to(cluster.server(index))?;
            let info = watcher.handshake(PROTOCOL_1_CONNECT)?;
            // The mesh is complete; the server may still be merging its peers' URLs.
            if !connect_urls(&info).is_superset(&everyone) {
                wait_for_info(&mut watcher, INFO_TIMEOUT, "every server's URL", |info| {
                    connect_urls(info).is_superset(&everyone)
                })?;
            }
            watchers.push((index, watcher));
        }

        cluster.server(LAME_DUCK).signal(Signal::User2)?;
        for (index, watcher) in &mut watchers {
            let others: BTreeSet<String> = (0..cluster.len())
                .filter(|&other| other != LAME_DUCK)
                .map(address)
                .collect();
            let info = wait_for_info(
                watcher,
                INFO_TIMEOUT,
                "the lame duck server withdrawn",
                |info| {
                    let urls = connect_urls(info);
                    !urls.contains(&lame_duck_address) && urls.is_superset(&others)
                },
            )
            .map_err(|error| anyhow::anyhow!("a protocol-1 client of node-{index}: {error}"))?;
            // Withdrawn because it was announced, not because its route closed.
            let routez = cluster.routez(*index)?;
            anyhow::ensure!(
                routez.peers().contains(&lame_duck_id),
                "node-{index} ({}) sent {info} only after its route to the lame duck server \
                 closed: no announcement was acted on (routes now: {:?})",
                cluster.server(*index).kind(),
                routez.routes
            );
        }
        Ok(())
    });
}
