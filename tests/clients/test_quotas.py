"""Client quotas with a real librdkafka producer: the broker holds it to its
byte rate through `throttle_time_ms` and a muted connection, librdkafka's own
statistics show the throttle, and a quota changed over AlterClientQuotas takes
effect on the running producer. Clients without a quota are not slowed.

The live change is made with a real admin client: librdkafka (and so
confluent-kafka) has no client-quota admin API, so it is @platformatic/kafka's
Admin (js/quotas.mjs); the raw requests of quota_protocol.py check the rest.
"""

from __future__ import annotations

import gc
import json
import shutil
import threading
import time
import urllib.request
from pathlib import Path

from confluent_kafka import Consumer, Producer

from harness import run
from quota_protocol import MATCH_DEFAULT, MATCH_EXACT, MATCH_SPECIFIED, alter, describe
from rdkafka_helpers import create_topic

MIB = 1_048_576
VALUE = b"q" * 8_192
JS_DIR = Path(__file__).resolve().parent / "js"


def js_admin(*args: str):
    """Runs js/quotas.mjs (@platformatic/kafka's Admin); the JSON it printed."""
    node = shutil.which("node")
    assert node is not None, "node is not installed; the quota admin check needs Node 20"
    assert (JS_DIR / "node_modules" / "@platformatic" / "kafka").is_dir(), (
        f"@platformatic/kafka is not installed: run `npm ci` in {JS_DIR} (scripts/test-clients does)"
    )
    done = run([node, "quotas.mjs", *args], timeout_s=60, cwd=JS_DIR)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


