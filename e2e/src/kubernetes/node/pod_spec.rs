//! Reading a Pod's spec, without I/O: whether the agent can run it, its hostname, the downward
//! API, `$(VAR)` expansion and the container's environment as the kubelet builds it.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Container, ObjectFieldSelector, Pod, ResourceFieldSelector};

use super::objects::{not_found, KeySource, Objects};
use super::{NodeError, NODE_CPU, NODE_MEMORY_BYTES};

/// The container the agent runs, or why it can not run the Pod.
pub(super) fn supported_container(pod: &Pod) -> Result<Container, NodeError> {
    let unsupported = |reason: &str| Err(NodeError::Unsupported(reason.to_string()));
    let Some(spec) = &pod.spec else {
        return unsupported("the pod has no spec");
    };
    if spec.host_network == Some(true) {
        return unsupported("hostNetwork pods are not supported");
    }
    if spec
        .init_containers
        .as_ref()
        .is_some_and(|containers| !containers.is_empty())
    {
        return unsupported("init containers are not supported");
    }
    let [container] = spec.containers.as_slice() else {
        return Err(NodeError::Unsupported(format!(
            "exactly one container is supported, the pod has {}",
            spec.containers.len()
        )));
    };
    if container
        .command
        .as_ref()
        .is_none_or(|command| command.is_empty())
    {
        return unsupported("the container has no command (image entrypoints are unknown here)");
    }
    Ok(container.clone())
}

/// The Pod's first container (the one the agent runs).
pub(super) fn first_container(pod: &Pod) -> Option<&Container> {
    pod.spec.as_ref().and_then(|spec| spec.containers.first())
}

/// The Pod's hostname: `spec.hostname`, else its name.
pub(super) fn pod_hostname(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|spec| spec.hostname.clone())
        .filter(|hostname| !hostname.is_empty())
        .or_else(|| pod.metadata.name.clone())
        .unwrap_or_default()
}

/// Expands `$(NAME)` in `input` as the kubelet does: `$$` is a literal `$`, names not in
/// `variables` (and unterminated references) stay as written.
pub(super) fn expand(input: &str, variables: &HashMap<&str, &str>) -> String {
    let bytes = input.as_bytes();
    let mut output: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < bytes.len() {
        if bytes[cursor] == b'$' && cursor + 1 < bytes.len() {
            output.extend_from_slice(&bytes[checkpoint..cursor]);
            let rest = &bytes[cursor + 1..];
            let advance = match rest[0] {
                b'$' => {
                    output.push(b'$');
                    1
                }
                b'(' => match rest.iter().position(|&byte| byte == b')') {
                    Some(close) => {
                        let name = String::from_utf8_lossy(&rest[1..close]);
                        match variables.get(name.as_ref()) {
                            Some(value) => output.extend_from_slice(value.as_bytes()),
                            None => {
                                output.push(b'$');
                                output.extend_from_slice(&rest[..=close]);
                            }
                        }
                        close + 1
                    }
                    None => {
                        output.extend_from_slice(b"$(");
                        1
                    }
                },
                other => {
                    output.push(b'$');
                    output.push(other);
                    1
                }
            };
            cursor += advance;
            checkpoint = cursor + 1;
        }
        cursor += 1;
    }
    output.extend_from_slice(&bytes[checkpoint.min(bytes.len())..]);
    String::from_utf8(output)
        .unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned())
}

/// What the downward API can tell about a Pod.
pub(super) struct PodFacts<'a> {
    pub(super) pod: &'a Pod,
    pub(super) address: Ipv4Addr,
    pub(super) host: Ipv4Addr,
    pub(super) node_name: &'a str,
}

