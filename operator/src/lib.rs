//! The Tern operator: custom resources for NATS clusters, super-clusters and leaf nodes
//! ([`crd`]), their validation into one model of a set of servers ([`validate`]), and the pure
//! rendering of that model into broker configs and Kubernetes objects ([`render`]).
//! [`manifest`] ties them together for files given to `tern-operator render`; [`controller`]
//! runs them against a Kubernetes API server (`tern-operator run`).

pub mod controller;
pub mod crd;
pub mod manifest;
pub mod render;
pub mod validate;
