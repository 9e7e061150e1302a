//! Authentication methods and per-user permissions, black-box over real sockets and run against
//! every selected server kind (`TERN_E2E_SERVERS`): bcrypt passwords, NKEY users, publish and
//! subscribe allow/deny lists, queue permissions, `default_permissions`, `allow_responses`,
//! reserved subjects, and the known ways around them. nats-server 2.9.10's bytes are the
//! expected ones. One test binary, one file per behaviour.

#![allow(clippy::unwrap_used)]

mod bypasses;
mod default_permissions;
mod imports;
mod limits;
mod nkey_users;
mod passwords;
mod publish_permissions;
mod reserved_subjects;
mod responses;
mod subscribe_permissions;
mod support;
