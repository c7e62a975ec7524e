"""kcat (librdkafka's command-line client) against Veltrix."""

from __future__ import annotations

import json
import shutil
import time
import zlib
from collections import defaultdict

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from harness import run

RECORDS = 100_000
KEYS = 1_000
PARTITIONS = 6

# kcat splits its input into records on FIELD_SEP (key from value) and
# RECORD_SEP (one record from the next), and the consume format below uses the
# same two bytes. Choosing these instead of ':' and newline lets the values hold
# newlines, NULs and bytes above 0x7f; only these two bytes are kept out of them.
FIELD_SEP = b"\x1f"
RECORD_SEP = b"\x1e"

# Headers that kcat puts on every record: a plain one, one with spaces and
# non-ASCII text, one with an empty value, and a name used twice (Kafka keeps
# header order and duplicates). kcat prints them back as name=value joined by
# commas, so no value holds ',' or '='.
HEADER_ARGS = ["source=kcat", "note=hello wörld / 42", "empty=", "dup=first", "dup=second"]
HEADERS_PRINTED = ",".join(HEADER_ARGS).encode()


@pytest.fixture(autouse=True)
def kcat_installed():
    """kcat is a test dependency, not a broker feature: its absence fails the test."""
    if shutil.which("kcat") is None:
        pytest.fail("kcat is not installed: apt-get install kcat (scripts/test-clients does)")


def key_bytes(k: int) -> bytes:
    return f"key-{k:04d}-ü".encode()


def value_bytes(i: int) -> bytes:
    """Record i's value: its key, its place in that key's sequence, and filler.

    The filler is 0 to 299 bytes from all 256 byte values but the two separators,
    so that every record differs and any byte the broker changed would show.
    """
    k, n = i % KEYS, i // KEYS
    filler = bytes(b for b in ((i * 31 + j) % 256 for j in range(i % 300)) if b not in (0x1E, 0x1F))
    return b"%d|%d|%d|" % (k, n, i) + filler


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(name, partitions, 1)], operation_timeout=10).values():
        future.result(timeout=20)


