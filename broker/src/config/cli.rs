//! nats-server's command-line flags, parsed with Go `flag` semantics, and applied on top of the
//! options read from a config file.
//!
//! Go `flag` rules: `-x` and `--x` are the same flag; a value is given as `-x=v` or `-x v` (the
//! next argument is taken whatever it looks like, so `-p -1` works); a boolean flag takes no
//! separate value but accepts `-x=true`/`-x=false`; `--` ends the flags; the first argument that
//! is not a flag ends them too, and it may only be `version` or `help`. A repeated flag keeps
//! its last value. Flags of features Tern lacks yet are recognised and refused by name
//! (boolean ones are accepted when set to false, since that asks for nothing).

use std::path::PathBuf;

use crate::options::{defaults, ClusterOptions, Listen, RouteUrl, ServerOptions, TlsOptions};

use super::options::{client_port, monitoring_port};
use super::ConfigError;

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Run(Flags),
    Help,
    Version,
    /// `-sl <command>[=<pid or pid file>]`: signal a running server and exit.
    Signal {
        command: SignalCommand,
        pid_or_pid_file: Option<String>,
    },
    /// `-t`: check the config file named by `-c` and exit.
    TestConfig(Flags),
}

/// The commands `-sl` can send to a running server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalCommand {
    /// `ldm`: enter lame duck mode.
    LameDuckMode,
    Quit,
    Stop,
    Terminate,
    /// `reopen`: reopen the log file.
    Reopen,
    Reload,
}

impl SignalCommand {
    const ALL: [SignalCommand; 6] = [
        SignalCommand::LameDuckMode,
        SignalCommand::Quit,
        SignalCommand::Stop,
        SignalCommand::Terminate,
        SignalCommand::Reopen,
        SignalCommand::Reload,
    ];

    /// The word used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            SignalCommand::LameDuckMode => "ldm",
            SignalCommand::Quit => "quit",
            SignalCommand::Stop => "stop",
            SignalCommand::Terminate => "term",
            SignalCommand::Reopen => "reopen",
            SignalCommand::Reload => "reload",
        }
    }

    pub fn parse(word: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|command| command.as_str() == word)
    }
}

/// The flags that were given; `None` leaves the config file's value (or the default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    pub config_file: Option<PathBuf>,
    pub host: Option<String>,
    /// As nats-server: `-1` asks the OS for a port, `0` means the default port.
    pub port: Option<i64>,
    pub server_name: Option<String>,
    pub client_advertise: Option<String>,
    /// As nats-server: `0` turns monitoring off, `-1` asks the OS for a port.
    pub http_port: Option<i64>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
    pub log_file: Option<PathBuf>,
    pub debug: Option<bool>,
    pub trace: Option<bool>,
    pub logtime: Option<bool>,
    pub logtime_utc: Option<bool>,
    pub pid_file: Option<PathBuf>,
    pub ports_file_dir: Option<PathBuf>,
    pub watch_config: Option<bool>,
    /// `--cluster`: the route listener as a URL, optionally with the credentials routes must
    /// present (`nats://user:pass@host:port`; port `-1` for a random one).
    pub cluster_listen: Option<ClusterListenFlag>,
    pub routes: Option<Vec<RouteUrl>>,
    pub cluster_name: Option<String>,
    pub cluster_advertise: Option<String>,
    pub no_advertise: Option<bool>,
    pub connect_retries: Option<u32>,
    /// `--tls`; `Some(false)` turns TLS off whatever the config file says.
    pub tls: Option<bool>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_ca_cert: Option<PathBuf>,
    pub tls_verify: Option<bool>,
}

/// The parsed `--cluster` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterListenFlag {
    pub host: String,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub password: Option<String>,
}

