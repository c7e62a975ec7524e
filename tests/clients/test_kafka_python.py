"""kafka-python against Veltrix: admin, produce, assign + seek, offset lookups."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

PARTITIONS = 3

# The tests stamp records with fixed times long past, to know the exact answers
# to lookups by time. With the default retention the broker would rightly
# delete such records within a second (retention goes by record time, as in
# Kafka), so these topics keep records forever.
KEEP_FOREVER = {"retention.ms": "-1"}


def admin(bootstrap: str) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)


def producer(bootstrap: str, **extra) -> KafkaProducer:
    """A non-idempotent acks=all producer without retries.

    kafka-python 3 turns idempotence on by default, which needs InitProducerId;
    the broker does not serve it yet. Retries are off so that a failed request
    fails the test instead of reordering records.
    """
    config = dict(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=False,
        retries=0,
        request_timeout_ms=30_000,
    )
    config.update(extra)
    return KafkaProducer(**config)


def consumer(bootstrap: str) -> KafkaConsumer:
    """A consumer without a group: partitions are assigned and positioned by hand."""
    return KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        request_timeout_ms=30_000,
    )


def read_until(c: KafkaConsumer, tp: TopicPartition, end: int, timeout_s: float = 30.0) -> list:
    """Polls until the consumer's position in `tp` reaches `end`; returns the records."""
    deadline = time.monotonic() + timeout_s
    records = []
    while c.position(tp) < end:
        assert time.monotonic() < deadline, f"{tp}: at {c.position(tp)} after {timeout_s} s, expected {end}"
        for batch in c.poll(timeout_ms=500).values():
            records.extend(batch)
    return records


