//! TLS with rustls (ring provider): server and client configurations built from
//! [`TlsOptions`], and handshakes bounded by the configured timeout.
//!
//! Contract:
//! - [`ServerTls::from_options`] reads the certificate, key and CA files named by the options
//!   and returns settings holding an `Arc<rustls::ServerConfig>`. Reading files is the only
//!   I/O; errors name the file (never its contents: no key material is logged). Reloading
//!   certificates is calling it again and swapping the result in ([`ServerTls::reload`]):
//!   connections already established keep the configuration they started with.
//! - [`ServerTls::accept`] and [`ClientTls::connect`] run one handshake over a TCP stream and
//!   fail with [`TlsError::HandshakeTimeout`] when it takes longer than `timeout`. As in
//!   nats-server 2.9, nothing is written to the peer on a failed handshake: the socket is
//!   dropped.
//! - `verify` requires a client certificate signed by `ca_file`; without `verify` no client
//!   certificate is asked for. `verify_and_map` implies `verify`; the identity mapping itself
//!   is left to authentication ([`crate::transport::Transport::peer_certificates`]).
//! - `cipher_suites` restricts the TLS 1.2 suites, and the TLS 1.3 ones when it names any
//!   (nats-server inherits Go's rule that the list does not apply to 1.3).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{CipherSuite, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::options::{HandshakeFirst, TlsOptions, TlsVersion};
use super::Transport;

/// PEM files larger than this are refused (a CA bundle is a few hundred KiB).
pub const MAX_PEM_FILE_SIZE: u64 = 4 * 1024 * 1024;

/// What can go wrong building TLS settings or running a handshake.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls: {setting} is required for {context}")]
    MissingSetting {
        setting: &'static str,
        context: &'static str,
    },

    #[error("tls: error reading {setting} {}: {source}", path.display())]
    ReadFile {
        setting: &'static str,
        path: PathBuf,
        source: io::Error,
    },

    #[error("tls: {setting} {} is larger than {limit} bytes", path.display())]
    FileTooLarge {
        setting: &'static str,
        path: PathBuf,
        limit: u64,
    },

    #[error("tls: {setting} {} is not valid PEM: {reason}", path.display())]
    InvalidPem {
        setting: &'static str,
        path: PathBuf,
        reason: String,
    },

    #[error("tls: {setting} {} holds no {expected}", path.display())]
    NothingFound {
        setting: &'static str,
        path: PathBuf,
        expected: &'static str,
    },

    #[error("tls: ca_file {} holds a certificate rustls refuses: {source}", path.display())]
    InvalidCertificateAuthority {
        path: PathBuf,
        source: rustls::Error,
    },

    #[error("tls: the certificate {} and key {} can not be used together: {source}", certificate.display(), key.display())]
    CertificateAndKey {
        certificate: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },

    #[error("tls: {context}: {source}")]
    Configuration {
        context: &'static str,
        source: rustls::Error,
    },

    #[error("tls: client certificate verification: {0}")]
    ClientVerifier(#[from] rustls::server::VerifierBuilderError),

    #[error("tls: error reading the system's root certificates: {0}")]
    SystemRoots(String),

    #[error("tls: {name:?} is not a valid server name for TLS")]
    InvalidServerName { name: String },

    #[error("TLS handshake timeout (after {timeout:?})")]
    HandshakeTimeout { timeout: Duration },

    #[error("TLS handshake error: {0}")]
    Handshake(io::Error),
}

