//! The servers one run measures: a single server, or two servers of the same kind joined by a
//! route.
//!
//! A routed pair is started in order: A as a cluster member listening for routes on a port
//! from the OS (`--cluster nats://127.0.0.1:-1 --cluster_name bench`), then B, which also
//! listens and connects a route to A (`--routes nats-route://<A's cluster address>`). The pair
//! counts as started once a message published on A reached a subscriber on B, i.e. once the
//! route is up and carries interest, never after a fixed sleep; that wait is bounded by
//! [`ROUTE_TIMEOUT`]. Both servers are [`ServerProcess`]es, so dropping the deployment (or an
//! interrupt) kills both on every path, including a failed start of either.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::client::{probe_until_delivered, ClientError, Connection, HANDSHAKE_BUFFER_CAPACITY};
use crate::protocol::Frame;
use crate::server_process::{ClusterOptions, ConfigFile, ServerError, ServerProcess};
use crate::system;

/// The `--cluster_name` of both members of a pair.
pub const CLUSTER_NAME: &str = "bench";
/// How long a pair may take, after both servers wrote their ports files, until a message
/// crosses the route.
const ROUTE_TIMEOUT: Duration = Duration::from_secs(10);
const ROUTE_PROBE_SUBJECT: &str = "bench.route.ready";

/// How many servers a scenario runs against and how they are connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Topology {
    /// One server; every client connects to it.
    Single,
    /// Two servers of the same kind in one cluster; senders connect to A, receivers to B, so
    /// every message crosses the route once.
    RoutedPair,
}

#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error(transparent)]
    RouteNotUp(Box<RouteNotUp>),
}

/// Both servers run, but no probe crossed the route in time.
#[derive(Debug, thiserror::Error)]
#[error(
    "no message crossed the route from {a} to {b} within {timeout:?}: {source}\n\
     {a} log tail:\n{a_log}\n{b} log tail:\n{b_log}"
)]
pub struct RouteNotUp {
    a: String,
    b: String,
    timeout: Duration,
    source: ClientError,
    a_log: String,
    b_log: String,
}

#[derive(Debug)]
pub struct Deployment {
    a: ServerProcess,
    /// The second member of a routed pair.
    b: Option<ServerProcess>,
}

impl Deployment {
    /// Starts the servers of `topology` from `executable`, each with `config` if given, and,
    /// for a pair, waits for the route.
    pub fn start(
        topology: Topology,
        label: &str,
        executable: &Path,
        config: Option<ConfigFile<'_>>,
    ) -> Result<Self, DeploymentError> {
        match topology {
            Topology::Single => Ok(Self {
                a: ServerProcess::start(label, executable, None, config)?,
                b: None,
            }),
            Topology::RoutedPair => {
                let a = ServerProcess::start(
                    &format!("{label} A"),
                    executable,
                    Some(ClusterOptions {
                        name: CLUSTER_NAME,
                        routes: &[],
                    }),
                    config,
                )?;
                // `start` of a cluster member fails unless its ports file has a cluster address.
                let routes: Vec<SocketAddr> = a.cluster_address().into_iter().collect();
                let b = ServerProcess::start(
                    &format!("{label} B"),
                    executable,
                    Some(ClusterOptions {
                        name: CLUSTER_NAME,
                        routes: &routes,
                    }),
                    config,
                )?;
                if let Err(source) = await_route(&a, &b) {
                    // A crashed member explains a missing route better than the timeout does.
                    a.check_running("while the route formed")?;
                    b.check_running("while the route formed")?;
                    return Err(DeploymentError::RouteNotUp(Box::new(RouteNotUp {
                        a: a.label().to_owned(),
                        b: b.label().to_owned(),
                        timeout: ROUTE_TIMEOUT,
                        source,
                        a_log: a.log_tail(),
                        b_log: b.log_tail(),
                    })));
                }
                Ok(Self { a, b: Some(b) })
            }
        }
    }

    /// Where publishers and requesters connect: A (the only server when single).
    pub fn sender_side(&self) -> &ServerProcess {
        &self.a
    }

    /// Where subscribers and responders connect: B of a pair, else the only server.
    pub fn receiver_side(&self) -> &ServerProcess {
        self.b.as_ref().unwrap_or(&self.a)
    }

    fn servers(&self) -> impl Iterator<Item = &ServerProcess> {
        std::iter::once(&self.a).chain(self.b.as_ref())
    }

    /// CPU time used so far by all servers together; `None` if any cannot be read.
    pub fn cpu_time(&self) -> Option<Duration> {
        self.servers()
            .map(|server| system::cpu_time(server.pid()).ok())
            .sum()
    }

    /// Fails if any server has exited since it started.
    pub fn check_running(&self, context: &'static str) -> Result<(), ServerError> {
        self.servers()
            .try_for_each(|server| server.check_running(context))
    }
}

/// Subscribes on B and publishes probes on A until one arrives.
fn await_route(a: &ServerProcess, b: &ServerProcess) -> Result<(), ClientError> {
    let deadline = Instant::now() + ROUTE_TIMEOUT;
    let mut subscriber = Connection::connect(
        b.client_address(),
        "route-probe-subscriber",
        HANDSHAKE_BUFFER_CAPACITY,
        deadline,
    )?;
    subscriber.subscribe(ROUTE_PROBE_SUBJECT, None, 1, deadline)?;
    let mut publisher = Connection::connect(
        a.client_address(),
        "route-probe-publisher",
        HANDSHAKE_BUFFER_CAPACITY,
        deadline,
    )?;
    let probe = format!("PUB {ROUTE_PROBE_SUBJECT} 0\r\n\r\n");
    probe_until_delivered(
        &mut publisher,
        probe.as_bytes(),
        std::slice::from_mut(&mut subscriber),
        1,
        |frame| matches!(frame, Frame::Message { .. }),
        deadline,
    )
}
