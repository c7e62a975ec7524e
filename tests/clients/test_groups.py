"""Consumer groups with real clients, members in separate processes.

Three confluent-kafka consumers, each its own process (group_worker.py), share
a 6-partition topic in one group: exactly once with commits after processing
and clean shutdowns; at least once with no loss when a member is SIGKILLed
(its partitions move to the others within the session timeout) and when the
broker itself is SIGKILLed and restarted (members rejoin, consumption resumes
from the committed offsets, which never go backwards). A member frozen past
its session timeout cannot commit for its old generation when it wakes up,
and a consumer outside the group cannot commit for a group with members.
kafka-python and KafkaJS groups consume and commit a topic to its end. A
member that changes its subscription gets its new assignment at once: within
a second alone in its group, within a heartbeat interval when the others must
rejoin too (not at the rebalance timeout, max.poll.interval.ms). The
exactly-once and broker-kill tests run under both group protocols: classic
(JoinGroup/SyncGroup, client-side range assignor) and consumer (KIP-848,
ConsumerGroupHeartbeat, broker-side assignment).

VELTRIX_GROUP_RECORDS sets the records per topic (default 200,000).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition
from kafka import KafkaConsumer

from harness import API_FIND_COORDINATOR, API_JOIN_GROUP, API_SYNC_GROUP, _die_with_parent, run
from rdkafka_helpers import PARTITIONS, create_topic, produce_all, producer

RECORDS = int(os.environ.get("VELTRIX_GROUP_RECORDS", "200000"))
WORKER = Path(__file__).resolve().parent / "group_worker.py"
JS_DIR = Path(__file__).resolve().parent / "js"
# What the workers ask for; the broker's minimum is 6000 ms, as in Kafka.
SESSION_TIMEOUT_S = 6.0
VALUE_PAD = b"x" * 80


def group_value(seq: int) -> bytes:
    # produce_all reads the sequence number back from the first 20 bytes.
    return b"%020d|" % seq + VALUE_PAD


def require_groups(broker) -> None:
    if not broker.serves(API_FIND_COORDINATOR, API_JOIN_GROUP, API_SYNC_GROUP):
        pytest.skip("the broker does not serve consumer groups (FindCoordinator, JoinGroup, SyncGroup)")


def produce_topic(bootstrap: str, topic: str, count: int, partitions: int = PARTITIONS) -> dict[int, int]:
    """Creates the topic and fills it round-robin; returns each partition's end offset."""
    create_topic(bootstrap, topic, partitions)
    errors: list = []
    p = producer(bootstrap, errors, **{"linger.ms": 20, "batch.num.messages": 10_000})
    delivered_partition, delivered_offset = produce_all(
        p, topic, count, group_value, lambda s: s % partitions, time.monotonic() + 120
    )
    del p
    ends = {part: 0 for part in range(partitions)}
    for part, off in zip(delivered_partition, delivered_offset):
        ends[part] = max(ends[part], off + 1)
    assert sum(ends.values()) == count
    return ends


def committed(c: Consumer, topic: str, partitions, timeout_s: float = 5.0) -> dict[int, int]:
    """The group's committed offsets (OffsetFetch), -1 where none is."""
    got = c.committed([TopicPartition(topic, p) for p in partitions], timeout=timeout_s)
    for tp in got:
        assert tp.error is None, f"OffsetFetch error for partition {tp.partition}: {tp.error}"
    return {tp.partition: tp.offset if tp.offset >= 0 else -1 for tp in got}


def offset_reader(bootstrap: str, group: str) -> Consumer:
    """A consumer of `group` that never joins it: it only asks for committed offsets."""
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 500,
        }
    )


def committed_once(bootstrap: str, group: str, topic: str, partitions) -> dict[int, int]:
    c = offset_reader(bootstrap, group)
    try:
        return committed(c, topic, partitions, timeout_s=10)
    finally:
        c.close()


class Sampler:
    """Samples the group's committed offsets every 100 ms on a thread of its own.

    Failed samples (the broker is down) are counted, not fatal; every successful
    sample is kept with its time, to check afterwards that no committed offset
    ever went backwards.
    """

    def __init__(self, bootstrap: str, group: str, topic: str, partitions):
        self.consumer = offset_reader(bootstrap, group)
        self.topic = topic
        self.partitions = list(partitions)
        self.samples: list[tuple[float, dict[int, int]]] = []
        self.failures: list[str] = []
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.lock = threading.Lock()

    def _loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                got = committed(self.consumer, self.topic, self.partitions, timeout_s=2.0)
                with self.lock:
                    self.samples.append((time.monotonic(), got))
            except (KafkaException, AssertionError) as e:
                self.failures.append(f"{time.monotonic():.3f} {e}")
            self.stop_event.wait(0.1)

    def start(self) -> Sampler:
        self.thread.start()
        return self

    def latest(self) -> dict[int, int] | None:
        with self.lock:
            return dict(self.samples[-1][1]) if self.samples else None

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=15)
        self.consumer.close()

    def backwards(self) -> list[str]:
        """Every place where a partition's committed offset decreased between samples."""
        problems = []
        last: dict[int, tuple[float, int]] = {}
        for t, sample in self.samples:
            for p, o in sample.items():
                if p in last and o < last[p][1]:
                    problems.append(f"partition {p}: committed {last[p][1]} at {last[p][0]:.3f}, then {o} at {t:.3f}")
                last[p] = (t, o)
        return problems


