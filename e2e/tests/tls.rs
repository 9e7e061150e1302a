//! TLS on the client port, against every selected server kind: INFO in plain text then TLS,
//! client certificate verification, `handshake_first`, certificate reload, and a real client
//! library over `tls://`. Certificates are made per test (rcgen) and named by absolute path in
//! the nats.conf text, so Tern and nats-server read the same files.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use futures::StreamExt;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;
use tern_e2e::{
    for_each_server_kind_async, http_get, ServerConfig, ServerKind, ServerProcess, Signal,
    TestCertificates,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// How long any one network step may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a test polls for a reload to take effect.
const RELOAD_POLL_INTERVAL: Duration = Duration::from_millis(50);
/// The longest protocol line read here (an INFO is well under 1 KiB).
const MAX_LINE: usize = 16 * 1024;
/// CONNECT without `+OK` noise.
const QUIET_CONNECT: &[u8] = b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\n";

/// Which client certificate a test client presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientCertificate {
    None,
    Trusted,
    Untrusted,
}

fn read_pem_certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>()?)
}

/// A rustls client that trusts the test CA and presents `certificate`.
fn connector(
    certificates: &TestCertificates,
    certificate: ClientCertificate,
) -> anyhow::Result<TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    for root in read_pem_certificates(&certificates.ca_file())? {
        roots.add(root)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let files = match certificate {
        ClientCertificate::None => None,
        ClientCertificate::Trusted => {
            Some((certificates.client_certificate(), certificates.client_key()))
        }
        ClientCertificate::Untrusted => Some((
            certificates.untrusted_client_certificate(),
            certificates.untrusted_client_key(),
        )),
    };
    let config = match files {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => {
            let chain = read_pem_certificates(&chain)?;
            let key = PrivateKeyDer::from_pem_slice(&std::fs::read(&key)?)?;
            builder.with_client_auth_cert(chain, key)?
        }
    };
    Ok(TlsConnector::from(Arc::new(config)))
}

async fn step<T>(
    what: &str,
    future: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::time::timeout(STEP_TIMEOUT, future)
        .await
        .map_err(|_| anyhow::anyhow!("{what}: nothing within {STEP_TIMEOUT:?}"))?
}

/// Reads one `\r\n`-terminated line a byte at a time, so nothing after it (the start of a TLS
/// handshake) is consumed.
async fn read_line<S: AsyncRead + Unpin>(stream: &mut S) -> anyhow::Result<String> {
    let mut line = Vec::new();
    while !line.ends_with(b"\r\n") {
        anyhow::ensure!(line.len() < MAX_LINE, "line longer than {MAX_LINE} bytes");
        let byte = stream.read_u8().await.context("reading a protocol line")?;
        line.push(byte);
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

async fn read_info<S: AsyncRead + Unpin>(stream: &mut S) -> anyhow::Result<Value> {
    let line = step("reading INFO", read_line(stream)).await?;
    let json = line
        .strip_prefix("INFO ")
        .with_context(|| format!("expected INFO, got {line:?}"))?;
    Ok(serde_json::from_str(json.trim())?)
}

/// Sends CONNECT and PING and reads until PONG.
async fn ping_pong<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> anyhow::Result<()> {
    step("CONNECT, PING, PONG", async {
        stream.write_all(QUIET_CONNECT).await?;
        stream.write_all(b"PING\r\n").await?;
        stream.flush().await?;
        loop {
            let line = read_line(stream).await?;
            if line == "PONG\r\n" {
                return Ok(());
            }
            anyhow::ensure!(!line.starts_with("-ERR"), "server answered {line:?}");
        }
    })
    .await
}

async fn start_tls(
    connector: &TlsConnector,
    stream: TcpStream,
) -> anyhow::Result<TlsStream<TcpStream>> {
    let name = ServerName::try_from("localhost")?;
    step("TLS handshake", async {
        Ok(connector.connect(name, stream).await?)
    })
    .await
}

/// Plain INFO, then TLS, then CONNECT/PING/PONG inside it; returns the INFO.
async fn tls_session(
    server: &ServerProcess,
    connector: &TlsConnector,
) -> anyhow::Result<(Value, TlsStream<TcpStream>)> {
    let mut stream = TcpStream::connect(server.client_address()).await?;
    let info = read_info(&mut stream).await?;
    let mut tls = start_tls(connector, stream).await?;
    ping_pong(&mut tls).await?;
    Ok((info, tls))
}

/// Waits for the server to close `stream`: end of stream or a reset, never a PONG.
async fn expect_closed<S: AsyncRead + Unpin>(stream: &mut S) -> anyhow::Result<()> {
    let mut buffer = [0u8; 1024];
    let mut received = Vec::new();
    let closed = tokio::time::timeout(STEP_TIMEOUT, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(count) => received.extend_from_slice(&buffer[..count]),
            }
        }
    })
    .await;
    anyhow::ensure!(
        closed.is_ok(),
        "the connection is still open after {STEP_TIMEOUT:?}"
    );
    anyhow::ensure!(
        !String::from_utf8_lossy(&received).contains("PONG"),
        "the server answered a client that should have been refused: {:?}",
        String::from_utf8_lossy(&received)
    );
    Ok(())
}

