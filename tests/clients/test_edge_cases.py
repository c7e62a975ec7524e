"""Edge cases of records and fetches that real applications run into."""

from __future__ import annotations

import threading
import time

from confluent_kafka import Consumer, KafkaError, TopicPartition
from kafka import KafkaConsumer
from kafka import TopicPartition as KpTopicPartition

from rdkafka_helpers import SEQ_DIGITS, bulk_value, consume_all, consumer, create_topic, produce_all, producer


def test_null_and_empty_keys_values_and_headers_round_trip(broker):
    """Null stays null and empty stays empty, for keys, values and header values.

    confluent-kafka produces records with every combination that Kafka tells
    apart: a null value (a tombstone) versus an empty one, a null key versus an
    empty one, a header with a null value versus an empty one, and a record
    without headers. Both confluent-kafka and kafka-python must read back
    exactly those, in order.
    """
    topic = "nulls"
    create_topic(broker.bootstrap, topic, 1)
    cases = [
        (None, None, None),
        (b"", b"", None),
        (b"k", None, [("h", None)]),
        (None, b"v", [("h", b"")]),
        (b"k2", b"v2", [("a", b"1"), ("a", b"2"), ("b", None)]),
    ]
    errors: list = []
    p = producer(broker.bootstrap, errors, **{"linger.ms": 0})
    for key, value, headers in cases:
        p.produce(topic, key=key, value=value, headers=headers, partition=0)
        assert p.flush(10) == 0

    c = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "veltrix-client-tests-unused",
            "enable.auto.commit": False,
            "error_cb": errors.append,
        }
    )
    got = []
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + 20
        while len(got) < len(cases):
            assert time.monotonic() < deadline, f"read {len(got)} of {len(cases)}"
            for m in c.consume(10, 0.5):
                assert m.error() is None, m.error()
                got.append((m.key(), m.value(), m.headers()))
    finally:
        c.close()
    assert got == cases

    k = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False)
    try:
        tp = KpTopicPartition(topic, 0)
        k.assign([tp])
        k.seek(tp, 0)
        records = []
        deadline = time.monotonic() + 20
        while len(records) < len(cases):
            assert time.monotonic() < deadline, f"read {len(records)} of {len(cases)}"
            for batch in k.poll(timeout_ms=500).values():
                records.extend(batch)
    finally:
        k.close()
    assert [(r.key, r.value, [tuple(h) for h in r.headers] or None) for r in records] == cases
    assert errors == []


def test_fetch_limits_smaller_than_a_batch_still_make_progress(broker):
    """A consumer whose fetch limits are smaller than one batch still reads it all.

    Kafka returns the first batch of a fetch whole even when it is larger than
    max.partition.fetch.bytes or fetch.max.bytes, so that a consumer can never
    get stuck. 2,000 records of 1 KiB are produced in batches of about 1 MB;
    a consumer limited to 4 KiB per fetch must still read all of them, in order.
    """
    topic = "small-fetches"
    count = 2_000
    create_topic(broker.bootstrap, topic, 1)
    errors: list = []
    p = producer(broker.bootstrap, errors, **{"linger.ms": 50})
    produce_all(p, topic, count, bulk_value, lambda s: 0, time.monotonic() + 60)

    c = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "veltrix-client-tests-unused",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "max.partition.fetch.bytes": 4096,
            "fetch.max.bytes": 4096,
            "message.max.bytes": 4096,
            "error_cb": errors.append,
        }
    )
    offsets = []
    try:
        consume_all(c, topic, {0: count}, lambda m: offsets.append((m.offset(), m.value())), time.monotonic() + 60)
    finally:
        c.close()
    assert offsets == [(n, bulk_value(n)) for n in range(count)]
    assert errors == []


