//! Routes over TLS with verification both ways: servers whose certificates come from the CA
//! they all trust mesh and carry messages; a server whose certificate comes from another CA
//! gets no route, although it trusts the cluster's CA itself.

use tern_e2e::{
    for_each_topology, ClusterBlock, MemberSetup, ServerProcess, TestCertificates, CLUSTER_NAME,
    MESH_TIMEOUT,
};

use crate::refusal::assert_no_route_for;
use crate::support::assert_fanout_exactly_once;

/// Messages each server publishes over the TLS routes.
const PER_PUBLISHER: usize = 20;

#[test]
fn routes_over_verified_tls_mesh_and_an_untrusted_certificate_gets_no_route() {
    for_each_topology(|topology| async move {
        let certificates = TestCertificates::generate()?;
        let members = MemberSetup::new(
            ClusterBlock::new(CLUSTER_NAME).with_setting(certificates.route_tls_block()),
        );
        let mut cluster = members.start_cluster(&topology.kinds()[..2])?;
        // Dials the seed when it starts, before the last member joins (see REFUSAL_WINDOW).
        let untrusted_config = MemberSetup::new(
            ClusterBlock::new(CLUSTER_NAME).with_setting(certificates.untrusted_route_tls_block()),
        )
        .config("untrusted", &[cluster.server(0)])?;
        let untrusted = ServerProcess::start(topology.kind(1), untrusted_config)?;
        members.join(&mut cluster, topology.kind(2), &[0])?;
        cluster.wait_for_mesh(MESH_TIMEOUT)?;

        assert_no_route_for(&cluster, &untrusted)?;
        assert_fanout_exactly_once(&cluster, PER_PUBLISHER).await
    });
}
