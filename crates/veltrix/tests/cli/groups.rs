//! End-to-end tests of `veltrix group`: each test starts the real `veltrix
//! serve` binary on a fresh data directory, writes records with `veltrix
//! produce`, commits offsets or joins a group with `veltrix-client` as a
//! consumer would, and checks what `veltrix group` prints, how it exits, and
//! what the broker holds afterwards (read back with the client, not with the
//! tool under test).

use serde_json::{Value, json};
use veltrix_client::kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
use veltrix_client::kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use veltrix_client::kafka_protocol::messages::leave_group_request::MemberIdentity;
use veltrix_client::kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use veltrix_client::kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, GroupId, JoinGroupRequest, LeaveGroupRequest,
    SyncGroupRequest, TopicName,
};
use veltrix_client::kafka_protocol::protocol::{Encodable, StrBytes};
use veltrix_client::{Client, ClientConfig, OffsetToCommit, is_active_group_error};

use crate::common::{BrokerGuard, each_says_no_broker, moment_between, shared, start_broker};

/// Writes `count` records to one partition of `topic`.
fn produce(b: &BrokerGuard, topic: &str, partition: i32, count: usize) {
    let lines: String = (0..count).map(|i| format!("record-{i}\n")).collect();
    b.ok_with(
        &["produce", topic, "--partition", &partition.to_string()],
        lines.as_bytes(),
    );
}

/// A client of the broker, on a runtime of its own.
fn client(b: &BrokerGuard) -> TestClient {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let config = ClientConfig {
        client_id: "group-test".to_owned(),
        ..ClientConfig::default()
    };
    let client = runtime.block_on(Client::connect(&b.addr, config)).unwrap();
    TestClient { runtime, client }
}

/// `veltrix-client` with a blocking face, for setting the stage and checking
/// what the broker holds.
struct TestClient {
    runtime: tokio::runtime::Runtime,
    client: Client,
}

impl TestClient {
    /// Commits offsets from outside the group, as a consumer that assigns its
    /// own partitions does.
    fn commit(&mut self, group: &str, offsets: &[(&str, i32, i64)]) {
        let offsets: Vec<OffsetToCommit> = offsets
            .iter()
            .map(|&(topic, partition, offset)| OffsetToCommit {
                topic,
                partition,
                offset,
            })
            .collect();
        self.runtime
            .block_on(self.client.commit_offsets(group, &offsets))
            .unwrap();
    }

    /// The group's committed offsets of `topic`'s partitions 0..n, `None` where
    /// nothing is committed.
    fn committed(&mut self, group: &str, topic: &str, n: i32) -> Vec<Option<i64>> {
        let partitions: Vec<(&str, i32)> = (0..n).map(|p| (topic, p)).collect();
        let committed = self
            .runtime
            .block_on(self.client.committed_offsets(group, Some(&partitions)))
            .unwrap();
        (0..n)
            .map(|p| committed.iter().find(|c| c.partition == p).unwrap().offset)
            .collect()
    }
}

/// The rows of the table whose header starts with `first_column`, split on
/// whitespace.
fn table(output: &str, first_column: &str) -> Vec<Vec<String>> {
    output
        .lines()
        .skip_while(|l| !l.starts_with(first_column))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| (*c).to_owned()).collect()
}

/// `veltrix group reset-offsets billing --topic orders`, then `args`.
fn reset_args<'a>(args: &[&'a str]) -> Vec<&'a str> {
    [&["group", "reset-offsets", "billing", "--topic", "orders"][..], args].concat()
}

