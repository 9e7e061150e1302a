//! The operator against a real Kubernetes control plane: etcd, kube-apiserver and
//! kube-controller-manager built from their Go modules (e2e/setup/kube-control-plane.sh), the
//! chart installed with helm, the operator run with the chart's ServiceAccount, and a kubelet
//! stand-in running each Pod the real StatefulSet controller creates as a `tern` process in a
//! network namespace of its own.
//!
//! One control plane serves every scenario (it takes seconds to start; the scenarios use their
//! own namespaces). Scenarios run in order and each failure is collected, so one run reports
//! every scenario that failed; on failure the operator's, the pods' and the control plane's logs
//! are printed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tern_e2e::kubernetes::node::{NodeAgent, NodeSettings};
use tern_e2e::kubernetes::{ControlPlane, OperatorProcess};
use tern_e2e::{wait_until, ServerKind};

const OPERATOR_NAMESPACE: &str = "tern-system";
const LEASE: &str = "tern-operator-leader";
/// Short, so the failover scenario is quick.
const LEASE_SECONDS: u64 = 6;
/// How long a NatsCluster of up to 5 servers may take to become Ready (debug brokers, 2 cores).
const READY_TIMEOUT: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(250);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn helm() -> PathBuf {
    if let Some(path) = std::env::var_os("HELM") {
        return PathBuf::from(path);
    }
    let built = workspace().join(".cache/helm/helm");
    if built.is_file() {
        built
    } else {
        PathBuf::from("helm")
    }
}

struct Tier {
    plane: ControlPlane,
    runtime: tokio::runtime::Runtime,
    operators: Vec<OperatorProcess>,
    node: Option<NodeAgent>,
    operator_kubeconfig: PathBuf,
}

impl Tier {
    fn kubectl(&self, arguments: &[&str]) -> Result<String, String> {
        self.plane
            .kubectl(arguments)
            .map_err(|error| error.to_string())
    }

    fn apply(&self, manifest: &str) -> Result<String, String> {
        self.plane
            .kubectl_with_input(&["apply", "-f", "-"], Some(manifest))
            .map_err(|error| error.to_string())
    }

    fn json(&self, arguments: &[&str]) -> Result<Value, String> {
        let mut all = arguments.to_vec();
        all.extend(["-o", "json"]);
        let text = self.kubectl(&all)?;
        serde_json::from_str(&text).map_err(|error| format!("{error}: {text}"))
    }

    fn helm(&self, arguments: &[&str]) -> Result<String, String> {
        let output = std::process::Command::new(helm())
            .args(arguments)
            .env("KUBECONFIG", self.plane.admin_kubeconfig())
            .env("HELM_CACHE_HOME", self.plane.directory().join("helm-cache"))
            .env(
                "HELM_CONFIG_HOME",
                self.plane.directory().join("helm-config"),
            )
            .env("HELM_DATA_HOME", self.plane.directory().join("helm-data"))
            .output()
            .map_err(|error| format!("cannot run helm ({}): {error}", helm().display()))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(format!(
                "helm {} failed: {}",
                arguments.join(" "),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }

    /// Polls `kubectl get ... -o json` until `check` returns `Some`.
    fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        arguments: &[&str],
        mut check: impl FnMut(&Value) -> Option<T>,
    ) -> Result<T, String> {
        let mut last = String::new();
        wait_until(what, timeout, POLL, || match self.json(arguments) {
            Ok(value) => {
                let found = check(&value);
                if found.is_none() {
                    last = value
                        .pointer("/status")
                        .map(Value::to_string)
                        .unwrap_or_default();
                }
                found
            }
            Err(error) => {
                last = error;
                None
            }
        })
        .map_err(|error| format!("{error}; last seen: {last}"))
    }

    fn start_operator(&mut self, identity: &str) -> Result<(), String> {
        let operator = OperatorProcess::start(
            identity,
            &self.operator_kubeconfig,
            self.plane.directory(),
            &[
                "--kubernetes-cluster-name",
                "here",
                "--leader-election-namespace",
                OPERATOR_NAMESPACE,
                "--leader-election-lease",
                LEASE,
                "--leader-election-lease-duration",
                &LEASE_SECONDS.to_string(),
            ],
        )
        .map_err(|error| error.to_string())?;
        self.operators.push(operator);
        Ok(())
    }

    fn lease_holder(&self) -> Option<String> {
        self.json(&["get", "lease", LEASE, "-n", OPERATOR_NAMESPACE])
            .ok()?
            .pointer("/spec/holderIdentity")?
            .as_str()
            .map(str::to_string)
    }

    fn diagnostics(&self) -> String {
        let mut text = String::new();
        for operator in &self.operators {
            text.push_str(&format!(
                "=== operator {} ===\n{}\n",
                operator.identity(),
                operator.log_tail(120)
            ));
        }
        if let Some(node) = &self.node {
            text.push_str(&format!("=== pods ===\n{}\n", node.pod_logs()));
        }
        text.push_str(&format!("=== control plane ===\n{}\n", self.plane.logs(30)));
        text
    }
}

fn condition<'a>(object: &'a Value, type_: &str) -> Option<&'a Value> {
    object
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|condition| condition.get("type").and_then(Value::as_str) == Some(type_))
}

