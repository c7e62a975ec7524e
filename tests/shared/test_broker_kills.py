"""Brokers SIGKILLed and restarted under load: nothing acknowledged is lost, duplicated or reordered,
and a group's committed offsets never go backwards.

Three brokers in shared mode share one PostgreSQL and one bucket, so a killed
broker holds nothing the others need: its partitions' leadership moves to the
live ones, any broker takes produce and fetch for any partition, and a group's
coordinator moves with it. Clients are bootstrapped at different brokers and
must carry on by themselves.
"""

from __future__ import annotations

import time

import pytest

from workload import (
    GroupReader,
    OffsetWatcher,
    ProducerWorker,
    check_log,
    coordinator_of,
    create_topic,
    marks_of,
    wait_progress,
    wait_topic_everywhere,
    watermarks,
)

PARTITIONS = 6
# Records per second per producer: three producers over the kills (about
# 5 s a round, the dead broker's lease running out included) make about
# 30,000 records.
RATE = 280


@pytest.mark.timeout(240)
def test_kill_brokers_mid_load(cluster):
    """Five rounds of SIGKILL and restart, a different broker each round, under three producers.

    Three idempotent acks=all producers, each bootstrapped at a different
    broker, send numbered keyed records (spread over 6 partitions by key) at a
    steady rate. Each round SIGKILLs one broker, waits until every producer had
    a record sent after the kill acknowledged in every partition (so the dead
    broker's partitions have new leaders), starts the broker again (same id,
    same ports), and waits for the same after the restart. Afterwards a group of three consumers, each
    bootstrapped at a different broker, committing after processing, reads
    the topic: every acknowledged record is there exactly once, at the offset
    its acknowledgement named, and each producer's records are in each
    partition in the order they were sent.
    """
    t0 = time.monotonic()
    topic = "kills"
    create_topic(cluster.bootstrap(0), topic, PARTITIONS)
    wait_topic_everywhere(cluster, topic, PARTITIONS)
    producers = [ProducerWorker(i, cluster.bootstrap(i), topic, RATE) for i in range(3)]
    for p in producers:
        p.start()
    rounds = []
    try:
        wait_progress(producers, {p.producer_id: 0 for p in producers}, PARTITIONS, 30, "before the kills")
        for r in range(5):
            victim = r % 3
            marks = marks_of(producers)
            acked_before = sum(len(p.acked) for p in producers)
            cluster.kill(victim)
            took = wait_progress(producers, marks, PARTITIONS, 60, f"round {r + 1}, broker {victim + 1} killed")
            cluster.restart(victim)
            back = wait_progress(producers, marks_of(producers), PARTITIONS, 60, f"round {r + 1}, broker {victim + 1} restarted")
            rounds.append((victim + 1, acked_before, round(took, 2), round(back, 2)))
        wait_progress(producers, marks_of(producers), PARTITIONS, 60, "after the last restart")
    except BaseException:
        for p in producers:
            p.stop(flush_s=5)
        raise
    remaining = [p.stop(flush_s=90) for p in producers]
    produce_s = time.monotonic() - t0
    assert remaining == [0, 0, 0], f"records without a delivery report 90 s after the load stopped: {remaining}"

    acked = sum(len(p.acked) for p in producers)
    print(
        f"\n{acked} records acknowledged; kill rounds (broker, acknowledged before, s to progress in every "
        f"partition after the kill, after the restart) {rounds}; produce+kills {produce_s:.1f} s"
    )
    # What a reader has to fetch: the objects and each partition's batches, from the catalog.
    print(
        "objects:", cluster.sql("select count(*) from veltrix_objects"),
        "; per partition (batches, objects):",
        cluster.sql(f"select partition, count(*), count(distinct object_key) from veltrix_batches where topic = '{topic}' group by 1 order by 1").replace("\n", " "),
    )
    # Every broker merges small objects a second after their commit
    # (cluster.py): batches moved between objects under the kills, and read
    # back below like any others.
    merged = cluster.sql("select count(*) from veltrix_objects where key like '%-merge-%'").strip()
    assert merged.isdigit() and int(merged) > 0, f"no object was merged during the load: {merged}"
    ends = watermarks(cluster.bootstrap(), topic, PARTITIONS)
    t1 = time.monotonic()
    reader = GroupReader([b.bootstrap for b in cluster.brokers], topic, "kills-readers")
    watcher = OffsetWatcher(cluster, "kills-readers", topic, PARTITIONS)
    reader.start()
    try:
        end = time.monotonic() + 90
        while not (reader.covered(ends) and all(watcher.latest.get(p) == e for p, e in ends.items() if e)):
            assert time.monotonic() < end, (
                f"the group did not read and commit everything within 90 s: read {reader.read_counts()}, "
                f"committed {watcher.latest}, ends {ends}; consume errors {reader.consume_errors[:3]}, "
                f"commit failures {reader.commit_failures[:3]}, last watcher error {watcher.last_error}"
            )
            watcher.poll_once()
            time.sleep(0.2)
    finally:
        reader.stop()
    read_s = time.monotonic() - t1

    problems, numbers = check_log(reader.records, ends, producers)
    print(
        f"{numbers}; group read {read_s:.1f} s, redelivered {reader.redelivered}, "
        f"commit failures {len(reader.commit_failures)}"
    )
    assert reader.served_differently == [], f"one offset served with different bytes: {reader.served_differently[:5]}"
    assert problems == [], "\n".join(problems)
    fatal = [e for p in producers for e in p.fatal_errors()]
    assert fatal == [], f"fatal producer errors: {fatal[:3]}"
    failed = {p.producer_id: list(p.failed.items())[:3] for p in producers if p.failed}
    assert failed == {}, f"deliveries failed (message.timeout.ms is 120 s): {failed}"


