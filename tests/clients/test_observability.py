"""Backlog alerts end to end: a real consumer group, the broker's own lag, a webhook.

The broker runs with a veltrix.toml declaring a topic and a lag_seconds alert
on it, evaluated every 500 ms, and a webhook served by this test on
127.0.0.1. A producer keeps writing; a confluent-kafka consumer group keeps up
(committing after every record), then stops while the producer goes on. The
alert must fire within its `for` duration plus one evaluation interval of the
lag crossing its threshold; the webhook must receive the firing notification;
then the group resumes, catches up, and the alert resolves, and the webhook
receives that too. /alerts and /metrics must agree with what happened.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

THRESHOLD_MS = 2_000
FOR_MS = 2_000
INTERVAL_MS = 500


class Webhook:
    """A webhook receiver on 127.0.0.1: records each POSTed JSON with its arrival time."""

    def __init__(self) -> None:
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (the http.server API)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                received.append((time.monotonic(), json.loads(body)))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def http_json(port: int, path: str):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return json.loads(r.read())


def http_text(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return r.read().decode()


def consume_until(c: Consumer, stop_at: float) -> int:
    """Consumes and commits each record synchronously until `stop_at`."""
    n = 0
    while time.monotonic() < stop_at:
        m = c.poll(0.1)
        if m is None or m.error():
            continue
        c.commit(message=m, asynchronous=False)
        n += 1
    return n


def coordinator_http_port(broker, group: str) -> int:
    """The HTTP port of the broker that measures `group`'s lag and alerts on it: the one broker, or
    on shared storage the group's coordinator (each group is measured there alone)."""
    brokers = getattr(broker, "brokers", None)
    if not brokers:
        return broker.http_port
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    described = admin.describe_consumer_groups([group])[group].result(timeout=10)
    return next(b.http_port for b in brokers if b.broker_id == described.coordinator.id)


