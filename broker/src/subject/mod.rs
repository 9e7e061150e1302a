//! Subjects: validation rules and the subject index.
//!
//! Contract:
//! - A subject is a byte string (the wire does not promise UTF-8) of tokens separated by `.`.
//!   Tokens are never empty, and a valid subject contains no whitespace (space, tab, CR, LF, FF).
//!   Subjects are case-sensitive and every other byte is allowed.
//! - A token that is exactly `*` matches one token; a token that is exactly `>` matches one or
//!   more trailing tokens and may only be the last token. A wildcard byte inside a longer token
//!   (`foo*`, `>bar`) is an ordinary literal byte.
//! - [`is_valid_subject`] is the rule for SUB; [`is_valid_literal_subject`] is the rule for a
//!   pedantic PUB. Non-pedantic publishes are not validated; [`SubjectIndex::matches`] simply
//!   returns no subscriptions for a subject with an empty token.
//! - [`SubjectIndex`] maps subscription subjects (with an optional queue group) to values and
//!   answers "who is interested in this published subject" through a bounded shared cache.
//!
//! These functions are pure and allocation-free; they sit on the per-message path.

mod index;
pub mod mapping;

pub use index::{
    MatchResult, QueueGroupMatch, SubjectIndex, SubjectIndexStats, DEFAULT_CACHE_CAPACITY,
};

/// Separates the tokens of a subject.
pub const TOKEN_SEPARATOR: u8 = b'.';
/// A token that is exactly this matches exactly one token.
pub const SINGLE_WILDCARD: &[u8] = b"*";
/// A token that is exactly this (and last) matches one or more trailing tokens.
pub const FULL_WILDCARD: &[u8] = b">";

/// Everything that can go wrong when a subject or queue group enters the index.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    /// Empty, has an empty token, whitespace, or a token after `>`.
    #[error("invalid subject \"{}\"", String::from_utf8_lossy(.subject))]
    InvalidSubject { subject: Vec<u8> },
    /// Empty or contains whitespace.
    #[error("invalid queue group \"{}\"", String::from_utf8_lossy(.queue_group))]
    InvalidQueueGroup { queue_group: Vec<u8> },
}

/// The bytes that can never appear in a subject or queue group: the protocol splits
/// arguments on them, so a subject holding one could not be sent back to a client.
fn is_whitespace(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\r' | b'\n' | 0x0c)
}

fn tokens(subject: &[u8]) -> impl Iterator<Item = &[u8]> {
    subject.split(|&byte| byte == TOKEN_SEPARATOR)
}

/// True for an empty subject or one with a leading, trailing or doubled separator.
/// Cheaper than full validation; used where only the token structure matters.
fn has_empty_token(subject: &[u8]) -> bool {
    subject.first().is_none_or(|&byte| byte == TOKEN_SEPARATOR)
        || subject.last() == Some(&TOKEN_SEPARATOR)
        || subject.windows(2).any(|pair| pair == [TOKEN_SEPARATOR; 2])
}

/// Whether `subject` may be subscribed to: non-empty tokens, no whitespace, `>` only last.
pub fn is_valid_subject(subject: &[u8]) -> bool {
    if subject.is_empty() {
        return false;
    }
    let mut after_full_wildcard = false;
    for token in tokens(subject) {
        if token.is_empty() || after_full_wildcard || token.iter().any(|&b| is_whitespace(b)) {
            return false;
        }
        after_full_wildcard = token == FULL_WILDCARD;
    }
    true
}

/// Whether `subject` may be published to under pedantic mode: valid and without wildcard tokens.
pub fn is_valid_literal_subject(subject: &[u8]) -> bool {
    is_valid_subject(subject) && subject_is_literal(subject)
}

/// Whether `queue_group` may name a queue group: non-empty, no whitespace.
///
/// Dots are allowed (nats-server accepts them). The reserved `_sys_` name is the client
/// layer's concern because internal subscriptions use it legitimately.
pub fn is_valid_queue_name(queue_group: &[u8]) -> bool {
    !queue_group.is_empty() && !queue_group.iter().any(|&b| is_whitespace(b))
}

/// Whether no token of `subject` is a wildcard. Does not validate anything else.
pub fn subject_is_literal(subject: &[u8]) -> bool {
    !tokens(subject).any(|token| token == SINGLE_WILDCARD || token == FULL_WILDCARD)
}

/// Whether the published subject `literal` is matched by the subscription subject `pattern`.
///
/// Tokens of `literal` are compared as bytes, so a published `*` token is matched by a `*`
/// pattern token but not by a literal pattern token, which is exactly what [`SubjectIndex`]
/// does. A `literal` with an empty token matches nothing.
pub fn subject_matches_pattern(pattern: &[u8], literal: &[u8]) -> bool {
    if has_empty_token(literal) {
        return false;
    }
    let mut literal_tokens = tokens(literal);
    for pattern_token in tokens(pattern) {
        if pattern_token == FULL_WILDCARD {
            return literal_tokens.next().is_some();
        }
        match literal_tokens.next() {
            Some(token) if pattern_token == SINGLE_WILDCARD || pattern_token == token => {}
            _ => return false,
        }
    }
    literal_tokens.next().is_none()
}

