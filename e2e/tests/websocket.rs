//! NATS over WebSocket, against every selected server kind: the upgrade, INFO as the first
//! binary frame, the protocol carried in frames (whole operations or split across them),
//! `allowed_origins`, and a real client library over `ws://` and `wss://`.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tern_e2e::{
    for_each_server_kind_async, http_get, ServerConfig, ServerKind, ServerProcess, TestCertificates,
};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WebSocketError, Message};
use tokio_tungstenite::WebSocketStream;

/// How long any one network step may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(5);
/// A plain `ws://` listener on a port from the OS.
const WEBSOCKET_BLOCK: &str = "websocket {\n  host: 127.0.0.1\n  port: -1\n  no_tls: true\n}\n";
/// The bytes collected from frames, at most (a test conversation is tiny).
const MAX_COLLECTED: usize = 64 * 1024;

type Client = WebSocketStream<TcpStream>;

fn start(kind: ServerKind, config_text: &str) -> anyhow::Result<ServerProcess> {
    Ok(ServerProcess::start(
        kind,
        ServerConfig::from_text(config_text).with_monitoring(),
    )?)
}

fn websocket_address(server: &ServerProcess) -> anyhow::Result<SocketAddr> {
    server
        .websocket_address()
        .context("the ports file names no websocket listener")
}

/// Upgrades a new connection, with an `Origin` header when given.
async fn upgrade(
    address: SocketAddr,
    origin: Option<&'static str>,
) -> Result<Client, WebSocketError> {
    let mut request = format!("ws://{address}/").into_client_request()?;
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("Origin", HeaderValue::from_static(origin));
    }
    let stream = TcpStream::connect(address).await?;
    let (client, _response) = tokio_tungstenite::client_async(request, stream).await?;
    Ok(client)
}

async fn connected(address: SocketAddr) -> anyhow::Result<Client> {
    tokio::time::timeout(STEP_TIMEOUT, upgrade(address, None))
        .await
        .context("the upgrade took too long")?
        .context("the upgrade failed")
}

/// The next data frame; control frames are skipped (tungstenite answers pings itself).
async fn next_data_frame(client: &mut Client) -> anyhow::Result<Message> {
    loop {
        let message = tokio::time::timeout(STEP_TIMEOUT, client.next())
            .await
            .context("no frame in time")?
            .context("the connection closed")??;
        if message.is_binary() || message.is_text() || message.is_close() {
            return Ok(message);
        }
    }
}

/// Collects frame payloads until `wanted` has arrived (protocol lines may span frames).
async fn collect_until(client: &mut Client, wanted: &[&str]) -> anyhow::Result<String> {
    let mut collected = Vec::new();
    while !wanted
        .iter()
        .all(|part| String::from_utf8_lossy(&collected).contains(part))
    {
        anyhow::ensure!(
            collected.len() < MAX_COLLECTED,
            "{MAX_COLLECTED} bytes without {wanted:?}"
        );
        match next_data_frame(client).await? {
            Message::Binary(payload) => collected.extend_from_slice(&payload),
            other => anyhow::bail!(
                "expected binary frames with {wanted:?}, got {other:?} after {:?}",
                String::from_utf8_lossy(&collected)
            ),
        }
    }
    Ok(String::from_utf8_lossy(&collected).into_owned())
}

async fn send_binary(client: &mut Client, bytes: &'static [u8]) -> anyhow::Result<()> {
    tokio::time::timeout(STEP_TIMEOUT, client.send(Message::binary(bytes)))
        .await
        .context("sending a frame took too long")??;
    Ok(())
}

#[test]
fn info_arrives_as_the_first_binary_frame_and_nats_flows_in_frames() {
    for_each_server_kind_async(|kind| async move {
        let server = start(kind, WEBSOCKET_BLOCK)?;
        let mut client = connected(websocket_address(&server)?).await?;

        let Message::Binary(first) = next_data_frame(&mut client).await? else {
            anyhow::bail!("the first frame is not binary");
        };
        let info = String::from_utf8_lossy(&first).into_owned();
        anyhow::ensure!(
            info.starts_with("INFO {") && info.ends_with("\r\n"),
            "first frame: {info:?}"
        );

        // Whole operations in one frame...
        send_binary(
            &mut client,
            b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\nSUB greeting 1\r\nPING\r\n",
        )
        .await?;
        collect_until(&mut client, &["PONG\r\n"]).await?;
        // ...and one operation split across three frames, the payload included.
        send_binary(&mut client, b"PUB greet").await?;
        send_binary(&mut client, b"ing 5\r\nhel").await?;
        send_binary(&mut client, b"lo\r\nPING\r\n").await?;
        let received =
            collect_until(&mut client, &["MSG greeting 1 5\r\nhello\r\n", "PONG\r\n"]).await?;
        anyhow::ensure!(!received.contains("-ERR"), "received {received:?}");
        Ok(())
    });
}

#[test]
fn allowed_origins_refuses_another_origin_with_403() {
    for_each_server_kind_async(|kind| async move {
        let config = "websocket {\n  host: 127.0.0.1\n  port: -1\n  no_tls: true\n  allowed_origins: [\"http://allowed.example\"]\n}\n";
        let server = start(kind, config)?;
        let address = websocket_address(&server)?;

        let refused =
            tokio::time::timeout(STEP_TIMEOUT, upgrade(address, Some("http://other.example")))
                .await
                .context("the refusal took too long")?;
        match refused {
            Err(WebSocketError::Http(response)) => {
                assert_eq!(response.status().as_u16(), 403);
            }
            Err(other) => anyhow::bail!("expected HTTP 403, got {other}"),
            Ok(_) => anyhow::bail!("an upgrade from another origin was accepted"),
        }

        let mut allowed = tokio::time::timeout(
            STEP_TIMEOUT,
            upgrade(address, Some("http://allowed.example")),
        )
        .await
        .context("the upgrade took too long")??;
        let info = collect_until(&mut allowed, &["\r\n"]).await?;
        anyhow::ensure!(info.starts_with("INFO "), "first frame: {info:?}");
        Ok(())
    });
}

