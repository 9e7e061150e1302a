//! URL query parameters, decoded and typed the way nats-server's monitoring handlers read them.
//!
//! Contract: [`Query::parse`] never fails. Like Go's `url.ParseQuery` read through
//! `URL.Query().Get`, `+` is a space, `%XX` is a byte, a pair with a malformed escape is
//! dropped, and the first value of a repeated key wins; a missing key reads as empty. The typed
//! readers treat empty as "not given" and reject anything else they cannot decode with
//! nats-server's wording (HTTP 400 with that text).

use std::ops::Range;

use super::MonitoringError;

/// The page size when a request names none (nats-server's).
pub const DEFAULT_LIMIT: usize = 1024;
/// The largest page one request may ask for. nats-server has no such cap; ours bounds the work
/// and the size of one answer. A larger `limit` is clamped, and the answer reports the clamped
/// value so a client paging by `limit` still walks every entry.
pub const MAX_LIMIT: usize = 10_000;

/// Which slice of a listing to return (`offset`, `limit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    pub offset: usize,
    pub limit: usize,
}

impl Paging {
    /// nats-server's rules: a negative offset is zero, a limit of zero or less is the default.
    pub fn new(offset: i64, limit: i64) -> Self {
        let offset = usize::try_from(offset.max(0)).unwrap_or(usize::MAX);
        let limit = if limit <= 0 {
            DEFAULT_LIMIT
        } else {
            usize::try_from(limit).map_or(MAX_LIMIT, |limit| limit.min(MAX_LIMIT))
        };
        Self { offset, limit }
    }

    /// The indices of the page within `total` entries (empty past the end).
    pub fn bounds(self, total: usize) -> Range<usize> {
        let start = self.offset.min(total);
        let end = start.saturating_add(self.limit).min(total);
        start..end
    }
}

impl Default for Paging {
    fn default() -> Self {
        Self::new(0, 0)
    }
}

/// How much subscription detail a listing asks for (`subs=` on `/connz` and `/routez`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubscriptionListing {
    #[default]
    None,
    /// Subjects only (`subs=true` or `subs=1`).
    Subjects,
    /// Subject, queue group, sid and counts (`subs=detail`).
    Detail,
}

/// Decoded query parameters of one request.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Decodes the raw query string (the part after `?`, if any).
    pub fn parse(raw: Option<&str>) -> Self {
        let pairs = raw
            .unwrap_or_default()
            .split('&')
            .filter(|pair| !pair.is_empty())
            .filter_map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                Some((percent_decode(key)?, percent_decode(value)?))
            })
            .collect();
        Self { pairs }
    }

    /// The first value of `key`, or empty when absent.
    pub fn get(&self, key: &str) -> &str {
        self.pairs
            .iter()
            .find(|(name, _)| name == key)
            .map_or("", |(_, value)| value.as_str())
    }

    /// The first value of `key` when present and non-empty.
    pub fn text(&self, key: &str) -> Option<String> {
        let value = self.get(key);
        (!value.is_empty()).then(|| value.to_string())
    }

    /// A boolean in Go's `strconv.ParseBool` spellings; absent means false.
    pub fn boolean(&self, key: &'static str) -> Result<bool, MonitoringError> {
        match self.get(key) {
            "" => Ok(false),
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
            "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
            value => Err(MonitoringError::InvalidBoolean {
                parameter: key,
                value: value.to_string(),
            }),
        }
    }

    /// A signed integer; absent means zero.
    pub fn integer(&self, key: &'static str) -> Result<i64, MonitoringError> {
        let value = self.get(key);
        if value.is_empty() {
            return Ok(0);
        }
        value
            .parse::<i64>()
            .map_err(|error| MonitoringError::InvalidInteger {
                parameter: key,
                value: value.to_string(),
                out_of_range: is_out_of_range(&error),
            })
    }

    /// An unsigned integer (no sign allowed, as in Go); absent means zero.
    pub fn unsigned(&self, key: &'static str) -> Result<u64, MonitoringError> {
        let value = self.get(key);
        if value.is_empty() {
            return Ok(0);
        }
        let invalid = |out_of_range| MonitoringError::InvalidUnsigned {
            parameter: key,
            value: value.to_string(),
            out_of_range,
        };
        if value.starts_with('+') {
            return Err(invalid(false));
        }
        value
            .parse::<u64>()
            .map_err(|error| invalid(is_out_of_range(&error)))
    }

    /// `offset` then `limit`, in the order nats-server decodes (and reports) them.
    pub fn paging(&self) -> Result<Paging, MonitoringError> {
        let offset = self.integer("offset")?;
        let limit = self.integer("limit")?;
        Ok(Paging::new(offset, limit))
    }

    /// `subs`: `detail` (any case) or a boolean.
    pub fn subscription_listing(&self) -> Result<SubscriptionListing, MonitoringError> {
        if self.get("subs").eq_ignore_ascii_case("detail") {
            return Ok(SubscriptionListing::Detail);
        }
        Ok(if self.boolean("subs")? {
            SubscriptionListing::Subjects
        } else {
            SubscriptionListing::None
        })
    }
}

