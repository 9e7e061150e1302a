//! `tern-bench`: runs the same load against Tern and nats-server and compares them.
//!
//! ```text
//! tern-bench --tern <path> --nats-server <path> [--quick] [--runs N] [--scenario FILTER]
//!            [--json FILE] [--duration SECONDS] [--connections N]
//! ```
//!
//! Each scenario runs N times per server, alternating servers run by run (Tern, nats-server,
//! Tern, ...), each run against a freshly started server (or, for the route-hop scenarios, a
//! freshly started pair of the same server joined by a route); the tables show medians. The load
//! generator speaks the client protocol by hand over blocking sockets (plain TCP, or TLS or
//! WebSocket for those scenarios, with certificates generated at start), one thread per client.
//! Servers are child processes owned by this process: they are killed when a run ends, on
//! error, and on SIGINT/SIGTERM. Exits non-zero when any run failed.

mod client;
mod deployment;
mod protocol;
mod report;
mod scenarios;
mod server_process;
mod stream;
mod system;
mod transport;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use deployment::Topology;
use report::{ScenarioResults, NATS_SERVER_LABEL, TERN_LABEL};
use scenarios::{Measurement, RunOutcome, RunRecord, Scenario, ScenarioKind, Settings};
use transport::{Transport, TransportFiles};

const USAGE: &str = "\
usage: tern-bench --tern <path> --nats-server <path> [options]

options:
  --tern PATH          Tern server binary
  --nats-server PATH   nats-server binary
  --quick              1 run per server and short durations (a smoke test)
  --runs N             runs per scenario and server (default 5; 1 with --quick)
  --scenario FILTER    only scenarios whose name contains FILTER; comma-separated
                       filters are alternatives (e.g. pub-,request)
  --json FILE          also write every run and the medians as JSON
  --duration SECONDS   publishing time of each throughput run (default 1, quick 0.25)
  --connections N      idle connections for the memory scenario (default 5000)
  --list               print the scenario names and exit
  -h, --help           this text";

#[derive(Debug)]
struct Options {
    tern: PathBuf,
    nats_server: PathBuf,
    runs: usize,
    filters: Vec<String>,
    json: Option<PathBuf>,
    settings: Settings,
}

enum Command {
    Run(Options),
    List,
    Help,
}

