//! A cluster of server processes of chosen kinds, joined by routes on 127.0.0.1.
//!
//! Servers are started one by one; each gets `-m -1` (for `/routez`), a `server_name`
//! (`node-<index>`) and a [`ClusterBlock`] whose routes point at servers already running. With
//! [`RouteLayout::Seed`] every server knows only the first one and gossip must mesh them; with
//! [`RouteLayout::EveryEarlierServer`] the mesh is configured explicitly. A cluster is ready when
//! every running server has a route to every other running server and to no one else
//! ([`Cluster::wait_for_mesh`]); peers are told apart by server id, since nats-server 2.10+ opens
//! several connections to one peer. A member can be killed (SIGKILL) and restarted on the same
//! client, monitoring and cluster ports, and the route connections between two members can be
//! closed underneath them ([`Cluster::close_routes`], with `ss -K`).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use crate::cluster_block::ClusterBlock;
use crate::error::HarnessError;
use crate::http::http_get;
use crate::kind::ServerKind;
use crate::process::{ServerConfig, ServerProcess};
use crate::routez::Routez;
use crate::sockets::{self, Connection};

/// The cluster name every member is configured with.
pub const CLUSTER_NAME: &str = "tern-e2e";
/// How long a cluster may take to mesh, including a restarted member rejoining (nats-server
/// retries a configured route once a second).
pub const MESH_TIMEOUT: Duration = Duration::from_secs(15);
const MESH_POLL_INTERVAL: Duration = Duration::from_millis(25);

/// Which routes each server is configured with when a cluster starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteLayout {
    /// Every server after the first has one route, to the first (the seed); gossip does the
    /// rest.
    Seed,
    /// Every server has a route to every server started before it: a configured full mesh.
    EveryEarlierServer,
}

/// Servers joined by routes. Members keep their index for the cluster's life; a killed member
/// keeps its place (and ports) until it is restarted.
#[derive(Debug)]
pub struct Cluster {
    members: Vec<ServerProcess>,
}

impl Cluster {
    /// Starts one server per kind, seeded from the first ([`RouteLayout::Seed`]), and waits for
    /// the full mesh.
    pub fn start(kinds: &[ServerKind]) -> Result<Self, HarnessError> {
        Self::start_with_layout(kinds, RouteLayout::Seed)
    }

    /// Starts one server per kind with routes as `layout` says, and waits for the full mesh.
    pub fn start_with_layout(
        kinds: &[ServerKind],
        layout: RouteLayout,
    ) -> Result<Self, HarnessError> {
        let mut cluster = Self {
            members: Vec::new(),
        };
        for (index, kind) in kinds.iter().enumerate() {
            let route_to: Vec<usize> = match layout {
                RouteLayout::Seed => (0..index.min(1)).collect(),
                RouteLayout::EveryEarlierServer => (0..index).collect(),
            };
            cluster.join(*kind, &route_to)?;
        }
        cluster.wait_for_mesh(MESH_TIMEOUT)?;
        Ok(cluster)
    }

    /// The config a new member gets: monitoring, `server_name: "node-<index>"`, and a cluster
    /// block with routes to the members `route_to`.
    pub fn member_config(&self, route_to: &[usize]) -> Result<ServerConfig, HarnessError> {
        let mut block = ClusterBlock::new(CLUSTER_NAME);
        for &index in route_to {
            let url = self.member(index)?.route_url().ok_or_else(|| {
                HarnessError::io(
                    "configuring a route",
                    std::io::Error::other(format!("member {index} has no cluster listener")),
                )
            })?;
            block = block.with_route(url);
        }
        Ok(
            ServerConfig::from_text(format!("server_name: \"node-{}\"\n", self.members.len()))
                .with_monitoring()
                .with_cluster(block),
        )
    }

    /// Starts one more server of `kind` with routes to the members `route_to` (none: it waits
    /// for others to connect to it). Returns its index; does not wait for routes.
    pub fn join(&mut self, kind: ServerKind, route_to: &[usize]) -> Result<usize, HarnessError> {
        let config = self.member_config(route_to)?;
        self.join_with(kind, config)
    }

    /// Starts one more server from `config`, which should have monitoring and a cluster block
    /// (see [`Cluster::member_config`]). Returns its index.
    pub fn join_with(
        &mut self,
        kind: ServerKind,
        config: ServerConfig,
    ) -> Result<usize, HarnessError> {
        let server = ServerProcess::start(kind, config)?;
        self.members.push(server);
        Ok(self.members.len() - 1)
    }

    /// How many members (running or not).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether no member was started.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Every member, in start order.
    pub fn servers(&self) -> &[ServerProcess] {
        &self.members
    }

    /// The member at `index`.
    pub fn server(&self, index: usize) -> &ServerProcess {
        &self.members[index]
    }

