#![allow(clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use super::*;
use crate::transport::options::TlsOptions;
use crate::transport::test_support::{loopback_listener, sample_info, TestPki};
use crate::transport::tls::ClientTls;

/// Starts `accept_client` on one connection; returns the address to dial and its outcome.
async fn serve(
    security: ClientSecurity,
) -> (
    std::net::SocketAddr,
    JoinHandle<Result<Transport, AcceptError>>,
) {
    let (listener, address) = loopback_listener().await;
    let task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        accept_client(stream, &security, sample_info(), Duration::from_secs(2)).await
    });
    (address, task)
}

/// Reads one INFO line and returns its JSON.
async fn read_info<S: AsyncRead + Unpin>(stream: &mut S) -> serde_json::Value {
    let mut line = Vec::new();
    let mut reader = BufReader::new(stream);
    reader.read_until(b'\n', &mut line).await.unwrap();
    let line = String::from_utf8(line).unwrap();
    let json = line
        .strip_prefix("INFO ")
        .unwrap_or_else(|| panic!("not an INFO line: {line:?}"));
    serde_json::from_str(json.trim_end()).unwrap()
}

fn tls_security(options: TlsOptions, allow_non_tls: bool) -> ClientSecurity {
    ClientSecurity {
        tls: Some(ServerTls::from_options(&options).unwrap()),
        allow_non_tls,
    }
}

/// The session side of a round trip: reads "PING\r\n" and answers "PONG\r\n".
async fn answer_ping(transport: &mut Transport) {
    let mut ping = [0u8; 6];
    transport.read_exact(&mut ping).await.unwrap();
    assert_eq!(&ping, b"PING\r\n");
    transport.write_all(b"PONG\r\n").await.unwrap();
    transport.flush().await.unwrap();
}

async fn ping_pong<S: AsyncRead + tokio::io::AsyncWrite + Unpin>(stream: &mut S) {
    stream.write_all(b"PING\r\n").await.unwrap();
    stream.flush().await.unwrap();
    let mut pong = [0u8; 6];
    stream.read_exact(&mut pong).await.unwrap();
    assert_eq!(&pong, b"PONG\r\n");
}

#[tokio::test]
async fn without_tls_info_is_sent_in_plain_text() {
    let (address, task) = serve(ClientSecurity::default()).await;
    let mut client = TcpStream::connect(address).await.unwrap();
    let info = read_info(&mut client).await;
    assert!(info.get("tls_required").is_none());
    let mut transport = task.await.unwrap().unwrap();
    assert!(matches!(transport, Transport::Tcp(_)));
    tokio::join!(answer_ping(&mut transport), ping_pong(&mut client));
}

#[tokio::test]
async fn with_tls_info_comes_first_then_the_handshake() {
    let pki = TestPki::generate();
    let (address, task) = serve(tls_security(pki.verifying_server_options(), false)).await;
    let mut client = TcpStream::connect(address).await.unwrap();
    let info = read_info(&mut client).await;
    assert_eq!(info["tls_required"], true);
    assert_eq!(info["tls_verify"], true);
    assert!(info.get("tls_available").is_none());
    let tls = ClientTls::from_options(&pki.client_options_with_certificate()).unwrap();
    let mut client = tls.connect("localhost", client).await.unwrap();
    let mut transport = task.await.unwrap().unwrap();
    assert!(transport.is_tls());
    tokio::join!(answer_ping(&mut transport), ping_pong(&mut client));
}

#[tokio::test]
async fn a_plain_text_client_fails_when_tls_is_required() {
    let pki = TestPki::generate();
    let (address, task) = serve(tls_security(pki.server_options(), false)).await;
    let mut client = TcpStream::connect(address).await.unwrap();
    read_info(&mut client).await;
    client.write_all(b"CONNECT {}\r\nPING\r\n").await.unwrap();
    assert!(matches!(
        task.await.unwrap(),
        Err(AcceptError::Tls(TlsError::Handshake(_)))
    ));
}

#[tokio::test]
async fn handshake_first_sends_info_inside_tls() {
    let pki = TestPki::generate();
    let options = TlsOptions {
        handshake_first: HandshakeFirst::On,
        ..pki.server_options()
    };
    let (address, task) = serve(tls_security(options, false)).await;
    let client = TcpStream::connect(address).await.unwrap();
    let tls = ClientTls::from_options(&pki.client_options()).unwrap();
    let mut client = tls.connect("localhost", client).await.unwrap();
    let info = read_info(&mut client).await;
    assert_eq!(info["tls_required"], true);
    let mut transport = task.await.unwrap().unwrap();
    tokio::join!(answer_ping(&mut transport), ping_pong(&mut client));
}

