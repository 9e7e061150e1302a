//! `tern`: the broker's command line, with nats-server's flags where they overlap.
//!
//! Runs the server until a signal stops it; `-t` checks a config file, `--signal` sends a
//! command to a running server, `-h` and `-v` print help and version. A config that does not
//! load exits 1 with the file, line and column; a server that cannot start logs `[FTL]` and
//! exits 1.

use std::process::ExitCode;
use std::sync::Arc;

use tern_broker::config::{self, Command, Flags};
use tern_broker::lifecycle::{self, OptionsLoader};
use tern_broker::logging;
use tern_broker::server::{Server, PROTOCOL_VERSION, TERN_VERSION};

fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let command = match config::parse_command_line(&arguments) {
        Ok(command) => command,
        Err(error) => {
            eprintln!("tern: {error}");
            eprintln!("{}", config::usage());
            return ExitCode::FAILURE;
        }
    };
    match command {
        Command::Help => {
            println!("{}", config::usage());
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!("tern: v{TERN_VERSION} (NATS protocol {PROTOCOL_VERSION})");
            ExitCode::SUCCESS
        }
        Command::Signal {
            command,
            pid_or_pid_file,
        } => match lifecycle::send_signal(command.as_str(), pid_or_pid_file.as_deref()) {
            Ok(pid) => {
                println!("[{pid}] signal {:?} sent", command.as_str());
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("tern: {error}");
                ExitCode::FAILURE
            }
        },
        Command::TestConfig(flags) => match config::resolve(&flags) {
            Ok(options) => {
                for warning in &options.warnings {
                    eprintln!("tern: {}", warning.message);
                }
                let file = flags
                    .config_file
                    .as_ref()
                    .map_or_else(|| "<none>".to_string(), |path| path.display().to_string());
                println!("tern: configuration file {file} is valid");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("tern: {error}");
                ExitCode::FAILURE
            }
        },
        Command::Run(flags) => run(flags),
    }
}

fn run(flags: Flags) -> ExitCode {
    // The watch compares against the bytes read before the options were: a change made while
    // the server starts is then reloaded, never missed (at worst reloaded once for nothing).
    let watched_baseline = flags
        .config_file
        .as_ref()
        .and_then(|path| std::fs::read(path).ok());
    let options = match config::resolve(&flags) {
        Ok(options) => options,
        Err(error) => {
            eprintln!("tern: {error}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(error) = logging::configure(&options.logging) {
        eprintln!("tern: cannot open log file: {error}");
        return ExitCode::FAILURE;
    }
    lifecycle::raise_open_file_limit();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("tern")
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            logging::fatal(format_args!("Cannot start the runtime: {error}"));
            return ExitCode::FAILURE;
        }
    };
    let watch = options.watch_config;
    let config_file = options.config_file.clone();
    let loader: Arc<OptionsLoader> =
        Arc::new(move || config::resolve(&flags).map_err(|error| error.to_string()));
    runtime.block_on(async move {
        let server = Server::new(options);
        let running = match server.start().await {
            Ok(running) => running,
            Err(error) => {
                logging::fatal(format_args!("{error}"));
                return ExitCode::FAILURE;
            }
        };
        let signals = tokio::spawn(lifecycle::handle_signals(
            Arc::clone(&server),
            Arc::clone(&loader),
        ));
        if let (true, Some(path)) = (watch, config_file) {
            tokio::spawn(lifecycle::watch_config_file(
                Arc::clone(&server),
                path,
                watched_baseline,
                Arc::clone(&loader),
            ));
        }
        running.wait().await;
        signals.abort();
        logging::flush();
        ExitCode::SUCCESS
    })
}