fn condition_message(object: &Value, type_: &str) -> Option<String> {
    condition(object, type_)?
        .get("message")?
        .as_str()
        .map(str::to_string)
}

fn condition_is(object: &Value, type_: &str, status: &str) -> bool {
    condition(object, type_)
        .and_then(|condition| condition.get("status"))
        .and_then(Value::as_str)
        == Some(status)
}

/// Waits until NatsCluster `namespace/name` has condition `type_` with `status`; returns the
/// condition's message (empty when it has none).
fn wait_for_condition(
    tier: &Tier,
    namespace: &str,
    name: &str,
    (type_, status): (&str, &str),
    timeout: Duration,
) -> Result<String, String> {
    tier.wait_for(
        &format!("{type_}={status} on NatsCluster {namespace}/{name}"),
        timeout,
        &["get", "natscluster", name, "-n", namespace],
        |object| {
            condition_is(object, type_, status)
                .then(|| condition_message(object, type_).unwrap_or_default())
        },
    )
}

fn nats_cluster(namespace: &str, name: &str, replicas: u32, extra_spec: &str) -> String {
    format!(
        "apiVersion: tern.dev/v1alpha1\nkind: NatsCluster\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n  replicas: {replicas}\n  lifecycle:\n    lameDuckDuration: 30s\n    lameDuckGracePeriod: 2s\n    terminationGracePeriodSeconds: 45\n{extra_spec}"
    )
}

fn namespace(tier: &Tier, name: &str) -> Result<(), String> {
    tier.apply(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n"
    ))
    .map(|_| ())
}

// ---- scenarios -------------------------------------------------------------------------------

/// The chart installs (CRDs, RBAC, Deployment scaled to zero: the harness runs the operator
/// itself) and upgrades; the committed CRDs apply over what it installed.
fn chart_installs_and_the_crds_are_accepted(tier: &Tier) -> Result<(), String> {
    let chart = workspace().join("charts/tern-operator");
    let chart = chart.to_string_lossy();
    tier.helm(&[
        "install",
        "tern-operator",
        &chart,
        "--namespace",
        OPERATOR_NAMESPACE,
        "--create-namespace",
        "--set",
        "replicas=0",
        "--wait=false",
    ])?;
    for crd in [
        "natsclusters.tern.dev",
        "superclusters.tern.dev",
        "leafnodes.tern.dev",
    ] {
        tier.wait_for(
            &format!("CRD {crd} established"),
            Duration::from_secs(30),
            &["get", "crd", crd],
            |crd| condition_is(crd, "Established", "True").then_some(()),
        )?;
    }
    let crds = workspace().join("crds");
    tier.kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        &crds.to_string_lossy(),
    ])?;
    tier.helm(&[
        "upgrade",
        "tern-operator",
        &chart,
        "--namespace",
        OPERATOR_NAMESPACE,
        "--set",
        "replicas=0",
        "--set",
        "logLevel=debug",
    ])?;
    let history = tier.helm(&["history", "tern-operator", "-n", OPERATOR_NAMESPACE])?;
    if !history.contains("deployed") || history.lines().count() < 3 {
        return Err(format!(
            "helm history does not show two revisions:\n{history}"
        ));
    }
    Ok(())
}

/// The API server itself refuses what the CRD's CEL rules forbid.
fn the_api_server_enforces_the_cel_rules(tier: &Tier) -> Result<(), String> {
    namespace(tier, "e2e-cel")?;
    let manifest = nats_cluster(
        "e2e-cel",
        "pair",
        2,
        "  jetstream:\n    memoryStorage:\n      maxBytes: 64Mi\n",
    );
    match tier.apply(&manifest) {
        Ok(output) => Err(format!(
            "a 2-server JetStream cluster was accepted: {output}"
        )),
        Err(error) if error.contains("with JetStream, replicas must be 1 or at least 3") => Ok(()),
        Err(error) => Err(format!("refused, but not by the CEL rule: {error}")),
    }
}

