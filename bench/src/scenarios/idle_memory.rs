//! Memory per idle connection: the growth of the server's resident set size (`VmRSS`) while
//! it holds many connections that each completed CONNECT and a PING/PONG and then stay silent,
//! divided by the number of connections.
//!
//! The connection count is capped by this process's open-files limit (each connection is one
//! descriptor here and one in the server, which inherits the same limit); when the cap bites,
//! the result says how many connections were measured.

use std::time::{Duration, Instant};

use super::ScenarioError;
use crate::client::{Connection, HANDSHAKE_BUFFER_CAPACITY};
use crate::server_process::ServerProcess;
use crate::stream::Stream;
use crate::system;

/// Descriptors kept free for the benchmark's own files, sockets and pipes.
const RESERVED_DESCRIPTORS: u64 = 64;
/// Time to open every connection, whatever their number.
const CONNECT_ALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Time for one connection's handshake.
const CONNECT_ONE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy)]
pub struct IdleMemoryPlan {
    pub connections: usize,
    /// Pause before each RSS sample so the server's allocations settle.
    pub settle: Duration,
}

#[derive(Debug, Clone, Copy)]
pub struct IdleMemoryResult {
    pub connections: usize,
    pub bytes_per_connection: f64,
}

/// How many idle connections the open-files limit allows, up to `wanted`.
pub fn connection_budget(wanted: usize) -> Result<usize, ScenarioError> {
    let limit = system::open_files_limit()?;
    let open = system::open_file_count()?;
    let available = limit
        .soft
        .saturating_sub(open)
        .saturating_sub(RESERVED_DESCRIPTORS);
    Ok(wanted.min(usize::try_from(available).unwrap_or(usize::MAX)))
}

pub fn run(
    server: &ServerProcess,
    plan: IdleMemoryPlan,
) -> Result<IdleMemoryResult, ScenarioError> {
    let connections = connection_budget(plan.connections)?;
    if connections == 0 {
        return Err(ScenarioError::NoDescriptors);
    }
    std::thread::sleep(plan.settle);
    let baseline = system::resident_bytes(server.pid())?;
    let all_deadline = Instant::now() + CONNECT_ALL_TIMEOUT;
    let mut streams: Vec<Stream> = Vec::with_capacity(connections);
    for _ in 0..connections {
        let deadline = all_deadline.min(Instant::now() + CONNECT_ONE_TIMEOUT);
        let connection = Connection::connect(
            server.client_address(),
            "idle",
            HANDSHAKE_BUFFER_CAPACITY,
            deadline,
        )?;
        streams.push(connection.into_stream());
    }
    std::thread::sleep(plan.settle);
    server.check_running("while holding idle connections")?;
    let loaded = system::resident_bytes(server.pid())?;
    let growth = loaded as f64 - baseline as f64;
    drop(streams);
    Ok(IdleMemoryResult {
        connections,
        bytes_per_connection: growth / connections as f64,
    })
}