/// Server-side TLS: the rustls configuration and the handshake policy of one listener.
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
    options: TlsOptions,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ServerTls")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Reads the files the options name and builds the server configuration.
    pub fn from_options(options: &TlsOptions) -> Result<Self, TlsError> {
        let certificate_path = options
            .cert_file
            .as_deref()
            .ok_or(TlsError::MissingSetting {
                setting: "cert_file",
                context: "a TLS server",
            })?;
        let key_path = options
            .key_file
            .as_deref()
            .ok_or(TlsError::MissingSetting {
                setting: "key_file",
                context: "a TLS server",
            })?;
        let chain = read_certificates("cert_file", certificate_path)?;
        let key = read_private_key(key_path)?;
        let provider = Arc::new(provider(options));
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(protocol_versions(options.min_version))
            .map_err(|source| TlsError::Configuration {
                context: "protocol versions and cipher suites",
                source,
            })?;
        let builder = if options.verify || options.verify_and_map {
            let ca_path = options.ca_file.as_deref().ok_or(TlsError::MissingSetting {
                setting: "ca_file",
                context: "verify (client certificate verification)",
            })?;
            let roots = read_roots(ca_path)?;
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build()?;
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let config =
            builder
                .with_single_cert(chain, key)
                .map_err(|source| TlsError::CertificateAndKey {
                    certificate: certificate_path.to_path_buf(),
                    key: key_path.to_path_buf(),
                    source,
                })?;
        Ok(Self {
            config: Arc::new(config),
            options: options.clone(),
        })
    }

    /// Re-reads the same files: what a reload does when only the certificates changed.
    pub fn reload(&self) -> Result<Self, TlsError> {
        Self::from_options(&self.options)
    }

    pub fn config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.config)
    }

    pub fn options(&self) -> &TlsOptions {
        &self.options
    }

    pub fn timeout(&self) -> Duration {
        self.options.timeout
    }

    pub fn handshake_first(&self) -> HandshakeFirst {
        self.options.handshake_first
    }

    /// Whether clients must present a certificate (INFO `tls_verify`).
    pub fn verifies_clients(&self) -> bool {
        self.options.verify || self.options.verify_and_map
    }

    /// Runs the server side of a handshake, bounded by `timeout`.
    pub async fn accept(
        &self,
        stream: TcpStream,
    ) -> Result<tokio_rustls::server::TlsStream<TcpStream>, TlsError> {
        let acceptor = TlsAcceptor::from(self.config());
        let timeout = self.timeout();
        match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(error)) => Err(TlsError::Handshake(error)),
            Err(_) => Err(TlsError::HandshakeTimeout { timeout }),
        }
    }
}

impl ServerTls {
    /// [`ServerTls::accept`] for connection kinds that start with TLS (routes, gateways):
    /// the result is ready to split and run a session on.
    pub async fn accept_transport(&self, stream: TcpStream) -> Result<Transport, TlsError> {
        Ok(Transport::TlsServer(Box::new(self.accept(stream).await?)))
    }
}

/// Client-side TLS (routes, gateways and leaf node remotes dialing out).
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
    timeout: Duration,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ClientTls")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    /// Trusts `ca_file` (or the system's roots without one), presents `cert_file`/`key_file`
    /// when both are set, and skips server verification under `insecure`.
    pub fn from_options(options: &TlsOptions) -> Result<Self, TlsError> {
        let provider = Arc::new(provider(options));
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(protocol_versions(options.min_version))
            .map_err(|source| TlsError::Configuration {
                context: "protocol versions and cipher suites",
                source,
            })?;
        let builder = if options.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(UnverifiedServer {
                    algorithms: provider.signature_verification_algorithms,
                }))
        } else {
            let roots = match options.ca_file.as_deref() {
                Some(path) => read_roots(path)?,
                None => system_roots()?,
            };
            builder.with_root_certificates(roots)
        };
        let config = match (options.cert_file.as_deref(), options.key_file.as_deref()) {
            (Some(certificate_path), Some(key_path)) => {
                let chain = read_certificates("cert_file", certificate_path)?;
                let key = read_private_key(key_path)?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|source| TlsError::CertificateAndKey {
                        certificate: certificate_path.to_path_buf(),
                        key: key_path.to_path_buf(),
                        source,
                    })?
            }
            (Some(_), None) => {
                return Err(TlsError::MissingSetting {
                    setting: "key_file",
                    context: "a client certificate",
                })
            }
            (None, Some(_)) => {
                return Err(TlsError::MissingSetting {
                    setting: "cert_file",
                    context: "a client certificate",
                })
            }
            (None, None) => builder.with_no_client_auth(),
        };
        Ok(Self {
            config: Arc::new(config),
            timeout: options.timeout,
        })
    }

    pub fn config(&self) -> Arc<ClientConfig> {
        Arc::clone(&self.config)
    }

    /// Runs the client side of a handshake with `server_name` (a DNS name or an IP address),
    /// bounded by the configured timeout.
    pub async fn connect(
        &self,
        server_name: &str,
        stream: TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, TlsError> {
        let name = ServerName::try_from(server_name.to_string()).map_err(|_| {
            TlsError::InvalidServerName {
                name: server_name.to_string(),
            }
        })?;
        let connector = TlsConnector::from(self.config());
        match tokio::time::timeout(self.timeout, connector.connect(name, stream)).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(error)) => Err(TlsError::Handshake(error)),
            Err(_) => Err(TlsError::HandshakeTimeout {
                timeout: self.timeout,
            }),
        }
    }
}

