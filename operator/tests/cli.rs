//! The `tern-operator` command line: `crd`, `render -f`, and `run` saying it is not there yet.

use std::process::Command;

fn operator(arguments: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tern-operator"))
        .args(arguments)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("tern-operator runs")
}

#[test]
fn crd_prints_the_three_definitions() {
    let output = operator(&["crd"]);
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    for name in [
        "natsclusters.tern.dev",
        "superclusters.tern.dev",
        "leafnodes.tern.dev",
    ] {
        assert!(text.contains(&format!("name: {name}")), "{name} missing");
    }
    assert_eq!(text.matches("\n---\n").count(), 2);
}

#[test]
fn crd_writes_one_file_per_definition() {
    let directory = std::env::temp_dir().join(format!("tern-operator-crds-{}", std::process::id()));
    let output = operator(&[
        "crd",
        "--write-dir",
        directory.to_str().expect("UTF-8 path"),
    ]);
    assert!(output.status.success());
    let mut names: Vec<String> = std::fs::read_dir(&directory)
        .expect("written")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "leafnodes.tern.dev.yaml",
            "natsclusters.tern.dev.yaml",
            "superclusters.tern.dev.yaml"
        ]
    );
    let _ = std::fs::remove_dir_all(&directory);
}

#[test]
fn render_prints_every_object_of_a_manifest() {
    let output = operator(&["render", "-f", "../examples/nats-cluster.yaml"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    for kind in [
        "ConfigMap",
        "PodDisruptionBudget",
        "Service",
        "ServiceAccount",
        "StatefulSet",
    ] {
        assert!(text.contains(&format!("kind: {kind}\n")), "{kind} missing");
    }
    assert!(text.contains("server_name: \"east-2\""));
}

#[test]
fn render_reports_what_it_waits_for() {
    let output = operator(&[
        "render",
        "-f",
        "../examples/super-cluster.yaml",
        "--kubernetes-cluster-name",
        "gcp-west",
        "--external-address",
        "nats/west-0-gateway=198.51.100.7",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("advertise: \"198.51.100.7:7222\""));
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(
        errors.contains("waiting for external address of Service nats/west-1-gateway"),
        "{errors}"
    );
}

#[test]
fn render_of_an_invalid_manifest_fails_naming_the_field() {
    let manifest =
        std::env::temp_dir().join(format!("tern-operator-invalid-{}.yaml", std::process::id()));
    std::fs::write(
        &manifest,
        "apiVersion: tern.dev/v1alpha1\nkind: NatsCluster\nmetadata:\n  name: east\nspec:\n  replicas: 2\n  jetstream:\n    fileStorage:\n      size: 1Gi\n",
    )
    .expect("temporary file");
    let output = operator(&["render", "-f", manifest.to_str().expect("UTF-8 path")]);
    let _ = std::fs::remove_file(&manifest);
    assert!(!output.status.success());
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(
        errors.contains("spec.replicas: with JetStream, replicas must be 1 or at least 3"),
        "{errors}"
    );
}

#[test]
fn run_refuses_a_bad_flag_value_before_contacting_anything() {
    let output = operator(&["run", "--http-address", "not-an-address"]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("--http-address: expected ADDRESS:PORT")
    );
    let output = operator(&["run", "--leader-election-lease-duration", "1"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("at least 3"));
}

#[test]
fn run_without_a_kubeconfig_or_service_account_says_it_cannot_reach_the_api() {
    let output = Command::new(env!("CARGO_BIN_EXE_tern-operator"))
        .args(["run", "--http-address", "127.0.0.1:0"])
        .env("KUBECONFIG", "/nonexistent/tern-operator-test-kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env("HOME", "/nonexistent")
        .output()
        .expect("tern-operator runs");
    assert!(!output.status.success());
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(
        errors.contains("cannot reach the Kubernetes API"),
        "{errors}"
    );
}
