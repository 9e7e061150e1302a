//! Pod networking for the kubelet stand-in: how pods are reached and named.
//!
//! - [`AddressPool`]: pod addresses `10.<a>.<b>.<n>` of one `/24`; `.1` is the node (the bridge),
//!   pods get the lowest free address from `.2` upward, and a released address is reused.
//! - [`create_bridge`] / [`delete_bridge`]: one Linux bridge in the root network namespace with
//!   the node address, so the test process reaches every pod by its IP. An existing bridge of
//!   the same name is an error, never adopted: it belongs to another agent or to a crashed run.
//! - [`create_sandbox`] / [`delete_sandbox`]: a pod's network namespace, a veth pair with the pod
//!   end renamed `eth0` inside it (address, `lo` up, default route via the node) and the host end
//!   on the bridge. Deleting the namespace deletes the pair.
//! - [`render_hosts`] / [`write_in_place`]: the hosts file every pod sees as `/etc/hosts`. It is
//!   bind-mounted into running pods, so it is rewritten in place (same inode), never replaced.
//! - [`http_get_status`] / [`tcp_connect`]: the wire of `httpGet` and `tcpSocket` probes and
//!   hooks, each bounded by its timeout.
//!
//! Every `ip` invocation goes through one function that names the failed command and its stderr
//! in the error. These functions are synchronous (they run `ip` and wait, bounded); async callers
//! run them on a blocking thread. All of them need root (`CAP_NET_ADMIN`, `CAP_SYS_ADMIN`).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long one `ip` invocation may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a running `ip` invocation is checked for completion.
const COMMAND_POLL: Duration = Duration::from_millis(5);
/// The most stderr kept in an error.
const STDERR_LIMIT: usize = 2048;
/// Host part of the node's (bridge's) address.
const GATEWAY_HOST: u8 = 1;
/// Host parts handed to pods.
const FIRST_POD_HOST: u8 = 2;
const LAST_POD_HOST: u8 = 254;
/// The most response bytes read to find an HTTP status line.
const STATUS_LINE_LIMIT: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("`{command}` failed ({status}): {stderr}")]
    CommandFailed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("`{command}` could not be run: {source}")]
    CommandNotRun {
        command: String,
        source: std::io::Error,
    },
    #[error("`{command}` did not finish within {timeout:?}")]
    CommandTimedOut { command: String, timeout: Duration },
    #[error(
        "bridge {bridge} already exists: another node agent uses network prefix {prefix}, or a \
         crashed run left it (remove it with `ip link del {bridge}`)"
    )]
    BridgeExists { bridge: String, prefix: String },
    #[error("{what} {address}: {source}")]
    Connect {
        what: &'static str,
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("{what} {address}: no answer within {timeout:?}")]
    ConnectTimedOut {
        what: &'static str,
        address: SocketAddr,
        timeout: Duration,
    },
    #[error("GET {path} from {address}: {reason}")]
    InvalidResponse {
        address: SocketAddr,
        path: String,
        reason: String,
    },
}

/// Pod addresses of one `/24`: `10.<a>.<b>.0/24`, the node at `.1`.
#[derive(Debug, Clone)]
pub struct AddressPool {
    prefix: [u8; 2],
    in_use: BTreeSet<u8>,
}

impl AddressPool {
    pub fn new(prefix: [u8; 2]) -> Self {
        Self {
            prefix,
            in_use: BTreeSet::new(),
        }
    }

    /// The node's address (the bridge's, the pods' default route).
    pub fn gateway(&self) -> Ipv4Addr {
        self.address(GATEWAY_HOST)
    }

    /// `10.<a>.<b>.0/24`.
    pub fn network(&self) -> String {
        format!("{}/24", self.address(0))
    }

    /// The lowest free pod address, or `None` when all are taken.
    pub fn allocate(&mut self) -> Option<Ipv4Addr> {
        let host = (FIRST_POD_HOST..=LAST_POD_HOST).find(|host| !self.in_use.contains(host))?;
        self.in_use.insert(host);
        Some(self.address(host))
    }

    /// Makes `address` available again; addresses of other networks are ignored.
    pub fn release(&mut self, address: Ipv4Addr) {
        let [ten, first, second, host] = address.octets();
        if ten == 10 && [first, second] == self.prefix {
            self.in_use.remove(&host);
        }
    }

    fn address(&self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, self.prefix[0], self.prefix[1], host)
    }
}

