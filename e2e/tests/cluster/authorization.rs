//! Route authorization: servers whose `cluster {}` requires a user and password mesh when they
//! dial each other with those credentials in the route URL, and a server dialling with a wrong
//! password gets no route while the cluster keeps working.

use tern_e2e::{
    for_each_topology, ClusterBlock, MemberSetup, ServerProcess, CLUSTER_NAME, MESH_TIMEOUT,
};

use crate::refusal::{assert_no_route_for, route_connect, route_refusal};
use crate::support::assert_fanout_exactly_once;

const USER: &str = "r";
const PASSWORD: &str = "s";
const AUTHORIZATION: &str = "authorization { user: r, password: s }";
/// Messages each server publishes once the intruder has been turned away.
const PER_PUBLISHER: usize = 20;

fn members() -> MemberSetup {
    MemberSetup::new(ClusterBlock::new(CLUSTER_NAME).with_setting(AUTHORIZATION))
        .with_route_credentials(USER, PASSWORD)
}

#[test]
fn routes_with_the_cluster_credentials_mesh_and_a_wrong_password_gets_no_route() {
    for_each_topology(|topology| async move {
        let members = members();
        let mut cluster = members.start_cluster(&topology.kinds()[..2])?;
        // Same block, same user, wrong password; dials the seed when it starts, before the last
        // member joins (see REFUSAL_WINDOW).
        let intruder_config = members
            .clone()
            .with_route_credentials(USER, "wrong")
            .config("intruder", &[cluster.server(0)])?;
        let intruder = ServerProcess::start(topology.kind(1), intruder_config)?;
        members.join(&mut cluster, topology.kind(2), &[0])?;
        cluster.wait_for_mesh(MESH_TIMEOUT)?;

        assert_no_route_for(&cluster, &intruder)?;
        assert_fanout_exactly_once(&cluster, PER_PUBLISHER).await?;

        let wrong = route_connect(CLUSTER_NAME, Some((USER, "wrong")));
        for (index, server) in cluster.servers().iter().enumerate() {
            let (info, error) = route_refusal(server, &wrong)?;
            assert_eq!(
                info.get("auth_required"),
                Some(&serde_json::Value::Bool(true)),
                "node-{index} ({}) route INFO: {info}",
                server.kind()
            );
            assert_eq!(
                error,
                "Authorization Violation",
                "node-{index} ({}) answered a wrong route password",
                server.kind()
            );
        }
        Ok(())
    });
}
