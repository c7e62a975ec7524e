"""The duplicate window on an application message id (issue 17), through real
clients: confluent-kafka (librdkafka) producing, kcat, kafka-python and
confluent-kafka reading back.

A topic with `veltrix.dedup.window.ms` > 0 drops, on produce, every record
whose id (the header `veltrix.dedup.id.header`, `message-id` by default, or
the key with `veltrix.dedup.id.source=key`) was stored within the window on
any of its partitions; the rest of the batch is stored, re-encoded with the
batch's codec, and the produce is answered with success. Kept records keep
their offsets, so the log has gaps where dropped records were (as after
compaction), and a batch whose records were all dropped stays as a batch of
none. Records without the id are stored as usual. An empty id or one over
256 bytes fails its partition's batch with INVALID_RECORD. The window
survives a clean restart and a SIGKILL.

Nothing here is skipped: on a broker without the feature these tests fail.
"""

from __future__ import annotations

import random
import struct
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic
from kafka import KafkaConsumer
from kafka import TopicPartition as KpTopicPartition

from dedup_worker import ID_HEADER, id_of, key_of, seq_of, value_of
from harness import _die_with_parent, run
from rdkafka_helpers import consume_all, consumer, create_topic, idempotent_producer, producer

WORKER = Path(__file__).with_name("dedup_worker.py")
# Long enough for every test but the one that waits for the window to pass.
WINDOW_MS = 600_000
# The broker's default limit on an id's length (DEDUP_ID_BYTES_MAX_DEFAULT).
ID_BYTES_MAX = 256
# RecordBatch v2 codecs, as the attributes' low three bits name them.
CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def create_dedup_topic(bootstrap: str, name: str, partitions: int, window_ms: int = WINDOW_MS, **config: str) -> None:
    create_topic(bootstrap, name, partitions, {"veltrix.dedup.window.ms": str(window_ms), **config})


@dataclass(frozen=True)
class Stored:
    """One record as a consumer read it."""

    partition: int
    offset: int
    key: bytes | None
    headers: tuple
    value: bytes

    def header(self, name: str = ID_HEADER) -> bytes | None:
        return next((v for k, v in self.headers if k == name), None)


def read_all(bootstrap: str, topic: str, partitions: int, timeout_s: float = 60.0) -> list[Stored]:
    """Every record of every partition, from offset 0 to the high watermark.

    librdkafka must step over the gaps and the batches of no records that
    dropped duplicates leave, and report the end of each partition at exactly
    its high watermark.
    """
    errors: list = []
    c = consumer(bootstrap, errors)
    out: list[Stored] = []
    try:
        # The ends once they stop moving: a producer abandoned at a kill may
        # still have a request on its way, whose records the window drops,
        # each drop taking offsets.
        def watermarks() -> dict[int, int]:
            return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)}

        ends = watermarks()
        settle_by = time.monotonic() + 30
        while time.monotonic() < settle_by:
            time.sleep(1.0)
            again = watermarks()
            if again == ends:
                break
            ends = again

        def keep(m):
            out.append(Stored(m.partition(), m.offset(), m.key(), tuple(m.headers() or ()), m.value()))

        consume_all(c, topic, ends, keep, time.monotonic() + timeout_s)
    finally:
        c.close()
    assert errors == [], f"consumer errors: {errors[:5]}"
    return out


def send(bootstrap: str, topic: str, records: list[dict], **config) -> list[tuple]:
    """Produces `records` (keyword arguments of `produce`) and waits for every
    delivery report; returns (error code or None, partition, offset, value)
    per record, in the order produced.

    A long linger puts the records one partition gets here into one batch,
    so that kept and dropped records share batches; no retries, so a refused
    batch shows as a failed delivery.
    """
    errors: list = []
    p = producer(bootstrap, errors, **{"linger.ms": 200, **config})
    reports: dict[int, tuple] = {}

    def report(n):
        def on_delivery(err, msg):
            reports[n] = (err.code() if err else None, msg.partition(), msg.offset(), msg.value())

        return on_delivery

    for n, r in enumerate(records):
        p.produce(topic, on_delivery=report(n), **r)
    assert p.flush(30) == 0, "records not delivered within 30 s"
    assert errors == [], f"producer errors: {errors[:5]}"
    return [reports[n] for n in range(len(records))]


def with_id(msg_id: bytes | None, value: bytes, partition: int = 0, **extra) -> dict:
    return dict(value=value, partition=partition, headers=[(ID_HEADER, msg_id)], **extra)


def ids_and_values(records: list[Stored]) -> list[tuple]:
    return [(r.header(), r.value) for r in records]


# --- Producers restarted and resending: the bar -------------------------------------------

RESTART_RECORDS = 100_000
RESTART_KEYS = 100
RESTART_PARTITIONS = 6
# The first producer is killed once this many of its records are acknowledged.
KILL_AFTER_ACKED = 20_000


