//! The `accounts { }` block: named accounts, each an isolated subject space with its own
//! users, parsed with nats-server's syntax and file:line:column errors.
//!
//! Users of an account join `authorization`'s users, tagged with the account; a user name or
//! NKEY may appear once across all accounts and `authorization`. Exports and imports between
//! accounts are refused as "not supported yet" until they land, rather than ignored.

use std::collections::HashSet;

use super::{invalid, map, wrong_type, Builder};
use crate::account::{GLOBAL_ACCOUNT, SYSTEM_ACCOUNT};
use crate::config::value::{Entry, ValueKind};
use crate::config::ConfigError;

/// Options inside an account that Tern does not have yet.
const UNSUPPORTED_ACCOUNT_OPTIONS: &[&str] = &[
    "exports",
    "imports",
    "jetstream",
    "mappings",
    "maps",
    "limits",
    "default_permissions",
];

impl Builder {
    pub(super) fn accounts(&mut self, entry: &Entry) -> Result<(), ConfigError> {
        let block = map(entry)?;
        let mut names = HashSet::new();
        for account in block.entries() {
            let name = account.key.clone();
            if name == GLOBAL_ACCOUNT {
                self.errors.push(invalid(
                    &account.key_position,
                    format!("{GLOBAL_ACCOUNT:?} is the global account and can not be declared"),
                ));
                continue;
            }
            if !names.insert(name.clone()) {
                self.errors.push(invalid(
                    &account.key_position,
                    format!("duplicate account {name:?}"),
                ));
                continue;
            }
            if let Err(error) = self.account(account, &name) {
                self.errors.push(error);
            }
            if name != SYSTEM_ACCOUNT {
                self.options.accounts.push(name);
            }
        }
        Ok(())
    }

    fn account(&mut self, entry: &Entry, name: &str) -> Result<(), ConfigError> {
        let fields = match &entry.value.kind {
            ValueKind::Map(fields) => fields,
            // `accounts { A, B }`-style declarations without a body are not nats-server syntax.
            _ => return Err(wrong_type(entry, "a map")),
        };
        for field in fields.entries() {
            let key = field.key.to_ascii_lowercase();
            let applied = match key.as_str() {
                "users" => self.users(field).map(|(users, nkey_users)| {
                    let authorization = &mut self.options.authorization;
                    for mut user in users {
                        user.account = Some(name.to_string());
                        authorization.users.push(user);
                    }
                    for mut user in nkey_users {
                        user.account = Some(name.to_string());
                        authorization.nkey_users.push(user);
                    }
                }),
                unsupported if UNSUPPORTED_ACCOUNT_OPTIONS.contains(&unsupported) => {
                    Self::unsupported(field)
                }
                _ => {
                    self.warn_unknown(field);
                    Ok(())
                }
            };
            if let Err(error) = applied {
                self.errors.push(error);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::Path;

    use crate::config::{load_str, MemorySources};

    fn load(text: &str) -> Result<crate::options::ServerOptions, String> {
        load_str(text, Path::new("accounts.conf"), &MemorySources::new()).map_err(|e| e.to_string())
    }

    #[test]
    fn account_users_join_authorization_tagged_with_their_account() {
        let options = load(
            "accounts {\n  A: { users: [ {user: a, password: a} ] }\n  B: { users: [ {user: b, password: b} ] }\n}\nauthorization { users: [ {user: g, password: g} ] }\n",
        )
        .unwrap();
        assert_eq!(options.accounts, ["A", "B"]);
        let accounts: Vec<_> = options
            .authorization
            .users
            .iter()
            .map(|user| (user.user.as_str(), user.account.as_deref()))
            .collect();
        assert!(accounts.contains(&("a", Some("A"))));
        assert!(accounts.contains(&("b", Some("B"))));
        assert!(accounts.contains(&("g", None)));
        assert!(options.authorization.is_required());
    }

    #[test]
    fn exports_and_imports_are_not_supported_yet() {
        let error =
            load("accounts {\n  A: {\n    exports: [ {stream: \"a.>\"} ]\n  }\n}\n").unwrap_err();
        assert!(error.starts_with("accounts.conf:3:"), "{error}");
        assert!(error.contains("not supported yet"), "{error}");
    }

    #[test]
    fn the_global_account_can_not_be_declared() {
        let error = load("accounts { \"$G\": {} }").unwrap_err();
        assert!(error.contains("global account"), "{error}");
    }

    #[test]
    fn a_user_name_may_not_be_in_two_accounts() {
        let error = load(
            "accounts {\n  A: { users: [ {user: x, password: a} ] }\n  B: { users: [ {user: x, password: b} ] }\n}\n",
        )
        .unwrap_err();
        assert!(error.contains("x"), "{error}");
    }
}
