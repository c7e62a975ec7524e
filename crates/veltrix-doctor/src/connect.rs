//! How `--broker` reaches the broker: the way the client would, from its
//! file, and what a failed connection tells about the file.
//!
//! [`broker_connection`] reads the client's security settings (protocol,
//! SASL mechanism and credentials, CA, client certificate and key, whether
//! the broker's name is checked) for the caller to connect with; the
//! caller reports a failure back as a [`BrokerFailure`], which the lint
//! turns into a finding in the user's terms: the listener speaks TLS and the
//! client does not (or the reverse), it wants SASL (or does not), the
//! mechanism is not offered there, the credentials are refused, the broker's
//! certificate is not trusted or not valid for its name. No I/O here.
//!
//! The client's own address (one of its `bootstrap.servers`, or `--broker`
//! when the file names none) is reached with the client's settings. Another
//! address is an administrator's route, the broker's loopback PLAINTEXT
//! listener for instance: reached without TLS or SASL, as before, while the
//! listener at the client's address is still judged from the broker's
//! DescribeConfigs answer.
//!
//! A password read from the file goes into [`SaslCredentials`], whose
//! `Debug` does not show it, and into no finding: findings about
//! credentials are placed on the user name, never on the line that holds
//! the password.

use crate::checks::setting;
use crate::client::{Dialect, Settings};
use crate::diagnostic::{Finding, Fix};
use crate::parse::{Entry, ParsedFile};
use crate::rules::{self, Severity};
use crate::security::{MECHANISMS, Protocol, list_items, same_address};
use crate::{LintOptions, client};

/// How to reach the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConnection {
    /// `host:port` to connect to.
    pub address: String,
    /// Whether the settings are the client's (the address is its own); else
    /// the connection is PLAINTEXT.
    pub as_client: bool,
    /// The protocol spoken.
    pub protocol: Protocol,
    /// TLS, for SSL and SASL_SSL.
    pub tls: Option<TlsFiles>,
    /// SASL, for SASL_PLAINTEXT and SASL_SSL.
    pub sasl: Option<SaslCredentials>,
    /// Why the client's settings cannot be followed, when they cannot (a
    /// Java key store, no password, a mechanism the doctor does not speak):
    /// then nothing is connected and this is reported.
    pub problem: Option<String>,
}

/// The TLS files of the client's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CAs the broker's certificate must chain to; `None`: the public
    /// roots.
    pub ca_file: Option<String>,
    /// The client's certificate chain and key (the same file for a Java
    /// PEM key store).
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    /// Whether the broker's certificate must be valid for its name.
    pub verify_name: bool,
}

/// SASL credentials. Its `Debug` does not show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct SaslCredentials {
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: String,
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for SaslCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslCredentials")
            .field("mechanism", &self.mechanism)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// A connection to the broker that failed, as the caller tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerFailure {
    /// How the connection was made.
    pub connection: BrokerConnection,
    /// What went wrong.
    pub failure: ConnectFailure,
}

/// Why a connection failed, in terms of the client's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectFailure {
    /// The client's settings cannot be followed ([`BrokerConnection::problem`]).
    Settings(String),
    /// A TLS file that cannot be used: `what` (`CA file`, `client
    /// certificate`, `client key`), its path, why.
    TlsFile {
        what: String,
        path: String,
        message: String,
    },
    /// The broker's certificate does not chain to a CA the client trusts.
    UnknownCa,
    /// The broker's certificate is not valid for the name connected to.
    NameMismatch { expected: String, presented: Vec<String> },
    /// The broker's certificate expired, is not valid yet, or is refused
    /// for another reason (said).
    BadCertificate(String),
    /// The broker ended the TLS handshake with this alert: most often it
    /// wants a client certificate it trusts.
    HandshakeRefused(String),
    /// The client speaks TLS; the listener does not.
    ListenerNotTls,
    /// The client speaks in clear; the listener answered in TLS.
    ListenerIsTls,
    /// The client does not authenticate; the listener wants SASL, with these
    /// mechanisms.
    SaslRequired { offered: Vec<String> },
    /// The client authenticates with SASL; the listener has none.
    SaslNotEnabled,
    /// The listener does not offer the client's mechanism; it offers these.
    MechanismNotEnabled { mechanism: String, offered: Vec<String> },
    /// The broker refused the user's credentials.
    AuthenticationFailed {
        mechanism: String,
        user: String,
        message: Option<String>,
    },
    /// The SCRAM exchange failed on the client's side: the broker did not
    /// prove it knows the user's keys, or its messages were wrong.
    ServerNotProven(String),
}

