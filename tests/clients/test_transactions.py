"""Transactions (KIP-98) with confluent-kafka: committed records visible to
`read_committed` consumers and aborted ones never, offsets committed inside
a transaction, a zombie producer fenced, an open transaction holding
`read_committed` readers at the last stable offset, and a transaction left
open past its timeout aborted by the broker."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from harness import _die_with_parent

WORKER = Path(__file__).with_name("txn_worker.py")
# Records through the consume-transform-produce loop (VELTRIX_TXN_RECORDS
# changes it; about 50 s at 200,000 on two cores with the debug broker).
TXN_RECORDS = int(os.environ.get("VELTRIX_TXN_RECORDS", "200000"))


def create(bootstrap: str, *topics: str, partitions: int = 3) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(t, partitions) for t in topics]).values():
        f.result(15)


def transactional(bootstrap: str, tx_id: str, **extra) -> Producer:
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": tx_id, "linger.ms": 5, **extra})
    p.init_transactions(30)
    return p


def read(bootstrap: str, topic: str, isolation: str, want: int, timeout_s: float = 30, group: str | None = None):
    """Every record of `topic` a consumer with `isolation` gets, read until
    `want` arrived and then 2 s more (so one too many would show)."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group or f"reader-{isolation}-{time.monotonic_ns()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": isolation,
        }
    )
    c.subscribe([topic])
    out = []
    deadline = time.monotonic() + timeout_s
    quiet_until = None
    try:
        while time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and m.error() is None:
                out.append(m)
                continue
            if len(out) >= want:
                quiet_until = quiet_until or time.monotonic() + 2
                if time.monotonic() > quiet_until:
                    break
    finally:
        c.close()
    return out


def values(msgs) -> list[bytes]:
    return sorted(m.value() for m in msgs)


