//! What backs each volume ([`Backing`]): a scratch directory, a claim's directory kept across
//! Pods, a host path, or files rendered from ConfigMaps, Secrets, the downward API and a token,
//! written like the kubelet's atomic writer (`..data` symlink swap).

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{DownwardAPIVolumeFile, KeyToPath, Volume, VolumeProjection};

use super::objects::{not_found, KeySource, Objects};
use super::pod_spec::{field_value, first_container, resource_value, PodFacts};
use super::NodeError;

const DEFAULT_FILE_MODE: u32 = 0o644;

/// A file of a volume: its bytes and permission bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FileEntry {
    content: Vec<u8>,
    mode: u32,
}

/// A file volume's content, by path relative to the volume.
pub(super) type Files = BTreeMap<String, FileEntry>;

/// What backs a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Backing {
    /// A fresh directory of the Pod (`emptyDir`).
    Scratch,
    /// The directory of a claim, kept across Pods.
    Claim(String),
    /// A directory of the host.
    Host(PathBuf),
    /// Files written by the agent.
    Files(Files),
}

fn file_mode(mode: Option<i32>, default: u32) -> u32 {
    mode.and_then(|mode| u32::try_from(mode).ok())
        .map_or(default, |mode| mode & 0o7777)
}

/// A volume file path: relative, without `..`, not starting with `..` (kept for the writer).
pub(super) fn checked_path(path: &str) -> Result<String, NodeError> {
    let valid = !path.is_empty()
        && !path.starts_with("..")
        && Path::new(path)
            .components()
            .all(|component| matches!(component, Component::Normal(_)));
    if valid {
        Ok(path.to_string())
    } else {
        Err(NodeError::Unsupported(format!(
            "volume file path {path:?} is not a plain relative path"
        )))
    }
}

/// Adds the file at `path` (checked with [`checked_path`]).
fn add_file(files: &mut Files, path: &str, content: Vec<u8>, mode: u32) -> Result<(), NodeError> {
    files.insert(checked_path(path)?, FileEntry { content, mode });
    Ok(())
}

