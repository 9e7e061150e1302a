//! Log lines in nats-server's format: `[pid] 2006/01/02 15:04:05.000000 [INF] message`.
//!
//! Contract: one process-wide logger, configured once at startup and again on reload. Levels
//! are nats-server's (`INF`, `WRN`, `ERR`, `FTL` always; `DBG` with debug; `TRC` with trace).
//! The default level logs only startup, shutdown and errors, so a pipe nobody reads fills
//! slowly enough never to block the server in practice; a log file is appended to.

use std::fmt::Arguments;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use parking_lot::Mutex;

use crate::options::Logging;

struct Logger {
    debug: AtomicBool,
    trace: AtomicBool,
    time: AtomicBool,
    utc: AtomicBool,
    file: Mutex<Option<File>>,
}

fn logger() -> &'static Logger {
    static LOGGER: OnceLock<Logger> = OnceLock::new();
    LOGGER.get_or_init(|| Logger {
        debug: AtomicBool::new(false),
        trace: AtomicBool::new(false),
        time: AtomicBool::new(true),
        utc: AtomicBool::new(false),
        file: Mutex::new(None),
    })
}

/// Applies logging options; a log file that cannot be opened is an error for the caller.
pub fn configure(options: &Logging) -> std::io::Result<()> {
    let logger = logger();
    logger.debug.store(options.debug, Ordering::Relaxed);
    logger.trace.store(options.trace, Ordering::Relaxed);
    logger.time.store(options.logtime, Ordering::Relaxed);
    logger.utc.store(options.logtime_utc, Ordering::Relaxed);
    let file = match &options.log_file {
        Some(path) => Some(open_log_file(path)?),
        None => None,
    };
    *logger.file.lock() = file;
    Ok(())
}

fn open_log_file(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

pub fn is_debug() -> bool {
    logger().debug.load(Ordering::Relaxed)
}

pub fn is_trace() -> bool {
    logger().trace.load(Ordering::Relaxed)
}

fn write(label: &str, message: Arguments<'_>) {
    let logger = logger();
    let mut line = format!("[{}] ", std::process::id());
    if logger.time.load(Ordering::Relaxed) {
        let format = "%Y/%m/%d %H:%M:%S%.6f ";
        if logger.utc.load(Ordering::Relaxed) {
            line.push_str(&chrono::Utc::now().format(format).to_string());
        } else {
            line.push_str(&chrono::Local::now().format(format).to_string());
        }
    }
    line.push_str(label);
    line.push(' ');
    line.push_str(&message.to_string());
    line.push('\n');
    let mut file = logger.file.lock();
    match file.as_mut() {
        Some(file) => {
            let _ = file.write_all(line.as_bytes());
        }
        None => {
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }
    }
}

pub fn notice(message: Arguments<'_>) {
    write("[INF]", message);
}

pub fn warning(message: Arguments<'_>) {
    write("[WRN]", message);
}

pub fn error(message: Arguments<'_>) {
    write("[ERR]", message);
}

pub fn fatal(message: Arguments<'_>) {
    write("[FTL]", message);
}

pub fn debug(message: Arguments<'_>) {
    if is_debug() {
        write("[DBG]", message);
    }
}

pub fn trace(message: Arguments<'_>) {
    if is_trace() {
        write("[TRC]", message);
    }
}
