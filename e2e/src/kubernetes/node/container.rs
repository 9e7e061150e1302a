//! Preparing and starting the container: the environment, the volumes, the mount points and the
//! start script, resolved once per Pod ([`Prepared`]); the process started in the Pod's
//! namespaces ([`RunningContainer`]); file volumes rewritten when their objects change.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use k8s_openapi::api::core::v1::{Container, Volume};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::mounts::{create_mount_point, plan_mounts, render_start_script, PlannedMount};
use super::objects::Objects;
use super::pod_spec::{expand, pod_hostname, resolve_environment, PodFacts};
use super::probes::{run_probes, ProbeEvent};
use super::supervisor::{PodSupervisor, Sandbox};
use super::volumes::{volume_backing, write_files, Backing, Files};
use super::{blocking, now, NodeError};

/// What the kubelet's container runtime would put in `PATH`.
const CONTAINER_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The container command that means the broker under test.
const BROKER_COMMAND: &str = "tern";

/// Everything needed to (re)start the container, resolved once per Pod.
pub(super) struct Prepared {
    container: Container,
    program: String,
    arguments: Vec<String>,
    environment: Vec<(String, String)>,
    script: PathBuf,
    log_path: PathBuf,
    /// File volumes and what was last written into them.
    file_volumes: Vec<FileVolume>,
    objects: Objects,
}

struct FileVolume {
    volume: Volume,
    directory: PathBuf,
    files: Files,
    generation: u64,
}

/// A started container process and the probes watching it.
pub(super) struct RunningContainer {
    pub(super) child: Child,
    pub(super) pid: u32,
    pub(super) started: Instant,
    pub(super) started_at: Time,
    pub(super) probe_events: mpsc::Receiver<ProbeEvent>,
    /// Dropping the set aborts the probes.
    pub(super) _probes: JoinSet<()>,
}

