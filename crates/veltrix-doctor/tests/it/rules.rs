//! One test per rule of the catalogue, named after its id: each feeds a
//! configuration that breaks the rule and checks the rule id, the line it
//! points at (`None` for a default the file leaves in force) and the fix's
//! replacement line. `docs.rs` checks that no rule is without one.

use veltrix_doctor::{BrokerLimits, Dialect, FixKind, LintOptions, Role, Severity, TopicLimits, lint};

use crate::{absent, expect, opts, props};

const J: Dialect = Dialect::Java;
const R: Dialect = Dialect::Librdkafka;
const P: Role = Role::Producer;
const C: Role = Role::Consumer;

#[test]
fn d001_syntax() {
    let r = lint("c.json", "{\n  \"acks\": \"all\",\n  \"retries\" 3\n}\n", &opts(J, P));
    let f = expect(&r, "D001", Some(3), None);
    assert_eq!(f.location.as_ref().map(|l| l.column), Some(13));
    assert_eq!(r.exit_code(false), 1);
    // A malformed `\u` escape: Java's Properties.load throws.
    let r = props("acks=all\nclient.id=caf\\u00e-app\n", J, P);
    let f = expect(&r, "D001", Some(2), None);
    assert_eq!(f.location.as_ref().map(|l| l.column), Some(14));
    // Escaped backslashes and whole escapes are fine.
    absent(
        &props("client.id=caf\\u00e9-app\nssl.keystore.location=C:\\\\users\n", J, P),
        "D001",
    );
}

#[test]
fn d002_unknown_key_close_to_a_known_one_is_an_error_with_the_key_meant() {
    let r = props("acks=all\nenable.idempotency=true\n", J, P);
    let f = expect(&r, "D002", Some(2), Some("enable.idempotence=true"));
    assert_eq!(f.severity, Severity::Error);
    assert_eq!(f.label, "did you mean `enable.idempotence`?");
    // The misspelt key leaves librdkafka's default in force, which is off.
    let r = props("enable_auto_offset_store=false\n", R, C);
    expect(&r, "D002", Some(1), Some("enable.auto.offset.store=false"));
}

#[test]
fn d002_unknown_key_far_from_all_known_keys_is_a_warning() {
    let r = props("acks=all\nmy.service.region=eu-west\n", J, P);
    let f = expect(&r, "D002", Some(2), None);
    assert_eq!(f.severity, Severity::Warning);
    assert_eq!(r.exit_code(false), 0);
    assert_eq!(r.exit_code(true), 1);
}

#[test]
fn d003_other_client_key_names_the_clients_own_key() {
    let r = props("acks=all\nqueue.buffering.max.ms=20\n", J, P);
    expect(&r, "D003", Some(2), Some("linger.ms=20"));
    // Units convert: bytes to kilobytes.
    let r = props("buffer.memory=67108864\n", R, P);
    expect(&r, "D003", Some(1), Some("queue.buffering.max.kbytes=65536"));
    // No equivalent: the fix deletes the line.
    let r = props("max.block.ms=1000\n", R, P);
    let f = expect(&r, "D003", Some(1), Some(""));
    assert_eq!(f.fix.as_ref().map(|x| x.kind), Some(FixKind::Delete));
}

/// librdkafka refuses to start on a key it does not know: an error there; the
/// Java client ignores one: a warning.
#[test]
fn d003_is_an_error_for_the_client_that_refuses_the_key() {
    let r = props(
        "max.block.ms=1000
",
        R,
        P,
    );
    assert_eq!(expect(&r, "D003", Some(1), Some("")).severity, Severity::Error);
    assert_eq!(r.exit_code(false), 1);
    let r = props(
        "queue.buffering.max.ms=20
",
        J,
        P,
    );
    assert_eq!(
        expect(&r, "D003", Some(1), Some("linger.ms=20")).severity,
        Severity::Warning
    );
}

