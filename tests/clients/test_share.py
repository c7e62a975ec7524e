"""Share groups (KIP-932) with confluent-kafka's ShareConsumer, each consumer
its own process (share_worker.py).

Every test checks what the queue promises from the consumers' own records:
which records were delivered, with which delivery count, how each was
acknowledged, and which acknowledgements the broker confirmed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.request import urlopen

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, ResourceType

from harness import _die_with_parent

WORKER = Path(__file__).with_name("share_worker.py")
RECORDS = int(os.environ.get("VELTRIX_SHARE_RECORDS", "200000"))
PARTITIONS = 6
API_SHARE_FETCH = 78


@dataclass
class Delivery:
    partition: int
    offset: int
    count: int
    ack: str
    t: float
    worker: int


@dataclass
class Log:
    deliveries: list[Delivery] = field(default_factory=list)
    # (partition, offset) -> time the broker confirmed the acknowledgement
    confirmed: dict[tuple[int, int], float] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def by_record(self) -> dict[tuple[int, int], list[Delivery]]:
        out: dict[tuple[int, int], list[Delivery]] = defaultdict(list)
        for d in sorted(self.deliveries, key=lambda d: d.t):
            out[(d.partition, d.offset)].append(d)
        return out


def parse(paths: list[Path]) -> Log:
    log = Log()
    for i, path in enumerate(paths):
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            parts = line.split()
            if not parts:
                continue
            if parts[0] == "r" and len(parts) == 6:
                log.deliveries.append(
                    Delivery(int(parts[1]), int(parts[2]), int(parts[3]), parts[4], float(parts[5]), i)
                )
            elif parts[0] == "ok" and len(parts) == 4:
                key = (int(parts[1]), int(parts[2]))
                log.confirmed[key] = min(float(parts[3]), log.confirmed.get(key, float("inf")))
            elif parts[0] == "fail":
                log.failed.append(line)
            elif parts[0] == "error":
                log.errors.append(line)
    return log


class Workers:
    """Share consumer processes writing to files under `tmp`."""

    def __init__(self, tmp: Path, bootstrap: str, topic: str, group: str):
        self.tmp, self.bootstrap, self.topic, self.group = tmp, bootstrap, topic, group
        self.stop_file = tmp / f"{group}.stop"
        self.procs: list[subprocess.Popen] = []
        self.paths: list[Path] = []
        self.killed: set[int] = set()

    def start(self, n: int, *extra: str) -> list[int]:
        started = []
        for _ in range(n):
            i = len(self.procs)
            path = self.tmp / f"{self.group}-{i}.txt"
            err = open(self.tmp / f"{self.group}-{i}.stderr", "wb")
            args = [sys.executable, str(WORKER), self.bootstrap, self.topic, self.group, str(path), str(self.stop_file)]
            self.procs.append(
                subprocess.Popen(
                    args + list(extra), stdin=subprocess.DEVNULL, stdout=err, stderr=err, preexec_fn=_die_with_parent
                )
            )
            err.close()
            self.paths.append(path)
            started.append(i)
        return started

    def log(self) -> Log:
        return parse(self.paths)

    def kill(self, i: int) -> None:
        self.procs[i].kill()
        self.procs[i].wait(timeout=10)
        self.killed.add(i)

    def stop(self, timeout_s: float = 60.0) -> list[str]:
        self.stop_file.touch()
        problems = []
        deadline = time.monotonic() + timeout_s
        for i, proc in enumerate(self.procs):
            try:
                code = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
                problems.append(f"worker {i} did not exit in time")
                continue
            if i not in self.killed and code not in (0, 3):
                err = (self.tmp / f"{self.group}-{i}.stderr").read_text(errors="replace")
                problems.append(f"worker {i} exited with {code}:\n{err[-3000:]}")
        return problems

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


def setup(bootstrap: str, topic: str, group: str, records: int, **settings: str) -> None:
    """Creates the topic, sets the group's settings (earliest first), fills it."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, PARTITIONS)])[topic].result(15)
    configs = {"share.auto.offset.reset": "earliest", **settings}
    resource = ConfigResource(
        ResourceType.GROUP,
        group,
        incremental_configs=[
            ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in configs.items()
        ],
    )
    admin.incremental_alter_configs([resource])[resource].result(15)
    errors: list = []
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True, "acks": "all"})

    def done(err, _msg):
        if err is not None:
            errors.append(err)

    for i in range(records):
        while True:
            try:
                p.produce(topic, value=b"v%d" % i, partition=i % PARTITIONS, on_delivery=done)
                break
            except BufferError:
                # The client's queue is full: let deliveries drain it.
                p.poll(0.1)
        if i % 10000 == 0:
            p.poll(0)
    assert p.flush(60) == 0
    assert not errors, errors[:5]


