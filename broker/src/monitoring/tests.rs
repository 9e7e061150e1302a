//! The monitoring endpoints as a client sees them: first answered in-process, then over HTTP
//! against a running server with a real client connected.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;
use crate::options::{Listen, ServerOptions};

fn monitor() -> Monitor {
    Monitor::new(Server::new(ServerOptions::default()))
}

fn get(monitor: &Monitor, target: &str) -> Reply {
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    monitor.respond(&Method::GET, path, &Query::parse(query))
}

fn body(reply: &Reply) -> String {
    String::from_utf8(reply.body.clone()).unwrap()
}

fn json_body(reply: &Reply) -> Value {
    assert_eq!(reply.content_type, JSON, "{}", body(reply));
    serde_json::from_slice(&reply.body).unwrap()
}

/// The top-level keys of an indented JSON object, in the order they were written.
fn keys(reply: &Reply) -> Vec<String> {
    body(reply)
        .lines()
        .filter_map(|line| line.strip_prefix("  \""))
        .filter_map(|line| line.split_once('"'))
        .map(|(key, _)| key.to_string())
        .collect()
}

#[test]
fn unknown_paths_are_not_found() {
    let reply = get(&monitor(), "/nope");
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(body(&reply), "404 page not found\n");
    assert_eq!(get(&monitor(), "/varz/").status, StatusCode::NOT_FOUND);
}

#[test]
fn only_get_and_head_are_allowed() {
    let monitor = monitor();
    let query = Query::default();
    assert_eq!(
        monitor.respond(&Method::POST, "/varz", &query).status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        monitor.respond(&Method::HEAD, "/varz", &query).status,
        StatusCode::OK
    );
}

#[test]
fn healthz_is_compact_and_ignores_unknown_parameters() {
    let reply = get(&monitor(), "/healthz?foo=bar");
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(body(&reply), r#"{"status":"ok"}"#);
    let reply = get(&monitor(), "/healthz?js-enabled-only=maybe");
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}

#[test]
fn root_links_every_endpoint() {
    let reply = get(&monitor(), "/");
    assert_eq!(reply.content_type, HTML);
    for path in ["varz", "connz", "subsz", "accountz", "healthz", "metrics"] {
        assert!(body(&reply).contains(&format!("href=./{path}>")), "{path}");
    }
}

#[test]
fn varz_has_nats_server_fields_and_types() {
    let monitor = monitor();
    let reply = get(&monitor, "/varz");
    let varz = json_body(&reply);
    let text = body(&reply);
    assert_eq!(varz["ping_interval"], 120_000_000_000_u64);
    assert_eq!(varz["write_deadline"], 10_000_000_000_u64);
    assert_eq!(varz["max_payload"], 1_048_576);
    assert_eq!(varz["proto"], 1);
    assert_eq!(varz["system_account"], "$SYS");
    assert_eq!(varz["http_req_stats"], serde_json::json!({"/varz": 1}));
    assert!(text.contains("\n  \"auth_timeout\": 2,\n"), "{text}");
    assert!(text.contains("\n  \"tls_timeout\": 2,\n"), "{text}");
    assert!(text.contains("\n  \"cluster\": {},\n"), "{text}");
    assert!(varz["uptime"].as_str().unwrap().ends_with('s'));
    assert!(varz["start"].as_str().unwrap().ends_with('Z'));
    assert!(varz.get("auth_required").is_none());
    assert!(varz.get("max_subscriptions").is_none());
    for key in [
        "server_id",
        "server_name",
        "version",
        "go",
        "mem",
        "cores",
        "cpu",
        "now",
    ] {
        assert!(varz.get(key).is_some(), "{key}");
    }
}

#[test]
fn subsz_without_a_listing_is_statistics_only() {
    let subsz = get(&monitor(), "/subsz");
    assert_eq!(
        keys(&subsz),
        [
            "num_subscriptions",
            "num_cache",
            "num_inserts",
            "num_removes",
            "num_matches",
            "cache_hit_rate",
            "max_fanout",
            "avg_fanout"
        ]
    );
    let alias = get(&monitor(), "/subscriptionsz?test=foo..bar");
    assert_eq!(alias.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body(&alias),
        "invalid test subject, must be valid publish subject: foo..bar"
    );
}

#[test]
fn accountz_lists_accounts_and_rejects_unknown_ones() {
    let monitor = monitor();
    let accountz = json_body(&get(&monitor, "/accountz"));
    assert_eq!(accountz["accounts"], serde_json::json!(["$G", "$SYS"]));
    assert_eq!(accountz["system_account"], "$SYS");
    let detail = json_body(&get(&monitor, "/accountz?acc=%24SYS"));
    assert_eq!(detail["account_detail"]["is_system"], true);
    assert_eq!(
        detail["account_detail"]["sublist_stats"]["num_subscriptions"],
        0
    );
    assert!(detail.get("accounts").is_none());
    let unknown = get(&monitor, "/accountz?acc=nope");
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert_eq!(body(&unknown), "Account nope does not exist");
}

#[test]
fn connz_errors_are_plain_text_bad_requests() {
    let reply = get(&monitor(), "/connz?sort=foo");
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.content_type, PLAIN_TEXT);
    assert_eq!(body(&reply), "invalid sorting option: foo");
    let empty = json_body(&get(&monitor(), "/connz"));
    assert_eq!(empty["connections"], serde_json::json!([]));
    assert_eq!(empty["limit"], 1024);
}

