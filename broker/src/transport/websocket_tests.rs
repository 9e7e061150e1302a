#![allow(clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use super::*;
use crate::transport::options::{TlsOptions, WebSocketOptions};
use crate::transport::test_support::{loopback_listener, TestPki};
use crate::transport::tls::ClientTls;
use crate::transport::websocket_frame::{DecoderSettings, FrameDecoder, Incoming};
use crate::transport::websocket_stream::{connect_websocket, ClientWebSocketSettings};

const INFO_LINE: &[u8] = b"INFO {\"server_id\":\"NTEST\"} \r\n";

fn plain_options() -> WebSocketOptions {
    WebSocketOptions {
        no_tls: true,
        ..WebSocketOptions::default()
    }
}

fn settings(options: &WebSocketOptions) -> WebSocketSettings {
    WebSocketSettings::from_options(options, 1024 * 1024, 4096).unwrap()
}

/// Accepts one upgrade with `settings`; returns the address and the outcome.
async fn serve(
    settings: WebSocketSettings,
) -> (
    std::net::SocketAddr,
    JoinHandle<Result<WebSocketUpgrade, WebSocketError>>,
) {
    let (listener, address) = loopback_listener().await;
    let task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        accept_websocket(stream, &settings).await
    });
    (address, task)
}

/// The session side: INFO first, then answers one PING with PONG.
async fn run_session(mut transport: Transport) -> Transport {
    transport.write_all(INFO_LINE).await.unwrap();
    transport.flush().await.unwrap();
    let mut ping = [0u8; 6];
    transport.read_exact(&mut ping).await.unwrap();
    assert_eq!(&ping, b"PING\r\n");
    transport.write_all(b"PONG\r\n").await.unwrap();
    transport.flush().await.unwrap();
    transport
}

/// Sends a raw request and returns the response head.
async fn raw_request(address: std::net::SocketAddr, request: &str) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.unwrap() == 0 {
            break;
        }
        head.push(byte[0]);
    }
    (stream, String::from_utf8(head).unwrap())
}

fn upgrade_request(extra_headers: &str) -> String {
    format!(
        "GET / HTTP/1.1\r\nHost: localhost:8080\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra_headers}\r\n"
    )
}

