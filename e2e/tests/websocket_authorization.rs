//! Authentication of WebSocket clients, against every selected server kind: the `websocket {}`
//! block's own token, its own `no_auth_user`, and (nats-server 2.10+ and Tern) credentials
//! carried in cookies of the upgrade request. WebSocket overrides leave the NATS port's
//! authentication as it is.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use futures::{SinkExt, StreamExt};
use tern_e2e::{
    for_each_server_kind_async, for_each_server_kind_of, RawClient, ServerConfig, ServerKind,
    ServerProcess,
};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const STEP_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_COLLECTED: usize = 64 * 1024;
const AUTHORIZATION_VIOLATION: &str = "-ERR 'Authorization Violation'";

type Client = WebSocketStream<TcpStream>;

fn start(kind: ServerKind, config_text: &str) -> anyhow::Result<ServerProcess> {
    Ok(ServerProcess::start(
        kind,
        ServerConfig::from_text(config_text),
    )?)
}

fn websocket_address(server: &ServerProcess) -> anyhow::Result<SocketAddr> {
    server
        .websocket_address()
        .context("the ports file names no websocket listener")
}

/// Upgrades a connection (with a `Cookie` header when given) and reads INFO.
async fn connect(
    address: SocketAddr,
    cookie: Option<&'static str>,
) -> anyhow::Result<(Client, String)> {
    let mut request = format!("ws://{address}/").into_client_request()?;
    if let Some(cookie) = cookie {
        request
            .headers_mut()
            .insert("Cookie", HeaderValue::from_static(cookie));
    }
    let stream = TcpStream::connect(address).await?;
    let (mut client, _) = tokio::time::timeout(
        STEP_TIMEOUT,
        tokio_tungstenite::client_async(request, stream),
    )
    .await
    .context("the upgrade took too long")??;
    let info = collect_until(&mut client, &["\r\n"]).await?;
    Ok((client, info))
}

/// Collects binary frames until every part of `wanted` (or an `-ERR`) has arrived.
async fn collect_until(client: &mut Client, wanted: &[&str]) -> anyhow::Result<String> {
    let mut collected = Vec::new();
    loop {
        let text = String::from_utf8_lossy(&collected).into_owned();
        if wanted.iter().all(|part| text.contains(part)) || text.contains("-ERR") {
            return Ok(text);
        }
        anyhow::ensure!(
            collected.len() < MAX_COLLECTED,
            "{MAX_COLLECTED} bytes without {wanted:?}"
        );
        let frame = tokio::time::timeout(STEP_TIMEOUT, client.next())
            .await
            .with_context(|| format!("no frame in time; so far {text:?}"))?;
        match frame {
            Some(Ok(Message::Binary(payload))) => collected.extend_from_slice(&payload),
            Some(Ok(Message::Close(_))) | None => return Ok(text),
            Some(Ok(_)) => {}
            Some(Err(error)) => return Err(error.into()),
        }
    }
}

/// Sends CONNECT (with `fields` inside its JSON object) and PING; returns what came back.
async fn connect_and_ping(client: &mut Client, fields: &str) -> anyhow::Result<String> {
    let separator = if fields.is_empty() { "" } else { "," };
    let line =
        format!("CONNECT {{\"verbose\":false,\"pedantic\":false{separator}{fields}}}\r\nPING\r\n");
    tokio::time::timeout(
        STEP_TIMEOUT,
        client.send(Message::binary(line.into_bytes())),
    )
    .await
    .context("sending took too long")??;
    collect_until(client, &["PONG\r\n"]).await
}

