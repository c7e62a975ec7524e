//! Rule D009: whether the client can connect and authenticate at all. Its
//! `security.protocol` and SASL mechanism are read against what Veltrix
//! serves (Kafka's four security protocols; the PLAIN, SCRAM-SHA-256 and
//! SCRAM-SHA-512 mechanisms, never GSSAPI or OAUTHBEARER) and, with
//! `--broker`, against the listener the client's address reaches.
//!
//! Offline, which protocol a listener wants is the broker's secret: the rule
//! can only say whether the file's words exist and fit together. A running
//! broker tells each listener's protocol, address and mechanisms in
//! DescribeConfigs (`listener.security.protocol.map`, `advertised.listeners`,
//! `listeners`, `sasl.enabled.mechanisms`), read by [`broker_listeners`];
//! then the client's settings must be that listener's. A mistake here does
//! not lose records, it stops the client before it sends any, with errors
//! (timeouts, disconnections) that rarely say why.

use std::collections::BTreeMap;

use crate::checks::setting;
use crate::client::{Dialect, Settings, Value};
use crate::diagnostic::{Finding, Fix};
use crate::parse::Entry;
use crate::rules::{self, Severity};
use crate::{BrokerLimits, BrokerListener, LintOptions};

/// A Kafka security protocol, as clients and brokers name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl Protocol {
    pub const ALL: [Protocol; 4] = [
        Protocol::Plaintext,
        Protocol::Ssl,
        Protocol::SaslPlaintext,
        Protocol::SaslSsl,
    ];

    /// `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Plaintext => "PLAINTEXT",
            Protocol::Ssl => "SSL",
            Protocol::SaslPlaintext => "SASL_PLAINTEXT",
            Protocol::SaslSsl => "SASL_SSL",
        }
    }

    /// The protocol `word` names, in any case: both clients read it so (the
    /// Java clients' `CaseInsensitiveValidString`, librdkafka's enums).
    pub fn parse(word: &str) -> Option<Protocol> {
        let word = word.trim();
        Protocol::ALL.into_iter().find(|p| p.name().eq_ignore_ascii_case(word))
    }

    /// Whether connections are encrypted.
    pub fn tls(self) -> bool {
        matches!(self, Protocol::Ssl | Protocol::SaslSsl)
    }

    /// Whether connections authenticate with SASL.
    pub fn sasl(self) -> bool {
        matches!(self, Protocol::SaslPlaintext | Protocol::SaslSsl)
    }

    /// The protocol a word that is none of them most likely means: by its
    /// parts (`SSL_SASL` and `SASL_TLS` are SASL_SSL, `TLS` is SSL, `PLAIN`
    /// is PLAINTEXT), else the name within a few edits of it.
    fn meant(word: &str) -> Option<Protocol> {
        let upper = word.trim().to_ascii_uppercase().replace(['-', ' ', '.'], "_");
        let parts: Vec<&str> = upper.split('_').filter(|p| !p.is_empty()).collect();
        let has = |names: &[&str]| parts.iter().any(|p| names.contains(p));
        let (sasl, tls) = (has(&["SASL"]), has(&["SSL", "TLS"]));
        let plain = has(&["PLAINTEXT", "PLAIN", "TEXT", "CLEAR"]);
        match (sasl, tls, plain) {
            (true, false, true) => Some(Protocol::SaslPlaintext),
            (true, _, _) => Some(Protocol::SaslSsl),
            (false, true, _) => Some(Protocol::Ssl),
            (false, false, true) => Some(Protocol::Plaintext),
            (false, false, false) => nearest(&Protocol::ALL.map(Protocol::name), &upper).and_then(Protocol::parse),
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The SASL mechanisms Veltrix offers, strongest first: the order a fix
/// picks from.
pub const MECHANISMS: [&str; 3] = ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"];

/// Kafka's other mechanisms: clients know them, Veltrix does not offer them.
const NOT_OFFERED: [&str; 2] = ["GSSAPI", "OAUTHBEARER"];

/// The name in `names` within one edit (plus one per six characters) of
/// `word`, ignoring case.
fn nearest<'n>(names: &[&'n str], word: &str) -> Option<&'n str> {
    let word = word.to_ascii_uppercase();
    let limit = 1 + word.chars().count() / 6;
    names
        .iter()
        .map(|&n| (strsim::damerau_levenshtein(&word, n), n))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, n)| n)
}

// ---------------------------------------------------------------------------
// The broker's listeners, from DescribeConfigs

