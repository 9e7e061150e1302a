//! Configuration: the NATS `.conf` language, nats-server's options, and its command-line flags.
//!
//! The contract:
//!
//! - [`parse_command_line`] turns the arguments (without the program name) into a [`Command`]
//!   with Go `flag` semantics, as nats-server parses them. It does no I/O.
//! - [`resolve`] builds the [`ServerOptions`] to run with: nats-server's defaults, then the
//!   config file named by `-c` (if any), then the flags on top, then cross-field validation.
//!   Call it again on reload: flags keep overriding the file.
//! - [`load`] reads one config file (and its includes) into validated options.
//! - Parsing is pure: files and environment variables are read only through [`Sources`], so
//!   [`MemorySources`] feeds tests and rendered configs from memory.
//! - Every error tied to a place in a file displays as `file:line:column: message` (1-based
//!   line and column). Unknown options are not errors: they are returned as
//!   `ServerOptions::warnings`, worded like nats-server's (`file:line:column: unknown field
//!   "x"`), for the caller to print. Options and flags of features Tern lacks yet are errors
//!   that say so.
//! - Reading is bounded: file size, include depth, variable chains, values copied by variables
//!   and nesting all have limits ([`MAX_FILE_SIZE`], [`MAX_INCLUDE_DEPTH`],
//!   [`MAX_VARIABLE_DEPTH`], [`MAX_EXPANDED_VALUES`], [`MAX_NESTING_DEPTH`]).
//!
//! Where nats-server 2.9 differs, it is on purpose: line 1 columns count from 1 like every
//! other line (nats-server counts them from 0), and unknown fields are warnings where
//! nats-server refuses to start.

mod cli;
mod duration;
mod lexer;
mod options;
mod parser;
mod value;

use std::path::{Path, PathBuf};

use crate::options::ServerOptions;

pub use cli::{apply_flags, parse_command_line, usage, Command, Flags, SignalCommand};
pub use options::{options_from_map, validate};
pub use parser::{
    parse_file, parse_str, MemorySources, Sources, SystemSources, MAX_FILE_SIZE, MAX_INCLUDE_DEPTH,
    MAX_NESTING_DEPTH, MAX_VARIABLE_DEPTH,
};
pub use value::{DateTime, Entry, Map, Position, Value, ValueKind};

/// Everything that can go wrong reading configuration or command-line flags.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{position}: {message}")]
    Syntax { position: Position, message: String },

    #[error("{position}: {message}")]
    Invalid { position: Position, message: String },

    #[error("{position}: {name:?} is not supported yet")]
    Unsupported { position: Position, name: String },

    #[error("{position}: variable reference for {name:?} can not be found: no earlier key and no environment variable has that name")]
    UndefinedVariable { position: Position, name: String },

    #[error("{position}: variable reference cycle: {chain}")]
    VariableCycle { position: Position, chain: String },

    #[error(
        "{position}: environment variable {name:?} could not be parsed as a config value: {source}"
    )]
    EnvironmentVariable {
        position: Position,
        name: String,
        source: Box<ConfigError>,
    },

    #[error("error reading config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("{position}: error reading include file {}: {source}", path.display())]
    Include {
        position: Position,
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("{}: file is larger than {limit} bytes", path.display())]
    FileTooLarge { path: PathBuf, limit: usize },

    /// Options that are each valid but do not fit together.
    #[error("{message}")]
    Inconsistent { message: String },

    /// Everything wrong with one file, reported together as nats-server does.
    #[error("{}", join_lines(.0))]
    Multiple(Vec<ConfigError>),

    #[error("unknown flag {flag} (see --help)")]
    UnknownFlag { flag: String },

    #[error("bad flag syntax: {argument}")]
    BadFlagSyntax { argument: String },

    #[error("flag {flag} needs a value")]
    MissingFlagValue { flag: String },

    #[error("invalid value {value:?} for flag {flag}: {reason}")]
    InvalidFlagValue {
        flag: String,
        value: String,
        reason: String,
    },

    #[error("flag {flag} is not supported yet")]
    UnsupportedFlag { flag: String },

    #[error(
        "unrecognized command {argument:?}: only \"version\" or \"help\" may follow the flags"
    )]
    UnrecognizedCommand { argument: String },

    #[error("-t checks a config file: name it with -c or --config")]
    CheckWithoutConfig,

    #[error("invalid signal {value:?}: {reason}")]
    InvalidSignal { value: String, reason: String },
}

fn join_lines(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads, parses and validates a config file from disk.
pub fn load(path: &Path) -> Result<ServerOptions, ConfigError> {
    load_with(path, &SystemSources)
}

/// [`load`] with files and environment variables read through `sources`.
pub fn load_with(path: &Path, sources: &dyn Sources) -> Result<ServerOptions, ConfigError> {
    let map = parse_file(path, sources)?;
    finish_loading(&map, path)
}

/// [`load`] for config text already in memory; `path` names it in positions and anchors
/// relative includes.
pub fn load_str(
    text: &str,
    path: &Path,
    sources: &dyn Sources,
) -> Result<ServerOptions, ConfigError> {
    let map = parse_str(text, path, sources)?;
    finish_loading(&map, path)
}

fn finish_loading(map: &Map, path: &Path) -> Result<ServerOptions, ConfigError> {
    let mut options = options_from_map(map)?;
    options.config_file = Some(path.to_path_buf());
    validate(&options)?;
    Ok(options)
}

/// The options to run with: defaults, then the config file from `-c` if any, then the flags.
pub fn resolve(flags: &Flags) -> Result<ServerOptions, ConfigError> {
    resolve_with(flags, &SystemSources)
}

/// [`resolve`] with files and environment variables read through `sources`.
pub fn resolve_with(flags: &Flags, sources: &dyn Sources) -> Result<ServerOptions, ConfigError> {
    let mut options = match &flags.config_file {
        Some(path) => load_with(path, sources)?,
        None => ServerOptions::default(),
    };
    apply_flags(&mut options, flags);
    validate(&options)?;
    Ok(options)
}

#[cfg(test)]
#[path = "realistic_tests.rs"]
mod realistic_tests;
