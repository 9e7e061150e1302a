//! Ending a container or a Pod: the `preStop` hook within the grace period, SIGTERM, SIGKILL
//! when the grace period runs out; then the Pod's files go and, for a deletion, the Pod object
//! (grace period 0, UID precondition).

use std::net::Ipv4Addr;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::{LifecycleHandler, Pod};
use kube::api::{DeleteParams, Preconditions};
use kube::Api;
use tokio::process::Command;
use tokio::time::Instant;

use super::container::{base_environment, RunningContainer};
use super::pod_spec::{first_container, pod_hostname};
use super::probes::{http_probe, tcp_probe};
use super::supervisor::{Interrupt, PodSupervisor};
use super::{api_call, blocking, is_api_status, RESTART_BACKOFF_FIRST, STOP_GRACE};

/// How long a process may take to be reaped after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// Attempts at deleting a Pod object once its process is gone.
const DELETE_ATTEMPTS: u32 = 5;
/// Output of a `preStop` exec hook kept in the agent's log.
const HOOK_OUTPUT_LIMIT: usize = 1024;

impl PodSupervisor {
    /// SIGTERM, then SIGKILL once `grace` has passed (or at once when the Pod is removed; after
    /// at most [`STOP_GRACE`] when the agent stops). Runs the `preStop` hook first when asked.
    /// `Err` when the Pod's run was interrupted meanwhile (the process is dead by then).
    pub(super) async fn terminate(
        &mut self,
        running: &mut RunningContainer,
        grace: Duration,
        pre_stop: bool,
    ) -> Result<ExitStatus, Interrupt> {
        let start = self.deletion_seen.unwrap_or_else(Instant::now);
        let mut deadline = start + grace;
        let mut interrupted = None;
        if pre_stop {
            let hook = first_container(&self.pod)
                .and_then(|container| container.lifecycle.as_ref())
                .and_then(|lifecycle| lifecycle.pre_stop.clone());
            if let Some(hook) = hook {
                let hook_deadline = deadline;
                tokio::select! {
                    biased;
                    () = self.removed.cancelled() => {
                        interrupted = Some(Interrupt::Removed);
                        deadline = Instant::now();
                    }
                    () = self.stop.cancelled() => {
                        interrupted = Some(Interrupt::Stopping);
                        deadline = deadline.min(Instant::now() + STOP_GRACE);
                    }
                    outcome = tokio::time::timeout_at(hook_deadline, self.run_hook(&hook, running.pid)) => {
                        match outcome {
                            Ok(Ok(summary)) => self.record(format_args!("preStop hook: {summary}")),
                            Ok(Err(error)) => self.record(format_args!("preStop hook failed: {error}")),
                            Err(_) => self.record("preStop hook ran out of the grace period"),
                        }
                    }
                }
            }
        }
        send_signal(running.pid, nix::sys::signal::Signal::SIGTERM);
        loop {
            tokio::select! {
                biased;
                exit = running.child.wait() => {
                    let exit = exit.unwrap_or_else(|_| ExitStatus::from_raw(255 << 8));
                    return interrupted.map_or(Ok(exit), Err);
                }
                () = self.removed.cancelled(), if interrupted != Some(Interrupt::Removed) => {
                    interrupted = Some(Interrupt::Removed);
                    deadline = Instant::now();
                }
                () = self.stop.cancelled(), if interrupted.is_none() => {
                    interrupted = Some(Interrupt::Stopping);
                    deadline = deadline.min(Instant::now() + STOP_GRACE);
                }
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        self.record(format_args!(
            "killing pid {} (grace period over)",
            running.pid
        ));
        send_signal(running.pid, nix::sys::signal::Signal::SIGKILL);
        let exit = tokio::time::timeout(KILL_WAIT, running.child.wait())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_else(|| ExitStatus::from_raw(9));
        interrupted.map_or(Ok(exit), Err)
    }

    /// Runs a lifecycle hook against the container with process `pid`; a summary of it.
    async fn run_hook(&self, hook: &LifecycleHandler, pid: u32) -> Result<String, String> {
        let address = self.status.address.unwrap_or(Ipv4Addr::LOCALHOST);
        let ports = first_container(&self.pod)
            .and_then(|container| container.ports.clone())
            .unwrap_or_default();
        if let Some(exec) = &hook.exec {
            let mut command_line = exec.command.clone().unwrap_or_default();
            if command_line.is_empty() {
                return Err("the exec hook has no command".to_string());
            }
            let program = self.map_program(&command_line.remove(0));
            let mut command = Command::new(&self.shared.programs.nsenter);
            command
                .arg("-t")
                .arg(pid.to_string())
                .args(["-m", "-n", "-u", "--"])
                .arg(&program)
                .args(&command_line)
                .env_clear()
                .envs(base_environment(&pod_hostname(&self.pod)))
                .stdin(Stdio::null())
                .kill_on_drop(true);
            let output = command
                .output()
                .await
                .map_err(|error| format!("running {program}: {error}"))?;
            let mut text = String::from_utf8_lossy(&output.stdout).to_string();
            text.push_str(&String::from_utf8_lossy(&output.stderr));
            let text: String = text.trim().chars().take(HOOK_OUTPUT_LIMIT).collect();
            let summary = format!(
                "{program} {} ({}): {text}",
                command_line.join(" "),
                output.status
            );
            return if output.status.success() {
                Ok(summary)
            } else {
                Err(summary)
            };
        }
        if let Some(http) = &hook.http_get {
            let status = http_probe(http, address, &ports, Duration::from_secs(30)).await?;
            return Ok(format!("GET answered {status}"));
        }
        if let Some(tcp) = &hook.tcp_socket {
            tcp_probe(tcp, address, &ports, Duration::from_secs(5)).await?;
            return Ok("connected".to_string());
        }
        if let Some(sleep) = &hook.sleep {
            let seconds = u64::try_from(sleep.seconds).unwrap_or(0);
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            return Ok(format!("slept {seconds}s"));
        }
        Err("the hook has no handler".to_string())
    }

    /// Ends the Pod's run: stops the process, removes the sandbox, deletes the Pod object when
    /// it was being deleted.
    pub(super) async fn finish(&mut self, interrupt: Interrupt, running: Option<RunningContainer>) {
        let mut interrupt = interrupt;
        if let Some(mut running) = running {
            let outcome = match interrupt {
                Interrupt::Deleting => {
                    self.record(format_args!(
                        "deleting (grace period {:?})",
                        self.grace_period()
                    ));
                    let grace = self.grace_period();
                    self.terminate(&mut running, grace, true).await
                }
                Interrupt::Removed => self.terminate(&mut running, Duration::ZERO, false).await,
                Interrupt::Stopping => {
                    self.deletion_seen = None;
                    self.terminate(&mut running, STOP_GRACE, false).await
                }
            };
            let exit = match outcome {
                Ok(exit) => exit,
                Err(later) => {
                    // A removal or stop during a graceful deletion: the object goes with the
                    // removal; a stop leaves it.
                    if interrupt == Interrupt::Deleting && later == Interrupt::Stopping {
                        interrupt = Interrupt::Stopping;
                    }
                    if later == Interrupt::Removed {
                        interrupt = Interrupt::Removed;
                    }
                    ExitStatus::from_raw(9)
                }
            };
            self.record(format_args!("container stopped ({exit})"));
            self.container_stopped(&running, exit);
        }
        self.release_sandbox().await;
        if interrupt != Interrupt::Stopping {
            let directory = self.pod_directory();
            let _ = blocking(move || {
                let _ = std::fs::remove_dir_all(&directory);
                Ok(())
            })
            .await;
        }
        if interrupt == Interrupt::Deleting {
            self.delete_object().await;
        }
    }

    /// Deletes the Pod object now (grace period 0, this UID only), as the kubelet does once a
    /// Pod's containers are gone.
    async fn delete_object(&mut self) {
        let api: Api<Pod> = Api::namespaced(self.shared.client.clone(), &self.namespace);
        let parameters = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        for attempt in 1..=DELETE_ATTEMPTS {
            let deleted = api_call(
                || format!("deleting pod {}", self.label()),
                api.delete(&self.name, &parameters),
            )
            .await;
            match deleted {
                Ok(_) => {
                    self.record("deleted");
                    return;
                }
                Err(error) if is_api_status(&error, 404) || is_api_status(&error, 409) => return,
                Err(error) => {
                    self.record(format_args!("attempt {attempt}: {error}"));
                    tokio::select! {
                        () = self.stop.cancelled() => return,
                        () = tokio::time::sleep(RESTART_BACKOFF_FIRST * attempt) => {}
                    }
                }
            }
        }
    }
}

pub(super) fn send_signal(pid: u32, signal: nix::sys::signal::Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
    }
}