/// The bridge of the node with network prefix `prefix` (at most 15 characters, as Linux needs).
pub fn bridge_name(prefix: [u8; 2]) -> String {
    format!("ternbr{}-{}", prefix[0], prefix[1])
}

/// The network namespace of the pod with UID `pod_uid`: `tern-<8 hex digits of its hash>`.
pub fn namespace_name(pod_uid: &str) -> String {
    format!("tern-{}", short_hash(pod_uid))
}

/// Creates the bridge with the node address `gateway`/24 and brings it up.
pub fn create_bridge(bridge: &str, gateway: Ipv4Addr) -> Result<(), NetworkError> {
    if run_ip(&["link", "show", "dev", bridge]).is_ok() {
        let [_, first, second, _] = gateway.octets();
        return Err(NetworkError::BridgeExists {
            bridge: bridge.to_string(),
            prefix: format!("{first}.{second}"),
        });
    }
    run_ip(&["link", "add", "name", bridge, "type", "bridge"])?;
    let configured = run_ip(&["addr", "add", &format!("{gateway}/24"), "dev", bridge])
        .and_then(|()| run_ip(&["link", "set", "dev", bridge, "up"]));
    if let Err(error) = configured {
        let _ = delete_bridge(bridge);
        return Err(error);
    }
    Ok(())
}

/// Deletes the bridge (its routes go with it).
pub fn delete_bridge(bridge: &str) -> Result<(), NetworkError> {
    run_ip(&["link", "del", "dev", bridge])
}

/// Creates network namespace `namespace` for a pod with `address`/24, wired to `bridge`, with
/// `lo` up and a default route via `gateway`. On failure nothing of it is left behind.
pub fn create_sandbox(
    namespace: &str,
    bridge: &str,
    address: Ipv4Addr,
    gateway: Ipv4Addr,
) -> Result<(), NetworkError> {
    let hash = namespace.trim_start_matches("tern-");
    let host_end = format!("vth{hash}");
    let pod_end = format!("vtp{hash}");
    run_ip(&["netns", "add", namespace])?;
    let wired = wire_sandbox(namespace, bridge, address, gateway, &host_end, &pod_end);
    if let Err(error) = wired {
        let _ = run_ip(&["link", "del", "dev", &host_end]);
        let _ = delete_sandbox(namespace);
        return Err(error);
    }
    Ok(())
}

fn wire_sandbox(
    namespace: &str,
    bridge: &str,
    address: Ipv4Addr,
    gateway: Ipv4Addr,
    host_end: &str,
    pod_end: &str,
) -> Result<(), NetworkError> {
    run_ip(&[
        "link", "add", "name", host_end, "type", "veth", "peer", "name", pod_end,
    ])?;
    run_ip(&["link", "set", "dev", pod_end, "netns", namespace])?;
    run_ip(&[
        "-n", namespace, "link", "set", "dev", pod_end, "name", "eth0",
    ])?;
    run_ip(&[
        "-n",
        namespace,
        "addr",
        "add",
        &format!("{address}/24"),
        "dev",
        "eth0",
    ])?;
    run_ip(&["-n", namespace, "link", "set", "dev", "eth0", "up"])?;
    run_ip(&["-n", namespace, "link", "set", "dev", "lo", "up"])?;
    run_ip(&[
        "-n",
        namespace,
        "route",
        "add",
        "default",
        "via",
        &gateway.to_string(),
    ])?;
    run_ip(&["link", "set", "dev", host_end, "master", bridge])?;
    run_ip(&["link", "set", "dev", host_end, "up"])
}

/// Deletes a pod's network namespace; its veth pair goes with it.
pub fn delete_sandbox(namespace: &str) -> Result<(), NetworkError> {
    run_ip(&["netns", "del", namespace])
}

/// Runs `ip <arguments>`, bounded by [`COMMAND_TIMEOUT`].
fn run_ip(arguments: &[&str]) -> Result<(), NetworkError> {
    run_command("ip", arguments)
}

