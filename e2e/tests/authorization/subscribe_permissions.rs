//! Subscribe permissions: allow and deny lists with wildcards, queue permissions (`"subject
//! queue"` entries), and the deny list filtering what a wider wildcard subscription receives.
//! A refused SUB is answered with `-ERR 'Permissions Violation for Subscription to ...'`, gets
//! no messages, and leaves the connection open.

use tern_e2e::{for_each_server_kind, RawClient};

use crate::support::{
    assert_nothing_delivered, connect_as, queue_subscription_violation, start_with_config,
    subscription_violation,
};

/// `subscriber`'s permissions are `{subscribe: <block>}`; `observer` may do anything.
fn subscribe_config(block: &str) -> String {
    format!(
        "authorization {{\n  users: [\n    {{user: subscriber, password: s, permissions: {{subscribe: {block}}}}}\n    \
         {{user: observer, password: o}}\n  ]\n}}\n"
    )
}

/// The observer publishes each subject (payload `x`) and waits for its own PONG.
fn publish_each(observer: &mut RawClient, subjects: &[&str]) -> anyhow::Result<()> {
    for subject in subjects {
        observer.send(format!("PUB {subject} 1\r\nx\r\n"))?;
    }
    observer.send("PING\r\n")?;
    observer.expect("PONG\r\n")?;
    Ok(())
}

#[test]
fn subscription_outside_the_allow_list_is_refused() {
    for_each_server_kind(|kind| {
        let server = start_with_config(kind, &subscribe_config(r#"{allow: ["public.>"]}"#))?;
        let mut subscriber = connect_as(&server, "subscriber", "s")?;
        subscriber.send("SUB private 1\r\nSUB public 2\r\nSUB public.news 3\r\nPING\r\n")?;
        subscriber.expect(format!(
            "{}{}PONG\r\n",
            subscription_violation("private"),
            subscription_violation("public")
        ))?;

        let mut observer = connect_as(&server, "observer", "o")?;
        publish_each(&mut observer, &["private", "public", "public.news"])?;
        subscriber.send("PING\r\n")?;
        subscriber.expect("MSG public.news 3 1\r\nx\r\nPONG\r\n")?;
        Ok(())
    });
}

#[test]
fn subscribe_deny_with_wildcards_refuses_only_matching_subjects() {
    for_each_server_kind(|kind| {
        let config = subscribe_config(r#"{deny: ["secret.>", "*.password"]}"#);
        let server = start_with_config(kind, &config)?;
        let mut subscriber = connect_as(&server, "subscriber", "s")?;
        for subject in [
            "secret.plans",
            "secret.plans.q3",
            "secret.>",
            "user.password",
        ] {
            subscriber.send(format!("SUB {subject} 1\r\nPING\r\n"))?;
            subscriber.expect(format!("{}PONG\r\n", subscription_violation(subject)))?;
        }

        subscriber.send("SUB secret 2\r\nSUB user.password.hint 3\r\nPING\r\n")?;
        subscriber.expect("PONG\r\n")?;
        let mut observer = connect_as(&server, "observer", "o")?;
        publish_each(
            &mut observer,
            &["secret.plans", "secret", "user.password.hint"],
        )?;
        subscriber.send("PING\r\n")?;
        subscriber.expect("MSG secret 2 1\r\nx\r\nMSG user.password.hint 3 1\r\nx\r\nPONG\r\n")?;
        Ok(())
    });
}

#[test]
fn queue_permission_allows_only_the_named_queue_group() {
    for_each_server_kind(|kind| {
        let server = start_with_config(kind, &subscribe_config(r#"{allow: ["foo v1"]}"#))?;
        let mut subscriber = connect_as(&server, "subscriber", "s")?;
        subscriber.send("SUB foo v1 1\r\nSUB foo v2 2\r\nSUB foo 3\r\nPING\r\n")?;
        subscriber.expect(format!(
            "{}{}PONG\r\n",
            queue_subscription_violation("foo", "v2"),
            subscription_violation("foo")
        ))?;

        let mut observer = connect_as(&server, "observer", "o")?;
        publish_each(&mut observer, &["foo"])?;
        subscriber.send("PING\r\n")?;
        subscriber.expect("MSG foo 1 1\r\nx\r\nPONG\r\n")?;
        Ok(())
    });
}

#[test]
fn queue_deny_refuses_only_the_named_queue_group() {
    for_each_server_kind(|kind| {
        let server = start_with_config(kind, &subscribe_config(r#"{deny: ["bar v2"]}"#))?;
        let mut subscriber = connect_as(&server, "subscriber", "s")?;
        subscriber.send("SUB bar v2 1\r\nSUB bar v1 2\r\nPING\r\n")?;
        subscriber.expect(format!(
            "{}PONG\r\n",
            queue_subscription_violation("bar", "v2")
        ))?;

        let mut plain = connect_as(&server, "subscriber", "s")?;
        plain.send("SUB bar 3\r\nPING\r\n")?;
        plain.expect("PONG\r\n")?;
        let mut observer = connect_as(&server, "observer", "o")?;
        publish_each(&mut observer, &["bar"])?;
        subscriber.send("PING\r\n")?;
        subscriber.expect("MSG bar 2 1\r\nx\r\nPONG\r\n")?;
        plain.send("PING\r\n")?;
        plain.expect("MSG bar 3 1\r\nx\r\nPONG\r\n")?;
        Ok(())
    });
}

#[test]
fn queue_group_does_not_get_around_a_subject_deny() {
    for_each_server_kind(|kind| {
        let server = start_with_config(kind, &subscribe_config(r#"{deny: ["secret"]}"#))?;
        let mut subscriber = connect_as(&server, "subscriber", "s")?;
        subscriber.send("SUB secret workers 1\r\nPING\r\n")?;
        subscriber.expect(format!(
            "{}PONG\r\n",
            queue_subscription_violation("secret", "workers")
        ))?;

        let mut observer = connect_as(&server, "observer", "o")?;
        publish_each(&mut observer, &["secret"])?;
        assert_nothing_delivered(&mut subscriber)?;
        Ok(())
    });
}

#[test]
fn wildcard_subscription_does_not_deliver_denied_subjects() {
    for_each_server_kind(|kind| {
        let server = start_with_config(kind, &subscribe_config(r#"{deny: ["events.secret"]}"#))?;
        let mut one_token = connect_as(&server, "subscriber", "s")?;
        let mut everything = connect_as(&server, "subscriber", "s")?;
        one_token.send("SUB events.* 1\r\nPING\r\n")?;
        one_token.expect("PONG\r\n")?;
        everything.send("SUB > 1\r\nPING\r\n")?;
        everything.expect("PONG\r\n")?;

        let mut observer = connect_as(&server, "observer", "o")?;
        publish_each(&mut observer, &["events.secret", "events.public"])?;
        for subscriber in [&mut one_token, &mut everything] {
            subscriber.send("PING\r\n")?;
            subscriber.expect("MSG events.public 1 1\r\nx\r\nPONG\r\n")?;
        }
        Ok(())
    });
}
