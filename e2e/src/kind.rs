//! Which server implementations a test run covers, and where their binaries are.
//!
//! `TERN_E2E_SERVERS` (a comma list, default `tern,nats-server`) selects the kinds. Binaries:
//! Tern from `TERN_BIN`, else `$CARGO_TARGET_DIR/debug/tern`, else `<workspace>/target/debug/tern`;
//! nats-server (Debian's 2.9) from `NATS_SERVER_BIN`, else the first `nats-server` on `PATH`;
//! the current nats-server release (2.12, built from its Go module by
//! `e2e/setup/install-test-deps.sh`) from `NATS_SERVER_CURRENT_BIN`, else
//! `<workspace>/.cache/nats-server-2.12/nats-server`, else `/tmp/nats212/nats-server`. A selected
//! kind whose binary is missing is an error, never a silent skip.
//!
//! The default selection leaves the current release out: the single-server suites expect 2.9's
//! exact bytes. Multi-server topologies (see [`crate::Topology`]) cover it whenever
//! `TERN_E2E_SERVERS` is unset.

use std::env;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::HarnessError;

/// Environment variable that selects the server kinds a run covers.
pub const SERVERS_VARIABLE: &str = "TERN_E2E_SERVERS";
/// Environment variable naming the Tern binary.
pub const TERN_BINARY_VARIABLE: &str = "TERN_BIN";
/// Environment variable naming the nats-server binary.
pub const NATS_SERVER_BINARY_VARIABLE: &str = "NATS_SERVER_BIN";
/// Environment variable naming the current-release nats-server binary.
pub const NATS_SERVER_CURRENT_BINARY_VARIABLE: &str = "NATS_SERVER_CURRENT_BIN";
/// Where `e2e/setup/install-test-deps.sh` installs the current release, under the workspace.
const NATS_SERVER_CURRENT_CACHE: &str = ".cache/nats-server-2.12/nats-server";
/// Where a machine-wide build of the current release may be.
const NATS_SERVER_CURRENT_SHARED: &str = "/tmp/nats212/nats-server";

/// A server implementation the harness can start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerKind {
    /// This repository's broker (`tern`).
    Tern,
    /// The reference implementation, `nats-server`, as the distribution ships it (2.9).
    NatsServer,
    /// The reference implementation's current release (2.12): route pooling, compression,
    /// a dedicated `$SYS` route.
    NatsServerCurrent,
}

impl ServerKind {
    /// Every kind the harness knows.
    pub const ALL: [ServerKind; 3] = [
        ServerKind::Tern,
        ServerKind::NatsServer,
        ServerKind::NatsServerCurrent,
    ];

    /// The kinds a run covers when `TERN_E2E_SERVERS` is unset, in that order.
    pub const DEFAULT_SELECTION: [ServerKind; 2] = [ServerKind::Tern, ServerKind::NatsServer];

    /// The name used in `TERN_E2E_SERVERS` and in failure messages.
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::Tern => "tern",
            ServerKind::NatsServer => "nats-server",
            ServerKind::NatsServerCurrent => "nats-server-current",
        }
    }

    /// Parses one name of `TERN_E2E_SERVERS`.
    pub fn from_name(name: &str) -> Result<Self, HarnessError> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.name() == name)
            .ok_or_else(|| HarnessError::UnknownServerKind {
                name: name.to_string(),
            })
    }

    /// The binary to run for this kind.
    pub fn binary(self) -> Result<PathBuf, HarnessError> {
        match self {
            ServerKind::Tern => tern_binary(),
            ServerKind::NatsServer => nats_server_binary(),
            ServerKind::NatsServerCurrent => nats_server_current_binary(),
        }
    }
}

impl fmt::Display for ServerKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// The kinds selected by `TERN_E2E_SERVERS`, in the order given, without duplicates
/// ([`ServerKind::DEFAULT_SELECTION`] when it is unset).
pub fn selected_server_kinds() -> Result<Vec<ServerKind>, HarnessError> {
    Ok(explicitly_selected_server_kinds()?
        .unwrap_or_else(|| ServerKind::DEFAULT_SELECTION.to_vec()))
}

/// The kinds `TERN_E2E_SERVERS` names, or `None` when it is unset.
pub fn explicitly_selected_server_kinds() -> Result<Option<Vec<ServerKind>>, HarnessError> {
    match env::var(SERVERS_VARIABLE) {
        Ok(value) => parse_server_kinds(&value).map(Some),
        Err(_) => Ok(None),
    }
}