/// A misspelt word gets the allowed word nearest to it as its fix, not the
/// first of the list or a fixed one.
#[test]
fn d004_a_misspelt_word_is_fixed_to_the_nearest_allowed_one() {
    let cases = [
        ("compression.type=lz5\n", J, P, "compression.type=lz4"),
        ("auto.offset.reset=earlist\n", J, C, "auto.offset.reset=earliest"),
        ("acks=al\n", J, P, "acks=all"),
        ("compression.codec=zsdt\n", R, P, "compression.codec=zstd"),
        // A number is not a spelling: `2` is one edit from `0`, which loses
        // records; the safe value is the fix.
        ("acks=2\n", J, P, "acks=all"),
    ];
    for (source, client, role, fixed) in cases {
        expect(&props(source, client, role), "D004", Some(1), Some(fixed));
    }
    // No other rule reads the value D004 refuses.
    assert_eq!(props("acks=2\n", J, P).findings.len(), 1);
}

#[test]
fn d004_invalid_value_lists_the_allowed_values() {
    let r = props("acks=yes\n", J, P);
    let f = expect(&r, "D004", Some(1), Some("acks=all"));
    assert_eq!(f.label, "expected one of `all`, `-1`, `0`, `1`");
    let r = props("linger.ms=5ms\n", J, P);
    expect(&r, "D004", Some(1), Some("linger.ms=5"));
    let r = props("enable.idempotence=on\n", J, P);
    expect(&r, "D004", Some(1), None);
    let r = lint("c.json", "{\"retries\": -1}", &opts(R, P));
    expect(&r, "D004", Some(1), Some("\"retries\": 0"));
    // librdkafka reads `T` as true; Java does not.
    absent(
        &props("enable.idempotence=T\npartitioner=murmur2_random\n", R, P),
        "D004",
    );
}

#[test]
fn d005_duplicate_key_points_at_the_value_that_is_ignored() {
    let r = props("acks=1\nlinger.ms=5\nacks=all\n", J, P);
    let f = expect(&r, "D005", Some(1), Some(""));
    assert_eq!(f.related.len(), 1);
    // The last value wins, so acks=1 is not reported as in force.
    absent(&r, "D102");
    // librdkafka's aliases are one setting.
    let r = props("linger.ms=5\nqueue.buffering.max.ms=50\n", R, P);
    expect(&r, "D005", Some(1), Some(""));
}

#[test]
fn d006_client_undetermined() {
    let r = lint(
        "c.properties",
        "bootstrap.servers=127.0.0.1:9092\n",
        &LintOptions::default(),
    );
    let f = expect(&r, "D006", None, None);
    assert_eq!(f.severity, Severity::Note);
    assert_eq!((r.dialect, r.role), (J, Role::Both));
    absent(&props("bootstrap.servers=x\n", R, C), "D006");
}

#[test]
fn d007_empty_file() {
    for empty in ["", "\n\n", "# nothing yet\n! nor here\n"] {
        let r = props(empty, J, P);
        let f = expect(&r, "D007", None, None);
        assert_eq!(f.severity, Severity::Warning);
    }
    let json = lint("c.json", "{}", &LintOptions::default());
    expect(&json, "D007", None, None);
    absent(&props("bootstrap.servers=x\n", J, P), "D007");
}

#[test]
fn d008_continuation_swallows_key() {
    let r = props("bootstrap.servers=x\nacks=all \\\n  linger.ms=5\nretries=3\n", J, P);
    let f = expect(&r, "D008", Some(2), Some("acks=all"));
    assert!(f.message.contains("`linger.ms`"), "{}", f.message);
    assert!(f.help.contains("end of line 2"), "{}", f.help);
    let fix = f.fix.as_ref().unwrap();
    assert_eq!(fix.text, "acks=all\nlinger.ms=5", "both settings kept");
    absent(&r, "D004");
    // A list continued on purpose is not a swallowed key.
    absent(
        &props("bootstrap.servers=a:9092,\\\n    b:9092\nacks=all\n", J, P),
        "D008",
    );
}

