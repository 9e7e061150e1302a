//! NKEY users: INFO carries a fresh `nonce` when NKEY users are configured; a client proves it
//! holds the user's seed by sending the public key as `nkey` and its ed25519 signature of the
//! nonce, base64url without padding, as `sig`. Anything else is an `Authorization Violation`.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use futures::StreamExt;
use nkeys::KeyPair;
use tern_e2e::{for_each_server_kind, for_each_server_kind_async, RawClient, ServerProcess};

use crate::support::{publish_violation, start_with_config};

/// How long the async-nats client may take to connect or receive.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// `authorization { users [...] }` with one NKEY user per key pair, and a password user
/// `observer` so the same config can show password and NKEY users side by side.
fn nkey_users_config(users: &[&KeyPair]) -> String {
    let entries: String = users
        .iter()
        .map(|user| format!("    {{nkey: {}}}\n", user.public_key()))
        .collect();
    format!(
        "authorization {{\n  users: [\n{entries}    {{user: observer, password: watch}}\n  ]\n}}\n"
    )
}

/// The INFO `nonce`, required to be a non-empty string.
fn nonce_of(info: &serde_json::Value) -> anyhow::Result<String> {
    match info["nonce"].as_str() {
        Some(nonce) if !nonce.is_empty() => Ok(nonce.to_string()),
        _ => anyhow::bail!("INFO has no nonce: {info}"),
    }
}

fn nkey_connect(public_key: &str, signature: &[u8]) -> String {
    format!(
        "CONNECT {{\"verbose\":false,\"pedantic\":false,\"nkey\":\"{public_key}\",\"sig\":\"{}\"}}\r\n",
        URL_SAFE_NO_PAD.encode(signature)
    )
}

/// Connects, reads INFO and returns the client with the nonce it was given.
fn connect_for_nonce(server: &ServerProcess) -> anyhow::Result<(RawClient, String)> {
    let mut client = RawClient::connect_to(server)?;
    let info = client.read_info()?;
    let nonce = nonce_of(&info)?;
    Ok((client, nonce))
}

/// Signs this connection's nonce with `user` and completes the handshake.
fn connect_as_nkey_user(server: &ServerProcess, user: &KeyPair) -> anyhow::Result<RawClient> {
    let (mut client, nonce) = connect_for_nonce(server)?;
    let signature = user.sign(nonce.as_bytes())?;
    client.send(nkey_connect(&user.public_key(), &signature))?;
    client.send("PING\r\n")?;
    client.expect("PONG\r\n")?;
    Ok(client)
}

fn expect_refused(client: &mut RawClient, connect: &str) -> anyhow::Result<()> {
    client.send(connect)?;
    client.expect("-ERR 'Authorization Violation'\r\n")?;
    client.expect_closed()?;
    Ok(())
}

#[test]
fn info_carries_a_fresh_nonce_when_nkey_users_are_configured() {
    for_each_server_kind(|kind| {
        let user = KeyPair::new_user();
        let server = start_with_config(kind, &nkey_users_config(&[&user]))?;
        let (_first, first_nonce) = connect_for_nonce(&server)?;
        let (_second, second_nonce) = connect_for_nonce(&server)?;
        assert_ne!(
            first_nonce, second_nonce,
            "two connections got the same nonce"
        );
        Ok(())
    });
}

#[test]
fn info_has_no_nonce_with_only_password_users() {
    for_each_server_kind(|kind| {
        let config = "authorization {\n  users: [\n    {user: alice, password: one}\n  ]\n}\n";
        let server = start_with_config(kind, config)?;
        let info = RawClient::connect_to(&server)?.read_info()?;
        assert_eq!(info["auth_required"], true);
        assert!(info.get("nonce").is_none(), "unexpected nonce in {info}");
        Ok(())
    });
}

#[test]
fn nonce_signed_with_the_user_seed_is_accepted() {
    for_each_server_kind(|kind| {
        let user = KeyPair::new_user();
        let other_user = KeyPair::new_user();
        let server = start_with_config(kind, &nkey_users_config(&[&user, &other_user]))?;
        for key_pair in [&user, &other_user] {
            let mut client = connect_as_nkey_user(&server, key_pair)?;
            client.send("SUB foo 1\r\nPUB foo 2\r\nhi\r\nPING\r\n")?;
            client.expect("MSG foo 1 2\r\nhi\r\nPONG\r\n")?;
        }
        // Password users listed beside NKEY users still log in with their password.
        let mut observer = RawClient::connect_to(&server)?;
        observer.read_info()?;
        observer.send(
            "CONNECT {\"verbose\":false,\"user\":\"observer\",\"pass\":\"watch\"}\r\nPING\r\n",
        )?;
        observer.expect("PONG\r\n")?;
        Ok(())
    });
}

