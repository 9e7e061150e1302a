//! The `tern` command line: version, help, config checks, refused flags, logging flags, the
//! startup log, a port in use, and credentials given as flags. Where nats-server 2.9.10 behaves
//! the same, a test runs against both; Tern-only behaviour (nats-server exits 0 on an unknown
//! flag, and it has the features Tern refuses) runs against Tern alone.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::net::TcpListener;

use anyhow::Context;
use tern_e2e::{
    for_each_server_kind, for_each_server_kind_of, run_to_exit, wait_until, CommandOutcome, Frame,
    RawClient, ServerConfig, ServerKind, ServerProcess, COMMAND_TIMEOUT, DEFAULT_TIMEOUT,
    QUIET_CONNECT,
};

const POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(25);

const VALID_CONFIG: &str =
    "port: 4222\nmax_payload: 65536\nauthorization {\n  user: alice\n  password: s3cret\n}\n";
/// Well-formed, but `max_payload` on line 2 is not a number.
const INVALID_VALUE_CONFIG: &str = "port: 4222\nmax_payload: \"lots\"\n";
/// The string opened on line 4 is never closed.
const SYNTAX_ERROR_CONFIG: &str =
    "port: 4222\nauthorization {\n  user: alice\n  password: \"unterminated\n}\n";

fn run(kind: ServerKind, arguments: &[&str]) -> anyhow::Result<CommandOutcome> {
    Ok(run_to_exit(kind, arguments, COMMAND_TIMEOUT)?)
}

/// `-t -c <file>` for a file holding `config_text`; returns the file's path and the outcome.
fn check_config(kind: ServerKind, config_text: &str) -> anyhow::Result<(String, CommandOutcome)> {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("checked.conf");
    fs::write(&path, config_text)?;
    let path = path.display().to_string();
    let outcome = run(kind, &["-t", "-c", &path])?;
    Ok((path, outcome))
}

/// The `line:column` that follows `<path>:` in `text`, when there is one.
fn position_after(text: &str, path: &str) -> Option<(u32, u32)> {
    let rest = &text[text.find(&format!("{path}:"))? + path.len() + 1..];
    let mut fields = rest.splitn(3, ':');
    let line = fields.next()?.parse().ok()?;
    let column = fields.next()?.parse().ok()?;
    fields.next()?;
    Some((line, column))
}

#[test]
fn version_flag_prints_the_version_and_exits_zero() {
    for_each_server_kind(|kind| {
        for flag in ["-v", "--version"] {
            let outcome = run(kind, &[flag])?;
            assert!(outcome.status.success(), "{flag}: {}", outcome.status);
            let prefix = format!("{}: v", kind.name());
            let version = outcome
                .stdout
                .strip_prefix(&prefix)
                .with_context(|| format!("{flag} printed {:?}", outcome.stdout))?;
            let version = version.split_whitespace().next().unwrap_or_default();
            let parts: Vec<&str> = version.split('.').collect();
            assert!(
                parts.len() == 3 && parts.iter().all(|part| part.parse::<u32>().is_ok()),
                "{flag} printed {:?}, not a semantic version",
                outcome.stdout
            );
        }
        Ok(())
    });
}

#[test]
fn help_flag_prints_usage_and_exits_zero() {
    for_each_server_kind(|kind| {
        for flag in ["-h", "--help"] {
            let outcome = run(kind, &[flag])?;
            assert!(outcome.status.success(), "{flag}: {}", outcome.status);
            let usage = format!("Usage: {} [options]", kind.name());
            assert!(
                outcome.stdout.contains(&usage),
                "{flag} printed {:?}",
                outcome.stdout
            );
            for option in ["--config", "--port", "--pid", "--signal"] {
                assert!(
                    outcome.stdout.contains(option),
                    "the usage does not mention {option}"
                );
            }
        }
        Ok(())
    });
}

#[test]
fn check_config_accepts_a_valid_file_and_exits_zero() {
    for_each_server_kind(|kind| {
        let (path, outcome) = check_config(kind, VALID_CONFIG)?;
        assert!(
            outcome.status.success(),
            "-t -c {path} exited {}: {}",
            outcome.status,
            outcome.output()
        );
        assert!(
            outcome.output().contains("is valid"),
            "{}",
            outcome.output()
        );
        Ok(())
    });
}

