//! The benchmark's scenarios and how one run of one scenario against one server goes.
//!
//! Every run starts fresh servers (so no run inherits another's state or memory), measures,
//! and kills them. Most scenarios run against one server; the route-hop ones against two
//! servers of the same kind joined by a route ([`Topology::RoutedPair`]), with the sending
//! clients on A and the receiving ones on B. CPU time of the server(s) and of this process over
//! the run is recorded next to the result, to show whether the load generator kept up.
//! Clients use plain TCP except in the TLS and WebSocket scenarios ([`Transport`]), whose
//! servers get the config file of that transport and whose publisher and subscriber both use
//! it.

pub mod idle_memory;
pub mod latency;
pub mod throughput;

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::client::ClientError;
use crate::deployment::{Deployment, Topology};
use crate::server_process::ServerError;
use crate::system::{self, SystemError};
use crate::transport::{self, Transport, TransportError, TransportFiles};
use idle_memory::IdleMemoryPlan;
use latency::LatencyPlan;
use throughput::{Delivery, Endpoints, ThroughputPlan};

/// Payload sizes of the throughput scenarios, in bytes.
pub const PAYLOAD_SIZES: [usize; 4] = [16, 128, 1024, 16 * 1024];
/// Payload sizes of the TLS and WebSocket publish/subscribe scenarios.
pub const TRANSPORT_PAYLOAD_SIZES: [usize; 3] = [16, 128, 16 * 1024];
/// Subscribers in the fan-out scenario and members in the queue-group scenario.
pub const GROUP_SIZE: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error(transparent)]
    System(#[from] SystemError),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("subscriber {index}: {error}")]
    Subscriber { index: usize, error: ClientError },
    #[error("a subscriber failed")]
    SubscriberFailed,
    #[error("subscribers stopped receiving while the publisher waited")]
    DeliveryStalled,
    #[error("only {delivered} of {expected} messages were delivered in time")]
    Incomplete { delivered: u64, expected: u64 },
    #[error("no request completed")]
    NoSamples,
    #[error("no file descriptors left for idle connections")]
    NoDescriptors,
    #[error("a load-generator thread panicked")]
    ThreadPanicked,
}

/// The tables scenarios are grouped into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Table {
    PublishOnly,
    PublishSubscribe,
    FanOut,
    QueueGroup,
    RequestReply,
    IdleMemory,
    /// Publish/subscribe 1:1 with the publisher on A and the subscriber on B of a pair.
    RoutePublishSubscribe,
    /// Request/reply with the requester on A and the responder on B of a pair.
    RouteRequestReply,
    /// Publish/subscribe 1:1 with both clients over TLS.
    TlsPublishSubscribe,
    /// Publish/subscribe 1:1 with both clients over WebSocket.
    WebSocketPublishSubscribe,
}

#[derive(Debug, Clone, Copy)]
pub enum ScenarioKind {
    Throughput {
        delivery: Delivery,
        payload_size: usize,
    },
    RequestReply,
    IdleMemory,
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub table: Table,
    pub kind: ScenarioKind,
    pub topology: Topology,
    pub transport: Transport,
}

/// Every scenario, in the order they run and are reported.
pub fn all() -> Vec<Scenario> {
    let deliveries = [
        (Table::PublishOnly, "pub", Delivery::PublishOnly),
        (Table::PublishSubscribe, "pubsub", Delivery::OneToOne),
        (
            Table::FanOut,
            "fanout4",
            Delivery::FanOut {
                subscribers: GROUP_SIZE,
            },
        ),
        (
            Table::QueueGroup,
            "queue4",
            Delivery::QueueGroup {
                members: GROUP_SIZE,
            },
        ),
    ];
    let mut scenarios = Vec::new();
    for (table, prefix, delivery) in deliveries {
        for payload_size in PAYLOAD_SIZES {
            scenarios.push(Scenario {
                name: format!("{prefix}-{}", payload_label(payload_size)),
                table,
                kind: ScenarioKind::Throughput {
                    delivery,
                    payload_size,
                },
                topology: Topology::Single,
                transport: Transport::Tcp,
            });
        }
    }
    scenarios.push(Scenario {
        name: "request-reply".to_owned(),
        table: Table::RequestReply,
        kind: ScenarioKind::RequestReply,
        topology: Topology::Single,
        transport: Transport::Tcp,
    });
    scenarios.push(Scenario {
        name: "idle-memory".to_owned(),
        table: Table::IdleMemory,
        kind: ScenarioKind::IdleMemory,
        topology: Topology::Single,
        transport: Transport::Tcp,
    });
    for payload_size in PAYLOAD_SIZES {
        scenarios.push(Scenario {
            name: format!("route-pubsub-{}", payload_label(payload_size)),
            table: Table::RoutePublishSubscribe,
            kind: ScenarioKind::Throughput {
                delivery: Delivery::OneToOne,
                payload_size,
            },
            topology: Topology::RoutedPair,
            transport: Transport::Tcp,
        });
    }
    scenarios.push(Scenario {
        name: "route-request-reply".to_owned(),
        table: Table::RouteRequestReply,
        kind: ScenarioKind::RequestReply,
        topology: Topology::RoutedPair,
        transport: Transport::Tcp,
    });
    for (table, prefix, transport) in [
        (Table::TlsPublishSubscribe, "tls", Transport::Tls),
        (
            Table::WebSocketPublishSubscribe,
            "websocket",
            Transport::WebSocket,
        ),
    ] {
        for payload_size in TRANSPORT_PAYLOAD_SIZES {
            scenarios.push(Scenario {
                name: format!("{prefix}-pubsub-{}", payload_label(payload_size)),
                table,
                kind: ScenarioKind::Throughput {
                    delivery: Delivery::OneToOne,
                    payload_size,
                },
                topology: Topology::Single,
                transport,
            });
        }
    }
    scenarios
}

