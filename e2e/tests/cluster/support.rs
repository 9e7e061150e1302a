//! Helpers shared by the cluster tests: async-nats clients, interest probes, and tallies of
//! which message ids each subscriber received.
//!
//! Every test message's payload is a unique id, so duplicates and losses are counted per id.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::{Client, Subscriber};
use bytes::Bytes;
use futures::future::try_join_all;
use futures::StreamExt;
use tern_e2e::{Cluster, Frame, RawClient, ServerProcess};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How long all expected messages may take to arrive.
pub const RECEIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long interest may take to reach another server.
pub const INTEREST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long late (duplicate) messages are waited for once everything expected has arrived.
pub const LATE_MESSAGE_WINDOW: Duration = Duration::from_millis(200);
/// How often a probe is re-sent, and how often a condition is polled.
pub const POLL_INTERVAL: Duration = Duration::from_millis(25);
/// A CONNECT announcing protocol 1 (dynamic reconfiguration): the server sends async INFO as
/// the cluster changes.
pub const PROTOCOL_1_CONNECT: &str = r#"{"verbose":false,"pedantic":false,"protocol":1}"#;
/// Frames a raw client reads while looking for one, at most.
const MAX_FRAMES: usize = 10_000;

/// An async-nats client of `server` (that server only: it learns others from INFO).
pub async fn connect(server: &ServerProcess) -> anyhow::Result<Client> {
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(5))
        .reconnect_delay_callback(|_| Duration::from_millis(50))
        .connect(server.client_url())
        .await?;
    Ok(client)
}

/// Returns once `publisher`'s server knows every subscription `subscriber` made before the
/// call: `subscriber` subscribes to a fresh inbox and `publisher` publishes to it until a probe
/// arrives (a server sends interest to a peer in the order its clients subscribed).
pub async fn wait_for_interest(subscriber: &Client, publisher: &Client) -> anyhow::Result<()> {
    let inbox = subscriber.new_inbox();
    let mut probe = subscriber.subscribe(inbox.clone()).await?;
    subscriber.flush().await?;
    let deadline = Instant::now() + INTEREST_TIMEOUT;
    loop {
        publisher
            .publish(inbox.clone(), Bytes::from_static(b"probe"))
            .await?;
        publisher.flush().await?;
        match tokio::time::timeout(POLL_INTERVAL, probe.next()).await {
            Ok(Some(_)) => break,
            Ok(None) => anyhow::bail!("the probe subscription ended"),
            Err(_) if Instant::now() >= deadline => anyhow::bail!(
                "interest did not reach the publisher's server within {INTEREST_TIMEOUT:?}"
            ),
            Err(_) => {}
        }
    }
    probe.unsubscribe().await?;
    Ok(())
}

/// [`wait_for_interest`] for every ordered pair of distinct clients.
pub async fn wait_for_interest_everywhere(clients: &[Client]) -> anyhow::Result<()> {
    for (subscriber_index, subscriber) in clients.iter().enumerate() {
        for (publisher_index, publisher) in clients.iter().enumerate() {
            if subscriber_index != publisher_index {
                wait_for_interest(subscriber, publisher).await?;
            }
        }
    }
    Ok(())
}

