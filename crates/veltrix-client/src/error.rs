//! The client's errors: transport failures, protocol violations, and Kafka error
//! codes under their Kafka names.
//!
//! A Kafka error code is reported as Java names it (`UNKNOWN_TOPIC_OR_PARTITION`),
//! so that a message from this client can be looked up in Kafka's documentation,
//! with the broker's own error message when it sent one.

use std::fmt;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::ApiKey;

use crate::sasl::ScramError;
use crate::tls::TlsFailure;

/// A non-zero Kafka error code from a response, with the broker's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaError {
    /// The code as sent.
    pub code: i16,
    /// The broker's explanation, in versions whose responses carry one.
    pub message: Option<String>,
}

impl KafkaError {
    /// `None` for code 0 (no error), else the error.
    pub fn from_code(code: i16, message: Option<String>) -> Option<KafkaError> {
        (code != 0).then_some(KafkaError { code, message })
    }

    /// The Java name of the code, e.g. `UNKNOWN_TOPIC_OR_PARTITION`, or
    /// `UNKNOWN_ERROR_CODE_<n>` for a code this codec does not know.
    pub fn name(&self) -> String {
        error_name(self.code)
    }

    /// Whether Kafka documents the error as transient.
    pub fn is_retriable(&self) -> bool {
        ResponseError::try_from_code(self.code).is_some_and(|e| e.is_retriable())
    }
}

impl fmt::Display for KafkaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())?;
        match self.message.as_deref().filter(|m| !m.is_empty()) {
            Some(m) => write!(f, " ({m})"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for KafkaError {}

/// The Java name of a Kafka error code: kafka-protocol's variant name
/// (`UnknownTopicOrPartition`) in Java's spelling (`UNKNOWN_TOPIC_OR_PARTITION`).
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".to_owned(),
        Some(ResponseError::Unknown(code)) => format!("UNKNOWN_ERROR_CODE_{code}"),
        Some(e) => {
            let camel = format!("{e:?}");
            let mut out = String::with_capacity(camel.len() + 8);
            for (i, c) in camel.chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    out.push('_');
                }
                out.push(c.to_ascii_uppercase());
            }
            out
        }
    }
}

