//! Golden files: each `tests/golden/<case>/input.yaml` renders to exactly the files in
//! `tests/golden/<case>/expected/` (`<pod>.conf`, `<kind>-<name>.yaml`, `waiting-for.txt`).
//! `UPDATE_GOLDEN=1 cargo test -p tern-operator --test golden` rewrites them; review the diff.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tern_operator::manifest::{parse_manifests, render_manifests};
use tern_operator::render::output_files;
use tern_operator::validate::Environment;

fn golden_directory(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(case)
}

fn render_case(case: &str, environment: &Environment) -> BTreeMap<String, String> {
    let input = std::fs::read_to_string(golden_directory(case).join("input.yaml"))
        .expect("golden input is readable");
    let resources = parse_manifests(&input).expect("golden input parses");
    let mut files = BTreeMap::new();
    for (_, rendered) in render_manifests(&resources, environment).expect("golden input renders") {
        files.extend(output_files(&rendered).expect("output serializes"));
    }
    files
}

fn check(case: &str, environment: Environment) {
    let actual = render_case(case, &environment);
    let expected_directory = golden_directory(case).join("expected");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let _ = std::fs::remove_dir_all(&expected_directory);
        std::fs::create_dir_all(&expected_directory).expect("expected directory is writable");
        for (name, content) in &actual {
            std::fs::write(expected_directory.join(name), content)
                .expect("golden file is writable");
        }
        return;
    }
    let mut expected = BTreeMap::new();
    for entry in std::fs::read_dir(&expected_directory)
        .expect("expected directory exists; run with UPDATE_GOLDEN=1")
    {
        let path = entry.expect("directory entry").path();
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .expect("file name")
            .to_string();
        expected.insert(
            name,
            std::fs::read_to_string(&path).expect("golden file is readable"),
        );
    }
    let actual_names: Vec<&String> = actual.keys().collect();
    let expected_names: Vec<&String> = expected.keys().collect();
    assert_eq!(
        actual_names, expected_names,
        "{case}: rendered files differ from the golden files (UPDATE_GOLDEN=1 to regenerate)"
    );
    for (name, content) in &actual {
        assert_eq!(
            Some(content),
            expected.get(name),
            "{case}/{name} differs from its golden file (UPDATE_GOLDEN=1 to regenerate)"
        );
    }
}

#[test]
fn three_server_cluster_renders_as_its_golden_files() {
    let mut environment = Environment::default();
    environment.external_addresses.insert(
        ("nats".to_string(), "hub-leafnodes".to_string()),
        "198.51.100.20".to_string(),
    );
    check("nats-cluster-3-servers", environment);
}

#[test]
fn three_region_super_cluster_renders_its_local_member_as_its_golden_files() {
    let mut environment = Environment {
        kubernetes_cluster_name: Some("aws-east".to_string()),
        ..Environment::default()
    };
    for (ordinal, address) in ["203.0.113.10", "203.0.113.11", "203.0.113.12"]
        .iter()
        .enumerate()
    {
        environment.external_addresses.insert(
            ("nats".to_string(), format!("east-{ordinal}-gateway")),
            address.to_string(),
        );
    }
    check("super-cluster-3-regions", environment);
}

#[test]
fn edge_leaf_node_over_websocket_with_jetstream_renders_as_its_golden_files() {
    check("leaf-node-websocket-jetstream", Environment::default());
}

#[test]
fn rendering_twice_gives_identical_output() {
    let environment = Environment {
        kubernetes_cluster_name: Some("aws-east".to_string()),
        ..Environment::default()
    };
    for case in [
        "nats-cluster-3-servers",
        "super-cluster-3-regions",
        "leaf-node-websocket-jetstream",
    ] {
        assert_eq!(
            render_case(case, &environment),
            render_case(case, &environment),
            "{case}"
        );
    }
}
