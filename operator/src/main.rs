//! `tern-operator`: the Kubernetes operator for Tern.
//!
//! - `crd [--write-dir DIR]` prints every CustomResourceDefinition as YAML, or writes one
//!   file per CRD into DIR (the committed `crds/`).
//! - `render -f FILE [...]` prints what the resources in FILE become (their nats.conf files,
//!   inside the ConfigMaps, and every Kubernetes object) without a cluster, for review.
//! - `run` will run the controllers; until the reconcile loop lands it says so and fails.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _};
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
  tern-operator run [--kubernetes-cluster-name NAME]
      Run the controllers (not implemented yet).
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
        "run" => {
            eprintln!(
                "tern-operator run: controller not implemented yet: the reconcile loop is the next step of the operator issue; use `tern-operator render` to see what a resource becomes"
            );
            Ok(ExitCode::from(2))
        }
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
