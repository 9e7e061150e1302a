//! The part of a reconcile every set of servers shares (a NatsCluster, a super-cluster member,
//! a LeafNode): apply what was rendered, remove what no longer is, refuse unsafe scale-downs,
//! roll restart-only changes one healthy server at a time, and observe how far it got.
//!
//! [`decide_conditions`] is pure: the conditions a set's status shows for an observation.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ObjectReference, Pod, Secret};
use kube::api::{Api, EvictParams, ListParams};
use kube::runtime::events::EventType;
use kube::ResourceExt;

use super::conditions::Decided;
use super::context::Context;
use super::rollout::{next_step, PodView, SetView, Step};
use super::{apply, log, varz, ReconcileError};
use crate::crd::ConditionType;
use crate::render::{Object, Rendered, SetSummary};

/// Annotation on a NatsCluster or LeafNode that lets a scale-down of JetStream servers go
/// ahead (the operator refuses it otherwise: the removed servers' data would be lost).
pub const ALLOW_JETSTREAM_SCALE_DOWN_ANNOTATION: &str = "tern.dev/allow-jetstream-scale-down";

/// On the pod template: a hash over the `resourceVersion` of every Secret the pods use, so a
/// rotated password or certificate rolls the servers (credentials reach them as environment
/// variables and files read at start).
pub const SECRETS_HASH_ANNOTATION: &str = "tern.dev/secrets-hash";

/// Names of the Secrets a pod template uses (volumes, projected volumes, environment).
pub fn referenced_secrets(stateful_set: &StatefulSet) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let Some(pod) = stateful_set
        .spec
        .as_ref()
        .and_then(|spec| spec.template.spec.as_ref())
    else {
        return names;
    };
    for volume in pod.volumes.iter().flatten() {
        if let Some(name) = volume
            .secret
            .as_ref()
            .and_then(|secret| secret.secret_name.clone())
        {
            names.insert(name);
        }
        for source in volume
            .projected
            .iter()
            .flat_map(|projected| projected.sources.iter().flatten())
        {
            if let Some(secret) = &source.secret {
                names.insert(secret.name.clone());
            }
        }
    }
    for container in pod
        .containers
        .iter()
        .chain(pod.init_containers.iter().flatten())
    {
        for variable in container.env.iter().flatten() {
            if let Some(selector) = variable
                .value_from
                .as_ref()
                .and_then(|source| source.secret_key_ref.as_ref())
            {
                names.insert(selector.name.clone());
            }
        }
    }
    names
}

fn annotate_template(stateful_set: &mut StatefulSet, key: &str, value: &str) {
    if let Some(spec) = stateful_set.spec.as_mut() {
        spec.template
            .metadata
            .get_or_insert_with(Default::default)
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(key.to_string(), value.to_string());
    }
}

/// The hash over the used Secrets' versions (a missing one counts as absent: the pods wait
/// for it as the kubelet does), or `None` when the pods use no Secret.
async fn secrets_hash(
    context: &Context,
    namespace: &str,
    objects: &[Object],
) -> Result<Option<String>, ReconcileError> {
    let names: BTreeSet<String> = objects
        .iter()
        .filter_map(|object| match object {
            Object::StatefulSet(stateful_set) => Some(referenced_secrets(stateful_set)),
            _ => None,
        })
        .flatten()
        .collect();
    if names.is_empty() {
        return Ok(None);
    }
    let secrets: Api<Secret> = Api::namespaced(context.client.clone(), namespace);
    let mut versions = String::new();
    for name in &names {
        let secret = secrets.get_opt(name).await.map_err(|source| {
            ReconcileError::kubernetes("get", "Secret", namespace, name, source)
        })?;
        let version = secret
            .and_then(|secret| secret.metadata.resource_version)
            .unwrap_or_else(|| "absent".to_string());
        versions.push_str(&format!("{name}={version}\n"));
    }
    Ok(Some(crate::render::metadata::sha256(versions.as_bytes())))
}

/// How far a set got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub desired: i32,
    /// Pods the StatefulSet controller reports.
    pub replicas: i32,
    pub ready: i32,
    pub rollout: Step,
    /// Why the new spec was not applied: a JetStream scale-down without the annotation.
    pub scale_down_blocked: Option<String>,
    /// Rendered parts left out until what they need exists.
    pub waiting_for: Vec<String>,
    /// Whether every server runs the current config (from their `/varz`).
    pub config_applied: Option<Decided>,
}

