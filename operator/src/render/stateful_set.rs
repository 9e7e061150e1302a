//! The StatefulSet that runs a set's servers.
//!
//! Frozen from the first release (StatefulSets can not change them): the selector labels, the
//! `serviceName`, the volume claim template name (`jetstream`) and `podManagementPolicy:
//! Parallel` (an `OrderedReady` JetStream cluster deadlocks after a full stop: server 0 waits
//! for quorum that servers 1 and 2 never get to provide). Updates are `OnDelete`: the operator
//! restarts servers itself, one at a time, each only once the others are healthy.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec, StatefulSetUpdateStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, ExecAction, HTTPGetAction, KeyToPath, Lifecycle, LifecycleHandler,
    LocalObjectReference, ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile, SecretKeySelector,
    SecretVolumeSource, SecurityContext, TopologySpreadConstraint, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::layout::{
    Credentials, RemotePart, TlsListener, AUTH_DIRECTORY, AUTH_VOLUME, BROKER_COMMAND,
    CONFIG_DIRECTORY, CONFIG_VOLUME, CONTAINER_NAME, DATA_DIRECTORY, JETSTREAM_VOLUME,
    MONITOR_PORT_NAME, PID_FILE, POD_NAME_VARIABLE, RUN_DIRECTORY, RUN_VOLUME,
};
use super::metadata::{labels, object_meta, selector_labels, RESTART_HASH_ANNOTATION};
use super::objects::ports;
use crate::crd::{SecretReference, TlsSpec};
use crate::validate::ServerSet;

/// Non-root identity of the broker process (the image's `tern` user).
const BROKER_USER: i64 = 1000;
/// Secret files readable by the broker's group only.
const SECRET_FILE_MODE: i32 = 0o440;

pub fn stateful_set(set: &ServerSet, restart_hash: &str) -> StatefulSet {
    let mut pod_labels = set.pod_template.labels.clone();
    // The operator's labels win: the selector must keep matching.
    pod_labels.extend(labels(set));
    let mut pod_annotations = set.pod_template.annotations.clone();
    pod_annotations.insert(
        RESTART_HASH_ANNOTATION.to_string(),
        restart_hash.to_string(),
    );
    let volume_claim_templates = set
        .jetstream
        .as_ref()
        .and_then(|jetstream| jetstream.file_storage.as_ref())
        .map(|file| {
            vec![PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(JETSTREAM_VOLUME.to_string()),
                    labels: Some(selector_labels(set)),
                    ..ObjectMeta::default()
                },
                spec: Some(PersistentVolumeClaimSpec {
                    access_modes: Some(vec!["ReadWriteOnce".to_string()]),
                    storage_class_name: file.storage_class_name.clone(),
                    resources: Some(VolumeResourceRequirements {
                        requests: Some(BTreeMap::from([(
                            "storage".to_string(),
                            Quantity(file.size.clone()),
                        )])),
                        ..VolumeResourceRequirements::default()
                    }),
                    ..PersistentVolumeClaimSpec::default()
                }),
                ..PersistentVolumeClaim::default()
            }]
        });
    StatefulSet {
        metadata: object_meta(set, &set.name),
        spec: Some(StatefulSetSpec {
            replicas: Some(i32::from(set.replicas)),
            service_name: Some(set.headless_service_name()),
            pod_management_policy: Some("Parallel".to_string()),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".to_string()),
                rolling_update: None,
            }),
            selector: LabelSelector {
                match_labels: Some(selector_labels(set)),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(pod_annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod_spec(set)),
            },
            volume_claim_templates,
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}

fn pod_spec(set: &ServerSet) -> PodSpec {
    let template = &set.pod_template;
    let (volumes, mounts) = volumes(set);
    PodSpec {
        service_account_name: Some(
            template
                .service_account_name
                .clone()
                .unwrap_or_else(|| set.name.clone()),
        ),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        termination_grace_period_seconds: Some(set.lifecycle.termination_grace_period_seconds),
        security_context: Some(template.security_context.clone().unwrap_or_else(|| {
            PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(BROKER_USER),
                run_as_group: Some(BROKER_USER),
                fs_group: Some(BROKER_USER),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".to_string(),
                    ..SeccompProfile::default()
                }),
                ..PodSecurityContext::default()
            }
        })),
        image_pull_secrets: (!set.image.pull_secrets.is_empty()).then(|| {
            set.image
                .pull_secrets
                .iter()
                .map(|name| LocalObjectReference { name: name.clone() })
                .collect()
        }),
        affinity: template.affinity.clone(),
        tolerations: (!template.tolerations.is_empty()).then(|| template.tolerations.clone()),
        node_selector: (!template.node_selector.is_empty()).then(|| template.node_selector.clone()),
        priority_class_name: template.priority_class_name.clone(),
        topology_spread_constraints: Some(
            template
                .topology_spread_constraints
                .clone()
                .unwrap_or_else(|| default_spread(set)),
        )
        .filter(|constraints| !constraints.is_empty()),
        containers: vec![container(set, mounts)],
        volumes: Some(volumes),
        ..PodSpec::default()
    }
}

