//! One case per rule of the catalogue: a configuration with the problem, the
//! line the diagnostic must point at (the line marked `#<` in the source) and
//! a piece of the fix it must suggest. Production lints are also checked to
//! stay silent under the development profile. A last test proves that every
//! rule of the catalogue has a case here.

use veltrix_config::rules::{CATALOGUE, RuleProfile};
use veltrix_config::{Diagnostic, FixedProbe, Location, Report, check_source};

/// A machine with a disk-backed file system and 64 GiB of memory.
fn disk() -> FixedProbe {
    FixedProbe {
        filesystem_type: Some("ext4".to_owned()),
        memory_bytes_total: Some(64 << 30),
        ..FixedProbe::default()
    }
}

struct Case {
    rule: &'static str,
    source: String,
    /// A piece of the diagnostic's `help`.
    fix: &'static str,
    probe: FixedProbe,
}

fn case(rule: &'static str, source: &str, fix: &'static str) -> Case {
    Case {
        rule,
        source: source.to_owned(),
        fix,
        probe: disk(),
    }
}

/// `body` under a production `[broker]` header; a body may go on with more
/// `[broker]` keys before its own tables.
fn prod(rule: &'static str, body: &str, fix: &'static str) -> Case {
    case(rule, &format!("[broker]\nprofile = \"production\"\n{body}"), fix)
}

/// An SSL listener whose `tls_*` lines are `body`; `/tls/cert.pem` is a
/// certificate valid until 2030-01-31 and `/tls/key.pem` its key, read at
/// 2030-01-01 plus `(year - 2030)` years (2030: 30 days left; 2032: expired).
fn tls_case(rule: &'static str, body: &str, fix: &'static str, year: u64) -> Case {
    let source = format!("[[listener]]\nname = \"tls\"\naddress = \"127.0.0.1:9093\"\nprotocol = \"SSL\"\n{body}");
    Case {
        source,
        ..tls_files_case(rule, fix, year)
    }
}

/// `[listeners]` with the HTTP listener's `http_tls_*` lines `body`, the
/// files as [`tls_case`]'s.
fn http_tls_case(rule: &'static str, body: &str, fix: &'static str, year: u64) -> Case {
    Case {
        source: format!("[listeners]\n{body}"),
        ..tls_files_case(rule, fix, year)
    }
}

fn tls_files_case(rule: &'static str, fix: &'static str, year: u64) -> Case {
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(2030, 1, 31);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let jan_2030 = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_893_456_000);
    let now = jan_2030 + std::time::Duration::from_secs((year - 2030) * 366 * 86_400 + 86_400);
    Case {
        rule,
        source: String::new(),
        fix,
        probe: FixedProbe {
            files: vec![
                ("/tls/cert.pem".into(), cert.pem().into_bytes()),
                ("/tls/key.pem".into(), key.serialize_pem().into_bytes()),
            ],
            now: Some(now),
            ..disk()
        },
    }
}

