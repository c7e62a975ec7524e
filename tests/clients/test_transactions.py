"""Transactions are not served yet: a transactional producer must fail at once
with an error that says so, not wait out its whole timeout (librdkafka
retries every other answer to its transaction coordinator lookup until
`init_transactions` times out)."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic


def test_init_transactions_fails_fast_with_a_clear_error(bootstrap):
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": "orders-tx"})
    started = time.monotonic()
    with pytest.raises(KafkaException) as raised:
        p.init_transactions(30)
    took = time.monotonic() - started
    err = raised.value.args[0]
    assert took < 5, f"init_transactions took {took:.1f} s"
    assert err.fatal(), err
    assert "transactions are not supported" in err.str(), err.str()


def test_an_idempotent_producer_still_works_beside_a_refused_transactional_one(bootstrap):
    refused = Producer({"bootstrap.servers": bootstrap, "transactional.id": "t2"})
    with pytest.raises(KafkaException):
        refused.init_transactions(30)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic("plain", 1)])["plain"].result(15)
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    delivered = []
    p.produce("plain", b"v", on_delivery=lambda err, msg: delivered.append(err))
    assert p.flush(30) == 0
    assert delivered == [None]
