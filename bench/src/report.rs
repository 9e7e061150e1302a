//! Turns the runs of every scenario into medians, comparison tables and a JSON document.
//!
//! A median is taken over the runs that succeeded; a server cell shows `*` when some runs
//! failed and `FAILED` when all did, and every failure is listed under its table.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::deployment::{Topology, CLUSTER_NAME};
use crate::scenarios::{
    payload_label, Measurement, RunOutcome, RunRecord, Scenario, ScenarioKind, Settings, Table,
    GROUP_SIZE,
};
use crate::transport::Transport;

pub const TERN_LABEL: &str = "Tern";
pub const NATS_SERVER_LABEL: &str = "nats-server";

/// Every run of one scenario, per server, in the order they ran.
#[derive(Debug)]
pub struct ScenarioResults {
    pub scenario: Scenario,
    pub tern: Vec<RunRecord>,
    pub nats_server: Vec<RunRecord>,
}

/// Medians over the successful runs of one server.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Summary {
    Throughput {
        messages_per_second: f64,
        megabytes_per_second: f64,
    },
    Latency {
        p50_microseconds: f64,
        p99_microseconds: f64,
    },
    IdleMemory {
        connections: usize,
        kibibytes_per_connection: f64,
    },
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    match values.len() {
        0 => None,
        length if length % 2 == 1 => Some(values[middle]),
        _ => Some((values[middle - 1] + values[middle]) / 2.0),
    }
}

fn measurements(runs: &[RunRecord]) -> impl Iterator<Item = &Measurement> {
    runs.iter().filter_map(|run| match &run.outcome {
        RunOutcome::Measured(measurement) => Some(measurement),
        RunOutcome::Failed(_) => None,
    })
}

pub fn summarize(kind: ScenarioKind, runs: &[RunRecord]) -> Option<Summary> {
    match kind {
        ScenarioKind::Throughput { .. } => {
            let (rates, bandwidths): (Vec<f64>, Vec<f64>) = measurements(runs)
                .filter_map(|measurement| match measurement {
                    Measurement::Throughput {
                        messages_per_second,
                        megabytes_per_second,
                        ..
                    } => Some((*messages_per_second, *megabytes_per_second)),
                    _ => None,
                })
                .unzip();
            Some(Summary::Throughput {
                messages_per_second: median(rates)?,
                megabytes_per_second: median(bandwidths)?,
            })
        }
        ScenarioKind::RequestReply => {
            let (p50s, p99s): (Vec<f64>, Vec<f64>) = measurements(runs)
                .filter_map(|measurement| match measurement {
                    Measurement::Latency {
                        p50_microseconds,
                        p99_microseconds,
                        ..
                    } => Some((*p50_microseconds, *p99_microseconds)),
                    _ => None,
                })
                .unzip();
            Some(Summary::Latency {
                p50_microseconds: median(p50s)?,
                p99_microseconds: median(p99s)?,
            })
        }
        ScenarioKind::IdleMemory => {
            let (counts, sizes): (Vec<usize>, Vec<f64>) = measurements(runs)
                .filter_map(|measurement| match measurement {
                    Measurement::IdleMemory {
                        connections,
                        kibibytes_per_connection,
                    } => Some((*connections, *kibibytes_per_connection)),
                    _ => None,
                })
                .unzip();
            Some(Summary::IdleMemory {
                connections: counts.into_iter().min()?,
                kibibytes_per_connection: median(sizes)?,
            })
        }
    }
}

/// Tern's value divided by nats-server's, for the headline metric of a scenario.
fn ratio(tern: Option<Summary>, nats_server: Option<Summary>) -> Option<f64> {
    let headline = |summary: Summary| match summary {
        Summary::Throughput {
            messages_per_second,
            ..
        } => messages_per_second,
        Summary::Latency {
            p50_microseconds, ..
        } => p50_microseconds,
        Summary::IdleMemory {
            kibibytes_per_connection,
            ..
        } => kibibytes_per_connection,
    };
    let numerator = headline(tern?);
    let denominator = headline(nats_server?);
    (denominator > 0.0).then(|| numerator / denominator)
}

fn table_title(table: Table) -> String {
    match table {
        Table::PublishOnly => {
            "Publish only: 1 publisher, no subscribers; measured at the publisher (higher is better)"
                .to_owned()
        }
        Table::PublishSubscribe => {
            "Publish/subscribe 1:1; measured at the subscriber (higher is better)".to_owned()
        }
        Table::FanOut => format!(
            "Fan-out to {GROUP_SIZE} subscribers; all deliveries counted at the subscribers \
             (higher is better)"
        ),
        Table::QueueGroup => format!(
            "Queue group of {GROUP_SIZE}; deliveries counted at the members (higher is better)"
        ),
        Table::RequestReply => "Request/reply latency: 1 requester, 1 responder, sequential \
                                16 B requests; microseconds (lower is better)"
            .to_owned(),
        Table::IdleMemory => {
            "Memory per idle connection: server RSS growth / connections; KiB (lower is better)"
                .to_owned()
        }
        Table::RoutePublishSubscribe => format!(
            "Route hop, publish/subscribe 1:1: two servers of one kind in cluster \
             {CLUSTER_NAME:?}, publisher on A, subscriber on B; measured at the subscriber \
             (higher is better)"
        ),
        Table::RouteRequestReply => format!(
            "Route hop, request/reply latency: two servers of one kind in cluster \
             {CLUSTER_NAME:?}, requester on A, responder on B (each round trip crosses the \
             route twice), sequential 16 B requests; microseconds (lower is better)"
        ),
        Table::TlsPublishSubscribe => "TLS, publish/subscribe 1:1: publisher and subscriber \
                                       over TLS 1.3 (TLS13_AES_128_GCM_SHA256); measured at \
                                       the subscriber (higher is better)"
            .to_owned(),
        Table::WebSocketPublishSubscribe => {
            "WebSocket, publish/subscribe 1:1: publisher and subscriber over WebSocket (no TLS, \
             masked client frames); measured at the subscriber (higher is better)"
                .to_owned()
        }
    }
}

