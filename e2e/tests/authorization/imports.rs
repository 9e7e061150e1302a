//! Streams and services shared between accounts: what is exported and imported crosses, under
//! the importer's subject; nothing else does. Run against every selected kind, so nats-server
//! 2.9 shows the same bytes:
//! - a stream import with a `prefix` delivers the exporter's messages under
//!   `<prefix>.<subject>`, to the importer only;
//! - a service import (`to` renames it) carries a request to the exporter's responder with a
//!   `_R_.` reply, and the response back to the requester's inbox, once (singleton);
//! - a private export is refused to an account it does not name, and so is a subject no
//!   export covers: the server does not start.

use tern_e2e::{for_each_server_kind, run_to_exit, Frame, ServerKind, COMMAND_TIMEOUT};

use crate::support::{assert_nothing_delivered, connect_as, start_with_config};

const SHARED: &str = r#"accounts {
  SHOP: {
    users: [ {user: shop, password: s} ]
    exports: [
      {stream: "orders.>"}
      {service: "stock.check"}
    ]
  }
  AUDIT: {
    users: [ {user: audit, password: a} ]
    imports: [
      {stream: {account: SHOP, subject: "orders.>"}, prefix: "shop"}
      {service: {account: SHOP, subject: "stock.check"}, to: "shop.stock"}
    ]
  }
  OTHER: {
    users: [ {user: other, password: o} ]
  }
}
"#;

#[test]
fn a_stream_import_delivers_under_the_prefix_to_the_importer_only() {
    for_each_server_kind(|kind| {
        let server = start_with_config(kind, SHARED)?;
        let mut audit = connect_as(&server, "audit", "a")?;
        let mut other = connect_as(&server, "other", "o")?;
        let mut shop = connect_as(&server, "shop", "s")?;
        audit.send("SUB shop.orders.> 1\r\nSUB orders.> 2\r\nPING\r\n")?;
        audit.expect("PONG\r\n")?;
        other.send("SUB > 1\r\nPING\r\n")?;
        other.expect("PONG\r\n")?;

        shop.send("PUB orders.eu.7 5\r\nhello\r\nPING\r\n")?;
        shop.expect("PONG\r\n")?;
        audit.expect("MSG shop.orders.eu.7 1 5\r\nhello\r\n")?;
        // Nothing on the unprefixed subject, and nothing in an account without the import.
        assert_nothing_delivered(&mut audit)?;
        assert_nothing_delivered(&mut other)?;

        // The importer's own messages stay in its account.
        audit.send("PUB orders.eu.8 1\r\nx\r\nPING\r\n")?;
        audit.expect("MSG orders.eu.8 2 1\r\nx\r\nPONG\r\n")?;
        shop.send("SUB orders.> 9\r\nPING\r\n")?;
        shop.expect("PONG\r\n")?;
        audit.send("PUB orders.eu.9 1\r\ny\r\nPING\r\n")?;
        audit.expect("MSG orders.eu.9 2 1\r\ny\r\nPONG\r\n")?;
        assert_nothing_delivered(&mut shop)?;
        Ok(())
    });
}

#[test]
fn a_service_import_carries_the_request_and_one_response_back() {
    for_each_server_kind(|kind| {
        let server = start_with_config(kind, SHARED)?;
        let mut responder = connect_as(&server, "shop", "s")?;
        let mut requester = connect_as(&server, "audit", "a")?;
        responder.send("SUB stock.check 1\r\nPING\r\n")?;
        responder.expect("PONG\r\n")?;
        requester.send("SUB _INBOX.audit.> 5\r\nPING\r\n")?;
        requester.expect("PONG\r\n")?;

        requester.send("PUB shop.stock _INBOX.audit.1 4\r\nsku1\r\nPING\r\n")?;
        requester.expect("PONG\r\n")?;
        let request = responder.read_message()?;
        assert_eq!(request.subject, "stock.check");
        assert_eq!(request.payload, b"sku1");
        let reply = request
            .reply
            .ok_or_else(|| anyhow::anyhow!("the request arrived without a reply subject"))?;
        assert!(
            reply.starts_with("_R_."),
            "{kind}: the reply is not the exporter's response subject: {reply:?}"
        );

        responder.send(format!(
            "PUB {reply} 2\r\n42\r\nPUB {reply} 2\r\n43\r\nPING\r\n"
        ))?;
        responder.expect("PONG\r\n")?;
        requester.expect("MSG _INBOX.audit.1 5 2\r\n42\r\n")?;
        // A singleton service: the second response has nowhere to go.
        assert_nothing_delivered(&mut requester)?;

        // Without a responder, a request through the import gets no one.
        responder.send("UNSUB 1\r\nPING\r\n")?;
        responder.expect("PONG\r\n")?;
        requester.send("PUB shop.stock _INBOX.audit.2 4\r\nsku2\r\nPING\r\n")?;
        let frames = requester.frames_until_pong()?;
        assert!(
            frames
                .iter()
                .all(|frame| !matches!(frame, Frame::Message(_))),
            "{kind}: {frames:?}"
        );
        Ok(())
    });
}

/// `-t` checks a config and exits; a refused import makes it fail naming the import.
fn config_check(kind: ServerKind, text: &str) -> anyhow::Result<(bool, String)> {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("imports.conf");
    std::fs::write(&path, text)?;
    let path = path.to_string_lossy().into_owned();
    let outcome = run_to_exit(kind, &["-t", "-c", &path], COMMAND_TIMEOUT)?;
    Ok((outcome.status.success(), outcome.output()))
}

#[test]
fn imports_the_export_does_not_allow_are_refused_at_load() {
    for_each_server_kind(|kind| {
        let private = r#"accounts {
  SHOP: { exports: [ {stream: "orders.>", accounts: [AUDIT]} ] }
  AUDIT: { imports: [ {stream: {account: SHOP, subject: "orders.>"}} ] }
  OTHER: { imports: [ {stream: {account: SHOP, subject: "orders.>"}} ] }
}
"#;
        let (accepted, output) = config_check(kind, private)?;
        assert!(
            !accepted,
            "{kind} accepted a private export's import:\n{output}"
        );
        assert!(
            output.contains("stream import not authorized"),
            "{kind}: {output}"
        );
        let unexported = r#"accounts {
  SHOP: { exports: [ {stream: "orders.>"} ] }
  AUDIT: { imports: [ {service: {account: SHOP, subject: "orders.new"}} ] }
}
"#;
        let (accepted, output) = config_check(kind, unexported)?;
        assert!(
            !accepted,
            "{kind} accepted an import nobody exports:\n{output}"
        );
        assert!(
            output.contains("service import not authorized"),
            "{kind}: {output}"
        );
        Ok(())
    });
}
