"""An idempotent confluent-kafka producer while the broker is SIGKILLed and restarted.

librdkafka retries every request the kill cut off, with the same producer id and
sequence numbers. Some of those batches were stored (and fsynced) before the
kill, only their acknowledgement was lost; the broker must recognise them after
the restart, from producer state it rebuilt from disk, and answer with the
original offsets instead of storing them twice.
"""

from __future__ import annotations

import os
import random
import threading
import time

import pytest

from rdkafka_helpers import SEQ_DIGITS, bulk_value, create_topic, idempotent_producer
from test_durability import read_everything

PARTITIONS = 3
KILLS = int(os.environ.get("VELTRIX_IDEMPOTENT_KILLS", "5"))


@pytest.mark.timeout(300)
def test_idempotent_producer_survives_five_broker_kills_exactly_once(broker):
    """Every acknowledged record is in the log exactly once, in producer order.

    One producer (enable.idempotence=true, acks=all) sends 1 KiB records with
    increasing sequence numbers, record `seq` to partition seq % 3, without
    pause. Meanwhile the broker is SIGKILLed at a random moment 0.3-1.5 s into
    each run and restarted on the same port, five times. The producer's message
    timeout outlasts the downtime, so librdkafka retries what was in flight.

    Afterwards: every record whose delivery succeeded is stored at the partition
    and offset its report named; no record is stored twice (acknowledged or
    not); each partition's offsets are dense and its records are in increasing
    sequence order, which is the order the producer sent them in.
    """
    topic = "idempotent-kills"
    create_topic(broker.bootstrap, topic, PARTITIONS)
    errors: list = []
    acked: dict[int, tuple[int, int]] = {}
    failed: dict[int, str] = {}

    def on_delivery(err, msg):
        seq = int(msg.value()[:SEQ_DIGITS])
        if err is None:
            acked[seq] = (msg.partition(), msg.offset())
        else:
            failed[seq] = str(err)

    p = idempotent_producer(
        broker.bootstrap,
        errors,
        **{
            "message.timeout.ms": 60_000,
            "linger.ms": 2,
            "reconnect.backoff.ms": 20,
            "reconnect.backoff.max.ms": 200,
        },
    )
    stop = threading.Event()
    sent = [0]

    def produce_loop():
        seq = 0
        while not stop.is_set():
            try:
                p.produce(topic, value=bulk_value(seq), partition=seq % PARTITIONS, on_delivery=on_delivery)
                seq += 1
                sent[0] = seq
            except BufferError:
                p.poll(0.01)
            if seq % 200 == 0:
                p.poll(0)

    rng = random.Random(int(os.environ.get("VELTRIX_SEED", "7")))
    producer_thread = threading.Thread(target=produce_loop, daemon=True)
    producer_thread.start()
    kills = []
    try:
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.3, 1.5))
            before = len(acked)
            broker.kill()
            kills.append((sent[0], before))
            time.sleep(rng.uniform(0.05, 0.5))
            broker.start(same_port=True)
        time.sleep(1.0)
    finally:
        stop.set()
        producer_thread.join(timeout=30)
    remaining = p.flush(90)
    assert remaining == 0, f"{remaining} records still undelivered 90 s after the last restart"
    assert not producer_thread.is_alive()
    fatal = [e for e in errors if e.fatal()]
    assert fatal == [], f"fatal producer errors: {fatal[:3]}"
    assert failed == {}, f"{len(failed)} deliveries failed, e.g. {list(failed.items())[:3]}"
    total = sent[0]
    assert len(acked) == total, f"{total - len(acked)} of {total} records have no delivery report"

    got = read_everything(broker.bootstrap, topic, PARTITIONS, time.monotonic() + 120)
    found: dict[int, tuple[int, int]] = {}
    for part, records in got.items():
        assert [offset for offset, _ in records] == list(range(len(records))), f"partition {part}: gap in offsets"
        last = -1
        for offset, value in records:
            seq = int(value[:SEQ_DIGITS])
            assert value == bulk_value(seq), f"partition {part} offset {offset}: damaged record"
            assert seq not in found, f"record {seq} stored twice: at {found[seq]} and {(part, offset)}"
            assert seq % PARTITIONS == part
            assert seq > last, f"partition {part} offset {offset}: record {seq} after {last}, out of producer order"
            last = seq
            found[seq] = (part, offset)
    moved = {s: where for s, where in acked.items() if found.get(s) != where}
    assert moved == {}, f"{len(moved)} acknowledged records missing or moved, e.g. {list(moved.items())[:5]}"
    assert len(found) == total
    print(f"{total} records, {len(kills)} kills at (sent, acknowledged) {kills}; each stored once, in order")
