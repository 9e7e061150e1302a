//! Startup, readiness and liveness probes with the kubelet's defaults: `httpGet` and
//! `tcpSocket` against the Pod's address (`exec` and `grpc` count as success). They report
//! [`ProbeEvent`]s to the Pod's supervisor.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, ContainerPort, HTTPGetAction, Probe, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::kubernetes::network::{http_get_status, tcp_connect};

/// How often startup and readiness probes are retried until their first success.
const FAST_PROBE_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ProbeEvent {
    /// The startup probe succeeded (or there is none).
    Started,
    Ready(bool),
    /// The startup or liveness probe failed for good: restart the container.
    Unhealthy(String),
}

/// A probe's schedule, with the kubelet's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProbeTiming {
    initial_delay: Duration,
    period: Duration,
    timeout: Duration,
    success_threshold: u32,
    failure_threshold: u32,
}

fn probe_timing(probe: &Probe) -> ProbeTiming {
    let seconds = |value: Option<i32>, default: u64| {
        Duration::from_secs(
            value
                .and_then(|value| u64::try_from(value).ok())
                .unwrap_or(default),
        )
    };
    let count = |value: Option<i32>, default: u32| {
        value
            .and_then(|value| u32::try_from(value).ok())
            .unwrap_or(default)
            .max(1)
    };
    ProbeTiming {
        initial_delay: seconds(probe.initial_delay_seconds, 0),
        period: seconds(probe.period_seconds, 10).max(Duration::from_secs(1)),
        timeout: seconds(probe.timeout_seconds, 1).max(Duration::from_secs(1)),
        success_threshold: count(probe.success_threshold, 1),
        failure_threshold: count(probe.failure_threshold, 3),
    }
}

/// Runs the container's probes and reports to its supervisor; ends when a startup or liveness
/// probe fails for good, else runs until aborted (its owner drops it with the container).
pub(super) async fn run_probes(
    container: Container,
    address: Ipv4Addr,
    events: mpsc::Sender<ProbeEvent>,
) {
    let ports = container.ports.clone().unwrap_or_default();
    if let Some(probe) = &container.startup_probe {
        let timing = probe_timing(probe);
        let give_up =
            Instant::now() + timing.initial_delay + timing.period * timing.failure_threshold;
        tokio::time::sleep(timing.initial_delay).await;
        loop {
            let result = probe_once(probe, address, &ports, timing.timeout).await;
            let Err(reason) = result else {
                break;
            };
            if Instant::now() >= give_up {
                let _ = events
                    .send(ProbeEvent::Unhealthy(format!(
                        "startup probe failed: {reason}"
                    )))
                    .await;
                return;
            }
            tokio::time::sleep(timing.period.min(FAST_PROBE_INTERVAL)).await;
        }
    }
    if events.send(ProbeEvent::Started).await.is_err() {
        return;
    }
    tokio::join!(
        readiness(container.readiness_probe.as_ref(), address, &ports, &events),
        liveness(container.liveness_probe.as_ref(), address, &ports, &events),
    );
}

async fn readiness(
    probe: Option<&Probe>,
    address: Ipv4Addr,
    ports: &[ContainerPort],
    events: &mpsc::Sender<ProbeEvent>,
) {
    let Some(probe) = probe else {
        let _ = events.send(ProbeEvent::Ready(true)).await;
        return;
    };
    let timing = probe_timing(probe);
    tokio::time::sleep(timing.initial_delay).await;
    let mut successes = 0;
    while successes < timing.success_threshold {
        match probe_once(probe, address, ports, timing.timeout).await {
            Ok(()) => successes += 1,
            Err(_) => successes = 0,
        }
        if successes < timing.success_threshold {
            tokio::time::sleep(timing.period.min(FAST_PROBE_INTERVAL)).await;
        }
    }
    if events.send(ProbeEvent::Ready(true)).await.is_err() {
        return;
    }
    let mut ready = true;
    let (mut successes, mut failures) = (0, 0);
    loop {
        tokio::time::sleep(timing.period).await;
        let result = probe_once(probe, address, ports, timing.timeout).await;
        if result.is_ok() {
            failures = 0;
            successes += 1;
        } else {
            successes = 0;
            failures += 1;
        }
        let now_ready = if ready {
            failures < timing.failure_threshold
        } else {
            successes >= timing.success_threshold
        };
        if now_ready != ready {
            ready = now_ready;
            if events.send(ProbeEvent::Ready(ready)).await.is_err() {
                return;
            }
        }
    }
}

