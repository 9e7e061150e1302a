//! Runs a server binary to completion: `-v`, `-h`, `-t`, `--signal`, or a start that must fail.
//!
//! stdout and stderr go to files in a temp dir (so a chatty binary never blocks on a full pipe);
//! the process is polled until it exits, and killed when it outlives the deadline.

use std::fs::{self, File};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::HarnessError;
use crate::kind::ServerKind;

/// How long a command that should exit by itself may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// How a finished command ended and what it printed (lossy UTF-8).
#[derive(Debug, Clone)]
pub struct CommandOutcome {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CommandOutcome {
    /// stdout followed by stderr, for checks that do not care which stream a line went to.
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs the `kind` binary with `arguments` and waits up to `timeout` for it to exit; a process
/// still running then is killed and reported as [`HarnessError::ExitTimeout`].
pub fn run_to_exit(
    kind: ServerKind,
    arguments: &[&str],
    timeout: Duration,
) -> Result<CommandOutcome, HarnessError> {
    let binary = kind.binary()?;
    let directory = tempfile::Builder::new()
        .prefix(&format!("tern-e2e-command-{}-", kind.name()))
        .tempdir()
        .map_err(|error| HarnessError::io("creating the command directory", error))?;
    let stdout_path = directory.path().join("stdout");
    let stderr_path = directory.path().join("stderr");
    let create = |path: &std::path::Path| {
        File::create(path).map_err(|error| HarnessError::io("creating an output file", error))
    };
    let mut child = Command::new(&binary)
        .args(arguments)
        .stdin(Stdio::null())
        .stdout(Stdio::from(create(&stdout_path)?))
        .stderr(Stdio::from(create(&stderr_path)?))
        .spawn()
        .map_err(|source| HarnessError::Spawn {
            kind,
            binary: binary.clone(),
            source,
        })?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|error| HarnessError::io("waiting for the command", error))?
        {
            break status;
        }
        if Instant::now() >= deadline {
            // Best effort: it may exit between the check and the kill.
            let _ = child.kill();
            let _ = child.wait();
            return Err(HarnessError::ExitTimeout {
                kind,
                action: format!("running it with {arguments:?}"),
                timeout,
            });
        }
        thread::sleep(POLL_INTERVAL);
    };
    let read = |path: &std::path::Path| {
        fs::read(path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .map_err(|error| HarnessError::io("reading the command output", error))
    };
    Ok(CommandOutcome {
        status,
        stdout: read(&stdout_path)?,
        stderr: read(&stderr_path)?,
    })
}
