//! Passwords and tokens as the configuration stores them: plain text, or a bcrypt hash.
//!
//! Contract (nats-server's `isBcrypt`/`comparePasswords`):
//! - A stored value is a bcrypt hash when it starts with `$2a$`, `$2b$`, `$2x$` or `$2y$`
//!   followed by a two-digit cost and `$`; anything else is plain text.
//! - A presented password matches plain text only when equal byte for byte, compared in time
//!   that does not depend on where the first difference is; it matches a bcrypt hash when
//!   bcrypt verification succeeds. A malformed hash matches nothing.
//! - Verifying a bcrypt hash costs tens to hundreds of milliseconds by design, so callers on an
//!   async runtime run authentication on a blocking thread.
//! - A [`StoredPassword`] never shows its value in `Debug` output.

use std::fmt;

/// Prefixes (without the cost) that mark a bcrypt hash.
const BCRYPT_VERSIONS: [&str; 4] = ["$2a$", "$2b$", "$2x$", "$2y$"];

/// A password or token from the configuration.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredPassword {
    value: String,
    bcrypt: bool,
}

impl StoredPassword {
    pub fn new(value: impl Into<String>) -> Self {
        let value = value.into();
        let bcrypt = is_bcrypt(&value);
        Self { value, bcrypt }
    }

    /// Whether the stored value is a bcrypt hash (and so slow to verify).
    pub fn is_bcrypt(&self) -> bool {
        self.bcrypt
    }

    /// Whether nothing is stored (a user without a password).
    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }

    /// Whether `presented` (from CONNECT) is this password.
    pub fn matches(&self, presented: &str) -> bool {
        if self.bcrypt {
            // An unparsable hash is an error from the crate; it must not let anyone in.
            bcrypt::verify(presented, &self.value).unwrap_or(false)
        } else {
            constant_time_equal(self.value.as_bytes(), presented.as_bytes())
        }
    }
}

impl fmt::Debug for StoredPassword {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.bcrypt { "bcrypt" } else { "plain" };
        write!(formatter, "StoredPassword({kind}, <redacted>)")
    }
}

/// Whether `stored` is a bcrypt hash: `$2[abxy]$` and a two-digit cost, then `$`.
pub fn is_bcrypt(stored: &str) -> bool {
    let bytes = stored.as_bytes();
    BCRYPT_VERSIONS
        .iter()
        .any(|version| stored.starts_with(version))
        && bytes.len() >= 7
        && bytes[4].is_ascii_digit()
        && bytes[5].is_ascii_digit()
        && bytes[6] == b'$'
}

/// Byte equality whose running time depends only on the lengths, so a client cannot find a
/// password one byte at a time by timing the answers. The length itself is not hidden.
pub fn constant_time_equal(expected: &[u8], presented: &[u8]) -> bool {
    if expected.len() != presented.len() {
        return false;
    }
    let difference = expected
        .iter()
        .zip(presented)
        .fold(0u8, |difference, (left, right)| difference | (left ^ right));
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lowest cost bcrypt allows keeps the tests fast.
    const TEST_COST: u32 = 4;

    #[test]
    fn plain_passwords_match_only_themselves() {
        let stored = StoredPassword::new("s3cr3t");
        assert!(!stored.is_bcrypt());
        assert!(stored.matches("s3cr3t"));
        for wrong in ["", "s3cr3", "s3cr3t ", "S3CR3T", "s3cr3u"] {
            assert!(!stored.matches(wrong), "{wrong:?}");
        }
        assert!(StoredPassword::new("").matches(""));
    }

    #[test]
    fn bcrypt_hashes_are_verified_not_compared() {
        let hash = bcrypt::hash("s3cr3t", TEST_COST).expect("bcrypt hashes a short password");
        let stored = StoredPassword::new(hash.clone());
        assert!(stored.is_bcrypt());
        assert!(stored.matches("s3cr3t"));
        assert!(!stored.matches("wrong"));
        // Presenting the hash itself is not the password.
        assert!(!stored.matches(&hash));
    }

    #[test]
    fn every_bcrypt_version_prefix_is_recognised() {
        // Hashes as `nats server passwd` and other tools write them.
        let hash = bcrypt::hash("pw", TEST_COST).expect("bcrypt hashes a short password");
        let body = &hash[4..];
        for version in ["2a", "2b", "2x", "2y"] {
            let stored = StoredPassword::new(format!("${version}${body}"));
            assert!(stored.is_bcrypt(), "{version}");
            assert!(stored.matches("pw"), "{version}");
        }
    }

    #[test]
    fn bcrypt_detection_follows_nats_server() {
        for bcrypt in ["$2a$11$abc", "$2b$04$x", "$2y$10$", "$2x$99$z"] {
            assert!(is_bcrypt(bcrypt), "{bcrypt:?}");
        }
        for plain in [
            "",
            "$2a$",
            "$2a$1$abc",
            "$2c$11$abc",
            "$2a$ab$abc",
            "2a$11$abc",
            "$2a$11",
            "password",
            "$password",
        ] {
            assert!(!is_bcrypt(plain), "{plain:?}");
        }
    }

    #[test]
    fn a_malformed_bcrypt_hash_lets_nobody_in() {
        let stored = StoredPassword::new("$2a$11$not-a-real-hash");
        assert!(stored.is_bcrypt());
        assert!(!stored.matches(""));
        assert!(!stored.matches("$2a$11$not-a-real-hash"));
    }

    #[test]
    fn debug_output_hides_the_value() {
        let plain = format!("{:?}", StoredPassword::new("hunter2"));
        assert!(!plain.contains("hunter2"), "{plain}");
        let hash = bcrypt::hash("hunter2", TEST_COST).expect("bcrypt hashes a short password");
        let hashed = format!("{:?}", StoredPassword::new(hash.clone()));
        assert!(!hashed.contains(&hash), "{hashed}");
    }
}
