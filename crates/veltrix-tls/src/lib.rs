//! TLS for a listener (rustls): the certificate chain and key from PEM files,
//! optionally client certificates verified against a CA bundle. The files are
//! read every [`RELOAD_CHECK_MS`]; when one's contents changed, a new configuration
//! is built from all of them and taken for the next connections, and if it
//! does not build, the one serving stays and the error is logged: a
//! certificate is renewed without a restart, and a half-written file never
//! takes a listener down.
//!
//! [`subject_name`] writes a client certificate's subject as RFC 2253 does,
//! for the principal mapping rules of the adapters that use it (Kafka's
//! listeners, the HTTP listener).

mod subject;

pub use subject::{BadCertificate, subject_name};

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// How often the files are looked at for changes.
pub const RELOAD_CHECK_MS: u64 = 10_000;

/// Whether clients present certificates (Kafka's `ssl.client.auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// None asked for.
    #[default]
    None,
    /// Asked for and verified when given; a client without one is served
    /// (as `User:ANONYMOUS`, or by SASL).
    Requested,
    /// A client without a certificate the CA signed is refused.
    Required,
}

impl ClientAuth {
    pub fn parse(word: &str) -> Option<ClientAuth> {
        Some(match word {
            "none" => ClientAuth::None,
            "requested" => ClientAuth::Requested,
            "required" => ClientAuth::Required,
            _ => return None,
        })
    }
}

/// Where a listener's TLS material is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates client certificates must chain to (PEM); required
    /// unless `client_auth` is `None`.
    pub client_ca: Option<PathBuf>,
    pub client_auth: ClientAuth,
}

/// Why TLS material cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {why}")]
    File { path: PathBuf, why: String },
    #[error("{0}")]
    Config(String),
}

/// Largest TLS file read to see whether it changed (certificate chains and
/// CA bundles are kilobytes; a bundle of every public CA is under 1 MiB).
const TLS_FILE_BYTES_MAX: u64 = 4 << 20;

/// A hash of a file's contents for change detection (its modification time
/// could miss a rewrite of the same size within the file system's time
/// resolution; the key's bytes are not kept twice).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp(u64);

fn stamp(path: &Path) -> Option<Stamp> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(TLS_FILE_BYTES_MAX)
        .read_to_end(&mut bytes)
        .ok()?;
    let mut hasher = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(&bytes, &mut hasher);
    Some(Stamp(std::hash::Hasher::finish(&hasher)))
}

/// A listener's TLS configuration, replaced when its files change.
#[derive(Debug)]
pub struct TlsServer {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
    stamps: Mutex<Vec<Option<Stamp>>>,
}

impl TlsServer {
    /// Builds the configuration from the files; an error names the file.
    pub fn load(files: TlsFiles) -> Result<TlsServer, TlsError> {
        let stamps = files_of(&files).iter().map(|p| stamp(p)).collect();
        let config = build(&files)?;
        Ok(TlsServer {
            files,
            current: RwLock::new(Arc::new(config)),
            stamps: Mutex::new(stamps),
        })
    }

    /// An acceptor with the configuration in force now.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let config = self.current.read().unwrap_or_else(|e| e.into_inner()).clone();
        tokio_rustls::TlsAcceptor::from(config)
    }

    /// Rebuilds the configuration if a file changed since it was built. `Ok(true)`
    /// when a new one is in force; on an error the old one stays (and the
    /// same change is not tried again until the files change once more).
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let now: Vec<_> = files_of(&self.files).iter().map(|p| stamp(p)).collect();
        {
            let mut stamps = self.stamps.lock().unwrap_or_else(|e| e.into_inner());
            if *stamps == now {
                return Ok(false);
            }
            *stamps = now;
        }
        let config = build(&self.files)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
        Ok(true)
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }
}

fn files_of(files: &TlsFiles) -> Vec<&Path> {
    let mut all = vec![files.cert.as_path(), files.key.as_path()];
    all.extend(files.client_ca.as_deref());
    all
}

fn file_error(path: &Path, why: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        why: why.to_string(),
    }
}

/// The certificates of a PEM file; none is an error.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(path, "no PEM certificate in it"));
    }
    Ok(certs)
}

/// ring's cipher suites, AES-128-GCM first: with the server's order in
/// force (see [`build`]) every client that offers it gets it, whatever it
/// prefers. It is as strong as TLS needs (Mozilla's recommended
/// configurations list it first) and costs the broker, which decrypts every
/// record produced, about a third less than AES-256-GCM's fourteen rounds.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    let rank = |suite: &rustls::SupportedCipherSuite| match suite.suite() {
        rustls::CipherSuite::TLS13_AES_128_GCM_SHA256 => 0,
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        | rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 1,
        _ => 2,
    };
    // Stable: the rest keep ring's order.
    provider.cipher_suites.sort_by_key(rank);
    Arc::new(provider)
}

fn build(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    let chain = read_certificates(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| file_error(&files.key, e))?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match (&files.client_ca, files.client_auth) {
        (_, ClientAuth::None) => builder.with_no_client_auth(),
        (None, _) => {
            return Err(TlsError::Config(
                "client certificates are asked for but no client CA file is set".into(),
            ));
        }
        (Some(ca), auth) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certificates(ca)? {
                roots.add(cert).map_err(|e| file_error(ca, e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
            let verifier = if auth == ClientAuth::Requested {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| file_error(ca, e))?)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(format!("{} and {}: {e}", files.cert.display(), files.key.display())))?;
    config.ignore_client_order = true;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client preferring AES-256-GCM (OpenSSL's and ring's order) is
    /// given AES-128-GCM.
    #[test]
    fn the_server_chooses_aes_128_gcm() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let files = TlsFiles {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
            client_ca: None,
            client_auth: ClientAuth::None,
        };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        let server_config = Arc::new(build(&files).unwrap());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.der().clone()).unwrap();
        let client_provider = Arc::new(rustls::crypto::ring::default_provider());
        assert_eq!(
            client_provider.cipher_suites[0].suite(),
            rustls::CipherSuite::TLS13_AES_256_GCM_SHA384
        );
        let client_config = rustls::ClientConfig::builder_with_provider(client_provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let mut client = rustls::ClientConnection::new(Arc::new(client_config), name).unwrap();
        let mut server = rustls::ServerConnection::new(server_config).unwrap();
        for _ in 0..10 {
            if !client.is_handshaking() && !server.is_handshaking() {
                break;
            }
            let mut wire = Vec::new();
            client.write_tls(&mut wire).unwrap();
            server.read_tls(&mut wire.as_slice()).unwrap();
            server.process_new_packets().unwrap();
            let mut back = Vec::new();
            server.write_tls(&mut back).unwrap();
            client.read_tls(&mut back.as_slice()).unwrap();
            client.process_new_packets().unwrap();
        }
        assert!(!server.is_handshaking());
        assert_eq!(
            server.negotiated_cipher_suite().map(|s| s.suite()),
            Some(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256)
        );
    }
}
