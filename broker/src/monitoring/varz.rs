//! `/varz`: the server's identity, limits and counters.
//!
//! Contract: one snapshot of options and counters per request, in nats-server's field order and
//! types (durations in nanoseconds, timeouts in float seconds, instants in RFC 3339). Sections of
//! features that are off (`cluster`, `websocket`) or that Tern does not have (`gateway`, `leaf`,
//! `mqtt`, `jetstream`) are empty objects, as nats-server shows them when they are off. `mem` and `cpu`
//! come from `/proc` where there is one (zero elsewhere); `cpu` is the percentage of one core
//! used since the previous sample, resampled at most once a second.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;
use serde::Serialize;

use super::json::go_float;
use super::time_format::{elapsed_between, rfc3339, uptime};
use crate::options::ServerOptions;
use crate::server::{Server, PROTOCOL_VERSION, TERN_VERSION};

/// nats-server's TLS handshake timeout default, which it reports even without TLS.
const DEFAULT_TLS_TIMEOUT_SECONDS: f64 = 2.0;
/// Linux reports CPU time in `USER_HZ` ticks, 100 a second on every mainstream architecture.
const CPU_TICKS_PER_SECOND: f64 = 100.0;
/// CPU use is averaged over at least this long, so rapid polling does not read noise.
const CPU_SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// `cluster` of `/varz`: `{}` without a cluster, as nats-server prints it.
#[derive(Debug, Default, Serialize)]
pub struct ClusterSection {
    #[serde(flatten)]
    details: Option<ClusterDetails>,
}

#[derive(Debug, Serialize)]
struct ClusterDetails {
    name: String,
    addr: String,
    cluster_port: u16,
    #[serde(serialize_with = "go_float")]
    auth_timeout: f64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    urls: Vec<String>,
}

fn cluster_section(server: &Server) -> ClusterSection {
    let Some(cluster) = server.cluster() else {
        return ClusterSection::default();
    };
    let options = cluster.options();
    ClusterSection {
        details: Some(ClusterDetails {
            name: cluster.name(),
            addr: options.listen.host.clone(),
            cluster_port: cluster.listen_address().map_or(0, |address| address.port()),
            auth_timeout: options
                .auth_timeout
                .unwrap_or(crate::options::defaults::AUTH_TIMEOUT)
                .as_secs_f64(),
            urls: options.routes.iter().map(|url| url.address()).collect(),
        }),
    }
}

/// `websocket` of `/varz`: `{}` without a WebSocket listener; false and empty fields are left
/// out, as nats-server leaves them out.
#[derive(Debug, Default, Serialize)]
pub struct WebSocketSection {
    #[serde(flatten)]
    details: Option<WebSocketDetails>,
}

#[derive(Debug, Serialize)]
struct WebSocketDetails {
    #[serde(skip_serializing_if = "String::is_empty")]
    host: String,
    port: u16,
    #[serde(skip_serializing_if = "String::is_empty")]
    advertise: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    no_auth_user: String,
    handshake_timeout: u64,
    #[serde(skip_serializing_if = "is_false")]
    no_tls: bool,
    #[serde(skip_serializing_if = "is_false")]
    same_origin: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    allowed_origins: Vec<String>,
    #[serde(skip_serializing_if = "is_false")]
    compression: bool,
}

fn websocket_section(server: &Server, options: &ServerOptions) -> WebSocketSection {
    let Some(websocket) = &options.websocket else {
        return WebSocketSection::default();
    };
    let port = server
        .addresses()
        .and_then(|addresses| addresses.websocket)
        .map_or(websocket.listen.port.unwrap_or(0), |address| address.port());
    WebSocketSection {
        details: Some(WebSocketDetails {
            host: websocket.listen.host.clone(),
            port,
            advertise: websocket.advertise.clone().unwrap_or_default(),
            no_auth_user: websocket.no_auth_user.clone().unwrap_or_default(),
            handshake_timeout: nanos(websocket.handshake_timeout),
            no_tls: websocket.no_tls,
            same_origin: websocket.same_origin,
            allowed_origins: websocket.allowed_origins.clone(),
            compression: websocket.compression,
        }),
    }
}

/// A section nats-server prints as `{}` while its feature is off.
#[derive(Debug, Serialize)]
pub struct EmptySection {}

