//! Protocol violations and limits: which ones send `-ERR`, which ones close the connection.

use std::time::Duration;

use tern_e2e::{for_each_server_kind, wait_until, Frame, HarnessError, RawClient};

use crate::support::{quiet_client, start, start_with_config};

#[test]
fn unknown_operation_is_rejected_and_closes() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut client = quiet_client(&server)?;
        client.send("FOO bar\r\n")?;
        client.expect("-ERR 'Unknown Protocol Operation'\r\n")?;
        client.expect_closed()?;
        Ok(())
    });
}

#[test]
fn misspelled_operation_is_rejected_and_closes() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut client = quiet_client(&server)?;
        client.send("PUNG\r\n")?;
        client.expect("-ERR 'Unknown Protocol Operation'\r\n")?;
        client.expect_closed()?;
        Ok(())
    });
}

#[test]
fn route_operation_from_a_client_is_rejected_and_closes() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut client = quiet_client(&server)?;
        client.send("RS+ $G foo\r\n")?;
        client.expect("-ERR 'Unknown Protocol Operation'\r\n")?;
        client.expect_closed()?;
        Ok(())
    });
}

#[test]
fn payload_followed_by_wrong_bytes_closes() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut client = quiet_client(&server)?;
        client.send("PUB foo 3\r\nabcXY")?;
        client.expect("-ERR 'Unknown Protocol Operation'\r\n")?;
        client.expect_closed()?;
        Ok(())
    });
}

#[test]
fn payload_followed_by_bare_newline_closes() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut client = quiet_client(&server)?;
        client.send("PUB foo 3\r\nabc\n")?;
        client.expect("-ERR 'Unknown Protocol Operation'\r\n")?;
        client.expect_closed()?;
        Ok(())
    });
}

#[test]
fn payload_longer_than_declared_closes() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut client = quiet_client(&server)?;
        client.send("SUB foo 1\r\nPUB foo 3\r\nabcd\r\n")?;
        client.expect("-ERR 'Unknown Protocol Operation'\r\n")?;
        client.expect_closed()?;
        Ok(())
    });
}

#[test]
fn pub_with_missing_size_closes() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut client = quiet_client(&server)?;
        client.send("PUB foo\r\n")?;
        client.expect_closed()?;
        Ok(())
    });
}

#[test]
fn pub_with_non_numeric_size_closes() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut client = quiet_client(&server)?;
        client.send("PUB foo 1x\r\n")?;
        client.expect_closed()?;
        Ok(())
    });
}

#[test]
fn sub_with_too_many_arguments_closes() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut client = quiet_client(&server)?;
        client.send("SUB foo queue 1 extra\r\n")?;
        client.expect_closed()?;
        Ok(())
    });
}

#[test]
fn payload_larger_than_max_payload_is_rejected_and_closes() {
    for_each_server_kind(|kind| {
        let server = start_with_config(kind, "max_payload: 16\n")?;
        let mut client = RawClient::connect_to(&server)?;
        let info = client.read_info()?;
        assert_eq!(info["max_payload"], 16, "INFO max_payload");
        client.send("CONNECT {\"verbose\":false}\r\nSUB foo 1\r\n")?;
        client.send("PUB foo 16\r\n0123456789abcdef\r\n")?;
        client.expect("MSG foo 1 16\r\n0123456789abcdef\r\n")?;
        client.send("PUB foo 17\r\n")?;
        client.expect("-ERR 'Maximum Payload Violation'\r\n")?;
        client.expect_closed()?;
        Ok(())
    });
}

#[test]
fn hpub_larger_than_max_payload_is_rejected_and_closes() {
    for_each_server_kind(|kind| {
        let server = start_with_config(kind, "max_payload: 16\n")?;
        let mut client = RawClient::connected(&server, r#"{"verbose":false,"headers":true}"#)?;
        client.send("HPUB foo 12 17\r\n")?;
        client.expect("-ERR 'Maximum Payload Violation'\r\n")?;
        client.expect_closed()?;
        Ok(())
    });
}

#[test]
fn control_line_longer_than_max_control_line_is_rejected_and_closes() {
    for_each_server_kind(|kind| {
        let server = start_with_config(kind, "max_control_line: 64\n")?;
        let mut client = quiet_client(&server)?;
        // Arguments of exactly 64 bytes are accepted ...
        let subject = "s".repeat(62);
        client.send(format!("SUB {subject} 1\r\nPING\r\n"))?;
        client.expect("PONG\r\n")?;
        // ... one more is not.
        let subject = "s".repeat(63);
        client.send(format!("SUB {subject} 2\r\n"))?;
        client.expect("-ERR 'maximum control line exceeded'\r\n")?;
        client.expect_closed()?;
        Ok(())
    });
}

#[test]
fn control_line_without_newline_beyond_the_limit_is_rejected() {
    for_each_server_kind(|kind| {
        let server = start_with_config(kind, "max_control_line: 64\n")?;
        let mut client = quiet_client(&server)?;
        client.send(format!("PUB {}", "s".repeat(200)))?;
        client.expect("-ERR 'maximum control line exceeded'\r\n")?;
        client.expect_closed()?;
        Ok(())
    });
}

#[test]
fn connection_beyond_max_connections_is_rejected() {
    for_each_server_kind(|kind| {
        let server = start_with_config(kind, "max_connections: 1\n")?;
        let mut first = quiet_client(&server)?;
        let mut second = RawClient::connect_to(&server)?;
        second.read_info()?;
        second.expect("-ERR 'maximum connections exceeded'\r\n")?;
        second.expect_closed()?;
        first.send("PING\r\n")?;
        first.expect("PONG\r\n")?;
        Ok(())
    });
}

#[test]
fn connection_slot_is_freed_when_a_client_leaves() {
    for_each_server_kind(|kind| {
        let server = start_with_config(kind, "max_connections: 1\n")?;
        let first = quiet_client(&server)?;
        drop(first);
        // The server notices the close asynchronously: poll with fresh connections.
        let mut last_refusal = String::new();
        let accepted = wait_until(
            "a connection to be accepted again",
            Duration::from_secs(5),
            Duration::from_millis(20),
            || {
                let attempt = || -> Result<Frame, HarnessError> {
                    let mut client = RawClient::connect_to(&server)?;
                    client.read_info()?;
                    client.send("CONNECT {\"verbose\":false}\r\nPING\r\n")?;
                    client.read_frame()
                };
                match attempt() {
                    Ok(Frame::Pong) => Some(()),
                    Ok(other) => {
                        last_refusal = format!("{other:?}");
                        None
                    }
                    Err(error) => {
                        last_refusal = error.to_string();
                        None
                    }
                }
            },
        );
        accepted.map_err(|error| anyhow::anyhow!("{error}; last refusal: {last_refusal}"))?;
        Ok(())
    });
}

#[test]
fn connect_with_unsupported_protocol_version_is_rejected() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut accepted = RawClient::connected(&server, r#"{"verbose":false,"protocol":1}"#)?;
        accepted.send("PING\r\n")?;
        accepted.expect("PONG\r\n")?;
        let mut client = RawClient::connect_to(&server)?;
        client.read_info()?;
        client.send("CONNECT {\"verbose\":false,\"protocol\":2}\r\n")?;
        client.expect("-ERR 'invalid client protocol'\r\n")?;
        client.expect_closed()?;
        Ok(())
    });
}

#[test]
fn connect_with_invalid_json_closes() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut client = RawClient::connect_to(&server)?;
        client.read_info()?;
        client.send("CONNECT {\"verbose\":\r\n")?;
        client.expect_closed()?;
        Ok(())
    });
}