/// The listeners a broker describes in the settings of its DescribeConfigs
/// answer (name to value): `listener.security.protocol.map`
/// (`kafka:PLAINTEXT,secure:SASL_SSL`), `advertised.listeners` and
/// `listeners` (`secure://0.0.0.0:9093`), and the mechanisms of each SASL
/// listener, its own `listener.name.<name>.sasl.enabled.mechanisms` or else
/// the broker's `sasl.enabled.mechanisms`. A listener whose protocol is not
/// told is left out; a broker that tells none of this (an older one) gives
/// no listener, and the rule then compares nothing.
pub fn broker_listeners(configs: &BTreeMap<String, String>) -> Vec<BrokerListener> {
    let get = |key: &str| configs.get(key).map_or("", String::as_str);
    let protocols = pairs(get("listener.security.protocol.map"), ":");
    let bound = pairs(get("listeners"), "://");
    let advertised = pairs(get("advertised.listeners"), "://");
    let names = if bound.is_empty() { &advertised } else { &bound };
    names
        .iter()
        .filter_map(|(name, _)| {
            let protocol = lookup(&protocols, name)
                .and_then(Protocol::parse)
                .or_else(|| Protocol::parse(name))?;
            let bound = lookup(&bound, name);
            let key = format!("listener.name.{}.sasl.enabled.mechanisms", name.to_ascii_lowercase());
            let mechanisms = match configs.get(&key) {
                Some(own) => own.as_str(),
                None => get("sasl.enabled.mechanisms"),
            };
            Some(BrokerListener {
                name: (*name).to_owned(),
                protocol,
                advertised: lookup(&advertised, name).or(bound)?.to_owned(),
                bound: bound.map(str::to_owned),
                mechanisms: if protocol.sasl() { list(mechanisms) } else { Vec::new() },
            })
        })
        .collect()
}

/// `a:b,c:d` split at `separator` into pairs, in order.
fn pairs<'v>(value: &'v str, separator: &str) -> Vec<(&'v str, &'v str)> {
    list_items(value)
        .filter_map(|item| item.split_once(separator))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect()
}

/// The value paired with `name`; listener names are compared ignoring case,
/// as Kafka does.
fn lookup<'v>(pairs: &[(&str, &'v str)], name: &str) -> Option<&'v str> {
    pairs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|&(_, v)| v)
}

pub(crate) fn list_items(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn list(value: &str) -> Vec<String> {
    list_items(value).map(str::to_owned).collect()
}

/// A `host:port` as its host (brackets of an IPv6 address removed) and port.
fn host_port(address: &str) -> Option<(&str, &str)> {
    let bare = address.split_once("://").map_or(address, |(_, rest)| rest);
    let (host, port) = bare.trim().trim_end_matches('/').rsplit_once(':')?;
    Some((host.trim_start_matches('[').trim_end_matches(']'), port))
}

fn loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host == "::1" || host.starts_with("127.")
}

/// Whether two `host:port` name the same place: the same port, and the same
/// host ignoring case, or both the loopback.
pub(crate) fn same_address(a: &str, b: &str) -> bool {
    match (host_port(a), host_port(b)) {
        (Some((ha, pa)), Some((hb, pb))) => pa == pb && (ha.eq_ignore_ascii_case(hb) || (loopback(ha) && loopback(hb))),
        _ => false,
    }
}

impl BrokerListener {
    /// Whether a client connecting to `address` reaches this listener: it
    /// is the address the listener advertises or is bound to, or its port
    /// when the listener is bound to every address of the machine.
    pub fn reaches(&self, address: &str) -> bool {
        let wildcard = |bound: &str| {
            matches!(host_port(bound), Some(("" | "0.0.0.0" | "::", port))
                if host_port(address).is_some_and(|(_, p)| p == port))
        };
        same_address(&self.advertised, address)
            || self
                .bound
                .as_deref()
                .is_some_and(|b| same_address(b, address) || wildcard(b))
    }

    /// Whether a client may use `mechanism` here. A SASL listener whose
    /// mechanisms the broker did not tell is given the benefit of the doubt.
    fn offers(&self, mechanism: &str) -> bool {
        self.mechanisms.is_empty() || self.mechanisms.iter().any(|m| m == mechanism)
    }

    /// `` `secure` (SASL_SSL at 127.0.0.1:9093, SCRAM-SHA-512) ``.
    fn describe(&self) -> String {
        let mechanisms = if self.mechanisms.is_empty() {
            String::new()
        } else {
            format!(", {}", self.mechanisms.join(", "))
        };
        format!("`{}` ({} at {}{mechanisms})", self.name, self.protocol, self.advertised)
    }
}

// ---------------------------------------------------------------------------
// The rule

