//! SUB/UNSUB semantics: queue groups, unsubscribe, auto-unsubscribe, duplicate sids, subject
//! validation.

use std::collections::BTreeSet;

use tern_e2e::{for_each_server_kind, Message, RawClient};

use crate::support::{quiet_client, start};

/// Reads messages until the one on `sentinel_subject`; returns the ones before it.
fn messages_before(
    client: &mut RawClient,
    sentinel_subject: &str,
    limit: usize,
) -> anyhow::Result<Vec<Message>> {
    let mut messages = Vec::new();
    for _ in 0..=limit {
        let message = client.read_message()?;
        if message.subject == sentinel_subject {
            return Ok(messages);
        }
        messages.push(message);
    }
    anyhow::bail!("more than {limit} messages before the sentinel {sentinel_subject}")
}

#[test]
fn queue_group_delivers_each_message_once() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut first_member = quiet_client(&server)?;
        let mut second_member = quiet_client(&server)?;
        let mut plain = quiet_client(&server)?;
        let mut publisher = quiet_client(&server)?;
        for member in [&mut first_member, &mut second_member] {
            member.send("SUB work workers 1\r\nSUB done 2\r\nPING\r\n")?;
            member.expect("PONG\r\n")?;
        }
        plain.send("SUB work 1\r\nSUB done 2\r\nPING\r\n")?;
        plain.expect("PONG\r\n")?;

        let count = 100;
        let mut publishes = String::new();
        for index in 0..count {
            let payload = index.to_string();
            publishes.push_str(&format!("PUB work {}\r\n{payload}\r\n", payload.len()));
        }
        publishes.push_str("PUB done 0\r\n\r\n");
        publisher.send(publishes)?;

        let first = messages_before(&mut first_member, "done", count)?;
        let second = messages_before(&mut second_member, "done", count)?;
        let all_plain = messages_before(&mut plain, "done", count)?;
        assert_eq!(
            all_plain.len(),
            count,
            "a plain subscriber gets every message"
        );

        let payloads = |messages: &[Message]| -> BTreeSet<Vec<u8>> {
            messages
                .iter()
                .map(|message| message.payload.clone())
                .collect()
        };
        let first_payloads = payloads(&first);
        let second_payloads = payloads(&second);
        assert_eq!(
            first_payloads.len(),
            first.len(),
            "duplicates within a member"
        );
        assert_eq!(
            second_payloads.len(),
            second.len(),
            "duplicates within a member"
        );
        assert!(
            first_payloads.is_disjoint(&second_payloads),
            "a message reached both members"
        );
        assert_eq!(
            first.len() + second.len(),
            count,
            "every message reaches the group"
        );
        assert!(
            !first.is_empty() && !second.is_empty(),
            "both members should get some of {count} messages: {} and {}",
            first.len(),
            second.len()
        );
        Ok(())
    });
}

#[test]
fn queue_groups_with_different_names_each_get_a_copy() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut client = quiet_client(&server)?;
        client.send("SUB jobs alpha 1\r\nSUB jobs beta 2\r\nPUB jobs 1\r\nx\r\n")?;
        let mut sids: Vec<String> = Vec::new();
        for _ in 0..2 {
            sids.push(client.read_message()?.sid);
        }
        sids.sort();
        assert_eq!(sids, ["1", "2"]);
        client.send("PING\r\n")?;
        client.expect("PONG\r\n")?;
        Ok(())
    });
}

#[test]
fn unsubscribed_subscription_receives_nothing() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut client = quiet_client(&server)?;
        client.send("SUB foo 1\r\nSUB done 2\r\nUNSUB 1\r\n")?;
        client.send("PUB foo 1\r\na\r\nPUB done 0\r\n\r\n")?;
        client.expect("MSG done 2 0\r\n\r\n")?;
        Ok(())
    });
}

