//! Throughput: one publisher sending one payload size as fast as the system accepts it.
//!
//! Load shape. The publisher writes pre-built batches of identical `PUB` frames (about
//! [`BATCH_TARGET_BYTES`] per write, no per-message work) until the run's duration has passed,
//! then sends a final PING; its PONG proves the server has processed every message.
//! Two kinds of flow control keep the server's buffers bounded:
//! - a PING every [`PING_EVERY_BYTES`], with at most [`MAX_OUTSTANDING_PINGS`] unanswered, bounds
//!   what the server has accepted but not yet processed;
//! - the publisher never gets more than [`IN_FLIGHT_WINDOW_BYTES`] ahead of the slowest
//!   subscriber (subscribers publish their counts through atomics), which keeps every
//!   subscriber's outbound buffer far below nats-server's 64 MiB slow-consumer limit.
//!
//! Measurement. Publish-only: messages published / time until the final PONG. Delivery
//! scenarios: messages received by all subscribers together / time from the publisher's first
//! write to the last message received. Subscribers count `MSG` frames per read, never per
//! message allocation.
//!
//! Across a route. When the subscribers are on another server than the publisher
//! ([`Endpoints`]), the publisher first sends probe messages on the measured subject until
//! every subscriber received one (see [`probe_until_delivered`]), so no measured message is
//! published before the publisher's server knows about the subscriptions. Probes carry a reply
//! subject and measured messages none; subscribers count only the latter.
//!
//! Transports. Over TLS or WebSocket ([`Endpoint`]) everything above is unchanged: the
//! publisher's batch is one TLS write (up to four records) or one masked binary WebSocket
//! message, and subscribers count `MSG` frames in the decrypted or unframed byte stream.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::ScenarioError;
use crate::client::{
    probe_until_delivered, remaining, ClientError, Connection, Endpoint, HANDSHAKE_BUFFER_CAPACITY,
    LOAD_BUFFER_CAPACITY,
};
use crate::protocol::Frame;

/// Bytes of `PUB` frames per write.
const BATCH_TARGET_BYTES: usize = 64 * 1024;
/// Bytes published between two flow-control PINGs.
const PING_EVERY_BYTES: usize = 1024 * 1024;
/// PINGs the publisher may have unanswered before it waits.
const MAX_OUTSTANDING_PINGS: u32 = 4;
/// How far (in published bytes) the publisher may run ahead of the slowest subscriber.
const IN_FLIGHT_WINDOW_BYTES: usize = 16 * 1024 * 1024;
/// Pause while the in-flight window is full.
const WINDOW_WAIT: Duration = Duration::from_micros(50);
/// Connecting and subscribing every client.
const SETUP_TIMEOUT: Duration = Duration::from_secs(5);
/// After the publishing duration: final PONG and delivery of everything published.
const FINISH_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the coordinator checks whether every message was delivered.
const DELIVERY_POLL_INTERVAL: Duration = Duration::from_millis(1);
const QUEUE_GROUP: &str = "bench-workers";
/// Reply subject that marks a probe message (measured messages have none).
const PROBE_REPLY_SUBJECT: &str = "bench.probe";

/// Who receives the published messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Nobody subscribes.
    PublishOnly,
    OneToOne,
    FanOut {
        subscribers: usize,
    },
    QueueGroup {
        members: usize,
    },
}

impl Delivery {
    fn subscriber_count(self) -> usize {
        match self {
            Self::PublishOnly => 0,
            Self::OneToOne => 1,
            Self::FanOut { subscribers } => subscribers,
            Self::QueueGroup { members } => members,
        }
    }

    fn queue_group(self) -> Option<&'static str> {
        matches!(self, Self::QueueGroup { .. }).then_some(QUEUE_GROUP)
    }

    /// Messages all subscribers together must receive when `published` were sent.
    fn expected_deliveries(self, published: u64) -> u64 {
        match self {
            Self::PublishOnly => 0,
            Self::OneToOne | Self::QueueGroup { .. } => published,
            Self::FanOut { subscribers } => published * subscribers as u64,
        }
    }

    /// How many subscribers must receive a probe: every one, or any one member of a queue
    /// group (a group receives each message once).
    fn probe_receivers(self) -> usize {
        match self {
            Self::QueueGroup { .. } => 1,
            other => other.subscriber_count(),
        }
    }

    /// How many published messages have certainly reached their subscriber(s).
    fn delivered_floor(self, received: &[AtomicU64]) -> u64 {
        let counts = received.iter().map(|count| count.load(Ordering::Acquire));
        match self {
            Self::PublishOnly => u64::MAX,
            Self::OneToOne | Self::FanOut { .. } => counts.min().unwrap_or(0),
            Self::QueueGroup { .. } => counts.sum(),
        }
    }
}

/// Where and how the clients connect: the same server, or two servers joined by a route.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub publisher: Endpoint,
    pub subscribers: Endpoint,
}

#[derive(Debug, Clone, Copy)]
pub struct ThroughputPlan {
    pub delivery: Delivery,
    pub payload_size: usize,
    pub duration: Duration,
}