/// Servers on different nodes (required) and in different zones (preferred).
fn default_spread(set: &ServerSet) -> Vec<TopologySpreadConstraint> {
    let constraint = |key: &str, when: &str| TopologySpreadConstraint {
        max_skew: 1,
        topology_key: key.to_string(),
        when_unsatisfiable: when.to_string(),
        label_selector: Some(LabelSelector {
            match_labels: Some(selector_labels(set)),
            ..LabelSelector::default()
        }),
        ..TopologySpreadConstraint::default()
    };
    vec![
        constraint("kubernetes.io/hostname", "DoNotSchedule"),
        constraint("topology.kubernetes.io/zone", "ScheduleAnyway"),
    ]
}

fn healthz_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::String(MONITOR_PORT_NAME.to_string()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(5),
        ..Probe::default()
    }
}

fn container(set: &ServerSet, volume_mounts: Vec<VolumeMount>) -> Container {
    let template = &set.pod_template;
    let mut env = vec![EnvVar {
        name: POD_NAME_VARIABLE.to_string(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: "metadata.name".to_string(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }];
    let mut credentials = Vec::new();
    if set.replicas > 1 {
        credentials.push((Credentials::Routes, set.listeners.route_auth.as_ref()));
    }
    if let Some(gateway) = &set.gateway {
        credentials.push((Credentials::Gateway, gateway.auth.as_ref()));
    }
    if let Some(leafnodes) = &set.listeners.leafnodes {
        credentials.push((Credentials::Leafnodes, leafnodes.auth.as_ref()));
    }
    for (kind, secret) in credentials {
        if let Some(secret) = secret {
            env.push(secret_variable(
                kind.username_variable(),
                secret,
                "username",
            ));
            env.push(secret_variable(
                kind.password_variable(),
                secret,
                "password",
            ));
        }
    }
    env.extend(template.env.iter().cloned());
    Container {
        name: CONTAINER_NAME.to_string(),
        image: Some(set.image.reference.clone()),
        image_pull_policy: Some(set.image.pull_policy.as_str().to_string()),
        command: Some(vec![BROKER_COMMAND.to_string()]),
        // The kubelet expands $(TERN_POD_NAME): each server reads its own file. The broker
        // watches it, so a ConfigMap change the broker can reload needs no restart.
        args: Some(vec![
            "--config".to_string(),
            format!("{CONFIG_DIRECTORY}/$({POD_NAME_VARIABLE}).conf"),
            "--watch_config".to_string(),
        ]),
        env: Some(env),
        ports: Some(
            ports(set)
                .iter()
                .map(|port| ContainerPort {
                    name: Some(port.name.to_string()),
                    container_port: i32::from(port.port),
                    protocol: Some("TCP".to_string()),
                    ..ContainerPort::default()
                })
                .collect(),
        ),
        // Startup allows 15 minutes for JetStream recovery; readiness and liveness ask
        // questions that catching up can not fail, so a recovering server is not killed.
        startup_probe: Some(healthz_probe("/healthz", 10, 90)),
        readiness_probe: Some(healthz_probe("/healthz?js-server-only=true", 10, 3)),
        liveness_probe: Some(healthz_probe("/healthz?js-enabled-only=true", 30, 3)),
        // Lame duck before the kubelet's SIGTERM (which the broker ignores while lame duck
        // runs), so clients move to other servers gradually.
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                exec: Some(ExecAction {
                    command: Some(vec![
                        BROKER_COMMAND.to_string(),
                        "--signal".to_string(),
                        format!("ldm={PID_FILE}"),
                    ]),
                }),
                ..LifecycleHandler::default()
            }),
            ..Lifecycle::default()
        }),
        resources: template.resources.clone(),
        security_context: Some(
            template
                .container_security_context
                .clone()
                .unwrap_or_else(|| SecurityContext {
                    allow_privilege_escalation: Some(false),
                    read_only_root_filesystem: Some(true),
                    capabilities: Some(Capabilities {
                        drop: Some(vec!["ALL".to_string()]),
                        ..Capabilities::default()
                    }),
                    ..SecurityContext::default()
                }),
        ),
        volume_mounts: Some(volume_mounts),
        ..Container::default()
    }
}

