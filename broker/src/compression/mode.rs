//! Compression modes as nats-server names them, and how two servers agree on one.
//!
//! Contract: [`CompressionMode::parse`] accepts nats-server's spellings (`off`, `accept`,
//! `s2_auto`/`auto`, `s2_uncompressed`/`uncompressed`, `s2_fast`/`fast`, `s2_better`/`better`,
//! `s2_best`/`best`, and `on`/`enabled`/`true` for the connection kind's "on" mode).
//! [`negotiate`] is nats-server's per-side selection (reference §2.10): a peer that announces
//! no mode (2.9, or a server that does not compress) gets no compression, `off` on either side
//! wins, two `accept`s mean off, `accept` follows the peer (`s2_auto` becoming `s2_fast`), and
//! otherwise each side uses its own mode, so levels may differ per direction.
//! [`auto_level`] picks the `s2_auto` level from a round-trip time.

use std::time::Duration;

use super::S2Level;

/// A configured (or announced) compression mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompressionMode {
    Off,
    /// Never starts compression, follows a peer that does.
    Accept,
    /// A level chosen from the measured round-trip time.
    S2Auto,
    S2Uncompressed,
    S2Fast,
    S2Better,
    S2Best,
}

/// The `s2_auto` thresholds nats-server uses unless configured: up to 10ms uncompressed, up
/// to 50ms fast, up to 100ms better, beyond that best.
pub const DEFAULT_RTT_THRESHOLDS: [Duration; 3] = [
    Duration::from_millis(10),
    Duration::from_millis(50),
    Duration::from_millis(100),
];

impl CompressionMode {
    /// Parses a configured mode; `on` stands for `when_on` (`s2_fast` for routes).
    pub fn parse(text: &str, when_on: Self) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "on" | "enabled" | "true" => Ok(when_on),
            "off" | "disabled" | "false" => Ok(Self::Off),
            "accept" => Ok(Self::Accept),
            "auto" | "s2_auto" => Ok(Self::S2Auto),
            "uncompressed" | "s2_uncompressed" => Ok(Self::S2Uncompressed),
            "fast" | "s2_fast" => Ok(Self::S2Fast),
            "better" | "s2_better" => Ok(Self::S2Better),
            "best" | "s2_best" => Ok(Self::S2Best),
            _ => Err(format!("unsupported compression mode {text:?}")),
        }
    }

    /// The name on the wire (INFO `compression`) and in monitoring.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Accept => "accept",
            Self::S2Auto => "s2_auto",
            Self::S2Uncompressed => "s2_uncompressed",
            Self::S2Fast => "s2_fast",
            Self::S2Better => "s2_better",
            Self::S2Best => "s2_best",
        }
    }

    /// The encoder level for a compressing mode (`s2_best` is served by the better
    /// encoder); `None` for modes that do not compress by themselves.
    pub fn level(self) -> Option<S2Level> {
        match self {
            Self::S2Uncompressed => Some(S2Level::Uncompressed),
            Self::S2Fast => Some(S2Level::Fast),
            Self::S2Better | Self::S2Best => Some(S2Level::Better),
            Self::Off | Self::Accept | Self::S2Auto => None,
        }
    }
}

/// What a connection's two sides settled on, from one side's view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Negotiated {
    /// The peer announced no mode: it predates compression (nats-server's "not supported").
    NotSupported,
    Off,
    /// This side compresses what it sends in this mode (never `off` or `accept`).
    Compress(CompressionMode),
}

impl Negotiated {
    /// The name `/routez` shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotSupported => "not supported",
            Self::Off => "off",
            Self::Compress(mode) => mode.as_str(),
        }
    }
}

/// This side's outcome given its own mode and the mode the peer announced in its INFO.
pub fn negotiate(local: CompressionMode, remote: &str) -> Result<Negotiated, String> {
    if remote.is_empty() || remote == "not supported" {
        return Ok(Negotiated::NotSupported);
    }
    if local == CompressionMode::Off {
        return Ok(Negotiated::Off);
    }
    let remote = match remote {
        "off" => CompressionMode::Off,
        "accept" => CompressionMode::Accept,
        "s2_auto" => CompressionMode::S2Auto,
        "s2_uncompressed" => CompressionMode::S2Uncompressed,
        "s2_fast" => CompressionMode::S2Fast,
        "s2_better" => CompressionMode::S2Better,
        "s2_best" => CompressionMode::S2Best,
        other => return Err(format!("unsupported route compression mode {other:?}")),
    };
    Ok(match (local, remote) {
        (_, CompressionMode::Off) | (CompressionMode::Accept, CompressionMode::Accept) => {
            Negotiated::Off
        }
        (CompressionMode::Accept, CompressionMode::S2Auto) => {
            Negotiated::Compress(CompressionMode::S2Fast)
        }
        (CompressionMode::Accept, remote) => Negotiated::Compress(remote),
        (local, _) => Negotiated::Compress(local),
    })
}

