//! The hosts file every Pod mounts on `/etc/hosts`: each Pod by its hostname (and subdomain
//! names), each Service with a selector by one Pod it selects. Rewritten in place, and only
//! when its content changes.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, PoisonError};

use k8s_openapi::api::core::v1::Service;

use crate::kubernetes::network::{render_hosts, write_in_place, HostEntry};

use super::shared::Shared;

impl Shared {
    /// Rewrites the hosts file (in place) when the Pods or Services it lists have changed.
    pub(super) fn refresh_hosts(&self) {
        let pods: Vec<PodAddress> = self
            .state()
            .pods
            .values()
            .map(|record| PodAddress {
                namespace: record.namespace.clone(),
                name: record.name.clone(),
                hostname: record.hostname.clone(),
                subdomain: record.subdomain.clone(),
                labels: record.labels.clone(),
                address: record.address,
                ready: record.ready,
            })
            .collect();
        let services = self.services.state();
        let content = render_hosts(&host_entries(
            &pods,
            &services,
            &self.settings.cluster_domain,
        ));
        let mut written = self
            .hosts_written
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if written.as_deref() == Some(content.as_str()) {
            return;
        }
        match write_in_place(&self.hosts_path, &content) {
            Ok(()) => *written = Some(content),
            Err(error) => {
                drop(written);
                self.record(format!("writing {}: {error}", self.hosts_path.display()));
            }
        }
    }
}

/// A Pod with a sandbox, as name resolution sees it.
#[derive(Debug, Clone)]
struct PodAddress {
    namespace: String,
    name: String,
    hostname: String,
    subdomain: Option<String>,
    labels: BTreeMap<String, String>,
    address: Ipv4Addr,
    ready: bool,
}

/// The hosts file lines: every Pod by its hostname (and, with a subdomain, its
/// `<hostname>.<subdomain>.<namespace>.svc[.<domain>]` names), then every Service with a
/// selector by `<service>.<namespace>.svc[.<domain>]`, resolving to one Pod it selects: a ready
/// one, or any when the Service publishes not-ready addresses. Sorted, so equal inputs give
/// equal files.
fn host_entries(pods: &[PodAddress], services: &[Arc<Service>], domain: &str) -> Vec<HostEntry> {
    let mut pods: Vec<&PodAddress> = pods.iter().collect();
    pods.sort_by(|left, right| (&left.namespace, &left.name).cmp(&(&right.namespace, &right.name)));
    let mut entries: Vec<HostEntry> = pods
        .iter()
        .map(|pod| {
            let mut names = Vec::new();
            if let Some(subdomain) = &pod.subdomain {
                let service_name = format!("{}.{subdomain}.{}.svc", pod.hostname, pod.namespace);
                names.push(format!("{service_name}.{domain}"));
                names.push(service_name);
            }
            names.push(pod.hostname.clone());
            HostEntry {
                address: pod.address,
                names,
            }
        })
        .collect();
    let mut services: Vec<&Service> = services.iter().map(AsRef::as_ref).collect();
    services.sort_by(|left, right| {
        (&left.metadata.namespace, &left.metadata.name)
            .cmp(&(&right.metadata.namespace, &right.metadata.name))
    });
    for service in services {
        let (Some(namespace), Some(name), Some(spec)) = (
            &service.metadata.namespace,
            &service.metadata.name,
            &service.spec,
        ) else {
            continue;
        };
        if spec.type_.as_deref() == Some("ExternalName") {
            continue;
        }
        let Some(selector) = spec
            .selector
            .as_ref()
            .filter(|selector| !selector.is_empty())
        else {
            continue;
        };
        let publish_not_ready = spec.publish_not_ready_addresses == Some(true);
        let chosen = pods.iter().find(|pod| {
            pod.namespace == *namespace
                && (pod.ready || publish_not_ready)
                && selector
                    .iter()
                    .all(|(key, value)| pod.labels.get(key) == Some(value))
        });
        if let Some(pod) = chosen {
            let service_name = format!("{name}.{namespace}.svc");
            entries.push(HostEntry {
                address: pod.address,
                names: vec![format!("{service_name}.{domain}"), service_name],
            });
        }
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ServiceSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod_address(name: &str, last: u8, ready: bool) -> PodAddress {
        PodAddress {
            namespace: "messaging".to_string(),
            name: name.to_string(),
            hostname: name.to_string(),
            subdomain: Some("nats-headless".to_string()),
            labels: BTreeMap::from([("app".to_string(), "nats".to_string())]),
            address: Ipv4Addr::new(10, 250, 7, last),
            ready,
        }
    }

    fn service(name: &str, publish_not_ready: bool) -> Arc<Service> {
        Arc::new(Service {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some("messaging".to_string()),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                selector: Some(BTreeMap::from([("app".to_string(), "nats".to_string())])),
                publish_not_ready_addresses: Some(publish_not_ready),
                ..ServiceSpec::default()
            }),
            status: None,
        })
    }

    #[test]
    fn hosts_name_every_pod_and_each_service_by_one_selected_pod() {
        let pods = vec![
            pod_address("nats-1", 3, true),
            pod_address("nats-0", 2, false),
        ];
        let mut other = (*service("other", false)).clone();
        if let Some(spec) = other.spec.as_mut() {
            spec.selector = Some(BTreeMap::from([("app".to_string(), "other".to_string())]));
        }
        let services = [
            service("nats", false),
            service("nats-headless", true),
            Arc::new(other),
        ];
        let text = render_hosts(&host_entries(&pods, &services, "cluster.local"));
        assert_eq!(
            text,
            "127.0.0.1 localhost\n\
             ::1 localhost ip6-localhost ip6-loopback\n\
             10.250.7.2 nats-0.nats-headless.messaging.svc.cluster.local nats-0.nats-headless.messaging.svc nats-0\n\
             10.250.7.3 nats-1.nats-headless.messaging.svc.cluster.local nats-1.nats-headless.messaging.svc nats-1\n\
             10.250.7.3 nats.messaging.svc.cluster.local nats.messaging.svc\n\
             10.250.7.2 nats-headless.messaging.svc.cluster.local nats-headless.messaging.svc\n"
        );
    }

    #[test]
    fn a_service_without_ready_pods_is_not_listed() {
        let pods = vec![pod_address("nats-0", 2, false)];
        let entries = host_entries(&pods, &[service("nats", false)], "cluster.local");
        assert_eq!(entries.len(), 1);
    }
}
