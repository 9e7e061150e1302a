//! Config reload on SIGHUP that changes authorization, run against every selected server kind:
//! a tightened publish or subscribe permission restricts exactly the connection it names and
//! loses no message of the others, removing a user or changing its password closes only that
//! user's connections, and a file that does not parse changes nothing. nats-server 2.9.10's
//! bytes are the expected ones.
//!
//! Each test rewrites the config file, sends SIGHUP and then probes over the wire, with a
//! deadline, until the effect shows: nothing sleeps to wait for a reload.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use anyhow::Context;
use tern_e2e::{
    for_each_server_kind, wait_until, Frame, HarnessError, Message, RawClient, ServerConfig,
    ServerKind, ServerProcess, Signal,
};

/// How long a reload may take to show on the wire (a debug build on a busy machine).
const RELOAD_TIMEOUT: Duration = Duration::from_secs(10);
const POLL_INTERVAL: Duration = Duration::from_millis(25);
/// Messages the counting publisher sends between two PING/PONG round trips.
const COUNTED_BATCH: u64 = 10;
/// The counting publisher stops by itself after this many, whatever the test does.
const MAX_COUNTED_MESSAGES: u64 = 2_000_000;
/// Counted messages that must be published before the reload, and again after it showed.
const COUNTED_AROUND_THE_RELOAD: u64 = 200;
/// Server PINGs answered while waiting for one frame.
const MAX_PINGS_SKIPPED: usize = 10;

const USER_A: &str = "{user: a, password: a-pass}";
const USER_A_PUBLISHES_ONLY_ALLOWED: &str =
    r#"{user: a, password: a-pass, permissions: {publish: {allow: ["allowed.>"]}}}"#;
const USER_B: &str = "{user: b, password: b-pass}";
const USER_C: &str = "{user: c, password: c-pass}";
const USER_D: &str = "{user: d, password: d-pass}";
const USER_D_WITH_A_NEW_PASSWORD: &str = "{user: d, password: d-new-pass}";
const USER_S: &str = "{user: s, password: s-pass}";
const USER_S_SUBSCRIBES_ONLY_PUBLIC: &str =
    r#"{user: s, password: s-pass, permissions: {subscribe: {allow: ["public.>"]}}}"#;
const USER_P: &str = "{user: p, password: p-pass}";

/// An `authorization` block with one `users` entry per element.
fn users_config(users: &[&str]) -> String {
    let entries: String = users.iter().map(|user| format!("    {user}\n")).collect();
    format!("authorization {{\n  users: [\n{entries}  ]\n}}\n")
}

fn start(kind: ServerKind, config_text: &str) -> Result<ServerProcess, HarnessError> {
    ServerProcess::start(kind, ServerConfig::from_text(config_text))
}

/// Replaces the config file with `config_text` and sends SIGHUP.
fn reload(server: &ServerProcess, config_text: &str) -> anyhow::Result<()> {
    fs::write(server.config_path(), config_text)
        .with_context(|| format!("rewriting {}", server.config_path().display()))?;
    server.signal(Signal::Hangup)?;
    Ok(())
}

/// A client authenticated as `user`, `verbose` and `pedantic` off, its handshake PONG read.
fn connect_as(
    server: &ServerProcess,
    user: &str,
    password: &str,
) -> Result<RawClient, HarnessError> {
    RawClient::connected(server, &credentials(user, password))
}

