//! `tern-operator`: the Kubernetes operator for Tern.
//!
//! - `crd [--write-dir DIR]` prints every CustomResourceDefinition as YAML, or writes one
//!   file per CRD into DIR (the committed `crds/`).
//! - `render -f FILE [...]` prints what the resources in FILE become (their nats.conf files,
//!   inside the ConfigMaps, and every Kubernetes object) without a cluster, for review.
//! - `run` runs the controllers against the Kubernetes API server of the kubeconfig (or the
//!   in-cluster service account).

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use tern_operator::controller::{self, context::Settings, LeaderSettings, RunSettings};
use tern_operator::crd;
use tern_operator::manifest::{parse_manifests, render_manifests};
use tern_operator::render::{output_files, yaml_stream};
use tern_operator::validate::Environment;

const USAGE: &str = "\
Usage:
  tern-operator crd [--write-dir DIR]
      Print the CustomResourceDefinitions, or write one file per CRD into DIR.
  tern-operator render -f FILE [--kubernetes-cluster-name NAME] [--cluster-domain DOMAIN]
                       [--external-address NAMESPACE/SERVICE=HOST]... [--output-dir DIR]
      Print what the NatsCluster, SuperCluster and LeafNode resources in FILE (- for standard
      input) become: every Kubernetes object, with each server's nats.conf in its ConfigMap.
      --kubernetes-cluster-name  which SuperCluster members are local
      --external-address         a LoadBalancer address, as if the Service had it
      --output-dir               write <pod>.conf and <kind>-<name>.yaml files instead
  tern-operator run [--kubernetes-cluster-name NAME] [--namespace NS]... [--cluster-domain DOMAIN]
                    [--http-address ADDRESS:PORT] [--leader-election-namespace NS]
                    [--leader-election-lease NAME] [--leader-election-lease-duration SECONDS]
      Run the controllers against the API server of $KUBECONFIG (or the in-cluster account).
      --namespace                  watch only these namespaces (repeat); default: all
      --http-address               /metrics, /healthz and /readyz (default 0.0.0.0:8080)
      --leader-election-namespace  elect a leader with a Lease there (default: no election)
      --leader-election-lease      the Lease's name (default tern-operator-leader)
      The replica's identity is $POD_NAME, or the host name and process id.
  tern-operator --version | --help
";

fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    match run(&arguments) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("tern-operator: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(arguments: &[String]) -> anyhow::Result<ExitCode> {
    let Some((command, rest)) = arguments.split_first() else {
        eprint!("{USAGE}");
        return Ok(ExitCode::from(2));
    };
    match command.as_str() {
        "crd" => crd_command(rest),
        "render" => render_command(rest),
        "run" => run_command(rest),
        "--version" | "-v" | "version" => {
            println!("tern-operator {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        "--help" | "-h" | "help" => {
            print!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        other => bail!("unknown command {other:?}\n{USAGE}"),
    }
}

/// Flags as `--name value` pairs; repeated flags keep every value in order.
fn parse_flags(
    arguments: &[String],
    known: &[&str],
) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let mut flags: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut iterator = arguments.iter();
    while let Some(argument) = iterator.next() {
        let (name, inline) = match argument.split_once('=') {
            Some((name, value)) if name.starts_with('-') => (name, Some(value.to_string())),
            _ => (argument.as_str(), None),
        };
        if !known.contains(&name) {
            bail!("unknown flag {argument:?}\n{USAGE}");
        }
        let value = match inline {
            Some(value) => value,
            None => iterator
                .next()
                .with_context(|| format!("flag {name} needs a value"))?
                .clone(),
        };
        flags.entry(name.to_string()).or_default().push(value);
    }
    Ok(flags)
}

fn last<'a>(flags: &'a BTreeMap<String, Vec<String>>, name: &str) -> Option<&'a str> {
    flags
        .get(name)
        .and_then(|values| values.last())
        .map(String::as_str)
}

