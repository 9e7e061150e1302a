//! The container's mount namespace: bind mounts planned from `volumeMounts` (parents first,
//! `subPath` resolved), mount points created on the host (and removed when the agent stops),
//! and the start script that mounts, sets the hostname and `exec`s the command line.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Container;

use super::pod_spec::expand;
use super::volumes::checked_path;
use super::NodeError;

/// One bind mount of the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PlannedMount {
    pub(super) source: PathBuf,
    pub(super) target: String,
    pub(super) read_only: bool,
    pub(super) is_file: bool,
}

/// The container's mounts, parents before children.
pub(super) fn plan_mounts(
    container: &Container,
    volume_paths: &HashMap<String, PathBuf>,
    variables: &HashMap<&str, &str>,
) -> Result<Vec<PlannedMount>, NodeError> {
    let mut mounts = Vec::new();
    for mount in container.volume_mounts.iter().flatten() {
        let Some(volume_path) = volume_paths.get(&mount.name) else {
            return Err(NodeError::Unsupported(format!(
                "mount {} refers to volume {:?}, which the pod does not have",
                mount.mount_path, mount.name
            )));
        };
        let sub_path = match (&mount.sub_path, &mount.sub_path_expr) {
            (Some(path), _) if !path.is_empty() => Some(path.clone()),
            (_, Some(expression)) if !expression.is_empty() => Some(expand(expression, variables)),
            _ => None,
        };
        let source = match sub_path {
            Some(path) => volume_path.join(checked_path(&path)?),
            None => volume_path.clone(),
        };
        if !Path::new(&mount.mount_path).is_absolute() {
            return Err(NodeError::Unsupported(format!(
                "mount path {:?} is not absolute",
                mount.mount_path
            )));
        }
        let is_file = source.is_file();
        mounts.push(PlannedMount {
            source,
            target: mount.mount_path.clone(),
            read_only: mount.read_only == Some(true),
            is_file,
        });
    }
    mounts.sort_by_key(|mount| Path::new(&mount.target).components().count());
    Ok(mounts)
}

/// Creates `target` (a directory, or an empty file when `is_file`) and its missing parents;
/// each path it creates is added to `created`.
pub(super) fn create_mount_point(
    target: &Path,
    is_file: bool,
    created: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    let directory = if is_file {
        target.parent()
    } else {
        Some(target)
    };
    if let Some(directory) = directory {
        let missing: Vec<&Path> = directory
            .ancestors()
            .take_while(|ancestor| !ancestor.exists())
            .collect();
        for path in missing.into_iter().rev() {
            std::fs::create_dir(path)?;
            created.push(path.to_path_buf());
        }
    }
    if is_file && !target.exists() {
        std::fs::File::create(target)?;
        created.push(target.to_path_buf());
    }
    Ok(())
}

/// Quotes `text` for `sh`.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The script that runs inside the Pod's fresh mount and UTS namespaces: it sets the hostname,
/// bind-mounts the volumes (read-only ones remounted read-only after all binds) and the hosts
/// file, then `exec`s its arguments (the container's command line).
pub(super) fn render_start_script(
    mounts: &[PlannedMount],
    hosts_file: &Path,
    hostname: &str,
    working_directory: Option<&str>,
) -> String {
    let mut script = String::from("#!/bin/sh\n# Written by the tern node agent.\nset -e\n");
    let _ = writeln!(
        script,
        "printf '%s' {} > /proc/sys/kernel/hostname || true",
        shell_quote(hostname)
    );
    for mount in mounts {
        let target = shell_quote(&mount.target);
        if mount.is_file {
            let _ = writeln!(script, "[ -e {target} ] || : > {target}");
        } else {
            let _ = writeln!(script, "mkdir -p {target}");
        }
        let _ = writeln!(
            script,
            "mount --bind {} {target}",
            shell_quote(&mount.source.display().to_string())
        );
    }
    for mount in mounts.iter().filter(|mount| mount.read_only) {
        let _ = writeln!(
            script,
            "mount -o remount,bind,ro {}",
            shell_quote(&mount.target)
        );
    }
    let _ = writeln!(
        script,
        "mount --bind {} /etc/hosts",
        shell_quote(&hosts_file.display().to_string())
    );
    if let Some(directory) = working_directory.filter(|directory| !directory.is_empty()) {
        let _ = writeln!(script, "cd {}", shell_quote(directory));
    }
    script.push_str("exec \"$@\"\n");
    script
}

