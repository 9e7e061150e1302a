//! The `cluster {}` block the harness writes into a clustered server's config file.
//!
//! The listener is always `127.0.0.1`; its port is `-1` (chosen by the OS) at the first start and
//! the port learnt from the ports file on a restart. Routes are `nats-route://` URLs of servers
//! already running. Anything else a test needs inside the block (`no_advertise`, `pool_size`,
//! `authorization {...}`) is a verbatim setting line.

use std::fmt::Write as _;

/// One server's `cluster {}` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterBlock {
    name: String,
    routes: Vec<String>,
    settings: Vec<String>,
}

impl ClusterBlock {
    /// A block for the cluster called `name`, with no routes yet.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            routes: Vec::new(),
            settings: Vec::new(),
        }
    }

    /// A block with no `name`: the server's cluster name is dynamic (a random one) until a
    /// route to a named cluster gives it that cluster's name.
    pub fn dynamic() -> Self {
        Self::new("")
    }

    /// One more configured (explicit) route, a `nats-route://host:port` URL.
    pub fn with_route(mut self, url: impl Into<String>) -> Self {
        self.routes.push(url.into());
        self
    }

    /// One more line inside the block, written as given (`no_advertise: true`).
    pub fn with_setting(mut self, line: impl Into<String>) -> Self {
        self.settings.push(line.into());
        self
    }

    /// The cluster's name (empty for a [`ClusterBlock::dynamic`] block).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The configured routes.
    pub fn routes(&self) -> &[String] {
        &self.routes
    }

    /// The block, listening on `port` (`-1` when `None`).
    pub(crate) fn render(&self, port: Option<u16>) -> String {
        let port = port.map_or_else(|| "-1".to_string(), |port| port.to_string());
        let mut text = String::from("cluster {\n");
        // Writing to a String cannot fail.
        if !self.name.is_empty() {
            let _ = writeln!(text, "  name: {:?}", self.name);
        }
        let _ = writeln!(text, "  listen: \"127.0.0.1:{port}\"");
        if !self.routes.is_empty() {
            text.push_str("  routes: [\n");
            for route in &self.routes {
                let _ = writeln!(text, "    {route:?}");
            }
            text.push_str("  ]\n");
        }
        for setting in &self.settings {
            let _ = writeln!(text, "  {setting}");
        }
        text.push_str("}\n");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_block_lists_listener_routes_and_settings() {
        let block = ClusterBlock::new("tern-e2e")
            .with_route("nats-route://127.0.0.1:6222")
            .with_setting("no_advertise: true");
        assert_eq!(
            block.render(None),
            "cluster {\n  name: \"tern-e2e\"\n  listen: \"127.0.0.1:-1\"\n  routes: [\n    \
             \"nats-route://127.0.0.1:6222\"\n  ]\n  no_advertise: true\n}\n"
        );
        assert!(block
            .render(Some(7000))
            .contains("listen: \"127.0.0.1:7000\""));
    }

    #[test]
    fn a_dynamic_block_has_no_name() {
        let text = ClusterBlock::dynamic().render(None);
        assert!(!text.contains("name"), "{text}");
    }

    #[test]
    fn a_seed_has_no_routes_list() {
        let text = ClusterBlock::new("c").render(None);
        assert!(!text.contains("routes"), "{text}");
    }
}
