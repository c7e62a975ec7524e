"""KafkaJS transactions against Veltrix, through js/transactions.mjs.

The scenario drives a KafkaJS transactional producer (transactionalId,
idempotent, one request in flight) and prints what its readers saw; the
assertions are here. confluent-kafka reads the same topics afterwards, with
`read_uncommitted` and `read_committed`, so that what KafkaJS skipped is shown
to be in the log and what it read is what another client reads.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from harness import run

JS_DIR = Path(__file__).resolve().parent / "js"
PARTITIONS = 3


def run_transactions(bootstrap: str, prefix: str) -> dict:
    """Runs js/transactions.mjs and returns the JSON it printed."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed; the KafkaJS tests need Node 20")
    if not (JS_DIR / "node_modules" / "kafkajs").is_dir():
        pytest.fail(f"kafkajs is not installed: run `npm ci` in {JS_DIR} (scripts/test-clients does)")
    env = dict(os.environ, KAFKAJS_NO_PARTITIONER_WARNING="1")
    done = run([node, "transactions.mjs", bootstrap, prefix], timeout_s=90, cwd=JS_DIR, env=env)
    stderr = done.stderr.decode(errors="replace")
    assert done.returncode == 0, f"node transactions.mjs exited with {done.returncode}:\n{stderr}"
    lines = done.stdout.decode().strip().splitlines()
    assert len(lines) == 1, f"expected one JSON line, got:\n{done.stdout.decode()}\n{stderr}"
    return json.loads(lines[0])


def read_until_end(bootstrap: str, topic: str, isolation: str) -> dict[int, list[str]]:
    """Each partition's values in log order, read with confluent-kafka up to
    the partition's "end" record (the last record the scenario commits)."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"ck-{isolation}-{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "isolation.level": isolation,
        }
    )
    c.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    got: dict[int, list[str]] = {p: [] for p in range(PARTITIONS)}
    deadline = time.monotonic() + 20
    try:
        while not all(got[p] and got[p][-1] == "end" for p in got):
            assert time.monotonic() < deadline, f"{isolation} read of {topic} did not reach every end: {got}"
            m = c.poll(0.2)
            if m is not None and m.error() is None:
                got[m.partition()].append(m.value().decode())
    finally:
        c.close()
    return got


def per_partition(prefix: str, count: int) -> dict[int, list[str]]:
    """`prefix{i}` for i in 0..count, spread i % 3 over the partitions."""
    out: dict[int, list[str]] = {p: [] for p in range(PARTITIONS)}
    for i in range(count):
        out[i % PARTITIONS].append(f"{prefix}{i}")
    return out


def test_kafkajs_transactions_commit_abort_and_send_offsets(bootstrap):
    """A KafkaJS transactional producer's commits are read, its aborts are not,
    and offsets it sends with a transaction are the group's only on commit.

    Topic `k-tx`: a committed transaction of c0..c29, an aborted one of
    a0..a29 (each record acknowledged before the abort), a committed one of an
    "end" record per partition. KafkaJS reading committed must get exactly the
    c's and the end; KafkaJS reading uncommitted and confluent-kafka with
    `read_uncommitted` must get the a's between them, in log order.

    Consume-transform-produce, group `k-app`: i0..i29 consumed, written to
    `k-out` as o-i0..o-i29 with the batch's offsets in one transaction per
    batch, committed: the group's offsets go from none to 10 per partition,
    and while a transaction's offsets are pending they are still none. Then
    j0..j5, consumed and sent the same way but aborted: the offsets stay at
    10 (also while pending), and the next member of the group reads j0..j5
    again from there and commits: 12 per partition. `k-out` read committed
    holds each o- record once; read uncommitted, the aborted o-j's too.
    """
    out = run_transactions(bootstrap, "k")

    # Commit and abort.
    assert out["abortedAcked"] == [0, 0, 0], "the aborted records were acknowledged before the abort"
    committed = {p: v + ["end"] for p, v in per_partition("c", 30).items()}
    everything = {
        p: per_partition("c", 30)[p] + per_partition("a", 30)[p] + ["end"] for p in range(PARTITIONS)
    }
    assert {int(p): v for p, v in out["txReadCommitted"].items()} == committed
    assert {int(p): v for p, v in out["txReadUncommitted"].items()} == everything
    assert read_until_end(bootstrap, "k-tx", "read_uncommitted") == everything
    assert read_until_end(bootstrap, "k-tx", "read_committed") == committed

    # Consume-transform-produce.
    assert out["offsetsBefore"] == [-1, -1, -1]
    assert out["committedRound"]["consumed"] == sorted(f"i{i}" for i in range(30))
    assert out["committedRound"]["pendingSeen"] == [-1, -1, -1], "an open transaction's offsets are not yet the group's"
    assert out["offsetsAfterCommit"] == [10, 10, 10]
    assert out["abortedRound"]["consumed"] == sorted(f"j{i}" for i in range(6))
    assert out["abortedRound"]["pendingSeen"] == [10, 10, 10]
    assert out["offsetsAfterAbort"] == [10, 10, 10], "an aborted transaction's offsets are dropped"
    assert out["retriedRound"]["consumed"] == sorted(f"j{i}" for i in range(6)), "read again from offset 10"
    assert out["retriedRound"]["pendingSeen"] == [10, 10, 10]
    assert out["offsetsAfterRetry"] == [12, 12, 12]

    def transformed(values: dict[int, list[str]]) -> dict[int, list[str]]:
        return {p: [f"o-{v}" for v in vs] for p, vs in values.items()}

    inputs = {p: per_partition("i", 30)[p] + per_partition("j", 6)[p] for p in range(PARTITIONS)}
    once = {p: vs + ["end"] for p, vs in transformed(inputs).items()}
    assert {int(p): v for p, v in out["outReadCommitted"].items()} == once
    assert read_until_end(bootstrap, "k-out", "read_committed") == once
    uncommitted = read_until_end(bootstrap, "k-out", "read_uncommitted")
    for p in range(PARTITIONS):
        js = [v for v in uncommitted[p] if v.startswith("o-j")]
        assert js == [v for v in once[p] if v.startswith("o-j")] * 2, f"partition {p}: aborted then committed"