fn is_out_of_range(error: &std::num::ParseIntError) -> bool {
    matches!(
        error.kind(),
        std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow
    )
}

/// `application/x-www-form-urlencoded` decoding; `None` for a malformed escape.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut position = 0;
    while let Some(&byte) = bytes.get(position) {
        match byte {
            b'+' => decoded.push(b' '),
            b'%' => {
                let high = hex_value(*bytes.get(position + 1)?)?;
                let low = hex_value(*bytes.get(position + 2)?)?;
                decoded.push(high << 4 | low);
                position += 2;
            }
            _ => decoded.push(byte),
        }
        position += 1;
    }
    Some(String::from_utf8_lossy(&decoded).into_owned())
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_escapes_and_plus_as_space() {
        let query = Query::parse(Some("acc=%24G&test=foo.bar&name=a+b%20c"));
        assert_eq!(query.get("acc"), "$G");
        assert_eq!(query.get("test"), "foo.bar");
        assert_eq!(query.get("name"), "a b c");
        assert_eq!(query.get("missing"), "");
    }

    #[test]
    fn first_value_wins_and_malformed_pairs_are_dropped() {
        let query = Query::parse(Some("limit=5&limit=7&bad=%zz&flag&&x=%4"));
        assert_eq!(query.get("limit"), "5");
        assert_eq!(query.get("bad"), "");
        assert_eq!(query.get("x"), "");
        assert_eq!(query.get("flag"), "");
        assert_eq!(Query::parse(None), Query::default());
    }

    #[test]
    fn booleans_accept_go_spellings_only() {
        let query = Query::parse(Some("a=1&b=True&c=f&d=yes"));
        assert_eq!(query.boolean("a").ok(), Some(true));
        assert_eq!(query.boolean("b").ok(), Some(true));
        assert_eq!(query.boolean("c").ok(), Some(false));
        assert_eq!(query.boolean("absent").ok(), Some(false));
        let error = query.boolean("d").map_err(|error| error.to_string());
        assert_eq!(
            error,
            Err(
                "Error decoding boolean for 'd': strconv.ParseBool: parsing \"yes\": invalid syntax"
                    .to_string()
            )
        );
    }

    #[test]
    fn integers_report_go_errors() {
        let query = Query::parse(Some(
            "offset=abc&limit=-3&big=99999999999999999999&cid=%2B4",
        ));
        assert_eq!(query.integer("limit").ok(), Some(-3));
        assert_eq!(query.integer("absent").ok(), Some(0));
        assert_eq!(
            query.integer("offset").map_err(|error| error.to_string()),
            Err(
                "Error decoding int for 'offset': strconv.Atoi: parsing \"abc\": invalid syntax"
                    .to_string()
            )
        );
        assert_eq!(
            query.integer("big").map_err(|error| error.to_string()),
            Err("Error decoding int for 'big': strconv.Atoi: parsing \"99999999999999999999\": value out of range".to_string())
        );
        assert_eq!(
            query.unsigned("cid").map_err(|error| error.to_string()),
            Err(
                "Error decoding uint64 for 'cid': strconv.ParseUint: parsing \"+4\": invalid syntax"
                    .to_string()
            )
        );
    }

    #[test]
    fn paging_applies_defaults_and_caps() {
        assert_eq!(
            Paging::new(-5, 0),
            Paging {
                offset: 0,
                limit: DEFAULT_LIMIT
            }
        );
        assert_eq!(Paging::new(3, -1).limit, DEFAULT_LIMIT);
        assert_eq!(Paging::new(0, 7).limit, 7);
        assert_eq!(Paging::new(0, i64::MAX).limit, MAX_LIMIT);
    }

    #[test]
    fn page_bounds_stay_inside_the_listing() {
        let page = |offset, limit, total| Paging::new(offset, limit).bounds(total);
        assert_eq!(page(0, 0, 5), 0..5);
        assert_eq!(page(1, 2, 5), 1..3);
        assert_eq!(page(4, 10, 5), 4..5);
        assert_eq!(page(9, 10, 5), 5..5);
        assert_eq!(page(i64::MAX, i64::MAX, 5), 5..5);
    }

    #[test]
    fn subs_reads_detail_or_a_boolean() {
        let listing = |raw| Query::parse(Some(raw)).subscription_listing().ok();
        assert_eq!(listing("subs=DETAIL"), Some(SubscriptionListing::Detail));
        assert_eq!(listing("subs=1"), Some(SubscriptionListing::Subjects));
        assert_eq!(listing("subs=false"), Some(SubscriptionListing::None));
        assert_eq!(listing(""), Some(SubscriptionListing::None));
        assert_eq!(listing("subs=maybe"), None);
    }
}
