//! Process lifecycle around a running server: Unix signals, reload from the config file, the
//! opt-in config file watch, and `--signal` sent to another server process.
//!
//! Contract: `handle_signals` runs until the server shuts down. SIGINT and SIGTERM shut down
//! gracefully (SIGTERM is ignored while lame duck mode runs, as nats-server does), SIGUSR2
//! enters lame duck mode, SIGHUP reloads, SIGUSR1 reopens the log file. A reload re-reads the
//! config file through the same loader as startup; a file that does not load, or that changes
//! an option that cannot change at run time, changes nothing and logs why.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use thiserror::Error;
use tokio::signal::unix::{signal, SignalKind};

use crate::logging;
use crate::options::ServerOptions;
use crate::server::Server;

/// Loads the options a reload should apply (the config file plus the original flags).
pub type OptionsLoader = dyn Fn() -> Result<ServerOptions, String> + Send + Sync;

/// How often the opt-in watch looks at the config file.
const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// Errors of `--signal`.
#[derive(Debug, Error)]
pub enum SignalError {
    #[error("unknown signal {0:?} (expected ldm, quit, stop, term, reopen or reload)")]
    UnknownCommand(String),
    #[error("cannot read pid file {path}: {source}")]
    PidFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0:?} is neither a process id nor a pid file holding one")]
    BadPid(String),
    #[error("no process given: use --signal {0}=<pid or pid file>")]
    NoProcess(String),
    #[error("cannot signal process {pid}: {source}")]
    Send { pid: i32, source: nix::Error },
}

/// Sends a `--signal` command (`ldm`, `quit`, `stop`, `term`, `reopen`, `reload`) to the
/// server whose pid is given directly or in a pid file.
pub fn send_signal(command: &str, target: Option<&str>) -> Result<i32, SignalError> {
    let signal = match command {
        "ldm" => Signal::SIGUSR2,
        "quit" => Signal::SIGINT,
        "stop" => Signal::SIGKILL,
        "term" => Signal::SIGTERM,
        "reopen" => Signal::SIGUSR1,
        "reload" => Signal::SIGHUP,
        other => return Err(SignalError::UnknownCommand(other.to_string())),
    };
    let target = target.ok_or_else(|| SignalError::NoProcess(command.to_string()))?;
    let pid = match target.trim().parse::<i32>() {
        Ok(pid) => pid,
        Err(_) => {
            let path = Path::new(target);
            let text = std::fs::read_to_string(path).map_err(|source| SignalError::PidFile {
                path: path.to_path_buf(),
                source,
            })?;
            text.trim()
                .parse::<i32>()
                .map_err(|_| SignalError::BadPid(target.to_string()))?
        }
    };
    kill(Pid::from_raw(pid), signal).map_err(|source| SignalError::Send { pid, source })?;
    Ok(pid)
}

/// Re-reads the configuration and applies it; logs the outcome.
pub fn reload(server: &Server, loader: &OptionsLoader) -> bool {
    let options = match loader() {
        Ok(options) => options,
        Err(error) => {
            logging::error(format_args!(
                "Failed to reload server configuration: {error}"
            ));
            return false;
        }
    };
    match server.reload(options) {
        Ok(()) => true,
        Err(error) => {
            logging::error(format_args!(
                "Failed to reload server configuration: {error}"
            ));
            false
        }
    }
}

/// Reacts to process signals until the server shuts down.
pub async fn handle_signals(
    server: Arc<Server>,
    loader: Arc<OptionsLoader>,
) -> std::io::Result<()> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let mut user_defined_1 = signal(SignalKind::user_defined1())?;
    let mut user_defined_2 = signal(SignalKind::user_defined2())?;
    let stop = server.shutdown_token();
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            _ = interrupt.recv() => {
                logging::notice(format_args!("Trapped \"interrupt\" signal"));
                server.shutdown();
            }
            _ = terminate.recv() => {
                if server.is_lame_duck() {
                    logging::notice(format_args!("Trapped \"terminated\" signal during lame duck mode: ignored"));
                } else {
                    logging::notice(format_args!("Trapped \"terminated\" signal"));
                    server.shutdown();
                }
            }
            _ = hangup.recv() => {
                logging::notice(format_args!("Trapped \"hangup\" signal"));
                reload(&server, loader.as_ref());
            }
            _ = user_defined_1.recv() => {
                if let Err(error) = logging::configure(&server.options().logging) {
                    logging::error(format_args!("Cannot reopen log file: {error}"));
                }
            }
            _ = user_defined_2.recv() => {
                logging::notice(format_args!("Trapped \"user defined signal 2\" signal"));
                let server = Arc::clone(&server);
                tokio::spawn(async move { server.enter_lame_duck().await });
            }
        }
    }
}

/// Reloads whenever the config file's content changes (opt-in `watch_config`), so a mounted
/// Kubernetes ConfigMap takes effect without a sidecar.
/// `baseline` is the file's content before the running options were loaded from it.
pub async fn watch_config_file(
    server: Arc<Server>,
    path: PathBuf,
    baseline: Option<Vec<u8>>,
    loader: Arc<OptionsLoader>,
) {
    let stop = server.shutdown_token();
    let mut last = baseline;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(WATCH_INTERVAL) => {}
        }
        let current = std::fs::read(&path).ok();
        if current.is_some() && current != last {
            logging::notice(format_args!(
                "Configuration file {} changed, reloading",
                path.display()
            ));
            reload(&server, loader.as_ref());
            last = current;
        }
    }
}

/// Raises the soft limit of open files to the hard limit, as Go programs do at start, so a
/// server can hold as many connections as the system allows.
pub fn raise_open_file_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}
