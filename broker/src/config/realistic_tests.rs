#![allow(clippy::unwrap_used, clippy::panic)]

//! A production-shaped config exercising every supported option together, through the same
//! entry points `main.rs` uses.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::options::{Listen, User};

const MAIN_CONF: &str = r#"
# Tern / NATS server configuration
server_name: "tern-east-1"
listen: 0.0.0.0:4222
client_advertise: "nats.east.example.com:4222"
http: "127.0.0.1:8222"

# Limits
max_control_line: 4KB
max_payload: 2MB
max_pending: 64MB
max_connections: 10k
max_subscriptions: 100000
max_closed_clients: 5000

// Liveness
ping_interval: "1m"
ping_max: 3
write_deadline: "5s"
lame_duck_duration: "1m30s"
lame_duck_grace_period: "15s"
no_header_support: false

# Logging
debug: false
trace: false
logtime: true
logtime_utc: true
log_file: "/var/log/tern/tern.log"
pid_file: "/var/run/tern.pid"
ports_file_dir: "/var/run"

SYSTEM_ACCOUNT_NAME = SYS
system_account: $SYSTEM_ACCOUNT_NAME

include ./auth.conf
no_auth_user: guest
"#;

const AUTH_CONF: &str = r#"
ADMIN_HASH: $2a$11$W2zko751KUvVy59mUTWmpOdWjpEm5qhcCZRd05GjI/sSOT.xtiHyG
authorization {
  timeout: 3
  users = [
    { user: admin, password: $ADMIN_HASH }
    { user: "app", password: $APP_PASSWORD }
    { user: guest, password: "" }
  ]
}
"#;

fn sources() -> MemorySources {
    MemorySources::new()
        .with_file("/etc/tern/tern.conf", MAIN_CONF)
        .with_file("/etc/tern/auth.conf", AUTH_CONF)
        .with_environment_variable("APP_PASSWORD", "'s3cr3t pass'")
}

#[test]
fn a_realistic_config_loads_every_supported_option() {
    let options = load_with(Path::new("/etc/tern/tern.conf"), &sources()).unwrap();
    assert_eq!(options.server_name.as_deref(), Some("tern-east-1"));
    assert_eq!(
        options.listen,
        Listen {
            host: "0.0.0.0".into(),
            port: Some(4222)
        }
    );
    assert_eq!(
        options.client_advertise.as_deref(),
        Some("nats.east.example.com:4222")
    );
    assert_eq!(
        options.monitoring,
        Some(Listen {
            host: "127.0.0.1".into(),
            port: Some(8222)
        })
    );
    assert_eq!(options.max_control_line, 4096);
    assert_eq!(options.max_payload, 2 << 20);
    assert_eq!(options.max_pending, 64 << 20);
    assert_eq!(options.max_connections, 10_000);
    assert_eq!(options.max_subscriptions, 100_000);
    assert_eq!(options.max_closed_clients, 5000);
    assert_eq!(options.ping_interval, Duration::from_secs(60));
    assert_eq!(options.ping_max, 3);
    assert_eq!(options.write_deadline, Duration::from_secs(5));
    assert_eq!(options.lame_duck_duration, Duration::from_secs(90));
    assert_eq!(options.lame_duck_grace_period, Duration::from_secs(15));
    assert!(!options.no_header_support);
    assert!(!options.logging.debug && !options.logging.trace);
    assert!(options.logging.logtime && options.logging.logtime_utc);
    assert_eq!(
        options.logging.log_file,
        Some(PathBuf::from("/var/log/tern/tern.log"))
    );
    assert_eq!(options.pid_file, Some(PathBuf::from("/var/run/tern.pid")));
    assert_eq!(options.ports_file_dir, Some(PathBuf::from("/var/run")));
    assert_eq!(options.system_account.as_deref(), Some("SYS"));
    assert_eq!(options.no_auth_user.as_deref(), Some("guest"));
    assert_eq!(
        options.config_file,
        Some(PathBuf::from("/etc/tern/tern.conf"))
    );
    assert!(!options.watch_config);

    let authorization = &options.authorization;
    assert_eq!(authorization.timeout, Some(Duration::from_secs(3)));
    assert_eq!(authorization.users.len(), 3);
    assert!(authorization.users[0].password.starts_with("$2a$11$"));
    assert_eq!(
        authorization.users[1],
        User {
            user: "app".into(),
            password: "s3cr3t pass".into(),
            permissions: None,
            account: None,
            max_connections: None,
        }
    );
    assert!(authorization.is_required());
    // Keys used only as variables are definitions, not unknown options.
    assert!(options.warnings.is_empty(), "{:?}", options.warnings);
}

#[test]
fn the_command_line_overrides_the_realistic_config() {
    let arguments: Vec<String> = [
        "-c",
        "/etc/tern/tern.conf",
        "-p",
        "-1",
        "-DV",
        "--watch_config",
    ]
    .iter()
    .map(|argument| argument.to_string())
    .collect();
    let Command::Run(flags) = parse_command_line(&arguments).unwrap() else {
        panic!("expected Run")
    };
    let options = resolve_with(&flags, &sources()).unwrap();
    assert_eq!(options.listen.port, None);
    assert!(options.logging.debug && options.logging.trace);
    assert!(options.watch_config);
    assert_eq!(options.server_name.as_deref(), Some("tern-east-1"));
}

#[test]
fn flags_that_conflict_with_the_config_are_reported() {
    let flags = Flags {
        config_file: Some("/etc/tern/tern.conf".into()),
        token: Some("t".into()),
        ..Flags::default()
    };
    assert_eq!(
        resolve_with(&flags, &sources()).unwrap_err().to_string(),
        "can not have both a token and a users array"
    );
}

#[test]
fn resolving_without_a_config_file_gives_defaults_plus_flags() {
    let flags = Flags {
        port: Some(5222),
        ..Flags::default()
    };
    let options = resolve_with(&flags, &MemorySources::new()).unwrap();
    assert_eq!(options.listen.port, Some(5222));
    assert_eq!(options.config_file, None);
    assert_eq!(options.max_payload, crate::options::defaults::MAX_PAYLOAD);
}

#[test]
fn a_missing_environment_variable_in_an_include_names_the_included_file() {
    let sources = MemorySources::new()
        .with_file("/etc/tern/tern.conf", MAIN_CONF)
        .with_file("/etc/tern/auth.conf", AUTH_CONF);
    let error = load_with(Path::new("/etc/tern/tern.conf"), &sources).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("/etc/tern/auth.conf:7:30: variable reference for \"APP_PASSWORD\""),
        "{error}"
    );
}

#[test]
fn load_reads_real_files_and_their_includes() {
    let directory = std::env::temp_dir().join(format!("tern-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    std::fs::write(
        directory.join("main.conf"),
        "port: 4333\ninclude extra.conf\n",
    )
    .unwrap();
    std::fs::write(directory.join("extra.conf"), "server_name: from-include\n").unwrap();
    let loaded = load(&directory.join("main.conf"));
    std::fs::remove_dir_all(&directory).unwrap();
    let options = loaded.unwrap();
    assert_eq!(options.listen.port, Some(4333));
    assert_eq!(options.server_name.as_deref(), Some("from-include"));
}
