//! Kubernetes quantities (`50Gi`, `45G`, `1e9`) as byte counts, and Go durations (`30s`,
//! `1m30s`) as [`Duration`]s: the two unit-bearing strings a spec carries.
//!
//! Both parsers are strict: what they accept, the API server and the broker accept too; the
//! error text says what is wrong with the value, the caller names the field.

use std::time::Duration;

/// Binary and decimal suffixes of Kubernetes quantities, with their multipliers.
const QUANTITY_SUFFIXES: &[(&str, u128)] = &[
    ("Ki", 1 << 10),
    ("Mi", 1 << 20),
    ("Gi", 1 << 30),
    ("Ti", 1 << 40),
    ("Pi", 1 << 50),
    ("Ei", 1 << 60),
    ("k", 1_000),
    ("M", 1_000_000),
    ("G", 1_000_000_000),
    ("T", 1_000_000_000_000),
    ("P", 1_000_000_000_000_000),
    ("E", 1_000_000_000_000_000_000),
    ("", 1),
];

/// A byte count from a Kubernetes quantity; fractions of a byte round down.
pub fn quantity_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let invalid = || format!("{text:?} is not a quantity such as 10Gi, 500M or 1073741824");
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(index) => {
            let exponent: u32 = text[index + 1..].parse().map_err(|_| invalid())?;
            (&text[..index], Some(exponent))
        }
        None => (text, None),
    };
    let (number, multiplier) = match exponent {
        Some(exponent) => (mantissa, 10u128.checked_pow(exponent).ok_or_else(invalid)?),
        None => QUANTITY_SUFFIXES
            .iter()
            .find_map(|(suffix, multiplier)| {
                mantissa
                    .strip_suffix(suffix)
                    .filter(|number| !number.is_empty())
                    .map(|number| (number, *multiplier))
            })
            .ok_or_else(invalid)?,
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits_only = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
    if whole.is_empty() || !digits_only(whole) || !digits_only(fraction) || fraction.len() > 9 {
        return Err(invalid());
    }
    let too_large = || format!("{text:?} is too large");
    let whole: u128 = whole.parse().map_err(|_| too_large())?;
    let fraction_value: u128 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().map_err(|_| invalid())?
    };
    let scale = 10u128.pow(fraction.len() as u32);
    let bytes = whole
        .checked_mul(multiplier)
        .and_then(|bytes| bytes.checked_add(fraction_value * multiplier / scale))
        .ok_or_else(too_large)?;
    u64::try_from(bytes).map_err(|_| too_large())
}

const DURATION_UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// A Go duration: one or more `<number><unit>` parts, units `ns`, `us`, `ms`, `s`, `m`, `h`.
pub fn go_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("{text:?} is not a duration such as 30s, 1m30s or 500ms");
    let mut rest = text;
    let mut nanoseconds: u128 = 0;
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let number_end = rest
            .find(|character: char| !(character.is_ascii_digit() || character == '.'))
            .ok_or_else(invalid)?;
        let (number, after_number) = rest.split_at(number_end);
        let unit_end = after_number
            .find(|character: char| character.is_ascii_digit() || character == '.')
            .unwrap_or(after_number.len());
        let (unit, after_unit) = after_number.split_at(unit_end);
        let (_, per_unit) = DURATION_UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .ok_or_else(invalid)?;
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() || fraction.len() > 9 {
            return Err(invalid());
        }
        let whole: u128 = whole.parse().map_err(|_| invalid())?;
        let fraction_value: u128 = if fraction.is_empty() {
            0
        } else {
            fraction.parse().map_err(|_| invalid())?
        };
        let scale = 10u128.pow(fraction.len() as u32);
        nanoseconds = whole
            .checked_mul(*per_unit)
            .and_then(|part| part.checked_add(fraction_value * per_unit / scale))
            .and_then(|part| nanoseconds.checked_add(part))
            .ok_or_else(invalid)?;
        rest = after_unit;
    }
    let nanoseconds = u64::try_from(nanoseconds).map_err(|_| invalid())?;
    Ok(Duration::from_nanos(nanoseconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_with_binary_and_decimal_suffixes_become_bytes() {
        assert_eq!(quantity_bytes("10Gi"), Ok(10 << 30));
        assert_eq!(quantity_bytes("500M"), Ok(500_000_000));
        assert_eq!(quantity_bytes("1073741824"), Ok(1 << 30));
        assert_eq!(quantity_bytes("1.5Gi"), Ok(3 << 29));
        assert_eq!(quantity_bytes("1e9"), Ok(1_000_000_000));
        assert_eq!(quantity_bytes("2k"), Ok(2000));
    }

    #[test]
    fn malformed_quantities_are_refused() {
        for text in ["", "Gi", "ten", "10 Gi", "10Xi", "-1Gi", "1.Gi5"] {
            assert!(quantity_bytes(text).is_err(), "{text:?} was accepted");
        }
        assert!(quantity_bytes("99999999Ei").is_err());
    }

    #[test]
    fn go_durations_add_their_parts() {
        assert_eq!(go_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(go_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(go_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(go_duration("1.5h"), Ok(Duration::from_secs(5400)));
    }

    #[test]
    fn malformed_durations_are_refused() {
        for text in ["", "30", "s", "30x", "1m30", "-5s", "3 s"] {
            assert!(go_duration(text).is_err(), "{text:?} was accepted");
        }
    }
}
