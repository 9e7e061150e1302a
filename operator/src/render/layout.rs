//! Where things live inside a broker pod: mount paths, volume names, environment variables.
//! The config and the StatefulSet are rendered from these same names, so they always agree.

use crate::validate::ServerSet;

pub const CONFIG_DIRECTORY: &str = "/etc/tern/config";
pub const RUN_DIRECTORY: &str = "/var/run/tern";
pub const PID_FILE: &str = "/var/run/tern/tern.pid";
pub const AUTH_DIRECTORY: &str = "/etc/tern/auth";
pub const TLS_DIRECTORY: &str = "/etc/tern/tls";
pub const REMOTES_DIRECTORY: &str = "/etc/tern/remotes";
pub const DATA_DIRECTORY: &str = "/data";
pub const STORE_DIRECTORY: &str = "/data/jetstream";

pub const CONFIG_VOLUME: &str = "config";
pub const RUN_VOLUME: &str = "run";
pub const AUTH_VOLUME: &str = "auth";
/// Also the name of the volume claim template: frozen, since StatefulSets can not rename it.
pub const JETSTREAM_VOLUME: &str = "jetstream";

/// The pod's own name, from the downward API; names the config file the server reads.
pub const POD_NAME_VARIABLE: &str = "TERN_POD_NAME";

/// The broker container's name.
pub const CONTAINER_NAME: &str = "tern";
/// The broker binary inside the image.
pub const BROKER_COMMAND: &str = "tern";

/// Container port names (at most 15 characters, as Kubernetes requires).
pub const CLIENT_PORT_NAME: &str = "client";
pub const ROUTE_PORT_NAME: &str = "cluster";
pub const MONITOR_PORT_NAME: &str = "monitor";
pub const GATEWAY_PORT_NAME: &str = "gateway";
pub const LEAFNODE_PORT_NAME: &str = "leafnodes";
pub const WEBSOCKET_PORT_NAME: &str = "websocket";

/// The listeners that can use TLS; each has its own Secret volumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsListener {
    Client,
    Routes,
    Gateway,
    Leafnodes,
    Websocket,
}

impl TlsListener {
    pub fn name(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Routes => "routes",
            Self::Gateway => "gateway",
            Self::Leafnodes => "leafnodes",
            Self::Websocket => "websocket",
        }
    }

    pub fn certificate_volume(self) -> String {
        format!("tls-{}", self.name())
    }

    pub fn ca_volume(self) -> String {
        format!("tls-{}-ca", self.name())
    }

    pub fn certificate_directory(self) -> String {
        format!("{TLS_DIRECTORY}/{}", self.name())
    }

    pub fn ca_directory(self) -> String {
        format!("{TLS_DIRECTORY}/{}-ca", self.name())
    }
}

/// The parts of a leaf node remote mounted from Secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemotePart {
    Credentials,
    Ca,
    Certificate,
}

impl RemotePart {
    fn name(self) -> &'static str {
        match self {
            Self::Credentials => "credentials",
            Self::Ca => "ca",
            Self::Certificate => "certificate",
        }
    }

    pub fn volume(self, remote: &str) -> String {
        format!("remote-{remote}-{}", self.name())
    }

    pub fn directory(self, remote: &str) -> String {
        format!("{REMOTES_DIRECTORY}/{remote}/{}", self.name())
    }
}

/// Credentials from `kubernetes.io/basic-auth` Secrets, passed as environment variables and
/// read by the config as `$VARIABLE`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credentials {
    Routes,
    Gateway,
    Leafnodes,
}

impl Credentials {
    pub fn username_variable(self) -> &'static str {
        match self {
            Self::Routes => "TERN_ROUTE_USERNAME",
            Self::Gateway => "TERN_GATEWAY_USERNAME",
            Self::Leafnodes => "TERN_LEAFNODE_USERNAME",
        }
    }

    pub fn password_variable(self) -> &'static str {
        match self {
            Self::Routes => "TERN_ROUTE_PASSWORD",
            Self::Gateway => "TERN_GATEWAY_PASSWORD",
            Self::Leafnodes => "TERN_LEAFNODE_PASSWORD",
        }
    }
}

/// The config file of one server.
pub fn config_file_name(set: &ServerSet, ordinal: u16) -> String {
    format!("{}.conf", set.pod_name(ordinal))
}

/// Service fronting one server's exposed listener.
pub fn per_server_service_name(set: &ServerSet, ordinal: u16, port_name: &str) -> String {
    format!("{}-{port_name}", set.pod_name(ordinal))
}

/// Service fronting every server's exposed listener.
pub fn shared_service_name(set: &ServerSet, port_name: &str) -> String {
    format!("{}-{port_name}", set.name)
}

/// Path of a mounted file as the config refers to it: relative to the config directory,
/// since nats-server resolves `include` paths against the including file.
pub fn include_path(directory: &str, file: &str) -> String {
    let relative = directory.trim_start_matches("/etc/tern/");
    format!("../{relative}/{file}")
}
