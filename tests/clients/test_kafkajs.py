"""KafkaJS against Veltrix, through the node scenarios in js/scenarios.js."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from harness import API_FIND_COORDINATOR, API_JOIN_GROUP, API_SYNC_GROUP, run

JS_DIR = Path(__file__).resolve().parent / "js"


def run_scenario(name: str, bootstrap: str, topic: str) -> dict:
    """Runs one KafkaJS scenario and returns the JSON it printed."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed; the KafkaJS tests need Node 20")
    if not (JS_DIR / "node_modules" / "kafkajs").is_dir():
        pytest.fail(f"kafkajs is not installed: run `npm ci` in {JS_DIR} (scripts/test-clients does)")
    env = dict(os.environ, KAFKAJS_NO_PARTITIONER_WARNING="1")
    done = run([node, "scenarios.js", name, bootstrap, topic], timeout_s=90, cwd=JS_DIR, env=env)
    stderr = done.stderr.decode(errors="replace")
    assert done.returncode == 0, f"node scenarios.js {name} exited with {done.returncode}:\n{stderr}"
    lines = done.stdout.decode().strip().splitlines()
    assert len(lines) == 1, f"expected one JSON line, got:\n{done.stdout.decode()}\n{stderr}"
    return json.loads(lines[0])


def test_kafkajs_admin_producer_and_offsets(broker):
    """KafkaJS admin and producer get Kafka's answers, and what it wrote reads back.

    The scenario creates a 3-partition topic (true), creates it again (false:
    it exists), lists it and reads its metadata (3 partitions, leader and only
    replica broker 0, or one of the brokers on shared storage). It sends five records to partition 0, one per request,
    with timestamps 1000..5000 (so each is its own batch), and ten records with
    headers to partition 1 in one gzip-compressed batch, timestamps
    100000..109000. Every send must report the expected base offset.
    fetchTopicOffsets must give each partition's low and high watermarks, and
    fetchTopicOffsetsByTimestamp the first offset at or after each time (KafkaJS
    puts the high watermark where the broker answers -1, i.e. no such record).
    Finally kafka-python reads both partitions back by assign + seek and must
    find exactly the keys, values, headers and timestamps KafkaJS sent.
    """
    bootstrap = broker.bootstrap
    topic = "kafkajs-offsets"
    out = run_scenario("admin-producer", bootstrap, topic)

    assert out["created"] is True
    assert out["createdAgain"] is False
    assert out["listed"] is True
    leaders = {p["partition"]: p["leader"] for m in out["metadata"] for p in m["partitions"]}
    assert set(leaders.values()) <= broker.node_ids, leaders
    assert out["metadata"] == [
        {"name": topic, "partitions": [{"partition": p, "leader": leaders[p], "replicas": [leaders[p]]} for p in range(3)]}
    ]
    assert out["singles"] == [{"partition": 0, "baseOffset": str(n), "errorCode": 0} for n in range(5)]
    assert out["batch"] == [{"partition": 1, "baseOffset": "0", "errorCode": 0}]
    assert out["offsets"] == [
        {"partition": 0, "offset": "5", "high": "5", "low": "0"},
        {"partition": 1, "offset": "10", "high": "10", "low": "0"},
        {"partition": 2, "offset": "0", "high": "0", "low": "0"},
    ]

    def offsets(p0: int, p1: int) -> list:
        # Partition 2 is empty: the broker answers -1, KafkaJS shows its high watermark, 0.
        return [
            {"partition": 0, "offset": str(p0)},
            {"partition": 1, "offset": str(p1)},
            {"partition": 2, "offset": "0"},
        ]

    assert out["byTime"] == {
        "0": offsets(0, 0),
        "2500": offsets(2, 0),
        "5000": offsets(4, 0),
        # Past partition 0's last record: -1 from the broker, 5 from KafkaJS.
        "50000": offsets(5, 0),
        "200000": offsets(5, 10),
    }

    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        got = {0: [], 1: []}
        deadline = time.monotonic() + 30
        while len(got[0]) < 5 or len(got[1]) < 10:
            assert time.monotonic() < deadline, f"read {len(got[0])} + {len(got[1])} of 5 + 10 records"
            for tp, records in c.poll(timeout_ms=500).items():
                got[tp.partition].extend(records)
    finally:
        c.close()
    assert [(r.offset, r.key, r.value, r.timestamp, r.headers) for r in got[0]] == [
        (n, b"single-%d" % n, b"value-%d" % n, (n + 1) * 1000, []) for n in range(5)
    ]
    assert [(r.offset, r.key, r.value, r.timestamp, [(k, v) for k, v in r.headers]) for r in got[1]] == [
        (
            n,
            b"batch-%d" % n,
            b"batch-value-%d-" % n + b"z" * 100,
            100_000 + n * 1000,
            [("index", b"%d" % n), ("source", b"kafkajs")],
        )
        for n in range(10)
    ]


def test_kafkajs_group_consumer_from_partition_offset(broker):
    """A KafkaJS consumer reads one partition from a chosen offset.

    KafkaJS consumes only through a consumer group. The scenario produces 20
    records to partition 1, subscribes a group consumer, seeks partition 1 to
    offset 7 and must receive exactly offsets 7..19 with their keys and values.
    """
    if not broker.serves(API_FIND_COORDINATOR, API_JOIN_GROUP, API_SYNC_GROUP):
        pytest.skip("consumer groups are issue 4: KafkaJS consumes only through a group (FindCoordinator, JoinGroup)")
    out = run_scenario("group-consume", broker.bootstrap, "kafkajs-group")
    assert out["consumed"] == [{"offset": str(n), "key": f"k{n}", "value": f"v{n}"} for n in range(7, 20)]
