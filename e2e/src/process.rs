//! One server process (Tern or nats-server) started from config text in its own temp dir.
//!
//! The harness always passes `-a 127.0.0.1 -p -1 --ports_file_dir <dir>` (plus `-m -1` when
//! monitoring is wanted), so the OS picks the ports and the server tells them through the ports
//! file `<dir>/<exe file name>_<pid>.ports`. nats-server 2.9 names the client listener `nats` in
//! that file, the brief for Tern names it `client`; both are accepted. Other listeners (cluster,
//! websocket, ...) are kept by name. A server given a [`ClusterBlock`] gets a `cluster {}`
//! block appended to its config text, listening on a port from the OS; a restart keeps the
//! client, monitoring and cluster ports, so peers and clients find it where it was. stdout and
//! stderr go to `<dir>/server.log`, which failure messages quote. The child is killed on drop.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::cluster_block::ClusterBlock;
use crate::each_kind::record_server_log;
use crate::error::HarnessError;
use crate::kind::ServerKind;

/// How long a server may take to write its ports file (a debug build on a busy machine).
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a server may take to exit after SIGTERM before it is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How often readiness and exit are polled.
const POLL_INTERVAL: Duration = Duration::from_millis(10);
/// The config file's name inside the server's directory.
const CONFIG_FILE_NAME: &str = "server.conf";
/// Lines of the server log quoted in failure messages.
const LOG_TAIL_LINES: usize = 60;
/// How long a complete ports file may lack a listener that was asked for before that is an
/// error (a server that rewrites the file as listeners come up gets this long).
const MISSING_LISTENER_GRACE: Duration = Duration::from_secs(1);

/// What to start: config file text, whether monitoring is on, the cluster block, and extra
/// command-line flags.
#[derive(Debug, Clone, Default)]
pub struct ServerConfig {
    config_text: String,
    monitoring: bool,
    cluster: Option<ClusterBlock>,
    extra_arguments: Vec<String>,
}

impl ServerConfig {
    /// No config file: the server's defaults on a random client port.
    pub fn new() -> Self {
        Self::default()
    }

    /// Config file text (the nats-server `.conf` language), written to `<dir>/server.conf`.
    pub fn from_text(config_text: impl Into<String>) -> Self {
        Self {
            config_text: config_text.into(),
            ..Self::default()
        }
    }

    /// Also start the monitoring HTTP listener on a random port (`-m -1`).
    pub fn with_monitoring(mut self) -> Self {
        self.monitoring = true;
        self
    }

    /// A `cluster {}` block appended to the config text (which must not have its own), its
    /// listener on `127.0.0.1` with a port from the OS that restarts keep.
    pub fn with_cluster(mut self, cluster: ClusterBlock) -> Self {
        self.cluster = Some(cluster);
        self
    }

    /// One more command-line argument, passed after the harness's own flags.
    pub fn with_argument(mut self, argument: impl Into<String>) -> Self {
        self.extra_arguments.push(argument.into());
        self
    }

    /// The config file text (without the cluster block).
    pub fn config_text(&self) -> &str {
        &self.config_text
    }

    /// The cluster block, when the server is part of a cluster.
    pub fn cluster(&self) -> Option<&ClusterBlock> {
        self.cluster.as_ref()
    }

    /// The config file as written: the text, then the cluster block listening on
    /// `cluster_port` (`-1`, a port from the OS, when `None`).
    fn file_text(&self, cluster_port: Option<u16>) -> String {
        match &self.cluster {
            None => self.config_text.clone(),
            Some(cluster) => format!("{}\n{}", self.config_text, cluster.render(cluster_port)),
        }
    }

    /// The listeners the ports file must name besides the client one.
    fn required_listeners(&self) -> Vec<&'static str> {
        let mut listeners = Vec::new();
        if self.monitoring {
            listeners.push(MONITORING_LISTENER);
        }
        if self.cluster.is_some() {
            listeners.push(CLUSTER_LISTENER);
        }
        listeners
    }
}

/// The ports file's name for the monitoring listener.
const MONITORING_LISTENER: &str = "monitoring";
/// The ports file's name for the route listener.
const CLUSTER_LISTENER: &str = "cluster";

