//! Rule D009 in full: the client's `security.protocol` and SASL mechanism
//! read alone (words that are no protocol, mechanisms Veltrix does not
//! offer, the clients' default GSSAPI, a mechanism that is never used, PLAIN
//! in clear), then against the listeners a broker describes (`--broker`):
//! the listener at the client's address decides the protocol and the
//! mechanisms, and an address no listener is at is said. The broker's
//! listeners are given as DescribeConfigs answers them, through
//! `broker_listeners`.

use std::collections::BTreeMap;

use veltrix_doctor::{
    BrokerLimits, BrokerListener, Dialect, Finding, FixKind, LintOptions, Protocol, Report, Role, Severity,
    broker_listeners, lint,
};

use crate::{absent, opts, props};

const J: Dialect = Dialect::Java;
const R: Dialect = Dialect::Librdkafka;
const P: Role = Role::Producer;

/// The D009 findings of `report`, in file order.
fn d009(report: &Report) -> Vec<&Finding> {
    report.findings.iter().filter(|f| f.id() == "D009").collect()
}

/// The one D009 finding of `report`.
fn one(report: &Report) -> &Finding {
    let found = d009(report);
    assert_eq!(found.len(), 1, "expected one D009 in:\n{}", report.render(false));
    found[0]
}

/// The replacement line of a finding's fix.
fn fix(f: &Finding) -> Option<&str> {
    f.fix.as_ref().map(|x| x.line.as_str())
}

// ---------------------------------------------------------------------------
// The file alone

/// A word that is none of the four protocols is an error; the fix is the
/// protocol it most likely means, by its parts or its spelling.
#[test]
fn a_security_protocol_that_is_none_of_the_four_gets_the_one_it_means() {
    for (word, meant) in [
        ("SSL_SASL", Some("SASL_SSL")),
        ("sasl-tls", Some("SASL_SSL")),
        ("SASL", Some("SASL_SSL")),
        ("SASL_PLAIN", Some("SASL_PLAINTEXT")),
        ("TLS", Some("SSL")),
        ("PLAINTXT", Some("PLAINTEXT")),
        ("kerberos", None),
    ] {
        let r = props(&format!("security.protocol={word}\n"), J, P);
        let f = one(&r);
        assert_eq!(f.severity, Severity::Error, "{word}");
        assert_eq!(f.line(), Some(1), "{word}");
        assert!(f.message.contains("is not a security protocol"), "{}", f.message);
        let wanted = meant.map(|m| format!("security.protocol={m}"));
        assert_eq!(fix(f), wanted.as_deref(), "{word}");
    }
    // Both clients read the protocol in any case.
    for word in ["sasl_ssl", "Sasl_Plaintext", " SASL_SSL "] {
        let r = props(
            &format!("security.protocol={word}\nsasl.mechanisms=SCRAM-SHA-256\n"),
            R,
            P,
        );
        absent(&r, "D009");
    }
}

/// Over SASL, a mechanism Veltrix does not offer is an error: GSSAPI and
/// OAUTHBEARER, a name in the wrong case or misspelt, a list.
#[test]
fn mechanisms_veltrix_does_not_offer_are_errors_with_the_one_to_use() {
    for (value, fixed, said) in [
        ("GSSAPI", "SCRAM-SHA-512", "Veltrix does not offer GSSAPI"),
        ("OAUTHBEARER", "SCRAM-SHA-512", "Veltrix does not offer OAUTHBEARER"),
        ("scram-sha-256", "SCRAM-SHA-256", "is not a mechanism Veltrix offers"),
        ("SCRAM-SHA512", "SCRAM-SHA-512", "is not a mechanism Veltrix offers"),
        ("Plain", "PLAIN", "is not a mechanism Veltrix offers"),
        (
            "SCRAM-SHA-256,SCRAM-SHA-512",
            "SCRAM-SHA-256",
            "one mechanism, not a list",
        ),
    ] {
        let r = props(&format!("security.protocol=SASL_SSL\nsasl.mechanisms={value}\n"), R, P);
        let f = one(&r);
        assert_eq!(f.severity, Severity::Error, "{value}");
        assert_eq!(f.line(), Some(2), "{value}");
        assert!(f.message.contains(said), "{value}: {}", f.message);
        assert_eq!(fix(f), Some(format!("sasl.mechanisms={fixed}").as_str()), "{value}");
        assert!(f.help.contains("`sasl.username`"), "{}", f.help);
    }
    // The Java client's credentials go in its JAAS configuration.
    let r = props("security.protocol=SASL_SSL\nsasl.mechanism=GSSAPI\n", J, P);
    assert!(one(&r).help.contains("ScramLoginModule"), "{}", one(&r).help);
}

