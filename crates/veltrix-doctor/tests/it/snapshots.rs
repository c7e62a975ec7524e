//! Snapshots of rendered diagnostics, so that their wording and layout are
//! reviewed in a diff like code. Plain rendering (no colours).

use veltrix_doctor::{BrokerLimits, Dialect, LintOptions, Role, TopicLimits, lint};

use crate::opts;

fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

fn render(name: &str, options: &LintOptions) -> String {
    lint(name, &fixture(name), options).render(false)
}

#[test]
fn java_producer() {
    insta::assert_snapshot!(render("java-producer-bad.properties", &LintOptions::default()));
}

#[test]
fn java_consumer() {
    insta::assert_snapshot!(render("java-consumer-bad.properties", &LintOptions::default()));
}

#[test]
fn librdkafka_producer_json() {
    insta::assert_snapshot!(render("librdkafka-producer-bad.json", &LintOptions::default()));
}

#[test]
fn librdkafka_consumer_defaults() {
    insta::assert_snapshot!(render("librdkafka-consumer-bad.properties", &LintOptions::default()));
}

#[test]
fn limits_from_a_broker() {
    let options = LintOptions {
        broker: Some(BrokerLimits {
            source: "127.0.0.1:9092".to_owned(),
            message_max_bytes: Some(1_048_588),
            topics: vec![TopicLimits {
                name: "orders".to_owned(),
                max_message_bytes: Some(524_288),
                retention_ms: Some(604_800_000),
            }],
            listeners: Vec::new(),
        }),
        processing_ms: Some(400_000),
        ..opts(Dialect::Java, Role::Both)
    };
    let src = "bootstrap.servers=127.0.0.1:9092\ngroup.id=billing\nenable.auto.commit=false\nauto.offset.reset=latest\nisolation.level=read_committed\nmax.request.size=2097152\n";
    insta::assert_snapshot!(lint("service.properties", src, &options).render(false));
}

#[test]
fn syntax_error_and_undetermined_client() {
    insta::assert_snapshot!(
        lint(
            "client.json",
            "{\n  \"bootstrap.servers\": \"127.0.0.1:9092\",\n  \"acks\" \"all\"\n}\n",
            &LintOptions::default()
        )
        .render(false)
    );
}

#[test]
fn explanation_of_a_rule() {
    let rule = veltrix_doctor::rules::find("D115").unwrap();
    insta::assert_snapshot!(veltrix_doctor::rules::explain(rule));
}

/// D009 on the file alone: a word that is no protocol, the Java client's
/// default mechanism (Kerberos), PLAIN in clear.
#[test]
fn security_read_alone() {
    let sound = "enable.idempotence=true\npartitioner=murmur2_random\n";
    let swapped = format!("bootstrap.servers=broker-1:9093\nsecurity.protocol=SSL_SASL\n{sound}");
    let kerberos = "bootstrap.servers=broker-1:9093\nsecurity.protocol=SASL_SSL\nsasl.jaas.config=x\n";
    let plain =
        format!("bootstrap.servers=broker-1:9093\nsecurity.protocol=SASL_PLAINTEXT\nsasl.mechanisms=PLAIN\n{sound}");
    let librdkafka = opts(Dialect::Librdkafka, Role::Producer);
    insta::assert_snapshot!(
        [
            lint("swapped.properties", &swapped, &librdkafka).render(false),
            lint("kerberos.properties", kerberos, &opts(Dialect::Java, Role::Producer)).render(false),
            lint("plain.properties", &plain, &librdkafka).render(false),
        ]
        .join("\n")
    );
}

/// D009 with `--broker`: the listener at the client's address decides the
/// protocol and the mechanism; an address no listener is at is said.
#[test]
fn security_against_the_brokers_listeners() {
    let configs: std::collections::BTreeMap<String, String> = [
        ("listeners", "kafka://127.0.0.1:9092,secure://0.0.0.0:9093"),
        ("advertised.listeners", "kafka://127.0.0.1:9092,secure://broker-1:9093"),
        ("listener.security.protocol.map", "kafka:PLAINTEXT,secure:SASL_SSL"),
        ("sasl.enabled.mechanisms", "SCRAM-SHA-512"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let options = LintOptions {
        broker: Some(BrokerLimits {
            source: "127.0.0.1:9092".to_owned(),
            message_max_bytes: Some(1_048_588),
            topics: Vec::new(),
            listeners: veltrix_doctor::broker_listeners(&configs),
        }),
        ..opts(Dialect::Java, Role::Producer)
    };
    let wrong_protocol = "bootstrap.servers=broker-1:9093\nsecurity.protocol=PLAINTEXT\nsasl.mechanism=PLAIN\n";
    let nowhere = "bootstrap.servers=broker-1:9094\nsecurity.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n";
    insta::assert_snapshot!(
        [
            lint("service.properties", wrong_protocol, &options).render(false),
            lint("elsewhere.properties", nowhere, &options).render(false),
        ]
        .join("\n")
    );
}
