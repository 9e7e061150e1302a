//! `allow_responses`: a responder that may publish nowhere else can publish to the reply
//! subject of a request it received, as many times as `max` allows (1 by default) and within
//! `expires`; everything else it publishes is refused.

use std::time::Duration;

use bytes::Bytes;
use tern_e2e::{for_each_server_kind, for_each_server_kind_async, RawClient, ServerProcess};

use crate::support::{assert_nothing_delivered, connect_as, publish_violation, start_with_config};

const CONFIG: &str = r#"authorization {
  users: [
    {user: responder, password: r, permissions: {subscribe: "service", allow_responses: true}}
    {user: twice, password: t, permissions: {subscribe: "service", allow_responses: {max: 2}}}
    {user: brief, password: b, permissions: {subscribe: "service", allow_responses: {max: 5, expires: "500ms"}}}
    {user: requester, password: q}
  ]
}
"#;

/// Longer than the `brief` user's `expires` (500ms, so that even a loaded machine sends the
/// first reply before it).
const PAST_EXPIRY: Duration = Duration::from_secs(1);
/// How long the async-nats clients may take to connect or get a reply.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects `responder_user` subscribed to `service` and a requester subscribed to
/// `_INBOX.reply.>`, and sends one request with reply subject `_INBOX.reply.a`, which the
/// responder has received on return.
fn request_sent(
    server: &ServerProcess,
    responder_user: &str,
    responder_password: &str,
) -> anyhow::Result<(RawClient, RawClient)> {
    let mut responder = connect_as(server, responder_user, responder_password)?;
    responder.send("SUB service 1\r\nPING\r\n")?;
    responder.expect("PONG\r\n")?;
    let mut requester = connect_as(server, "requester", "q")?;
    requester
        .send("SUB _INBOX.reply.> 1\r\nPUB service _INBOX.reply.a 7\r\nrequest\r\nPING\r\n")?;
    requester.expect("PONG\r\n")?;
    responder.expect("MSG service 1 _INBOX.reply.a 7\r\nrequest\r\n")?;
    Ok((responder, requester))
}

#[test]
fn responder_replies_once_to_a_request_and_may_publish_nowhere_else() {
    for_each_server_kind(|kind| {
        let server = start_with_config(kind, CONFIG)?;
        let (mut responder, mut requester) = request_sent(&server, "responder", "r")?;

        responder.send(
            "PUB _INBOX.reply.a 5\r\nfirst\r\nPUB _INBOX.reply.a 6\r\nsecond\r\n\
             PUB service 1\r\nx\r\nPUB _INBOX.reply.b 1\r\ny\r\nPING\r\n",
        )?;
        responder.expect(format!(
            "{}{}{}PONG\r\n",
            publish_violation("_INBOX.reply.a"),
            publish_violation("service"),
            publish_violation("_INBOX.reply.b")
        ))?;
        requester.send("PING\r\n")?;
        requester.expect("MSG _INBOX.reply.a 1 5\r\nfirst\r\nPONG\r\n")?;
        Ok(())
    });
}

#[test]
fn responder_cannot_publish_to_a_reply_subject_before_the_request() {
    for_each_server_kind(|kind| {
        let server = start_with_config(kind, CONFIG)?;
        let mut requester = connect_as(&server, "requester", "q")?;
        requester.send("SUB _INBOX.reply.> 1\r\nPING\r\n")?;
        requester.expect("PONG\r\n")?;
        let mut responder = connect_as(&server, "responder", "r")?;
        responder.send("PUB _INBOX.reply.a 5\r\nearly\r\nPING\r\n")?;
        responder.expect(format!("{}PONG\r\n", publish_violation("_INBOX.reply.a")))?;
        assert_nothing_delivered(&mut requester)?;
        Ok(())
    });
}

#[test]
fn allow_responses_max_bounds_the_replies_to_one_request() {
    for_each_server_kind(|kind| {
        let server = start_with_config(kind, CONFIG)?;
        let (mut responder, mut requester) = request_sent(&server, "twice", "t")?;

        responder.send(
            "PUB _INBOX.reply.a 1\r\n1\r\nPUB _INBOX.reply.a 1\r\n2\r\nPUB _INBOX.reply.a 1\r\n3\r\nPING\r\n",
        )?;
        responder.expect(format!("{}PONG\r\n", publish_violation("_INBOX.reply.a")))?;
        requester.send("PING\r\n")?;
        requester
            .expect("MSG _INBOX.reply.a 1 1\r\n1\r\nMSG _INBOX.reply.a 1 1\r\n2\r\nPONG\r\n")?;
        Ok(())
    });
}

#[test]
fn allow_responses_expires_after_the_configured_time() {
    for_each_server_kind(|kind| {
        let server = start_with_config(kind, CONFIG)?;
        let (mut responder, mut requester) = request_sent(&server, "brief", "b")?;
        responder.send("PUB _INBOX.reply.a 4\r\nfast\r\nPING\r\n")?;
        responder.expect("PONG\r\n")?;

        // Time passing is the behaviour under test; nothing may arrive meanwhile.
        responder.expect_silence(PAST_EXPIRY)?;
        responder.send("PUB _INBOX.reply.a 4\r\nslow\r\nPING\r\n")?;
        responder.expect(format!("{}PONG\r\n", publish_violation("_INBOX.reply.a")))?;
        requester.send("PING\r\n")?;
        requester.expect("MSG _INBOX.reply.a 1 4\r\nfast\r\nPONG\r\n")?;
        Ok(())
    });
}

#[test]
fn async_nats_request_is_answered_by_a_responder_limited_to_responses() {
    for_each_server_kind_async(|kind| async move {
        let server = start_with_config(kind, CONFIG)?;
        let mut responder = connect_as(&server, "responder", "r")?;
        responder.send("SUB service 1\r\nPING\r\n")?;
        responder.expect("PONG\r\n")?;
        // The raw responder blocks on its socket (each read bounded by its timeout), so it
        // answers from the blocking pool while the runtime drives the async-nats requester.
        let answering = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let request = responder.read_message()?;
            anyhow::ensure!(request.payload == b"ping", "request was {request:?}");
            let reply = request
                .reply
                .ok_or_else(|| anyhow::anyhow!("the request has no reply subject"))?;
            responder.send(format!("PUB {reply} 4\r\npong\r\nPING\r\n"))?;
            responder.expect("PONG\r\n")?;
            Ok(())
        });

        let requester = async_nats::ConnectOptions::with_user_and_password(
            "requester".to_string(),
            "q".to_string(),
        )
        .connection_timeout(CLIENT_TIMEOUT)
        .connect(server.client_url())
        .await?;
        let response = tokio::time::timeout(
            CLIENT_TIMEOUT,
            requester.request("service", Bytes::from_static(b"ping")),
        )
        .await??;
        assert_eq!(response.payload.as_ref(), b"pong");
        answering.await??;
        Ok(())
    });
}