/// D009: every finding about the client's security protocol and mechanism.
pub(crate) fn check(s: &Settings<'_>, options: &LintOptions, out: &mut Vec<Finding>) {
    if let Some(failure) = &options.broker_failure {
        out.push(crate::connect::finding(s, failure, options.broker.is_some()));
    }
    let listener = options.broker.as_ref().and_then(|b| listener(s, b, out));
    let Some(protocol) = protocol(s, listener, out) else {
        return;
    };
    if let Some(l) = listener
        && l.protocol != protocol.get()
    {
        out.push(protocol_mismatch(s, &protocol, l));
    }
    // The mechanism is judged for the protocol the client must use: the
    // listener's when it is known.
    let wanted = listener.map_or(protocol.get(), |l| l.protocol);
    mechanism(s, wanted, listener, out);
}

/// The listener the client's `bootstrap.servers` (or, without them, the
/// `--broker` address) reaches; a warning when the broker has listeners and
/// none of them is at those addresses.
fn listener<'b>(s: &Settings<'_>, broker: &'b BrokerLimits, out: &mut Vec<Finding>) -> Option<&'b BrokerListener> {
    if broker.listeners.is_empty() {
        return None;
    }
    let entry = s.entry("bootstrap.servers");
    let addresses: Vec<&str> = match entry {
        Some(e) => list_items(&e.value).collect(),
        None => vec![broker.source.as_str()],
    };
    let found = addresses
        .iter()
        .find_map(|a| broker.listeners.iter().find(|l| l.reaches(a)));
    if found.is_none() {
        out.push(no_listener(entry, broker, &addresses));
    }
    found
}

fn no_listener(entry: Option<&Entry>, broker: &BrokerLimits, addresses: &[&str]) -> Finding {
    let quoted: Vec<String> = addresses.iter().map(|a| format!("`{a}`")).collect();
    let listeners: Vec<String> = broker.listeners.iter().map(BrokerListener::describe).collect();
    Finding::new(
        &rules::SECURITY_NOT_OFFERED,
        format!(
            "no listener of the broker at {} is at {}",
            broker.source,
            quoted.join(", ")
        ),
    )
    .severity(Severity::Warning)
    .at_value(entry, "none of the broker's listeners")
    .help(format!("the broker's listeners are {}", listeners.join(", ")))
    .why("which listener the client reaches is unknown, so its security protocol and SASL mechanism were not compared with the broker's")
}

/// The client's security protocol; `None`, with an error, when the file's
/// word is none of them.
fn protocol<'a>(
    s: &Settings<'a>,
    listener: Option<&BrokerListener>,
    out: &mut Vec<Finding>,
) -> Option<Value<'a, Protocol>> {
    match s.text("security.protocol")? {
        Value::Default(word) => Protocol::parse(word).map(Value::Default),
        Value::Set(e, word) => match Protocol::parse(word) {
            Some(p) => Some(Value::Set(e, p)),
            None => {
                out.push(unknown_protocol(s, e, listener));
                None
            }
        },
    }
}

fn unknown_protocol(s: &Settings<'_>, e: &Entry, listener: Option<&BrokerListener>) -> Finding {
    let (meant, label) = match listener {
        Some(l) => (Some(l.protocol), format!("the listener there is {}", l.protocol)),
        None => {
            let meant = Protocol::meant(&e.value);
            (meant, meant.map_or(String::new(), |p| format!("did you mean `{p}`?")))
        }
    };
    let finding = Finding::new(
        &rules::SECURITY_NOT_OFFERED,
        format!("`{}={}` is not a security protocol", e.key, e.value),
    )
    .why(format!(
        "{} refuses to start: the protocol is one of PLAINTEXT, SSL, SASL_PLAINTEXT and SASL_SSL",
        client_name(s.dialect)
    ));
    match meant {
        Some(p) => finding
            .at(e.value_span.clone(), label)
            .help(format!("write `{}={p}`", e.key))
            .fix(Fix::replace(s.file, e, &e.key, p.name())),
        None => finding
            .at(e.value_span.clone(), "not a security protocol")
            .help("write the protocol of the broker's listener: `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`"),
    }
}

fn client_name(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Java => "the Java client",
        Dialect::Librdkafka => "librdkafka",
    }
}