/// How `veltrix doctor` reaches the broker at `broker` (`None`: the file's
/// first bootstrap server) for the file `source` named `path`.
pub fn broker_connection(path: &str, source: &str, options: &LintOptions, broker: Option<&str>) -> BrokerConnection {
    let format = options
        .format
        .unwrap_or_else(|| crate::parse::Format::detect(path, source));
    let file = ParsedFile::parse(source, format);
    let dialect = options
        .client
        .or_else(|| client::detect_dialect(&file))
        .unwrap_or(Dialect::Java);
    let s = Settings {
        file: &file,
        dialect,
        source,
    };
    let bootstrap: Vec<String> = s
        .entry("bootstrap.servers")
        .map(|e| list_items(&e.value).map(str::to_owned).collect())
        .unwrap_or_default();
    let (address, as_client) = match broker {
        Some(b) => (
            b.to_owned(),
            bootstrap.is_empty() || bootstrap.iter().any(|a| same_address(a, b)),
        ),
        None => (bootstrap.first().cloned().unwrap_or_default(), true),
    };
    let mut connection = BrokerConnection {
        address,
        as_client,
        protocol: Protocol::Plaintext,
        tls: None,
        sasl: None,
        problem: None,
    };
    if connection.address.is_empty() {
        connection.problem =
            Some("the file has no `bootstrap.servers`; give the address with `--broker HOST:PORT`".into());
        return connection;
    }
    if !as_client {
        return connection;
    }
    if let Err(problem) = client_security(&s, &mut connection) {
        connection.problem = Some(problem);
    }
    connection
}

/// Fills in the client's protocol, TLS files and SASL credentials.
fn client_security(s: &Settings<'_>, c: &mut BrokerConnection) -> Result<(), String> {
    let word = s.text("security.protocol").map_or("PLAINTEXT", |v| v.get());
    c.protocol = Protocol::parse(word).ok_or_else(|| format!("`security.protocol={word}` is not a protocol"))?;
    if c.protocol.tls() {
        c.tls = Some(match s.dialect {
            Dialect::Librdkafka => librdkafka_tls(s)?,
            Dialect::Java => java_tls(s)?,
        });
    }
    if c.protocol.sasl() {
        c.sasl = Some(sasl(s)?);
    }
    Ok(())
}