/// A signal the harness can send to a server (through the `kill` utility, so no unsafe code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGHUP: reload the configuration.
    Hangup,
    /// SIGINT: graceful shutdown.
    Interrupt,
    /// SIGTERM: graceful shutdown.
    Terminate,
    /// SIGKILL.
    Kill,
    /// SIGUSR1: reopen the log file.
    User1,
    /// SIGUSR2: lame duck mode.
    User2,
}

impl Signal {
    fn name(self) -> &'static str {
        match self {
            Signal::Hangup => "HUP",
            Signal::Interrupt => "INT",
            Signal::Terminate => "TERM",
            Signal::Kill => "KILL",
            Signal::User1 => "USR1",
            Signal::User2 => "USR2",
        }
    }
}

/// The listeners a server reported in its ports file.
#[derive(Debug, Clone)]
pub struct Ports {
    client: SocketAddr,
    monitoring: Option<SocketAddr>,
    cluster: Option<SocketAddr>,
    urls: BTreeMap<String, Vec<String>>,
}

impl Ports {
    /// Parses ports file content such as
    /// `{"client":["nats://127.0.0.1:4222"],"monitoring":["http://127.0.0.1:8222"]}`.
    pub fn parse(path: &Path, content: &str) -> Result<Self, HarnessError> {
        let invalid = |reason: &str| HarnessError::InvalidPortsFile {
            path: path.to_path_buf(),
            reason: reason.to_string(),
            content: content.to_string(),
        };
        let urls: BTreeMap<String, Vec<String>> =
            serde_json::from_str(content).map_err(|error| invalid(&error.to_string()))?;
        let first_address = |name: &str| -> Result<Option<SocketAddr>, HarnessError> {
            match urls.get(name).and_then(|list| list.first()) {
                None => Ok(None),
                Some(url) => url_address(url)
                    .map(Some)
                    .ok_or_else(|| invalid(&format!("{name} URL {url:?} has no ip:port"))),
            }
        };
        let client = match first_address("client")? {
            Some(address) => address,
            None => first_address("nats")?
                .ok_or_else(|| invalid("no \"client\" (or \"nats\") listener"))?,
        };
        let monitoring = first_address(MONITORING_LISTENER)?;
        let cluster = first_address(CLUSTER_LISTENER)?;
        Ok(Self {
            client,
            monitoring,
            cluster,
            urls,
        })
    }

    /// The client listener.
    pub fn client(&self) -> SocketAddr {
        self.client
    }

    /// The monitoring HTTP listener, when one was started.
    pub fn monitoring(&self) -> Option<SocketAddr> {
        self.monitoring
    }

    /// The route listener, when the server has a cluster block.
    pub fn cluster(&self) -> Option<SocketAddr> {
        self.cluster
    }

    /// Whether the listener `name` (`monitoring`, `cluster`, ...) is listed.
    fn lists(&self, name: &str) -> bool {
        self.urls.get(name).is_some_and(|urls| !urls.is_empty())
    }

    /// Every URL the ports file lists under `name` (`cluster`, `websocket`, ...).
    pub fn urls(&self, name: &str) -> &[String] {
        self.urls.get(name).map_or(&[], Vec::as_slice)
    }
}

/// `scheme://host:port[/...]` → the socket address, when host is an IP literal.
fn url_address(url: &str) -> Option<SocketAddr> {
    let without_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = without_scheme.split('/').next()?;
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, rest)| rest);
    authority.parse().ok()
}

/// A running (or stopped, restartable) server process. Killed on drop.
#[derive(Debug)]
pub struct ServerProcess {
    kind: ServerKind,
    binary: PathBuf,
    config: ServerConfig,
    directory: TempDir,
    log_path: PathBuf,
    child: Option<Child>,
    ports: Ports,
}

impl ServerProcess {
    /// Starts a server of `kind` and waits until its ports file names its listeners.
    pub fn start(kind: ServerKind, config: ServerConfig) -> Result<Self, HarnessError> {
        let binary = kind.binary()?;
        let directory = tempfile::Builder::new()
            .prefix(&format!("tern-e2e-{}-", kind.name()))
            .tempdir()
            .map_err(|error| HarnessError::io("creating the server directory", error))?;
        let log_path = directory.path().join("server.log");
        write_config_file(&config, directory.path(), None)?;
        let (child, ports) =
            spawn_until_ready(kind, &binary, &config, directory.path(), &log_path, None)?;
        Ok(Self {
            kind,
            binary,
            config,
            directory,
            log_path,
            child: Some(child),
            ports,
        })
    }

