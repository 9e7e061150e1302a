//! Request/reply latency: one requester, one responder, one request in flight at a time.
//!
//! The requester subscribes to a fixed reply inbox, publishes a request with that inbox as its
//! reply subject and waits for the reply before sending the next; the responder publishes a
//! reply to whatever reply subject each request carries. A round trip therefore crosses the
//! server twice. The first [`WARMUP_REQUESTS`] are not recorded; after that, requests run for
//! the plan's duration and the p50/p99 of the round-trip times are reported (nearest rank).
//!
//! Across a route (requester and responder on different servers), interest must have crossed
//! the route in both directions before the first request, or a request or reply is dropped and
//! the run fails on its timeout. So before the responder thread starts, probes go each way
//! until one arrives ([`probe_until_delivered`]): request probes carry no reply subject (the
//! responder answers only requests with one), reply probes carry one (the requester counts
//! only replies without one), so late probes never disturb the measurement.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::ScenarioError;
use crate::client::{probe_until_delivered, remaining, Connection, HANDSHAKE_BUFFER_CAPACITY};
use crate::protocol::Frame;

const REQUEST_SUBJECT: &str = "bench.request";
const REPLY_INBOX: &str = "_INBOX.bench.reply";
/// A request probe: no reply subject, so the responder ignores it.
const REQUEST_PROBE: &[u8] = b"PUB bench.request 0\r\n\r\n";
/// A reply probe: a reply subject, so the requester does not take it for a reply.
const REPLY_PROBE: &[u8] = b"PUB _INBOX.bench.reply bench.probe 0\r\n\r\n";
/// Request and reply payload.
const PAYLOAD: &[u8; 16] = b"0123456789abcdef";
const WARMUP_REQUESTS: usize = 200;
/// Upper bound on recorded samples, whatever the duration.
const MAX_SAMPLES: usize = 1_000_000;
const SETUP_TIMEOUT: Duration = Duration::from_secs(5);
/// One request whose reply takes longer fails the run.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy)]
pub struct LatencyPlan {
    pub duration: Duration,
}

#[derive(Debug, Clone, Copy)]
pub struct LatencyResult {
    pub samples: usize,
    pub p50: Duration,
    pub p99: Duration,
}

/// Measures with the requester connected to `requester_address` and the responder to
/// `responder_address` (the same server, or two servers joined by a route).
pub fn run(
    requester_address: SocketAddr,
    responder_address: SocketAddr,
    plan: LatencyPlan,
) -> Result<LatencyResult, ScenarioError> {
    let setup_deadline = Instant::now() + SETUP_TIMEOUT;
    let mut responder = Connection::connect(
        responder_address,
        "responder",
        HANDSHAKE_BUFFER_CAPACITY,
        setup_deadline,
    )?;
    responder.subscribe(REQUEST_SUBJECT, None, 1, setup_deadline)?;
    let mut requester = Connection::connect(
        requester_address,
        "requester",
        HANDSHAKE_BUFFER_CAPACITY,
        setup_deadline,
    )?;
    requester.subscribe(REPLY_INBOX, None, 1, setup_deadline)?;
    if requester_address != responder_address {
        let probe_deadline = Instant::now() + SETUP_TIMEOUT;
        probe_until_delivered(
            &mut requester,
            REQUEST_PROBE,
            std::slice::from_mut(&mut responder),
            1,
            |frame| matches!(frame, Frame::Message { reply_to: None }),
            probe_deadline,
        )?;
        probe_until_delivered(
            &mut responder,
            REPLY_PROBE,
            std::slice::from_mut(&mut requester),
            1,
            |frame| matches!(frame, Frame::Message { reply_to: Some(_) }),
            probe_deadline,
        )?;
    }

    let stop = AtomicBool::new(false);
    let responder_deadline = Instant::now() + plan.duration + REQUEST_TIMEOUT * 4;
    let (samples, responder_outcome) = std::thread::scope(|scope| {
        let stop = &stop;
        let handle = scope.spawn(move || respond(responder, stop, responder_deadline));
        let samples = request(&mut requester, plan.duration);
        stop.store(true, Ordering::Release);
        let responder_outcome = handle
            .join()
            .map_err(|_| ScenarioError::ThreadPanicked)
            .and_then(|outcome| outcome);
        (samples, responder_outcome)
    });
    responder_outcome?;
    let mut samples = samples?;
    samples.sort_unstable();
    Ok(LatencyResult {
        samples: samples.len(),
        p50: percentile(&samples, 50),
        p99: percentile(&samples, 99),
    })
}