/// A spec the schema accepts but the operator cannot render gets SpecValid=False naming the
/// field, Ready=False, and a Warning Event.
fn an_invalid_spec_gets_a_condition_and_an_event(tier: &Tier) -> Result<(), String> {
    namespace(tier, "e2e-invalid")?;
    tier.apply(&nats_cluster(
        "e2e-invalid",
        "bad",
        1,
        "  config:\n    overrides:\n      port: 1234\n",
    ))?;
    let timeout = Duration::from_secs(30);
    let message = wait_for_condition(tier, "e2e-invalid", "bad", ("SpecValid", "False"), timeout)?;
    wait_for_condition(tier, "e2e-invalid", "bad", ("Ready", "False"), timeout)?;
    if !message.contains("spec.config.overrides.port") {
        return Err(format!("the condition does not name the field: {message}"));
    }
    tier.wait_for(
        "an InvalidSpec Event",
        Duration::from_secs(30),
        &["get", "events.events.k8s.io", "-n", "e2e-invalid"],
        |events| {
            events
                .get("items")?
                .as_array()?
                .iter()
                .any(|event| {
                    event.get("reason").and_then(Value::as_str) == Some("InvalidSpec")
                        && event.get("type").and_then(Value::as_str) == Some("Warning")
                })
                .then_some(())
        },
    )?;
    let objects = tier.kubectl(&[
        "get",
        "statefulsets,configmaps",
        "-n",
        "e2e-invalid",
        "-l",
        "app.kubernetes.io/instance=bad",
        "-o",
        "name",
    ])?;
    if !objects.trim().is_empty() {
        return Err(format!("an invalid spec was rendered anyway: {objects}"));
    }
    Ok(())
}

fn pod_ips(tier: &Tier, namespace: &str, set: &str, replicas: u32) -> Result<Vec<String>, String> {
    (0..replicas)
        .map(|ordinal| {
            let pod = tier.json(&["get", "pod", &format!("{set}-{ordinal}"), "-n", namespace])?;
            pod.pointer("/status/podIP")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| format!("{set}-{ordinal} has no IP"))
        })
        .collect()
}

fn wait_ready(tier: &Tier, namespace: &str, name: &str, replicas: u32) -> Result<(), String> {
    tier.wait_for(
        &format!("NatsCluster {namespace}/{name} Ready with {replicas} servers"),
        READY_TIMEOUT,
        &["get", "natscluster", name, "-n", namespace],
        |object| {
            let ready = object
                .pointer("/status/readyReplicas")
                .and_then(Value::as_u64);
            (observed_current(object)
                && condition_is(object, "Ready", "True")
                && ready == Some(u64::from(replicas)))
            .then_some(())
        },
    )
}

/// Whether the status describes the current spec (`observedGeneration` = `generation`).
fn observed_current(object: &Value) -> bool {
    let observed = object
        .pointer("/status/observedGeneration")
        .and_then(Value::as_i64);
    observed.is_some()
        && observed
            == object
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
}

/// Waits until the operator has seen the current spec and found it valid.
fn wait_accepted(tier: &Tier, namespace: &str, name: &str) -> Result<(), String> {
    tier.wait_for(
        &format!("NatsCluster {namespace}/{name} to be observed and valid"),
        Duration::from_secs(30),
        &["get", "natscluster", name, "-n", namespace],
        |object| {
            (observed_current(object) && condition_is(object, "SpecValid", "True")).then_some(())
        },
    )
}