#[derive(Debug, Clone, Copy)]
pub struct ThroughputResult {
    /// Messages counted on the measured side (all subscribers together, or the publisher).
    pub messages: u64,
    pub elapsed: Duration,
}

/// State shared by the publisher, the subscribers and the coordinator of one run.
struct Shared {
    received: Vec<AtomicU64>,
    stop: AtomicBool,
    subscriber_failed: AtomicBool,
    /// Subscribers give up at this point even if never told to stop.
    subscriber_deadline: Instant,
}

struct SubscriberOutcome {
    received: u64,
    last_receive: Option<Instant>,
}

pub fn run(endpoints: &Endpoints, plan: ThroughputPlan) -> Result<ThroughputResult, ScenarioError> {
    let subject = format!("bench.throughput.{}", plan.payload_size);
    let setup_deadline = Instant::now() + SETUP_TIMEOUT;
    let subscriber_count = plan.delivery.subscriber_count();
    let mut subscribers = Vec::with_capacity(subscriber_count);
    for index in 0..subscriber_count {
        let name = format!("subscriber-{index}");
        let mut connection = Connection::connect_to(
            &endpoints.subscribers,
            &name,
            LOAD_BUFFER_CAPACITY,
            setup_deadline,
        )?;
        connection.subscribe(&subject, plan.delivery.queue_group(), 1, setup_deadline)?;
        subscribers.push(connection);
    }
    let mut publisher = Connection::connect_to(
        &endpoints.publisher,
        "publisher",
        HANDSHAKE_BUFFER_CAPACITY,
        setup_deadline,
    )?;
    if endpoints.publisher.address != endpoints.subscribers.address {
        let probe = format!("PUB {subject} {PROBE_REPLY_SUBJECT} 0\r\n\r\n");
        probe_until_delivered(
            &mut publisher,
            probe.as_bytes(),
            &mut subscribers,
            plan.delivery.probe_receivers(),
            |frame| matches!(frame, Frame::Message { reply_to: Some(_) }),
            Instant::now() + SETUP_TIMEOUT,
        )?;
    }
    let shared = Shared {
        received: (0..subscriber_count).map(|_| AtomicU64::new(0)).collect(),
        stop: AtomicBool::new(false),
        subscriber_failed: AtomicBool::new(false),
        // The coordinator stops subscribers at most two FINISH_TIMEOUTs after publishing ends.
        subscriber_deadline: Instant::now() + plan.duration + FINISH_TIMEOUT * 3,
    };

    let (published, publish_elapsed, start, outcomes) = std::thread::scope(|scope| {
        let shared = &shared;
        let handles: Vec<_> = subscribers
            .into_iter()
            .enumerate()
            .map(|(index, connection)| scope.spawn(move || receive(connection, index, shared)))
            .collect();
        let start = Instant::now();
        let published = publish(&mut publisher, &subject, plan, shared, start);
        let publish_elapsed = start.elapsed();
        if let Ok(published) = published {
            wait_for_delivery(plan.delivery, published, shared);
        }
        shared.stop.store(true, Ordering::Release);
        let outcomes: Vec<_> = handles
            .into_iter()
            .map(|handle| handle.join().map_err(|_| ScenarioError::ThreadPanicked)?)
            .collect();
        (published, publish_elapsed, start, outcomes)
    });

    // A subscriber's own failure explains a stalled publisher better than the stall does.
    let mut subscriber_outcomes = Vec::with_capacity(outcomes.len());
    for outcome in outcomes {
        subscriber_outcomes.push(outcome?);
    }
    let published = published?;
    if plan.delivery == Delivery::PublishOnly {
        return Ok(ThroughputResult {
            messages: published,
            elapsed: publish_elapsed,
        });
    }
    let expected = plan.delivery.expected_deliveries(published);
    let delivered: u64 = subscriber_outcomes
        .iter()
        .map(|outcome| outcome.received)
        .sum();
    if delivered < expected {
        return Err(ScenarioError::Incomplete {
            delivered,
            expected,
        });
    }
    let last_receive = subscriber_outcomes
        .iter()
        .filter_map(|outcome| outcome.last_receive)
        .max()
        .unwrap_or(start);
    Ok(ThroughputResult {
        messages: delivered,
        elapsed: last_receive.duration_since(start),
    })
}

/// The bytes of one `PUB` frame carrying a payload of `payload_size` bytes.
fn publish_frame(subject: &str, payload_size: usize) -> Vec<u8> {
    let mut frame = format!("PUB {subject} {payload_size}\r\n").into_bytes();
    frame.extend((0..payload_size).map(|index| b'a' + (index % 26) as u8));
    frame.extend_from_slice(b"\r\n");
    frame
}