/// Polls `condition` every [`POLL_INTERVAL`] until it holds; fails after `timeout` with `what`.
pub async fn eventually(
    what: &str,
    timeout: Duration,
    mut condition: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// The ids `<prefix>-0` .. `<prefix>-<count - 1>`.
pub fn ids(prefix: &str, count: usize) -> Vec<String> {
    (0..count)
        .map(|sequence| format!("{prefix}-{sequence}"))
        .collect()
}

/// Publishes one message per id (the id is the payload) and flushes.
pub async fn publish_ids(client: &Client, subject: &str, ids: &[String]) -> anyhow::Result<()> {
    for id in ids {
        client
            .publish(subject.to_string(), Bytes::from(id.clone()))
            .await?;
    }
    client.flush().await?;
    Ok(())
}

/// Every server gets a client with an exact and a wildcard subscription; every client publishes
/// `per_publisher` messages; every subscription must see each of them exactly once.
pub async fn assert_fanout_exactly_once(
    cluster: &Cluster,
    per_publisher: usize,
) -> anyhow::Result<()> {
    let clients = try_join_all(cluster.servers().iter().map(connect)).await?;
    let mut subscriptions = Vec::new();
    for client in &clients {
        // Two matching subscriptions on one server: the route still carries one copy.
        subscriptions.push(client.subscribe("fanout.events").await?);
        subscriptions.push(client.subscribe("fanout.*").await?);
    }
    wait_for_interest_everywhere(&clients).await?;

    let mut expected = BTreeSet::new();
    for (index, client) in clients.iter().enumerate() {
        let sent = ids(&format!("from-node-{index}"), per_publisher);
        publish_ids(client, "fanout.events", &sent).await?;
        expected.extend(sent);
    }
    let tallies = collect(&mut subscriptions, |tallies| {
        tallies.iter().all(|tally| tally.has_all(&expected))
    })
    .await;
    for (index, tally) in tallies.iter().enumerate() {
        let pattern = if index % 2 == 0 {
            "fanout.events"
        } else {
            "fanout.*"
        };
        tally.assert_exactly_once(&expected, &format!("{pattern} on node-{}", index / 2))?;
    }
    Ok(())
}

/// How many times each id arrived at one subscriber.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    counts: BTreeMap<String, usize>,
}

impl Tally {
    pub fn record(&mut self, payload: &[u8]) {
        *self
            .counts
            .entry(String::from_utf8_lossy(payload).into_owned())
            .or_default() += 1;
    }

    /// Messages received, duplicates included.
    pub fn total(&self) -> usize {
        self.counts.values().sum()
    }

    /// Each id received, with how many times.
    pub fn counts(&self) -> impl Iterator<Item = (&str, usize)> {
        self.counts.iter().map(|(id, &count)| (id.as_str(), count))
    }

    /// Distinct ids received.
    pub fn ids(&self) -> BTreeSet<&str> {
        self.counts.keys().map(String::as_str).collect()
    }

    pub fn has_all(&self, expected: &BTreeSet<String>) -> bool {
        expected.iter().all(|id| self.counts.contains_key(id))
    }

    /// Ids received more than once, with their counts.
    pub fn duplicates(&self) -> Vec<(&str, usize)> {
        self.counts
            .iter()
            .filter(|(_, &count)| count > 1)
            .map(|(id, &count)| (id.as_str(), count))
            .collect()
    }

    /// Fails unless every id of `expected` arrived exactly once and nothing else did.
    pub fn assert_exactly_once(
        &self,
        expected: &BTreeSet<String>,
        who: &str,
    ) -> anyhow::Result<()> {
        let missing: Vec<&String> = expected
            .iter()
            .filter(|id| !self.counts.contains_key(*id))
            .collect();
        let unexpected: Vec<&String> = self
            .counts
            .keys()
            .filter(|id| !expected.contains(*id))
            .collect();
        let duplicates = self.duplicates();
        anyhow::ensure!(
            missing.is_empty() && unexpected.is_empty() && duplicates.is_empty(),
            "{who}: {} of {} ids arrived; {} missing (first: {:?}), {} duplicated (first: {:?}), \
             {} unexpected (first: {:?})",
            self.counts.len(),
            expected.len(),
            missing.len(),
            missing.iter().take(5).collect::<Vec<_>>(),
            duplicates.len(),
            duplicates.iter().take(5).collect::<Vec<_>>(),
            unexpected.len(),
            unexpected.iter().take(5).collect::<Vec<_>>(),
        );
        Ok(())
    }

