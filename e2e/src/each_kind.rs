//! Runs one test body against every selected server kind and says which kind failed.
//!
//! Every kind runs even when an earlier one failed, so one run shows whether Tern and
//! nats-server disagree. A failure (an `Err` or a panic) is reported with the kind's name and the
//! tail of the log of every server the body started; then the test fails with a summary.

use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};

use crate::kind::{selected_server_kinds, ServerKind};

/// Logs kept per thread (a body rarely starts more servers than this).
const MAX_KEPT_LOGS: usize = 16;

thread_local! {
    /// Logs of the servers dropped on this thread since the current body started.
    static SERVER_LOGS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Called when a [`crate::ServerProcess`] is dropped, so a failing body can show its log.
pub(crate) fn record_server_log(log: String) {
    SERVER_LOGS.with(|logs| {
        let mut logs = logs.borrow_mut();
        if logs.len() == MAX_KEPT_LOGS {
            logs.remove(0);
        }
        logs.push(log);
    });
}

fn take_server_logs() -> Vec<String> {
    SERVER_LOGS.with(|logs| std::mem::take(&mut *logs.borrow_mut()))
}

/// Runs `body` once per kind selected by `TERN_E2E_SERVERS`; fails the test naming the kinds
/// that failed.
pub fn for_each_server_kind(body: impl FnMut(ServerKind) -> anyhow::Result<()>) {
    run_each(body);
}

/// Like [`for_each_server_kind`], restricted to the selected kinds that are also in `kinds`:
/// for behaviour only some implementations have (a Tern-only flag, say). A run that selects
/// none of them says so and passes.
pub fn for_each_server_kind_of(
    kinds: &[ServerKind],
    mut body: impl FnMut(ServerKind) -> anyhow::Result<()>,
) {
    run_each(|kind| {
        if kinds.contains(&kind) {
            body(kind)
        } else {
            eprintln!("=== skipped for {kind}: the test covers only {kinds:?}");
            Ok(())
        }
    });
}

/// Like [`for_each_server_kind`] for an async body: each kind gets a fresh current-thread
/// tokio runtime (timers and I/O enabled), so blocking harness calls stay on the test thread.
pub fn for_each_server_kind_async<Body, Fut>(mut body: Body)
where
    Body: FnMut(ServerKind) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    run_each(|kind| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| anyhow::anyhow!("building a tokio runtime: {error}"))?;
        runtime.block_on(body(kind))
    });
}

#[allow(
    clippy::panic,
    reason = "failing the calling test is the purpose of this helper"
)]
fn run_each(body: impl FnMut(ServerKind) -> anyhow::Result<()>) {
    let kinds = match selected_server_kinds() {
        Ok(kinds) => kinds,
        Err(error) => panic!("{error}"),
    };
    run_cases(kinds, body);
}

/// Runs `body` for every case, each reported by its `Display`; fails the test naming the cases
/// that failed, with the logs of the servers each failing case started.
#[allow(
    clippy::panic,
    reason = "failing the calling test is the purpose of this helper"
)]
pub(crate) fn run_cases<Case: Copy + fmt::Display>(
    cases: Vec<Case>,
    mut body: impl FnMut(Case) -> anyhow::Result<()>,
) {
    let mut failures = Vec::new();
    for kind in cases {
        take_server_logs();
        eprintln!("=== running against {kind}");
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| body(kind)));
        let failure = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(format!("{error:#}")),
            Err(payload) => Some(format!("panicked: {}", panic_message(payload.as_ref()))),
        };
        let logs = take_server_logs();
        match failure {
            None => eprintln!("=== passed against {kind}"),
            Some(message) => {
                eprintln!("=== FAILED against {kind}: {message}");
                for log in logs {
                    eprintln!("--- {log}");
                }
                failures.push(format!("{kind}: {message}"));
            }
        }
    }
    if !failures.is_empty() {
        panic!("failed against {}", failures.join("\n  and against "));
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_string()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "(a non-string panic payload)".to_string()
    }
}