#[test]
fn unsub_with_max_messages_stops_after_that_many() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut client = quiet_client(&server)?;
        client.send("SUB foo 1\r\nSUB done 2\r\nUNSUB 1 2\r\n")?;
        client.send("PUB foo 1\r\na\r\nPUB foo 1\r\nb\r\nPUB foo 1\r\nc\r\nPUB done 0\r\n\r\n")?;
        client.expect("MSG foo 1 1\r\na\r\nMSG foo 1 1\r\nb\r\nMSG done 2 0\r\n\r\n")?;
        Ok(())
    });
}

#[test]
fn unsub_with_max_at_or_below_delivered_count_unsubscribes_at_once() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut client = quiet_client(&server)?;
        client.send("SUB foo 1\r\nSUB done 2\r\nPUB foo 1\r\na\r\nPUB foo 1\r\nb\r\n")?;
        client.expect("MSG foo 1 1\r\na\r\nMSG foo 1 1\r\nb\r\n")?;
        client.send("UNSUB 1 1\r\nPUB foo 1\r\nc\r\nPUB done 0\r\n\r\n")?;
        client.expect("MSG done 2 0\r\n\r\n")?;
        Ok(())
    });
}

#[test]
fn unsub_of_unknown_sid_is_ignored() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut client = quiet_client(&server)?;
        client.send("UNSUB 42\r\nPING\r\n")?;
        client.expect("PONG\r\n")?;
        Ok(())
    });
}

#[test]
fn duplicate_sub_sid_keeps_the_first_subscription() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut client = quiet_client(&server)?;
        client.send("SUB foo 1\r\nSUB bar 1\r\nSUB done 2\r\n")?;
        client.send("PUB bar 1\r\na\r\nPUB foo 1\r\nb\r\nPUB done 0\r\n\r\n")?;
        client.expect("MSG foo 1 1\r\nb\r\nMSG done 2 0\r\n\r\n")?;
        Ok(())
    });
}

#[test]
fn sub_with_invalid_subject_is_rejected_and_connection_stays_open() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut client = quiet_client(&server)?;
        for subject in ["foo..bar", ".foo", "foo.", "foo.>.bar"] {
            client.send(format!("SUB {subject} 1\r\n"))?;
            client.expect("-ERR 'Invalid Subject'\r\n")?;
        }
        client.send("SUB foo 1\r\nPUB foo 1\r\nx\r\n")?;
        client.expect("MSG foo 1 1\r\nx\r\n")?;
        Ok(())
    });
}

#[test]
fn subscriptions_are_per_connection() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut first = quiet_client(&server)?;
        let mut second = quiet_client(&server)?;
        first.send("SUB foo 1\r\nPING\r\n")?;
        first.expect("PONG\r\n")?;
        second.send("SUB foo 1\r\nUNSUB 1\r\nPING\r\n")?;
        second.expect("PONG\r\n")?;
        second.send("PUB foo 1\r\nx\r\n")?;
        first.expect("MSG foo 1 1\r\nx\r\n")?;
        Ok(())
    });
}

#[test]
fn closing_a_connection_removes_its_subscriptions() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut group_member = quiet_client(&server)?;
        group_member.send("SUB work workers 1\r\nPING\r\n")?;
        group_member.expect("PONG\r\n")?;
        drop(group_member);
        let mut remaining_member = quiet_client(&server)?;
        remaining_member.send("SUB work workers 1\r\nPING\r\n")?;
        remaining_member.expect("PONG\r\n")?;
        let mut publisher = quiet_client(&server)?;
        // Once the closed member is gone every message must reach the remaining one; the
        // close is noticed asynchronously, so publish until ten in a row arrive.
        let mut in_a_row = 0;
        let mut received = 0;
        for index in 0..200 {
            publisher.send(format!(
                "PUB work {}\r\n{index}\r\nPING\r\n",
                index.to_string().len()
            ))?;
            publisher.expect("PONG\r\n")?;
            let frames = remaining_member.frames_until_pong()?;
            if frames.len() == 1 {
                in_a_row += 1;
                received += 1;
            } else {
                in_a_row = 0;
            }
            if in_a_row == 10 {
                break;
            }
        }
        assert_eq!(
            in_a_row, 10,
            "only {received} of the messages reached the live member"
        );
        Ok(())
    });
}
