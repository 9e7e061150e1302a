//! The parsed form of a config file: a tree of values, each carrying the position it came from.
//!
//! A [`Map`] keeps its entries in file order (so later keys win when options overlap, as the
//! file reads) and replaces an entry when the same key appears again, the way nats-server's
//! parser does. Keys are stored as written; option processing compares them case-insensitively,
//! variable lookup compares them exactly.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// Where a key or value starts: file, 1-based line, 1-based column (in characters).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Position {
    pub file: Arc<str>,
    pub line: u32,
    pub column: u32,
}

impl fmt::Display for Position {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// One value with the position of its first character.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    pub kind: ValueKind,
    pub position: Position,
}

/// The value types of the NATS config language.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueKind {
    String(String),
    /// Size suffixes (`1k`, `64MB`, ...) are already applied.
    Integer(i64),
    Float(f64),
    Bool(bool),
    DateTime(DateTime),
    Array(Vec<Value>),
    Map(Map),
}

impl ValueKind {
    /// The type's name for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            ValueKind::String(_) => "a string",
            ValueKind::Integer(_) => "an integer",
            ValueKind::Float(_) => "a float",
            ValueKind::Bool(_) => "a boolean",
            ValueKind::DateTime(_) => "a datetime",
            ValueKind::Array(_) => "an array",
            ValueKind::Map(_) => "a map",
        }
    }
}

impl Value {
    /// How many values this one holds, itself included, counting no further than `limit + 1`.
    pub(super) fn count_up_to(&self, limit: usize) -> usize {
        let mut count = 1;
        let mut pending: Vec<&Value> = vec![self];
        while let Some(value) = pending.pop() {
            if count > limit {
                break;
            }
            match &value.kind {
                ValueKind::Array(items) => {
                    count += items.len();
                    pending.extend(items);
                }
                ValueKind::Map(map) => {
                    count += map.len();
                    pending.extend(map.entries().map(|entry| &entry.value));
                }
                _ => {}
            }
        }
        count
    }

    /// Sets this value's position and, recursively, that of everything inside it: values read
    /// from an environment variable have no file of their own, so they are reported where the
    /// `$VARIABLE` reference stands.
    pub(super) fn relocate(&mut self, position: &Position) {
        self.position = position.clone();
        match &mut self.kind {
            ValueKind::Array(items) => items.iter_mut().for_each(|item| item.relocate(position)),
            ValueKind::Map(map) => map.entries_mut().for_each(|entry| {
                entry.key_position = position.clone();
                entry.value.relocate(position);
            }),
            _ => {}
        }
    }
}

/// A key and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub key_position: Position,
    pub value: Value,
    /// Set when a `$variable` referred to this entry: such keys are definitions, not options, so
    /// an unrecognised one is not reported as an unknown field.
    pub used_as_variable: bool,
}

/// Keys and values in file order; a repeated key replaces the earlier entry.
///
/// Replaced entries leave an empty slot behind, so inserting and looking up stay constant-time
/// however many keys a file has.
#[derive(Clone, Default)]
pub struct Map {
    slots: Vec<Option<Entry>>,
    index: HashMap<String, usize>,
}

impl Map {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an entry; an entry with the same key is removed first, so the newest one sits last.
    pub fn insert(&mut self, entry: Entry) {
        if let Some(previous) = self.index.insert(entry.key.clone(), self.slots.len()) {
            if let Some(slot) = self.slots.get_mut(previous) {
                *slot = None;
            }
        }
        self.slots.push(Some(entry));
    }

    /// The entry whose key is exactly `key`.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        let slot = *self.index.get(key)?;
        self.slots.get(slot)?.as_ref()
    }

    pub(super) fn get_mut(&mut self, key: &str) -> Option<&mut Entry> {
        let slot = *self.index.get(key)?;
        self.slots.get_mut(slot)?.as_mut()
    }

    /// Entries in file order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.slots.iter().flatten()
    }

    pub(super) fn entries_mut(&mut self) -> impl Iterator<Item = &mut Entry> {
        self.slots.iter_mut().flatten()
    }

    pub fn into_entries(self) -> impl Iterator<Item = Entry> {
        self.slots.into_iter().flatten()
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }
}

impl PartialEq for Map {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.entries().eq(other.entries())
    }
}

impl fmt::Debug for Map {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_list().entries(self.entries()).finish()
    }
}

/// A Zulu datetime, `YYYY-MM-DDTHH:MM:SSZ`, validated (month lengths and leap years included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DateTime {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