/// The rule's main cases; `security.rs` has the rest, and the broker's
/// listeners.
#[test]
fn d009_security_not_offered() {
    // Not a protocol: the one it means is the fix.
    let r = props("bootstrap.servers=x:9092\nsecurity.protocol=SSL_SASL\n", J, P);
    let f = expect(&r, "D009", Some(2), Some("security.protocol=SASL_SSL"));
    assert_eq!(f.severity, Severity::Error);
    // Every protocol is served now, in any case.
    for protocol in ["PLAINTEXT", "plaintext", "SSL", "ssl"] {
        let r = props(
            &format!("bootstrap.servers=x:9092\nsecurity.protocol={protocol}\n"),
            J,
            P,
        );
        absent(&r, "D009");
    }
    // A mechanism Veltrix does not offer.
    let r = props("security.protocol=SASL_SSL\nsasl.mechanism=GSSAPI\n", J, P);
    let f = expect(&r, "D009", Some(2), Some("sasl.mechanism=SCRAM-SHA-512"));
    assert!(f.message.contains("Veltrix does not offer GSSAPI"), "{}", f.message);
    // A mechanism over PLAINTEXT is never used: the client does not
    // authenticate, whatever the file says.
    let r = props("bootstrap.servers=x:9092\nsasl.mechanisms=SCRAM-SHA-512\n", R, P);
    let f = expect(&r, "D009", Some(2), Some(""));
    assert_eq!(f.severity, Severity::Warning);
}

/// A continued line is part of the value, never a comment: no list is
/// invented from it, and a swallowed key is D008's alone.
#[test]
fn d010_names_what_is_no_host_and_leaves_a_swallowed_key_to_d008() {
    let r = props("bootstrap.servers=a:9092,b:9092,\\\n#   c:9092 (retired)\n", J, P);
    let f = expect(&r, "D010", Some(1), None);
    assert!(f.message.contains("never a comment"), "{}", f.message);
    let r = props("bootstrap.servers=a:9092,\\\nacks=all\n", J, P);
    absent(&r, "D010");
    assert!(r.findings.iter().any(|f| f.id() == "D008"), "{}", r.render(false));
}

/// A byte-order mark is read as part of the first key: said so, with the key
/// (or the comment) it hides.
#[test]
fn d002_a_byte_order_mark_is_named_with_the_key_it_hides() {
    let r = props("\u{feff}acks=all\n", J, P);
    let f = expect(&r, "D002", Some(1), Some("acks=all"));
    assert!(f.message.contains("byte-order mark"), "{}", f.message);
    let r = props("\u{feff}# producer settings\nacks=all\n", J, P);
    let f = expect(&r, "D002", Some(1), Some(""));
    assert!(
        f.message.contains("comment on this line is read as a setting"),
        "{}",
        f.message
    );
}

#[test]
fn d010_bootstrap_malformed() {
    for (value, fixed) in [
        ("kafka://a:9092;b", "bootstrap.servers=a:9092,b:9092"),
        ("a:9092 b:9093", "bootstrap.servers=a:9092,b:9093"),
        ("broker", "bootstrap.servers=broker:9092"),
    ] {
        let r = props(&format!("bootstrap.servers={value}\n"), J, P);
        expect(&r, "D010", Some(1), Some(fixed));
    }
    let r = props("bootstrap.servers=a:99999\n", J, P);
    let f = expect(&r, "D010", Some(1), None);
    assert!(f.message.contains("1 to 65535"), "{}", f.message);
    for good in ["a:9092", "a:9092,b:9093", "127.0.0.1:9092", "[::1]:9092"] {
        absent(&props(&format!("bootstrap.servers={good}\n"), J, P), "D010");
    }
}

#[test]
fn d101_acks_zero() {
    let r = props("bootstrap.servers=x\nacks=0\n", J, P);
    let f = expect(&r, "D101", Some(2), Some("acks=all"));
    assert_eq!(f.location.as_ref().map(|l| l.column), Some(6));
    assert_eq!(r.exit_code(false), 1);
}

