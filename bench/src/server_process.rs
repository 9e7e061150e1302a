//! A server under test, run as a child process that this benchmark owns.
//!
//! Both servers are started the same way: `-a 127.0.0.1 -p -1 --ports_file_dir <tmpdir>`,
//! output to a log file in that directory, and the client port read from the ports file the
//! server writes there (`<exe>_<pid>.ports`). A cluster member ([`ClusterOptions`]) also gets
//! `--cluster nats://127.0.0.1:-1 --cluster_name <name>` and, to join another member,
//! `--routes nats-route://<its cluster address>`; its cluster port is read from the same ports
//! file. A server of a TLS or WebSocket scenario also gets `-c <config file>` ([`ConfigFile`]:
//! the same file for both kinds of server); a WebSocket port is read from the ports file's
//! `websocket` key. Every child is recorded in a process-wide registry so that dropping a
//! [`ServerProcess`] *and* an interrupt ([`stop_all`]) kill it.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How long a server may take to write its ports file.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
const PORTS_FILE_POLL_INTERVAL: Duration = Duration::from_millis(5);
/// Lines of the server log shown when it fails.
const LOG_TAIL_LINES: usize = 15;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("not starting a server: the benchmark is being interrupted")]
    Interrupted,
    #[error("creating a temporary directory: {0}")]
    TemporaryDirectory(std::io::Error),
    #[error("starting {executable}: {source}")]
    Spawn {
        executable: String,
        source: std::io::Error,
    },
    #[error("{label} exited ({status}) {context}; log tail:\n{log_tail}")]
    Exited {
        label: String,
        status: String,
        context: &'static str,
        log_tail: String,
    },
    #[error("{label} wrote no ports file in {timeout:?}; log tail:\n{log_tail}")]
    NoPortsFile {
        label: String,
        timeout: Duration,
        log_tail: String,
    },
    #[error("ports file {path} lacks the {missing} address: {content}")]
    BadPortsFile {
        path: String,
        missing: &'static str,
        content: String,
    },
}

/// Makes a server a cluster member: it listens for routes on a port from the OS and, when
/// `routes` is not empty, connects to those members.
#[derive(Debug, Clone, Copy)]
pub struct ClusterOptions<'a> {
    pub name: &'a str,
    /// Cluster (route) addresses of members to connect to.
    pub routes: &'a [SocketAddr],
}

/// A configuration file passed with `-c` (command-line flags still win over it).
#[derive(Debug, Clone, Copy)]
pub struct ConfigFile<'a> {
    pub path: &'a Path,
    /// Whether it opens a WebSocket port, which the ports file must then list.
    pub websocket: bool,
}

/// The listening addresses read from a ports file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ports {
    client: SocketAddr,
    cluster: Option<SocketAddr>,
    websocket: Option<SocketAddr>,
}

/// Children that are running, by process id, with the directory holding their files, and
/// other directories to remove on an interrupt; once `stopping` is set no child may be added.
struct Registry {
    children: BTreeMap<u32, (Child, PathBuf)>,
    directories: Vec<PathBuf>,
    stopping: bool,
}

static RUNNING: Mutex<Registry> = Mutex::new(Registry {
    children: BTreeMap::new(),
    directories: Vec::new(),
    stopping: false,
});

fn running() -> MutexGuard<'static, Registry> {
    // The registry stays consistent even if a holder panicked: every change is one statement.
    RUNNING.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Kills every running server, removes its directory and refuses to start new ones; for
/// interrupts.
pub fn stop_all() {
    let (children, directories) = {
        let mut registry = running();
        registry.stopping = true;
        (
            std::mem::take(&mut registry.children),
            std::mem::take(&mut registry.directories),
        )
    };
    for (_, (mut child, directory)) in children {
        kill_and_reap(&mut child);
        // Best effort: the process is about to exit.
        let _ = std::fs::remove_dir_all(directory);
    }
    for directory in directories {
        let _ = std::fs::remove_dir_all(directory);
    }
}

/// Has [`stop_all`] remove `directory` too (an interrupt exits without running destructors).
pub fn remove_on_interrupt(directory: &Path) {
    running().directories.push(directory.to_path_buf());
}

/// Whether [`stop_all`] has run: the benchmark is being interrupted.
pub fn interrupted() -> bool {
    running().stopping
}

fn kill_and_reap(child: &mut Child) {
    // Errors mean the child already exited; either way it is gone after wait.
    let _ = child.kill();
    let _ = child.wait();
}

