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