fn tls_server(
    kind: ServerKind,
    certificates: &TestCertificates,
    settings: &str,
) -> anyhow::Result<ServerProcess> {
    let config = ServerConfig::from_text(certificates.server_tls_block(settings));
    Ok(ServerProcess::start(kind, config)?)
}

#[test]
fn tls_required_sends_plain_info_then_speaks_nats_inside_tls() {
    for_each_server_kind_async(|kind| async move {
        let certificates = TestCertificates::generate()?;
        let server = tls_server(kind, &certificates, "")?;
        let connector = connector(&certificates, ClientCertificate::None)?;

        let (info, _session) = tls_session(&server, &connector).await?;

        assert_eq!(info["tls_required"], true, "INFO: {info}");
        assert_eq!(info.get("tls_verify"), None, "INFO: {info}");
        Ok(())
    });
}

#[test]
fn client_that_never_starts_tls_is_dropped() {
    for_each_server_kind_async(|kind| async move {
        let certificates = TestCertificates::generate()?;
        let server = tls_server(kind, &certificates, "timeout: 0.5")?;

        // Speaking the protocol in plain text after INFO: the first bytes are no TLS record.
        let mut plain = TcpStream::connect(server.client_address()).await?;
        read_info(&mut plain).await?;
        plain.write_all(QUIET_CONNECT).await?;
        plain.write_all(b"PING\r\n").await?;
        expect_closed(&mut plain).await?;

        // Saying nothing at all: dropped once the TLS timeout passes.
        let mut silent = TcpStream::connect(server.client_address()).await?;
        read_info(&mut silent).await?;
        expect_closed(&mut silent).await?;
        Ok(())
    });
}

#[test]
fn verify_accepts_a_certificate_signed_by_the_ca_and_refuses_others() {
    for_each_server_kind_async(|kind| async move {
        let certificates = TestCertificates::generate()?;
        let server = tls_server(kind, &certificates, "verify: true")?;

        let trusted = connector(&certificates, ClientCertificate::Trusted)?;
        let (info, _session) = tls_session(&server, &trusted).await?;
        assert_eq!(info["tls_required"], true, "INFO: {info}");
        assert_eq!(info["tls_verify"], true, "INFO: {info}");

        for refused in [ClientCertificate::None, ClientCertificate::Untrusted] {
            let connector = connector(&certificates, refused)?;
            let mut stream = TcpStream::connect(server.client_address()).await?;
            read_info(&mut stream).await?;
            // Under TLS 1.3 the client finishes its side before the server has checked the
            // certificate; the refusal arrives as an alert on the first read.
            let Ok(mut tls) = start_tls(&connector, stream).await else {
                continue;
            };
            let _ = tls.write_all(QUIET_CONNECT).await;
            let _ = tls.write_all(b"PING\r\n").await;
            let _ = tls.flush().await;
            expect_closed(&mut tls)
                .await
                .with_context(|| format!("client certificate {refused:?}"))?;
        }
        Ok(())
    });
}