def wait_until(predicate, timeout_s: float, what: str, explain=None) -> None:
    """Polls `predicate` until it holds or `timeout_s` passed; `explain()`,
    if given, says what was seen when it did not."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            seen = f": {explain()}" if explain is not None else ""
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}{seen}")
        time.sleep(0.2)


def all_records(records: int) -> set[tuple[int, int]]:
    per = [records // PARTITIONS + (1 if p < records % PARTITIONS else 0) for p in range(PARTITIONS)]
    return {(p, o) for p in range(PARTITIONS) for o in range(per[p])}


def done_records(log: Log) -> set[tuple[int, int]]:
    """Records the broker confirmed as accepted or rejected."""
    final = {(d.partition, d.offset) for d in log.deliveries if d.ack in ("accept", "reject")}
    return final & set(log.confirmed)


def group_view(broker, group: str, topic: str) -> dict[int, dict] | None:
    """The broker's own account of `group` on `topic`, by partition: the
    group's start offset, the log's end, the records in flight and the dead
    letters still owed. None while the broker does not answer (restarting)."""
    base = f"http://127.0.0.1:{broker.http_port}/api/v1"
    try:
        with urlopen(f"{base}/groups/{group}", timeout=5) as r:
            g = json.load(r)
        with urlopen(f"{base}/topics/{topic}", timeout=5) as r:
            ends = {p["partition"]: p["end"] for p in json.load(r)["partitions"]}
    except OSError:
        return None
    view = {p: {"end": end} for p, end in ends.items()}
    for p in g.get("partitions", []):
        if p["topic"] == topic:
            view[p["partition"]].update(
                start=p["start_offset"], in_flight=p["in_flight"], letters_owed=p["dead_letters_pending"]
            )
    return view


def group_settled(broker, group: str, topic: str) -> bool:
    """Whether the broker holds every record of `topic` as done for `group`:
    its start offset at the end of each partition, nothing in flight, no
    dead letter owed."""
    view = group_view(broker, group, topic)
    return view is not None and all(
        v.get("start") == v["end"] and v.get("in_flight") == 0 and v.get("letters_owed") == 0 for v in view.values()
    )


def unconfirmed_acknowledgements(log: Log, expected: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """The records of `expected` acknowledged (accepted or rejected) whose
    confirmation never came. A broker killed after making an acknowledgement
    durable and before answering leaves the consumer without confirmation and
    the record done: the one outcome a crash may leave ambiguous. A record of
    `expected` never acknowledged at all is not among them."""
    acknowledged = {(d.partition, d.offset) for d in log.deliveries if d.ack in ("accept", "reject")}
    return (expected & acknowledged) - done_records(log)


def progress_report(workers: Workers, broker, group: str, topic: str, expected: set) -> str:
    """What a stalled run looks like: records not done by partition, the
    broker's view of the group, the consumers' last errors."""
    log = workers.log()
    missing = expected - done_records(log)
    by_partition: dict[int, list[int]] = defaultdict(list)
    for p, o in sorted(missing):
        by_partition[p].append(o)
    unconfirmed = unconfirmed_acknowledgements(log, expected)
    return (
        f"{len(missing)} records not done ({len(unconfirmed)} acknowledged without confirmation), "
        f"first by partition {dict((p, os[:5]) for p, os in by_partition.items())}; "
        f"broker's view {group_view(broker, group, topic)}; last errors {(log.errors + log.failed)[-5:]}"
    )


def wait_for_kill_rounds(workers: Workers, broker, group: str, topic: str, expected: set, kills: int = 5) -> int:
    """Kills the broker `kills` times, each after the consumers did another
    eighth of the records, then waits until every record is done. A record
    counts as done when the consumer saw it confirmed or, once the broker
    holds the whole group as done, when it was acknowledged and the answer
    lost to a kill. Returns how many kills were made."""
    made = 0
    records = len(expected)

    def done_enough(target: int) -> bool:
        return len(done_records(workers.log())) >= target or group_settled(broker, group, topic)

    def explain() -> str:
        return progress_report(workers, broker, group, topic, expected)

    for _ in range(kills):
        target = min(len(done_records(workers.log())) + records // 8, records)
        wait_until(lambda: done_enough(target), 120, "progress", explain)
        broker.kill()
        broker.start(same_port=True)
        made += 1
    wait_until(lambda: done_enough(records), 180, "every record to be acknowledged", explain)
    # And the broker agrees: nothing left in flight, owed or behind.
    wait_until(lambda: group_settled(broker, group, topic), 30, "the broker to hold every record done", explain)
    return made


def assert_every_record_done(log: Log, expected: set[tuple[int, int]]) -> None:
    """Every record confirmed, or acknowledged with its answer lost to a kill."""
    unconfirmed = unconfirmed_acknowledgements(log, expected)
    never = expected - done_records(log) - unconfirmed
    assert not never, f"{len(never)} records never acknowledged: {sorted(never)[:5]}"


@pytest.fixture
def share_broker(start_broker):
    broker = start_broker()
    if not broker.serves(API_SHARE_FETCH):
        pytest.skip("the broker does not serve ShareFetch")
    return broker


def run_until_done(workers: Workers, expected: set, timeout_s: float) -> Log:
    try:
        wait_until(lambda: done_records(workers.log()) >= expected, timeout_s, "every record to be acknowledged")
    finally:
        problems = workers.stop()
        workers.kill_all()
    assert not problems, problems
    return workers.log()


def test_three_consumers_accept_every_record_exactly_once(share_broker, tmp_path):
    setup(share_broker.bootstrap, "q", "sg", RECORDS)
    workers = Workers(tmp_path, share_broker.bootstrap, "q", "sg")
    workers.start(3)
    log = run_until_done(workers, all_records(RECORDS), 240)
    accepted = [(d.partition, d.offset) for d in log.deliveries if d.ack == "accept"]
    assert len(accepted) == RECORDS, f"{len(accepted) - RECORDS} duplicates"
    assert set(accepted) == all_records(RECORDS)
    assert all(d.count == 1 for d in log.deliveries)
    # The work was shared.
    per_worker = defaultdict(int)
    for d in log.deliveries:
        per_worker[d.worker] += 1
    assert len(per_worker) == 3, dict(per_worker)
    assert not log.failed, log.failed[:5]


def test_released_records_come_back_once_with_delivery_count_two(share_broker, tmp_path):
    records = min(RECORDS, 60000)
    setup(share_broker.bootstrap, "q", "sg", records)
    workers = Workers(tmp_path, share_broker.bootstrap, "q", "sg")
    workers.start(3, "--release-every", "100")
    log = run_until_done(workers, all_records(records), 180)
    for key, ds in log.by_record().items():
        if key[1] % 100 == 0:
            assert [(d.count, d.ack) for d in ds] == [(1, "release"), (2, "accept")], (key, ds)
        else:
            assert [(d.count, d.ack) for d in ds] == [(1, "accept")], (key, ds)


def test_rejected_records_are_archived_never_redelivered(share_broker, tmp_path):
    records = min(RECORDS, 60000)
    setup(share_broker.bootstrap, "q", "sg", records)
    workers = Workers(tmp_path, share_broker.bootstrap, "q", "sg")
    workers.start(3, "--reject-every", "100")
    log = run_until_done(workers, all_records(records), 180)
    for key, ds in log.by_record().items():
        want = "reject" if key[1] % 100 == 0 else "accept"
        assert [(d.count, d.ack) for d in ds] == [(1, want)], (key, ds)


def test_records_of_a_killed_consumer_come_back_to_the_others(share_broker, tmp_path):
    records = 6000
    setup(share_broker.bootstrap, "q", "sg", records, **{"share.record.lock.duration.ms": "2000"})
    workers = Workers(tmp_path, share_broker.bootstrap, "q", "sg")
    [holder] = workers.start(1, "--hold")
    wait_until(lambda: any(d.worker == holder for d in workers.log().deliveries), 60, "the holder to acquire records")
    held = {(d.partition, d.offset) for d in workers.log().deliveries if d.worker == holder}
    workers.kill(holder)
    workers.start(2)
    log = run_until_done(workers, all_records(records), 120)
    for key in held:
        ds = log.by_record()[key]
        assert [d.count for d in ds] == [1, 2], (key, ds)
        assert ds[1].worker != holder and ds[1].ack == "accept"


def test_a_poison_record_is_archived_after_the_delivery_limit(start_broker, tmp_path):
    # A crashed consumer keeps its partitions until its session times out
    # (45 s by default, as in Kafka); the poison crashes three consumers in a
    # row, so a short timeout keeps the test to seconds per crash.
    config = tmp_path / "veltrix.toml"
    config.write_text("[share]\nsession_timeout_ms = 6000\nheartbeat_interval_ms = 1000\n")
    share_broker = start_broker("--config", str(config))
    if not share_broker.serves(API_SHARE_FETCH):
        pytest.skip("the broker does not serve ShareFetch")
    records = 600
    setup(
        share_broker.bootstrap,
        "q",
        "sg",
        records,
        **{"share.record.lock.duration.ms": "2000", "share.delivery.count.limit": "3"},
    )
    workers = Workers(tmp_path, share_broker.bootstrap, "q", "sg")
    poison = (0, 37)
    expected = all_records(records) - {poison}
    deadline = time.monotonic() + 120
    # Each crash takes a worker down; another is started in its place.
    workers.start(2, "--poison", "0:37")
    while not done_records(workers.log()) >= expected:
        assert time.monotonic() < deadline, "timed out waiting for the records around the poison"
        for i, proc in enumerate(workers.procs):
            if proc.poll() == 3 and i not in workers.killed:
                workers.killed.add(i)
                workers.start(1, "--poison", "0:37")
        time.sleep(0.2)
    # The poison record is not handed out again: wait out one more lock period.
    time.sleep(3)
    problems = workers.stop()
    workers.kill_all()
    assert not problems, problems
    log = workers.log()
    poison_deliveries = log.by_record()[poison]
    assert [d.count for d in poison_deliveries] == [1, 2, 3], poison_deliveries


def test_broker_killed_five_times_loses_no_acknowledgement(share_broker, tmp_path):
    records = min(RECORDS, 60000)
    setup(share_broker.bootstrap, "q", "sg", records, **{"share.record.lock.duration.ms": "5000"})
    workers = Workers(tmp_path, share_broker.bootstrap, "q", "sg")
    workers.start(3)
    expected = all_records(records)
    kills = 0
    try:
        kills = wait_for_kill_rounds(workers, share_broker, "sg", "q", expected)
    finally:
        problems = workers.stop()
        workers.kill_all()
    assert kills == 5
    assert not problems, problems
    log = workers.log()
    for key, ds in log.by_record().items():
        counts = [d.count for d in ds]
        assert counts == sorted(counts) and len(set(counts)) == len(counts), (key, ds)
        confirmed_at = log.confirmed.get(key)
        if confirmed_at is not None:
            late = [d for d in ds if d.t > confirmed_at]
            assert not late, f"{key} accepted (confirmed at {confirmed_at}) and delivered again: {late}"
    assert_every_record_done(log, expected)


def test_delete_groups_deletes_a_share_group_once_its_consumer_has_left(share_broker, tmp_path):
    """DeleteGroups (AdminClient.delete_consumer_groups) deletes share groups
    too, never one with a member. confluent-kafka 2.16 has no share-group
    offsets methods (librdkafka sends no Describe-, Alter- or
    DeleteShareGroupOffsets): those are tested over the wire in
    crates/veltrix-kafka/tests/it/share_offsets.rs."""
    records = 300
    setup(share_broker.bootstrap, "q", "sg", records)
    workers = Workers(tmp_path, share_broker.bootstrap, "q", "sg")
    workers.start(1)
    admin = AdminClient({"bootstrap.servers": share_broker.bootstrap})

    def delete() -> KafkaError | None:
        try:
            admin.delete_consumer_groups(["sg"])["sg"].result(15)
            return None
        except KafkaException as e:
            return e.args[0]

    try:
        wait_until(lambda: done_records(workers.log()) >= all_records(records), 60, "every record to be acknowledged")
        refused = delete()
        assert refused is not None and refused.code() == KafkaError.NON_EMPTY_GROUP, refused
    finally:
        problems = workers.stop()
        workers.kill_all()
    assert not problems, problems

    # A consumer that closes leaves at once; one that did not would be
    # removed when its session times out.
    def deleted() -> bool:
        err = delete()
        if err is not None and err.code() != KafkaError.NON_EMPTY_GROUP:
            raise AssertionError(f"deleting the share group: {err}")
        return err is None

    wait_until(deleted, 60, "the share group to be deleted")
    again = delete()
    assert again is not None and again.code() == KafkaError.GROUP_ID_NOT_FOUND, again
