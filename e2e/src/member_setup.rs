//! What every member of a cluster shares beyond [`Cluster::member_config`]: a template
//! [`ClusterBlock`] (its name, or none, and settings such as `authorization {...}`, `tls {...}`,
//! `no_advertise: true`), lines at the top of the config file (`lame_duck_duration: "30s"`), and
//! credentials written into the route URLs a member dials
//! (`nats-route://user:password@127.0.0.1:<port>`).
//!
//! [`MemberSetup::start_cluster`] builds the same seed layout as [`Cluster::start`];
//! [`MemberSetup::config`] also configures servers that are not members (a server with wrong
//! credentials, another cluster's server), which a test starts on its own so that
//! [`Cluster::wait_for_mesh`] never expects them.

use crate::cluster::{Cluster, CLUSTER_NAME, MESH_TIMEOUT};
use crate::cluster_block::ClusterBlock;
use crate::error::HarnessError;
use crate::kind::ServerKind;
use crate::process::{ServerConfig, ServerProcess};

/// How a group of servers is configured.
#[derive(Debug, Clone)]
pub struct MemberSetup {
    block: ClusterBlock,
    config_lines: Vec<String>,
    route_credentials: Option<(String, String)>,
}

impl Default for MemberSetup {
    /// Members of [`CLUSTER_NAME`], nothing else configured: what [`Cluster::start`] makes.
    fn default() -> Self {
        Self::new(ClusterBlock::new(CLUSTER_NAME))
    }
}

impl MemberSetup {
    /// Members whose cluster block is `block` plus their routes (`block` should have none).
    pub fn new(block: ClusterBlock) -> Self {
        Self {
            block,
            config_lines: Vec::new(),
            route_credentials: None,
        }
    }

    /// One more line at the top of every member's config file.
    pub fn with_config_line(mut self, line: impl Into<String>) -> Self {
        self.config_lines.push(line.into());
        self
    }

    /// Routes are dialled as `nats-route://<user>:<password>@host:port`.
    pub fn with_route_credentials(
        mut self,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.route_credentials = Some((user.into(), password.into()));
        self
    }

    /// The URL a server with this setup dials to reach `server`'s route listener.
    pub fn route_url(&self, server: &ServerProcess) -> Result<String, HarnessError> {
        let address = server.cluster_address().ok_or_else(|| {
            HarnessError::io(
                "configuring a route",
                std::io::Error::other(format!(
                    "the {} server has no cluster listener",
                    server.kind()
                )),
            )
        })?;
        Ok(match &self.route_credentials {
            Some((user, password)) => format!("nats-route://{user}:{password}@{address}"),
            None => format!("nats-route://{address}"),
        })
    }

    /// The config of a server called `server_name` with routes to `route_to`: monitoring on,
    /// the setup's config lines and cluster block.
    pub fn config(
        &self,
        server_name: &str,
        route_to: &[&ServerProcess],
    ) -> Result<ServerConfig, HarnessError> {
        let mut block = self.block.clone();
        for server in route_to {
            block = block.with_route(self.route_url(server)?);
        }
        let mut text = format!("server_name: {server_name:?}\n");
        for line in &self.config_lines {
            text.push_str(line);
            text.push('\n');
        }
        Ok(ServerConfig::from_text(text)
            .with_monitoring()
            .with_cluster(block))
    }

    /// Starts one more member of `kind` (`node-<index>`, as [`Cluster::join`] names it) with
    /// routes to the members `route_to`. Returns its index; does not wait for routes.
    pub fn join(
        &self,
        cluster: &mut Cluster,
        kind: ServerKind,
        route_to: &[usize],
    ) -> Result<usize, HarnessError> {
        let targets: Vec<&ServerProcess> = route_to
            .iter()
            .map(|&index| cluster.server(index))
            .collect();
        let config = self.config(&format!("node-{}", cluster.len()), &targets)?;
        cluster.join_with(kind, config)
    }

    /// Starts one member per kind, every one after the first with a route to the first (the
    /// seed), and waits for the full mesh.
    pub fn start_cluster(&self, kinds: &[ServerKind]) -> Result<Cluster, HarnessError> {
        // No kinds: an empty cluster, which the members below join.
        let mut cluster = Cluster::start(&[])?;
        for (index, kind) in kinds.iter().enumerate() {
            let route_to: Vec<usize> = (0..index.min(1)).collect();
            self.join(&mut cluster, *kind, &route_to)?;
        }
        cluster.wait_for_mesh(MESH_TIMEOUT)?;
        Ok(cluster)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_lines_come_first_and_the_block_keeps_its_settings() {
        let setup = MemberSetup::new(
            ClusterBlock::new("secure").with_setting("authorization { user: r, password: s }"),
        )
        .with_config_line("lame_duck_grace_period: \"1s\"");
        let config = setup.config("outsider", &[]).expect("no routes to resolve");
        assert_eq!(
            config.config_text(),
            "server_name: \"outsider\"\nlame_duck_grace_period: \"1s\"\n"
        );
        let block = config.cluster().expect("a cluster block");
        assert_eq!(block.name(), "secure");
        assert!(block.routes().is_empty());
    }
}
