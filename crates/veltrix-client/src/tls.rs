//! TLS for a connection (Kafka's `SSL` and `SASL_SSL`): rustls on the ring
//! provider, as the broker's listeners run it.
//!
//! The broker's certificate is verified against the CAs of a PEM file, or,
//! without one, the roots of Mozilla's programme (`webpki-roots`, built in),
//! and must be valid for the name the client connects to: a DNS name, or an
//! IP address its certificate lists as an IP SAN. A client certificate and
//! key (PEM; the key PKCS#8, PKCS#1 or SEC1) are sent when the broker asks
//! for one (mutual TLS).
//!
//! A failed handshake is a [`TlsFailure`]: what went wrong in the words a
//! person acts on (an unknown CA, a name mismatch, an expired certificate,
//! a listener that does not speak TLS), not rustls' error.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::error::ClientError;

/// The most certificates read from one PEM file: CA bundles of operating
/// systems hold a few hundred.
pub const PEM_CERTIFICATES_MAX: usize = 1000;

/// How to reach a broker over TLS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// A PEM file of the CAs the broker's certificate must chain to; `None`
    /// trusts the roots of Mozilla's programme.
    pub ca_file: Option<PathBuf>,
    /// The client's certificate chain (PEM, leaf first) and key, for a
    /// broker that asks for one.
    pub client_certificate: Option<ClientCertificate>,
    /// The name the broker's certificate must be valid for; by default the
    /// host of the address connected to.
    pub server_name: Option<String>,
    /// Whether the certificate must be valid for that name (librdkafka's
    /// `ssl.endpoint.identification.algorithm=https`, Java's default). The
    /// chain is verified either way.
    pub verify_name: bool,
}

impl TlsSettings {
    /// Settings that trust `ca_file` (or the built-in roots) and verify the
    /// broker's name.
    pub fn new(ca_file: Option<PathBuf>) -> TlsSettings {
        TlsSettings {
            ca_file,
            verify_name: true,
            ..TlsSettings::default()
        }
    }
}

/// A client certificate chain and its key, PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// Why a TLS handshake failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsFailure {
    /// The broker's certificate does not chain to a trusted CA.
    UnknownCa,
    /// The broker's certificate is not valid for the name connected to.
    NameMismatch {
        /// The name the client expected.
        expected: String,
        /// The names the certificate is valid for, when rustls told them.
        presented: Vec<String>,
    },
    /// The broker's certificate expired, or is not valid yet.
    Expired,
    NotYetValid,
    /// Another fault of the broker's certificate.
    BadCertificate(String),
    /// The broker ended the handshake with an alert: it refused the client's
    /// certificate, or the lack of one, or the client's TLS parameters.
    Refused(String),
    /// The peer does not speak TLS: it closed the connection or answered
    /// something else when the handshake began.
    NotTls,
    /// Anything else.
    Other(String),
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsFailure::UnknownCa => f.write_str("the broker's certificate is not signed by a trusted CA"),
            TlsFailure::NameMismatch { expected, presented } if presented.is_empty() => {
                write!(f, "the broker's certificate is not valid for `{expected}`")
            }
            TlsFailure::NameMismatch { expected, presented } => write!(
                f,
                "the broker's certificate is not valid for `{expected}`; it names {}",
                presented.join(", ")
            ),
            TlsFailure::Expired => f.write_str("the broker's certificate has expired"),
            TlsFailure::NotYetValid => f.write_str("the broker's certificate is not valid yet"),
            TlsFailure::BadCertificate(why) => write!(f, "the broker's certificate is refused: {why}"),
            TlsFailure::Refused(alert) => write!(f, "the broker refused the handshake ({alert})"),
            TlsFailure::NotTls => f.write_str("the listener does not speak TLS"),
            TlsFailure::Other(why) => f.write_str(why),
        }
    }
}