def test_out_of_range_offsets_reset_as_configured(broker):
    """An assigned offset past the end gets OFFSET_OUT_OF_RANGE, and the
    client's auto.offset.reset applies.

    The partition holds ten records. A consumer assigned at offset 1000 with
    auto.offset.reset=earliest must restart at 0 and read offsets 0..9; with
    auto.offset.reset=error it must receive the OFFSET_OUT_OF_RANGE error
    (librdkafka reports it as _AUTO_OFFSET_RESET) and no record.
    """
    topic = "out-of-range"
    create_topic(broker.bootstrap, topic, 1)
    errors: list = []
    p = producer(broker.bootstrap, errors)
    produce_all(p, topic, 10, bulk_value, lambda s: 0, time.monotonic() + 30)

    def start(reset: str) -> Consumer:
        c = Consumer(
            {
                "bootstrap.servers": broker.bootstrap,
                "group.id": "veltrix-client-tests-unused",
                "enable.auto.commit": False,
                "auto.offset.reset": reset,
                "error_cb": errors.append,
            }
        )
        c.assign([TopicPartition(topic, 0, 1000)])
        return c

    c = start("earliest")
    try:
        got = []
        deadline = time.monotonic() + 20
        while len(got) < 10:
            assert time.monotonic() < deadline, f"got {got}"
            for m in c.consume(10, 0.5):
                assert m.error() is None, m.error()
                got.append(m.offset())
        assert got == list(range(10))
    finally:
        c.close()

    c = start("error")
    try:
        seen = None
        deadline = time.monotonic() + 20
        while seen is None:
            assert time.monotonic() < deadline, "no out-of-range error in 20 s"
            for m in c.consume(10, 0.5):
                assert m.error() is not None, f"got record at offset {m.offset()}"
                seen = m.error()
        assert seen.code() == KafkaError._AUTO_OFFSET_RESET, seen
        assert "Offset out of range" in seen.str() or "OFFSET_OUT_OF_RANGE" in seen.str(), seen.str()
    finally:
        c.close()
    assert errors == []


def test_concurrent_producers_to_one_partition_get_distinct_offsets(broker):
    """Four producers writing one partition at once: no offset given twice, none lost.

    Four confluent-kafka producers, each in its own thread and connection,
    send 25,000 records each to partition 0 with acks=all. The delivery
    reports must name 100,000 distinct offsets forming exactly 0..99,999, each
    producer's own records must be in its sending order, and reading the
    partition must return each record at its reported offset.
    """
    topic = "contended"
    writers, each = 4, 25_000
    create_topic(broker.bootstrap, topic, 1)
    errors: list = []
    reports: dict[int, int] = {}
    failures: list = []
    lock = threading.Lock()

    def write(w: int) -> None:
        def on_delivery(err, msg):
            with lock:
                if err is not None:
                    failures.append(err)
                else:
                    reports[int(msg.value()[:SEQ_DIGITS])] = msg.offset()

        p = producer(broker.bootstrap, errors)
        for n in range(each):
            seq = w * each + n
            while True:
                try:
                    p.produce(topic, value=bulk_value(seq), partition=0, on_delivery=on_delivery)
                    break
                except BufferError:
                    p.poll(0.05)
            if n % 1000 == 0:
                p.poll(0)
        if p.flush(60) != 0:
            with lock:
                failures.append("flush timed out")

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a producer thread did not finish in 120 s"
    assert failures == []
    total = writers * each
    assert sorted(reports.values()) == list(range(total))
    for w in range(writers):
        mine = [reports[w * each + n] for n in range(each)]
        assert mine == sorted(mine), f"producer {w}: records stored out of sending order"

    stored = {}
    c = consumer(broker.bootstrap, errors)
    try:
        consume_all(c, topic, {0: total}, lambda m: stored.__setitem__(m.offset(), m.value()), time.monotonic() + 60)
    finally:
        c.close()
    wrong = [off for off, value in stored.items() if reports.get(int(value[:SEQ_DIGITS])) != off]
    assert len(stored) == total and wrong == [], f"{len(wrong)} records not at their reported offset"
    assert errors == []
