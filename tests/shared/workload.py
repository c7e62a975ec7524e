"""Producers, consumers and checks of the shared-storage tests.

Records are numbered per producer: key `<producer>-<seq>`, value
`<producer>|<seq, 8 digits>|` and padding that depends on both, so a record
served from the wrong place or with shifted bytes fails the content check.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

VALUE_BYTES = 100
_PATTERN = bytes(range(32, 127)) * 3


def record_value(producer: int, seq: int) -> bytes:
    head = b"%d|%08d|" % (producer, seq)
    start = (seq * 7 + producer * 13) % 95
    return head + _PATTERN[start : start + VALUE_BYTES - len(head)]


def parse_value(value: bytes) -> tuple[int, int] | None:
    try:
        producer, seq, _ = value.split(b"|", 2)
        return int(producer), int(seq)
    except ValueError:
        return None


def create_topic(bootstrap: str, name: str, partitions: int, deadline_s: float = 30.0) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = NewTopic(name, partitions, -1)
    for future in admin.create_topics([new], operation_timeout=10).values():
        future.result(timeout=20)


def wait_topic_everywhere(cluster, name: str, partitions: int, deadline_s: float = 30.0) -> dict[int, int]:
    """Every running broker's Metadata has the topic, each partition with a leader; the leaders."""
    end = time.monotonic() + deadline_s
    while True:
        leaders: dict[int, int] = {}
        seen = {}
        for b in cluster.brokers:
            if not b.up:
                continue
            try:
                md = AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(name, timeout=3)
                t = md.topics.get(name)
                seen[b.broker_id] = (
                    None if t is None or t.error else {p: t.partitions[p].leader for p in t.partitions}
                )
            except KafkaException as e:
                seen[b.broker_id] = str(e)
        ok = all(isinstance(v, dict) and len(v) == partitions and all(l >= 0 for l in v.values()) for v in seen.values())
        if ok:
            leaders = next(iter(seen.values()))
            return leaders
        if time.monotonic() >= end:
            raise AssertionError(f"topic {name} not served with {partitions} led partitions by every broker within {deadline_s} s: {seen}")
        time.sleep(0.2)


class ProducerWorker:
    """An idempotent acks=all producer in a thread of its own, sending at a steady rate.

    Every delivery report is recorded: `acked[seq] = (partition, offset)` for a
    success, `failed[seq] = error` otherwise. `max_acked` is the highest
    sequence number acknowledged so far, which tells whether records sent after
    some moment got through.
    """

    def __init__(self, producer_id: int, bootstrap: str, topic: str, rate: float, **extra):
        self.producer_id = producer_id
        self.topic = topic
        self.rate = rate
        self.acked: dict[int, tuple[int, int]] = {}
        self.failed: dict[int, str] = {}
        self.errors: list = []
        self.sent = 0
        self.max_acked = -1
        # The highest sequence number acknowledged in each partition.
        self.max_acked_in: dict[int, int] = {}
        self.remaining: int | None = None
        config = {
            "bootstrap.servers": bootstrap,
            "client.id": f"shared-producer-{producer_id}",
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            # Outlasts every outage of the tests, so what was in flight is retried, not failed.
            "message.timeout.ms": 120_000,
            "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 500,
            "error_cb": self.errors.append,
        }
        config.update(extra)
        self.producer = Producer(config)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"producer-{producer_id}", daemon=True)

    def _on_delivery(self, err, msg):
        parsed = parse_value(msg.value())
        seq = parsed[1] if parsed else -1
        if err is None:
            self.acked[seq] = (msg.partition(), msg.offset())
            if seq > self.max_acked:
                self.max_acked = seq
            if seq > self.max_acked_in.get(msg.partition(), -1):
                self.max_acked_in[msg.partition()] = seq
        else:
            self.failed[seq] = str(err)

    def _run(self):
        started = time.monotonic()
        seq = 0
        while not self._stop.is_set():
            due = started + seq / self.rate
            now = time.monotonic()
            if now < due:
                # Pacing: serve delivery reports until the next record is due.
                self.producer.poll(min(due - now, 0.05))
                continue
            try:
                self.producer.produce(
                    self.topic,
                    key=b"%d-%d" % (self.producer_id, seq),
                    value=record_value(self.producer_id, seq),
                    on_delivery=self._on_delivery,
                )
                seq += 1
                self.sent = seq
            except BufferError:
                self.producer.poll(0.05)
            if seq % 50 == 0:
                self.producer.poll(0)

    def start(self):
        self._thread.start()

    def stop(self, flush_s: float) -> int:
        """Stops sending; waits up to `flush_s` for every report; the records still without one."""
        self._stop.set()
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), f"producer {self.producer_id}'s thread did not stop"
        self.remaining = self.producer.flush(flush_s)
        return self.remaining

    def fatal_errors(self) -> list:
        return [e for e in self.errors if e.fatal()]