#[test]
fn lag_and_offset_resets_of_an_inactive_group() {
    let _machine = shared();
    let b = start_broker();
    b.ok(&["topic", "create", "orders", "--partitions", "3"]);
    // Partition 0: 10 records, then 5 after `t`; partition 1: 20; partition 2: 5.
    produce(&b, "orders", 0, 10);
    produce(&b, "orders", 1, 20);
    produce(&b, "orders", 2, 5);
    let t = moment_between();
    produce(&b, "orders", 0, 5);
    let mut c = client(&b);
    let reset = |args: &[&str]| b.ok(&reset_args(args));
    c.commit("billing", &[("orders", 0, 4), ("orders", 1, 20), ("orders", 2, 0)]);

    // A group that only stores offsets: no protocol type, Empty.
    assert_eq!(b.ok(&["group", "list"]).stdout, "billing\tEmpty\t\n");
    let text = b.ok(&["group", "describe", "billing"]).stdout;
    assert!(
        text.starts_with("Group: billing\nState: Empty\nProtocol type: -\nProtocol: -\nMembers: 0\n\n"),
        "{text}"
    );
    assert_eq!(
        table(&text, "TOPIC"),
        [
            row(&["orders", "0", "4", "15", "11", "-"]),
            row(&["orders", "1", "20", "20", "0", "-"]),
            row(&["orders", "2", "0", "5", "5", "-"]),
        ]
    );
    let described: Value =
        serde_json::from_str(&b.ok(&["group", "describe", "billing", "--format", "json"]).stdout).unwrap();
    assert_eq!(
        described,
        json!({
            "group": "billing",
            "type": "classic",
            "state": "Empty",
            "protocol_type": "",
            "protocol": "",
            "members": [],
            "offsets": [
                {"topic": "orders", "partition": 0, "committed": 4, "end": 15, "lag": 11, "member_id": null},
                {"topic": "orders", "partition": 1, "committed": 20, "end": 20, "lag": 0, "member_id": null},
                {"topic": "orders", "partition": 2, "committed": 0, "end": 5, "lag": 5, "member_id": null},
            ],
        })
    );

    // A dry run prints the plan and changes nothing.
    let out = reset(&["--to-earliest"]);
    assert_eq!(
        table(&out.stdout, "TOPIC"),
        [
            row(&["orders", "0", "4", "0"]),
            row(&["orders", "1", "20", "0"]),
            row(&["orders", "2", "0", "0"]),
        ]
    );
    assert!(
        out.stdout
            .ends_with("\ndry run: nothing committed; run again with --execute to commit these offsets\n"),
        "{out:?}"
    );
    assert_eq!(out.stderr, "");
    assert_eq!(c.committed("billing", "orders", 3), [Some(4), Some(20), Some(0)]);

    // --execute, one partition, to the earliest.
    let out = reset(&["--partition", "1", "--to-earliest", "--execute"]);
    assert_eq!(table(&out.stdout, "TOPIC"), [row(&["orders", "1", "20", "0"])]);
    assert!(
        out.stdout
            .ends_with("\ncommitted new offsets of 1 partition of topic orders for group billing\n"),
        "{out:?}"
    );
    assert_eq!(c.committed("billing", "orders", 3), [Some(4), Some(0), Some(0)]);

    // To the latest, every partition.
    reset(&["--to-latest", "--execute"]);
    assert_eq!(c.committed("billing", "orders", 3), [Some(15), Some(20), Some(5)]);
    let text = b.ok(&["group", "describe", "billing"]).stdout;
    let lags: Vec<String> = table(&text, "TOPIC").into_iter().map(|r| r[4].clone()).collect();
    assert_eq!(lags, ["0", "0", "0"], "{text}");

    // To offsets: inside the log as given, outside it clamped with a warning.
    let out = reset(&["--partition", "0", "--partition", "2", "--to-offset", "7", "--execute"]);
    assert_eq!(
        out.stderr,
        "warning: partition 2: offset 7 is past the log end 5; using 5\n"
    );
    assert_eq!(
        table(&out.stdout, "TOPIC"),
        [row(&["orders", "0", "15", "7"]), row(&["orders", "2", "5", "5"])]
    );
    assert_eq!(c.committed("billing", "orders", 3), [Some(7), Some(20), Some(5)]);

    // To a time: the first record at or after it, or the end where none is.
    reset(&["--to-datetime", &t.to_string(), "--execute"]);
    assert_eq!(c.committed("billing", "orders", 3), [Some(10), Some(20), Some(5)]);
    // In RFC 3339, before every record: the log start.
    reset(&["--to-datetime", "2000-01-01T00:00:00Z", "--partition", "1", "--execute"]);
    assert_eq!(c.committed("billing", "orders", 3), [Some(10), Some(0), Some(5)]);

    // Mistakes are named.
    b.fails(
        &reset_args(&["--partition", "3", "--to-latest"]),
        "topic `orders` has no partition 3: it has 3 partitions",
    );
    b.fails(
        &["group", "reset-offsets", "billing", "--topic", "missing", "--to-latest"],
        "topic `missing`: UNKNOWN_TOPIC_OR_PARTITION",
    );
    b.fails(&["group", "describe", "nobody"], "group `nobody` does not exist");

    // Delete, then again.
    assert_eq!(b.ok(&["group", "delete", "billing"]).stdout, "deleted group billing\n");
    let listed = b.ok(&["group", "list"]);
    assert_eq!(
        (listed.stdout.as_str(), listed.stderr.as_str()),
        ("", "no consumer groups\n")
    );
    assert_eq!(c.committed("billing", "orders", 3), [None, None, None]);
    b.fails(
        &["group", "delete", "billing"],
        "deleting group `billing`: GROUP_ID_NOT_FOUND; no such group",
    );
    b.fails(&["group", "describe", "billing"], "group `billing` does not exist");
}

/// Protocol fields as the codec wants them.
fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// The consumer protocol bytes: an `int16` version, then the body.
fn versioned(version: i16, body: &impl Encodable) -> bytes::Bytes {
    let mut out = bytes::BytesMut::new();
    out.extend_from_slice(&version.to_be_bytes());
    body.encode(&mut out, version).unwrap();
    out.freeze()
}

