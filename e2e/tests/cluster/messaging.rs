//! What a message carries across a route: reply subjects (request/reply between servers) and
//! header blocks, byte for byte, to clients that negotiated headers; the bare payload to those
//! that did not.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use tern_e2e::{
    for_each_topology, Cluster, Frame, Message, RawClient, QUIET_CONNECT,
    QUIET_CONNECT_WITH_HEADERS,
};

use crate::support::{connect, wait_for_interest, INTEREST_TIMEOUT, RECEIVE_TIMEOUT};

/// The next MSG or HMSG, answering PINGs and passing over INFOs on the way.
fn next_message(client: &mut RawClient) -> anyhow::Result<Message> {
    for _ in 0..100 {
        match client.read_frame()? {
            Frame::Message(message) => return Ok(message),
            Frame::Ping => client.send("PONG\r\n")?,
            Frame::Info(_) => {}
            other => anyhow::bail!("expected a message, received {other:?}"),
        }
    }
    anyhow::bail!("no message among 100 frames")
}

/// Requests each requester sends.
const REQUESTS: usize = 10;
/// How long a raw subscriber waits for one probe before the publisher sends another.
const PROBE_WAIT: Duration = Duration::from_millis(50);

#[test]
fn requests_are_answered_by_a_responder_on_another_server() {
    for_each_topology(|topology| async move {
        let cluster = Cluster::start(topology.kinds())?;
        let responder = connect(cluster.server(1)).await?;
        let requesters = [
            connect(cluster.server(0)).await?,
            connect(cluster.server(2)).await?,
        ];
        let mut requests = responder.subscribe("service.upper").await?;
        for requester in &requesters {
            wait_for_interest(&responder, requester).await?;
        }
        let responder_task = tokio::spawn({
            let responder = responder.clone();
            async move {
                for _ in 0..REQUESTS * 2 {
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

        for (index, requester) in requesters.iter().enumerate() {
            for sequence in 0..REQUESTS {
                let question = format!("request {sequence} from requester {index}");
                let response = tokio::time::timeout(
                    RECEIVE_TIMEOUT,
                    requester.request("service.upper", Bytes::from(question.clone())),
                )
                .await??;
                assert_eq!(
                    response.payload.as_ref(),
                    question.to_ascii_uppercase().as_bytes()
                );
            }
        }
        tokio::time::timeout(RECEIVE_TIMEOUT, responder_task).await??;
        Ok(())
    });
}

/// Publishes probes on `subject` from `publisher` until `subscriber` (subscribed to it with
/// `sid`) receives one, then unsubscribes `sid` and drains what is left of the probes: the
/// publisher's server then knows all interest `subscriber` registered before.
fn raw_wait_for_interest(
    publisher: &mut RawClient,
    subscriber: &mut RawClient,
    subject: &str,
    sid: &str,
) -> anyhow::Result<()> {
    subscriber.send(format!("SUB {subject} {sid}\r\n"))?;
    subscriber.set_timeout(PROBE_WAIT);
    let attempts = INTEREST_TIMEOUT.as_millis() / PROBE_WAIT.as_millis();
    let mut arrived = false;
    for _ in 0..attempts {
        publisher.send(format!("PUB {subject} 5\r\nprobe\r\n"))?;
        match subscriber.read_frame() {
            Ok(Frame::Message(_)) => {
                arrived = true;
                break;
            }
            Ok(Frame::Ping) => subscriber.send("PONG\r\n")?,
            Ok(_) | Err(tern_e2e::HarnessError::Timeout { .. }) => {}
            Err(error) => return Err(error.into()),
        }
    }
    subscriber.set_timeout(tern_e2e::DEFAULT_TIMEOUT);
    anyhow::ensure!(
        arrived,
        "interest in {subject} did not reach the publisher's server within {INTEREST_TIMEOUT:?}"
    );
    subscriber.send(format!("UNSUB {sid}\r\n"))?;
    // Probes delivered before the UNSUB come before the PONG.
    subscriber.frames_until_pong()?;
    Ok(())
}

#[test]
fn headers_and_reply_subjects_cross_a_route_intact() {
    for_each_topology(|topology| async move {
        let cluster = Cluster::start(topology.kinds())?;
        let mut publisher = RawClient::connected(cluster.server(0), QUIET_CONNECT_WITH_HEADERS)?;
        let mut with_headers = RawClient::connected(cluster.server(1), QUIET_CONNECT_WITH_HEADERS)?;
        let mut without_headers = RawClient::connected(cluster.server(2), QUIET_CONNECT)?;
        with_headers.send("SUB traced.> 1\r\n")?;
        without_headers.send("SUB traced.> 1\r\n")?;
        raw_wait_for_interest(&mut publisher, &mut with_headers, "probe.one", "99")?;
        raw_wait_for_interest(&mut publisher, &mut without_headers, "probe.two", "99")?;

        let header_block = "NATS/1.0\r\nTrace-Id: abc-123\r\nMulti: first\r\nMulti: second\r\n\r\n";
        let payload = "body";
        publisher.send(format!(
            "HPUB traced.order reply.to.me {} {}\r\n{header_block}{payload}\r\n",
            header_block.len(),
            header_block.len() + payload.len()
        ))?;

        let message = next_message(&mut with_headers)?;
        assert_eq!(
            message,
            Message {
                subject: "traced.order".to_string(),
                sid: "1".to_string(),
                reply: Some("reply.to.me".to_string()),
                headers: Some(header_block.as_bytes().to_vec()),
                payload: payload.as_bytes().to_vec(),
            }
        );
        // A client that did not negotiate headers gets MSG with the payload alone.
        let message = next_message(&mut without_headers)?;
        assert_eq!(
            message,
            Message {
                subject: "traced.order".to_string(),
                sid: "1".to_string(),
                reply: Some("reply.to.me".to_string()),
                headers: None,
                payload: payload.as_bytes().to_vec(),
            }
        );
        Ok(())
    });
}