fn value(s: &Settings<'_>, key: &str) -> Option<String> {
    s.entry(key)
        .map(|e| e.value.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn librdkafka_tls(s: &Settings<'_>) -> Result<TlsFiles, String> {
    if value(s, "ssl.ca.pem").is_some()
        || value(s, "ssl.certificate.pem").is_some()
        || value(s, "ssl.key.pem").is_some()
    {
        return Err("the doctor reads certificates and keys from files (`ssl.ca.location`, `ssl.certificate.location`, `ssl.key.location`), not from `ssl.*.pem` values".into());
    }
    if value(s, "ssl.key.password").is_some() {
        return Err("the client key is encrypted (`ssl.key.password`), which the doctor does not read; give it an unencrypted copy of the key".into());
    }
    let verify_name = value(s, "ssl.endpoint.identification.algorithm").is_none_or(|v| !v.eq_ignore_ascii_case("none"));
    Ok(TlsFiles {
        // `probe` looks for the system's CA bundle: the public roots.
        ca_file: value(s, "ssl.ca.location").filter(|v| v != "probe"),
        cert_file: value(s, "ssl.certificate.location"),
        key_file: value(s, "ssl.key.location"),
        verify_name,
    })
}

fn java_tls(s: &Settings<'_>) -> Result<TlsFiles, String> {
    let pem = |key: &str| value(s, key).is_some_and(|t| t.eq_ignore_ascii_case("PEM"));
    if value(s, "ssl.truststore.certificates").is_some() || value(s, "ssl.keystore.key").is_some() {
        return Err("the doctor reads PEM files (`ssl.truststore.location`, `ssl.keystore.location` with type PEM), not certificates or keys written in the file".into());
    }
    let ca_file = value(s, "ssl.truststore.location");
    if ca_file.is_some() && !pem("ssl.truststore.type") {
        return Err("the trust store is a JKS or PKCS12 file, which the doctor does not read; give it `ssl.truststore.type=PEM` and a PEM file of the CA".into());
    }
    let key_store = value(s, "ssl.keystore.location");
    if key_store.is_some() && !pem("ssl.keystore.type") {
        return Err("the key store is a JKS or PKCS12 file, which the doctor does not read; give it `ssl.keystore.type=PEM` and a PEM file of the certificate and key".into());
    }
    if key_store.is_some() && value(s, "ssl.key.password").is_some() {
        return Err("the client key is encrypted (`ssl.key.password`), which the doctor does not read".into());
    }
    // Java checks the name unless the algorithm is set empty.
    let verify_name = s
        .entry("ssl.endpoint.identification.algorithm")
        .is_none_or(|e| !e.value.trim().is_empty());
    Ok(TlsFiles {
        ca_file,
        cert_file: key_store.clone(),
        key_file: key_store,
        verify_name,
    })
}

fn sasl(s: &Settings<'_>) -> Result<SaslCredentials, String> {
    let mechanism = s.text("sasl.mechanism").map_or("GSSAPI", |v| v.get()).trim().to_owned();
    if !MECHANISMS.contains(&mechanism.as_str()) {
        return Err(format!(
            "the SASL mechanism `{mechanism}` is none of {}",
            MECHANISMS.join(", ")
        ));
    }
    let (user, password) = match s.dialect {
        Dialect::Librdkafka => (value(s, "sasl.username"), value(s, "sasl.password")),
        Dialect::Java => {
            let jaas = s
                .entry("sasl.jaas.config")
                .map(|e| e.value.as_str())
                .unwrap_or_default();
            (jaas_option(jaas, "username"), jaas_option(jaas, "password"))
        }
    };
    let missing = match s.dialect {
        Dialect::Librdkafka => "`sasl.username` and `sasl.password`",
        Dialect::Java => "`username` and `password` in `sasl.jaas.config`",
    };
    match (user, password) {
        (Some(user), Some(password)) => Ok(SaslCredentials {
            mechanism,
            user,
            password,
        }),
        _ => Err(format!("the file has no SASL user and password ({missing})")),
    }
}

/// The value of option `name` of a JAAS configuration
/// (`... required username="alice" password="...";`): quoted, with `\`
/// escaping the next character, or a bare word.
fn jaas_option(jaas: &str, name: &str) -> Option<String> {
    let mut rest = jaas;
    while let Some(at) = rest.find(name) {
        let before = rest[..at].chars().next_back();
        let after = rest[at + name.len()..].trim_start();
        rest = &rest[at + name.len()..];
        if before.is_some_and(|c| !c.is_whitespace()) {
            continue;
        }
        let Some(value) = after.strip_prefix('=') else {
            continue;
        };
        let value = value.trim_start();
        if let Some(quoted) = value.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = quoted.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => out.push(chars.next()?),
                    '"' => return Some(out),
                    c => out.push(c),
                }
            }
            return None;
        }
        let word: String = value.chars().take_while(|c| !c.is_whitespace() && *c != ';').collect();
        return (!word.is_empty()).then_some(word);
    }
    None
}