def worker_progress(path: Path) -> tuple[int, bool, str | None]:
    """(records acknowledged, done, first error) from a worker's progress file."""
    acked, done, error = 0, False, None
    if path.exists():
        for line in path.read_text().splitlines():
            if line.startswith("acked "):
                acked = int(line.split()[1])
            elif line == "done":
                done = True
            elif line.startswith("error ") and error is None:
                error = line[6:]
    return acked, done, error


def start_worker(tmp_path: Path, n: int, bootstrap: str, topic: str) -> tuple[subprocess.Popen, Path]:
    progress = tmp_path / f"producer-{n}.progress"
    err = open(tmp_path / f"producer-{n}.stderr", "wb")
    args = [sys.executable, str(WORKER), bootstrap, topic, str(RESTART_RECORDS), str(RESTART_KEYS), str(progress)]
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=err, stderr=err, preexec_fn=_die_with_parent)
    err.close()
    return proc, progress


@pytest.mark.timeout(240)
def test_a_restarted_producer_resending_everything_stores_each_record_once_in_key_order(broker, tmp_path):
    """100,000 records with ids; the producer process is SIGKILLed partway and
    a new one (a new producer id) resends all 100,000.

    Each producer is its own process (dedup_worker.py): idempotent, acks=all,
    records 0..99,999 in order, record `seq` with key `key-(seq % 100)` on a
    6-partition topic and the header `message-id: id-<seq>`. The first is
    killed once 20,000 of its records are acknowledged (with more queued and
    in flight); the second must have every one of its 100,000 records
    acknowledged, the duplicates too. Then the topic must hold exactly
    100,000 records, each id once with its own key and value, and each key's
    records in increasing sequence order in its partition: what the first
    producer stored followed by the rest from the second.
    """
    topic = "dedup-producer-restart"
    create_dedup_topic(broker.bootstrap, topic, RESTART_PARTITIONS)
    deadline = time.monotonic() + 150

    first, first_progress = start_worker(tmp_path, 1, broker.bootstrap, topic)
    try:
        while True:
            acked, done, error = worker_progress(first_progress)
            assert error is None, f"the first producer's delivery failed: {error}"
            assert not done and first.poll() is None, f"the first producer ended before the kill ({acked} acked)"
            if acked >= KILL_AFTER_ACKED:
                break
            assert time.monotonic() < deadline, f"only {acked} records acknowledged to the first producer"
            time.sleep(0.02)
    finally:
        first.kill()
        first.wait(timeout=10)
    acked_before_kill, _, _ = worker_progress(first_progress)

    second, second_progress = start_worker(tmp_path, 2, broker.bootstrap, topic)
    try:
        code = second.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        second.kill()
        second.wait(timeout=10)
        code = None
    acked, done, error = worker_progress(second_progress)
    stderr = (tmp_path / "producer-2.stderr").read_text(errors="replace")[-2000:]
    assert (code, done, error) == (0, True, None), f"second producer: exit {code}, {acked} acked, {error}\n{stderr}"
    assert acked == RESTART_RECORDS

    print(f"the first producer had {acked_before_kill} records acknowledged at the kill")
    records = read_all(broker.bootstrap, topic, RESTART_PARTITIONS)
    assert len(records) == RESTART_RECORDS, f"{len(records)} records stored for {RESTART_RECORDS} ids"
    seen = Counter(r.header() for r in records)
    twice = [i for i, n in seen.items() if n > 1]
    assert twice == [], f"{len(twice)} ids stored more than once, e.g. {twice[:5]}"
    by_key: dict[bytes, list[tuple[int, int, int]]] = defaultdict(list)
    for r in records:
        seq = seq_of(r.value)
        assert (r.header(), r.key, r.value) == (id_of(seq), key_of(seq, RESTART_KEYS), value_of(seq)), r
        by_key[r.key].append((r.partition, r.offset, seq))
    assert len(by_key) == RESTART_KEYS
    for key, placed in by_key.items():
        assert len({p for p, _, _ in placed}) == 1, f"{key!r} is in several partitions"
        in_offset_order = [seq for _, _, seq in sorted(placed)]
        assert in_offset_order == sorted(in_offset_order), f"{key!r}: records out of order"


BROKER_KILLS = 5
KILL_PARTITIONS = 3
# Records a producer has handed to librdkafka without a delivery report, at
# most: what is in flight or queued when the broker dies.
OUTSTANDING_MAX = 5_000
# Acknowledged records each new producer sends again, besides all that were
# not acknowledged.
ACKED_RESENT = 1_000


@dataclass
class Ledger:
    """What the application knows: which records it acknowledged."""

    acked: bytearray
    # Records handed to some producer so far: 0..next_seq-1.
    next_seq: int = 0

    def unacked(self) -> list[int]:
        return [s for s in range(self.next_seq) if not self.acked[s]]

    def acked_count(self) -> int:
        return self.acked.count(1)