#[tokio::test]
async fn handshake_first_with_fallback_accepts_a_tls_first_client() {
    let pki = TestPki::generate();
    let options = TlsOptions {
        handshake_first: HandshakeFirst::Fallback(Duration::from_millis(300)),
        ..pki.server_options()
    };
    let (address, task) = serve(tls_security(options, false)).await;
    let client = TcpStream::connect(address).await.unwrap();
    let tls = ClientTls::from_options(&pki.client_options()).unwrap();
    let mut client = tls.connect("localhost", client).await.unwrap();
    assert_eq!(read_info(&mut client).await["tls_required"], true);
    let mut transport = task.await.unwrap().unwrap();
    tokio::join!(answer_ping(&mut transport), ping_pong(&mut client));
}

#[tokio::test]
async fn handshake_first_falls_back_to_info_first_for_a_waiting_client() {
    let pki = TestPki::generate();
    let options = TlsOptions {
        handshake_first: HandshakeFirst::Fallback(Duration::from_millis(50)),
        ..pki.server_options()
    };
    let (address, task) = serve(tls_security(options, false)).await;
    let mut client = TcpStream::connect(address).await.unwrap();
    let info = tokio::time::timeout(Duration::from_secs(2), read_info(&mut client))
        .await
        .expect("INFO arrives in plain text after the fallback delay");
    assert_eq!(info["tls_required"], true);
    let tls = ClientTls::from_options(&pki.client_options()).unwrap();
    let mut client = tls.connect("localhost", client).await.unwrap();
    let mut transport = task.await.unwrap().unwrap();
    assert!(transport.is_tls());
    tokio::join!(answer_ping(&mut transport), ping_pong(&mut client));
}

#[tokio::test]
async fn allow_non_tls_keeps_a_plain_text_client_and_its_first_bytes() {
    let pki = TestPki::generate();
    let (address, task) = serve(tls_security(pki.server_options(), true)).await;
    let mut client = TcpStream::connect(address).await.unwrap();
    let info = read_info(&mut client).await;
    assert!(info.get("tls_required").is_none());
    assert_eq!(info["tls_available"], true);
    client.write_all(b"PING\r\n").await.unwrap();
    let mut transport = task.await.unwrap().unwrap();
    assert!(matches!(transport, Transport::Tcp(_)));
    answer_ping(&mut transport).await;
    let mut pong = [0u8; 6];
    client.read_exact(&mut pong).await.unwrap();
    assert_eq!(&pong, b"PONG\r\n");
}

#[tokio::test]
async fn allow_non_tls_upgrades_a_client_that_starts_tls() {
    let pki = TestPki::generate();
    let (address, task) = serve(tls_security(pki.server_options(), true)).await;
    let mut client = TcpStream::connect(address).await.unwrap();
    read_info(&mut client).await;
    let tls = ClientTls::from_options(&pki.client_options()).unwrap();
    let mut client = tls.connect("localhost", client).await.unwrap();
    let mut transport = task.await.unwrap().unwrap();
    assert!(transport.is_tls());
    tokio::join!(answer_ping(&mut transport), ping_pong(&mut client));
}

#[tokio::test]
async fn a_tls_handshake_that_never_comes_times_out() {
    let pki = TestPki::generate();
    let options = TlsOptions {
        timeout: Duration::from_millis(100),
        ..pki.server_options()
    };
    let (address, task) = serve(tls_security(options, false)).await;
    let mut client = TcpStream::connect(address).await.unwrap();
    read_info(&mut client).await;
    let outcome = tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(
        outcome,
        Err(AcceptError::Tls(TlsError::HandshakeTimeout { .. }))
    ));
}

#[test]
fn info_flags_and_auth_timeout_follow_the_configuration() {
    let pki = TestPki::generate();
    let mut info = sample_info();
    ClientSecurity::default().apply_to(&mut info);
    assert!(!info.tls_required && !info.tls_verify && !info.tls_available);
    assert_eq!(ClientSecurity::default().default_auth_timeout(), None);

    let security = tls_security(pki.verifying_server_options(), true);
    security.apply_to(&mut info);
    assert!(!info.tls_required && info.tls_verify && info.tls_available);
    assert_eq!(
        security.default_auth_timeout(),
        Some(Duration::from_secs(3))
    );
}