/// Runs one step of a conversation with a client library, bounded by [`STEP_TIMEOUT`].
async fn bounded<T>(
    what: &str,
    future: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::time::timeout(STEP_TIMEOUT, future)
        .await
        .map_err(|_| anyhow::anyhow!("{what}: nothing within {STEP_TIMEOUT:?}"))?
}

/// Connects with a client library, bounded: a server that never completes the handshake fails
/// the test instead of hanging it.
async fn connect_library(
    options: async_nats::ConnectOptions,
    url: &str,
) -> anyhow::Result<async_nats::Client> {
    tokio::time::timeout(STEP_TIMEOUT, options.connect(url))
        .await
        .with_context(|| format!("connecting to {url} took longer than {STEP_TIMEOUT:?}"))?
        .with_context(|| format!("connecting to {url}"))
}

/// Connects a subscriber and a publisher with `options` to `url` and checks a message
/// published by one reaches the other; returns the subscribing client and its subscription.
async fn publish_and_receive(
    url: &str,
    options: impl Fn() -> async_nats::ConnectOptions,
) -> anyhow::Result<(async_nats::Client, async_nats::Subscriber)> {
    let subscriber = connect_library(options(), url).await?;
    let publisher = connect_library(options(), url).await?;

    let mut subscription = subscriber.subscribe("web.greeting").await?;
    // A round trip so the server has the subscription before the publish.
    let inbox = subscriber.new_inbox();
    let mut probe = subscriber.subscribe(inbox.clone()).await?;
    subscriber
        .publish(inbox, Bytes::from_static(b"probe"))
        .await?;
    tokio::time::timeout(STEP_TIMEOUT, probe.next())
        .await
        .context("no probe message")?
        .context("the probe subscription ended")?;

    publisher
        .publish("web.greeting", Bytes::from_static(b"over websocket"))
        .await?;
    publisher.flush().await?;
    let message = tokio::time::timeout(STEP_TIMEOUT, subscription.next())
        .await
        .context("no message in time")?
        .context("the subscription ended")?;
    assert_eq!(message.payload.as_ref(), b"over websocket");
    Ok((subscriber, subscription))
}

#[test]
fn async_nats_publishes_and_subscribes_over_secure_websocket() {
    for_each_server_kind_async(|kind| async move {
        let certificates = TestCertificates::generate()?;
        let config = format!(
            "websocket {{\n  host: 127.0.0.1\n  port: -1\n  {}}}\n",
            certificates.server_tls_block("")
        );
        let server = start(kind, &config)?;
        let url = server
            .ports()
            .urls("websocket")
            .first()
            .context("no websocket listener")?
            .clone();
        anyhow::ensure!(url.starts_with("wss://"), "ports file: {url}");
        let options = || {
            async_nats::ConnectOptions::new()
                .connection_timeout(STEP_TIMEOUT)
                .add_root_certificates(certificates.ca_file())
        };
        bounded(
            "publishing and receiving",
            publish_and_receive(&url, options),
        )
        .await?;
        Ok(())
    });
}

#[test]
fn async_nats_publishes_and_subscribes_over_websocket() {
    for_each_server_kind_async(|kind| async move {
        let server = start(kind, WEBSOCKET_BLOCK)?;
        let url = format!("ws://{}", websocket_address(&server)?);
        let options = || async_nats::ConnectOptions::new().connection_timeout(STEP_TIMEOUT);
        let (_subscriber, mut subscription) = bounded(
            "publishing and receiving",
            publish_and_receive(&url, options),
        )
        .await?;

        // A WebSocket client and a plain one share the subject space.
        let plain = connect_library(
            async_nats::ConnectOptions::new().connection_timeout(STEP_TIMEOUT),
            &server.client_url(),
        )
        .await?;
        plain
            .publish("web.greeting", Bytes::from_static(b"from tcp"))
            .await?;
        bounded("flushing", async { Ok(plain.flush().await?) }).await?;
        let message = tokio::time::timeout(STEP_TIMEOUT, subscription.next())
            .await
            .context("no message from the plain client in time")?
            .context("the subscription ended")?;
        assert_eq!(message.payload.as_ref(), b"from tcp");
        Ok(())
    });
}

#[test]
fn monitoring_reports_the_websocket_listener() {
    for_each_server_kind_async(|kind| async move {
        let config =
            "websocket {\n  host: 127.0.0.1\n  port: -1\n  no_tls: true\n  same_origin: true\n}\n";
        let server = start(kind, config)?;
        let address = websocket_address(&server)?;
        let monitoring = server.monitoring_address().context("monitoring address")?;

        let varz = http_get(monitoring, "/varz")?.json()?;
        let websocket = &varz["websocket"];
        assert_eq!(websocket["host"], "127.0.0.1", "varz: {varz}");
        assert_eq!(websocket["port"], address.port(), "varz: {varz}");
        assert_eq!(websocket["no_tls"], true, "varz: {varz}");
        assert_eq!(websocket["same_origin"], true, "varz: {varz}");
        Ok(())
    });
}
