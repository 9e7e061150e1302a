//! Black-box test harness for Tern: starts Tern and nats-server processes and drives them over
//! real sockets on 127.0.0.1.
//!
//! - [`ServerKind`] and [`selected_server_kinds`]: which implementations a run covers
//!   (`TERN_E2E_SERVERS`, default `tern,nats-server`; `nats-server-current` is the 2.12 release)
//!   and where their binaries are.
//! - [`ServerProcess`]: one server from [`ServerConfig`] text in its own temp dir, its ports
//!   learnt from the ports file, its log kept for failure messages; restartable on the same
//!   port, signalable, killed on drop. Topologies (clusters, gateways, leaf nodes) are built
//!   from several of these, of mixed kinds.
//! - [`MemberSetup`]: clusters whose members share settings (route authorization, TLS,
//!   `no_advertise`, a dynamic name) and servers configured like them that are not members.
//! - [`RawClient`]: exact-byte protocol conversations with deadlines.
//! - [`for_each_server_kind`] / [`for_each_server_kind_async`]: run a test body against
//!   every selected kind and report which one failed.
//! - [`wait_until`]: poll a condition with a deadline instead of sleeping.
//! - [`run_to_exit`]: run a server binary that should exit by itself (`-v`, `-t`, `--signal`).
//! - [`http_get`]: one HTTP/1.1 GET, for the monitoring endpoints.
//! - [`TestCertificates`]: a CA, server and client certificates made at run time, for TLS.
//!
//! Nothing here sleeps to synchronise: every wait polls with a deadline, every loop is bounded.

mod certificates;
mod cluster;
mod cluster_block;
mod command;
mod each_kind;
mod error;
mod http;
mod kind;
pub mod kubernetes;
mod member_setup;
mod process;
mod raw_client;
mod routez;
mod sockets;
mod topology;
mod wait;

pub use certificates::{CertificateError, TestCertificates};
pub use cluster::{Cluster, RouteLayout, CLUSTER_NAME, MESH_TIMEOUT};
pub use cluster_block::ClusterBlock;
pub use command::{run_to_exit, CommandOutcome, COMMAND_TIMEOUT};
pub use each_kind::{for_each_server_kind, for_each_server_kind_async, for_each_server_kind_of};
pub use error::{escaped, HarnessError};
pub use http::{http_get, HttpResponse, HTTP_TIMEOUT};
pub use kind::{
    explicitly_selected_server_kinds, selected_server_kinds, ServerKind,
    NATS_SERVER_BINARY_VARIABLE, NATS_SERVER_CURRENT_BINARY_VARIABLE, SERVERS_VARIABLE,
    TERN_BINARY_VARIABLE,
};
pub use member_setup::MemberSetup;
pub use process::{Ports, ServerConfig, ServerProcess, Signal, START_TIMEOUT, STOP_TIMEOUT};
pub use raw_client::{
    Frame, Message, RawClient, DEFAULT_TIMEOUT, QUIET_CONNECT, QUIET_CONNECT_WITH_HEADERS,
    SILENCE_WINDOW,
};
pub use routez::{RouteConnection, RouteTotals, Routez};
pub use sockets::Connection;
pub use topology::{for_each_topology, selected_topologies, Topology, TOPOLOGIES_VARIABLE};
pub use wait::wait_until;
