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
                while self
                    .peek()
                    .is_some_and(|character| !ends_bare_key(character))
                {
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
                    !is_newline(character)
                        && !is_blank(character)
                        && !matches!(character, ';' | '}')
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
                bytes.push(
                    u8::try_from(digits)
                        .map_err(|_| Self::error(position.clone(), "\\x escape out of range"))?,
                );
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
    if BCRYPT_PREFIXES
        .iter()
        .any(|prefix| name.starts_with(prefix))
    {
        return Ok(Scalar::String(text));
    }
    if name.is_empty() {
        return Err(Lexer::error(
            position,
            "'$' must be followed by a variable name",
        ));
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
    let out_of_range = || {
        Lexer::error(
            position.clone(),
            format!("integer '{text}' is out of range"),
        )
    };
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
#[path = "lexer_tests.rs"]
mod tests;
