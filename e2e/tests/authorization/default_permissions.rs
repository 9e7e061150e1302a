//! `default_permissions`: the permissions of every user that has none of its own. A user with
//! its own `permissions` gets exactly those, not a merge with the defaults.

use tern_e2e::for_each_server_kind;

use crate::support::{connect_as, publish_violation, start_with_config, subscription_violation};

const CONFIG: &str = r#"authorization {
  default_permissions: {
    publish: ["public.>"]
    subscribe: {deny: ["private.>"]}
  }
  users: [
    {user: plain, password: p}
    {user: custom, password: c, permissions: {publish: ["custom.>"]}}
  ]
}
"#;

#[test]
fn default_permissions_apply_to_users_without_their_own() {
    for_each_server_kind(|kind| {
        let server = start_with_config(kind, CONFIG)?;
        let mut plain = connect_as(&server, "plain", "p")?;
        plain.send("SUB private.notes 1\r\nSUB > 2\r\nPING\r\n")?;
        plain.expect(format!(
            "{}PONG\r\n",
            subscription_violation("private.notes")
        ))?;
        plain.send("PUB custom.x 1\r\na\r\nPUB public.x 1\r\nb\r\nPING\r\n")?;
        plain.expect(format!(
            "{}MSG public.x 2 1\r\nb\r\nPONG\r\n",
            publish_violation("custom.x")
        ))?;
        Ok(())
    });
}

#[test]
fn users_with_their_own_permissions_do_not_get_the_defaults() {
    for_each_server_kind(|kind| {
        let server = start_with_config(kind, CONFIG)?;
        let mut custom = connect_as(&server, "custom", "c")?;
        // The default subscribe deny does not apply: `custom` sets no subscribe permission.
        custom.send("SUB private.notes 1\r\nSUB > 2\r\nPING\r\n")?;
        custom.expect("PONG\r\n")?;
        custom.send("PUB public.x 1\r\na\r\nPUB custom.x 1\r\nb\r\nPING\r\n")?;
        custom.expect(format!(
            "{}MSG custom.x 2 1\r\nb\r\nPONG\r\n",
            publish_violation("public.x")
        ))?;
        Ok(())
    });
}
