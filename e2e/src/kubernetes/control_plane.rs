//! etcd, kube-apiserver and kube-controller-manager on loopback, for one test run.
//!
//! Contract:
//! - The binaries come from `TERN_KUBE_BIN` (a directory), else from the cache
//!   `e2e/setup/kube-control-plane.sh` fills (`$XDG_CACHE_HOME` or `~/.cache`,
//!   `tern/kubernetes-<version>/bin`); a missing one is an error naming the script to run.
//! - Every port comes from the OS; every file (certificates, keys, etcd data, kubeconfigs,
//!   logs) lives in one temp dir. Processes are killed and waited for on drop.
//! - Certificates are made at run time: a CA, the API server's serving certificate for
//!   127.0.0.1, client certificates for the admin (`system:masters`) and the controller
//!   manager, and the service-account signing key.
//! - [`ControlPlane::start`] returns once `/readyz` answers `ok`; the controller manager runs
//!   every controller but the node lifecycle and cloud ones (the kubelet stand-in registers a
//!   Node that never sends heartbeats).

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use rcgen::{ExtendedKeyUsagePurpose, KeyPair};
use tempfile::TempDir;

use crate::certificates::{Authority, CertificateError};
use crate::wait::wait_until;

/// The Kubernetes release the setup script builds (its cache directory's name).
pub const KUBERNETES_VERSION: &str = "v1.36.5";
/// Where the binaries are, overriding the cache.
pub const BINARY_DIRECTORY_VARIABLE: &str = "TERN_KUBE_BIN";
/// How long the API server may take to become ready (a cold start on 2 cores).
pub const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// Why the control plane could not start or answer.
#[derive(Debug, thiserror::Error)]
pub enum ControlPlaneError {
    #[error("{binary} is missing ({reason}); build the control plane with e2e/setup/kube-control-plane.sh or set {BINARY_DIRECTORY_VARIABLE}")]
    MissingBinary { binary: String, reason: String },
    #[error("cannot make certificates: {0}")]
    Certificate(#[from] CertificateError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{name} did not become ready: {reason}\n--- last lines of its log ---\n{log}")]
    NotReady {
        name: &'static str,
        reason: String,
        log: String,
    },
    #[error("`kubectl {arguments}` failed ({status}):\n{stderr}")]
    Kubectl {
        arguments: String,
        status: String,
        stderr: String,
    },
    #[error("the kube client: {0}")]
    Client(String),
}

fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ControlPlaneError {
    let what = what.into();
    move |source| ControlPlaneError::Io { what, source }
}

/// The directory holding kube-apiserver, kube-controller-manager, kubectl and etcd.
pub fn binary_directory() -> PathBuf {
    if let Some(directory) = std::env::var_os(BINARY_DIRECTORY_VARIABLE) {
        return PathBuf::from(directory);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        // No HOME: the setup script refuses too, so this only makes the error name a path.
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache
        .join("tern")
        .join(format!("kubernetes-{KUBERNETES_VERSION}"))
        .join("bin")
}

fn binary(name: &str) -> Result<PathBuf, ControlPlaneError> {
    let path = binary_directory().join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(ControlPlaneError::MissingBinary {
            binary: name.to_string(),
            reason: format!("{} is not a file", path.display()),
        })
    }
}

fn free_port() -> Result<u16, ControlPlaneError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(io_error("cannot get a free port"))
}

/// One control-plane process, killed on drop.
struct ControlPlaneProcess {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl ControlPlaneProcess {
    fn spawn(
        name: &'static str,
        directory: &Path,
        binary: &Path,
        arguments: &[String],
    ) -> Result<Self, ControlPlaneError> {
        let log = directory.join(format!("{name}.log"));
        let file =
            fs::File::create(&log).map_err(io_error(format!("cannot create {}", log.display())))?;
        let errors = file
            .try_clone()
            .map_err(io_error(format!("cannot share {}", log.display())))?;
        let child = Command::new(binary)
            .args(arguments)
            .current_dir(directory)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(errors)
            .spawn()
            .map_err(io_error(format!("cannot start {}", binary.display())))?;
        Ok(Self { name, child, log })
    }

    fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }

    fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(error) => Some(error.to_string()),
        }
    }
}

impl Drop for ControlPlaneProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last `lines` lines of a file.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A running control plane; see the module contract.
pub struct ControlPlane {
    // Dropped in reverse order of start: controller manager, API server, etcd.
    controller_manager: Option<ControlPlaneProcess>,
    api_server: ControlPlaneProcess,
    etcd: ControlPlaneProcess,
    server: String,
    admin_kubeconfig: PathBuf,
    ca_file: PathBuf,
    directory: TempDir,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ControlPlane")
            .field("server", &self.server)
            .field("directory", &self.directory.path())
            .finish()
    }
}

