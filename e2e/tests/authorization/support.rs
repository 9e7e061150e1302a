//! Helpers shared by the authorization tests: servers from config text, clients logged in as a
//! user, the exact `-ERR` lines of permission violations, and the PING/PONG proof that nothing
//! was delivered.

use tern_e2e::{HarnessError, RawClient, ServerConfig, ServerKind, ServerProcess};

/// A server with `config_text` as its config file.
pub fn start_with_config(
    kind: ServerKind,
    config_text: &str,
) -> Result<ServerProcess, HarnessError> {
    ServerProcess::start(kind, ServerConfig::from_text(config_text))
}

/// A client authenticated as `user`, `verbose` and `pedantic` off, its handshake PONG read.
pub fn connect_as(
    server: &ServerProcess,
    user: &str,
    password: &str,
) -> Result<RawClient, HarnessError> {
    RawClient::connected(
        server,
        &format!(r#"{{"verbose":false,"pedantic":false,"user":"{user}","pass":"{password}"}}"#),
    )
}

/// `-ERR` line for a refused publish to `subject`.
pub fn publish_violation(subject: &str) -> String {
    format!("-ERR 'Permissions Violation for Publish to \"{subject}\"'\r\n")
}

/// `-ERR` line for a refused subscription to `subject`.
pub fn subscription_violation(subject: &str) -> String {
    format!("-ERR 'Permissions Violation for Subscription to \"{subject}\"'\r\n")
}

/// `-ERR` line for a refused queue subscription to `subject` in `queue_group`.
pub fn queue_subscription_violation(subject: &str, queue_group: &str) -> String {
    format!(
        "-ERR 'Permissions Violation for Subscription to \"{subject}\" using queue \"{queue_group}\"'\r\n"
    )
}

/// Asserts `receiver` was given nothing. Call it after the publisher's own PING/PONG: by then
/// the server has routed everything the publisher sent, and the receiver's PONG comes after
/// anything queued for it.
pub fn assert_nothing_delivered(receiver: &mut RawClient) -> anyhow::Result<()> {
    let frames = receiver.frames_until_pong()?;
    anyhow::ensure!(
        frames.is_empty(),
        "expected nothing delivered, received {frames:?}"
    );
    Ok(())
}