def test_kcat_produce_consume_keyed_records_with_headers(bootstrap):
    """kcat -P then kcat -C -e return 100,000 keyed records exactly as sent.

    The 6-partition topic is created with confluent-kafka's AdminClient (so the
    broker runs with its defaults, auto-creation off); kcat -L must then see 6
    partitions. kcat produces from stdin with a key separator (-K), a record
    separator (-D) and five headers (-H) on every record, with acks=all. Records
    cycle through 1,000 keys, 100 records each. kcat consumes every partition
    from the beginning to its end (-e) and prints partition, offset, key, value
    and headers. The test proves: the count matches; each partition's offsets
    are 0..n-1 with no gap or repeat; each key stays in one partition, the one
    librdkafka's default partitioner picks (CRC-32 of the key modulo 6); each
    key's records come back in the order they were produced; every key, value
    and header list is byte for byte what was sent.
    """
    topic = "kcat-keyed"
    create_topic(bootstrap, topic, PARTITIONS)

    listing = run(["kcat", "-b", bootstrap, "-L", "-J", "-t", topic], timeout_s=30)
    assert listing.returncode == 0, listing.stderr.decode()
    meta = json.loads(listing.stdout)
    assert [t["topic"] for t in meta["topics"]] == [topic]
    assert sorted(p["partition"] for p in meta["topics"][0]["partitions"]) == list(range(PARTITIONS))

    stdin = b"".join(key_bytes(i % KEYS) + FIELD_SEP + value_bytes(i) + RECORD_SEP for i in range(RECORDS))
    produce_args = ["kcat", "-b", bootstrap, "-P", "-t", topic, "-K", r"\x1f", "-D", r"\x1e"]
    for header in HEADER_ARGS:
        produce_args += ["-H", header]
    # No retries: without idempotence a retried request could reorder or
    # duplicate records, and the order checks below would then blame the
    # broker for the client. A failed request shows as a delivery error.
    produce_args += ["-X", "acks=all", "-X", "enable.idempotence=false", "-X", "message.send.max.retries=0"]
    produced = run(produce_args, timeout_s=120, input=stdin)
    assert produced.returncode == 0, produced.stderr.decode(errors="replace")
    assert b"Delivery failed" not in produced.stderr, produced.stderr.decode(errors="replace")

    fmt = r"%p\x1f%o\x1f%k\x1f%s\x1f%h\x1e"
    consumed = run(
        ["kcat", "-b", bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-X", "check.crcs=true", "-f", fmt],
        timeout_s=120,
    )
    assert consumed.returncode == 0, consumed.stderr.decode(errors="replace")
    chunks = consumed.stdout.split(RECORD_SEP)
    assert chunks[-1] == b"", "output does not end with a record separator"
    records = [chunk.split(FIELD_SEP) for chunk in chunks[:-1]]
    assert len(records) == RECORDS

    offsets = defaultdict(list)
    by_key = defaultdict(list)  # key index -> [(partition, offset, record index)]
    bad = []
    for fields in records:
        assert len(fields) == 5, fields
        partition, offset, key, value, headers = int(fields[0]), int(fields[1]), fields[2], fields[3], fields[4]
        offsets[partition].append(offset)
        k, _n, i = (int(x) for x in value.split(b"|", 3)[:3])
        if key != key_bytes(k) or value != value_bytes(i) or headers != HEADERS_PRINTED:
            bad.append((partition, offset, key, value[:40], headers))
        by_key[k].append((partition, offset, i))
    assert bad == [], f"{len(bad)} records differ from what was produced, first: {bad[:3]}"

    assert sorted(offsets) == list(range(PARTITIONS)), "some partition got no records"
    for partition, seen in offsets.items():
        assert seen == list(range(len(seen))), f"partition {partition}: offsets are not 0..{len(seen) - 1} in order"
    assert sum(len(v) for v in offsets.values()) == RECORDS

    assert sorted(by_key) == list(range(KEYS))
    for k, placed in by_key.items():
        partitions = {p for p, _, _ in placed}
        assert partitions == {zlib.crc32(key_bytes(k)) % PARTITIONS}, f"key {k} landed in {partitions}"
        in_offset_order = [i for _, _, i in sorted(placed, key=lambda t: t[1])]
        assert in_offset_order == [k + KEYS * n for n in range(RECORDS // KEYS)], f"key {k} out of order"


def test_kcat_auto_created_topic_and_offsets_by_timestamp(start_broker):
    """A broker started with --auto-create-topics --default-partitions 6 creates
    a topic with 6 partitions on kcat's first produce, and kcat -Q (ListOffsets
    by timestamp) finds the first record at or after a given time.

    Three records go to partition 2, each by its own kcat run with a pause in
    between, so that each is its own batch and has its own timestamp (kcat
    stamps records with the client's wall clock, the same clock this test
    reads). Asking for a time just after run N finished must give offset N;
    time 0 gives offset 0; a time after every record and any time on an empty
    partition give -1, as Kafka answers when no record is that recent.
    """
    broker = start_broker("--auto-create-topics", "--default-partitions", "6")
    topic = "kcat-auto"
    finished_ms = []
    for n in range(3):
        produced = run(
            ["kcat", "-b", broker.bootstrap, "-P", "-t", topic, "-p", "2", "-K", ":"]
            + ["-X", "acks=all", "-X", "enable.idempotence=false"],
            timeout_s=30,
            input=b"key:value-%d\n" % n,
        )
        assert produced.returncode == 0, produced.stderr.decode(errors="replace")
        finished_ms.append(time.time_ns() // 1_000_000)
        # Timestamps have millisecond resolution: make the next record's later.
        time.sleep(0.02)

    listing = run(["kcat", "-b", broker.bootstrap, "-L", "-J", "-t", topic], timeout_s=30)
    assert listing.returncode == 0, listing.stderr.decode()
    partitions = json.loads(listing.stdout)["topics"][0]["partitions"]
    assert sorted(p["partition"] for p in partitions) == list(range(PARTITIONS))

    def offset_for(partition: int, ts: int) -> int:
        out = run(["kcat", "-b", broker.bootstrap, "-Q", "-t", f"{topic}:{partition}:{ts}"], timeout_s=30)
        assert out.returncode == 0, out.stderr.decode(errors="replace")
        line = out.stdout.decode().strip()
        prefix = f"{topic} [{partition}] offset "
        assert line.startswith(prefix), line
        return int(line[len(prefix) :])

    assert offset_for(2, 0) == 0
    assert offset_for(2, finished_ms[0] + 1) == 1
    assert offset_for(2, finished_ms[1] + 1) == 2
    assert offset_for(2, finished_ms[2] + 1) == -1
    assert offset_for(0, 0) == -1