/// Whether every subject that `pattern` matches is also matched by `of`: `foo.*` is within
/// `foo.>`, `foo.*` and `*.*`, but not within `foo.bar`; `foo.>` is within `foo.>` and `>` only.
///
/// Both may hold wildcards; a `>` token needs a `>` in `of` to be covered, because it stands
/// for any number of tokens. A `pattern` with an empty token is within nothing. Permission
/// checks use this so a wildcard subscription never reaches past what an allow entry grants.
pub fn pattern_is_subset_of(pattern: &[u8], of: &[u8]) -> bool {
    if has_empty_token(pattern) || has_empty_token(of) {
        return false;
    }
    let mut pattern_tokens = tokens(pattern);
    for of_token in tokens(of) {
        let Some(token) = pattern_tokens.next() else {
            return false;
        };
        if of_token == FULL_WILDCARD {
            return true;
        }
        let covered = if token == FULL_WILDCARD {
            false
        } else if of_token == SINGLE_WILDCARD {
            true
        } else {
            token != SINGLE_WILDCARD && token == of_token
        };
        if !covered {
            return false;
        }
    }
    pattern_tokens.next().is_none()
}

/// The number of tokens in `subject`; zero for the empty subject.
pub fn token_count(subject: &[u8]) -> usize {
    if subject.is_empty() {
        return 0;
    }
    1 + subject
        .iter()
        .filter(|&&byte| byte == TOKEN_SEPARATOR)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_subjects_follow_the_token_rules() {
        for invalid in [
            "",
            ".",
            ".foo",
            "foo.",
            "foo..bar",
            ">.bar",
            "foo.>.bar",
            "foo.>.>",
        ] {
            assert!(!is_valid_subject(invalid.as_bytes()), "{invalid:?}");
        }
        for valid in [
            "foo",
            "foo.bar.*",
            "foo.bar.>",
            "*",
            ">",
            "*.>",
            "*.*",
            "foo*",
            "foo**",
            "foo.**",
            "foo*bar",
            "foo.*bar",
            "foo*.bar",
            "*bar",
            "foo>",
            "foo.>>",
            "foo>bar",
            "foo.>bar",
            "foo>.bar",
            ">bar",
            "Foo.BAR",
            "$SYS.REQ.SERVER.PING",
            "_INBOX.ü.日本",
        ] {
            assert!(is_valid_subject(valid.as_bytes()), "{valid:?}");
        }
    }

    #[test]
    fn whitespace_is_rejected_anywhere_in_a_subject() {
        for whitespace in [" ", "\t", "\r", "\n", "\x0c"] {
            for subject in [
                format!("foo{whitespace}bar"),
                whitespace.to_string(),
                format!("foo.{whitespace}"),
                format!("{whitespace}foo.bar"),
                format!("foo.bar{whitespace}"),
            ] {
                assert!(!is_valid_subject(subject.as_bytes()), "{subject:?}");
                assert!(!is_valid_literal_subject(subject.as_bytes()), "{subject:?}");
            }
        }
        // Other control bytes are not whitespace to the protocol.
        assert!(is_valid_subject(b"foo\x0bbar"));
    }

    #[test]
    fn subjects_are_bytes_not_necessarily_utf8() {
        assert!(is_valid_subject(b"foo.\xff\xfe.bar"));
        assert!(is_valid_literal_subject(b"\xc3\x28"));
        assert!(subject_matches_pattern(b"foo.*", b"foo.\xff"));
    }

    #[test]
    fn pedantic_publish_subjects_must_be_literal() {
        for invalid in [
            "",
            ".foo",
            "foo.",
            "foo..bar",
            "foo.bar.*",
            "foo.bar.>",
            "*",
            ">",
            "foo bar",
        ] {
            assert!(!is_valid_literal_subject(invalid.as_bytes()), "{invalid:?}");
        }
        for valid in [
            "foo", "foo*", "foo**", "foo.**", "foo*bar", "foo.*bar", "foo*.bar", "*bar", "foo>",
            "foo>>", "foo.>>", "foo>bar", "foo.>bar", "foo>.bar", ">bar",
        ] {
            assert!(is_valid_literal_subject(valid.as_bytes()), "{valid:?}");
        }
    }

    #[test]
    fn a_subject_is_literal_unless_a_whole_token_is_a_wildcard() {
        for literal in ["foo", "foo.bar", "foo*.bar", "foo.>bar", "**"] {
            assert!(subject_is_literal(literal.as_bytes()), "{literal:?}");
        }
        for wildcard in [
            "*",
            ">",
            "foo.*",
            "foo.>",
            "foo.*.>",
            "foo.*.bar",
            "foo.bar.>",
        ] {
            assert!(!subject_is_literal(wildcard.as_bytes()), "{wildcard:?}");
        }
    }

    #[test]
    fn queue_names_are_non_empty_without_whitespace() {
        assert!(is_valid_queue_name(b"workers"));
        assert!(is_valid_queue_name(b"workers.v2"));
        assert!(is_valid_queue_name(b"_sys_"));
        for invalid in ["", "a b", "a\tb", "a\r", "\nb", "\x0c"] {
            assert!(!is_valid_queue_name(invalid.as_bytes()), "{invalid:?}");
        }
    }

    #[test]
    fn wildcards_match_like_nats_server() {
        let cases: &[(&str, &str, bool)] = &[
            ("foo", "foo", true),
            ("bar", "foo", false),
            ("*", "foo", true),
            (">", "foo", true),
            (">", "foo.bar", true),
            ("foo.>", "foo.bar", true),
            ("bar.>", "foo.bar", false),
            ("stats.>", "stats.test.22", true),
            ("stats.*.*", "stats.test.22", true),
            ("foo", "foo.bar", false),
            ("stats.test.foos", "stats.test.foos", true),
            ("stats.test.foo", "stats.test.foos", false),
            ("stats.test.*", "stats.test", false),
            ("stats.*", "stats.test.foos", false),
            ("stats.*.*.foos", "stats.test.foos", false),
            // `>` needs at least one token, `*` exactly one non-empty token.
            ("foo.>", "foo", false),
            ("foo.*", "foo", false),
            ("foo.*", "foo.", false),
            ("*", "", false),
            (">", "", false),
            ("foo.*.baz", "foo..baz", false),
            (">", "foo..bar", false),
            // Wildcard bytes inside a longer token are literal.
            ("*bar", "*bar", true),
            ("*bar", "xbar", false),
            ("foo*", "foo*", true),
            ("foo*bar", "foo*bar", true),
            ("foo.***.bar", "foo.***.bar", true),
            (">bar", ">bar", true),
            ("foo>", "foo>", true),
            ("foo>", "foo.x", false),
            ("foo.>>>.bar", "foo.>>>.bar", true),
            // A published wildcard token is only matched by a wildcard pattern token.
            ("foo.*", "foo.*", true),
            ("foo.bar", "foo.*", false),
        ];
        for (pattern, literal, expected) in cases {
            assert_eq!(
                subject_matches_pattern(pattern.as_bytes(), literal.as_bytes()),
                *expected,
                "pattern {pattern:?} literal {literal:?}"
            );
        }
    }

    #[test]
    fn a_pattern_is_a_subset_only_when_everything_it_matches_is_covered() {
        let cases: &[(&str, &str, bool)] = &[
            ("foo", "foo", true),
            ("foo", "bar", false),
            ("foo.bar", "foo.*", true),
            ("foo.bar", "foo.>", true),
            ("foo.bar", ">", true),
            ("foo.*", "foo.*", true),
            ("foo.*", "foo.>", true),
            ("foo.*", "*.*", true),
            ("foo.*", ">", true),
            ("foo.*", "foo.bar", false),
            ("foo.*", "*.bar", false),
            ("foo.>", "foo.>", true),
            ("foo.>", ">", true),
            ("foo.>", "foo.*", false),
            ("foo.>", "foo.*.>", false),
            ("foo.*.>", "foo.>", true),
            ("*", "*", true),
            ("*", ">", true),
            (">", ">", true),
            (">", "*", false),
            ("foo", "foo.>", false),
            ("foo.bar.baz", "foo.*", false),
            ("foo", "foo.bar", false),
            ("foo*", "*", true),
            ("foo..bar", ">", false),
            ("", ">", false),
        ];
        for (pattern, of, expected) in cases {
            assert_eq!(
                pattern_is_subset_of(pattern.as_bytes(), of.as_bytes()),
                *expected,
                "pattern {pattern:?} within {of:?}"
            );
        }
    }

    #[test]
    fn token_count_counts_separated_tokens() {
        assert_eq!(token_count(b""), 0);
        assert_eq!(token_count(b"foo"), 1);
        assert_eq!(token_count(b"foo.bar.>"), 3);
        assert_eq!(token_count(b"foo..bar"), 3);
    }

    #[test]
    fn errors_name_the_rejected_value() {
        let error = SubjectError::InvalidSubject {
            subject: b"foo..bar".to_vec(),
        };
        assert_eq!(error.to_string(), "invalid subject \"foo..bar\"");
        let error = SubjectError::InvalidQueueGroup {
            queue_group: b"a b".to_vec(),
        };
        assert_eq!(error.to_string(), "invalid queue group \"a b\"");
    }
}