    /// Which implementation this is.
    pub fn kind(&self) -> ServerKind {
        self.kind
    }

    /// The client listener address (stays the same across [`ServerProcess::restart`]).
    pub fn client_address(&self) -> SocketAddr {
        self.ports.client()
    }

    /// `nats://127.0.0.1:<port>` for client libraries.
    pub fn client_url(&self) -> String {
        format!("nats://{}", self.ports.client())
    }

    /// The route listener, when started with [`ServerConfig::with_cluster`] (stays the same
    /// across [`ServerProcess::restart`]).
    pub fn cluster_address(&self) -> Option<SocketAddr> {
        self.ports.cluster()
    }

    /// `nats-route://127.0.0.1:<port>` for other servers' `routes`, when clustered.
    pub fn route_url(&self) -> Option<String> {
        self.ports
            .cluster()
            .map(|address| format!("nats-route://{address}"))
    }

    /// What the server was started from.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Whether the process runs (it was not stopped or killed, and has not been reaped).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The monitoring listener, when started with [`ServerConfig::with_monitoring`].
    pub fn monitoring_address(&self) -> Option<SocketAddr> {
        self.ports.monitoring()
    }

    /// The WebSocket listener, from the ports file (`websocket: ["ws://host:port"]`).
    pub fn websocket_address(&self) -> Option<SocketAddr> {
        let url = self.ports.urls("websocket").first()?;
        let authority = url
            .split_once("://")
            .map_or(url.as_str(), |(_, rest)| rest)
            .trim_end_matches('/');
        authority.parse().ok()
    }

    /// Everything the ports file reported.
    pub fn ports(&self) -> &Ports {
        &self.ports
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The server's own directory (config file, ports file, log); gone after drop.
    pub fn directory(&self) -> &Path {
        self.directory.path()
    }

    /// Where the config file is (`<directory>/server.conf`); rewrite it and send
    /// [`Signal::Hangup`] to test a reload. Absent when the server was started without config
    /// text. A clustered server's file is written again by [`ServerProcess::start_again`] (to
    /// pin the cluster port), which undoes such rewrites.
    pub fn config_path(&self) -> PathBuf {
        self.directory.path().join(CONFIG_FILE_NAME)
    }

    /// The server's stdout and stderr so far (lossy UTF-8; empty when unreadable).
    pub fn log(&self) -> String {
        read_log(&self.log_path)
    }

    /// Sends `signal` to the running server.
    pub fn signal(&self, signal: Signal) -> Result<(), HarnessError> {
        let pid = self.pid().ok_or(HarnessError::NotRunning)?;
        let status = Command::new("kill")
            .arg("-s")
            .arg(signal.name())
            .arg(pid.to_string())
            .status()
            .map_err(|error| HarnessError::io("running kill", error))?;
        if status.success() {
            Ok(())
        } else {
            Err(HarnessError::io(
                format!("sending SIG{} to {pid}", signal.name()),
                std::io::Error::other(format!("kill exited with {status}")),
            ))
        }
    }

    /// Waits up to `timeout` for the server to exit by itself (after a signal, say).
    pub fn wait_for_exit(&mut self, timeout: Duration) -> Result<ExitStatus, HarnessError> {
        let kind = self.kind;
        let child = self.child.as_mut().ok_or(HarnessError::NotRunning)?;
        let status = wait_child(child, timeout)?.ok_or_else(|| HarnessError::ExitTimeout {
            kind,
            action: "waiting for it to exit".to_string(),
            timeout,
        })?;
        self.child = None;
        Ok(status)
    }

    /// Graceful stop: SIGTERM, then SIGKILL if it has not exited within [`STOP_TIMEOUT`].
    pub fn stop(&mut self) -> Result<ExitStatus, HarnessError> {
        self.signal(Signal::Terminate)?;
        match self.wait_for_exit(STOP_TIMEOUT) {
            Ok(status) => Ok(status),
            Err(HarnessError::ExitTimeout { .. }) => {
                self.kill()?;
                Err(HarnessError::ExitTimeout {
                    kind: self.kind,
                    action: "SIGTERM (it was killed)".to_string(),
                    timeout: STOP_TIMEOUT,
                })
            }
            Err(error) => Err(error),
        }
    }

    /// Kills the server at once (SIGKILL) and reaps it.
    pub fn kill(&mut self) -> Result<(), HarnessError> {
        let mut child = self.child.take().ok_or(HarnessError::NotRunning)?;
        child
            .kill()
            .map_err(|error| HarnessError::io("killing the server", error))?;
        child
            .wait()
            .map_err(|error| HarnessError::io("reaping the server", error))?;
        Ok(())
    }

    /// Starts the stopped server again with the same config on the same client (and monitoring
    /// and cluster) port, so clients and peers can reconnect to the address they had.
    pub fn start_again(&mut self) -> Result<(), HarnessError> {
        if self.child.is_some() {
            return Err(HarnessError::io(
                "starting the server again",
                std::io::Error::other("it is still running; stop or kill it first"),
            ));
        }
        append_log_marker(&self.log_path, "--- started again by the harness ---");
        let previous = self.ports.clone();
        if self.config.cluster.is_some() {
            write_config_file(
                &self.config,
                self.directory.path(),
                previous.cluster().map(|address| address.port()),
            )?;
        }
        let (child, ports) = spawn_until_ready(
            self.kind,
            &self.binary,
            &self.config,
            self.directory.path(),
            &self.log_path,
            Some(&previous),
        )?;
        self.child = Some(child);
        self.ports = ports;
        Ok(())
    }

    /// Kills the server and starts it again on the same ports.
    pub fn restart(&mut self) -> Result<(), HarnessError> {
        if self.child.is_some() {
            self.kill()?;
        }
        self.start_again()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Best effort: the process may already have exited.
            let _ = child.kill();
            let _ = child.wait();
        }
        record_server_log(format!(
            "{} log ({}):\n{}",
            self.kind,
            self.log_path.display(),
            log_tail(&self.log(), LOG_TAIL_LINES)
        ));
    }
}