fn write(path: &Path, content: &str) -> Result<(), ControlPlaneError> {
    fs::write(path, content).map_err(io_error(format!("cannot write {}", path.display())))
}

/// A kubeconfig for `server` with either client certificate files or a bearer token.
pub fn kubeconfig_text(
    server: &str,
    ca_file: &Path,
    user: &str,
    credentials: &Credentials,
) -> String {
    let credentials = match credentials {
        Credentials::Certificate { certificate, key } => format!(
            "    client-certificate: {}\n    client-key: {}\n",
            certificate.display(),
            key.display()
        ),
        Credentials::Token(token) => format!("    token: {token}\n"),
    };
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: tern-e2e\n  cluster:\n    server: {server}\n    certificate-authority: {}\nusers:\n- name: {user}\n  user:\n{credentials}contexts:\n- name: {user}\n  context:\n    cluster: tern-e2e\n    user: {user}\n    namespace: default\ncurrent-context: {user}\n",
        ca_file.display()
    )
}

/// How a kubeconfig user proves who it is.
#[derive(Debug, Clone)]
pub enum Credentials {
    Certificate { certificate: PathBuf, key: PathBuf },
    Token(String),
}

impl ControlPlane {
    /// Starts etcd, the API server and the controller manager; see the module contract.
    pub fn start() -> Result<Self, ControlPlaneError> {
        let etcd_binary = binary("etcd")?;
        let api_server_binary = binary("kube-apiserver")?;
        let controller_manager_binary = binary("kube-controller-manager")?;
        binary("kubectl")?;
        let directory = tempfile::Builder::new()
            .prefix("tern-e2e-kubernetes-")
            .tempdir()
            .map_err(io_error("cannot create a temp dir"))?;
        let root = directory.path().to_path_buf();
        let file = |name: &str| root.join(name);

        let authority = Authority::new("tern-e2e-kubernetes-ca")?;
        let (ca_certificate, ca_key) = authority.pem();
        write(&file("ca.crt"), &ca_certificate)?;
        write(&file("ca.key"), &ca_key)?;
        let (serving, serving_key) = authority.issue_identity(
            "the API server's serving certificate",
            "kube-apiserver",
            None,
            &[
                "127.0.0.1",
                "localhost",
                "10.96.0.1",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ],
            vec![ExtendedKeyUsagePurpose::ServerAuth],
        )?;
        write(&file("apiserver.crt"), &serving)?;
        write(&file("apiserver.key"), &serving_key)?;
        let clients = [
            ("admin", "admin", Some("system:masters")),
            ("front-proxy-client", "front-proxy-client", None),
            ("controller-manager", "system:kube-controller-manager", None),
        ];
        for (file_name, common_name, organization) in clients {
            let (certificate, key) = authority.issue_identity(
                "a client certificate",
                common_name,
                organization,
                &[],
                vec![ExtendedKeyUsagePurpose::ClientAuth],
            )?;
            write(&file(&format!("{file_name}.crt")), &certificate)?;
            write(&file(&format!("{file_name}.key")), &key)?;
        }
        let signing = KeyPair::generate().map_err(|source| CertificateError::Generate {
            what: "the service account signing key",
            source,
        })?;
        write(&file("service-account.key"), &signing.serialize_pem())?;
        write(&file("service-account.pub"), &signing.public_key_pem())?;

        let etcd_client = free_port()?;
        let etcd_peer = free_port()?;
        let secure_port = free_port()?;
        let etcd = ControlPlaneProcess::spawn(
            "etcd",
            &root,
            &etcd_binary,
            &[
                "--name=tern-e2e".to_string(),
                format!("--data-dir={}", file("etcd").display()),
                format!("--listen-client-urls=http://127.0.0.1:{etcd_client}"),
                format!("--advertise-client-urls=http://127.0.0.1:{etcd_client}"),
                format!("--listen-peer-urls=http://127.0.0.1:{etcd_peer}"),
                format!("--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}"),
                format!("--initial-cluster=tern-e2e=http://127.0.0.1:{etcd_peer}"),
                "--unsafe-no-fsync=true".to_string(),
                "--log-level=warn".to_string(),
            ],
        )?;
        let api_server = ControlPlaneProcess::spawn(
            "kube-apiserver",
            &root,
            &api_server_binary,
            &[
                format!("--etcd-servers=http://127.0.0.1:{etcd_client}"),
                "--bind-address=127.0.0.1".to_string(),
                "--advertise-address=127.0.0.1".to_string(),
                format!("--secure-port={secure_port}"),
                format!("--cert-dir={}", file("certificates").display()),
                format!("--tls-cert-file={}", file("apiserver.crt").display()),
                format!("--tls-private-key-file={}", file("apiserver.key").display()),
                format!("--client-ca-file={}", file("ca.crt").display()),
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local".to_string(),
                format!(
                    "--service-account-key-file={}",
                    file("service-account.pub").display()
                ),
                format!(
                    "--service-account-signing-key-file={}",
                    file("service-account.key").display()
                ),
                "--service-cluster-ip-range=10.96.0.0/16".to_string(),
                "--authorization-mode=RBAC".to_string(),
                "--allow-privileged=true".to_string(),
                "--enable-priority-and-fairness=false".to_string(),
                // No loopback address in the `kubernetes` Service's endpoints (refused).
                "--endpoint-reconciler-type=none".to_string(),
                // The aggregation layer's settings, which the controller manager's
                // authentication reads from the cluster (it complains on every sync without).
                format!(
                    "--requestheader-client-ca-file={}",
                    file("ca.crt").display()
                ),
                "--requestheader-allowed-names=front-proxy-client".to_string(),
                "--requestheader-username-headers=X-Remote-User".to_string(),
                "--requestheader-group-headers=X-Remote-Group".to_string(),
                "--requestheader-extra-headers-prefix=X-Remote-Extra-".to_string(),
                format!(
                    "--proxy-client-cert-file={}",
                    file("front-proxy-client.crt").display()
                ),
                format!(
                    "--proxy-client-key-file={}",
                    file("front-proxy-client.key").display()
                ),
                "--profiling=false".to_string(),
                "--v=1".to_string(),
            ],
        )?;
        let server = format!("https://127.0.0.1:{secure_port}");
        let admin_kubeconfig = file("admin.kubeconfig");
        write(
            &admin_kubeconfig,
            &kubeconfig_text(
                &server,
                &file("ca.crt"),
                "admin",
                &Credentials::Certificate {
                    certificate: file("admin.crt"),
                    key: file("admin.key"),
                },
            ),
        )?;
        let manager_kubeconfig = file("controller-manager.kubeconfig");
        write(
            &manager_kubeconfig,
            &kubeconfig_text(
                &server,
                &file("ca.crt"),
                "controller-manager",
                &Credentials::Certificate {
                    certificate: file("controller-manager.crt"),
                    key: file("controller-manager.key"),
                },
            ),
        )?;
        let mut plane = Self {
            controller_manager: None,
            api_server,
            etcd,
            server,
            admin_kubeconfig,
            ca_file: file("ca.crt"),
            directory,
        };
        plane.wait_for_api_server()?;
        plane.controller_manager = Some(ControlPlaneProcess::spawn(
            "kube-controller-manager",
            &root,
            &controller_manager_binary,
            &[
                format!("--kubeconfig={}", manager_kubeconfig.display()),
                format!("--authentication-kubeconfig={}", manager_kubeconfig.display()),
                format!("--authorization-kubeconfig={}", manager_kubeconfig.display()),
                "--bind-address=127.0.0.1".to_string(),
                format!("--secure-port={}", free_port()?),
                "--leader-elect=false".to_string(),
                "--use-service-account-credentials=true".to_string(),
                format!(
                    "--service-account-private-key-file={}",
                    file("service-account.key").display()
                ),
                format!("--root-ca-file={}", file("ca.crt").display()),
                format!("--cluster-signing-cert-file={}", file("ca.crt").display()),
                format!("--cluster-signing-key-file={}", file("ca.key").display()),
                format!("--cert-dir={}", file("controller-manager-certificates").display()),
                // Else it creates /usr/libexec/kubernetes/... on the host.
                format!("--flex-volume-plugin-dir={}", file("flexvolume").display()),
                "--service-cluster-ip-range=10.96.0.0/16".to_string(),
                "--profiling=false".to_string(),
                "--controllers=*,-node-lifecycle-controller,-cloud-node-lifecycle-controller,-service-lb-controller,-node-route-controller,-node-ipam-controller".to_string(),
                "--v=1".to_string(),
            ],
        )?);
        Ok(plane)
    }

