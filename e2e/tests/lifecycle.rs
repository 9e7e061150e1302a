//! The server process's life: lame duck mode, graceful shutdown on SIGINT and SIGTERM, config
//! reload on SIGHUP and through `--signal`, the pid file and the ports file. Each test runs
//! against every selected server kind; nats-server 2.9.10's behaviour is the expected one except
//! where a test says Tern differs on purpose.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use tern_e2e::{
    for_each_server_kind, for_each_server_kind_of, http_get, run_to_exit, wait_until, Frame,
    HarnessError, RawClient, ServerConfig, ServerKind, ServerProcess, Signal, COMMAND_TIMEOUT,
    DEFAULT_TIMEOUT, QUIET_CONNECT, STOP_TIMEOUT,
};

/// Both servers refuse a `lame_duck_duration` under 30s; the short grace period keeps the test
/// quick, since the clients are closed right after it.
const LAME_DUCK_CONFIG: &str = "lame_duck_duration: \"30s\"\nlame_duck_grace_period: \"1s\"\n";
/// From SIGUSR2 to the process's exit: the 1s grace period, then the clients are closed at most
/// 1s apart (nats-server caps the pause between two closes at 1s and does not pause after the
/// last one), then shutdown.
const LAME_DUCK_EXIT_TIMEOUT: Duration = Duration::from_secs(10);
/// A client that understands async INFO (protocol 1), so lame duck mode is announced to it.
const PROTOCOL_ONE_CONNECT: &str = r#"{"verbose":false,"pedantic":false,"protocol":1}"#;
/// Bytes a client may receive while waiting for the server to close it.
const MAX_BYTES_BEFORE_CLOSE: usize = 64 * 1024;
/// Server PINGs answered while waiting for one frame.
const MAX_PINGS_SKIPPED: usize = 10;
const POLL_INTERVAL: Duration = Duration::from_millis(25);

const TWO_USERS_CONFIG: &str = "authorization {\n  users: [\n    {user: alice, password: alice-pass}\n    {user: bob, password: bob-pass}\n  ]\n}\n";
const BOB_WITH_A_NEW_PASSWORD_CONFIG: &str = "authorization {\n  users: [\n    {user: alice, password: alice-pass}\n    {user: bob, password: bob-new-pass}\n  ]\n}\n";
const ALICE_ONLY_CONFIG: &str =
    "authorization {\n  users: [\n    {user: alice, password: alice-pass}\n  ]\n}\n";
const ALICE_AND_CAROL_CONFIG: &str = "authorization {\n  users: [\n    {user: alice, password: alice-pass}\n    {user: carol, password: carol-pass}\n  ]\n}\n";
/// Would change alice's password, but the users array and the block are never closed.
const BROKEN_CONFIG: &str =
    "authorization {\n  users: [\n    {user: alice, password: changed-pass}\n";

