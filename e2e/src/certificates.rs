//! Certificates made at test time (rcgen) for TLS tests against any server kind.
//!
//! [`TestCertificates::generate`] writes, into its own temp dir, a certificate authority, a
//! server certificate for `localhost` and `127.0.0.1` signed by it, a client certificate
//! signed by it, and a client certificate from another authority the server does not trust;
//! for routes, where every server is both TLS server and TLS client, a certificate with both
//! usages from each authority ([`TestCertificates::route_tls_block`]).
//! Config text names the files by absolute path ([`TestCertificates::server_tls_block`]), so
//! the same text works for Tern and nats-server. Keys are throwaway and never leave the dir.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tempfile::TempDir;

/// Why certificates could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
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
}

/// A certificate authority and the key that signs with it.
pub(crate) struct Authority {
    certificate: Certificate,
    key: KeyPair,
}

impl Authority {
    pub(crate) fn new(name: &str) -> Result<Self, CertificateError> {
        let generate = |source| CertificateError::Generate {
            what: "a certificate authority",
            source,
        };
        let key = KeyPair::generate().map_err(generate)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(generate)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let certificate = params.self_signed(&key).map_err(generate)?;
        Ok(Self { certificate, key })
    }

    /// A leaf certificate for `names` (DNS names or IP addresses) and its key, as PEM.
    fn issue(
        &self,
        what: &'static str,
        names: &[&str],
        purpose: ExtendedKeyUsagePurpose,
    ) -> Result<(String, String), CertificateError> {
        self.issue_for(what, names, vec![purpose])
    }

    /// [`Authority::issue`] with several extended key usages.
    fn issue_for(
        &self,
        what: &'static str,
        names: &[&str],
        purposes: Vec<ExtendedKeyUsagePurpose>,
    ) -> Result<(String, String), CertificateError> {
        self.issue_identity(what, what, None, names, purposes)
    }

    /// A certificate whose subject is `common_name` (and `organization`, which Kubernetes
    /// reads as a group), for `names` (DNS names or IP addresses); PEM certificate and key.
    pub(crate) fn issue_identity(
        &self,
        what: &'static str,
        common_name: &str,
        organization: Option<&str>,
        names: &[&str],
        purposes: Vec<ExtendedKeyUsagePurpose>,
    ) -> Result<(String, String), CertificateError> {
        let generate = |source| CertificateError::Generate { what, source };
        let key = KeyPair::generate().map_err(generate)?;
        let names: Vec<String> = names.iter().map(|name| (*name).to_string()).collect();
        let mut params = CertificateParams::new(names).map_err(generate)?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        if let Some(organization) = organization {
            params
                .distinguished_name
                .push(DnType::OrganizationName, organization);
        }
        params.extended_key_usages = purposes;
        let certificate = params
            .signed_by(&key, &self.certificate, &self.key)
            .map_err(generate)?;
        Ok((certificate.pem(), key.serialize_pem()))
    }

    /// The authority's certificate and key as PEM.
    pub(crate) fn pem(&self) -> (String, String) {
        (self.certificate.pem(), self.key.serialize_pem())
    }
}

/// A CA, a server certificate and client certificates as PEM files in a temp dir (removed on
/// drop).
#[derive(Debug)]
pub struct TestCertificates {
    directory: TempDir,
    ca_pem: String,
}

