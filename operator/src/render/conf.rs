//! A small document model of the NATS config language, written out as text, merged with user
//! overrides, and checked by the broker's own parser.
//!
//! Strings are always written quoted (a bare `1m` would be the number 1000000, a bare `on` a
//! boolean); keys are bare when they are plain identifiers. Entries keep the order they were
//! added in, so the output is as deterministic as the code that builds it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use tern_broker::config::{load_str, parse_str, ConfigError, MemorySources};

/// A config value.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfValue {
    String(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
    /// A bare `$NAME`, resolved by the broker from its environment.
    Variable(String),
    Array(Vec<ConfValue>),
    Map(ConfMap),
}

impl From<&str> for ConfValue {
    fn from(text: &str) -> Self {
        Self::String(text.to_string())
    }
}
impl From<String> for ConfValue {
    fn from(text: String) -> Self {
        Self::String(text)
    }
}
impl From<bool> for ConfValue {
    fn from(value: bool) -> Self {
        Self::Bool(value)
    }
}
impl From<u16> for ConfValue {
    fn from(value: u16) -> Self {
        Self::Integer(i64::from(value))
    }
}
impl From<i32> for ConfValue {
    fn from(value: i32) -> Self {
        Self::Integer(i64::from(value))
    }
}
impl From<u64> for ConfValue {
    fn from(value: u64) -> Self {
        Self::Integer(i64::try_from(value).unwrap_or(i64::MAX))
    }
}
impl From<ConfMap> for ConfValue {
    fn from(map: ConfMap) -> Self {
        Self::Map(map)
    }
}
impl From<Vec<String>> for ConfValue {
    fn from(items: Vec<String>) -> Self {
        Self::Array(items.into_iter().map(ConfValue::String).collect())
    }
}

/// One line of a map: a key and value, or an `include`.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfEntry {
    Pair(String, ConfValue),
    Include(String),
}

/// Keys and values in the order they were added.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfMap {
    entries: Vec<ConfEntry>,
}

impl ConfMap {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `key`, replacing an entry with the same key (compared as the broker does, without
    /// regard to case).
    pub fn set(&mut self, key: &str, value: impl Into<ConfValue>) -> &mut Self {
        let value = value.into();
        match self.get_mut(key) {
            Some(existing) => *existing = value,
            None => self.entries.push(ConfEntry::Pair(key.to_string(), value)),
        }
        self
    }

    pub fn include(&mut self, path: &str) -> &mut Self {
        self.entries.push(ConfEntry::Include(path.to_string()));
        self
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut ConfValue> {
        self.entries.iter_mut().find_map(|entry| match entry {
            ConfEntry::Pair(existing, value) if existing.eq_ignore_ascii_case(key) => Some(value),
            _ => None,
        })
    }

    pub fn contains(&self, key: &str) -> bool {
        self.entries.iter().any(|entry| {
            matches!(entry, ConfEntry::Pair(existing, _) if existing.eq_ignore_ascii_case(key))
        })
    }

    /// A copy without the given keys.
    pub fn without(&self, keys: &[&str]) -> Self {
        Self {
            entries: self
                .entries
                .iter()
                .filter(|entry| match entry {
                    ConfEntry::Pair(key, _) => !keys.iter().any(|k| k.eq_ignore_ascii_case(key)),
                    ConfEntry::Include(_) => !keys.contains(&"include"),
                })
                .cloned()
                .collect(),
        }
    }

    pub fn entries(&self) -> &[ConfEntry] {
        &self.entries
    }

    pub fn entries_mut(&mut self) -> &mut [ConfEntry] {
        &mut self.entries
    }

    /// The document as config text.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        write_map_body(&mut out, self, 0);
        out
    }
}

fn indent(out: &mut String, depth: usize) {
    out.extend(std::iter::repeat_n("  ", depth));
}

fn write_map_body(out: &mut String, map: &ConfMap, depth: usize) {
    for entry in &map.entries {
        indent(out, depth);
        match entry {
            ConfEntry::Include(path) => {
                out.push_str("include ");
                write_string(out, path);
            }
            ConfEntry::Pair(key, ConfValue::Map(inner)) => {
                write_key(out, key);
                out.push_str(" {\n");
                write_map_body(out, inner, depth + 1);
                indent(out, depth);
                out.push('}');
            }
            ConfEntry::Pair(key, value) => {
                write_key(out, key);
                out.push_str(": ");
                write_value(out, value, depth);
            }
        }
        out.push('\n');
    }
}

fn write_key(out: &mut String, key: &str) {
    let bare = key
        .chars()
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if bare {
        out.push_str(key);
    } else {
        write_string(out, key);
    }
}

fn write_value(out: &mut String, value: &ConfValue, depth: usize) {
    match value {
        ConfValue::String(text) => write_string(out, text),
        ConfValue::Integer(number) => {
            let _ = write!(out, "{number}");
        }
        ConfValue::Float(number) => {
            // Always with a point, so it reads back as a float.
            let _ = write!(out, "{number:?}");
        }
        ConfValue::Bool(flag) => out.push_str(if *flag { "true" } else { "false" }),
        ConfValue::Variable(name) => {
            out.push('$');
            out.push_str(name);
        }
        ConfValue::Map(map) => {
            out.push_str("{\n");
            write_map_body(out, map, depth + 1);
            indent(out, depth);
            out.push('}');
        }
        ConfValue::Array(items) => {
            let scalars = items
                .iter()
                .all(|item| !matches!(item, ConfValue::Map(_) | ConfValue::Array(_)));
            if items.is_empty() {
                out.push_str("[]");
            } else if scalars && items.len() == 1 {
                out.push('[');
                write_value(out, &items[0], depth);
                out.push(']');
            } else {
                out.push_str("[\n");
                for item in items {
                    indent(out, depth + 1);
                    write_value(out, item, depth + 1);
                    out.push('\n');
                }
                indent(out, depth);
                out.push(']');
            }
        }
    }
}

fn write_string(out: &mut String, text: &str) {
    out.push('"');
    for character in text.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            control if (control as u32) < 0x20 || control == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", control as u32);
            }
            other => out.push(other),
        }
    }
    out.push('"');
}