class Round:
    """One producer (a new producer id) between two broker kills: it sends the
    records it is given to resend, then new ones, with at most
    OUTSTANDING_MAX without a delivery report."""

    def __init__(self, bootstrap: str, topic: str, ledger: Ledger, resend: list[int]):
        self.topic, self.ledger, self.resend = topic, ledger, resend
        self.errors: list = []
        self.failed: dict[int, str] = {}
        self.handed = 0
        self.reported = 0
        self.stop = threading.Event()
        self.p = idempotent_producer(
            bootstrap,
            self.errors,
            **{"linger.ms": 2, "reconnect.backoff.ms": 20, "reconnect.backoff.max.ms": 200},
        )
        self.thread = threading.Thread(target=self.run, daemon=True)

    def on_delivery(self, err, msg):
        self.reported += 1
        seq = seq_of(msg.value())
        if err is None:
            self.ledger.acked[seq] = 1
        else:
            self.failed[seq] = str(err)

    def produce(self, seq: int) -> None:
        while self.handed - self.reported >= OUTSTANDING_MAX and not self.stop.is_set():
            self.p.poll(0.01)
        self.p.produce(
            self.topic,
            value=value_of(seq),
            partition=seq % KILL_PARTITIONS,
            headers=[(ID_HEADER, id_of(seq))],
            on_delivery=self.on_delivery,
        )
        self.handed += 1
        if self.handed % 500 == 0:
            self.p.poll(0)

    def run(self) -> None:
        for seq in self.resend:
            if self.stop.is_set():
                return
            self.produce(seq)
        while self.ledger.next_seq < RESTART_RECORDS and not self.stop.is_set():
            self.produce(self.ledger.next_seq)
            self.ledger.next_seq += 1
        # Delivery reports come only from poll: keep taking them until told
        # to stop (the kill) or there is nothing left to report.
        while not self.stop.is_set() and self.reported < self.handed:
            self.p.poll(0.01)

    def abandon(self) -> None:
        """After the broker died: stop, and drop what the client still holds
        (in flight included), as an application does that gives up on a
        producer; those records count as not acknowledged."""
        self.stop.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the producer thread did not stop"
        self.p.purge(in_queue=True, in_flight=True)
        self.p.flush(10)


@pytest.mark.timeout(240)
def test_broker_killed_five_times_while_resending_loses_and_duplicates_nothing(broker):
    """The broker is SIGKILLed mid-stream five times; after each restart a new
    producer resends everything not acknowledged and some acknowledged
    records: 0 duplicates, 0 lost.

    100,000 records (id `id-<seq>`, record `seq` to partition seq % 3) go
    through an idempotent acks=all producer with at most 5,000 outstanding.
    The broker is killed each time another sixth of them is acknowledged,
    while the producer is sending. The producer is then abandoned (its queue
    and in-flight requests purged: those records may or may not be stored),
    the broker started again on the same data, and a new producer (a new
    producer id, which idempotence cannot match with the old one) sends first
    every record not acknowledged, then 1,000 acknowledged ones drawn at
    random, then carries on with new records. After the fifth restart the
    last producer must get every record acknowledged. The topic must then
    hold each of the 100,000 ids exactly once, with its own value.
    """
    topic = "dedup-broker-kills"
    create_dedup_topic(broker.bootstrap, topic, KILL_PARTITIONS)
    ledger = Ledger(acked=bytearray(RESTART_RECORDS))
    rng = random.Random(17)
    deadline = time.monotonic() + 180
    history = []
    resend: list[int] = []
    for kill in range(BROKER_KILLS + 1):
        r = Round(broker.bootstrap, topic, ledger, resend)
        r.thread.start()
        if kill == BROKER_KILLS:
            r.thread.join(timeout=max(1.0, deadline - time.monotonic()))
            assert not r.thread.is_alive(), "the last producer did not hand over its records in time"
            remaining = r.p.flush(max(1.0, deadline - time.monotonic()))
            assert remaining == 0, f"{remaining} records undelivered after the last restart"
            assert r.failed == {}, f"{len(r.failed)} deliveries failed, e.g. {list(r.failed.items())[:3]}"
            assert [e for e in r.errors if e.fatal()] == [], r.errors[:3]
            break
        threshold = (kill + 1) * RESTART_RECORDS // (BROKER_KILLS + 1)
        while ledger.acked_count() < threshold:
            assert r.thread.is_alive() or ledger.acked_count() >= threshold, "the producer stopped early"
            assert time.monotonic() < deadline, f"round {kill}: {ledger.acked_count()} acknowledged"
            time.sleep(0.005)
        broker.kill()
        r.abandon()
        unacked = ledger.unacked()
        acked = [s for s in range(ledger.next_seq) if ledger.acked[s]]
        resend = unacked + sorted(rng.sample(acked, min(ACKED_RESENT, len(acked))))
        history.append((ledger.next_seq, ledger.acked_count(), len(unacked)))
        del r
        broker.start(same_port=True)
    print(f"kills at (records handed out, acknowledged, not acknowledged): {history}")
    assert ledger.acked_count() == RESTART_RECORDS
    assert sum(u for _, _, u in history) > 0, "no record was ever unacknowledged at a kill"

    records = read_all(broker.bootstrap, topic, KILL_PARTITIONS, timeout_s=90)
    seen = Counter(r.header() for r in records)
    twice = sorted(i for i, n in seen.items() if n > 1)
    assert twice == [], f"{len(twice)} ids stored more than once, e.g. {twice[:5]}"
    lost = [s for s in range(RESTART_RECORDS) if id_of(s) not in seen]
    assert lost == [], f"{len(lost)} acknowledged records missing, e.g. {lost[:5]}"
    for r in records:
        seq = seq_of(r.value)
        assert (r.header(), r.value, r.partition) == (id_of(seq), value_of(seq), seq % KILL_PARTITIONS), r
    assert len(records) == RESTART_RECORDS