/// Writes `<directory>/server.conf` when the config has any text (or a cluster block).
fn write_config_file(
    config: &ServerConfig,
    directory: &Path,
    cluster_port: Option<u16>,
) -> Result<(), HarnessError> {
    let text = config.file_text(cluster_port);
    if text.is_empty() {
        return Ok(());
    }
    fs::write(directory.join(CONFIG_FILE_NAME), text)
        .map_err(|error| HarnessError::io("writing the config file", error))
}

/// Spawns the server and polls for its ports file. With `previous`, the client and monitoring
/// ports are reused instead of `-1` (the cluster port is pinned in the config file).
fn spawn_until_ready(
    kind: ServerKind,
    binary: &Path,
    config: &ServerConfig,
    directory: &Path,
    log_path: &Path,
    previous: Option<&Ports>,
) -> Result<(Child, Ports), HarnessError> {
    let client_port = previous.map_or_else(
        || "-1".to_string(),
        |ports| ports.client().port().to_string(),
    );
    let mut command = Command::new(binary);
    command
        .arg("-a")
        .arg("127.0.0.1")
        .arg("-p")
        .arg(client_port)
        .arg("--ports_file_dir")
        .arg(directory);
    if !config.file_text(None).is_empty() {
        command.arg("-c").arg(directory.join(CONFIG_FILE_NAME));
    }
    if config.monitoring {
        let monitoring_port = previous
            .and_then(Ports::monitoring)
            .map_or_else(|| "-1".to_string(), |address| address.port().to_string());
        command.arg("-m").arg(monitoring_port);
    }
    command.args(&config.extra_arguments);

    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .map_err(|error| HarnessError::io("opening the server log", error))?;
    let log_for_stdout = log
        .try_clone()
        .map_err(|error| HarnessError::io("duplicating the server log handle", error))?;
    command
        .stdin(Stdio::null())
        .stdout(Stdio::from(log_for_stdout))
        .stderr(Stdio::from(log));

    let mut child = command.spawn().map_err(|source| HarnessError::Spawn {
        kind,
        binary: binary.to_path_buf(),
        source,
    })?;

    match wait_for_ports_file(
        kind,
        binary,
        &mut child,
        directory,
        log_path,
        &config.required_listeners(),
    ) {
        Ok(ports) => Ok((child, ports)),
        Err(error) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(error)
        }
    }
}