class Measured:
    """A producer sending as fast as it can; acknowledged bytes by time."""

    def __init__(self, bootstrap: str, topic: str, client_id: str):
        self.acked: list[tuple[float, int]] = []
        self.throttle_max_ms = 0
        self.errors: list[str] = []
        self.lock = threading.Lock()

        def stats(raw: str) -> None:
            for b in json.loads(raw).get("brokers", {}).values():
                self.throttle_max_ms = max(self.throttle_max_ms, b.get("throttle", {}).get("max", 0))

        self.p = Producer(
            {
                "bootstrap.servers": bootstrap,
                "client.id": client_id,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 5,
                "statistics.interval.ms": 500,
                "stats_cb": stats,
                "queue.buffering.max.kbytes": 4096,
            }
        )
        self.topic = topic

    def delivered(self, err, msg) -> None:
        if err is not None:
            self.errors.append(str(err))
            return
        with self.lock:
            self.acked.append((time.monotonic(), len(msg.value())))

    def run(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                self.p.produce(self.topic, VALUE, on_delivery=self.delivered)
            except BufferError:
                self.p.poll(0.01)
                continue
            self.p.poll(0)
        self.p.flush(30)

    def rate(self, start: float, end: float) -> float:
        with self.lock:
            n = sum(size for t, size in self.acked if start <= t < end)
        return n / (end - start)


def test_a_producer_is_held_to_its_byte_rate_and_a_live_change_takes_effect(broker):
    create_topic(broker.bootstrap, "q", 1)
    # 1 MiB/s for this client id.
    assert alter(broker.bootstrap, [({"client-id": "metered"}, {"producer_byte_rate": float(MIB)})]) == [(0, None)]
    code, _, entries = describe(broker.bootstrap, [("client-id", MATCH_EXACT, "metered")])
    assert code == 0 and entries == [({"client-id": "metered"}, {"producer_byte_rate": float(MIB)})]

    m = Measured(broker.bootstrap, "q", "metered")
    t0 = time.monotonic()
    m.run(12)
    # The first two seconds fill the windows; measured over the next ten.
    rate = m.rate(t0 + 2, t0 + 12)
    print(f"1 MiB/s quota: {rate / MIB:.3f} MiB/s; librdkafka saw throttles up to {m.throttle_max_ms} ms")
    assert 0.85 * MIB <= rate <= 1.15 * MIB, rate / MIB
    assert m.throttle_max_ms > 0, "librdkafka's statistics show the broker's throttle"
    assert not m.errors, m.errors[:3]

    # Doubled live, for the same running producer, by another client's admin.
    answer = js_admin("alter", broker.bootstrap, "metered", str(2 * MIB))
    assert answer == [{"errorCode": 0, "entity": [{"entityType": "client-id", "entityName": "metered"}]}], answer
    described = js_admin("describe", broker.bootstrap, "metered")
    assert described == [
        {
            "entity": [{"entityType": "client-id", "entityName": "metered"}],
            "values": [{"key": "producer_byte_rate", "value": 2 * MIB}],
        }
    ], described
    t1 = time.monotonic()
    m.run(9)
    rate = m.rate(t1 + 3, t1 + 9)
    print(f"2 MiB/s quota: {rate / MIB:.3f} MiB/s")
    assert 1.7 * MIB <= rate <= 2.3 * MIB, rate / MIB
    assert not m.errors, m.errors[:3]

    metrics = urllib.request.urlopen(f"http://127.0.0.1:{broker.http_port}/metrics", timeout=10).read().decode()
    throttled = [
        line
        for line in metrics.splitlines()
        if line.startswith("veltrix_quota_throttled_total{") and 'kind="produce"' in line
    ]
    assert throttled and 'entity="client id metered"' in throttled[0], throttled
    # Gone before the broker stops, so that it does not try to reconnect.
    del m
    gc.collect()


def test_a_client_without_a_quota_is_not_slowed_and_a_consumer_quota_holds_fetches(broker):
    create_topic(broker.bootstrap, "c", 1)
    # A default quota for another client id does not touch this one.
    assert alter(broker.bootstrap, [({"client-id": "someone-else"}, {"producer_byte_rate": 1024.0})]) == [(0, None)]
    p = Producer({"bootstrap.servers": broker.bootstrap, "client.id": "free", "linger.ms": 5})
    started = time.monotonic()
    for _ in range(3_000):  # 24 MiB
        while True:
            try:
                p.produce("c", VALUE)
                break
            except BufferError:
                p.poll(0.01)
        p.poll(0)
    p.flush(30)
    free_rate = 24 * MIB / (time.monotonic() - started)
    print(f"no quota: {free_rate / MIB:.1f} MiB/s")
    assert free_rate > 5 * MIB, free_rate / MIB
    # Every consumer's client id gets its own 2 MiB/s by default.
    assert alter(broker.bootstrap, [({"client-id": None}, {"consumer_byte_rate": 2.0 * MIB})]) == [(0, None)]
    c = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "g",
            "client.id": "slow-reader",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    c.subscribe(["c"])
    got, t0 = 0, time.monotonic()
    first = None
    while time.monotonic() - t0 < 10:
        msg = c.poll(0.5)
        if msg is None or msg.error():
            continue
        first = first or time.monotonic()
        got += len(msg.value())
    c.close()
    assert first is not None
    rate = got / (time.monotonic() - first)
    print(f"2 MiB/s consumer quota: {rate / MIB:.3f} MiB/s")
    # Held to the quota (a first burst of up to a second's worth included).
    assert 1.5 * MIB <= rate <= 2.6 * MIB, rate / MIB
    assert got < 24 * MIB, "the quota held the consumer back"


def test_alter_refuses_what_it_does_not_support_one_entry_at_a_time(broker):
    results = alter(
        broker.bootstrap,
        [
            ({"client-id": "ok"}, {"producer_byte_rate": 1000.0}),
            ({"ip": "10.0.0.1"}, {"connection_creation_rate": 5.0}),
            ({"user": "alice"}, {"request_percentage": 50.0}),
            ({"user": "alice"}, {"producer_byte_rate": 0.0}),
        ],
    )
    assert [code for code, _ in results] == [0, 42, 42, 42], results
    assert "ip" in results[1][1] and "request_percentage" in results[2][1], results
    # validate_only changes nothing.
    assert alter(broker.bootstrap, [({"user": None}, {"producer_byte_rate": 5000.0})], validate_only=True) == [(0, None)]
    _, _, entries = describe(broker.bootstrap, [])
    assert entries == [({"client-id": "ok"}, {"producer_byte_rate": 1000.0})], entries
    # Filters: default and specified names.
    alter(broker.bootstrap, [({"client-id": None}, {"consumer_byte_rate": 10_000.0})])
    _, _, defaults = describe(broker.bootstrap, [("client-id", MATCH_DEFAULT, None)])
    assert defaults == [({"client-id": None}, {"consumer_byte_rate": 10_000.0})], defaults
    _, _, named = describe(broker.bootstrap, [("client-id", MATCH_SPECIFIED, None)])
    assert named == [({"client-id": "ok"}, {"producer_byte_rate": 1000.0})], named
    # Removing the last quota removes the entity; and quotas survive a restart.
    alter(broker.bootstrap, [({"client-id": "ok"}, {"producer_byte_rate": None})])
    broker.restart()
    _, _, after = describe(broker.bootstrap, [])
    assert after == [({"client-id": None}, {"consumer_byte_rate": 10_000.0})], after