/// Joins `group` as a consumer subscribed to `topic` and, as its leader,
/// assigns itself `partitions`. Returns the member id.
fn join_as_consumer(c: &mut TestClient, group: &str, topic: &str, partitions: &[i32]) -> String {
    let subscription = ConsumerProtocolSubscription::default().with_topics(vec![text(topic)]);
    let mut member_id = String::new();
    let joined = loop {
        let request = JoinGroupRequest::default()
            .with_group_id(GroupId(text(group)))
            .with_session_timeout_ms(120_000)
            .with_rebalance_timeout_ms(60_000)
            .with_member_id(text(&member_id))
            .with_protocol_type(text("consumer"))
            .with_protocols(vec![
                JoinGroupRequestProtocol::default()
                    .with_name(text("range"))
                    .with_metadata(versioned(1, &subscription)),
            ]);
        // The broker waits out its initial rebalance delay before answering.
        let response = c.runtime.block_on(c.client.connection().call(&request, 5)).unwrap();
        match response.error_code {
            0 => break response,
            // MEMBER_ID_REQUIRED: join again under the id the broker chose.
            79 if member_id.is_empty() => member_id = response.member_id.as_str().to_owned(),
            code => panic!("JoinGroup failed with error code {code}"),
        }
    };
    assert_eq!(joined.leader, joined.member_id, "the only member leads");
    let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
        TopicPartition::default()
            .with_topic(TopicName(text(topic)))
            .with_partitions(partitions.to_vec()),
    ]);
    let request = SyncGroupRequest::default()
        .with_group_id(GroupId(text(group)))
        .with_generation_id(joined.generation_id)
        .with_member_id(joined.member_id.clone())
        .with_assignments(vec![
            SyncGroupRequestAssignment::default()
                .with_member_id(joined.member_id.clone())
                .with_assignment(versioned(3, &assignment)),
        ]);
    let synced = c.runtime.block_on(c.client.connection().call(&request, 3)).unwrap();
    assert_eq!(synced.error_code, 0);
    joined.member_id.as_str().to_owned()
}

fn leave(c: &mut TestClient, group: &str, member_id: &str) {
    let request = LeaveGroupRequest::default()
        .with_group_id(GroupId(text(group)))
        .with_members(vec![MemberIdentity::default().with_member_id(text(member_id))]);
    let left = c.runtime.block_on(c.client.connection().call(&request, 3)).unwrap();
    assert_eq!(left.error_code, 0);
    assert_eq!(left.members[0].error_code, 0);
}

#[test]
fn an_active_group_is_described_and_protected() {
    let _machine = shared();
    let b = start_broker();
    b.ok(&["topic", "create", "events", "--partitions", "3"]);
    produce(&b, "events", 0, 6);
    produce(&b, "events", 1, 3);
    let mut c = client(&b);
    // Offsets committed before the group had members; then a consumer joins
    // and is assigned partitions 0 and 1.
    c.commit("readers", &[("events", 0, 2), ("events", 2, 0)]);
    let mut member = client(&b);
    let member_id = join_as_consumer(&mut member, "readers", "events", &[0, 1]);

    assert_eq!(b.ok(&["group", "list"]).stdout, "readers\tStable\tconsumer\n");
    let text = b.ok(&["group", "describe", "readers"]).stdout;
    assert!(
        text.starts_with("Group: readers\nState: Stable\nProtocol type: consumer\nProtocol: range\nMembers: 1\n\n"),
        "{text}"
    );
    assert_eq!(
        table(&text, "MEMBER-ID"),
        [row(&[&member_id, "group-test", "/127.0.0.1", "events", "events:0,1"])]
    );
    assert_eq!(
        table(&text, "TOPIC"),
        [
            row(&["events", "0", "2", "6", "4", &member_id]),
            row(&["events", "1", "-", "3", "-", &member_id]),
            row(&["events", "2", "0", "0", "0", "-"]),
        ]
    );
    let described: Value =
        serde_json::from_str(&b.ok(&["group", "describe", "readers", "--format", "json"]).stdout).unwrap();
    assert_eq!(
        described["members"],
        json!([{
            "member_id": member_id,
            "instance_id": null,
            "client_id": "group-test",
            "host": "/127.0.0.1",
            "subscription": ["events"],
            "assignment": [{"topic": "events", "partitions": [0, 1]}],
        }])
    );
    assert_eq!(
        described["offsets"][1],
        json!({"topic": "events", "partition": 1, "committed": null, "end": 3, "lag": null, "member_id": member_id})
    );

    // A dry run still plans, and warns; --execute is refused before anything
    // is sent; the broker itself refuses a commit from outside the group.
    let out = b.ok(&["group", "reset-offsets", "readers", "--topic", "events", "--to-latest"]);
    assert_eq!(
        out.stderr,
        "warning: group `readers` has active members (1, state Stable); --execute will be refused until they stop\n"
    );
    assert_eq!(table(&out.stdout, "TOPIC")[0], row(&["events", "0", "2", "6"]));
    b.fails(
        &["group", "reset-offsets", "readers", "--topic", "events", "--to-latest", "--execute"],
        "group `readers` has active members (1, state Stable); stop them first: offsets can be reset only while no consumer is in the group",
    );
    let refused = c
        .runtime
        .block_on(c.client.commit_offsets(
            "readers",
            &[OffsetToCommit {
                topic: "events",
                partition: 0,
                offset: 6,
            }],
        ))
        .unwrap_err();
    let kafka = refused.kafka_error().unwrap();
    assert!(is_active_group_error(kafka), "{refused}");
    assert_eq!(c.committed("readers", "events", 3), [Some(2), None, Some(0)]);
    b.fails(
        &["group", "delete", "readers"],
        "deleting group `readers`: NON_EMPTY_GROUP; the group has active members; stop them first",
    );

    // Once the member has left, the same commands work.
    leave(&mut member, "readers", &member_id);
    let list = b.ok(&["group", "list"]).stdout;
    assert_eq!(list, "readers\tEmpty\tconsumer\n");
    b.ok(&[
        "group",
        "reset-offsets",
        "readers",
        "--topic",
        "events",
        "--to-latest",
        "--execute",
    ]);
    assert_eq!(c.committed("readers", "events", 3), [Some(6), Some(3), Some(0)]);
    assert_eq!(b.ok(&["group", "delete", "readers"]).stdout, "deleted group readers\n");
}