fn credentials(user: &str, password: &str) -> String {
    format!(r#"{{"verbose":false,"pedantic":false,"user":"{user}","pass":"{password}"}}"#)
}

/// The text of the `-ERR` for a refused publish to `subject`.
fn publish_violation(subject: &str) -> String {
    format!("Permissions Violation for Publish to \"{subject}\"")
}

/// A `PUB` of `payload` to `subject`.
fn publish(subject: &str, payload: &str) -> String {
    format!("PUB {subject} {}\r\n{payload}\r\n", payload.len())
}

fn message(subject: &str, sid: &str, payload: &str) -> Message {
    Message {
        subject: subject.to_string(),
        sid: sid.to_string(),
        reply: None,
        headers: None,
        payload: payload.as_bytes().to_vec(),
    }
}

/// Calls `check` every [`POLL_INTERVAL`] until it returns `true`, for at most
/// [`RELOAD_TIMEOUT`]; an error from `check` ends the wait at once.
fn poll_until(what: &str, mut check: impl FnMut() -> anyhow::Result<bool>) -> anyhow::Result<()> {
    wait_until(what, RELOAD_TIMEOUT, POLL_INTERVAL, || match check() {
        Ok(true) => Some(Ok(())),
        Ok(false) => None,
        Err(error) => Some(Err(error)),
    })?
}

/// The next frame that is not a server PING (those are answered).
fn next_frame_answering_pings(client: &mut RawClient) -> Result<Frame, HarnessError> {
    for _ in 0..MAX_PINGS_SKIPPED {
        match client.read_frame()? {
            Frame::Ping => client.send("PONG\r\n")?,
            frame => return Ok(frame),
        }
    }
    Err(HarnessError::UnexpectedBytes {
        expected: "a frame other than PING".to_string(),
        received: format!("{MAX_PINGS_SKIPPED} PINGs"),
    })
}

/// Publishes `counted` messages numbered from 0 (the payload is the number), in batches each
/// closed by a PING/PONG round trip, on its own thread until told to stop.
struct CountingPublisher {
    stop: Arc<AtomicBool>,
    /// Messages the server has acknowledged (their batch's PONG arrived).
    published: Arc<AtomicU64>,
    thread: Option<JoinHandle<Result<u64, HarnessError>>>,
}

impl CountingPublisher {
    fn start(mut client: RawClient) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let published = Arc::new(AtomicU64::new(0));
        let thread = thread::spawn({
            let stop = Arc::clone(&stop);
            let published = Arc::clone(&published);
            move || {
                let mut next = 0;
                while !stop.load(Ordering::Relaxed) && next < MAX_COUNTED_MESSAGES {
                    let mut batch: String = (next..next + COUNTED_BATCH)
                        .map(|number| publish("counted", &number.to_string()))
                        .collect();
                    batch.push_str("PING\r\n");
                    client.send(batch)?;
                    client.expect("PONG\r\n")?;
                    next += COUNTED_BATCH;
                    published.store(next, Ordering::Relaxed);
                }
                Ok(next)
            }
        });
        Self {
            stop,
            published,
            thread: Some(thread),
        }
    }

    /// Waits until at least `count` messages are acknowledged.
    fn wait_for(&self, count: u64) -> anyhow::Result<()> {
        wait_until(
            &format!("{count} counted messages to be published"),
            RELOAD_TIMEOUT,
            POLL_INTERVAL,
            || (self.published.load(Ordering::Relaxed) >= count).then_some(()),
        )?;
        Ok(())
    }

    fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// Stops publishing; returns how many messages were sent, every one acknowledged.
    fn stop(mut self) -> anyhow::Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self
            .thread
            .take()
            .context("the publisher was already stopped")?;
        let sent = thread
            .join()
            .map_err(|_| anyhow::anyhow!("the counting publisher panicked"))?
            .context("the counting publisher failed")?;
        Ok(sent)
    }
}