fn credentials(user: &str, password: &str) -> String {
    format!(r#"{{"verbose":false,"pedantic":false,"user":"{user}","pass":"{password}"}}"#)
}

/// The next frame that is not a server PING (those are answered).
fn next_frame_answering_pings(client: &mut RawClient) -> Result<Frame, HarnessError> {
    for _ in 0..MAX_PINGS_SKIPPED {
        match client.read_frame()? {
            Frame::Ping => client.send("PONG\r\n")?,
            frame => return Ok(frame),
        }
    }
    Err(HarnessError::UnexpectedBytes {
        expected: "a frame other than PING".to_string(),
        received: format!("{MAX_PINGS_SKIPPED} PINGs"),
    })
}

/// Where the server writes its ports file: `<directory>/<executable name>_<pid>.ports`.
fn ports_file_path(server: &ServerProcess) -> anyhow::Result<PathBuf> {
    let binary = server.kind().binary()?;
    let executable = binary
        .file_name()
        .context("the binary path has no file name")?
        .to_string_lossy()
        .into_owned();
    let pid = server.pid().context("the server is not running")?;
    Ok(server.directory().join(format!("{executable}_{pid}.ports")))
}

/// Whether a user can complete a handshake right now.
fn can_connect(server: &ServerProcess, user: &str, password: &str) -> bool {
    RawClient::connected(server, &credentials(user, password)).is_ok()
}

/// Asserts `client` is still served: it publishes to `subject` and its own subscription (sid 1
/// on `subject`) receives the message.
fn still_receives_its_own_messages(client: &mut RawClient, subject: &str) -> anyhow::Result<()> {
    client.send(format!("PUB {subject} 5\r\nstill\r\nPING\r\n"))?;
    client.expect(format!("MSG {subject} 1 5\r\nstill\r\nPONG\r\n"))?;
    Ok(())
}

#[test]
fn lame_duck_mode_announces_itself_refuses_new_clients_then_closes_clients_and_exits_zero() {
    for_each_server_kind(|kind| {
        let mut server = ServerProcess::start(kind, ServerConfig::from_text(LAME_DUCK_CONFIG))?;
        let mut announced = RawClient::connected(&server, PROTOCOL_ONE_CONNECT)?;
        let mut legacy = RawClient::connected(&server, QUIET_CONNECT)?;
        let address = server.client_address();

        let signalled = Instant::now();
        server.signal(Signal::User2)?;

        match next_frame_answering_pings(&mut announced)? {
            Frame::Info(info) => assert_eq!(info["ldm"], true, "the lame duck INFO: {info}"),
            other => anyhow::bail!("expected an INFO with \"ldm\":true, got {other:?}"),
        }
        wait_until(
            "the client listener to refuse new connections",
            DEFAULT_TIMEOUT,
            POLL_INTERVAL,
            || {
                TcpStream::connect_timeout(&address, DEFAULT_TIMEOUT)
                    .is_err()
                    .then_some(())
            },
        )?;

        let remaining = || LAME_DUCK_EXIT_TIMEOUT.saturating_sub(signalled.elapsed());
        announced
            .read_until_closed(MAX_BYTES_BEFORE_CLOSE, remaining())
            .context("the protocol-1 client was not closed")?;
        let legacy_received = legacy
            .read_until_closed(MAX_BYTES_BEFORE_CLOSE, remaining())
            .context("the protocol-0 client was not closed")?;
        let legacy_received = String::from_utf8_lossy(&legacy_received);
        assert!(
            !legacy_received.contains("INFO"),
            "a protocol-0 client must not get an async INFO, got {legacy_received:?}"
        );

        let status = server
            .wait_for_exit(remaining())
            .context("the server did not exit by itself after lame duck mode")?;
        assert!(
            status.success(),
            "exit status after lame duck mode: {status}"
        );
        Ok(())
    });
}

#[test]
fn lame_duck_mode_without_clients_exits_without_waiting_for_the_grace_period() {
    for_each_server_kind(|kind| {
        // The grace period only delays closing clients; with none there is nothing to wait for.
        let config = "lame_duck_duration: \"60s\"\nlame_duck_grace_period: \"50s\"\n";
        let mut server = ServerProcess::start(kind, ServerConfig::from_text(config))?;
        server.signal(Signal::User2)?;
        let status = server
            .wait_for_exit(LAME_DUCK_EXIT_TIMEOUT)
            .context("lame duck mode with no clients did not end the process")?;
        assert!(
            status.success(),
            "exit status after lame duck mode: {status}"
        );
        Ok(())
    });
}

/// Closes the client without an -ERR, exits, and removes the ports file; returns the exit status.
fn shut_down_by(kind: ServerKind, signal: Signal) -> anyhow::Result<std::process::ExitStatus> {
    let mut server = ServerProcess::start(kind, ServerConfig::new())?;
    let ports_file = ports_file_path(&server)?;
    assert!(
        ports_file.is_file(),
        "no ports file at {}",
        ports_file.display()
    );
    let mut client = RawClient::connected(&server, QUIET_CONNECT)?;

    server.signal(signal)?;

    let received = client.read_until_closed(MAX_BYTES_BEFORE_CLOSE, STOP_TIMEOUT)?;
    let received = String::from_utf8_lossy(&received);
    assert!(
        !received.contains("-ERR"),
        "shutdown closes clients without an error, got {received:?}"
    );
    let status = server.wait_for_exit(STOP_TIMEOUT)?;
    assert!(
        !ports_file.exists(),
        "the ports file {} outlived the server",
        ports_file.display()
    );
    Ok(status)
}

#[test]
fn sigint_closes_clients_removes_the_ports_file_and_exits_zero() {
    for_each_server_kind(|kind| {
        let status = shut_down_by(kind, Signal::Interrupt)?;
        assert!(status.success(), "exit status after SIGINT: {status}");
        Ok(())
    });
}

#[test]
fn sigterm_closes_clients_removes_the_ports_file_and_exits() {
    for_each_server_kind(|kind| {
        let status = shut_down_by(kind, Signal::Terminate)?;
        match kind {
            // A graceful stop is a success: Kubernetes and systemd stop servers with SIGTERM.
            ServerKind::Tern => assert!(status.success(), "exit status after SIGTERM: {status}"),
            // nats-server 2.9 calls os.Exit(1) after shutting down on SIGTERM (signal.go).
            ServerKind::NatsServer => assert_eq!(status.code(), Some(1), "{status}"),
            // nats-server 2.12 exits zero, as Tern does.
            ServerKind::NatsServerCurrent => {
                assert!(status.success(), "exit status after SIGTERM: {status}")
            }
        }
        Ok(())
    });
}

fn pid_file_in(directory: &Path) -> PathBuf {
    directory.join("server.pid")
}

fn start_with_pid_file(
    kind: ServerKind,
    config: ServerConfig,
    pid_file: &Path,
) -> Result<ServerProcess, HarnessError> {
    let config = config
        .with_argument("-P")
        .with_argument(pid_file.display().to_string());
    ServerProcess::start(kind, config)
}

#[test]
fn pid_file_holds_the_process_id() {
    for_each_server_kind(|kind| {
        let directory = tempfile::tempdir()?;
        let pid_file = pid_file_in(directory.path());
        let server = start_with_pid_file(kind, ServerConfig::new(), &pid_file)?;
        let content = fs::read_to_string(&pid_file)
            .with_context(|| format!("reading {}", pid_file.display()))?;
        assert_eq!(
            content.trim_end(),
            server.pid().context("not running")?.to_string()
        );
        Ok(())
    });
}

/// nats-server 2.9 leaves its pid file behind; Tern removes it, so a stale file never names a
/// process that is gone (or, later, an unrelated one).
#[test]
fn pid_file_is_removed_on_graceful_shutdown() {
    for_each_server_kind_of(&[ServerKind::Tern], |kind| {
        let directory = tempfile::tempdir()?;
        let pid_file = pid_file_in(directory.path());
        let mut server = start_with_pid_file(kind, ServerConfig::new(), &pid_file)?;
        assert!(pid_file.is_file(), "no pid file at {}", pid_file.display());
        let status = server.stop()?;
        assert!(status.success(), "exit status after SIGTERM: {status}");
        assert!(
            !pid_file.exists(),
            "the pid file {} outlived the server",
            pid_file.display()
        );
        Ok(())
    });
}

#[test]
fn ports_file_names_the_client_and_monitoring_urls() {
    for_each_server_kind(|kind| {
        let server = ServerProcess::start(kind, ServerConfig::new().with_monitoring())?;
        let path = ports_file_path(&server)?;
        let content = fs::read_to_string(&path)?;
        let ports: serde_json::Value = serde_json::from_str(&content)
            .with_context(|| format!("{} is not JSON: {content}", path.display()))?;

        let client_urls = ports["nats"]
            .as_array()
            .with_context(|| format!("no \"nats\" list in {content}"))?;
        assert_eq!(client_urls.len(), 1, "{content}");
        let client_url = client_urls[0].as_str().context("a URL is not a string")?;
        let client_address = client_url
            .strip_prefix("nats://")
            .with_context(|| format!("{client_url} is not a nats:// URL"))?;
        let mut client = RawClient::connect(client_address.parse()?)?;
        let info = client.read_info()?;
        assert_eq!(
            client_address,
            format!("127.0.0.1:{}", info["port"]),
            "the INFO of the listener the ports file names: {info}"
        );

        let monitoring_urls = ports["monitoring"]
            .as_array()
            .with_context(|| format!("no \"monitoring\" list in {content}"))?;
        assert_eq!(monitoring_urls.len(), 1, "{content}");
        let monitoring_url = monitoring_urls[0]
            .as_str()
            .context("a URL is not a string")?;
        let monitoring_address = monitoring_url
            .strip_prefix("http://")
            .with_context(|| format!("{monitoring_url} is not an http:// URL"))?;
        let health = http_get(monitoring_address.parse()?, "/healthz")?;
        assert_eq!(health.status, 200, "{}", health.body);
        Ok(())
    });
}

#[test]
fn sighup_reload_closes_only_connections_whose_credentials_no_longer_pass() {
    for_each_server_kind(|kind| {
        let server = ServerProcess::start(kind, ServerConfig::from_text(TWO_USERS_CONFIG))?;
        let mut alice = RawClient::connected(&server, &credentials("alice", "alice-pass"))?;
        alice.send("SUB news 1\r\nPING\r\n")?;
        alice.expect("PONG\r\n")?;
        let mut bob = RawClient::connected(&server, &credentials("bob", "bob-pass"))?;

        fs::write(server.config_path(), BOB_WITH_A_NEW_PASSWORD_CONFIG)?;
        server.signal(Signal::Hangup)?;

        assert_eq!(
            next_frame_answering_pings(&mut bob)?,
            Frame::Error("Authorization Violation".to_string())
        );
        bob.expect_closed()?;

        alice.send("PING\r\n")?;
        alice.expect("PONG\r\n")?;
        let mut new_bob = RawClient::connected(&server, &credentials("bob", "bob-new-pass"))?;
        new_bob.send("PUB news 5\r\nafter\r\nPING\r\n")?;
        new_bob.expect("PONG\r\n")?;
        alice.expect("MSG news 1 5\r\nafter\r\n")?;
        assert!(
            !can_connect(&server, "bob", "bob-pass"),
            "the old password still passes after the reload"
        );
        Ok(())
    });
}

#[test]
fn reload_with_a_broken_config_file_changes_nothing() {
    for_each_server_kind(|kind| {
        let server = ServerProcess::start(kind, ServerConfig::from_text(ALICE_ONLY_CONFIG))?;
        let mut alice = RawClient::connected(&server, &credentials("alice", "alice-pass"))?;
        alice.send("SUB news 1\r\nPING\r\n")?;
        alice.expect("PONG\r\n")?;

        fs::write(server.config_path(), BROKEN_CONFIG)?;
        server.signal(Signal::Hangup)?;
        wait_until(
            "the server to log the failed reload",
            DEFAULT_TIMEOUT,
            POLL_INTERVAL,
            || {
                server
                    .log()
                    .contains("Failed to reload server configuration")
                    .then_some(())
            },
        )?;

        still_receives_its_own_messages(&mut alice, "news")?;
        let mut second_alice =
            RawClient::connected(&server, &credentials("alice", "alice-pass"))
                .context("the old credentials stopped working after a failed reload")?;
        second_alice.send("PUB news 4\r\nmore\r\nPING\r\n")?;
        second_alice.expect("PONG\r\n")?;
        alice.expect("MSG news 1 4\r\nmore\r\n")?;
        assert!(
            !can_connect(&server, "alice", "changed-pass"),
            "the broken file's password was applied"
        );
        Ok(())
    });
}

#[test]
fn signal_reload_with_a_pid_file_applies_the_new_config() {
    for_each_server_kind(|kind| {
        let directory = tempfile::tempdir()?;
        let pid_file = pid_file_in(directory.path());
        let server =
            start_with_pid_file(kind, ServerConfig::from_text(ALICE_ONLY_CONFIG), &pid_file)?;
        let mut alice = RawClient::connected(&server, &credentials("alice", "alice-pass"))?;
        alice.send("SUB news 1\r\nPING\r\n")?;
        alice.expect("PONG\r\n")?;
        assert!(!can_connect(&server, "carol", "carol-pass"));

        fs::write(server.config_path(), ALICE_AND_CAROL_CONFIG)?;
        let reload_argument = format!("reload={}", pid_file.display());
        let outcome = run_to_exit(kind, &["--signal", &reload_argument], COMMAND_TIMEOUT)?;
        assert!(
            outcome.status.success(),
            "--signal {reload_argument} exited {}: {}",
            outcome.status,
            outcome.output()
        );

        wait_until(
            "the user added by the reload to be accepted",
            DEFAULT_TIMEOUT,
            POLL_INTERVAL,
            || can_connect(&server, "carol", "carol-pass").then_some(()),
        )?;
        still_receives_its_own_messages(&mut alice, "news")?;
        Ok(())
    });
}