/// Publishes for the plan's duration; returns how many messages the server has processed.
fn publish(
    connection: &mut Connection,
    subject: &str,
    plan: ThroughputPlan,
    shared: &Shared,
    start: Instant,
) -> Result<u64, ScenarioError> {
    let frame = publish_frame(subject, plan.payload_size);
    let messages_per_batch = (BATCH_TARGET_BYTES / frame.len()).max(1);
    let batch = frame.repeat(messages_per_batch);
    let batches_per_ping = (PING_EVERY_BYTES / batch.len()).max(1);
    let window = (IN_FLIGHT_WINDOW_BYTES / frame.len()).max(2 * messages_per_batch) as u64;
    let publish_until = start + plan.duration;
    let deadline = publish_until + FINISH_TIMEOUT;

    let mut published = 0u64;
    let mut outstanding_pings = 0u32;
    let mut batches_since_ping = 0usize;
    while Instant::now() < publish_until {
        wait_for_window(plan.delivery, published, window, shared, deadline)?;
        connection.write_all(&batch)?;
        published += messages_per_batch as u64;
        batches_since_ping += 1;
        if batches_since_ping == batches_per_ping {
            batches_since_ping = 0;
            connection.write_all(b"PING\r\n")?;
            outstanding_pings += 1;
            await_pongs(
                connection,
                &mut outstanding_pings,
                MAX_OUTSTANDING_PINGS,
                deadline,
            )?;
        }
    }
    connection.write_all(b"PING\r\n")?;
    outstanding_pings += 1;
    await_pongs(connection, &mut outstanding_pings, 0, deadline)?;
    Ok(published)
}

/// Reads until at most `allowed` PINGs are unanswered.
fn await_pongs(
    connection: &mut Connection,
    outstanding_pings: &mut u32,
    allowed: u32,
    deadline: Instant,
) -> Result<(), ClientError> {
    while *outstanding_pings > allowed {
        remaining(deadline, "PONG from the server (publisher flow control)")?;
        connection.read_frames(|frame| {
            if frame == Frame::Pong {
                *outstanding_pings = outstanding_pings.saturating_sub(1);
            }
        })?;
    }
    Ok(())
}

/// Waits while the publisher is more than `window` messages ahead of its subscribers.
fn wait_for_window(
    delivery: Delivery,
    published: u64,
    window: u64,
    shared: &Shared,
    deadline: Instant,
) -> Result<(), ScenarioError> {
    if delivery == Delivery::PublishOnly {
        return Ok(());
    }
    while published.saturating_sub(delivery.delivered_floor(&shared.received)) > window {
        if shared.subscriber_failed.load(Ordering::Acquire) {
            return Err(ScenarioError::SubscriberFailed);
        }
        if Instant::now() >= deadline {
            return Err(ScenarioError::DeliveryStalled);
        }
        std::thread::sleep(WINDOW_WAIT);
    }
    Ok(())
}

/// Waits until every published message was delivered, a subscriber failed, or time is up;
/// the caller judges which from the counts.
fn wait_for_delivery(delivery: Delivery, published: u64, shared: &Shared) {
    let deadline = Instant::now() + FINISH_TIMEOUT;
    while delivery.delivered_floor(&shared.received) < published
        && !shared.subscriber_failed.load(Ordering::Acquire)
        && Instant::now() < deadline
    {
        std::thread::sleep(DELIVERY_POLL_INTERVAL);
    }
}

fn receive(
    mut connection: Connection,
    index: usize,
    shared: &Shared,
) -> Result<SubscriberOutcome, ScenarioError> {
    let mut received = 0u64;
    let mut last_receive = None;
    while !shared.stop.load(Ordering::Acquire) && Instant::now() < shared.subscriber_deadline {
        let before = received;
        // Probes carry a reply subject; only measured messages are counted.
        let read = connection.read_frames(|frame| {
            if let Frame::Message { reply_to: None } = frame {
                received += 1;
            }
        });
        if let Err(error) = read {
            shared.subscriber_failed.store(true, Ordering::Release);
            return Err(ScenarioError::Subscriber { index, error });
        }
        if received != before {
            last_receive = Some(Instant::now());
            shared.received[index].store(received, Ordering::Release);
        }
    }
    Ok(SubscriberOutcome {
        received,
        last_receive,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_frame_has_the_announced_size() {
        let frame = publish_frame("bench.x", 16);
        assert!(frame.starts_with(b"PUB bench.x 16\r\n"));
        assert_eq!(frame.len(), "PUB bench.x 16\r\n".len() + 16 + 2);
        assert!(frame.ends_with(b"\r\n"));
    }

    #[test]
    fn delivered_floor_follows_the_delivery_kind() {
        let received = [AtomicU64::new(5), AtomicU64::new(3)];
        assert_eq!(
            Delivery::FanOut { subscribers: 2 }.delivered_floor(&received),
            3
        );
        assert_eq!(
            Delivery::QueueGroup { members: 2 }.delivered_floor(&received),
            8
        );
        assert_eq!(
            Delivery::FanOut { subscribers: 2 }.expected_deliveries(10),
            20
        );
    }

    #[test]
    fn a_queue_group_needs_one_probe_and_fan_out_one_per_subscriber() {
        assert_eq!(Delivery::QueueGroup { members: 4 }.probe_receivers(), 1);
        assert_eq!(Delivery::FanOut { subscribers: 4 }.probe_receivers(), 4);
        assert_eq!(Delivery::OneToOne.probe_receivers(), 1);
        assert_eq!(Delivery::PublishOnly.probe_receivers(), 0);
    }
}
