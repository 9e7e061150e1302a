//! The three-server cluster topologies the route tests run against, and how a run selects them.
//!
//! `TERN_E2E_TOPOLOGIES` (a comma list of names, default all) picks topologies; a topology with
//! a kind that `TERN_E2E_SERVERS` does not select is skipped with a printed note (when
//! `TERN_E2E_SERVERS` is unset every kind counts as selected). The first kind of a topology is
//! the seed the others are given as their route.

use std::env;
use std::fmt;
use std::future::Future;

use crate::each_kind::run_cases;
use crate::error::HarnessError;
use crate::kind::ServerKind::{NatsServer, NatsServerCurrent, Tern};
use crate::kind::{explicitly_selected_server_kinds, ServerKind};

/// Environment variable that selects topologies by name.
pub const TOPOLOGIES_VARIABLE: &str = "TERN_E2E_TOPOLOGIES";
/// Worker threads of each topology's runtime: client tasks keep running while the test thread
/// blocks in harness calls (starting, killing, waiting for the mesh).
const RUNTIME_WORKERS: usize = 2;

/// A named list of server kinds, seed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topology {
    name: &'static str,
    kinds: [ServerKind; 3],
}

impl Topology {
    /// Every topology, in the order a run covers them.
    pub const ALL: [Topology; 8] = [
        Topology::new("nats-server-2.9", [NatsServer, NatsServer, NatsServer]),
        Topology::new(
            "nats-server-2.12",
            [NatsServerCurrent, NatsServerCurrent, NatsServerCurrent],
        ),
        Topology::new(
            "nats-server-2.12-2.9",
            [NatsServerCurrent, NatsServer, NatsServerCurrent],
        ),
        Topology::new("tern", [Tern, Tern, Tern]),
        Topology::new("tern-nats-server-2.9", [Tern, NatsServer, NatsServer]),
        Topology::new("nats-server-2.9-tern", [NatsServer, Tern, Tern]),
        Topology::new(
            "tern-nats-server-2.12",
            [Tern, NatsServerCurrent, NatsServerCurrent],
        ),
        Topology::new("nats-server-2.12-tern", [NatsServerCurrent, Tern, Tern]),
    ];

    const fn new(name: &'static str, kinds: [ServerKind; 3]) -> Self {
        Self { name, kinds }
    }

    /// The name used in `TERN_E2E_TOPOLOGIES`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The kinds of its servers, seed first.
    pub fn kinds(&self) -> &[ServerKind] {
        &self.kinds
    }

    /// The kind of server `index`.
    pub fn kind(&self, index: usize) -> ServerKind {
        self.kinds[index]
    }
}

impl fmt::Display for Topology {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kinds: Vec<&str> = self.kinds.iter().map(|kind| kind.name()).collect();
        write!(formatter, "{} ({})", self.name, kinds.join("+"))
    }
}

/// The topologies `TERN_E2E_TOPOLOGIES` names, in the order given (all when unset).
pub fn selected_topologies() -> Result<Vec<Topology>, HarnessError> {
    match env::var(TOPOLOGIES_VARIABLE) {
        Ok(value) => parse_topologies(&value),
        Err(_) => Ok(Topology::ALL.to_vec()),
    }
}

fn parse_topologies(value: &str) -> Result<Vec<Topology>, HarnessError> {
    let mut topologies = Vec::new();
    for name in value
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
    {
        let topology = Topology::ALL
            .into_iter()
            .find(|topology| topology.name == name)
            .ok_or_else(|| HarnessError::UnknownTopology {
                name: name.to_string(),
                known: Topology::ALL.map(|topology| topology.name).join(", "),
            })?;
        if !topologies.contains(&topology) {
            topologies.push(topology);
        }
    }
    if topologies.is_empty() {
        return Err(HarnessError::NoTopologySelected {
            value: value.to_string(),
        });
    }
    Ok(topologies)
}

/// Runs the async `body` once per selected topology whose kinds are all selected, each on a
/// fresh multi-threaded tokio runtime; fails the test naming the topologies that failed.
#[allow(
    clippy::panic,
    reason = "failing the calling test is the purpose of this helper"
)]
pub fn for_each_topology<Body, Fut>(mut body: Body)
where
    Body: FnMut(Topology) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let selection = selected_topologies()
        .and_then(|topologies| explicitly_selected_server_kinds().map(|kinds| (topologies, kinds)));
    let (topologies, kinds) = match selection {
        Ok(selection) => selection,
        Err(error) => panic!("{error}"),
    };
    let mut runnable = Vec::new();
    for topology in topologies {
        let unselected = kinds.as_ref().and_then(|kinds| {
            topology
                .kinds
                .iter()
                .find(|kind| !kinds.contains(kind))
                .copied()
        });
        match unselected {
            Some(kind) => eprintln!(
                "=== skipped topology {topology}: TERN_E2E_SERVERS does not select {kind}"
            ),
            None => runnable.push(topology),
        }
    }
    run_cases(runnable, |topology| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(RUNTIME_WORKERS)
            .enable_all()
            .build()
            .map_err(|error| anyhow::anyhow!("building a tokio runtime: {error}"))?;
        runtime.block_on(body(topology))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topologies_parse_by_name_in_order_without_duplicates() {
        let topologies =
            parse_topologies("tern, nats-server-2.9,tern").expect("valid topology list");
        let names: Vec<&str> = topologies.iter().map(Topology::name).collect();
        assert_eq!(names, ["tern", "nats-server-2.9"]);
    }

    #[test]
    fn unknown_or_empty_topology_lists_are_errors() {
        assert!(matches!(
            parse_topologies("tern,ring"),
            Err(HarnessError::UnknownTopology { .. })
        ));
        assert!(matches!(
            parse_topologies(","),
            Err(HarnessError::NoTopologySelected { .. })
        ));
    }

    #[test]
    fn every_topology_has_a_distinct_name_and_three_servers() {
        let names: std::collections::BTreeSet<&str> =
            Topology::ALL.iter().map(Topology::name).collect();
        assert_eq!(names.len(), Topology::ALL.len());
        assert!(Topology::ALL
            .iter()
            .all(|topology| topology.kinds().len() == 3));
    }
}