def wait_progress(producers: list[ProducerWorker], marks: dict[int, int], partitions: int, deadline_s: float, what: str) -> float:
    """Waits until, for each producer and each partition, a record sent after the producer's mark
    was acknowledged: every partition's leadership and every producer's path to it work again.

    Returns the seconds it took; fails with every producer's state past the deadline.
    """
    start = time.monotonic()
    end = start + deadline_s

    def behind(p: ProducerWorker) -> list[int]:
        return [k for k in range(partitions) if p.max_acked_in.get(k, -1) < marks[p.producer_id]]

    while any(behind(p) for p in producers):
        if time.monotonic() >= end:
            state = {
                p.producer_id: {
                    "sent at mark": marks[p.producer_id],
                    "sent": p.sent,
                    "partitions with nothing acknowledged since": behind(p),
                    "highest acked per partition": dict(sorted(p.max_acked_in.items())),
                    "acked": len(p.acked),
                    "failed": len(p.failed),
                    "client errors": [str(e) for e in p.errors[-3:]],
                }
                for p in producers
            }
            raise AssertionError(f"{what}: producers made no progress within {deadline_s} s: {state}")
        time.sleep(0.05)
    return time.monotonic() - start


def marks_of(producers: list[ProducerWorker]) -> dict[int, int]:
    return {p.producer_id: p.sent for p in producers}


def watermarks(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "veltrix-shared-watermarks", "enable.auto.commit": False})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)}
    finally:
        c.close()


def read_all(bootstrap: str, topic: str, ends: dict[int, int], deadline_s: float) -> dict[int, dict[int, bytes]]:
    """Every record of every partition from 0 to `ends`, by manual assignment: {partition: {offset: value}}."""
    errors: list = []
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "veltrix-shared-reader-unused",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "check.crcs": True,
            "error_cb": errors.append,
        }
    )
    got: dict[int, dict[int, bytes]] = {p: {} for p in ends}
    end = time.monotonic() + deadline_s
    try:
        c.assign([TopicPartition(topic, p, 0) for p in ends])
        at_end = {p for p, e in ends.items() if e == 0}
        while len(at_end) < len(ends):
            assert time.monotonic() < end, (
                f"reading took over {deadline_s} s; read {({p: len(v) for p, v in got.items()})} of {ends}; client errors {errors[:5]}"
            )
            for msg in c.consume(num_messages=10_000, timeout=0.5):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        if msg.offset() >= ends[msg.partition()]:
                            at_end.add(msg.partition())
                        continue
                    raise AssertionError(f"consume error: {err}")
                if msg.offset() < ends[msg.partition()]:
                    got[msg.partition()][msg.offset()] = msg.value()
    finally:
        c.close()
    return got


