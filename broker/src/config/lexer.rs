//! Character-level scanning of the NATS config language: keys, scalars, include paths, comments.
//!
//! The language is context sensitive (`127.0.0.1:4222` is one value but `port:4222` is a key and
//! a value), so the parser asks for the lexeme it expects next and the lexer scans exactly that.
//! Every lexeme carries the [`Position`] of its first character; every error names the position
//! where scanning failed. The lexer never reads files or the environment.

use std::sync::Arc;

use super::value::{DateTime, Position};
use super::ConfigError;

/// A key as written: bare, or `"quoted"`/`'quoted'` (raw, no escapes, like nats-server).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Key {
    pub text: String,
    pub quoted: bool,
    pub position: Position,
}

/// A single-token value. `Variable` holds the name after `$`.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Scalar {
    String(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
    DateTime(DateTime),
    Variable(String),
}

/// Power-of-1000 and power-of-1024 size suffixes, as nats-server accepts them.
const SIZE_SUFFIXES: &[(&str, i64)] = &[
    ("k", 1000),
    ("kb", 1 << 10),
    ("ki", 1 << 10),
    ("kib", 1 << 10),
    ("m", 1_000_000),
    ("mb", 1 << 20),
    ("mi", 1 << 20),
    ("mib", 1 << 20),
    ("g", 1_000_000_000),
    ("gb", 1 << 30),
    ("gi", 1 << 30),
    ("gib", 1 << 30),
    ("t", 1_000_000_000_000),
    ("tb", 1 << 40),
    ("ti", 1 << 40),
    ("tib", 1 << 40),
    ("p", 1_000_000_000_000_000),
    ("pb", 1 << 50),
    ("pi", 1 << 50),
    ("pib", 1 << 50),
    ("e", 1_000_000_000_000_000_000),
    ("eb", 1 << 60),
    ("ei", 1 << 60),
    ("eib", 1 << 60),
];

/// Unquoted `$2a$...` (and the other bcrypt prefixes) is a password hash, not a variable.
const BCRYPT_PREFIXES: &[&str] = &["2a$", "2b$", "2y$"];

pub(super) struct Lexer<'text> {
    text: &'text str,
    offset: usize,
    line: u32,
    column: u32,
    file: Arc<str>,
}

pub(super) fn is_newline(character: char) -> bool {
    character == '\n' || character == '\r'
}

pub(super) fn is_blank(character: char) -> bool {
    character == ' ' || character == '\t'
}

/// Characters that end an unquoted value (nats-server's set).
fn ends_bare_value(character: char) -> bool {
    is_newline(character) || is_blank(character) || matches!(character, ';' | ',' | ']' | '}')
}

/// Characters that end an unquoted key. `{` and `[` are included so `authorization{` works.
fn ends_bare_key(character: char) -> bool {
    character.is_whitespace() || matches!(character, '=' | ':' | '{' | '}' | '[' | ']' | ',' | ';')
}

fn describe(character: Option<char>) -> String {
    match character {
        None => "end of file".to_string(),
        Some('\n') | Some('\r') => "a new line".to_string(),
        Some(other) => format!("'{}'", other.escape_default()),
    }
}

impl<'text> Lexer<'text> {
    pub fn new(text: &'text str, file: Arc<str>) -> Self {
        Self {
            text,
            offset: 0,
            line: 1,
            column: 1,
            file,
        }
    }

    pub fn position(&self) -> Position {
        Position {
            file: Arc::clone(&self.file),
            line: self.line,
            column: self.column,
        }
    }

    pub fn peek(&self) -> Option<char> {
        self.text[self.offset..].chars().next()
    }

    fn peek_second(&self) -> Option<char> {
        self.text[self.offset..].chars().nth(1)
    }

    pub fn bump(&mut self) -> Option<char> {
        let character = self.peek()?;
        self.offset += character.len_utf8();
        if character == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(character)
    }

    pub fn error(position: Position, message: impl Into<String>) -> ConfigError {
        ConfigError::Syntax {
            position,
            message: message.into(),
        }
    }

    /// An error at the current position naming what was found there.
    pub fn unexpected(&self, expected: &str) -> ConfigError {
        Self::error(
            self.position(),
            format!("expected {expected} but found {}", describe(self.peek())),
        )
    }

    pub fn skip_blanks(&mut self) {
        while self.peek().is_some_and(is_blank) {
            self.bump();
        }
    }