impl TestCertificates {
    /// Makes every certificate and writes `ca.pem`, `server.pem`, `server-key.pem`,
    /// `client.pem`, `client-key.pem`, `untrusted-client.pem`, `untrusted-client-key.pem`,
    /// `route.pem`, `route-key.pem`, `untrusted-route.pem` and `untrusted-route-key.pem`.
    pub fn generate() -> Result<Self, CertificateError> {
        let directory = tempfile::Builder::new()
            .prefix("tern-e2e-certificates-")
            .tempdir()
            .map_err(|source| CertificateError::Write {
                path: std::env::temp_dir(),
                source,
            })?;
        let authority = Authority::new("Tern e2e CA")?;
        let untrusted = Authority::new("Untrusted e2e CA")?;
        let (server, server_key) = authority.issue(
            "tern e2e server",
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        )?;
        let (client, client_key) = authority.issue(
            "tern e2e client",
            &["client.tern.test"],
            ExtendedKeyUsagePurpose::ClientAuth,
        )?;
        let (untrusted_client, untrusted_client_key) = untrusted.issue(
            "untrusted e2e client",
            &["untrusted.tern.test"],
            ExtendedKeyUsagePurpose::ClientAuth,
        )?;
        let route_usages = || {
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ]
        };
        let (route, route_key) = authority.issue_for(
            "tern e2e route",
            &["localhost", "127.0.0.1"],
            route_usages(),
        )?;
        let (untrusted_route, untrusted_route_key) = untrusted.issue_for(
            "untrusted e2e route",
            &["localhost", "127.0.0.1"],
            route_usages(),
        )?;
        let ca_pem = authority.certificate.pem();
        let files = [
            ("ca.pem", ca_pem.as_str()),
            ("server.pem", server.as_str()),
            ("server-key.pem", server_key.as_str()),
            ("client.pem", client.as_str()),
            ("client-key.pem", client_key.as_str()),
            ("untrusted-client.pem", untrusted_client.as_str()),
            ("untrusted-client-key.pem", untrusted_client_key.as_str()),
            ("route.pem", route.as_str()),
            ("route-key.pem", route_key.as_str()),
            ("untrusted-route.pem", untrusted_route.as_str()),
            ("untrusted-route-key.pem", untrusted_route_key.as_str()),
        ];
        for (name, contents) in files {
            let path = directory.path().join(name);
            fs::write(&path, contents)
                .map_err(|source| CertificateError::Write { path, source })?;
        }
        Ok(Self { directory, ca_pem })
    }

    /// The directory holding the files.
    pub fn directory(&self) -> &Path {
        self.directory.path()
    }

    /// The CA certificate, as PEM text.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub fn ca_file(&self) -> PathBuf {
        self.file("ca.pem")
    }

    pub fn server_certificate(&self) -> PathBuf {
        self.file("server.pem")
    }

    pub fn server_key(&self) -> PathBuf {
        self.file("server-key.pem")
    }

    /// A client certificate signed by [`TestCertificates::ca_file`].
    pub fn client_certificate(&self) -> PathBuf {
        self.file("client.pem")
    }

    pub fn client_key(&self) -> PathBuf {
        self.file("client-key.pem")
    }

    /// A client certificate from an authority the server does not trust.
    pub fn untrusted_client_certificate(&self) -> PathBuf {
        self.file("untrusted-client.pem")
    }

    pub fn untrusted_client_key(&self) -> PathBuf {
        self.file("untrusted-client-key.pem")
    }

    /// A `tls { }` block with the server certificate, the CA, and `extra` settings (such as
    /// `verify: true` or `handshake_first: true`), in the nats.conf language.
    pub fn server_tls_block(&self, extra: &str) -> String {
        format!(
            "tls {{\n  cert_file: {:?}\n  key_file: {:?}\n  ca_file: {:?}\n  {extra}\n}}\n",
            self.server_certificate().display().to_string(),
            self.server_key().display().to_string(),
            self.ca_file().display().to_string(),
        )
    }

    /// The `tls { }` setting of a route listener (one line, for
    /// [`crate::ClusterBlock::with_setting`]): the route certificate (`localhost`, `127.0.0.1`;
    /// server and client usage) signed by [`TestCertificates::ca_file`], that CA, `verify: true`.
    pub fn route_tls_block(&self) -> String {
        self.route_tls_block_with("route.pem", "route-key.pem")
    }

    /// Like [`TestCertificates::route_tls_block`], but the certificate comes from the authority
    /// the others do not trust (the CA it trusts is still [`TestCertificates::ca_file`]).
    pub fn untrusted_route_tls_block(&self) -> String {
        self.route_tls_block_with("untrusted-route.pem", "untrusted-route-key.pem")
    }

    fn route_tls_block_with(&self, certificate: &str, key: &str) -> String {
        format!(
            "tls {{ cert_file: {:?}, key_file: {:?}, ca_file: {:?}, verify: true }}",
            self.file(certificate).display().to_string(),
            self.file(key).display().to_string(),
            self.ca_file().display().to_string(),
        )
    }

    fn file(&self, name: &str) -> PathBuf {
        self.directory.path().join(name)
    }
}