fn protocol_mismatch(s: &Settings<'_>, protocol: &Value<'_, Protocol>, l: &BrokerListener) -> Finding {
    let mut help = format!("write `security.protocol={}`", l.protocol);
    if l.protocol.tls() && !protocol.get().tls() {
        let trust = match s.dialect {
            Dialect::Java => "`ssl.truststore.location`",
            Dialect::Librdkafka => "`ssl.ca.location`",
        };
        help.push_str(&format!(
            ", and trust the CA that signed the broker's certificate ({trust})"
        ));
    }
    Finding::new(
        &rules::SECURITY_NOT_OFFERED,
        format!(
            "{}, but the listener `{}` at {} is {}",
            setting("security.protocol", protocol),
            l.name,
            l.advertised,
            l.protocol
        ),
    )
    .at_value(protocol.entry(), format!("the listener there is {}", l.protocol))
    .help(help)
    .why(mismatch_why(protocol.get(), l.protocol))
    .fix(Fix::set(s, "security.protocol", l.protocol.name()))
}

/// What a client of protocol `client` meets on a listener of `listener`.
fn mismatch_why(client: Protocol, listener: Protocol) -> &'static str {
    match (client.tls(), listener.tls()) {
        (false, true) => {
            "the client writes its requests in clear to a port that waits for a TLS handshake: it never connects, and logs only timeouts and disconnections"
        }
        (true, false) => {
            "the client starts a TLS handshake the listener does not speak: it never connects, and its errors (handshake failures, disconnections) do not say why"
        }
        _ if listener.sasl() => {
            "the listener answers nothing but ApiVersions and SASL before a client authenticates: the client's first request closes its connection, again and again"
        }
        _ => {
            "the listener has no SASL: it refuses the client's SaslHandshake and closes the connection, so the client never connects"
        }
    }
}

// ---------------------------------------------------------------------------
// The mechanism

/// The key of the mechanism in `dialect`, for fixes that add it.
fn mechanism_key(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Java => "sasl.mechanism",
        Dialect::Librdkafka => "sasl.mechanisms",
    }
}

fn mechanism(s: &Settings<'_>, wanted: Protocol, listener: Option<&BrokerListener>, out: &mut Vec<Finding>) {
    if !wanted.sasl() {
        // One entry, whichever of librdkafka's two spellings the file uses.
        if let Some(e) = s.entry("sasl.mechanism").or_else(|| s.entry("sasl.mechanisms")) {
            out.push(unused_mechanism(e, wanted, listener));
        }
        return;
    }
    let Some(value) = s.text("sasl.mechanism") else {
        return;
    };
    let name = value.get().trim();
    let offered_here = listener.is_none_or(|l| l.offers(name));
    if !MECHANISMS.contains(&name) {
        out.push(not_offered(s, &value, listener));
    } else if let (false, Some(l)) = (offered_here, listener) {
        out.push(not_on_listener(s, &value, l));
    } else if name == "PLAIN" && wanted == Protocol::SaslPlaintext {
        out.push(plain_in_clear(&value));
    }
}

/// A mechanism set where nothing authenticates with SASL.
fn unused_mechanism(e: &Entry, wanted: Protocol, listener: Option<&BrokerListener>) -> Finding {
    let over = match listener {
        Some(l) => format!("the listener `{}` is {wanted}, without SASL", l.name),
        None => format!("`security.protocol` {wanted} has no SASL"),
    };
    Finding::new(
        &rules::SECURITY_NOT_OFFERED,
        format!("`{}={}` is never used: {over}", e.key, e.value),
    )
    .severity(Severity::Warning)
    .at(e.value_span.clone(), format!("unused over {wanted}"))
    .help(format!(
        "delete `{}` (and the credentials), or use a SASL protocol if the client is meant to authenticate",
        e.key
    ))
    .why(format!(
        "over {wanted} the client never authenticates with SASL, whatever the file's credentials say"
    ))
    .fix(Fix::delete(e))
}

/// The mechanism to suggest instead of `name`: the one it misspells, if the
/// listener offers it, else the strongest the listener (or Veltrix) offers.
fn replacement<'l>(name: &str, listener: Option<&'l BrokerListener>) -> &'l str {
    let offered = |m: &str| listener.is_none_or(|l| l.offers(m));
    let first = name.split([',', ' ']).find(|w| !w.is_empty()).unwrap_or(name);
    if let Some(meant) = nearest(&MECHANISMS, first).filter(|m| offered(m)) {
        return meant;
    }
    listener
        .and_then(|l| l.mechanisms.first())
        .map_or(MECHANISMS[0], String::as_str)
}

