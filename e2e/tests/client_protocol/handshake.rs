//! INFO on connect, CONNECT options, PING/PONG and the parser's leniency on control lines.

use tern_e2e::{for_each_server_kind, RawClient};

use crate::support::{quiet_client, start};

#[test]
fn info_is_sent_on_connect_with_required_fields() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut client = RawClient::connect_to(&server)?;
        let line = client.read_line()?;
        let text = String::from_utf8(line)?;
        assert!(text.starts_with("INFO {"), "INFO line: {text:?}");
        assert!(text.ends_with("\r\n"), "INFO line: {text:?}");
        let info: serde_json::Value = serde_json::from_str(text["INFO ".len()..].trim())?;

        let server_id = info["server_id"].as_str().expect("server_id is a string");
        assert!(!server_id.is_empty(), "server_id is empty");
        let version = info["version"].as_str().expect("version is a string");
        assert!(!version.is_empty(), "version is empty");
        assert_eq!(info["proto"], 1, "proto");
        assert_eq!(info["host"], "127.0.0.1", "host");
        assert_eq!(
            info["port"].as_u64(),
            Some(u64::from(server.client_address().port())),
            "port"
        );
        assert_eq!(info["headers"], true, "headers");
        assert_eq!(info["max_payload"], 1024 * 1024, "max_payload");
        let client_id = info["client_id"].as_u64().expect("client_id is an integer");
        assert!(client_id > 0, "client_id is 0");
        assert_ne!(info["auth_required"], true, "auth_required without auth");
        Ok(())
    });
}

#[test]
fn each_connection_gets_its_own_client_id() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let first = RawClient::connect_to(&server)?.read_info()?;
        let second = RawClient::connect_to(&server)?.read_info()?;
        assert_ne!(first["client_id"], second["client_id"]);
        assert_eq!(first["server_id"], second["server_id"]);
        Ok(())
    });
}

#[test]
fn connect_with_verbose_is_acknowledged_with_ok() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut client = RawClient::connect_to(&server)?;
        client.read_info()?;
        client.send("CONNECT {\"verbose\":true}\r\nPING\r\n")?;
        client.expect("+OK\r\nPONG\r\n")?;
        Ok(())
    });
}

#[test]
fn connect_without_verbose_field_defaults_to_verbose() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut client = RawClient::connect_to(&server)?;
        client.read_info()?;
        client.send("CONNECT {}\r\nPING\r\n")?;
        client.expect("+OK\r\nPONG\r\n")?;
        Ok(())
    });
}

#[test]
fn connect_with_verbose_false_sends_no_ok() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut client = RawClient::connect_to(&server)?;
        client.read_info()?;
        client.send("CONNECT {\"verbose\":false}\r\nPING\r\n")?;
        client.expect("PONG\r\n")?;
        Ok(())
    });
}

#[test]
fn ping_is_answered_with_pong() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut client = quiet_client(&server)?;
        client.send("PING\r\n")?;
        client.expect("PONG\r\n")?;
        client.send("PING\r\nPING\r\n")?;
        client.expect("PONG\r\nPONG\r\n")?;
        Ok(())
    });
}

#[test]
fn operations_are_case_insensitive() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut client = quiet_client(&server)?;
        client.send("ping\r\nPiNg\r\n")?;
        client.expect("PONG\r\nPONG\r\n")?;
        client.send("sub foo 1\r\npub foo 2\r\nhi\r\nPUb foo 2\r\nho\r\n")?;
        client.expect("MSG foo 1 2\r\nhi\r\nMSG foo 1 2\r\nho\r\n")?;
        Ok(())
    });
}

#[test]
fn ping_with_trailing_space_is_answered() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut client = quiet_client(&server)?;
        client.send("PING \r\n")?;
        client.expect("PONG\r\n")?;
        Ok(())
    });
}

#[test]
fn bare_newline_terminates_control_lines() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut client = quiet_client(&server)?;
        client.send("PING\n")?;
        client.expect("PONG\r\n")?;
        client.send("SUB foo 1\nPUB foo 5\nhello\r\nPING\n")?;
        client.expect("MSG foo 1 5\r\nhello\r\nPONG\r\n")?;
        Ok(())
    });
}

#[test]
fn arguments_may_be_separated_by_tabs_and_repeated_spaces() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut client = quiet_client(&server)?;
        client.send("SUB\tfoo \t 1\r\nPUB  foo\t\treply   5\r\nhello\r\n")?;
        client.expect("MSG foo 1 reply 5\r\nhello\r\n")?;
        Ok(())
    });
}

#[test]
fn operations_before_connect_are_accepted_without_auth() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut client = RawClient::connect_to(&server)?;
        client.read_info()?;
        client.send("PING\r\n")?;
        client.expect("PONG\r\n")?;
        Ok(())
    });
}

#[test]
fn connect_with_null_and_unknown_fields_is_accepted() {
    for_each_server_kind(|kind| {
        let server = start(kind)?;
        let mut client = RawClient::connect_to(&server)?;
        client.read_info()?;
        // The shape client libraries send: absent options as JSON null, plus keys the server
        // may not know.
        client.send(
            "CONNECT {\"verbose\":false,\"pedantic\":false,\"jwt\":null,\"nkey\":null,\
             \"sig\":null,\"name\":null,\"echo\":true,\"lang\":\"rust\",\"version\":\"0.42.0\",\
             \"protocol\":1,\"tls_required\":false,\"user\":null,\"pass\":null,\
             \"auth_token\":null,\"headers\":true,\"no_responders\":true,\
             \"some_future_option\":{\"nested\":[1,2]}}\r\nPING\r\n",
        )?;
        client.expect("PONG\r\n")?;
        Ok(())
    });
}