/// `handshake_first` exists since nats-server 2.10: where 2.9 is selected, the current
/// release stands in for it.
fn with_handshake_first(kind: ServerKind) -> ServerKind {
    match kind {
        ServerKind::NatsServer => ServerKind::NatsServerCurrent,
        other => other,
    }
}

#[test]
fn handshake_first_runs_tls_before_info() {
    for_each_server_kind_async(|kind| async move {
        let kind = with_handshake_first(kind);
        let certificates = TestCertificates::generate()?;
        let server = tls_server(kind, &certificates, "handshake_first: true")?;
        let connector = connector(&certificates, ClientCertificate::None)?;

        let stream = TcpStream::connect(server.client_address()).await?;
        let mut tls = start_tls(&connector, stream).await?;
        let info = read_info(&mut tls).await?;
        ping_pong(&mut tls).await?;

        assert_eq!(info["tls_required"], true, "INFO: {info}");
        Ok(())
    });
}

async fn expect_message(subscriber: &mut async_nats::Subscriber) -> anyhow::Result<Bytes> {
    match tokio::time::timeout(STEP_TIMEOUT, subscriber.next()).await {
        Ok(Some(message)) => Ok(message.payload),
        Ok(None) => anyhow::bail!("the subscription ended"),
        Err(_) => anyhow::bail!("no message within {STEP_TIMEOUT:?}"),
    }
}