@dataclass
class WorkerLog:
    """What one worker wrote to its results file."""

    records: list[tuple[int, int]] = field(default_factory=list)
    # (time, kind, partitions) for assign / revoke / lost.
    assignments: list[tuple[float, str, list[int]]] = field(default_factory=list)
    commits: list[tuple[float, dict[int, int]]] = field(default_factory=list)
    # When each commit of `commits` was asked for (it returned at the time in `commits`).
    commit_starts: list[float] = field(default_factory=list)
    commit_failures: list[str] = field(default_factory=list)
    # The member id the client held when each commit returned, beside `commits`.
    commit_members: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    closed: bool = False
    timed_out: bool = False
    # Records processed after the last successful commit covering them, per
    # partition, in file order: what a SIGKILL may leave for others to redo.
    uncommitted: dict[int, set[int]] = field(default_factory=dict)


def parse_worker(path: Path) -> WorkerLog:
    log = WorkerLog()
    try:
        text = path.read_text()
    except FileNotFoundError:
        return log
    # A worker being written to (or killed) may have a partial last line.
    lines = text.split("\n")[:-1]
    for line in lines:
        parts = line.split(" ")
        kind = parts[0]
        if kind == "r":
            p, o = int(parts[1]), int(parts[2])
            log.records.append((p, o))
            log.uncommitted.setdefault(p, set()).add(o)
        elif kind in ("assign", "revoke", "lost"):
            ps = [] if parts[2] == "-" else [int(x) for x in parts[2].split(",")]
            log.assignments.append((float(parts[1]), kind, ps))
        elif kind == "commit":
            pairs = [] if parts[2] == "-" else [x.split(":") for x in parts[2].split(",")]
            offsets = {int(a): int(b) for a, b in pairs}
            log.commits.append((float(parts[1]), offsets))
            log.commit_members.append(parts[3] if len(parts) > 3 else "-")
            log.commit_starts.append(float(parts[4]) if len(parts) > 4 else float(parts[1]))
            for p, o in offsets.items():
                log.uncommitted[p] = {x for x in log.uncommitted.get(p, set()) if x >= o}
        elif kind == "commitfail":
            log.commit_failures.append(line)
        elif kind == "error":
            log.errors.append(line)
        elif kind == "closed":
            log.closed = True
        elif kind == "timeout":
            log.timed_out = True
    return log


def current_assignment(log: WorkerLog, since: float = 0.0) -> set[int] | None:
    """The worker's partitions now, if it was assigned partitions at or after `since`.

    Every assignment adds its partitions and every revocation or loss removes
    its own, in order. That covers both protocols: the classic eager assignor
    revokes everything before each rebalance and assigns the whole new
    assignment after it; the consumer protocol adds and revokes partitions
    incrementally.
    """
    last = max((k for k, (_, kind, _) in enumerate(log.assignments) if kind == "assign"), default=None)
    if last is None or log.assignments[last][0] < since:
        return None
    owned: set[int] = set()
    for _, kind, ps in log.assignments:
        if kind == "assign":
            owned |= set(ps)
        else:
            owned -= set(ps)
    return owned


class Workers:
    """confluent-kafka group members, each a separate Python process."""

    def __init__(self, tmp: Path, bootstrap: str, topic: str, group: str, extra: list[str]):
        self.tmp = tmp
        self.bootstrap = bootstrap
        self.topic = topic
        self.group = group
        self.extra = extra
        self.stop_file = tmp / f"{group}.stop"
        self.procs: list[subprocess.Popen] = []
        self.paths: list[Path] = []
        self.killed: set[int] = set()

    def start(self, n: int) -> Workers:
        for i in range(n):
            path = self.tmp / f"{self.group}-worker-{i}.txt"
            stderr = open(self.tmp / f"{self.group}-worker-{i}.stderr", "wb")
            args = [sys.executable, str(WORKER), self.bootstrap, self.topic, self.group, str(path), str(self.stop_file)]
            self.procs.append(
                subprocess.Popen(
                    args + self.extra,
                    stdin=subprocess.DEVNULL,
                    stdout=stderr,
                    stderr=stderr,
                    preexec_fn=_die_with_parent,
                )
            )
            stderr.close()
            self.paths.append(path)
        return self

    def logs(self) -> list[WorkerLog]:
        return [parse_worker(p) for p in self.paths]

    def kill(self, i: int) -> None:
        self.procs[i].kill()
        self.procs[i].wait(timeout=10)
        self.killed.add(i)

    def stop(self, timeout_s: float = 30.0) -> list[str]:
        """Asks every worker to close, waits; returns problems (exit codes, stderr)."""
        self.stop_file.touch()
        problems = []
        deadline = time.monotonic() + timeout_s
        for i, proc in enumerate(self.procs):
            try:
                code = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
                problems.append(f"worker {i} did not exit within {timeout_s} s of the stop request and was killed")
                continue
            if i not in self.killed and code != 0:
                err = (self.tmp / f"{self.group}-worker-{i}.stderr").read_text(errors="replace")
                problems.append(f"worker {i} exited with {code}:\n{err[-3000:]}")
        return problems

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)

    def stderr_tail(self) -> str:
        parts = []
        for i in range(len(self.procs)):
            err = (self.tmp / f"{self.group}-worker-{i}.stderr").read_text(errors="replace")
            if err.strip():
                parts.append(f"--- worker {i} stderr\n{err[-2000:]}")
        return "\n".join(parts)