    pub fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    pub fn at_comment(&self) -> bool {
        match self.peek() {
            Some('#') => true,
            Some('/') => self.peek_second() == Some('/'),
            _ => false,
        }
    }

    /// Skips to the end of the line, leaving the newline for the caller.
    pub fn skip_comment(&mut self) {
        while self.peek().is_some_and(|character| !is_newline(character)) {
            self.bump();
        }
    }

    /// Skips whitespace, new lines and comments.
    pub fn skip_trivia(&mut self) {
        loop {
            self.skip_whitespace();
            if !self.at_comment() {
                return;
            }
            self.skip_comment();
        }
    }

    pub fn scan_key(&mut self) -> Result<Key, ConfigError> {
        let position = self.position();
        match self.peek() {
            Some(quote @ ('"' | '\'')) => {
                self.bump();
                let start = self.offset;
                while self.peek().is_some_and(|character| character != quote) {
                    self.bump();
                }
                if self.peek().is_none() {
                    return Err(Self::error(position, "unterminated quoted key"));
                }
                let text = self.text[start..self.offset].to_string();
                self.bump();
                Ok(Key {
                    text,
                    quoted: true,
                    position,
                })
            }
            Some(separator @ ('=' | ':')) => Err(Self::error(
                position,
                format!("unexpected key separator '{separator}' where a key was expected"),
            )),
            _ => {
                let start = self.offset;
                while self.peek().is_some_and(|character| !ends_bare_key(character)) {
                    self.bump();
                }
                if self.offset == start {
                    return Err(self.unexpected("a key"));
                }
                Ok(Key {
                    text: self.text[start..self.offset].to_string(),
                    quoted: false,
                    position,
                })
            }
        }
    }

    /// The path after the `include` keyword: quoted (raw) or bare up to the end of the token.
    pub fn scan_include_path(&mut self) -> Result<(String, Position), ConfigError> {
        self.skip_blanks();
        let position = self.position();
        match self.peek() {
            Some(quote @ ('"' | '\'')) => {
                self.bump();
                let start = self.offset;
                while self
                    .peek()
                    .is_some_and(|character| character != quote && !is_newline(character))
                {
                    self.bump();
                }
                if self.peek() != Some(quote) {
                    return Err(Self::error(position, "unterminated include path"));
                }
                let path = self.text[start..self.offset].to_string();
                self.bump();
                Ok((path, position))
            }
            None => Err(self.unexpected("an include path")),
            Some(character)
                if is_newline(character)
                    || character.is_ascii_digit()
                    || matches!(character, '[' | '{' | '(' | '-' | '\\') =>
            {
                Err(self.unexpected("an include path"))
            }
            Some(_) => {
                let start = self.offset;
                while self.peek().is_some_and(|character| {
                    !is_newline(character) && !is_blank(character) && !matches!(character, ';' | '}')
                }) {
                    self.bump();
                }
                Ok((self.text[start..self.offset].to_string(), position))
            }
        }
    }

    /// A value that is not an array or a map.
    pub fn scan_scalar(&mut self) -> Result<Scalar, ConfigError> {
        let position = self.position();
        match self.peek() {
            Some('"') => {
                self.bump();
                self.scan_double_quoted(position).map(Scalar::String)
            }
            Some('\'') => {
                self.bump();
                self.scan_single_quoted(position).map(Scalar::String)
            }
            Some('(') => {
                self.bump();
                self.scan_block(position).map(Scalar::String)
            }
            Some('.') => Err(Self::error(
                position,
                "unexpected '.' at the start of a value: floats must start with a digit, and \
                 strings that start with '.' must be quoted",
            )),
            Some(character) if ends_bare_value(character) => Err(self.unexpected("a value")),
            None => Err(self.unexpected("a value")),
            Some(character) => {
                let numeric = character.is_ascii_digit() || character == '-';
                let (text, escaped) = self.scan_bare(position.clone())?;
                if escaped {
                    Ok(Scalar::String(text))
                } else if numeric {
                    classify_numeric(&text, position)
                } else {
                    classify_word(text, position)
                }
            }
        }
    }