@pytest.mark.parametrize("stop", ["restart", "sigkill"])
def test_the_window_survives_a_restart_and_a_sigkill(broker, stop):
    """Ids acknowledged before a clean restart, or before a SIGKILL, are still
    in the window after it.

    50 records with ids go to each of 2 partitions and are acknowledged. The
    broker is stopped (SIGTERM, or SIGKILL) and started on the same data.
    The same 100 ids sent again, each to the other partition, and 10 new
    ones: only the 10 new are stored.
    """
    topic = f"dedup-{stop}"
    create_dedup_topic(broker.bootstrap, topic, 2)
    first = [with_id(b"r-%d" % n, b"first-%d" % n, n % 2) for n in range(100)]
    assert {code for code, *_ in send(broker.bootstrap, topic, first)} == {None}
    if stop == "restart":
        broker.restart()
    else:
        broker.kill()
        broker.start()
    again = [with_id(b"r-%d" % n, b"again-%d" % n, (n + 1) % 2) for n in range(110)]
    assert {code for code, *_ in send(broker.bootstrap, topic, again)} == {None}
    records = read_all(broker.bootstrap, topic, 2)
    assert sorted(ids_and_values(records)) == sorted(
        [(b"r-%d" % n, b"first-%d" % n) for n in range(100)] + [(b"r-%d" % n, b"again-%d" % n) for n in range(100, 110)]
    )


# --- Batches with new and duplicate ids, per codec ------------------------------------------------


@dataclass(frozen=True)
class BatchHeader:
    base_offset: int
    last_offset: int
    codec: int
    records: int


def stored_batches(broker, partition: int) -> list[BatchHeader]:
    """The headers of the batches the broker wrote for `partition` of the
    broker's one topic, read from its segment files (a plain concatenation of
    RecordBatch v2 batches): which codec each kept, and how many records."""
    out = []
    for path in sorted(broker.data_dir.glob(f"logs/*/{partition}/*.log")):
        data = path.read_bytes()
        at = 0
        while len(data) - at >= 61:
            base, length = struct.unpack_from(">qi", data, at)
            attributes, last_delta = struct.unpack_from(">hi", data, at + 21)
            (count,) = struct.unpack_from(">i", data, at + 57)
            out.append(BatchHeader(base, base + last_delta, attributes & 7, count))
            at += 12 + length
    return out


def codec_value(step: int, n: int) -> bytes:
    """Compressible (so librdkafka does not fall back to sending it plain),
    and naming the step that sent it."""
    return b"step-%d|id-%d|" % (step, n) + b"abcdefgh" * 24


def read_with_kcat(bootstrap: str, topic: str, partition: int) -> list[tuple]:
    """(offset, id header, value) of every record, read by kcat to the end."""
    fmt = r"%o\x1f%h\x1f%s\x1e"
    out = run(
        ["kcat", "-b", bootstrap, "-C", "-t", topic, "-p", str(partition), "-o", "beginning", "-e", "-q"]
        + ["-X", "check.crcs=true", "-f", fmt],
        timeout_s=60,
    )
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    chunks = out.stdout.split(b"\x1e")
    assert chunks[-1] == b"", "kcat's output does not end with a record separator"
    records = []
    for chunk in chunks[:-1]:
        offset, headers, value = chunk.split(b"\x1f")
        prefix = ID_HEADER.encode() + b"="
        assert headers.startswith(prefix), headers
        records.append((int(offset), headers[len(prefix) :], value))
    return records


def read_with_kafka_python(bootstrap: str, topic: str, partition: int, end: int) -> list[tuple]:
    """(offset, id header, value) of every record up to `end`, by kafka-python."""
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, request_timeout_ms=30_000)
    tp = KpTopicPartition(topic, partition)
    try:
        c.assign([tp])
        c.seek_to_beginning(tp)
        deadline = time.monotonic() + 30
        records = []
        while c.position(tp) < end:
            assert time.monotonic() < deadline, f"kafka-python stuck at offset {c.position(tp)} of {end}"
            for batch in c.poll(timeout_ms=500).values():
                records.extend(batch)
        assert c.position(tp) == end
    finally:
        c.close()
    return [(r.offset, dict(r.headers).get(ID_HEADER), r.value) for r in records]


