//! The async-nats client library against every selected server kind: what real applications
//! do, end to end.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use async_nats::{Client, HeaderMap, Message, RequestErrorKind, Subscriber};
use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use tern_e2e::{for_each_server_kind_async, ServerConfig, ServerProcess};

/// How long one expected message may take.
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(5);

async fn connect(server: &ServerProcess) -> anyhow::Result<Client> {
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(5))
        .connect(server.client_url())
        .await?;
    Ok(client)
}

/// Returns once the server has processed everything `client` sent before (async-nats's `flush`
/// only empties the client's socket buffer): the client publishes to a fresh inbox it
/// subscribes to and waits for that message to come back.
async fn server_round_trip(client: &Client) -> anyhow::Result<()> {
    let inbox = client.new_inbox();
    let mut probe = client.subscribe(inbox.clone()).await?;
    client.publish(inbox, Bytes::from_static(b"probe")).await?;
    next_message(&mut probe).await?;
    probe.unsubscribe().await?;
    Ok(())
}

async fn next_message(subscriber: &mut Subscriber) -> anyhow::Result<Message> {
    match tokio::time::timeout(RECEIVE_TIMEOUT, subscriber.next()).await {
        Ok(Some(message)) => Ok(message),
        Ok(None) => anyhow::bail!("the subscription ended"),
        Err(_) => anyhow::bail!("no message within {RECEIVE_TIMEOUT:?}"),
    }
}

#[test]
fn published_message_reaches_subscriber() {
    for_each_server_kind_async(|kind| async move {
        let server = ServerProcess::start(kind, ServerConfig::new())?;
        let subscriber_client = connect(&server).await?;
        let publisher = connect(&server).await?;
        let mut subscriber = subscriber_client.subscribe("greeting").await?;
        server_round_trip(&subscriber_client).await?;

        publisher
            .publish("greeting", Bytes::from_static(b"hello"))
            .await?;
        publisher.flush().await?;

        let message = next_message(&mut subscriber).await?;
        assert_eq!(message.subject.as_str(), "greeting");
        assert_eq!(message.payload.as_ref(), b"hello");
        assert!(message.reply.is_none());
        Ok(())
    });
}

#[test]
fn wildcard_subscriptions_match_tokens() {
    for_each_server_kind_async(|kind| async move {
        let server = ServerProcess::start(kind, ServerConfig::new())?;
        let client = connect(&server).await?;
        let mut one_token = client.subscribe("orders.*").await?;
        let mut many_tokens = client.subscribe("orders.>").await?;

        for subject in ["orders", "orders.eu.new", "orders.new"] {
            client.publish(subject, Bytes::from_static(b"x")).await?;
        }
        client.flush().await?;

        // Order is kept per subscription, so the first match proves what was skipped.
        let first = next_message(&mut one_token).await?;
        assert_eq!(first.subject.as_str(), "orders.new");
        let first = next_message(&mut many_tokens).await?;
        assert_eq!(first.subject.as_str(), "orders.eu.new");
        let second = next_message(&mut many_tokens).await?;
        assert_eq!(second.subject.as_str(), "orders.new");
        Ok(())
    });
}

#[test]
fn queue_group_delivers_each_message_once() {
    for_each_server_kind_async(|kind| async move {
        let server = ServerProcess::start(kind, ServerConfig::new())?;
        let first_client = connect(&server).await?;
        let second_client = connect(&server).await?;
        let publisher = connect(&server).await?;
        let mut first = first_client
            .queue_subscribe("jobs", "workers".to_string())
            .await?;
        let mut second = second_client
            .queue_subscribe("jobs", "workers".to_string())
            .await?;
        server_round_trip(&first_client).await?;
        server_round_trip(&second_client).await?;

        let count = 100;
        for index in 0..count {
            publisher
                .publish("jobs", Bytes::from(index.to_string()))
                .await?;
        }
        server_round_trip(&publisher).await?;

        let mut first_payloads = Vec::new();
        let mut second_payloads = Vec::new();
        let deadline = Instant::now() + RECEIVE_TIMEOUT;
        while first_payloads.len() + second_payloads.len() < count {
            let remaining = deadline.saturating_duration_since(Instant::now());
            tokio::select! {
                Some(message) = first.next() => first_payloads.push(message.payload),
                Some(message) = second.next() => second_payloads.push(message.payload),
                () = tokio::time::sleep(remaining) => anyhow::bail!(
                    "only {} of {count} messages arrived",
                    first_payloads.len() + second_payloads.len()
                ),
            }
        }
        // The publisher's round trip means the server routed everything; each member's round
        // trip means its copies were read before the probe. Nothing more may be waiting.
        server_round_trip(&first_client).await?;
        server_round_trip(&second_client).await?;
        assert!(first.next().now_or_never().is_none(), "an extra message");
        assert!(second.next().now_or_never().is_none(), "an extra message");

        let first_set: BTreeSet<Bytes> = first_payloads.iter().cloned().collect();
        let second_set: BTreeSet<Bytes> = second_payloads.iter().cloned().collect();
        assert_eq!(first_set.len(), first_payloads.len(), "duplicates");
        assert_eq!(second_set.len(), second_payloads.len(), "duplicates");
        assert!(first_set.is_disjoint(&second_set), "a message reached both");
        assert!(
            !first_set.is_empty() && !second_set.is_empty(),
            "both members should get some of {count}: {} and {}",
            first_set.len(),
            second_set.len()
        );
        Ok(())
    });
}