impl ClusterListenFlag {
    fn parse(text: &str) -> Result<Self, String> {
        // Port -1 (random) is not a URL port, so take it out before parsing the rest.
        let (text_for_url, random) = match text.strip_suffix(":-1") {
            Some(rest) => (format!("{rest}:1"), true),
            None => (text.to_string(), false),
        };
        let url = RouteUrl::parse(&text_for_url)?;
        Ok(Self {
            host: url.host,
            port: (!random).then_some(url.port),
            user: url.user,
            password: url.password,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Config,
    Host,
    Port,
    ServerName,
    ClientAdvertise,
    HttpPort,
    User,
    Password,
    Token,
    LogFile,
    Debug,
    Trace,
    DebugAndTrace,
    Logtime,
    LogtimeUtc,
    PidFile,
    PortsFileDir,
    WatchConfig,
    CheckConfig,
    Signal,
    Version,
    Help,
    ClusterListen,
    Routes,
    ClusterName,
    ClusterAdvertise,
    NoAdvertise,
    ConnectRetries,
    Tls,
    TlsCert,
    TlsKey,
    TlsCaCert,
    TlsVerify,
    Unsupported,
}

struct FlagSpec {
    name: &'static str,
    takes_value: bool,
    target: Target,
}

const fn value(name: &'static str, target: Target) -> FlagSpec {
    FlagSpec {
        name,
        takes_value: true,
        target,
    }
}

const fn switch(name: &'static str, target: Target) -> FlagSpec {
    FlagSpec {
        name,
        takes_value: false,
        target,
    }
}

const FLAGS: &[FlagSpec] = &[
    value("c", Target::Config),
    value("config", Target::Config),
    value("a", Target::Host),
    value("addr", Target::Host),
    value("net", Target::Host),
    value("p", Target::Port),
    value("port", Target::Port),
    value("n", Target::ServerName),
    value("name", Target::ServerName),
    value("server_name", Target::ServerName),
    value("client_advertise", Target::ClientAdvertise),
    value("m", Target::HttpPort),
    value("http_port", Target::HttpPort),
    value("user", Target::User),
    value("pass", Target::Password),
    value("auth", Target::Token),
    value("l", Target::LogFile),
    value("log", Target::LogFile),
    switch("D", Target::Debug),
    switch("debug", Target::Debug),
    switch("V", Target::Trace),
    switch("trace", Target::Trace),
    switch("VV", Target::Trace),
    switch("DV", Target::DebugAndTrace),
    switch("DVV", Target::DebugAndTrace),
    switch("T", Target::Logtime),
    switch("logtime", Target::Logtime),
    switch("logtime_utc", Target::LogtimeUtc),
    value("P", Target::PidFile),
    value("pid", Target::PidFile),
    value("ports_file_dir", Target::PortsFileDir),
    switch("watch_config", Target::WatchConfig),
    switch("t", Target::CheckConfig),
    value("sl", Target::Signal),
    value("signal", Target::Signal),
    switch("v", Target::Version),
    switch("version", Target::Version),
    switch("h", Target::Help),
    switch("help", Target::Help),
    value("cluster", Target::ClusterListen),
    value("cluster_listen", Target::ClusterListen),
    value("routes", Target::Routes),
    value("cluster_name", Target::ClusterName),
    value("cluster_advertise", Target::ClusterAdvertise),
    switch("no_advertise", Target::NoAdvertise),
    value("connect_retries", Target::ConnectRetries),
    switch("js", Target::Unsupported),
    switch("jetstream", Target::Unsupported),
    value("sd", Target::Unsupported),
    value("store_dir", Target::Unsupported),
    switch("tls", Target::Tls),
    value("tlscert", Target::TlsCert),
    value("tlskey", Target::TlsKey),
    value("tlscacert", Target::TlsCaCert),
    switch("tlsverify", Target::TlsVerify),
    value("ms", Target::Unsupported),
    value("https_port", Target::Unsupported),
    switch("s", Target::Unsupported),
    switch("syslog", Target::Unsupported),
    value("r", Target::Unsupported),
    value("remote_syslog", Target::Unsupported),
    value("log_size_limit", Target::Unsupported),
    value("max_traced_msg_len", Target::Unsupported),
    value("profile", Target::Unsupported),
    switch("help_tls", Target::Unsupported),
];

/// Flags and switches seen so far.
#[derive(Default)]
struct Parsed {
    flags: Flags,
    check_config: bool,
    signal: Option<String>,
    version: bool,
    help: bool,
}

/// Parses the arguments that follow the program name.
pub fn parse_command_line(arguments: &[String]) -> Result<Command, ConfigError> {
    let mut parsed = Parsed::default();
    let mut remaining = arguments.iter();
    let mut first_positional = None;
    while let Some(argument) = remaining.next() {
        if argument.len() < 2 || !argument.starts_with('-') {
            first_positional = Some(argument);
            break;
        }
        if argument == "--" {
            first_positional = remaining.next();
            break;
        }
        let body = argument
            .strip_prefix("--")
            .unwrap_or_else(|| &argument[1..]);
        if body.is_empty() || body.starts_with('-') || body.starts_with('=') {
            return Err(ConfigError::BadFlagSyntax {
                argument: argument.clone(),
            });
        }
        let (name, inline_value) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (body, None),
        };
        let spelled = &argument[..argument.len() - body.len() + name.len()];
        let Some(spec) = FLAGS.iter().find(|spec| spec.name == name) else {
            return Err(ConfigError::UnknownFlag {
                flag: spelled.to_string(),
            });
        };
        if spec.takes_value {
            let value = match inline_value {
                Some(value) => value,
                None => remaining.next().map(String::as_str).ok_or_else(|| {
                    ConfigError::MissingFlagValue {
                        flag: spelled.to_string(),
                    }
                })?,
            };
            set_value(&mut parsed, spec.target, spelled, value)?;
        } else {
            let enabled = match inline_value {
                Some(value) => parse_bool(spelled, value)?,
                None => true,
            };
            set_switch(&mut parsed, spec.target, spelled, enabled)?;
        }
    }
    command(parsed, first_positional)
}

fn command(parsed: Parsed, first_positional: Option<&String>) -> Result<Command, ConfigError> {
    if parsed.version {
        return Ok(Command::Version);
    }
    if parsed.help {
        return Ok(Command::Help);
    }
    if let Some(argument) = first_positional {
        return match argument.to_ascii_lowercase().as_str() {
            "version" => Ok(Command::Version),
            "help" => Ok(Command::Help),
            _ => Err(ConfigError::UnrecognizedCommand {
                argument: argument.clone(),
            }),
        };
    }
    if let Some(signal) = parsed.signal {
        return parse_signal(&signal);
    }
    check_tls_flags(&parsed.flags)?;
    if parsed.check_config {
        if parsed.flags.config_file.is_none() {
            return Err(ConfigError::CheckWithoutConfig);
        }
        return Ok(Command::TestConfig(parsed.flags));
    }
    Ok(Command::Run(parsed.flags))
}

fn parse_signal(value: &str) -> Result<Command, ConfigError> {
    let invalid = |reason: String| ConfigError::InvalidSignal {
        value: value.to_string(),
        reason,
    };
    let mut parts = value.split('=');
    let word = parts.next().unwrap_or_default();
    let target = parts.next();
    if parts.next().is_some() {
        return Err(invalid(
            "expected <command>[=<pid or pid file>]".to_string(),
        ));
    }
    let command = SignalCommand::parse(word).ok_or_else(|| {
        let known: Vec<&str> = SignalCommand::ALL
            .iter()
            .map(|command| command.as_str())
            .collect();
        invalid(format!(
            "unknown command {word:?}, expected one of {}",
            known.join(", ")
        ))
    })?;
    Ok(Command::Signal {
        command,
        pid_or_pid_file: target
            .filter(|target| !target.is_empty())
            .map(str::to_string),
    })
}

/// Go's `strconv.ParseBool` spellings.
fn parse_bool(flag: &str, value: &str) -> Result<bool, ConfigError> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(ConfigError::InvalidFlagValue {
            flag: flag.to_string(),
            value: value.to_string(),
            reason: "expected true or false".to_string(),
        }),
    }
}

