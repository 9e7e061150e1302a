//! Structured logs: one logfmt line per event on standard error
//! (`time=... level=info msg="reconciled" kind=NatsCluster object=default/nats`).
//!
//! The level comes from `RUST_LOG` (`error`, `warn`, `info` or `debug`; `info` when unset or
//! unknown). Values are quoted when they hold spaces, quotes or `=`.

use std::io::Write as _;
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Error,
    Warn,
    Info,
    Debug,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
        }
    }
}

fn threshold() -> Level {
    static THRESHOLD: OnceLock<Level> = OnceLock::new();
    *THRESHOLD.get_or_init(|| {
        match std::env::var("RUST_LOG")
            .unwrap_or_default()
            .to_ascii_lowercase()
            .as_str()
        {
            "error" => Level::Error,
            "warn" => Level::Warn,
            "debug" | "trace" => Level::Debug,
            _ => Level::Info,
        }
    })
}

fn quote(value: &str) -> String {
    if !value.is_empty()
        && !value
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '=' || c.is_control())
    {
        return value.to_string();
    }
    format!("{value:?}")
}

/// One line: `time`, `level`, `msg`, then `fields` in order.
fn line(level: Level, message: &str, fields: &[(&str, &str)]) -> String {
    let mut text = format!(
        "time={} level={} msg={}",
        k8s_openapi::jiff::Timestamp::now(),
        level.as_str(),
        quote(message)
    );
    for (key, value) in fields {
        text.push(' ');
        text.push_str(key);
        text.push('=');
        text.push_str(&quote(value));
    }
    text.push('\n');
    text
}

fn emit(level: Level, message: &str, fields: &[(&str, &str)]) {
    if level > threshold() {
        return;
    }
    // A closed standard error must not stop the operator.
    let _ = std::io::stderr().write_all(line(level, message, fields).as_bytes());
}

pub fn error(message: &str, fields: &[(&str, &str)]) {
    emit(Level::Error, message, fields);
}

pub fn warn(message: &str, fields: &[(&str, &str)]) {
    emit(Level::Warn, message, fields);
}

pub fn info(message: &str, fields: &[(&str, &str)]) {
    emit(Level::Info, message, fields);
}

pub fn debug(message: &str, fields: &[(&str, &str)]) {
    emit(Level::Debug, message, fields);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_with_spaces_quotes_or_equals_are_quoted() {
        let text = line(
            Level::Warn,
            "apply failed",
            &[("object", "default/nats"), ("error", "a=b \"c\"")],
        );
        assert!(text.contains(" level=warn msg=\"apply failed\" object=default/nats "));
        assert!(text.ends_with(" error=\"a=b \\\"c\\\"\"\n"), "{text}");
        assert!(line(Level::Info, "", &[]).contains("msg=\"\""));
    }
}
