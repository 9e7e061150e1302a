//! The structure of the NATS config language: maps, arrays, `include`, and `$variable`s.
//!
//! Parsing is pure apart from [`Sources`], through which included files and environment
//! variables are read, so tests feed both from memory. Semantics follow nats-server:
//!
//! - `include path` merges the included file's keys into the enclosing map at that point; the
//!   path is relative to the including file; the included file cannot see the includer's keys.
//! - `$NAME` resolves to a key defined earlier in an enclosing map (innermost first), then to
//!   environment variable `NAME`, whose text is parsed as a config value (so `4222` is an
//!   integer). References from environment values to further variables are followed, cycles are
//!   errors.
//! - A whole file may be wrapped in `{ }`, which is how JSON files parse.
//!
//! Bounded: file size, include depth, variable chain length and nesting depth all have limits.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use super::lexer::{is_newline, Lexer, Scalar};
use super::value::{Entry, Map, Position, Value, ValueKind};
use super::ConfigError;

/// Largest config file, included file, or environment value that will be read.
pub const MAX_FILE_SIZE: usize = 4 * 1024 * 1024;
/// How deep `include` may nest.
pub const MAX_INCLUDE_DEPTH: usize = 10;
/// How many environment variables may refer to one another in a chain.
pub const MAX_VARIABLE_DEPTH: usize = 10;
/// How deep maps and arrays may nest.
pub const MAX_NESTING_DEPTH: usize = 64;
/// How many values `$variable` references may copy in all: each reference copies the value it
/// names, so without a limit a few lines that double a list could fill memory.
pub const MAX_EXPANDED_VALUES: usize = 100_000;

/// Where the parser reads included files and environment variables from.
pub trait Sources {
    fn read_file(&self, path: &Path) -> std::io::Result<String>;
    fn environment_variable(&self, name: &str) -> Option<String>;
}

/// The real file system and process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemSources;

impl Sources for SystemSources {
    fn read_file(&self, path: &Path) -> std::io::Result<String> {
        // Reading one byte past the limit is enough to know the file is too large, without
        // loading an arbitrarily large file into memory.
        let mut text = String::new();
        std::fs::File::open(path)?
            .take(MAX_FILE_SIZE as u64 + 1)
            .read_to_string(&mut text)?;
        Ok(text)
    }

    fn environment_variable(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// Files and environment variables held in memory, for tests and for callers that render a
/// config rather than read one.
#[derive(Debug, Clone, Default)]
pub struct MemorySources {
    files: HashMap<PathBuf, String>,
    environment: HashMap<String, String>,
}

impl MemorySources {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_file(mut self, path: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        self.files.insert(path.into(), text.into());
        self
    }

    pub fn with_environment_variable(
        mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        self.environment.insert(name.into(), value.into());
        self
    }
}

impl Sources for MemorySources {
    fn read_file(&self, path: &Path) -> std::io::Result<String> {
        self.files.get(path).cloned().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory")
        })
    }

    fn environment_variable(&self, name: &str) -> Option<String> {
        self.environment.get(name).cloned()
    }
}

/// Reads and parses a config file and everything it includes.
pub fn parse_file(path: &Path, sources: &dyn Sources) -> Result<Map, ConfigError> {
    let text = sources
        .read_file(path)
        .map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    check_size(&text, || ConfigError::FileTooLarge {
        path: path.to_path_buf(),
        limit: MAX_FILE_SIZE,
    })?;
    parse_str(&text, path, sources)
}

/// Parses config text as if it had been read from `path` (which names it in positions and is
/// the base for relative includes).
pub fn parse_str(text: &str, path: &Path, sources: &dyn Sources) -> Result<Map, ConfigError> {
    let mut state = State {
        sources,
        include_chain: vec![join_clean(Path::new(""), path)],
        variable_chain: Vec::new(),
        expanded_values: 0,
    };
    let label: Arc<str> = Arc::from(path.display().to_string());
    let directory = path.parent().map(Path::to_path_buf).unwrap_or_default();
    Parser::new(text, label, directory, &mut state).parse_document()
}

