"""Shared confluent-kafka (librdkafka) helpers of the client compatibility tests.

Producers and consumers configured for exact checks, the record values the
tests recognise, and bounded produce and consume loops.
"""

from __future__ import annotations

import time
from array import array

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

PARTITIONS = 6
VALUE_BYTES = 1024
SEQ_DIGITS = 20

# Values are a 20-digit sequence number, '|', and 1003 bytes cut from this
# pattern at an offset that depends on the sequence number, so that neighbouring
# records differ and a batch served at the wrong offset or with shifted bytes
# cannot pass the content check.
_PATTERN = bytes(range(256)) * 6


def bulk_value(seq: int) -> bytes:
    start = seq % 251
    return b"%020d|" % seq + _PATTERN[start : start + VALUE_BYTES - SEQ_DIGITS - 1]


def create_topic(bootstrap: str, name: str, partitions: int, config: dict | None = None) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = NewTopic(name, partitions, 1, config=config or {})
    for future in admin.create_topics([new], operation_timeout=10).values():
        future.result(timeout=20)


def producer(bootstrap: str, errors: list, **extra) -> Producer:
    """A non-idempotent acks=all producer that records client-level errors.

    Retries are off: without idempotence a retried request could duplicate or
    reorder records, and the exact checks would then blame the broker for the
    client. A failed request shows up as a failed delivery instead.
    """
    config = {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": False,
        "message.send.max.retries": 0,
        "linger.ms": 5,
        "error_cb": errors.append,
    }
    config.update(extra)
    return Producer(config)


def idempotent_producer(bootstrap: str, errors: list, **extra) -> Producer:
    """An idempotent acks=all producer, as a careful application configures one.

    librdkafka retries failed requests (up to message.timeout.ms) with the same
    producer id and sequence numbers, so the broker can recognise a retry of a
    batch it already stored and the exact checks still hold.
    """
    config = {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "error_cb": errors.append,
    }
    config.update(extra)
    return Producer(config)


def consumer(bootstrap: str, errors: list) -> Consumer:
    """A consumer for manual assignment only.

    confluent-kafka insists on a group.id, but with partitions assigned by hand
    and nothing committed the group is never used. check.crcs makes librdkafka
    verify every batch's CRC, which proves the broker served the producer's
    bytes. Partition EOF events tell when each partition has been read to its end.
    """
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "veltrix-client-tests-unused",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "check.crcs": True,
            "fetch.max.bytes": 16 << 20,
            "max.partition.fetch.bytes": 4 << 20,
            "error_cb": errors.append,
        }
    )


def produce_all(p: Producer, topic: str, count: int, value_of, partition_of, deadline: float) -> tuple[array, array]:
    """Produces `count` records; returns each one's delivered (partition, offset)."""
    delivered_partition = array("i", [-1]) * count
    delivered_offset = array("q", [-1]) * count
    failures = []

    def on_delivery(err, msg):
        seq = int(msg.value()[:SEQ_DIGITS])
        if err is not None:
            failures.append((seq, err))
            return
        delivered_partition[seq] = msg.partition()
        delivered_offset[seq] = msg.offset()

    for seq in range(count):
        while True:
            try:
                p.produce(topic, value=value_of(seq), partition=partition_of(seq), on_delivery=on_delivery)
                break
            except BufferError:
                # The client's queue is full: let deliveries drain it.
                p.poll(0.05)
                assert time.monotonic() < deadline, f"producing took too long; {seq} of {count} queued"
        if seq % 10_000 == 0:
            p.poll(0)
    remaining = p.flush(max(1.0, deadline - time.monotonic()))
    assert remaining == 0, f"{remaining} records not delivered before the deadline"
    assert failures == [], f"{len(failures)} deliveries failed, first: {failures[:3]}"
    assert -1 not in delivered_offset, "a delivery report is missing"
    return delivered_partition, delivered_offset


def consume_all(c: Consumer, topic: str, ends: dict[int, int], on_message, deadline: float) -> None:
    """Reads every partition from offset 0 up to its expected end offset.

    Stops when each partition has reported EOF at exactly its end; anything
    past the end, an error, or the deadline fails the test.
    """
    c.assign([TopicPartition(topic, p, 0) for p in ends])
    at_end = set()
    while len(at_end) < len(ends):
        assert time.monotonic() < deadline, f"consuming took too long; at end: {sorted(at_end)} of {sorted(ends)}"
        for msg in c.consume(num_messages=10_000, timeout=1.0):
            err = msg.error()
            if err is not None and err.code() == KafkaError._PARTITION_EOF:
                assert msg.offset() == ends[msg.partition()], (
                    f"partition {msg.partition()} ends at {msg.offset()}, expected {ends[msg.partition()]}"
                )
                at_end.add(msg.partition())
                continue
            assert err is None, f"consume error: {err}"
            on_message(msg)
