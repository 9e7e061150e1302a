//! Every config the operator renders reads back through the broker's own parser, so the
//! operator never ships a config the broker would refuse.
//!
//! Two levels, because the broker's typed options loader refuses the blocks of features still
//! being built (at the time of writing `gateway`, `leafnodes`, `jetstream` and `accounts`) with
//! "not supported yet":
//! - every rendered config must parse with the config language parser (`parse_str`);
//! - every config must load with the full loader (`load_str`) or fail only with "not supported
//!   yet", and configs that use only single-server options must load fully.
//!
//! As the broker lands each block, its checks apply here with no change to this test; once
//! nothing is unsupported, every config loads fully.

use std::path::Path;

use tern_broker::config::{load_str, parse_str, MemorySources};
use tern_operator::manifest::{parse_manifests, render_manifests};
use tern_operator::render::conf::only_unsupported;
use tern_operator::validate::Environment;

fn sources() -> MemorySources {
    let mut sources = MemorySources::new().with_file(
        "/etc/tern/auth/auth.conf",
        "authorization { token: \"s3cret\" }\n",
    );
    for credentials in ["ROUTE", "GATEWAY", "LEAFNODE"] {
        sources = sources
            .with_environment_variable(format!("TERN_{credentials}_USERNAME"), "user")
            .with_environment_variable(format!("TERN_{credentials}_PASSWORD"), "secret");
    }
    sources
}

fn manifests() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<(String, String)> =
        ["nats-cluster.yaml", "super-cluster.yaml", "leaf-node.yaml"]
            .iter()
            .map(|name| {
                let path = root.join("../examples").join(name);
                (
                    name.to_string(),
                    std::fs::read_to_string(path).expect("example is readable"),
                )
            })
            .collect();
    for case in [
        "nats-cluster-3-servers",
        "super-cluster-3-regions",
        "leaf-node-websocket-jetstream",
    ] {
        let path = root.join("tests/golden").join(case).join("input.yaml");
        files.push((
            case.to_string(),
            std::fs::read_to_string(path).expect("golden input is readable"),
        ));
    }
    files.push(("single-server".to_string(), SINGLE_SERVER.to_string()));
    files
}

/// Only options the broker loads today: one server, accounts from a Secret, an override.
const SINGLE_SERVER: &str = "\
apiVersion: tern.dev/v1alpha1
kind: NatsCluster
metadata:
  name: solo
  namespace: dev
spec:
  replicas: 1
  auth:
    configSecretRef:
      name: solo-auth
  config:
    overrides:
      max_payload: 2097152
      ping_interval: 30s
";

#[test]
fn every_rendered_config_parses_and_loads_as_far_as_the_broker_goes() {
    let mut environment = Environment {
        kubernetes_cluster_name: Some("aws-east".to_string()),
        ..Environment::default()
    };
    environment.external_addresses.insert(
        ("nats".to_string(), "east-0-gateway".to_string()),
        "203.0.113.10".to_string(),
    );
    let mut fully_loaded = 0;
    for (name, text) in manifests() {
        let resources = parse_manifests(&text).expect("manifest parses");
        for (source, rendered) in
            render_manifests(&resources, &environment).expect("manifest renders")
        {
            for (file, config) in &rendered.configs {
                let path = Path::new("/etc/tern/config").join(file);
                let parsed = parse_str(config, &path, &sources());
                assert!(
                    parsed.is_ok(),
                    "{name}: {source}: {file} does not parse: {:?}\n{config}",
                    parsed.err()
                );
                match load_str(config, &path, &sources()) {
                    Ok(options) => {
                        let unknown: Vec<&String> = options
                            .warnings
                            .iter()
                            .map(|warning| &warning.message)
                            .filter(|message| message.contains("unknown field"))
                            .collect();
                        assert!(unknown.is_empty(), "{name}: {source}: {file}: {unknown:?}");
                        fully_loaded += 1;
                    }
                    Err(error) => assert!(
                        only_unsupported(&error),
                        "{name}: {source}: {file} fails to load for more than options the broker does not support yet: {error}\n{config}"
                    ),
                }
            }
        }
    }
    assert!(
        fully_loaded > 0,
        "at least the single-server config loads fully"
    );
}

#[test]
fn the_single_server_config_loads_with_the_rendered_values() {
    let resources = parse_manifests(SINGLE_SERVER).expect("manifest parses");
    let rendered = render_manifests(&resources, &Environment::default()).expect("renders");
    let config = rendered[0]
        .1
        .configs
        .get("solo-0.conf")
        .expect("one config per server");
    let options = load_str(
        config,
        Path::new("/etc/tern/config/solo-0.conf"),
        &sources(),
    )
    .expect("loads");
    assert_eq!(options.server_name.as_deref(), Some("solo-0"));
    assert_eq!(options.max_payload, 2_097_152);
    assert_eq!(
        options.lame_duck_duration,
        std::time::Duration::from_secs(30)
    );
    assert_eq!(
        options.pid_file.as_deref(),
        Some(Path::new("/var/run/tern/tern.pid"))
    );
    assert_eq!(options.authorization.token.as_deref(), Some("s3cret"));
}
