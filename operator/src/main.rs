//! `tern-operator`: the Kubernetes operator for Tern.
//!
//! The NatsCluster, SuperCluster and LeafNode controllers land with their own issue; until then
//! this binary only says so, with a non-zero exit, so that nothing mistakes it for a working
//! operator.

fn main() -> std::process::ExitCode {
    eprintln!("tern-operator: not implemented yet (see the operator issue)");
    std::process::ExitCode::from(2)
}