/// Removes the mount points the agent created, deepest first; non-empty ones stay.
pub(super) fn remove_created_paths(created: BTreeSet<PathBuf>) {
    let mut created: Vec<PathBuf> = created.into_iter().collect();
    created.sort_by_key(|path| std::cmp::Reverse(path.components().count()));
    for path in created {
        match std::fs::symlink_metadata(&path) {
            Ok(metadata) if metadata.is_dir() => {
                let _ = std::fs::remove_dir(&path);
            }
            Ok(metadata) if metadata.is_file() && metadata.len() == 0 => {
                let _ = std::fs::remove_file(&path);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubernetes::node::fixtures::variables;
    use k8s_openapi::api::core::v1::VolumeMount;

    #[test]
    fn mounts_resolve_volumes_and_sub_paths_parents_first() {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let config = directory.path().join("config");
        std::fs::create_dir_all(&config).expect("config");
        std::fs::write(config.join("nats-0.conf"), "port: 1").expect("file");
        let container = Container {
            volume_mounts: Some(vec![
                VolumeMount {
                    name: "tls".to_string(),
                    mount_path: "/etc/tern/tls/client".to_string(),
                    read_only: Some(true),
                    ..VolumeMount::default()
                },
                VolumeMount {
                    name: "config".to_string(),
                    mount_path: "/etc/tern".to_string(),
                    ..VolumeMount::default()
                },
                VolumeMount {
                    name: "config".to_string(),
                    mount_path: "/etc/single.conf".to_string(),
                    sub_path_expr: Some("$(POD).conf".to_string()),
                    ..VolumeMount::default()
                },
            ]),
            ..Container::default()
        };
        let paths = HashMap::from([
            ("config".to_string(), config.clone()),
            ("tls".to_string(), directory.path().join("tls")),
        ]);
        let mounts =
            plan_mounts(&container, &paths, &variables(&[("POD", "nats-0")])).expect("mounts");
        let targets: Vec<&str> = mounts.iter().map(|mount| mount.target.as_str()).collect();
        assert_eq!(
            targets,
            vec!["/etc/tern", "/etc/single.conf", "/etc/tern/tls/client"]
        );
        assert_eq!(mounts[1].source, config.join("nats-0.conf"));
        assert!(mounts[1].is_file);
        assert!(mounts[2].read_only);
        let unknown = Container {
            volume_mounts: Some(vec![VolumeMount {
                name: "nowhere".to_string(),
                mount_path: "/x".to_string(),
                ..VolumeMount::default()
            }]),
            ..Container::default()
        };
        assert!(plan_mounts(&unknown, &paths, &HashMap::new()).is_err());
    }

    #[test]
    fn mount_points_remember_exactly_what_they_created() {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let target = directory.path().join("etc/tern/config");
        let mut created = Vec::new();
        create_mount_point(&target, false, &mut created).expect("created");
        assert_eq!(
            created,
            vec![
                directory.path().join("etc"),
                directory.path().join("etc/tern"),
                target.clone()
            ]
        );
        let file = directory.path().join("etc/tern/single.conf");
        let mut more = Vec::new();
        create_mount_point(&file, true, &mut more).expect("created");
        assert_eq!(more, vec![file]);
        remove_created_paths(created.into_iter().chain(more).collect());
        assert!(!directory.path().join("etc").exists());
    }

    #[test]
    fn start_script_quotes_mounts_and_execs_its_arguments() {
        let mounts = vec![
            PlannedMount {
                source: PathBuf::from("node/pods/ns/uid/volumes/config"),
                target: "/etc/tern/config".to_string(),
                read_only: true,
                is_file: false,
            },
            PlannedMount {
                source: PathBuf::from("node/it's here"),
                target: "/data".to_string(),
                read_only: false,
                is_file: false,
            },
        ];
        let script = render_start_script(&mounts, Path::new("node/hosts"), "nats-0", None);
        assert!(script.contains("mkdir -p '/etc/tern/config'\n"));
        assert!(
            script.contains("mount --bind 'node/pods/ns/uid/volumes/config' '/etc/tern/config'\n")
        );
        assert!(script.contains("mount --bind 'node/it'\\''s here' '/data'\n"));
        assert!(script.contains("mount -o remount,bind,ro '/etc/tern/config'\n"));
        assert!(!script.contains("remount,bind,ro '/data'"));
        assert!(script.contains("mount --bind 'node/hosts' /etc/hosts\n"));
        assert!(script.ends_with("exec \"$@\"\n"));
        let remount = script.find("remount").expect("a remount");
        let last_bind = script.rfind("mount --bind 'node/it").expect("a bind");
        assert!(remount > last_bind, "read-only remounts follow every bind");
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
    }
}