fn pod_uids(tier: &Tier, namespace: &str, set: &str) -> Result<Vec<(String, String)>, String> {
    let pods = tier.json(&[
        "get",
        "pods",
        "-n",
        namespace,
        "-l",
        &format!("app.kubernetes.io/instance={set}"),
    ])?;
    let mut uids: Vec<(String, String)> = pods
        .get("items")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|pod| {
                    Some((
                        pod.pointer("/metadata/name")?.as_str()?.to_string(),
                        pod.pointer("/metadata/uid")?.as_str()?.to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    uids.sort();
    Ok(uids)
}

/// A NatsCluster of 3 becomes Ready; a client publishes on one server and a subscriber on
/// another receives it (routes through the pods' DNS names).
fn a_cluster_of_three_serves_clients_across_pods(tier: &Tier) -> Result<(), String> {
    namespace(tier, "e2e-cluster")?;
    tier.apply(&nats_cluster("e2e-cluster", "hub", 3, ""))?;
    wait_ready(tier, "e2e-cluster", "hub", 3)?;
    let ips = pod_ips(tier, "e2e-cluster", "hub", 3)?;
    tier.runtime.block_on(async {
        let subscriber = async_nats::connect(format!("nats://{}:4222", ips[2]))
            .await
            .map_err(|error| format!("connect to hub-2: {error}"))?;
        let publisher = async_nats::connect(format!("nats://{}:4222", ips[0]))
            .await
            .map_err(|error| format!("connect to hub-0: {error}"))?;
        let mut subscription = subscriber
            .subscribe("e2e.greeting")
            .await
            .map_err(|error| error.to_string())?;
        subscriber
            .flush()
            .await
            .map_err(|error| error.to_string())?;
        // Interest crosses the route asynchronously: publish until one arrives, bounded.
        for attempt in 0..100 {
            publisher
                .publish("e2e.greeting", format!("hello {attempt}").into())
                .await
                .map_err(|error| error.to_string())?;
            publisher.flush().await.map_err(|error| error.to_string())?;
            let received = tokio::time::timeout(
                Duration::from_millis(200),
                futures::StreamExt::next(&mut subscription),
            )
            .await;
            if let Ok(Some(message)) = received {
                if message.payload.starts_with(b"hello ") {
                    return Ok(());
                }
            }
        }
        Err("no message crossed from hub-0 to hub-2 in 100 attempts".to_string())
    })?;
    let status = tier.json(&["get", "natscluster", "hub", "-n", "e2e-cluster"])?;
    let endpoint = status
        .pointer("/status/endpoints/client")
        .and_then(Value::as_str);
    if endpoint != Some("nats://hub.e2e-cluster.svc.cluster.local:4222") {
        return Err(format!("status.endpoints.client is {endpoint:?}"));
    }
    Ok(())
}

/// Scale 3 → 5 → 3 through the scale subresource, as `kubectl scale` does.
fn scale_up_and_down(tier: &Tier) -> Result<(), String> {
    tier.kubectl(&[
        "scale",
        "natscluster",
        "hub",
        "-n",
        "e2e-cluster",
        "--replicas=5",
    ])?;
    wait_ready(tier, "e2e-cluster", "hub", 5)?;
    let config = tier.json(&["get", "configmap", "hub-config", "-n", "e2e-cluster"])?;
    let hub4 = config
        .pointer("/data/hub-4.conf")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !hub4.contains("hub-4.hub-headless.e2e-cluster.svc.cluster.local") {
        return Err(format!("hub-4.conf does not route to 5 servers:\n{hub4}"));
    }
    tier.kubectl(&[
        "scale",
        "natscluster",
        "hub",
        "-n",
        "e2e-cluster",
        "--replicas=3",
    ])?;
    wait_ready(tier, "e2e-cluster", "hub", 3)?;
    tier.wait_for(
        "pods hub-3 and hub-4 gone",
        READY_TIMEOUT,
        &[
            "get",
            "pods",
            "-n",
            "e2e-cluster",
            "-l",
            "app.kubernetes.io/instance=hub",
        ],
        |pods| (pods.get("items")?.as_array()?.len() == 3).then_some(()),
    )
}

/// A change the broker reloads reaches every server without a restart.
fn a_reloadable_change_goes_out_without_a_restart(tier: &Tier) -> Result<(), String> {
    let before = pod_uids(tier, "e2e-cluster", "hub")?;
    tier.apply(&nats_cluster(
        "e2e-cluster",
        "hub",
        3,
        "  config:\n    overrides:\n      max_payload: 2097152\n",
    ))?;
    wait_accepted(tier, "e2e-cluster", "hub")?;
    let ips = pod_ips(tier, "e2e-cluster", "hub", 3)?;
    for ip in &ips {
        let address = format!("{ip}:8222")
            .parse()
            .map_err(|error| format!("{error}"))?;
        wait_until(
            &format!("{ip} to serve max_payload 2097152"),
            Duration::from_secs(90),
            Duration::from_millis(500),
            || {
                let response = tern_e2e::http_get(address, "/varz").ok()?;
                let varz: Value = serde_json::from_str(&response.body).ok()?;
                (varz.get("max_payload").and_then(Value::as_u64) == Some(2_097_152)).then_some(())
            },
        )
        .map_err(|error| {
            let status = tier
                .json(&["get", "natscluster", "hub", "-n", "e2e-cluster"])
                .map(|object| {
                    object
                        .pointer("/status")
                        .map(Value::to_string)
                        .unwrap_or_default()
                })
                .unwrap_or_else(|error| error);
            let config = tier
                .json(&["get", "configmap", "hub-config", "-n", "e2e-cluster"])
                .map(|object| {
                    object
                        .pointer("/data/hub-0.conf")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                })
                .unwrap_or_else(|error| error);
            format!("{error}\nstatus: {status}\nhub-0.conf:\n{config}")
        })?;
    }
    // The operator sees it too: every server's /varz config_digest is the new config's.
    tier.wait_for(
        "ConfigApplied=True on hub",
        Duration::from_secs(90),
        &["get", "natscluster", "hub", "-n", "e2e-cluster"],
        |object| {
            (observed_current(object)
                && condition_is(object, "ConfigApplied", "True")
                && condition_message(object, "ConfigApplied").as_deref()
                    == Some("3 of 3 servers run the current config"))
            .then_some(())
        },
    )?;
    let after = pod_uids(tier, "e2e-cluster", "hub")?;
    if before != after {
        return Err(format!(
            "pods were replaced by a reloadable change: {before:?} → {after:?}"
        ));
    }
    Ok(())
}

/// A restart-only change rolls the servers one at a time; a subscriber that stays connected
/// (reconnecting to the others as each server leaves) gets every message of a publisher that
/// retries until its message is acknowledged.
fn a_restart_only_change_rolls_one_server_at_a_time(tier: &Tier) -> Result<(), String> {
    let before: BTreeSet<String> = pod_uids(tier, "e2e-cluster", "hub")?
        .into_iter()
        .map(|(_, uid)| uid)
        .collect();
    let ips = pod_ips(tier, "e2e-cluster", "hub", 3)?;
    let urls: Vec<String> = ips.iter().map(|ip| format!("nats://{ip}:4222")).collect();
    let outcome = tier.runtime.block_on(async {
        let options = || {
            async_nats::ConnectOptions::new()
                .retry_on_initial_connect()
                .max_reconnects(None)
        };
        let subscriber = options()
            .connect(urls.clone())
            .await
            .map_err(|error| format!("subscriber: {error}"))?;
        let publisher = options()
            .connect(urls.clone())
            .await
            .map_err(|error| format!("publisher: {error}"))?;
        let mut subscription = subscriber
            .subscribe("e2e.rolling")
            .await
            .map_err(|error| error.to_string())?;
        subscriber
            .flush()
            .await
            .map_err(|error| error.to_string())?;
        let received = std::sync::Arc::new(std::sync::Mutex::new(BTreeSet::new()));
        let seen = std::sync::Arc::clone(&received);
        let replier = subscriber.clone();
        let receiver = tokio::spawn(async move {
            while let Some(message) = futures::StreamExt::next(&mut subscription).await {
                if let Ok(mut seen) = seen.lock() {
                    seen.insert(String::from_utf8_lossy(&message.payload).into_owned());
                }
                if let Some(reply) = message.reply {
                    let _ = replier.publish(reply, "ack".into()).await;
                }
            }
        });
        Ok::<_, String>((publisher, received, receiver))
    });
    let (publisher, received, receiver) = outcome?;
    tier.apply(&nats_cluster(
        "e2e-cluster",
        "hub",
        3,
        "  config:\n    overrides:\n      max_payload: 2097152\n  podTemplate:\n    env:\n      - name: E2E_GENERATION\n        value: \"2\"\n",
    ))?;
    wait_accepted(tier, "e2e-cluster", "hub")?;
    // Publish numbered messages, each retried until acknowledged, while watching that never
    // more than one server is down and waiting for every pod to be replaced.
    let mut sent = 0u32;
    let mut most_unready = 0usize;
    let deadline = std::time::Instant::now() + Duration::from_secs(240);
    let mut replaced = false;
    while std::time::Instant::now() < deadline {
        let payload = format!("m{sent}");
        let acknowledged = tier.runtime.block_on(async {
            for _ in 0..40 {
                let request = publisher.request("e2e.rolling", payload.clone().into());
                if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(500), request).await {
                    return true;
                }
            }
            false
        });
        if !acknowledged {
            return Err(format!(
                "message {payload} was never acknowledged during the rollout"
            ));
        }
        sent += 1;
        let pods = tier.json(&[
            "get",
            "pods",
            "-n",
            "e2e-cluster",
            "-l",
            "app.kubernetes.io/instance=hub",
        ])?;
        let items = pods
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let unready = items
            .iter()
            .filter(|pod| !condition_is(pod, "Ready", "True"))
            .count()
            + 3usize.saturating_sub(items.len());
        most_unready = most_unready.max(unready);
        let uids: BTreeSet<String> = items
            .iter()
            .filter_map(|pod| pod.pointer("/metadata/uid")?.as_str().map(str::to_string))
            .collect();
        if items.len() == 3 && unready == 0 && uids.is_disjoint(&before) {
            replaced = true;
            break;
        }
    }
    receiver.abort();
    if !replaced {
        return Err("the pods were not all replaced within 240 s".to_string());
    }
    if most_unready > 1 {
        return Err(format!(
            "{most_unready} servers were down at once during the rollout"
        ));
    }
    let received = received.lock().map(|seen| seen.len()).unwrap_or_default();
    if received < sent as usize {
        return Err(format!("the subscriber got {received} of {sent} messages"));
    }
    wait_ready(tier, "e2e-cluster", "hub", 3)?;
    let events = tier.json(&["get", "events.events.k8s.io", "-n", "e2e-cluster"])?;
    let restarts = events
        .get("items")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter(|event| {
                    event.get("reason").and_then(Value::as_str) == Some("RestartingServer")
                })
                .count()
        })
        .unwrap_or(0);
    if restarts == 0 {
        return Err("no RestartingServer Event was recorded".to_string());
    }
    Ok(())
}