/// The value of a `fieldRef` path.
pub(super) fn field_value(
    facts: &PodFacts<'_>,
    selector: &ObjectFieldSelector,
) -> Result<String, NodeError> {
    let metadata = &facts.pod.metadata;
    let spec = facts.pod.spec.as_ref();
    let path = selector.field_path.as_str();
    let quoted_key = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix("']"))
            .map(str::to_string)
    };
    let value = match path {
        "metadata.name" => metadata.name.clone().unwrap_or_default(),
        "metadata.namespace" => metadata.namespace.clone().unwrap_or_default(),
        "metadata.uid" => metadata.uid.clone().unwrap_or_default(),
        "metadata.labels" => render_map(metadata.labels.as_ref()),
        "metadata.annotations" => render_map(metadata.annotations.as_ref()),
        "spec.nodeName" => facts.node_name.to_string(),
        "spec.serviceAccountName" => spec
            .and_then(|spec| spec.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" | "status.podIPs" => facts.address.to_string(),
        "status.hostIP" | "status.hostIPs" => facts.host.to_string(),
        _ => {
            if let Some(key) = quoted_key("metadata.labels['") {
                metadata
                    .labels
                    .as_ref()
                    .and_then(|labels| labels.get(&key).cloned())
                    .unwrap_or_default()
            } else if let Some(key) = quoted_key("metadata.annotations['") {
                metadata
                    .annotations
                    .as_ref()
                    .and_then(|annotations| annotations.get(&key).cloned())
                    .unwrap_or_default()
            } else {
                return Err(NodeError::Unsupported(format!(
                    "field path {path:?} is not supported"
                )));
            }
        }
    };
    Ok(value)
}

/// Labels or annotations as the downward API writes them: `key="value"` lines, sorted.
fn render_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.iter()
        .flat_map(|map| map.iter())
        .map(|(key, value)| format!("{key}={value:?}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A `resourceFieldRef`: the container's quantity as written, else the node's capacity.
pub(super) fn resource_value(container: &Container, selector: &ResourceFieldSelector) -> String {
    let resources = container.resources.as_ref();
    let (kind, resource) = selector
        .resource
        .split_once('.')
        .unwrap_or(("limits", selector.resource.as_str()));
    let quantities = match kind {
        "requests" => resources.and_then(|resources| resources.requests.as_ref()),
        _ => resources.and_then(|resources| resources.limits.as_ref()),
    };
    if let Some(quantity) = quantities.and_then(|quantities| quantities.get(resource)) {
        return quantity.0.clone();
    }
    match resource {
        "cpu" => NODE_CPU.to_string(),
        "memory" => NODE_MEMORY_BYTES.to_string(),
        _ => "0".to_string(),
    }
}

/// The container's environment as the kubelet builds it: `envFrom` sources in order, then
/// `env` in order (a later definition replaces an earlier one); `value`s may refer to earlier
/// variables with `$(NAME)`.
pub(super) fn resolve_environment(
    facts: &PodFacts<'_>,
    container: &Container,
    objects: &Objects,
) -> Result<Vec<(String, String)>, NodeError> {
    let mut environment: Vec<(String, String)> = Vec::new();
    for source in container.env_from.iter().flatten() {
        let prefix = source.prefix.clone().unwrap_or_default();
        let config_map = source.config_map_ref.as_ref();
        let secret = source.secret_ref.as_ref();
        let sources = [
            config_map.map(|reference| (KeySource::ConfigMap(&reference.name), reference.optional)),
            secret.map(|reference| (KeySource::Secret(&reference.name), reference.optional)),
        ];
        for (object, optional) in sources.into_iter().flatten() {
            match objects.text_entries(object) {
                Some(entries) => {
                    for (key, value) in entries {
                        set_variable(&mut environment, format!("{prefix}{key}"), value);
                    }
                }
                None if optional == Some(true) => {}
                None => return Err(not_found(object)),
            }
        }
    }
    for variable in container.env.iter().flatten() {
        let value = if let Some(source) = &variable.value_from {
            if let Some(selector) = &source.field_ref {
                Some(field_value(facts, selector)?)
            } else if let Some(selector) = &source.resource_field_ref {
                Some(resource_value(container, selector))
            } else if let Some(selector) = &source.config_map_key_ref {
                let object = KeySource::ConfigMap(&selector.name);
                key_value(objects, object, &selector.key, selector.optional)?
            } else if let Some(selector) = &source.secret_key_ref {
                let object = KeySource::Secret(&selector.name);
                key_value(objects, object, &selector.key, selector.optional)?
            } else {
                return Err(NodeError::Unsupported(format!(
                    "environment variable {:?} has an unsupported source",
                    variable.name
                )));
            }
        } else {
            let defined: HashMap<&str, &str> = environment
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str()))
                .collect();
            Some(expand(variable.value.as_deref().unwrap_or(""), &defined))
        };
        if let Some(value) = value {
            set_variable(&mut environment, variable.name.clone(), value);
        }
    }
    Ok(environment)
}