#[test]
fn d102_acks_one() {
    let r = props("request.required.acks=1\nenable.idempotence=false\n", R, P);
    expect(&r, "D102", Some(1), Some("request.required.acks=all"));
}

#[test]
fn d103_idempotence_disabled_explicitly_or_by_librdkafkas_default() {
    let r = props("acks=all\nenable.idempotence=false\n", J, P);
    expect(&r, "D103", Some(2), Some("enable.idempotence=true"));
    // librdkafka's default is off: nothing to point at, a line to add.
    let r = props("acks=all\npartitioner=murmur2_random\n", R, P);
    let f = expect(&r, "D103", None, Some("enable.idempotence=true"));
    assert_eq!(f.fix.as_ref().map(|x| x.kind), Some(FixKind::Insert));
    assert!(f.consequence.contains("reordering"), "{}", f.consequence);
}

#[test]
fn d104_idempotence_conflict() {
    let r = props(
        "enable.idempotence=true\nmax.in.flight.requests.per.connection=10\n",
        J,
        P,
    );
    let f = expect(&r, "D104", Some(2), Some(""));
    assert_eq!(f.related.len(), 1, "points at enable.idempotence too");
    let r = props("enable.idempotence=true\nacks=1\npartitioner=murmur2_random\n", R, P);
    expect(&r, "D104", Some(2), Some(""));
}

#[test]
fn d105_idempotence_silently_disabled_by_a_java_default_conflict() {
    let r = props("acks=all\nmax.in.flight.requests.per.connection=6\n", J, P);
    expect(&r, "D105", Some(2), Some(""));
    // librdkafka's idempotence is off by default: there is nothing to disable.
    absent(&props("max.in.flight=6\n", R, P), "D105");
}

#[test]
fn d106_retries_zero() {
    let r = props("enable.idempotence=false\nretries=0\n", J, P);
    expect(&r, "D106", Some(2), Some(""));
}

#[test]
fn d107_reordering_on_retry_when_idempotence_is_silently_off() {
    let r = props("acks=1\nmax.in.flight.requests.per.connection=3\n", J, P);
    expect(&r, "D107", Some(2), Some("max.in.flight.requests.per.connection=1"));
    // One request in flight keeps order.
    absent(
        &props("acks=1\nmax.in.flight.requests.per.connection=1\n", J, P),
        "D107",
    );
}

#[test]
fn d108_delivery_timeout_inconsistent() {
    let r = props(
        "linger.ms=100\nrequest.timeout.ms=30000\ndelivery.timeout.ms=30000\n",
        J,
        P,
    );
    let f = expect(&r, "D108", Some(3), Some("delivery.timeout.ms=30100"));
    assert_eq!(f.related.len(), 2);
    absent(&r, "D109");
    let r = props("linger.ms=1000\nmessage.timeout.ms=500\n", R, P);
    expect(&r, "D108", Some(2), Some("message.timeout.ms=300000"));
    // Not set explicitly: Java raises the default itself.
    absent(&props("linger.ms=200000\n", J, P), "D108");
}

#[test]
fn d109_delivery_timeout_short() {
    let r = props("request.timeout.ms=5000\ndelivery.timeout.ms=10000\n", J, P);
    expect(&r, "D109", Some(2), Some("delivery.timeout.ms=120000"));
    let r = props("delivery.timeout.ms=10000\n", R, P);
    expect(&r, "D109", Some(1), Some("delivery.timeout.ms=300000"));
}

#[test]
fn d110_message_timeout_infinite() {
    let r = props("partitioner=murmur2_random\nmessage.timeout.ms=0\n", R, P);
    expect(&r, "D110", Some(2), Some("message.timeout.ms=300000"));
}

#[test]
fn d111_buffer_small() {
    let r = props("buffer.memory=65536\n", J, P);
    expect(&r, "D111", Some(1), Some("buffer.memory=33554432"));
    let r = props("buffer.memory=2000000\nmax.request.size=4000000\n", J, P);
    expect(&r, "D111", Some(1), Some("buffer.memory=33554432"));
    let r = props("queue.buffering.max.messages=100\n", R, P);
    expect(&r, "D111", Some(1), Some("queue.buffering.max.messages=100000"));
}

