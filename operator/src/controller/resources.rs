//! Reconcile of each custom resource: NatsCluster, SuperCluster and LeafNode.
//!
//! Pipeline (the same for all three): read what the render depends on (NatsClusters that
//! references may point at, exposed Services' external addresses, SuperClusters this
//! NatsCluster is a member of) → render (pure; an invalid spec becomes `SpecValid=False`, a
//! Warning Event, and no retry until the spec changes) → apply and clean up → roll → status.
//! The status is written through the status subresource, and only when it changed.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde::Serialize;

use super::apply::{self, NamespacedObject};
use super::conditions::{merge, Decided};
use super::context::{Context, FIELD_MANAGER};
use super::rollout::Step;
use super::server_set::{
    decide_conditions, reconcile_set, Observation, ALLOW_JETSTREAM_SCALE_DOWN_ANNOTATION,
};
use super::ReconcileError;
use crate::crd::{
    ConditionType, Endpoints, LeafJetStreamStatus, LeafNode, LeafNodeStatus, MemberStatus,
    NatsCluster, SuperCluster, SuperClusterStatus,
};
use crate::render::metadata::{MANAGED_BY, MANAGED_BY_LABEL};
use crate::render::{
    render_leaf_node, render_nats_cluster, render_super_cluster, RenderError, Rendered,
};
use crate::validate::{validate_super_cluster, Environment, MemberSource, Membership};

fn identity<K: Resource>(object: &K) -> Result<(String, String, String), ReconcileError> {
    let namespace = object.namespace().unwrap_or_else(|| "default".to_string());
    let name = object.name_any();
    let uid = object
        .uid()
        .ok_or_else(|| ReconcileError::Internal(format!("{namespace}/{name} has no uid")))?;
    Ok((namespace, name, uid))
}

/// What a render of something in `namespace` may depend on.
/// NatsClusters are read from `namespace` and from `referenced` (a LeafNode's hubs elsewhere).
async fn environment(
    context: &Context,
    namespace: &str,
    referenced: &[String],
) -> Result<Environment, ReconcileError> {
    let mut environment = Environment {
        kubernetes_cluster_name: context.settings.kubernetes_cluster_name.clone(),
        cluster_domain: context.settings.cluster_domain.clone(),
        ..Environment::default()
    };
    let mut namespaces: Vec<&str> = vec![namespace];
    namespaces.extend(referenced.iter().map(String::as_str));
    namespaces.sort_unstable();
    namespaces.dedup();
    for cluster_namespace in namespaces {
        let clusters: Api<NatsCluster> = Api::namespaced(context.client.clone(), cluster_namespace);
        let listed = clusters
            .list(&ListParams::default())
            .await
            .map_err(|source| {
                ReconcileError::kubernetes("list", "NatsCluster", cluster_namespace, "", source)
            })?;
        for cluster in listed {
            environment
                .nats_clusters
                .insert((cluster_namespace.to_string(), cluster.name_any()), cluster);
        }
    }
    let services: Api<Service> = Api::namespaced(context.client.clone(), namespace);
    for service in services
        .list(&ListParams::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}")))
        .await
        .map_err(|source| ReconcileError::kubernetes("list", "Service", namespace, "", source))?
    {
        let address = service
            .status
            .as_ref()
            .and_then(|status| status.load_balancer.as_ref())
            .and_then(|balancer| balancer.ingress.as_ref())
            .and_then(|ingress| ingress.first())
            .and_then(|ingress| ingress.hostname.clone().or_else(|| ingress.ip.clone()));
        if let Some(address) = address {
            environment
                .external_addresses
                .insert((namespace.to_string(), service.name_any()), address);
        }
    }
    Ok(environment)
}

/// Whether a render failure is the spec's fault (reported on the resource, not retried).
fn spec_error(error: &RenderError) -> bool {
    !matches!(error, RenderError::Serialize { .. })
}