fn parse_server_kinds(value: &str) -> Result<Vec<ServerKind>, HarnessError> {
    let mut kinds = Vec::new();
    for name in value
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
    {
        let kind = ServerKind::from_name(name)?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    if kinds.is_empty() {
        return Err(HarnessError::NoServerKindSelected {
            value: value.to_string(),
        });
    }
    Ok(kinds)
}

fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map_or_else(|| manifest_dir.to_path_buf(), Path::to_path_buf)
}

fn tern_binary() -> Result<PathBuf, HarnessError> {
    if let Some(path) = env::var_os(TERN_BINARY_VARIABLE) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(HarnessError::BinaryNotFound {
                kind: ServerKind::Tern,
                reason: format!("{TERN_BINARY_VARIABLE}={} is not a file", path.display()),
            })
        };
    }
    let mut candidates = Vec::new();
    if let Some(target_dir) = env::var_os("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(target_dir).join("debug").join("tern"));
    }
    candidates.push(workspace_root().join("target").join("debug").join("tern"));
    if let Some(found) = candidates.iter().find(|path| path.is_file()) {
        return Ok(found.clone());
    }
    let looked_at: Vec<String> = candidates
        .iter()
        .map(|path| path.display().to_string())
        .collect();
    Err(HarnessError::BinaryNotFound {
        kind: ServerKind::Tern,
        reason: format!(
            "none of {} exists; run `cargo build -p tern-broker --bin tern`, set {TERN_BINARY_VARIABLE}, \
             or select other kinds with {SERVERS_VARIABLE}=nats-server",
            looked_at.join(", ")
        ),
    })
}

fn nats_server_binary() -> Result<PathBuf, HarnessError> {
    if let Some(path) = env::var_os(NATS_SERVER_BINARY_VARIABLE) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(HarnessError::BinaryNotFound {
                kind: ServerKind::NatsServer,
                reason: format!(
                    "{NATS_SERVER_BINARY_VARIABLE}={} is not a file",
                    path.display()
                ),
            })
        };
    }
    let path_variable = env::var_os("PATH").unwrap_or_default();
    env::split_paths(&path_variable)
        .map(|directory| directory.join("nats-server"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| HarnessError::BinaryNotFound {
            kind: ServerKind::NatsServer,
            reason: format!(
                "no nats-server on PATH; run e2e/setup/install-test-deps.sh, set \
                 {NATS_SERVER_BINARY_VARIABLE}, or select other kinds with {SERVERS_VARIABLE}=tern"
            ),
        })
}

fn nats_server_current_binary() -> Result<PathBuf, HarnessError> {
    let kind = ServerKind::NatsServerCurrent;
    if let Some(path) = env::var_os(NATS_SERVER_CURRENT_BINARY_VARIABLE) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(HarnessError::BinaryNotFound {
                kind,
                reason: format!(
                    "{NATS_SERVER_CURRENT_BINARY_VARIABLE}={} is not a file",
                    path.display()
                ),
            })
        };
    }
    let candidates = [
        workspace_root().join(NATS_SERVER_CURRENT_CACHE),
        PathBuf::from(NATS_SERVER_CURRENT_SHARED),
    ];
    if let Some(found) = candidates.iter().find(|path| path.is_file()) {
        return Ok(found.clone());
    }
    let looked_at: Vec<String> = candidates
        .iter()
        .map(|path| path.display().to_string())
        .collect();
    Err(HarnessError::BinaryNotFound {
        kind,
        reason: format!(
            "none of {} exists; run e2e/setup/install-test-deps.sh (it builds nats-server 2.12 \
             with go), set {NATS_SERVER_CURRENT_BINARY_VARIABLE}, or select other kinds with \
             {SERVERS_VARIABLE}=tern,nats-server",
            looked_at.join(", ")
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_kinds_parse_in_order_without_duplicates() {
        let kinds = parse_server_kinds(" nats-server, tern,nats-server ").expect("valid list");
        assert_eq!(kinds, vec![ServerKind::NatsServer, ServerKind::Tern]);
        let kinds = parse_server_kinds("nats-server-current,nats-server").expect("valid list");
        assert_eq!(
            kinds,
            vec![ServerKind::NatsServerCurrent, ServerKind::NatsServer]
        );
    }

    #[test]
    fn unknown_or_empty_server_kind_lists_are_errors() {
        assert!(matches!(
            parse_server_kinds("tern,gnatsd"),
            Err(HarnessError::UnknownServerKind { .. })
        ));
        assert!(matches!(
            parse_server_kinds(" , "),
            Err(HarnessError::NoServerKindSelected { .. })
        ));
    }
}