/// A median cell: the value, `*` if some runs failed, `FAILED` if all did.
fn cell(value: Option<String>, runs: &[RunRecord]) -> String {
    let failed = runs
        .iter()
        .filter(|run| matches!(run.outcome, RunOutcome::Failed(_)))
        .count();
    match value {
        None => "FAILED".to_owned(),
        Some(value) if failed > 0 => format!("{value}*"),
        Some(value) => value,
    }
}

fn format_ratio(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "-".to_owned(), |ratio| format!("{ratio:.2}"))
}

/// An integer with thousands separators: 1234567 → 1,234,567.
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

/// Every table, in scenario order, followed by the failures of each.
pub fn render(results: &[ScenarioResults]) -> String {
    let mut output = String::new();
    let mut tables: Vec<Table> = results.iter().map(|result| result.scenario.table).collect();
    tables.dedup();
    for table in tables {
        let members: Vec<&ScenarioResults> = results
            .iter()
            .filter(|result| result.scenario.table == table)
            .collect();
        let (headers, rows) = table_rows(table, &members);
        let _ = writeln!(output, "\n{}", table_title(table));
        output.push_str(&render_table(&headers, &rows));
        for result in &members {
            for (label, runs) in [
                (TERN_LABEL, &result.tern),
                (NATS_SERVER_LABEL, &result.nats_server),
            ] {
                for (index, run) in runs.iter().enumerate() {
                    if let RunOutcome::Failed(error) = &run.outcome {
                        let _ = writeln!(
                            output,
                            "  ! {} {label} run {}: {}",
                            result.scenario.name,
                            index + 1,
                            error.replace('\n', "\n    ")
                        );
                    }
                }
            }
        }
    }
    output
}

fn table_rows(table: Table, members: &[&ScenarioResults]) -> (Vec<String>, Vec<Vec<String>>) {
    let ratio_header = format!("{TERN_LABEL}/{NATS_SERVER_LABEL}");
    let mut rows = Vec::new();
    let headers: Vec<String> = match table {
        Table::RequestReply | Table::RouteRequestReply | Table::IdleMemory => {
            vec![
                "metric".to_owned(),
                TERN_LABEL.to_owned(),
                NATS_SERVER_LABEL.to_owned(),
                ratio_header,
            ]
        }
        _ => vec![
            "payload".to_owned(),
            format!("{TERN_LABEL} msgs/s"),
            format!("{NATS_SERVER_LABEL} msgs/s"),
            format!("{TERN_LABEL} MB/s"),
            format!("{NATS_SERVER_LABEL} MB/s"),
            ratio_header,
        ],
    };
    for result in members {
        let kind = result.scenario.kind;
        let tern = summarize(kind, &result.tern);
        let nats_server = summarize(kind, &result.nats_server);
        match kind {
            ScenarioKind::Throughput { payload_size, .. } => {
                let rate = |summary: Option<Summary>| match summary {
                    Some(Summary::Throughput {
                        messages_per_second,
                        megabytes_per_second,
                    }) => Some((
                        thousands(messages_per_second),
                        format!("{megabytes_per_second:.1}"),
                    )),
                    _ => None,
                };
                let (tern_rate, tern_bandwidth) = rate(tern).unzip();
                let (nats_rate, nats_bandwidth) = rate(nats_server).unzip();
                rows.push(vec![
                    payload_label(payload_size),
                    cell(tern_rate, &result.tern),
                    cell(nats_rate, &result.nats_server),
                    cell(tern_bandwidth, &result.tern),
                    cell(nats_bandwidth, &result.nats_server),
                    format_ratio(ratio(tern, nats_server)),
                ]);
            }
            ScenarioKind::RequestReply => {
                let latencies = |summary: Option<Summary>| match summary {
                    Some(Summary::Latency {
                        p50_microseconds,
                        p99_microseconds,
                    }) => Some((p50_microseconds, p99_microseconds)),
                    _ => None,
                };
                let tern = latencies(tern);
                let nats_server = latencies(nats_server);
                for (metric, pick) in [
                    ("p50", (|pair: (f64, f64)| pair.0) as fn((f64, f64)) -> f64),
                    ("p99", |pair: (f64, f64)| pair.1),
                ] {
                    let tern_value = tern.map(pick);
                    let nats_value = nats_server.map(pick);
                    let ratio = match (tern_value, nats_value) {
                        (Some(tern), Some(nats)) if nats > 0.0 => Some(tern / nats),
                        _ => None,
                    };
                    rows.push(vec![
                        metric.to_owned(),
                        cell(tern_value.map(|value| format!("{value:.1}")), &result.tern),
                        cell(
                            nats_value.map(|value| format!("{value:.1}")),
                            &result.nats_server,
                        ),
                        format_ratio(ratio),
                    ]);
                }
            }
            ScenarioKind::IdleMemory => {
                let memory = |summary: Option<Summary>| match summary {
                    Some(Summary::IdleMemory {
                        connections,
                        kibibytes_per_connection,
                    }) => Some((connections, kibibytes_per_connection)),
                    _ => None,
                };
                let (tern_connections, tern_size) = memory(tern).unzip();
                let (nats_connections, nats_size) = memory(nats_server).unzip();
                rows.push(vec![
                    "KiB per connection".to_owned(),
                    cell(tern_size.map(|size| format!("{size:.1}")), &result.tern),
                    cell(
                        nats_size.map(|size| format!("{size:.1}")),
                        &result.nats_server,
                    ),
                    format_ratio(ratio(tern, nats_server)),
                ]);
                rows.push(vec![
                    "connections".to_owned(),
                    cell(
                        tern_connections.map(|count| count.to_string()),
                        &result.tern,
                    ),
                    cell(
                        nats_connections.map(|count| count.to_string()),
                        &result.nats_server,
                    ),
                    String::new(),
                ]);
            }
        }
    }
    (headers, rows)
}

