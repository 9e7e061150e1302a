//! HPUB/HMSG, header stripping for clients without headers, and no-responders.

use tern_e2e::{for_each_server_kind, RawClient, QUIET_CONNECT_WITH_HEADERS};

use crate::support::{quiet_client, start};

/// A CONNECT for a requester that wants no-responders status messages.
const NO_RESPONDERS_CONNECT: &str =
    r#"{"verbose":false,"pedantic":false,"headers":true,"no_responders":true}"#;

#[test]
fn hpub_is_delivered_as_hmsg_with_exact_bytes() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut subscriber = RawClient::connected(&server, QUIET_CONNECT_WITH_HEADERS)?;
        let mut publisher = RawClient::connected(&server, QUIET_CONNECT_WITH_HEADERS)?;
        subscriber.send("SUB foo 1\r\nPING\r\n")?;
        subscriber.expect("PONG\r\n")?;
        // "NATS/1.0\r\nKey: Value\r\n\r\n" is 24 bytes; with "hello", 29.
        publisher.send("HPUB foo 24 29\r\nNATS/1.0\r\nKey: Value\r\n\r\nhello\r\n")?;
        subscriber.expect("HMSG foo 1 24 29\r\nNATS/1.0\r\nKey: Value\r\n\r\nhello\r\n")?;
        publisher.send("HPUB foo reply.to 24 29\r\nNATS/1.0\r\nKey: Value\r\n\r\nhello\r\n")?;
        subscriber
            .expect("HMSG foo 1 reply.to 24 29\r\nNATS/1.0\r\nKey: Value\r\n\r\nhello\r\n")?;
        Ok(())
    });
}

#[test]
fn header_block_passes_through_unchanged() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut client = RawClient::connected(&server, QUIET_CONNECT_WITH_HEADERS)?;
        let headers = "NATS/1.0 123 Some Description\r\nA: 1\r\na: 2\r\nA: 3\r\n\r\n";
        let header_size = headers.len();
        client.send(format!(
            "SUB foo 1\r\nHPUB foo {header_size} {header_size}\r\n{headers}\r\n"
        ))?;
        client.expect(format!(
            "HMSG foo 1 {header_size} {header_size}\r\n{headers}\r\n"
        ))?;
        Ok(())
    });
}

#[test]
fn header_message_to_client_without_headers_is_delivered_as_msg() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut subscriber = quiet_client(&server)?;
        let mut publisher = RawClient::connected(&server, QUIET_CONNECT_WITH_HEADERS)?;
        subscriber.send("SUB foo 1\r\nPING\r\n")?;
        subscriber.expect("PONG\r\n")?;
        publisher.send("HPUB foo reply 24 29\r\nNATS/1.0\r\nKey: Value\r\n\r\nhello\r\n")?;
        subscriber.expect("MSG foo 1 reply 5\r\nhello\r\n")?;
        Ok(())
    });
}

#[test]
fn plain_message_to_client_with_headers_is_delivered_as_msg() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut client = RawClient::connected(&server, QUIET_CONNECT_WITH_HEADERS)?;
        client.send("SUB foo 1\r\nPUB foo 5\r\nhello\r\n")?;
        client.expect("MSG foo 1 5\r\nhello\r\n")?;
        Ok(())
    });
}

#[test]
fn hpub_without_headers_negotiated_closes_the_connection() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut client = RawClient::connected(&server, r#"{"verbose":false,"headers":false}"#)?;
        client.send("HPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n")?;
        client.expect_closed()?;
        Ok(())
    });
}

#[test]
fn hpub_with_header_size_above_total_size_closes_the_connection() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut client = RawClient::connected(&server, QUIET_CONNECT_WITH_HEADERS)?;
        client.send("HPUB foo 14 12\r\n")?;
        client.expect_closed()?;
        Ok(())
    });
}

#[test]
fn no_responders_requires_headers() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut client = RawClient::connect_to(&server)?;
        client.read_info()?;
        client.send("CONNECT {\"verbose\":false,\"no_responders\":true}\r\n")?;
        client.expect("-ERR 'no responders requires headers support'\r\n")?;
        client.expect_closed()?;
        Ok(())
    });
}

#[test]
fn request_without_subscribers_gets_no_responders_status() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut requester = RawClient::connected(&server, NO_RESPONDERS_CONNECT)?;
        requester.send("SUB _INBOX.abc.* 7\r\nPUB service _INBOX.abc.1 2\r\nhi\r\n")?;
        requester.expect("HMSG _INBOX.abc.1 7 16 16\r\nNATS/1.0 503\r\n\r\n\r\n")?;
        Ok(())
    });
}

#[test]
fn no_responders_status_is_not_sent_when_someone_is_subscribed() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut responder = quiet_client(&server)?;
        responder.send("SUB service 1\r\nPING\r\n")?;
        responder.expect("PONG\r\n")?;
        let mut requester = RawClient::connected(&server, NO_RESPONDERS_CONNECT)?;
        requester
            .send("SUB _INBOX.abc.* 7\r\nSUB done 8\r\nPUB service _INBOX.abc.1 2\r\nhi\r\n")?;
        responder.expect("MSG service 1 _INBOX.abc.1 2\r\nhi\r\n")?;
        requester.send("PUB done 0\r\n\r\n")?;
        requester.expect("MSG done 8 0\r\n\r\n")?;
        Ok(())
    });
}

#[test]
fn no_responders_status_is_only_sent_to_clients_that_asked() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut requester = RawClient::connected(&server, QUIET_CONNECT_WITH_HEADERS)?;
        requester
            .send("SUB _INBOX.abc.* 7\r\nSUB done 8\r\nPUB service _INBOX.abc.1 2\r\nhi\r\n")?;
        requester.send("PUB done 0\r\n\r\n")?;
        requester.expect("MSG done 8 0\r\n\r\n")?;
        Ok(())
    });
}