#[test]
fn check_config_rejects_an_invalid_value_naming_file_line_and_column() {
    for_each_server_kind(|kind| {
        let (path, outcome) = check_config(kind, INVALID_VALUE_CONFIG)?;
        assert!(
            !outcome.status.success(),
            "-t accepted {INVALID_VALUE_CONFIG:?}"
        );
        let (line, _column) = position_after(&outcome.stderr, &path).with_context(|| {
            format!(
                "stderr does not name {path}:line:column: {:?}",
                outcome.stderr
            )
        })?;
        assert_eq!(line, 2, "{}", outcome.stderr);
        Ok(())
    });
}

/// nats-server reports syntax errors as "Parse error on line N" without the file or column.
#[test]
fn check_config_rejects_a_syntax_error_naming_file_line_and_column() {
    for_each_server_kind_of(&[ServerKind::Tern], |kind| {
        let (path, outcome) = check_config(kind, SYNTAX_ERROR_CONFIG)?;
        assert!(
            !outcome.status.success(),
            "-t accepted {SYNTAX_ERROR_CONFIG:?}"
        );
        let (line, column) = position_after(&outcome.stderr, &path).with_context(|| {
            format!(
                "stderr does not name {path}:line:column: {:?}",
                outcome.stderr
            )
        })?;
        assert_eq!(line, 4, "{}", outcome.stderr);
        assert!(column > 0, "{}", outcome.stderr);
        Ok(())
    });
}

/// nats-server prints the usage and exits 0 on an unknown flag.
#[test]
fn unknown_flag_exits_non_zero_naming_the_flag() {
    for_each_server_kind_of(&[ServerKind::Tern], |kind| {
        let outcome = run(kind, &["--no_such_flag"])?;
        assert!(!outcome.status.success(), "exit status: {}", outcome.status);
        assert!(
            outcome.stderr.contains("unknown flag --no_such_flag"),
            "stderr: {:?}",
            outcome.stderr
        );
        Ok(())
    });
}

#[test]
fn flags_of_features_not_built_yet_are_refused_by_name() {
    for_each_server_kind_of(&[ServerKind::Tern], |kind| {
        let refused: [&[&str]; 4] = [
            &["-sd", "/tmp/tern-store"],
            &["--jetstream"],
            &["-js"],
            &["--syslog"],
        ];
        for flags in refused {
            let mut arguments = vec!["-a", "127.0.0.1", "-p", "-1"];
            arguments.extend_from_slice(flags);
            let outcome = run(kind, &arguments)?;
            assert!(
                !outcome.status.success(),
                "{flags:?} exited {}",
                outcome.status
            );
            let expected = format!("{} is not supported yet", flags[0]);
            assert!(
                outcome.stderr.contains(&expected),
                "{flags:?}: stderr {:?} does not say {expected:?}",
                outcome.stderr
            );
        }
        Ok(())
    });
}

/// Waits until a log line at one of `levels` mentions `needle`.
fn wait_for_log_line(server: &ServerProcess, levels: &[&str], needle: &str) -> anyhow::Result<()> {
    wait_until(
        &format!("a {levels:?} log line containing {needle:?}"),
        DEFAULT_TIMEOUT,
        POLL_INTERVAL,
        || {
            server
                .log()
                .lines()
                .any(|line| {
                    line.contains(needle) && levels.iter().any(|level| line.contains(level))
                })
                .then_some(())
        },
    )?;
    Ok(())
}

#[test]
fn debug_and_trace_flag_logs_client_connections() {
    for_each_server_kind(|kind| {
        let server = ServerProcess::start(kind, ServerConfig::new().with_argument("-DV"))?;
        let client = RawClient::connected(&server, QUIET_CONNECT)?;
        let client_address = client.local_address()?.to_string();
        wait_for_log_line(&server, &["[DBG]", "[TRC]"], &client_address)?;
        Ok(())
    });
}

