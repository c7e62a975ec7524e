"""A share group read while brokers are SIGKILLed: no accepted record is delivered again, none is lost.

Three brokers in shared mode share one PostgreSQL and one bucket. Each
share-partition (the group's view of one partition) is served by its
partition's leader, its state (start offset, records in flight, delivery
counts) stored in PostgreSQL before any answer that depends on it; a broker
that takes a partition over loads that state, and a broker whose copy went
stale has its changes refused. Consumers are confluent-kafka ShareConsumers,
each its own process (tests/clients/share_worker.py), bootstrapped at
different brokers.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from cluster import _die_with_parent
from workload import ProducerWorker, create_topic, wait_topic_everywhere

WORKER = Path(__file__).resolve().parent.parent / "clients" / "share_worker.py"
PARTITIONS = 6
# Records per second per producer: the consumers keep up with three of them.
RATE = 100
LOCK_MS = 5_000


def set_group(bootstrap: str, group: str, **settings: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    resource = ConfigResource(
        ResourceType.GROUP,
        group,
        incremental_configs=[
            ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in settings.items()
        ],
    )
    admin.incremental_alter_configs([resource])[resource].result(15)


class Log:
    """What the workers wrote: deliveries (partition, offset) -> [(count, ack, t)], confirmations -> t."""

    def __init__(self, paths: list[Path]):
        self.deliveries: dict[tuple[int, int], list[tuple[int, str, float]]] = defaultdict(list)
        self.confirmed: dict[tuple[int, int], float] = {}
        self.errors: list[str] = []
        for path in paths:
            if not path.exists():
                continue
            for line in path.read_text().splitlines():
                parts = line.split()
                if parts and parts[0] == "r" and len(parts) == 6:
                    key = (int(parts[1]), int(parts[2]))
                    self.deliveries[key].append((int(parts[3]), parts[4], float(parts[5])))
                elif parts and parts[0] == "ok" and len(parts) == 4:
                    key = (int(parts[1]), int(parts[2]))
                    self.confirmed[key] = min(float(parts[3]), self.confirmed.get(key, float("inf")))
                elif parts and parts[0] in ("error", "fail"):
                    self.errors.append(line)

    def done(self) -> set[tuple[int, int]]:
        return {k for k in self.confirmed if any(a == "accept" for _, a, _ in self.deliveries.get(k, []))}

    def unconfirmed(self) -> set[tuple[int, int]]:
        """Records accepted whose confirmation never came: a broker killed after making the
        acknowledgement durable and before answering leaves them done, unconfirmed, and never
        delivered again (the one outcome a kill may leave ambiguous; the check that nothing is
        left to hand out at the end tells them from records stuck undelivered)."""
        accepted = {k for k, ds in self.deliveries.items() if any(a == "accept" for _, a, _ in ds)}
        return accepted - self.done()

    def settled(self) -> set[tuple[int, int]]:
        return self.done() | self.unconfirmed()


class Workers:
    def __init__(self, tmp: Path, bootstraps: list[str], topic: str, group: str):
        self.tmp, self.topic, self.group = tmp, topic, group
        self.bootstraps = bootstraps
        self.stop_file = tmp / f"{group}.stop"
        self.procs: list[subprocess.Popen] = []
        self.paths: list[Path] = []

    def start(self, n: int, *extra: str) -> None:
        for _ in range(n):
            i = len(self.procs)
            path = self.tmp / f"{self.group}-{i}.txt"
            err = open(self.tmp / f"{self.group}-{i}.stderr", "wb")
            args = [
                sys.executable, str(WORKER), self.bootstraps[i % len(self.bootstraps)], self.topic, self.group,
                str(path), str(self.stop_file), *extra,
            ]
            self.procs.append(
                subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=err, stderr=err, preexec_fn=_die_with_parent)
            )
            err.close()
            self.paths.append(path)

    def log(self) -> Log:
        return Log(self.paths)

    def stop(self) -> list[str]:
        self.stop_file.touch()
        problems = []
        for i, proc in enumerate(self.procs):
            try:
                code = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
                problems.append(f"worker {i} did not exit in time")
                continue
            if code not in (0, 3):
                err = (self.tmp / f"{self.group}-{i}.stderr").read_text(errors="replace")
                problems.append(f"worker {i} exited with {code}:\n{err[-2000:]}")
        return problems


def settle_unconfirmed(workers: Workers) -> None:
    """An acceptance whose answer a kill lost and that the broker had not stored comes back once
    its lock runs out, and is then accepted and confirmed: waits until the unconfirmed records
    have not changed for a lock's duration and more (at most two minutes)."""
    end = time.monotonic() + 120
    last, since = workers.log().unconfirmed(), time.monotonic()
    while time.monotonic() - since < LOCK_MS / 1000 + 5 and time.monotonic() < end:
        time.sleep(0.5)
        now = workers.log().unconfirmed()
        if now != last:
            last, since = now, time.monotonic()