    fn wait_for_api_server(&mut self) -> Result<(), ControlPlaneError> {
        let mut last = String::new();
        let ready = wait_until(
            "the API server's /readyz",
            READY_TIMEOUT,
            Duration::from_millis(250),
            || {
                if let Some(status) = self.etcd.exited() {
                    last = format!("etcd exited ({status}): {}", self.etcd.log_tail(20));
                    return Some(false);
                }
                if let Some(status) = self.api_server.exited() {
                    last = format!("kube-apiserver exited ({status})");
                    return Some(false);
                }
                match self.kubectl(&["get", "--raw", "/readyz"]) {
                    Ok(output) if output.trim() == "ok" => Some(true),
                    Ok(output) => {
                        last = output;
                        None
                    }
                    Err(error) => {
                        last = error.to_string();
                        None
                    }
                }
            },
        );
        match ready {
            Ok(true) => Ok(()),
            Ok(false) | Err(_) => Err(ControlPlaneError::NotReady {
                name: "kube-apiserver",
                reason: last,
                log: self.api_server.log_tail(40),
            }),
        }
    }

    /// `https://127.0.0.1:<port>`.
    pub fn server(&self) -> &str {
        &self.server
    }

    pub fn admin_kubeconfig(&self) -> &Path {
        &self.admin_kubeconfig
    }

    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    pub fn directory(&self) -> &Path {
        self.directory.path()
    }

