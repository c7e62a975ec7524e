"""Delays, priorities and per-key order on share groups, with confluent-kafka's
ShareConsumer: what consumers see, measured from their own records."""

from __future__ import annotations

import time
from collections import defaultdict

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, ResourceType

from test_share import API_SHARE_FETCH, Workers, done_records, wait_until


def create(bootstrap: str, topic: str, group: str, **settings: str) -> None:
    """A one-partition topic and the group's settings (earliest first)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1)])[topic].result(15)
    configs = {"share.auto.offset.reset": "earliest", **settings}
    resource = ConfigResource(
        ResourceType.GROUP,
        group,
        incremental_configs=[ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in configs.items()],
    )
    admin.incremental_alter_configs([resource])[resource].result(15)


def produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, list[tuple[str, bytes]]]]) -> None:
    """Records (key, headers), in order, to partition 0."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True, "acks": "all"})
    for i, (key, headers) in enumerate(records):
        while True:
            try:
                p.produce(topic, key=key, value=b"v%d" % i, headers=headers, partition=0)
                break
            except BufferError:
                p.poll(0.1)
    assert p.flush(60) == 0


@pytest.fixture
def share_broker(start_broker):
    broker = start_broker()
    if not broker.serves(API_SHARE_FETCH):
        pytest.skip("the broker does not serve ShareFetch")
    return broker


def run(workers: Workers, n_workers: int, expected: int, timeout_s: float, *extra: str):
    workers.start(n_workers, *extra)
    try:
        wait_until(lambda: len(done_records(workers.log())) >= expected, timeout_s, "every record")
    finally:
        problems = workers.stop()
        workers.kill_all()
    assert not problems, problems
    return workers.log()


def test_100_urgent_records_overtake_10000_others(share_broker, tmp_path):
    # The look-ahead is the in-flight window: the whole backlog here.
    create(
        share_broker.bootstrap,
        "pings",
        "sg",
        **{"veltrix.share.priority.enable": "true", "share.partition.max.record.locks": "10000"},
    )
    records = [(None, [("veltrix.priority", b"0")]) for _ in range(10_000)]
    records += [(None, [("veltrix.priority", b"9")]) for _ in range(100)]
    produce(share_broker.bootstrap, "pings", records)
    log = run(Workers(tmp_path, share_broker.bootstrap, "pings", "sg"), 2, len(records), 180)
    first = sorted((d.t, d.offset) for d in log.deliveries if d.count == 1)
    last_urgent = max(i for i, (_, o) in enumerate(first) if o >= 10_000)
    plain_before = sum(1 for _, o in first[:last_urgent] if o < 10_000)
    print(f"{plain_before} of the 10,000 others were handed out before the last urgent one")
    assert plain_before < 9_000, f"{plain_before} of the 10,000 others went before the last urgent one"


def test_delayed_records_wait_and_the_others_do_not(share_broker, tmp_path):
    create(share_broker.bootstrap, "later", "sg", **{"veltrix.share.delay.enable": "true"})
    records = []
    for i in range(40):
        records.append((None, [("veltrix.delay.ms", b"2000")] if i % 2 == 0 else []))
    records.append((None, [("veltrix.delay.ms", b"not a number")]))
    t0 = time.monotonic()
    produce(share_broker.bootstrap, "later", records)
    log = run(Workers(tmp_path, share_broker.bootstrap, "later", "sg"), 2, len(records), 60)
    at = {d.offset: d.t for d in log.deliveries if d.count == 1}
    delayed = [at[o] - t0 for o in range(0, 40, 2)]
    plain = [at[o] - t0 for o in range(1, 40, 2)] + [at[40] - t0]
    # The record timestamps are taken just after t0; a little slack for the
    # clocks' resolution.
    assert min(delayed) >= 1.95, f"a delayed record came after {min(delayed):.2f} s"
    assert max(plain) < 1.9, f"a plain record waited {max(plain):.2f} s"


def test_each_keys_records_are_accepted_in_order_by_four_consumers_with_releases(share_broker, tmp_path):
    create(
        share_broker.bootstrap,
        "players",
        "sg",
        **{"veltrix.share.key.order.enable": "true", "veltrix.share.backoff.initial.ms": "50"},
    )
    n = 3_000
    produce(share_broker.bootstrap, "players", [(b"player-%d" % (i % 50), []) for i in range(n)])
    log = run(
        Workers(tmp_path, share_broker.bootstrap, "players", "sg"), 4, n, 180, "--release-every", "7"
    )
    assert any(d.ack == "release" for d in log.deliveries)
    per_key = defaultdict(list)
    for d in sorted(log.deliveries, key=lambda d: d.t):
        if d.ack == "accept":
            per_key[d.offset % 50].append(d.offset)
    assert len(per_key) == 50
    for key, offsets in per_key.items():
        assert offsets == sorted(offsets), f"player-{key} accepted out of order: {offsets[:20]}"
    workers_used = {d.worker for d in log.deliveries}
    assert len(workers_used) > 1, "the records were shared out"