/// No mechanism over SASL: both clients ask for GSSAPI, their default, which
/// Veltrix does not offer. The finding has no line and adds the mechanism.
#[test]
fn sasl_without_a_mechanism_is_the_clients_default_gssapi() {
    for (client, key) in [(J, "sasl.mechanism"), (R, "sasl.mechanisms")] {
        let r = props(
            "bootstrap.servers=x:9092\nsecurity.protocol=SASL_PLAINTEXT\n",
            client,
            P,
        );
        let f = one(&r);
        assert_eq!((f.severity, f.line()), (Severity::Error, None));
        assert!(
            f.message.contains(&format!("`{key}` left at its default `GSSAPI`")),
            "{}",
            f.message
        );
        let fixed = f.fix.as_ref().unwrap();
        assert_eq!(fixed.kind, FixKind::Insert);
        assert_eq!(fixed.line, format!("{key}=SCRAM-SHA-512"));
    }
}

/// A Java file with librdkafka's `sasl.mechanisms`: the Java client ignores
/// the key and asks for GSSAPI. The finding points at the key; its fix
/// renames it and keeps the mechanism.
#[test]
fn a_java_file_with_librdkafkas_spelling_asks_for_gssapi() {
    let r = props("security.protocol=SASL_SSL\nsasl.mechanisms=SCRAM-SHA-256\n", J, P);
    let f = one(&r);
    assert_eq!((f.severity, f.line()), (Severity::Error, Some(2)));
    assert!(f.label.contains("Java client ignores"), "{}", f.label);
    assert_eq!(fix(f), Some("sasl.mechanism=SCRAM-SHA-256"));
    // D003 says the same key is librdkafka's, with the same fix.
    let other = r.findings.iter().find(|f| f.id() == "D003").unwrap();
    assert_eq!(fix(other), Some("sasl.mechanism=SCRAM-SHA-256"));
}

/// A mechanism where the protocol has no SASL is never used: a warning whose
/// fix deletes it, over PLAINTEXT (also by default) and over SSL.
#[test]
fn a_mechanism_without_sasl_is_unused() {
    for (file, over) in [
        ("sasl.mechanism=PLAIN\n", "PLAINTEXT"),
        ("security.protocol=SSL\nsasl.mechanism=SCRAM-SHA-512\n", "SSL"),
        // Never used, so never judged: GSSAPI over SSL is not an error.
        ("security.protocol=ssl\nsasl.mechanism=GSSAPI\n", "SSL"),
    ] {
        let r = props(file, J, P);
        let f = one(&r);
        assert_eq!(f.severity, Severity::Warning, "{file}");
        assert!(f.message.contains(&format!("{over} has no SASL")), "{}", f.message);
        assert_eq!(f.fix.as_ref().map(|x| x.kind), Some(FixKind::Delete));
    }
}

/// PLAIN sends the password; over SASL_PLAINTEXT it crosses the network in
/// clear. Over SASL_SSL, and SCRAM over SASL_PLAINTEXT, are fine.
#[test]
fn plain_over_sasl_plaintext_is_a_warning() {
    let r = props("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n", J, P);
    let f = one(&r);
    assert_eq!((f.severity, f.line()), (Severity::Warning, Some(2)));
    assert!(
        f.message.contains("password crosses the network in clear"),
        "{}",
        f.message
    );
    assert!(
        f.fix.is_none(),
        "no one line fixes it: TLS or SCRAM credentials are needed"
    );
    for file in [
        "security.protocol=SASL_SSL\nsasl.mechanism=PLAIN\n",
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-256\n",
    ] {
        absent(&props(file, J, P), "D009");
    }
}

/// Right settings, as services write them, have no D009.
#[test]
fn sound_security_settings_have_no_finding() {
    for (file, client) in [
        (
            "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\nsasl.jaas.config=x\n",
            J,
        ),
        ("security.protocol=sasl_ssl\nsasl.mechanism=SCRAM-SHA-256\n", R),
        ("security.protocol=SASL_PLAINTEXT\nsasl.mechanisms=SCRAM-SHA-512\n", R),
        ("security.protocol=SSL\nssl.truststore.location=/etc/t.jks\n", J),
        ("bootstrap.servers=x:9092\n", J),
    ] {
        absent(&props(file, client, P), "D009");
    }
}

// ---------------------------------------------------------------------------
// Against the broker's listeners