def wait_until(what: str, predicate, timeout_s: float, interval_s: float = 0.1):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s} s"
        time.sleep(interval_s)


def owners(logs: list[WorkerLog], among, since: float = 0.0) -> dict[int, set[int]] | None:
    """{worker: partitions} of the given workers, if each has an assignment since `since`."""
    out = {}
    for i in among:
        a = current_assignment(logs[i], since)
        if a is None:
            return None
        out[i] = a
    return out


def is_partition_of(assigned: dict[int, set[int]], partitions: int) -> bool:
    sets = list(assigned.values())
    union = set().union(*sets) if sets else set()
    return union == set(range(partitions)) and sum(len(s) for s in sets) == partitions


def coverage(logs: list[WorkerLog], ends: dict[int, int]) -> tuple[list[str], dict[tuple[int, int], list[int]]]:
    """Missing and unexpected records, and {(p, o): [worker, ...]} for records seen more than once."""
    seen: dict[tuple[int, int], list[int]] = {}
    for i, log in enumerate(logs):
        for rec in log.records:
            seen.setdefault(rec, []).append(i)
    problems = []
    for p, end in ends.items():
        missing = [o for o in range(end) if (p, o) not in seen]
        if missing:
            problems.append(f"partition {p}: {len(missing)} of {end} records never consumed, first {missing[:5]}")
    beyond = [rec for rec in seen if rec[0] not in ends or not 0 <= rec[1] < ends[rec[0]]]
    if beyond:
        problems.append(f"{len(beyond)} records consumed outside the produced range, e.g. {sorted(beyond)[:5]}")
    duplicates = {rec: who for rec, who in seen.items() if len(who) > 1}
    return problems, duplicates


def summarize_dups(duplicates: dict) -> str:
    by_part: dict[int, list[int]] = {}
    for (p, o) in duplicates:
        by_part.setdefault(p, []).append(o)
    return ", ".join(f"p{p}: {len(os_)} in [{min(os_)}, {max(os_)}]" for p, os_ in sorted(by_part.items()))