async fn liveness(
    probe: Option<&Probe>,
    address: Ipv4Addr,
    ports: &[ContainerPort],
    events: &mpsc::Sender<ProbeEvent>,
) {
    let Some(probe) = probe else {
        return;
    };
    let timing = probe_timing(probe);
    tokio::time::sleep(timing.initial_delay).await;
    let mut failures = 0;
    loop {
        match probe_once(probe, address, ports, timing.timeout).await {
            Ok(()) => failures = 0,
            Err(reason) => {
                failures += 1;
                if failures >= timing.failure_threshold {
                    let _ = events
                        .send(ProbeEvent::Unhealthy(format!(
                            "liveness probe failed {failures} times: {reason}"
                        )))
                        .await;
                    return;
                }
            }
        }
        tokio::time::sleep(timing.period).await;
    }
}

/// One probe attempt. `exec` and `grpc` probes can not run here and count as success.
async fn probe_once(
    probe: &Probe,
    address: Ipv4Addr,
    ports: &[ContainerPort],
    timeout: Duration,
) -> Result<(), String> {
    if let Some(http) = &probe.http_get {
        let status = http_probe(http, address, ports, timeout).await?;
        return if (200..400).contains(&status) {
            Ok(())
        } else {
            Err(format!(
                "GET {} answered {status}",
                http.path.as_deref().unwrap_or("/")
            ))
        };
    }
    if let Some(tcp) = &probe.tcp_socket {
        return tcp_probe(tcp, address, ports, timeout).await;
    }
    Ok(())
}

/// A port given by number or by the name of a container port.
fn resolve_port(port: &IntOrString, ports: &[ContainerPort]) -> Result<u16, String> {
    let number = match port {
        IntOrString::Int(number) => *number,
        IntOrString::String(name) => match name.parse::<i32>() {
            Ok(number) => number,
            Err(_) => ports
                .iter()
                .find(|port| port.name.as_deref() == Some(name.as_str()))
                .map(|port| port.container_port)
                .ok_or_else(|| format!("the container has no port named {name:?}"))?,
        },
    };
    u16::try_from(number).map_err(|_| format!("port {number} is out of range"))
}

fn probe_host(host: Option<&str>, address: Ipv4Addr) -> IpAddr {
    host.and_then(|host| host.parse().ok())
        .unwrap_or(IpAddr::V4(address))
}

/// The status code of an `httpGet` action. HTTPS is checked as a TCP connection only.
pub(super) async fn http_probe(
    http: &HTTPGetAction,
    address: Ipv4Addr,
    ports: &[ContainerPort],
    timeout: Duration,
) -> Result<u16, String> {
    let port = resolve_port(&http.port, ports)?;
    let target = SocketAddr::new(probe_host(http.host.as_deref(), address), port);
    if http.scheme.as_deref() == Some("HTTPS") {
        tcp_connect(target, timeout)
            .await
            .map_err(|error| error.to_string())?;
        return Ok(200);
    }
    let path = http.path.as_deref().unwrap_or("/");
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    let headers: Vec<(String, String)> = http
        .http_headers
        .iter()
        .flatten()
        .map(|header| (header.name.clone(), header.value.clone()))
        .collect();
    http_get_status(target, &path, &headers, timeout)
        .await
        .map_err(|error| error.to_string())
}

pub(super) async fn tcp_probe(
    tcp: &TCPSocketAction,
    address: Ipv4Addr,
    ports: &[ContainerPort],
    timeout: Duration,
) -> Result<(), String> {
    let port = resolve_port(&tcp.port, ports)?;
    let target = SocketAddr::new(probe_host(tcp.host.as_deref(), address), port);
    tcp_connect(target, timeout)
        .await
        .map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_ports_resolve_by_number_or_container_port_name() {
        let ports = vec![ContainerPort {
            name: Some("monitor".to_string()),
            container_port: 8222,
            ..ContainerPort::default()
        }];
        assert_eq!(resolve_port(&IntOrString::Int(4222), &ports), Ok(4222));
        assert_eq!(
            resolve_port(&IntOrString::String("monitor".to_string()), &ports),
            Ok(8222)
        );
        assert!(resolve_port(&IntOrString::String("client".to_string()), &ports).is_err());
        let defaults = probe_timing(&Probe::default());
        assert_eq!(defaults.period, Duration::from_secs(10));
        assert_eq!(defaults.timeout, Duration::from_secs(1));
        assert_eq!(defaults.failure_threshold, 3);
        assert_eq!(defaults.success_threshold, 1);
    }
}
