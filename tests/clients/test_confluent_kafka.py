"""confluent-kafka (librdkafka) against Veltrix: bulk round trip, compression, offsets."""

from __future__ import annotations

import os
import time
from array import array

import pytest
from confluent_kafka import TopicPartition
from kafka import KafkaProducer

from harness import API_FIND_COORDINATOR
from rdkafka_helpers import (
    PARTITIONS,
    SEQ_DIGITS,
    VALUE_BYTES,
    bulk_value,
    consume_all,
    consumer,
    create_topic,
    idempotent_producer,
    produce_all,
    producer,
)

# Records in the bulk test. One million 1 KiB records take about ten seconds
# on two cores with the debug build; set VELTRIX_CLIENT_RECORDS lower for a
# quick run, higher for a soak.
RECORDS = int(os.environ.get("VELTRIX_CLIENT_RECORDS", "1000000"))


@pytest.mark.timeout(600)
def test_confluent_kafka_bulk_acks_all_round_trip(broker):
    """VELTRIX_CLIENT_RECORDS (default 1,000,000) records of 1 KiB, produced with
    acks=all and enable.idempotence=true, all come back exactly once, in order,
    unchanged.

    Record `seq` goes to partition seq % 6 and carries seq in its value. Every
    delivery report must succeed, and its offsets per partition must be
    0..n-1. A consumer then assigns all six partitions explicitly from offset 0
    (no consumer group) and reads to the end, with CRC checks on. Each record
    must sit at the partition and offset its delivery report named, its value
    must be byte for byte what was sent, and each partition must end exactly at
    its record count; so nothing is lost, duplicated, reordered or altered.
    """
    topic = "bulk"
    create_topic(broker.bootstrap, topic, PARTITIONS)
    client_errors: list = []
    deadline = time.monotonic() + 420

    started = time.monotonic()
    p = idempotent_producer(
        broker.bootstrap, client_errors, **{"batch.size": 1_000_000, "queue.buffering.max.kbytes": 262_144}
    )
    delivered_partition, delivered_offset = produce_all(
        p, topic, RECORDS, bulk_value, lambda seq: seq % PARTITIONS, deadline
    )
    produced_s = time.monotonic() - started

    # Sequence numbers were spread round-robin, so partition p holds seq = p,
    # p + 6, p + 12, ... at offsets 0, 1, 2, ...
    for seq in range(0, RECORDS, 997):
        assert delivered_partition[seq] == seq % PARTITIONS
        assert delivered_offset[seq] == seq // PARTITIONS, f"seq {seq} delivered at offset {delivered_offset[seq]}"
    ends = {part: len(range(part, RECORDS, PARTITIONS)) for part in range(PARTITIONS)}

    seen = bytearray(RECORDS)
    problems = []

    def check(msg):
        value = msg.value()
        seq = int(value[:SEQ_DIGITS])
        if (
            seen[seq]
            or msg.partition() != delivered_partition[seq]
            or msg.offset() != delivered_offset[seq]
            or value != bulk_value(seq)
        ):
            problems.append((msg.partition(), msg.offset(), seq, bool(seen[seq])))
        seen[seq] = 1

    c = consumer(broker.bootstrap, client_errors)
    try:
        consume_all(c, topic, ends, check, deadline)
    finally:
        c.close()
    consumed_s = time.monotonic() - started - produced_s
    print(f"{RECORDS} records: produced in {produced_s:.1f} s, consumed in {consumed_s:.1f} s")

    assert problems == [], f"{len(problems)} records wrong (partition, offset, seq, duplicate): {problems[:5]}"
    assert seen.count(0) == 0, f"{seen.count(0)} records never consumed"
    assert sum(ends.values()) == RECORDS
    assert client_errors == [], f"client errors: {client_errors[:5]}"


def compressible_value(seq: int) -> bytes:
    """A 1 KiB value that compresses well but differs per record."""
    return (b"%020d|" % seq + b"record %d of a compressed batch; " % seq * 40)[:VALUE_BYTES]


def produce_with_kafka_python(bootstrap: str, topic: str, count: int, partitions: int, codec: str):
    """Produces with kafka-python; returns each record's delivered (partition, offset).

    kafka-python compresses with whatever codec it is given (lz4 through the
    `lz4` package), whatever the broker advertises, so it is the producer that
    exercises lz4 while librdkafka holds lz4 back (see the skip below).
    """
    p = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=False,
        retries=0,
        compression_type=codec,
        linger_ms=5,
        request_timeout_ms=30_000,
    )
    try:
        futures = [p.send(topic, value=compressible_value(seq), partition=seq % partitions) for seq in range(count)]
        p.flush(timeout=60)
        metas = [f.get(timeout=10) for f in futures]
    finally:
        p.close(timeout=10)
    return array("i", (m.partition for m in metas)), array("q", (m.offset for m in metas))