fn parse_port(
    flag: &str,
    value: &str,
    check: fn(i64) -> Result<(), String>,
) -> Result<i64, ConfigError> {
    let invalid = |reason: String| ConfigError::InvalidFlagValue {
        flag: flag.to_string(),
        value: value.to_string(),
        reason,
    };
    let port: i64 = value
        .parse()
        .map_err(|_| invalid("expected an integer".to_string()))?;
    check(port).map_err(invalid)?;
    Ok(port)
}

fn set_value(
    parsed: &mut Parsed,
    target: Target,
    flag: &str,
    value: &str,
) -> Result<(), ConfigError> {
    let flags = &mut parsed.flags;
    let text = || Some(value.to_string());
    let path = || Some(PathBuf::from(value));
    match target {
        Target::Config => flags.config_file = path(),
        Target::Host => flags.host = text(),
        Target::Port => {
            let port = parse_port(flag, value, |port| client_port(port).map(drop))?;
            flags.port = Some(port);
        }
        Target::ServerName => flags.server_name = text(),
        Target::ClientAdvertise => flags.client_advertise = text(),
        Target::HttpPort => {
            let port = parse_port(flag, value, |port| monitoring_port(port).map(drop))?;
            flags.http_port = Some(port);
        }
        Target::User => flags.user = text(),
        Target::Password => flags.password = text(),
        Target::Token => flags.token = text(),
        Target::LogFile => flags.log_file = path(),
        Target::PidFile => flags.pid_file = path(),
        Target::PortsFileDir => flags.ports_file_dir = path(),
        Target::Signal => parsed.signal = text(),
        Target::TlsCert => flags.tls_cert = path(),
        Target::TlsKey => flags.tls_key = path(),
        Target::TlsCaCert => flags.tls_ca_cert = path(),
        Target::ClusterListen => {
            let listen = ClusterListenFlag::parse(value).map_err(|reason| {
                ConfigError::InvalidFlagValue {
                    flag: flag.to_string(),
                    value: value.to_string(),
                    reason,
                }
            })?;
            flags.cluster_listen = Some(listen);
        }
        Target::Routes => {
            let routes = value
                .split(',')
                .map(str::trim)
                .filter(|part| !part.is_empty())
                .map(RouteUrl::parse)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|reason| ConfigError::InvalidFlagValue {
                    flag: flag.to_string(),
                    value: value.to_string(),
                    reason,
                })?;
            flags.routes = Some(routes);
        }
        Target::ClusterName => flags.cluster_name = text(),
        Target::ClusterAdvertise => flags.cluster_advertise = text(),
        Target::ConnectRetries => {
            let retries = value
                .parse::<u32>()
                .map_err(|_| ConfigError::InvalidFlagValue {
                    flag: flag.to_string(),
                    value: value.to_string(),
                    reason: "expected a non-negative integer".to_string(),
                })?;
            flags.connect_retries = Some(retries);
        }
        _ => {
            return Err(ConfigError::UnsupportedFlag {
                flag: flag.to_string(),
            })
        }
    }
    Ok(())
}

