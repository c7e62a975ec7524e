"""The queues page: a share group whose consumer rejects one record shows
its delivery counts; the record's dead letter is listed with the headers
that say why, and redriven from the page back to its topic, the job's
progress shown."""

from __future__ import annotations

import time

from confluent_kafka import AcknowledgeType, Producer, ShareConsumer
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, ResourceType
from selenium.webdriver.common.by import By

from harness import wait_until
from test_groups import cells

TOPIC = "jobs"
GROUP = "workers"
DLQ = "dlq.jobs"
VALUES = [b"job-1", b"job-2", b"poison", b"job-4"]
CONSUME_TIMEOUT_S = 30.0


def text_of(driver, css: str) -> str:
    found = driver.find_elements(By.CSS_SELECTOR, css)
    return found[0].text if found else ""


def _share_group_with_a_rejected_record(bootstrap: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(TOPIC, 1)])[TOPIC].result(15)
    settings = {"share.auto.offset.reset": "earliest", "errors.deadletterqueue.topic.name": DLQ}
    resource = ConfigResource(
        ResourceType.GROUP,
        GROUP,
        incremental_configs=[ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in settings.items()],
    )
    admin.incremental_alter_configs([resource])[resource].result(15)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for value in VALUES:
        producer.produce(TOPIC, key=b"job", value=value, partition=0)
    assert producer.flush(30) == 0
    consumer = ShareConsumer(
        {"bootstrap.servers": bootstrap, "group.id": GROUP, "share.acknowledgement.mode": "explicit"}
    )
    consumer.subscribe([TOPIC])
    seen: set[bytes] = set()
    deadline = time.monotonic() + CONSUME_TIMEOUT_S
    try:
        while len(seen) < len(VALUES):
            assert time.monotonic() < deadline, f"only {sorted(seen)} delivered within {CONSUME_TIMEOUT_S} s"
            for m in consumer.poll(0.5) or []:
                if m.error():
                    continue
                seen.add(m.value())
                consumer.acknowledge(m, AcknowledgeType.REJECT if m.value() == b"poison" else AcknowledgeType.ACCEPT)
            consumer.commit_sync(30)
    finally:
        consumer.close()


def test_a_dead_letter_is_shown_with_its_headers_and_redriven(page, seeded):
    broker = seeded.broker
    _share_group_with_a_rejected_record(broker.bootstrap)
    wait_until("the letter", lambda: (broker.api(f"/api/v1/dlq/{DLQ}/letters") or {}).get("letters"), 30)
    page.open("/console/queues")
    page.wait("the share group", lambda d: GROUP in text_of(d, "#share-groups"))
    page.wait("the letter", lambda d: "rejected" in text_of(d, "#letters"))
    d = page.driver
    # The group's share-partition: nothing in flight, one record dead-lettered.
    row = page.wait("the share-partition", lambda d: [r for r in d.find_elements(By.CSS_SELECTOR, "#share-groups tbody tr") if cells(r)[0] == GROUP])[0]
    group, _state, _members, topic, partition, in_flight, *_rest = cells(row)
    assert (group, topic, partition, in_flight, cells(row)[8]) == (GROUP, TOPIC, "0", "0", "1"), cells(row)
    row = d.find_element(By.CSS_SELECTOR, "#letters tbody tr")
    assert "poison" in row.text and TOPIC in row.text
    row.find_element(By.TAG_NAME, "summary").click()
    headers = row.find_element(By.CSS_SELECTOR, "ul.headers").text
    for name in ["__dlq.errors.topic", "__dlq.errors.offset", "__dlq.errors.group", "veltrix.dlq.reason"]:
        assert name in headers, headers
    page.screenshot("queues")
    row.find_element(By.CSS_SELECTOR, "input.letter-select").click()
    d.find_element(By.ID, "dlq-redrive").click()
    page.wait("the job started", lambda d: text_of(d, "#dlq-done"))
    page.wait("the job done", lambda d: "done" in text_of(d, "#redrives"))
    page.wait("the letter marked redriven", lambda d: "redriven" in text_of(d, "#letters"))
    job = broker.api("/api/v1/redrives")["redrives"][0]
    assert (job["moved"], job["state"]["state"]) == (1, "done"), job
    assert broker.api(f"/api/v1/topics/{TOPIC}")["partitions"][0]["end"] == len(VALUES) + 1
    assert page.problems() == []
