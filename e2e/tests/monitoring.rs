//! The monitoring HTTP endpoints (`-m`): `/varz`, `/connz`, `/subsz`, `/healthz`, `/accountz`,
//! unknown paths, and Tern's Prometheus `/metrics`. Each test runs against every selected
//! server kind unless it says otherwise; nats-server 2.9.10's responses are the expected ones.
//! Counters are polled with a deadline: the server may update them after it answers the client.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use anyhow::Context;
use serde_json::Value;
use tern_e2e::{
    for_each_server_kind, for_each_server_kind_of, http_get, wait_until, HttpResponse, RawClient,
    ServerConfig, ServerKind, ServerProcess, DEFAULT_TIMEOUT, QUIET_CONNECT,
};

const POLL_INTERVAL: Duration = Duration::from_millis(25);
/// Messages published where a test needs counters to move.
const MESSAGE_COUNT: u64 = 20;

fn start_monitored(kind: ServerKind) -> anyhow::Result<ServerProcess> {
    Ok(ServerProcess::start(
        kind,
        ServerConfig::new().with_monitoring(),
    )?)
}

fn get(server: &ServerProcess, path: &str) -> anyhow::Result<HttpResponse> {
    let address = server
        .monitoring_address()
        .context("the server was started without monitoring")?;
    Ok(http_get(address, path)?)
}

/// GET `path`, require 200 and a JSON body, and parse it.
fn get_json(server: &ServerProcess, path: &str) -> anyhow::Result<Value> {
    let response = get(server, path)?;
    anyhow::ensure!(
        response.status == 200,
        "GET {path} answered {}: {}",
        response.status,
        response.body
    );
    let content_type = response.header("content-type").unwrap_or_default();
    anyhow::ensure!(
        content_type.starts_with("application/json"),
        "GET {path} has Content-Type {content_type:?}"
    );
    Ok(response.json()?)
}

/// GET `path` until `condition` holds for its JSON; fails showing the last JSON seen.
fn poll_json(
    server: &ServerProcess,
    path: &str,
    what: &str,
    condition: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let mut last = Value::Null;
    let found = wait_until(what, DEFAULT_TIMEOUT, POLL_INTERVAL, || {
        match get_json(server, path) {
            Ok(value) if condition(&value) => Some(Ok(value)),
            Ok(value) => {
                last = value;
                None
            }
            Err(error) => Some(Err(error)),
        }
    });
    match found {
        Ok(result) => result,
        Err(error) => anyhow::bail!("{error}; the last {path} was {last}"),
    }
}

fn number(value: &Value, field: &str) -> anyhow::Result<u64> {
    value[field]
        .as_u64()
        .with_context(|| format!("{field} is not a count in {value}"))
}

/// `YYYY-MM-DDTHH:MM:SS...`, as Go's RFC 3339 timestamps start.
fn is_rfc3339(value: &Value) -> bool {
    let Some(text) = value.as_str() else {
        return false;
    };
    let bytes = text.as_bytes();
    let shape = b"dddd-dd-ddTdd:dd:dd";
    bytes.len() > shape.len()
        && shape
            .iter()
            .zip(bytes)
            .all(|(expected, actual)| match expected {
                b'd' => actual.is_ascii_digit(),
                other => other == actual,
            })
}

/// Sends `operations` followed by PING and waits for the PONG, so the server has applied them.
fn apply(client: &mut RawClient, operations: &str) -> anyhow::Result<()> {
    client.send(format!("{operations}PING\r\n"))?;
    client.expect("PONG\r\n")?;
    Ok(())
}

/// The `/connz` entry whose client port is `port`.
fn connection_with_port(connz: &Value, port: u16) -> anyhow::Result<&Value> {
    connz["connections"]
        .as_array()
        .with_context(|| format!("no connections list in {connz}"))?
        .iter()
        .find(|connection| connection["port"] == port)
        .with_context(|| format!("no connection with port {port} in {connz}"))
}

fn connection_count(connz: &Value) -> usize {
    connz["connections"].as_array().map_or(0, Vec::len)
}

