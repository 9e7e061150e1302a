//! Authentication from the config file: user/password, token, the auth timeout and the
//! first-operation rule.

use std::time::{Duration, Instant};

use tern_e2e::{for_each_server_kind, RawClient};

use crate::support::start_with_config;

const USER_PASSWORD_CONFIG: &str = "authorization {\n  user: alice\n  password: s3cret\n}\n";
const TOKEN_CONFIG: &str = "authorization {\n  token: \"t0ken-value\"\n}\n";

#[test]
fn info_announces_that_auth_is_required() {
    for_each_server_kind(|kind| {
        let server = start_with_config(kind, USER_PASSWORD_CONFIG)?;
        let info = RawClient::connect_to(&server)?.read_info()?;
        assert_eq!(info["auth_required"], true);
        Ok(())
    });
}

#[test]
fn user_and_password_are_accepted() {
    for_each_server_kind(|kind| {
        let server = start_with_config(kind, USER_PASSWORD_CONFIG)?;
        let mut client = RawClient::connect_to(&server)?;
        client.read_info()?;
        client.send("CONNECT {\"verbose\":true,\"user\":\"alice\",\"pass\":\"s3cret\"}\r\n")?;
        client.expect("+OK\r\n")?;
        client.send("SUB foo 1\r\nPUB foo 2\r\nhi\r\nPING\r\n")?;
        client.expect("+OK\r\n+OK\r\nMSG foo 1 2\r\nhi\r\nPONG\r\n")?;
        Ok(())
    });
}

#[test]
fn wrong_password_is_rejected_with_authorization_violation() {
    for_each_server_kind(|kind| {
        let server = start_with_config(kind, USER_PASSWORD_CONFIG)?;
        let mut client = RawClient::connect_to(&server)?;
        client.read_info()?;
        client.send("CONNECT {\"verbose\":false,\"user\":\"alice\",\"pass\":\"wrong\"}\r\n")?;
        client.expect("-ERR 'Authorization Violation'\r\n")?;
        client.expect_closed()?;
        Ok(())
    });
}

#[test]
fn unknown_user_is_rejected_with_authorization_violation() {
    for_each_server_kind(|kind| {
        let server = start_with_config(kind, USER_PASSWORD_CONFIG)?;
        let mut client = RawClient::connect_to(&server)?;
        client.read_info()?;
        client.send("CONNECT {\"verbose\":false,\"user\":\"bob\",\"pass\":\"s3cret\"}\r\n")?;
        client.expect("-ERR 'Authorization Violation'\r\n")?;
        client.expect_closed()?;
        Ok(())
    });
}

#[test]
fn connect_without_credentials_is_rejected_when_auth_is_required() {
    for_each_server_kind(|kind| {
        let server = start_with_config(kind, USER_PASSWORD_CONFIG)?;
        let mut client = RawClient::connect_to(&server)?;
        client.read_info()?;
        client.send("CONNECT {\"verbose\":false}\r\n")?;
        client.expect("-ERR 'Authorization Violation'\r\n")?;
        client.expect_closed()?;
        Ok(())
    });
}

#[test]
fn token_is_accepted() {
    for_each_server_kind(|kind| {
        let server = start_with_config(kind, TOKEN_CONFIG)?;
        let mut client = RawClient::connect_to(&server)?;
        let info = client.read_info()?;
        assert_eq!(info["auth_required"], true);
        client.send("CONNECT {\"verbose\":false,\"auth_token\":\"t0ken-value\"}\r\nPING\r\n")?;
        client.expect("PONG\r\n")?;
        Ok(())
    });
}

#[test]
fn wrong_token_is_rejected_with_authorization_violation() {
    for_each_server_kind(|kind| {
        let server = start_with_config(kind, TOKEN_CONFIG)?;
        let mut client = RawClient::connect_to(&server)?;
        client.read_info()?;
        client.send("CONNECT {\"verbose\":false,\"auth_token\":\"other\"}\r\n")?;
        client.expect("-ERR 'Authorization Violation'\r\n")?;
        client.expect_closed()?;
        Ok(())
    });
}

#[test]
fn first_operation_other_than_connect_is_rejected_when_auth_is_required() {
    for_each_server_kind(|kind| {
        let server = start_with_config(kind, USER_PASSWORD_CONFIG)?;
        for first_operation in ["PING\r\n", "SUB foo 1\r\n", "PUB foo 0\r\n\r\n"] {
            let mut client = RawClient::connect_to(&server)?;
            client.read_info()?;
            client.send(first_operation)?;
            client.expect("-ERR 'Authorization Violation'\r\n")?;
            client.expect_closed()?;
        }
        Ok(())
    });
}

#[test]
fn client_silent_past_the_auth_timeout_is_disconnected() {
    for_each_server_kind(|kind| {
        let config = "authorization {\n  user: alice\n  password: s3cret\n  timeout: 0.5\n}\n";
        let server = start_with_config(kind, config)?;
        let connected_at = Instant::now();
        let mut client = RawClient::connect_to(&server)?;
        client.read_info()?;
        client.expect("-ERR 'Authentication Timeout'\r\n")?;
        let elapsed = connected_at.elapsed();
        client.expect_closed()?;
        assert!(
            elapsed >= Duration::from_millis(400),
            "disconnected after {elapsed:?}, before the 0.5s auth timeout"
        );
        Ok(())
    });
}

#[test]
fn client_that_authenticates_in_time_is_not_timed_out() {
    for_each_server_kind(|kind| {
        let config = "authorization {\n  user: alice\n  password: s3cret\n  timeout: 0.3\n}\n";
        let server = start_with_config(kind, config)?;
        let mut client = RawClient::connect_to(&server)?;
        client.read_info()?;
        client.send("CONNECT {\"verbose\":false,\"user\":\"alice\",\"pass\":\"s3cret\"}\r\n")?;
        // Silence is the behaviour under test: the auth timer must be cancelled by CONNECT.
        client.expect_silence(Duration::from_millis(800))?;
        client.send("PING\r\n")?;
        client.expect("PONG\r\n")?;
        Ok(())
    });
}

#[test]
fn authorization_users_list_accepts_each_user() {
    for_each_server_kind(|kind| {
        let config = "authorization {\n  users: [\n    {user: alice, password: one}\n    {user: bob, password: two}\n  ]\n}\n";
        let server = start_with_config(kind, config)?;
        for (user, password) in [("alice", "one"), ("bob", "two")] {
            let mut client = RawClient::connect_to(&server)?;
            client.read_info()?;
            client.send(format!(
                "CONNECT {{\"verbose\":false,\"user\":\"{user}\",\"pass\":\"{password}\"}}\r\nPING\r\n"
            ))?;
            client.expect("PONG\r\n")?;
        }
        let mut crossed = RawClient::connect_to(&server)?;
        crossed.read_info()?;
        crossed.send("CONNECT {\"verbose\":false,\"user\":\"alice\",\"pass\":\"two\"}\r\n")?;
        crossed.expect("-ERR 'Authorization Violation'\r\n")?;
        crossed.expect_closed()?;
        Ok(())
    });
}