/// DescribeConfigs' answer of a broker with a loopback PLAINTEXT listener
/// and a SASL_SSL one bound to every address, advertised by name.
fn described() -> BTreeMap<String, String> {
    [
        ("message.max.bytes", "1048588"),
        ("listeners", "kafka://127.0.0.1:9092,secure://0.0.0.0:9093"),
        (
            "advertised.listeners",
            "kafka://127.0.0.1:9092,secure://broker.example.com:9093",
        ),
        ("listener.security.protocol.map", "kafka:PLAINTEXT,secure:SASL_SSL"),
        ("sasl.enabled.mechanisms", "SCRAM-SHA-512,SCRAM-SHA-256"),
        (
            "listener.name.secure.sasl.enabled.mechanisms",
            "SCRAM-SHA-512,SCRAM-SHA-256",
        ),
        ("listener.name.secure.ssl.client.auth", "none"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn with_broker(client: Dialect) -> LintOptions {
    LintOptions {
        broker: Some(BrokerLimits {
            source: "127.0.0.1:9092".to_owned(),
            message_max_bytes: Some(1_048_588),
            topics: Vec::new(),
            listeners: broker_listeners(&described()),
        }),
        ..opts(client, P)
    }
}

fn checked(source: &str, client: Dialect) -> Report {
    lint("client.properties", source, &with_broker(client))
}

#[test]
fn listeners_are_read_from_describe_configs() {
    let listeners = broker_listeners(&described());
    assert_eq!(
        listeners,
        vec![
            BrokerListener {
                name: "kafka".to_owned(),
                protocol: Protocol::Plaintext,
                advertised: "127.0.0.1:9092".to_owned(),
                bound: Some("127.0.0.1:9092".to_owned()),
                mechanisms: Vec::new(),
            },
            BrokerListener {
                name: "secure".to_owned(),
                protocol: Protocol::SaslSsl,
                advertised: "broker.example.com:9093".to_owned(),
                bound: Some("0.0.0.0:9093".to_owned()),
                mechanisms: vec!["SCRAM-SHA-512".to_owned(), "SCRAM-SHA-256".to_owned()],
            },
        ]
    );
    // Where a client connects, and which listener it reaches.
    let secure = &listeners[1];
    assert!(secure.reaches("broker.example.com:9093"));
    assert!(secure.reaches("10.1.2.3:9093"), "bound to every address");
    assert!(!secure.reaches("broker.example.com:9092"));
    assert!(listeners[0].reaches("localhost:9092"), "the loopback by any name");
    assert!(!listeners[0].reaches("10.1.2.3:9092"));
}

/// A Kafka broker's usual answer: listener names that are protocol names,
/// no advertised listeners, mechanisms for all listeners at once; and a
/// broker that tells nothing of its listeners.
#[test]
fn listeners_of_a_kafka_broker_and_of_one_that_tells_none() {
    let configs: BTreeMap<String, String> = [
        ("listeners", "PLAINTEXT://:9092,SASL_SSL://:9093"),
        ("sasl.enabled.mechanisms", "PLAIN"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let listeners = broker_listeners(&configs);
    let read: Vec<(Protocol, &str, Vec<String>)> = listeners
        .iter()
        .map(|l| (l.protocol, l.advertised.as_str(), l.mechanisms.clone()))
        .collect();
    assert_eq!(
        read,
        vec![
            (Protocol::Plaintext, ":9092", vec![]),
            (Protocol::SaslSsl, ":9093", vec!["PLAIN".to_owned()]),
        ]
    );
    assert!(listeners[1].reaches("kafka-1:9093"), "no host is every address");
    assert!(broker_listeners(&BTreeMap::new()).is_empty());
}

/// The client's protocol must be the one of the listener at its address:
/// an error naming the listener, whose fix is the listener's protocol; the
/// missing mechanism is then the next error, with one the listener offers.
#[test]
fn the_protocol_must_be_the_listeners_at_the_clients_address() {
    let r = checked(
        "bootstrap.servers=broker.example.com:9093\nsecurity.protocol=PLAINTEXT\n",
        J,
    );
    let found = d009(&r);
    assert_eq!(found.len(), 2, "{}", r.render(false));
    let f = found[0];
    assert_eq!((f.severity, f.line()), (Severity::Error, Some(2)));
    assert!(
        f.message
            .contains("the listener `secure` at broker.example.com:9093 is SASL_SSL"),
        "{}",
        f.message
    );
    assert!(f.help.contains("ssl.truststore.location"), "{}", f.help);
    assert_eq!(fix(f), Some("security.protocol=SASL_SSL"));
    let mechanism = found[1];
    assert_eq!((mechanism.severity, mechanism.line()), (Severity::Error, None));
    assert_eq!(fix(mechanism), Some("sasl.mechanism=SCRAM-SHA-512"));
    // The protocol left out is PLAINTEXT, the default: the fix adds it.
    let r = checked("bootstrap.servers=10.0.0.7:9093\nsasl.mechanism=SCRAM-SHA-256\n", J);
    let f = one(&r);
    assert_eq!(f.line(), None);
    assert!(f.message.contains("left at its default `PLAINTEXT`"), "{}", f.message);
    assert_eq!(f.fix.as_ref().map(|x| x.kind), Some(FixKind::Insert));
    // Right for that listener: nothing to say.
    let r = checked(
        "bootstrap.servers=broker.example.com:9093\nsecurity.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-256\n",
        J,
    );
    absent(&r, "D009");
}

/// SASL to a PLAINTEXT listener: the protocol's error, and the mechanism is
/// then never used (a warning that deletes it).
#[test]
fn sasl_to_a_plaintext_listener_is_an_error_and_its_mechanism_unused() {
    let r = checked(
        "bootstrap.servers=127.0.0.1:9092\nsecurity.protocol=SASL_SSL\nsasl.mechanisms=SCRAM-SHA-512\n",
        R,
    );
    let found = d009(&r);
    assert_eq!(found.len(), 2, "{}", r.render(false));
    assert_eq!(found[0].severity, Severity::Error);
    assert!(
        found[0]
            .message
            .contains("the listener `kafka` at 127.0.0.1:9092 is PLAINTEXT"),
        "{}",
        found[0].message
    );
    assert_eq!(fix(found[0]), Some("security.protocol=PLAINTEXT"));
    assert_eq!(found[1].severity, Severity::Warning);
    assert!(
        found[1]
            .message
            .contains("the listener `kafka` is PLAINTEXT, without SASL")
    );
    assert_eq!(found[1].fix.as_ref().map(|x| x.kind), Some(FixKind::Delete));
}

/// A mechanism Veltrix offers but the listener does not: an error listing
/// the ones it does, whose fix is the strongest of them.
#[test]
fn the_mechanism_must_be_one_the_listener_offers() {
    let r = checked(
        "bootstrap.servers=broker.example.com:9093\nsecurity.protocol=SASL_SSL\nsasl.mechanism=PLAIN\n",
        J,
    );
    let f = one(&r);
    assert_eq!((f.severity, f.line()), (Severity::Error, Some(3)));
    assert!(
        f.message
            .contains("the listener `secure` at broker.example.com:9093 offers SCRAM-SHA-512, SCRAM-SHA-256"),
        "{}",
        f.message
    );
    assert_eq!(fix(f), Some("sasl.mechanism=SCRAM-SHA-512"));
    // A wrong word is fixed to the one it misspells, when the listener has it.
    let r = checked(
        "bootstrap.servers=broker.example.com:9093\nsecurity.protocol=SASL_SSL\nsasl.mechanism=scram-sha-256\n",
        J,
    );
    assert_eq!(fix(one(&r)), Some("sasl.mechanism=SCRAM-SHA-256"));
    // A word that is no protocol is fixed to the listener's.
    let r = checked("bootstrap.servers=broker.example.com:9093\nsecurity.protocol=TLS\n", J);
    let f = &d009(&r)[0];
    assert_eq!(fix(f), Some("security.protocol=SASL_SSL"));
    assert_eq!(f.label, "the listener there is SASL_SSL");
}

/// No listener at the client's addresses: a warning listing the broker's
/// listeners, and nothing compared. Without `bootstrap.servers`, the
/// `--broker` address is the client's.
#[test]
fn an_address_no_listener_is_at_is_said_with_the_listeners() {
    let r = checked(
        "bootstrap.servers=kafka-1:9092,kafka-2:9092\nsecurity.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n",
        J,
    );
    let f = one(&r);
    assert_eq!((f.severity, f.line()), (Severity::Warning, Some(1)));
    assert!(
        f.message
            .contains("no listener of the broker at 127.0.0.1:9092 is at `kafka-1:9092`, `kafka-2:9092`"),
        "{}",
        f.message
    );
    assert!(
        f.help.contains(
            "`kafka` (PLAINTEXT at 127.0.0.1:9092), `secure` (SASL_SSL at broker.example.com:9093, SCRAM-SHA-512, SCRAM-SHA-256)"
        ),
        "{}",
        f.help
    );
    let r = checked("security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n", J);
    let f = d009(&r)[0];
    assert!(
        f.message
            .contains("the listener `kafka` at 127.0.0.1:9092 is PLAINTEXT"),
        "{}",
        f.message
    );
    // A broker that tells no listener: the file alone is read.
    let mut options = with_broker(J);
    options.broker.as_mut().unwrap().listeners.clear();
    let r = lint(
        "c.properties",
        "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n",
        &options,
    );
    absent(&r, "D009");
}