/// Deleting the resource removes everything it made (owner references, garbage collector).
fn deleting_the_resource_removes_everything(tier: &Tier) -> Result<(), String> {
    tier.kubectl(&[
        "delete",
        "natscluster",
        "hub",
        "-n",
        "e2e-cluster",
        "--wait=false",
    ])?;
    tier.wait_for(
        "every object of hub to be gone",
        READY_TIMEOUT,
        &[
            "get",
            "statefulsets,services,configmaps,serviceaccounts,poddisruptionbudgets,pods",
            "-n",
            "e2e-cluster",
            "-l",
            "app.kubernetes.io/instance=hub",
        ],
        |objects| objects.get("items")?.as_array()?.is_empty().then_some(()),
    )
}

/// A second replica waits; when the leader dies without releasing the Lease, it takes over
/// once the Lease expires, and reconciles.
fn a_standby_replica_takes_over_when_the_leader_dies(tier: &mut Tier) -> Result<(), String> {
    let first = tier
        .operators
        .first()
        .map(|operator| operator.identity().to_string());
    if tier.lease_holder() != first {
        return Err(format!(
            "the Lease is held by {:?}, not {first:?}",
            tier.lease_holder()
        ));
    }
    tier.start_operator("operator-b")?;
    if tier.lease_holder() != first {
        return Err("the standby took the Lease from a live leader".to_string());
    }
    if let Some(leader) = tier.operators.first_mut() {
        leader.kill();
    }
    wait_until(
        "operator-b to hold the Lease",
        Duration::from_secs(LEASE_SECONDS * 3 + 10),
        POLL,
        || (tier.lease_holder().as_deref() == Some("operator-b")).then_some(()),
    )
    .map_err(|error| error.to_string())?;
    namespace(tier, "e2e-failover")?;
    tier.apply(&nats_cluster("e2e-failover", "solo", 1, ""))?;
    wait_for_condition(
        tier,
        "e2e-failover",
        "solo",
        ("SpecValid", "True"),
        Duration::from_secs(60),
    )?;
    Ok(())
}