/// Left-aligned first column, right-aligned others, two spaces between columns.
fn render_table(headers: &[String], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers
        .iter()
        .map(|header| header.chars().count())
        .collect();
    for row in rows {
        for (width, value) in widths.iter_mut().zip(row) {
            *width = (*width).max(value.chars().count());
        }
    }
    let mut output = String::new();
    let mut line = |values: &[String]| {
        let mut text = String::from("  ");
        for (index, (value, width)) in values.iter().zip(&widths).enumerate() {
            if index == 0 {
                let _ = write!(text, "{value:<width$}");
            } else {
                let _ = write!(text, "  {value:>width$}");
            }
        }
        output.push_str(text.trim_end());
        output.push('\n');
    };
    line(headers);
    let rule: Vec<String> = widths.iter().map(|width| "-".repeat(*width)).collect();
    line(&rule);
    for row in rows {
        line(row);
    }
    output
}

#[derive(Serialize)]
struct JsonReport<'a> {
    tern_executable: String,
    nats_server_executable: String,
    runs_per_server: usize,
    settings: &'a Settings,
    scenarios: Vec<JsonScenario<'a>>,
}

#[derive(Serialize)]
struct JsonScenario<'a> {
    name: &'a str,
    table: Table,
    /// `single`, or `routed_pair`: clients sending on server A, receiving on server B.
    topology: Topology,
    /// How the clients connect: `tcp`, `tls` or `websocket`.
    transport: Transport,
    /// Tern / nats-server of the headline median: msgs/s (higher is better), p50 latency or
    /// KiB per connection (lower is better).
    ratio: Option<f64>,
    tern: JsonServer<'a>,
    nats_server: JsonServer<'a>,
}

#[derive(Serialize)]
struct JsonServer<'a> {
    median: Option<Summary>,
    runs: &'a [RunRecord],
}

pub fn write_json(
    path: &Path,
    results: &[ScenarioResults],
    settings: &Settings,
    runs_per_server: usize,
    executables: (&Path, &Path),
) -> anyhow::Result<()> {
    let scenarios = results
        .iter()
        .map(|result| {
            let kind = result.scenario.kind;
            let tern = summarize(kind, &result.tern);
            let nats_server = summarize(kind, &result.nats_server);
            JsonScenario {
                name: &result.scenario.name,
                table: result.scenario.table,
                topology: result.scenario.topology,
                transport: result.scenario.transport,
                ratio: ratio(tern, nats_server),
                tern: JsonServer {
                    median: tern,
                    runs: &result.tern,
                },
                nats_server: JsonServer {
                    median: nats_server,
                    runs: &result.nats_server,
                },
            }
        })
        .collect();
    let report = JsonReport {
        tern_executable: executables.0.display().to_string(),
        nats_server_executable: executables.1.display().to_string(),
        runs_per_server,
        settings,
        scenarios,
    };
    let json = serde_json::to_string_pretty(&report)?;
    std::fs::write(path, json + "\n")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(Vec::new()), None);
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(1_234_567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1000.0), "1,000");
    }

    #[test]
    fn table_columns_are_aligned() {
        let table = render_table(
            &["a".to_owned(), "bb".to_owned()],
            &[vec!["long".to_owned(), "1".to_owned()]],
        );
        assert_eq!(table, "  a     bb\n  ----  --\n  long   1\n");
    }
}