#[test]
fn signature_of_other_bytes_than_the_nonce_is_refused() {
    for_each_server_kind(|kind| {
        let user = KeyPair::new_user();
        let server = start_with_config(kind, &nkey_users_config(&[&user]))?;
        let (mut client, nonce) = connect_for_nonce(&server)?;
        let signature = user.sign(format!("{nonce}x").as_bytes())?;
        expect_refused(&mut client, &nkey_connect(&user.public_key(), &signature))?;
        Ok(())
    });
}

#[test]
fn signature_by_another_key_is_refused() {
    for_each_server_kind(|kind| {
        let user = KeyPair::new_user();
        let impostor = KeyPair::new_user();
        let server = start_with_config(kind, &nkey_users_config(&[&user]))?;
        let (mut client, nonce) = connect_for_nonce(&server)?;
        let signature = impostor.sign(nonce.as_bytes())?;
        expect_refused(&mut client, &nkey_connect(&user.public_key(), &signature))?;
        Ok(())
    });
}

#[test]
fn nkey_not_in_the_users_list_is_refused() {
    for_each_server_kind(|kind| {
        let user = KeyPair::new_user();
        let stranger = KeyPair::new_user();
        let server = start_with_config(kind, &nkey_users_config(&[&user]))?;
        let (mut client, nonce) = connect_for_nonce(&server)?;
        let signature = stranger.sign(nonce.as_bytes())?;
        expect_refused(
            &mut client,
            &nkey_connect(&stranger.public_key(), &signature),
        )?;
        Ok(())
    });
}

#[test]
fn nkey_without_a_signature_is_refused() {
    for_each_server_kind(|kind| {
        let user = KeyPair::new_user();
        let server = start_with_config(kind, &nkey_users_config(&[&user]))?;
        let (mut client, _nonce) = connect_for_nonce(&server)?;
        let connect = format!(
            "CONNECT {{\"verbose\":false,\"pedantic\":false,\"nkey\":\"{}\"}}\r\n",
            user.public_key()
        );
        expect_refused(&mut client, &connect)?;
        Ok(())
    });
}

#[test]
fn signature_from_an_earlier_connection_is_not_accepted_again() {
    for_each_server_kind(|kind| {
        let user = KeyPair::new_user();
        let server = start_with_config(kind, &nkey_users_config(&[&user]))?;
        let (mut first, first_nonce) = connect_for_nonce(&server)?;
        let signature = user.sign(first_nonce.as_bytes())?;
        let connect = nkey_connect(&user.public_key(), &signature);
        first.send(format!("{connect}PING\r\n"))?;
        first.expect("PONG\r\n")?;

        let (mut replay, _) = connect_for_nonce(&server)?;
        expect_refused(&mut replay, &connect)?;
        Ok(())
    });
}

#[test]
fn nkey_user_permissions_apply_to_its_connection() {
    for_each_server_kind(|kind| {
        let user = KeyPair::new_user();
        let config = format!(
            "authorization {{\n  users: [\n    {{nkey: {}, permissions: {{publish: \"allowed\"}}}}\n  ]\n}}\n",
            user.public_key()
        );
        let server = start_with_config(kind, &config)?;
        let mut client = connect_as_nkey_user(&server, &user)?;
        client.send("SUB > 1\r\nPUB refused 1\r\nx\r\nPUB allowed 1\r\ny\r\nPING\r\n")?;
        client.expect(publish_violation("refused"))?;
        client.expect("MSG allowed 1 1\r\ny\r\nPONG\r\n")?;
        Ok(())
    });
}

#[test]
fn async_nats_connects_with_the_user_seed() {
    for_each_server_kind_async(|kind| async move {
        let user = KeyPair::new_user();
        let server = start_with_config(kind, &nkey_users_config(&[&user]))?;
        let client = async_nats::ConnectOptions::with_nkey(user.seed()?)
            .connection_timeout(CLIENT_TIMEOUT)
            .connect(server.client_url())
            .await?;
        let mut subscriber = client.subscribe("greeting").await?;
        client
            .publish("greeting", Bytes::from_static(b"hello"))
            .await?;
        client.flush().await?;
        let message = tokio::time::timeout(CLIENT_TIMEOUT, subscriber.next())
            .await?
            .ok_or_else(|| anyhow::anyhow!("the subscription ended"))?;
        assert_eq!(message.payload.as_ref(), b"hello");
        Ok(())
    });
}