/// The conditions of a set's status (besides SpecValid, which the caller knows).
pub fn decide_conditions(observation: &Observation) -> Vec<Decided> {
    let mut conditions = vec![Decided::new(
        ConditionType::SpecValid,
        true,
        "Valid",
        "the spec renders into a config the broker accepts",
    )];
    conditions.push(if observation.waiting_for.is_empty() {
        Decided::new(
            ConditionType::AdvertiseAddressesResolved,
            true,
            "Resolved",
            "every address the config needs is known",
        )
    } else {
        Decided::new(
            ConditionType::AdvertiseAddressesResolved,
            false,
            "WaitingFor",
            format!(
                "left out until known: {}",
                observation.waiting_for.join("; ")
            ),
        )
    });
    conditions.push(match &observation.scale_down_blocked {
        Some(message) => Decided::new(
            ConditionType::ScaleDownBlocked,
            true,
            "JetStreamDataAtRisk",
            message.clone(),
        ),
        None => Decided::new(
            ConditionType::ScaleDownBlocked,
            false,
            "NotBlocked",
            "no scale-down is held back",
        ),
    });
    let progressing = match &observation.rollout {
        _ if observation.scale_down_blocked.is_some() => Decided::new(
            ConditionType::Progressing,
            false,
            "ScaleDownBlocked",
            "nothing changes while the scale-down is held back: see ScaleDownBlocked",
        ),
        Step::Settled if observation.replicas != observation.desired => Decided::new(
            ConditionType::Progressing,
            true,
            "Scaling",
            format!(
                "{} of {} servers exist",
                observation.replicas, observation.desired
            ),
        ),
        Step::Settled => Decided::new(
            ConditionType::Progressing,
            false,
            "Settled",
            "every server runs the current revision",
        ),
        Step::Waiting { outdated, reason } if *outdated > 0 => Decided::new(
            ConditionType::Progressing,
            true,
            "RollingRestart",
            format!("{outdated} servers to restart; waiting: {reason}"),
        ),
        Step::Waiting { reason, .. } => Decided::new(
            ConditionType::Progressing,
            true,
            "Starting",
            format!("waiting: {reason}"),
        ),
        Step::Restart { pod, outdated } => Decided::new(
            ConditionType::Progressing,
            true,
            "RollingRestart",
            format!("{outdated} servers to restart; restarting {pod}"),
        ),
    };
    let settled = !progressing.status;
    conditions.push(progressing);
    if let Some(config_applied) = &observation.config_applied {
        conditions.push(config_applied.clone());
    }
    let all_ready = observation.ready >= observation.desired && observation.desired > 0;
    conditions.push(if observation.scale_down_blocked.is_some() {
        Decided::new(
            ConditionType::Ready,
            false,
            "ScaleDownBlocked",
            "the spec is not applied: see ScaleDownBlocked",
        )
    } else if !all_ready {
        Decided::new(
            ConditionType::Ready,
            false,
            "ServersNotReady",
            format!(
                "{} of {} servers ready",
                observation.ready, observation.desired
            ),
        )
    } else if !settled {
        Decided::new(
            ConditionType::Ready,
            false,
            "Progressing",
            "servers are ready but a rollout is under way",
        )
    } else if !observation.waiting_for.is_empty() {
        Decided::new(
            ConditionType::Ready,
            false,
            "WaitingFor",
            "servers run without parts of their config: see AdvertiseAddressesResolved",
        )
    } else {
        Decided::new(
            ConditionType::Ready,
            true,
            "AllServersReady",
            format!(
                "{} of {} servers ready",
                observation.ready, observation.desired
            ),
        )
    });
    conditions
}

fn pod_view(pod: &Pod) -> Option<PodView> {
    let name = pod.name_any();
    let ordinal = name.rsplit_once('-')?.1.parse().ok()?;
    let ready = pod
        .status
        .as_ref()
        .and_then(|status| status.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|condition| condition.type_ == "Ready" && condition.status == "True")
        });
    Some(PodView {
        revision: pod.labels().get("controller-revision-hash").cloned(),
        terminating: pod.metadata.deletion_timestamp.is_some(),
        name,
        ordinal,
        ready,
    })
}

