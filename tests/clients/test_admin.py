"""Admin APIs through confluent-kafka's AdminClient and kafka-python's KafkaAdminClient.

Each test first checks that the broker advertises the API in ApiVersions and
is skipped, naming the API, when it does not, so the suite tracks the broker
as APIs are added.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
)
from kafka import KafkaAdminClient
from kafka import TopicPartition as KpTopicPartition
from kafka.admin import ConfigResource as KpConfigResource
from kafka.admin import ConfigResourceType
from kafka.admin import NewPartitions as KpNewPartitions
from kafka.admin import NewTopic as KpNewTopic

from harness import (
    API_CREATE_PARTITIONS,
    API_DELETE_RECORDS,
    API_DELETE_TOPICS,
    API_DESCRIBE_CLUSTER,
    API_DESCRIBE_CONFIGS,
    API_INCREMENTAL_ALTER_CONFIGS,
)
from rdkafka_helpers import consumer, producer


# The topic settings AlterConfigs and IncrementalAlterConfigs can change.
SETTABLE = [
    "retention.ms",
    "retention.bytes",
    "segment.bytes",
    "segment.ms",
    "max.message.bytes",
    "flush.ms",
    "cleanup.policy",
    "delete.retention.ms",
    "min.compaction.lag.ms",
    "max.compaction.lag.ms",
    "min.cleanable.dirty.ratio",
    "veltrix.dedup.window.ms",
    "veltrix.dedup.id.header",
    "veltrix.dedup.id.source",
    "veltrix.tier",
]


def require(broker, api: int, name: str) -> None:
    if not broker.serves(api):
        pytest.skip(f"the broker does not serve {name} yet")


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def produce_n(bootstrap: str, topic: str, partition: int, count: int) -> None:
    errors: list = []
    p = producer(bootstrap, errors)
    for n in range(count):
        p.produce(topic, value=b"%020d|" % n, partition=partition)
    assert p.flush(20) == 0
    assert errors == []


def test_describe_configs_reports_topic_settings(broker):
    """DescribeConfigs shows a topic's own settings as set on the topic.

    A topic is created with retention.ms=3600000 and max.message.bytes=50000.
    describe_configs on it must report exactly those values, marked as
    dynamic topic configs (set on the topic); exactly the settings that
    AlterConfigs can change are writable.
    """
    require(broker, API_DESCRIBE_CONFIGS, "DescribeConfigs")
    a = admin(broker.bootstrap)
    topic = "configs"
    new = NewTopic(topic, 1, 1, config={"retention.ms": "3600000", "max.message.bytes": "50000"})
    a.create_topics([new])[topic].result(timeout=20)
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    entries = a.describe_configs([resource])[resource].result(timeout=20)
    assert entries["retention.ms"].value == "3600000"
    assert entries["max.message.bytes"].value == "50000"
    assert entries["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert entries["max.message.bytes"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert sorted(name for name, entry in entries.items() if not entry.is_read_only) == sorted(SETTABLE)


def test_incremental_alter_configs_changes_a_running_topic(broker):
    """incremental_alter_configs sets and deletes settings, all or nothing.

    On a topic with retention.ms=3600000, SET max.message.bytes=10000 and
    DELETE retention.ms: describe_configs must show max.message.bytes as a
    topic setting and retention.ms back at the default (source DEFAULT_CONFIG),
    and a 20 KB record must now be refused with MSG_SIZE_TOO_LARGE. A change
    with a value the setting does not take fails with INVALID_CONFIG and
    changes nothing.
    """
    require(broker, API_INCREMENTAL_ALTER_CONFIGS, "IncrementalAlterConfigs")
    a = admin(broker.bootstrap)
    topic = "altered"
    a.create_topics([NewTopic(topic, 1, 1, config={"retention.ms": "3600000"})])[topic].result(timeout=20)
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry("max.message.bytes", "10000", incremental_operation=AlterConfigOpType.SET),
            ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE),
        ],
    )
    a.incremental_alter_configs([resource])[resource].result(timeout=20)
    described = ConfigResource(ConfigResource.Type.TOPIC, topic)
    entries = a.describe_configs([described])[described].result(timeout=20)
    assert (entries["max.message.bytes"].value, entries["max.message.bytes"].source) == (
        "10000",
        ConfigSource.DYNAMIC_TOPIC_CONFIG.value,
    )
    assert (entries["retention.ms"].value, entries["retention.ms"].source) == (
        "604800000",
        ConfigSource.DEFAULT_CONFIG.value,
    )

    errors: list = []
    p = producer(broker.bootstrap, errors)
    reports = []
    p.produce(topic, value=b"x" * 20_000, partition=0, on_delivery=lambda e, m: reports.append(e))
    assert p.flush(20) == 0
    assert [e.code() for e in reports] == [KafkaError.MSG_SIZE_TOO_LARGE]

    bad = ConfigResource(
        ConfigResource.Type.TOPIC,
        topic,
        incremental_configs=[ConfigEntry("cleanup.policy", "compact,shred", incremental_operation=AlterConfigOpType.SET)],
    )
    with pytest.raises(KafkaException) as refused:
        a.incremental_alter_configs([bad])[bad].result(timeout=20)
    assert refused.value.args[0].code() == KafkaError.INVALID_CONFIG
    entries = a.describe_configs([described])[described].result(timeout=20)
    assert entries["max.message.bytes"].value == "10000"


def test_create_partitions_adds_writable_partitions(broker):
    """CreatePartitions grows a topic, and the new partitions take records.

    A 2-partition topic is grown to 4. Metadata must then list partitions
    0..3, a record produced to partition 3 must land at offset 0, and the old
    partitions keep their records. Shrinking back to 3 must be refused.
    """
    require(broker, API_CREATE_PARTITIONS, "CreatePartitions")
    a = admin(broker.bootstrap)
    topic = "grow"
    a.create_topics([NewTopic(topic, 2, 1)])[topic].result(timeout=20)
    produce_n(broker.bootstrap, topic, 1, 3)
    a.create_partitions([NewPartitions(topic, 4)])[topic].result(timeout=20)
    assert sorted(a.list_topics(topic, timeout=10).topics[topic].partitions) == [0, 1, 2, 3]
    with pytest.raises(KafkaException) as refused:
        a.create_partitions([NewPartitions(topic, 3)])[topic].result(timeout=20)
    assert refused.value.args[0].code() == KafkaError.INVALID_PARTITIONS

    errors: list = []
    p = producer(broker.bootstrap, errors)
    offsets = []
    p.produce(topic, value=b"%020d|" % 99, partition=3, on_delivery=lambda e, m: offsets.append((e, m.offset())))
    assert p.flush(20) == 0
    assert offsets == [(None, 0)]
    c = consumer(broker.bootstrap, errors)
    try:
        assert c.get_watermark_offsets(TopicPartition(topic, 1), timeout=10) == (0, 3)
        assert c.get_watermark_offsets(TopicPartition(topic, 3), timeout=10) == (0, 1)
    finally:
        c.close()
    assert errors == []


def test_delete_records_moves_the_log_start(broker):
    """DeleteRecords makes records before an offset unreadable.

    Ten records go to partition 0; deleting before offset 4 must report low
    watermark 4, the watermarks must then be (4, 10), and a consumer that
    starts at the beginning must get offsets 4..9 only.
    """
    require(broker, API_DELETE_RECORDS, "DeleteRecords")
    a = admin(broker.bootstrap)
    topic = "trim"
    a.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=20)
    produce_n(broker.bootstrap, topic, 0, 10)
    result = a.delete_records([TopicPartition(topic, 0, 4)])
    deleted = list(result.values())[0].result(timeout=20)
    assert deleted.low_watermark == 4

    errors: list = []
    c = consumer(broker.bootstrap, errors)
    try:
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (4, 10)
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        got = []
        deadline = time.monotonic() + 20
        while len(got) < 6:
            assert time.monotonic() < deadline, f"got offsets {got}"
            for m in c.consume(100, 0.5):
                if m.error() is None:
                    got.append(m.offset())
        assert got == [4, 5, 6, 7, 8, 9]
    finally:
        c.close()


def test_delete_topics_removes_the_topic_and_frees_the_name(broker):
    """DeleteTopics removes a topic; the name can then be created afresh.

    A topic with records is deleted: metadata must no longer list it. A new
    topic of the same name must start empty (watermarks 0, 0), with the new
    partition count.
    """
    require(broker, API_DELETE_TOPICS, "DeleteTopics")
    a = admin(broker.bootstrap)
    topic = "doomed"
    a.create_topics([NewTopic(topic, 2, 1)])[topic].result(timeout=20)
    produce_n(broker.bootstrap, topic, 0, 5)
    a.delete_topics([topic], operation_timeout=10)[topic].result(timeout=20)
    assert topic not in a.list_topics(timeout=10).topics

    a.create_topics([NewTopic(topic, 3, 1)])[topic].result(timeout=20)
    assert sorted(a.list_topics(topic, timeout=10).topics[topic].partitions) == [0, 1, 2]
    errors: list = []
    c = consumer(broker.bootstrap, errors)
    try:
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, 0)
    finally:
        c.close()


def test_describe_cluster_names_the_single_broker(broker):
    """DescribeCluster names one node, id 0, at the listener's address, as controller.

    On shared storage: the three brokers, one of them as controller.
    """
    require(broker, API_DESCRIBE_CLUSTER, "DescribeCluster")
    a = admin(broker.bootstrap)
    cluster = a.describe_cluster(request_timeout=10).result(timeout=20)
    assert sorted((n.id, n.host, n.port) for n in cluster.nodes) == broker.nodes
    assert cluster.controller.id in broker.node_ids
    assert cluster.cluster_id == "veltrix"


def test_kafka_python_admin_calls(broker):
    """kafka-python's KafkaAdminClient gets the same answers as librdkafka.

    It creates a 2-partition topic with retention.ms=3600000, grows it to 4
    partitions, and describe_configs (which by default lists only settings
    changed from the defaults) must show exactly retention.ms=3600000 as a
    topic setting; after alter_configs of segment.ms (incrementally) and of
    retention.ms (with the older AlterConfigs) both show their new values.
    describe_cluster must name broker 0 at the listener as the
    controller. After five records, delete_records up to offset 3 must report
    low watermark 3. delete_topics must then succeed and list_topics be empty.
    """
    for api, name in [
        (API_CREATE_PARTITIONS, "CreatePartitions"),
        (API_DESCRIBE_CONFIGS, "DescribeConfigs"),
        (API_DESCRIBE_CLUSTER, "DescribeCluster"),
        (API_DELETE_RECORDS, "DeleteRecords"),
        (API_DELETE_TOPICS, "DeleteTopics"),
    ]:
        require(broker, api, name)
    topic = "kp-admin"
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10_000)
    try:
        a.create_topics([KpNewTopic(topic, 2, 1, topic_configs={"retention.ms": "3600000"})], raise_errors=True)
        grown = a.create_partitions({topic: KpNewPartitions(4)})
        assert [(r.name, r.error_code) for r in grown.results] == [(topic, 0)]
        assert [p["partition_index"] for p in a.describe_topics([topic])[0]["partitions"]] == [0, 1, 2, 3]

        configs = a.describe_configs([KpConfigResource(ConfigResourceType.TOPIC, topic)])
        assert {k: (v["value"], v["config_source"]) for k, v in configs["topic"][topic].items()} == {
            "retention.ms": ("3600000", "DYNAMIC_TOPIC_CONFIG")
        }

        # kafka-python uses IncrementalAlterConfigs when the broker serves it,
        # and AlterConfigs (re-sending the other changed settings) when told to.
        for incremental, key, value in [(True, "segment.ms", "600000"), (False, "retention.ms", "7200000")]:
            a.alter_configs(
                [KpConfigResource(ConfigResourceType.TOPIC, topic, configs={key: value})], incremental=incremental
            )
        configs = a.describe_configs([KpConfigResource(ConfigResourceType.TOPIC, topic)])
        assert {k: (v["value"], v["config_source"]) for k, v in configs["topic"][topic].items()} == {
            "retention.ms": ("7200000", "DYNAMIC_TOPIC_CONFIG"),
            "segment.ms": ("600000", "DYNAMIC_TOPIC_CONFIG"),
        }

        cluster = a.describe_cluster()
        assert cluster["cluster_id"] == "veltrix"
        assert cluster["controller_id"] in broker.node_ids
        assert sorted((b["broker_id"], b["host"], b["port"]) for b in cluster["brokers"]) == sorted(broker.nodes)

        produce_n(broker.bootstrap, topic, 0, 5)
        trimmed = a.delete_records({KpTopicPartition(topic, 0): 3})
        assert [(v["low_watermark"], v["error_code"]) for v in trimmed.values()] == [(3, 0)]

        deleted = a.delete_topics([topic])
        assert [(t["name"], t["error_code"]) for t in deleted["topics"]] == [(topic, 0)]
        assert a.list_topics() == []
    finally:
        a.close()