/// Writes `status` through the status subresource when it differs from `current`.
async fn write_status<K, S>(
    context: &Context,
    object: &K,
    current: Option<&S>,
    status: &S,
) -> Result<(), ReconcileError>
where
    K: NamespacedObject,
    S: Serialize + PartialEq,
{
    if current == Some(status) {
        return Ok(());
    }
    let namespace = object.namespace().unwrap_or_else(|| "default".to_string());
    let name = object.name_any();
    let api: Api<K> = Api::namespaced(context.client.clone(), &namespace);
    // Server-side apply of the whole status: a field the operator set before and leaves out
    // now (an endpoint no longer served) is removed, which a merge patch would keep.
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    match api
        .patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
    {
        // Deleted while it was reconciled: there is no status left to write.
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        result => result.map(|_| ()),
    }
    .map_err(|source| {
        ReconcileError::kubernetes("update status of", K::kind(&()), &namespace, &name, source)
    })
}

/// The conditions of an invalid spec, and a Warning Event when the message is new.
async fn invalid_spec(
    context: &Context,
    regarding: &k8s_openapi::api::core::v1::ObjectReference,
    existing: &[Condition],
    error: &RenderError,
) -> Vec<Decided> {
    let message = error.to_string();
    let already_reported = existing.iter().any(|condition| {
        condition.type_ == ConditionType::SpecValid.as_str()
            && condition.status == "False"
            && condition.message == message
    });
    if !already_reported {
        context
            .event(
                regarding,
                EventType::Warning,
                "InvalidSpec",
                "Validate",
                message.clone(),
            )
            .await;
    }
    vec![
        Decided::new(ConditionType::SpecValid, false, "InvalidSpec", message),
        Decided::new(
            ConditionType::Ready,
            false,
            "InvalidSpec",
            "the spec is invalid: see SpecValid; running servers are left as they are",
        ),
    ]
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

/// How often a resource whose config waits for something is looked at again.
const WAITING_POLL: std::time::Duration = std::time::Duration::from_secs(30);

/// Requeue soon while something is under way, rarely once settled.
fn next_action(context: &Context, observation: &Observation) -> Action {
    // A refused scale-down waits for the spec or the annotation to change (both trigger a
    // reconcile), not for a poll.
    if observation.scale_down_blocked.is_some() {
        return Action::requeue(context.settings.resync);
    }
    // Something the config needs (a hub in another namespace, say) may appear without a
    // watched change; Services' addresses do trigger a reconcile.
    if !observation.waiting_for.is_empty() {
        return Action::requeue(WAITING_POLL);
    }
    let settled = matches!(observation.rollout, Step::Settled)
        && observation.ready >= observation.desired
        && observation.replicas == observation.desired
        && observation
            .config_applied
            .as_ref()
            // Servers the operator cannot reach (a NetworkPolicy, say) are not polled for.
            .is_none_or(|config_applied| {
                config_applied.status || config_applied.reason == "Unreachable"
            });
    if settled {
        Action::requeue(context.settings.resync)
    } else {
        Action::requeue(context.settings.poll)
    }
}

/// Whether `super_cluster` names NatsCluster `name` as a member (by member name or reference).
fn names_member(super_cluster: &SuperCluster, name: &str) -> bool {
    super_cluster.spec.members.iter().any(|member| {
        member.name == name
            || member
                .nats_cluster_ref
                .as_ref()
                .is_some_and(|reference| reference.name == name)
    })
}

/// The super-cluster membership of NatsCluster `name`, if a SuperCluster in its namespace runs
/// it as a local member.
async fn membership_of(
    context: &Context,
    namespace: &str,
    name: &str,
    environment: &Environment,
) -> Result<Option<Membership>, ReconcileError> {
    let api: Api<SuperCluster> = Api::namespaced(context.client.clone(), namespace);
    let super_clusters = api.list(&ListParams::default()).await.map_err(|source| {
        ReconcileError::kubernetes("list", "SuperCluster", namespace, "", source)
    })?;
    for super_cluster in super_clusters {
        let plan = match validate_super_cluster(&super_cluster, environment) {
            Ok(plan) => plan,
            // A SuperCluster that names this cluster but is invalid: rendering without it would
            // drop the gateways and restart every server, so nothing is rendered until it is
            // fixed (its own status says what is wrong).
            Err(error) if names_member(&super_cluster, name) => {
                return Err(ReconcileError::SuperClusterInvalid {
                    super_cluster: super_cluster.name_any(),
                    message: error.to_string(),
                })
            }
            Err(_) => continue,
        };
        for member in plan.local_members {
            let member_name = match &member.source {
                MemberSource::Reference(reference) => reference.clone(),
                MemberSource::Template(cluster) => cluster.name_any(),
            };
            if member_name == name {
                return Ok(Some(member.membership));
            }
        }
    }
    Ok(None)
}

/// What a set's reconcile leaves for its resource's status.
struct SetOutcome {
    conditions: Vec<Condition>,
    /// Present when the spec rendered.
    applied: Option<(Observation, Rendered)>,
    action: Action,
}

impl SetOutcome {
    fn replicas(&self) -> Option<(i32, i32)> {
        self.applied
            .as_ref()
            .map(|(observation, _)| (observation.replicas, observation.ready))
    }

    fn summary(&self) -> Option<&crate::render::SetSummary> {
        self.applied
            .as_ref()
            .and_then(|(_, rendered)| rendered.sets.first())
    }
}

/// The shared half of a NatsCluster's and a LeafNode's reconcile, from the render on.
async fn reconcile_rendered<K>(
    context: &Context,
    object: &K,
    existing: &[Condition],
    render: Result<Rendered, RenderError>,
) -> Result<SetOutcome, ReconcileError>
where
    K: Resource<DynamicType = ()>,
{
    let (_, _, uid) = identity(object)?;
    let regarding = object.object_ref(&());
    let generation = object.meta().generation;
    match render {
        Err(error) if spec_error(&error) => {
            let decided = invalid_spec(context, &regarding, existing, &error).await;
            Ok(SetOutcome {
                conditions: merge(existing, &decided, generation, now()),
                applied: None,
                action: Action::await_change(),
            })
        }
        Err(error) => Err(ReconcileError::Render(Box::new(error))),
        Ok(rendered) => {
            let allow = object
                .annotations()
                .get(ALLOW_JETSTREAM_SCALE_DOWN_ANNOTATION)
                .is_some_and(|value| value == "true");
            let kind = K::kind(&());
            let observation =
                reconcile_set(context, &regarding, &kind, &uid, allow, &rendered).await?;
            if let Some(message) = &observation.scale_down_blocked {
                let already_reported = existing.iter().any(|condition| {
                    condition.type_ == ConditionType::ScaleDownBlocked.as_str()
                        && condition.status == "True"
                        && &condition.message == message
                });
                if !already_reported {
                    context
                        .event(
                            &regarding,
                            EventType::Warning,
                            "ScaleDownBlocked",
                            "Scale",
                            message.clone(),
                        )
                        .await;
                }
            }
            let decided = decide_conditions(&observation);
            Ok(SetOutcome {
                conditions: merge(existing, &decided, generation, now()),
                action: next_action(context, &observation),
                applied: Some((observation, rendered)),
            })
        }
    }
}

pub async fn reconcile_nats_cluster(
    cluster: Arc<NatsCluster>,
    context: Arc<Context>,
) -> Result<Action, ReconcileError> {
    if cluster.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let (namespace, name, _) = identity(cluster.as_ref())?;
    let environment = environment(&context, &namespace, &[]).await?;
    let membership = membership_of(&context, &namespace, &name, &environment).await?;
    let current = cluster.status.clone();
    let mut status = current.clone().unwrap_or_default();
    let render = render_nats_cluster(&cluster, membership.as_ref(), &environment);
    let outcome =
        reconcile_rendered(&context, cluster.as_ref(), &status.conditions, render).await?;
    status.observed_generation = cluster.metadata.generation;
    if let Some((replicas, ready)) = outcome.replicas() {
        (status.replicas, status.ready_replicas) = (replicas, ready);
    }
    if let Some(summary) = outcome.summary() {
        status.selector = Some(summary.selector.clone());
        status.config_hash = Some(summary.config_hash.clone());
        status.endpoints = Some(Endpoints {
            client: Some(summary.client_url.clone()),
            websocket: summary.websocket_url.clone(),
            ..Endpoints::default()
        });
    }
    status.conditions = outcome.conditions;
    write_status(&context, cluster.as_ref(), current.as_ref(), &status).await?;
    Ok(outcome.action)
}

pub async fn reconcile_leaf_node(
    leaf_node: Arc<LeafNode>,
    context: Arc<Context>,
) -> Result<Action, ReconcileError> {
    if leaf_node.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let (namespace, _, _) = identity(leaf_node.as_ref())?;
    let hub_namespaces: Vec<String> = leaf_node
        .spec
        .remotes
        .iter()
        .filter_map(|remote| remote.hub_ref.as_ref()?.namespace.clone())
        .collect();
    let environment = environment(&context, &namespace, &hub_namespaces).await?;
    let current = leaf_node.status.clone();
    let mut status: LeafNodeStatus = current.clone().unwrap_or_default();
    let render = render_leaf_node(&leaf_node, &environment);
    let outcome =
        reconcile_rendered(&context, leaf_node.as_ref(), &status.conditions, render).await?;
    status.observed_generation = leaf_node.metadata.generation;
    if let Some((replicas, ready)) = outcome.replicas() {
        (status.replicas, status.ready_replicas) = (replicas, ready);
    }
    if let Some(summary) = outcome.summary() {
        status.selector = Some(summary.selector.clone());
        status.config_hash = Some(summary.config_hash.clone());
    }
    status.jetstream = leaf_node
        .spec
        .jetstream
        .as_ref()
        .and_then(|jetstream| jetstream.domain.clone())
        .map(|domain| LeafJetStreamStatus {
            api_prefix: format!("$JS.{domain}.API"),
            domain,
        });
    status.conditions = outcome.conditions;
    write_status(&context, leaf_node.as_ref(), current.as_ref(), &status).await?;
    // A hub can make this spec invalid (no leaf node listener yet); a fix there is no change
    // here, so a LeafNode with hub references looks again.
    let has_hub = leaf_node
        .spec
        .remotes
        .iter()
        .any(|remote| remote.hub_ref.is_some());
    if outcome.applied.is_none() && has_hub {
        return Ok(Action::requeue(WAITING_POLL));
    }
    Ok(outcome.action)
}

pub async fn reconcile_super_cluster(
    super_cluster: Arc<SuperCluster>,
    context: Arc<Context>,
) -> Result<Action, ReconcileError> {
    if super_cluster.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let (namespace, _, uid) = identity(super_cluster.as_ref())?;
    let regarding = super_cluster.object_ref(&());
    let environment = environment(&context, &namespace, &[]).await?;
    let current = super_cluster.status.clone();
    let existing = current
        .as_ref()
        .map(|status| status.conditions.clone())
        .unwrap_or_default();
    let mut status: SuperClusterStatus = current.clone().unwrap_or_default();
    status.observed_generation = super_cluster.metadata.generation;
    let generation = super_cluster.metadata.generation;
    let rendered = match render_super_cluster(&super_cluster, &environment) {
        Err(error) if spec_error(&error) => {
            let decided = invalid_spec(&context, &regarding, &existing, &error).await;
            status.conditions = merge(&existing, &decided, generation, now());
            write_status(&context, super_cluster.as_ref(), current.as_ref(), &status).await?;
            return Ok(Action::await_change());
        }
        Err(error) => return Err(ReconcileError::Render(Box::new(error))),
        Ok(rendered) => rendered,
    };
    // The members' own objects are the NatsCluster controller's: here only the NatsClusters
    // made from templates are applied.
    let members: Vec<_> = rendered
        .objects
        .iter()
        .filter(|object| object.kind() == "NatsCluster")
        .cloned()
        .collect();
    for member in &members {
        apply::apply(&context.client, member).await?;
    }
    for deleted in apply::delete_orphan_members(&context.client, &namespace, &uid, &members).await?
    {
        context
            .event(
                &regarding,
                EventType::Normal,
                "RemovedMember",
                "Delete",
                format!("{deleted} is no longer a member"),
            )
            .await;
    }
    let plan = validate_super_cluster(&super_cluster, &environment)
        .map_err(|error| ReconcileError::Render(Box::new(RenderError::Invalid(error))))?;
    let mut member_statuses = Vec::new();
    let mut not_ready = Vec::new();
    let clusters: Api<NatsCluster> = Api::namespaced(context.client.clone(), &namespace);
    for member in &plan.local_members {
        let cluster_name = match &member.source {
            MemberSource::Reference(reference) => reference.clone(),
            MemberSource::Template(cluster) => cluster.name_any(),
        };
        let cluster = clusters.get_opt(&cluster_name).await.map_err(|source| {
            ReconcileError::kubernetes("get", "NatsCluster", &namespace, &cluster_name, source)
        })?;
        let ready = cluster
            .as_ref()
            .and_then(|cluster| cluster.status.as_ref())
            .is_some_and(|status| {
                super::conditions::is_true(&status.conditions, ConditionType::Ready)
            });
        if !ready {
            not_ready.push(member.membership.member.clone());
        }
        member_statuses.push(MemberStatus {
            name: member.membership.member.clone(),
            local: true,
            ready: Some(ready),
            ..MemberStatus::default()
        });
    }
    for remote in &plan.remote_members {
        member_statuses.push(MemberStatus {
            name: remote.clone(),
            local: false,
            ..MemberStatus::default()
        });
    }
    member_statuses.sort_by(|a, b| a.name.cmp(&b.name));
    let local_names: Vec<String> = plan
        .local_members
        .iter()
        .map(|member| member.membership.member.clone())
        .collect();
    let decided = super_cluster_conditions(&local_names, &not_ready, &rendered.waiting_for);
    status.conditions = merge(&existing, &decided, generation, now());
    status.local_members = (!local_names.is_empty()).then(|| local_names.join(","));
    status.members = member_statuses;
    write_status(&context, super_cluster.as_ref(), current.as_ref(), &status).await?;
    Ok(if not_ready.is_empty() && rendered.waiting_for.is_empty() {
        Action::requeue(context.settings.resync)
    } else {
        Action::requeue(context.settings.poll)
    })
}

/// The conditions of a SuperCluster from its local members' readiness.
pub fn super_cluster_conditions(
    local: &[String],
    not_ready: &[String],
    waiting_for: &[String],
) -> Vec<Decided> {
    let mut decided = vec![Decided::new(
        ConditionType::SpecValid,
        true,
        "Valid",
        "every local member renders into a config the broker accepts",
    )];
    decided.push(if waiting_for.is_empty() {
        Decided::new(
            ConditionType::AdvertiseAddressesResolved,
            true,
            "Resolved",
            "every gateway address is known",
        )
    } else {
        Decided::new(
            ConditionType::AdvertiseAddressesResolved,
            false,
            "WaitingFor",
            format!("left out until known: {}", waiting_for.join("; ")),
        )
    });
    let members_ready = if local.is_empty() {
        Decided::new(
            ConditionType::MembersReady,
            true,
            "NoLocalMembers",
            "no member runs in this Kubernetes cluster",
        )
    } else if not_ready.is_empty() {
        Decided::new(
            ConditionType::MembersReady,
            true,
            "AllMembersReady",
            format!("local members ready: {}", local.join(", ")),
        )
    } else {
        Decided::new(
            ConditionType::MembersReady,
            false,
            "MembersNotReady",
            format!("not ready yet: {}", not_ready.join(", ")),
        )
    };
    let ready = members_ready.status && waiting_for.is_empty();
    decided.push(members_ready);
    decided.push(if ready {
        Decided::new(ConditionType::Ready, true, "AllMembersReady", "")
    } else {
        Decided::new(
            ConditionType::Ready,
            false,
            "NotReady",
            "see MembersReady and AdvertiseAddressesResolved",
        )
    });
    decided
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_super_cluster_is_ready_when_its_local_members_are_and_nothing_is_waited_for() {
        let local = vec!["east".to_string(), "west".to_string()];
        let ready = super_cluster_conditions(&local, &[], &[]);
        assert!(ready.iter().all(|condition| condition.status));
        let one_down = super_cluster_conditions(&local, &["west".to_string()], &[]);
        let members = one_down
            .iter()
            .find(|c| c.type_ == ConditionType::MembersReady)
            .expect("MembersReady");
        assert!(!members.status);
        assert_eq!(members.message, "not ready yet: west");
        let waiting = super_cluster_conditions(&local, &[], &["address".to_string()]);
        assert!(waiting
            .iter()
            .any(|c| c.type_ == ConditionType::Ready && !c.status));
    }
}
