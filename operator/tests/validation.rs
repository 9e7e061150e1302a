//! Invalid specs are refused with errors that name the field, by the operator's validation
//! (for files rendered without an API server) and, where the rule is a CEL rule of the CRD, by
//! that rule too (evaluated here as the API server would).

use kube::core::cel::{compile_schema, Validator};
use tern_operator::crd::definitions;
use tern_operator::manifest::{parse_manifests, render_manifests, ManifestError};
use tern_operator::render::RenderError;
use tern_operator::validate::Environment;

fn schema(kind: &str) -> serde_json::Value {
    let definition = definitions()
        .into_iter()
        .find(|definition| definition.spec.names.kind == kind)
        .expect("a CRD of that kind");
    let schema = definition.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|schema| schema.open_api_v3_schema.as_ref())
        .expect("an OpenAPI schema");
    serde_json::to_value(schema).expect("schema as JSON")
}

fn json(yaml: &str) -> serde_json::Value {
    serde_yaml::from_str(yaml).expect("test YAML parses")
}

fn kind_of(yaml: &str) -> String {
    json(yaml)["kind"].as_str().expect("kind").to_string()
}

/// What the API server's CEL rules say about `yaml` (an update from `old` when given).
fn cel_errors(yaml: &str, old: Option<&str>) -> Vec<String> {
    let old = old.map(json);
    match Validator::new().validate(&schema(&kind_of(yaml)), &json(yaml), old.as_ref()) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

/// What the operator's validation says, as `field: message` lines.
fn operator_errors(yaml: &str, environment: &Environment) -> Vec<String> {
    let resources = parse_manifests(yaml).expect("test YAML is a manifest");
    match render_manifests(&resources, environment) {
        Ok(_) => Vec::new(),
        Err(ManifestError::Render {
            error: RenderError::Invalid(invalid),
            ..
        }) => invalid
            .field_errors()
            .iter()
            .map(ToString::to_string)
            .collect(),
        Err(ManifestError::Render {
            error: RenderError::Override { field, message },
            ..
        }) => {
            vec![format!("{field}: {message}")]
        }
        Err(other) => vec![other.to_string()],
    }
}

fn east() -> Environment {
    Environment {
        kubernetes_cluster_name: Some("aws-east".to_string()),
        ..Environment::default()
    }
}

/// The operator refuses `yaml` naming `field`.
fn assert_operator_refuses(yaml: &str, field: &str) {
    let errors = operator_errors(yaml, &east());
    assert!(
        errors
            .iter()
            .any(|error| error.starts_with(&format!("{field}: "))),
        "expected an error naming {field}, got {errors:#?}"
    );
}

/// The CRD's CEL rules refuse `yaml` with a message containing `message`.
fn assert_cel_refuses(yaml: &str, old: Option<&str>, message: &str) {
    let errors = cel_errors(yaml, old);
    assert!(
        errors.iter().any(|error| error.contains(message)),
        "expected a CEL error containing {message:?}, got {errors:#?}"
    );
}

fn nats_cluster(spec: &str) -> String {
    format!("apiVersion: tern.dev/v1alpha1\nkind: NatsCluster\nmetadata:\n  name: east\n  namespace: nats\nspec:\n{spec}")
}

fn leaf_node(spec: &str) -> String {
    format!("apiVersion: tern.dev/v1alpha1\nkind: LeafNode\nmetadata:\n  name: edge\n  namespace: edge\nspec:\n{spec}")
}

fn super_cluster(spec: &str) -> String {
    format!("apiVersion: tern.dev/v1alpha1\nkind: SuperCluster\nmetadata:\n  name: global\n  namespace: nats\nspec:\n{spec}")
}

#[test]
fn every_cel_rule_of_every_crd_compiles() {
    for definition in definitions() {
        let kind = definition.spec.names.kind.clone();
        let compiled = compile_schema(&schema(&kind));
        let errors: Vec<String> = compiled
            .compilation_errors()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(errors.is_empty(), "{kind}: {errors:#?}");
    }
}

#[test]
fn the_examples_pass_the_crd_rules_and_render() {
    let directory = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    for name in ["nats-cluster.yaml", "super-cluster.yaml", "leaf-node.yaml"] {
        let text = std::fs::read_to_string(directory.join(name)).expect("example is readable");
        assert_eq!(cel_errors(&text, None), Vec::<String>::new(), "{name}");
        assert_eq!(
            operator_errors(&text, &east()),
            Vec::<String>::new(),
            "{name}"
        );
    }
}

#[test]
fn jetstream_with_two_servers_is_refused() {
    let yaml = nats_cluster("  replicas: 2\n  jetstream:\n    fileStorage:\n      size: 1Gi\n");
    assert_operator_refuses(&yaml, "spec.replicas");
    assert_cel_refuses(&yaml, None, "replicas must be 1 or at least 3");
}

#[test]
fn jetstream_without_storage_is_refused() {
    let yaml = nats_cluster("  jetstream:\n    domain: hub\n");
    assert_operator_refuses(&yaml, "spec.jetstream");
    assert_cel_refuses(
        &yaml,
        None,
        "JetStream needs fileStorage, memoryStorage or both",
    );
}

#[test]
fn file_store_limit_above_the_volume_is_refused() {
    let yaml =
        nats_cluster("  jetstream:\n    fileStorage:\n      size: 10Gi\n      maxBytes: 11Gi\n");
    assert_operator_refuses(&yaml, "spec.jetstream.fileStorage.maxBytes");
    assert_cel_refuses(&yaml, None, "maxBytes can not exceed fileStorage.size");
}

#[test]
fn a_size_that_is_not_a_quantity_is_refused() {
    let yaml = nats_cluster("  jetstream:\n    fileStorage:\n      size: ten gigabytes\n");
    assert_operator_refuses(&yaml, "spec.jetstream.fileStorage.size");
}

#[test]
fn a_grace_period_shorter_than_lame_duck_is_refused() {
    let yaml = nats_cluster(
        "  lifecycle:\n    lameDuckDuration: 60s\n    terminationGracePeriodSeconds: 60\n",
    );
    assert_operator_refuses(&yaml, "spec.lifecycle.terminationGracePeriodSeconds");
    assert_cel_refuses(
        &yaml,
        None,
        "terminationGracePeriodSeconds must be at least",
    );
}

#[test]
fn lame_duck_below_the_broker_minimum_is_refused() {
    let yaml =
        nats_cluster("  lifecycle:\n    lameDuckDuration: 20s\n    lameDuckGracePeriod: 5s\n");
    assert_operator_refuses(&yaml, "spec.lifecycle.lameDuckDuration");
    assert_cel_refuses(&yaml, None, "lameDuckDuration must be at least 30s");
}

#[test]
fn a_lame_duck_grace_period_as_long_as_lame_duck_is_refused() {
    let yaml = nats_cluster("  lifecycle:\n    lameDuckDuration: 30s\n    lameDuckGracePeriod: 30s\n    terminationGracePeriodSeconds: 120\n");
    assert_operator_refuses(&yaml, "spec.lifecycle.lameDuckGracePeriod");
    assert_cel_refuses(
        &yaml,
        None,
        "lameDuckGracePeriod must be shorter than lameDuckDuration",
    );
}

#[test]
fn two_listeners_on_one_port_are_refused() {
    let yaml = nats_cluster("  listeners:\n    routes:\n      port: 4222\n");
    assert_operator_refuses(&yaml, "spec.listeners.routes.port");
    assert_cel_refuses(&yaml, None, "every listener needs its own port");
}

#[test]
fn a_name_that_can_not_name_services_is_refused() {
    let yaml = nats_cluster("  replicas: 1\n").replace("name: east", "name: East_Cluster");
    assert_operator_refuses(&yaml, "metadata.name");
    assert_cel_refuses(&yaml, None, "metadata.name must be a DNS label");
}

#[test]
fn environment_variables_of_the_operator_can_not_be_set() {
    let yaml =
        nats_cluster("  podTemplate:\n    env:\n      - name: TERN_POD_NAME\n        value: x\n");
    assert_operator_refuses(&yaml, "spec.podTemplate.env[0].name");
}

#[test]
fn overrides_of_operator_keys_are_refused_naming_the_override() {
    let yaml = nats_cluster("  config:\n    overrides:\n      port: 4333\n");
    let errors = operator_errors(&yaml, &east());
    assert!(
        errors
            .iter()
            .any(|error| error.starts_with("spec.config.overrides.port: ")
                && error.contains("spec.listeners.client.port")),
        "{errors:#?}"
    );
    let nested = nats_cluster("  replicas: 3\n  config:\n    overrides:\n      cluster:\n        routes: [\"nats://elsewhere:6222\"]\n");
    assert_operator_refuses(&nested, "spec.config.overrides.cluster.routes");
    let null = nats_cluster("  config:\n    overrides:\n      max_payload: null\n");
    assert_operator_refuses(&null, "spec.config.overrides.max_payload");
}

#[test]
fn cluster_name_and_storage_class_can_not_change() {
    let old = nats_cluster("  clusterName: east\n  jetstream:\n    fileStorage:\n      size: 1Gi\n      storageClassName: fast\n");
    let renamed = old.replace("clusterName: east", "clusterName: west");
    assert_cel_refuses(&renamed, Some(&old), "clusterName is immutable");
    let restored = old.replace("storageClassName: fast", "storageClassName: slow");
    assert_cel_refuses(&restored, Some(&old), "storageClassName is immutable");
    let shrunk = old.replace("size: 1Gi", "size: 512Mi");
    assert_cel_refuses(&shrunk, Some(&old), "fileStorage.size can only grow");
    let without_volumes = nats_cluster(
        "  clusterName: east\n  jetstream:\n    memoryStorage:\n      maxBytes: 1Gi\n",
    );
    assert_cel_refuses(
        &without_volumes,
        Some(&old),
        "jetstream.fileStorage can not be added or removed",
    );
    assert_eq!(cel_errors(&old, Some(&old)), Vec::<String>::new());
}

#[test]
fn a_member_with_both_a_reference_and_a_template_is_refused() {
    let yaml = super_cluster("  members:\n    - name: east\n      kubernetesCluster: aws-east\n      natsClusterRef:\n        name: east\n      template:\n        replicas: 1\n");
    assert_operator_refuses(&yaml, "spec.members[0]");
    assert_cel_refuses(&yaml, None, "set natsClusterRef or template, not both");
}

#[test]
fn an_external_member_needs_urls() {
    let yaml = super_cluster("  members:\n    - name: east\n      kubernetesCluster: aws-east\n      template:\n        replicas: 1\n    - name: central\n");
    assert_operator_refuses(&yaml, "spec.members[1].gateway.urls");
    assert_cel_refuses(
        &yaml,
        None,
        "an external member (neither natsClusterRef nor template) needs gateway.urls",
    );
}

#[test]
fn a_member_in_another_kubernetes_cluster_needs_urls_where_it_is_remote() {
    let yaml = super_cluster("  members:\n    - name: east\n      kubernetesCluster: aws-east\n      template:\n        replicas: 1\n    - name: west\n      kubernetesCluster: gcp-west\n      template:\n        replicas: 1\n");
    let errors = operator_errors(&yaml, &east());
    assert!(
        errors
            .iter()
            .any(|error| error.starts_with("spec.members[1].gateway.urls: ")
                && error.contains("gcp-west")),
        "{errors:#?}"
    );
}

#[test]
fn gateway_urls_must_be_nats_or_tls() {
    let yaml = super_cluster("  members:\n    - name: central\n      gateway:\n        urls: [\"http://central.example.net:7222\"]\n");
    assert_operator_refuses(&yaml, "spec.members[0].gateway.urls[0]");
    assert_cel_refuses(&yaml, None, "gateway URLs use nats:// or tls://");
}

#[test]
fn a_template_cluster_name_must_be_the_member_name() {
    let yaml = super_cluster("  members:\n    - name: east\n      kubernetesCluster: aws-east\n      template:\n        clusterName: other\n");
    assert_operator_refuses(&yaml, "spec.members[0].template.clusterName");
    assert_cel_refuses(
        &yaml,
        None,
        "template.clusterName must be absent or equal to the member name",
    );
}

#[test]
fn a_referenced_cluster_must_carry_the_member_name() {
    let yaml = format!(
        "{}---\n{}",
        super_cluster("  members:\n    - name: east\n      kubernetesCluster: aws-east\n      natsClusterRef:\n        name: nats\n"),
        nats_cluster("  replicas: 1\n").replace("name: east", "name: nats")
    );
    assert_operator_refuses(&yaml, "spec.clusterName");
}

#[test]
fn the_gateway_port_must_differ_from_the_members_listeners() {
    let yaml = super_cluster("  gateway:\n    port: 4222\n  members:\n    - name: east\n      kubernetesCluster: aws-east\n      template:\n        replicas: 1\n");
    let errors = operator_errors(&yaml, &east());
    assert!(
        errors.iter().any(
            |error| error.contains("SuperCluster global spec.gateway.port")
                && error.contains("4222")
        ),
        "{errors:#?}"
    );
}

#[test]
fn a_super_cluster_needs_to_know_which_kubernetes_cluster_it_is_in() {
    let yaml = super_cluster("  members:\n    - name: central\n      gateway:\n        urls: [\"nats://central.example.net:7222\"]\n");
    let errors = operator_errors(&yaml, &Environment::default());
    assert!(
        errors
            .iter()
            .any(|error| error.starts_with("spec.members: ")
                && error.contains("--kubernetes-cluster-name")),
        "{errors:#?}"
    );
}

#[test]
fn a_leaf_node_with_jetstream_needs_a_domain() {
    let yaml = leaf_node("  remotes:\n    - name: hub\n      urls: [\"tls://hub.example.com:7422\"]\n  jetstream:\n    fileStorage:\n      size: 1Gi\n");
    assert_operator_refuses(&yaml, "spec.jetstream.domain");
    assert_cel_refuses(
        &yaml,
        None,
        "a leaf node with JetStream needs jetstream.domain",
    );
}

#[test]
fn a_remote_can_not_mix_websocket_and_plain_urls() {
    let yaml = leaf_node("  remotes:\n    - name: hub\n      urls: [\"wss://hub.example.com/leafnode\", \"tls://hub.example.com:7422\"]\n");
    assert_operator_refuses(&yaml, "spec.remotes[0].urls");
    assert_cel_refuses(&yaml, None, "can not mix WebSocket");
}

#[test]
fn a_remote_needs_urls_or_a_hub_reference() {
    let yaml = leaf_node("  remotes:\n    - name: hub\n");
    assert_operator_refuses(&yaml, "spec.remotes[0].urls");
    assert_cel_refuses(&yaml, None, "set either urls or hubRef");
}

#[test]
fn websocket_settings_need_websocket_urls() {
    let yaml = leaf_node("  remotes:\n    - name: hub\n      urls: [\"nats://hub.example.com:7422\"]\n      websocket:\n        compression: true\n");
    assert_operator_refuses(&yaml, "spec.remotes[0].websocket");
    assert_cel_refuses(&yaml, None, "websocket settings need ws:// or wss:// URLs");
}

#[test]
fn remote_urls_must_use_a_leaf_node_scheme() {
    let yaml =
        leaf_node("  remotes:\n    - name: hub\n      urls: [\"https://hub.example.com\"]\n");
    assert_operator_refuses(&yaml, "spec.remotes[0].urls[0]");
    assert_cel_refuses(
        &yaml,
        None,
        "remote URLs use nats://, tls://, ws:// or wss://",
    );
}

#[test]
fn a_hub_without_a_leaf_node_listener_is_refused() {
    let yaml = format!(
        "{}---\n{}",
        nats_cluster("  replicas: 1\n")
            .replace("name: east", "name: hub")
            .replace("namespace: nats", "namespace: edge"),
        leaf_node("  remotes:\n    - name: hub\n      hubRef:\n        name: hub\n")
    );
    assert_operator_refuses(&yaml, "spec.remotes[0].hubRef");
}

#[test]
fn a_leaf_node_can_not_share_its_hubs_domain() {
    let yaml = format!(
        "{}---\n{}",
        nats_cluster("  replicas: 1\n  listeners:\n    leafnodes: {}\n  jetstream:\n    domain: shop\n    fileStorage:\n      size: 1Gi\n")
            .replace("name: east", "name: hub")
            .replace("namespace: nats", "namespace: edge"),
        leaf_node("  remotes:\n    - name: hub\n      hubRef:\n        name: hub\n  jetstream:\n    domain: shop\n    fileStorage:\n      size: 1Gi\n")
    );
    assert_operator_refuses(&yaml, "spec.jetstream.domain");
}
