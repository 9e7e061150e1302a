//! Log lines in nats-server's format: `[pid] 2006/01/02 15:04:05.000000 [INF] message`.
//!
//! Contract: one process-wide logger, configured once at startup and again on reload. Levels
//! are nats-server's (`INF`, `WRN`, `ERR`, `FTL` always; `DBG` with debug; `TRC` with trace).
//! Lines go through a bounded queue to a dedicated writer thread, so a slow or unread stderr
//! pipe never blocks a server thread: when the queue is full, lines are dropped and counted,
//! and the count is logged once the writer catches up. `[FTL]` lines and `flush` wait for the
//! queue to drain (bounded) so the last words before exit are not lost. A log file is
//! appended to.

use std::fmt::Arguments;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::options::Logging;

/// Lines that may wait for the writer thread before new ones are dropped.
const QUEUE_CAPACITY: usize = 4096;
/// How long `flush` waits for the writer thread at most.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

struct Logger {
    debug: AtomicBool,
    trace: AtomicBool,
    time: AtomicBool,
    utc: AtomicBool,
    /// Shared with the writer thread, which swaps nothing: it only writes to it.
    file: Arc<Mutex<Option<File>>>,
    queue: Option<SyncSender<String>>,
    queued: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
}

fn logger() -> &'static Logger {
    static LOGGER: OnceLock<Logger> = OnceLock::new();
    LOGGER.get_or_init(|| {
        let file = Arc::new(Mutex::new(None));
        let queued = Arc::new(AtomicU64::new(0));
        let dropped = Arc::new(AtomicU64::new(0));
        let (sender, receiver) = sync_channel(QUEUE_CAPACITY);
        let queue = {
            let file = Arc::clone(&file);
            let queued = Arc::clone(&queued);
            let dropped = Arc::clone(&dropped);
            std::thread::Builder::new()
                .name("tern-log".into())
                .spawn(move || write_lines(&receiver, &file, &queued, &dropped))
                .ok()
                .map(|_| sender)
        };
        Logger {
            debug: AtomicBool::new(false),
            trace: AtomicBool::new(false),
            time: AtomicBool::new(true),
            utc: AtomicBool::new(false),
            file,
            queue,
            queued,
            dropped,
        }
    })
}

/// The writer thread: writes queued lines, then reports lines dropped meanwhile.
fn write_lines(
    receiver: &Receiver<String>,
    file: &Mutex<Option<File>>,
    queued: &AtomicU64,
    dropped: &AtomicU64,
) {
    while let Ok(line) = receiver.recv() {
        emit(file, line.as_bytes());
        queued.fetch_sub(1, Ordering::AcqRel);
        let lost = dropped.swap(0, Ordering::AcqRel);
        if lost > 0 {
            let notice = format!(
                "[{}] [WRN] {lost} log lines dropped: the log output was not keeping up\n",
                std::process::id()
            );
            emit(file, notice.as_bytes());
        }
    }
}

fn emit(file: &Mutex<Option<File>>, line: &[u8]) {
    let mut file = file.lock();
    match file.as_mut() {
        Some(file) => {
            let _ = file.write_all(line);
        }
        None => {
            let _ = std::io::stderr().lock().write_all(line);
        }
    }
}

/// Waits (bounded) until every queued line is written.
pub fn flush() {
    let logger = logger();
    let deadline = Instant::now() + FLUSH_TIMEOUT;
    while logger.queued.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
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
    let Some(queue) = &logger.queue else {
        emit(&logger.file, line.as_bytes());
        return;
    };
    logger.queued.fetch_add(1, Ordering::AcqRel);
    match queue.try_send(line) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            logger.queued.fetch_sub(1, Ordering::AcqRel);
            logger.dropped.fetch_add(1, Ordering::AcqRel);
        }
        Err(TrySendError::Disconnected(line)) => {
            logger.queued.fetch_sub(1, Ordering::AcqRel);
            emit(&logger.file, line.as_bytes());
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
    flush();
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