/// Defines `name`, replacing an earlier definition in place.
fn set_variable(environment: &mut Vec<(String, String)>, name: String, value: String) {
    match environment
        .iter_mut()
        .find(|(existing, _)| *existing == name)
    {
        Some(entry) => entry.1 = value,
        None => environment.push((name, value)),
    }
}

/// A `configMapKeyRef` or `secretKeyRef`: the key's text, `None` when an optional reference
/// finds nothing.
fn key_value(
    objects: &Objects,
    object: KeySource<'_>,
    key: &str,
    optional: Option<bool>,
) -> Result<Option<String>, NodeError> {
    match objects.value(object, key) {
        Some(Some(value)) => Ok(Some(String::from_utf8_lossy(&value).into_owned())),
        _ if optional == Some(true) => Ok(None),
        Some(None) => Err(not_found(format_args!("key {key:?} of {object}"))),
        None => Err(not_found(object)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubernetes::node::fixtures::{facts, objects, pod_with, variables};
    use k8s_openapi::api::core::v1::{
        ConfigMapKeySelector, EnvVar, EnvVarSource, SecretKeySelector,
    };

    #[test]
    fn expansion_replaces_known_variables_and_keeps_unknown_ones() {
        let known = variables(&[("TERN_POD_NAME", "nats-0"), ("EMPTY", "")]);
        assert_eq!(
            expand("/etc/tern/config/$(TERN_POD_NAME).conf", &known),
            "/etc/tern/config/nats-0.conf"
        );
        assert_eq!(
            expand("$(UNKNOWN)-$(TERN_POD_NAME)", &known),
            "$(UNKNOWN)-nats-0"
        );
        assert_eq!(expand("a$(EMPTY)b", &known), "ab");
        assert_eq!(expand("no references", &known), "no references");
        assert_eq!(expand("", &known), "");
    }

    #[test]
    fn expansion_treats_dollar_dollar_as_an_escape() {
        let known = variables(&[("NAME", "value")]);
        assert_eq!(expand("$$(NAME)", &known), "$(NAME)");
        assert_eq!(expand("$$$(NAME)", &known), "$value");
        assert_eq!(expand("cost: $$5", &known), "cost: $5");
        assert_eq!(expand("$$", &known), "$");
    }

    #[test]
    fn expansion_keeps_lone_and_unterminated_operators() {
        let known = variables(&[("NAME", "value")]);
        assert_eq!(expand("$", &known), "$");
        assert_eq!(expand("trailing $", &known), "trailing $");
        assert_eq!(expand("$x$(NAME)", &known), "$xvalue");
        assert_eq!(expand("$(NAME", &known), "$(NAME");
        assert_eq!(expand("$(NAME)$(", &known), "value$(");
        assert_eq!(expand("é$(NAME)ü", &known), "évalueü");
    }

    fn field(name: &str, path: &str) -> EnvVar {
        EnvVar {
            name: name.to_string(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: path.to_string(),
                    ..ObjectFieldSelector::default()
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        }
    }

    fn value(name: &str, value: &str) -> EnvVar {
        EnvVar {
            name: name.to_string(),
            value: Some(value.to_string()),
            ..EnvVar::default()
        }
    }

    fn secret_key(name: &str, secret: &str, key: &str, optional: bool) -> EnvVar {
        EnvVar {
            name: name.to_string(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret.to_string(),
                    key: key.to_string(),
                    optional: Some(optional),
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        }
    }

    #[test]
    fn environment_resolves_fields_secrets_config_maps_and_earlier_variables() {
        let container = Container {
            name: "tern".to_string(),
            env: Some(vec![
                field("TERN_POD_NAME", "metadata.name"),
                field("NAMESPACE", "metadata.namespace"),
                field("POD_IP", "status.podIP"),
                field("NODE", "spec.nodeName"),
                field("TIER", "metadata.labels['tier']"),
                secret_key("ROUTE_USER", "routes", "username", false),
                secret_key("ROUTE_PASSWORD", "routes", "password", false),
                secret_key("ABSENT", "routes", "missing", true),
                secret_key("ABSENT_SECRET", "nowhere", "key", true),
                EnvVar {
                    name: "CONFIG".to_string(),
                    value_from: Some(EnvVarSource {
                        config_map_key_ref: Some(ConfigMapKeySelector {
                            name: "settings".to_string(),
                            key: "nats-0.conf".to_string(),
                            optional: None,
                        }),
                        ..EnvVarSource::default()
                    }),
                    ..EnvVar::default()
                },
                value(
                    "URL",
                    "nats://$(ROUTE_USER):$(ROUTE_PASSWORD)@$(POD_IP):6222/$(LATER)",
                ),
                value("LATER", "defined too late"),
            ]),
            ..Container::default()
        };
        let pod = pod_with(container.clone(), Vec::new());
        let environment =
            resolve_environment(&facts(&pod), &container, &objects()).expect("resolved");
        let lookup = |name: &str| {
            environment
                .iter()
                .find(|(variable, _)| variable == name)
                .map(|(_, value)| value.as_str())
        };
        assert_eq!(lookup("TERN_POD_NAME"), Some("nats-1"));
        assert_eq!(lookup("NAMESPACE"), Some("messaging"));
        assert_eq!(lookup("POD_IP"), Some("10.250.7.3"));
        assert_eq!(lookup("NODE"), Some("tern-e2e-node"));
        assert_eq!(lookup("TIER"), Some("broker"));
        assert_eq!(lookup("ROUTE_USER"), Some("router"));
        assert_eq!(lookup("ROUTE_PASSWORD"), Some("s3cret"));
        assert_eq!(lookup("ABSENT"), None);
        assert_eq!(lookup("ABSENT_SECRET"), None);
        assert_eq!(lookup("CONFIG"), Some("port: 4222\n"));
        assert_eq!(
            lookup("URL"),
            Some("nats://router:s3cret@10.250.7.3:6222/$(LATER)")
        );
        assert_eq!(
            environment.first().map(|(name, _)| name.as_str()),
            Some("TERN_POD_NAME")
        );
    }

    #[test]
    fn a_missing_required_secret_key_is_a_configuration_error() {
        let container = Container {
            name: "tern".to_string(),
            env: Some(vec![secret_key("PASSWORD", "routes", "missing", false)]),
            ..Container::default()
        };
        let pod = pod_with(container.clone(), Vec::new());
        let error = resolve_environment(&facts(&pod), &container, &objects())
            .expect_err("the key is missing");
        assert!(matches!(error, NodeError::Configuration(_)), "{error}");
        assert_eq!(
            error.to_string(),
            "key \"missing\" of secret \"routes\" not found"
        );
        let absent = Container {
            env: Some(vec![secret_key("PASSWORD", "nowhere", "password", false)]),
            ..container
        };
        let error = resolve_environment(&facts(&pod), &absent, &objects())
            .expect_err("the secret is missing");
        assert_eq!(error.to_string(), "secret \"nowhere\" not found");
    }

    #[test]
    fn pods_with_unsupported_shapes_are_refused_with_a_reason() {
        let runnable = Container {
            name: "tern".to_string(),
            command: Some(vec!["tern".to_string()]),
            ..Container::default()
        };
        let pod = pod_with(runnable.clone(), Vec::new());
        assert!(supported_container(&pod).is_ok());
        let mut two = pod.clone();
        if let Some(spec) = two.spec.as_mut() {
            spec.containers.push(runnable.clone());
        }
        let error = supported_container(&two).expect_err("two containers");
        assert!(error.to_string().contains("has 2"), "{error}");
        let no_command = pod_with(
            Container {
                command: None,
                ..runnable
            },
            Vec::new(),
        );
        assert!(matches!(
            supported_container(&no_command),
            Err(NodeError::Unsupported(_))
        ));
    }
}