@pytest.fixture
def kcat_installed():
    """kcat is a test dependency, not a broker feature: its absence fails the test."""
    if run(["sh", "-c", "command -v kcat"], timeout_s=10).returncode != 0:
        pytest.fail("kcat is not installed: apt-get install kcat (scripts/test-clients does)")


@pytest.mark.usefixtures("kcat_installed")
@pytest.mark.parametrize("codec", list(CODECS))
def test_batches_mixing_new_and_duplicate_ids_keep_exactly_the_new_records(broker, codec):
    """Each codec: exactly the new records of mixed batches are stored, in
    batches that keep the codec, and kcat and kafka-python read them all.

    Four produce steps on one partition, each one batch of records compressed
    with the codec by librdkafka:
      1. ids 0..199, all new (offsets 0..199);
      2. ids 100..199 and 200..299 interleaved, a duplicate first (200..399):
         only 200..299 are kept, at the odd offsets;
      3. ids 0..49 again, all duplicates (400..449): a batch of no records;
      4. id 250 (a duplicate), ids 300..349, id 0 (a duplicate) (450..501):
         the first and last records dropped.
    Every produce must succeed. kcat (librdkafka) and kafka-python must each
    read exactly the 350 kept records at their offsets, with the value of
    the step that first sent each id, stepping over the gaps and the empty
    batch. On disk, every batch that kept records has the codec, and offsets
    400..449 are only in batches of no records, stored uncompressed as
    Kafka's compaction writes them: librdkafka (kcat's 2.0 and
    confluent-kafka's alike) aborts the whole process on a compressed batch
    of no records.
    """
    topic = f"dedup-mixed-{codec}"
    create_dedup_topic(broker.bootstrap, topic, 1)
    compression = {"compression.type": codec}
    step2 = [n for pair in zip(range(100, 200), range(200, 300)) for n in pair]
    steps = [list(range(200)), step2, list(range(50)), [250, *range(300, 350), 0]]
    for step, ids in enumerate(steps, start=1):
        reports = send(
            broker.bootstrap, topic, [with_id(b"id-%d" % n, codec_value(step, n)) for n in ids], **compression
        )
        assert [code for code, *_ in reports] == [None] * len(ids), f"step {step}: {reports[:3]}"

    expected = [(n, b"id-%d" % n, codec_value(1, n)) for n in range(200)]
    expected += [(201 + 2 * (n - 200), b"id-%d" % n, codec_value(2, n)) for n in range(200, 300)]
    expected += [(451 + (n - 300), b"id-%d" % n, codec_value(4, n)) for n in range(300, 350)]
    end = 502

    errors: list = []
    c = consumer(broker.bootstrap, errors)
    try:
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, end)
    finally:
        c.close()
    assert read_with_kcat(broker.bootstrap, topic, 0) == expected
    assert read_with_kafka_python(broker.bootstrap, topic, 0, end) == expected

    batches = stored_batches(broker, 0)
    assert sum(b.records for b in batches) == len(expected)
    assert {b.codec for b in batches if b.records > 0} == {CODECS[codec]}, batches
    around_empty = [b for b in batches if b.base_offset <= 449 and b.last_offset >= 400]
    assert around_empty and all((b.records, b.codec) == (0, 0) for b in around_empty), around_empty
    assert (around_empty[0].base_offset, around_empty[-1].last_offset) == (400, 449)


@pytest.mark.usefixtures("kcat_installed")
def test_an_empty_batch_at_the_end_of_a_partition_is_stepped_over(broker):
    """A partition whose last batch lost every record to the window still
    reads to its end, and the next record goes after that batch.

    10 records with ids, then the same 10 again (one batch, all dropped): the
    high watermark must be 20. kcat -e must stop there, kafka-python's
    position must reach it and confluent-kafka must report the partition's
    end at 20, each with the first 10 records only. A new record then gets
    offset 20.
    """
    topic = "dedup-empty-tail"
    create_dedup_topic(broker.bootstrap, topic, 1)
    first = [with_id(b"t-%d" % n, b"v-%d" % n) for n in range(10)]
    assert [code for code, *_ in send(broker.bootstrap, topic, first)] == [None] * 10
    again = [with_id(b"t-%d" % n, b"again-%d" % n) for n in range(10)]
    assert [code for code, *_ in send(broker.bootstrap, topic, again)] == [None] * 10

    expected = [(n, b"t-%d" % n, b"v-%d" % n) for n in range(10)]
    assert read_with_kcat(broker.bootstrap, topic, 0) == expected
    assert read_with_kafka_python(broker.bootstrap, topic, 0, 20) == expected
    assert [(r.offset, r.header(), r.value) for r in read_all(broker.bootstrap, topic, 1)] == expected
    reports = send(broker.bootstrap, topic, [with_id(b"t-new", b"new")])
    assert reports == [(None, 0, 20, b"new")]


