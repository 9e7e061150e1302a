//! Server-side liveness: PINGs to idle clients, stale connections, slow consumers.

use std::time::Duration;

use tern_e2e::{for_each_server_kind, Frame};

use crate::support::{quiet_client, start_with_config};

const FAST_PING_CONFIG: &str = "ping_interval: \"200ms\"\nping_max: 1\n";

#[test]
fn client_that_never_answers_ping_is_disconnected_as_stale() {
    for_each_server_kind(|kind| {
        let server = start_with_config(kind, FAST_PING_CONFIG)?;
        let mut client = quiet_client(&server)?;
        client.expect("PING\r\n")?;
        client.expect("-ERR 'Stale Connection'\r\n")?;
        client.expect_closed()?;
        Ok(())
    });
}

#[test]
fn client_that_answers_pings_stays_connected() {
    for_each_server_kind(|kind| {
        let server = start_with_config(kind, FAST_PING_CONFIG)?;
        let mut client = quiet_client(&server)?;
        for _ in 0..5 {
            client.expect("PING\r\n")?;
            client.send("PONG\r\n")?;
        }
        client.send("SUB foo 1\r\nPUB foo 2\r\nok\r\n")?;
        // A server PING may come first; any other frame is a failure.
        for _ in 0..3 {
            match client.read_frame()? {
                Frame::Ping => client.send("PONG\r\n")?,
                Frame::Message(message) => {
                    assert_eq!(message.payload, b"ok");
                    return Ok(());
                }
                other => anyhow::bail!("unexpected {other:?}"),
            }
        }
        anyhow::bail!("the message never arrived")
    });
}

#[test]
fn slow_consumer_is_disconnected_without_error() {
    for_each_server_kind(|kind| {
        let server = start_with_config(kind, "max_pending: 65536\nmax_payload: 65536\n")?;
        let mut slow = quiet_client(&server)?;
        slow.send("SUB flood 1\r\nPING\r\n")?;
        slow.expect("PONG\r\n")?;

        let mut publisher = quiet_client(&server)?;
        let payload = "x".repeat(60_000);
        let mut batch = String::new();
        for _ in 0..16 {
            batch.push_str(&format!("PUB flood {}\r\n{payload}\r\n", payload.len()));
        }
        // 32 batches of ~1 MiB: far more than max_pending plus the kernel's socket buffers.
        // Large messages push the pending bytes past the limit in few reads, so nats-server's
        // fast-producer stall (up to 1s per read) does not drag the test out.
        let batches = 32;
        for _ in 0..batches {
            publisher.send(&batch)?;
        }
        let frames = publisher.frames_until_pong()?;
        assert!(frames.is_empty(), "the publisher got {frames:?}");

        let published = batches * batch.len();
        let received = slow.read_until_closed(2 * published, Duration::from_secs(30))?;
        assert!(
            received.len() < published,
            "the slow consumer received all {published} bytes; it was not cut off"
        );
        let error_marker = b"-ERR";
        assert!(
            !received
                .windows(error_marker.len())
                .any(|window| window == error_marker),
            "a slow consumer gets no -ERR"
        );
        let frames = publisher.frames_until_pong()?;
        assert!(frames.is_empty(), "the publisher got {frames:?}");
        Ok(())
    });
}