    /// Runs kubectl as the admin; stdout on success.
    pub fn kubectl(&self, arguments: &[&str]) -> Result<String, ControlPlaneError> {
        self.kubectl_with_input(arguments, None)
    }

    /// Runs kubectl as the admin with `input` on standard input; stdout on success.
    pub fn kubectl_with_input(
        &self,
        arguments: &[&str],
        input: Option<&str>,
    ) -> Result<String, ControlPlaneError> {
        let output = self.kubectl_output(arguments, input)?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(ControlPlaneError::Kubectl {
                arguments: arguments.join(" "),
                status: output.status.to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            })
        }
    }

    /// Runs kubectl as the admin and returns whatever it did.
    pub fn kubectl_output(
        &self,
        arguments: &[&str],
        input: Option<&str>,
    ) -> Result<Output, ControlPlaneError> {
        use std::io::Write as _;
        let mut child = Command::new(binary("kubectl")?)
            .args(arguments)
            .env("KUBECONFIG", &self.admin_kubeconfig)
            // Discovery cache in the temp dir, not ~/.kube/cache.
            .env("KUBECACHEDIR", self.directory.path().join("kubectl-cache"))
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io_error("cannot start kubectl"))?;
        if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin
                .write_all(input.as_bytes())
                .map_err(io_error("cannot write to kubectl"))?;
        }
        child
            .wait_with_output()
            .map_err(io_error("kubectl did not finish"))
    }

    /// A kube client as the admin.
    pub async fn admin_client(&self) -> Result<kube::Client, ControlPlaneError> {
        client_from_kubeconfig(&self.admin_kubeconfig).await
    }

    /// A kubeconfig file for a ServiceAccount, with a token from the TokenRequest API.
    pub fn service_account_kubeconfig(
        &self,
        namespace: &str,
        service_account: &str,
    ) -> Result<PathBuf, ControlPlaneError> {
        let token = self.kubectl(&[
            "create",
            "token",
            service_account,
            "--namespace",
            namespace,
            "--duration=2h",
        ])?;
        let path = self
            .directory
            .path()
            .join(format!("{namespace}-{service_account}.kubeconfig"));
        write(
            &path,
            &kubeconfig_text(
                &self.server,
                &self.ca_file,
                service_account,
                &Credentials::Token(token.trim().to_string()),
            ),
        )?;
        Ok(path)
    }

    /// The last lines of each control-plane process's log.
    pub fn logs(&self, lines: usize) -> String {
        [
            Some(&self.etcd),
            Some(&self.api_server),
            self.controller_manager.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(|process| format!("--- {} ---\n{}\n", process.name, process.log_tail(lines)))
        .collect()
    }

    /// Whether every process still runs (`Err` names the one that stopped).
    pub fn check_running(&mut self) -> Result<(), ControlPlaneError> {
        for process in [
            Some(&mut self.etcd),
            Some(&mut self.api_server),
            self.controller_manager.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            if let Some(status) = process.exited() {
                return Err(ControlPlaneError::NotReady {
                    name: process.name,
                    reason: format!("exited ({status})"),
                    log: process.log_tail(40),
                });
            }
        }
        Ok(())
    }
}

/// A kube client from a kubeconfig file.
pub async fn client_from_kubeconfig(path: &Path) -> Result<kube::Client, ControlPlaneError> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path)
        .map_err(|error| ControlPlaneError::Client(error.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .map_err(|error| ControlPlaneError::Client(error.to_string()))?;
    kube::Client::try_from(config).map_err(|error| ControlPlaneError::Client(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfigs_name_the_server_the_ca_and_the_credentials() {
        let text = kubeconfig_text(
            "https://127.0.0.1:6443",
            Path::new("/tmp/ca.crt"),
            "operator",
            &Credentials::Token("abc".to_string()),
        );
        let value: serde_yaml::Value = serde_yaml::from_str(&text).expect("YAML");
        assert_eq!(
            value["clusters"][0]["cluster"]["server"].as_str(),
            Some("https://127.0.0.1:6443")
        );
        assert_eq!(value["users"][0]["user"]["token"].as_str(), Some("abc"));
        assert_eq!(value["current-context"].as_str(), Some("operator"));
    }
}