# --- The window's length ---------------------------------------------------------------------------


def test_an_id_resent_after_the_window_is_stored_again(broker):
    """With a 2,000 ms window, an id is dropped while the window holds it,
    stored again once the window has passed, and dropped again right after.

    Record X (id `x`) is sent and acknowledged. Then X is sent again, each time
    with a new marker record (a fresh id) behind it on the same partition,
    about every 100 ms, and a consumer reads up to each marker to see whether
    that copy of X was stored. The first copy must be dropped; the first copy
    stored must have been acknowledged at least 2 s after the original was
    sent (the window had passed), and no later than 3 s after the window
    ended for the original's acknowledgement. A copy sent right after it
    must be dropped again. In all, X is stored exactly twice.
    """
    topic = "dedup-expiry"
    window_s = 2.0
    create_dedup_topic(broker.bootstrap, topic, 1, window_ms=int(window_s * 1000))
    errors: list = []
    p = producer(broker.bootstrap, errors, **{"linger.ms": 0})
    c = consumer(broker.bootstrap, errors)
    c.assign([TopicPartition(topic, 0, 0)])
    read: list = []

    def attempt(n: int) -> tuple[bool, float]:
        """Sends copy n of X and marker n; (whether copy n was stored, when
        it was acknowledged)."""
        reports = []
        p.produce(
            topic,
            partition=0,
            value=b"x-%d" % n,
            headers=[(ID_HEADER, b"x")],
            on_delivery=lambda err, _msg: reports.append(err),
        )
        p.produce(topic, partition=0, value=b"m-%d" % n, headers=[(ID_HEADER, b"m-%d" % n)])
        assert p.flush(10) == 0
        acked_at = time.monotonic()
        assert reports == [None]
        until = time.monotonic() + 10
        while not any(v == b"m-%d" % n for v in read):
            assert time.monotonic() < until, f"marker {n} not read within 10 s"
            for m in c.consume(num_messages=100, timeout=0.2):
                if m.error() is None:
                    read.append(m.value())
                elif m.error().code() != KafkaError._PARTITION_EOF:
                    raise AssertionError(m.error())
        return b"x-%d" % n in read, acked_at

    try:
        sent_at = time.monotonic()
        stored, original_acked_at = attempt(0)
        assert stored, "the first X was not stored"
        n = 0
        while True:
            n += 1
            stored, acked_at = attempt(n)
            if stored:
                break
            assert acked_at < original_acked_at + window_s + 3.0, f"X still dropped {acked_at - sent_at:.1f} s on"
            time.sleep(0.1)
        assert n > 1, "X sent again at once was stored: no window"
        assert acked_at - sent_at >= window_s, f"X stored again {acked_at - sent_at:.2f} s on, within the window"
        stored_again, _ = attempt(n + 1)
        assert not stored_again, "X sent right after it was stored again was stored a third time"
    finally:
        c.close()
    assert errors == []
    assert sum(v.startswith(b"x-") for v in read) == 2
    print(f"X dropped {n - 1} times, stored again after {acked_at - sent_at:.2f} s")


# --- Bad ids and records without an id --------------------------------------------------------------


def test_bad_ids_fail_their_partition_with_invalid_record(broker):
    """An empty id, and an id over 256 bytes, fail their partition's batch with
    INVALID_RECORD; other partitions of the same request are stored; an id
    that is not UTF-8 is an id like any other.

    One request (a long linger, 3 partitions):
      - partition 0: a good id, then an empty one: the whole batch is refused,
        both records INVALID_RECORD, neither stored;
      - partition 1: an id of 257 bytes: INVALID_RECORD;
      - partition 2: an id of exactly 256 bytes, the non-UTF-8 id
        ff fe 80 `id`, and a good id: all stored.
    Then: the good id of the refused batch is stored (a refused batch leaves
    no id in the window); the non-UTF-8 id sent again to partition 1 is
    dropped (one byte different, it is stored); partitions 0 and 1 take
    records again. The broker must not crash (the fixture checks its exit).
    """
    topic = "dedup-bad-ids"
    create_dedup_topic(broker.bootstrap, topic, 3)
    at_limit = b"L" * ID_BYTES_MAX
    over_limit = b"O" * (ID_BYTES_MAX + 1)
    not_utf8 = b"\xff\xfe\x80id"
    reports = send(
        broker.bootstrap,
        topic,
        [
            with_id(b"good-0", b"good-0", 0),
            with_id(b"", b"empty", 0),
            with_id(over_limit, b"over", 1),
            with_id(at_limit, b"at-limit", 2),
            with_id(not_utf8, b"not-utf8", 2),
            with_id(b"good-2", b"good-2", 2),
        ],
    )
    invalid = KafkaError.INVALID_RECORD
    assert [(code, part) for code, part, *_ in reports] == [(invalid, 0), (invalid, 0), (invalid, 1)] + [
        (None, 2)
    ] * 3, reports

    reports = send(
        broker.bootstrap,
        topic,
        [
            with_id(b"good-0", b"good-0 again", 0),
            with_id(not_utf8, b"not-utf8 again", 1),
            with_id(b"\xff\xfe\x81id", b"not-utf8 other", 1),
        ],
    )
    assert [code for code, *_ in reports] == [None] * 3, reports
    by_partition = defaultdict(list)
    for r in read_all(broker.bootstrap, topic, 3):
        by_partition[r.partition].append((r.header(), r.value))
    assert dict(by_partition) == {
        0: [(b"good-0", b"good-0 again")],
        1: [(b"\xff\xfe\x81id", b"not-utf8 other")],
        2: [(at_limit, b"at-limit"), (not_utf8, b"not-utf8"), (b"good-2", b"good-2")],
    }