impl Drop for CountingPublisher {
    fn drop(&mut self) {
        // A test that failed early lets the thread end; its connection closes with the server.
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A subscriber that also has sid 3 on `counted`: it keeps the counted numbers apart from the
/// messages a test looks at.
struct Receiver {
    client: RawClient,
    counted: Vec<u64>,
}

impl Receiver {
    const COUNTED_SID: &'static str = "3";

    /// Everything delivered before the PONG of a PING sent now, counted messages left out. Any
    /// frame other than a message is an error.
    fn drain(&mut self) -> anyhow::Result<Vec<Message>> {
        let mut messages = Vec::new();
        for frame in self.client.frames_until_pong()? {
            match frame {
                Frame::Message(message) if message.sid == Self::COUNTED_SID => {
                    let number = String::from_utf8_lossy(&message.payload)
                        .parse()
                        .with_context(|| {
                            format!("a counted payload is not a number: {message:?}")
                        })?;
                    self.counted.push(number);
                }
                Frame::Message(message) => messages.push(message),
                other => anyhow::bail!("the receiver was sent {other:?}"),
            }
        }
        Ok(messages)
    }

    /// Asserts the counted messages are exactly 0, 1, ..., `total - 1`, in order.
    fn assert_counted_exactly(&self, total: u64) -> anyhow::Result<()> {
        let expected = 0..total;
        if let Some((position, (received, wanted))) = self
            .counted
            .iter()
            .zip(expected.clone())
            .enumerate()
            .find(|(_, (received, wanted))| **received != *wanted)
        {
            anyhow::bail!(
                "counted message {position} is {received}, expected {wanted} (a message was lost \
                 or duplicated); received {} of {total}",
                self.counted.len()
            );
        }
        anyhow::ensure!(
            self.counted.len() as u64 == total,
            "received {} counted messages, {total} were published",
            self.counted.len()
        );
        Ok(())
    }
}

#[test]
fn tightened_publish_permission_refuses_only_that_user_and_loses_no_message_of_others() {
    for_each_server_kind(|kind| {
        let server = start(kind, &users_config(&[USER_A, USER_B, USER_C]))?;
        let mut receiver = connect_as(&server, "b", "b-pass")?;
        receiver.send("SUB allowed.> 1\r\nSUB other 2\r\nSUB counted 3\r\nPING\r\n")?;
        receiver.expect("PONG\r\n")?;
        let mut receiver = Receiver {
            client: receiver,
            counted: Vec::new(),
        };
        let mut a = connect_as(&server, "a", "a-pass")?;
        a.send(format!("{}PING\r\n", publish("other", "before")))?;
        a.expect("PONG\r\n")?;
        assert_eq!(receiver.drain()?, [message("other", "2", "before")]);

        let counting = CountingPublisher::start(connect_as(&server, "c", "c-pass")?);
        counting.wait_for(COUNTED_AROUND_THE_RELOAD)?;
        reload(
            &server,
            &users_config(&[USER_A_PUBLISHES_ONLY_ALLOWED, USER_B, USER_C]),
        )?;

        // Until the reload applies, `a`'s probes pass and must be delivered; after, refused.
        let mut accepted = Vec::new();
        let mut delivered = Vec::new();
        let mut probe = 0;
        poll_until("a's publish to `other` to be refused", || {
            probe += 1;
            let payload = format!("probe-{probe}");
            a.send(format!("{}PING\r\n", publish("other", &payload)))?;
            let refused = match a.read_frame()? {
                Frame::Pong => {
                    accepted.push(message("other", "2", &payload));
                    false
                }
                Frame::Error(text) => {
                    anyhow::ensure!(
                        text == publish_violation("other"),
                        "expected -ERR '{}', got -ERR '{text}'",
                        publish_violation("other")
                    );
                    a.expect("PONG\r\n")?;
                    true
                }
                other => anyhow::bail!("expected PONG or a publish violation, got {other:?}"),
            };
            delivered.extend(receiver.drain()?);
            Ok(refused)
        })?;
        assert_eq!(delivered, accepted, "probes delivered vs probes accepted");

        a.send(format!("{}PING\r\n", publish("other", "after")))?;
        a.expect(format!("-ERR '{}'\r\nPONG\r\n", publish_violation("other")))?;
        assert_eq!(receiver.drain()?, []);
        a.send(format!("{}PING\r\n", publish("allowed.x", "ok")))?;
        a.expect("PONG\r\n")?;
        assert_eq!(receiver.drain()?, [message("allowed.x", "1", "ok")]);

        counting.wait_for(counting.published() + COUNTED_AROUND_THE_RELOAD)?;
        let total = counting.stop()?;
        assert_eq!(receiver.drain()?, []);
        receiver.assert_counted_exactly(total)?;
        Ok(())
    });
}

#[test]
fn tightened_subscribe_permission_drops_only_the_subscription_no_longer_allowed() {
    for_each_server_kind(|kind| {
        let server = start(kind, &users_config(&[USER_S, USER_P]))?;
        let mut subscriber = connect_as(&server, "s", "s-pass")?;
        subscriber.send("SUB public.> 1\r\nSUB private.> 2\r\nPING\r\n")?;
        subscriber.expect("PONG\r\n")?;
        let mut publisher = connect_as(&server, "p", "p-pass")?;
        publisher.send(format!(
            "{}{}PING\r\n",
            publish("private.x", "before"),
            publish("public.x", "before")
        ))?;
        publisher.expect("PONG\r\n")?;
        subscriber.send("PING\r\n")?;
        subscriber
            .expect("MSG private.x 2 6\r\nbefore\r\nMSG public.x 1 6\r\nbefore\r\nPONG\r\n")?;

        reload(
            &server,
            &users_config(&[USER_S_SUBSCRIBES_ONLY_PUBLIC, USER_P]),
        )?;

        // nats-server removes the subscription, then tells the client which one went: nothing
        // on `private.>` may follow that -ERR, and `public.>` must miss nothing.
        let removal = r#"Permissions Violation for Subscription to "private.>" (sid "2")"#;
        let mut removed = false;
        let mut published = Vec::new();
        let mut public = Vec::new();
        let mut probe = 0;
        poll_until("the subscription on `private.>` to be removed", || {
            probe += 1;
            let payload = format!("probe-{probe}");
            publisher.send(format!(
                "{}{}PING\r\n",
                publish("private.x", &payload),
                publish("public.x", &payload)
            ))?;
            publisher.expect("PONG\r\n")?;
            published.push(message("public.x", "1", &payload));
            for frame in subscriber.frames_until_pong()? {
                match frame {
                    Frame::Message(message) if message.sid == "1" => public.push(message),
                    Frame::Message(message) if message.sid == "2" => anyhow::ensure!(
                        !removed,
                        "{message:?} was delivered after the subscription was removed"
                    ),
                    Frame::Error(text) if !removed => {
                        anyhow::ensure!(
                            text == removal,
                            "expected -ERR '{removal}', got -ERR '{text}'"
                        );
                        removed = true;
                    }
                    other => anyhow::bail!("the subscriber was sent {other:?}"),
                }
            }
            Ok(removed)
        })?;
        assert_eq!(public, published, "public messages delivered vs published");

        publisher.send(format!(
            "{}{}PING\r\n",
            publish("private.x", "after"),
            publish("public.x", "after")
        ))?;
        publisher.expect("PONG\r\n")?;
        subscriber.send("PING\r\n")?;
        subscriber.expect("MSG public.x 1 5\r\nafter\r\nPONG\r\n")?;
        subscriber.send("SUB private.y 3\r\nPING\r\n")?;
        subscriber
            .expect("-ERR 'Permissions Violation for Subscription to \"private.y\"'\r\nPONG\r\n")?;
        Ok(())
    });
}

#[test]
fn removing_a_user_or_changing_its_password_closes_only_those_connections() {
    for_each_server_kind(|kind| {
        let server = start(kind, &users_config(&[USER_A, USER_B, USER_C, USER_D]))?;
        let mut a = connect_as(&server, "a", "a-pass")?;
        a.send("SUB news 1\r\nPING\r\n")?;
        a.expect("PONG\r\n")?;
        let mut c = connect_as(&server, "c", "c-pass")?;
        c.send("SUB news 1\r\nPING\r\n")?;
        c.expect("PONG\r\n")?;
        let mut removed = [
            connect_as(&server, "b", "b-pass")?,
            connect_as(&server, "b", "b-pass")?,
        ];
        let mut changed_password = connect_as(&server, "d", "d-pass")?;
        for client in removed.iter_mut().chain([&mut changed_password]) {
            client.send("SUB news 1\r\nPING\r\n")?;
            client.expect("PONG\r\n")?;
            client.set_timeout(RELOAD_TIMEOUT);
        }

        reload(
            &server,
            &users_config(&[USER_A, USER_C, USER_D_WITH_A_NEW_PASSWORD]),
        )?;

        // nats-server 2.9 treats a user that is gone as one that moved to another account and
        // closes its connections without a word (reload.go, clientHasMovedToDifferentAccount);
        // a user that is still there but whose password no longer passes gets the violation.
        for (index, client) in removed.iter_mut().enumerate() {
            client
                .expect_closed()
                .with_context(|| format!("connection {index} of the removed user b"))?;
        }
        assert_eq!(
            next_frame_answering_pings(&mut changed_password)?,
            Frame::Error("Authorization Violation".to_string())
        );
        changed_password.expect_closed()?;

        a.send(format!("{}PING\r\n", publish("news", "from-a")))?;
        a.expect("MSG news 1 6\r\nfrom-a\r\nPONG\r\n")?;
        c.send(format!("{}PING\r\n", publish("news", "from-c")))?;
        c.expect("MSG news 1 6\r\nfrom-a\r\nMSG news 1 6\r\nfrom-c\r\nPONG\r\n")?;
        a.send("PING\r\n")?;
        a.expect("MSG news 1 6\r\nfrom-c\r\nPONG\r\n")?;

        for (user, password) in [("b", "b-pass"), ("d", "d-pass")] {
            let mut refused = RawClient::connect_to(&server)?;
            refused.read_info()?;
            refused.send(format!(
                "CONNECT {}\r\nPING\r\n",
                credentials(user, password)
            ))?;
            refused.expect("-ERR 'Authorization Violation'\r\n")?;
            refused.expect_closed()?;
        }
        let mut new_d = connect_as(&server, "d", "d-new-pass")?;
        new_d.send(format!("{}PING\r\n", publish("news", "from-d")))?;
        new_d.expect("PONG\r\n")?;
        a.send("PING\r\n")?;
        a.expect("MSG news 1 6\r\nfrom-d\r\nPONG\r\n")?;
        Ok(())
    });
}

#[test]
fn reload_with_a_broken_file_keeps_the_old_permissions_and_connections() {
    for_each_server_kind(|kind| {
        let config = users_config(&[USER_A_PUBLISHES_ONLY_ALLOWED, USER_B]);
        let server = start(kind, &config)?;
        let mut receiver = connect_as(&server, "b", "b-pass")?;
        receiver.send("SUB > 1\r\nPING\r\n")?;
        receiver.expect("PONG\r\n")?;
        let mut a = connect_as(&server, "a", "a-pass")?;

        // Would lift `a`'s restriction and remove `b`, but the users array and the block are
        // never closed.
        reload(
            &server,
            "authorization {\n  users: [\n    {user: a, password: a-pass}\n",
        )?;
        poll_until("the server to log the failed reload", || {
            Ok(server
                .log()
                .contains("Failed to reload server configuration"))
        })?;
        anyhow::ensure!(
            !server.log().contains("Reloaded server configuration"),
            "a broken file was reported as reloaded:\n{}",
            server.log()
        );

        a.send(format!(
            "{}{}PING\r\n",
            publish("other", "refused"),
            publish("allowed.x", "ok")
        ))?;
        a.expect(format!("-ERR '{}'\r\nPONG\r\n", publish_violation("other")))?;
        receiver.send("PING\r\n")?;
        receiver.expect("MSG allowed.x 1 2\r\nok\r\nPONG\r\n")?;

        let mut second_b = connect_as(&server, "b", "b-pass")
            .context("b's credentials stopped working after a failed reload")?;
        second_b.send(format!("{}PING\r\n", publish("news", "still")))?;
        second_b.expect("PONG\r\n")?;
        receiver.send("PING\r\n")?;
        receiver.expect("MSG news 1 5\r\nstill\r\nPONG\r\n")?;
        Ok(())
    });
}

/// Tern's opt-in `--watch_config`: a change to the file (as a mounted ConfigMap changes) is
/// reloaded without a signal, and INFO of new clients shows it.
#[test]
fn a_watched_config_file_reloads_when_it_changes() {
    tern_e2e::for_each_server_kind_of(&[ServerKind::Tern], |kind| {
        let server = ServerProcess::start(
            kind,
            ServerConfig::from_text("max_payload: 1024\n").with_argument("--watch_config"),
        )?;
        let max_payload = || -> anyhow::Result<u64> {
            let mut client = RawClient::connect_to(&server)?;
            let info = client.read_info()?;
            info.get("max_payload")
                .and_then(serde_json::Value::as_u64)
                .context("INFO has no max_payload")
        };
        anyhow::ensure!(max_payload()? == 1024, "the starting max_payload");
        fs::write(server.config_path(), "max_payload: 4096\n")?;
        // The watch looks every 2 s; the deadline leaves room for a busy machine.
        wait_until(
            "the watched file's max_payload to show in INFO",
            Duration::from_secs(20),
            Duration::from_millis(100),
            || (max_payload().ok()? == 4096).then_some(()),
        )?;
        Ok(())
    });
}

/// Accounts A and B; `import` is B's `imports` list.
fn accounts_config(import: &str) -> String {
    format!(
        "accounts {{\n  A: {{ users: [ {{user: a, password: a-pass}} ], exports: [ {{stream: \"orders.>\"}} ] }}\n  B: {{ users: [ {{user: b, password: b-pass}} ], imports: [ {import} ] }}\n}}\n"
    )
}

const B_IMPORTS_ORDERS: &str = r#"{stream: {account: A, subject: "orders.>"}, prefix: shop}"#;

/// Publishes probes from `publisher` until `receiver` does (or does not) get them under the
/// import's prefix; both connections stay open throughout.
fn poll_import(
    what: &str,
    publisher: &mut RawClient,
    receiver: &mut RawClient,
    wanted: bool,
) -> anyhow::Result<()> {
    let mut probe = 0;
    poll_until(what, || {
        probe += 1;
        publisher.send(format!(
            "{}PING\r\n",
            publish(&format!("orders.{probe}"), "x")
        ))?;
        publisher.expect("PONG\r\n")?;
        receiver.send("PING\r\n")?;
        let delivered = match next_frame_answering_pings(receiver)? {
            Frame::Pong => false,
            Frame::Message(got) => {
                anyhow::ensure!(
                    got.subject == format!("shop.orders.{probe}") && got.sid == "1",
                    "unexpected delivery {got:?}"
                );
                receiver.expect("PONG\r\n")?;
                true
            }
            other => anyhow::bail!("expected a message or PONG, got {other:?}"),
        };
        Ok(delivered == wanted)
    })
}

#[test]
fn imports_added_and_removed_by_reload_apply_to_open_connections() {
    for_each_server_kind(|kind| {
        let server = start(kind, &accounts_config(""))?;
        let mut importer = connect_as(&server, "b", "b-pass")?;
        importer.send("SUB shop.orders.> 1\r\nSUB orders.> 2\r\nPING\r\n")?;
        importer.expect("PONG\r\n")?;
        let mut exporter = connect_as(&server, "a", "a-pass")?;
        exporter.send(format!("{}PING\r\n", publish("orders.0", "x")))?;
        exporter.expect("PONG\r\n")?;
        importer.send("PING\r\n")?;
        importer.expect("PONG\r\n")?;

        reload(&server, &accounts_config(B_IMPORTS_ORDERS))?;
        poll_import(
            "the added import to deliver",
            &mut exporter,
            &mut importer,
            true,
        )?;
        reload(&server, &accounts_config(""))?;
        poll_import(
            "the removed import to stop delivering",
            &mut exporter,
            &mut importer,
            false,
        )?;
        Ok(())
    });
}