fn cases() -> Vec<Case> {
    vec![
        case(
            "V001",
            "[broker]\ndata_dir = /var/lib/veltrix #<\n",
            "fix the TOML syntax",
        ),
        case(
            "V002",
            "[defaults]\nretention_sm = 1000 #<\n",
            "did you mean `retention_ms`?",
        ),
        case("V002", "[topics] #<\nname = \"a\"\n", "did you mean `topic`?"),
        case(
            "V003",
            "[defaults]\nretention_ms = \"7d\" #<\n",
            "write `604_800_000` (7d in ms)",
        ),
        case("V003", "[topic] #<\nname = \"a\"\n", "`[[topic]]` (two brackets)"),
        case(
            "V004",
            "[defaults]\nsegment_bytes_max = 100 #<\n",
            "use a value in 4_096..=2_147_483_647 bytes",
        ),
        case(
            "V005",
            "[broker]\nprofile = \"prod\" #<\n",
            "did you mean `\"production\"`?",
        ),
        case("V006", "[[topic]] #<\npartitions = 3\n", "add `name = ...`"),
        case(
            "V007",
            "[[topic]]\nname = \"bad name\" #<\n",
            "rename it, for example `\"bad-name\"`",
        ),
        case(
            "V008",
            "[[topic]]\nname = \"orders\"\n\n[[topic]]\nname = \"orders\" #<\n",
            "merge the two",
        ),
        case(
            "V009",
            "[listeners]\nkafka = \"localhost:9092\" #<\n",
            "`\"127.0.0.1:9092\"`",
        ),
        case(
            "V002",
            "[share]\ndelivery_count_limit = 3 #<\n",
            "did you mean `deliveries_max`? (Kafka's `share.delivery.count.limit`)",
        ),
        case(
            "V002",
            "[[share_group]]\nname = \"q\"\npartition_max_record_locks = 500 #<\n",
            "did you mean `partition_record_locks_max`?",
        ),
        case(
            "V003",
            "[share_group] #<\nname = \"q\"\n",
            "`[[share_group]]` (two brackets)",
        ),
        case(
            "V004",
            "[[share_group]]\nname = \"q\"\ndeliveries_max = 11 #<\n",
            "use a value in 2..=10 deliveries",
        ),
        case(
            "V004",
            "[share]\nrecord_lock_duration_ms = 500 #<\n",
            "use a value in 1_000..=3_600_000 ms",
        ),
        case("V004", "[[share_group]]\nname = \" \" #<\n", "give `name` a value"),
        case("V006", "[[share_group]] #<\ndeliveries_max = 3\n", "add `name = ...`"),
        case(
            "V011",
            "[[share_group]]\nname = \"orders \" #<\n",
            "rename it `\"orders\"`",
        ),
        case(
            "V011",
            "[[share_group]]\nname = \"jobs\\tq\" #<\n",
            "rename it `\"jobsq\"`",
        ),
        case(
            "V011",
            &format!("[[share_group]]\nname = \"{}\" #<\n", "q".repeat(256)),
            "shorten it to at most 255 bytes",
        ),
        case(
            "V012",
            "[[share_group]]\nname = \"jobs\"\n\n[[share_group]]\nname = \"jobs\" #<\ndeliveries_max = 3\n",
            "merge the two `[[share_group]]` entries",
        ),
        case(
            "V013",
            "[[share_group]]\nname = \"jobs\"\nauto_offset_reset = \"by_duration:1h\" #<\n",
            "write `\"by_duration:PT1H\"`",
        ),
        case(
            "V013",
            "[share]\nauto_offset_reset = \"lastest\" #<\n",
            "did you mean `\"latest\"`?",
        ),
        case(
            "V013",
            "[[share_group]]\nname = \"jobs\"\nauto_offset_reset = \"by_duration:P1W\" #<\n",
            "write the duration as ISO 8601",
        ),
        case(
            "V014",
            "[[topic]]\nname = \"a\"\ndedup_window_ms = 60000\ndedup_id_header = \"\" #<\n",
            "write the header your producers put the message id in",
        ),
        case(
            "V014",
            &format!(
                "[[topic]]\nname = \"a\"\ndedup_window_ms = 60000\ndedup_id_header = \"{}\" #<\n",
                "h".repeat(256)
            ),
            "use a header name of at most 255 bytes",
        ),
        case(
            "V015",
            "[[share_group]]\nname = \"jobs\"\ndead_letter_topic = \"jobs-failed\" #<\n",
            "name it `dead_letter_topic = \"dlq.jobs-failed\"`",
        ),
        case(
            "V015",
            "[[share_group]]\nname = \"jobs\"\ndead_letter_topic = \"dlq.jobs failed\" #<\n",
            "name it `dead_letter_topic = \"dlq.jobsfailed\"`",
        ),
        case(
            "V101",
            "[defaults]\nsegment_bytes_max = 65536\nbatch_bytes_max = 100000 #<\n",
            "raise `segment_bytes_max` to at least 100000",
        ),
        case(
            "V101",
            "[[topic]]\nname = \"a\"\nsegment_bytes_max = 65536 #<\n",
            "lower `batch_bytes_max` to at most 65536",
        ),
        case(
            "V102",
            "[limits]\nrequest_bytes_max = 2000000 #<\nin_flight_bytes_max = 1000000\n",
            "lower `request_bytes_max` to at most 1000000",
        ),
        case(
            "V103",
            "[broker]\npartitions_per_topic_max = 10\n\n[[topic]]\nname = \"a\"\npartitions = 20 #<\n",
            "lower it to 10 or less",
        ),
        case(
            "V104",
            "[broker]\npartitions_total_max = 10\n\n[[topic]]\nname = \"a\"\npartitions = 6\n\n[[topic]]\nname = \"b\"\npartitions = 6 #<\n",
            "raise `[broker] partitions_total_max` to at least 12",
        ),
        case(
            "V105",
            "[broker]\ntopics_max = 1\n\n[[topic]]\nname = \"a\"\n\n[[topic]]\nname = \"b\" #<\n",
            "raise `[broker] topics_max` to at least 2",
        ),
        case(
            "V106",
            "[[topic]]\nname = \"orders\"\n\n[[alert]]\ngroup = \"billing\"\ntopic = \"ordres\" #<\nlag_ms_max = 60000\n",
            "did you mean `\"orders\"`?",
        ),
        case(
            "V107",
            "[[topic]]\nname = \"a\"\n\n[[alert]]\ngroup = \"g\"\ntopic = \"a\"\nlag_records_max = 10\nlag_ms_max = 60000 #<\n",
            "keep one of them",
        ),
        case(
            "V107",
            "[[topic]]\nname = \"a\"\n\n[[alert]]\ngroup = \"g\"\ntopic = \"a\" #<\n",
            "add `lag_ms_max = 60000`",
        ),
        case(
            "V108",
            "[[topic]]\nname = \"a\"\nretention_ms = 600000 #<\nsegment_age_ms_max = 60000\n\n[[alert]]\ngroup = \"g\"\ntopic = \"a\"\nlag_ms_max = 600000\nfor_ms = 60000\n",
            "make `retention_ms` much longer than 660000",
        ),
        case(
            "V109",
            "[[topic]]\nname = \"a\"\nflush_interval_ms = 100 #<\n",
            "remove `flush_interval_ms`",
        ),
        case(
            "V110",
            "[[topic]]\nname = \"a\"\ndurability = \"interval\" #<\n",
            "add `flush_interval_ms = 1000`",
        ),
        case(
            "V111",
            "[defaults]\ndurability = \"interval\"\nflush_interval_ms = 100\n\n[[topic]]\nname = \"a\"\ndurability = \"fsync\" #<\n",
            "set `durability = \"fsync\"` in `[defaults]`",
        ),
        case(
            "V010",
            "[observability]\nwebhook_url = \"alerts.example.com/hook\" #<\n",
            "start it with `http://` or `https://`",
        ),
        case(
            "V119",
            "[groups]\nconsumer_session_timeout_ms = 10000\nconsumer_heartbeat_interval_ms = 10000 #<\n",
            "make `consumer_heartbeat_interval_ms` a fraction of the session timeout",
        ),
        case(
            "V112",
            "[groups]\nsession_timeout_ms_min = 60000 #<\nsession_timeout_ms_max = 30000\n",
            "make `session_timeout_ms_min` at most `session_timeout_ms_max`",
        ),
        case(
            "V113",
            "[listeners]\nkafka = \"127.0.0.1:9092\"\nhttp = \"0.0.0.0:9092\" #<\n",
            "give the HTTP listener its own port",
        ),
        case(
            "V120",
            "[share]\ngroups_max = 1\n\n[[share_group]]\nname = \"a\"\n\n[[share_group]]\nname = \"b\" #<\n",
            "raise `[share] groups_max` to at least 2",
        ),
        case(
            "V121",
            "[share]\nsession_timeout_ms = 10000\nheartbeat_interval_ms = 10000 #<\n",
            "make `heartbeat_interval_ms` a fraction of the session timeout",
        ),
        case(
            "V122",
            "[[share_group]]\nname = \"slow\"\nrecord_lock_duration_ms = 60000 #<\n",
            "set `record_lock_duration_ms = 45000` (or less)",
        ),
        case(
            "V122",
            "[share]\nsession_timeout_ms = 20000 #<\n",
            "raise `[share] session_timeout_ms` to 30000",
        ),
        case(
            "V123",
            "[share]\nsessions_max = 100 #<\n",
            "raise `sessions_max` to at least 200",
        ),
        case(
            "V130",
            "[share]\nbackoff_initial_ms = 5000\nbackoff_ms_max = 2000 #<\n",
            "raise it: `backoff_ms_max = 40000`",
        ),
        case(
            "V131",
            "[[topic]]\nname = \"dlq.jobs\" #<\nretention_ms = 86_400_000\n\n[[share_group]]\nname = \"jobs\"\ndead_letter_topic = \"dlq.jobs\"\n",
            "add `dedup_window_ms = 86400000` and `dedup_id_header = \"veltrix.dlq.id\"` to the topic",
        ),
        case(
            "V132",
            "[share]\ndead_letter_topics_auto_create = false\n\n[[share_group]]\nname = \"jobs\"\ndead_letter_topic = \"dlq.jobs\" #<\n",
            "or set `[share] dead_letter_topics_auto_create = true`",
        ),
        case(
            "V133",
            "[[share_group]]\nname = \"jobs\"\ndelay_ms_max = 60_000 #<\n",
            "add `delay_enabled = true`",
        ),
        case(
            "V136",
            "[defaults]\nretention_ms = 7 #<\n",
            "write `retention_ms = 7_000` for 7 seconds, or `retention_ms = 420_000` for 7 minutes, or `retention_ms = 25_200_000` for 7 hours, or `retention_ms = 604_800_000` for 7 days",
        ),
        Case {
            probe: FixedProbe {
                variables: vec![("HOME".to_owned(), "/home/ops".to_owned())],
                ..disk()
            },
            ..case(
                "V018",
                "[broker]\ndata_dir = \"~/veltrix\" #<\n",
                "write `data_dir = \"/home/ops/veltrix\"` (what ~ stands for here)",
            )
        },
        case(
            "V018",
            "[broker]\ndata_dir = \"{{ veltrix_data }}/data\" #<\n",
            "write the absolute path",
        ),
        case(
            "V019",
            "[broker]\ndata_dir = \"'/var/lib/veltrix' \" #<\n",
            "write `data_dir = \"/var/lib/veltrix\"`",
        ),
        case(
            "V020",
            "[broker]\ndata_dir = \"/etc/veltrix\" #<\n",
            "write `data_dir = \"/var/lib/veltrix\"`",
        ),
        case("V020", "[broker]\ndata_dir = \"/\" #<\n", "/var/lib/veltrix"),
        Case {
            probe: FixedProbe {
                enclosing_data_dir: Some("/var/lib/veltrix".into()),
                ..disk()
            },
            ..case(
                "V021",
                "[broker]\ndata_dir = \"/var/lib/veltrix/logs/b\" #<\n",
                "side by side: write `data_dir = \"/var/lib/veltrix-2\"`",
            )
        },
        prod(
            "V217",
            "data_dir = \"/tmp/veltrix\" #<\n",
            "write `data_dir = \"/var/lib/veltrix\"`",
        ),
        case(
            "V022",
            "[[quota]] #<\nproducer_byte_rate = 1_048_576\n",
            "add `client_id = \"...\"`",
        ),
        case(
            "V023",
            "[[quota]]\nuser = \"alice\"\nuser_default = true #<\nproducer_byte_rate = 1_048_576\n",
            "keep `user = ...` for one user, or `user_default = true`",
        ),
        case(
            "V024",
            "[[quota]]\nclient_id = \"etl\"\nproducer_byte_rate = 1_048_576\n\n[[quota]] #<\nclient_id = \"etl\"\nconsumer_byte_rate = 1_048_576\n",
            "merge the two entries",
        ),
        case(
            "V139",
            "[[quota]] #<\nclient_id_default = true\n",
            "add `producer_byte_rate = ...`",
        ),
        case(
            "V025",
            "[[topic]]\nname = \"e\"\n\n[[route]]\nname = \"by type\" #<\nsource = \"e\"\ndead_letter = \"e\"\ndefault = \"e\"\n",
            "rename it, for example `name = \"by-type\"`",
        ),
        case(
            "V026",
            "[[topic]]\nname = \"e\"\n\n[[topic]]\nname = \"f\"\n\n[[route]]\nname = \"r\"\nsource = \"e\"\ndefault = \"f\"\ndead_letter = \"f\"\n\n[[route]]\nname = \"r\" #<\nsource = \"e\"\ndefault = \"f\"\ndead_letter = \"f\"\n",
            "merge the two `[[route]]` entries",
        ),
        case(
            "V027",
            "[[topic]]\nname = \"e\"\n\n[[topic]]\nname = \"f\"\n\n[[route]]\nname = \"r\"\nsource = \"e\"\ndead_letter = \"f\"\n\n  [[route.rule]]\n  when = 'key == \"a\" || startswith(key, \"b\")' #<\n  to = \"f\"\n",
            "did you mean `startsWith`?",
        ),
        case(
            "V027",
            "[[topic]]\nname = \"e\"\n\n[[topic]]\nname = \"f\"\n\n[[route]]\nname = \"r\"\nsource = \"e\"\ndead_letter = \"f\"\n\n  [[route.rule]]\n  when = 'type == \"reward\"' #<\n  to = \"f\"\n",
            "a field of its JSON value is `value.type`",
        ),
        case(
            "V028",
            "[[topic]]\nname = \"e\"\n\n[[route]] #<\nname = \"r\"\nsource = \"e\"\ndead_letter = \"e\"\n",
            "or `default = \"TOPIC\"`",
        ),
        case(
            "V029",
            "[[topic]]\nname = \"e\"\n\n[[topic]]\nname = \"f\"\n\n[[route]]\nname = \"r\"\nsource = \"e\"\ndead_letter = \"f\"\n\n  [[route.rule]]\n  when = 'true'\n  to = [] #<\n",
            "name the topic its records go to",
        ),
        case(
            "V030",
            &format!(
                "[[topic]]\nname = \"e\"\n\n[[topic]]\nname = \"f\"\n\n[[route]]\nname = \"r\"\nsource = \"e\"\ndead_letter = \"f\"\n\n  [[route.rule]]\n  when = 'true'\n  to = \"f\"\n  headers = {{ {} }} #<\n",
                (0..17).map(|i| format!("h{i} = \"v\"")).collect::<Vec<_>>().join(", ")
            ),
            "keep at most 16 headers in `headers`",
        ),
        case(
            "V141",
            "[[topic]]\nname = \"events\"\n\n[[topic]]\nname = \"events.other\"\n\n[[route]]\nname = \"r\"\nsource = \"events\"\ndead_letter = \"events.other\"\ndefault = \"events.othr\" #<\n",
            "did you mean `\"events.other\"`?",
        ),
        case(
            "V141",
            "[[topic]]\nname = \"events\"\n\n[[route]]\nname = \"by-type\" #<\nsource = \"events\"\ndefault = \"events\"\n",
            "declare it: `[[topic]]` with `name = \"by-type.dead-letters\"`",
        ),
        case(
            "V142",
            "[[topic]]\nname = \"a\"\n\n[[topic]]\nname = \"b\"\n\n[[topic]]\nname = \"dl\"\n\n[[route]]\nname = \"ab\"\nsource = \"a\"\ndefault = \"b\" #<\ndead_letter = \"dl\"\n\n[[route]]\nname = \"ba\"\nsource = \"b\"\ndefault = \"a\"\ndead_letter = \"dl\"\n",
            "take `b` out of route `ab`'s targets",
        ),
        case(
            "V143",
            "[[topic]]\nname = \"events\"\ncritical = true\n\n[[topic]]\nname = \"events.other\"\ntier = \"bulk\"\n\n[[route]]\nname = \"r\"\nsource = \"events\"\ndead_letter = \"events.other\"\ndefault = \"events.other\" #<\n",
            "give `events.other` `tier = \"critical\"`",
        ),
        case(
            "V031",
            "[[listener]]\nname = \"a\"\naddress = \"127.0.0.1:9093\"\nprotocol = \"PLAINTEXT\"\n\n[[listener]]\nname = \"a\" #<\naddress = \"127.0.0.1:9094\"\nprotocol = \"PLAINTEXT\"\n",
            "a name of its own",
        ),
        case(
            "V031",
            "[[listener]]\nname = \"a\"\naddress = \"127.0.0.1:9092\" #<\nprotocol = \"PLAINTEXT\"\n",
            "a port of its own",
        ),
        case(
            "V032",
            "[[listener]]\nname = \"a\"\naddress = \"127.0.0.1:9093\"\nprotocol = \"SSL\" #<\n",
            "add `tls_cert_file",
        ),
        case(
            "V032",
            "[[listener]]\nname = \"a\"\naddress = \"127.0.0.1:9093\"\nprotocol = \"SASL_PLAINTEXT\"\ntls_cert_file = \"/etc/c.pem\" #<\n",
            "write `protocol = \"SASL_SSL\"`",
        ),
        tls_case(
            "V033",
            "tls_cert_file = \"/tls/missing.pem\" #<\ntls_key_file = \"/tls/key.pem\"\n",
            "check the path",
            2030,
        ),
        tls_case(
            "V033",
            "tls_cert_file = \"/tls/cert.pem\" #<\ntls_key_file = \"/tls/key.pem\"\n",
            "check the path",
            2032,
        ),
        case(
            "V034",
            "[[listener]]\nname = \"a\"\naddress = \"127.0.0.1:9093\"\nprotocol = \"SASL_PLAINTEXT\"\nsasl_mechanisms = [\"GSSAPI\"] #<\n",
            "use some of SCRAM-SHA-512",
        ),
        case(
            "V035",
            "[[listener]]\nname = \"a\"\naddress = \"127.0.0.1:9093\"\nprotocol = \"PLAINTEXT\"\nprincipal_mapping_rules = [\"RULE:^CN=(.*$/$1/\"] #<\n",
            "write `DEFAULT`",
        ),
        case(
            "V036",
            "[security]\nsuper_users = [\"admin\"] #<\n",
            "write `\"User:admin\"`",
        ),
        case(
            "V038",
            "[security]\nsuper_users = [\"User:admin\", \"User:ANONYMOUS\"] #<\n",
            "take it out of `super_users`",
        ),
        case(
            "V037",
            "[listeners]\nkafka = \"0.0.0.0:9092\" #<\nkafka_principal = \"User:local\"\n\n[security]\nsuper_users = [\"User:local\"]\n",
            "listen on `\"127.0.0.1:9092\"`",
        ),
        tls_case(
            "V144",
            "tls_cert_file = \"/tls/cert.pem\" #<\ntls_key_file = \"/tls/key.pem\"\n",
            "renew it",
            2030,
        ),
        case(
            "V145",
            "[[topic]]\nname = \"t\"\ncleanup_policy = \"compact\"\ncompaction_lag_ms_min = 600000 #<\ncompaction_lag_ms_max = 60000\n",
            "lower `compaction_lag_ms_min` to 60000",
        ),
        case(
            "V146",
            "[[topic]]\nname = \"t\"\ndelete_retention_ms = 1000 #<\n",
            "add `cleanup_policy = \"compact\"`",
        ),
        case(
            "V147",
            "[[topic]]\nname = \"t\"\ncleanup_policy = \"compact\"\nretention_ms = 86400000 #<\n",
            "`cleanup_policy = \"compact,delete\"`",
        ),
        case(
            "V148",
            "[[topic]]\nname = \"t\"\ncleanup_policy = \"compact\"\ndedup_window_ms = 60000\ndedup_id_source = \"key\" #<\n",
            "take message ids from a header",
        ),
        case(
            "V032",
            "[listeners]\nhttp_tls_cert_file = \"/etc/c.pem\" #<\n",
            "add `http_tls_key_file`",
        ),
        http_tls_case(
            "V033",
            "http_tls_cert_file = \"/tls/cert.pem\"\nhttp_tls_key_file = \"/tls/missing.pem\" #<\n",
            "check the path",
            2030,
        ),
        http_tls_case(
            "V144",
            "http_tls_cert_file = \"/tls/cert.pem\" #<\nhttp_tls_key_file = \"/tls/key.pem\"\n",
            "renew it",
            2030,
        ),
        case(
            "V036",
            "[listeners]\nhttp_principal = \"local\" #<\n",
            "write `\"User:local\"`",
        ),
        case(
            "V037",
            "[listeners]\nhttp = \"0.0.0.0:8080\" #<\nhttp_principal = \"User:local\"\n\n[security]\nsuper_users = [\"User:local\"]\n",
            "set `http_authentication = \"required\"`",
        ),
        prod(
            "V220",
            "\n[listeners]\nhttp = \"0.0.0.0:8080\" #<\n",
            "set `[listeners] http_authentication = \"required\"`",
        ),
        prod(
            "V218",
            "\n[security]\nauthorization = true\n\n[[listener]]\nname = \"a\"\naddress = \"127.0.0.1:9093\"\nprotocol = \"SASL_PLAINTEXT\"\nsasl_mechanisms = [\"PLAIN\"] #<\n",
            "offer only SCRAM-SHA-512",
        ),
        prod(
            "V219",
            "\n[[listener]]\nname = \"a\"\naddress = \"127.0.0.1:9093\"\nprotocol = \"SASL_PLAINTEXT\" #<\n",
            "set `[security] authorization = true`",
        ),
        case(
            "V140",
            "[limits]\ntier_standard_throttle_percent = 80\ntier_bulk_throttle_percent = 90 #<\n",
            "lower `tier_bulk_throttle_percent` to 80 or less",
        ),
        case(
            "V140",
            "[broker]\ndisk_standard_free_percent_min = 10 #<\n",
            "raise `disk_bulk_free_percent_min` to 10 or more",
        ),
        case(
            "V137",
            "[[topic]]\nname = \"t\"\n\n[[alert]]\ngroup = \"g\"\ntopic = \"t\"\nlag_ms_max = 2_000 #<\n",
            "raise `lag_ms_max` to 5_000 or more",
        ),
        case(
            "V138",
            "[[topic]]\nname = \"t\"\nsegment_age_ms_max = 7 #<\n",
            "write `segment_age_ms_max = 420_000` for 7 minutes, or `segment_age_ms_max = 25_200_000` for 7 hours",
        ),
        case(
            "V138",
            "[[topic]]\nname = \"t\"\n\n[[alert]]\ngroup = \"g\"\ntopic = \"t\"\nlag_ms_max = 30 #<\n",
            "write `lag_ms_max = 30_000` for 30 seconds",
        ),
        case(
            "V004",
            "[groups]\nconsumer_session_timeout_ms = 45 #<\n",
            "write `consumer_session_timeout_ms = 45_000` for 45 seconds",
        ),
        case(
            "V124",
            "[[topic]]\nname = \"rewards\"\nretention_ms = 3_600_000\nsegment_age_ms_max = 600_000\ndedup_window_ms = 7_200_000 #<\n",
            "shorten `dedup_window_ms` (line 5) to at most 3600000, or raise `retention_ms` (line 3) to at least 7200000",
        ),
        case(
            "V124",
            "[defaults]\nretention_ms = 3_600_000\nsegment_age_ms_max = 600_000\n\n[[topic]]\nname = \"rewards\"\ndedup_window_ms = 7_200_000 #<\n",
            "or add `retention_ms = 7200000` (or more) to this topic, over `[defaults] retention_ms` (line 2)",
        ),
        case(
            "V124",
            "[[topic]]\nname = \"rewards\"\ndedup_window_ms = 691_200_000 #<\n",
            "to at most 604800000, or add `retention_ms = 691200000` (or more) to this topic, over the default retention",
        ),
        case(
            "V125",
            "[[topic]]\nname = \"rewards\"\ndedup_window_ms = 120 #<\n",
            "write `dedup_window_ms = 120_000` for 120 seconds, or `dedup_window_ms = 7_200_000` for 120 minutes",
        ),
        case(
            "V125",
            "[[topic]]\nname = \"rewards\"\nretention_ms = 3_600_000\nsegment_age_ms_max = 600_000\ndedup_window_ms = 90 #<\n",
            "write `dedup_window_ms = 90_000` for 90 seconds",
        ),
        case(
            "V126",
            "[[topic]]\nname = \"rewards\"\ndedup_id_header = \"reward-id\" #<\ndedup_id_source = \"header\"\n",
            "add `dedup_window_ms = 120_000` (two minutes",
        ),
        case(
            "V126",
            "[[topic]]\nname = \"rewards\"\ndedup_window_ms = 0\ndedup_id_source = \"key\" #<\n",
            "set `dedup_window_ms` (line 3) to 120_000",
        ),
        case(
            "V127",
            "[[topic]]\nname = \"rewards\"\ndedup_window_ms = 600_000\ndedup_id_header = \"reward-id\"\ndedup_id_source = \"key\" #<\n",
            "remove `dedup_id_header` (line 4) to deduplicate on the record key, or remove `dedup_id_source = \"key\"` (line 5)",
        ),
        case(
            "V128",
            "[[topic]]\nname = \"rewards\"\ndedup_window_ms = 600_000\ndedup_id_header = \"reward-id \" #<\n",
            "write `dedup_id_header = \"reward-id\"`",
        ),
        case(
            "V129",
            "[[topic]]\nname = \"clicks\"\npeak_records_per_second = 5_000\ndedup_window_ms = 600_000 #<\n",
            "set `ids_max = 3_000_000` in `[dedup]` (about 469 MiB",
        ),
        case(
            "V129",
            "[[topic]]\nname = \"clicks\"\npeak_records_per_second = 50_000\ndedup_window_ms = 120_000 #<\n",
            "set `ids_max = 6_000_000` and `memory_bytes_max = 984_000_000` (or more, for the other topics' windows too) in `[dedup]`",
        ),
        case(
            "V129",
            "[dedup]\nids_max = 100\n\n[[topic]]\nname = \"orders\"\npeak_records_per_second = 10\ndedup_window_ms = 60_000 #<\n",
            "set `ids_max = 600` in `[dedup]`",
        ),
        case(
            "V129",
            "[[topic]]\nname = \"clicks\"\npeak_records_per_second = 1_000_000\ndedup_window_ms = 86_400_000 #<\n",
            "shorten `dedup_window_ms` to at most 100000 and set `ids_max = 100_000_000`",
        ),
        Case {
            probe: FixedProbe {
                filesystem_type: Some("ext4".to_owned()),
                memory_bytes_total: Some(256 << 20),
                ..FixedProbe::default()
            },
            ..case(
                "V114",
                "[limits]\nin_flight_bytes_max = 1073741824 #<\n",
                "set `in_flight_bytes_max` to a fraction of the memory, such as 67108864",
            )
        },
        case(
            "V115",
            "[[topic]]\nname = \"a\"\ncritical = true\ntier = \"bulk\" #<\n",
            "set `tier = \"critical\"`",
        ),
        case(
            "V116",
            "[[topic]]\nname = \"a\"\nretention_ms = 3600000 #<\n",
            "add `segment_age_ms_max = 3600000` (or less)",
        ),
        case(
            "V117",
            "[limits]\nrequest_bytes_max = 1000000\n\n[[topic]]\nname = \"a\"\nbatch_bytes_max = 2000000 #<\n",
            "lower `batch_bytes_max` below 1000000",
        ),
        case(
            "V118",
            "[[topic]]\nname = \"a\"\nretention_bytes = 1000000 #<\n",
            "add `segment_bytes_max = 100000`",
        ),
        prod(
            "V201",
            "\n[[topic]]\nname = \"a\"\ncritical = true\ndurability = \"interval\" #<\nflush_interval_ms = 100\n",
            "use `durability = \"fsync\"` for this topic",
        ),
        prod(
            "V202",
            "auto_create_topics = true #<\n",
            "set `auto_create_topics = false`",
        ),
        prod(
            "V203",
            "\n[[topic]]\nname = \"clicks\"\nkeyed = true\npeak_records_per_second = 5000\npartitions = 1 #<\n",
            "set `partitions` to the parallelism you will need",
        ),
        prod(
            "V204",
            "\n[listeners]\nkafka = \"0.0.0.0:9092\" #<\n",
            "listen on loopback (`\"127.0.0.1:9092\"`)",
        ),
        case(
            "V205",
            "[broker]\nprofile = \"production\" #<\n",
            "add `in_flight_bytes_max = ...` to `[limits]`",
        ),
        Case {
            probe: FixedProbe {
                filesystem_type: Some("tmpfs".to_owned()),
                memory_bytes_total: Some(64 << 30),
                ..FixedProbe::default()
            },
            ..prod(
                "V206",
                "data_dir = \"/dev/shm/veltrix\" #<\n",
                "disk-backed file system",
            )
        },
        prod(
            "V207",
            "\n[defaults]\ndurability = \"interval\" #<\nflush_interval_ms = 100\n",
            "use `durability = \"fsync\"` here",
        ),
        prod("V208", "data_dir = \"data\" #<\n", "use an absolute path"),
        prod(
            "V209",
            "\n[defaults]\nretention_ms = -1 #<\n",
            "add `retention_bytes = ...`",
        ),
        prod(
            "V210",
            "\n[defaults]\npartitions = 1 #<\n",
            "set `partitions = 3` (or more)",
        ),
        prod(
            "V211",
            "\n[groups]\nsession_timeout_ms_min = 1000 #<\n",
            "set `session_timeout_ms_min = 6000`",
        ),
        prod(
            "V212",
            "\n[groups]\nsession_timeout_ms_max = 3600000 #<\n",
            "set `session_timeout_ms_max = 1800000` or less",
        ),
        prod(
            "V213",
            "\n[groups]\noffsets_retention_ms = 86400000 #<\n",
            "set `offsets_retention_ms = 604800000` (or more)",
        ),
        prod(
            "V215",
            "\n[share]\nsession_timeout_ms = 3600000\n\n[[share_group]]\nname = \"jobs\"\nrecord_lock_duration_ms = 1700000\ndeliveries_max = 10 #<\n",
            "set `deliveries_max = 2`",
        ),
        prod(
            "V215",
            "\n[share]\nsession_timeout_ms = 3600000\nrecord_lock_duration_ms = 3600000 #<\ndeliveries_max = 2\n",
            "shorten `record_lock_duration_ms` to 1799500 or less",
        ),
        prod(
            "V215",
            "\n[[share_group]]\nname = \"jobs\"\nbackoff_initial_ms = 600000\nbackoff_ms_max = 7200000\ndeliveries_max = 5 #<\n",
            "set `deliveries_max = 3`",
        ),
        prod(
            "V215",
            "\n[share]\nsession_timeout_ms = 3600000\nrecord_lock_duration_ms = 1800000\nbackoff_initial_ms = 600000\nbackoff_ms_max = 7200000 #<\n",
            "shorten `backoff_ms_max`: the waits between deliveries come to",
        ),
        prod(
            "V215",
            "\n[share]\nsession_timeout_ms = 3600000\nrecord_lock_duration_ms = 1800000\nbackoff_initial_ms = 1200000 #<\nbackoff_ms_max = 7200000\n",
            "shorten `backoff_initial_ms`",
        ),
        prod(
            "V216",
            "\n[[share_group]]\nname = \"jobs\"\nbackoff_initial_ms = 0 #<\n",
            "set `backoff_initial_ms = 1000`",
        ),
        prod(
            "V214",
            "\n[[topic]]\nname = \"purchases\"\ncritical = true #<\n",
            "add `[[alert]]`",
        ),
        case(
            "V006",
            "[storage]\nmode = \"shared\" #<\nbroker_id = 1\nbucket = \"veltrix-data\"\n",
            "add `postgres_url = \"postgresql://",
        ),
        case(
            "V006",
            "[storage]\nmode = \"shared\" #<\nbucket = \"veltrix-data\"\npostgres_url = \"postgresql://veltrix@db/veltrix\"\n",
            "add `broker_id = 0` to `[storage]` (or set `VELTRIX_STORAGE__BROKER_ID`)",
        ),
        case(
            "V006",
            "[storage]\nmode = \"shared\" #<\nbroker_id = 1\npostgres_url = \"postgresql://veltrix@db/veltrix\"\n",
            "add `bucket = ",
        ),
        case(
            "V010",
            "[storage]\nmode = \"shared\"\nbroker_id = 1\nbucket = \"b\"\npostgres_url = \"mysql://db/veltrix\" #<\n",
            "write a libpq URL",
        ),
        case(
            "V004",
            &shared("key_prefix = \"veltrix/prod\" #<\n"),
            "write `key_prefix = \"veltrix-prod\"`",
        ),
        case(
            "V149",
            &shared("endpoint = \"http://minio.internal:9000\" #<\n"),
            "write `endpoint = \"https://minio.internal:9000\"`",
        ),
        case(
            "V150",
            &shared("endpoint = \"http://minio.internal:9000\"\nallow_http = true #<\n"),
            "remove `allow_http`",
        ),
        case(
            "V151",
            "[storage]\nbucket = \"veltrix-data\" #<\nregion = \"eu-west-1\"\n",
            "add `mode = \"shared\"`",
        ),
        case(
            "V152",
            "[storage]\nmode = \"shared\"\nbroker_id = 1\nbucket = \"b\"\npostgres_url = \"postgresql://veltrix:hunter2@db/veltrix\" #<\n",
            "`VELTRIX_STORAGE__POSTGRES_URL`",
        ),
        case(
            "V153",
            &format!(
                "{}\n[[topic]]\nname = \"accounts\"\ncleanup_policy = \"compact\" #<\n",
                shared("")
            ),
            "write `cleanup_policy = \"delete\"`",
        ),
        case(
            "V153",
            &format!(
                "{}\n[[topic]]\nname = \"rewards\"\ndedup_window_ms = 60_000 #<\n",
                shared("")
            ),
            "remove `dedup_window_ms`",
        ),
        case(
            "V153",
            &format!(
                "{}\n[[topic]]\nname = \"audit\"\nretention_bytes = 1_000_000_000 #<\n",
                shared("")
            ),
            "remove `retention_bytes`",
        ),
        case(
            "V153",
            &format!("{}\n[defaults]\nretention_bytes = 1_000_000_000 #<\n", shared("")),
            "time retention, `retention_ms`, is served",
        ),
        case(
            "V153",
            &format!("{}\n[[share_group]]\nname = \"jobs\" #<\n", shared("")),
            "remove the `[[share_group]]`",
        ),
        case(
            "V153",
            &format!(
                "{}\n[[topic]]\nname = \"e\"\n\n[[topic]]\nname = \"f\"\n\n[[route]]\nname = \"r\" #<\nsource = \"e\"\ndefault = \"f\"\ndead_letter = \"f\"\n",
                shared("")
            ),
            "remove the `[[route]]`",
        ),
        case(
            "V154",
            &shared("flush_bytes_max = 16_777_216\nbuffered_bytes_max = 8_388_608 #<\n"),
            "set `buffered_bytes_max = 33554432` or more",
        ),
    ]
}