#[derive(Debug, Serialize)]
pub struct Varz {
    server_id: String,
    server_name: String,
    version: &'static str,
    proto: u32,
    go: String,
    host: String,
    port: u16,
    #[serde(skip_serializing_if = "is_false")]
    auth_required: bool,
    #[serde(skip_serializing_if = "is_false")]
    tls_required: bool,
    #[serde(skip_serializing_if = "is_false")]
    tls_verify: bool,
    max_connections: usize,
    #[serde(skip_serializing_if = "is_zero")]
    max_subscriptions: usize,
    ping_interval: u64,
    ping_max: u32,
    http_host: String,
    http_port: u16,
    http_base_path: &'static str,
    https_port: u16,
    #[serde(serialize_with = "go_float")]
    auth_timeout: f64,
    max_control_line: usize,
    max_payload: usize,
    max_pending: usize,
    cluster: ClusterSection,
    gateway: EmptySection,
    leaf: EmptySection,
    mqtt: EmptySection,
    websocket: WebSocketSection,
    jetstream: EmptySection,
    #[serde(serialize_with = "go_float")]
    tls_timeout: f64,
    write_deadline: u64,
    start: String,
    now: String,
    uptime: String,
    mem: u64,
    cores: usize,
    gomaxprocs: usize,
    #[serde(serialize_with = "go_float")]
    cpu: f64,
    connections: usize,
    total_connections: u64,
    routes: u64,
    remotes: u64,
    leafnodes: u64,
    in_msgs: u64,
    out_msgs: u64,
    in_bytes: u64,
    out_bytes: u64,
    slow_consumers: u64,
    subscriptions: usize,
    http_req_stats: BTreeMap<&'static str, u64>,
    config_load_time: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    config_digest: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    system_account: String,
}

fn is_false(value: &bool) -> bool {
    !*value
}

fn is_zero(value: &usize) -> bool {
    *value == 0
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

pub fn varz(
    server: &Server,
    process: &ProcessUsage,
    http_req_stats: BTreeMap<&'static str, u64>,
) -> Varz {
    let options = server.options();
    let security = server.client_security();
    let (host, port) = server.advertised_client_address(&options);
    let (http_host, http_port) = match (&options.monitoring, server.addresses()) {
        (Some(listen), Some(addresses)) => (
            listen.host.clone(),
            addresses.monitoring.map_or(0, |address| address.port()),
        ),
        (Some(listen), None) => (listen.host.clone(), listen.port.unwrap_or(0)),
        (None, _) => (String::new(), 0),
    };
    let statistics = &server.statistics;
    let now = SystemTime::now();
    let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
    let usage = process.sample(elapsed_between(server.started, now));
    let subscriptions = server
        .accounts()
        .iter()
        .map(|account| account.with_index(|index| index.len()))
        .sum();
    Varz {
        server_id: server.server_id.clone(),
        server_name: server.server_name(),
        version: PROTOCOL_VERSION,
        proto: 1,
        go: format!("tern {TERN_VERSION}"),
        host,
        port,
        auth_required: options.authorization.is_required() && options.no_auth_user.is_none(),
        tls_required: security.tls.is_some() && !security.allow_non_tls,
        tls_verify: security
            .tls
            .as_ref()
            .is_some_and(|tls| tls.verifies_clients()),
        max_connections: options.max_connections,
        max_subscriptions: options.max_subscriptions,
        ping_interval: nanos(options.ping_interval),
        ping_max: options.ping_max,
        http_host,
        http_port,
        http_base_path: "",
        https_port: 0,
        auth_timeout: options.auth_timeout().as_secs_f64(),
        max_control_line: options.max_control_line,
        max_payload: options.max_payload,
        max_pending: options.max_pending,
        cluster: cluster_section(server),
        gateway: EmptySection {},
        leaf: EmptySection {},
        mqtt: EmptySection {},
        websocket: websocket_section(server, &options),
        jetstream: EmptySection {},
        tls_timeout: security
            .tls
            .as_ref()
            .map_or(DEFAULT_TLS_TIMEOUT_SECONDS, |tls| {
                tls.timeout().as_secs_f64()
            }),
        write_deadline: nanos(options.write_deadline),
        start: rfc3339(server.started),
        now: rfc3339(now),
        uptime: uptime(elapsed_between(server.started, now)),
        mem: usage.resident_bytes,
        cores,
        gomaxprocs: cores,
        cpu: usage.cpu_percent,
        connections: server.connection_count(),
        total_connections: statistics.total_connections.load(Ordering::Relaxed),
        routes: server
            .cluster()
            .map_or(0, |cluster| cluster.route_count() as u64),
        remotes: 0,
        leafnodes: 0,
        in_msgs: statistics.in_messages.load(Ordering::Relaxed),
        out_msgs: statistics.out_messages.load(Ordering::Relaxed),
        in_bytes: statistics.in_bytes.load(Ordering::Relaxed),
        out_bytes: statistics.out_bytes.load(Ordering::Relaxed),
        slow_consumers: statistics.slow_consumers.load(Ordering::Relaxed),
        subscriptions,
        http_req_stats,
        config_load_time: rfc3339(*server.config_load_time.lock()),
        config_digest: server.config_digest.lock().clone(),
        system_account: server.system_account_name(),
    }
}

/// Memory and CPU use of this process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub resident_bytes: u64,
    pub cpu_percent: f64,
}

