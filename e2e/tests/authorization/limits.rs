//! Limits that bound what one tenant can take:
//! - an account's `limits { max_connections }` refuses the connection over it with
//!   `-ERR 'maximum account active connections exceeded'` and closes it; other accounts are
//!   unaffected, and a place freed by a closed connection is taken again;
//! - an account's `max_subscriptions` answers the subscription over it with
//!   `-ERR 'maximum subscriptions exceeded'` and keeps the connection;
//! - an account's `max_payload` closes a connection publishing more with
//!   `-ERR 'Maximum Payload Violation'`.
//!
//! These run against nats-server too (same bytes). Tern's own limits run on Tern only: a
//! user's `max_connections`, and `connection_rate_per_ip`.

use std::time::{Duration, Instant};

use tern_e2e::{
    for_each_server_kind, for_each_server_kind_of, RawClient, ServerKind, ServerProcess,
};

use crate::support::{connect_as, start_with_config};

const LIMITED: &str = r#"accounts {
  SMALL: {
    users: [ {user: s1, password: p}, {user: s2, password: p} ]
    limits: { max_connections: 2, max_subscriptions: 2, max_payload: 8 }
  }
  OTHER: {
    users: [ {user: o, password: p} ]
  }
}
"#;

/// What the server answers a login: `Ok(())` for PONG, `Err(line)` for anything else.
fn try_login(server: &ServerProcess, user: &str) -> anyhow::Result<Result<RawClient, String>> {
    let mut client = RawClient::connect_to(server)?;
    client.read_info()?;
    client.send(format!(
        "CONNECT {{\"verbose\":false,\"pedantic\":false,\"user\":\"{user}\",\"pass\":\"p\"}}\r\nPING\r\n"
    ))?;
    let line = String::from_utf8_lossy(&client.read_line()?).into_owned();
    if line == "PONG\r\n" {
        Ok(Ok(client))
    } else {
        client.expect_closed()?;
        Ok(Err(line))
    }
}

const ACCOUNT_CONNECTIONS: &str = "-ERR 'maximum account active connections exceeded'\r\n";

#[test]
fn an_account_refuses_connections_over_its_limit() {
    for_each_server_kind(|kind| {
        let server = start_with_config(kind, LIMITED)?;
        let first = connect_as(&server, "s1", "p")?;
        let _second = connect_as(&server, "s2", "p")?;
        match try_login(&server, "s1")? {
            Err(line) => anyhow::ensure!(line == ACCOUNT_CONNECTIONS, "got {line:?}"),
            Ok(_) => anyhow::bail!("a third connection in the account was accepted"),
        }
        let mut other = connect_as(&server, "o", "p")?;
        other.send("PING\r\n")?;
        other.expect("PONG\r\n")?;

        // The place of a closed connection is free again once the server has seen the close.
        drop(first);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut attempts = 0;
        loop {
            attempts += 1;
            match try_login(&server, "s1")? {
                Ok(_) => break,
                Err(line) if line == ACCOUNT_CONNECTIONS && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(line) => anyhow::bail!("after {attempts} attempts still refused: {line:?}"),
            }
        }
        Ok(())
    });
}

#[test]
fn an_account_bounds_subscriptions_and_payload_per_connection() {
    for_each_server_kind(|kind| {
        let server = start_with_config(kind, LIMITED)?;
        let mut client = connect_as(&server, "s1", "p")?;
        client.send("SUB a 1\r\nSUB b 2\r\nSUB c 3\r\nPING\r\n")?;
        client.expect("-ERR 'maximum subscriptions exceeded'\r\nPONG\r\n")?;
        // The connection stays, and the subscriptions within the limit work.
        client.send("PUB b 3\r\nabc\r\nPING\r\n")?;
        client.expect("MSG b 2 3\r\nabc\r\nPONG\r\n")?;
        client.send("PUB c 8\r\n12345678\r\nPING\r\n")?;
        client.expect("PONG\r\n")?;

        client.send("PUB a 9\r\n123456789\r\n")?;
        client.expect("-ERR 'Maximum Payload Violation'\r\n")?;
        client.expect_closed()?;

        // Another account keeps the server's limits.
        let mut other = connect_as(&server, "o", "p")?;
        other.send("SUB a 1\r\nSUB b 2\r\nSUB c 3\r\nPUB c 9\r\n123456789\r\nPING\r\n")?;
        other.expect("MSG c 3 9\r\n123456789\r\nPONG\r\n")?;
        Ok(())
    });
}

#[test]
fn a_user_refuses_connections_over_its_own_limit() {
    for_each_server_kind_of(&[ServerKind::Tern], |kind| {
        let config = "authorization {\n  users: [\n    {user: s1, password: p, max_connections: 1}\n    {user: s2, password: p}\n  ]\n}\n";
        let server = start_with_config(kind, config)?;
        let first = connect_as(&server, "s1", "p")?;
        match try_login(&server, "s1")? {
            Err(line) => anyhow::ensure!(
                line == "-ERR 'maximum user active connections exceeded'\r\n",
                "got {line:?}"
            ),
            Ok(_) => anyhow::bail!("a second connection of s1 was accepted"),
        }
        let _s2 = connect_as(&server, "s2", "p")?;
        let _s2_again = connect_as(&server, "s2", "p")?;
        drop(first);
        let deadline = Instant::now() + Duration::from_secs(10);
        while try_login(&server, "s1")?.is_err() {
            anyhow::ensure!(Instant::now() < deadline, "s1's place was never freed");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    });
}

#[test]
fn connections_from_one_address_are_rate_limited() {
    for_each_server_kind_of(&[ServerKind::Tern], |kind| {
        let server = start_with_config(kind, "connection_rate_per_ip: 2\n")?;
        let mut admitted = Vec::new();
        let mut refused = 0;
        for _ in 0..10 {
            let mut client = RawClient::connect_to(&server)?;
            let line = String::from_utf8_lossy(&client.read_line()?).into_owned();
            if line.starts_with("INFO ") {
                admitted.push(client);
            } else {
                anyhow::ensure!(
                    line == "-ERR 'connection rate exceeded'\r\n",
                    "got {line:?}"
                );
                client.expect_closed()?;
                refused += 1;
            }
        }
        // A burst of two is allowed; ten within a few seconds are not all admitted.
        anyhow::ensure!(admitted.len() >= 2, "admitted {}", admitted.len());
        anyhow::ensure!(refused > 0, "none of ten connections was refused");
        // The admitted ones are ordinary clients.
        let mut client = admitted.remove(0);
        client.send("CONNECT {\"verbose\":false}\r\nPING\r\n")?;
        client.expect("PONG\r\n")?;
        Ok(())
    });
}