/// Applies `rendered`, removes orphans and advances the rollout of its one set.
pub async fn reconcile_set(
    context: &Context,
    regarding: &ObjectReference,
    kind: &str,
    owner_uid: &str,
    allow_scale_down: bool,
    rendered: &Rendered,
) -> Result<Observation, ReconcileError> {
    let namespace = regarding.namespace.as_deref().unwrap_or("default");
    let Some(summary) = rendered.sets.first() else {
        return Err(ReconcileError::Internal(format!(
            "{kind} {namespace}/{} rendered no set of servers",
            regarding.name.as_deref().unwrap_or_default()
        )));
    };
    let stateful_sets: Api<StatefulSet> = Api::namespaced(context.client.clone(), namespace);
    let existing = stateful_sets
        .get_opt(&summary.name)
        .await
        .map_err(|source| {
            ReconcileError::kubernetes("get", "StatefulSet", namespace, &summary.name, source)
        })?;
    let current_replicas = existing
        .as_ref()
        .and_then(|set| set.spec.as_ref())
        .and_then(|spec| spec.replicas);
    if let Some(message) = scale_down_refusal(summary, current_replicas, allow_scale_down) {
        // The Warning Event is the caller's, once per new refusal (it knows the conditions).
        return Ok(Observation {
            desired: summary.replicas,
            replicas: status_replicas(existing.as_ref()).0,
            ready: status_replicas(existing.as_ref()).1,
            rollout: Step::Settled,
            scale_down_blocked: Some(message),
            waiting_for: rendered.waiting_for.clone(),
            config_applied: None,
        });
    }
    let secrets_hash = secrets_hash(context, namespace, &rendered.objects).await?;
    for object in &rendered.objects {
        match (object, &secrets_hash) {
            (Object::StatefulSet(stateful_set), Some(hash)) => {
                let mut stateful_set = stateful_set.clone();
                annotate_template(&mut stateful_set, SECRETS_HASH_ANNOTATION, hash);
                apply::apply(&context.client, &Object::StatefulSet(stateful_set)).await?;
            }
            _ => apply::apply(&context.client, object).await?,
        }
    }
    if let Some(previous) = current_replicas.filter(|replicas| *replicas != summary.replicas) {
        context
            .event(
                regarding,
                EventType::Normal,
                "Scaled",
                "Scale",
                format!(
                    "StatefulSet {} scaled from {previous} to {} servers",
                    summary.name, summary.replicas
                ),
            )
            .await;
    }
    for deleted in
        apply::delete_orphans(&context.client, namespace, owner_uid, &rendered.objects).await?
    {
        context
            .event(
                regarding,
                EventType::Normal,
                "RemovedObject",
                "Delete",
                format!("{deleted} is no longer rendered"),
            )
            .await;
    }
    let stateful_set = stateful_sets
        .get_opt(&summary.name)
        .await
        .map_err(|source| {
            ReconcileError::kubernetes("get", "StatefulSet", namespace, &summary.name, source)
        })?;
    let (replicas, ready) = status_replicas(stateful_set.as_ref());
    let (rollout, addresses) =
        advance_rollout(context, regarding, kind, summary, stateful_set.as_ref()).await?;
    let config_applied = Some(config_applied(summary, &addresses).await);
    Ok(Observation {
        desired: summary.replicas,
        replicas,
        ready,
        rollout,
        scale_down_blocked: None,
        waiting_for: rendered.waiting_for.clone(),
        config_applied,
    })
}

/// Why a scale-down must not be applied, if it must not.
fn scale_down_refusal(
    summary: &SetSummary,
    current_replicas: Option<i32>,
    allow: bool,
) -> Option<String> {
    let current = current_replicas?;
    (summary.jetstream && current > summary.replicas && !allow).then(|| {
        format!(
            "scaling {} from {current} to {} servers would remove JetStream servers and the \
             data only they hold; move streams off the highest ordinals, then annotate the \
             resource with {ALLOW_JETSTREAM_SCALE_DOWN_ANNOTATION}=true",
            summary.name, summary.replicas
        )
    })
}

