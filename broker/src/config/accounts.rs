//! The `accounts { }` block: named accounts, each an isolated subject space with its own
//! users, parsed with nats-server's syntax and file:line:column errors.
//!
//! Users of an account join `authorization`'s users, tagged with the account; a user name or
//! NKEY may appear once across all accounts and `authorization`. `exports` offer a stream or a
//! service (to every account, or to those `accounts` names); `imports` take one from another
//! account (`prefix` or `to` places it in the importer's subject space). Once the whole file
//! is read, every import must name a known account that exports a subject covering it, of
//! the same kind, to the importer; otherwise the import's position is reported.

use std::collections::HashSet;

use super::{count_limit, invalid, map, string, wrong_type, Builder};
use crate::account::{GLOBAL_ACCOUNT, SYSTEM_ACCOUNT};
use crate::config::value::{Entry, Map, Position, ValueKind};
use crate::config::ConfigError;
use crate::limits::AccountLimits;
use crate::options::{ExchangeKind, Export, Import, ResponseType};
use crate::subject::mapping::{covers, SubjectMapping};

/// nats-server's default wait for responses of an exported service.
const DEFAULT_RESPONSE_THRESHOLD: std::time::Duration = std::time::Duration::from_secs(120);

/// Options inside an account that Tern does not have yet.
const UNSUPPORTED_ACCOUNT_OPTIONS: &[&str] =
    &["jetstream", "mappings", "maps", "default_permissions"];

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
                "exports" => self.exports(field, name),
                "imports" => self.imports(field, name),
                "limits" => self.account_limits(field).map(|limits| {
                    self.options.account_limits.insert(name.to_string(), limits);
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

    /// `limits { max_connections, max_subscriptions, max_payload, max_leafnodes }` with
    /// nats-server's short forms; a negative value is no limit.
    fn account_limits(&mut self, entry: &Entry) -> Result<AccountLimits, ConfigError> {
        let mut limits = AccountLimits::default();
        for field in map(entry)?.entries() {
            let slot = match field.key.to_ascii_lowercase().as_str() {
                "max_connections" | "max_conn" => &mut limits.max_connections,
                "max_subscriptions" | "max_subs" => &mut limits.max_subscriptions,
                "max_payload" | "max_pay" => &mut limits.max_payload,
                "max_leafnodes" | "max_leafs" => &mut limits.max_leafnodes,
                _ => {
                    self.errors.push(invalid(
                        &field.key_position,
                        format!("Unknown field {:?} parsing account limits", field.key),
                    ));
                    continue;
                }
            };
            match count_limit(field) {
                Ok(limit) => *slot = limit,
                Err(error) => self.errors.push(error),
            }
        }
        Ok(limits)
    }

    fn exports(&mut self, entry: &Entry, account: &str) -> Result<(), ConfigError> {
        for item in exchange_entries(entry)? {
            let (fields, position) = item;
            let mut kind = None;
            let mut export = Export {
                account: account.to_string(),
                kind: ExchangeKind::Stream,
                subject: String::new(),
                allowed: Vec::new(),
                response_type: ResponseType::Singleton,
                response_threshold: DEFAULT_RESPONSE_THRESHOLD,
            };
            for field in fields.entries() {
                match field.key.to_ascii_lowercase().as_str() {
                    "stream" | "service" => {
                        if kind.is_some() {
                            return Err(invalid(
                                &field.key_position,
                                "an export is either a stream or a service",
                            ));
                        }
                        kind = Some(exchange_kind(&field.key));
                        export.subject = subject(field)?;
                    }
                    "accounts" => export.allowed = names(field)?,
                    "response" | "response_type" => {
                        export.response_type = match string(field)?.to_ascii_lowercase().as_str() {
                            "singleton" | "single" => ResponseType::Singleton,
                            "stream" | "chunked" => ResponseType::Stream,
                            other => {
                                return Err(invalid(
                                    &field.value.position,
                                    format!("unknown response type {other:?}"),
                                ))
                            }
                        };
                    }
                    "threshold" | "response_threshold" => {
                        export.response_threshold = self.duration(field)?;
                    }
                    _ => self.warn_unknown(field),
                }
            }
            export.kind = kind.ok_or_else(|| {
                invalid(
                    &position,
                    "an export needs a \"stream\" or a \"service\" subject",
                )
            })?;
            self.options.exports.push(export);
        }
        Ok(())
    }

    fn imports(&mut self, entry: &Entry, account: &str) -> Result<(), ConfigError> {
        for (fields, position) in exchange_entries(entry)? {
            let mut source: Option<(ExchangeKind, String, String)> = None;
            let mut prefix = None;
            let mut to = None;
            for field in fields.entries() {
                match field.key.to_ascii_lowercase().as_str() {
                    "stream" | "service" => {
                        let ValueKind::Map(inner) = &field.value.kind else {
                            return Err(wrong_type(
                                field,
                                "a map with \"account\" and \"subject\"",
                            ));
                        };
                        let mut from = None;
                        let mut import_subject = None;
                        for part in inner.entries() {
                            match part.key.to_ascii_lowercase().as_str() {
                                "account" => from = Some(string(part)?),
                                "subject" => import_subject = Some(subject(part)?),
                                _ => self.warn_unknown(part),
                            }
                        }
                        let missing = |what: &str| {
                            invalid(&field.value.position, format!("an import needs {what}"))
                        };
                        source = Some((
                            exchange_kind(&field.key),
                            from.ok_or_else(|| missing("an \"account\""))?,
                            import_subject.ok_or_else(|| missing("a \"subject\""))?,
                        ));
                    }
                    "prefix" => prefix = Some((subject(field)?, field.value.position.clone())),
                    "to" => to = Some((subject(field)?, field.value.position.clone())),
                    _ => self.warn_unknown(field),
                }
            }
            let (kind, from, import_subject) = source.ok_or_else(|| {
                invalid(&position, "an import needs a \"stream\" or a \"service\"")
            })?;
            let to = match (kind, prefix, to) {
                (_, Some(_), Some((_, at))) => {
                    return Err(invalid(
                        &at,
                        "an import takes \"prefix\" or \"to\", not both",
                    ))
                }
                (ExchangeKind::Service, Some((_, at)), None) => {
                    return Err(invalid(
                        &at,
                        "a service import takes \"to\", not \"prefix\"",
                    ))
                }
                (ExchangeKind::Stream, Some((prefix, _)), None) => {
                    format!("{prefix}.{import_subject}")
                }
                (_, None, Some((to, at))) => {
                    // The imported subject's wildcards must fill the destination's.
                    let (pattern, destination) = match kind {
                        ExchangeKind::Stream => (&import_subject, &to),
                        ExchangeKind::Service => (&to, &import_subject),
                    };
                    SubjectMapping::new(pattern, destination)
                        .map_err(|message| invalid(&at, message))?;
                    to
                }
                (_, None, None) => import_subject.clone(),
            };
            self.options.imports.push(Import {
                account: account.to_string(),
                kind,
                from,
                subject: import_subject,
                to,
            });
            self.import_positions.push(position);
        }
        Ok(())
    }

    /// Every import names a known account exporting a covering subject of its kind to it.
    pub(super) fn check_imports(&mut self) {
        let system = self
            .options
            .system_account
            .clone()
            .unwrap_or_else(|| SYSTEM_ACCOUNT.to_string());
        let known = |name: &str| {
            name == GLOBAL_ACCOUNT
                || name == system
                || self.options.accounts.iter().any(|a| a == name)
        };
        let mut problems = Vec::new();
        for (import, position) in self.options.imports.iter().zip(&self.import_positions) {
            let what = match import.kind {
                ExchangeKind::Stream => "stream",
                ExchangeKind::Service => "service",
            };
            // nats-server's wording for the same problems.
            let problem = if import.from == import.account {
                Some(format!(
                    "account {:?} can not import from itself",
                    import.account
                ))
            } else if !known(&import.from) {
                Some(format!(
                    "{:?} account not defined for {what} import",
                    import.from
                ))
            } else {
                let authorized = self.options.exports.iter().any(|export| {
                    export.account == import.from
                        && export.kind == import.kind
                        && covers(&export.subject, &import.subject)
                        && (export.allowed.is_empty() || export.allowed.contains(&import.account))
                });
                (!authorized).then(|| {
                    format!(
                        "Error adding {what} import {:?}: {what} import not authorized",
                        import.subject
                    )
                })
            };
            if let Some(message) = problem {
                problems.push(invalid(position, message));
            }
        }
        self.errors.extend(problems);
    }
}

/// The entries of an `exports` or `imports` array: each a map, with its position.
fn exchange_entries(entry: &Entry) -> Result<Vec<(&Map, Position)>, ConfigError> {
    let ValueKind::Array(items) = &entry.value.kind else {
        return Err(wrong_type(entry, "an array"));
    };
    items
        .iter()
        .map(|item| match &item.kind {
            ValueKind::Map(fields) => Ok((fields, item.position.clone())),
            other => Err(invalid(
                &item.position,
                format!("an entry must be a map, got {}", other.type_name()),
            )),
        })
        .collect()
}

fn exchange_kind(key: &str) -> ExchangeKind {
    if key.eq_ignore_ascii_case("service") {
        ExchangeKind::Service
    } else {
        ExchangeKind::Stream
    }
}

/// A subject (wildcards allowed), checked.
fn subject(entry: &Entry) -> Result<String, ConfigError> {
    let text = string(entry)?;
    if !crate::subject::is_valid_subject(text.as_bytes()) {
        return Err(invalid(
            &entry.value.position,
            format!("invalid subject {text:?}"),
        ));
    }
    Ok(text)
}

/// An array of account names.
fn names(entry: &Entry) -> Result<Vec<String>, ConfigError> {
    let ValueKind::Array(items) = &entry.value.kind else {
        return Err(wrong_type(entry, "an array of account names"));
    };
    items
        .iter()
        .map(|item| match &item.kind {
            ValueKind::String(name) => Ok(name.clone()),
            other => Err(invalid(
                &item.position,
                format!(
                    "an account name must be a string, got {}",
                    other.type_name()
                ),
            )),
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::Path;

    use crate::config::{load_str, MemorySources};
    use crate::options::{ExchangeKind, ResponseType};

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
    fn exports_and_imports_parse_and_are_checked_against_each_other() {
        let options = load(
            "accounts {\n  A: { exports: [ {stream: \"orders.>\"}, {service: \"help.*\", accounts: [B], response_type: stream, response_threshold: \"5s\"} ] }\n  B: { imports: [ {stream: {account: A, subject: \"orders.eu\"}, prefix: from_a}, {service: {account: A, subject: \"help.*\"}, to: \"a.help.*\"} ] }\n}\n",
        )
        .unwrap();
        assert_eq!(options.exports.len(), 2);
        assert_eq!(options.exports[1].allowed, ["B"]);
        assert_eq!(options.exports[1].response_type, ResponseType::Stream);
        assert_eq!(options.exports[1].response_threshold.as_secs(), 5);
        let stream = &options.imports[0];
        assert_eq!(
            (stream.kind, stream.from.as_str(), stream.to.as_str()),
            (ExchangeKind::Stream, "A", "from_a.orders.eu")
        );
        assert_eq!(options.imports[1].to, "a.help.*");
    }

    #[test]
    fn an_import_without_a_matching_export_names_its_position() {
        let private = "accounts {\n  A: { exports: [ {stream: \"s.>\", accounts: [B]} ] }\n  B: {}\n  C: {\n    imports: [\n      {stream: {account: A, subject: \"s.x\"}}\n    ]\n  }\n}\n";
        let error = load(private).unwrap_err();
        assert!(error.starts_with("accounts.conf:6:"), "{error}");
        assert!(
            error.contains("Error adding stream import \"s.x\": stream import not authorized"),
            "{error}"
        );
        let wrong_kind = "accounts {\n  A: { exports: [ {stream: \"s.>\"} ] }\n  B: { imports: [ {service: {account: A, subject: \"s.x\"}} ] }\n}\n";
        assert!(load(wrong_kind)
            .unwrap_err()
            .contains("service import not authorized"));
        let unknown = "accounts { B: { imports: [ {stream: {account: Z, subject: x}} ] } }";
        assert!(load(unknown)
            .unwrap_err()
            .contains("\"Z\" account not defined for stream import"));
        let both = "accounts {\n  A: { exports: [ {stream: \">\"} ] }\n  B: { imports: [ {stream: {account: A, subject: x}, prefix: p, to: y} ] }\n}\n";
        assert!(load(both).unwrap_err().contains("not both"));
        let reshaped = "accounts {\n  A: { exports: [ {service: \">\"} ] }\n  B: { imports: [ {service: {account: A, subject: \"x.*\"}, to: y} ] }\n}\n";
        assert!(load(reshaped).unwrap_err().contains("same wildcards"));
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

    #[test]
    fn account_limits_take_nats_server_names_and_negative_is_no_limit() {
        let options = load(
            "accounts {\n  A: { limits: { max_connections: 2, max_subs: 10, max_payload: 1KB, max_leafnodes: -1 } }\n  B: { users: [ {user: b, password: p, max_connections: 3} ] }\n}\nconnection_rate_per_ip: 20\n",
        )
        .unwrap();
        let limits = options.account_limits["A"];
        assert_eq!(limits.max_connections, Some(2));
        assert_eq!(limits.max_subscriptions, Some(10));
        assert_eq!(limits.max_payload, Some(1024));
        assert_eq!(limits.max_leafnodes, None);
        assert!(!options.account_limits.contains_key("B"));
        assert_eq!(options.authorization.users[0].max_connections, Some(3));
        assert_eq!(options.connection_rate_per_ip, 20);
        let unknown = load("accounts {\n  A: { limits: { max_bytes: 1 } }\n}\n").unwrap_err();
        assert!(
            unknown.starts_with("accounts.conf:2:18")
                && unknown.contains("Unknown field \"max_bytes\" parsing account limits"),
            "{unknown}"
        );
        let huge = load("accounts { A: { limits: { max_conn: 5000000000 } } }").unwrap_err();
        assert!(huge.contains("must be at most"), "{huge}");
    }
}
