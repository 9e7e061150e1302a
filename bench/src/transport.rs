//! Client transports of the scenarios (plain TCP, TLS, WebSocket) and what they need: the
//! certificates and config files written once at benchmark start, and the client settings.
//!
//! [`TransportFiles::generate`] makes, with rcgen, a throwaway certificate authority and a
//! server certificate for `localhost` and `127.0.0.1` signed by it (ECDSA P-256), and writes
//! into one temp dir (removed at exit, and on an interrupt):
//! - `ca.pem`, `server-cert.pem`, `server-key.pem`;
//! - `tls.conf`: `tls { cert_file, key_file }`, so the client port requires TLS;
//! - `websocket.conf`: `websocket { host: 127.0.0.1, port: -1, no_tls: true }`.
//!
//! Both kinds of server get the same file with `-c` (nats-server's syntax, which Tern reads
//! too). The TLS client trusts only that authority and offers exactly TLS 1.3 with
//! `TLS13_AES_128_GCM_SHA256` (rustls, ring provider), so Tern and nats-server necessarily
//! negotiate the same protocol version and cipher suite.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use serde::Serialize;

use crate::client::{ClientTransport, Endpoint};
use crate::server_process::{self, ConfigFile, ServerProcess};

/// How the clients of a scenario reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    Tcp,
    Tls,
    #[serde(rename = "websocket")]
    WebSocket,
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("generating {what}: {source}")]
    Generate {
        what: &'static str,
        source: rcgen::Error,
    },
    #[error("writing {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("building the TLS client configuration: {0}")]
    ClientConfig(#[from] rustls::Error),
    #[error("the certificates and config files were not generated")]
    NotGenerated,
    #[error("{0} wrote no WebSocket port")]
    NoWebSocketPort(String),
}

/// The certificates and server config files of one benchmark invocation, and the TLS client
/// configuration that trusts them.
#[derive(Debug)]
pub struct TransportFiles {
    directory: tempfile::TempDir,
    tls_config: PathBuf,
    websocket_config: PathBuf,
    client_tls: Arc<rustls::ClientConfig>,
}

impl TransportFiles {
    /// Generates the certificates and writes them and both config files (see the module docs).
    pub fn generate() -> Result<Self, TransportError> {
        let directory = tempfile::Builder::new()
            .prefix("tern-bench-transport-")
            .tempdir()
            .map_err(|source| TransportError::Write {
                path: std::env::temp_dir(),
                source,
            })?;
        server_process::remove_on_interrupt(directory.path());
        let generate = |what| move |source| TransportError::Generate { what, source };

        let authority_key = KeyPair::generate().map_err(generate("the CA key"))?;
        let mut authority_params =
            CertificateParams::new(Vec::<String>::new()).map_err(generate("the CA"))?;
        authority_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        authority_params
            .distinguished_name
            .push(DnType::CommonName, "tern-bench CA");
        authority_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let authority = authority_params
            .self_signed(&authority_key)
            .map_err(generate("the CA"))?;

        let server_key = KeyPair::generate().map_err(generate("the server key"))?;
        let mut server_params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .map_err(generate("the server certificate"))?;
        server_params
            .distinguished_name
            .push(DnType::CommonName, "tern-bench server");
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server = server_params
            .signed_by(&server_key, &authority, &authority_key)
            .map_err(generate("the server certificate"))?;

        let write = |name: &str, content: &str| -> Result<PathBuf, TransportError> {
            let path = directory.path().join(name);
            std::fs::write(&path, content).map_err(|source| TransportError::Write {
                path: path.clone(),
                source,
            })?;
            Ok(path)
        };
        write("ca.pem", &authority.pem())?;
        let certificate = write("server-cert.pem", &server.pem())?;
        let key = write("server-key.pem", &server_key.serialize_pem())?;
        let tls_config = write("tls.conf", &tls_config_text(&certificate, &key))?;
        let websocket_config = write("websocket.conf", WEBSOCKET_CONFIG)?;

        let mut roots = rustls::RootCertStore::empty();
        roots.add(authority.der().clone())?;
        let mut provider = rustls::crypto::ring::default_provider();
        provider.cipher_suites = vec![rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256];
        let client_tls = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots)
            .with_no_client_auth();

        Ok(Self {
            directory,
            tls_config,
            websocket_config,
            client_tls: Arc::new(client_tls),
        })
    }

    /// Where the files are.
    pub fn directory(&self) -> &Path {
        self.directory.path()
    }

    /// The config file servers of a `transport` scenario get, if any.
    pub fn server_config(&self, transport: Transport) -> Option<ConfigFile<'_>> {
        match transport {
            Transport::Tcp => None,
            Transport::Tls => Some(ConfigFile {
                path: &self.tls_config,
                websocket: false,
            }),
            Transport::WebSocket => Some(ConfigFile {
                path: &self.websocket_config,
                websocket: true,
            }),
        }
    }
}

/// Where and how a client of a `transport` scenario connects to `server`; TLS and WebSocket
/// need the generated `files`.
pub fn endpoint(
    transport: Transport,
    server: &ServerProcess,
    files: Option<&TransportFiles>,
) -> Result<Endpoint, TransportError> {
    let address: SocketAddr = server.client_address();
    match transport {
        Transport::Tcp => Ok(Endpoint::tcp(address)),
        Transport::Tls => Ok(Endpoint {
            address,
            transport: ClientTransport::Tls(Arc::clone(
                &files.ok_or(TransportError::NotGenerated)?.client_tls,
            )),
        }),
        Transport::WebSocket => Ok(Endpoint {
            address: server
                .websocket_address()
                .ok_or_else(|| TransportError::NoWebSocketPort(server.label().to_owned()))?,
            transport: ClientTransport::WebSocket,
        }),
    }
}

/// The WebSocket listener: on 127.0.0.1, a port from the OS, without TLS.
const WEBSOCKET_CONFIG: &str = "\
# tern-bench: WebSocket clients, plain (no TLS), on a port from the OS.
websocket {
  host: \"127.0.0.1\"
  port: -1
  no_tls: true
}
";

/// TLS on the client port with the generated server certificate.
fn tls_config_text(certificate: &Path, key: &Path) -> String {
    format!(
        "# tern-bench: every client connection uses TLS (certificates generated for this run).\n\
         tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n}}\n",
        certificate.display(),
        key.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_written_and_configs_name_them() {
        let files = TransportFiles::generate().expect("certificates and configs");
        let tls = std::fs::read_to_string(&files.tls_config).expect("tls.conf");
        let certificate = files.directory().join("server-cert.pem");
        assert!(tls.contains(&format!("cert_file: \"{}\"", certificate.display())));
        assert!(std::fs::read_to_string(certificate)
            .expect("server certificate")
            .starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(files.server_config(Transport::Tcp).is_none());
        assert!(files
            .server_config(Transport::WebSocket)
            .is_some_and(|config| config.websocket));
        assert!(std::fs::read_to_string(&files.websocket_config)
            .expect("websocket.conf")
            .contains("no_tls: true"));
    }
}