#[derive(Debug, Clone, Copy)]
struct CpuSample {
    taken: Instant,
    cpu_ticks: u64,
    cpu_percent: f64,
}

/// Remembers the previous CPU sample so `cpu` is a recent average, not a lifetime one.
#[derive(Debug, Default)]
pub struct ProcessUsage {
    previous: Mutex<Option<CpuSample>>,
}

impl ProcessUsage {
    /// Samples memory now and CPU if the last sample is old enough; `uptime` averages the very
    /// first CPU sample over the server's life.
    pub fn sample(&self, uptime: Duration) -> Usage {
        let resident_bytes = read_proc("/proc/self/status")
            .and_then(|status| resident_bytes(&status))
            .unwrap_or(0);
        let Some(cpu_ticks) = read_proc("/proc/self/stat").and_then(|stat| cpu_ticks(&stat)) else {
            return Usage {
                resident_bytes,
                cpu_percent: 0.0,
            };
        };
        let now = Instant::now();
        let mut previous = self.previous.lock();
        let (ticks_since, elapsed) = match *previous {
            Some(sample) if now.duration_since(sample.taken) < CPU_SAMPLE_INTERVAL => {
                return Usage {
                    resident_bytes,
                    cpu_percent: sample.cpu_percent,
                };
            }
            Some(sample) => (
                cpu_ticks.saturating_sub(sample.cpu_ticks),
                now.duration_since(sample.taken),
            ),
            None => (cpu_ticks, uptime),
        };
        let cpu_percent = cpu_percent(ticks_since, elapsed);
        *previous = Some(CpuSample {
            taken: now,
            cpu_ticks,
            cpu_percent,
        });
        Usage {
            resident_bytes,
            cpu_percent,
        }
    }
}

fn read_proc(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// `VmRSS` of `/proc/self/status`, in bytes.
fn resident_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kilobytes: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kilobytes * 1024)
}

/// User plus system time of `/proc/self/stat`, in ticks. The command name may hold spaces and
/// parentheses, so fields are counted after its last `)`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let (_, after_name) = stat.rsplit_once(')')?;
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

/// Percent of one core, with two decimals like `top`.
fn cpu_percent(ticks: u64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds <= 0.0 {
        return 0.0;
    }
    let percent = ticks as f64 / CPU_TICKS_PER_SECOND / seconds * 100.0;
    (percent * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_bytes_reads_vmrss_in_kilobytes() {
        let status = "Name:\ttern\nVmPeak:\t  9000 kB\nVmRSS:\t  1234 kB\n";
        assert_eq!(resident_bytes(status), Some(1234 * 1024));
        assert_eq!(resident_bytes("Name:\ttern\n"), None);
    }

    #[test]
    fn cpu_ticks_skip_a_command_name_with_spaces() {
        let stat = "42 (tern (x) y) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0";
        assert_eq!(cpu_ticks(stat), Some(300));
        assert_eq!(cpu_ticks("garbage"), None);
    }

    #[test]
    fn cpu_percent_is_a_share_of_one_core() {
        assert_eq!(cpu_percent(50, Duration::from_secs(1)), 50.0);
        assert_eq!(cpu_percent(300, Duration::from_secs(2)), 150.0);
        assert_eq!(cpu_percent(1, Duration::from_secs(3)), 0.33);
        assert_eq!(cpu_percent(10, Duration::ZERO), 0.0);
    }
}