#[test]
fn d112_buffer_huge() {
    let r = props("buffer.memory=4294967296\n", J, P);
    let f = expect(&r, "D112", Some(1), None);
    assert_eq!(f.severity, Severity::Note);
    let r = props("queue.buffering.max.kbytes=2097152\n", R, P);
    expect(&r, "D112", Some(1), None);
}

#[test]
fn d113_max_block_zero() {
    let r = props("max.block.ms=0\n", J, P);
    expect(&r, "D113", Some(1), Some("max.block.ms=60000"));
}

fn limits(broker: u64, topic: Option<u64>) -> LintOptions {
    LintOptions {
        broker: Some(BrokerLimits {
            source: "127.0.0.1:9092".to_owned(),
            message_max_bytes: Some(broker),
            topics: vec![TopicLimits {
                name: "orders".to_owned(),
                max_message_bytes: topic,
                retention_ms: Some(86_400_000),
            }],
            listeners: Vec::new(),
        }),
        ..opts(J, P)
    }
}

#[test]
fn d114_request_over_broker_limit() {
    let r = lint("c.properties", "max.request.size=2097152\n", &limits(1_048_588, None));
    let f = expect(&r, "D114", Some(1), Some("max.request.size=1048588"));
    assert!(
        f.message.contains("the broker's `message.max.bytes` (1048588)"),
        "{}",
        f.message
    );
    // The smallest limit wins; the default size is compared too.
    let r = lint("c.properties", "acks=all\n", &limits(1_048_588, Some(100_000)));
    let f = expect(&r, "D114", None, Some("max.request.size=100000"));
    assert!(f.message.contains("topic `orders`"), "{}", f.message);
    // Without limits there is nothing to compare.
    absent(&props("max.request.size=2097152\n", J, P), "D114");
}

#[test]
fn d115_partitioner_mismatch() {
    let r = props("enable.idempotence=true\npartitioner=consistent_random\n", R, P);
    expect(&r, "D115", Some(2), Some("partitioner=murmur2_random"));
    // The default is consistent_random.
    let r = props("enable.idempotence=true\n", R, P);
    expect(&r, "D115", None, Some("partitioner=murmur2_random"));
}

#[test]
fn d116_partitioner_ignores_keys() {
    let r = props("partitioner.ignore.keys=true\n", J, P);
    expect(&r, "D116", Some(1), Some(""));
    let r = props("enable.idempotence=true\npartitioner=random\n", R, P);
    expect(&r, "D116", Some(2), Some("partitioner=murmur2_random"));
}

#[test]
fn d118_transactional_rebootstrap() {
    let r = props("transactional.id=orders-tx\n", R, P);
    expect(&r, "D118", Some(1), Some("metadata.recovery.strategy=none"));
    let r = props(
        "transactional.id=orders-tx\nmetadata.recovery.strategy=rebootstrap\n",
        R,
        P,
    );
    expect(&r, "D118", Some(2), Some("metadata.recovery.strategy=none"));
    // Told so, or not transactional, or a Java client: nothing to say.
    let r = props("transactional.id=orders-tx\nmetadata.recovery.strategy=none\n", R, P);
    absent(&r, "D118");
    let r = props("enable.idempotence=true\n", R, P);
    absent(&r, "D118");
    let r = props("transactional.id=orders-tx\n", J, P);
    absent(&r, "D118");
}

#[test]
fn d201_auto_offset_store_before_processing() {
    let r = props("group.id=g\nenable.auto.offset.store=true\n", R, C);
    expect(&r, "D201", Some(2), Some("enable.auto.offset.store=false"));
    // By default: pointed at nothing, fixed by a line to add.
    let r = props("group.id=g\n", R, C);
    expect(&r, "D201", None, Some("enable.auto.offset.store=false"));
    absent(&props("group.id=g\nenable.auto.commit=false\n", R, C), "D201");
}