class GroupReader:
    """Consumers of one group, each bootstrapped at a different broker, committing after processing.

    enable.auto.commit is off; after each batch is processed (stored in
    `records`), its partitions' next offsets are committed synchronously. A
    (partition, offset) delivered again after a rebalance must carry the same
    bytes; `redelivered` counts such repeats, `served_differently` lists any
    that differ.
    """

    def __init__(self, bootstraps: list[str], topic: str, group: str, rate: float | None = None, batch: int = 500):
        self.topic = topic
        self.group = group
        self.rate = rate
        self.batch = batch
        self.records: dict[int, dict[int, bytes]] = defaultdict(dict)
        self.redelivered = 0
        self.served_differently: list = []
        self.commit_failures: list[str] = []
        self.consume_errors: list[str] = []
        self.errors: list = []
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(i, b), name=f"consumer-{i}", daemon=True) for i, b in enumerate(bootstraps)
        ]

    def _run(self, i: int, bootstrap: str):
        c = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "client.id": f"shared-consumer-{i}",
                "group.id": self.group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "check.crcs": True,
                "session.timeout.ms": 10_000,
                "heartbeat.interval.ms": 1_000,
                "reconnect.backoff.ms": 50,
                "reconnect.backoff.max.ms": 500,
                "error_cb": self.errors.append,
            }
        )
        c.subscribe([self.topic])
        started = time.monotonic()
        processed = 0
        try:
            while not self._stop.is_set():
                if self.rate:
                    due = started + processed / self.rate
                    if time.monotonic() < due:
                        # Pacing, so the group is still reading while brokers are killed.
                        time.sleep(min(due - time.monotonic(), 0.05))
                        continue
                msgs = c.consume(num_messages=self.batch, timeout=0.5)
                nexts: dict[int, int] = {}
                with self.lock:
                    for m in msgs:
                        err = m.error()
                        if err is not None:
                            self.consume_errors.append(str(err))
                            continue
                        part, off = m.partition(), m.offset()
                        seen = self.records[part].get(off)
                        if seen is None:
                            self.records[part][off] = m.value()
                        else:
                            self.redelivered += 1
                            if seen != m.value():
                                self.served_differently.append((part, off, seen[:20], m.value()[:20]))
                        nexts[part] = max(nexts.get(part, 0), off + 1)
                processed += len(msgs)
                if nexts:
                    try:
                        c.commit(offsets=[TopicPartition(self.topic, p, o) for p, o in nexts.items()], asynchronous=False)
                    except KafkaException as e:
                        # A commit refused during a rebalance: the partition's next
                        # owner reads from the last committed offset again.
                        self.commit_failures.append(str(e))
        finally:
            c.close()

    def start(self):
        for t in self._threads:
            t.start()

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)
        assert not any(t.is_alive() for t in self._threads), "a consumer's thread did not stop"

    def read_counts(self) -> dict[int, int]:
        with self.lock:
            return {p: len(v) for p, v in self.records.items()}

    def covered(self, ends: dict[int, int]) -> bool:
        with self.lock:
            return all(len(self.records.get(p, {})) >= e for p, e in ends.items())


class OffsetWatcher:
    """Polls a group's committed offsets through a running broker; records any that go backwards.

    An offset lower than one seen before, or a partition that had a committed
    offset and then has none, is a regression. Requests that fail (the
    coordinator moving) are counted and retried on the next poll.
    """

    def __init__(self, cluster, group: str, topic: str, partitions: int, interval_s: float = 0.1):
        self.cluster = cluster
        self.group = group
        self.topic = topic
        self.partitions = partitions
        self.interval_s = interval_s
        self.highest: dict[int, int] = {}
        self.latest: dict[int, int] = {}
        self.regressions: list[str] = []
        self.polls = 0
        self.failed_polls = 0
        self.last_error = ""
        self._admins: dict[int, AdminClient] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="offset-watcher", daemon=True)

    def _admin(self) -> tuple[int, AdminClient] | None:
        for b in self.cluster.brokers:
            if b.up:
                if b.broker_id not in self._admins:
                    self._admins[b.broker_id] = AdminClient(
                        {"bootstrap.servers": b.bootstrap, "socket.timeout.ms": 3000, "reconnect.backoff.max.ms": 500}
                    )
                return b.broker_id, self._admins[b.broker_id]
        return None

    def committed(self, timeout_s: float = 5.0) -> dict[int, int]:
        """The group's committed offset per partition (-1001 for none), asked through a running broker."""
        picked = self._admin()
        if picked is None:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT, "no broker is running"))
        _, admin = picked
        request = ConsumerGroupTopicPartitions(self.group, [TopicPartition(self.topic, p) for p in range(self.partitions)])
        result = admin.list_consumer_group_offsets([request], request_timeout=timeout_s)[self.group].result(timeout=timeout_s + 2)
        out = {}
        for tp in result.topic_partitions:
            if tp.error is None:
                out[tp.partition] = tp.offset
        return out

    def poll_once(self) -> None:
        self.polls += 1
        try:
            got = self.committed()
        except Exception as e:  # noqa: BLE001 - any failure is counted and retried
            self.failed_polls += 1
            self.last_error = str(e)
            return
        now = time.strftime("%H:%M:%S")
        for p, off in got.items():
            before = self.highest.get(p)
            if off < 0:
                if before is not None:
                    self.regressions.append(f"{now} partition {p}: committed offset {before} gone (answer {off})")
                continue
            if before is not None and off < before:
                self.regressions.append(f"{now} partition {p}: committed offset went from {before} to {off}")
            self.highest[p] = max(off, before if before is not None else off)
            self.latest[p] = off

    def _run(self):
        while not self._stop.is_set():
            self.poll_once()
            self._stop.wait(self.interval_s)

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=30)

    def total(self) -> int:
        return sum(self.latest.values())