/// A mechanism Veltrix does not offer: GSSAPI, OAUTHBEARER, a misspelt
/// name, a list, or the clients' default GSSAPI.
fn not_offered(s: &Settings<'_>, value: &Value<'_, &str>, listener: Option<&BrokerListener>) -> Finding {
    let name = value.get().trim();
    let instead = replacement(name, listener);
    let key = mechanism_key(s.dialect);
    let (message, label) = match value {
        Value::Default(_) => (
            format!(
                "{} over SASL: {} asks for Kerberos, which Veltrix does not offer",
                setting(key, value),
                client_name(s.dialect)
            ),
            String::new(),
        ),
        Value::Set(e, _) if NOT_OFFERED.contains(&name) => (
            format!("`{}={name}`: Veltrix does not offer {name}", e.key),
            "not offered by Veltrix".to_owned(),
        ),
        Value::Set(e, _) if name.contains([',', ' ']) => (
            format!("`{}={name}`: a client uses one mechanism, not a list", e.key),
            format!("did you mean `{instead}`?"),
        ),
        Value::Set(e, _) => (
            format!("`{}={name}` is not a mechanism Veltrix offers", e.key),
            format!("did you mean `{instead}`? (names are case-sensitive)"),
        ),
    };
    let finding = Finding::new(&rules::SECURITY_NOT_OFFERED, message)
        .help(format!(
            "use `{instead}`, which {} offers, {}",
            offerer(listener),
            credentials(s.dialect, instead)
        ))
        .why("the broker answers the client's SaslHandshake with UNSUPPORTED_SASL_MECHANISM and closes the connection: the client never authenticates");
    match value.entry() {
        Some(e) => finding
            .at(e.value_span.clone(), label)
            .fix(Fix::replace(s.file, e, &e.key, instead)),
        None => java_ignored_spelling(s, finding, instead),
    }
}

/// A Java file that sets only librdkafka's `sasl.mechanisms`: the Java
/// client ignores the key and asks for its default, so the finding is placed
/// there and its fix renames the key.
fn java_ignored_spelling(s: &Settings<'_>, finding: Finding, instead: &str) -> Finding {
    let ignored = (s.dialect == Dialect::Java)
        .then(|| s.file.entries.iter().rev().find(|e| e.key == "sasl.mechanisms"))
        .flatten();
    match ignored {
        Some(e) => {
            let value = if MECHANISMS.contains(&e.value.trim()) {
                e.value.trim()
            } else {
                instead
            };
            finding
                .at(
                    e.key_span.clone(),
                    "librdkafka's spelling, which the Java client ignores",
                )
                .fix(Fix::replace(s.file, e, "sasl.mechanism", value))
        }
        None => finding.fix(Fix::set(s, mechanism_key(s.dialect), instead)),
    }
}

fn offerer(listener: Option<&BrokerListener>) -> String {
    match listener {
        Some(l) => format!("the listener `{}`", l.name),
        None => "Veltrix".to_owned(),
    }
}

/// Where the client's credentials for `mechanism` go.
fn credentials(dialect: Dialect, mechanism: &str) -> &'static str {
    match (dialect, mechanism) {
        (Dialect::Java, "PLAIN") => "with `PlainLoginModule` and the user's name and password in `sasl.jaas.config`",
        (Dialect::Java, _) => "with `ScramLoginModule` and the user's name and password in `sasl.jaas.config`",
        (Dialect::Librdkafka, _) => "with the user's name and password in `sasl.username` and `sasl.password`",
    }
}

/// A mechanism Veltrix offers, but not on the listener at the client's
/// address.
fn not_on_listener(s: &Settings<'_>, value: &Value<'_, &str>, l: &BrokerListener) -> Finding {
    let instead = replacement(value.get(), Some(l));
    Finding::new(
        &rules::SECURITY_NOT_OFFERED,
        format!(
            "{}, but the listener `{}` at {} offers {}",
            setting(mechanism_key(s.dialect), value),
            l.name,
            l.advertised,
            l.mechanisms.join(", ")
        ),
    )
    .at_value(value.entry(), "not offered on this listener")
    .help(format!(
        "use `{instead}`, which the listener offers, {}",
        credentials(s.dialect, instead)
    ))
    .why("the broker answers the client's SaslHandshake with UNSUPPORTED_SASL_MECHANISM and the mechanisms it offers, and closes the connection")
    .fix(Fix::set(s, mechanism_key(s.dialect), instead))
}

/// PLAIN sends the password itself; without TLS, anyone on the path reads it.
fn plain_in_clear(value: &Value<'_, &str>) -> Finding {
    Finding::new(
        &rules::SECURITY_NOT_OFFERED,
        "PLAIN over SASL_PLAINTEXT: the password crosses the network in clear",
    )
    .severity(Severity::Warning)
    .at_value(value.entry(), "sends the password itself")
    .help("use `security.protocol=SASL_SSL`, or a SCRAM mechanism, which never sends the password")
    .why("anyone who can see the traffic reads the password and can log in as this user")
}
