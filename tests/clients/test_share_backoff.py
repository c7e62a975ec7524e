"""Retries on share groups with confluent-kafka's ShareConsumer: a record
released on every delivery comes back after a backoff that grows as the
group's settings say, while the records behind it flow."""

from __future__ import annotations

import time
import urllib.request

from test_dead_letters import headers_of, read_letters
from test_share import API_SHARE_FETCH, Workers, all_records, done_records, setup

# The group's settings: waits of 0.5, 1, 2, 4 and 4 s after deliveries 1 to 5.
BACKOFF_INITIAL_MS = 500
BACKOFF_MULTIPLIER = 2
BACKOFF_MAX_MS = 4000
DELIVERIES_MAX = 6
LOCK_MS = 2000


def expected_wait_s(deliveries: int) -> float:
    wait = BACKOFF_INITIAL_MS * BACKOFF_MULTIPLIER ** (deliveries - 1)
    return min(wait, BACKOFF_MAX_MS) / 1000.0


def test_a_record_released_every_time_comes_back_after_a_growing_backoff(start_broker, tmp_path):
    broker = start_broker()
    if not broker.serves(API_SHARE_FETCH):
        import pytest

        pytest.skip("the broker does not serve ShareFetch")
    records = 10_000
    setup(
        broker.bootstrap,
        "q",
        "sg",
        records,
        **{
            "share.record.lock.duration.ms": str(LOCK_MS),
            "share.delivery.count.limit": str(DELIVERIES_MAX),
            "veltrix.share.backoff.initial.ms": str(BACKOFF_INITIAL_MS),
            "veltrix.share.backoff.multiplier": str(BACKOFF_MULTIPLIER),
            "veltrix.share.backoff.max.ms": str(BACKOFF_MAX_MS),
            "errors.deadletterqueue.topic.name": "dlq.q",
        },
    )
    workers = Workers(tmp_path, broker.bootstrap, "q", "sg")
    poison = (0, 37)
    expected = all_records(records) - {poison}
    workers.start(2, "--release-always", "0:37")
    deadline = time.monotonic() + 120
    try:
        while True:
            log = workers.log()
            deliveries = log.by_record().get(poison, [])
            if done_records(log) >= expected and len(deliveries) >= DELIVERIES_MAX:
                break
            assert time.monotonic() < deadline, (
                f"timed out: {len(done_records(log))} of {len(expected)} records done, "
                f"the released one delivered {len(deliveries)} times"
            )
            time.sleep(0.2)
        # Archived at the limit: not delivered again after one more wait.
        time.sleep(BACKOFF_MAX_MS / 1000.0 + 1)
    finally:
        problems = workers.stop()
        workers.kill_all()
    assert not problems, problems
    log = workers.log()
    deliveries = log.by_record()[poison]
    assert [d.count for d in deliveries] == list(range(1, DELIVERIES_MAX + 1)), deliveries
    assert all(d.ack == "release" for d in deliveries)
    for before, after in zip(deliveries, deliveries[1:]):
        gap = after.t - before.t
        want = expected_wait_s(before.count)
        # Jitter takes up to a tenth off; the next fetch may come up to a
        # lock interval later.
        assert 0.8 * want <= gap <= 1.2 * want + LOCK_MS / 1000.0, (
            f"after delivery {before.count}: came back in {gap:.2f} s, expected {want:.2f} s"
        )
    # The others flowed while it waited: most were done before its last delivery.
    last = deliveries[-1].t
    done_before = [d for d in log.deliveries if d.ack == "accept" and d.t < last]
    assert len(done_before) > len(expected) * 0.9, len(done_before)
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{broker.http_port}/metrics", timeout=10).read().decode()
    backoffs = [
        line
        for line in metrics.splitlines()
        if line.startswith("veltrix_share_records_total{") and 'outcome="backoff"' in line and 'group="sg"' in line
    ]
    assert backoffs and float(backoffs[0].split()[-1]) >= DELIVERIES_MAX - 1, backoffs
    # Archived at the limit: its dead letter tells its story.
    [letter] = read_letters(broker.bootstrap, "dlq.q", 1, 60)
    h = headers_of(letter)
    assert (h["__dlq.errors.topic"], h["__dlq.errors.partition"], h["__dlq.errors.offset"]) == ("q", "0", "37")
    assert h["__dlq.errors.group"] == "sg"
    assert h["__dlq.errors.delivery.count"] == str(DELIVERIES_MAX)
    assert h["veltrix.dlq.reason"] == "delivery_limit"
    assert f"{DELIVERIES_MAX} deliveries" in h["__dlq.errors.message"]
    first, last_ms = int(h["veltrix.dlq.first.delivery.ms"]), int(h["veltrix.dlq.last.delivery.ms"])
    measured = deliveries[-1].t - deliveries[0].t
    assert abs((last_ms - first) / 1000.0 - measured) < 1.0, (last_ms - first, measured)
    assert h["veltrix.dlq.last.client.id"]