/// `16B`, `128B`, `1KiB`, `16KiB`.
pub fn payload_label(size: usize) -> String {
    if size >= 1024 && size.is_multiple_of(1024) {
        format!("{}KiB", size / 1024)
    } else {
        format!("{size}B")
    }
}

/// How long and how big each kind of run is.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Settings {
    #[serde(rename = "throughput_seconds", serialize_with = "as_seconds")]
    pub throughput_duration: Duration,
    #[serde(rename = "latency_seconds", serialize_with = "as_seconds")]
    pub latency_duration: Duration,
    pub idle_connections: usize,
    #[serde(rename = "settle_seconds", serialize_with = "as_seconds")]
    pub settle: Duration,
}

fn as_seconds<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64())
}

impl Settings {
    pub fn full() -> Self {
        Self {
            throughput_duration: Duration::from_secs(1),
            latency_duration: Duration::from_secs(2),
            idle_connections: 5000,
            settle: Duration::from_millis(500),
        }
    }

    pub fn quick() -> Self {
        Self {
            throughput_duration: Duration::from_millis(250),
            latency_duration: Duration::from_millis(500),
            idle_connections: 5000,
            settle: Duration::from_millis(200),
        }
    }
}

/// The value one run measured.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Measurement {
    Throughput {
        messages: u64,
        seconds: f64,
        messages_per_second: f64,
        megabytes_per_second: f64,
    },
    Latency {
        samples: usize,
        p50_microseconds: f64,
        p99_microseconds: f64,
    },
    IdleMemory {
        connections: usize,
        kibibytes_per_connection: f64,
    },
}

/// One run of one scenario against one server.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    #[serde(flatten)]
    pub outcome: RunOutcome,
    pub wall_seconds: f64,
    /// CPU used by the server (both servers together for a pair) during the run, in percent
    /// of one core.
    pub server_cpu_percent: Option<f64>,
    /// CPU used by this load generator during the run, in percent of one core.
    pub bench_cpu_percent: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    Measured(Measurement),
    Failed(String),
}

/// Starts fresh servers from `executable` (one, or a routed pair), runs `scenario` once
/// against them, and stops them. TLS and WebSocket scenarios need the generated `files`.
pub fn run_once(
    scenario: &Scenario,
    label: &str,
    executable: &Path,
    settings: &Settings,
    files: Option<&TransportFiles>,
) -> RunRecord {
    let wall_start = Instant::now();
    let config = match (scenario.transport, files) {
        (Transport::Tcp, _) => Ok(None),
        (transport, Some(files)) => Ok(files.server_config(transport)),
        (_, None) => Err(TransportError::NotGenerated.to_string()),
    };
    let started = config.and_then(|config| {
        Deployment::start(scenario.topology, label, executable, config)
            .map_err(|error| error.to_string())
    });
    let servers = match started {
        Ok(servers) => servers,
        Err(error) => {
            return RunRecord {
                outcome: RunOutcome::Failed(error),
                wall_seconds: wall_start.elapsed().as_secs_f64(),
                server_cpu_percent: None,
                bench_cpu_percent: None,
            }
        }
    };
    let server_cpu_before = servers.cpu_time();
    let bench_cpu_before = system::own_cpu_time().ok();
    let measure_start = Instant::now();
    let result = measure(scenario, &servers, settings, files);
    let measured = measure_start.elapsed();
    let server_cpu_percent = cpu_percent(server_cpu_before, servers.cpu_time(), measured);
    let bench_cpu_percent = cpu_percent(bench_cpu_before, system::own_cpu_time().ok(), measured);
    // A crashed server explains a failed run better than the client-side symptom does.
    let outcome = match result {
        Ok(measurement) => RunOutcome::Measured(measurement),
        Err(error) => match servers.check_running("during the run") {
            Err(crash) => RunOutcome::Failed(crash.to_string()),
            Ok(()) => RunOutcome::Failed(error.to_string()),
        },
    };
    drop(servers);
    RunRecord {
        outcome,
        wall_seconds: wall_start.elapsed().as_secs_f64(),
        server_cpu_percent,
        bench_cpu_percent,
    }
}

