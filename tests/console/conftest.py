"""Fixtures of the console's browser tests: one broker with known data
(topics, records with keys and headers, a consumer group behind, an alert
firing) and one headless Chromium, shared by every test; each test opens
its own pages and checks them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from harness import Broker, Page, chromium, veltrix_binary, wait_until

CONFIG = """
[listeners]
http_mutations = true

[observability]
lag_evaluation_interval_ms = 500

[[topic]]
name = "orders"
partitions = 2
# A warning of `veltrix check` (V118: under one segment) for the
# configuration page to show; orders' few records never fill a segment.
retention_bytes = 1048576

[[alert]]
name = "billing-behind"
group = "billing"
topic = "orders"
lag_records_max = 10
"""

# Records of `orders` per partition, and where the group `billing` commits.
ORDERS_END = (30, 20)
BILLING_COMMITTED = (10, 15)
BILLING_LAG = sum(ORDERS_END) - sum(BILLING_COMMITTED)
# Topics made in bulk, for the search.
BULK_TOPICS = 200
WEB_ORDERS = 60
IMPORTED = 3
BINARY_VALUE = bytes(range(256))


@dataclass
class Seeded:
    """What the broker holds, for the tests to look for."""

    broker: Broker
    topic: str = "shop.events"
    partitions: int = 3
    group: str = "billing"
    alert: str = "billing-behind"


@pytest.fixture(scope="session")
def broker(tmp_path_factory) -> Iterator[Broker]:
    """The broker, stopped by its PID at the end; a bad exit fails the run."""
    binary = veltrix_binary()
    if not binary.is_file():
        pytest.exit(f"{binary} does not exist: build it with `cargo build -p veltrix` (scripts/test-console does)", 2)
    workdir = tmp_path_factory.mktemp("veltrix")
    config = workdir / "veltrix.toml"
    config.write_text(CONFIG)
    running = Broker(workdir, config)
    running.start()
    yield running
    problems = running.stop()
    if problems:
        pytest.fail("\n".join(problems) + f"\n{running.log_text()[-5000:]}", pytrace=False)


def _produce_shop_events(broker: Broker, topic: str) -> None:
    """JSON orders keyed `order-N` from the web, three plain-text imports
    with their own headers, and one binary record: all with the CLI but the
    binary one, which a line of text cannot carry."""
    lines = "".join(
        f"order-{i}:{json.dumps({'order': i, 'amount_cents': 100 * i + 99, 'items': ['map', 'lantern'][: 1 + i % 2]})}\n"
        for i in range(WEB_ORDERS)
    )
    broker.cli("produce", topic, "--key-separator", ":", "--header", "source=web", stdin=lines)
    imports = "".join(f"import-{i}:imported row {i}\n" for i in range(IMPORTED))
    broker.cli(
        "produce", topic, "--key-separator", ":", "--header", "source=batch-importer", "--header", "trace-id=7f3a",
        stdin=imports,
    )
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    producer.produce(topic, key=b"blob-1", value=BINARY_VALUE, headers=[("content-type", b"application/octet-stream")])
    assert producer.flush(30) == 0


def _produce_orders(broker: Broker) -> None:
    for partition, count in enumerate(ORDERS_END):
        lines = "".join(f'o-{partition}-{i}:{{"order": {i}}}\n' for i in range(count))
        broker.cli("produce", "orders", "--key-separator", ":", "--partition", str(partition), stdin=lines)


def _bulk_topics(broker: Broker) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    futures = admin.create_topics([NewTopic(f"load-{i:03}", 1, 1) for i in range(BULK_TOPICS)], request_timeout=60)
    for future in futures.values():
        future.result(timeout=60)


def _billing_consumer(broker: Broker) -> Consumer:
    """A member of `billing` on `orders`, its offsets committed short of the
    end; it stays in the group (librdkafka heartbeats in the background)."""
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "billing",
            "client.id": "console-tests",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "max.poll.interval.ms": 900_000,
        }
    )
    consumer.subscribe(["orders"])

    def assigned():
        consumer.poll(0.2)
        return len(consumer.assignment()) == len(ORDERS_END)

    wait_until("billing's assignment", assigned, 60)
    offsets = [TopicPartition("orders", p, o) for p, o in enumerate(BILLING_COMMITTED)]
    consumer.commit(offsets=offsets, asynchronous=False)
    return consumer


@pytest.fixture(scope="session")
def seeded(broker) -> Iterator[Seeded]:
    """The broker's data, and the lag evaluated and the alert firing."""
    facts = Seeded(broker)
    broker.cli("topic", "create", facts.topic, "--partitions", str(facts.partitions))
    _produce_shop_events(broker, facts.topic)
    _produce_orders(broker)
    _bulk_topics(broker)
    consumer = _billing_consumer(broker)

    def lag_evaluated():
        group = broker.api("/api/v1/groups/billing") or {}
        return sum(o["lag_records"] for o in group.get("offsets", [])) == BILLING_LAG

    def firing():
        return any(a["name"] == facts.alert and a["state"] == "firing" for a in broker.api("/api/v1/alerts")["alerts"])

    wait_until("billing's lag evaluated", lag_evaluated, 30)
    wait_until("the alert firing", firing, 30)
    yield facts
    consumer.close()


@pytest.fixture(scope="session")
def driver():
    browser = chromium()
    yield browser
    browser.quit()


@pytest.fixture
def page(driver, seeded) -> Page:
    return Page(driver, seeded.broker)