#[test]
fn peer_endpoints_are_empty_but_well_formed() {
    let monitor = monitor();
    let routez = get(&monitor, "/routez");
    assert_eq!(keys(&routez), ["server_id", "now", "num_routes", "routes"]);
    assert_eq!(json_body(&routez)["routes"], serde_json::json!([]));
    let gatewayz = json_body(&get(&monitor, "/gatewayz"));
    assert_eq!(gatewayz["outbound_gateways"], serde_json::json!({}));
    assert_eq!(gatewayz["inbound_gateways"], serde_json::json!({}));
    let leafz = json_body(&get(&monitor, "/leafz"));
    assert_eq!(leafz["leafnodes"], 0);
    assert_eq!(
        get(&monitor, "/routez?subs=x").status,
        StatusCode::BAD_REQUEST
    );
}

// ---- over HTTP, against a running server ----

async fn http_get(address: SocketAddr, target: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let request = format!("GET {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_string())
}

async fn read_until(stream: &mut TcpStream, wanted: &str) -> String {
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains(wanted) {
        let read = stream.read(&mut buffer).await.unwrap();
        assert!(
            read > 0,
            "closed before {wanted:?}: {:?}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buffer[..read]);
    }
    String::from_utf8_lossy(&seen).into_owned()
}

fn local_options() -> ServerOptions {
    let local = |port| Listen {
        host: "127.0.0.1".to_string(),
        port,
    };
    ServerOptions {
        listen: local(None),
        monitoring: Some(local(None)),
        ..ServerOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_a_running_server_over_http() {
    let server = Server::new(local_options());
    let running = server.start().await.unwrap();
    let addresses = server.addresses().unwrap();
    let monitoring = addresses.monitoring.unwrap();

    let mut client = TcpStream::connect(addresses.client).await.unwrap();
    read_until(&mut client, "INFO").await;
    client
        .write_all(
            b"CONNECT {\"verbose\":false,\"name\":\"alpha\",\"lang\":\"rust\"}\r\n\
              SUB foo.* 1\r\nSUB bar workers 2\r\nPUB foo.x 5\r\nhello\r\nPING\r\n",
        )
        .await
        .unwrap();
    read_until(&mut client, "PONG").await;

    let (status, head, text) = http_get(monitoring, "/connz?subs=detail&auth=1").await;
    assert_eq!(status, 200, "{text}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert!(head.contains("access-control-allow-origin: *"), "{head}");
    let connz: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(connz["num_connections"], 1, "{text}");
    let connection = &connz["connections"][0];
    assert_eq!(connection["name"], "alpha");
    assert_eq!(connection["kind"], "Client");
    assert_eq!(connection["type"], "nats");
    assert_eq!(connection["ip"], "127.0.0.1");
    assert_eq!(connection["subscriptions"], 2);
    assert_eq!(connection["in_msgs"], 1);
    assert!(
        connection.get("account").is_none(),
        "the global account is not named"
    );
    let details = connection["subscriptions_list_detail"].as_array().unwrap();
    assert!(details
        .iter()
        .any(|detail| detail["subject"] == "bar" && detail["qgroup"] == "workers"));

    let (_, _, text) = http_get(monitoring, "/subsz?subs=1&test=foo.x").await;
    let subsz: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(subsz["total"], 1, "{text}");
    assert_eq!(subsz["subscriptions_list"][0]["subject"], "foo.*");
    assert_eq!(subsz["subscriptions_list"][0]["account"], "$G");

    let (_, _, text) = http_get(monitoring, "/varz").await;
    let varz: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(varz["connections"], 1);
    assert_eq!(varz["subscriptions"], 2);
    assert_eq!(varz["http_port"], monitoring.port());
    assert_eq!(varz["port"], addresses.client.port());

    let (status, head, text) = http_get(monitoring, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        head.contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(text.contains("tern_connections 1\n"), "{text}");
    assert!(text.contains("tern_subscriptions 2\n"), "{text}");

    drop(client);
    let closed = async {
        loop {
            let (_, _, text) = http_get(monitoring, "/connz?state=closed&subs=1").await;
            let connz: Value = serde_json::from_str(&text).unwrap();
            if connz["num_connections"] == 1 {
                return connz;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let connz = tokio::time::timeout(Duration::from_secs(5), closed)
        .await
        .unwrap();
    assert!(connz["connections"][0]["stop"].is_string());
    assert!(connz["connections"][0]["reason"].is_string());

    server.shutdown();
    tokio::time::timeout(Duration::from_secs(5), running.wait())
        .await
        .unwrap();
    assert!(TcpStream::connect(monitoring).await.is_err());
    drop(Arc::clone(&server));
}

#[tokio::test]
async fn serve_returns_when_stopped_even_with_an_idle_connection_open() {
    let server = Server::new(ServerOptions::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let serving = tokio::spawn(serve(server, listener, stop.clone()));
    let idle = TcpStream::connect(address).await.unwrap();
    let (status, _, _) = http_get(address, "/healthz").await;
    assert_eq!(status, 200);
    stop.cancel();
    tokio::time::timeout(http::SHUTDOWN_GRACE + Duration::from_secs(1), serving)
        .await
        .unwrap()
        .unwrap();
    drop(idle);
}
