//! Cluster names: a server configured with another cluster's name gets no route (a route
//! CONNECT naming another cluster is answered with `-ERR 'Rejecting connection, cluster name
//! ...'`), and a server without a name (a dynamic one) joins a named cluster and takes its name.

use std::time::Duration;

use tern_e2e::{
    for_each_topology, wait_until, Cluster, ClusterBlock, MemberSetup, ServerProcess, CLUSTER_NAME,
    MESH_TIMEOUT,
};

use crate::refusal::{assert_no_route_for, route_connect, route_refusal, varz_of};
use crate::support::{connect, wait_for_interest, POLL_INTERVAL};

const OTHER_CLUSTER_NAME: &str = "tern-e2e-other";
/// How long a server may take to report the name it adopted, once routed.
const NAME_TIMEOUT: Duration = Duration::from_secs(5);

/// The text nats-server (route.go processRouteConnect) answers a CONNECT for `remote` with,
/// on a server of the cluster `local`.
fn name_mismatch(remote: &str, local: &str) -> String {
    format!("Rejecting connection, cluster name {remote:?} does not match {local:?}")
}

/// `cluster.name` of `server`'s `/varz`.
fn reported_cluster_name(server: &ServerProcess) -> anyhow::Result<Option<String>> {
    let varz = varz_of(server)?;
    Ok(varz
        .pointer("/cluster/name")
        .and_then(serde_json::Value::as_str)
        .map(str::to_string))
}

#[test]
fn a_server_of_another_cluster_gets_no_route() {
    for_each_topology(|topology| async move {
        let mut cluster = Cluster::start(&topology.kinds()[..1])?;
        // Dials the seed when it starts, before the second member joins (see REFUSAL_WINDOW).
        let stranger_config = MemberSetup::new(ClusterBlock::new(OTHER_CLUSTER_NAME))
            .config("stranger", &[cluster.server(0)])?;
        let stranger = ServerProcess::start(topology.kind(1), stranger_config)?;
        cluster.join(topology.kind(2), &[0])?;
        cluster.wait_for_mesh(MESH_TIMEOUT)?;

        assert_no_route_for(&cluster, &stranger)?;

        let other = route_connect(OTHER_CLUSTER_NAME, None);
        for (index, server) in cluster.servers().iter().enumerate() {
            let (_, error) = route_refusal(server, &other)?;
            assert_eq!(
                error,
                name_mismatch(OTHER_CLUSTER_NAME, CLUSTER_NAME),
                "node-{index} ({}) answered a route of another cluster",
                server.kind()
            );
        }
        let (_, error) = route_refusal(&stranger, &route_connect(CLUSTER_NAME, None))?;
        assert_eq!(
            error,
            name_mismatch(CLUSTER_NAME, OTHER_CLUSTER_NAME),
            "the {} stranger answered a route of another cluster",
            stranger.kind()
        );
        Ok(())
    });
}

#[test]
fn a_server_without_a_cluster_name_joins_a_named_cluster_and_takes_its_name() {
    for_each_topology(|topology| async move {
        let mut cluster = Cluster::start(&topology.kinds()[..2])?;
        let dynamic =
            MemberSetup::new(ClusterBlock::dynamic()).join(&mut cluster, topology.kind(2), &[0])?;
        cluster.wait_for_mesh(MESH_TIMEOUT)?;

        let mut last_seen = Vec::new();
        let adopted = wait_until(
            "every server to report the configured cluster name",
            NAME_TIMEOUT,
            POLL_INTERVAL,
            || {
                last_seen = cluster
                    .servers()
                    .iter()
                    .map(|server| reported_cluster_name(server).ok().flatten())
                    .collect();
                last_seen
                    .iter()
                    .all(|name| name.as_deref() == Some(CLUSTER_NAME))
                    .then_some(())
            },
        );
        adopted.map_err(|error| {
            anyhow::anyhow!(
                "{error}; /varz cluster.name of node-0..node-{dynamic}: {last_seen:?}, \
                 expected {CLUSTER_NAME:?} everywhere (node-{dynamic} has no configured name)"
            )
        })?;

        // Messages cross the route the dynamic server took, both ways.
        let seed_client = connect(cluster.server(0)).await?;
        let dynamic_client = connect(cluster.server(dynamic)).await?;
        wait_for_interest(&seed_client, &dynamic_client).await?;
        wait_for_interest(&dynamic_client, &seed_client).await?;
        Ok(())
    });
}