#[test]
fn d202_auto_commit_in_poll() {
    let r = props("group.id=g\nenable.auto.commit=true\n", J, C);
    let f = expect(&r, "D202", Some(2), Some("enable.auto.commit=false"));
    assert_eq!(f.severity, Severity::Note);
}

#[test]
fn d203_offset_reset_latest() {
    let r = props("group.id=g\nauto.offset.reset=latest\n", J, C);
    expect(&r, "D203", Some(2), Some("auto.offset.reset=earliest"));
    let r = props("group.id=g\nauto.offset.reset=largest\n", R, C);
    expect(&r, "D203", Some(2), Some("auto.offset.reset=earliest"));
    let options = LintOptions {
        role: Some(C),
        ..limits(1_048_588, None)
    };
    let r = lint("c.properties", "group.id=g\n", &options);
    let f = expect(&r, "D203", None, Some("auto.offset.reset=earliest"));
    assert!(
        f.consequence.contains("`orders` keeps records for 1d"),
        "{}",
        f.consequence
    );
}

#[test]
fn d204_offset_reset_none() {
    let r = props("group.id=g\nauto.offset.reset=none\n", J, C);
    expect(&r, "D204", Some(2), None);
    let r = props("group.id=g\nauto.offset.reset=error\n", R, C);
    expect(&r, "D204", Some(2), None);
}

#[test]
fn d205_read_uncommitted() {
    let r = props("group.id=g\nisolation.level=read_uncommitted\n", R, C);
    expect(&r, "D205", Some(2), Some("isolation.level=read_committed"));
    // Java's default.
    let r = props("group.id=g\nenable.auto.commit=false\n", J, C);
    expect(&r, "D205", None, Some("isolation.level=read_committed"));
}

#[test]
fn d206_heartbeat_vs_session() {
    let r = props(
        "group.id=g\nsession.timeout.ms=10000\nheartbeat.interval.ms=5000\n",
        J,
        C,
    );
    let f = expect(&r, "D206", Some(3), Some("heartbeat.interval.ms=3333"));
    assert_eq!(f.severity, Severity::Warning);
    let r = props(
        "group.id=g\nsession.timeout.ms=10000\nheartbeat.interval.ms=10000\n",
        J,
        C,
    );
    let f = expect(&r, "D206", Some(3), Some("heartbeat.interval.ms=3333"));
    assert_eq!(f.severity, Severity::Error);
    // The consumer protocol's heartbeats are the broker's.
    absent(
        &props(
            "group.id=g\ngroup.protocol=consumer\nheartbeat.interval.ms=50000\n",
            J,
            C,
        ),
        "D206",
    );
}

#[test]
fn d207_session_timeout_out_of_range() {
    let r = props(
        "group.id=g\nsession.timeout.ms=3000\nheartbeat.interval.ms=1000\n",
        J,
        C,
    );
    expect(&r, "D207", Some(2), Some("session.timeout.ms=6000"));
    let r = props("group.id=g\nsession.timeout.ms=2000000\n", J, C);
    expect(&r, "D207", Some(2), Some("session.timeout.ms=1800000"));
}

#[test]
fn d208_poll_interval_below_session() {
    let r = props(
        "group.id=g\nsession.timeout.ms=60000\nmax.poll.interval.ms=30000\n",
        R,
        C,
    );
    expect(&r, "D208", Some(3), Some("max.poll.interval.ms=300000"));
    // Java has no such constraint.
    absent(
        &props(
            "group.id=g\nsession.timeout.ms=60000\nmax.poll.interval.ms=30000\n",
            J,
            C,
        ),
        "D208",
    );
}

#[test]
fn d209_poll_interval_below_processing() {
    let options = LintOptions {
        processing_ms: Some(400_000),
        ..opts(J, C)
    };
    let r = lint("c.properties", "group.id=g\nmax.poll.records=100\n", &options);
    let f = expect(&r, "D209", None, Some("max.poll.interval.ms=800000"));
    assert!(f.message.contains("up to 100 records per poll"), "{}", f.message);
    let r = lint("c.properties", "group.id=g\nmax.poll.interval.ms=600000\n", &options);
    absent(&r, "D209");
    let r = lint("c.properties", "group.id=g\nmax.poll.interval.ms=60000\n", &options);
    expect(&r, "D209", Some(2), Some("max.poll.interval.ms=800000"));
}