impl DateTime {
    /// Parses exactly `YYYY-MM-DDTHH:MM:SSZ`; `None` when the shape or a field is out of range.
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        let shape = b"0000-00-00T00:00:00Z";
        if bytes.len() != shape.len() {
            return None;
        }
        let shape_matches = bytes.iter().zip(shape).all(|(byte, expected)| {
            if *expected == b'0' {
                byte.is_ascii_digit()
            } else {
                byte == expected
            }
        });
        if !shape_matches {
            return None;
        }
        let number =
            |range: std::ops::Range<usize>| -> Option<u16> { text.get(range)?.parse().ok() };
        let year = number(0..4)?;
        let month = u8::try_from(number(5..7)?).ok()?;
        let day = u8::try_from(number(8..10)?).ok()?;
        let hour = u8::try_from(number(11..13)?).ok()?;
        let minute = u8::try_from(number(14..16)?).ok()?;
        let second = u8::try_from(number(17..19)?).ok()?;
        let valid = (1..=12).contains(&month)
            && day >= 1
            && day <= days_in_month(year, month)
            && hour < 24
            && minute < 60
            && second < 60;
        valid.then_some(Self {
            year,
            month,
            day,
            hour,
            minute,
            second,
        })
    }
}

fn days_in_month(year: u16, month: u8) -> u8 {
    let leap = (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl fmt::Display for DateTime {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position(line: u32) -> Position {
        Position {
            file: Arc::from("test.conf"),
            line,
            column: 1,
        }
    }

    fn entry(key: &str, number: i64, line: u32) -> Entry {
        Entry {
            key: key.to_string(),
            key_position: position(line),
            value: Value {
                kind: ValueKind::Integer(number),
                position: position(line),
            },
            used_as_variable: false,
        }
    }

    #[test]
    fn position_displays_as_file_line_column() {
        assert_eq!(position(3).to_string(), "test.conf:3:1");
    }

    #[test]
    fn repeated_key_replaces_the_entry_and_moves_it_last() {
        let mut map = Map::new();
        map.insert(entry("a", 1, 1));
        map.insert(entry("b", 2, 2));
        map.insert(entry("a", 3, 3));
        let keys: Vec<&str> = map.entries().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["b", "a"]);
        assert_eq!(
            map.get("a").map(|e| &e.value.kind),
            Some(&ValueKind::Integer(3))
        );
    }

    #[test]
    fn many_keys_and_replacements_keep_order_and_length() {
        let mut map = Map::new();
        for index in 0..1000 {
            map.insert(entry(&format!("k{}", index % 10), index, 1));
        }
        assert_eq!(map.len(), 10);
        let keys: Vec<&str> = map.entries().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            ["k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9"]
        );
        let mut rebuilt = Map::new();
        map.entries().for_each(|e| rebuilt.insert(e.clone()));
        assert_eq!(map, rebuilt);
    }

    #[test]
    fn counting_values_stops_past_the_limit() {
        let leaf = |line| Value {
            kind: ValueKind::Integer(1),
            position: position(line),
        };
        let value = Value {
            kind: ValueKind::Array(vec![leaf(1), leaf(2), leaf(3)]),
            position: position(1),
        };
        assert_eq!(value.count_up_to(100), 4);
        assert!(value.count_up_to(1) > 1);
    }

    #[test]
    fn keys_are_looked_up_exactly() {
        let mut map = Map::new();
        map.insert(entry("Port", 1, 1));
        assert!(map.get("port").is_none());
        assert!(map.get("Port").is_some());
    }

    #[test]
    fn datetime_parses_zulu_form_and_checks_ranges() {
        let parsed = DateTime::parse("2024-02-29T23:59:59Z");
        assert_eq!(
            parsed.map(|d| d.to_string()).as_deref(),
            Some("2024-02-29T23:59:59Z")
        );
        assert!(DateTime::parse("2023-02-29T00:00:00Z").is_none());
        assert!(DateTime::parse("2023-13-01T00:00:00Z").is_none());
        assert!(DateTime::parse("2023-01-01T24:00:00Z").is_none());
        assert!(DateTime::parse("2023-01-01 00:00:00Z").is_none());
        assert!(DateTime::parse("2023-01-01T00:00:00").is_none());
    }

    #[test]
    fn relocate_moves_nested_values_to_the_reference() {
        let mut value = Value {
            kind: ValueKind::Array(vec![Value {
                kind: ValueKind::Integer(1),
                position: position(9),
            }]),
            position: position(9),
        };
        value.relocate(&position(2));
        let ValueKind::Array(items) = &value.kind else {
            unreachable!("built as an array above")
        };
        assert_eq!(items[0].position, position(2));
    }
}