#[test]
fn varz_reports_the_server_identity_limits_and_clock() {
    for_each_server_kind(|kind| {
        let server = ServerProcess::start(
            kind,
            ServerConfig::from_text("max_payload: 65536\n").with_monitoring(),
        )?;
        let mut client = RawClient::connect_to(&server)?;
        let info = client.handshake(QUIET_CONNECT)?;

        let varz = poll_json(&server, "/varz", "varz to count the client", |varz| {
            varz["connections"] == 1
        })?;
        assert_eq!(varz["server_id"], info["server_id"], "{varz}");
        assert!(
            varz["version"]
                .as_str()
                .is_some_and(|version| !version.is_empty()),
            "{varz}"
        );
        assert_eq!(varz["port"], server.client_address().port(), "{varz}");
        assert_eq!(varz["max_payload"], 65536, "{varz}");
        for counter in [
            "in_msgs",
            "out_msgs",
            "in_bytes",
            "out_bytes",
            "total_connections",
        ] {
            number(&varz, counter)?;
        }
        assert!(is_rfc3339(&varz["start"]), "start: {}", varz["start"]);
        assert!(is_rfc3339(&varz["now"]), "now: {}", varz["now"]);
        assert!(
            varz["uptime"]
                .as_str()
                .is_some_and(|uptime| !uptime.is_empty()),
            "uptime: {}",
            varz["uptime"]
        );
        Ok(())
    });
}

#[test]
fn varz_counts_messages_and_connections_after_traffic() {
    for_each_server_kind(|kind| {
        let server = start_monitored(kind)?;
        let before = get_json(&server, "/varz")?;
        let (in_before, out_before) = (number(&before, "in_msgs")?, number(&before, "out_msgs")?);

        let mut subscriber = RawClient::connected(&server, QUIET_CONNECT)?;
        apply(&mut subscriber, "SUB counted 1\r\n")?;
        let mut publisher = RawClient::connected(&server, QUIET_CONNECT)?;
        let publishes = "PUB counted 5\r\nhello\r\n".repeat(MESSAGE_COUNT as usize);
        apply(&mut publisher, &publishes)?;
        for _ in 0..MESSAGE_COUNT {
            subscriber.read_message()?;
        }

        poll_json(
            &server,
            "/varz",
            "varz to count the messages and both clients",
            |varz| {
                let grown = |field: &str, before: u64| {
                    varz[field]
                        .as_u64()
                        .is_some_and(|now| now >= before + MESSAGE_COUNT)
                };
                grown("in_msgs", in_before)
                    && grown("out_msgs", out_before)
                    && varz["connections"] == 2
                    && varz["total_connections"]
                        .as_u64()
                        .is_some_and(|total| total >= 2)
            },
        )?;
        Ok(())
    });
}