// ---------------------------------------------------------------------------
// Findings

/// The finding of a failed connection.
/// Long: one arm per failure of the protocol or mechanism, each its finding.
/// `read`: whether the broker's limits and listeners were read anyway (in
/// clear, when the client's settings could not be followed).
pub(crate) fn finding(s: &Settings<'_>, f: &BrokerFailure, read: bool) -> Finding {
    let c = &f.connection;
    let addr = c.address.as_str();
    let protocol = s.text("security.protocol");
    let how = if c.as_client {
        "as the client".to_owned()
    } else {
        format!("without TLS or SASL, since {addr} is not among the client's `bootstrap.servers`")
    };
    match &f.failure {
        ConnectFailure::ListenerIsTls if c.as_client => {
            let want = if c.protocol.sasl() {
                Protocol::SaslSsl
            } else {
                Protocol::Ssl
            };
            protocol_finding(s, protocol.as_ref(), want, format!(
                "the listener at {addr} speaks TLS, and the client's protocol {} does not",
                c.protocol
            ))
            .help(format!(
                "write `security.protocol={want}`, and trust the CA that signed the broker's certificate: {}",
                ca_key(s.dialect)
            ))
            .why("the client writes its requests in clear to a port that waits for a TLS handshake: the broker answers with a TLS alert and closes the connection, and the client logs only disconnections")
        }
        ConnectFailure::ListenerNotTls if c.as_client => {
            let want = if c.protocol.sasl() {
                Protocol::SaslPlaintext
            } else {
                Protocol::Plaintext
            };
            protocol_finding(s, protocol.as_ref(), want, format!(
                "the listener at {addr} does not speak TLS, and the client's protocol {} does",
                c.protocol
            ))
            .help(format!("write `security.protocol={want}`, or connect to the broker's TLS listener"))
            .why("the broker reads the client's TLS handshake as a request of absurd size and closes the connection: the client never connects")
        }
        ConnectFailure::SaslRequired { offered } => {
            let want = if c.protocol.tls() {
                Protocol::SaslSsl
            } else {
                Protocol::SaslPlaintext
            };
            protocol_finding(s, protocol.as_ref(), want, format!(
                "the listener at {addr} wants SASL authentication ({}), and the client's protocol {} has none",
                list_or_none(offered),
                c.protocol
            ))
            .help(format!(
                "write `security.protocol={want}` and a mechanism the listener offers, {}",
                credentials_where(s.dialect)
            ))
            .why("the listener answers nothing but ApiVersions and SASL before a client authenticates: the client's first request closes its connection, again and again")
        }
        ConnectFailure::SaslNotEnabled => {
            let want = if c.protocol.tls() {
                Protocol::Ssl
            } else {
                Protocol::Plaintext
            };
            protocol_finding(
                s,
                protocol.as_ref(),
                want,
                format!(
                    "the listener at {addr} has no SASL, and the client's protocol {} authenticates with it",
                    c.protocol
                ),
            )
            .help(format!("write `security.protocol={want}`"))
            .why("the broker refuses the client's SaslHandshake and closes the connection: the client never connects")
        }
        ConnectFailure::MechanismNotEnabled { mechanism, offered } => {
            let value = s.text("sasl.mechanism");
            let instead = offered.iter().find(|m| MECHANISMS.contains(&m.as_str())).cloned();
            let mut finding = Finding::new(
                &rules::SECURITY_NOT_OFFERED,
                format!(
                    "the listener at {addr} does not offer {mechanism}; it offers {}",
                    list_or_none(offered)
                ),
            )
            .at_value(value.as_ref().and_then(|v| v.entry()), "not offered on this listener")
            .why("the broker answers the client's SaslHandshake with UNSUPPORTED_SASL_MECHANISM and closes the connection: the client never authenticates");
            if let Some(m) = instead {
                finding = finding
                    .help(format!(
                        "use `{m}`, which the listener offers, with the user's credentials for it"
                    ))
                    .fix(Fix::set(s, mechanism_key(s.dialect), &m));
            }
            finding
        }
        ConnectFailure::Settings(problem) if read => Finding::new(
            &rules::BROKER_CONNECTION_FAILED,
            format!("cannot connect to {addr} as the client: {problem}"),
        )
        .severity(Severity::Note)
        .help("the broker was asked without TLS or SASL instead; its listeners judge the client's protocol and mechanism (D009)")
        .why("the client's TLS trust and credentials were not tried"),
        other => connection_finding(s, f, other, &how),
    }
}

