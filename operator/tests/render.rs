//! Rendering behaviours the golden files show only in one state: waiting for addresses and
//! references, what a scale or a config change does to the hashes, the same super-cluster
//! manifest seen from each Kubernetes cluster.

use std::collections::BTreeSet;

use tern_operator::manifest::{parse_manifests, render_manifests};
use tern_operator::render::metadata::{CONFIG_HASH_ANNOTATION, RESTART_HASH_ANNOTATION};
use tern_operator::render::{Object, Rendered};
use tern_operator::validate::Environment;

fn render(yaml: &str, environment: &Environment) -> Vec<(String, Rendered)> {
    let resources = parse_manifests(yaml).expect("manifest parses");
    render_manifests(&resources, environment).expect("manifest renders")
}

fn example(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    std::fs::read_to_string(path).expect("example is readable")
}

fn in_cluster(name: &str) -> Environment {
    Environment {
        kubernetes_cluster_name: Some(name.to_string()),
        ..Environment::default()
    }
}

/// (config hash of the ConfigMap, restart hash of the pod template) of a single-set render.
fn hashes(rendered: &Rendered) -> (String, String) {
    let mut config_hash = String::new();
    let mut restart_hash = String::new();
    for object in &rendered.objects {
        match object {
            Object::ConfigMap(config_map) => {
                config_hash = config_map
                    .metadata
                    .annotations
                    .as_ref()
                    .expect("annotations")[CONFIG_HASH_ANNOTATION]
                    .clone();
            }
            Object::StatefulSet(stateful_set) => {
                let template = &stateful_set.spec.as_ref().expect("spec").template;
                restart_hash = template
                    .metadata
                    .as_ref()
                    .expect("metadata")
                    .annotations
                    .as_ref()
                    .expect("annotations")[RESTART_HASH_ANNOTATION]
                    .clone();
            }
            _ => {}
        }
    }
    (config_hash, restart_hash)
}

fn cluster(spec: &str) -> String {
    format!("apiVersion: tern.dev/v1alpha1\nkind: NatsCluster\nmetadata:\n  name: east\n  namespace: nats\nspec:\n{spec}")
}

#[test]
fn gateways_advertise_only_once_their_load_balancers_have_addresses() {
    let rendered = render(&example("super-cluster.yaml"), &in_cluster("aws-east"));
    let (_, output) = &rendered[0];
    for config in output.configs.values() {
        assert!(!config.contains("  advertise:"), "{config}");
    }
    assert_eq!(
        output.waiting_for,
        (0..3)
            .map(|ordinal| format!(
                "external address of Service nats/east-{ordinal}-gateway (gateway advertise)"
            ))
            .collect::<Vec<_>>()
    );
    let mut environment = in_cluster("aws-east");
    environment.external_addresses.insert(
        ("nats".to_string(), "east-1-gateway".to_string()),
        "2001:db8::7".to_string(),
    );
    let rendered = render(&example("super-cluster.yaml"), &environment);
    let config = &rendered[0].1.configs["east-1.conf"];
    assert!(
        config.contains("advertise: \"[2001:db8::7]:7222\""),
        "{config}"
    );
    assert_eq!(rendered[0].1.waiting_for.len(), 2);
}

#[test]
fn the_same_super_cluster_manifest_runs_the_other_member_in_the_other_kubernetes_cluster() {
    let east = render(&example("super-cluster.yaml"), &in_cluster("aws-east"));
    let west = render(&example("super-cluster.yaml"), &in_cluster("gcp-west"));
    let east_config = &east[0].1.configs["east-0.conf"];
    let west_config = &west[0].1.configs["west-0.conf"];
    assert!(
        east_config.contains("name: \"west\"")
            && east_config.contains("tls://west.gateways.example.com:7222")
    );
    assert!(
        west_config.contains("name: \"east\"")
            && west_config.contains("tls://east.gateways.example.com:7222")
    );
    assert!(!east[0].1.configs.contains_key("west-0.conf"));
    let server_names: Vec<String> = east[0]
        .1
        .configs
        .values()
        .chain(west[0].1.configs.values())
        .filter_map(|config| {
            config
                .lines()
                .find(|line| line.starts_with("server_name:"))
                .map(str::to_string)
        })
        .collect();
    let unique: BTreeSet<&String> = server_names.iter().collect();
    assert_eq!(server_names.len(), 6);
    assert_eq!(
        unique.len(),
        6,
        "server names are unique across the super-cluster: {server_names:?}"
    );
}