#[derive(Debug)]
pub struct ServerProcess {
    label: String,
    pid: u32,
    client_address: SocketAddr,
    /// Set for cluster members.
    cluster_address: Option<SocketAddr>,
    /// Set when the config file opens a WebSocket port.
    websocket_address: Option<SocketAddr>,
    log_path: PathBuf,
    /// Removed on drop, after the child was killed.
    _directory: tempfile::TempDir,
}

impl ServerProcess {
    /// Starts `executable`, alone or as a cluster member, optionally with a config file, and
    /// waits until it has written its ports file (with the cluster address too for a member,
    /// and the WebSocket address when the config opens that port).
    pub fn start(
        label: &str,
        executable: &Path,
        cluster: Option<ClusterOptions<'_>>,
        config: Option<ConfigFile<'_>>,
    ) -> Result<Self, ServerError> {
        // Starting under the lock means an interrupt either prevents the start or finds the
        // child and its directory in the registry.
        let mut registry = running();
        if registry.stopping {
            return Err(ServerError::Interrupted);
        }
        let directory = tempfile::Builder::new()
            .prefix("tern-bench-")
            .tempdir()
            .map_err(ServerError::TemporaryDirectory)?;
        let log_path = directory.path().join("server.log");
        let spawn_error = |source| ServerError::Spawn {
            executable: executable.display().to_string(),
            source,
        };
        let log = File::create(&log_path).map_err(spawn_error)?;
        let log_for_stderr = log.try_clone().map_err(spawn_error)?;
        let mut command = Command::new(executable);
        if let Some(config) = config {
            command.arg("-c").arg(config.path);
        }
        command
            .args(["-a", "127.0.0.1", "-p", "-1", "--ports_file_dir"])
            .arg(directory.path());
        if let Some(cluster) = cluster {
            command.args([
                "--cluster",
                "nats://127.0.0.1:-1",
                "--cluster_name",
                cluster.name,
            ]);
            if !cluster.routes.is_empty() {
                let routes: Vec<String> = cluster
                    .routes
                    .iter()
                    .map(|address| format!("nats-route://{address}"))
                    .collect();
                command.arg("--routes").arg(routes.join(","));
            }
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_for_stderr)
            .spawn()
            .map_err(spawn_error)?;
        let pid = child.id();
        registry
            .children
            .insert(pid, (child, directory.path().to_path_buf()));
        drop(registry);
        // From here on, dropping `server` kills the child, including on the error paths below.
        let mut server = Self {
            label: label.to_owned(),
            pid,
            client_address: SocketAddr::from(([127, 0, 0, 1], 0)),
            cluster_address: None,
            websocket_address: None,
            log_path,
            _directory: directory,
        };
        let wanted = Wanted {
            cluster: cluster.is_some(),
            websocket: config.is_some_and(|config| config.websocket),
        };
        let ports = server.wait_for_ports_file(wanted)?;
        server.client_address = ports.client;
        server.cluster_address = ports.cluster;
        server.websocket_address = ports.websocket;
        Ok(server)
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn client_address(&self) -> SocketAddr {
        self.client_address
    }

    /// Where other members connect their routes; `None` unless started as a cluster member.
    pub fn cluster_address(&self) -> Option<SocketAddr> {
        self.cluster_address
    }

    /// Where WebSocket clients connect; `None` unless the config file opened that port.
    pub fn websocket_address(&self) -> Option<SocketAddr> {
        self.websocket_address
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// Fails if the server has exited (crashed) since it started.
    pub fn check_running(&self, context: &'static str) -> Result<(), ServerError> {
        let status = match running().children.get_mut(&self.pid) {
            Some((child, _)) => child.try_wait().ok().flatten(),
            None => None,
        };
        match status {
            Some(status) => Err(ServerError::Exited {
                label: self.label.clone(),
                status: status.to_string(),
                context,
                log_tail: self.log_tail(),
            }),
            None => Ok(()),
        }
    }

    fn wait_for_ports_file(&self, wanted: Wanted) -> Result<Ports, ServerError> {
        let suffix = format!("_{}.ports", self.pid);
        let directory = self.log_path.parent().unwrap_or(Path::new("."));
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while Instant::now() < deadline {
            self.check_running("before writing its ports file")?;
            if let Some(path) = find_ports_file(directory, &suffix) {
                // The file may be seen before it is fully written: retry until it parses.
                if let Ok(content) = std::fs::read_to_string(&path) {
                    let ports = ports_from(&content);
                    let missing = match ports {
                        None => Some("client"),
                        Some(ports) => wanted.missing(ports),
                    };
                    match (ports, missing) {
                        (Some(ports), None) => return Ok(ports),
                        (_, Some(missing)) if content.ends_with('}') => {
                            return Err(ServerError::BadPortsFile {
                                path: path.display().to_string(),
                                missing,
                                content,
                            });
                        }
                        _ => {}
                    }
                }
            }
            std::thread::sleep(PORTS_FILE_POLL_INTERVAL);
        }
        Err(ServerError::NoPortsFile {
            label: self.label.clone(),
            timeout: STARTUP_TIMEOUT,
            log_tail: self.log_tail(),
        })
    }

    /// The last lines of the server's output.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        if lines.is_empty() {
            return "(the server log is empty)".to_owned();
        }
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let entry = running().children.remove(&self.pid);
        if let Some((mut child, _)) = entry {
            kill_and_reap(&mut child);
        }
    }
}