def test_records_without_an_id_are_stored_every_time(broker):
    """Records without the id header are stored as usual, beside dropped ones.

    The same batch is sent twice to a topic with a window: a record without
    headers, one with another header only, one whose `message-id` header is
    null, and one with an id. All four are stored the first time, the first
    three again the second time (7 in all). On a topic without a window, and
    on one with `veltrix.dedup.window.ms=0`, all 8 are stored.
    """
    create_dedup_topic(broker.bootstrap, "dedup-no-id", 1)
    create_topic(broker.bootstrap, "plain", 1)
    create_dedup_topic(broker.bootstrap, "window-zero", 1, window_ms=0)

    def batch(round_: int) -> list[dict]:
        return [
            dict(value=b"no-headers-%d" % round_, partition=0),
            dict(value=b"other-header-%d" % round_, partition=0, headers=[("trace", b"1")]),
            with_id(None, b"null-id-%d" % round_),
            with_id(b"f-1", b"with-id-%d" % round_),
        ]

    for topic in ("dedup-no-id", "plain", "window-zero"):
        for round_ in (1, 2):
            assert [code for code, *_ in send(broker.bootstrap, topic, batch(round_))] == [None] * 4
    stored = {t: [r.value for r in read_all(broker.bootstrap, t, 1)] for t in ("dedup-no-id", "plain", "window-zero")}
    everything = [b"no-headers-%d", b"other-header-%d", b"null-id-%d", b"with-id-%d"]
    all_8 = [v % round_ for round_ in (1, 2) for v in everything]
    assert stored == {"dedup-no-id": all_8[:7], "plain": all_8, "window-zero": all_8}


def test_the_window_is_topic_wide(broker):
    """The same id sent to three partitions at once is stored once; sent again
    later to any partition it is dropped.

    One request carries id `w` to partitions 0, 1 and 2, each followed by a
    marker with its own id; later `w` goes to partition 2 again with a fourth
    marker. Exactly one `w` and all four markers must be stored.
    """
    topic = "dedup-topic-wide"
    create_dedup_topic(broker.bootstrap, topic, 3)
    first = [r for p in range(3) for r in (with_id(b"w", b"w-%d" % p, p), with_id(b"m-%d" % p, b"m", p))]
    assert [code for code, *_ in send(broker.bootstrap, topic, first)] == [None] * 6
    later = [with_id(b"w", b"w-later", 2), with_id(b"m-3", b"m", 2)]
    assert [code for code, *_ in send(broker.bootstrap, topic, later)] == [None] * 2
    ids = Counter(r.header() for r in read_all(broker.bootstrap, topic, 3))
    assert ids == {b"w": 1, b"m-0": 1, b"m-1": 1, b"m-2": 1, b"m-3": 1}


# --- Where the id is, and the settings ------------------------------------------------------------


def test_a_custom_id_header(broker):
    """With `veltrix.dedup.id.header=x-event-id` that header is the id and
    `message-id` is an ordinary header.

    Sent twice: records with `x-event-id` e-1 and e-2 (stored once each), and
    a record with only `message-id: m-1` (stored both times).
    """
    topic = "dedup-custom-header"
    create_dedup_topic(broker.bootstrap, topic, 1, **{"veltrix.dedup.id.header": "x-event-id"})
    for round_ in (1, 2):
        records = [
            dict(value=b"e-1/%d" % round_, partition=0, headers=[("x-event-id", b"e-1")]),
            with_id(b"m-1", b"m-1/%d" % round_),
            dict(value=b"e-2/%d" % round_, partition=0, headers=[(ID_HEADER, b"m-2"), ("x-event-id", b"e-2")]),
        ]
        assert [code for code, *_ in send(broker.bootstrap, topic, records)] == [None] * 3
    assert [r.value for r in read_all(broker.bootstrap, topic, 1)] == [b"e-1/1", b"m-1/1", b"e-2/1", b"m-1/2"]


