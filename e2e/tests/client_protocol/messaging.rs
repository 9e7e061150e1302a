//! PUB → MSG delivery: exact bytes, reply subjects, wildcards, echo, verbose and pedantic.

use std::collections::BTreeSet;

use tern_e2e::{for_each_server_kind, Frame, RawClient, QUIET_CONNECT};

use crate::support::{quiet_client, start};

#[test]
fn published_message_is_delivered_with_exact_bytes() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut subscriber = quiet_client(&server)?;
        let mut publisher = quiet_client(&server)?;
        subscriber.send("SUB foo.bar 7\r\nPING\r\n")?;
        subscriber.expect("PONG\r\n")?;
        publisher.send("PUB foo.bar 11\r\nhello world\r\n")?;
        subscriber.expect("MSG foo.bar 7 11\r\nhello world\r\n")?;
        Ok(())
    });
}

#[test]
fn empty_payload_is_delivered() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut client = quiet_client(&server)?;
        client.send("SUB foo 1\r\nPUB foo 0\r\n\r\n")?;
        client.expect("MSG foo 1 0\r\n\r\n")?;
        Ok(())
    });
}

#[test]
fn payload_bytes_pass_through_unchanged() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut client = quiet_client(&server)?;
        let payload: Vec<u8> = (0..=255).collect();
        let mut publish = b"SUB bin 1\r\nPUB bin 256\r\n".to_vec();
        publish.extend_from_slice(&payload);
        publish.extend_from_slice(b"\r\n");
        client.send(&publish)?;
        let mut expected = b"MSG bin 1 256\r\n".to_vec();
        expected.extend_from_slice(&payload);
        expected.extend_from_slice(b"\r\n");
        client.expect(&expected)?;
        Ok(())
    });
}

#[test]
fn reply_subject_is_delivered_in_msg() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut subscriber = quiet_client(&server)?;
        let mut publisher = quiet_client(&server)?;
        subscriber.send("SUB service 1\r\nPING\r\n")?;
        subscriber.expect("PONG\r\n")?;
        publisher.send("PUB service _INBOX.reply.1 4\r\nping\r\n")?;
        subscriber.expect("MSG service 1 _INBOX.reply.1 4\r\nping\r\n")?;
        Ok(())
    });
}

#[test]
fn messages_from_one_publisher_arrive_in_order() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut subscriber = quiet_client(&server)?;
        let mut publisher = quiet_client(&server)?;
        subscriber.send("SUB ordered 1\r\nPING\r\n")?;
        subscriber.expect("PONG\r\n")?;
        let count = 200;
        let mut publishes = String::new();
        let mut expected = String::new();
        for index in 0..count {
            let payload = index.to_string();
            publishes.push_str(&format!("PUB ordered {}\r\n{payload}\r\n", payload.len()));
            expected.push_str(&format!("MSG ordered 1 {}\r\n{payload}\r\n", payload.len()));
        }
        publisher.send(publishes)?;
        subscriber.expect(expected)?;
        Ok(())
    });
}

#[test]
fn single_token_wildcard_matches_exactly_one_token() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut client = quiet_client(&server)?;
        client.send("SUB foo.* 1\r\nSUB done 2\r\n")?;
        client.send(
            "PUB foo 1\r\na\r\nPUB foo.bar.baz 1\r\nb\r\nPUB foo.bar 1\r\nc\r\n\
             PUB fooo.bar 1\r\nd\r\nPUB done 0\r\n\r\n",
        )?;
        client.expect("MSG foo.bar 1 1\r\nc\r\nMSG done 2 0\r\n\r\n")?;
        Ok(())
    });
}

#[test]
fn full_wildcard_matches_one_or_more_trailing_tokens() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut client = quiet_client(&server)?;
        client.send("SUB foo.> 1\r\nSUB done 2\r\n")?;
        client.send(
            "PUB foo 1\r\na\r\nPUB foo.bar 1\r\nb\r\nPUB foo.bar.baz 1\r\nc\r\n\
             PUB bar.foo 1\r\nd\r\nPUB done 0\r\n\r\n",
        )?;
        client
            .expect("MSG foo.bar 1 1\r\nb\r\nMSG foo.bar.baz 1 1\r\nc\r\nMSG done 2 0\r\n\r\n")?;
        Ok(())
    });
}

#[test]
fn wildcard_inside_a_token_is_literal() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut client = quiet_client(&server)?;
        client.send("SUB foo* 1\r\nSUB done 2\r\n")?;
        client.send("PUB foox 1\r\na\r\nPUB foo* 1\r\nb\r\nPUB done 0\r\n\r\n")?;
        client.expect("MSG foo* 1 1\r\nb\r\nMSG done 2 0\r\n\r\n")?;
        Ok(())
    });
}