def pacing(count: int) -> list[str]:
    """Worker flags that make a member take at least ~10 s over its third of `count`
    records, so that kills land in the middle of consumption whatever the count."""
    batch = max(10, count // 3 // 200)
    return ["--batch-records", str(batch), "--batch-sleep-ms", "50"]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_three_member_group_consumes_exactly_once(broker, tmp_path, protocol):
    """Three members in separate processes share 6 partitions; each record is processed once.

    The members commit after processing (after every poll batch, on revocation
    and at shutdown, synchronously), so the group's committed offsets reach
    each partition's end, and then every member closes cleanly. Every record
    must have been processed by exactly one member exactly once, the final
    assignment must split the 6 partitions among the 3 members, and OffsetFetch
    from a fresh consumer must return the end offsets.
    """
    require_groups(broker)
    topic, group = "group-exactly-once", f"g-exactly-once-{protocol}"
    t0 = time.monotonic()
    ends = produce_topic(broker.bootstrap, topic, RECORDS)
    produced_s = time.monotonic() - t0
    workers = Workers(tmp_path, broker.bootstrap, topic, group, ["--protocol", protocol]).start(3)
    sampler = Sampler(broker.bootstrap, group, topic, ends).start()
    try:
        t1 = time.monotonic()
        wait_until(
            "the committed offsets reach the ends and all 3 members own partitions",
            lambda: sampler.latest() == ends and (o := owners(workers.logs(), range(3))) and is_partition_of(o, 6),
            timeout_s=90,
        )
        consumed_s = time.monotonic() - t1
    finally:
        problems = workers.stop()
        sampler.stop()
    assert problems == [], "\n".join(problems)
    logs = workers.logs()
    assert all(log.closed for log in logs), f"a worker did not close: {[log.closed for log in logs]}"
    missing, duplicates = coverage(logs, ends)
    assert missing == [], missing
    assert duplicates == {}, f"{len(duplicates)} records processed twice: {summarize_dups(duplicates)}"
    assert sampler.backwards() == []
    assert committed_once(broker.bootstrap, group, topic, ends) == ends
    failures = [f for log in logs for f in log.commit_failures]
    print(
        f"{RECORDS} records produced in {produced_s:.1f} s, consumed and committed in {consumed_s:.1f} s; "
        f"per worker {[len(log.records) for log in logs]}; commit failures {failures[:5]}"
    )


@pytest.mark.timeout(150)
def test_killed_member_partitions_move_within_session_timeout(broker, tmp_path):
    """A member SIGKILLed mid-way: its partitions move to the others, nothing is lost.

    Three members (session.timeout.ms=6000, heartbeats every second) consume at
    a bounded pace. Once member 0 has committed at least once and the group is
    stable with all three, member 0 is SIGKILLed. The two others must own all
    6 partitions within the session timeout plus the rebalance that follows
    (measured from the workers' assignment logs), and then consume to the end.
    Every record must be consumed by someone; a record may be consumed twice
    only if the killed member processed it after its last successful commit of
    that partition; the survivors never duplicate each other.
    """
    require_groups(broker)
    topic, group = "group-member-kill", "g-member-kill"
    ends = produce_topic(broker.bootstrap, topic, RECORDS)
    workers = Workers(tmp_path, broker.bootstrap, topic, group, pacing(RECORDS)).start(3)
    sampler = Sampler(broker.bootstrap, group, topic, ends).start()
    try:
        wait_until(
            "all 3 members own partitions and member 0 has committed",
            lambda: (o := owners(logs := workers.logs(), range(3)))
            and is_partition_of(o, 6)
            and logs[0].commits,
            timeout_s=60,
        )
        victim_parts = current_assignment(workers.logs()[0])
        t_kill = time.monotonic()
        workers.kill(0)
        moved = wait_until(
            "the 2 remaining members own all 6 partitions",
            lambda: (o := owners(workers.logs(), [1, 2], since=t_kill)) and is_partition_of(o, 6) and o,
            timeout_s=SESSION_TIMEOUT_S + 30,
            interval_s=0.05,
        )
        logs = workers.logs()
        moved_at = max(
            max(t for t, kind, _ in logs[i].assignments if kind == "assign") for i in (1, 2)
        )
        took = moved_at - t_kill
        wait_until("the committed offsets reach the ends", lambda: sampler.latest() == ends, timeout_s=90)
    finally:
        problems = workers.stop()
        sampler.stop()
    assert problems == [], "\n".join(problems)
    logs = workers.logs()
    assert logs[1].closed and logs[2].closed
    victim_committed = {p: o for _, offsets in logs[0].commits for p, o in offsets.items()}
    print(
        f"member 0 (partitions {sorted(victim_parts)}, last commits {victim_committed}) killed after "
        f"{len(logs[0].records)} records; its partitions moved in {took:.2f} s: {moved}"
    )
    unfinished = [p for p in victim_parts if victim_committed.get(p, 0) < ends[p]]
    assert unfinished, "member 0 had finished its partitions before the kill: the test proves nothing"
    # Session timeout, then one heartbeat interval for the others to learn of
    # the rebalance, the join and sync round trips: 6 + 1 s and a margin.
    assert took <= SESSION_TIMEOUT_S + 4.0, f"partitions of the killed member moved after {took:.1f} s"
    assert took >= SESSION_TIMEOUT_S - 1.5, f"partitions moved after {took:.1f} s, before the session could expire"

    missing, duplicates = coverage(logs, ends)
    assert missing == [], missing
    survivors_twice = {rec: who for rec, who in duplicates.items() if who.count(1) + who.count(2) > 1}
    assert survivors_twice == {}, f"survivors processed records twice: {summarize_dups(survivors_twice)}"
    victim_twice = {rec: who for rec, who in duplicates.items() if who.count(0) > 1}
    assert victim_twice == {}, f"the killed member processed records twice: {summarize_dups(victim_twice)}"
    allowed = {(p, o) for p, offs in logs[0].uncommitted.items() for o in offs}
    not_allowed = {rec: who for rec, who in duplicates.items() if rec not in allowed}
    assert not_allowed == {}, (
        f"{len(not_allowed)} records consumed twice that the killed member had committed: "
        f"{summarize_dups(not_allowed)}"
    )
    assert sampler.backwards() == []
    assert committed_once(broker.bootstrap, group, topic, ends) == ends
    print(f"redone after the kill: {len(duplicates)} records ({summarize_dups(duplicates) or 'none'})")


@pytest.mark.timeout(170)
@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_broker_sigkill_mid_consumption_resumes_from_committed(broker, tmp_path, protocol):
    """The broker is SIGKILLed and restarted while a 3-member group consumes.

    Committed offsets are durable; membership is not, so after the restart
    every member gets UNKNOWN_MEMBER_ID and rejoins. A separate consumer samples
    the group's committed offsets every 100 ms before, during and after: no
    partition's committed offset may ever go backwards. Every record must be
    consumed at least once, and records may be consumed again only from the
    offsets committed before the kill on (consumption resumes from the
    committed offsets, not from the beginning). Finally the committed offsets
    must reach the end offsets and survive in OffsetFetch.
    """
    require_groups(broker)
    topic, group = "group-broker-kill", f"g-broker-kill-{protocol}"
    ends = produce_topic(broker.bootstrap, topic, RECORDS)
    workers = Workers(tmp_path, broker.bootstrap, topic, group, pacing(RECORDS) + ["--protocol", protocol]).start(3)
    sampler = Sampler(broker.bootstrap, group, topic, ends).start()
    total = sum(ends.values())
    try:
        wait_until(
            "all 3 members own partitions and a quarter of the records is committed",
            lambda: (o := owners(workers.logs(), range(3)))
            and is_partition_of(o, 6)
            and (s := sampler.latest()) is not None
            and sum(max(0, v) for v in s.values()) >= total // 4,
            timeout_s=60,
        )
        before_kill = sampler.latest()
        broker.kill()
        t_kill = time.monotonic()
        time.sleep(0.5)
        broker.start(same_port=True)
        t_restart = time.monotonic()
        wait_until("the committed offsets reach the ends", lambda: sampler.latest() == ends, timeout_s=100)
        t_done = time.monotonic()
    finally:
        problems = workers.stop()
        sampler.stop()
    assert problems == [], "\n".join(problems)
    logs = workers.logs()
    assert all(log.closed for log in logs)
    after_restart = [s for t, s in sampler.samples if t > t_restart]
    print(
        f"killed with committed {before_kill} (of {ends}); restarted {t_restart - t_kill:.2f} s later; "
        f"first sample after restart {after_restart[:1]}; ends committed {t_done - t_restart:.1f} s after restart; "
        f"{len(sampler.failures)} failed samples; "
        f"commit failures: {[f for log in logs for f in log.commit_failures][:6]}"
    )
    assert sampler.backwards() == [], "committed offsets went backwards:\n" + "\n".join(sampler.backwards()[:20])
    assert after_restart, "no successful OffsetFetch after the restart"
    missing, duplicates = coverage(logs, ends)
    assert missing == [], missing
    below = {rec: who for rec, who in duplicates.items() if rec[1] < before_kill[rec[0]]}
    assert below == {}, (
        f"{len(below)} records consumed again below the offsets committed before the kill: {summarize_dups(below)}"
    )
    assert committed_once(broker.bootstrap, group, topic, ends) == ends
    print(f"consumed twice after the restart: {len(duplicates)} records ({summarize_dups(duplicates) or 'none'})")


def kafka_python_group(bootstrap: str, topic: str, group: str, ends: dict[int, int], members: int = 2) -> dict:
    """Two kafka-python KafkaConsumers in threads share `group`, commit after every
    poll, until OffsetFetch shows the ends; returns what each consumed.

    kafka-python 3 runs rebalance listeners on its IO thread, where a blocking
    commit() is refused; so the commit on revocation is kafka-python's own: with
    enable_auto_commit it commits the consumed positions before rejoining (and
    at close). The interval is long enough that only those and the explicit
    commits after each poll happen.
    """
    stop = threading.Event()
    consumed: list[list[tuple[int, int]]] = [[] for _ in range(members)]
    failures: list[str] = []

    def member(i: int) -> None:
        c = KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group,
            client_id=f"kafka-python-{i}",
            enable_auto_commit=True,
            auto_commit_interval_ms=600_000,
            auto_offset_reset="earliest",
            session_timeout_ms=6000,
            heartbeat_interval_ms=1000,
            max_poll_records=2000,
        )
        try:
            c.subscribe([topic])
            deadline = time.monotonic() + 100
            while not stop.is_set() and time.monotonic() < deadline:
                batch = c.poll(timeout_ms=200)
                for tp, records in batch.items():
                    consumed[i].extend((r.partition, r.offset) for r in records)
                if batch:
                    try:
                        c.commit()
                    except Exception as e:  # noqa: BLE001 - recorded for the report
                        failures.append(f"member {i} commit: {e!r}")
        except Exception as e:  # noqa: BLE001
            failures.append(f"member {i}: {e!r}")
        finally:
            c.close()

    threads = [threading.Thread(target=member, args=(i,), daemon=True) for i in range(members)]
    for t in threads:
        t.start()
    reader = offset_reader(bootstrap, group)
    try:
        t0 = time.monotonic()
        wait_until(
            "kafka-python's commits reach the ends",
            lambda: committed(reader, topic, ends, timeout_s=5) == ends,
            timeout_s=90,
            interval_s=0.3,
        )
        took = time.monotonic() - t0
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=20)
        reader.close()
    assert not any(t.is_alive() for t in threads), "a kafka-python member did not stop"
    return {"consumed": consumed, "failures": failures, "seconds": took}