fn status_replicas(stateful_set: Option<&StatefulSet>) -> (i32, i32) {
    stateful_set
        .and_then(|set| set.status.as_ref())
        .map_or((0, 0), |status| {
            (status.replicas, status.ready_replicas.unwrap_or(0))
        })
}

/// Asks every running server which config it runs.
async fn config_applied(summary: &SetSummary, addresses: &BTreeMap<String, IpAddr>) -> Decided {
    let asked = summary.config_digests.keys().map(|pod| async move {
        let reported = match addresses.get(pod) {
            Some(ip) => varz::config_digest(SocketAddr::new(*ip, summary.monitor_port)).await,
            None => varz::Reported::Unreachable("no pod IP yet".to_string()),
        };
        (pod.clone(), reported)
    });
    let reported: BTreeMap<String, varz::Reported> = futures_util::future::join_all(asked)
        .await
        .into_iter()
        .collect();
    varz::decide(&summary.config_digests, &reported)
}

/// Pod name → IP of each pod that runs and is not terminating.
fn pod_addresses(pods: &[Pod]) -> BTreeMap<String, IpAddr> {
    pods.iter()
        .filter(|pod| pod.metadata.deletion_timestamp.is_none())
        .filter_map(|pod| {
            let ip = pod.status.as_ref()?.pod_ip.as_ref()?.parse().ok()?;
            Some((pod.name_any(), ip))
        })
        .collect()
}

