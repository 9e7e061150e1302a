//! Certificates made at test time (rcgen), TLS options and INFO values shared by the
//! transport tests.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tempfile::TempDir;

use crate::protocol::info::ServerInfo;

use super::options::TlsOptions;

/// A certificate authority and the key that signs with it.
struct Authority {
    certificate: Certificate,
    key: KeyPair,
}

impl Authority {
    fn new(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let certificate = params.self_signed(&key).unwrap();
        Self { certificate, key }
    }

    /// A leaf certificate and its key, as PEM.
    fn issue(&self, names: &[&str], purpose: ExtendedKeyUsagePurpose) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "tern test");
        params.extended_key_usages = vec![purpose];
        let certificate = params
            .signed_by(&key, &self.certificate, &self.key)
            .unwrap();
        (certificate.pem(), key.serialize_pem())
    }
}

/// A CA with a server certificate (localhost, 127.0.0.1) and a client certificate, plus a
/// client certificate from another CA that the server does not trust.
pub struct TestPki {
    pub directory: TempDir,
    pub ca_file: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub rogue_client_cert: PathBuf,
    pub rogue_client_key: PathBuf,
}

impl TestPki {
    pub fn generate() -> Self {
        let directory = tempfile::tempdir().unwrap();
        let pki = Self::paths(directory);
        pki.write_certificates();
        pki
    }

    fn paths(directory: TempDir) -> Self {
        let path = |name: &str| directory.path().join(name);
        Self {
            ca_file: path("ca.pem"),
            server_cert: path("server.pem"),
            server_key: path("server-key.pem"),
            client_cert: path("client.pem"),
            client_key: path("client-key.pem"),
            rogue_client_cert: path("rogue.pem"),
            rogue_client_key: path("rogue-key.pem"),
            directory,
        }
    }

    /// Writes a fresh CA and fresh certificates over the files (what a rotation does).
    pub fn write_certificates(&self) {
        let authority = Authority::new("Tern test CA");
        let rogue = Authority::new("Rogue CA");
        write(&self.ca_file, &authority.certificate.pem());
        let (certificate, key) = authority.issue(
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        write(&self.server_cert, &certificate);
        write(&self.server_key, &key);
        let (certificate, key) = authority.issue(&["client"], ExtendedKeyUsagePurpose::ClientAuth);
        write(&self.client_cert, &certificate);
        write(&self.client_key, &key);
        let (certificate, key) = rogue.issue(&["client"], ExtendedKeyUsagePurpose::ClientAuth);
        write(&self.rogue_client_cert, &certificate);
        write(&self.rogue_client_key, &key);
    }

    /// Server options: certificate and key, no client verification.
    pub fn server_options(&self) -> TlsOptions {
        TlsOptions {
            cert_file: Some(self.server_cert.clone()),
            key_file: Some(self.server_key.clone()),
            ..TlsOptions::default()
        }
    }

    /// Server options that require a client certificate from the test CA.
    pub fn verifying_server_options(&self) -> TlsOptions {
        TlsOptions {
            ca_file: Some(self.ca_file.clone()),
            verify: true,
            ..self.server_options()
        }
    }

    /// Client options trusting the test CA, without a client certificate.
    pub fn client_options(&self) -> TlsOptions {
        TlsOptions {
            ca_file: Some(self.ca_file.clone()),
            ..TlsOptions::default()
        }
    }

    /// Client options presenting the trusted client certificate.
    pub fn client_options_with_certificate(&self) -> TlsOptions {
        TlsOptions {
            cert_file: Some(self.client_cert.clone()),
            key_file: Some(self.client_key.clone()),
            ..self.client_options()
        }
    }

    /// Client options presenting a certificate from the untrusted CA.
    pub fn client_options_with_rogue_certificate(&self) -> TlsOptions {
        TlsOptions {
            cert_file: Some(self.rogue_client_cert.clone()),
            key_file: Some(self.rogue_client_key.clone()),
            ..self.client_options()
        }
    }
}

fn write(path: &Path, contents: &str) {
    std::fs::write(path, contents).unwrap();
}

/// A client INFO with no TLS fields set.
pub fn sample_info() -> ServerInfo {
    ServerInfo {
        server_id: "NTEST".to_string(),
        server_name: "tern-test".to_string(),
        version: "0.1.0".to_string(),
        proto: 1,
        go: "rust".to_string(),
        host: "127.0.0.1".to_string(),
        port: 4222,
        headers: true,
        max_payload: 1024 * 1024,
        auth_required: false,
        tls_required: false,
        tls_verify: false,
        tls_available: false,
        client_id: 7,
        client_ip: "127.0.0.1".to_string(),
        nonce: String::new(),
        cluster: String::new(),
        connect_urls: Vec::new(),
        ldm: false,
    }
}

/// A listener on an OS-assigned loopback port.
pub async fn loopback_listener() -> (tokio::net::TcpListener, std::net::SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    (listener, address)
}