fn identity() -> String {
    if let Ok(name) = std::env::var("POD_NAME") {
        if !name.is_empty() {
            return name;
        }
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .unwrap_or_else(|_| "tern-operator".to_string());
    format!("{host}-{}", std::process::id())
}

fn run_command(arguments: &[String]) -> anyhow::Result<ExitCode> {
    let flags = parse_flags(
        arguments,
        &[
            "--kubernetes-cluster-name",
            "--namespace",
            "--cluster-domain",
            "--http-address",
            "--leader-election-namespace",
            "--leader-election-lease",
            "--leader-election-lease-duration",
        ],
    )?;
    let mut settings = Settings {
        kubernetes_cluster_name: last(&flags, "--kubernetes-cluster-name")
            .filter(|name| !name.is_empty())
            .map(str::to_string),
        ..Settings::default()
    };
    if let Some(domain) = last(&flags, "--cluster-domain") {
        settings.cluster_domain = domain.to_string();
    }
    let http_address = last(&flags, "--http-address")
        .unwrap_or("0.0.0.0:8080")
        .parse()
        .context("--http-address: expected ADDRESS:PORT")?;
    let identity = identity();
    let lease_duration = match last(&flags, "--leader-election-lease-duration") {
        Some(seconds) => Duration::from_secs(
            seconds
                .parse::<u64>()
                .ok()
                .filter(|seconds| *seconds >= 3)
                .context("--leader-election-lease-duration: expected whole seconds, at least 3")?,
        ),
        None => Duration::from_secs(15),
    };
    let leader = last(&flags, "--leader-election-namespace")
        .filter(|namespace| !namespace.is_empty())
        .map(|namespace| LeaderSettings {
            namespace: namespace.to_string(),
            lease: last(&flags, "--leader-election-lease")
                .unwrap_or("tern-operator-leader")
                .to_string(),
            identity: identity.clone(),
            lease_duration,
        });
    let namespaces = flags.get("--namespace").cloned().unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(controller::run(RunSettings {
        settings,
        namespaces,
        http_address,
        leader,
        identity,
    }))?;
    Ok(ExitCode::SUCCESS)
}

fn crd_command(arguments: &[String]) -> anyhow::Result<ExitCode> {
    let flags = parse_flags(arguments, &["--write-dir"])?;
    match last(&flags, "--write-dir") {
        None => print!("{}", crd::all_definitions_yaml()?),
        Some(directory) => {
            let directory = Path::new(directory);
            std::fs::create_dir_all(directory)
                .with_context(|| format!("cannot create {}", directory.display()))?;
            for definition in crd::definitions() {
                let path = directory.join(crd::file_name(&definition));
                std::fs::write(&path, crd::definition_yaml(&definition)?)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                eprintln!("wrote {}", path.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn render_command(arguments: &[String]) -> anyhow::Result<ExitCode> {
    let flags = parse_flags(
        arguments,
        &[
            "-f",
            "--filename",
            "--kubernetes-cluster-name",
            "--cluster-domain",
            "--external-address",
            "--output-dir",
        ],
    )?;
    let file = last(&flags, "-f")
        .or_else(|| last(&flags, "--filename"))
        .context("render needs -f FILE")?;
    let text = if file == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read standard input")?;
        text
    } else {
        std::fs::read_to_string(file).with_context(|| format!("cannot read {file}"))?
    };
    let mut environment = Environment {
        kubernetes_cluster_name: last(&flags, "--kubernetes-cluster-name").map(str::to_string),
        ..Environment::default()
    };
    if let Some(domain) = last(&flags, "--cluster-domain") {
        environment.cluster_domain = domain.to_string();
    }
    for address in flags.get("--external-address").into_iter().flatten() {
        let parsed = address.split_once('=').and_then(|(service, host)| {
            let (namespace, service) = service.split_once('/')?;
            Some((
                (namespace.to_string(), service.to_string()),
                host.to_string(),
            ))
        });
        let Some((key, host)) = parsed else {
            bail!("--external-address {address:?}: expected NAMESPACE/SERVICE=HOST");
        };
        environment.external_addresses.insert(key, host);
    }
    let resources = parse_manifests(&text).with_context(|| format!("cannot parse {file}"))?;
    if resources.is_empty() {
        bail!("{file} holds no NatsCluster, SuperCluster or LeafNode");
    }
    let rendered = render_manifests(&resources, &environment)?;
    match last(&flags, "--output-dir") {
        None => {
            let documents = rendered
                .iter()
                .map(|(source, output)| yaml_stream(source, output))
                .collect::<Result<Vec<_>, _>>()?;
            print!("{}", documents.join(""));
        }
        Some(directory) => {
            let directory = PathBuf::from(directory);
            std::fs::create_dir_all(&directory)
                .with_context(|| format!("cannot create {}", directory.display()))?;
            for (_, output) in &rendered {
                for (name, content) in output_files(output)? {
                    let path = directory.join(name);
                    std::fs::write(&path, content)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                }
            }
        }
    }
    for (source, output) in &rendered {
        for item in &output.waiting_for {
            eprintln!("{source}: waiting for {item}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
