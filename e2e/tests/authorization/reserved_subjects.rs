//! Reserved prefixes: clients may not publish to `_GR_.` (gateway-routed replies) nor use
//! `_GR_.` or `_R_.` (service-import replies) as a reply subject, whether or not any
//! authorization is configured and whatever their publish permissions allow. The refusal is the
//! usual non-fatal permissions `-ERR` and the message goes nowhere.

use tern_e2e::{for_each_server_kind, RawClient, ServerConfig, ServerProcess, QUIET_CONNECT};

use crate::support::{assert_nothing_delivered, connect_as, publish_violation, start_with_config};

/// A user whose publish permissions allow everything.
const ALLOW_ALL_CONFIG: &str = r#"authorization {
  users: [
    {user: anyone, password: a, permissions: {publish: {allow: [">"]}}}
  ]
}
"#;

fn reply_violation(reply: &str) -> String {
    format!("-ERR 'Permissions Violation for Publish with Reply of \"{reply}\"'\r\n")
}

/// `publisher` sends to `_GR_.` subjects and gets each refused; `observer` (subscribed to
/// `>` and `_GR_.>`) receives none of them, then receives a publish to the bare `_GR_` token,
/// which is not the prefix.
fn assert_gateway_prefix_refused(
    publisher: &mut RawClient,
    observer: &mut RawClient,
) -> anyhow::Result<()> {
    observer.send("SUB > 1\r\nSUB _GR_.> 2\r\nPING\r\n")?;
    observer.expect("PONG\r\n")?;
    for subject in ["_GR_.cluster.server.reply", "_GR_.x"] {
        publisher.send(format!("PUB {subject} 1\r\nx\r\nPING\r\n"))?;
        publisher.expect(format!("{}PONG\r\n", publish_violation(subject)))?;
    }
    assert_nothing_delivered(observer)?;

    publisher.send("PUB _GR_ 1\r\ny\r\nPING\r\n")?;
    publisher.expect("PONG\r\n")?;
    observer.send("PING\r\n")?;
    observer.expect("MSG _GR_ 1 1\r\ny\r\nPONG\r\n")?;
    Ok(())
}

#[test]
fn publish_to_the_gateway_reply_prefix_is_refused_without_any_authorization() {
    for_each_server_kind(|kind| {
        let server = ServerProcess::start(kind, ServerConfig::new())?;
        let mut publisher = RawClient::connected(&server, QUIET_CONNECT)?;
        let mut observer = RawClient::connected(&server, QUIET_CONNECT)?;
        assert_gateway_prefix_refused(&mut publisher, &mut observer)
    });
}

#[test]
fn publish_to_the_gateway_reply_prefix_is_refused_even_when_permissions_allow_everything() {
    for_each_server_kind(|kind| {
        let server = start_with_config(kind, ALLOW_ALL_CONFIG)?;
        let mut publisher = connect_as(&server, "anyone", "a")?;
        let mut observer = connect_as(&server, "anyone", "a")?;
        assert_gateway_prefix_refused(&mut publisher, &mut observer)
    });
}

#[test]
fn reserved_reply_subjects_are_refused() {
    for_each_server_kind(|kind| {
        let server = start_with_config(kind, ALLOW_ALL_CONFIG)?;
        let mut publisher = connect_as(&server, "anyone", "a")?;
        let mut observer = connect_as(&server, "anyone", "a")?;
        observer.send("SUB service 1\r\nPING\r\n")?;
        observer.expect("PONG\r\n")?;

        for reply in ["_GR_.cluster.server.reply", "_R_.abc.def"] {
            publisher.send(format!("PUB service {reply} 1\r\nx\r\nPING\r\n"))?;
            publisher.expect(format!("{}PONG\r\n", reply_violation(reply)))?;
        }
        assert_nothing_delivered(&mut observer)?;

        publisher.send("PUB service _INBOX.mine 1\r\nz\r\nPING\r\n")?;
        publisher.expect("PONG\r\n")?;
        observer.send("PING\r\n")?;
        observer.expect("MSG service 1 _INBOX.mine 1\r\nz\r\nPONG\r\n")?;
        Ok(())
    });
}