#[test]
fn d210_group_id_missing() {
    let r = props("auto.offset.reset=earliest\nsession.timeout.ms=30000\n", R, C);
    let f = expect(&r, "D210", Some(2), None);
    assert_eq!(f.severity, Severity::Warning);
    // Java refuses an explicit auto-commit without a group.
    let r = props("enable.auto.commit=true\n", J, C);
    let f = expect(&r, "D210", Some(1), None);
    assert_eq!(f.severity, Severity::Error);
}

#[test]
fn d211_check_crcs_disabled() {
    let r = props("group.id=g\ncheck.crcs=false\n", J, C);
    expect(&r, "D211", Some(2), Some("check.crcs=true"));
    // librdkafka's default is false, but only an explicit choice is reported.
    absent(&props("group.id=g\n", R, C), "D211");
}

#[test]
fn findings_in_json_files_get_fixes_in_json() {
    let src = "{\n  \"group.id\": \"g\",\n  \"isolation.level\": \"read_uncommitted\"\n}\n";
    let r = lint("c.json", src, &opts(R, C));
    expect(&r, "D205", Some(3), Some("\"isolation.level\": \"read_committed\""));
    let f = expect(&r, "D201", None, Some("\"enable.auto.offset.store\": false"));
    let fix = f.fix.as_ref().unwrap();
    let mut fixed = src.to_owned();
    fixed.replace_range(fix.span.clone(), &fix.text);
    let value: serde_json::Value = serde_json::from_str(&fixed).expect("the fixed file is still JSON");
    assert_eq!(value["enable.auto.offset.store"], serde_json::json!(false));
}

#[test]
fn deleting_a_json_member_keeps_the_json_valid() {
    let src = "{\n  \"partitioner.ignore.keys\": true,\n  \"acks\": \"all\"\n}";
    let r = lint("c.json", src, &opts(J, P));
    let fix = expect(&r, "D116", Some(2), Some("")).fix.clone().unwrap();
    let mut fixed = src.to_owned();
    fixed.replace_range(fix.span, &fix.text);
    let value: serde_json::Value = serde_json::from_str(&fixed).unwrap();
    assert_eq!(value, serde_json::json!({"acks": "all"}));
}

#[test]
fn acks_zero_reports_losses_not_duplicates() {
    // Without answers nothing is retried, so idempotence rules stay quiet.
    let r = props("acks=0\n", J, P);
    expect(&r, "D101", Some(1), Some("acks=all"));
    for id in ["D103", "D105", "D106", "D107"] {
        absent(&r, id);
    }
    // Explicit idempotence with acks=0 still stops the producer.
    let r = props("enable.idempotence=true\nacks=0\n", J, P);
    expect(&r, "D104", Some(2), Some(""));
}

/// A connection made as the client that failed: the lint says why, in the
/// file's terms, and never shows the password.
fn failed(source: &str, client: Dialect, failure: veltrix_doctor::ConnectFailure) -> veltrix_doctor::Report {
    let options = opts(client, P);
    let connection = veltrix_doctor::broker_connection("client.properties", source, &options, None);
    let options = LintOptions {
        broker_failure: Some(veltrix_doctor::BrokerFailure { connection, failure }),
        ..options
    };
    let report = lint("client.properties", source, &options);
    let rendered = format!("{}{}", report.render(false), report.to_json());
    assert!(!rendered.contains("hunter2"), "{rendered}");
    report
}

const SASL_SSL: &str = "bootstrap.servers=127.0.0.1:9093\nsecurity.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\nsasl.username=alice\nsasl.password=hunter2\nssl.ca.location=/etc/ca.pem\nacks=all\nenable.idempotence=true\n";

