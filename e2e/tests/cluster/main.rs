//! Route (cluster) black-box tests: three-server clusters of Tern, nats-server 2.9 and the
//! current nats-server release, in the mixes of [`tern_e2e::Topology::ALL`]
//! (`TERN_E2E_TOPOLOGIES` selects some; a topology with a kind `TERN_E2E_SERVERS` does not
//! select is skipped with a note). Every server is a real process on 127.0.0.1 with ports from
//! the OS; clients are async-nats and the raw-protocol client. Waits poll with deadlines.
//! One test binary, one file per behaviour.

#![allow(clippy::unwrap_used)]

mod authorization;
mod delivery;
mod discovery;
mod failover;
mod imports;
mod interest;
mod lame_duck;
mod messaging;
mod metrics;
mod names;
mod no_advertise;
mod partition;
mod pooling;
mod refusal;
mod support;
mod tls;
mod websocket_urls;