#[test]
fn connz_lists_each_client_with_its_cid_address_subscriptions_and_name() {
    for_each_server_kind(|kind| {
        let server = start_monitored(kind)?;
        let mut named = RawClient::connect_to(&server)?;
        let named_info =
            named.handshake(r#"{"verbose":false,"pedantic":false,"name":"orders-service"}"#)?;
        apply(
            &mut named,
            "SUB orders.created 1\r\nSUB orders.cancelled 2\r\n",
        )?;
        let anonymous = RawClient::connected(&server, QUIET_CONNECT)?;

        let connz = poll_json(&server, "/connz", "connz to list both clients", |connz| {
            connz["num_connections"] == 2
        })?;
        assert_eq!(connz["total"], 2, "{connz}");
        assert_eq!(connection_count(&connz), 2, "{connz}");

        let entry = connection_with_port(&connz, named.local_address()?.port())?;
        assert_eq!(entry["cid"], named_info["client_id"], "{entry}");
        assert_eq!(entry["ip"], "127.0.0.1", "{entry}");
        assert_eq!(entry["subscriptions"], 2, "{entry}");
        assert_eq!(entry["name"], "orders-service", "{entry}");

        let other = connection_with_port(&connz, anonymous.local_address()?.port())?;
        assert_eq!(other["subscriptions"], 0, "{other}");
        assert!(
            other["name"].as_str().is_none_or(str::is_empty),
            "a client that gave no name: {other}"
        );
        assert_ne!(other["cid"], entry["cid"], "{connz}");
        Ok(())
    });
}

#[test]
fn connz_subs_lists_each_connections_subjects() {
    for_each_server_kind(|kind| {
        let server = start_monitored(kind)?;
        let mut client = RawClient::connected(&server, QUIET_CONNECT)?;
        apply(&mut client, "SUB orders.created 1\r\nSUB orders.* 2\r\n")?;
        let port = client.local_address()?.port();

        let plain = get_json(&server, "/connz")?;
        let entry = connection_with_port(&plain, port)?;
        assert!(
            entry["subscriptions_list"]
                .as_array()
                .is_none_or(Vec::is_empty),
            "subscriptions_list without subs=1: {entry}"
        );

        let detailed = get_json(&server, "/connz?subs=1")?;
        let entry = connection_with_port(&detailed, port)?;
        let mut subjects: Vec<&str> = entry["subscriptions_list"]
            .as_array()
            .with_context(|| format!("no subscriptions_list with subs=1: {entry}"))?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        subjects.sort_unstable();
        assert_eq!(subjects, ["orders.*", "orders.created"], "{entry}");
        Ok(())
    });
}

#[test]
fn connz_pages_with_limit_and_offset() {
    for_each_server_kind(|kind| {
        let server = start_monitored(kind)?;
        let mut cids = Vec::new();
        let mut clients = Vec::new();
        for _ in 0..3 {
            let mut client = RawClient::connect_to(&server)?;
            let info = client.handshake(QUIET_CONNECT)?;
            cids.push(number(&info, "client_id")?);
            clients.push(client);
        }
        cids.sort_unstable();
        poll_json(
            &server,
            "/connz",
            "connz to list the three clients",
            |connz| connz["total"] == 3,
        )?;

        let page = get_json(&server, "/connz?limit=1&offset=1")?;
        assert_eq!(page["limit"], 1, "{page}");
        assert_eq!(page["offset"], 1, "{page}");
        assert_eq!(page["total"], 3, "{page}");
        assert_eq!(page["num_connections"], 1, "{page}");
        assert_eq!(connection_count(&page), 1, "{page}");
        assert_eq!(
            page["connections"][0]["cid"], cids[1],
            "sorted by cid: {page}"
        );

        let first_two = get_json(&server, "/connz?limit=2")?;
        assert_eq!(connection_count(&first_two), 2, "{first_two}");
        assert_eq!(first_two["connections"][0]["cid"], cids[0], "{first_two}");
        assert_eq!(first_two["connections"][1]["cid"], cids[1], "{first_two}");

        let past_the_end = get_json(&server, "/connz?offset=3")?;
        assert_eq!(connection_count(&past_the_end), 0, "{past_the_end}");
        assert_eq!(past_the_end["total"], 3, "{past_the_end}");
        Ok(())
    });
}

#[test]
fn connz_rejects_an_unknown_sort_option() {
    for_each_server_kind(|kind| {
        let server = start_monitored(kind)?;
        let response = get(&server, "/connz?sort=bad")?;
        assert_eq!(response.status, 400, "{}", response.body);
        assert!(response.body.contains("bad"), "{}", response.body);
        Ok(())
    });
}

#[test]
fn connz_closed_state_reports_a_closed_connection_and_its_reason() {
    for_each_server_kind(|kind| {
        let server = start_monitored(kind)?;
        let mut leaver = RawClient::connect_to(&server)?;
        let info = leaver.handshake(r#"{"verbose":false,"pedantic":false,"name":"leaver"}"#)?;
        let cid = number(&info, "client_id")?;
        drop(leaver);

        let closed = poll_json(
            &server,
            "/connz?state=closed",
            "connz to list the closed connection",
            |connz| {
                connz["connections"]
                    .as_array()
                    .is_some_and(|list| list.iter().any(|entry| entry["cid"] == cid))
            },
        )?;
        let entry = closed["connections"]
            .as_array()
            .and_then(|list| list.iter().find(|entry| entry["cid"] == cid))
            .context("the closed connection vanished")?;
        assert_eq!(entry["name"], "leaver", "{entry}");
        assert_eq!(entry["reason"], "Client Closed", "{entry}");
        assert!(is_rfc3339(&entry["stop"]), "stop: {entry}");

        let open = get_json(&server, "/connz")?;
        assert!(
            open["connections"]
                .as_array()
                .is_none_or(|list| list.iter().all(|entry| entry["cid"] != cid)),
            "the closed connection is still listed as open: {open}"
        );
        Ok(())
    });
}

#[test]
fn subsz_counts_subscriptions_as_they_come_and_go() {
    for_each_server_kind(|kind| {
        let server = start_monitored(kind)?;
        // nats-server counts its system account's own subscriptions too.
        let baseline = number(&get_json(&server, "/subsz")?, "num_subscriptions")?;
        let mut client = RawClient::connected(&server, QUIET_CONNECT)?;
        apply(&mut client, "SUB a 1\r\nSUB b 2\r\nSUB c.> 3\r\n")?;
        poll_json(&server, "/subsz", "subsz to count three more", |subsz| {
            subsz["num_subscriptions"] == baseline + 3
        })?;
        apply(&mut client, "UNSUB 2\r\n")?;
        poll_json(&server, "/subsz", "subsz to count one fewer", |subsz| {
            subsz["num_subscriptions"] == baseline + 2
        })?;
        Ok(())
    });
}

#[test]
fn healthz_reports_ok() {
    for_each_server_kind(|kind| {
        let server = start_monitored(kind)?;
        let health = get_json(&server, "/healthz")?;
        assert_eq!(health, serde_json::json!({"status": "ok"}));
        Ok(())
    });
}

#[test]
fn accountz_lists_the_global_account() {
    for_each_server_kind(|kind| {
        let server = start_monitored(kind)?;
        let accountz = get_json(&server, "/accountz")?;
        let accounts = accountz["accounts"]
            .as_array()
            .with_context(|| format!("no accounts list in {accountz}"))?;
        assert!(accounts.iter().any(|account| account == "$G"), "{accountz}");
        Ok(())
    });
}

#[test]
fn unknown_path_is_not_found() {
    for_each_server_kind(|kind| {
        let server = start_monitored(kind)?;
        let response = get(&server, "/no-such-page")?;
        assert_eq!(response.status, 404, "{}", response.body);
        Ok(())
    });
}

/// The value of the Prometheus sample line `<name> <value>` (a metric without labels).
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (metric, value) = line.split_once(' ')?;
        (metric == name).then(|| value.trim().parse().ok())?
    })
}