def run_kafkajs_group(bootstrap: str, topic: str, group: str, ends: dict[int, int]) -> dict:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed; the KafkaJS tests need Node 20")
    if not (JS_DIR / "node_modules" / "kafkajs").is_dir():
        pytest.fail(f"kafkajs is not installed: run `npm ci` in {JS_DIR} (scripts/test-clients does)")
    env = dict(os.environ, KAFKAJS_NO_PARTITIONER_WARNING="1")
    args = [node, "group_commit.js", bootstrap, topic, group, json.dumps({str(p): e for p, e in ends.items()})]
    done = run(args, timeout_s=100, cwd=JS_DIR, env=env)
    stderr = done.stderr.decode(errors="replace")
    assert done.returncode == 0, f"node group_commit.js exited with {done.returncode}:\n{stderr[-5000:]}"
    lines = done.stdout.decode().strip().splitlines()
    assert len(lines) == 1, f"expected one JSON line, got:\n{done.stdout.decode()}\n{stderr[-3000:]}"
    out = json.loads(lines[0])
    out["stderr"] = stderr
    return out


@pytest.mark.timeout(170)
def test_kafka_python_and_kafkajs_groups_commit_to_the_end(broker, tmp_path):
    """kafka-python and KafkaJS groups consume a 6-partition topic and commit its ends.

    kafka-python: two KafkaConsumers (threads) in one group committing after
    every poll, and (its auto-commit) when partitions are revoked. KafkaJS: two
    consumers in one group (one node process) with KafkaJS's own commits after
    each batch. Each group must consume every record (kafka-python exactly
    once), and OffsetFetch through confluent-kafka must show each partition's
    end offset for both groups.
    """
    require_groups(broker)
    topic = "group-other-clients"
    count = min(RECORDS, 30_000)
    ends = produce_topic(broker.bootstrap, topic, count)

    kp = kafka_python_group(broker.bootstrap, topic, "g-kafka-python", ends)
    seen: dict[tuple[int, int], int] = {}
    for member in kp["consumed"]:
        for rec in member:
            seen[rec] = seen.get(rec, 0) + 1
    missing = {p: end - sum(1 for o in range(end) if (p, o) in seen) for p, end in ends.items()}
    assert all(v == 0 for v in missing.values()), f"kafka-python missed records per partition: {missing}"
    twice = sorted(rec for rec, n in seen.items() if n > 1)
    assert kp["failures"] == [], kp["failures"]
    assert twice == [], f"kafka-python consumed {len(twice)} records twice, e.g. {twice[:5]}"
    assert all(kp["consumed"]), f"a kafka-python member consumed nothing: {[len(c) for c in kp['consumed']]}"
    assert committed_once(broker.bootstrap, "g-kafka-python", topic, ends) == ends

    js = run_kafkajs_group(broker.bootstrap, topic, "g-kafkajs", ends)
    assert js["distinct"] == {str(p): e for p, e in ends.items()}, js
    assert js["outOfRange"] == 0, js
    assert js["committed"] == {str(p): str(e) for p, e in ends.items()}, js
    assert committed_once(broker.bootstrap, "g-kafkajs", topic, ends) == ends
    print(
        f"kafka-python: {[len(c) for c in kp['consumed']]} records per member in {kp['seconds']:.1f} s; "
        f"KafkaJS: {js['perMember']} records per member, {js['duplicates']} duplicates, {js['seconds']:.1f} s"
    )