/// Which addresses besides the client port a ports file must list.
#[derive(Debug, Clone, Copy)]
struct Wanted {
    cluster: bool,
    websocket: bool,
}

impl Wanted {
    /// The first wanted address `ports` lacks.
    fn missing(self, ports: Ports) -> Option<&'static str> {
        if self.cluster && ports.cluster.is_none() {
            Some("cluster")
        } else if self.websocket && ports.websocket.is_none() {
            Some("websocket")
        } else {
            None
        }
    }
}

fn find_ports_file(directory: &Path, suffix: &str) -> Option<PathBuf> {
    std::fs::read_dir(directory)
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.ends_with(suffix))
        })
}

/// The addresses in a complete ports file: the first client URL (nats-server 2.9 names the
/// key `nats`; `client` is accepted too), and the first cluster URL (key `cluster`) and
/// WebSocket URL (key `websocket`, `ws://host:port`), if any.
fn ports_from(content: &str) -> Option<Ports> {
    let ports: serde_json::Value = serde_json::from_str(content).ok()?;
    let first_address = |key: &str| -> Option<SocketAddr> {
        let url = ports.get(key)?.as_array()?.first()?.as_str()?;
        let host_port = url.rsplit_once("://").map_or(url, |(_, rest)| rest);
        host_port.parse().ok()
    };
    Some(Ports {
        client: first_address("nats").or_else(|| first_address("client"))?,
        cluster: first_address("cluster"),
        websocket: first_address("websocket"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_address_is_read_from_either_key() {
        let expected: SocketAddr = "127.0.0.1:4222".parse().expect("literal address");
        let client_only = Some(Ports {
            client: expected,
            cluster: None,
            websocket: None,
        });
        assert_eq!(
            ports_from(r#"{"nats":["nats://127.0.0.1:4222"]}"#),
            client_only
        );
        assert_eq!(
            ports_from(
                r#"{"client":["nats://127.0.0.1:4222"],"monitoring":["http://127.0.0.1:8222"]}"#
            ),
            client_only
        );
        assert_eq!(ports_from(r#"{"nats":[]}"#), None);
        assert_eq!(ports_from(r#"{"nats":["#), None);
    }

    #[test]
    fn cluster_address_is_read_when_present() {
        let ports =
            ports_from(r#"{"nats":["nats://127.0.0.1:4222"],"cluster":["nats://127.0.0.1:6222"]}"#);
        assert_eq!(
            ports.and_then(|ports| ports.cluster),
            Some("127.0.0.1:6222".parse().expect("literal address"))
        );
        assert_eq!(
            ports_from(r#"{"nats":["nats://127.0.0.1:4222"],"cluster":[]}"#)
                .map(|ports| ports.cluster),
            Some(None)
        );
    }

    #[test]
    fn websocket_address_is_read_when_present() {
        let content = r#"{"nats":["nats://127.0.0.1:4222"],"websocket":["ws://127.0.0.1:8080"]}"#;
        let ports = ports_from(content);
        assert_eq!(
            ports.and_then(|ports| ports.websocket),
            Some("127.0.0.1:8080".parse().expect("literal address"))
        );
        let wanted = Wanted {
            cluster: false,
            websocket: true,
        };
        assert_eq!(ports.and_then(|ports| wanted.missing(ports)), None);
        let plain = ports_from(r#"{"nats":["nats://127.0.0.1:4222"]}"#);
        assert_eq!(
            plain.and_then(|ports| wanted.missing(ports)),
            Some("websocket")
        );
    }
}