/// nats-server has no `/metrics`; Tern serves Prometheus text there.
#[test]
fn metrics_counts_received_messages_in_prometheus_text() {
    const RECEIVED: &str = "tern_in_messages_total";
    for_each_server_kind_of(&[ServerKind::Tern], |kind| {
        let server = start_monitored(kind)?;
        let response = get(&server, "/metrics")?;
        assert_eq!(response.status, 200, "{}", response.body);
        let content_type = response.header("content-type").unwrap_or_default();
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        assert!(
            response
                .body
                .contains(&format!("# TYPE {RECEIVED} counter")),
            "no {RECEIVED} counter in:\n{}",
            response.body
        );
        let before = sample(&response.body, RECEIVED)
            .with_context(|| format!("no {RECEIVED} sample in:\n{}", response.body))?;

        let mut publisher = RawClient::connected(&server, QUIET_CONNECT)?;
        apply(
            &mut publisher,
            &"PUB metered 1\r\nx\r\n".repeat(MESSAGE_COUNT as usize),
        )?;

        let mut last = String::new();
        let grown = wait_until(
            "the received messages counter to grow",
            DEFAULT_TIMEOUT,
            POLL_INTERVAL,
            || match get(&server, "/metrics") {
                Ok(response) => {
                    let grown = sample(&response.body, RECEIVED)
                        .is_some_and(|now| now >= before + MESSAGE_COUNT as f64);
                    last = response.body;
                    grown.then_some(())
                }
                Err(_) => None,
            },
        );
        grown.with_context(|| format!("the last /metrics:\n{last}"))?;
        Ok(())
    });
}