    /// Fails if any id arrived more than once.
    pub fn assert_no_duplicates(&self, who: &str) -> anyhow::Result<()> {
        let duplicates = self.duplicates();
        anyhow::ensure!(
            duplicates.is_empty(),
            "{who}: {} ids arrived more than once (first: {:?})",
            duplicates.len(),
            duplicates.iter().take(5).collect::<Vec<_>>()
        );
        Ok(())
    }
}

/// Reads all `subscribers` at once into one tally each until `done` holds for the tallies (or
/// [`RECEIVE_TIMEOUT`] passes: the caller's assertions then show what is missing), then for
/// [`LATE_MESSAGE_WINDOW`] more, so duplicates that trail the originals are counted too.
pub async fn collect(
    subscribers: &mut [Subscriber],
    done: impl Fn(&[Tally]) -> bool,
) -> Vec<Tally> {
    let mut tallies = vec![Tally::default(); subscribers.len()];
    let mut merged = futures::stream::select_all(
        subscribers
            .iter_mut()
            .enumerate()
            .map(|(index, subscriber)| subscriber.map(move |message| (index, message))),
    );
    let deadline = Instant::now() + RECEIVE_TIMEOUT;
    while !done(&tallies) {
        match tokio::time::timeout_at(deadline, merged.next()).await {
            Ok(Some((index, message))) => tallies[index].record(&message.payload),
            Ok(None) | Err(_) => return tallies,
        }
    }
    let late_deadline = Instant::now() + LATE_MESSAGE_WINDOW;
    while let Ok(Some((index, message))) =
        tokio::time::timeout_at(late_deadline, merged.next()).await
    {
        tallies[index].record(&message.payload);
    }
    tallies
}

/// A subscription read by a background task into a shared tally, for tests that act while
/// messages flow. Stops reading when dropped.
pub struct Recorder {
    tally: Arc<Mutex<Tally>>,
    task: JoinHandle<()>,
}

impl Recorder {
    pub fn start(mut subscriber: Subscriber) -> Self {
        let tally = Arc::new(Mutex::new(Tally::default()));
        let task = tokio::spawn({
            let tally = Arc::clone(&tally);
            async move {
                while let Some(message) = subscriber.next().await {
                    tally
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .record(&message.payload);
                }
            }
        });
        Self { tally, task }
    }

    /// What arrived so far.
    pub fn snapshot(&self) -> Tally {
        self.tally
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads frames until an INFO satisfies `condition` (answering PINGs, skipping other frames);
/// fails after `timeout` showing the INFOs seen.
pub fn wait_for_info(
    client: &mut RawClient,
    timeout: Duration,
    what: &str,
    condition: impl Fn(&serde_json::Value) -> bool,
) -> anyhow::Result<serde_json::Value> {
    let deadline = std::time::Instant::now() + timeout;
    let mut seen = Vec::new();
    for _ in 0..MAX_FRAMES {
        let remaining = deadline.saturating_duration_since(std::time::Instant::now());
        anyhow::ensure!(
            !remaining.is_zero(),
            "no INFO with {what} within {timeout:?}; INFOs seen: {seen:?}"
        );
        client.set_timeout(remaining);
        match client.read_frame() {
            Ok(Frame::Info(info)) if condition(&info) => return Ok(info),
            Ok(Frame::Info(info)) => seen.push(info.get("connect_urls").cloned()),
            Ok(Frame::Ping) => client.send("PONG\r\n")?,
            Ok(_) => {}
            Err(error) => {
                anyhow::bail!("no INFO with {what} ({error}); connect_urls of INFOs seen: {seen:?}")
            }
        }
    }
    anyhow::bail!("no INFO with {what} within {MAX_FRAMES} frames")
}

/// The `connect_urls` of an INFO (empty when absent).
pub fn connect_urls(info: &serde_json::Value) -> BTreeSet<String> {
    info.get("connect_urls")
        .and_then(serde_json::Value::as_array)
        .map(|urls| {
            urls.iter()
                .filter_map(serde_json::Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}