/// Everything that can go wrong in the client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("cannot connect to {addr}: {source}; is the broker running?")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("connecting to {addr} timed out after {timeout_ms} ms; is the broker running?")]
    ConnectTimeout { addr: String, timeout_ms: u64 },
    #[error("{api:?} request to {addr} timed out after {timeout_ms} ms")]
    Timeout { api: ApiKey, addr: String, timeout_ms: u64 },
    #[error("connection to {addr} failed: {source}")]
    Io {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the broker at {addr} closed the connection")]
    Closed { addr: String },
    #[error("the connection to {addr} is unusable after an earlier failure on it")]
    Broken { addr: String },
    #[error("response frame of {len} bytes from {addr}; expected 4 to {max} bytes")]
    BadFrame { addr: String, len: i64, max: usize },
    #[error("{api:?} response has correlation id {got}, expected {expected}")]
    CorrelationMismatch { api: ApiKey, expected: i32, got: i32 },
    #[error("cannot encode {api:?} v{version} request: {message}")]
    Encode { api: ApiKey, version: i16, message: String },
    #[error("cannot decode {api:?} v{version} response: {message}")]
    Decode { api: ApiKey, version: i16, message: String },
    /// No version of the API is spoken by both sides.
    #[error(
        "the broker at {addr} does not support {api:?}: it serves {}, this client speaks v{}-v{}",
        broker.map_or("no version of it".to_owned(), |(min, max)| format!("v{min}-v{max}")),
        client.0,
        client.1
    )]
    Unsupported {
        addr: String,
        api: ApiKey,
        /// The versions this client speaks.
        client: (i16, i16),
        /// The versions the broker serves, if it serves the API at all.
        broker: Option<(i16, i16)>,
    },
    /// The broker answered with a Kafka error code.
    #[error("{context}: {error}")]
    Kafka { context: String, error: KafkaError },
    /// A fetched record batch that cannot be decoded within the limits.
    #[error("invalid record batch at offset {offset}: {message}")]
    InvalidBatch { offset: i64, message: String },
    /// A group member's subscription or assignment that is not valid under the
    /// consumer protocol.
    #[error("invalid consumer protocol {what}: {message}")]
    ConsumerProtocol { what: &'static str, message: String },
    /// A record that does not fit in an empty batch.
    #[error("a record of at least {size} bytes does not fit in a batch of at most {max} bytes")]
    RecordTooLarge { size: usize, max: usize },
    /// A caller's mistake, caught before anything was sent.
    #[error("{0}")]
    InvalidArgument(String),
    /// A well-formed response that does not answer the request.
    #[error("unexpected response: {0}")]
    UnexpectedResponse(String),
    /// A TLS file (CA, client certificate, key) that cannot be used.
    #[error("cannot use the {what} {}: {message}", path.display())]
    TlsFile {
        what: &'static str,
        path: std::path::PathBuf,
        message: String,
    },
    /// TLS settings that cannot be used, caught before connecting.
    #[error("TLS settings: {0}")]
    TlsSettings(String),
    /// The TLS handshake failed.
    #[error("TLS handshake with {addr} failed: {failure}")]
    Tls { addr: String, failure: TlsFailure },
    /// A connection without TLS was answered in TLS: the listener is an SSL
    /// or SASL_SSL one.
    #[error("{addr} answered in TLS: the listener there expects TLS, and this connection has none")]
    TlsListener { addr: String },
    /// SaslHandshake refused the mechanism; `offered` are the listener's.
    #[error(
        "the listener at {addr} does not offer the SASL mechanism {mechanism}; it offers {}",
        if offered.is_empty() { "none".to_owned() } else { offered.join(", ") }
    )]
    SaslMechanism {
        addr: String,
        mechanism: &'static str,
        offered: Vec<String>,
    },
    /// SaslHandshake on a listener without SASL.
    #[error("the listener at {addr} does not use SASL")]
    SaslNotEnabled { addr: String },
    /// The broker refused the credentials.
    #[error(
        "authentication as `{user}` with {mechanism} at {addr} failed{}",
        message.as_deref().map(|m| format!(": {m}")).unwrap_or_default()
    )]
    Authentication {
        addr: String,
        mechanism: &'static str,
        user: String,
        /// The broker's message, when it sent one.
        message: Option<String>,
    },
    /// A SCRAM exchange the client gave up: the server's messages, or its
    /// signature, are wrong.
    #[error("SASL authentication with {addr}: {error}")]
    Sasl { addr: String, error: ScramError },
}

impl ClientError {
    /// The Kafka error behind this one, if the broker sent a code.
    pub fn kafka_error(&self) -> Option<&KafkaError> {
        match self {
            ClientError::Kafka { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// `Err(ClientError::Kafka)` for a non-zero code.
pub(crate) fn check(code: i16, message: Option<String>, context: impl FnOnce() -> String) -> Result<(), ClientError> {
    match KafkaError::from_code(code, message) {
        None => Ok(()),
        Some(error) => Err(ClientError::Kafka {
            context: context(),
            error,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_named_as_java_names_them() {
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(17), "INVALID_TOPIC_EXCEPTION");
        assert_eq!(error_name(36), "TOPIC_ALREADY_EXISTS");
        assert_eq!(error_name(56), "KAFKA_STORAGE_ERROR");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(0), "NONE");
        assert_eq!(error_name(30_000), "UNKNOWN_ERROR_CODE_30000");
    }

    #[test]
    fn display_carries_name_and_broker_message() {
        let e = KafkaError::from_code(3, Some("topic `x` does not exist".into())).unwrap();
        assert_eq!(e.to_string(), "UNKNOWN_TOPIC_OR_PARTITION (topic `x` does not exist)");
        assert!(e.is_retriable());
        assert_eq!(KafkaError::from_code(0, None), None);
        assert_eq!(
            KafkaError::from_code(36, Some(String::new())).unwrap().to_string(),
            "TOPIC_ALREADY_EXISTS"
        );
    }
}
