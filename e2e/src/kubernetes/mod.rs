//! A Kubernetes control plane of its own for the operator's end-to-end tests.
//!
//! - [`ControlPlane`]: etcd, kube-apiserver and kube-controller-manager (built from their Go
//!   modules by `e2e/setup/kube-control-plane.sh`) on loopback, with certificates, service
//!   account keys and an admin kubeconfig made at run time.
//! - [`node::NodeAgent`]: stands in for a kubelet on one node: it runs each Pod the real
//!   StatefulSet controller creates as a `tern` process in a network namespace of its own.
//! - [`OperatorProcess`]: `tern-operator run` with the chart's ServiceAccount identity.

pub mod control_plane;
pub mod network;
pub mod node;
pub mod operator;

pub use control_plane::{ControlPlane, ControlPlaneError};
pub use operator::OperatorProcess;
