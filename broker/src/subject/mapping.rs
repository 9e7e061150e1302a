//! Moving a subject from one account's subject space to another's, for imports.
//!
//! Contract: [`SubjectMapping::new`] pairs a pattern with a destination that has the same
//! wildcards: as many `*` tokens, and a trailing `>` exactly when the pattern has one. A
//! subject matching the pattern maps to the destination with each `*` filled, in order, by
//! the token the pattern's `*` matched, and `>` by the remaining tokens. [`covers`] says
//! whether every subject matching one pattern also matches another (an export covering an
//! import). Both are pure; mapping allocates only the mapped subject.

/// A pattern and the destination its matches map to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectMapping {
    pattern: Vec<Vec<u8>>,
    destination: Vec<Vec<u8>>,
    identity: bool,
}

fn tokens(subject: &str) -> Vec<Vec<u8>> {
    subject
        .split('.')
        .map(|token| token.as_bytes().to_vec())
        .collect()
}

fn wildcards(tokens: &[Vec<u8>]) -> (usize, bool) {
    let singles = tokens
        .iter()
        .filter(|token| token.as_slice() == b"*")
        .count();
    let tail = tokens.last().is_some_and(|token| token.as_slice() == b">");
    (singles, tail)
}

impl SubjectMapping {
    pub fn new(pattern: &str, destination: &str) -> Result<Self, String> {
        let pattern_tokens = tokens(pattern);
        let destination_tokens = tokens(destination);
        if wildcards(&pattern_tokens) != wildcards(&destination_tokens) {
            return Err(format!(
                "{destination:?} must have the same wildcards as {pattern:?}"
            ));
        }
        Ok(Self {
            identity: pattern == destination,
            pattern: pattern_tokens,
            destination: destination_tokens,
        })
    }

    /// The destination subject for `subject`, which matches the pattern.
    pub fn map(&self, subject: &[u8]) -> Vec<u8> {
        if self.identity {
            return subject.to_vec();
        }
        let subject_tokens: Vec<&[u8]> = subject.split(|byte| *byte == b'.').collect();
        let mut captured = Vec::new();
        let mut tail: &[&[u8]] = &[];
        for (position, token) in self.pattern.iter().enumerate() {
            match token.as_slice() {
                b"*" => captured.push(subject_tokens.get(position).copied().unwrap_or_default()),
                b">" => tail = subject_tokens.get(position..).unwrap_or_default(),
                _ => {}
            }
        }
        let mut mapped = Vec::with_capacity(subject.len() + 16);
        let mut singles = captured.into_iter();
        for (position, token) in self.destination.iter().enumerate() {
            if position > 0 {
                mapped.push(b'.');
            }
            match token.as_slice() {
                b"*" => mapped.extend_from_slice(singles.next().unwrap_or(b"*")),
                b">" => mapped.extend_from_slice(&tail.join(&b"."[..])),
                literal => mapped.extend_from_slice(literal),
            }
        }
        mapped
    }
}

/// Whether every subject matching `inner` also matches `outer` (`foo.>` covers `foo.*.bar`).
pub fn covers(outer: &str, inner: &str) -> bool {
    super::pattern_is_subset_of(inner.as_bytes(), outer.as_bytes())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_wildcards_move_their_tokens() {
        let prefixed = SubjectMapping::new("orders.>", "from_a.orders.>").unwrap();
        assert_eq!(prefixed.map(b"orders.eu.1"), b"from_a.orders.eu.1");
        let shortened = SubjectMapping::new("req.*.v1", "api.*").unwrap();
        assert_eq!(shortened.map(b"req.eu.v1"), b"api.eu");
        let refused = SubjectMapping::new("req.*", "api").unwrap_err();
        assert!(refused.contains("same wildcards"), "{refused}");
        let moved = SubjectMapping::new("req.*.in.*", "api.*.*.x").unwrap();
        assert_eq!(moved.map(b"req.eu.in.7"), b"api.eu.7.x");
        let literal = SubjectMapping::new("help", "a.help").unwrap();
        assert_eq!(literal.map(b"help"), b"a.help");
        assert!(SubjectMapping::new("help.>", "help").is_err());
    }

    #[test]
    fn an_export_covers_the_imports_inside_it() {
        assert!(covers("foo.>", "foo.bar"));
        assert!(covers("foo.>", "foo.*.baz"));
        assert!(covers("foo.*", "foo.bar"));
        assert!(covers("foo.*", "foo.*"));
        assert!(covers(">", "anything.at.all"));
        assert!(!covers("foo.*", "foo.>"));
        assert!(!covers("foo.bar", "foo.*"));
        assert!(!covers("foo.>", "foo"));
        assert!(!covers("foo", "foo.bar"));
    }
}
