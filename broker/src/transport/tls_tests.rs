#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;
use crate::transport::test_support::{loopback_listener, TestPki};
use crate::transport::Transport;

/// Accepts one TLS connection with `server` while `client` dials it; returns both outcomes.
async fn handshake(
    server: &ServerTls,
    client: &ClientTls,
) -> (
    Result<tokio_rustls::server::TlsStream<TcpStream>, TlsError>,
    Result<tokio_rustls::client::TlsStream<TcpStream>, TlsError>,
) {
    let (listener, address) = loopback_listener().await;
    let server = server.clone();
    let accepting = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        server.accept(stream).await
    });
    let stream = TcpStream::connect(address).await.unwrap();
    let connected = client.connect("localhost", stream).await;
    (accepting.await.unwrap(), connected)
}

/// Writes a line from the client and reads it on the server, proving the session works.
async fn exchange(
    server: &mut tokio_rustls::server::TlsStream<TcpStream>,
    client: &mut tokio_rustls::client::TlsStream<TcpStream>,
) {
    client.write_all(b"PING\r\n").await.unwrap();
    client.flush().await.unwrap();
    let mut received = [0u8; 6];
    server.read_exact(&mut received).await.unwrap();
    assert_eq!(&received, b"PING\r\n");
}

#[tokio::test]
async fn handshake_succeeds_and_carries_data() {
    let pki = TestPki::generate();
    let server = ServerTls::from_options(&pki.server_options()).unwrap();
    let client = ClientTls::from_options(&pki.client_options()).unwrap();
    let (accepted, connected) = handshake(&server, &client).await;
    let (mut accepted, mut connected) = (accepted.unwrap(), connected.unwrap());
    exchange(&mut accepted, &mut connected).await;
    let transport = Transport::TlsServer(Box::new(accepted));
    let details = transport.tls_details().unwrap();
    assert_eq!(details.version, "1.3");
    assert!(details.cipher_suite.starts_with("TLS_"), "{details:?}");
    assert!(transport.peer_certificates().is_none());
}

#[tokio::test]
async fn verify_accepts_a_client_certificate_from_the_ca() {
    let pki = TestPki::generate();
    let server = ServerTls::from_options(&pki.verifying_server_options()).unwrap();
    assert!(server.verifies_clients());
    let client = ClientTls::from_options(&pki.client_options_with_certificate()).unwrap();
    let (accepted, connected) = handshake(&server, &client).await;
    let (mut accepted, mut connected) = (accepted.unwrap(), connected.unwrap());
    exchange(&mut accepted, &mut connected).await;
    let transport = Transport::TlsServer(Box::new(accepted));
    assert_eq!(transport.peer_certificates().map(<[_]>::len), Some(1));
}

#[tokio::test]
async fn verify_rejects_a_client_without_a_certificate() {
    let pki = TestPki::generate();
    let server = ServerTls::from_options(&pki.verifying_server_options()).unwrap();
    let client = ClientTls::from_options(&pki.client_options()).unwrap();
    let (accepted, connected) = handshake(&server, &client).await;
    assert!(
        matches!(accepted, Err(TlsError::Handshake(_))),
        "{accepted:?}"
    );
    // TLS 1.3 clients learn of the refusal on their first read.
    if let Ok(mut connected) = connected {
        let mut buffer = [0u8; 1];
        assert!(!matches!(connected.read(&mut buffer).await, Ok(1)));
    }
}