impl PodSupervisor {
    /// Resolves the environment, materialises the volumes and writes the start script.
    pub(super) async fn prepare(&mut self, container: &Container) -> Result<Prepared, NodeError> {
        let sandbox = self.sandbox()?;
        let objects = self.fetch_objects(container).await?;
        let facts = self.facts(sandbox.address);
        let environment = resolve_environment(&facts, container, &objects)?;
        let variables: HashMap<&str, &str> = environment
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        let mut command_line: Vec<String> = container
            .command
            .iter()
            .flatten()
            .chain(container.args.iter().flatten())
            .map(|word| expand(word, &variables))
            .collect();
        if command_line.is_empty() {
            return Err(NodeError::Unsupported(
                "the container has no command".to_string(),
            ));
        }
        let program = command_line.remove(0);
        let program = self.map_program(&program);
        let pod_directory = self.pod_directory();
        let volumes_directory = pod_directory.join("volumes");
        let mut file_volumes = Vec::new();
        let mut volume_paths: HashMap<String, PathBuf> = HashMap::new();
        for volume in self
            .pod
            .spec
            .iter()
            .flat_map(|spec| spec.volumes.iter().flatten())
        {
            let path = match volume_backing(volume, &facts, &objects)? {
                Backing::Scratch => volumes_directory.join(&volume.name),
                Backing::Claim(claim) => self
                    .shared
                    .settings
                    .work_directory
                    .join("claims")
                    .join(&self.namespace)
                    .join(claim),
                Backing::Host(path) => path,
                Backing::Files(files) => {
                    let directory = volumes_directory.join(&volume.name);
                    write_volume(directory.clone(), files.clone(), 1, "writing").await?;
                    file_volumes.push(FileVolume {
                        volume: volume.clone(),
                        directory: directory.clone(),
                        files,
                        generation: 1,
                    });
                    directory
                }
            };
            std::fs::create_dir_all(&path)
                .map_err(|error| NodeError::io(format!("creating {}", path.display()), error))?;
            volume_paths.insert(volume.name.clone(), path);
        }
        let mounts = plan_mounts(container, &volume_paths, &variables)?;
        self.create_mount_points(&mounts)?;
        let script = render_start_script(
            &mounts,
            &self.shared.hosts_path,
            &pod_hostname(&self.pod),
            container.working_dir.as_deref(),
        );
        let script_path = pod_directory.join("start.sh");
        std::fs::write(&script_path, script)
            .map_err(|error| NodeError::io(format!("writing {}", script_path.display()), error))?;
        let log_path = self
            .namespace_directory()
            .join(&self.name)
            .join("container.log");
        if let Some(parent) = log_path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|error| NodeError::io(format!("creating {}", parent.display()), error))?;
        }
        self.shared.state().logs.insert(
            (self.namespace.clone(), self.name.clone()),
            log_path.clone(),
        );
        Ok(Prepared {
            container: container.clone(),
            program,
            arguments: command_line,
            environment,
            script: script_path,
            log_path,
            file_volumes,
            objects,
        })
    }

    /// The Pod's sandbox, made before anything is prepared or started.
    fn sandbox(&self) -> Result<Sandbox, NodeError> {
        let missing = || NodeError::Configuration("the pod has no sandbox".to_string());
        self.sandbox.clone().ok_or_else(missing)
    }

    /// What the downward API tells about the Pod, its address being `address`.
    fn facts(&self, address: Ipv4Addr) -> PodFacts<'_> {
        PodFacts {
            pod: &self.pod,
            address,
            host: self.shared.gateway,
            node_name: &self.shared.settings.node_name,
        }
    }

    /// `tern` is the broker under test; anything else runs as named.
    pub(super) fn map_program(&self, program: &str) -> String {
        if program == BROKER_COMMAND {
            self.shared.settings.broker_binary.display().to_string()
        } else {
            program.to_string()
        }
    }

    /// Creates the mount points missing on the host, remembering them for
    /// [`NodeAgent::stop`](super::NodeAgent::stop).
    fn create_mount_points(&self, mounts: &[PlannedMount]) -> Result<(), NodeError> {
        let mut created = Vec::new();
        let result = mounts.iter().try_for_each(|mount| {
            create_mount_point(Path::new(&mount.target), mount.is_file, &mut created).map_err(
                |error| NodeError::io(format!("creating mount point {}", mount.target), error),
            )
        });
        self.shared.state().created_paths.extend(created);
        result
    }

    pub(super) fn start_container(
        &mut self,
        prepared: &Prepared,
    ) -> Result<RunningContainer, NodeError> {
        let sandbox = self.sandbox()?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&prepared.log_path)
            .map_err(|error| {
                NodeError::io(format!("opening {}", prepared.log_path.display()), error)
            })?;
        let error_log = log.try_clone().map_err(|error| {
            NodeError::io(format!("opening {}", prepared.log_path.display()), error)
        })?;
        let programs = &self.shared.programs;
        let mut command = Command::new(&programs.ip);
        command
            .arg("netns")
            .arg("exec")
            .arg(&sandbox.network_namespace)
            .arg(&programs.unshare)
            .args([
                "--mount",
                "--uts",
                "--propagation",
                "private",
                "--",
                "/bin/sh",
            ])
            .arg(&prepared.script)
            .arg(&prepared.program)
            .args(&prepared.arguments)
            .env_clear()
            .envs(base_environment(&pod_hostname(&self.pod)))
            .envs(
                prepared
                    .environment
                    .iter()
                    .map(|(name, value)| (name, value)),
            )
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(error_log))
            .kill_on_drop(true);
        let child = command
            .spawn()
            .map_err(|error| NodeError::io(format!("spawning {}", programs.ip.display()), error))?;
        let Some(pid) = child.id() else {
            return Err(NodeError::Configuration(
                "the container exited before its pid was known".to_string(),
            ));
        };
        let started_at = now();
        self.record(format_args!(
            "started {} (pid {pid}, address {})",
            prepared.program, sandbox.address
        ));
        self.shared.update_pod(&self.uid, |record| {
            record.pid = Some(pid);
            record.ready = false;
        });
        self.status.start_time.get_or_insert_with(now);
        self.status.pid = Some(pid);
        self.status.running_since = Some(started_at.clone());
        self.status.started = false;
        self.status.ready = false;
        self.status.waiting = None;
        let (sender, probe_events) = mpsc::channel(8);
        let mut probes = JoinSet::new();
        probes.spawn(run_probes(
            prepared.container.clone(),
            sandbox.address,
            sender,
        ));
        Ok(RunningContainer {
            child,
            pid,
            started: Instant::now(),
            started_at,
            probe_events,
            _probes: probes,
        })
    }

    /// Rewrites file volumes whose ConfigMaps or Secrets changed (from the watch caches).
    pub(super) async fn refresh_volumes(&mut self, prepared: &mut Prepared) {
        if prepared.file_volumes.is_empty() {
            return;
        }
        let objects = self.cached_objects(&prepared.container, &prepared.objects);
        let facts = self.facts(self.status.address.unwrap_or(Ipv4Addr::UNSPECIFIED));
        let mut changes = Vec::new();
        for (index, file_volume) in prepared.file_volumes.iter().enumerate() {
            if let Ok(Backing::Files(files)) = volume_backing(&file_volume.volume, &facts, &objects)
            {
                if files != file_volume.files {
                    changes.push((index, files));
                }
            }
        }
        prepared.objects = objects;
        for (index, files) in changes {
            let Some(file_volume) = prepared.file_volumes.get_mut(index) else {
                continue;
            };
            let generation = file_volume.generation + 1;
            let directory = file_volume.directory.clone();
            let result = write_volume(directory, files.clone(), generation, "updating").await;
            match result {
                Ok(()) => {
                    self.record(format_args!("updated volume {}", file_volume.volume.name));
                    file_volume.files = files;
                    file_volume.generation = generation;
                }
                Err(error) => self.record(error),
            }
        }
    }
}

/// Writes a file volume's `files` (see [`write_files`]) off the async threads; `what` names the
/// write in an error.
async fn write_volume(
    directory: PathBuf,
    files: Files,
    generation: u64,
    what: &'static str,
) -> Result<(), NodeError> {
    blocking(move || {
        write_files(&directory, &files, generation)
            .map_err(|error| NodeError::io(format!("{what} volume {}", directory.display()), error))
    })
    .await
}

/// The variables every container starts with (before its own `env`).
pub(super) fn base_environment(hostname: &str) -> Vec<(String, String)> {
    vec![
        ("PATH".to_string(), CONTAINER_PATH.to_string()),
        ("HOSTNAME".to_string(), hostname.to_string()),
        ("HOME".to_string(), "/root".to_string()),
    ]
}