#[tokio::test]
async fn a_nats_ping_round_trips_through_split_frames() {
    let (address, task) = serve(settings(&plain_options())).await;
    let stream = TcpStream::connect(address).await.unwrap();
    let (mut client, response) =
        tokio_tungstenite::client_async(format!("ws://{address}/"), stream)
            .await
            .unwrap();
    assert!(response.headers().get("sec-websocket-extensions").is_none());
    let upgrade = task.await.unwrap().unwrap();
    assert_eq!(upgrade.path, WebSocketPath::Client);
    assert!(upgrade.transport.is_websocket() && !upgrade.transport.is_tls());
    let session = tokio::spawn(run_session(upgrade.transport));

    let info = client.next().await.unwrap().unwrap();
    assert_eq!(info, Message::Binary(Bytes::from_static(INFO_LINE)));
    client
        .send(Message::Ping(Bytes::from_static(b"hi")))
        .await
        .unwrap();
    client.send(Message::binary(&b"PI"[..])).await.unwrap();
    client.send(Message::binary(&b"NG\r\n"[..])).await.unwrap();
    let mut pong_frame = false;
    loop {
        match client.next().await.unwrap().unwrap() {
            Message::Pong(payload) => {
                assert_eq!(&payload[..], b"hi");
                pong_frame = true;
            }
            Message::Binary(payload) => {
                assert_eq!(&payload[..], b"PONG\r\n");
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(pong_frame, "the WebSocket ping was answered");
    let mut transport = session.await.unwrap();
    client.close(None).await.unwrap();
    let mut rest = Vec::new();
    transport.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "a close frame reads as end of stream");
}

#[tokio::test]
async fn wss_runs_the_upgrade_inside_tls() {
    let pki = TestPki::generate();
    let options = WebSocketOptions {
        tls: Some(pki.server_options()),
        ..WebSocketOptions::default()
    };
    let settings = settings(&options);
    assert!(settings.is_tls());
    let (address, task) = serve(settings).await;
    let stream = TcpStream::connect(address).await.unwrap();
    let tls = ClientTls::from_options(&pki.client_options()).unwrap();
    let stream = tls.connect("localhost", stream).await.unwrap();
    let (mut client, _) = tokio_tungstenite::client_async("wss://localhost/", stream)
        .await
        .unwrap();
    let upgrade = task.await.unwrap().unwrap();
    assert!(upgrade.transport.is_tls());
    let session = tokio::spawn(run_session(upgrade.transport));
    client.next().await.unwrap().unwrap();
    client
        .send(Message::binary(&b"PING\r\n"[..]))
        .await
        .unwrap();
    let pong = client.next().await.unwrap().unwrap();
    assert_eq!(pong, Message::binary(&b"PONG\r\n"[..]));
    session.await.unwrap();
}

#[tokio::test]
async fn the_client_side_talks_to_the_server_side_with_and_without_compression() {
    let compressing = WebSocketOptions {
        compression: true,
        ..plain_options()
    };
    for offered in [false, true] {
        let (address, task) = serve(settings(&compressing)).await;
        let stream = TcpStream::connect(address).await.unwrap();
        let client_settings = ClientWebSocketSettings {
            handshake_timeout: Duration::from_secs(2),
            max_message_size: 1024 * 1024,
            no_masking: true,
            compression: offered,
        };
        let mut client = connect_websocket(
            Transport::Tcp(stream),
            &format!("ws://{address}/leafnode"),
            &client_settings,
        )
        .await
        .unwrap();
        let upgrade = task.await.unwrap().unwrap();
        assert_eq!(upgrade.path, WebSocketPath::Leafnode);
        let compressed = |transport: &Transport| match transport {
            Transport::WebSocket(stream) => stream.is_compressed(),
            _ => panic!("not a WebSocket transport"),
        };
        assert_eq!(compressed(&client), offered);
        assert_eq!(compressed(&upgrade.transport), offered);
        let session = tokio::spawn(run_session(upgrade.transport));
        let mut info = vec![0u8; INFO_LINE.len()];
        client.read_exact(&mut info).await.unwrap();
        assert_eq!(info, INFO_LINE);
        client.write_all(b"PING\r\n").await.unwrap();
        client.flush().await.unwrap();
        let mut pong = [0u8; 6];
        client.read_exact(&mut pong).await.unwrap();
        assert_eq!(&pong, b"PONG\r\n");
        let mut server_side = session.await.unwrap();

        // A large compressible write crosses intact, split into frames by the writer.
        let payload: Vec<u8> = (0..200_000u32)
            .map(|index| (index % 7) as u8 + b'a')
            .collect();
        let expected = payload.clone();
        let writer = tokio::spawn(async move {
            client.write_all(&payload).await.unwrap();
            client.flush().await.unwrap();
            client
        });
        let mut received = vec![0u8; expected.len()];
        server_side.read_exact(&mut received).await.unwrap();
        assert!(received == expected, "payload arrived changed");
        writer.await.unwrap();
    }
}

#[tokio::test]
async fn refused_upgrades_get_nats_server_statuses() {
    let cases = [
        (
            "GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_string(),
            "HTTP/1.1 400 Bad Request",
            "invalid value for header 'Upgrade'",
        ),
        (
            upgrade_request("").replacen("GET", "POST", 1),
            "HTTP/1.1 405 Method Not Allowed",
            "request method must be GET",
        ),
        (
            upgrade_request("").replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8"),
            "HTTP/1.1 400 Bad Request",
            "invalid version",
        ),
        (
            format!("{}\u{81}\u{80}", upgrade_request("")),
            "HTTP/1.1 400 Bad Request",
            "client sent data before handshake is complete",
        ),
    ];
    for (request, status_line, reason) in cases {
        let (address, task) = serve(settings(&plain_options())).await;
        let (_stream, head) = raw_request(address, &request).await;
        assert!(head.starts_with(status_line), "{head}");
        assert!(head.contains("Sec-Websocket-Version: 13"), "{head}");
        match task.await.unwrap() {
            Err(WebSocketError::Rejected { reason: actual, .. }) => assert_eq!(actual, reason),
            other => panic!("expected a rejection, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_silent_connection_times_out() {
    let options = WebSocketOptions {
        handshake_timeout: Duration::from_millis(100),
        ..plain_options()
    };
    let (address, task) = serve(settings(&options)).await;
    let _silent = TcpStream::connect(address).await.unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(outcome, Err(WebSocketError::HandshakeTimeout(_))));
}

#[tokio::test]
async fn request_details_reach_the_caller() {
    let options = WebSocketOptions {
        user_cookie: Some("nats_user".into()),
        token_cookie: Some("nats_token".into()),
        headers: vec![("X-Served-By".into(), "tern".into())],
        ..plain_options()
    };
    let (address, task) = serve(settings(&options)).await;
    let request = upgrade_request(
        "User-Agent: Mozilla/5.0\r\nX-Forwarded-For: 10.1.2.3\r\nCookie: other=1; nats_user=alice; nats_token=\"s3cret\"\r\nNats-No-Masking: true\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
    );
    let (_stream, head) = raw_request(address, &request).await;
    assert!(
        head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{head}"
    );
    assert!(head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    assert!(head.contains("Nats-No-Masking: true\r\n"));
    assert!(head.contains("X-Served-By: tern\r\n"));
    assert!(
        !head.contains("Sec-WebSocket-Extensions"),
        "compression is declined"
    );
    let upgrade = task.await.unwrap().unwrap();
    assert!(upgrade.browser);
    assert_eq!(upgrade.client_ip, Some("10.1.2.3".parse().unwrap()));
    assert_eq!(upgrade.credentials.user.as_deref(), Some("alice"));
    assert_eq!(upgrade.credentials.token.as_deref(), Some("s3cret"));
    assert_eq!(upgrade.credentials.password, None);
    let shown = format!("{upgrade:?}");
    assert!(
        !shown.contains("s3cret") && !shown.contains("alice"),
        "{shown}"
    );
}

#[tokio::test]
async fn messages_over_the_size_bound_fail_the_read() {
    let settings = WebSocketSettings::from_options(&plain_options(), 100, 28).unwrap();
    assert_eq!(settings.max_message_size(), 1024);
    let (address, task) = serve(settings).await;
    let stream = TcpStream::connect(address).await.unwrap();
    let (mut client, _) = tokio_tungstenite::client_async(format!("ws://{address}/"), stream)
        .await
        .unwrap();
    let mut transport = task.await.unwrap().unwrap().transport;
    client
        .send(Message::binary(vec![b'x'; 2000]))
        .await
        .unwrap();
    let mut buffer = [0u8; 64];
    assert!(transport.read(&mut buffer).await.is_err());
}

fn request(headers: &[(&str, &str)]) -> UpgradeRequest {
    let mut all = vec![
        ("Host", "localhost:8080"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
    ];
    all.extend_from_slice(headers);
    UpgradeRequest {
        method: "GET".into(),
        path: "/".into(),
        headers: all
            .into_iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect(),
    }
}

fn origin_check(options: &WebSocketOptions, origin: Option<&str>) -> Result<(), Rejection> {
    let headers: Vec<(&str, &str)> = origin
        .map(|origin| ("Origin", origin))
        .into_iter()
        .collect();
    check_request(&request(&headers), &settings(options), false).map(drop)
}

#[test]
fn same_origin_compares_the_origin_with_the_host() {
    let options = WebSocketOptions {
        same_origin: true,
        ..plain_options()
    };
    assert!(origin_check(&options, Some("http://localhost:8080")).is_ok());
    assert!(origin_check(&options, Some("http://LOCALHOST:8080/page")).is_ok());
    assert!(
        origin_check(&options, None).is_ok(),
        "no Origin is accepted"
    );
    let refused = origin_check(&options, Some("http://evil.example:8080")).unwrap_err();
    assert_eq!(refused.status, 403);
    assert_eq!(refused.reason, "origin not allowed: not same origin");
    assert!(origin_check(&options, Some("https://localhost:8080")).is_ok());
    assert!(origin_check(&options, Some("http://localhost")).is_err());
}

#[test]
fn allowed_origins_match_scheme_host_and_port() {
    let options = WebSocketOptions {
        allowed_origins: vec!["https://app.example".into(), "http://[::1]:3000".into()],
        ..plain_options()
    };
    assert!(origin_check(&options, Some("https://app.example")).is_ok());
    assert!(origin_check(&options, Some("https://app.example:443")).is_ok());
    assert!(origin_check(&options, Some("http://[::1]:3000")).is_ok());
    let refused = origin_check(&options, Some("http://app.example")).unwrap_err();
    assert_eq!(
        refused.reason,
        "origin not allowed: not in the allowed list"
    );
    assert!(origin_check(&options, Some("null")).is_err());
    assert!(WebSocketSettings::from_options(
        &WebSocketOptions {
            allowed_origins: vec!["app.example".into()],
            ..plain_options()
        },
        1024,
        1024
    )
    .is_err());
}

#[test]
fn the_path_picks_the_connection_kind() {
    let settings = settings(&plain_options());
    let kind = |path: &str| {
        let mut request = request(&[]);
        request.path = path.to_string();
        check_request(&request, &settings, false).unwrap().path
    };
    assert_eq!(kind("/"), WebSocketPath::Client);
    assert_eq!(kind("/nats?x=1"), WebSocketPath::Client);
    assert_eq!(kind("/leafnode"), WebSocketPath::Leafnode);
    assert_eq!(kind("/mqtt"), WebSocketPath::Mqtt);
}

#[test]
fn header_checks_follow_rfc_6455_in_nats_server_order() {
    let settings = settings(&plain_options());
    let without = |name: &str| {
        let mut request = request(&[]);
        request.headers.retain(|(key, _)| key != name);
        check_request(&request, &settings, false)
            .unwrap_err()
            .reason
    };
    assert_eq!(without("Host"), "'Host' missing in request");
    assert_eq!(
        without("Connection"),
        "invalid value for header 'Connection'"
    );
    assert_eq!(without("Sec-WebSocket-Key"), "key missing");
    assert!(settings.max_message_size() >= 1024 * 1024 + 4096);
    let tls_options = TlsOptions::default();
    assert!(
        WebSocketSettings::from_options(
            &WebSocketOptions {
                tls: Some(tls_options),
                ..plain_options()
            },
            1024,
            1024
        )
        .is_err(),
        "a tls block without a certificate is refused"
    );
}

#[tokio::test]
async fn an_agreed_compression_deflates_what_goes_on_the_wire() {
    let compressing = WebSocketOptions {
        compression: true,
        ..plain_options()
    };
    let (address, task) = serve(settings(&compressing)).await;
    let (mut raw, head) = raw_request(
        address,
        &upgrade_request(
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
        ),
    )
    .await;
    assert!(
        head.contains("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n"),
        "{head}"
    );
    let mut transport = task.await.unwrap().unwrap().transport;
    let payload = b"MSG orders.eu 1 11\r\nhello world\r\n".repeat(1000);
    transport.write_all(&payload).await.unwrap();
    transport.shutdown().await.unwrap();
    let mut wire = Vec::new();
    raw.read_to_end(&mut wire).await.unwrap();
    assert_eq!(wire[0], 0xc2, "a final binary frame with RSV1 (compressed)");
    assert!(
        wire.len() < payload.len() / 10,
        "{} bytes on the wire",
        wire.len()
    );

    // A client's decoder gets the payload back, then the close frame.
    let mut decoder = FrameDecoder::new(DecoderSettings {
        role: Role::Client,
        accept_unmasked: false,
        compression: true,
        max_message_size: 1 << 20,
    });
    decoder.buffer().extend_from_slice(&wire);
    assert_eq!(
        decoder.decode().unwrap(),
        Some(Incoming::Data(Bytes::from(payload)))
    );
    assert_eq!(decoder.decode().unwrap(), Some(Incoming::Close(Some(1000))));
}