fn check_size(text: &str, error: impl FnOnce() -> ConfigError) -> Result<(), ConfigError> {
    if text.len() > MAX_FILE_SIZE {
        return Err(error());
    }
    Ok(())
}

/// What nested parsers (includes, environment values) share.
struct State<'sources> {
    sources: &'sources dyn Sources,
    include_chain: Vec<PathBuf>,
    variable_chain: Vec<String>,
    expanded_values: usize,
}

struct Parser<'text, 'state, 'sources> {
    lexer: Lexer<'text>,
    directory: PathBuf,
    /// The maps being built, outermost first: the scopes `$variables` resolve against.
    scopes: Vec<Map>,
    depth: usize,
    state: &'state mut State<'sources>,
}

impl<'text, 'state, 'sources> Parser<'text, 'state, 'sources> {
    fn new(
        text: &'text str,
        label: Arc<str>,
        directory: PathBuf,
        state: &'state mut State<'sources>,
    ) -> Self {
        Self {
            lexer: Lexer::new(text, label),
            directory,
            scopes: Vec::new(),
            depth: 0,
            state,
        }
    }

    fn parse_document(mut self) -> Result<Map, ConfigError> {
        self.lexer.skip_trivia();
        let wrapped = self.lexer.peek() == Some('{');
        let opening = self.lexer.position();
        if wrapped {
            self.lexer.bump();
        }
        self.scopes.push(Map::new());
        self.parse_entries(wrapped.then_some(&opening))?;
        if wrapped {
            self.lexer.skip_trivia();
            if self.lexer.peek().is_some() {
                return Err(self.lexer.unexpected("end of file after the closing '}'"));
            }
        }
        Ok(self.scopes.pop().unwrap_or_default())
    }

    /// Entries of the innermost scope, up to the `}` matching `opening` or, at top level, the
    /// end of the file.
    fn parse_entries(&mut self, opening: Option<&Position>) -> Result<(), ConfigError> {
        loop {
            self.lexer.skip_trivia();
            match (self.lexer.peek(), opening) {
                (None, None) => return Ok(()),
                (None, Some(opening)) => {
                    return Err(Lexer::error(
                        opening.clone(),
                        "map is never closed: expected '}' before end of file",
                    ))
                }
                (Some('}'), Some(_)) => {
                    self.lexer.bump();
                    return Ok(());
                }
                _ => {}
            }
            let key = self.lexer.scan_key()?;
            let is_include = !key.quoted
                && key.text.eq_ignore_ascii_case("include")
                && self.lexer.peek().is_some_and(char::is_whitespace);
            if is_include {
                self.parse_include()?;
            } else {
                self.lexer.skip_whitespace();
                if matches!(self.lexer.peek(), Some('=' | ':')) {
                    self.lexer.bump();
                    self.lexer.skip_blanks();
                }
                let value = self.parse_value()?;
                self.current_scope().insert(Entry {
                    key: key.text,
                    key_position: key.position,
                    value,
                    used_as_variable: false,
                });
            }
            self.parse_entry_end(opening.is_some())?;
        }
    }

    fn current_scope(&mut self) -> &mut Map {
        if self.scopes.is_empty() {
            self.scopes.push(Map::new());
        }
        let last = self.scopes.len() - 1;
        &mut self.scopes[last]
    }

    /// After a value: blanks, an optional comment, then a new line, ',' or ';', the end of the
    /// enclosing map, or the end of the file.
    fn parse_entry_end(&mut self, in_map: bool) -> Result<(), ConfigError> {
        self.lexer.skip_blanks();
        if self.lexer.at_comment() {
            self.lexer.skip_comment();
        }
        match self.lexer.peek() {
            None => Ok(()),
            Some(character) if is_newline(character) => Ok(()),
            Some(',' | ';') => {
                self.lexer.bump();
                Ok(())
            }
            Some('}') if in_map => Ok(()),
            Some(_) => Err(self
                .lexer
                .unexpected("a new line, ',' or ';' after the value")),
        }
    }

