//! The embedded broker's TLS: a throwaway CA and a server certificate made at each start.
//!
//! Nothing is written to disk and the keys never leave this process: clients trust the CA
//! certificate (public) that [`EmbeddedBroker::ca_pem`](crate::EmbeddedBroker::ca_pem) gives.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};

use crate::Error;

/// The names the server certificate is valid for: what a loopback client may dial.
const SERVER_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// A generated CA and a server ready to accept TLS with a certificate it signed.
pub(crate) struct ServerTls {
    /// The CA certificate, PEM: what clients trust.
    pub(crate) ca_pem: String,
    /// Accepts TLS with the server certificate and its CA (holds the server's key).
    pub(crate) acceptor: TlsAcceptor,
}

// By hand, so that the acceptor (and the key in it) stays out of any debug output.
impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("ca_pem", &format_args!("{} bytes", self.ca_pem.len()))
            .finish_non_exhaustive()
    }
}

fn tls_error(what: &str) -> impl FnOnce(rcgen::Error) -> Error + '_ {
    move |e| Error::Tls {
        reason: format!("{what}: {e}"),
    }
}

/// Makes a CA, a server certificate it signs for [`SERVER_NAMES`], and a rustls server
/// (`ring` provider, TLS 1.2 and 1.3) that presents both.
pub(crate) fn generate() -> Result<ServerTls, Error> {
    let ca_key = KeyPair::generate().map_err(tls_error("generating the CA key"))?;
    let mut ca_params =
        CertificateParams::new(Vec::<String>::new()).map_err(tls_error("the CA's parameters"))?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "stompkit-testkit embedded broker CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = ca_params
        .self_signed(&ca_key)
        .map_err(tls_error("signing the CA certificate"))?;

    let server_key = KeyPair::generate().map_err(tls_error("generating the server key"))?;
    let names: Vec<String> = SERVER_NAMES.iter().map(|n| (*n).to_owned()).collect();
    let mut params = CertificateParams::new(names).map_err(tls_error("the server's names"))?;
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let server = params
        .signed_by(&server_key, &ca, &ca_key)
        .map_err(tls_error("signing the server certificate"))?;

    let chain: Vec<CertificateDer<'static>> = vec![server.der().clone(), ca.der().clone()];
    let key = PrivatePkcs8KeyDer::from(server_key.serialize_der());
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key.into()))
        .map_err(|e| Error::Tls {
            reason: format!("the TLS server configuration: {e}"),
        })?;
    Ok(ServerTls {
        ca_pem: ca.pem(),
        acceptor: TlsAcceptor::from(Arc::new(config)),
    })
}

#[cfg(test)]
mod tests {
    use super::generate;

    #[test]
    fn each_start_has_its_own_ca_and_debug_shows_no_key() {
        let a = generate().expect("generated");
        let b = generate().expect("generated");
        assert!(a.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_ne!(a.ca_pem, b.ca_pem);
        let debug = format!("{a:?}");
        assert!(
            !debug.contains("PRIVATE") && !debug.contains("BEGIN"),
            "{debug}"
        );
    }
}
