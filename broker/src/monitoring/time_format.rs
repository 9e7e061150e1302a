//! Durations and instants written the way nats-server writes them, so dashboards and tools that
//! parse its JSON parse ours.
//!
//! Contract: pure functions of their arguments.
//! - [`uptime`] is nats-server's compact whole-second form: `1y2d3h4m5s`, leading zero units
//!   dropped, seconds always present (`0s`).
//! - [`go_duration`] is Go's `time.Duration` text: `0s`, `250ns`, `1.5µs`, `998µs`, `1.234ms`,
//!   `2.5s`, `1m0s`, `1h2m3.004s`, with trailing fractional zeros removed.
//! - [`round_trip`] is a measured round trip as nats-server reports it: truncated to whole
//!   microseconds between one microsecond and one millisecond, exact otherwise.
//! - [`rfc3339`] is Go's `RFC3339Nano` in UTC: nanoseconds with trailing zeros removed and no
//!   fraction at all on a whole second.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};

const NANOS_PER_MICROSECOND: u64 = 1_000;
const NANOS_PER_MILLISECOND: u64 = 1_000_000;
const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// nats-server's uptime and idle form, in whole seconds.
pub fn uptime(elapsed: Duration) -> String {
    let total_seconds = elapsed.as_secs();
    let total_minutes = total_seconds / 60;
    let total_hours = total_minutes / 60;
    let total_days = total_hours / 24;
    let years = total_days / 365;
    let (seconds, minutes, hours) = (total_seconds % 60, total_minutes % 60, total_hours % 24);
    if years > 0 {
        let days = total_days % 365;
        format!("{years}y{days}d{hours}h{minutes}m{seconds}s")
    } else if total_days > 0 {
        format!("{total_days}d{hours}h{minutes}m{seconds}s")
    } else if total_hours > 0 {
        format!("{total_hours}h{minutes}m{seconds}s")
    } else if total_minutes > 0 {
        format!("{total_minutes}m{seconds}s")
    } else {
        format!("{total_seconds}s")
    }
}

/// Go's `time.Duration.String()` for a non-negative number of nanoseconds.
pub fn go_duration(nanos: u64) -> String {
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < NANOS_PER_SECOND {
        let (unit_nanos, unit, fraction_digits) = if nanos < NANOS_PER_MICROSECOND {
            (1, "ns", 0)
        } else if nanos < NANOS_PER_MILLISECOND {
            (NANOS_PER_MICROSECOND, "µs", 3)
        } else {
            (NANOS_PER_MILLISECOND, "ms", 6)
        };
        let mut text = (nanos / unit_nanos).to_string();
        push_fraction(&mut text, nanos % unit_nanos, fraction_digits);
        text.push_str(unit);
        return text;
    }
    let whole_seconds = nanos / NANOS_PER_SECOND;
    let (hours, minutes, seconds) = (
        whole_seconds / 3600,
        (whole_seconds / 60) % 60,
        whole_seconds % 60,
    );
    let mut text = String::new();
    if hours > 0 {
        let _ = write!(text, "{hours}h");
    }
    if hours > 0 || minutes > 0 {
        let _ = write!(text, "{minutes}m");
    }
    let _ = write!(text, "{seconds}");
    push_fraction(&mut text, nanos % NANOS_PER_SECOND, 9);
    text.push('s');
    text
}

/// Appends `.digits` for a remainder of `digits` decimal places, without trailing zeros.
fn push_fraction(text: &mut String, remainder: u64, digits: usize) {
    if remainder == 0 || digits == 0 {
        return;
    }
    let padded = format!("{remainder:0digits$}");
    text.push('.');
    text.push_str(padded.trim_end_matches('0'));
}

/// A round trip as nats-server reports it (`0s` until one was measured).
pub fn round_trip(nanos: u64) -> String {
    let reported = if nanos > NANOS_PER_MICROSECOND && nanos < NANOS_PER_MILLISECOND {
        nanos - nanos % NANOS_PER_MICROSECOND
    } else {
        nanos
    };
    go_duration(reported)
}

/// Go's `RFC3339Nano` rendering of an instant, in UTC.
pub fn rfc3339(time: SystemTime) -> String {
    let datetime: DateTime<Utc> = time.into();
    let mut text = datetime.format("%Y-%m-%dT%H:%M:%S").to_string();
    push_fraction(&mut text, u64::from(datetime.timestamp_subsec_nanos()), 9);
    text.push('Z');
    text
}

/// The instant `millis` milliseconds after the UNIX epoch.
pub fn from_unix_millis(millis: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(millis)
}

/// `later - earlier`, or zero when the clock went backwards in between.
pub fn elapsed_between(earlier: SystemTime, later: SystemTime) -> Duration {
    later.duration_since(earlier).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_drops_leading_zero_units() {
        assert_eq!(uptime(Duration::ZERO), "0s");
        assert_eq!(uptime(Duration::from_millis(1_999)), "1s");
        assert_eq!(uptime(Duration::from_secs(62)), "1m2s");
        assert_eq!(uptime(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(uptime(Duration::from_secs(86_400 + 3_661)), "1d1h1m1s");
        assert_eq!(uptime(Duration::from_secs(366 * 86_400 + 5)), "1y1d0h0m5s");
    }

    #[test]
    fn go_duration_matches_go_for_every_unit() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(250), "250ns");
        assert_eq!(go_duration(1_500), "1.5µs");
        assert_eq!(go_duration(998_000), "998µs");
        assert_eq!(go_duration(1_234_567), "1.234567ms");
        assert_eq!(go_duration(2_000_000), "2ms");
        assert_eq!(go_duration(2_500_000_000), "2.5s");
        assert_eq!(go_duration(60 * NANOS_PER_SECOND), "1m0s");
        assert_eq!(
            go_duration(3_723 * NANOS_PER_SECOND + 4_000_000),
            "1h2m3.004s"
        );
        assert_eq!(go_duration(3_600 * NANOS_PER_SECOND), "1h0m0s");
    }

    #[test]
    fn round_trip_truncates_to_microseconds_below_a_millisecond() {
        assert_eq!(round_trip(0), "0s");
        assert_eq!(round_trip(396_789), "396µs");
        assert_eq!(round_trip(800), "800ns");
        assert_eq!(round_trip(1_234_567), "1.234567ms");
    }

    #[test]
    fn rfc3339_trims_trailing_zeros_of_the_fraction() {
        let base = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(rfc3339(base), "2023-11-14T22:13:20Z");
        assert_eq!(
            rfc3339(base + Duration::from_nanos(438_071_397)),
            "2023-11-14T22:13:20.438071397Z"
        );
        assert_eq!(
            rfc3339(base + Duration::from_nanos(316_817_570)),
            "2023-11-14T22:13:20.31681757Z"
        );
        assert_eq!(
            rfc3339(base + Duration::from_millis(5)),
            "2023-11-14T22:13:20.005Z"
        );
    }

    #[test]
    fn elapsed_between_never_goes_negative() {
        let now = SystemTime::now();
        assert_eq!(
            elapsed_between(now + Duration::from_secs(1), now),
            Duration::ZERO
        );
        assert_eq!(
            elapsed_between(now, now + Duration::from_secs(3)),
            Duration::from_secs(3)
        );
    }
}