def wait_done(workers: Workers, target: int, deadline_s: float, what: str) -> None:
    """Until `target` records are accepted (confirmed, or with their answer lost to a kill)."""
    end = time.monotonic() + deadline_s
    while len(workers.log().settled()) < target:
        if time.monotonic() > end:
            log = workers.log()
            raise AssertionError(
                f"{what}: {len(log.settled())} of {target} records accepted ({len(log.unconfirmed())} of them "
                f"without confirmation) within {deadline_s} s; last errors {log.errors[-5:]}"
            )
        time.sleep(0.2)


@pytest.mark.timeout(300)
def test_share_group_through_broker_kills(cluster, tmp_path):
    """Five rounds, a different broker SIGKILLed each, while producers write and three share consumers accept.

    Three idempotent producers, bootstrapped at different brokers, write at a
    steady pace, and three share consumers (each its own process,
    bootstrapped at a different broker) accept what they get. Each round
    waits until the consumers accepted (and had confirmed) more records,
    SIGKILLs a broker, waits for more while it is down (its partitions move
    to the live brokers, which load their share state from PostgreSQL),
    then starts it again. Afterwards: every acknowledged record was accepted
    and confirmed; no record was delivered again after its acceptance was
    confirmed; each record's delivery counts only grew; and a consumer
    started afterwards, for longer than a record's lock, gets nothing (no
    record was left in flight or available).
    """
    topic, group = "shq", "shg"
    create_topic(cluster.bootstrap(0), topic, PARTITIONS)
    wait_topic_everywhere(cluster, topic, PARTITIONS)
    set_group(
        cluster.bootstrap(1), group, **{"share.auto.offset.reset": "earliest", "share.record.lock.duration.ms": str(LOCK_MS)}
    )
    bootstraps = [b.bootstrap for b in cluster.brokers]
    producers = [ProducerWorker(i, bootstraps[i], topic, RATE) for i in range(3)]
    workers = Workers(tmp_path, bootstraps, topic, group)
    for p in producers:
        p.start()
    workers.start(3)
    rounds = []
    t0 = time.monotonic()
    try:
        for r in range(5):
            victim = r % 3
            wait_done(workers, len(workers.log().settled()) + 1_000, 90, f"round {r + 1}, before the kill")
            cluster.kill(victim)
            wait_done(workers, len(workers.log().settled()) + 500, 90, f"round {r + 1}, broker {victim + 1} down")
            cluster.restart(victim)
            rounds.append((victim + 1, len(workers.log().done())))
    finally:
        remaining = [p.stop(flush_s=90) for p in producers]
    try:
        assert remaining == [0, 0, 0], f"records without a delivery report: {remaining}"
        expected = {at for p in producers for at in p.acked.values()}
        wait_done(workers, len(expected), 120, "after the producers stopped")
        settle_unconfirmed(workers)
    finally:
        problems = workers.stop()
    elapsed = time.monotonic() - t0
    assert not problems, problems
    log = workers.log()
    redelivered = sum(1 for ds in log.deliveries.values() if len(ds) > 1)
    print(
        f"\n{len(expected)} records; rounds (broker killed, records done after it) {rounds}; "
        f"{redelivered} delivered more than once; {len(log.unconfirmed())} accepted without confirmation; "
        f"{elapsed:.1f} s; share states (partition, start, claim): "
        + cluster.sql(f"select partition, start_offset, claim from veltrix_share_states where group_id = '{group}' order by 1").replace("\n", " ")
    )
    assert expected <= log.settled(), f"not accepted: {sorted(expected - log.settled())[:5]}"
    for key, ds in log.deliveries.items():
        counts = [c for c, _, _ in sorted(ds, key=lambda d: d[2])]
        assert counts == sorted(counts) and len(set(counts)) == len(counts), (key, ds)
        confirmed_at = log.confirmed.get(key)
        late = [d for d in ds if confirmed_at is not None and d[2] > confirmed_at]
        assert not late, f"{key} accepted (confirmed at {confirmed_at}) and delivered again: {late}"

    # Nothing is left to hand out: a new member gets nothing for longer than a lock.
    after = Workers(tmp_path / "after", bootstraps, topic, group)
    after.tmp.mkdir()
    after.start(1)
    watch_until = time.monotonic() + LOCK_MS / 1000 + 5
    try:
        while time.monotonic() < watch_until and not after.log().deliveries:
            time.sleep(0.2)
    finally:
        problems = after.stop()
    late = after.log().deliveries
    assert not late, f"{len(late)} records handed out after every one was accepted: {sorted(late)[:5]}"
    assert not problems, problems