/// Runs `program` to completion within [`COMMAND_TIMEOUT`]; an error names the command line,
/// its exit status and its stderr.
pub fn run_command(program: &str, arguments: &[&str]) -> Result<(), NetworkError> {
    let command_line = std::iter::once(program)
        .chain(arguments.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new(program)
        .args(arguments)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| NetworkError::CommandNotRun {
            command: command_line.clone(),
            source,
        })?;
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(COMMAND_POLL),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(NetworkError::CommandTimedOut {
                    command: command_line,
                    timeout: COMMAND_TIMEOUT,
                });
            }
            Err(source) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(NetworkError::CommandNotRun {
                    command: command_line,
                    source,
                });
            }
        }
    };
    if status.success() {
        return Ok(());
    }
    let mut stderr = Vec::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe
            .by_ref()
            .take(STDERR_LIMIT as u64)
            .read_to_end(&mut stderr);
    }
    Err(NetworkError::CommandFailed {
        command: command_line,
        status: status.to_string(),
        stderr: String::from_utf8_lossy(&stderr).trim().to_string(),
    })
}

/// One line of a hosts file: an address and its names, the canonical name first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEntry {
    pub address: Ipv4Addr,
    pub names: Vec<String>,
}

/// The hosts file text: `localhost` first, then one line per entry, in the order given.
pub fn render_hosts(entries: &[HostEntry]) -> String {
    let mut text = String::from("127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n");
    for entry in entries.iter().filter(|entry| !entry.names.is_empty()) {
        let _ = writeln!(text, "{} {}", entry.address, entry.names.join(" "));
    }
    text
}

/// Replaces the content of the file at `path` without replacing the file: the new bytes are
/// written over the old ones and the rest is cut off, so a bind mount of it sees the change.
pub fn write_in_place(path: &Path, content: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(content.as_bytes())?;
    file.set_len(content.len() as u64)?;
    file.flush()
}

/// `GET <path>` from `address` over HTTP/1.1; the response's status code. The whole exchange is
/// bounded by `timeout`; only the status line is read.
pub async fn http_get_status(
    address: SocketAddr,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> Result<u16, NetworkError> {
    let exchange = async {
        let mut stream =
            TcpStream::connect(address)
                .await
                .map_err(|source| NetworkError::Connect {
                    what: "connecting to",
                    address,
                    source,
                })?;
        let mut request = format!("GET {path} HTTP/1.1\r\n");
        let has_host = headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("host"));
        if !has_host {
            let _ = write!(request, "Host: {address}\r\n");
        }
        for (name, value) in headers {
            let _ = write!(request, "{name}: {value}\r\n");
        }
        request.push_str("User-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|source| NetworkError::Connect {
                what: "sending a request to",
                address,
                source,
            })?;
        let mut received = Vec::new();
        let mut chunk = [0_u8; 1024];
        loop {
            if let Some(status) = parse_status_line(&received) {
                return Ok(status);
            }
            if received.len() > STATUS_LINE_LIMIT || received.contains(&b'\n') {
                break;
            }
            let read = stream
                .read(&mut chunk)
                .await
                .map_err(|source| NetworkError::Connect {
                    what: "reading the response of",
                    address,
                    source,
                })?;
            if read == 0 {
                break;
            }
            received.extend_from_slice(&chunk[..read]);
        }
        Err(NetworkError::InvalidResponse {
            address,
            path: path.to_string(),
            reason: format!(
                "no HTTP status line in {:?}",
                String::from_utf8_lossy(&received[..received.len().min(200)])
            ),
        })
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or(Err(NetworkError::ConnectTimedOut {
            what: "GET from",
            address,
            timeout,
        }))
}

/// A TCP connection to `address` can be opened within `timeout`.
pub async fn tcp_connect(address: SocketAddr, timeout: Duration) -> Result<(), NetworkError> {
    match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
        Ok(Ok(_stream)) => Ok(()),
        Ok(Err(source)) => Err(NetworkError::Connect {
            what: "connecting to",
            address,
            source,
        }),
        Err(_) => Err(NetworkError::ConnectTimedOut {
            what: "connecting to",
            address,
            timeout,
        }),
    }
}