    /// An unquoted run up to a value terminator. Escapes are honoured, as nats-server does.
    fn scan_bare(&mut self, position: Position) -> Result<(String, bool), ConfigError> {
        let mut bytes = Vec::new();
        let mut escaped = false;
        while let Some(character) = self.peek() {
            if ends_bare_value(character) {
                break;
            }
            self.bump();
            if character == '\\' {
                self.scan_escape(&mut bytes, false)?;
                escaped = true;
            } else {
                push_char(&mut bytes, character);
            }
        }
        Ok((into_string(bytes, position)?, escaped))
    }

    fn scan_double_quoted(&mut self, position: Position) -> Result<String, ConfigError> {
        let mut bytes = Vec::new();
        loop {
            match self.bump() {
                None => return Err(Self::error(position, "unterminated string")),
                Some('"') => return into_string(bytes, position),
                Some('\\') => self.scan_escape(&mut bytes, true)?,
                Some(character) => push_char(&mut bytes, character),
            }
        }
    }

    fn scan_single_quoted(&mut self, position: Position) -> Result<String, ConfigError> {
        let start = self.offset;
        loop {
            match self.peek() {
                None => return Err(Self::error(position, "unterminated string")),
                Some('\'') => {
                    let text = self.text[start..self.offset].to_string();
                    self.bump();
                    return Ok(text);
                }
                Some(_) => {
                    self.bump();
                }
            }
        }
    }

    /// `( ... )`: everything up to a `)` alone on its line, new lines included.
    fn scan_block(&mut self, position: Position) -> Result<String, ConfigError> {
        let start = self.offset;
        let mut previous = None;
        loop {
            match self.peek() {
                None => {
                    return Err(Self::error(
                        position,
                        "unterminated block string: a block ends with ')' alone on a line",
                    ))
                }
                Some(')') if previous == Some('\n') => {
                    let after = self.text[self.offset + 1..].chars().next();
                    if after.is_none_or(is_newline) {
                        let text = self.text[start..self.offset].to_string();
                        self.bump();
                        return Ok(text);
                    }
                }
                Some(_) => {}
            }
            previous = self.bump();
        }
    }

    /// After a backslash. JSON's `\/` and `\uXXXX` are accepted in quoted strings so that JSON
    /// config files parse.
    fn scan_escape(&mut self, bytes: &mut Vec<u8>, quoted: bool) -> Result<(), ConfigError> {
        let position = self.position();
        let character = self.bump();
        match character {
            Some('t') => bytes.push(b'\t'),
            Some('n') => bytes.push(b'\n'),
            Some('r') => bytes.push(b'\r'),
            Some('"') => bytes.push(b'"'),
            Some('\\') => bytes.push(b'\\'),
            Some('/') if quoted => bytes.push(b'/'),
            Some('x') => {
                let digits = self.take_hex(2, &position)?;
                bytes.push(u8::try_from(digits).map_err(|_| {
                    Self::error(position.clone(), "\\x escape out of range")
                })?);
            }
            Some('u') if quoted => {
                let mut code = self.take_hex(4, &position)?;
                if (0xD800..0xDC00).contains(&code) {
                    if self.bump() != Some('\\') || self.bump() != Some('u') {
                        return Err(Self::error(position, "unpaired surrogate in \\u escape"));
                    }
                    let low = self.take_hex(4, &position)?;
                    if !(0xDC00..0xE000).contains(&low) {
                        return Err(Self::error(position, "unpaired surrogate in \\u escape"));
                    }
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                }
                let decoded = char::from_u32(code)
                    .ok_or_else(|| Self::error(position, "invalid \\u escape"))?;
                push_char(bytes, decoded);
            }
            other => {
                let allowed = if quoted {
                    "\\t \\n \\r \\\" \\\\ \\xHH \\uHHHH \\/"
                } else {
                    "\\t \\n \\r \\\" \\\\ \\xHH"
                };
                return Err(Self::error(
                    position,
                    format!(
                        "invalid escape {} after '\\' (allowed: {allowed})",
                        describe(other)
                    ),
                ));
            }
        }
        Ok(())
    }

    fn take_hex(&mut self, count: usize, position: &Position) -> Result<u32, ConfigError> {
        let mut value = 0;
        for _ in 0..count {
            let digit = self.peek().and_then(|character| character.to_digit(16));
            let Some(digit) = digit else {
                return Err(Self::error(
                    position.clone(),
                    format!(
                        "expected {count} hexadecimal digits in escape but found {}",
                        describe(self.peek())
                    ),
                ));
            };
            self.bump();
            value = value * 16 + digit;
        }
        Ok(value)
    }
}