/// The next rollout step (a pod deleted when it is a restart), and the pods' addresses.
async fn advance_rollout(
    context: &Context,
    regarding: &ObjectReference,
    kind: &str,
    summary: &SetSummary,
    stateful_set: Option<&StatefulSet>,
) -> Result<(Step, BTreeMap<String, IpAddr>), ReconcileError> {
    let Some(stateful_set) = stateful_set else {
        return Ok((
            Step::Waiting {
                outdated: 0,
                reason: format!("StatefulSet {} does not exist yet", summary.name),
            },
            BTreeMap::new(),
        ));
    };
    let view = SetView {
        replicas: u32::try_from(summary.replicas).unwrap_or(0),
        generation: stateful_set.metadata.generation,
        observed_generation: stateful_set
            .status
            .as_ref()
            .and_then(|status| status.observed_generation),
        update_revision: stateful_set
            .status
            .as_ref()
            .and_then(|status| status.update_revision.clone()),
    };
    let pods_api: Api<Pod> = Api::namespaced(context.client.clone(), &summary.namespace);
    let pods = pods_api
        .list(&ListParams::default().labels(&summary.selector))
        .await
        .map_err(|source| {
            ReconcileError::kubernetes("list", "Pod", &summary.namespace, "", source)
        })?;
    let views: Vec<PodView> = pods.items.iter().filter_map(pod_view).collect();
    let addresses = pod_addresses(&pods.items);
    let step = next_step(&view, &views);
    log::debug(
        "rollout",
        &[
            ("set", &format!("{}/{}", summary.namespace, summary.name)),
            (
                "update_revision",
                view.update_revision.as_deref().unwrap_or(""),
            ),
            (
                "pods",
                &views
                    .iter()
                    .map(|pod| {
                        format!(
                            "{}:{}:{}",
                            pod.name,
                            pod.revision.as_deref().unwrap_or(""),
                            if pod.ready { "ready" } else { "unready" }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("step", &format!("{step:?}")),
        ],
    );
    if let Step::Restart { pod, outdated } = &step {
        log::info(
            "restarting server",
            &[
                ("kind", kind),
                ("pod", &format!("{}/{pod}", summary.namespace)),
                ("outdated", &outdated.to_string()),
            ],
        );
        context
            .event(
                regarding,
                EventType::Normal,
                "RestartingServer",
                "Restart",
                format!(
                    "restarting {pod} for a change it cannot reload (new pod template \
                     revision); {outdated} servers to go, one at a time, each after the \
                     others are ready"
                ),
            )
            .await;
        // The Eviction API, not a plain delete: a PodDisruptionBudget (and a drain going on at
        // the same time) is honoured; 429 means it refuses for now, and the next reconcile
        // tries again.
        match pods_api.evict(pod, &EvictParams::default()).await {
            Ok(_) => context.metrics.restarted(kind),
            Err(kube::Error::Api(status)) if status.code == 404 || status.code == 429 => {
                log::info(
                    "restart held back",
                    &[("pod", pod), ("reason", &status.message)],
                );
            }
            Err(source) => {
                return Err(ReconcileError::kubernetes(
                    "evict",
                    "Pod",
                    &summary.namespace,
                    pod,
                    source,
                ))
            }
        }
    }
    Ok((step, addresses))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observation(ready: i32, rollout: Step) -> Observation {
        Observation {
            desired: 3,
            replicas: 3,
            ready,
            rollout,
            scale_down_blocked: None,
            waiting_for: Vec::new(),
            config_applied: None,
        }
    }

    fn find(conditions: &[Decided], type_: ConditionType) -> &Decided {
        conditions
            .iter()
            .find(|condition| condition.type_ == type_)
            .expect("condition present")
    }

    #[test]
    fn ready_only_when_every_server_is_ready_and_nothing_is_rolling() {
        let all = decide_conditions(&observation(3, Step::Settled));
        assert!(find(&all, ConditionType::Ready).status);
        assert!(!find(&all, ConditionType::Progressing).status);

        let starting = decide_conditions(&observation(2, Step::Settled));
        let ready = find(&starting, ConditionType::Ready);
        assert!(!ready.status);
        assert_eq!(ready.reason, "ServersNotReady");
        assert_eq!(ready.message, "2 of 3 servers ready");

        let rolling = decide_conditions(&observation(
            3,
            Step::Restart {
                pod: "nats-2".into(),
                outdated: 3,
            },
        ));
        assert_eq!(find(&rolling, ConditionType::Ready).reason, "Progressing");
        let progressing = find(&rolling, ConditionType::Progressing);
        assert!(progressing.status);
        assert_eq!(progressing.reason, "RollingRestart");
    }

    #[test]
    fn waiting_for_addresses_and_blocked_scale_down_are_not_ready() {
        let mut waiting = observation(3, Step::Settled);
        waiting.waiting_for = vec!["external address of Service ns/x".into()];
        let conditions = decide_conditions(&waiting);
        assert!(!find(&conditions, ConditionType::AdvertiseAddressesResolved).status);
        assert_eq!(find(&conditions, ConditionType::Ready).reason, "WaitingFor");

        let mut blocked = observation(3, Step::Settled);
        blocked.scale_down_blocked = Some("no".into());
        let conditions = decide_conditions(&blocked);
        assert!(find(&conditions, ConditionType::ScaleDownBlocked).status);
        assert_eq!(
            find(&conditions, ConditionType::Ready).reason,
            "ScaleDownBlocked"
        );
    }

    #[test]
    fn the_secrets_a_pod_template_uses_are_found_in_volumes_and_environment() {
        let stateful_set: StatefulSet = serde_json::from_value(serde_json::json!({
            "spec": {
                "selector": {},
                "serviceName": "x",
                "template": { "spec": {
                    "containers": [{ "name": "tern", "env": [
                        { "name": "A", "value": "plain" },
                        { "name": "B", "valueFrom": { "secretKeyRef": { "name": "routes", "key": "password" } } }
                    ]}],
                    "volumes": [
                        { "name": "tls", "secret": { "secretName": "client-tls" } },
                        { "name": "config", "configMap": { "name": "config" } },
                        { "name": "both", "projected": { "sources": [ { "secret": { "name": "ca" } } ] } }
                    ]
                }}
            }
        }))
        .expect("a StatefulSet");
        let names: Vec<String> = referenced_secrets(&stateful_set).into_iter().collect();
        assert_eq!(names, ["ca", "client-tls", "routes"]);
    }

    #[test]
    fn jetstream_scale_down_is_refused_without_the_annotation() {
        let summary = SetSummary {
            name: "js".into(),
            replicas: 3,
            jetstream: true,
            ..SetSummary::default()
        };
        assert!(scale_down_refusal(&summary, Some(5), false).is_some());
        assert!(scale_down_refusal(&summary, Some(5), true).is_none());
        assert!(scale_down_refusal(&summary, Some(3), false).is_none());
        assert!(scale_down_refusal(&summary, None, false).is_none());
        let plain = SetSummary {
            jetstream: false,
            ..summary
        };
        assert!(scale_down_refusal(&plain, Some(5), false).is_none());
    }
}
