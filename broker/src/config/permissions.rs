//! `permissions { }` blocks (of `users` entries, and `default_permissions`), parsed into
//! validated [`Permissions`] with nats-server's names and aliases:
//!
//! ```text
//! permissions {
//!   publish   (pub, import):  "subject" | ["subject", ...] | { allow: <list>, deny: <list> }
//!   subscribe (sub, export):  same; entries may be "subject queue_group"
//!   allow_responses (publish_allow_responses): true | { max: N, expires: "1m" }
//! }
//! ```
//!
//! As in nats-server: an empty list means no restriction; `allow_responses` max and expires
//! default to 1 and 2m when zero and mean no limit when negative; unknown fields inside these
//! blocks are errors (a misspelt `publsh` would otherwise silently allow everything). A queue
//! group on a publish entry can never match a published subject, so it is dropped with a
//! warning; a publish allow list left empty by that still allows nothing, as in nats-server.

use std::time::Duration;

use super::{invalid, map, wrong_type, Builder, ConfigWarning};
use crate::auth::{PermissionEntry, Permissions, ResponsePermission, SubjectPermission};
use crate::config::duration::parse_duration;
use crate::config::value::{Entry, Value, ValueKind};
use crate::config::ConfigError;

/// Which list an entry belongs to: queue groups only mean something for subscriptions.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Publish,
    Subscribe,
}

impl Builder {
    /// A `permissions` map.
    pub(super) fn permissions(&mut self, entry: &Entry) -> Result<Permissions, ConfigError> {
        let block = map(entry)?;
        let mut permissions = Permissions::default();
        for item in block.entries() {
            let name = item.key.to_ascii_lowercase();
            let applied = match name.as_str() {
                "pub" | "publish" | "import" => self
                    .subject_permission(item, Direction::Publish)
                    .map(|rules| permissions.publish = rules),
                "sub" | "subscribe" | "export" => self
                    .subject_permission(item, Direction::Subscribe)
                    .map(|rules| permissions.subscribe = rules),
                "allow_responses" | "publish_allow_responses" => {
                    response_permission(item).map(|responses| permissions.responses = responses)
                }
                _ => unknown_field(item, "permissions"),
            };
            if let Err(error) = applied {
                self.errors.push(error);
            }
        }
        Ok(permissions)
    }

    /// `publish` or `subscribe`: a subject, a list (the allow list), or `{ allow, deny }`.
    fn subject_permission(
        &mut self,
        entry: &Entry,
        direction: Direction,
    ) -> Result<SubjectPermission, ConfigError> {
        let ValueKind::Map(block) = &entry.value.kind else {
            return Ok(SubjectPermission {
                allow: self.permission_entries(entry, &entry.value, direction)?,
                deny: Vec::new(),
            });
        };
        let mut rules = SubjectPermission::default();
        for item in block.entries() {
            let name = item.key.to_ascii_lowercase();
            let applied = match name.as_str() {
                "allow" => self
                    .permission_entries(item, &item.value, direction)
                    .map(|allow| rules.allow = allow),
                "deny" => self
                    .permission_entries(item, &item.value, direction)
                    .map(|deny| rules.deny = deny.unwrap_or_default()),
                _ => unknown_field(item, "subject permissions (only allow and deny are)"),
            };
            if let Err(error) = applied {
                self.errors.push(error);
            }
        }
        Ok(rules)
    }

    /// A subject or a list of them; `None` when the list is empty (no restriction).
    fn permission_entries(
        &mut self,
        entry: &Entry,
        value: &Value,
        direction: Direction,
    ) -> Result<Option<Vec<PermissionEntry>>, ConfigError> {
        let values: Vec<&Value> = match &value.kind {
            ValueKind::String(_) => vec![value],
            ValueKind::Array(items) => items.iter().collect(),
            _ => return Err(wrong_type(entry, "a subject or an array of subjects")),
        };
        if values.is_empty() {
            return Ok(None);
        }
        let mut entries = Vec::with_capacity(values.len());
        for value in values {
            let ValueKind::String(text) = &value.kind else {
                return Err(invalid(
                    &value.position,
                    format!(
                        "a subject in a permissions list must be a string, got {}",
                        value.kind.type_name()
                    ),
                ));
            };
            let parsed = PermissionEntry::parse(text)
                .map_err(|error| invalid(&value.position, error.to_string()))?;
            if direction == Direction::Publish && parsed.queue_group().is_some() {
                self.warnings.push(ConfigWarning {
                    message: format!(
                        "{}: publish permission {text:?} names a queue group, which only subscriptions have; it matches nothing and is ignored",
                        value.position
                    ),
                });
                continue;
            }
            entries.push(parsed);
        }
        Ok(Some(entries))
    }
}

/// `allow_responses`: `true` for the defaults, or `{ max, expires }`.
fn response_permission(entry: &Entry) -> Result<Option<ResponsePermission>, ConfigError> {
    let block = match &entry.value.kind {
        ValueKind::Bool(enabled) => return Ok(enabled.then(ResponsePermission::default)),
        ValueKind::Map(block) => block,
        _ => return Err(wrong_type(entry, "a boolean or a map")),
    };
    let mut permission = ResponsePermission::default();
    for item in block.entries() {
        let position = &item.value.position;
        match item.key.to_ascii_lowercase().as_str() {
            "max" | "max_msgs" | "max_messages" | "max_responses" => {
                let ValueKind::Integer(max) = item.value.kind else {
                    return Err(wrong_type(item, "an integer"));
                };
                // Zero keeps the default; a negative maximum means no limit.
                if max < 0 {
                    permission.max = usize::MAX;
                } else if max > 0 {
                    permission.max = usize::try_from(max).unwrap_or(usize::MAX);
                }
            }
            "expires" | "expiration" | "ttl" => {
                let ValueKind::String(text) = &item.value.kind else {
                    return Err(wrong_type(item, "a duration string such as \"1m\""));
                };
                let parsed = parse_duration(text).map_err(|reason| {
                    invalid(position, format!("error parsing {:?}: {reason}", item.key))
                })?;
                // Zero keeps the default; a negative expiry means no limit.
                if parsed.negative && !parsed.magnitude.is_zero() {
                    permission.expires = Duration::MAX;
                } else if !parsed.magnitude.is_zero() {
                    permission.expires = parsed.magnitude;
                }
            }
            _ => unknown_field(item, "allow_responses")?,
        }
    }
    Ok(Some(permission))
}

/// Unknown fields in permission blocks are errors, as in nats-server, except keys that only
/// define variables.
fn unknown_field(entry: &Entry, block: &str) -> Result<(), ConfigError> {
    if entry.used_as_variable {
        return Ok(());
    }
    Err(invalid(
        &entry.key_position,
        format!("unknown field {:?} in {block}", entry.key),
    ))
}

#[cfg(test)]
#[path = "permissions_tests.rs"]
mod tests;
