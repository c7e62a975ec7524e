"""Log compaction against real clients: cleanup.policy through the AdminClient,
a compacted topic read by kcat, and a broker SIGKILLed while it compacts.

A compacted topic keeps the latest record of each key at its original
offset. The broker compacts sealed segments only, so these topics roll
every second (segment.ms=1000) and compact as soon as anything is dirty
(min.cleanable.dirty.ratio=0.01); the cleaner looks every second.
"""

from __future__ import annotations

import random
import shutil
import time

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from harness import run
from rdkafka_helpers import create_topic, producer

COMPACT = {
    "cleanup.policy": "compact",
    "segment.ms": "1000",
    "min.cleanable.dirty.ratio": "0.01",
}
# Separators kcat prints between key, value and offset, kept out of the data.
FIELD_SEP = "\x1f"
RECORD_SEP = "\x1e"


def policy(admin: AdminClient, topic: str) -> str:
    resource = ConfigResource(ResourceType.TOPIC, topic)
    configs = admin.describe_configs([resource])[resource].result(timeout=10)
    return configs["cleanup.policy"].value


def alter(admin: AdminClient, topic: str, op: AlterConfigOpType, value: str) -> None:
    entry = ConfigEntry("cleanup.policy", value, incremental_operation=op)
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[entry])
    admin.incremental_alter_configs([resource])[resource].result(timeout=10)


def test_admin_client_appends_compact_to_cleanup_policy_and_subtracts_delete(broker):
    """APPEND and SUBTRACT treat cleanup.policy as the list Kafka makes it."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    create_topic(broker.bootstrap, "policy", 1)
    assert policy(admin, "policy") == "delete"
    alter(admin, "policy", AlterConfigOpType.APPEND, "compact")
    assert policy(admin, "policy") == "compact,delete"
    alter(admin, "policy", AlterConfigOpType.APPEND, "compact")
    assert policy(admin, "policy") == "compact,delete", "appending a word already there changes nothing"
    alter(admin, "policy", AlterConfigOpType.SUBTRACT, "delete")
    assert policy(admin, "policy") == "compact"
    with pytest.raises(KafkaException, match="empty"):
        alter(admin, "policy", AlterConfigOpType.SUBTRACT, "compact")
    with pytest.raises(KafkaException, match="unknown policy"):
        alter(admin, "policy", AlterConfigOpType.APPEND, "shred")
    assert policy(admin, "policy") == "compact"


def produce_updates(bootstrap: str, topic: str, keys: int, rounds: int, tombstones: set[int], value_bytes: int = 40):
    """`rounds` values for each key (lz4 batches), then a tombstone for each of
    `tombstones`; returns {key: (offset, value or None)} of the last record of
    each key as the delivery reports tell it."""
    errors: list = []
    latest: dict[str, tuple[int, bytes | None]] = {}
    failed: list = []

    def on_delivery(err, msg):
        if err is not None:
            failed.append(err)
            return
        key = msg.key().decode()
        if key not in latest or latest[key][0] < msg.offset():
            latest[key] = (msg.offset(), msg.value())

    p = producer(bootstrap, errors, **{"compression.type": "lz4", "linger.ms": 20})
    for r in range(rounds):
        for k in range(keys):
            value = (b"%d-%d|" % (k, r)).ljust(value_bytes, b".")
            p.produce(topic, key=b"k%d" % k, value=value, on_delivery=on_delivery)
            p.poll(0)
    for k in tombstones:
        p.produce(topic, key=b"k%d" % k, value=None, on_delivery=on_delivery)
    assert p.flush(60) == 0
    assert errors == [] and failed == [], (errors[:3], failed[:3])
    return latest


def kcat_read(bootstrap: str, topic: str) -> list[tuple[int, str, str | None]]:
    """Every record of partition 0, as kcat reads it: (offset, key, value or None)."""
    out = run(
        [
            "kcat", "-C", "-b", bootstrap, "-t", topic, "-p", "0", "-o", "beginning", "-e", "-q",
            "-Z", "-f", f"%o{FIELD_SEP}%k{FIELD_SEP}%S{FIELD_SEP}%s{RECORD_SEP}",
        ],
        timeout_s=30,
        check=True,
    ).stdout.decode()
    rows = []
    for rec in filter(None, out.split(RECORD_SEP)):
        offset, key, size, value = rec.split(FIELD_SEP)
        rows.append((int(offset), key, None if size == "-1" else value))
    return rows


def expected_rows(latest: dict[str, tuple[int, bytes | None]]) -> list[tuple[int, str, str | None]]:
    return sorted((o, k, None if v is None else v.decode()) for k, (o, v) in latest.items())


KILLS = 5


def wait_for_log(broker, text: str, deadline_s: float) -> bool:
    """Whether the broker's current run logged `text` within the deadline."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if text in broker.log_text().rsplit("==> attempt", 1)[-1]:
            return True
        time.sleep(0.01)
    return False