#[tokio::test]
async fn verify_rejects_a_certificate_from_another_ca() {
    let pki = TestPki::generate();
    let server = ServerTls::from_options(&pki.verifying_server_options()).unwrap();
    let client = ClientTls::from_options(&pki.client_options_with_rogue_certificate()).unwrap();
    let (accepted, _connected) = handshake(&server, &client).await;
    match accepted {
        Err(TlsError::Handshake(error)) => {
            assert!(error.to_string().contains("UnknownIssuer"), "{error}");
        }
        other => panic!("expected a handshake error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_silent_client_times_out() {
    let pki = TestPki::generate();
    let options = TlsOptions {
        timeout: Duration::from_millis(100),
        ..pki.server_options()
    };
    let server = ServerTls::from_options(&options).unwrap();
    let (listener, address) = loopback_listener().await;
    let _silent = TcpStream::connect(address).await.unwrap();
    let (stream, _) = listener.accept().await.unwrap();
    let started = std::time::Instant::now();
    let outcome = server.accept(stream).await;
    assert!(matches!(outcome, Err(TlsError::HandshakeTimeout { .. })));
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        outcome.map(drop).unwrap_err().to_string(),
        "TLS handshake timeout (after 100ms)"
    );
}

#[tokio::test]
async fn the_client_refuses_an_unknown_server_unless_insecure() {
    let pki = TestPki::generate();
    let other = TestPki::generate();
    let server = ServerTls::from_options(&pki.server_options()).unwrap();
    let trusting_another_ca = ClientTls::from_options(&other.client_options()).unwrap();
    let (_, connected) = handshake(&server, &trusting_another_ca).await;
    assert!(matches!(connected, Err(TlsError::Handshake(_))));

    let insecure = ClientTls::from_options(&TlsOptions {
        insecure: true,
        ..TlsOptions::default()
    })
    .unwrap();
    let (accepted, connected) = handshake(&server, &insecure).await;
    exchange(&mut accepted.unwrap(), &mut connected.unwrap()).await;
}

#[tokio::test]
async fn min_version_1_3_refuses_a_tls_1_2_client() {
    let pki = TestPki::generate();
    let server = ServerTls::from_options(&TlsOptions {
        min_version: TlsVersion::Tls13,
        ..pki.server_options()
    })
    .unwrap();
    let roots = read_roots(&pki.ca_file).unwrap();
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let client = ClientTls {
        config: Arc::new(config),
        timeout: Duration::from_secs(2),
    };
    let (accepted, connected) = handshake(&server, &client).await;
    assert!(accepted.is_err());
    assert!(connected.is_err());
}

#[tokio::test]
async fn cipher_suites_restrict_what_is_negotiated() {
    let pki = TestPki::generate();
    let suite = cipher_suite_by_name("TLS_AES_256_GCM_SHA384").unwrap();
    let server = ServerTls::from_options(&TlsOptions {
        cipher_suites: vec![suite],
        ..pki.server_options()
    })
    .unwrap();
    let client = ClientTls::from_options(&pki.client_options()).unwrap();
    let (accepted, connected) = handshake(&server, &client).await;
    let (mut accepted, mut connected) = (accepted.unwrap(), connected.unwrap());
    exchange(&mut accepted, &mut connected).await;
    let details = Transport::TlsServer(Box::new(accepted))
        .tls_details()
        .unwrap();
    assert_eq!(details.cipher_suite, "TLS_AES_256_GCM_SHA384");
}

#[test]
fn cipher_suite_names_follow_go_and_rustls() {
    use rustls::CipherSuite;
    let cases = [
        (
            "TLS_AES_128_GCM_SHA256",
            CipherSuite::TLS13_AES_128_GCM_SHA256,
        ),
        (
            "TLS13_AES_128_GCM_SHA256",
            CipherSuite::TLS13_AES_128_GCM_SHA256,
        ),
        (
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
            CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
        (
            "tls_ecdhe_ecdsa_with_aes_256_gcm_sha384",
            CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        ),
    ];
    for (name, expected) in cases {
        assert_eq!(cipher_suite_by_name(name), Some(expected), "{name}");
    }
    assert_eq!(cipher_suite_by_name("TLS_RSA_WITH_AES_128_CBC_SHA"), None);
    assert!(supported_cipher_suite_names().contains(&"TLS13_AES_256_GCM_SHA384"));
}

#[test]
fn errors_name_the_file_and_the_setting() {
    let pki = TestPki::generate();
    let missing = pki.directory.path().join("missing.pem");
    let error = ServerTls::from_options(&TlsOptions {
        cert_file: Some(missing.clone()),
        ..pki.server_options()
    })
    .unwrap_err()
    .to_string();
    assert!(
        error.starts_with("tls: error reading cert_file "),
        "{error}"
    );
    assert!(error.contains(&missing.display().to_string()), "{error}");

    let empty = pki.directory.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let error = ServerTls::from_options(&TlsOptions {
        key_file: Some(empty.clone()),
        ..pki.server_options()
    })
    .unwrap_err()
    .to_string();
    assert!(error.contains("key_file") && error.contains("holds no PEM private key"));

    let error = ServerTls::from_options(&TlsOptions {
        key_file: Some(pki.client_key.clone()),
        ..pki.server_options()
    })
    .unwrap_err()
    .to_string();
    assert!(error.contains("can not be used together"), "{error}");

    let error = ServerTls::from_options(&TlsOptions {
        verify: true,
        ..pki.server_options()
    })
    .unwrap_err()
    .to_string();
    assert_eq!(
        error,
        "tls: ca_file is required for verify (client certificate verification)"
    );

    let error = ServerTls::from_options(&TlsOptions::default())
        .unwrap_err()
        .to_string();
    assert_eq!(error, "tls: cert_file is required for a TLS server");
}

#[tokio::test]
async fn reload_reads_rotated_certificates() {
    let pki = TestPki::generate();
    let server = ServerTls::from_options(&pki.server_options()).unwrap();
    let old_client = ClientTls::from_options(&pki.client_options()).unwrap();
    pki.write_certificates();
    let new_client = ClientTls::from_options(&pki.client_options()).unwrap();

    let (_, connected) = handshake(&server, &new_client).await;
    assert!(connected.is_err(), "the old certificate is still served");

    let reloaded = server.reload().unwrap();
    let (accepted, connected) = handshake(&reloaded, &new_client).await;
    exchange(&mut accepted.unwrap(), &mut connected.unwrap()).await;
    let (_, connected) = handshake(&reloaded, &old_client).await;
    assert!(
        connected.is_err(),
        "the rotated CA no longer signs the server"
    );
}

#[test]
fn debug_output_holds_no_key_material() {
    let pki = TestPki::generate();
    let server = ServerTls::from_options(&pki.server_options()).unwrap();
    let shown = format!("{server:?}");
    assert!(!shown.contains("PRIVATE"), "{shown}");
    assert!(shown.contains("server-key.pem"));
}