/// An exposed listener's LoadBalancer address is waited for (a condition says so, nothing is
/// advertised), then rendered as `advertise` once the Service has one.
fn external_addresses_are_waited_for_then_advertised(tier: &Tier) -> Result<(), String> {
    namespace(tier, "e2e-expose")?;
    tier.apply(&nats_cluster(
        "e2e-expose",
        "edge",
        1,
        "  listeners:\n    leafnodes:\n      expose:\n        perServer: false\n",
    ))?;
    let resolved = |status| ("AdvertiseAddressesResolved", status);
    let timeout = Duration::from_secs(30);
    let message = wait_for_condition(tier, "e2e-expose", "edge", resolved("False"), timeout)?;
    if !message.contains("Service e2e-expose/edge-leafnodes") {
        return Err(format!(
            "the condition does not name the Service: {message}"
        ));
    }
    let config = |tier: &Tier| -> Result<String, String> {
        Ok(tier
            .json(&["get", "configmap", "edge-config", "-n", "e2e-expose"])?
            .pointer("/data/edge-0.conf")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string())
    };
    if config(tier)?
        .lines()
        .any(|line| line.trim_start().starts_with("advertise:"))
    {
        return Err("an address was advertised before the Service had one".to_string());
    }
    tier.kubectl(&[
        "patch",
        "service",
        "edge-leafnodes",
        "-n",
        "e2e-expose",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"loadBalancer":{"ingress":[{"ip":"192.0.2.10"}]}}}"#,
    ])?;
    wait_for_condition(tier, "e2e-expose", "edge", resolved("True"), timeout)?;
    let text = config(tier)?;
    if !text.contains("advertise: \"192.0.2.10:7422\"") {
        return Err(format!(
            "edge-0.conf does not advertise the address:\n{text}"
        ));
    }
    tier.kubectl(&["delete", "namespace", "e2e-expose", "--wait=false"])
        .map(|_| ())
}

fn super_cluster(members: &[&str]) -> String {
    let mut text = String::from(
        "apiVersion: tern.dev/v1alpha1\nkind: SuperCluster\nmetadata:\n  name: global\n  namespace: e2e-super\nspec:\n  members:\n",
    );
    for member in members {
        text.push_str(&format!(
            "    - name: {member}\n      kubernetesCluster: here\n      template:\n        replicas: 1\n"
        ));
    }
    text.push_str("    - name: central\n      gateway:\n        urls:\n          - nats://central.example.net:7222\n");
    text
}

/// A SuperCluster creates a NatsCluster (owned by it) for each template member and reports
/// its members; a member taken out of the spec is deleted. (The members' servers need
/// gateways, which the broker does not run yet, so they are not waited for.)
fn a_super_cluster_creates_and_removes_its_member_clusters(tier: &Tier) -> Result<(), String> {
    namespace(tier, "e2e-super")?;
    tier.apply(&super_cluster(&["east", "west"]))?;
    for member in ["east", "west"] {
        tier.wait_for(
            &format!("NatsCluster {member} made from the template"),
            Duration::from_secs(30),
            &["get", "natscluster", member, "-n", "e2e-super"],
            |object| {
                let owner = object
                    .pointer("/metadata/ownerReferences/0/kind")?
                    .as_str()?;
                (owner == "SuperCluster").then_some(())
            },
        )?;
    }
    tier.wait_for(
        "the SuperCluster's status to list its members",
        Duration::from_secs(30),
        &["get", "supercluster", "global", "-n", "e2e-super"],
        |object| {
            let members = object.pointer("/status/members")?.as_array()?;
            let local = |name: &str| {
                members.iter().any(|member| {
                    member.get("name").and_then(Value::as_str) == Some(name)
                        && member.get("local").and_then(Value::as_bool) == Some(true)
                })
            };
            (condition_is(object, "SpecValid", "True")
                && local("east")
                && local("west")
                && members.len() == 3)
                .then_some(())
        },
    )?;
    tier.apply(&super_cluster(&["east"]))?;
    tier.wait_for(
        "NatsCluster west to be removed with its member",
        Duration::from_secs(30),
        &["get", "natsclusters", "-n", "e2e-super"],
        |list| {
            let names: Vec<&str> = list
                .get("items")?
                .as_array()?
                .iter()
                .filter_map(|item| item.pointer("/metadata/name")?.as_str())
                .collect();
            (names == ["east"]).then_some(())
        },
    )?;
    tier.kubectl(&["delete", "namespace", "e2e-super", "--wait=false"])
        .map(|_| ())
}

