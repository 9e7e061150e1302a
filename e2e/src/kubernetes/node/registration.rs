//! The agent's Node object (registered `Ready`, with the node's capacity) and its Lease in
//! `kube-node-lease`, renewed every 10 s.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Node, NodeSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::kubernetes::network::AddressPool;

use super::shared::Shared;
use super::{
    api_call, is_api_status, now, NodeError, NodeSettings, NODE_CPU, NODE_MEMORY, NODE_PODS,
};

const LEASE_RENEW_INTERVAL: Duration = Duration::from_secs(10);
const LEASE_DURATION_SECONDS: i32 = 40;

fn architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

pub(super) async fn register_node(
    client: &Client,
    settings: &NodeSettings,
    addresses: &AddressPool,
) -> Result<(), NodeError> {
    let name = settings.node_name.as_str();
    let api: Api<Node> = Api::all(client.clone());
    let node = Node {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(BTreeMap::from([
                ("kubernetes.io/hostname".to_string(), name.to_string()),
                ("kubernetes.io/os".to_string(), "linux".to_string()),
                ("kubernetes.io/arch".to_string(), architecture().to_string()),
            ])),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            pod_cidr: Some(addresses.network()),
            pod_cidrs: Some(vec![addresses.network()]),
            ..NodeSpec::default()
        }),
        status: None,
    };
    let created = api_call(
        || format!("creating node {name}"),
        api.create(&PostParams::default(), &node),
    )
    .await;
    match created {
        Ok(_) => {}
        Err(error) if is_api_status(&error, 409) => {}
        Err(error) => return Err(error),
    }
    let time = serde_json::to_value(now()).unwrap_or(Value::Null);
    let condition = |kind: &str, status: &str, reason: &str, message: &str| {
        json!({
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": time,
            "lastTransitionTime": time,
        })
    };
    let capacity = json!({
        "cpu": NODE_CPU,
        "memory": NODE_MEMORY,
        "pods": NODE_PODS,
        "ephemeral-storage": "100Gi",
    });
    let status = json!({
        "status": {
            "conditions": [
                condition("Ready", "True", "KubeletReady", "the tern node agent is ready"),
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "no pressure"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "no pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "no pressure"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": addresses.gateway().to_string()},
                {"type": "Hostname", "address": name},
            ],
            "capacity": capacity,
            "allocatable": capacity,
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": architecture(),
                "operatingSystem": "linux",
                "kubeletVersion": "v1.33.0-tern",
                "kubeProxyVersion": "",
                "containerRuntimeVersion": concat!("tern://", env!("CARGO_PKG_VERSION")),
                "bootID": "",
                "kernelVersion": "",
                "machineID": "",
                "osImage": "tern node agent",
                "systemUUID": "",
            },
        }
    });
    api_call(
        || format!("setting the status of node {name}"),
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)),
    )
    .await?;
    Ok(())
}

/// Renews the node's Lease every [`LEASE_RENEW_INTERVAL`] until `stop`.
pub(super) async fn renew_lease(shared: Arc<Shared>, stop: CancellationToken) {
    let name = shared.settings.node_name.clone();
    let api: Api<Lease> = Api::namespaced(shared.client.clone(), "kube-node-lease");
    loop {
        let renew = json!({
            "spec": {
                "holderIdentity": name,
                "leaseDurationSeconds": LEASE_DURATION_SECONDS,
                "renewTime": MicroTime(Timestamp::now()),
            }
        });
        let patched = api_call(
            || format!("renewing lease {name}"),
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&renew)),
        )
        .await;
        let result = match patched {
            Err(error) if is_api_status(&error, 404) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        namespace: Some("kube-node-lease".to_string()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(name.clone()),
                        lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
                        renew_time: Some(MicroTime(Timestamp::now())),
                        ..LeaseSpec::default()
                    }),
                };
                api_call(
                    || format!("creating lease {name}"),
                    api.create(&PostParams::default(), &lease),
                )
                .await
                .map(|_| ())
            }
            other => other.map(|_| ()),
        };
        if let Err(error) = result {
            shared.record(error.to_string());
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(LEASE_RENEW_INTERVAL) => {}
        }
    }
}