#[test]
fn without_a_broker_every_group_tool_says_so() {
    let _machine = shared();
    each_says_no_broker(&[
        &["group", "list"][..],
        &["group", "describe", "g"],
        &["group", "reset-offsets", "g", "--topic", "t", "--to-earliest"],
        &["group", "delete", "g"],
    ]);
}

/// A share group with records accepted and in flight: `group list` names it
/// with its type, `group describe` shows its member, assignment and each
/// share-partition's start offset, end and lag.
#[test]
fn a_share_group_is_listed_and_described() {
    use veltrix_client::{AckType, ShareConsumer, ShareFetchOptions};
    let _machine = shared();
    let b = start_broker();
    b.ok(&["topic", "create", "jobs", "--partitions", "1"]);
    let TestClient { runtime, client } = client(&b);
    let options = ShareFetchOptions {
        max_wait: std::time::Duration::from_millis(100),
        ..ShareFetchOptions::default()
    };
    let mut member = runtime
        .block_on(ShareConsumer::join(
            client.into_connection(),
            "workers",
            "jobs",
            "cli-test-member".into(),
            options,
        ))
        .unwrap();
    // The group starts at the end of the log (share.auto.offset.reset=latest):
    // read once while the topic is empty, then produce.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while member.assigned().is_empty() {
        assert!(std::time::Instant::now() < deadline, "no assignment within 20 s");
        runtime.block_on(member.heartbeat()).unwrap();
    }
    runtime.block_on(member.fetch()).unwrap();
    produce(&b, "jobs", 0, 10);
    let mut acquired = 0;
    while acquired < 10 {
        assert!(
            std::time::Instant::now() < deadline,
            "acquired {acquired} of 10 within 20 s"
        );
        acquired += runtime.block_on(member.fetch()).unwrap().acquired();
    }
    member.acknowledge(0, 0, 3, AckType::Accept).unwrap();
    let outcomes = runtime.block_on(member.flush()).unwrap();
    assert!(outcomes.iter().all(|o| o.error.is_none()), "{outcomes:?}");

    assert_eq!(b.ok(&["group", "list"]).stdout, "workers\tStable\tshare\n");
    let text = b.ok(&["group", "describe", "workers"]).stdout;
    assert!(
        text.starts_with("Group: workers\nState: Stable\nProtocol type: share\n"),
        "{text}"
    );
    assert!(text.contains("cli-test-member"), "{text}");
    assert_eq!(
        table(&text, "TOPIC"),
        [row(&["jobs", "0", "4", "10", "6", "cli-test-member"])]
    );
    assert!(text.contains("START is each share-partition's start offset"), "{text}");
    let described: Value =
        serde_json::from_str(&b.ok(&["group", "describe", "workers", "--format", "json"]).stdout).unwrap();
    assert_eq!(described["type"], "share");
    assert_eq!(described["members"][0]["assignment"][0]["topic"], "jobs");
    assert_eq!(described["offsets"][0]["committed"], 4);
}