#[test]
fn members_in_one_kubernetes_cluster_reach_each_other_through_their_services() {
    let yaml = "apiVersion: tern.dev/v1alpha1\nkind: SuperCluster\nmetadata:\n  name: global\n  namespace: nats\nspec:\n  members:\n    - name: blue\n      kubernetesCluster: one\n      template:\n        replicas: 1\n    - name: green\n      kubernetesCluster: one\n      template:\n        replicas: 1\n";
    let rendered = render(yaml, &in_cluster("one"));
    let blue = &rendered[0].1.configs["blue-0.conf"];
    assert!(
        blue.contains("\"nats://green-headless.nats.svc.cluster.local:7222\""),
        "{blue}"
    );
    let green = &rendered[0].1.configs["green-0.conf"];
    assert!(
        green.contains("\"nats://blue-headless.nats.svc.cluster.local:7222\""),
        "{green}"
    );
}

#[test]
fn a_hub_reference_resolves_to_the_hubs_service_once_the_hub_exists() {
    let hub = "apiVersion: tern.dev/v1alpha1\nkind: NatsCluster\nmetadata:\n  name: hub\n  namespace: nats\nspec:\n  listeners:\n    leafnodes:\n      port: 7422\n";
    let leaf = "apiVersion: tern.dev/v1alpha1\nkind: LeafNode\nmetadata:\n  name: edge\n  namespace: edge\nspec:\n  remotes:\n    - name: hub\n      hubRef:\n        name: hub\n        namespace: nats\n";
    let alone = render(leaf, &Environment::default());
    assert_eq!(
        alone[0].1.waiting_for,
        vec!["NatsCluster nats/hub (spec.remotes[0].hubRef)".to_string()]
    );
    assert!(!alone[0].1.configs["edge-0.conf"].contains("leafnodes"));
    let together = render(&format!("{hub}---\n{leaf}"), &Environment::default());
    let (_, leaf_output) = &together[1];
    assert!(leaf_output.waiting_for.is_empty());
    assert!(leaf_output.configs["edge-0.conf"]
        .contains("urls: [\"nats://hub.nats.svc.cluster.local:7422\"]"));
}

#[test]
fn scaling_changes_the_routes_but_restarts_nothing() {
    let three = render(&cluster("  replicas: 3\n"), &Environment::default());
    let five = render(&cluster("  replicas: 5\n"), &Environment::default());
    let (three_config, three_restart) = hashes(&three[0].1);
    let (five_config, five_restart) = hashes(&five[0].1);
    assert_ne!(three_config, five_config);
    assert_eq!(three_restart, five_restart);
    assert!(five[0].1.configs["east-0.conf"]
        .contains("east-4.east-headless.nats.svc.cluster.local:6222"));
}

#[test]
fn reloadable_changes_keep_the_restart_hash_and_restart_only_changes_change_it() {
    let base = hashes(&render(&cluster("  replicas: 3\n"), &Environment::default())[0].1);
    let payload = hashes(
        &render(
            &cluster("  replicas: 3\n  config:\n    overrides:\n      max_payload: 2097152\n"),
            &Environment::default(),
        )[0]
        .1,
    );
    assert_ne!(base.0, payload.0);
    assert_eq!(base.1, payload.1, "max_payload reloads");
    let port = hashes(
        &render(
            &cluster("  replicas: 3\n  listeners:\n    client:\n      port: 4333\n"),
            &Environment::default(),
        )[0]
        .1,
    );
    assert_ne!(base.1, port.1, "a new client port needs a restart");
    let always = hashes(&render(&cluster("  replicas: 3\n  updateStrategy:\n    reloadPolicy: AlwaysRestart\n  config:\n    overrides:\n      max_payload: 2097152\n"), &Environment::default())[0].1);
    assert_eq!(
        always.0, always.1,
        "AlwaysRestart restarts on every config change"
    );
}

#[test]
fn objects_are_sorted_and_owned_only_once_the_owner_has_a_uid() {
    let rendered = render(&cluster("  replicas: 3\n"), &Environment::default());
    let keys: Vec<(&str, &str)> = rendered[0]
        .1
        .objects
        .iter()
        .map(|object| (object.kind(), object.name()))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert!(rendered[0]
        .1
        .objects
        .iter()
        .all(|object| object.metadata().owner_references.is_none()));
    let owned = render(
        &cluster("  replicas: 3\n").replace("namespace: nats", "namespace: nats\n  uid: \"1234\""),
        &Environment::default(),
    );
    for object in &owned[0].1.objects {
        let references = object
            .metadata()
            .owner_references
            .as_ref()
            .expect("owner references");
        assert_eq!(references[0].uid, "1234");
        assert_eq!(references[0].kind, "NatsCluster");
        assert_eq!(references[0].controller, Some(true));
    }
}

#[test]
fn a_single_server_has_no_cluster_block_and_no_route_port() {
    let rendered = render(&cluster("  replicas: 1\n"), &Environment::default());
    let config = &rendered[0].1.configs["east-0.conf"];
    assert!(!config.contains("cluster {"), "{config}");
    let yaml = tern_operator::render::yaml_stream("test", &rendered[0].1).expect("yaml");
    assert!(!yaml.contains("containerPort: 6222"));
}