#[test]
fn every_matching_subscription_receives_its_own_copy() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut client = quiet_client(&server)?;
        client.send(
            "SUB foo.bar 1\r\nSUB foo.* 2\r\nSUB foo.> 3\r\nSUB > 4\r\nSUB *.* 5\r\nSUB * 6\r\n",
        )?;
        client.send("PUB foo.bar 2\r\nhi\r\n")?;
        let frames = client.frames_until_pong()?;
        let mut sids = BTreeSet::new();
        for frame in frames {
            let Frame::Message(message) = frame else {
                anyhow::bail!("expected only messages before PONG, got {frame:?}");
            };
            assert_eq!(message.subject, "foo.bar");
            assert_eq!(message.payload, b"hi");
            assert!(
                sids.insert(message.sid.clone()),
                "sid {} twice",
                message.sid
            );
        }
        let expected: BTreeSet<String> = ["1", "2", "3", "4", "5"].map(String::from).into();
        assert_eq!(sids, expected);
        Ok(())
    });
}

#[test]
fn subjects_are_case_sensitive() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut client = quiet_client(&server)?;
        client.send("SUB foo 1\r\nPUB FOO 1\r\na\r\nPUB foo 1\r\nb\r\n")?;
        client.expect("MSG foo 1 1\r\nb\r\n")?;
        Ok(())
    });
}

#[test]
fn echo_false_suppresses_own_messages() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut quiet = RawClient::connected(&server, r#"{"verbose":false,"echo":false}"#)?;
        let mut other = quiet_client(&server)?;
        quiet.send("SUB foo 1\r\nPUB foo 4\r\nmine\r\nPING\r\n")?;
        quiet.expect("PONG\r\n")?;
        other.send("PUB foo 6\r\ntheirs\r\nPING\r\n")?;
        other.expect("PONG\r\n")?;
        quiet.expect("MSG foo 1 6\r\ntheirs\r\n")?;
        Ok(())
    });
}

#[test]
fn echo_false_still_delivers_own_messages_to_other_connections() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut quiet = RawClient::connected(&server, r#"{"verbose":false,"echo":false}"#)?;
        let mut other = quiet_client(&server)?;
        other.send("SUB foo 1\r\nPING\r\n")?;
        other.expect("PONG\r\n")?;
        quiet.send("PUB foo 4\r\nmine\r\n")?;
        other.expect("MSG foo 1 4\r\nmine\r\n")?;
        Ok(())
    });
}

#[test]
fn verbose_acknowledges_sub_pub_and_unsub() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut client = RawClient::connect_to(&server)?;
        client.read_info()?;
        client.send("CONNECT {\"verbose\":true,\"pedantic\":false}\r\n")?;
        client.expect("+OK\r\n")?;
        client.send("SUB foo 1\r\n")?;
        client.expect("+OK\r\n")?;
        client.send("PUB bar 1\r\nx\r\n")?;
        client.expect("+OK\r\n")?;
        client.send("UNSUB 1\r\n")?;
        client.expect("+OK\r\n")?;
        client.send("UNSUB 99\r\n")?;
        client.expect("+OK\r\n")?;
        client.send("PING\r\n")?;
        client.expect("PONG\r\n")?;
        Ok(())
    });
}

#[test]
fn verbose_acknowledges_pub_before_delivering_to_own_subscription() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut client = RawClient::connected(&server, QUIET_CONNECT)?;
        client.send("CONNECT {\"verbose\":true,\"pedantic\":false}\r\n")?;
        client.expect("+OK\r\n")?;
        client.send("SUB foo 1\r\nPUB foo 2\r\nhi\r\n")?;
        client.expect("+OK\r\n+OK\r\nMSG foo 1 2\r\nhi\r\n")?;
        Ok(())
    });
}

#[test]
fn pedantic_rejects_wildcard_publish_subject_but_still_delivers() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut client = RawClient::connected(&server, r#"{"verbose":false,"pedantic":true}"#)?;
        client.send("SUB foo.* 1\r\nPUB foo.* 2\r\nhi\r\n")?;
        client.expect("-ERR 'Invalid Publish Subject'\r\nMSG foo.* 1 2\r\nhi\r\n")?;
        client.send("PING\r\n")?;
        client.expect("PONG\r\n")?;
        Ok(())
    });
}

#[test]
fn without_pedantic_wildcard_publish_subject_is_not_checked() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut client = quiet_client(&server)?;
        client.send("SUB foo.* 1\r\nPUB foo.* 2\r\nhi\r\n")?;
        client.expect("MSG foo.* 1 2\r\nhi\r\n")?;
        Ok(())
    });
}