fn set_switch(
    parsed: &mut Parsed,
    target: Target,
    flag: &str,
    enabled: bool,
) -> Result<(), ConfigError> {
    let flags = &mut parsed.flags;
    match target {
        Target::Debug => flags.debug = Some(enabled),
        Target::Trace => flags.trace = Some(enabled),
        Target::DebugAndTrace => {
            flags.debug = Some(enabled);
            flags.trace = Some(enabled);
        }
        Target::Logtime => flags.logtime = Some(enabled),
        Target::LogtimeUtc => flags.logtime_utc = Some(enabled),
        Target::WatchConfig => flags.watch_config = Some(enabled),
        Target::Tls => flags.tls = Some(enabled),
        Target::TlsVerify => flags.tls_verify = Some(enabled),
        Target::NoAdvertise => flags.no_advertise = Some(enabled),
        Target::CheckConfig => parsed.check_config = enabled,
        Target::Version => parsed.version = enabled,
        Target::Help => parsed.help = enabled,
        _ if !enabled => {}
        _ => {
            return Err(ConfigError::UnsupportedFlag {
                flag: flag.to_string(),
            })
        }
    }
    Ok(())
}

/// Puts the given flags over `options` (which hold the defaults and the config file).
pub fn apply_flags(options: &mut ServerOptions, flags: &Flags) {
    if let Some(path) = &flags.config_file {
        options.config_file = Some(path.clone());
    }
    if let Some(host) = &flags.host {
        // Monitoring binds to the client host unless the config named its own, so it follows
        // `-a` in that case, as it does in nats-server.
        if let Some(monitoring) = &mut options.monitoring {
            if monitoring.host == options.listen.host {
                monitoring.host = host.clone();
            }
        }
        options.listen.host = host.clone();
    }
    if let Some(port) = flags.port {
        options.listen.port = client_port(port).unwrap_or(Some(defaults::CLIENT_PORT));
    }
    if let Some(port) = flags.http_port {
        let host = options
            .monitoring
            .as_ref()
            .map_or_else(|| options.listen.host.clone(), |listen| listen.host.clone());
        options.monitoring = monitoring_port(port)
            .unwrap_or(None)
            .map(|port| Listen { host, port });
    }
    let copy = |flag: &Option<String>, field: &mut Option<String>| {
        if let Some(value) = flag {
            *field = Some(value.clone());
        }
    };
    copy(&flags.server_name, &mut options.server_name);
    copy(&flags.client_advertise, &mut options.client_advertise);
    copy(&flags.user, &mut options.authorization.user);
    copy(&flags.password, &mut options.authorization.password);
    copy(&flags.token, &mut options.authorization.token);
    let copy_path = |flag: &Option<PathBuf>, field: &mut Option<PathBuf>| {
        if let Some(value) = flag {
            *field = Some(value.clone());
        }
    };
    copy_path(&flags.log_file, &mut options.logging.log_file);
    copy_path(&flags.pid_file, &mut options.pid_file);
    copy_path(&flags.ports_file_dir, &mut options.ports_file_dir);
    let copy_bool = |flag: Option<bool>, field: &mut bool| {
        if let Some(value) = flag {
            *field = value;
        }
    };
    copy_bool(flags.debug, &mut options.logging.debug);
    copy_bool(flags.trace, &mut options.logging.trace);
    copy_bool(flags.logtime, &mut options.logging.logtime);
    copy_bool(flags.logtime_utc, &mut options.logging.logtime_utc);
    copy_bool(flags.watch_config, &mut options.watch_config);
    apply_cluster_flags(options, flags);
    match tls_override(flags) {
        Some(true) => {
            options.tls = Some(TlsOptions {
                cert_file: flags.tls_cert.clone(),
                key_file: flags.tls_key.clone(),
                ca_file: flags.tls_ca_cert.clone(),
                verify: flags.tls_verify.unwrap_or(false),
                ..TlsOptions::default()
            });
        }
        Some(false) => options.tls = None,
        None => {}
    }
}

