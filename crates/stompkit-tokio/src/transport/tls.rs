//! TLS over TCP with rustls (`ring` provider).

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::Error;

/// How the server's certificate is checked.
///
/// By default against the system's root certificates (read once, on the first TLS connect,
/// and kept by this value and its clones). [`TlsConfig::with_ca_file`] and
/// [`TlsConfig::with_ca_pem`] replace the system roots by the given CA certificates, e.g.
/// for a broker with a private CA. Turning verification off takes
/// [`TlsConfig::dangerous_accept_any_certificate`] and is logged as a warning at every
/// connect. No client certificate is sent; no ALPN protocol is offered.
#[derive(Clone, Default)]
pub struct TlsConfig {
    roots: Roots,
    accept_any: bool,
    /// The rustls configuration, built on first use: loading roots reads files.
    built: Arc<Mutex<Option<Arc<ClientConfig>>>>,
}

#[derive(Clone, Default)]
enum Roots {
    #[default]
    System,
    CaFile(PathBuf),
    CaPem(Arc<[u8]>),
}

impl TlsConfig {
    /// Verify against the system's root certificates (the default).
    pub fn system_roots() -> Self {
        Self::default()
    }

    /// Verify against the CA certificates in this PEM file only. The file is read at the
    /// first connect; an unreadable file or one without a certificate fails that connect.
    pub fn with_ca_file(path: impl Into<PathBuf>) -> Self {
        Self {
            roots: Roots::CaFile(path.into()),
            ..Self::default()
        }
    }

    /// Verify against the CA certificates in these PEM bytes only.
    pub fn with_ca_pem(pem: impl Into<Vec<u8>>) -> Self {
        Self {
            roots: Roots::CaPem(pem.into().into()),
            ..Self::default()
        }
    }

    /// Accept any server certificate, unverified. The connection is then open to anyone
    /// between client and broker; meant for tests against self-signed brokers. Each connect
    /// logs a `tracing` warning.
    pub fn dangerous_accept_any_certificate(self) -> Self {
        Self {
            roots: self.roots,
            accept_any: true,
            built: Arc::default(),
        }
    }

    /// Whether verification is off ([`TlsConfig::dangerous_accept_any_certificate`]).
    pub fn accepts_any_certificate(&self) -> bool {
        self.accept_any
    }

    pub(crate) fn client_config(&self) -> Result<Arc<ClientConfig>, Error> {
        let mut built = self.built.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(config) = built.as_ref() {
            return Ok(Arc::clone(config));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::InvalidConfig {
                reason: format!("TLS: {e}"),
            })?;
        let config = if self.accept_any {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
                .with_no_client_auth()
        } else {
            builder
                .with_root_certificates(self.root_store()?)
                .with_no_client_auth()
        };
        let config = Arc::new(config);
        *built = Some(Arc::clone(&config));
        Ok(config)
    }

    fn root_store(&self) -> Result<RootCertStore, Error> {
        let mut store = RootCertStore::empty();
        match &self.roots {
            Roots::System => {
                let found = rustls_native_certs::load_native_certs();
                for e in &found.errors {
                    tracing::debug!(error = %e, "skipped part of the system root certificates");
                }
                let (added, ignored) = store.add_parsable_certificates(found.certs);
                tracing::debug!(added, ignored, "loaded the system root certificates");
                if added == 0 {
                    return Err(Error::InvalidConfig {
                        reason: "no system root certificate found; give a CA file".to_owned(),
                    });
                }
            }
            Roots::CaFile(path) => {
                let pem = std::fs::read(path).map_err(|e| Error::CaFile {
                    path: path.clone(),
                    source: Arc::new(e),
                })?;
                add_pem(&mut store, &pem, &path.display().to_string())?;
            }
            Roots::CaPem(pem) => add_pem(&mut store, pem, "the PEM bytes given")?,
        }
        Ok(store)
    }
}

fn add_pem(store: &mut RootCertStore, pem: &[u8], origin: &str) -> Result<(), Error> {
    let unusable = |reason: String| Error::CaCertificates {
        origin: origin.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unusable(format!("bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(unusable("no `BEGIN CERTIFICATE` block".to_owned()));
    }
    for cert in certs {
        store
            .add(cert)
            .map_err(|e| unusable(format!("not a usable CA certificate: {e}")))?;
    }
    Ok(())
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let roots = match &self.roots {
            Roots::System => "system".to_owned(),
            Roots::CaFile(path) => format!("CA file {}", path.display()),
            Roots::CaPem(pem) => format!("{} bytes of CA PEM", pem.len()),
        };
        f.debug_struct("TlsConfig")
            .field("roots", &roots)
            .field("accept_any_certificate", &self.accept_any)
            .finish()
    }
}

/// Opens TLS over `tcp`, checking the certificate against `host` (a name or an IP address).
pub(crate) async fn connect(
    tcp: TcpStream,
    host: &str,
    config: &TlsConfig,
    client_config: Arc<ClientConfig>,
) -> Result<TlsStream<TcpStream>, Error> {
    if config.accept_any {
        tracing::warn!(
            host,
            "TLS certificate verification is OFF for this connection \
             (dangerous_accept_any_certificate)"
        );
    }
    let server_name = ServerName::try_from(host.to_owned()).map_err(|e| Error::InvalidConfig {
        reason: format!("`{host}` cannot be used as a TLS server name: {e}"),
    })?;
    TlsConnector::from(client_config)
        .connect(server_name, tcp)
        .await
        .map_err(|e| handshake_error(host, e))
}

/// Tells a certificate that did not verify from other handshake failures.
fn handshake_error(host: &str, e: io::Error) -> Error {
    let certificate = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|r| matches!(r, rustls::Error::InvalidCertificate(_)));
    let host = host.to_owned();
    let source = Arc::new(e);
    if certificate {
        Error::TlsCertificate { host, source }
    } else {
        Error::Tls { host, source }
    }
}

/// Accepts every certificate but still checks the handshake signatures, so that the
/// connection works with the server's key as sent.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
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
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