/// Failures of TLS trust, credentials and settings (rule D011), and a
/// protocol failure met on an administrator's route.
fn connection_finding(s: &Settings<'_>, f: &BrokerFailure, failure: &ConnectFailure, how: &str) -> Finding {
    let addr = f.connection.address.as_str();
    let new = |message: String| Finding::new(&rules::BROKER_CONNECTION_FAILED, message);
    match failure {
        ConnectFailure::Settings(problem) => new(format!("cannot connect to {addr} as the client: {problem}"))
            .severity(Severity::Warning)
            .help("to read the broker's limits and listeners anyway, give `--broker` a PLAINTEXT listener of the broker (its loopback one)")
            .why("the broker's limits and listeners were not read, so the rules that compare with them were skipped"),
        ConnectFailure::TlsFile { what, path, message } => {
            new(format!("cannot use the client's {what} `{path}`: {message}"))
                .at_value(file_entry(s, path), "this file")
                .help("point the setting at a readable PEM file")
                .why("the client refuses to start, or fails its TLS handshake")
        }
        ConnectFailure::UnknownCa => {
            let ca = ca_entry(s);
            let label = if ca.is_some() {
                "does not hold the CA that signed the broker's certificate"
            } else {
                ""
            };
            new(format!(
                "the broker's certificate at {addr} is not signed by a CA the client trusts"
            ))
            .at_value(ca, label)
            .help(format!(
                "set {} to a PEM file of the CA that signed the broker's certificate (the issuer of the listener's `tls_cert_file`)",
                ca_key(s.dialect)
            ))
            .why("the client aborts every TLS handshake (\"certificate verify failed\", \"unknown CA\") and never connects")
        }
        ConnectFailure::NameMismatch { expected, presented } => {
            let names = if presented.is_empty() {
                String::new()
            } else {
                format!("; it names {}", presented.join(", "))
            };
            new(format!(
                "the broker's certificate at {addr} is not valid for `{expected}`, the host the client connects to{names}"
            ))
            .at_value(s.entry("bootstrap.servers"), "the host the certificate must name")
            .help(format!(
                "connect to a name the certificate lists, or give the listener a certificate whose subjectAltName holds `{expected}` (an IP address needs an IP entry)"
            ))
            .why("the client aborts the TLS handshake: a certificate for another name could be anyone's")
        }
        ConnectFailure::BadCertificate(why) => new(format!("the broker's certificate at {addr} is refused: {why}"))
            .help("give the listener a valid certificate (`veltrix check` reports expiring ones)")
            .why("the client aborts every TLS handshake and never connects"),
        ConnectFailure::HandshakeRefused(alert) => new(format!(
            "the broker at {addr} refused the TLS handshake ({alert})"
        ))
        .at_value(s.entry(cert_key(s.dialect)), "the client's certificate")
        .help(format!(
            "the listener most likely requires a client certificate signed by its `tls_client_ca_file`: set {}",
            cert_keys(s.dialect)
        ))
        .why("the broker closes every connection of the client before its first request"),
        ConnectFailure::AuthenticationFailed { mechanism, user, message } => {
            let said = message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default();
            new(format!(
                "the broker at {addr} refused the credentials of user `{user}` with {mechanism}: a wrong user name or password{said}"
            ))
            // The user name's line; never the password's.
            .at_value(user_entry(s), "this user")
            .help(format!(
                "check the password, and that `veltrix user list` shows `{user}` with {mechanism} (`veltrix user add {user} --password-file FILE --mechanism {mechanism}` sets it)"
            ))
            .why("the client's connections fail with an authentication error and it sends nothing")
        }
        ConnectFailure::ServerNotProven(why) => new(format!(
            "the broker at {addr} did not prove it holds the user's SCRAM credentials: {why}"
        ))
        .help("make sure the client reaches the broker itself, not something in between")
        .why("a peer that cannot sign with the user's keys may be an impostor; the client refuses it"),
        ConnectFailure::ListenerIsTls | ConnectFailure::ListenerNotTls => {
            let what = if matches!(failure, ConnectFailure::ListenerIsTls) {
                "the listener there speaks TLS"
            } else {
                "the listener there does not speak TLS"
            };
            new(format!("the doctor reached {addr} {how}, and {what}"))
                .severity(Severity::Warning)
                .help("give `--broker` a PLAINTEXT listener (the broker's loopback one), or one of the client's `bootstrap.servers` to connect as the client")
                .why("the broker's limits and listeners were not read, so the rules that compare with them were skipped")
        }
        // Handled by `finding`.
        ConnectFailure::SaslRequired { .. } | ConnectFailure::SaslNotEnabled | ConnectFailure::MechanismNotEnabled { .. } => {
            new(format!("cannot connect to {addr} {how}"))
        }
    }
}