@pytest.mark.timeout(120)
def test_paused_member_is_fenced_and_cannot_move_offsets_back(broker, tmp_path):
    """A member frozen past its session timeout comes back as a zombie: its commit is refused.

    Three paced members consume; member 0 is SIGSTOPped in the middle of a
    batch (records processed, commit not yet sent). Its session expires, the
    others take its partitions over and commit past where it stopped. Then it
    is SIGCONTed and sends the commit it had prepared, for the old generation:
    the broker must refuse it (UNKNOWN_MEMBER_ID, since the member was removed,
    or ILLEGAL_GENERATION), so that no committed offset goes backwards; the
    zombie then rejoins and the group consumes to the end, every record at
    least once. (When librdkafka has already rejoined by the time it sends
    the commit, the commit carries the new membership and is rightly
    accepted; the worker logs the member id each commit returned under.)
    """
    require_groups(broker)
    topic, group = "group-zombie", "g-zombie"
    ends = produce_topic(broker.bootstrap, topic, RECORDS)
    workers = Workers(tmp_path, broker.bootstrap, topic, group, pacing(RECORDS)).start(3)
    sampler = Sampler(broker.bootstrap, group, topic, ends).start()
    try:
        wait_until(
            "all 3 members own partitions and member 0 has committed",
            lambda: (o := owners(logs := workers.logs(), range(3))) and is_partition_of(o, 6) and logs[0].commits,
            timeout_s=60,
        )
        zombie_parts = current_assignment(workers.logs()[0])
        workers.procs[0].send_signal(signal.SIGSTOP)
        t_stop = time.monotonic()
        frozen_log = workers.logs()[0]
        frozen_commits = {p: o for _, offsets in frozen_log.commits for p, o in offsets.items()}
        # The others own everything, and have committed past the zombie's
        # pending batch on its partitions.
        wait_until(
            "the 2 other members own all 6 partitions",
            lambda: (o := owners(workers.logs(), [1, 2], since=t_stop)) and is_partition_of(o, 6),
            timeout_s=SESSION_TIMEOUT_S + 30,
        )
        pending_ends = {p: max((o + 1 for q, o in frozen_log.records if q == p), default=0) for p in zombie_parts}
        wait_until(
            "the others commit past the zombie's last processed records",
            lambda: (s := sampler.latest()) and all(s[p] >= min(pending_ends[p] + 1, ends[p]) for p in zombie_parts),
            timeout_s=30,
        )
        sample_before_resume = sampler.latest()
        workers.procs[0].send_signal(signal.SIGCONT)
        wait_until(
            "the zombie's commit is answered",
            lambda: len(workers.logs()[0].commits) > len(frozen_log.commits) or workers.logs()[0].commit_failures,
            timeout_s=30,
        )
        wait_until("the committed offsets reach the ends", lambda: sampler.latest() == ends, timeout_s=90)
    finally:
        if workers.procs and workers.procs[0].poll() is None:
            workers.procs[0].send_signal(signal.SIGCONT)
        problems = workers.stop()
        sampler.stop()
    assert problems == [], "\n".join(problems)
    logs = workers.logs()
    zombie = logs[0]
    frozen_member = frozen_log.commit_members[-1]
    # Commits asked for after the stop. One asked for just before it may have
    # been answered (accepted, the member still valid) before the process
    # froze, and be written only once it ran again: not the zombie's.
    after = [
        (commit, member)
        for commit, member, started in zip(zombie.commits, zombie.commit_members, zombie.commit_starts)
        if started > t_stop
    ]
    print(
        f"zombie owned {sorted(zombie_parts)}, had committed {frozen_commits} as {frozen_member}, "
        f"processed up to {pending_ends}; others had committed {sample_before_resume}; "
        f"zombie's failures {zombie.commit_failures}; its later commits {after[:3]}"
    )
    assert sampler.backwards() == [], "committed offsets went backwards:\n" + "\n".join(sampler.backwards()[:20])
    # librdkafka notices on resume that its session is gone and rejoins on its
    # own; a commit it sends only once it has joined again carries the new
    # member id and generation, and the partition may well be the new member's:
    # the broker rightly accepts it (Kafka does too). What must never be
    # accepted is the prepared commit under the old membership, or none.
    stale = [
        (t, offsets, member)
        for (t, offsets), member in after
        if member in (frozen_member, "-")
        and any(p in zombie_parts and o <= sample_before_resume[p] and o < ends[p] for p, o in offsets.items())
    ]
    assert stale == [], f"the zombie's stale commits were accepted: {stale}"
    rejoined_first = bool(after) and after[0][1] not in (frozen_member, "-") and not zombie.commit_failures
    if not rejoined_first:
        assert zombie.commit_failures, "the zombie's commit for its old generation neither failed nor was logged"
        assert all(
            ("UNKNOWN_MEMBER_ID" in f or "ILLEGAL_GENERATION" in f) for f in zombie.commit_failures[:1]
        ), zombie.commit_failures
    missing, _ = coverage(logs, ends)
    assert missing == [], missing
    assert committed_once(broker.bootstrap, group, topic, ends) == ends


