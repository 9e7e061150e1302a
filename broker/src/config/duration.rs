//! Duration strings in Go's `time.ParseDuration` syntax, which nats-server configs use:
//! a sequence of decimal numbers, each with an optional fraction and a unit
//! (`ns`, `us`/`µs`/`μs`, `ms`, `s`, `m`, `h`), e.g. `"300ms"`, `"1.5h"`, `"1h30m"`; a bare `"0"`
//! is also accepted. A leading sign is allowed; the magnitude must fit in Go's 64-bit
//! nanoseconds (about 292 years) so that a value nats-server accepts is accepted here and
//! vice versa.

use std::time::Duration;

/// A parsed duration; `negative` is kept so callers can reject it with a message that names
/// the option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SignedDuration {
    pub negative: bool,
    pub magnitude: Duration,
}

const UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Parses `text`; the error explains what is wrong without repeating the option name.
pub(super) fn parse_duration(text: &str) -> Result<SignedDuration, String> {
    let invalid = || format!("invalid duration {text:?}");
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(SignedDuration {
            negative,
            magnitude: Duration::ZERO,
        });
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let limit = i64::MAX as u128;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let whole_end = rest
            .find(|character: char| !character.is_ascii_digit())
            .unwrap_or(rest.len());
        let (whole, after_whole) = rest.split_at(whole_end);
        let (fraction, after_number) = match after_whole.strip_prefix('.') {
            Some(after_point) => {
                let end = after_point
                    .find(|character: char| !character.is_ascii_digit())
                    .unwrap_or(after_point.len());
                after_point.split_at(end)
            }
            None => ("", after_whole),
        };
        if whole.is_empty() && fraction.is_empty() {
            return Err(invalid());
        }
        let unit_end = after_number
            .find(|character: char| character.is_ascii_digit() || character == '.')
            .unwrap_or(after_number.len());
        let (unit, after_unit) = after_number.split_at(unit_end);
        if unit.is_empty() {
            return Err(format!("missing unit in duration {text:?}"));
        }
        let Some((_, nanoseconds_per_unit)) = UNITS.iter().find(|(name, _)| *name == unit) else {
            return Err(format!("unknown unit {unit:?} in duration {text:?}"));
        };
        let whole_value: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| invalid())?
        };
        let mut amount = whole_value
            .checked_mul(*nanoseconds_per_unit)
            .filter(|amount| *amount <= limit)
            .ok_or_else(invalid)?;
        // Digits past nanosecond precision cannot change the result; bounding them keeps the
        // arithmetic in range.
        let fraction = &fraction[..fraction.len().min(30)];
        if !fraction.is_empty() {
            let numerator: u128 = fraction.parse().map_err(|_| invalid())?;
            let scale = 10u128.pow(u32::try_from(fraction.len()).map_err(|_| invalid())?);
            amount += numerator.saturating_mul(*nanoseconds_per_unit) / scale;
        }
        total = total
            .checked_add(amount)
            .filter(|total| *total <= limit)
            .ok_or_else(invalid)?;
        rest = after_unit;
    }
    let seconds = u64::try_from(total / 1_000_000_000).map_err(|_| invalid())?;
    let nanoseconds = u32::try_from(total % 1_000_000_000).map_err(|_| invalid())?;
    Ok(SignedDuration {
        negative,
        magnitude: Duration::new(seconds, nanoseconds),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Duration {
        let result = parse_duration(text).unwrap();
        assert!(!result.negative, "{text}");
        result.magnitude
    }

    #[test]
    fn go_duration_forms_parse() {
        assert_eq!(parsed("2m"), Duration::from_secs(120));
        assert_eq!(parsed("10s"), Duration::from_secs(10));
        assert_eq!(parsed("500ms"), Duration::from_millis(500));
        assert_eq!(parsed("1h30m"), Duration::from_secs(5400));
        assert_eq!(parsed("1.5h"), Duration::from_secs(5400));
        assert_eq!(parsed(".5s"), Duration::from_millis(500));
        assert_eq!(parsed("1.s"), Duration::from_secs(1));
        assert_eq!(parsed("300us"), Duration::from_micros(300));
        assert_eq!(parsed("300µs"), Duration::from_micros(300));
        assert_eq!(parsed("7ns"), Duration::from_nanos(7));
        assert_eq!(parsed("0"), Duration::ZERO);
        assert_eq!(parsed("+5s"), Duration::from_secs(5));
        assert_eq!(parsed("1h1m1s1ms"), Duration::from_millis(3_661_001));
    }

    #[test]
    fn negative_durations_are_flagged() {
        let result = parse_duration("-1.5s").unwrap();
        assert!(result.negative);
        assert_eq!(result.magnitude, Duration::from_millis(1500));
    }

    #[test]
    fn malformed_durations_explain_the_problem() {
        assert_eq!(
            parse_duration("2x").unwrap_err(),
            r#"unknown unit "x" in duration "2x""#
        );
        assert_eq!(
            parse_duration("10").unwrap_err(),
            r#"missing unit in duration "10""#
        );
        assert_eq!(parse_duration("").unwrap_err(), r#"invalid duration """#);
        assert_eq!(parse_duration("s").unwrap_err(), r#"invalid duration "s""#);
        assert_eq!(parse_duration("-").unwrap_err(), r#"invalid duration "-""#);
        assert_eq!(
            parse_duration("3000000h").unwrap_err(),
            r#"invalid duration "3000000h""#
        );
    }
}