/// A D009 error on the protocol, with the protocol `want` as its fix.
fn protocol_finding(
    s: &Settings<'_>,
    protocol: Option<&crate::client::Value<'_, &str>>,
    want: Protocol,
    message: String,
) -> Finding {
    let label = match protocol {
        Some(p) => format!("{} here", setting("security.protocol", p)),
        None => String::new(),
    };
    Finding::new(&rules::SECURITY_NOT_OFFERED, message)
        .at_value(protocol.and_then(|p| p.entry()), label)
        .fix(Fix::set(s, "security.protocol", want.name()))
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "no mechanism".to_owned()
    } else {
        items.join(", ")
    }
}

fn mechanism_key(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Java => "sasl.mechanism",
        Dialect::Librdkafka => "sasl.mechanisms",
    }
}

fn credentials_where(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Java => "with the user's name and password in `sasl.jaas.config`",
        Dialect::Librdkafka => "with the user's name and password in `sasl.username` and `sasl.password`",
    }
}

fn ca_key(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Java => "`ssl.truststore.location` (with `ssl.truststore.type=PEM`)",
        Dialect::Librdkafka => "`ssl.ca.location`",
    }
}

fn cert_key(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Java => "ssl.keystore.location",
        Dialect::Librdkafka => "ssl.certificate.location",
    }
}

fn cert_keys(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Java => "`ssl.keystore.location` (with `ssl.keystore.type=PEM`)",
        Dialect::Librdkafka => "`ssl.certificate.location` and `ssl.key.location`",
    }
}

fn ca_entry<'a>(s: &Settings<'a>) -> Option<&'a Entry> {
    s.entry("ssl.ca.location")
        .or_else(|| s.entry("ssl.truststore.location"))
}

/// The entry naming the file at `path`, among the TLS file settings.
fn file_entry<'a>(s: &Settings<'a>, path: &str) -> Option<&'a Entry> {
    [
        "ssl.ca.location",
        "ssl.certificate.location",
        "ssl.key.location",
        "ssl.truststore.location",
        "ssl.keystore.location",
    ]
    .into_iter()
    .filter_map(|k| s.entry(k))
    .find(|e| e.value.trim() == path)
}