#[test]
fn d011_broker_connection_failed() {
    use veltrix_doctor::ConnectFailure as F;
    let r = failed(SASL_SSL, R, F::UnknownCa);
    let f = expect(&r, "D011", Some(6), None);
    assert!(
        f.message.contains("not signed by a CA the client trusts"),
        "{}",
        f.message
    );
    assert_eq!(r.exit_code(false), 1);

    let r = failed(
        SASL_SSL,
        R,
        F::AuthenticationFailed {
            mechanism: "SCRAM-SHA-512".into(),
            user: "alice".into(),
            message: Some("invalid credentials".into()),
        },
    );
    // On the user's line, never the password's.
    let f = expect(&r, "D011", Some(4), None);
    assert!(
        f.message.contains("refused the credentials of user `alice`"),
        "{}",
        f.message
    );

    let r = failed(
        SASL_SSL,
        R,
        F::NameMismatch {
            expected: "127.0.0.1".into(),
            presented: vec!["DnsName(\"broker-1\")".into()],
        },
    );
    let f = expect(&r, "D011", Some(1), None);
    assert!(f.message.contains("not valid for `127.0.0.1`"), "{}", f.message);

    let r = failed(SASL_SSL, R, F::HandshakeRefused("CertificateRequired".into()));
    let f = expect(&r, "D011", None, None);
    assert!(f.help.contains("ssl.certificate.location"), "{}", f.help);

    // A Java file's credentials are in `sasl.jaas.config`, beside the
    // password: the finding has no line.
    let java = "bootstrap.servers=127.0.0.1:9093\nsecurity.protocol=SASL_SSL\nsasl.mechanism=PLAIN\nsasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"alice\" password=\"hunter2\";\nacks=all\n";
    let r = failed(
        java,
        J,
        F::AuthenticationFailed {
            mechanism: "PLAIN".into(),
            user: "alice".into(),
            message: None,
        },
    );
    expect(&r, "D011", None, None);

    // Settings the doctor cannot follow: a warning.
    let r = failed(SASL_SSL, R, F::Settings("the trust store is a JKS file".into()));
    let f = expect(&r, "D011", None, None);
    assert_eq!(f.severity, Severity::Warning);
}

#[test]
fn d009_a_failed_connection_tells_the_listeners_protocol_and_mechanisms() {
    use veltrix_doctor::ConnectFailure as F;
    let plain = "bootstrap.servers=127.0.0.1:9093\nsecurity.protocol=PLAINTEXT\nacks=all\nenable.idempotence=true\n";
    let r = failed(plain, R, F::ListenerIsTls);
    let f = expect(&r, "D009", Some(2), Some("security.protocol=SSL"));
    assert!(f.message.contains("speaks TLS"), "{}", f.message);

    let r = failed(SASL_SSL, R, F::ListenerNotTls);
    expect(&r, "D009", Some(2), Some("security.protocol=SASL_PLAINTEXT"));

    let r = failed(
        SASL_SSL,
        R,
        F::MechanismNotEnabled {
            mechanism: "SCRAM-SHA-512".into(),
            offered: vec!["PLAIN".into(), "SCRAM-SHA-256".into()],
        },
    );
    let f = expect(&r, "D009", Some(3), Some("sasl.mechanism=PLAIN"));
    assert!(f.message.contains("it offers PLAIN, SCRAM-SHA-256"), "{}", f.message);

    let ssl = "bootstrap.servers=127.0.0.1:9093\nsecurity.protocol=SSL\nacks=all\nenable.idempotence=true\n";
    let r = failed(
        ssl,
        R,
        F::SaslRequired {
            offered: vec!["SCRAM-SHA-512".into()],
        },
    );
    let f = expect(&r, "D009", Some(2), Some("security.protocol=SASL_SSL"));
    assert!(
        f.message.contains("wants SASL authentication (SCRAM-SHA-512)"),
        "{}",
        f.message
    );

    let r = failed(SASL_SSL, R, F::SaslNotEnabled);
    expect(&r, "D009", Some(2), Some("security.protocol=SSL"));
}