/// Converts an override value from the resource (JSON) into a config value.
pub fn from_json(value: &serde_json::Value) -> Result<ConfValue, String> {
    Ok(match value {
        serde_json::Value::Null => return Err("null has no meaning in a config file".to_string()),
        serde_json::Value::Bool(flag) => ConfValue::Bool(*flag),
        serde_json::Value::Number(number) => match number.as_i64() {
            Some(integer) => ConfValue::Integer(integer),
            None => ConfValue::Float(number.as_f64().unwrap_or_default()),
        },
        serde_json::Value::String(text) => ConfValue::String(text.clone()),
        serde_json::Value::Array(items) => {
            ConfValue::Array(items.iter().map(from_json).collect::<Result<_, _>>()?)
        }
        serde_json::Value::Object(fields) => {
            let mut map = ConfMap::new();
            for (key, item) in fields {
                map.set(key, from_json(item)?);
            }
            ConfValue::Map(map)
        }
    })
}

/// Files and environment variables a rendered config refers to, standing in for the pod's
/// mounted Secrets and environment when the broker checks the config.
#[derive(Debug, Clone, Default)]
pub struct BrokerCheck {
    pub included_files: Vec<PathBuf>,
    pub environment_variables: Vec<String>,
}

/// Parses `text` (as if read from `path`) with the broker's parser, then loads it with the
/// broker's options loader. Options the broker reports as "not supported yet" (the blocks of
/// features still being built) are tolerated; any other complaint is returned. As the broker
/// supports more, its checks apply here with no change.
pub fn check_with_broker(text: &str, path: &Path, check: &BrokerCheck) -> Result<(), String> {
    let mut sources = MemorySources::new();
    for file in &check.included_files {
        sources = sources.with_file(file.clone(), String::new());
    }
    for variable in &check.environment_variables {
        sources = sources.with_environment_variable(variable.clone(), "placeholder");
    }
    parse_str(text, path, &sources).map_err(|error| error.to_string())?;
    match load_str(text, path, &sources) {
        Ok(_) => Ok(()),
        Err(error) if only_unsupported(&error) => Ok(()),
        Err(error) => Err(error.to_string()),
    }
}

/// True when the broker refused only options it does not support yet.
pub fn only_unsupported(error: &ConfigError) -> bool {
    match error {
        ConfigError::Unsupported { .. } => true,
        ConfigError::Multiple(errors) => errors.iter().all(only_unsupported),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_quoted_and_escaped() {
        let mut map = ConfMap::new();
        map.set("name", "a \"b\"\\c\n");
        assert_eq!(map.to_text(), "name: \"a \\\"b\\\"\\\\c\\n\"\n");
    }

    #[test]
    fn setting_a_key_again_replaces_it_regardless_of_case() {
        let mut map = ConfMap::new();
        map.set("Port", 1u16).set("port", 2u16);
        assert_eq!(map.to_text(), "Port: 2\n");
    }

    #[test]
    fn nested_maps_and_arrays_are_indented() {
        let mut inner = ConfMap::new();
        inner.set("name", "west");
        let mut map = ConfMap::new();
        map.set("gateways", ConfValue::Array(vec![ConfValue::Map(inner)]));
        map.set("one", vec!["x".to_string()]);
        assert_eq!(
            map.to_text(),
            "gateways: [\n  {\n    name: \"west\"\n  }\n]\none: [\"x\"]\n"
        );
    }

    #[test]
    fn odd_keys_are_quoted() {
        let mut map = ConfMap::new();
        map.set("my key", true);
        assert_eq!(map.to_text(), "\"my key\": true\n");
    }

    #[test]
    fn json_null_is_refused() {
        assert!(from_json(&serde_json::Value::Null).is_err());
        assert_eq!(
            from_json(&serde_json::json!(1.5)),
            Ok(ConfValue::Float(1.5))
        );
    }
}