@pytest.mark.timeout(240)
def test_committed_offsets_never_go_backwards(cluster):
    """A group reads while brokers, the group's coordinator among them, are SIGKILLed.

    18,000 records are produced first. Three consumers of one group, each
    bootstrapped at a different broker, read them at a steady pace, committing
    after each batch. Four rounds: the coordinator (found with
    DescribeGroups), another broker, the coordinator again, another broker,
    each SIGKILLed until the group's committed offsets moved on, then started
    again. A watcher asks for the committed offsets through a running broker
    ten times a second: no partition's offset may ever be lower than one seen
    before, or vanish. The group then reads everything, and its committed
    offsets reach each partition's end.
    """
    t0 = time.monotonic()
    topic = "offsets"
    group = "offsets-readers"
    create_topic(cluster.bootstrap(0), topic, PARTITIONS)
    wait_topic_everywhere(cluster, topic, PARTITIONS)
    producers = [ProducerWorker(i, cluster.bootstrap(i), topic, 3000) for i in range(3)]
    for p in producers:
        p.start()
    try:
        deadline = time.monotonic() + 60
        while sum(p.sent for p in producers) < 18_000:
            assert time.monotonic() < deadline, f"producing 18,000 records took over 60 s: sent {[p.sent for p in producers]}"
            time.sleep(0.05)
    finally:
        remaining = [p.stop(flush_s=60) for p in producers]
    assert remaining == [0, 0, 0], f"records without a delivery report: {remaining}"
    ends = watermarks(cluster.bootstrap(), topic, PARTITIONS)
    total = sum(ends.values())

    # About 40 s of reading at this pace, so the kills happen while the group reads.
    reader = GroupReader([b.bootstrap for b in cluster.brokers], topic, group, rate=total / 3 / 40, batch=100)
    watcher = OffsetWatcher(cluster, group, topic, PARTITIONS)
    reader.start()
    watcher.start()
    rounds = []
    try:
        end = time.monotonic() + 30
        while watcher.total() == 0:
            assert time.monotonic() < end, f"no committed offset seen within 30 s (last error: {watcher.last_error})"
            time.sleep(0.05)
        for r in range(4):
            coordinator = coordinator_of(cluster, group)
            if r % 2 == 0:
                victim = cluster.brokers.index(cluster.broker_by_id(coordinator))
            else:
                others = [i for i, b in enumerate(cluster.brokers) if b.broker_id != coordinator]
                victim = others[(r // 2) % len(others)]
            before = watcher.total()
            cluster.kill(victim)
            end = time.monotonic() + 60
            while watcher.total() <= before:
                assert time.monotonic() < end, (
                    f"round {r + 1} (broker {victim + 1} killed, coordinator {coordinator}): committed offsets did not move "
                    f"within 60 s: {watcher.latest}; failed polls {watcher.failed_polls}, last error {watcher.last_error}; "
                    f"commit failures {reader.commit_failures[-3:]}"
                )
                time.sleep(0.05)
            cluster.restart(victim)
            rounds.append((r + 1, f"broker {victim + 1}", f"coordinator {coordinator}", before))
        end = time.monotonic() + 120
        while not (reader.covered(ends) and all(watcher.latest.get(p) == e for p, e in ends.items() if e)):
            assert time.monotonic() < end, (
                f"the group did not finish within 120 s: read {reader.read_counts()}, committed {watcher.latest}, ends {ends}"
            )
            time.sleep(0.1)
    finally:
        watcher.stop()
        reader.stop()
    elapsed = time.monotonic() - t0
    print(
        f"\n{total} records, rounds {rounds}; watcher: {watcher.polls} polls ({watcher.failed_polls} failed); "
        f"redelivered {reader.redelivered}, commit failures {len(reader.commit_failures)}; {elapsed:.1f} s"
    )
    assert watcher.regressions == [], f"{len(watcher.regressions)} committed offsets went backwards: {watcher.regressions[:10]}"
    assert reader.served_differently == [], f"one offset served with different bytes: {reader.served_differently[:5]}"
    problems, numbers = check_log(reader.records, ends, producers)
    assert problems == [], "\n".join(problems)