/// The status code of a complete `HTTP/1.x NNN ...\r\n` line at the start of `received`.
fn parse_status_line(received: &[u8]) -> Option<u16> {
    let end = received.windows(2).position(|pair| pair == b"\r\n")?;
    let line = std::str::from_utf8(&received[..end]).ok()?;
    let mut parts = line.split(' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

/// 32 bits of FNV-1a, as 8 hex digits: short, stable names for interfaces and namespaces.
fn short_hash(text: &str) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in text.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("{hash:08x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_start_at_two_and_are_reused_after_release() {
        let mut pool = AddressPool::new([250, 7]);
        assert_eq!(pool.gateway(), Ipv4Addr::new(10, 250, 7, 1));
        assert_eq!(pool.network(), "10.250.7.0/24");
        let first = pool.allocate();
        let second = pool.allocate();
        let third = pool.allocate();
        assert_eq!(first, Some(Ipv4Addr::new(10, 250, 7, 2)));
        assert_eq!(second, Some(Ipv4Addr::new(10, 250, 7, 3)));
        assert_eq!(third, Some(Ipv4Addr::new(10, 250, 7, 4)));
        pool.release(Ipv4Addr::new(10, 250, 7, 3));
        assert_eq!(pool.allocate(), Some(Ipv4Addr::new(10, 250, 7, 3)));
        assert_eq!(pool.allocate(), Some(Ipv4Addr::new(10, 250, 7, 5)));
    }

    #[test]
    fn the_pool_runs_out_after_253_pods_and_ignores_foreign_addresses() {
        let mut pool = AddressPool::new([1, 2]);
        let allocated: Vec<_> = std::iter::from_fn(|| pool.allocate()).take(300).collect();
        assert_eq!(allocated.len(), 253);
        assert_eq!(allocated.last(), Some(&Ipv4Addr::new(10, 1, 2, 254)));
        pool.release(Ipv4Addr::new(10, 9, 9, 9));
        assert_eq!(pool.allocate(), None);
        pool.release(Ipv4Addr::new(10, 1, 2, 77));
        assert_eq!(pool.allocate(), Some(Ipv4Addr::new(10, 1, 2, 77)));
    }

    #[test]
    fn interface_and_namespace_names_fit_linux_limits() {
        assert_eq!(bridge_name([250, 255]), "ternbr250-255");
        assert!(bridge_name([255, 255]).len() <= 15);
        let namespace = namespace_name("5f0c7d7e-3b7a-4c1e-9f3e-0a1b2c3d4e5f");
        assert_eq!(namespace.len(), "tern-".len() + 8);
        assert_eq!(
            namespace,
            namespace_name("5f0c7d7e-3b7a-4c1e-9f3e-0a1b2c3d4e5f")
        );
        assert_ne!(namespace, namespace_name("another-uid"));
        assert!(format!("vth{}", short_hash("x")).len() <= 15);
    }

    #[test]
    fn hosts_file_lists_localhost_then_entries_in_order() {
        let text = render_hosts(&[
            HostEntry {
                address: Ipv4Addr::new(10, 250, 7, 2),
                names: vec!["a.b.c".to_string(), "a".to_string()],
            },
            HostEntry {
                address: Ipv4Addr::new(10, 250, 7, 3),
                names: Vec::new(),
            },
        ]);
        assert_eq!(
            text,
            "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n10.250.7.2 a.b.c a\n"
        );
    }

    #[test]
    fn writing_in_place_keeps_the_inode_and_drops_the_old_tail() {
        use std::os::unix::fs::MetadataExt;
        let directory = tempfile::tempdir().expect("a temporary directory");
        let path = directory.path().join("hosts");
        write_in_place(&path, "a long first version\n").expect("first write");
        let inode = std::fs::metadata(&path).expect("metadata").ino();
        write_in_place(&path, "short\n").expect("second write");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "short\n");
        assert_eq!(std::fs::metadata(&path).expect("metadata").ino(), inode);
    }

    #[test]
    fn status_lines_are_parsed_only_when_complete() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(
            parse_status_line(b"HTTP/1.0 503 Service Unavailable\r\nx: y\r\n"),
            Some(503)
        );
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK"), None);
        assert_eq!(parse_status_line(b"SSH-2.0-x\r\n"), None);
        assert_eq!(parse_status_line(b"HTTP/1.1 20 OK\r\n"), None);
    }

    #[tokio::test]
    async fn http_probe_reads_the_status_of_a_local_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.expect("accept");
            let mut request = vec![0_u8; 1024];
            let read = stream.read(&mut request).await.expect("read");
            stream
                .write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
                .await
                .expect("write");
            String::from_utf8_lossy(&request[..read]).to_string()
        });
        let status = http_get_status(
            address,
            "/healthz?js-enabled-only=true",
            &[("X-Probe".to_string(), "1".to_string())],
            Duration::from_secs(5),
        )
        .await
        .expect("a status");
        assert_eq!(status, 503);
        let request = server.await.expect("server task");
        assert!(request.starts_with("GET /healthz?js-enabled-only=true HTTP/1.1\r\n"));
        assert!(request.contains("X-Probe: 1\r\n"));
        assert!(tcp_connect(address, Duration::from_secs(1)).await.is_err());
    }
}
