//! `tern-operator run` as a process against the harness's control plane, with the identity and
//! RBAC the Helm chart gives it (a ServiceAccount token, not the admin's certificate).
//!
//! Contract: the binary comes from `TERN_OPERATOR_BIN`, else `<target>/debug/tern-operator`
//! beside the `tern` binary the harness uses; its log goes to a file in the given directory and
//! [`OperatorProcess::log`] quotes it; the process gets SIGTERM on [`OperatorProcess::stop`]
//! and is killed on drop.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::control_plane::{tail, ControlPlaneError};
use crate::kind::ServerKind;
use crate::wait::wait_until;

pub const OPERATOR_BINARY_VARIABLE: &str = "TERN_OPERATOR_BIN";

/// The operator binary.
pub fn operator_binary() -> Result<PathBuf, ControlPlaneError> {
    if let Some(path) = std::env::var_os(OPERATOR_BINARY_VARIABLE) {
        return Ok(PathBuf::from(path));
    }
    let broker = ServerKind::Tern
        .binary()
        .map_err(|error| ControlPlaneError::MissingBinary {
            binary: "tern".to_string(),
            reason: error.to_string(),
        })?;
    let path = broker.with_file_name("tern-operator");
    if path.is_file() {
        Ok(path)
    } else {
        Err(ControlPlaneError::MissingBinary {
            binary: "tern-operator".to_string(),
            reason: format!(
                "{} is not a file; run `cargo build -p tern-operator` or set {OPERATOR_BINARY_VARIABLE}",
                path.display()
            ),
        })
    }
}

/// One operator replica.
pub struct OperatorProcess {
    identity: String,
    child: Child,
    log: PathBuf,
    http: SocketAddr,
}

impl std::fmt::Debug for OperatorProcess {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("OperatorProcess")
            .field("identity", &self.identity)
            .field("http", &self.http)
            .finish()
    }
}

impl OperatorProcess {
    /// Starts a replica named `identity` (its `POD_NAME`) with `kubeconfig` and `arguments`
    /// after `run`; `/healthz` answering is waited for.
    pub fn start(
        identity: &str,
        kubeconfig: &Path,
        directory: &Path,
        arguments: &[&str],
    ) -> Result<Self, ControlPlaneError> {
        let http = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(|source| ControlPlaneError::Io {
                what: "cannot get a free port".to_string(),
                source,
            })?;
        let log = directory.join(format!("operator-{identity}.log"));
        let io = |what: String| move |source| ControlPlaneError::Io { what, source };
        let file =
            fs::File::create(&log).map_err(io(format!("cannot create {}", log.display())))?;
        let errors = file
            .try_clone()
            .map_err(io(format!("cannot share {}", log.display())))?;
        let child = Command::new(operator_binary()?)
            .arg("run")
            .arg(format!("--http-address={http}"))
            .args(arguments)
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAME", identity)
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(errors)
            .spawn()
            .map_err(io("cannot start tern-operator".to_string()))?;
        let mut operator = Self {
            identity: identity.to_string(),
            child,
            log,
            http,
        };
        let answered = wait_until(
            "the operator's /healthz",
            Duration::from_secs(20),
            Duration::from_millis(50),
            || {
                if operator.exited().is_some() {
                    return Some(false);
                }
                crate::http::http_get(http, "/healthz")
                    .ok()
                    .filter(|response| response.status == 200)
                    .map(|_| true)
            },
        );
        match answered {
            Ok(true) => Ok(operator),
            _ => Err(ControlPlaneError::NotReady {
                name: "tern-operator",
                reason: "its /healthz never answered".to_string(),
                log: operator.log(),
            }),
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The address of `/metrics`, `/healthz` and `/readyz`.
    pub fn http_address(&self) -> SocketAddr {
        self.http
    }

    /// The whole log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }

    /// The exit status, once it exited.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(error) => Some(error.to_string()),
        }
    }

    /// SIGTERM, then up to 20 s to exit, then SIGKILL; returns whether it exited by itself.
    pub fn stop(&mut self) -> bool {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(0));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let exited = wait_until(
            "the operator to exit",
            Duration::from_secs(20),
            Duration::from_millis(50),
            || self.exited().map(|_| ()),
        )
        .is_ok();
        if !exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        exited
    }

    /// SIGKILL: a replica that dies without releasing its Lease.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