fn push_char(bytes: &mut Vec<u8>, character: char) {
    let mut buffer = [0; 4];
    bytes.extend_from_slice(character.encode_utf8(&mut buffer).as_bytes());
}

/// `\xHH` escapes may build multi-byte characters, so strings are assembled as bytes.
fn into_string(bytes: Vec<u8>, position: Position) -> Result<String, ConfigError> {
    String::from_utf8(bytes)
        .map_err(|_| Lexer::error(position, "string escapes do not form valid UTF-8"))
}

fn classify_word(text: String, position: Position) -> Result<Scalar, ConfigError> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" => return Ok(Scalar::Bool(true)),
        "false" | "no" | "off" => return Ok(Scalar::Bool(false)),
        _ => {}
    }
    let Some(name) = text.strip_prefix('$') else {
        return Ok(Scalar::String(text));
    };
    if BCRYPT_PREFIXES.iter().any(|prefix| name.starts_with(prefix)) {
        return Ok(Scalar::String(text));
    }
    if name.is_empty() {
        return Err(Lexer::error(position, "'$' must be followed by a variable name"));
    }
    Ok(Scalar::Variable(name.to_string()))
}

/// An unquoted run starting with a digit or '-': integer (with size suffix), float, datetime,
/// or (for runs like `127.0.0.1:4222` or `10s`) a string. Negative runs must be numbers.
fn classify_numeric(text: &str, position: Position) -> Result<Scalar, ConfigError> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let digits_end = unsigned
        .find(|character: char| !character.is_ascii_digit())
        .unwrap_or(unsigned.len());
    if digits_end == 0 {
        return Err(Lexer::error(
            position,
            format!("expected a digit after '-' in '{text}'"),
        ));
    }
    let (digits, rest) = unsigned.split_at(digits_end);
    let out_of_range = || Lexer::error(position.clone(), format!("integer '{text}' is out of range"));
    let integer = || -> Result<i64, ConfigError> {
        let magnitude: i64 = digits.parse().map_err(|_| out_of_range())?;
        Ok(if negative { -magnitude } else { magnitude })
    };

    if rest.is_empty() {
        return integer().map(Scalar::Integer);
    }
    let lowered = rest.to_ascii_lowercase();
    if let Some((_, multiplier)) = SIZE_SUFFIXES.iter().find(|(suffix, _)| *suffix == lowered) {
        return integer()?
            .checked_mul(*multiplier)
            .map(Scalar::Integer)
            .ok_or_else(out_of_range);
    }
    if let Some(fraction) = rest.strip_prefix('.') {
        let fraction_end = fraction
            .find(|character: char| !character.is_ascii_digit())
            .unwrap_or(fraction.len());
        if fraction_end == 0 {
            return Err(Lexer::error(
                position,
                format!("floats must have a digit after the '.' in '{text}'"),
            ));
        }
        if fraction_end == fraction.len() {
            return text
                .parse()
                .map(Scalar::Float)
                .map_err(|_| Lexer::error(position, format!("invalid float '{text}'")));
        }
    }
    if negative {
        return Err(Lexer::error(position, format!("invalid number '{text}'")));
    }
    if rest.starts_with('-') {
        return DateTime::parse(text).map(Scalar::DateTime).ok_or_else(|| {
            Lexer::error(
                position,
                format!("invalid datetime '{text}': expected full Zulu form YYYY-MM-DDTHH:MM:SSZ"),
            )
        });
    }
    Ok(Scalar::String(text.to_string()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn lexer(text: &str) -> Lexer<'_> {
        Lexer::new(text, Arc::from("test.conf"))
    }

    fn scalar(text: &str) -> Scalar {
        lexer(text).scan_scalar().unwrap()
    }

    fn scalar_error(text: &str) -> String {
        lexer(text).scan_scalar().unwrap_err().to_string()
    }

    #[test]
    fn integers_apply_decimal_and_binary_size_suffixes() {
        let cases = [
            ("42", 42),
            ("-7", -7),
            ("1k", 1000),
            ("1K", 1000),
            ("2kb", 2048),
            ("2KiB", 2048),
            ("2ki", 2048),
            ("3m", 3_000_000),
            ("3MB", 3 << 20),
            ("3mi", 3 << 20),
            ("3mib", 3 << 20),
            ("1g", 1_000_000_000),
            ("1gb", 1 << 30),
            ("1t", 1_000_000_000_000),
            ("1tib", 1 << 40),
            ("1p", 1_000_000_000_000_000),
            ("1pb", 1 << 50),
            ("1e", 1_000_000_000_000_000_000),
            ("1eb", 1 << 60),
            ("-1k", -1000),
        ];
        for (text, expected) in cases {
            assert_eq!(scalar(text), Scalar::Integer(expected), "{text}");
        }
    }

    #[test]
    fn integer_overflow_is_an_error() {
        assert_eq!(
            scalar_error("99999999999999999999"),
            "test.conf:1:1: integer '99999999999999999999' is out of range"
        );
        assert_eq!(
            scalar_error("9223372036854775807k"),
            "test.conf:1:1: integer '9223372036854775807k' is out of range"
        );
    }

    #[test]
    fn floats_need_digits_on_both_sides_of_the_point() {
        assert_eq!(scalar("1.5"), Scalar::Float(1.5));
        assert_eq!(scalar("-0.25"), Scalar::Float(-0.25));
        assert_eq!(
            scalar_error("1."),
            "test.conf:1:1: floats must have a digit after the '.' in '1.'"
        );
        assert!(scalar_error(".5").contains("floats must start with a digit"));
    }

    #[test]
    fn digit_led_runs_that_are_not_numbers_are_strings() {
        let cases = ["127.0.0.1:4222", "127.0.0.1", "10s", "1kx", "1.5s", "4222abc"];
        for text in cases {
            assert_eq!(scalar(text), Scalar::String(text.to_string()), "{text}");
        }
    }

    #[test]
    fn negative_runs_must_be_numbers() {
        assert_eq!(
            scalar_error("-x"),
            "test.conf:1:1: expected a digit after '-' in '-x'"
        );
        assert_eq!(scalar_error("-1x"), "test.conf:1:1: invalid number '-1x'");
    }

    #[test]
    fn datetimes_must_be_full_zulu_form() {
        assert_eq!(
            scalar("2023-01-02T03:04:05Z"),
            Scalar::DateTime(DateTime {
                year: 2023,
                month: 1,
                day: 2,
                hour: 3,
                minute: 4,
                second: 5
            })
        );
        assert!(scalar_error("12-34").contains("expected full Zulu form"));
        assert!(scalar_error("2023-13-01T00:00:00Z").contains("invalid datetime"));
    }

    #[test]
    fn booleans_are_case_insensitive_words() {
        for text in ["true", "TRUE", "yes", "Yes", "on", "ON"] {
            assert_eq!(scalar(text), Scalar::Bool(true), "{text}");
        }
        for text in ["false", "False", "no", "NO", "off", "Off"] {
            assert_eq!(scalar(text), Scalar::Bool(false), "{text}");
        }
        assert_eq!(scalar("\"true\""), Scalar::String("true".into()));
    }

    #[test]
    fn bare_strings_end_at_value_terminators() {
        for text in ["abc def", "abc,", "abc;", "abc]", "abc}", "abc\n", "abc\t"] {
            assert_eq!(scalar(text), Scalar::String("abc".into()), "{text:?}");
        }
        assert_eq!(scalar("foo#bar"), Scalar::String("foo#bar".into()));
    }

    #[test]
    fn double_quoted_strings_process_escapes() {
        assert_eq!(
            scalar(r#""a\tb\nc\rd\"e\\f\x41""#),
            Scalar::String("a\tb\nc\rd\"e\\fA".into())
        );
        assert_eq!(scalar(r#""\xc3\xa9""#), Scalar::String("é".into()));
        assert_eq!(scalar(r#""\u00e9\/""#), Scalar::String("é/".into()));
        assert_eq!(scalar(r#""\ud83d\ude00""#), Scalar::String("😀".into()));
        assert_eq!(scalar("\"a\nb\""), Scalar::String("a\nb".into()));
    }

    #[test]
    fn bare_strings_process_escapes_too() {
        assert_eq!(scalar(r"x\ty"), Scalar::String("x\ty".into()));
        assert_eq!(scalar(r"tr\x75e"), Scalar::String("true".into()));
    }

    #[test]
    fn invalid_escapes_name_their_position() {
        assert_eq!(
            scalar_error(r#""abc\q""#),
            r#"test.conf:1:6: invalid escape 'q' after '\' (allowed: \t \n \r \" \\ \xHH \uHHHH \/)"#
        );
        assert_eq!(
            scalar_error(r#""\xZZ""#),
            "test.conf:1:3: expected 2 hexadecimal digits in escape but found 'Z'"
        );
        assert_eq!(
            scalar_error(r#""\xff""#),
            "test.conf:1:1: string escapes do not form valid UTF-8"
        );
    }

    #[test]
    fn single_quoted_strings_are_raw() {
        assert_eq!(
            scalar(r"'C:\path\to\$x'"),
            Scalar::String(r"C:\path\to\$x".into())
        );
        assert_eq!(scalar_error("'abc"), "test.conf:1:1: unterminated string");
        assert_eq!(scalar_error("\"abc"), "test.conf:1:1: unterminated string");
    }

    #[test]
    fn block_strings_end_with_a_parenthesis_alone_on_a_line() {
        assert_eq!(
            scalar("(\n  12(34)56\n  (\n    7890\n  )\n)\nnext"),
            Scalar::String("\n  12(34)56\n  (\n    7890\n  )\n".into())
        );
        assert_eq!(scalar("(\nabc\n)"), Scalar::String("\nabc\n".into()));
        assert_eq!(
            scalar_error("(\nabc\n  )\n"),
            "test.conf:1:1: unterminated block string: a block ends with ')' alone on a line"
        );
    }

    #[test]
    fn dollar_words_are_variables_except_bcrypt_hashes() {
        assert_eq!(scalar("$PORT"), Scalar::Variable("PORT".into()));
        let hash = "$2a$11$W2zko751KUvVy59mUTWmpOdWjpEm5qhcCZRd05GjI/sSOT.xtiHyG";
        assert_eq!(scalar(hash), Scalar::String(hash.into()));
        assert_eq!(scalar("'$PORT'"), Scalar::String("$PORT".into()));
        assert_eq!(
            scalar_error("$ "),
            "test.conf:1:1: '$' must be followed by a variable name"
        );
    }

    #[test]
    fn missing_values_are_reported_at_their_position() {
        assert_eq!(
            scalar_error("\n"),
            "test.conf:1:1: expected a value but found a new line"
        );
        assert_eq!(
            scalar_error(""),
            "test.conf:1:1: expected a value but found end of file"
        );
        assert_eq!(
            scalar_error("}"),
            "test.conf:1:1: expected a value but found '}'"
        );
    }

    #[test]
    fn keys_may_be_bare_or_quoted() {
        let key = lexer("port: 1").scan_key().unwrap();
        assert_eq!((key.text.as_str(), key.quoted), ("port", false));
        let key = lexer("\"my key\" = 1").scan_key().unwrap();
        assert_eq!((key.text.as_str(), key.quoted), ("my key", true));
        let key = lexer("'bar-1.2.3' = 1").scan_key().unwrap();
        assert_eq!(key.text, "bar-1.2.3");
        let key = lexer("authorization{").scan_key().unwrap();
        assert_eq!(key.text, "authorization");
        assert_eq!(
            lexer("= 1").scan_key().unwrap_err().to_string(),
            "test.conf:1:1: unexpected key separator '=' where a key was expected"
        );
    }

    #[test]
    fn positions_count_lines_and_columns_from_one() {
        let mut lexer = lexer("a\n  bc");
        lexer.skip_trivia();
        lexer.bump();
        lexer.skip_trivia();
        assert_eq!((lexer.position().line, lexer.position().column), (2, 3));
    }

    #[test]
    fn comments_run_to_the_end_of_the_line() {
        let mut lexer = lexer("# one\n// two\n  key");
        lexer.skip_trivia();
        assert_eq!(lexer.scan_key().unwrap().position.line, 3);
    }

    #[test]
    fn include_paths_may_be_quoted_or_bare() {
        assert_eq!(
            lexer(" ./a.conf\n").scan_include_path().unwrap().0,
            "./a.conf"
        );
        assert_eq!(
            lexer(" 'my dir/a.conf'").scan_include_path().unwrap().0,
            "my dir/a.conf"
        );
        assert_eq!(
            lexer(" \"b.conf\"").scan_include_path().unwrap().0,
            "b.conf"
        );
        assert_eq!(
            lexer(" [a]").scan_include_path().unwrap_err().to_string(),
            "test.conf:1:2: expected an include path but found '['"
        );
    }
}
