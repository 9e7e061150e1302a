//! What the benchmark reads from and asks of the operating system: resident memory and CPU
//! time of a process from `/proc`, and the open-files limit.
//!
//! The workspace forbids `unsafe`, so the limit is raised with util-linux `prlimit(1)` applied
//! to this process instead of calling `setrlimit` through `libc`; server children inherit it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Kernel clock ticks per second in `/proc/<pid>/stat` (USER_HZ, fixed at 100 in the Linux ABI).
const CLOCK_TICKS_PER_SECOND: u64 = 100;

#[derive(Debug, thiserror::Error)]
pub enum SystemError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("no {field} in {path}")]
    MissingField { field: &'static str, path: String },
    #[error("running prlimit: {0}")]
    Prlimit(std::io::Error),
    #[error("prlimit failed: {0}")]
    PrlimitFailed(String),
}

fn read_to_string(path: &str) -> Result<String, SystemError> {
    std::fs::read_to_string(path).map_err(|source| SystemError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Resident set size of process `pid` in bytes (`VmRSS` in `/proc/<pid>/status`).
pub fn resident_bytes(pid: u32) -> Result<u64, SystemError> {
    let path = format!("/proc/{pid}/status");
    let status = read_to_string(&path)?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| {
            value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kibibytes| kibibytes * 1024)
        .ok_or(SystemError::MissingField {
            field: "VmRSS",
            path,
        })
}

/// User plus system CPU time consumed so far by process `pid` (all its threads).
pub fn cpu_time(pid: u32) -> Result<Duration, SystemError> {
    cpu_time_from(&format!("/proc/{pid}/stat"))
}

/// CPU time consumed so far by this benchmark process.
pub fn own_cpu_time() -> Result<Duration, SystemError> {
    cpu_time_from("/proc/self/stat")
}

fn cpu_time_from(path: &str) -> Result<Duration, SystemError> {
    let stat = read_to_string(path)?;
    // The command name may contain spaces; fields are counted after its closing parenthesis.
    let missing = || SystemError::MissingField {
        field: "utime/stime",
        path: path.to_owned(),
    };
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(missing)?;
    let mut fields = after_name.split_ascii_whitespace();
    // Fields after the name start at `state` (field 3); utime and stime are fields 14 and 15.
    let user = fields.nth(11).and_then(|field| field.parse::<u64>().ok());
    let system = fields.next().and_then(|field| field.parse::<u64>().ok());
    match (user, system) {
        (Some(user), Some(system)) => Ok(Duration::from_millis(
            (user + system) * 1000 / CLOCK_TICKS_PER_SECOND,
        )),
        _ => Err(missing()),
    }
}

/// Soft and hard open-files limits of this process.
#[derive(Debug, Clone, Copy)]
pub struct OpenFilesLimit {
    pub soft: u64,
    pub hard: Option<u64>,
}

pub fn open_files_limit() -> Result<OpenFilesLimit, SystemError> {
    let path = "/proc/self/limits";
    let limits = read_to_string(path)?;
    let missing = || SystemError::MissingField {
        field: "Max open files",
        path: path.to_owned(),
    };
    let line = limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))
        .ok_or_else(missing)?;
    let mut values = line.split_ascii_whitespace();
    let soft = values
        .next()
        .and_then(|value| value.parse::<u64>().ok())
        .ok_or_else(missing)?;
    let hard = values.next().and_then(|value| value.parse::<u64>().ok());
    Ok(OpenFilesLimit { soft, hard })
}

/// Raises this process's soft open-files limit to its hard limit; returns the limit in force.
pub fn raise_open_files_limit() -> Result<OpenFilesLimit, SystemError> {
    let before = open_files_limit()?;
    let Some(hard) = before.hard else {
        // "unlimited" hard limit: keep the soft one, which is already usable.
        return Ok(before);
    };
    if before.soft >= hard {
        return Ok(before);
    }
    let output = Command::new("prlimit")
        .arg("--pid")
        .arg(std::process::id().to_string())
        .arg(format!("--nofile={hard}:{hard}"))
        .stdin(Stdio::null())
        .output()
        .map_err(SystemError::Prlimit)?;
    if !output.status.success() {
        return Err(SystemError::PrlimitFailed(
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        ));
    }
    open_files_limit()
}

/// The one-minute load average, if readable.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_ascii_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Number of file descriptors this process has open now.
pub fn open_file_count() -> Result<u64, SystemError> {
    let path = Path::new("/proc/self/fd");
    let entries = std::fs::read_dir(path).map_err(|source| SystemError::Read {
        path: path.display().to_string(),
        source,
    })?;
    Ok(entries.count() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_statistics_are_readable() {
        assert!(resident_bytes(std::process::id()).expect("VmRSS") > 0);
        own_cpu_time().expect("cpu time");
        let limit = open_files_limit().expect("limits");
        assert!(limit.soft > 0);
        assert!(open_file_count().expect("fd count") > 0);
    }
}