def outsider_commit(bootstrap: str, topic: str, group: str) -> str:
    """Commits offset 5 of partition 0 from outside `group` while one member is in
    it, then again once it has left; returns the error name of the first commit."""
    create_topic(bootstrap, topic, 2)
    member = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "session.timeout.ms": 6000})
    outsider = offset_reader(bootstrap, group)
    try:
        assigned: list = []
        member.subscribe([topic], on_assign=lambda c, ps: assigned.append(ps))
        deadline = time.monotonic() + 30
        while not assigned:
            assert time.monotonic() < deadline, "the member got no assignment in 30 s"
            member.poll(0.2)
        with pytest.raises(KafkaException) as refused:
            outsider.commit(offsets=[TopicPartition(topic, 0, 5)], asynchronous=False)
        assert committed(outsider, topic, [0]) == {0: -1}, "a refused commit changed the committed offset"
        member.close()
        outsider.commit(offsets=[TopicPartition(topic, 0, 5)], asynchronous=False)
        assert committed(outsider, topic, [0]) == {0: 5}
        return refused.value.args[0].name()
    finally:
        outsider.close()


@pytest.mark.timeout(60)
def test_outsider_commit_to_active_group_is_refused(broker):
    """A consumer that never joined cannot commit for a group with members.

    One member joins the group and gets both partitions. A second consumer of
    the same group.id that never subscribes (member id "", generation -1)
    commits offset 5: the broker must refuse it with UNKNOWN_MEMBER_ID, as
    Kafka does (ClassicGroup.validateOffsetCommit), and the committed offset
    must stay unset. Once the member has left, the same commit succeeds (an empty
    group accepts commits from consumers outside the group protocol).
    """
    require_groups(broker)
    code = outsider_commit(broker.bootstrap, "group-outsider", "g-outsider")
    assert code == "UNKNOWN_MEMBER_ID"


@pytest.mark.timeout(90)
def test_consumer_protocol_group_is_described_by_the_cli(broker, veltrix_bin):
    """Two confluent-kafka consumers with group.protocol=consumer (KIP-848).

    The broker assigns the 6 partitions between them; `veltrix group describe`
    (ConsumerGroupDescribe under the hood, since the group is not a classic
    one) shows both members, the assignor, and an assignment covering every
    partition once; `veltrix group list` lists the group.
    """
    topic, group = "kip848-describe", "g-kip848-describe"
    create_topic(broker.bootstrap, topic, PARTITIONS)
    stop = threading.Event()
    errors: list = []

    def member(i: int) -> None:
        c = Consumer(
            {
                "bootstrap.servers": broker.bootstrap,
                "group.id": group,
                "group.protocol": "consumer",
                "client.id": f"kip848-{i}",
                "error_cb": lambda e: errors.append(e),
            }
        )
        c.subscribe([topic])
        try:
            while not stop.is_set():
                c.poll(0.2)
        finally:
            c.close()

    threads = [threading.Thread(target=member, args=(i,), daemon=True) for i in range(2)]
    for t in threads:
        t.start()

    def describe() -> dict | None:
        out = run([str(veltrix_bin), "group", "describe", group, "--bootstrap", broker.bootstrap, "--format", "json"], 30)
        if out.returncode != 0:
            return None
        d = json.loads(out.stdout)
        parts = [p for m in d["members"] for t in (m["assignment"] or []) for p in t["partitions"]]
        if len(d["members"]) == 2 and sorted(parts) == list(range(PARTITIONS)) and d["state"] == "Stable":
            return d
        return None

    try:
        d = wait_until("both members share the 6 partitions", describe, timeout_s=45, interval_s=0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert d["protocol"] == "uniform"
    assert {m["client_id"] for m in d["members"]} == {"kip848-0", "kip848-1"}
    assert all(m["subscription"] == [topic] for m in d["members"])
    assert all(m["assignment"] for m in d["members"]), "each member owns partitions"
    listed = run([str(veltrix_bin), "group", "list", "--bootstrap", broker.bootstrap], 30)
    assert listed.returncode == 0 and group in listed.stdout.decode()
    assert [e for e in errors if e.fatal()] == []


class Subscriber:
    """A confluent-kafka group member (classic protocol, eager range assignor)
    whose current assignment its rebalance callbacks keep, with the time of the
    last one.

    max.poll.interval.ms stays at librdkafka's default, 300000: it is the
    rebalance timeout the member sends in JoinGroup, so a broker that did not
    end a join phase when every member has joined would hold it for 5 minutes.
    """

    def __init__(self, bootstrap: str, group: str, name: str):
        self.name = name
        self.assignment: set[tuple[str, int]] = set()
        self.assigned_at = 0.0
        self.errors: list = []
        self.c = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "client.id": name,
                "max.poll.interval.ms": 300_000,
                "enable.auto.commit": False,
                "error_cb": self.errors.append,
            }
        )

    def subscribe(self, topics: list[str]) -> None:
        self.c.subscribe(topics, on_assign=self._on_assign, on_revoke=self._on_revoke)

    def _on_assign(self, _c, partitions) -> None:
        self.assignment = {(tp.topic, tp.partition) for tp in partitions}
        self.assigned_at = time.monotonic()

    def _on_revoke(self, _c, _partitions) -> None:
        self.assignment = set()