def test_kafka_python_admin_produce_and_consume_by_partition_and_offset(broker):
    """Admin-created topic, records produced in batches, read back by assign + seek.

    KafkaAdminClient creates a 3-partition topic; creating it again must fail
    with TopicAlreadyExistsError, and describe_topics must list 3 partitions.
    300 records with keys, two headers and explicit timestamps go to partition
    i % 3, batched by the producer (linger). Each delivery must report offset
    i // 3. The consumer then assigns partition 1 and seeks to offset 37: it
    must get exactly offsets 37..99 of that partition, in order, with the keys,
    values, headers and timestamps that were sent (the broker returns whole
    batches, so the client has to drop the records before 37 itself). A seek
    to the beginning of partition 0 must then return all 100 of its records.
    """
    bootstrap = broker.bootstrap
    topic = "kp-records"
    a = admin(bootstrap)
    try:
        result = a.create_topics([NewTopic(topic, PARTITIONS, 1, topic_configs=KEEP_FOREVER)])
        assert [(t["name"], t["error_code"], t["num_partitions"]) for t in result["topics"]] == [(topic, 0, 3)]
        with pytest.raises(TopicAlreadyExistsError):
            a.create_topics([NewTopic(topic, PARTITIONS, 1, topic_configs=KEEP_FOREVER)], raise_errors=True)
        described = a.describe_topics([topic])
        assert [p["partition_index"] for p in described[0]["partitions"]] == [0, 1, 2]
        assert all(p["leader_id"] in broker.node_ids for p in described[0]["partitions"])
    finally:
        a.close()

    base_ts = 1_700_000_000_000

    def headers_of(i: int) -> list:
        return [("index", b"%d" % i), ("bin", bytes([i % 256, 0, 255]))]

    p = producer(bootstrap, linger_ms=20)
    try:
        futures = [
            p.send(
                topic,
                key=b"key-%d" % i,
                value=b"value-%d-" % i + bytes(range(i % 50)),
                headers=headers_of(i),
                partition=i % PARTITIONS,
                timestamp_ms=base_ts + i,
            )
            for i in range(300)
        ]
        p.flush(timeout=30)
        delivered = [(f.get(timeout=10).partition, f.get(timeout=10).offset) for f in futures]
    finally:
        p.close(timeout=10)
    assert delivered == [(i % PARTITIONS, i // PARTITIONS) for i in range(300)]

    c = consumer(bootstrap)
    try:
        tp1 = TopicPartition(topic, 1)
        c.assign([tp1])
        c.seek(tp1, 37)
        got = read_until(c, tp1, 100)
        assert [r.offset for r in got] == list(range(37, 100))
        for r in got:
            i = r.offset * PARTITIONS + 1
            assert (r.topic, r.partition) == (topic, 1)
            assert r.key == b"key-%d" % i
            assert r.value == b"value-%d-" % i + bytes(range(i % 50))
            assert [(k, v) for k, v in r.headers] == headers_of(i)
            assert r.timestamp == base_ts + i

        tp0 = TopicPartition(topic, 0)
        c.assign([tp0])
        c.seek_to_beginning(tp0)
        got = read_until(c, tp0, 100)
        assert [(r.offset, r.key) for r in got] == [(n, b"key-%d" % (n * PARTITIONS)) for n in range(100)]
    finally:
        c.close()


def test_kafka_python_offsets_for_times_and_watermarks(bootstrap):
    """beginning_offsets, end_offsets and offsets_for_times give Kafka's answers.

    Five records with timestamps 1000, 2000, ... 5000 go to partition 0 of a
    3-partition topic, each sent and acknowledged before the next, so each is
    its own batch. Partition 0 must span offsets 0..5 and the empty partition
    2 must span 0..0. offsets_for_times must give, for each time, the first
    record at or after it and that record's timestamp: 1000 -> (0, 1000),
    2500 -> (2, 3000), 5000 -> (4, 5000); for 5001, and for any time on the
    empty partition, there is no such record and the answer is None.
    """
    topic = "kp-times"
    a = admin(bootstrap)
    try:
        a.create_topics([NewTopic(topic, PARTITIONS, 1, topic_configs=KEEP_FOREVER)], raise_errors=True)
    finally:
        a.close()
    p = producer(bootstrap)
    try:
        for n in range(5):
            meta = p.send(topic, value=b"v%d" % n, partition=0, timestamp_ms=(n + 1) * 1000).get(timeout=10)
            assert (meta.partition, meta.offset) == (0, n)
    finally:
        p.close(timeout=10)

    c = consumer(bootstrap)
    try:
        tp0, tp2 = TopicPartition(topic, 0), TopicPartition(topic, 2)
        assert c.beginning_offsets([tp0, tp2]) == {tp0: 0, tp2: 0}
        assert c.end_offsets([tp0, tp2]) == {tp0: 5, tp2: 0}

        def lookup(tp: TopicPartition, ts: int):
            found = c.offsets_for_times({tp: ts})[tp]
            return None if found is None else (found.offset, found.timestamp)

        assert lookup(tp0, 1000) == (0, 1000)
        assert lookup(tp0, 2500) == (2, 3000)
        assert lookup(tp0, 5000) == (4, 5000)
        assert lookup(tp0, 5001) is None
        assert lookup(tp2, 0) is None
    finally:
        c.close()


def test_kafka_python_offsets_for_times_inside_a_batch(bootstrap):
    """offsets_for_times finds the exact record even inside a multi-record batch.

    Ten records with timestamps 1000..10000 are produced to one partition in a
    single batch (sent together, flushed once, with a long linger). Asking for
    time 5500 must give offset 5 with timestamp 6000, as Kafka does: it looks
    inside the batch for the first record at or after the target.
    """
    topic = "kp-times-batch"
    a = admin(bootstrap)
    try:
        a.create_topics([NewTopic(topic, 1, 1, topic_configs=KEEP_FOREVER)], raise_errors=True)
    finally:
        a.close()
    p = producer(bootstrap, linger_ms=1_000)
    try:
        futures = [p.send(topic, value=b"v%d" % n, partition=0, timestamp_ms=(n + 1) * 1000) for n in range(10)]
        p.flush(timeout=30)
        assert [f.get(timeout=10).offset for f in futures] == list(range(10))
    finally:
        p.close(timeout=10)

    c = consumer(bootstrap)
    try:
        tp = TopicPartition(topic, 0)
        found = c.offsets_for_times({tp: 5500})[tp]
        assert found is not None
        assert (found.offset, found.timestamp) == (5, 6000)
    finally:
        c.close()
