//! Small helpers shared by the client-protocol tests.

use tern_e2e::{HarnessError, RawClient, ServerConfig, ServerKind, ServerProcess, QUIET_CONNECT};

/// A server with default options.
pub fn start(kind: ServerKind) -> Result<ServerProcess, HarnessError> {
    ServerProcess::start(kind, ServerConfig::new())
}

/// A server with `config_text` as its config file.
pub fn start_with_config(
    kind: ServerKind,
    config_text: &str,
) -> Result<ServerProcess, HarnessError> {
    ServerProcess::start(kind, ServerConfig::from_text(config_text))
}

/// A connected client with `verbose` and `pedantic` off.
pub fn quiet_client(server: &ServerProcess) -> Result<RawClient, HarnessError> {
    RawClient::connected(server, QUIET_CONNECT)
}