#[test]
fn trace_flag_logs_received_protocol_operations() {
    for_each_server_kind(|kind| {
        let server = ServerProcess::start(kind, ServerConfig::new().with_argument("-V"))?;
        let mut client = RawClient::connected(&server, QUIET_CONNECT)?;
        client.send("SUB traced.subject 1\r\nPING\r\n")?;
        client.expect("PONG\r\n")?;
        wait_for_log_line(&server, &["[TRC]"], "<<- [CONNECT")?;
        wait_for_log_line(&server, &["[TRC]"], "<<- [SUB traced.subject 1]")?;
        Ok(())
    });
}

#[test]
fn startup_log_names_the_client_listener_and_readiness() {
    for_each_server_kind(|kind| {
        let server = ServerProcess::start(kind, ServerConfig::new())?;
        let listening = format!(
            "[INF] Listening for client connections on {}",
            server.client_address()
        );
        wait_for_log_line(&server, &["[INF]"], &listening)?;
        wait_for_log_line(&server, &["[INF]"], "Server is ready")?;
        Ok(())
    });
}

#[test]
fn port_already_in_use_exits_non_zero_with_a_fatal_log_line() {
    for_each_server_kind(|kind| {
        let occupant = TcpListener::bind("127.0.0.1:0")?;
        let port = occupant.local_addr()?.port().to_string();
        let outcome = run(kind, &["-a", "127.0.0.1", "-p", &port])?;
        assert!(!outcome.status.success(), "exit status: {}", outcome.status);
        let output = outcome.output();
        let fatal = output
            .lines()
            .find(|line| line.contains("[FTL]"))
            .with_context(|| format!("no [FTL] line in {output:?}"))?;
        assert!(
            fatal.contains(&port),
            "the [FTL] line does not name the port: {fatal}"
        );
        Ok(())
    });
}

fn assert_connect_is_rejected(server: &ServerProcess, connect_json: &str) -> anyhow::Result<()> {
    let mut client = RawClient::connect_to(server)?;
    let info = client.read_info()?;
    assert_eq!(info["auth_required"], true, "INFO: {info}");
    client.send(format!("CONNECT {connect_json}\r\nPING\r\n"))?;
    assert_eq!(
        client.read_frame()?,
        Frame::Error("Authorization Violation".to_string()),
        "CONNECT {connect_json}"
    );
    client.expect_closed()?;
    Ok(())
}

#[test]
fn user_and_pass_flags_require_those_credentials() {
    for_each_server_kind(|kind| {
        let config = ServerConfig::new()
            .with_argument("--user")
            .with_argument("alice")
            .with_argument("--pass")
            .with_argument("s3cret");
        let server = ServerProcess::start(kind, config)?;
        assert_connect_is_rejected(&server, QUIET_CONNECT)?;
        assert_connect_is_rejected(
            &server,
            r#"{"verbose":false,"user":"alice","pass":"wrong"}"#,
        )?;
        RawClient::connected(
            &server,
            r#"{"verbose":false,"user":"alice","pass":"s3cret"}"#,
        )?;
        Ok(())
    });
}

#[test]
fn auth_flag_requires_the_token() {
    for_each_server_kind(|kind| {
        let config = ServerConfig::new()
            .with_argument("--auth")
            .with_argument("t0ken-value");
        let server = ServerProcess::start(kind, config)?;
        assert_connect_is_rejected(&server, QUIET_CONNECT)?;
        assert_connect_is_rejected(&server, r#"{"verbose":false,"auth_token":"other"}"#)?;
        RawClient::connected(&server, r#"{"verbose":false,"auth_token":"t0ken-value"}"#)?;
        Ok(())
    });
}

#[test]
fn command_line_flags_override_the_config_file() {
    for_each_server_kind(|kind| {
        let server = ServerProcess::start(
            kind,
            ServerConfig::from_text("authorization {\n  token: from-the-file\n}\n")
                .with_argument("--auth")
                .with_argument("from-the-flag"),
        )?;
        assert_connect_is_rejected(&server, r#"{"verbose":false,"auth_token":"from-the-file"}"#)?;
        RawClient::connected(&server, r#"{"verbose":false,"auth_token":"from-the-flag"}"#)?;
        Ok(())
    });
}