/// nats-server's rule: `--tls=false` turns TLS off; any other TLS flag replaces the config
/// file's `tls` block with one made from the flags alone.
fn tls_override(flags: &Flags) -> Option<bool> {
    if flags.tls == Some(false) {
        return Some(false);
    }
    let any = flags.tls.is_some()
        || flags.tls_cert.is_some()
        || flags.tls_key.is_some()
        || flags.tls_ca_cert.is_some()
        || flags.tls_verify.is_some();
    any.then_some(true)
}

/// TLS from flags needs a certificate and a key (nats-server's messages).
fn check_tls_flags(flags: &Flags) -> Result<(), ConfigError> {
    if tls_override(flags) != Some(true) {
        return Ok(());
    }
    let missing = |message: &str| {
        Err(ConfigError::Inconsistent {
            message: message.to_string(),
        })
    };
    if flags.tls_cert.is_none() {
        return missing("TLS Server certificate must be present and valid");
    }
    if flags.tls_key.is_none() {
        return missing("TLS Server private key must be present and valid");
    }
    Ok(())
}

/// Any cluster flag turns clustering on, on top of what the config file says.
fn apply_cluster_flags(options: &mut ServerOptions, flags: &Flags) {
    let any = flags.cluster_listen.is_some()
        || flags.routes.is_some()
        || flags.cluster_name.is_some()
        || flags.cluster_advertise.is_some()
        || flags.no_advertise.is_some()
        || flags.connect_retries.is_some();
    if !any {
        return;
    }
    let cluster = options.cluster.get_or_insert_with(ClusterOptions::default);
    if let Some(listen) = &flags.cluster_listen {
        cluster.listen = Listen {
            host: listen.host.clone(),
            port: listen.port,
        };
        if listen.user.is_some() {
            cluster.user.clone_from(&listen.user);
            cluster.password.clone_from(&listen.password);
        }
    }
    if let Some(routes) = &flags.routes {
        cluster.routes.clone_from(routes);
    }
    if let Some(name) = &flags.cluster_name {
        cluster.name = Some(name.clone());
    }
    if let Some(advertise) = &flags.cluster_advertise {
        cluster.advertise = Some(advertise.clone());
    }
    if let Some(no_advertise) = flags.no_advertise {
        cluster.no_advertise = no_advertise;
    }
    if let Some(retries) = flags.connect_retries {
        cluster.connect_retries = retries;
    }
}

