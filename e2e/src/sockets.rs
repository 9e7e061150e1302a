//! Established TCP connections between server processes, seen and closed from outside with
//! `ss` (iproute2): how a test breaks a route without stopping either server.
//!
//! `ss -K` destroys a socket (the kernel aborts it, the peer gets a reset); it needs root (or
//! CAP_NET_ADMIN) and a kernel built with `CONFIG_INET_DIAG_DESTROY`. Closing is verified: a
//! socket still listed afterwards is an error that says so, never a silent no-op.

use std::net::SocketAddr;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::error::HarnessError;

/// How long closed sockets may stay listed.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// One established connection between two processes, seen from the first one's socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Connection {
    pub local: SocketAddr,
    pub peer: SocketAddr,
}

/// One line of `ss -Htnp state established`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Socket {
    local: SocketAddr,
    peer: SocketAddr,
    pids: Vec<u32>,
}

/// Every established TCP connection between the process `from` and the process `to`, from
/// `from`'s side.
pub fn connections_between(from: u32, to: u32) -> Result<Vec<Connection>, HarnessError> {
    let sockets = established_sockets()?;
    let mut connections: Vec<Connection> = sockets
        .iter()
        .filter(|socket| socket.pids.contains(&from))
        .filter(|socket| {
            sockets.iter().any(|other| {
                other.pids.contains(&to) && other.local == socket.peer && other.peer == socket.local
            })
        })
        .map(|socket| Connection {
            local: socket.local,
            peer: socket.peer,
        })
        .collect();
    connections.sort();
    Ok(connections)
}

/// Destroys both ends of each connection and waits until none is listed any more.
pub fn close(connections: &[Connection]) -> Result<(), HarnessError> {
    for connection in connections {
        let filter = format!(
            "( sport = :{local} and dport = :{peer} ) or ( sport = :{peer} and dport = :{local} )",
            local = connection.local.port(),
            peer = connection.peer.port(),
        );
        let output = Command::new("ss")
            .args(["-K", "-Htn", "state", "established"])
            .arg(&filter)
            .output()
            .map_err(|error| HarnessError::io("running ss -K (iproute2)", error))?;
        if !output.status.success() {
            return Err(HarnessError::io(
                "closing a connection with ss -K",
                std::io::Error::other(String::from_utf8_lossy(&output.stderr).into_owned()),
            ));
        }
    }
    let deadline = Instant::now() + CLOSE_TIMEOUT;
    loop {
        let sockets = established_sockets()?;
        let remaining: Vec<&Connection> = connections
            .iter()
            .filter(|connection| {
                sockets.iter().any(|socket| {
                    (socket.local == connection.local && socket.peer == connection.peer)
                        || (socket.local == connection.peer && socket.peer == connection.local)
                })
            })
            .collect();
        if remaining.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(HarnessError::io(
                "closing connections with ss -K",
                std::io::Error::other(format!(
                    "{remaining:?} are still established after {CLOSE_TIMEOUT:?}; ss -K needs root \
                     (CAP_NET_ADMIN) and a kernel with CONFIG_INET_DIAG_DESTROY"
                )),
            ));
        }
        thread::sleep(POLL_INTERVAL);
    }
}

fn established_sockets() -> Result<Vec<Socket>, HarnessError> {
    let output = Command::new("ss")
        .args(["-Htnp", "state", "established"])
        .output()
        .map_err(|error| HarnessError::io("running ss (iproute2)", error))?;
    if !output.status.success() {
        return Err(HarnessError::io(
            "listing connections with ss",
            std::io::Error::other(String::from_utf8_lossy(&output.stderr).into_owned()),
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(parse_socket)
        .collect())
}

/// `0 0 127.0.0.1:4222 127.0.0.1:50000 users:(("tern",pid=12,fd=9))`; lines without process
/// information or with addresses that are not IP literals are skipped.
fn parse_socket(line: &str) -> Option<Socket> {
    let mut fields = line.split_whitespace();
    let _receive_queue = fields.next()?;
    let _send_queue = fields.next()?;
    let local = fields.next()?.parse().ok()?;
    let peer = fields.next()?.parse().ok()?;
    let users = fields.collect::<Vec<_>>().join(" ");
    let pids = users
        .split("pid=")
        .skip(1)
        .filter_map(|rest| {
            rest.split(|character: char| !character.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .collect::<Vec<u32>>();
    (!pids.is_empty()).then_some(Socket { local, peer, pids })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ss_lines_give_addresses_and_owning_processes() {
        let socket = parse_socket(
            r#"305    0      127.0.0.1:58918 127.0.0.1:43507 users:(("ss",pid=31728,fd=3),("bash",pid=31571,fd=3))"#,
        )
        .expect("a socket line");
        assert_eq!(socket.local, "127.0.0.1:58918".parse().expect("address"));
        assert_eq!(socket.peer, "127.0.0.1:43507".parse().expect("address"));
        assert_eq!(socket.pids, [31728, 31571]);
        assert_eq!(parse_socket("0 0 127.0.0.1:1 127.0.0.1:2"), None);
    }
}