def coordinator_of(cluster, group: str, deadline_s: float = 30.0) -> int:
    """The broker id coordinating `group`, asked through a running broker."""
    end = time.monotonic() + deadline_s
    last = None
    while time.monotonic() < end:
        for b in cluster.brokers:
            if not b.up:
                continue
            try:
                admin = AdminClient({"bootstrap.servers": b.bootstrap})
                desc = admin.describe_consumer_groups([group], request_timeout=5)[group].result(timeout=7)
                if desc.coordinator is not None and desc.coordinator.id >= 0:
                    return desc.coordinator.id
            except Exception as e:  # noqa: BLE001 - retried until the deadline
                last = e
        time.sleep(0.2)
    raise AssertionError(f"no coordinator found for group {group} within {deadline_s} s: {last}")


def check_log(
    records: dict[int, dict[int, bytes]], ends: dict[int, int], producers: list[ProducerWorker]
) -> tuple[list[str], dict]:
    """Checks what was read against what was acknowledged; (problems, numbers).

    - each partition's offsets 0..end were all read (no gap);
    - every record is whole and one of the producers' (its bytes match its number);
    - no producer's record is stored twice, acknowledged or not;
    - every acknowledged record is stored at the partition and offset its
      acknowledgement named;
    - per producer per partition, records are in the order they were sent.
    """
    problems: list[str] = []
    by_ack = {p.producer_id: p.acked for p in producers}
    found: dict[tuple[int, int], tuple[int, int]] = {}
    gaps, damaged, twice, order = [], [], [], []
    for part in sorted(ends):
        got = records.get(part, {})
        missing = [o for o in range(ends[part]) if o not in got]
        if missing:
            gaps.append(f"partition {part}: {len(missing)} offsets of 0..{ends[part]} not read, e.g. {missing[:5]}")
        last: dict[int, tuple[int, int]] = {}
        for off in sorted(got):
            value = got[off]
            parsed = parse_value(value)
            if parsed is None or parsed[0] not in by_ack or value != record_value(*parsed):
                damaged.append(f"partition {part} offset {off}: {value[:40]!r}")
                continue
            if parsed in found:
                twice.append(f"producer {parsed[0]} record {parsed[1]} at {found[parsed]} and {(part, off)}")
            found[parsed] = (part, off)
            prev = last.get(parsed[0])
            if prev is not None and parsed[1] <= prev[1]:
                order.append(
                    f"partition {part}: producer {parsed[0]}'s record {parsed[1]} at offset {off} after its record {prev[1]} at offset {prev[0]}"
                )
            last[parsed[0]] = (off, parsed[1])
    lost, moved = [], []
    for pid, acked in by_ack.items():
        for seq, where in acked.items():
            at = found.get((pid, seq))
            if at is None:
                lost.append(f"producer {pid} record {seq} acknowledged at {where}")
            elif at != where:
                moved.append(f"producer {pid} record {seq} acknowledged at {where}, stored at {at}")
    for name, items in [
        ("acknowledged records missing", lost),
        ("acknowledged records at another place than acknowledged", moved),
        ("records stored twice", twice),
        ("records out of their producer's order", order),
        ("offsets never read", gaps),
        ("damaged or unknown records", damaged),
    ]:
        if items:
            problems.append(f"{len(items)} {name}, e.g. " + "; ".join(items[:5]))
    numbers = {
        "stored": sum(len(v) for v in records.values()),
        "acknowledged": sum(len(a) for a in by_ack.values()),
        "sent": sum(p.sent for p in producers),
        "failed deliveries": sum(len(p.failed) for p in producers),
        "unacknowledged but stored": len(found) - sum(1 for pid, a in by_ack.items() for s in a if (pid, s) in found),
    }
    return problems, numbers
