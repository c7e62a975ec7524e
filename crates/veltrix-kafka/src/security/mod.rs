//! Who a connection is: listeners' security protocols (Kafka's PLAINTEXT,
//! SSL, SASL_PLAINTEXT and SASL_SSL), TLS ([`tls`], shared with the HTTP
//! listener), principals from client certificates and SASL authentication ([`sasl`]).
//!
//! A connection's principal is `User:ANONYMOUS` on a listener without
//! authentication, `User:<mapped subject>` when it presented a client
//! certificate, and `User:<name>` once SASL authenticated it; SASL decides
//! over a certificate, as in Kafka.

use std::sync::Arc;

pub(crate) mod sasl;

pub use veltrix_core::principal::{PrincipalError, PrincipalMapping};
pub use veltrix_tls as tls;
pub use veltrix_tls::{ClientAuth, TlsError, TlsFiles, TlsServer, subject_name};

/// The principal of a connection nothing authenticated.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// A listener's security protocol, as Kafka names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub const ALL: [SecurityProtocol; 4] = [
        SecurityProtocol::Plaintext,
        SecurityProtocol::Ssl,
        SecurityProtocol::SaslPlaintext,
        SecurityProtocol::SaslSsl,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    pub fn parse(name: &str) -> Option<SecurityProtocol> {
        SecurityProtocol::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Whether connections are encrypted.
    pub fn tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether connections must authenticate with SASL before anything else.
    pub fn sasl(self) -> bool {
        matches!(self, SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl)
    }
}

/// A SASL mechanism the broker offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SaslMechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl SaslMechanism {
    pub const ALL: [SaslMechanism; 3] = [
        SaslMechanism::ScramSha512,
        SaslMechanism::ScramSha256,
        SaslMechanism::Plain,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    pub fn parse(name: &str) -> Option<SaslMechanism> {
        SaslMechanism::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// One Kafka listener: how its connections are secured and what address
/// clients are told to use for it.
#[derive(Debug, Clone)]
pub struct ListenerSpec {
    /// Its name in the configuration and in metrics.
    pub name: String,
    pub protocol: SecurityProtocol,
    /// Host put in Metadata and FindCoordinator answers to clients of this
    /// listener (a name on the server's certificate, for TLS).
    pub advertised_host: String,
    pub advertised_port: u16,
    /// Mechanisms offered, in the order offered (SASL listeners only).
    pub sasl_mechanisms: Vec<SaslMechanism>,
    /// TLS, for SSL and SASL_SSL listeners.
    pub tls: Option<Arc<TlsServer>>,
    /// How a client certificate's subject becomes a principal's name.
    pub principal_mapping: PrincipalMapping,
    /// The principal of a connection neither a certificate nor SASL
    /// authenticated: `User:ANONYMOUS` unless the listener names another.
    pub unauthenticated_principal: String,
}

impl ListenerSpec {
    /// A PLAINTEXT listener advertising `addr`.
    pub fn plaintext(name: &str, addr: std::net::SocketAddr) -> ListenerSpec {
        ListenerSpec {
            name: name.to_owned(),
            protocol: SecurityProtocol::Plaintext,
            advertised_host: addr.ip().to_string(),
            advertised_port: addr.port(),
            sasl_mechanisms: Vec::new(),
            tls: None,
            principal_mapping: PrincipalMapping::default(),
            unauthenticated_principal: ANONYMOUS.to_owned(),
        }
    }
}

/// Limits and settings of authentication, the same for every listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthLimits {
    /// From accepting a connection to finishing its TLS handshake and SASL
    /// authentication; past it the connection is closed.
    pub authentication_ms_max: u64,
    /// Largest request before a connection has authenticated (Kafka's
    /// `sasl.server.max.receive.size`).
    pub unauthenticated_request_bytes_max: usize,
    /// A SASL session lasts at most this long; the client re-authenticates
    /// on the same connection before it ends, or the connection is closed
    /// at its next request (Kafka's `connections.max.reauth.ms`; 0: forever).
    pub reauthentication_ms_max: u64,
    /// How long a failed authentication's answer is held back before the
    /// connection closes (Kafka's `connection.failed.authentication.delay.ms`).
    pub authentication_failure_delay_ms: u64,
}

impl Default for AuthLimits {
    fn default() -> AuthLimits {
        AuthLimits {
            authentication_ms_max: 10_000,
            unauthenticated_request_bytes_max: 524_288,
            reauthentication_ms_max: 0,
            authentication_failure_delay_ms: 100,
        }
    }
}
