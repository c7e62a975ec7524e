"""Durability and produce/fetch behaviour seen through confluent-kafka.

Restarts, a SIGKILL in the middle of acks=all traffic, acks=0 and acks=1,
refused produces and long polling: what a Kafka application relies on.
"""

from __future__ import annotations

import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

from rdkafka_helpers import (
    PARTITIONS,
    SEQ_DIGITS,
    bulk_value,
    consume_all,
    consumer,
    create_topic,
    produce_all,
    producer,
)


def read_everything(bootstrap: str, topic: str, partitions: int, deadline: float) -> dict[int, list]:
    """All records of every partition from 0 to its high watermark: {partition: [(offset, value)]}."""
    errors: list = []
    c = consumer(bootstrap, errors)
    try:
        ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)}
        got: dict[int, list] = {p: [] for p in range(partitions)}
        consume_all(c, topic, ends, lambda m: got[m.partition()].append((m.offset(), m.value())), deadline)
    finally:
        c.close()
    assert errors == [], f"client errors: {errors[:5]}"
    return got


def test_records_survive_a_clean_restart(broker):
    """Everything acknowledged before a SIGTERM restart is there after it, and
    offsets continue where they stopped.

    60,000 records of 1 KiB go to 6 partitions with acks=all. The broker is
    stopped with SIGTERM (it must exit 0) and started again on the same data
    directory. A new consumer must read every record at its delivered offset
    with its exact value, each partition's high watermark must be 10,000, and a
    record produced after the restart must land at offset 10,000, not reuse one.
    """
    topic = "restart"
    count = 60_000
    create_topic(broker.bootstrap, topic, PARTITIONS)
    errors: list = []
    deadline = time.monotonic() + 150
    p = producer(broker.bootstrap, errors)
    delivered_partition, delivered_offset = produce_all(p, topic, count, bulk_value, lambda s: s % PARTITIONS, deadline)
    del p

    broker.restart()

    got = read_everything(broker.bootstrap, topic, PARTITIONS, deadline)
    assert {part: len(records) for part, records in got.items()} == {part: count // PARTITIONS for part in got}
    for part, records in got.items():
        for offset, value in records:
            seq = int(value[:SEQ_DIGITS])
            assert (delivered_partition[seq], delivered_offset[seq]) == (part, offset)
            assert value == bulk_value(seq)

    p = producer(broker.bootstrap, errors)
    after = []
    p.produce(topic, value=bulk_value(count), partition=0, on_delivery=lambda e, m: after.append((e, m.offset())))
    assert p.flush(20) == 0
    assert after == [(None, count // PARTITIONS)]
    assert errors == [], f"client errors: {errors[:5]}"


def test_acknowledged_records_survive_sigkill(broker):
    """A SIGKILL during acks=all traffic loses no acknowledged record.

    A producer sends 1 KiB records to 6 partitions without pause; once 20,000
    are acknowledged the broker is SIGKILLed with requests still in flight,
    and what the client still holds is purged. After a restart on the same
    data directory, every acknowledged record must be readable at the offset
    its acknowledgement named, byte for byte. Records whose acknowledgement
    was lost may be there too, but only as whole, unchanged records of this
    producer, each once, with no gap in any partition's offsets. New records
    must then get offsets after the recovered end: none is handed out twice.
    """
    topic = "sigkill"
    create_topic(broker.bootstrap, topic, PARTITIONS)
    errors: list = []
    acked: dict[int, tuple[int, int]] = {}

    def on_delivery(err, msg):
        if err is None:
            acked[int(msg.value()[:SEQ_DIGITS])] = (msg.partition(), msg.offset())

    # A short message timeout: once the broker is gone nothing is retried, and
    # the purge below fails what is left at once.
    p = producer(broker.bootstrap, errors, **{"message.timeout.ms": 10_000, "linger.ms": 1})
    # The producer thread kills the broker itself, right after a burst of
    # records it has not yet polled for: the newest of them cannot have been
    # acknowledged within the microseconds before the kill, however fast the
    # broker answers, so requests are in flight (or queued) at the kill. (Killing
    # from another thread raced: the broker once acknowledged everything sent
    # before the sender ran again.)
    burst = 3_000
    sent_count = [0]
    failure: list = []

    def produce_loop():
        seq, left = 0, None
        deadline = time.monotonic() + 60
        try:
            while left is None or left > 0:
                try:
                    p.produce(topic, value=bulk_value(seq), partition=seq % PARTITIONS, on_delivery=on_delivery)
                    seq += 1
                    sent_count[0] = seq
                    if left is not None:
                        left -= 1
                except BufferError:
                    p.poll(0.01)
                if left is None and seq % 100 == 0:
                    p.poll(0)
                    if len(acked) >= 20_000:
                        left = burst
                    elif time.monotonic() > deadline:
                        failure.append(f"only {len(acked)} records acknowledged in 60 s")
                        return
        finally:
            broker.kill()

    sender = threading.Thread(target=produce_loop, daemon=True)
    sender.start()
    sender.join(timeout=120)
    assert not sender.is_alive(), "the producer thread did not finish"
    assert failure == [], failure[0]
    sent = sent_count[0]
    p.purge()
    p.flush(15)
    acked_at_kill = dict(acked)
    del p
    assert len(acked_at_kill) < sent, "every record was acknowledged before the kill; nothing was in flight"

    broker.start()
    got = read_everything(broker.bootstrap, topic, PARTITIONS, time.monotonic() + 60)
    found: dict[int, tuple[int, int]] = {}
    for part, records in got.items():
        assert [offset for offset, _ in records] == list(range(len(records))), f"partition {part}: gap in offsets"
        for offset, value in records:
            s = int(value[:SEQ_DIGITS])
            assert value == bulk_value(s), f"partition {part} offset {offset}: damaged record"
            assert s not in found, f"record {s} stored twice: at {found[s]} and {(part, offset)}"
            assert s % PARTITIONS == part
            found[s] = (part, offset)
    lost = {s: where for s, where in acked_at_kill.items() if found.get(s) != where}
    assert lost == {}, f"{len(lost)} acknowledged records missing or moved, e.g. {list(lost.items())[:5]}"
    print(f"sent {sent}, acknowledged {len(acked_at_kill)}, recovered {len(found)}")

    p = producer(broker.bootstrap, errors)
    after = []
    p.produce(topic, value=bulk_value(sent), partition=0, on_delivery=lambda e, m: after.append((e, m.offset())))
    assert p.flush(20) == 0
    assert after == [(None, len(got[0]))]


@pytest.mark.parametrize("acks", ["0", "1"])
def test_acks_0_and_1_records_are_stored(broker, acks):
    """With acks=0 (no response at all) and acks=1, every record is stored once.

    5,000 records go to 2 partitions. With acks=1 the delivery reports must
    name offsets 0..2499 per partition; with acks=0 the broker sends no
    response, so librdkafka reports success without an offset. Either way a
    consumer must then find exactly the 5,000 records, in order, unchanged.
    """
    topic = f"acks-{acks}"
    count, partitions = 5_000, 2
    create_topic(broker.bootstrap, topic, partitions)
    errors: list = []
    p = producer(broker.bootstrap, errors, acks=acks)
    reports = []
    for seq in range(count):
        p.produce(
            topic,
            value=bulk_value(seq),
            partition=seq % partitions,
            on_delivery=lambda e, m: reports.append((e, m.partition(), m.offset(), int(m.value()[:SEQ_DIGITS]))),
        )
        if seq % 1000 == 0:
            p.poll(0)
    assert p.flush(30) == 0
    assert [e for e, *_ in reports if e is not None] == []
    if acks == "1":
        assert sorted((s, part, off) for _, part, off, s in reports) == [
            (s, s % partitions, s // partitions) for s in range(count)
        ]

    # acks=0 answers before the append is even done; wait until it is visible.
    c = consumer(broker.bootstrap, errors)
    try:
        deadline = time.monotonic() + 30

        def visible() -> int:
            return sum(
                c.get_watermark_offsets(TopicPartition(topic, part), timeout=10)[1] for part in range(partitions)
            )

        while visible() < count:
            assert time.monotonic() < deadline, "acks=0 records did not all become visible in 30 s"
            time.sleep(0.1)
    finally:
        c.close()
    got = read_everything(broker.bootstrap, topic, partitions, time.monotonic() + 60)
    for part, records in got.items():
        assert [(offset, value) for offset, value in records] == [
            (n, bulk_value(part + n * partitions)) for n in range(count // partitions)
        ]
    assert errors == [], f"client errors: {errors[:5]}"


def test_refused_produces_leave_no_trace(broker):
    """Produces the broker must refuse fail with Kafka's error and change nothing.

    A record larger than the topic's max.message.bytes (10,000) must fail
    with MSG_SIZE_TOO_LARGE, and the next record must still get offset 0.
    A record for a topic that does not exist (auto-creation is off) must fail
    with UNKNOWN_TOPIC_OR_PART, and the topic must still not exist afterwards.
    """
    topic = "limits"
    create_topic(broker.bootstrap, topic, 1, {"max.message.bytes": "10000"})
    errors: list = []
    p = producer(
        broker.bootstrap,
        errors,
        **{"linger.ms": 0, "topic.metadata.propagation.max.ms": 1_000, "message.timeout.ms": 10_000},
    )
    reports = []

    def record(err, msg):
        reports.append((msg.topic(), err.code() if err else None, msg.offset() if not err else None))

    p.produce(topic, value=b"x" * 20_000, partition=0, on_delivery=record)
    assert p.flush(20) == 0
    p.produce(topic, value=b"small", partition=0, on_delivery=record)
    assert p.flush(20) == 0
    p.produce("no-such-topic", value=b"lost", on_delivery=record)
    assert p.flush(20) == 0
    assert reports == [
        (topic, KafkaError.MSG_SIZE_TOO_LARGE, None),
        (topic, None, 0),
        ("no-such-topic", KafkaError.UNKNOWN_TOPIC_OR_PART, None),
    ]

    metadata = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10)
    assert sorted(metadata.topics) == [topic]


def test_fetch_long_poll_wakes_on_new_records(broker):
    """A consumer waiting at the end gets a new record at once, not after its wait.

    The consumer asks the broker to hold fetches for up to 10 s
    (fetch.wait.max.ms) and sits at the end of an empty partition. A record
    produced then must arrive within 2 s, so the broker answers the waiting
    fetch as soon as the record is committed instead of at its deadline.
    """
    topic = "long-poll"
    create_topic(broker.bootstrap, topic, 1)
    errors: list = []
    c = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "veltrix-client-tests-unused",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10_000,
            "error_cb": errors.append,
        }
    )
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        # Let the consumer reach the broker and park a fetch at offset 0.
        assert c.poll(1.5) is None
        p = producer(broker.bootstrap, errors, **{"linger.ms": 0})
        p.produce(topic, value=b"wake up", partition=0)
        assert p.flush(10) == 0
        produced_at = time.monotonic()
        msg = None
        while msg is None and time.monotonic() - produced_at < 12:
            msg = c.poll(0.1)
        waited = time.monotonic() - produced_at
        assert msg is not None and msg.error() is None, msg and msg.error()
        assert (msg.offset(), msg.value()) == (0, b"wake up")
        assert waited < 2.0, f"record arrived {waited:.1f} s after it was acknowledged"
    finally:
        c.close()
    assert errors == [], f"client errors: {errors[:5]}"