/// One source of a file volume's files, whichever kind of volume names it.
enum Projection<'a> {
    /// Keys of a ConfigMap or Secret: all of them, or the `items` chosen.
    Keys {
        source: KeySource<'a>,
        items: Option<&'a [KeyToPath]>,
        optional: bool,
    },
    /// Downward API fields.
    Downward(&'a [DownwardAPIVolumeFile]),
    /// The service account token, at this path.
    Token(&'a str),
}

impl<'a> Projection<'a> {
    fn keys(source: KeySource<'a>, items: Option<&'a [KeyToPath]>, optional: Option<bool>) -> Self {
        Self::Keys {
            source,
            items,
            optional: optional == Some(true),
        }
    }

    /// A source of a `projected` volume.
    fn of(volume: &Volume, projection: &'a VolumeProjection) -> Result<Self, NodeError> {
        if let Some(source) = &projection.config_map {
            let object = KeySource::ConfigMap(&source.name);
            Ok(Self::keys(object, source.items.as_deref(), source.optional))
        } else if let Some(source) = &projection.secret {
            let object = KeySource::Secret(&source.name);
            Ok(Self::keys(object, source.items.as_deref(), source.optional))
        } else if let Some(source) = &projection.downward_api {
            Ok(Self::Downward(source.items.as_deref().unwrap_or(&[])))
        } else if let Some(source) = &projection.service_account_token {
            Ok(Self::Token(&source.path))
        } else {
            Err(NodeError::Unsupported(format!(
                "volume {:?} has an unsupported projection",
                volume.name
            )))
        }
    }

    /// Adds this source's files, with `default_mode` where an item names no mode.
    fn add_files(
        self,
        facts: &PodFacts<'_>,
        objects: &Objects,
        default_mode: u32,
        files: &mut Files,
    ) -> Result<(), NodeError> {
        match self {
            Self::Keys {
                source,
                items,
                optional,
            } => key_files(source, objects, items, optional, default_mode, files),
            Self::Downward(items) => downward_files(facts, items, default_mode, files),
            Self::Token(path) => {
                let token = objects.service_account_token.clone().ok_or_else(|| {
                    NodeError::Configuration("no service account token".to_string())
                })?;
                add_file(files, path, token.into_bytes(), default_mode)
            }
        }
    }
}

/// Files of a ConfigMap or Secret: all keys or the `items` chosen.
fn key_files(
    source: KeySource<'_>,
    objects: &Objects,
    items: Option<&[KeyToPath]>,
    optional: bool,
    default_mode: u32,
    files: &mut Files,
) -> Result<(), NodeError> {
    let Some(entries) = objects.entries(source) else {
        return if optional {
            Ok(())
        } else {
            Err(not_found(source))
        };
    };
    match items {
        None => {
            for (key, content) in entries {
                add_file(files, &key, content, default_mode)?;
            }
        }
        Some(items) => {
            for item in items {
                match entries.get(&item.key) {
                    Some(content) => {
                        let mode = file_mode(item.mode, default_mode);
                        add_file(files, &item.path, content.clone(), mode)?;
                    }
                    None if optional => {}
                    None => return Err(not_found(format_args!("key {:?} of {source}", item.key))),
                }
            }
        }
    }
    Ok(())
}

fn downward_files(
    facts: &PodFacts<'_>,
    items: &[DownwardAPIVolumeFile],
    default_mode: u32,
    files: &mut Files,
) -> Result<(), NodeError> {
    let container = first_container(facts.pod).cloned().unwrap_or_default();
    for item in items {
        let value = if let Some(selector) = &item.field_ref {
            field_value(facts, selector)?
        } else if let Some(selector) = &item.resource_field_ref {
            resource_value(&container, selector)
        } else {
            String::new()
        };
        let mode = file_mode(item.mode, default_mode);
        add_file(files, &item.path, value.into_bytes(), mode)?;
    }
    Ok(())
}

/// What backs `volume`, its files rendered from `objects` for file volumes.
pub(super) fn volume_backing(
    volume: &Volume,
    facts: &PodFacts<'_>,
    objects: &Objects,
) -> Result<Backing, NodeError> {
    if volume.empty_dir.is_some() {
        return Ok(Backing::Scratch);
    }
    if let Some(claim) = &volume.persistent_volume_claim {
        return Ok(Backing::Claim(checked_path(&claim.claim_name)?));
    }
    if let Some(host) = &volume.host_path {
        return Ok(Backing::Host(PathBuf::from(&host.path)));
    }
    let mut files = Files::new();
    let (projection, default_mode) = if let Some(source) = &volume.config_map {
        let object = KeySource::ConfigMap(&source.name);
        let keys = Projection::keys(object, source.items.as_deref(), source.optional);
        (keys, source.default_mode)
    } else if let Some(source) = &volume.secret {
        let object = KeySource::Secret(source.secret_name.as_deref().unwrap_or_default());
        let keys = Projection::keys(object, source.items.as_deref(), source.optional);
        (keys, source.default_mode)
    } else if let Some(source) = &volume.downward_api {
        let items = source.items.as_deref().unwrap_or(&[]);
        (Projection::Downward(items), source.default_mode)
    } else if let Some(projected) = &volume.projected {
        let mode = file_mode(projected.default_mode, DEFAULT_FILE_MODE);
        for source in projected.sources.iter().flatten() {
            Projection::of(volume, source)?.add_files(facts, objects, mode, &mut files)?;
        }
        return Ok(Backing::Files(files));
    } else {
        return Err(NodeError::Unsupported(format!(
            "volume {:?} is of an unsupported kind",
            volume.name
        )));
    };
    let mode = file_mode(default_mode, DEFAULT_FILE_MODE);
    projection.add_files(facts, objects, mode, &mut files)?;
    Ok(Backing::Files(files))
}

/// Writes `files` into `directory` the way the kubelet's atomic writer does: the files go into
/// a fresh `..<generation>` directory, the `..data` symlink is swapped to it in one rename, and
/// each top-level name is a symlink through `..data`. A reader never sees a half-written volume.
pub(super) fn write_files(directory: &Path, files: &Files, generation: u64) -> std::io::Result<()> {
    std::fs::create_dir_all(directory)?;
    let version = format!("..{generation}");
    let version_directory = directory.join(&version);
    if version_directory.exists() {
        std::fs::remove_dir_all(&version_directory)?;
    }
    std::fs::create_dir(&version_directory)?;
    for (path, entry) in files {
        let target = version_directory.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&target, &entry.content)?;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(entry.mode))?;
    }
    let temporary = directory.join("..data_tmp");
    let _ = std::fs::remove_file(&temporary);
    std::os::unix::fs::symlink(&version, &temporary)?;
    std::fs::rename(&temporary, directory.join("..data"))?;
    let top_level: BTreeSet<String> = files
        .keys()
        .filter_map(|path| path.split('/').next().map(str::to_string))
        .collect();
    for name in &top_level {
        let link = directory.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{name}"), &link)?;
        }
    }
    for entry in std::fs::read_dir(directory)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let stale_version = name.starts_with("..") && name != "..data" && name != version;
        let stale_link = !name.starts_with("..") && !top_level.contains(&name);
        if stale_version {
            std::fs::remove_dir_all(entry.path())?;
        } else if stale_link {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubernetes::node::fixtures::{facts, objects, pod_with};
    use k8s_openapi::api::core::v1::{ConfigMapVolumeSource, Container, SecretVolumeSource};

    fn files_of(backing: Result<Backing, NodeError>) -> Option<Files> {
        match backing {
            Ok(Backing::Files(files)) => Some(files),
            _ => None,
        }
    }

    #[test]
    fn volumes_render_all_keys_or_chosen_items_with_modes() {
        let pod = pod_with(Container::default(), Vec::new());
        let all_keys = Volume {
            name: "config".to_string(),
            config_map: Some(ConfigMapVolumeSource {
                name: "settings".to_string(),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        };
        let files = files_of(volume_backing(&all_keys, &facts(&pod), &objects()))
            .expect("a config map volume has files");
        assert_eq!(
            files.keys().collect::<Vec<_>>(),
            vec!["nats-0.conf", "nats-1.conf"]
        );
        assert_eq!(files.get("nats-1.conf").map(|file| file.mode), Some(0o644));
        let chosen = Volume {
            name: "credentials".to_string(),
            secret: Some(SecretVolumeSource {
                secret_name: Some("routes".to_string()),
                default_mode: Some(0o440),
                items: Some(vec![
                    KeyToPath {
                        key: "password".to_string(),
                        path: "auth/password.txt".to_string(),
                        mode: Some(0o400),
                    },
                    KeyToPath {
                        key: "username".to_string(),
                        path: "user".to_string(),
                        mode: None,
                    },
                ]),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        };
        let files = files_of(volume_backing(&chosen, &facts(&pod), &objects()))
            .expect("a secret volume has files");
        assert_eq!(
            files.get("auth/password.txt"),
            Some(&FileEntry {
                content: b"s3cret".to_vec(),
                mode: 0o400
            })
        );
        assert_eq!(files.get("user").map(|file| file.mode), Some(0o440));
        assert_eq!(files.len(), 2);
    }

    #[test]
    fn missing_volume_sources_fail_unless_optional() {
        let pod = pod_with(Container::default(), Vec::new());
        let mut volume = Volume {
            name: "tls".to_string(),
            secret: Some(SecretVolumeSource {
                secret_name: Some("absent".to_string()),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        };
        let error = volume_backing(&volume, &facts(&pod), &objects()).expect_err("missing");
        assert!(matches!(error, NodeError::Configuration(_)));
        if let Some(secret) = volume.secret.as_mut() {
            secret.optional = Some(true);
        }
        assert_eq!(
            volume_backing(&volume, &facts(&pod), &objects()).ok(),
            Some(Backing::Files(Files::new()))
        );
        let escaping = Volume {
            name: "escape".to_string(),
            config_map: Some(ConfigMapVolumeSource {
                name: "settings".to_string(),
                items: Some(vec![KeyToPath {
                    key: "nats-0.conf".to_string(),
                    path: "../outside".to_string(),
                    mode: None,
                }]),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        };
        assert!(matches!(
            volume_backing(&escaping, &facts(&pod), &objects()),
            Err(NodeError::Unsupported(_))
        ));
    }

    #[test]
    fn atomic_writes_swap_the_data_link_and_drop_stale_names() {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let volume = directory.path().join("config");
        let file = |content: &str| FileEntry {
            content: content.as_bytes().to_vec(),
            mode: 0o644,
        };
        let first = Files::from([
            ("a.conf".to_string(), file("one")),
            ("old.conf".to_string(), file("old")),
            ("nested/b.conf".to_string(), file("two")),
        ]);
        write_files(&volume, &first, 1).expect("first write");
        assert_eq!(
            std::fs::read_to_string(volume.join("a.conf")).expect("a"),
            "one"
        );
        assert_eq!(
            std::fs::read_to_string(volume.join("nested/b.conf")).expect("b"),
            "two"
        );
        let second = Files::from([("a.conf".to_string(), file("three"))]);
        write_files(&volume, &second, 2).expect("second write");
        assert_eq!(
            std::fs::read_to_string(volume.join("a.conf")).expect("a"),
            "three"
        );
        assert!(std::fs::symlink_metadata(volume.join("old.conf")).is_err());
        assert!(std::fs::symlink_metadata(volume.join("nested")).is_err());
        assert!(!volume.join("..1").exists());
        assert_eq!(
            std::fs::read_link(volume.join("..data")).expect("link"),
            PathBuf::from("..2")
        );
    }
}