fn secret_variable(name: &str, secret: &SecretReference, key: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.name.clone(),
                key: key.to_string(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn secret_volume(name: String, secret: &str, items: Option<Vec<KeyToPath>>) -> Volume {
    Volume {
        name,
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.to_string()),
            default_mode: Some(SECRET_FILE_MODE),
            items,
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    }
}

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.to_string(),
        mount_path: path.to_string(),
        read_only: Some(true),
        ..VolumeMount::default()
    }
}

/// Volumes of the pod and the broker container's mounts, in matching order.
fn volumes(set: &ServerSet) -> (Vec<Volume>, Vec<VolumeMount>) {
    let mut volumes = vec![
        Volume {
            name: CONFIG_VOLUME.to_string(),
            config_map: Some(ConfigMapVolumeSource {
                name: set.config_map_name(),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: RUN_VOLUME.to_string(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
    ];
    // The whole ConfigMap as a directory (not subPath), so updates reach the running pod.
    let mut mounts = vec![
        mount(CONFIG_VOLUME, CONFIG_DIRECTORY),
        VolumeMount {
            read_only: Some(false),
            ..mount(RUN_VOLUME, RUN_DIRECTORY)
        },
    ];
    if let Some(jetstream) = &set.jetstream {
        if jetstream.file_storage.is_none() {
            // Memory-only JetStream still keeps its metadata in store_dir.
            volumes.push(Volume {
                name: JETSTREAM_VOLUME.to_string(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Volume::default()
            });
        }
        mounts.push(VolumeMount {
            read_only: Some(false),
            ..mount(JETSTREAM_VOLUME, DATA_DIRECTORY)
        });
    }
    if let Some(secret) = &set.auth.config_secret_ref {
        let items = vec![KeyToPath {
            key: secret.key.clone(),
            path: secret.key.clone(),
            mode: None,
        }];
        volumes.push(secret_volume(
            AUTH_VOLUME.to_string(),
            &secret.name,
            Some(items),
        ));
        mounts.push(mount(AUTH_VOLUME, AUTH_DIRECTORY));
    }
    let listeners = &set.listeners;
    let mut tls: Vec<(TlsListener, &TlsSpec)> = Vec::new();
    tls.extend(
        listeners
            .client_tls
            .iter()
            .map(|spec| (TlsListener::Client, spec)),
    );
    if set.replicas > 1 {
        tls.extend(
            listeners
                .route_tls
                .iter()
                .map(|spec| (TlsListener::Routes, spec)),
        );
    }
    if let Some(gateway) = &set.gateway {
        tls.extend(gateway.tls.iter().map(|spec| (TlsListener::Gateway, spec)));
    }
    if let Some(leafnodes) = &listeners.leafnodes {
        tls.extend(
            leafnodes
                .tls
                .iter()
                .map(|spec| (TlsListener::Leafnodes, spec)),
        );
    }
    if let Some(websocket) = &listeners.websocket {
        tls.extend(
            websocket
                .tls
                .iter()
                .map(|spec| (TlsListener::Websocket, spec)),
        );
    }
    for (listener, spec) in tls {
        volumes.push(secret_volume(
            listener.certificate_volume(),
            &spec.secret_ref.name,
            None,
        ));
        mounts.push(mount(
            &listener.certificate_volume(),
            &listener.certificate_directory(),
        ));
        if let Some(ca) = &spec.ca_secret_ref {
            volumes.push(secret_volume(listener.ca_volume(), &ca.name, None));
            mounts.push(mount(&listener.ca_volume(), &listener.ca_directory()));
        }
    }
    for remote in &set.leafnode_remotes {
        let mut parts: Vec<(RemotePart, &str)> = Vec::new();
        if let Some(credentials) = &remote.credentials {
            parts.push((RemotePart::Credentials, &credentials.name));
        }
        if let Some(tls) = &remote.tls {
            if let Some(ca) = &tls.ca_secret_ref {
                parts.push((RemotePart::Ca, &ca.name));
            }
            if let Some(certificate) = &tls.client_certificate_secret_ref {
                parts.push((RemotePart::Certificate, &certificate.name));
            }
        }
        for (part, secret) in parts {
            volumes.push(secret_volume(part.volume(&remote.name), secret, None));
            mounts.push(mount(
                &part.volume(&remote.name),
                &part.directory(&remote.name),
            ));
        }
    }
    (volumes, mounts)
}
