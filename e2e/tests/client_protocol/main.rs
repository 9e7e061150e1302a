//! Raw client-protocol black-box tests: exact bytes over TCP, each run against every selected
//! server kind (`TERN_E2E_SERVERS`). Where the protocol text leaves room, nats-server 2.9.10's
//! behaviour is the expected one. One test binary, one file per behaviour.

#![allow(clippy::unwrap_used)]

mod auth;
mod errors;
mod handshake;
mod headers;
mod liveness;
mod messaging;
mod subscriptions;
mod support;