/// Sends sequential requests; returns the recorded round-trip times.
fn request(
    connection: &mut Connection,
    duration: Duration,
) -> Result<Vec<Duration>, ScenarioError> {
    let mut frame =
        format!("PUB {REQUEST_SUBJECT} {REPLY_INBOX} {}\r\n", PAYLOAD.len()).into_bytes();
    frame.extend_from_slice(PAYLOAD);
    frame.extend_from_slice(b"\r\n");
    let mut samples = Vec::with_capacity(64 * 1024);
    let mut measure_until = None;
    for sent_count in 0..WARMUP_REQUESTS + MAX_SAMPLES {
        if sent_count == WARMUP_REQUESTS {
            measure_until = Some(Instant::now() + duration);
        }
        if measure_until.is_some_and(|until| Instant::now() >= until) {
            break;
        }
        let sent = Instant::now();
        connection.write_all(&frame)?;
        let deadline = sent + REQUEST_TIMEOUT;
        let mut replied = false;
        while !replied {
            remaining(deadline, "a reply")?;
            // Reply probes (with a reply subject) may still arrive; they are not replies.
            connection.read_frames(|frame| {
                replied |= matches!(frame, Frame::Message { reply_to: None });
            })?;
        }
        if measure_until.is_some() {
            samples.push(sent.elapsed());
        }
    }
    if samples.is_empty() {
        return Err(ScenarioError::NoSamples);
    }
    Ok(samples)
}

/// Answers every request until told to stop.
fn respond(
    mut connection: Connection,
    stop: &AtomicBool,
    deadline: Instant,
) -> Result<(), ScenarioError> {
    let reply_size = format!(" {}\r\n", PAYLOAD.len());
    let mut replies = Vec::with_capacity(4096);
    while !stop.load(Ordering::Acquire) && Instant::now() < deadline {
        connection.read_frames(|frame| {
            if let Frame::Message {
                reply_to: Some(reply_to),
            } = frame
            {
                replies.extend_from_slice(b"PUB ");
                replies.extend_from_slice(reply_to);
                replies.extend_from_slice(reply_size.as_bytes());
                replies.extend_from_slice(PAYLOAD);
                replies.extend_from_slice(b"\r\n");
            }
        })?;
        if !replies.is_empty() {
            connection.write_all(&replies)?;
            replies.clear();
        }
    }
    Ok(())
}

/// Nearest-rank percentile of sorted, non-empty `samples`.
fn percentile(samples: &[Duration], percent: usize) -> Duration {
    let rank = (samples.len() * percent).div_ceil(100).max(1);
    samples[rank.min(samples.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_use_the_measured_subjects_and_are_marked_by_their_reply_subject() {
        assert!(REQUEST_PROBE.starts_with(format!("PUB {REQUEST_SUBJECT} 0\r\n").as_bytes()));
        assert!(REPLY_PROBE.starts_with(format!("PUB {REPLY_INBOX} bench.probe ").as_bytes()));
    }

    #[test]
    fn percentile_uses_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        assert_eq!(percentile(&samples, 50), Duration::from_micros(50));
        assert_eq!(percentile(&samples, 99), Duration::from_micros(99));
        assert_eq!(
            percentile(&[Duration::from_micros(7)], 99),
            Duration::from_micros(7)
        );
    }
}