/// The `s2_auto` level for a round-trip time: the first threshold the time does not exceed
/// picks uncompressed, fast, better, best in that order; beyond them all, best (or the last
/// level the thresholds name when there are fewer than three).
pub fn auto_level(round_trip: Duration, thresholds: &[Duration]) -> CompressionMode {
    let index = thresholds
        .iter()
        .position(|threshold| round_trip <= *threshold)
        .unwrap_or_else(|| {
            if thresholds.len() >= 3 {
                3
            } else {
                thresholds.len().saturating_sub(1)
            }
        });
    match index {
        0 => CompressionMode::S2Uncompressed,
        1 => CompressionMode::S2Fast,
        2 => CompressionMode::S2Better,
        _ => CompressionMode::S2Best,
    }
}

/// Checks configured `s2_auto` thresholds as nats-server does: ascending (a zero disables a
/// level), at most four, at least one non-zero; trailing zeros are dropped.
pub fn normalize_thresholds(thresholds: &[Duration]) -> Result<Vec<Duration>, String> {
    let mut normalized: Vec<Duration> = Vec::with_capacity(thresholds.len());
    for threshold in thresholds {
        if !threshold.is_zero() && normalized.iter().any(|earlier| threshold < earlier) {
            return Err(format!(
                "RTT threshold values {thresholds:?} should be in ascending order"
            ));
        }
        normalized.push(*threshold);
    }
    while normalized.last().is_some_and(Duration::is_zero) {
        normalized.pop();
    }
    if normalized.len() > 4 {
        return Err(format!(
            "compression mode \"s2_auto\" should have no more than 4 RTT thresholds: {thresholds:?}"
        ));
    }
    if normalized.is_empty() {
        return Err("compression mode \"s2_auto\" requires at least one RTT threshold".into());
    }
    Ok(normalized)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use CompressionMode::*;

    #[test]
    fn spellings_parse_as_nats_server_reads_them() {
        assert_eq!(CompressionMode::parse("on", S2Fast), Ok(S2Fast));
        assert_eq!(CompressionMode::parse("Enabled", S2Auto), Ok(S2Auto));
        assert_eq!(CompressionMode::parse("disabled", S2Fast), Ok(Off));
        assert_eq!(CompressionMode::parse("better", S2Fast), Ok(S2Better));
        assert_eq!(CompressionMode::parse("s2_best", S2Fast), Ok(S2Best));
        assert!(CompressionMode::parse("zstd", S2Fast)
            .unwrap_err()
            .contains("\"zstd\""));
    }

    #[test]
    fn negotiation_follows_nats_server() {
        assert_eq!(negotiate(S2Fast, ""), Ok(Negotiated::NotSupported));
        assert_eq!(
            negotiate(Accept, "not supported"),
            Ok(Negotiated::NotSupported)
        );
        assert_eq!(negotiate(S2Fast, "off"), Ok(Negotiated::Off));
        assert_eq!(negotiate(Off, "s2_fast"), Ok(Negotiated::Off));
        assert_eq!(negotiate(Accept, "accept"), Ok(Negotiated::Off));
        assert_eq!(
            negotiate(S2Better, "accept"),
            Ok(Negotiated::Compress(S2Better))
        );
        assert_eq!(
            negotiate(Accept, "s2_best"),
            Ok(Negotiated::Compress(S2Best))
        );
        assert_eq!(
            negotiate(Accept, "s2_auto"),
            Ok(Negotiated::Compress(S2Fast))
        );
        assert_eq!(
            negotiate(S2Fast, "s2_better"),
            Ok(Negotiated::Compress(S2Fast))
        );
        assert!(negotiate(Accept, "lz4").is_err());
    }

    #[test]
    fn auto_level_walks_the_thresholds() {
        let thresholds = DEFAULT_RTT_THRESHOLDS;
        let level = |millis| auto_level(Duration::from_millis(millis), &thresholds);
        assert_eq!(level(1), S2Uncompressed);
        assert_eq!(level(10), S2Uncompressed);
        assert_eq!(level(11), S2Fast);
        assert_eq!(level(75), S2Better);
        assert_eq!(level(500), S2Best);
        let two = [Duration::ZERO, Duration::from_millis(20)];
        assert_eq!(auto_level(Duration::from_millis(5), &two), S2Fast);
        assert_eq!(auto_level(Duration::from_millis(50), &two), S2Fast);
    }

    #[test]
    fn thresholds_are_checked() {
        let millis = |values: &[u64]| -> Vec<Duration> {
            values
                .iter()
                .map(|value| Duration::from_millis(*value))
                .collect()
        };
        assert_eq!(
            normalize_thresholds(&millis(&[0, 10, 0, 0])).unwrap(),
            millis(&[0, 10])
        );
        assert!(normalize_thresholds(&millis(&[20, 10])).is_err());
        assert!(normalize_thresholds(&millis(&[0, 0])).is_err());
        assert!(normalize_thresholds(&millis(&[1, 2, 3, 4, 5])).is_err());
    }
}