/// A valid shared `[storage]` table followed by the lines `more`.
fn shared(more: &str) -> String {
    format!(
        "[storage]\nmode = \"shared\"\nbroker_id = 1\nbucket = \"veltrix-data\"\npostgres_url = \"postgresql://veltrix@db.internal/veltrix\"\n{more}"
    )
}

/// The 1-based line holding the `#<` marker.
fn marked_line(source: &str) -> usize {
    let lines: Vec<&str> = source.lines().collect();
    let at = lines.iter().position(|l| l.contains("#<"));
    at.expect("every case marks its line with #<") + 1
}

fn find<'a>(report: &'a Report, rule: &str, line: usize) -> Option<&'a Diagnostic> {
    report
        .diagnostics
        .iter()
        .find(|d| d.id() == rule && d.line() == Some(line))
}

#[test]
fn every_rule_reports_its_problem_at_the_line_with_the_fix() {
    let mut failures = Vec::new();
    for c in cases() {
        let line = marked_line(&c.source);
        let report = check_source("veltrix.toml", &c.source, &[], &c.probe);
        match find(&report, c.rule, line) {
            None => failures.push(format!(
                "{}: not reported at line {line}; got:\n{}",
                c.rule,
                report.render(false)
            )),
            Some(d) if !d.help.contains(c.fix) => {
                failures.push(format!("{}: help {:?} lacks {:?}", c.rule, d.help, c.fix))
            }
            Some(d) => {
                assert!(
                    !d.label.is_empty() && !d.note.is_empty(),
                    "{}: no label or note",
                    c.rule
                );
                let expected_exit = i32::from(d.severity == veltrix_config::Severity::Error);
                assert_eq!(report.exit_code(false).max(expected_exit), report.exit_code(false));
                assert_eq!(report.exit_code(true), 1, "{}: --strict must fail", c.rule);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn production_lints_are_silent_under_the_development_profile() {
    for c in cases() {
        let rule = veltrix_config::rules::find(c.rule).unwrap();
        if rule.applies != RuleProfile::Production {
            continue;
        }
        let source = c.source.replace("\"production\"", "\"development\"");
        let report = check_source("veltrix.toml", &source, &[], &c.probe);
        assert!(
            report.diagnostics.iter().all(|d| d.id() != c.rule),
            "{} fired under development:\n{}",
            c.rule,
            report.render(false)
        );
    }
}

/// Rules about the file as a whole, with tests of their own below.
/// V301 and V302 need a data directory: `apply::refusals_are_planned_before_opening_and_told_at_their_line`.
/// V401 to V405 need a PostgreSQL server and a bucket: `veltrix check
/// --online`'s tests in `crates/veltrix/tests/cli/check.rs`, and
/// `online_findings_point_at_their_key` below.
const TESTED_APART: [&str; 11] = [
    "V016", "V017", "V134", "V135", "V301", "V302", "V401", "V402", "V403", "V404", "V405",
];

#[test]
fn every_rule_of_the_catalogue_has_a_case() {
    let cases = cases();
    for rule in CATALOGUE {
        assert!(
            TESTED_APART.contains(&rule.id) || cases.iter().any(|c| c.rule == rule.id),
            "{} has no case",
            rule.id
        );
    }
}

#[test]
fn v016_bytes_that_are_not_utf8_are_reported_at_their_line_and_column() {
    let bytes = b"[broker]\ndata_dir = \"/srv/caf\xe9\"\n";
    let report = veltrix_config::check_bytes("veltrix.toml", bytes, &[], &disk());
    let d = &report.diagnostics[0];
    assert_eq!((d.id(), d.line()), ("V016", Some(2)));
    assert!(
        matches!(d.location, Some(Location::File { column: 21, .. })),
        "{:?}",
        d.location
    );
    assert!(d.message.contains("0xe9"), "{}", d.message);
    assert!(d.help.contains("save the file as UTF-8"));
    assert!(report.config.is_none());
    assert_eq!(report.exit_code(false), 1);
    let rendered = report.render(false);
    assert!(rendered.contains("veltrix.toml:2:21"), "{rendered}");
    // The JSON form is valid JSON whatever the bytes were.
    let json = serde_json::to_string(&report.to_json()).unwrap();
    serde_json::from_str::<serde_json::Value>(&json).unwrap();
    // A byte-order mark is no problem.
    let bom = veltrix_config::check_bytes(
        "veltrix.toml",
        b"\xef\xbb\xbf[broker]\ndata_dir = \"/srv/veltrix\"\n",
        &[],
        &disk(),
    );
    assert!(bom.diagnostics.is_empty(), "{}", bom.render(false));
}

#[test]
fn v134_an_empty_file_says_so_and_still_resolves() {
    for empty in ["", "\n  \n", "\u{feff}"] {
        let report = check_source("veltrix.toml", empty, &[], &disk());
        let ids: Vec<&str> = report.diagnostics.iter().map(Diagnostic::id).collect();
        assert_eq!(ids, ["V134"], "{empty:?}");
        assert!(report.diagnostics[0].help.contains("the file you meant"));
        assert!(report.config.is_some());
        assert_eq!((report.exit_code(false), report.exit_code(true)), (0, 1));
    }
    let comment = check_source("veltrix.toml", "# all defaults, on purpose\n", &[], &disk());
    assert!(
        comment.diagnostics.is_empty(),
        "a file that says it is empty on purpose"
    );
}

fn with_env(vars: &[(&str, &str)]) -> Report {
    let env: Vec<(String, String)> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    check_source("veltrix.toml", "[broker]\nprofile = \"development\"\n", &env, &disk())
}

#[test]
fn v017_an_override_in_quotes_is_refused_with_the_line_to_write() {
    for (var, value, fix) in [
        (
            "VELTRIX_LIMITS__REQUEST_BYTES_MAX",
            "\"1048576\"",
            "`VELTRIX_LIMITS__REQUEST_BYTES_MAX=1048576`",
        ),
        (
            "VELTRIX_BROKER__DATA_DIR",
            "'/var/lib/veltrix'",
            "`VELTRIX_BROKER__DATA_DIR=/var/lib/veltrix`",
        ),
    ] {
        let report = with_env(&[(var, value)]);
        let ids: Vec<&str> = report.diagnostics.iter().map(Diagnostic::id).collect();
        assert_eq!(ids, ["V017"], "{}", report.render(false));
        assert!(
            report.diagnostics[0].help.contains(fix),
            "{}",
            report.diagnostics[0].help
        );
        assert!(
            report.config.is_none(),
            "nothing is applied, no directory named with quotes"
        );
    }
    assert!(
        with_env(&[("VELTRIX_BROKER__DATA_DIR", "/srv/\"odd\"/x")])
            .diagnostics
            .is_empty()
    );
}

#[test]
fn v135_one_underscore_between_table_and_key_names_the_variable_meant() {
    let report = with_env(&[("VELTRIX_LIMITS_REQUEST_BYTES_MAX", "1048576")]);
    let d = &report.diagnostics[0];
    assert_eq!(d.id(), "V135");
    assert!(d.help.contains("`VELTRIX_LIMITS__REQUEST_BYTES_MAX`"), "{}", d.help);
    assert!(report.config.is_some(), "a warning");
    // Variables that are no override at all are not ours to judge.
    assert!(with_env(&[("VELTRIX_BIN", "/usr/bin/veltrix")]).diagnostics.is_empty());
}

#[test]
fn a_retention_in_the_wrong_unit_is_never_fixed_by_shortening_the_segments() {
    let report = check_source("veltrix.toml", "[defaults]\nretention_ms = 7\n", &[], &disk());
    let ids: Vec<&str> = report.diagnostics.iter().map(Diagnostic::id).collect();
    assert_eq!(ids, ["V136"], "{}", report.render(false));
    assert!(!report.render(false).contains("segment_age_ms_max = 7"));
}

/// A first header with a comment after it is still found.
#[test]
fn a_duplicate_table_after_a_commented_header_points_at_both() {
    let report = check_source(
        "veltrix.toml",
        "[limits] # first\nrequest_bytes_max = 1_048_576\n\n[limits]\n",
        &[],
        &disk(),
    );
    let d = &report.diagnostics[0];
    assert_eq!((d.id(), d.line()), ("V001", Some(4)), "{}", report.render(false));
    assert!(
        report.render(false).contains("first declared here"),
        "{}",
        report.render(false)
    );
}

#[test]
fn a_duplicate_key_or_table_points_at_both_declarations() {
    let report = check_source(
        "veltrix.toml",
        "[broker]\ndefault_partitions = 3\ndefault_partitions = 4\n",
        &[],
        &disk(),
    );
    let d = &report.diagnostics[0];
    assert_eq!((d.id(), d.line()), ("V001", Some(3)));
    assert_eq!(d.related.len(), 1, "{}", report.render(false));
    assert!(report.render(false).contains("first declared here"));
    let tables = check_source(
        "veltrix.toml",
        "[broker]\nprofile = \"development\"\n\n[broker]\n",
        &[],
        &disk(),
    );
    assert_eq!(tables.diagnostics[0].related.len(), 1, "{}", tables.render(false));
}

#[test]
fn a_clean_file_has_no_diagnostics_and_resolves() {
    let report = check_source("veltrix.toml", "[broker]\nprofile = \"development\"\n", &[], &disk());
    assert!(report.diagnostics.is_empty(), "{}", report.render(false));
    assert_eq!(report.exit_code(true), 0);
    assert!(report.config.is_some());
}

#[test]
fn errors_withhold_the_config_and_warnings_do_not() {
    let error = check_source("veltrix.toml", "[broker]\nprofile = \"prod\"\n", &[], &disk());
    assert!(error.config.is_none());
    assert_eq!(error.exit_code(false), 1);
    let warning = check_source(
        "veltrix.toml",
        "[[topic]]\nname = \"a\"\nretention_ms = 3600000\n",
        &[],
        &disk(),
    );
    assert_eq!((warning.errors(), warning.warnings()), (0, 1));
    assert!(warning.config.is_some());
    assert_eq!((warning.exit_code(false), warning.exit_code(true)), (0, 1));
}

#[test]
fn unknown_keys_are_all_reported_not_just_the_first() {
    let src = "[broker]\ncolour = 1\nflavour = 2\n\n[defaults]\nretention = 5\n";
    let report = check_source("veltrix.toml", src, &[], &disk());
    let lines: Vec<Option<usize>> = report.diagnostics.iter().map(Diagnostic::line).collect();
    assert_eq!(lines, vec![Some(2), Some(3), Some(6)]);
    assert!(report.diagnostics.iter().all(|d| d.id() == "V002"));
}

/// The duplicate window against the retention: the fix is a shorter window
/// or a longer retention, never a shorter retention, which would delete
/// stored records; a window the retention covers, or a retention of -1, is
/// fine, whether the retention is the topic's or `[defaults]`'.
#[test]
fn a_window_over_retention_is_never_fixed_by_shortening_the_retention() {
    let over = [
        "[[topic]]\nname = \"a\"\nretention_ms = 3_600_000\nsegment_age_ms_max = 600_000\ndedup_window_ms = 3_600_001\n",
        "[defaults]\nretention_ms = 3_600_000\nsegment_age_ms_max = 600_000\n\n[[topic]]\nname = \"a\"\ndedup_window_ms = 7_200_000\n",
    ];
    for src in over {
        let report = check_source("veltrix.toml", src, &[], &disk());
        let d = report.diagnostics.iter().find(|d| d.id() == "V124");
        let d = d.unwrap_or_else(|| panic!("{}", report.render(false)));
        assert!(d.help.contains("shorten `dedup_window_ms`"), "{}", d.help);
        for shortening in ["shorten `retention_ms`", "lower `retention_ms`", "reduce"] {
            assert!(!d.help.contains(shortening), "{}", d.help);
        }
        assert!(report.config.is_none(), "an error withholds the config");
    }
    let fine = [
        "[[topic]]\nname = \"a\"\nretention_ms = 3_600_000\nsegment_age_ms_max = 600_000\ndedup_window_ms = 3_600_000\n",
        "[[topic]]\nname = \"a\"\nretention_ms = -1\nretention_bytes = 1_073_741_824\nsegment_bytes_max = 104_857_600\ndedup_window_ms = 31_536_000_000\n",
        "[defaults]\nretention_ms = 3_600_000\nsegment_age_ms_max = 600_000\n\n[[topic]]\nname = \"a\"\nretention_ms = 86_400_000\ndedup_window_ms = 7_200_000\n",
    ];
    for src in fine {
        let report = check_source("veltrix.toml", src, &[], &disk());
        assert!(report.diagnostics.is_empty(), "{src}\n{}", report.render(false));
    }
}

/// A topic with a sound window and its id settings, within `ids_max` at its
/// peak rate, draws no duplicate-window diagnostic.
#[test]
fn a_sound_duplicate_window_is_clean() {
    let src = "[dedup]\nids_max = 2_000_000\n\n[[topic]]\nname = \"rewards\"\npeak_records_per_second = 1_000\n\
               dedup_window_ms = 1_800_000\ndedup_id_header = \"reward-id\"\ndedup_id_source = \"header\"\n\n\
               [[topic]]\nname = \"orders\"\ndedup_window_ms = 1_000\ndedup_id_source = \"key\"\n";
    let report = check_source("veltrix.toml", src, &[], &disk());
    assert!(report.diagnostics.is_empty(), "{}", report.render(false));
    assert_eq!(report.exit_code(true), 0);
}

#[test]
fn super_users_and_listeners_resolve_from_the_file_and_the_environment() {
    let source = "[listeners]\nkafka_principal = \"User:local\"\n\n[[listener]]\nname = \"net\"\naddress = \"127.0.0.1:9093\"\nprotocol = \"SASL_PLAINTEXT\"\n";
    let env = [(
        "VELTRIX_SECURITY__SUPER_USERS".to_owned(),
        "User:local, User:ops".to_owned(),
    )];
    let report = check_source("veltrix.toml", source, &env, &disk());
    let config = report.config.expect("a valid configuration");
    assert_eq!(config.security.super_users, ["User:local", "User:ops"]);
    assert!(config.broker.acl.super_users.contains("User:ops"));
    assert_eq!(config.kafka_principal, "User:local");
    let [listener] = config.listeners.as_slice() else {
        panic!("{:?}", config.listeners)
    };
    // A SASL listener naming no mechanism offers both SCRAMs, not PLAIN.
    assert_eq!(listener.sasl_mechanisms, ["SCRAM-SHA-512", "SCRAM-SHA-256"]);
}

#[test]
fn a_shared_storage_with_every_required_key_is_clean() {
    let report = check_source("veltrix.toml", &shared(""), &[], &disk());
    assert!(report.diagnostics.is_empty(), "{}", report.render(false));
    // Plain HTTP to a test server on this host is fine.
    for endpoint in ["http://127.0.0.1:9000", "http://localhost:9000", "http://[::1]:9000/"] {
        let src = shared(&format!("endpoint = \"{endpoint}\"\nallow_http = true\n"));
        let report = check_source("veltrix.toml", &src, &[], &disk());
        assert!(report.diagnostics.is_empty(), "{}", report.render(false));
    }
    // Local storage, said out loud, is no finding either.
    let report = check_source("veltrix.toml", "[storage]\nmode = \"local\"\n", &[], &disk());
    assert!(report.diagnostics.is_empty(), "{}", report.render(false));
}

#[test]
fn shared_storage_s_required_keys_may_come_from_the_environment() {
    let env: Vec<(String, String)> = [
        ("VELTRIX_STORAGE__MODE", "shared"),
        ("VELTRIX_STORAGE__BROKER_ID", "7"),
        ("VELTRIX_STORAGE__BUCKET", "veltrix-data"),
        (
            "VELTRIX_STORAGE__POSTGRES_URL",
            "postgresql://veltrix:s3cret@db/veltrix",
        ),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let report = check_source("veltrix.toml", "[broker]\nprofile = \"development\"\n", &env, &disk());
    assert!(report.diagnostics.is_empty(), "{}", report.render(false));
    let storage = report.config.unwrap().storage.expect("shared");
    assert_eq!(
        (storage.broker_id, storage.postgres_url.as_str()),
        (7, "postgresql://veltrix:s3cret@db/veltrix")
    );
    assert!(!format!("{storage:?}").contains("s3cret"), "{storage:?}");
}

#[test]
fn a_password_is_never_printed_from_the_file_or_the_environment() {
    // In the file: the warning points at the password, and the rendered
    // snippet shows stars in its place.
    let src = "[storage]\nmode = \"shared\"\nbroker_id = 1\nbucket = \"b\"\npostgres_url = \"postgresql://veltrix:hunter2@db/veltrix\"\nregion = 5\n";
    let report = check_source("veltrix.toml", src, &[], &disk());
    let rendered = report.render(false);
    assert!(rendered.contains("V152") && rendered.contains("V003"), "{rendered}");
    assert!(!rendered.contains("hunter2"), "{rendered}");
    assert!(rendered.contains("veltrix:*******@db"), "{rendered}");
    assert!(!serde_json::to_string(&report.to_json()).unwrap().contains("hunter2"));
    // From the environment: no V152, and a diagnostic about the variable
    // shows it without its password.
    let env = vec![(
        "VELTRIX_STORAGE__POSTGRES_URL".to_owned(),
        "postgresql://veltrix:hunter2@db/veltrix".to_owned(),
    )];
    let report = check_source("veltrix.toml", "[broker]\nprofile = \"development\"\n", &env, &disk());
    let rendered = report.render(false);
    assert_eq!(
        report.diagnostics.iter().map(Diagnostic::id).collect::<Vec<_>>(),
        ["V151"],
        "{rendered}"
    );
    assert!(!rendered.contains("hunter2"), "{rendered}");
    assert!(rendered.contains("postgresql://veltrix:***@db/veltrix"), "{rendered}");
    // The form with one underscore overrides nothing, and says so, without
    // the password either.
    let env = vec![(
        "VELTRIX_STORAGE_POSTGRES_URL".to_owned(),
        "host=db user=veltrix password=hunter2".to_owned(),
    )];
    let report = check_source("veltrix.toml", "[broker]\nprofile = \"development\"\n", &env, &disk());
    let rendered = report.render(false);
    assert!(rendered.contains("VELTRIX_STORAGE__POSTGRES_URL"), "{rendered}");
    assert!(!rendered.contains("hunter2"), "{rendered}");
}

#[test]
fn passwords_are_found_in_every_form_libpq_takes() {
    for (url, redacted) in [
        ("postgresql://u:pw@h/db", "postgresql://u:***@h/db"),
        (
            "postgres://u:p%40ss@h:5432/db?sslmode=disable",
            "postgres://u:***@h:5432/db?sslmode=disable",
        ),
        (
            "postgresql://u@h/db?password=pw&x=1",
            "postgresql://u@h/db?password=***&x=1",
        ),
        (
            "host=h user=u password=pw dbname=db",
            "host=h user=u password=*** dbname=db",
        ),
        ("host=h password = 'a b' dbname=db", "host=h password = *** dbname=db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("postgresql://u:@h/db", "postgresql://u:@h/db"),
        ("host=h user=u", "host=h user=u"),
    ] {
        assert_eq!(veltrix_config::redact_password(url), redacted, "{url}");
    }
}

#[test]
fn shared_storage_keys_reach_their_fields() {
    let src = shared(
        "endpoint = \"https://s3.internal\"\nregion = \"eu-west-1\"\nkey_prefix = \"prod\"\nflush_interval_ms = 20\n\
         flush_bytes_max = 1_048_576\nbuffered_bytes_max = 4_194_304\ncache_bytes_max = 0\nput_timeout_ms = 1_000\n\
         commit_timeout_ms = 2_000\nget_timeout_ms = 3_000\npostgres_connections_max = 8\npostgres_statement_timeout_ms = 4_000\n\
         lease_ms = 5_000\norphan_grace_ms = 60_000\nmerge_small_bytes_max = 0\nmerged_bytes_max = 2_097_152\nmerge_age_ms_min = 5_000\n",
    );
    let report = check_source("veltrix.toml", &src, &[], &disk());
    let s = report
        .config
        .clone()
        .and_then(|c| c.storage)
        .unwrap_or_else(|| panic!("{}", report.render(false)));
    let mut expected =
        veltrix_config::SharedStorage::new(1, "veltrix-data", "postgresql://veltrix@db.internal/veltrix");
    expected.endpoint = Some("https://s3.internal".to_owned());
    expected.region = "eu-west-1".to_owned();
    expected.key_prefix = "prod".to_owned();
    expected.flush_interval_ms = 20;
    expected.flush_bytes_max = 1 << 20;
    expected.buffered_bytes_max = 4 << 20;
    expected.cache_bytes_max = 0;
    expected.put_timeout_ms = 1_000;
    expected.commit_timeout_ms = 2_000;
    expected.get_timeout_ms = 3_000;
    expected.postgres_connections_max = 8;
    expected.postgres_statement_timeout_ms = 4_000;
    expected.lease_ms = 5_000;
    expected.orphan_grace_ms = 60_000;
    expected.merge_small_bytes_max = 0;
    expected.merged_bytes_max = 2 << 20;
    expected.merge_age_ms_min = 5_000;
    assert_eq!(s, expected);
    // Local, the default: no shared storage, whatever else the table says.
    let local = check_source("veltrix.toml", "[storage]\nbucket = \"b\"\n", &[], &disk());
    assert!(local.config.unwrap().storage.is_none());
}

#[test]
fn online_findings_point_at_their_key() {
    let src = shared("");
    let env = vec![("VELTRIX_STORAGE__BUCKET".to_owned(), "from-env".to_owned())];
    let mut report = check_source("veltrix.toml", &src, &env, &disk());
    assert!(report.config.is_some());
    let finding = |rule: &'static veltrix_config::Rule, key: &'static str| veltrix_config::OnlineFinding {
        rule,
        key,
        message: format!("about {key}"),
        label: "here".to_owned(),
        help: "do this".to_owned(),
        note: "because".to_owned(),
    };
    report.add_online(
        &env,
        vec![
            finding(&veltrix_config::rules::CATALOG_REACHABLE, "postgres_url"),
            finding(&veltrix_config::rules::BUCKET_UNREACHABLE, "bucket"),
        ],
    );
    let d = &report.diagnostics;
    assert_eq!(d.len(), 2);
    assert_eq!((d[0].id(), d[0].line()), ("V401", Some(5)));
    assert!(
        matches!(&d[1].location, Some(Location::Env { var, .. }) if var == "VELTRIX_STORAGE__BUCKET"),
        "{:?}",
        d[1].location
    );
    // An online error withholds the configuration and fails the check, a
    // note changes nothing.
    assert_eq!((report.errors(), report.exit_code(false)), (1, 1));
    assert!(report.config.is_none());
}