/// The `--help` text.
pub fn usage() -> &'static str {
    USAGE
}

const USAGE: &str = "
Usage: tern [options]

Server options:
    -a, --addr, --net <host>         Host to listen on for clients (default: 0.0.0.0)
    -p, --port <port>                Client port (default: 4222; -1 picks a free port)
    -n, --name, --server_name <name> Server name (default: the server's generated ID)
        --client_advertise <url>     Client URL advertised to the cluster
    -m, --http_port <port>           Port for HTTP monitoring (off by default)
    -c, --config <file>              Config file
    -t                               Check the config file and exit
        --watch_config               Reload when the config file changes on disk
    -P, --pid <file>                 Write the process ID to this file
        --ports_file_dir <dir>       Write a ports file (<program>_<pid>.ports) into this directory
    -sl, --signal <cmd>[=<pid>]      Send a command to a running server and exit;
                                     cmd is ldm, quit, stop, term, reopen or reload, and
                                     <pid> is a process ID or the path of a PID file

Logging options:
    -l, --log <file>                 Log to this file
    -T, --logtime                    Prefix log lines with a timestamp (default: true; -T=false)
        --logtime_utc                Log timestamps in UTC
    -D, --debug                      Log debug output
    -V, --trace                      Log the raw protocol
    -VV                              Same as -V
    -DV, -DVV                        Debug and trace

Authorization options:
        --user <user>                User clients must present
        --pass <password>            Password clients must present
        --auth <token>               Token clients must present

Common options:
    -h, --help                       Show this help
    -v, --version                    Show the version

Cluster options:
        --routes <url,...>           Routes to solicit and connect
        --cluster <url>              Cluster URL for solicited routes (port -1: random)
        --cluster_name <name>        Cluster name (generated when not given)
        --cluster_advertise <addr>   Cluster URL to advertise to other servers
        --no_advertise               Do not advertise known cluster IPs to clients
        --connect_retries <n>        Connect attempts for implicit routes

TLS options:
        --tls                        Enable TLS (--tls=false turns off the config file's)
        --tlscert <file>             Server certificate file
        --tlskey <file>              Private key for the server certificate
        --tlscacert <file>           Client certificate CA for verification
        --tlsverify                  Enable TLS and verify client certificates

Accepted for nats-server compatibility but not supported yet:
    -js/--jetstream, -sd/--store_dir, -ms/--https_port, -s/--syslog,
    -r/--remote_syslog, --log_size_limit, --max_traced_msg_len, --profile, --help_tls
";

#[cfg(test)]
#[path = "cli_tests.rs"]
mod tests;