fn parse_arguments(arguments: impl IntoIterator<Item = String>) -> anyhow::Result<Command> {
    let mut tern = None;
    let mut nats_server = None;
    let mut quick = false;
    let mut runs = None;
    let mut filters = Vec::new();
    let mut json = None;
    let mut duration = None;
    let mut connections = None;
    let mut arguments = arguments.into_iter();
    while let Some(argument) = arguments.next() {
        let mut value = |name: &str| {
            arguments
                .next()
                .with_context(|| format!("{name} needs a value"))
        };
        match argument.as_str() {
            "--tern" => tern = Some(PathBuf::from(value("--tern")?)),
            "--nats-server" => nats_server = Some(PathBuf::from(value("--nats-server")?)),
            "--quick" => quick = true,
            "--runs" => {
                let count: usize = value("--runs")?.parse().context("--runs needs a number")?;
                if count == 0 {
                    bail!("--runs must be at least 1");
                }
                runs = Some(count);
            }
            "--scenario" => filters.extend(
                value("--scenario")?
                    .split(',')
                    .filter(|filter| !filter.is_empty())
                    .map(str::to_owned),
            ),
            "--json" => json = Some(PathBuf::from(value("--json")?)),
            "--duration" => {
                let seconds: f64 = value("--duration")?
                    .parse()
                    .context("--duration needs a number of seconds")?;
                if !(0.01..=600.0).contains(&seconds) {
                    bail!("--duration must be between 0.01 and 600 seconds");
                }
                duration = Some(Duration::from_secs_f64(seconds));
            }
            "--connections" => {
                let count: usize = value("--connections")?
                    .parse()
                    .context("--connections needs a number")?;
                connections = Some(count.max(1));
            }
            "--list" => return Ok(Command::List),
            "-h" | "--help" => return Ok(Command::Help),
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    let (Some(tern), Some(nats_server)) = (tern, nats_server) else {
        bail!("--tern and --nats-server are required\n{USAGE}");
    };
    let mut settings = if quick {
        Settings::quick()
    } else {
        Settings::full()
    };
    if let Some(duration) = duration {
        settings.throughput_duration = duration;
    }
    if let Some(connections) = connections {
        settings.idle_connections = connections;
    }
    Ok(Command::Run(Options {
        tern,
        nats_server,
        runs: runs.unwrap_or(if quick { 1 } else { 5 }),
        filters,
        json,
        settings,
    }))
}

fn main() -> ExitCode {
    match run() {
        Ok(Outcome::AllRunsSucceeded) => ExitCode::SUCCESS,
        Ok(Outcome::SomeRunsFailed) => ExitCode::from(1),
        Ok(Outcome::Interrupted) => ExitCode::from(INTERRUPTED_EXIT_STATUS),
        Err(error) => {
            eprintln!("tern-bench: {error:#}");
            ExitCode::from(2)
        }
    }
}

enum Outcome {
    AllRunsSucceeded,
    SomeRunsFailed,
    /// SIGINT/SIGTERM arrived; the signal thread stops the servers and exits too.
    Interrupted,
}

/// Exit status after SIGINT/SIGTERM, as shells report an interrupted command.
const INTERRUPTED_EXIT_STATUS: u8 = 130;

fn run() -> anyhow::Result<Outcome> {
    let options = match parse_arguments(std::env::args().skip(1))? {
        Command::Run(options) => options,
        Command::List => {
            for scenario in scenarios::all() {
                println!("{}", scenario.name);
            }
            return Ok(Outcome::AllRunsSucceeded);
        }
        Command::Help => {
            println!("{USAGE}");
            return Ok(Outcome::AllRunsSucceeded);
        }
    };
    for executable in [&options.tern, &options.nats_server] {
        if !executable.is_file() {
            bail!("server binary {} does not exist", executable.display());
        }
    }
    install_interrupt_handler()?;
    prepare_open_files_limit(&options)?;
    warn_when_busy();

    let selected: Vec<Scenario> = scenarios::all()
        .into_iter()
        .filter(|scenario| {
            options.filters.is_empty()
                || options
                    .filters
                    .iter()
                    .any(|filter| scenario.name.contains(filter.as_str()))
        })
        .collect();
    if selected.is_empty() {
        bail!("no scenario matches {:?}; see --list", options.filters);
    }
    let transport_files = if selected
        .iter()
        .any(|scenario| scenario.transport != Transport::Tcp)
    {
        let files = TransportFiles::generate()
            .context("generating the TLS certificates and server config files")?;
        eprintln!(
            "TLS certificates and server config files: {}",
            files.directory().display()
        );
        Some(files)
    } else {
        None
    };

    let started = Instant::now();
    let total_runs = selected.len() * options.runs * 2;
    eprintln!(
        "tern-bench: {} scenarios x {} runs x 2 servers = {total_runs} runs",
        selected.len(),
        options.runs
    );
    let mut results = Vec::with_capacity(selected.len());
    let mut run_number = 0;
    for scenario in selected {
        let mut tern = Vec::with_capacity(options.runs);
        let mut nats_server = Vec::with_capacity(options.runs);
        for run in 0..options.runs {
            for (label, executable, records) in [
                (TERN_LABEL, &options.tern, &mut tern),
                (NATS_SERVER_LABEL, &options.nats_server, &mut nats_server),
            ] {
                run_number += 1;
                let record = scenarios::run_once(
                    &scenario,
                    label,
                    executable,
                    &options.settings,
                    transport_files.as_ref(),
                );
                // Runs cut short by an interrupt measure nothing; report none of them.
                if server_process::interrupted() {
                    return Ok(Outcome::Interrupted);
                }
                eprintln!(
                    "[{run_number}/{total_runs}] {} {label} run {}/{}: {}",
                    scenario.name,
                    run + 1,
                    options.runs,
                    describe(&record, scenario.topology)
                );
                records.push(record);
            }
        }
        results.push(ScenarioResults {
            scenario,
            tern,
            nats_server,
        });
    }

    println!("{}", report::render(&results));
    println!(
        "{} runs per server; medians; Tern = {}, nats-server = {}; took {:.0} s",
        options.runs,
        options.tern.display(),
        options.nats_server.display(),
        started.elapsed().as_secs_f64()
    );
    if let Some(path) = &options.json {
        report::write_json(
            path,
            &results,
            &options.settings,
            options.runs,
            (&options.tern, &options.nats_server),
        )
        .with_context(|| format!("writing {}", path.display()))?;
        println!("JSON written to {}", path.display());
    }
    let failed = results
        .iter()
        .flat_map(|result| result.tern.iter().chain(&result.nats_server))
        .filter(|run| matches!(run.outcome, RunOutcome::Failed(_)))
        .count();
    if failed > 0 {
        eprintln!("tern-bench: {failed} of {total_runs} runs failed (listed under the tables)");
        return Ok(Outcome::SomeRunsFailed);
    }
    Ok(Outcome::AllRunsSucceeded)
}

/// One progress line: the measurement and the CPU both sides used (the servers of a pair
/// together).
fn describe(record: &RunRecord, topology: Topology) -> String {
    let value = match &record.outcome {
        RunOutcome::Failed(error) => {
            return format!("FAILED: {}", error.lines().next().unwrap_or_default())
        }
        RunOutcome::Measured(Measurement::Throughput {
            messages_per_second,
            megabytes_per_second,
            ..
        }) => format!("{messages_per_second:.0} msgs/s, {megabytes_per_second:.1} MB/s"),
        RunOutcome::Measured(Measurement::Latency {
            samples,
            p50_microseconds,
            p99_microseconds,
        }) => format!(
            "p50 {p50_microseconds:.1} us, p99 {p99_microseconds:.1} us ({samples} requests)"
        ),
        RunOutcome::Measured(Measurement::IdleMemory {
            connections,
            kibibytes_per_connection,
        }) => format!("{kibibytes_per_connection:.1} KiB per connection ({connections})"),
    };
    let percent = |value: Option<f64>| value.map_or_else(|| "?".to_owned(), |v| format!("{v:.0}%"));
    let servers = match topology {
        Topology::Single => "server",
        Topology::RoutedPair => "servers A+B",
    };
    format!(
        "{value} [cpu: {servers} {}, bench {}]",
        percent(record.server_cpu_percent),
        percent(record.bench_cpu_percent)
    )
}

/// Other processes competing for the CPU make every number noisy; say so up front.
fn warn_when_busy() {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let load = system::load_average();
    eprintln!(
        "cores: {cores}, load average: {}",
        load.map_or_else(|| "?".to_owned(), |load| format!("{load:.2}"))
    );
    if load.is_some_and(|load| load > 0.5) {
        eprintln!(
            "warning: the machine is not idle; other processes compete with the servers and \
             the load generator for {cores} cores, so results will be noisy"
        );
    }
}

/// Raises the open-files limit (servers inherit it) and says when idle connections are capped.
fn prepare_open_files_limit(options: &Options) -> anyhow::Result<()> {
    match system::raise_open_files_limit() {
        Ok(limit) => eprintln!("open-files limit: {} (servers inherit it)", limit.soft),
        Err(error) => eprintln!("warning: could not raise the open-files limit: {error}"),
    }
    let wants_idle = scenarios::all().iter().any(|scenario| {
        matches!(scenario.kind, ScenarioKind::IdleMemory)
            && (options.filters.is_empty()
                || options
                    .filters
                    .iter()
                    .any(|filter| scenario.name.contains(filter.as_str())))
    });
    if wants_idle {
        let wanted = options.settings.idle_connections;
        let budget = scenarios::idle_memory::connection_budget(wanted)?;
        if budget < wanted {
            eprintln!(
                "warning: the open-files limit allows only {budget} of {wanted} idle connections; \
                 measuring with {budget} (raise the hard limit with `ulimit -Hn` as root)"
            );
        }
    }
    Ok(())
}

/// On SIGINT or SIGTERM: kill every server child, then exit.
fn install_interrupt_handler() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the signal runtime")?;
    // Registered before returning, so no signal after this point is missed.
    let (mut interrupt, mut terminate) = {
        let _context = runtime.enter();
        (
            signal(SignalKind::interrupt()).context("listening for SIGINT")?,
            signal(SignalKind::terminate()).context("listening for SIGTERM")?,
        )
    };
    std::thread::Builder::new()
        .name("interrupt".to_owned())
        .spawn(move || {
            runtime.block_on(async {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
            });
            eprintln!("tern-bench: interrupted, stopping servers");
            server_process::stop_all();
            std::process::exit(i32::from(INTERRUPTED_EXIT_STATUS));
        })
        .context("starting the signal thread")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(arguments: &[&str]) -> anyhow::Result<Command> {
        parse_arguments(arguments.iter().map(|argument| (*argument).to_owned()))
    }

    #[test]
    fn quick_means_one_run_unless_runs_is_given() {
        let Ok(Command::Run(options)) = parse(&["--tern", "a", "--nats-server", "b", "--quick"])
        else {
            unreachable!("valid arguments");
        };
        assert_eq!(options.runs, 1);
        let Ok(Command::Run(options)) = parse(&[
            "--tern",
            "a",
            "--nats-server",
            "b",
            "--quick",
            "--runs",
            "3",
            "--scenario",
            "pub-,request",
        ]) else {
            unreachable!("valid arguments");
        };
        assert_eq!(options.runs, 3);
        assert_eq!(options.filters, vec!["pub-", "request"]);
    }

    #[test]
    fn missing_servers_are_an_error() {
        assert!(parse(&["--tern", "a"]).is_err());
        assert!(parse(&["--runs", "0", "--tern", "a", "--nats-server", "b"]).is_err());
    }

    #[test]
    fn server_paths_are_kept() {
        let Ok(Command::Run(options)) = parse(&["--tern", "x/tern", "--nats-server", "y"]) else {
            unreachable!("valid arguments");
        };
        assert_eq!(options.tern, std::path::Path::new("x/tern"));
        assert_eq!(options.runs, 5);
    }
}
