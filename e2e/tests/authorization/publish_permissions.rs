//! Publish permissions: an allow list, a deny list with wildcards, and deny winning over allow.
//! A refused publish is answered with `-ERR 'Permissions Violation for Publish to "<subject>"'`,
//! is delivered to no one, and leaves the connection open.

use tern_e2e::for_each_server_kind;

use crate::support::{assert_nothing_delivered, connect_as, publish_violation, start_with_config};

/// `publisher` may publish only under `orders.`; `observer` may do anything.
const ALLOW_CONFIG: &str = r#"authorization {
  users: [
    {user: publisher, password: p, permissions: {publish: {allow: ["orders.>"]}}}
    {user: observer, password: o}
  ]
}
"#;

/// `publisher` may publish anywhere except under `admin.`, to any `*.secret`, and to
/// `orders.internal.>` although `orders.>` is allowed.
const DENY_CONFIG: &str = r#"authorization {
  users: [
    {user: publisher, password: p, permissions: {publish: {allow: ["orders.>", "team.>", "admin"], deny: ["admin.>", "*.secret", "orders.internal.>"]}}}
    {user: observer, password: o}
  ]
}
"#;

#[test]
fn publish_outside_the_allow_list_is_refused_and_not_delivered() {
    for_each_server_kind(|kind| {
        let server = start_with_config(kind, ALLOW_CONFIG)?;
        let mut observer = connect_as(&server, "observer", "o")?;
        observer.send("SUB > 1\r\nPING\r\n")?;
        observer.expect("PONG\r\n")?;
        let mut publisher = connect_as(&server, "publisher", "p")?;

        publisher.send("PUB payments 6\r\nsecret\r\nPUB orders 1\r\nx\r\nPING\r\n")?;
        publisher.expect(format!(
            "{}{}PONG\r\n",
            publish_violation("payments"),
            publish_violation("orders")
        ))?;
        assert_nothing_delivered(&mut observer)?;

        // The connection stays open and allowed subjects still flow.
        publisher.send("PUB orders.new 2\r\nok\r\nPING\r\n")?;
        publisher.expect("PONG\r\n")?;
        observer.expect("MSG orders.new 1 2\r\nok\r\n")?;
        Ok(())
    });
}

#[test]
fn publish_deny_with_wildcards_refuses_only_matching_subjects() {
    for_each_server_kind(|kind| {
        let server = start_with_config(kind, DENY_CONFIG)?;
        let mut observer = connect_as(&server, "observer", "o")?;
        observer.send("SUB > 1\r\nPING\r\n")?;
        observer.expect("PONG\r\n")?;
        let mut publisher = connect_as(&server, "publisher", "p")?;

        for subject in [
            "admin.users",
            "admin.users.delete",
            "team.secret",
            "orders.secret",
            "orders.internal.audit",
        ] {
            publisher.send(format!("PUB {subject} 1\r\nx\r\nPING\r\n"))?;
            publisher.expect(format!("{}PONG\r\n", publish_violation(subject)))?;
        }
        assert_nothing_delivered(&mut observer)?;

        // `admin.>` needs a token after `admin`; `*.secret` is exactly two tokens.
        publisher.send(
            "PUB admin 1\r\na\r\nPUB team.secret.notes 1\r\nb\r\nPUB orders.new 1\r\nc\r\nPING\r\n",
        )?;
        publisher.expect("PONG\r\n")?;
        observer.expect(
            "MSG admin 1 1\r\na\r\nMSG team.secret.notes 1 1\r\nb\r\nMSG orders.new 1 1\r\nc\r\n",
        )?;
        Ok(())
    });
}

#[test]
fn publish_permissions_are_per_user() {
    for_each_server_kind(|kind| {
        let server = start_with_config(kind, ALLOW_CONFIG)?;
        let mut publisher = connect_as(&server, "publisher", "p")?;
        publisher.send("SUB payments 1\r\nPING\r\n")?;
        publisher.expect("PONG\r\n")?;
        let mut observer = connect_as(&server, "observer", "o")?;

        observer.send("PUB payments 1\r\nx\r\nPING\r\n")?;
        observer.expect("PONG\r\n")?;
        publisher.expect("MSG payments 1 1\r\nx\r\n")?;
        Ok(())
    });
}