/// The TLS failure behind an I/O error of a TLS stream, if there is one.
/// `expected` is the name the certificate was checked against.
pub(crate) fn failure(error: &std::io::Error, expected: &str) -> Option<TlsFailure> {
    let inner = error.get_ref()?.downcast_ref::<rustls::Error>()?;
    Some(match inner {
        rustls::Error::InvalidCertificate(e) => certificate_failure(e, expected),
        rustls::Error::AlertReceived(alert) => TlsFailure::Refused(format!("{alert:?}")),
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateHandshakeMessage { .. } => TlsFailure::NotTls,
        other => TlsFailure::Other(other.to_string()),
    })
}

fn certificate_failure(e: &CertificateError, expected: &str) -> TlsFailure {
    match e {
        CertificateError::UnknownIssuer => TlsFailure::UnknownCa,
        CertificateError::NotValidForName => TlsFailure::NameMismatch {
            expected: expected.to_owned(),
            presented: Vec::new(),
        },
        CertificateError::NotValidForNameContext { presented, .. } => TlsFailure::NameMismatch {
            expected: expected.to_owned(),
            presented: presented.clone(),
        },
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => TlsFailure::Expired,
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => TlsFailure::NotYetValid,
        other => TlsFailure::BadCertificate(format!("{other:?}")),
    }
}

/// The rustls configuration of `settings`: the trusted CAs read, the client
/// certificate and key read, the name check as asked.
pub(crate) fn client_config(settings: &TlsSettings) -> Result<Arc<rustls::ClientConfig>, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    match &settings.ca_file {
        Some(path) => {
            let certs = read_certificates(path, "CA file")?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(file_error("CA file", path, "no certificate in it is a usable CA"));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| ClientError::TlsSettings(format!("the trusted CAs cannot be used: {e}")))?;
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::TlsSettings(e.to_string()))?;
    let builder = if settings.verify_name {
        builder.with_webpki_verifier(verifier)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyName(verifier)))
    };
    let config = match &settings.client_certificate {
        None => builder.with_no_client_auth(),
        Some(c) => {
            let chain = read_certificates(&c.cert_file, "client certificate")?;
            if chain.is_empty() {
                return Err(file_error(
                    "client certificate",
                    &c.cert_file,
                    "it holds no certificate",
                ));
            }
            let key = PrivateKeyDer::from_pem_file(&c.key_file)
                .map_err(|e| file_error("client key", &c.key_file, &pem_error(&e)))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| file_error("client key", &c.key_file, &e.to_string()))?
        }
    };
    Ok(Arc::new(config))
}

/// The server name of `host`: an IP address (checked against the
/// certificate's IP SANs) or a DNS name.
pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, ClientError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_owned())
        .map_err(|_| ClientError::TlsSettings(format!("`{host}` is neither a DNS name nor an IP address")))
}

fn read_certificates(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let iter = CertificateDer::pem_file_iter(path).map_err(|e| file_error(what, path, &pem_error(&e)))?;
    let mut certs = Vec::new();
    for cert in iter {
        if certs.len() == PEM_CERTIFICATES_MAX {
            return Err(file_error(
                what,
                path,
                &format!("more than {PEM_CERTIFICATES_MAX} certificates"),
            ));
        }
        certs.push(cert.map_err(|e| file_error(what, path, &pem_error(&e)))?);
    }
    if certs.is_empty() {
        return Err(file_error(what, path, "it holds no PEM certificate"));
    }
    Ok(certs)
}

fn pem_error(e: &rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(io) => io.to_string(),
        rustls::pki_types::pem::Error::NoItemsFound => "it holds no PEM item of the expected kind".to_owned(),
        other => format!("not valid PEM ({other:?})"),
    }
}

fn file_error(what: &'static str, path: &Path, message: &str) -> ClientError {
    ClientError::TlsFile {
        what,
        path: path.to_owned(),
        message: message.to_owned(),
    }
}

/// The usual verification of the chain, without the name check: what a
/// client with `ssl.endpoint.identification.algorithm` off does.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
