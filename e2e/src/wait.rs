//! Polling with a deadline: the harness's only way to wait for a condition.

use std::thread;
use std::time::{Duration, Instant};

use crate::error::HarnessError;

/// Calls `check` every `interval` until it returns `Some`, for at most `timeout`
/// (so at most `timeout / interval + 1` calls).
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Result<T, HarnessError> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Ok(value);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(HarnessError::Timeout {
                what: what.to_string(),
                timeout,
                received: "the condition never held".to_string(),
            });
        }
        thread::sleep(interval.min(deadline - now));
    }
}