fn measure(
    scenario: &Scenario,
    servers: &Deployment,
    settings: &Settings,
    files: Option<&TransportFiles>,
) -> Result<Measurement, ScenarioError> {
    let sender = servers.sender_side().client_address();
    let receiver = servers.receiver_side().client_address();
    match scenario.kind {
        ScenarioKind::Throughput {
            delivery,
            payload_size,
        } => {
            let plan = ThroughputPlan {
                delivery,
                payload_size,
                duration: settings.throughput_duration,
            };
            let endpoints = Endpoints {
                publisher: transport::endpoint(scenario.transport, servers.sender_side(), files)?,
                subscribers: transport::endpoint(
                    scenario.transport,
                    servers.receiver_side(),
                    files,
                )?,
            };
            let result = throughput::run(&endpoints, plan)?;
            let seconds = result.elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
            let messages_per_second = result.messages as f64 / seconds;
            Ok(Measurement::Throughput {
                messages: result.messages,
                seconds,
                messages_per_second,
                megabytes_per_second: messages_per_second * payload_size as f64 / 1e6,
            })
        }
        ScenarioKind::RequestReply => {
            let plan = LatencyPlan {
                duration: settings.latency_duration,
            };
            let result = latency::run(sender, receiver, plan)?;
            Ok(Measurement::Latency {
                samples: result.samples,
                p50_microseconds: result.p50.as_secs_f64() * 1e6,
                p99_microseconds: result.p99.as_secs_f64() * 1e6,
            })
        }
        ScenarioKind::IdleMemory => {
            let plan = IdleMemoryPlan {
                connections: settings.idle_connections,
                settle: settings.settle,
            };
            let result = idle_memory::run(servers.sender_side(), plan)?;
            Ok(Measurement::IdleMemory {
                connections: result.connections,
                kibibytes_per_connection: result.bytes_per_connection / 1024.0,
            })
        }
    }
}

fn cpu_percent(before: Option<Duration>, after: Option<Duration>, wall: Duration) -> Option<f64> {
    let used = after?.checked_sub(before?)?;
    let wall = wall.as_secs_f64();
    (wall > 0.0).then(|| used.as_secs_f64() / wall * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_names_are_unique_and_cover_every_payload() {
        let scenarios = all();
        let mut names: Vec<&str> = scenarios
            .iter()
            .map(|scenario| scenario.name.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), scenarios.len());
        assert_eq!(
            scenarios.len(),
            5 * PAYLOAD_SIZES.len() + 3 + 2 * TRANSPORT_PAYLOAD_SIZES.len()
        );
        assert!(names.contains(&"queue4-16KiB"));
        assert!(names.contains(&"pub-128B"));
        assert!(names.contains(&"route-pubsub-1KiB"));
        assert!(names.contains(&"tls-pubsub-16KiB"));
        assert!(names.contains(&"websocket-pubsub-128B"));
    }

    #[test]
    fn transport_filters_select_exactly_their_scenarios() {
        let scenarios = all();
        for (filter, transport) in [("tls", Transport::Tls), ("websocket", Transport::WebSocket)] {
            let selected: Vec<&Scenario> = scenarios
                .iter()
                .filter(|scenario| scenario.name.contains(filter))
                .collect();
            assert_eq!(selected.len(), TRANSPORT_PAYLOAD_SIZES.len());
            assert!(selected
                .iter()
                .all(|scenario| scenario.transport == transport
                    && scenario.topology == Topology::Single));
        }
        assert!(scenarios
            .iter()
            .filter(|scenario| scenario.transport != Transport::Tcp)
            .all(|scenario| matches!(
                scenario.kind,
                ScenarioKind::Throughput {
                    delivery: Delivery::OneToOne,
                    ..
                }
            )));
    }

    #[test]
    fn route_selects_exactly_the_routed_pair_scenarios() {
        let scenarios = all();
        let routed: Vec<&Scenario> = scenarios
            .iter()
            .filter(|scenario| scenario.topology == Topology::RoutedPair)
            .collect();
        assert_eq!(routed.len(), PAYLOAD_SIZES.len() + 1);
        assert!(routed
            .iter()
            .all(|scenario| scenario.name.starts_with("route-")));
        assert_eq!(
            scenarios
                .iter()
                .filter(|scenario| scenario.name.contains("route"))
                .count(),
            routed.len()
        );
    }
}
