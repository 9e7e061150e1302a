//! The CRDs committed under `crds/` are what `tern-operator crd` generates.
//! Regenerate with `cargo run -p tern-operator -- crd --write-dir crds/`.

use std::path::Path;

use tern_operator::crd::{definition_yaml, definitions, file_name};

#[test]
fn committed_crds_match_the_generated_ones() {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds");
    let mut expected_files = Vec::new();
    for definition in definitions() {
        let name = file_name(&definition);
        let generated = definition_yaml(&definition).expect("CRD serializes");
        let committed = std::fs::read_to_string(directory.join(&name)).unwrap_or_default();
        assert!(
            committed == generated,
            "crds/{name} is stale or missing: run `cargo run -p tern-operator -- crd --write-dir crds/` and commit the result"
        );
        expected_files.push(name);
    }
    let mut committed_files: Vec<String> = std::fs::read_dir(&directory)
        .expect("crds/ exists")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".yaml"))
        .collect();
    committed_files.sort();
    expected_files.sort();
    assert_eq!(
        committed_files, expected_files,
        "crds/ holds CRD files the operator no longer generates"
    );
}

#[test]
fn every_crd_is_in_group_tern_dev_with_status_and_printer_columns() {
    for definition in definitions() {
        assert_eq!(definition.spec.group, "tern.dev");
        let version = &definition.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        let subresources = version.subresources.as_ref().expect("subresources");
        assert!(
            subresources.status.is_some(),
            "{} has a status subresource",
            definition.spec.names.kind
        );
        assert!(version
            .additional_printer_columns
            .as_ref()
            .is_some_and(|columns| !columns.is_empty()));
    }
}

#[test]
fn nats_cluster_and_leaf_node_have_a_scale_subresource() {
    for definition in definitions() {
        let kind = definition.spec.names.kind.clone();
        let scale = definition.spec.versions[0]
            .subresources
            .as_ref()
            .and_then(|s| s.scale.as_ref());
        match kind.as_str() {
            "NatsCluster" | "LeafNode" => {
                let scale = scale.expect("scale subresource");
                assert_eq!(scale.spec_replicas_path, ".spec.replicas");
                assert_eq!(
                    scale.label_selector_path.as_deref(),
                    Some(".status.selector")
                );
            }
            _ => assert!(scale.is_none(), "{kind} has no replicas to scale"),
        }
    }
}