def wait_compacted(bootstrap: str, topic: str, want: list, deadline_s: float) -> list:
    """kcat's view once it is what compaction must reach, or the last one seen."""
    deadline = time.monotonic() + deadline_s
    rows = []
    while time.monotonic() < deadline:
        rows = kcat_read(bootstrap, topic)
        if rows == want:
            break
        time.sleep(0.3)
    return rows


@pytest.fixture
def kcat():
    if shutil.which("kcat") is None:
        pytest.fail("kcat is not installed: apt-get install kcat (scripts/test-clients does)")


def test_kcat_reads_the_latest_value_per_key_at_original_offsets(broker, kcat):
    """200 keys updated 20 times in lz4 batches, 10 of them deleted: once the
    broker has compacted, kcat reads exactly one record per key, the last one
    produced, at the offset its delivery report gave, tombstones included
    (delete.retention.ms keeps them a day); and a keyless record is refused."""
    create_topic(broker.bootstrap, "compacted", 1, COMPACT)
    latest = produce_updates(broker.bootstrap, "compacted", keys=200, rounds=20, tombstones=set(range(0, 200, 20)))
    want = expected_rows(latest)
    assert wait_compacted(broker.bootstrap, "compacted", want, 30) == want

    errors: list = []
    refused: list = []
    p = producer(broker.bootstrap, errors)
    p.produce("compacted", value=b"no key", on_delivery=lambda err, msg: refused.append(err))
    p.flush(10)
    assert refused and refused[0] is not None, "a record without a key is refused"
    # librdkafka reports the code; the broker's message is not passed on.
    assert refused[0].name() == "INVALID_RECORD", refused[0]


@pytest.mark.timeout(120)
def test_kill_9_during_compaction_loses_nothing_that_should_remain(broker, kcat):
    """The broker is SIGKILLed five times while it compacts a topic of a dozen
    2 MiB segments: each time once its log says a round started (the cleaner
    starts at once on dirty data), 0 to 0.3 s into the round, and at least
    half of the kills must land before the round is done. After the last restart the topic compacts to exactly the
    latest record of every key at its delivered offset: no key lost, no
    older value back, no offset moved."""
    config = dict(COMPACT, **{"segment.bytes": str(2 << 20)})
    create_topic(broker.bootstrap, "crashy", 1, config)
    latest = produce_updates(broker.bootstrap, "crashy", keys=2_000, rounds=60, tombstones=set(range(0, 2_000, 50)), value_bytes=200)
    rng = random.Random(7)
    interrupted = 0
    for _ in range(KILLS):
        broker.kill()
        broker.restart()
        # Kill once the round has started, somewhere inside it.
        started = wait_for_log(broker, "compaction round started", 20)
        time.sleep(rng.uniform(0.0, 0.3))
        run_log = broker.log_text().rsplit("==> attempt", 1)[-1]
        interrupted += started and run_log.count("compaction round started") > run_log.count("compaction round done")
    broker.kill()
    broker.restart()
    assert interrupted >= KILLS // 2, f"only {interrupted} of {KILLS} kills landed inside a compaction round"
    want = expected_rows(latest)
    got = wait_compacted(broker.bootstrap, "crashy", want, 60)
    missing = set(want) - set(got)
    extra = set(got) - set(want)
    assert not missing and not extra, (sorted(missing)[:5], sorted(extra)[:5], len(got), len(want))