/// Subscribes, publishes through `publisher`, and checks the message arrives.
async fn publish_and_receive(
    subscriber: &async_nats::Client,
    publisher: &async_nats::Client,
) -> anyhow::Result<()> {
    let mut subscription = subscriber.subscribe("secure.greeting").await?;
    subscriber.flush().await?;
    // async-nats's flush only empties its socket; a round trip makes sure the server has the
    // subscription before the publish.
    let inbox = subscriber.new_inbox();
    let mut probe = subscriber.subscribe(inbox.clone()).await?;
    subscriber
        .publish(inbox, Bytes::from_static(b"probe"))
        .await?;
    expect_message(&mut probe).await?;

    publisher
        .publish("secure.greeting", Bytes::from_static(b"over tls"))
        .await?;
    publisher.flush().await?;
    assert_eq!(
        expect_message(&mut subscription).await?.as_ref(),
        b"over tls"
    );
    Ok(())
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

fn library_options(certificates: &TestCertificates) -> async_nats::ConnectOptions {
    async_nats::ConnectOptions::new()
        .connection_timeout(STEP_TIMEOUT)
        .add_root_certificates(certificates.ca_file())
        .add_client_certificate(certificates.client_certificate(), certificates.client_key())
        .require_tls(true)
}

#[test]
fn async_nats_publishes_and_subscribes_over_verified_tls() {
    for_each_server_kind_async(|kind| async move {
        let certificates = TestCertificates::generate()?;
        let server = tls_server(kind, &certificates, "verify: true")?;
        let url = format!("tls://{}", server.client_address());

        let subscriber = connect_library(library_options(&certificates), &url).await?;
        let publisher = connect_library(library_options(&certificates), &url).await?;

        step(
            "publishing and receiving",
            publish_and_receive(&subscriber, &publisher),
        )
        .await
    });
}

#[test]
fn async_nats_tls_first_publishes_and_subscribes() {
    for_each_server_kind_async(|kind| async move {
        let kind = with_handshake_first(kind);
        let certificates = TestCertificates::generate()?;
        let server = tls_server(kind, &certificates, "handshake_first: true")?;
        let url = format!("tls://{}", server.client_address());

        let subscriber = connect_library(library_options(&certificates).tls_first(), &url).await?;
        let publisher = connect_library(library_options(&certificates).tls_first(), &url).await?;

        step(
            "publishing and receiving",
            publish_and_receive(&subscriber, &publisher),
        )
        .await
    });
}

#[test]
fn monitoring_reports_tls_settings_and_the_negotiated_version() {
    for_each_server_kind_async(|kind| async move {
        let certificates = TestCertificates::generate()?;
        let config =
            ServerConfig::from_text(certificates.server_tls_block("verify: true\n  timeout: 1.5"))
                .with_monitoring();
        let server = ServerProcess::start(kind, config)?;
        let monitoring = server.monitoring_address().context("monitoring address")?;
        let trusted = connector(&certificates, ClientCertificate::Trusted)?;
        let (_info, _session) = tls_session(&server, &trusted).await?;

        let varz = http_get(monitoring, "/varz")?.json()?;
        assert_eq!(varz["tls_required"], true, "varz: {varz}");
        assert_eq!(varz["tls_verify"], true, "varz: {varz}");
        assert_eq!(varz["tls_timeout"], 1.5, "varz: {varz}");
        // The auth timeout defaults to the TLS timeout plus a second.
        assert_eq!(varz["auth_timeout"], 2.5, "varz: {varz}");

        let connz = http_get(monitoring, "/connz")?.json()?;
        let connection = &connz["connections"][0];
        let version = connection["tls_version"].as_str().unwrap_or_default();
        assert!(version == "1.2" || version == "1.3", "connz: {connz}");
        assert!(
            connection["tls_cipher_suite"]
                .as_str()
                .is_some_and(|suite| suite.starts_with("TLS_")),
            "connz: {connz}"
        );
        Ok(())
    });
}

/// Copies the second set's certificate files over the first's (the paths the config names).
fn replace_certificates(
    target: &TestCertificates,
    source: &TestCertificates,
) -> anyhow::Result<()> {
    for name in [
        "ca.pem",
        "server.pem",
        "server-key.pem",
        "client.pem",
        "client-key.pem",
    ] {
        std::fs::copy(source.directory().join(name), target.directory().join(name))
            .with_context(|| format!("replacing {name}"))?;
    }
    Ok(())
}

#[test]
fn reload_reads_renewed_certificates_for_new_connections() {
    for_each_server_kind_async(|kind| async move {
        let certificates = TestCertificates::generate()?;
        let server = tls_server(kind, &certificates, "")?;
        let old_connector = connector(&certificates, ClientCertificate::None)?;
        let (_info, mut established) = tls_session(&server, &old_connector).await?;

        // A renewal from a new CA: files replaced in place, then a reload.
        let renewed = TestCertificates::generate()?;
        let new_connector = connector(&renewed, ClientCertificate::None)?;
        replace_certificates(&certificates, &renewed)?;
        anyhow::ensure!(
            tls_session(&server, &new_connector).await.is_err(),
            "the renewed certificate was served before the reload"
        );
        server.signal(Signal::Hangup)?;

        // Polled: the reload is asynchronous, and each try is bounded by STEP_TIMEOUT.
        let deadline = Instant::now() + STEP_TIMEOUT;
        while tls_session(&server, &new_connector).await.is_err() {
            anyhow::ensure!(
                Instant::now() < deadline,
                "new connections still present the old certificate {STEP_TIMEOUT:?} after the reload"
            );
            tokio::time::sleep(RELOAD_POLL_INTERVAL).await;
        }

        // The connection made before the reload keeps its session.
        established.write_all(b"PING\r\n").await?;
        established.flush().await?;
        let line = step("PONG on the old connection", read_line(&mut established)).await?;
        assert_eq!(line, "PONG\r\n");
        Ok(())
    });
}

/// Plain INFO, then TLS, then `commands` inside it; returns what came back up to the PONG
/// that ends `commands` (or the whole answer when the server closes first).
async fn tls_exchange(
    server: &ServerProcess,
    connector: &TlsConnector,
    commands: &str,
) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(server.client_address()).await?;
    read_info(&mut stream).await?;
    let mut tls = start_tls(connector, stream).await?;
    step("exchanging commands", async {
        tls.write_all(commands.as_bytes()).await?;
        tls.flush().await?;
        let mut answer = String::new();
        while !answer.ends_with("PONG\r\n") {
            match read_line(&mut tls).await {
                Ok(line) => answer.push_str(&line),
                Err(_) => break,
            }
        }
        Ok(answer)
    })
    .await
}