/// A rotated Secret (here the routes' password) rolls the servers that use it, one at a time.
fn a_rotated_secret_rolls_the_servers_that_use_it(tier: &Tier) -> Result<(), String> {
    namespace(tier, "e2e-secret")?;
    let secret = |password: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: routes\n  namespace: e2e-secret\nstringData:\n  username: route\n  password: {password}\n"
        )
    };
    tier.apply(&secret("first"))?;
    tier.apply(&nats_cluster(
        "e2e-secret",
        "guarded",
        2,
        "  listeners:\n    routes:\n      authSecretRef:\n        name: routes\n",
    ))?;
    wait_ready(tier, "e2e-secret", "guarded", 2)?;
    let before: BTreeSet<String> = pod_uids(tier, "e2e-secret", "guarded")?
        .into_iter()
        .map(|(_, uid)| uid)
        .collect();
    tier.apply(&secret("second"))?;
    tier.wait_for(
        "both servers replaced after the password changed",
        READY_TIMEOUT,
        &[
            "get",
            "pods",
            "-n",
            "e2e-secret",
            "-l",
            "app.kubernetes.io/instance=guarded",
        ],
        |pods| {
            let items = pods.get("items")?.as_array()?;
            let replaced = items.len() == 2
                && items.iter().all(|pod| {
                    condition_is(pod, "Ready", "True")
                        && pod
                            .pointer("/metadata/uid")
                            .and_then(Value::as_str)
                            .is_some_and(|uid| !before.contains(uid))
                });
            replaced.then_some(())
        },
    )?;
    wait_ready(tier, "e2e-secret", "guarded", 2)?;
    tier.kubectl(&["delete", "namespace", "e2e-secret", "--wait=false"])
        .map(|_| ())
}

/// The leader's `/metrics` counts reconciles and says it leads; `/readyz` answers.
fn the_operator_serves_metrics(tier: &Tier) -> Result<(), String> {
    let Some(leader) = tier.operators.first() else {
        return Err("no operator runs".to_string());
    };
    let metrics =
        tern_e2e::http_get(leader.http_address(), "/metrics").map_err(|error| error.to_string())?;
    for expected in [
        "tern_operator_reconciles_total{kind=\"NatsCluster\"}",
        "tern_operator_reconcile_duration_seconds_bucket",
        "tern_operator_leader 1",
    ] {
        if !metrics.body.contains(expected) {
            return Err(format!("/metrics lacks {expected}:\n{}", metrics.body));
        }
    }
    let ready =
        tern_e2e::http_get(leader.http_address(), "/readyz").map_err(|error| error.to_string())?;
    if ready.status != 200 {
        return Err(format!("/readyz answered {}", ready.status));
    }
    Ok(())
}

/// The chart's RBAC is enough: the operator never met a `forbidden` answer.
fn the_charts_rbac_is_enough_for_everything_the_operator_did(tier: &Tier) -> Result<(), String> {
    for operator in &tier.operators {
        let log = operator.log();
        if let Some(line) = log
            .lines()
            // An RBAC refusal reads `... is forbidden: User "system:serviceaccount:..." cannot
            // <verb> resource ...`; other 403s (a namespace being deleted) are not about RBAC.
            .find(|line| line.contains("is forbidden: User"))
        {
            return Err(format!(
                "operator {} was refused: {line}",
                operator.identity()
            ));
        }
    }
    // And no more than it needs: nothing cluster-wide beyond its own kinds, no Secret writes.
    let account = format!("system:serviceaccount:{OPERATOR_NAMESPACE}:tern-operator");
    for (verb, resource, expected) in [
        ("create", "secrets", "no"),
        ("delete", "namespaces", "no"),
        ("create", "clusterroles", "no"),
        ("patch", "statefulsets", "yes"),
        ("update", "natsclusters/status", "yes"),
        ("create", "natsclusters", "yes"),
        ("delete", "pods", "no"),
    ] {
        let output = tier
            .plane
            .kubectl_output(
                &["auth", "can-i", verb, resource, "--as", &account, "-A"],
                None,
            )
            .map_err(|error| error.to_string())?;
        let answer = String::from_utf8_lossy(&output.stdout).trim().to_string();
        if answer != expected {
            return Err(format!(
                "can-i {verb} {resource}: {answer}, expected {expected}"
            ));
        }
    }
    Ok(())
}