def poll_until(members: list[Subscriber], predicate, timeout_s: float) -> bool:
    """Polls every member (which runs their rebalance callbacks) until `predicate()`
    holds or `timeout_s` passes; returns whether it held."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        for m in members:
            m.c.poll(0.02)
    return True


def split_exactly(members: list[Subscriber], want: set[tuple[str, int]]) -> bool:
    """Every member owns partitions, and together they own each of `want` once."""
    sets = [m.assignment for m in members]
    return all(sets) and set().union(*sets) == want and sum(len(s) for s in sets) == len(want)


def resubscription(bootstrap: str, group: str, members: int, bound_s: float) -> None:
    """`members` consumers share topic A; the first one subscribes to [A, B]. Every
    member must have a new assignment, B's partitions all the first one's (it
    alone subscribes to B), within `bound_s` of the subscribe call."""
    a, b = f"{group}-a", f"{group}-b"
    create_topic(bootstrap, a, 3)
    create_topic(bootstrap, b, 3)
    parts_a = {(a, p) for p in range(3)}
    parts_b = {(b, p) for p in range(3)}
    subs = [Subscriber(bootstrap, group, f"{group}-{i}") for i in range(members)]
    try:
        for s in subs:
            s.subscribe([a])
        # The first join waits out the initial rebalance delay (3 s).
        assert poll_until(subs, lambda: split_exactly(subs, parts_a), 30), (
            f"the group never split {a}: {[sorted(s.assignment) for s in subs]}"
        )
        t0 = time.monotonic()
        subs[0].subscribe([a, b])

        def settled() -> bool:
            return (
                all(s.assigned_at > t0 for s in subs)
                and split_exactly(subs, parts_a | parts_b)
                and parts_b <= subs[0].assignment
            )

        # Poll past the bound, to tell a slow rebalance from a stalled one.
        done = poll_until(subs, settled, bound_s + 10)
        took = max(s.assigned_at for s in subs) - t0
        assert done, (
            f"no new assignment for every member within {bound_s + 10:.0f} s of the subscription change "
            f"(a join phase waiting for the rebalance timeout, max.poll.interval.ms = 300 s?): "
            f"{[(s.name, sorted(s.assignment), round(s.assigned_at - t0, 2)) for s in subs]}"
        )
        assert took <= bound_s, f"the new assignments took {took:.2f} s, more than {bound_s} s"
        print(f"{members} member(s): every new assignment {took:.3f} s after the subscription change")
        fatal = [e for s in subs for e in s.errors if e.fatal()]
        assert fatal == [], fatal
    finally:
        for s in subs:
            s.c.close()


@pytest.mark.timeout(90)
def test_lone_member_changing_its_subscription_is_assigned_within_a_second(broker):
    """A group's only member subscribes to [A, B] instead of [A]: B's partitions
    are assigned to it within 1 s.

    The member rejoins (JoinGroup with its member id and new metadata) while the
    group is Stable. It is then every member of the group, so the join phase
    ends at once, as in Kafka (hasAllMembersJoined), instead of at the rebalance
    timeout (max.poll.interval.ms, 300 s); no initial rebalance delay either,
    since the group is not empty.
    """
    require_groups(broker)
    resubscription(broker.bootstrap, "g-resubscribe-1", 1, bound_s=1.0)


@pytest.mark.timeout(90)
def test_one_of_three_members_changing_its_subscription_is_assigned_within_four_seconds(broker):
    """Three members share A; one subscribes to [A, B]: all three have their new
    assignment within 4 s.

    The member that changed rejoins at once; the other two learn of the
    rebalance from their next heartbeat (REBALANCE_IN_PROGRESS), which comes
    within heartbeat.interval.ms (librdkafka's default, 3 s) and then rejoin;
    the join phase ends with the last of them, and the sync follows. Hence the
    bound: one heartbeat interval plus 1 s for the rejoins, syncs and callbacks.
    """
    require_groups(broker)
    resubscription(broker.bootstrap, "g-resubscribe-3", 3, bound_s=4.0)
