//! The known ways around permissions, each refused: a full-wildcard subscription by a user
//! limited to some subjects, publishing into another user's inbox (also with a wildcard
//! subject), replying to a request without `allow_responses`, HPUB instead of PUB, and verbose
//! mode, where a refused operation gets its `-ERR` and no `+OK`.

use tern_e2e::{for_each_server_kind, RawClient};

use crate::support::{
    assert_nothing_delivered, connect_as, publish_violation, queue_subscription_violation,
    start_with_config, subscription_violation,
};

/// Each of alice and bob may publish requests and into their own inbox, and subscribe only to
/// their own inbox and `public.>`; `observer` may do anything.
const INBOXES_CONFIG: &str = r#"authorization {
  users: [
    {user: alice, password: a, permissions: {publish: ["service", "_INBOX.alice.>"], subscribe: ["_INBOX.alice.>", "public.>"]}}
    {user: bob, password: b, permissions: {publish: ["service", "_INBOX.bob.>"], subscribe: ["_INBOX.bob.>", "public.>"]}}
    {user: worker, password: w, permissions: {publish: ["results"], subscribe: ["service"]}}
    {user: observer, password: o}
  ]
}
"#;

fn verbose_connect(client: &mut RawClient, user: &str, password: &str) -> anyhow::Result<()> {
    client.read_info()?;
    client.send(format!(
        "CONNECT {{\"verbose\":true,\"pedantic\":false,\"headers\":true,\"user\":\"{user}\",\"pass\":\"{password}\"}}\r\n"
    ))?;
    client.expect("+OK\r\n")?;
    Ok(())
}

#[test]
fn full_wildcard_subscription_without_permission_is_refused() {
    for_each_server_kind(|kind| {
        let server = start_with_config(kind, INBOXES_CONFIG)?;
        let mut alice = connect_as(&server, "alice", "a")?;
        for subject in [">", "*.>", "_INBOX.>", "*.*"] {
            alice.send(format!("SUB {subject} 1\r\nPING\r\n"))?;
            alice.expect(format!("{}PONG\r\n", subscription_violation(subject)))?;
        }
        alice.send("SUB > everyone 1\r\nPING\r\n")?;
        alice.expect(format!(
            "{}PONG\r\n",
            queue_subscription_violation(">", "everyone")
        ))?;

        let mut observer = connect_as(&server, "observer", "o")?;
        observer.send("PUB private.x 1\r\nx\r\nPUB _INBOX.bob.1 1\r\ny\r\nPING\r\n")?;
        observer.expect("PONG\r\n")?;
        assert_nothing_delivered(&mut alice)?;

        // Subscribing within the permission still works on the same connection.
        alice.send("SUB public.> 2\r\nPING\r\n")?;
        alice.expect("PONG\r\n")?;
        observer.send("PUB public.news 1\r\nz\r\nPING\r\n")?;
        observer.expect("PONG\r\n")?;
        alice.send("PING\r\n")?;
        alice.expect("MSG public.news 2 1\r\nz\r\nPONG\r\n")?;
        Ok(())
    });
}

#[test]
fn publishing_into_another_users_inbox_is_refused() {
    for_each_server_kind(|kind| {
        let server = start_with_config(kind, INBOXES_CONFIG)?;
        let mut bob = connect_as(&server, "bob", "b")?;
        bob.send("SUB _INBOX.bob.> 1\r\nPING\r\n")?;
        bob.expect("PONG\r\n")?;
        let mut alice = connect_as(&server, "alice", "a")?;

        // A wildcard publish subject (pedantic is off) is matched as it is, so it cannot
        // reach bob's inbox either.
        for subject in [
            "_INBOX.bob.reply",
            "_INBOX.bob.>",
            "_INBOX.*.reply",
            "_INBOX.>",
        ] {
            alice.send(format!("PUB {subject} 6\r\nforged\r\nPING\r\n"))?;
            alice.expect(format!("{}PONG\r\n", publish_violation(subject)))?;
        }
        assert_nothing_delivered(&mut bob)?;

        alice.send("PUB _INBOX.alice.self 1\r\nx\r\nPING\r\n")?;
        alice.expect("PONG\r\n")?;
        Ok(())
    });
}

#[test]
fn replying_to_a_request_without_allow_responses_is_refused() {
    for_each_server_kind(|kind| {
        let server = start_with_config(kind, INBOXES_CONFIG)?;
        let mut worker = connect_as(&server, "worker", "w")?;
        worker.send("SUB service 1\r\nPING\r\n")?;
        worker.expect("PONG\r\n")?;
        let mut bob = connect_as(&server, "bob", "b")?;
        bob.send("SUB _INBOX.bob.> 1\r\nPUB service _INBOX.bob.r1 3\r\njob\r\nPING\r\n")?;
        bob.expect("PONG\r\n")?;
        worker.expect("MSG service 1 _INBOX.bob.r1 3\r\njob\r\n")?;

        worker.send("PUB _INBOX.bob.r1 4\r\ndone\r\nPING\r\n")?;
        worker.expect(format!("{}PONG\r\n", publish_violation("_INBOX.bob.r1")))?;
        assert_nothing_delivered(&mut bob)?;
        Ok(())
    });
}

#[test]
fn hpub_is_checked_like_pub() {
    for_each_server_kind(|kind| {
        let server = start_with_config(kind, INBOXES_CONFIG)?;
        let mut observer = connect_as(&server, "observer", "o")?;
        observer.send("SUB > 1\r\nPING\r\n")?;
        observer.expect("PONG\r\n")?;
        let mut alice = RawClient::connected(
            &server,
            r#"{"verbose":false,"pedantic":false,"headers":true,"user":"alice","pass":"a"}"#,
        )?;

        alice.send("HPUB secret 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPING\r\n")?;
        alice.expect(format!("{}PONG\r\n", publish_violation("secret")))?;
        assert_nothing_delivered(&mut observer)?;
        Ok(())
    });
}

#[test]
fn refused_publish_in_verbose_mode_gets_the_error_and_no_ok() {
    for_each_server_kind(|kind| {
        let server = start_with_config(kind, INBOXES_CONFIG)?;
        let mut alice = RawClient::connect_to(&server)?;
        verbose_connect(&mut alice, "alice", "a")?;

        alice.send(
            "PUB secret 1\r\nx\r\nHPUB secret 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPUB service 1\r\ny\r\nPING\r\n",
        )?;
        alice.expect(format!(
            "{}{}+OK\r\nPONG\r\n",
            publish_violation("secret"),
            publish_violation("secret")
        ))?;
        Ok(())
    });
}

#[test]
fn refused_subscription_in_verbose_mode_gets_the_error_and_no_ok() {
    for_each_server_kind(|kind| {
        let server = start_with_config(kind, INBOXES_CONFIG)?;
        let mut alice = RawClient::connect_to(&server)?;
        verbose_connect(&mut alice, "alice", "a")?;

        alice.send("SUB secret 1\r\nSUB public.news 2\r\nPING\r\n")?;
        alice.expect(format!(
            "{}+OK\r\nPONG\r\n",
            subscription_violation("secret")
        ))?;
        Ok(())
    });
}