type Scenario = fn(&Tier) -> Result<(), String>;

/// `TERN_E2E_KUBERNETES_SCENARIOS`: comma-separated parts of scenario names to run (for
/// working on one; later scenarios may need what earlier ones made). Unset: all.
fn selected(name: &str) -> bool {
    match std::env::var("TERN_E2E_KUBERNETES_SCENARIOS") {
        Ok(filter) if !filter.trim().is_empty() => {
            filter.split(',').any(|part| name.contains(part.trim()))
        }
        _ => true,
    }
}

#[test]
fn operator_against_a_real_control_plane() {
    let started = ControlPlane::start();
    assert!(
        started.is_ok(),
        "the control plane did not start: {:?}",
        started.err()
    );
    let Ok(plane) = started else { return };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(3)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let mut tier = Tier {
        operator_kubeconfig: PathBuf::new(),
        plane,
        runtime,
        operators: Vec::new(),
        node: None,
    };
    let mut failures: Vec<String> = Vec::new();
    let mut run = |name: &str, result: Result<(), String>| {
        eprintln!(
            "kubernetes: {name}: {}",
            if result.is_ok() { "ok" } else { "FAILED" }
        );
        if let Err(error) = result {
            failures.push(format!("{name}: {error}"));
        }
    };

    run(
        "chart installs and the CRDs are accepted",
        chart_installs_and_the_crds_are_accepted(&tier),
    );
    let setup = tier
        .plane
        .service_account_kubeconfig(OPERATOR_NAMESPACE, "tern-operator")
        .map_err(|error| error.to_string())
        .and_then(|kubeconfig| {
            tier.operator_kubeconfig = kubeconfig;
            tier.start_operator("operator-a")
        })
        .and_then(|()| {
            let broker = ServerKind::Tern
                .binary()
                .map_err(|error| error.to_string())?;
            let client = tier
                .runtime
                .block_on(tier.plane.admin_client())
                .map_err(|error| error.to_string())?;
            let settings = NodeSettings {
                node_name: "tern-e2e-node".to_string(),
                broker_binary: broker,
                work_directory: tier.plane.directory().join("node"),
                network_prefix: [250, u8::try_from(std::process::id() % 250).unwrap_or(1)],
                cluster_domain: "cluster.local".to_string(),
            };
            let node = tier
                .runtime
                .block_on(NodeAgent::start(client, settings))
                .map_err(|error| error.to_string())?;
            tier.node = Some(node);
            Ok(())
        });
    run("operator and kubelet stand-in start", setup.clone());
    if setup.is_ok() {
        let scenarios: [(&str, Scenario); 12] = [
            (
                "the API server enforces the CEL rules",
                the_api_server_enforces_the_cel_rules,
            ),
            (
                "an invalid spec gets a condition and an Event",
                an_invalid_spec_gets_a_condition_and_an_event,
            ),
            (
                "a cluster of three serves clients across pods",
                a_cluster_of_three_serves_clients_across_pods,
            ),
            ("scale 3 → 5 → 3", scale_up_and_down),
            (
                "a reloadable change goes out without a restart",
                a_reloadable_change_goes_out_without_a_restart,
            ),
            (
                "a restart-only change rolls one server at a time",
                a_restart_only_change_rolls_one_server_at_a_time,
            ),
            (
                "deleting the resource removes everything",
                deleting_the_resource_removes_everything,
            ),
            (
                "external addresses are waited for, then advertised",
                external_addresses_are_waited_for_then_advertised,
            ),
            ("the operator serves metrics", the_operator_serves_metrics),
            (
                "a SuperCluster creates and removes its member clusters",
                a_super_cluster_creates_and_removes_its_member_clusters,
            ),
            (
                "a rotated Secret rolls the servers that use it",
                a_rotated_secret_rolls_the_servers_that_use_it,
            ),
            (
                "the chart's RBAC is enough",
                the_charts_rbac_is_enough_for_everything_the_operator_did,
            ),
        ];
        for (name, scenario) in scenarios {
            if selected(name) {
                run(name, scenario(&tier));
            }
        }
        run(
            "a standby replica takes over when the leader dies",
            a_standby_replica_takes_over_when_the_leader_dies(&mut tier),
        );
    }
    let diagnostics = (!failures.is_empty()).then(|| tier.diagnostics());
    if let Some(node) = tier.node.take() {
        tier.runtime.block_on(node.stop());
    }
    for operator in &mut tier.operators {
        operator.stop();
    }
    if let Some(diagnostics) = diagnostics {
        assert!(
            failures.is_empty(),
            "{} scenario(s) failed:\n{}\n\n{diagnostics}",
            failures.len(),
            failures.join("\n\n")
        );
    }
}