#[test]
fn request_gets_the_reply_of_a_responder() {
    for_each_server_kind_async(|kind| async move {
        let server = ServerProcess::start(kind, ServerConfig::new())?;
        let responder = connect(&server).await?;
        let requester = connect(&server).await?;
        let mut requests = responder.subscribe("service.upper").await?;
        server_round_trip(&responder).await?;
        let responder_task = tokio::spawn({
            let responder = responder.clone();
            async move {
                for _ in 0..3 {
                    let Some(request) = requests.next().await else {
                        return;
                    };
                    if let Some(reply) = request.reply {
                        let answer = request.payload.to_ascii_uppercase();
                        let _ = responder.publish(reply, Bytes::from(answer)).await;
                    }
                }
            }
        });

        for word in ["one", "two", "three"] {
            let response = tokio::time::timeout(
                RECEIVE_TIMEOUT,
                requester.request("service.upper", Bytes::from(word)),
            )
            .await??;
            assert_eq!(
                response.payload.as_ref(),
                word.to_ascii_uppercase().as_bytes()
            );
        }
        tokio::time::timeout(RECEIVE_TIMEOUT, responder_task).await??;
        Ok(())
    });
}

#[test]
fn headers_survive_the_round_trip() {
    for_each_server_kind_async(|kind| async move {
        let server = ServerProcess::start(kind, ServerConfig::new())?;
        let client = connect(&server).await?;
        let mut subscriber = client.subscribe("with.headers").await?;

        let mut headers = HeaderMap::new();
        headers.insert("Trace-Id", "abc-123");
        headers.append("Multi", "first");
        headers.append("Multi", "second");
        client
            .publish_with_headers("with.headers", headers, Bytes::from_static(b"body"))
            .await?;
        client.flush().await?;

        let message = next_message(&mut subscriber).await?;
        assert_eq!(message.payload.as_ref(), b"body");
        let received = message.headers.expect("the message has headers");
        assert_eq!(
            received.get("Trace-Id").map(|value| value.as_str()),
            Some("abc-123")
        );
        let multi: Vec<&str> = received
            .get_all("Multi")
            .map(|value| value.as_str())
            .collect();
        assert_eq!(multi, ["first", "second"]);
        Ok(())
    });
}

#[test]
fn request_without_responders_fails_with_no_responders() {
    for_each_server_kind_async(|kind| async move {
        let server = ServerProcess::start(kind, ServerConfig::new())?;
        let client = connect(&server).await?;
        let result = tokio::time::timeout(
            RECEIVE_TIMEOUT,
            client.request("nobody.listens", Bytes::from_static(b"?")),
        )
        .await?;
        let error = result.expect_err("a request nobody answers must fail");
        assert_eq!(error.kind(), RequestErrorKind::NoResponders, "{error}");
        Ok(())
    });
}

#[test]
fn subscription_resumes_after_server_restart_on_the_same_port() {
    for_each_server_kind_async(|kind| async move {
        let mut server = ServerProcess::start(kind, ServerConfig::new())?;
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .reconnect_delay_callback(|_| Duration::from_millis(100))
            .connect(server.client_url())
            .await?;
        let mut subscriber = client.subscribe("heartbeat").await?;
        client
            .publish("heartbeat", Bytes::from_static(b"before"))
            .await?;
        assert_eq!(
            next_message(&mut subscriber).await?.payload.as_ref(),
            b"before"
        );

        let address_before = server.client_address();
        server.restart()?;
        assert_eq!(server.client_address(), address_before);

        // Publish until one comes back through the restarted server: the client must
        // reconnect and re-subscribe on its own. Bounded in attempts and time.
        let deadline = Instant::now() + Duration::from_secs(20);
        for attempt in 0..200 {
            if Instant::now() >= deadline {
                break;
            }
            client
                .publish("heartbeat", Bytes::from(format!("after-{attempt}")))
                .await?;
            let received =
                tokio::time::timeout(Duration::from_millis(100), subscriber.next()).await;
            if let Ok(Some(message)) = received {
                assert!(
                    message.payload.starts_with(b"after-"),
                    "unexpected {:?}",
                    message.payload
                );
                return Ok(());
            }
        }
        anyhow::bail!("no message arrived after the restart")
    });
}