    /// The member at `index`, to signal, stop or restart it directly.
    pub fn server_mut(&mut self, index: usize) -> &mut ServerProcess {
        &mut self.members[index]
    }

    fn member(&self, index: usize) -> Result<&ServerProcess, HarnessError> {
        self.members.get(index).ok_or_else(|| {
            HarnessError::io(
                "finding a cluster member",
                std::io::Error::other(format!(
                    "there is no member {index} among {}",
                    self.members.len()
                )),
            )
        })
    }

    /// The client addresses of every member.
    pub fn client_addresses(&self) -> Vec<SocketAddr> {
        self.members
            .iter()
            .map(ServerProcess::client_address)
            .collect()
    }

    /// `/routez?subs=1` of the member at `index`.
    pub fn routez(&self, index: usize) -> Result<Routez, HarnessError> {
        let server = self.member(index)?;
        let address = server.monitoring_address().ok_or_else(|| {
            HarnessError::io(
                "reading /routez",
                std::io::Error::other(format!("member {index} has no monitoring listener")),
            )
        })?;
        let response = http_get(address, "/routez?subs=1")?;
        if response.status != 200 {
            return Err(HarnessError::InvalidHttpResponse {
                reason: format!("GET /routez answered {}", response.status),
                received: response.body,
            });
        }
        Routez::parse(&response.json()?)
    }

    /// The server id of the member at `index` (a restart gives it a new one).
    pub fn server_id(&self, index: usize) -> Result<String, HarnessError> {
        Ok(self.routez(index)?.server_id)
    }

    /// Waits until every running member has routes to exactly the other running members.
    pub fn wait_for_mesh(&self, timeout: Duration) -> Result<(), HarnessError> {
        let deadline = Instant::now() + timeout;
        loop {
            let observed = match self.mesh_state() {
                Ok(MeshState::Complete) => return Ok(()),
                Ok(MeshState::Incomplete(observed)) => observed,
                Err(error) => format!("reading /routez failed: {error}"),
            };
            let now = Instant::now();
            if now >= deadline {
                return Err(HarnessError::ClusterNotMeshed { timeout, observed });
            }
            thread::sleep(MESH_POLL_INTERVAL.min(deadline - now));
        }
    }

    fn mesh_state(&self) -> Result<MeshState, HarnessError> {
        let running: Vec<usize> = (0..self.members.len())
            .filter(|&index| self.members[index].is_running())
            .collect();
        let mut views = Vec::new();
        for &index in &running {
            views.push((index, self.routez(index)?));
        }
        let ids: BTreeSet<String> = views
            .iter()
            .map(|(_, routez)| routez.server_id.clone())
            .collect();
        let complete = views.iter().all(|(_, routez)| {
            let mut expected = ids.clone();
            expected.remove(&routez.server_id);
            routez.peers() == expected
        });
        if complete {
            return Ok(MeshState::Complete);
        }
        let lines: Vec<String> = views
            .iter()
            .map(|(index, routez)| {
                let peers: Vec<String> = routez
                    .routes
                    .iter()
                    .map(|route| route.remote_name.clone())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                format!(
                    "node-{index} ({}, {}): {} route connections to [{}]",
                    self.members[*index].kind(),
                    routez.server_id,
                    routez.num_routes,
                    peers.join(", ")
                )
            })
            .collect();
        Ok(MeshState::Incomplete(lines.join("; ")))
    }

    /// The TCP connections between the members `from` and `to` (their routes: clients and
    /// monitoring requests come from the test process), from `from`'s side.
    pub fn route_connections(
        &self,
        from: usize,
        to: usize,
    ) -> Result<Vec<Connection>, HarnessError> {
        let pid = |index: usize| -> Result<u32, HarnessError> {
            self.member(index)?.pid().ok_or(HarnessError::NotRunning)
        };
        sockets::connections_between(pid(from)?, pid(to)?)
    }

    /// Closes every connection between the members `from` and `to` from outside (both ends
    /// reset, both servers keep running) and returns the connections closed.
    pub fn close_routes(&self, from: usize, to: usize) -> Result<Vec<Connection>, HarnessError> {
        let connections = self.route_connections(from, to)?;
        sockets::close(&connections)?;
        Ok(connections)
    }

    /// Kills the member at `index` at once (SIGKILL).
    pub fn kill(&mut self, index: usize) -> Result<(), HarnessError> {
        self.member(index)?;
        self.members[index].kill()
    }

    /// Starts the member at `index` again (killing it first if it runs) on its client,
    /// monitoring and cluster ports. Does not wait for routes.
    pub fn restart(&mut self, index: usize) -> Result<(), HarnessError> {
        self.member(index)?;
        self.members[index].restart()
    }
}

enum MeshState {
    Complete,
    /// What each running member sees, for the failure message.
    Incomplete(String),
}