@pytest.mark.timeout(120)
def test_lag_alert_fires_when_a_group_stops_and_resolves_when_it_catches_up(start_broker, tmp_path):
    hook = Webhook()
    config = tmp_path / "veltrix.toml"
    config.write_text(
        f"""
[observability]
lag_evaluation_interval_ms = {INTERVAL_MS}
webhook_url = "http://127.0.0.1:{hook.port}/hook"

[[topic]]
name = "events"
partitions = 2

[[alert]]
name = "events-behind"
group = "alerted"
topic = "events"
lag_ms_max = {THRESHOLD_MS}
for_ms = {FOR_MS}
"""
    )
    broker = start_broker("--config", str(config))
    stop_producing = threading.Event()
    produced = [0]

    def produce_forever():
        p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
        while not stop_producing.is_set():
            p.produce("events", value=b"x" * 100, partition=produced[0] % 2)
            produced[0] += 1
            p.poll(0)
            time.sleep(0.05)
        p.flush(10)

    producer_thread = threading.Thread(target=produce_forever, daemon=True)
    producer_thread.start()
    try:
        c = Consumer(
            {
                "bootstrap.servers": broker.bootstrap,
                "group.id": "alerted",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
        )
        c.subscribe(["events"])
        consumed = consume_until(c, time.monotonic() + 6)
        assert consumed > 20, f"the group consumed only {consumed} records"
        http_port = coordinator_http_port(broker, "alerted")
        state = http_json(http_port, "/alerts")["alerts"][0]
        assert state["state"] == "ok", state
        # The group stops consuming; the producer carries on.
        c.close()
        t_stop = time.monotonic()

        deadline = t_stop + 30
        while not hook.received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert hook.received, f"no alert notification within 30 s; /alerts: {http_json(http_port, '/alerts')}"
        t_fired, fired = hook.received[0]
        took = t_fired - t_stop
        assert fired["status"] == "firing" and fired["alert"] == "events-behind", fired
        assert fired["value"] > THRESHOLD_MS
        # The oldest unconsumed record passes the threshold at most
        # THRESHOLD_MS after the stop (the last commit may have left one just
        # produced behind); then FOR_MS; then at most one interval, plus the
        # POST and scheduling slack.
        bound = (THRESHOLD_MS + FOR_MS + INTERVAL_MS) / 1000 + 1.0
        assert took <= bound, f"fired {took:.2f} s after the group stopped; bound {bound:.2f} s"
        assert took >= (THRESHOLD_MS + FOR_MS) / 1000 - 0.6, f"fired too early: {took:.2f} s"
        state = http_json(http_port, "/alerts")
        assert state["alerts"][0]["state"] == "firing"
        metrics = http_text(http_port, "/metrics")
        assert 'veltrix_alert_firing{alert="events-behind",group="alerted",topic="events"} 1' in metrics
        groups = http_json(http_port, "/api/v1/groups")["groups"]
        alerted = next(g for g in groups if g["group_id"] == "alerted")
        assert alerted["members"] == 0 and alerted["lag"][0]["lag_seconds"] > THRESHOLD_MS / 1000

        # The group comes back and catches up.
        c = Consumer(
            {
                "bootstrap.servers": broker.bootstrap,
                "group.id": "alerted",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
        )
        c.subscribe(["events"])
        t_resume = time.monotonic()
        resolved = None
        while time.monotonic() < t_resume + 30:
            consume_until(c, time.monotonic() + 0.5)
            resolved = next((e for _, e in hook.received if e["status"] == "resolved"), None)
            if resolved:
                break
        c.close()
        assert resolved, f"the alert did not resolve; /alerts: {http_json(http_port, '/alerts')}"
        assert resolved["alert"] == "events-behind"
        assert [e["status"] for _, e in hook.received] == ["firing", "resolved"]
        state = http_json(http_port, "/alerts")
        assert state["alerts"][0]["state"] == "ok"
        assert [e["status"] for e in state["recent"]] == ["firing", "resolved"]
        metrics = http_text(http_port, "/metrics")
        assert 'veltrix_alert_webhook_notifications_total{outcome="sent"} 2' in metrics
        print(f"fired {took:.2f} s after the group stopped (bound {bound:.2f} s); {produced[0]} records produced")
    finally:
        stop_producing.set()
        producer_thread.join(timeout=15)
        hook.stop()


def test_risky_producers_are_warned_about_once_per_client_id(start_broker, tmp_path):
    """acks=1 on a critical topic and produces without idempotence are logged, once per client id.

    Two producer instances with the same client id, acks=1 and idempotence
    off, write to a topic declared `critical = true`: the broker logs one
    acks warning and one idempotence warning naming that client id. A careful
    producer (acks=all, idempotent) on the same topic is not mentioned.
    """
    config = tmp_path / "veltrix.toml"
    config.write_text('[[topic]]\nname = "payments"\npartitions = 1\ncritical = true\n')
    broker = start_broker("--config", str(config))
    for _ in range(2):
        p = Producer(
            {
                "bootstrap.servers": broker.bootstrap,
                "client.id": "risky-app",
                "acks": "1",
                "enable.idempotence": False,
            }
        )
        for i in range(10):
            p.produce("payments", value=f"r{i}".encode())
        assert p.flush(10) == 0
    careful = Producer(
        {
            "bootstrap.servers": broker.bootstrap,
            "client.id": "careful-app",
            "acks": "all",
            "enable.idempotence": True,
        }
    )
    careful.produce("payments", value=b"c")
    assert careful.flush(10) == 0
    log = broker.log_text()
    acks = [line for line in log.splitlines() if "critical topic with acks=1" in line]
    idem = [line for line in log.splitlines() if "without idempotence" in line]
    assert len(acks) == 1 and "risky-app" in acks[0] and "payments" in acks[0], acks
    assert len(idem) == 1 and "risky-app" in idem[0], idem
    assert "careful-app" not in log
