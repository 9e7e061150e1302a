//! Tern's broker: a NATS server in Rust.
//!
//! How a message flows: a client's socket is read in batches by its session (`client`), which
//! parses operations with the pure codec (`protocol`), finds matching subscriptions in its
//! account's subject index (`account`, `subject`) through a per-connection match cache, and
//! queues frames into each receiver's bounded outbound buffer (`dispatch`,
//! `connection::outbound`). Each receiver's writer task (`connection::writer`) is woken once
//! per batch and writes everything queued in one go. `server` owns listeners, accounts,
//! connections and the lifecycle; `config` turns a `.conf` file and the command line into
//! validated `options`; `monitoring` serves nats-server's HTTP endpoints and Prometheus metrics.

pub mod account;
pub mod auth;
pub mod client;
pub mod cluster;
pub mod compression;
pub mod config;
pub mod connection;
pub mod dispatch;
pub mod identity;
pub mod imports;
pub mod lifecycle;
pub mod limits;
pub mod logging;
pub mod monitoring;
pub mod options;
pub mod protocol;
pub mod server;
pub mod subject;
pub mod subscription;
pub mod transport;