#[test]
fn the_websocket_block_token_is_required_of_websocket_clients_only() {
    for_each_server_kind_async(|kind| async move {
        let server = start(
            kind,
            "websocket {\n  host: 127.0.0.1\n  port: -1\n  no_tls: true\n  authorization { token: \"ws-secret\" }\n}\n",
        )?;
        let address = websocket_address(&server)?;

        let (mut anonymous, info) = connect(address, None).await?;
        anyhow::ensure!(
            info.contains("\"auth_required\":true"),
            "INFO over WebSocket: {info}"
        );
        let refused = connect_and_ping(&mut anonymous, "").await?;
        anyhow::ensure!(
            refused.contains(AUTHORIZATION_VIOLATION),
            "without the token: {refused:?}"
        );

        let (mut wrong, _) = connect(address, None).await?;
        let refused = connect_and_ping(&mut wrong, "\"auth_token\":\"other\"").await?;
        anyhow::ensure!(
            refused.contains(AUTHORIZATION_VIOLATION),
            "a wrong token: {refused:?}"
        );

        let (mut right, _) = connect(address, None).await?;
        let accepted = connect_and_ping(&mut right, "\"auth_token\":\"ws-secret\"").await?;
        anyhow::ensure!(
            accepted.contains("PONG\r\n") && !accepted.contains("-ERR"),
            "the token: {accepted:?}"
        );

        // The NATS port asks nothing: the override is the WebSocket listener's alone.
        let mut client = RawClient::connect_to(&server)?;
        client.read_info()?;
        client.send(b"CONNECT {\"verbose\":false}\r\nPING\r\n")?;
        client.expect(b"PONG\r\n")?;
        Ok(())
    });
}

#[test]
fn the_websocket_no_auth_user_applies_to_websocket_clients_only() {
    for_each_server_kind_async(|kind| async move {
        let server = start(
            kind,
            "authorization {\n  users: [\n    {user: alice, password: a}\n    {user: guest, password: g, permissions: {publish: \"public.>\", subscribe: \"public.>\"}}\n  ]\n}\n\
             websocket {\n  host: 127.0.0.1\n  port: -1\n  no_tls: true\n  no_auth_user: guest\n}\n",
        )?;
        let address = websocket_address(&server)?;

        let (mut guest, _) = connect(address, None).await?;
        let accepted = connect_and_ping(&mut guest, "").await?;
        anyhow::ensure!(
            !accepted.contains("-ERR"),
            "no credentials over WebSocket: {accepted:?}"
        );
        // It is the guest, with the guest's permissions.
        guest
            .send(Message::binary(&b"PUB private.x 1\r\nx\r\nPING\r\n"[..]))
            .await?;
        let refused = collect_until(&mut guest, &["PONG\r\n"]).await?;
        anyhow::ensure!(
            refused.contains("-ERR 'Permissions Violation for Publish to \"private.x\"'"),
            "the guest publishing outside its permissions: {refused:?}"
        );

        // Named users still log in over WebSocket.
        let (mut alice, _) = connect(address, None).await?;
        let accepted = connect_and_ping(&mut alice, "\"user\":\"alice\",\"pass\":\"a\"").await?;
        anyhow::ensure!(
            !accepted.contains("-ERR"),
            "alice over WebSocket: {accepted:?}"
        );

        // The NATS port has no no_auth_user.
        let mut client = RawClient::connect_to(&server)?;
        client.read_info()?;
        client.send(b"CONNECT {\"verbose\":false}\r\nPING\r\n")?;
        client.expect(format!("{AUTHORIZATION_VIOLATION}\r\n"))?;
        Ok(())
    });
}

#[test]
fn credentials_come_from_cookies_when_connect_has_none() {
    // Cookies carry user, password and token since nats-server 2.10.
    for_each_server_kind_of(&[ServerKind::Tern, ServerKind::NatsServerCurrent], |kind| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let server = start(
                kind,
                "websocket {\n  host: 127.0.0.1\n  port: -1\n  no_tls: true\n  token_cookie: nats_token\n  authorization { token: \"cookie-secret\" }\n}\n",
            )?;
            let address = websocket_address(&server)?;

            let (mut with_cookie, _) =
                connect(address, Some("theme=dark; nats_token=cookie-secret")).await?;
            let accepted = connect_and_ping(&mut with_cookie, "").await?;
            anyhow::ensure!(!accepted.contains("-ERR"), "the token from a cookie: {accepted:?}");

            let (mut wrong_cookie, _) = connect(address, Some("nats_token=nope")).await?;
            let refused = connect_and_ping(&mut wrong_cookie, "").await?;
            anyhow::ensure!(refused.contains(AUTHORIZATION_VIOLATION), "a wrong cookie: {refused:?}");

            // CONNECT's own token wins over the cookie.
            let (mut both, _) = connect(address, Some("nats_token=nope")).await?;
            let accepted = connect_and_ping(&mut both, "\"auth_token\":\"cookie-secret\"").await?;
            anyhow::ensure!(!accepted.contains("-ERR"), "CONNECT's token with a wrong cookie: {accepted:?}");
            Ok(())
        })
    });
}