impl ClientTls {
    /// [`ClientTls::connect`], wrapped as a [`Transport`].
    pub async fn connect_transport(
        &self,
        server_name: &str,
        stream: TcpStream,
    ) -> Result<Transport, TlsError> {
        Ok(Transport::TlsClient(Box::new(
            self.connect(server_name, stream).await?,
        )))
    }
}

/// The suites a cipher suite name stands for: rustls' names (`TLS13_AES_128_GCM_SHA256`) and
/// Go's, which nats-server configs use (`TLS_AES_128_GCM_SHA256`,
/// `TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305`). `None` when rustls does not implement it.
pub fn cipher_suite_by_name(name: &str) -> Option<CipherSuite> {
    let mut canonical = name.trim().to_ascii_uppercase();
    if canonical.ends_with("_CHACHA20_POLY1305") {
        canonical.push_str("_SHA256");
    }
    if canonical.starts_with("TLS_AES_") || canonical.starts_with("TLS_CHACHA20_") {
        canonical = canonical.replacen("TLS_", "TLS13_", 1);
    }
    rustls::crypto::ring::ALL_CIPHER_SUITES
        .iter()
        .map(|supported| supported.suite())
        .find(|suite| suite.as_str() == Some(canonical.as_str()))
}

/// The names of every suite rustls implements, for error messages.
pub fn supported_cipher_suite_names() -> Vec<&'static str> {
    rustls::crypto::ring::ALL_CIPHER_SUITES
        .iter()
        .filter_map(|supported| supported.suite().as_str())
        .collect()
}

fn provider(options: &TlsOptions) -> CryptoProvider {
    let mut provider = rustls::crypto::ring::default_provider();
    if options.cipher_suites.is_empty() {
        return provider;
    }
    let names_tls13 = provider.cipher_suites.iter().any(|supported| {
        supported.tls13().is_some() && options.cipher_suites.contains(&supported.suite())
    });
    provider.cipher_suites.retain(|supported| {
        let is_tls13 = supported.tls13().is_some();
        (is_tls13 && !names_tls13) || options.cipher_suites.contains(&supported.suite())
    });
    provider
}

static TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

fn protocol_versions(minimum: TlsVersion) -> &'static [&'static rustls::SupportedProtocolVersion] {
    match minimum {
        TlsVersion::Tls12 => rustls::ALL_VERSIONS,
        TlsVersion::Tls13 => TLS13_ONLY,
    }
}

fn read_pem_file(setting: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    let read_error = |source| TlsError::ReadFile {
        setting,
        path: path.to_path_buf(),
        source,
    };
    let size = std::fs::metadata(path).map_err(read_error)?.len();
    if size > MAX_PEM_FILE_SIZE {
        return Err(TlsError::FileTooLarge {
            setting,
            path: path.to_path_buf(),
            limit: MAX_PEM_FILE_SIZE,
        });
    }
    std::fs::read(path).map_err(read_error)
}

fn read_certificates(
    setting: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let contents = read_pem_file(setting, path)?;
    let certificates = CertificateDer::pem_slice_iter(&contents)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsError::InvalidPem {
            setting,
            path: path.to_path_buf(),
            reason: error.to_string(),
        })?;
    if certificates.is_empty() {
        return Err(TlsError::NothingFound {
            setting,
            path: path.to_path_buf(),
            expected: "PEM certificate",
        });
    }
    Ok(certificates)
}

fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let contents = read_pem_file("key_file", path)?;
    PrivateKeyDer::from_pem_slice(&contents).map_err(|error| match error {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NothingFound {
            setting: "key_file",
            path: path.to_path_buf(),
            expected: "PEM private key (PKCS#8, PKCS#1 or SEC1)",
        },
        // The PEM error names a section, never the key's bytes.
        other => TlsError::InvalidPem {
            setting: "key_file",
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    })
}

fn read_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for certificate in read_certificates("ca_file", path)? {
        roots
            .add(certificate)
            .map_err(|source| TlsError::InvalidCertificateAuthority {
                path: path.to_path_buf(),
                source,
            })?;
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, TlsError> {
    let loaded = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(loaded.certs);
    if added == 0 {
        let reasons: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
        return Err(TlsError::SystemRoots(if reasons.is_empty() {
            "none found; set ca_file".to_string()
        } else {
            reasons.join("; ")
        }));
    }
    Ok(roots)
}

/// `insecure: true`: any server certificate is accepted, but the handshake signatures are
/// still checked, so the session is at least bound to the certificate presented.
#[derive(Debug)]
struct UnverifiedServer {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for UnverifiedServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, certificate, signature, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, certificate, signature, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