    fn parse_value(&mut self) -> Result<Value, ConfigError> {
        let position = self.lexer.position();
        match self.lexer.peek() {
            Some('[') => {
                self.enter(&position)?;
                self.lexer.bump();
                let items = self.parse_array_items(&position)?;
                self.depth -= 1;
                Ok(Value {
                    kind: ValueKind::Array(items),
                    position,
                })
            }
            Some('{') => {
                self.enter(&position)?;
                self.lexer.bump();
                self.scopes.push(Map::new());
                let parsed = self.parse_entries(Some(&position));
                let map = self.scopes.pop().unwrap_or_default();
                parsed?;
                self.depth -= 1;
                Ok(Value {
                    kind: ValueKind::Map(map),
                    position,
                })
            }
            _ => {
                let kind = match self.lexer.scan_scalar()? {
                    Scalar::String(text) => ValueKind::String(text),
                    Scalar::Integer(number) => ValueKind::Integer(number),
                    Scalar::Float(number) => ValueKind::Float(number),
                    Scalar::Bool(flag) => ValueKind::Bool(flag),
                    Scalar::DateTime(datetime) => ValueKind::DateTime(datetime),
                    Scalar::Variable(name) => return self.resolve_variable(&name, position),
                };
                Ok(Value { kind, position })
            }
        }
    }

    fn enter(&mut self, position: &Position) -> Result<(), ConfigError> {
        if self.depth >= MAX_NESTING_DEPTH {
            return Err(Lexer::error(
                position.clone(),
                format!("maps and arrays nest deeper than {MAX_NESTING_DEPTH} levels"),
            ));
        }
        self.depth += 1;
        Ok(())
    }

    fn parse_array_items(&mut self, opening: &Position) -> Result<Vec<Value>, ConfigError> {
        let mut items = Vec::new();
        loop {
            self.lexer.skip_trivia();
            match self.lexer.peek() {
                None => {
                    return Err(Lexer::error(
                        opening.clone(),
                        "array is never closed: expected ']' before end of file",
                    ))
                }
                Some(']') => {
                    self.lexer.bump();
                    return Ok(items);
                }
                Some(',') => return Err(self.lexer.unexpected("an array value")),
                Some(_) => {}
            }
            items.push(self.parse_value()?);
            self.lexer.skip_blanks();
            if self.lexer.at_comment() {
                self.lexer.skip_comment();
            }
            match self.lexer.peek() {
                Some(',') => {
                    self.lexer.bump();
                }
                Some(']') => {
                    self.lexer.bump();
                    return Ok(items);
                }
                Some(character) if is_newline(character) => {}
                None => {
                    return Err(Lexer::error(
                        opening.clone(),
                        "array is never closed: expected ']' before end of file",
                    ))
                }
                Some(_) => return Err(self.lexer.unexpected("',' or ']' after an array value")),
            }
        }
    }

    fn parse_include(&mut self) -> Result<(), ConfigError> {
        let (relative, position) = self.lexer.scan_include_path()?;
        let path = join_clean(&self.directory, Path::new(&relative));
        if self.state.include_chain.len() > MAX_INCLUDE_DEPTH {
            return Err(Lexer::error(
                position,
                format!("includes nest deeper than {MAX_INCLUDE_DEPTH} files"),
            ));
        }
        if self.state.include_chain.contains(&path) {
            let mut chain: Vec<String> = self
                .state
                .include_chain
                .iter()
                .map(|included| included.display().to_string())
                .collect();
            chain.push(path.display().to_string());
            return Err(Lexer::error(
                position,
                format!("include cycle: {}", chain.join(" -> ")),
            ));
        }
        let text = self
            .state
            .sources
            .read_file(&path)
            .map_err(|source| ConfigError::Include {
                position: position.clone(),
                path: path.clone(),
                source,
            })?;
        check_size(&text, || ConfigError::FileTooLarge {
            path: path.clone(),
            limit: MAX_FILE_SIZE,
        })?;
        let label: Arc<str> = Arc::from(path.display().to_string());
        let directory = path.parent().map(Path::to_path_buf).unwrap_or_default();
        self.state.include_chain.push(path);
        let included = Parser::new(&text, label, directory, self.state).parse_document();
        self.state.include_chain.pop();
        for entry in included?.into_entries() {
            self.current_scope().insert(entry);
        }
        Ok(())
    }