def ended(broker, result: str, cause: str) -> float:
    """`veltrix_transactions_ended_total{result, cause}` now."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{broker.http_port}/metrics", timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith("veltrix_transactions_ended_total{") and f'cause="{cause}"' in line and f'result="{result}"' in line:
            return float(line.split()[-1])
    raise AssertionError(f"no veltrix_transactions_ended_total{{result={result}, cause={cause}}}")


def test_committed_records_are_read_committed_and_aborted_ones_are_not(broker, bootstrap):
    create(bootstrap, "t")
    p = transactional(bootstrap, "tx-1")
    p.begin_transaction()
    for i in range(30):
        p.produce("t", b"c%d" % i, partition=i % 3)
    p.commit_transaction(30)
    p.begin_transaction()
    for i in range(30):
        p.produce("t", b"a%d" % i, partition=i % 3)
    # Written to the log before the abort (an abort drops what is unsent).
    assert p.flush(30) == 0
    p.abort_transaction(30)
    p.begin_transaction()
    p.produce("t", b"last", partition=0)
    p.commit_transaction(30)
    committed = read(bootstrap, "t", "read_committed", 31)
    assert values(committed) == sorted([b"c%d" % i for i in range(30)] + [b"last"])
    everything = read(bootstrap, "t", "read_uncommitted", 61)
    assert len(everything) == 61, "read_uncommitted sees aborted records too"
    # Offsets are unchanged: the markers take one offset each.
    assert max(m.offset() for m in committed if m.partition() == 0) > 10
    assert (ended(broker, "committed", "producer"), ended(broker, "aborted", "producer")) == (2, 1)


def test_consume_transform_produce_commits_offsets_in_the_transaction(bootstrap):
    create(bootstrap, "in", "out")
    src = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for i in range(300):
        src.produce("in", b"%d" % i, partition=i % 3)
    assert src.flush(30) == 0
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "app",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    c.subscribe(["in"])
    p = transactional(bootstrap, "app-tx")
    done = 0
    deadline = time.monotonic() + 60
    try:
        while done < 300 and time.monotonic() < deadline:
            msgs = [m for m in c.consume(100, 1.0) if m.error() is None]
            if not msgs:
                continue
            p.begin_transaction()
            for m in msgs:
                p.produce("out", b"x" + m.value(), partition=m.partition())
            p.send_offsets_to_transaction(c.position(c.assignment()), c.consumer_group_metadata(), 30)
            p.commit_transaction(30)
            done += len(msgs)
    finally:
        c.close()
    assert done == 300
    out = read(bootstrap, "out", "read_committed", 300)
    assert values(out) == sorted(b"x%d" % i for i in range(300))
    # The group's offsets came with the transaction.
    admin_consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "app"})
    committed = admin_consumer.committed([TopicPartition("in", p) for p in range(3)], 15)
    admin_consumer.close()
    assert sum(tp.offset for tp in committed) == 300, committed


def test_a_zombie_producer_is_fenced(broker, bootstrap):
    create(bootstrap, "z", partitions=1)
    old = transactional(bootstrap, "shared-id")
    old.begin_transaction()
    old.produce("z", b"zombie")
    assert old.flush(15) == 0
    new = transactional(bootstrap, "shared-id")
    with pytest.raises(KafkaException) as raised:
        old.commit_transaction(15)
    assert raised.value.args[0].fatal(), raised.value.args[0]
    new.begin_transaction()
    new.produce("z", b"new")
    new.commit_transaction(30)
    assert values(read(bootstrap, "z", "read_committed", 1)) == [b"new"], "the zombie's record was aborted"
    assert ended(broker, "aborted", "new_producer") == 1


def test_an_open_transaction_holds_read_committed_readers_until_it_ends(bootstrap):
    create(bootstrap, "o", partitions=1)
    plain = Producer({"bootstrap.servers": bootstrap})
    plain.produce("o", b"before")
    assert plain.flush(15) == 0
    p = transactional(bootstrap, "slow")
    p.begin_transaction()
    p.produce("o", b"inside")
    assert p.flush(15) == 0
    plain.produce("o", b"after")
    assert plain.flush(15) == 0
    # The last stable offset is the open transaction's first offset.
    assert values(read(bootstrap, "o", "read_committed", 1, timeout_s=10)) == [b"before"]
    assert len(read(bootstrap, "o", "read_uncommitted", 3, timeout_s=10)) == 3
    # A read_committed consumer's end of the partition is the last stable
    # offset (ListOffsets with its isolation level).
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "w", "isolation.level": "read_committed"})
    assert c.get_watermark_offsets(TopicPartition("o", 0), 15) == (0, 1)
    p.commit_transaction(30)
    assert values(read(bootstrap, "o", "read_committed", 3)) == [b"after", b"before", b"inside"]
    assert c.get_watermark_offsets(TopicPartition("o", 0), 15) == (0, 4), "three records and the marker"
    c.close()


def test_a_transaction_open_past_its_timeout_is_aborted_by_the_broker(bootstrap):
    create(bootstrap, "slowpoke", partitions=1)
    p = transactional(bootstrap, "forgetful", **{"transaction.timeout.ms": 2000})
    p.begin_transaction()
    p.produce("slowpoke", b"never")
    assert p.flush(15) == 0
    plain = Producer({"bootstrap.servers": bootstrap})
    plain.produce("slowpoke", b"later")
    assert plain.flush(15) == 0
    # Once the broker aborts it, read_committed readers move past it.
    assert values(read(bootstrap, "slowpoke", "read_committed", 1, timeout_s=20)) == [b"later"]
    with pytest.raises(KafkaException):
        p.commit_transaction(15)


def test_an_idempotent_producer_works_beside_a_transactional_one(bootstrap):
    create(bootstrap, "plain", partitions=1)
    tx = transactional(bootstrap, "t2")
    tx.begin_transaction()
    tx.produce("plain", b"t")
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    delivered = []
    p.produce("plain", b"v", on_delivery=lambda err, msg: delivered.append(err))
    assert p.flush(30) == 0
    assert delivered == [None]
    tx.commit_transaction(30)
    assert values(read(bootstrap, "plain", "read_committed", 2)) == [b"t", b"v"]


# About 50 s here; its own deadlines bound each phase on a slower machine.
@pytest.mark.timeout(600)
def test_consume_transform_produce_is_exactly_once_across_five_broker_kills(start_broker, tmp_path):
    broker = start_broker()
    bootstrap = broker.bootstrap
    create(bootstrap, "in", "out")
    src = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    for i in range(TXN_RECORDS):
        while True:
            try:
                src.produce("in", b"%d" % i, partition=i % 3)
                break
            except BufferError:
                src.poll(0.1)
    assert src.flush(60) == 0
    log = tmp_path / "worker.log"
    stop = tmp_path / "stop"

    def spawn() -> subprocess.Popen:
        args = [sys.executable, str(WORKER), bootstrap, "in", "out", "app", "app-tx", str(log), str(stop)]
        err = open(tmp_path / "worker.stderr", "ab")
        proc = subprocess.Popen(args, stdout=err, stderr=err, preexec_fn=_die_with_parent)
        err.close()
        return proc

    def committed() -> int:
        if not log.exists():
            return 0
        return sum(int(line.split()[1]) for line in log.read_text().splitlines() if line.startswith("commit ") and len(line.split()) == 2)

    worker = spawn()
    restarts = 0
    try:
        for kill in range(5):
            target = min(committed() + TXN_RECORDS // 7, TXN_RECORDS)
            deadline = time.monotonic() + 120
            while committed() < target:
                assert time.monotonic() < deadline, f"no progress before kill {kill}: {log.read_text()[-2000:]}"
                if worker.poll() is not None:
                    worker, restarts = spawn(), restarts + 1
                time.sleep(0.2)
            broker.kill()
            broker.start(same_port=True)
        out = []
        deadline = time.monotonic() + 180
        while len(out) < TXN_RECORDS:
            assert time.monotonic() < deadline, f"{len(out)} of {TXN_RECORDS} in the output: {log.read_text()[-2000:]}"
            if worker.poll() is not None:
                worker, restarts = spawn(), restarts + 1
            out = read(bootstrap, "out", "read_committed", TXN_RECORDS, timeout_s=5)
    finally:
        stop.touch()
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=10)
    # Read again, past the end, to see a duplicate if there is one.
    out = read(bootstrap, "out", "read_committed", TXN_RECORDS, timeout_s=60)
    got = [m.value() for m in out]
    duplicates = len(got) - len(set(got))
    assert duplicates == 0, f"{duplicates} records written twice"
    assert sorted(got) == sorted(b"%d" % i for i in range(TXN_RECORDS))
    # Per partition, in input order.
    for partition in range(3):
        seq = [int(m.value()) for m in sorted(out, key=lambda m: m.offset()) if m.partition() == partition]
        assert seq == sorted(seq), f"partition {partition} out of order"