fn mapped_server(
    kind: ServerKind,
    certificates: &TestCertificates,
    users: &str,
) -> anyhow::Result<ServerProcess> {
    let config = format!(
        "{}authorization {{\n  users: [\n    {users}\n  ]\n}}\n",
        certificates.server_tls_block("verify_and_map: true")
    );
    Ok(ServerProcess::start(kind, ServerConfig::from_text(config))?)
}

/// The test client certificate's subject is `CN=tern e2e client`; its DNS name is
/// `client.tern.test`.
#[test]
fn verify_and_map_picks_the_user_from_the_certificate_subject() {
    for_each_server_kind_async(|kind| async move {
        let certificates = TestCertificates::generate()?;
        let server = mapped_server(
            kind,
            &certificates,
            "{user: \"CN=tern e2e client\", permissions: {publish: \"allowed.>\"}}\n    {user: other, password: pw}",
        )?;
        let trusted = connector(&certificates, ClientCertificate::Trusted)?;
        // No credentials in CONNECT: the certificate is the user, with its permissions.
        let answer = tls_exchange(
            &server,
            &trusted,
            "CONNECT {\"verbose\":false,\"pedantic\":false}\r\nSUB > 1\r\nPUB allowed.x 1\r\na\r\nPUB denied 1\r\nb\r\nPING\r\n",
        )
        .await?;
        assert_eq!(
            answer,
            "MSG allowed.x 1 1\r\na\r\n-ERR 'Permissions Violation for Publish to \"denied\"'\r\nPONG\r\n"
        );
        // A user name in CONNECT does not override the certificate, and a password sent
        // is still checked against the mapped user's (none here).
        let answer = tls_exchange(
            &server,
            &trusted,
            "CONNECT {\"verbose\":false,\"user\":\"other\"}\r\nPUB denied 1\r\nb\r\nPING\r\n",
        )
        .await?;
        assert_eq!(
            answer,
            "-ERR 'Permissions Violation for Publish to \"denied\"'\r\nPONG\r\n"
        );
        let answer = tls_exchange(
            &server,
            &trusted,
            "CONNECT {\"verbose\":false,\"user\":\"other\",\"pass\":\"pw\"}\r\nPING\r\n",
        )
        .await?;
        assert_eq!(answer, "-ERR 'Authorization Violation'\r\n");
        Ok(())
    });
}

#[test]
fn verify_and_map_takes_a_dns_name_and_refuses_an_unknown_identity() {
    for_each_server_kind_async(|kind| async move {
        let certificates = TestCertificates::generate()?;
        let trusted = connector(&certificates, ClientCertificate::Trusted)?;
        let by_name = mapped_server(kind, &certificates, "{user: \"client.tern.test\"}")?;
        let answer = tls_exchange(
            &by_name,
            &trusted,
            "CONNECT {\"verbose\":false}\r\nPING\r\n",
        )
        .await?;
        assert_eq!(answer, "PONG\r\n");
        drop(by_name);

        let unknown = mapped_server(
            kind,
            &certificates,
            "{user: \"CN=someone else\"}\n    {user: alice, password: pw}",
        )?;
        let answer = tls_exchange(
            &unknown,
            &trusted,
            "CONNECT {\"verbose\":false,\"user\":\"alice\",\"pass\":\"pw\"}\r\nPING\r\n",
        )
        .await?;
        assert_eq!(answer, "-ERR 'Authorization Violation'\r\n");
        Ok(())
    });
}