    fn resolve_variable(&mut self, name: &str, position: Position) -> Result<Value, ConfigError> {
        for scope in self.scopes.iter_mut().rev() {
            if let Some(entry) = scope.get_mut(name) {
                entry.used_as_variable = true;
                Self::charge_expansion(self.state, &entry.value, &position)?;
                let mut value = entry.value.clone();
                value.position = position;
                return Ok(value);
            }
        }
        let value = self.resolve_environment_variable(name, position)?;
        Self::charge_expansion(self.state, &value, &value.position)?;
        Ok(value)
    }

    fn charge_expansion(
        state: &mut State<'_>,
        value: &Value,
        position: &Position,
    ) -> Result<(), ConfigError> {
        let budget = MAX_EXPANDED_VALUES.saturating_sub(state.expanded_values);
        let count = value.count_up_to(budget);
        if count > budget {
            return Err(Lexer::error(
                position.clone(),
                format!("variable references copy more than {MAX_EXPANDED_VALUES} values in all"),
            ));
        }
        state.expanded_values += count;
        Ok(())
    }

    fn resolve_environment_variable(
        &mut self,
        name: &str,
        position: Position,
    ) -> Result<Value, ConfigError> {
        if self.state.variable_chain.iter().any(|seen| seen == name) {
            let mut chain: Vec<String> = self
                .state
                .variable_chain
                .iter()
                .map(|seen| format!("${seen}"))
                .collect();
            chain.push(format!("${name}"));
            return Err(ConfigError::VariableCycle {
                position,
                chain: chain.join(" -> "),
            });
        }
        if self.state.variable_chain.len() >= MAX_VARIABLE_DEPTH {
            return Err(Lexer::error(
                position,
                format!("variables refer to each other more than {MAX_VARIABLE_DEPTH} levels deep"),
            ));
        }
        let Some(text) = self.state.sources.environment_variable(name) else {
            return Err(ConfigError::UndefinedVariable {
                position,
                name: name.to_string(),
            });
        };
        let environment_error = |source: ConfigError| ConfigError::EnvironmentVariable {
            position: position.clone(),
            name: name.to_string(),
            source: Box::new(source),
        };
        check_size(&text, || {
            environment_error(Lexer::error(
                position.clone(),
                format!("value is larger than {MAX_FILE_SIZE} bytes"),
            ))
        })?;
        self.state.variable_chain.push(name.to_string());
        let label: Arc<str> = Arc::from(format!("${name}"));
        let directory = self.directory.clone();
        let parsed = Parser::new(&text, label, directory, self.state).parse_standalone_value();
        self.state.variable_chain.pop();
        let mut value = parsed.map_err(|source| match source {
            cycle @ ConfigError::VariableCycle { .. } => cycle,
            other => environment_error(other),
        })?;
        value.relocate(&position);
        Ok(value)
    }

    /// The whole text as one value, as an environment variable's text is read.
    fn parse_standalone_value(mut self) -> Result<Value, ConfigError> {
        self.scopes.push(Map::new());
        self.lexer.skip_blanks();
        if self.lexer.peek().is_none() {
            // nats-server reads an empty environment variable as an empty string.
            return Ok(Value {
                kind: ValueKind::String(String::new()),
                position: self.lexer.position(),
            });
        }
        let value = self.parse_value()?;
        self.lexer.skip_whitespace();
        if self.lexer.peek().is_some() {
            return Err(self.lexer.unexpected("end of value"));
        }
        Ok(value)
    }
}

/// Joins and removes `.` and `a/..` components lexically, so positions name included files
/// the way a reader would write them.
fn join_clean(directory: &Path, relative: &Path) -> PathBuf {
    let mut cleaned = PathBuf::new();
    for component in directory.join(relative).components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                let popped = matches!(cleaned.components().next_back(), Some(Component::Normal(_)))
                    && cleaned.pop();
                if !popped {
                    cleaned.push("..");
                }
            }
            other => cleaned.push(other),
        }
    }
    cleaned
}

#[cfg(test)]
#[path = "parser_tests.rs"]
mod tests;
