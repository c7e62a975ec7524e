"""PostgreSQL restarted and the bucket frozen under load: nothing acknowledged is lost, and the
producers carry on by themselves once the service is back.

A batch is acknowledged only after its object is in the bucket and its
offsets are committed in PostgreSQL; while either is away, produce requests
get retriable errors and an idempotent producer retries them. Nobody restarts
a broker or a client here: they must recover on their own.
"""

from __future__ import annotations

import signal
import time

import pytest

from workload import (
    ProducerWorker,
    check_log,
    create_topic,
    marks_of,
    read_all,
    wait_progress,
    wait_topic_everywhere,
    watermarks,
)

PARTITIONS = 6
RATE = 250
# How long after the service is back every producer must have had a record
# sent after that moment acknowledged, in every partition.
RESUME_DEADLINE_S = 30


def start_producers(cluster, topic: str) -> list[ProducerWorker]:
    create_topic(cluster.bootstrap(0), topic, PARTITIONS)
    wait_topic_everywhere(cluster, topic, PARTITIONS)
    producers = [ProducerWorker(i, cluster.bootstrap(i), topic, RATE) for i in range(3)]
    for p in producers:
        p.start()
    return producers


def finish_and_check(cluster, topic: str, producers: list[ProducerWorker], t0: float, what: str) -> None:
    """Stops the producers, reads the whole topic, and checks it against the acknowledgements."""
    remaining = [p.stop(flush_s=90) for p in producers]
    assert remaining == [0, 0, 0], f"records without a delivery report 90 s after the load stopped: {remaining}"
    ends = watermarks(cluster.bootstrap(), topic, PARTITIONS)
    records = read_all(cluster.bootstrap(), topic, ends, 60)
    problems, numbers = check_log(records, ends, producers)
    print(f"\n{what}: {numbers}; {time.monotonic() - t0:.1f} s")
    assert problems == [], "\n".join(problems)
    fatal = [e for p in producers for e in p.fatal_errors()]
    assert fatal == [], f"fatal producer errors: {fatal[:3]}"
    failed = {p.producer_id: list(p.failed.items())[:3] for p in producers if p.failed}
    assert failed == {}, f"deliveries failed (message.timeout.ms is 120 s): {failed}"


@pytest.mark.timeout(180)
def test_postgres_restart_mid_load(cluster):
    """PostgreSQL stopped and started again twice under three producers.

    First a fast shutdown (SIGINT: connections cut, clean exit), then a crash
    (SIGKILL of the postmaster), each followed by a start on the same port and
    data directory after 2 s down. After each, every producer must have a
    record sent after the restart acknowledged within 30 s, with no client or
    broker restarted. Then every acknowledged record is in the topic exactly
    once, where its acknowledgement said, in each producer's order.
    """
    t0 = time.monotonic()
    topic = "pg-restart"
    producers = start_producers(cluster, topic)
    outages = []
    try:
        wait_progress(producers, {p.producer_id: 0 for p in producers}, PARTITIONS, 30, "before the restart")
        for sig in (signal.SIGINT, signal.SIGKILL):
            acked = sum(len(p.acked) for p in producers)
            cluster.restart_postgres(sig, down_s=2.0)
            marks = marks_of(producers)
            took = wait_progress(producers, marks, PARTITIONS, RESUME_DEADLINE_S, f"after PostgreSQL's restart ({sig.name})")
            outages.append((sig.name, acked, round(took, 2)))
        wait_progress(producers, marks_of(producers), PARTITIONS, 30, "at the end")
    except BaseException:
        for p in producers:
            p.stop(flush_s=5)
        raise
    print(f"\nrestarts (signal, acknowledged before, s to resume) {outages}", end="")
    finish_and_check(cluster, topic, producers, t0, "PostgreSQL restarted")


@pytest.mark.timeout(180)
def test_bucket_frozen_10s(cluster):
    """moto SIGSTOPped for 10 s under three producers, then SIGCONTed.

    While the bucket hangs no object can be written, so nothing new may be
    acknowledged; the brokers' PUTs time out and the producers retry. After
    SIGCONT every producer must have a record sent after that moment
    acknowledged within 30 s, with no client or broker restarted. Then every
    acknowledged record is in the topic exactly once, where its
    acknowledgement said, in each producer's order.
    """
    t0 = time.monotonic()
    topic = "bucket-frozen"
    producers = start_producers(cluster, topic)
    try:
        wait_progress(producers, {p.producer_id: 0 for p in producers}, PARTITIONS, 30, "before the freeze")
        acked_before = sum(len(p.acked) for p in producers)
        cluster.freeze_bucket(10)
        acked_during = sum(len(p.acked) for p in producers) - acked_before
        marks = marks_of(producers)
        took = wait_progress(producers, marks, PARTITIONS, RESUME_DEADLINE_S, "after the bucket came back")
        wait_progress(producers, marks_of(producers), PARTITIONS, 30, "at the end")
    except BaseException:
        for p in producers:
            p.stop(flush_s=5)
        raise
    print(
        f"\nfrozen 10 s: {acked_before} acknowledged before, {acked_during} acknowledged during the freeze "
        f"(records sent before it, answered as it began or late), resumed in {took:.2f} s",
        end="",
    )
    finish_and_check(cluster, topic, producers, t0, "bucket frozen 10 s")