/// The entry of the user name, where it has one of its own (librdkafka);
/// a Java user is inside `sasl.jaas.config`, beside the password.
fn user_entry<'a>(s: &Settings<'a>) -> Option<&'a Entry> {
    match s.dialect {
        Dialect::Librdkafka => s.entry("sasl.username"),
        Dialect::Java => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jaas_options_are_read_quoted_or_bare() {
        let jaas =
            r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="p\"w;d";"#;
        assert_eq!(jaas_option(jaas, "username").as_deref(), Some("alice"));
        assert_eq!(jaas_option(jaas, "password").as_deref(), Some("p\"w;d"));
        let bare = "PlainLoginModule required username=bob password=secret;";
        assert_eq!(jaas_option(bare, "username").as_deref(), Some("bob"));
        assert_eq!(jaas_option(bare, "password").as_deref(), Some("secret"));
        assert_eq!(jaas_option("x required myusername=\"no\";", "username"), None);
        assert_eq!(jaas_option("x required password=\"unterminated", "password"), None);
    }

    fn connection(source: &str, broker: Option<&str>) -> BrokerConnection {
        broker_connection("c.properties", source, &LintOptions::default(), broker)
    }

    #[test]
    fn the_clients_address_is_reached_with_its_settings() {
        let source = "bootstrap.servers=127.0.0.1:9093\nsecurity.protocol=SASL_SSL\nsasl.mechanisms=SCRAM-SHA-512\nsasl.username=alice\nsasl.password=hunter2\nssl.ca.location=/ca.pem\n";
        let c = connection(source, Some("localhost:9093"));
        assert!(c.as_client);
        assert_eq!(c.protocol, Protocol::SaslSsl);
        assert_eq!(c.problem, None);
        let tls = c.tls.clone().unwrap();
        assert_eq!(tls.ca_file.as_deref(), Some("/ca.pem"));
        assert!(tls.verify_name);
        let sasl = c.sasl.clone().unwrap();
        assert_eq!(
            (sasl.mechanism.as_str(), sasl.user.as_str()),
            ("SCRAM-SHA-512", "alice")
        );
        assert!(!format!("{c:?}").contains("hunter2"));
        // Another address is an administrator's route, in clear.
        let other = connection(source, Some("127.0.0.1:9092"));
        assert!(!other.as_client);
        assert_eq!(
            (other.protocol, other.tls, other.sasl),
            (Protocol::Plaintext, None, None)
        );
        // No address: the first bootstrap server.
        assert_eq!(connection(source, None).address, "127.0.0.1:9093");
    }

    #[test]
    fn java_settings_are_read_from_jaas_and_pem_stores() {
        let source = "bootstrap.servers=b:9093\nsecurity.protocol=SASL_SSL\nsasl.mechanism=PLAIN\nkey.serializer=x\nsasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"bob\" password=\"pw\";\nssl.truststore.type=PEM\nssl.truststore.location=/ca.pem\nssl.endpoint.identification.algorithm=\n";
        let c = connection(source, None);
        assert_eq!(c.problem, None);
        assert_eq!(c.sasl.unwrap().password, "pw");
        let tls = c.tls.unwrap();
        assert_eq!(tls.ca_file.as_deref(), Some("/ca.pem"));
        assert!(!tls.verify_name);
        let jks = connection(
            "bootstrap.servers=b:9093\nkey.serializer=x\nsecurity.protocol=SSL\nssl.truststore.location=/ts.jks\n",
            None,
        );
        assert!(jks.problem.unwrap().contains("JKS"));
        let no_password = connection(
            "bootstrap.servers=b:9093\nsecurity.protocol=SASL_PLAINTEXT\nsasl.mechanisms=PLAIN\nsasl.username=a\n",
            None,
        );
        assert!(no_password.problem.unwrap().contains("no SASL user and password"));
    }
}