@pytest.mark.parametrize(
    "client,codec",
    [
        ("confluent-kafka", "zstd"),
        ("confluent-kafka", "lz4"),
        ("confluent-kafka", "gzip"),
        ("confluent-kafka", "snappy"),
        ("kafka-python", "lz4"),
        ("kafka-python", "gzip"),
    ],
)
def test_compressed_batches_round_trip_to_confluent_kafka(broker, client, codec):
    """Batches compressed by the producer are stored as sent and read back.

    20,000 compressible 1 KiB records are produced across 3 partitions with the
    codec, by librdkafka (confluent-kafka) or by kafka-python. The broker keeps
    batches as the producer sent them (it never decodes records), so the
    confluent-kafka consumer receives compressed batches and must decompress
    them: every record must come back once, at its delivered offset, with its
    exact value. That the data directory holds less than a quarter of the
    uncompressed bytes proves the batches really were compressed on the wire
    and on disk, not silently sent plain.
    """
    if client == "confluent-kafka" and codec == "lz4" and not broker.serves(API_FIND_COORDINATOR):
        # librdkafka enables LZ4 only for brokers that advertise FindCoordinator
        # (its stand-in for "Kafka 0.8.2 or later") and otherwise sends such
        # batches uncompressed without an error; kafka-python covers lz4 here.
        pytest.skip(
            "consumer groups are issue 4: without FindCoordinator in ApiVersions librdkafka "
            "sends compression.type=lz4 batches uncompressed"
        )
    topic = f"compressed-{client}-{codec}"
    count, partitions = 20_000, 3
    create_topic(broker.bootstrap, topic, partitions)
    client_errors: list = []
    deadline = time.monotonic() + 120

    if client == "confluent-kafka":
        p = producer(broker.bootstrap, client_errors, **{"compression.type": codec})
        delivered_partition, delivered_offset = produce_all(
            p, topic, count, compressible_value, lambda seq: seq % partitions, deadline
        )
    else:
        delivered_partition, delivered_offset = produce_with_kafka_python(
            broker.bootstrap, topic, count, partitions, codec
        )
    ends = {part: len(range(part, count, partitions)) for part in range(partitions)}
    stored = broker.data_bytes()
    assert stored < count * VALUE_BYTES // 4, f"{stored} bytes on disk for {count * VALUE_BYTES}: not compressed"

    seen = bytearray(count)
    problems = []

    def check(msg):
        value = msg.value()
        seq = int(value[:SEQ_DIGITS])
        if (
            seen[seq]
            or (msg.partition(), msg.offset()) != (delivered_partition[seq], delivered_offset[seq])
            or value != compressible_value(seq)
        ):
            problems.append((msg.partition(), msg.offset(), seq))
        seen[seq] = 1

    c = consumer(broker.bootstrap, client_errors)
    try:
        consume_all(c, topic, ends, check, deadline)
    finally:
        c.close()
    assert problems == [], f"{len(problems)} records wrong: {problems[:5]}"
    assert seen.count(0) == 0, f"{seen.count(0)} records never consumed"
    assert client_errors == [], f"client errors: {client_errors[:5]}"


def test_confluent_kafka_watermarks_and_offsets_for_times(broker):
    """Watermarks and by-timestamp lookups through librdkafka match the log.

    Five records with explicit timestamps 1000, 2000, ... 5000 go to partition
    0 of a 2-partition topic, each flushed alone so each is its own batch.
    get_watermark_offsets must give (0, 5) for partition 0 and (0, 0) for the
    empty partition 1; offsets_for_times must map 2500 to offset 2, 1000 to 0,
    and 9999 to -1 (no record that recent; the client reports OFFSET_END).
    """
    topic = "times"
    # Records stamped in 1970 would be deleted by the default retention (which
    # goes by record time, as in Kafka) before the lookups; keep them.
    create_topic(broker.bootstrap, topic, 2, {"retention.ms": "-1"})
    client_errors: list = []
    p = producer(broker.bootstrap, client_errors)
    for n in range(5):
        p.produce(topic, value=b"%020d|" % n, partition=0, timestamp=(n + 1) * 1000)
        assert p.flush(20) == 0
    c = consumer(broker.bootstrap, client_errors)
    try:
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, 5)
        assert c.get_watermark_offsets(TopicPartition(topic, 1), timeout=10) == (0, 0)
        asked = [TopicPartition(topic, 0, ts) for ts in (2500, 1000, 9999)]
        answers = [c.offsets_for_times([tp], timeout=10)[0] for tp in asked]
        assert [a.error for a in answers] == [None, None, None]
        assert [a.offset for a in answers] == [2, 0, -1]
    finally:
        c.close()
    assert client_errors == [], f"client errors: {client_errors[:5]}"