fn wait_for_ports_file(
    kind: ServerKind,
    binary: &Path,
    child: &mut Child,
    directory: &Path,
    log_path: &Path,
    required_listeners: &[&str],
) -> Result<Ports, HarnessError> {
    let executable_name = binary
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ports_path = directory.join(format!("{executable_name}_{}.ports", child.id()));
    let deadline = Instant::now() + START_TIMEOUT;
    let mut last_problem: Option<HarnessError> = None;
    let mut incomplete_since: Option<Instant> = None;
    while Instant::now() < deadline {
        if let Some(status) = child
            .try_wait()
            .map_err(|error| HarnessError::io("checking whether the server runs", error))?
        {
            return Err(HarnessError::ExitedBeforeReady {
                kind,
                status: status.to_string(),
                log: log_tail(&read_log(log_path), LOG_TAIL_LINES),
            });
        }
        if let Ok(content) = fs::read_to_string(&ports_path) {
            match Ports::parse(&ports_path, &content) {
                Ok(ports) => {
                    let missing = required_listeners
                        .iter()
                        .find(|listener| !ports.lists(listener));
                    let Some(missing) = missing else {
                        return Ok(ports);
                    };
                    let problem = HarnessError::InvalidPortsFile {
                        path: ports_path.clone(),
                        reason: format!("the {missing} listener was configured but is not listed"),
                        content,
                    };
                    let since = *incomplete_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= MISSING_LISTENER_GRACE {
                        return Err(problem);
                    }
                    last_problem = Some(problem);
                }
                // Possibly caught half-written: poll again.
                Err(error) => last_problem = Some(error),
            }
        }
        thread::sleep(POLL_INTERVAL);
    }
    if let Some(problem) = last_problem {
        return Err(problem);
    }
    Err(HarnessError::PortsFileTimeout {
        kind,
        expected: ports_path,
        found: directory_listing(directory),
        timeout: START_TIMEOUT,
        log: log_tail(&read_log(log_path), LOG_TAIL_LINES),
    })
}

/// Polls `child` until it exits or `timeout` passes.
fn wait_child(child: &mut Child, timeout: Duration) -> Result<Option<ExitStatus>, HarnessError> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|error| HarnessError::io("waiting for the server", error))?
        {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        thread::sleep(POLL_INTERVAL);
    }
}

fn read_log(path: &Path) -> String {
    fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

fn append_log_marker(path: &Path, marker: &str) {
    if let Ok(mut file) = OpenOptions::new().append(true).open(path) {
        // The marker only helps a reader of the log; failing to write it changes nothing.
        let _ = writeln!(file, "{marker}");
    }
}

fn log_tail(log: &str, lines: usize) -> String {
    let all: Vec<&str> = log.lines().collect();
    let start = all.len().saturating_sub(lines);
    if all.is_empty() {
        "(empty)".to_string()
    } else {
        all[start..].join("\n")
    }
}

fn directory_listing(directory: &Path) -> String {
    let names: Vec<String> = fs::read_dir(directory)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        "nothing".to_string()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_file_with_client_key_is_understood() {
        let ports = Ports::parse(
            Path::new("tern_1.ports"),
            r#"{"client":["nats://127.0.0.1:4222"],"monitoring":["http://127.0.0.1:8222"]}"#,
        )
        .expect("valid ports file");
        assert_eq!(ports.client().port(), 4222);
        assert_eq!(ports.monitoring().map(|address| address.port()), Some(8222));
    }

    #[test]
    fn ports_file_with_nats_key_is_understood() {
        let ports = Ports::parse(
            Path::new("nats-server_1.ports"),
            r#"{"nats":["nats://127.0.0.1:4222"],"cluster":["nats://127.0.0.1:6222"]}"#,
        )
        .expect("valid ports file");
        assert_eq!(ports.client().port(), 4222);
        assert_eq!(ports.monitoring(), None);
        assert_eq!(ports.urls("cluster"), ["nats://127.0.0.1:6222"]);
        assert_eq!(ports.cluster().map(|address| address.port()), Some(6222));
    }

    #[test]
    fn ports_file_without_a_client_listener_is_rejected() {
        let result = Ports::parse(
            Path::new("x.ports"),
            r#"{"monitoring":["http://127.0.0.1:1"]}"#,
        );
        assert!(matches!(result, Err(HarnessError::InvalidPortsFile { .. })));
    }
}
