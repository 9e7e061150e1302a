//! bcrypt password hashes in the config: the password a client sends is checked against the
//! hash (both the `$2a$` and `$2b$` spellings), and the hash itself is not a password.

use bcrypt::Version;
use tern_e2e::{for_each_server_kind, RawClient, ServerProcess};

use crate::support::{connect_as, start_with_config};

/// bcrypt's smallest cost: the tests check the comparison, not the work factor.
const COST: u32 = 4;
const ALICE_PASSWORD: &str = "s3cret-alice";
const BOB_PASSWORD: &str = "s3cret-bob";

/// A `$2b$` hash (the bcrypt crate's default spelling).
fn hash_2b(password: &str) -> anyhow::Result<String> {
    Ok(bcrypt::hash(password, COST)?)
}

/// A `$2a$` hash (what the `nats server passwd` tool writes).
fn hash_2a(password: &str) -> anyhow::Result<String> {
    Ok(bcrypt::hash_with_result(password, COST)?.format_for_version(Version::TwoA))
}

/// Alice's password stored as `$2b$`, Bob's as `$2a$`. Returns the config and Alice's hash.
fn users_config() -> anyhow::Result<(String, String)> {
    let alice_hash = hash_2b(ALICE_PASSWORD)?;
    let bob_hash = hash_2a(BOB_PASSWORD)?;
    anyhow::ensure!(alice_hash.starts_with("$2b$04$") && bob_hash.starts_with("$2a$04$"));
    let config = format!(
        "authorization {{\n  users: [\n    {{user: alice, password: \"{alice_hash}\"}}\n    \
         {{user: bob, password: \"{bob_hash}\"}}\n  ]\n}}\n"
    );
    Ok((config, alice_hash))
}

fn expect_refused(server: &ServerProcess, user: &str, password: &str) -> anyhow::Result<()> {
    let mut client = RawClient::connect_to(server)?;
    client.read_info()?;
    client.send(format!(
        "CONNECT {{\"verbose\":false,\"user\":\"{user}\",\"pass\":\"{password}\"}}\r\n"
    ))?;
    client.expect("-ERR 'Authorization Violation'\r\n")?;
    client.expect_closed()?;
    Ok(())
}

#[test]
fn bcrypt_hashed_passwords_accept_the_right_password() {
    for_each_server_kind(|kind| {
        let (config, _) = users_config()?;
        let server = start_with_config(kind, &config)?;
        for (user, password) in [("alice", ALICE_PASSWORD), ("bob", BOB_PASSWORD)] {
            let mut client = RawClient::connect_to(&server)?;
            client.read_info()?;
            client.send(format!(
                "CONNECT {{\"verbose\":true,\"user\":\"{user}\",\"pass\":\"{password}\"}}\r\n"
            ))?;
            client.expect("+OK\r\n")?;
            client.send("SUB foo 1\r\nPUB foo 2\r\nhi\r\nPING\r\n")?;
            client.expect("+OK\r\n+OK\r\nMSG foo 1 2\r\nhi\r\nPONG\r\n")?;
        }
        Ok(())
    });
}

#[test]
fn bcrypt_hashed_passwords_refuse_a_wrong_password() {
    for_each_server_kind(|kind| {
        let (config, _) = users_config()?;
        let server = start_with_config(kind, &config)?;
        expect_refused(&server, "alice", "wrong")?;
        expect_refused(&server, "alice", "")?;
        expect_refused(&server, "alice", BOB_PASSWORD)?;
        expect_refused(&server, "bob", ALICE_PASSWORD)?;
        // The user still gets in afterwards: refusals are per connection.
        connect_as(&server, "alice", ALICE_PASSWORD)?;
        Ok(())
    });
}

#[test]
fn the_bcrypt_hash_itself_is_not_accepted_as_the_password() {
    for_each_server_kind(|kind| {
        let (config, alice_hash) = users_config()?;
        let server = start_with_config(kind, &config)?;
        expect_refused(&server, "alice", &alice_hash)?;
        Ok(())
    });
}

#[test]
fn single_user_with_a_bcrypt_password_is_checked_against_the_hash() {
    for_each_server_kind(|kind| {
        let hash = hash_2a(ALICE_PASSWORD)?;
        let config = format!("authorization {{\n  user: alice\n  password: \"{hash}\"\n}}\n");
        let server = start_with_config(kind, &config)?;
        connect_as(&server, "alice", ALICE_PASSWORD)?;
        expect_refused(&server, "alice", "wrong")?;
        expect_refused(&server, "alice", &hash)?;
        Ok(())
    });
}