def test_the_key_as_the_id(broker):
    """With `veltrix.dedup.id.source=key` the record key is the id.

    Sent twice: keys k-1 and k-2 with the same `message-id` header (stored
    once each, the header ignored), and a record without a key (stored both
    times).
    """
    topic = "dedup-key"
    create_dedup_topic(broker.bootstrap, topic, 1, **{"veltrix.dedup.id.source": "key"})
    for round_ in (1, 2):
        records = [
            with_id(b"same", b"k-1/%d" % round_, key=b"k-1"),
            with_id(b"same", b"k-2/%d" % round_, key=b"k-2"),
            dict(value=b"no-key/%d" % round_, partition=0),
        ]
        assert [code for code, *_ in send(broker.bootstrap, topic, records)] == [None] * 3
    assert [r.value for r in read_all(broker.bootstrap, topic, 1)] == [b"k-1/1", b"k-2/1", b"no-key/1", b"no-key/2"]


def alter(bootstrap: str, topic: str, **settings: str) -> None:
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in settings.items()
        ],
    )
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.incremental_alter_configs([resource])[resource].result(timeout=20)


def described(bootstrap: str, topic: str, name: str) -> str:
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    entries = admin.describe_configs([resource])[resource].result(timeout=20)
    return entries[name].value


def test_the_window_is_switched_on_and_off_with_incremental_alter_configs(broker):
    """IncrementalAlterConfigs turns the window on and off on a live topic, and
    DescribeConfigs shows it.

    On a topic created without a window, id a-1 sent twice is stored twice.
    With `veltrix.dedup.window.ms` set to 600000 (DescribeConfigs says so),
    a-2 sent twice is stored once. Set back to 0, a-3 sent twice is stored
    twice.
    """
    topic = "dedup-altered"
    create_topic(broker.bootstrap, topic, 1)

    def twice(msg_id: bytes) -> None:
        for round_ in (1, 2):
            record = with_id(msg_id, msg_id + b"/%d" % round_)
            assert [code for code, *_ in send(broker.bootstrap, topic, [record])] == [None]

    twice(b"a-1")
    alter(broker.bootstrap, topic, **{"veltrix.dedup.window.ms": str(WINDOW_MS)})
    assert described(broker.bootstrap, topic, "veltrix.dedup.window.ms") == str(WINDOW_MS)
    twice(b"a-2")
    alter(broker.bootstrap, topic, **{"veltrix.dedup.window.ms": "0"})
    twice(b"a-3")
    assert [r.value for r in read_all(broker.bootstrap, topic, 1)] == [
        b"a-1/1",
        b"a-1/2",
        b"a-2/1",
        b"a-3/1",
        b"a-3/2",
    ]


@pytest.mark.parametrize(
    "config",
    [
        {"veltrix.dedup.window.ms": "5000", "retention.ms": "1000"},
        {"veltrix.dedup.window.ms": "-1"},
        {"veltrix.dedup.window.ms": "60000", "veltrix.dedup.id.source": "value"},
        {"veltrix.dedup.window.ms": "60000", "veltrix.dedup.id.header": ""},
    ],
    ids=["longer-than-retention", "negative", "unknown-source", "empty-header-name"],
)
def test_invalid_window_settings_are_refused(broker, config):
    """CreateTopics refuses a window longer than the topic's retention, a
    negative window, an id source other than `header` or `key`, and an empty
    header name, with INVALID_CONFIG, and creates nothing; a valid window is
    accepted."""
    topic = "dedup-invalid"
    # A window the broker accepts, so that the refusal below is of the value,
    # not of a setting the broker does not know.
    create_dedup_topic(broker.bootstrap, "dedup-valid", 1, window_ms=60_000)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    with pytest.raises(KafkaException) as refused:
        admin.create_topics([NewTopic(topic, 1, 1, config=config)])[topic].result(timeout=20)
    assert refused.value.args[0].code() == KafkaError.INVALID_CONFIG, refused.value
    assert topic not in admin.list_topics(timeout=10).topics


def test_a_batch_of_an_idempotent_producer_keeps_its_sequence_when_records_are_dropped(broker):
    """An idempotent producer whose records were dropped carries on without
    OUT_OF_ORDER_SEQUENCE: the batch's sequence range is kept.

    One idempotent producer sends ids 0..99, then ids 50..149 (half dropped),
    then 0..99 again (all dropped), then 150..199, each batch after the last
    is acknowledged. Every delivery must succeed, with no fatal error, and
    the topic must hold ids 0..199 once each.
    """
    topic = "dedup-idempotent"
    create_dedup_topic(broker.bootstrap, topic, 1)
    errors: list = []
    p: Producer = idempotent_producer(broker.bootstrap, errors, **{"linger.ms": 50})
    failures = []
    for ids in (range(100), range(50, 150), range(100), range(150, 200)):
        for n in ids:
            p.produce(
                topic,
                partition=0,
                value=b"%d" % n,
                headers=[(ID_HEADER, b"i-%d" % n)],
                on_delivery=lambda e, m: e and failures.append(e),
            )
        assert p.flush(20) == 0
    assert failures == [] and errors == [], (failures[:3], errors[:3])
    assert [r.value for r in read_all(broker.bootstrap, topic, 1)] == [b"%d" % n for n in range(200)]
