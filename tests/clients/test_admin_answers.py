"""Admin answers as Kafka gives them, through confluent-kafka's AdminClient:
CreateTopics with a manual replica assignment, ListOffsets for the record with
the largest timestamp (KIP-734), and the authorized operations of topics,
groups and the cluster (every operation, as there is no authoriser).
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicCollection, TopicPartition
from confluent_kafka.admin import AclOperation, AdminClient, NewTopic, OffsetSpec

from rdkafka_helpers import create_topic, producer

TOPIC_OPERATIONS = {
    AclOperation.READ,
    AclOperation.WRITE,
    AclOperation.CREATE,
    AclOperation.DELETE,
    AclOperation.ALTER,
    AclOperation.DESCRIBE,
    AclOperation.DESCRIBE_CONFIGS,
    AclOperation.ALTER_CONFIGS,
}
GROUP_OPERATIONS = {AclOperation.READ, AclOperation.DESCRIBE, AclOperation.DELETE}
CLUSTER_OPERATIONS = {
    AclOperation.ALTER,
    AclOperation.ALTER_CONFIGS,
    AclOperation.CLUSTER_ACTION,
    AclOperation.CREATE,
    AclOperation.DESCRIBE,
    AclOperation.DESCRIBE_CONFIGS,
    AclOperation.IDEMPOTENT_WRITE,
}


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def node_id(a: AdminClient) -> int:
    cluster = a.describe_cluster(request_timeout=10).result(timeout=20)
    assert len(cluster.nodes) == 1
    return cluster.nodes[0].id


def test_create_topics_with_a_replica_assignment_on_this_broker(broker):
    a = admin(broker.bootstrap)
    node = node_id(a)
    # librdkafka wants the partition count given with the assignment (it
    # sends -1 for both counts, as Kafka requires).
    new = NewTopic("assigned", num_partitions=2, replica_assignment=[[node], [node]])
    a.create_topics([new], operation_timeout=10)["assigned"].result(timeout=20)
    topic = a.list_topics(topic="assigned", timeout=10).topics["assigned"]
    assert topic.error is None
    assert sorted(topic.partitions) == [0, 1]
    assert all(p.replicas == [node] for p in topic.partitions.values())

    for name, assignment in [("elsewhere", [[node + 1]]), ("two-replicas", [[node], [node, node + 1]])]:
        with pytest.raises(KafkaException) as refused:
            refused_topic = NewTopic(name, num_partitions=len(assignment), replica_assignment=assignment)
            a.create_topics([refused_topic], operation_timeout=10)[name].result(timeout=20)
        error = refused.value.args[0]
        assert error.code() == KafkaError.INVALID_REPLICA_ASSIGNMENT, error
        assert f"this broker is node {node}" in error.str(), error
        assert name not in a.list_topics(timeout=10).topics


def test_list_offsets_max_timestamp_names_the_latest_stamped_record(broker):
    create_topic(broker.bootstrap, "stamps", 1)
    errors: list = []
    p = producer(broker.bootstrap, errors)
    base = int(time.time() * 1000) - 60_000
    # Out of time order: the largest timestamp is the record at offset 2.
    stamps = [base + 10, base + 30, base + 50, base + 20, base + 40]
    for ts in stamps:
        p.produce("stamps", value=b"v", partition=0, timestamp=ts)
        p.flush(10)
    assert p.flush(10) == 0 and not errors
    a = admin(broker.bootstrap)
    tp = TopicPartition("stamps", 0)
    answer = a.list_offsets({tp: OffsetSpec.max_timestamp()}, request_timeout=10)[tp].result(timeout=20)
    assert (answer.offset, answer.timestamp) == (2, base + 50)
    latest = a.list_offsets({tp: OffsetSpec.latest()}, request_timeout=10)[tp].result(timeout=20)
    assert latest.offset == len(stamps)


def wait_for_group(a: AdminClient, group: str, deadline: float):
    """The group's description with its operations, once it has a member."""
    while True:
        d = a.describe_consumer_groups([group], include_authorized_operations=True, request_timeout=10)[group].result(
            timeout=20
        )
        if d.members or time.monotonic() > deadline:
            return d
        time.sleep(0.2)


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_describe_shows_every_authorized_operation(broker, protocol):
    create_topic(broker.bootstrap, "ops", 1)
    a = admin(broker.bootstrap)

    topics = a.describe_topics(
        TopicCollection(["ops"]), include_authorized_operations=True
    )["ops"].result(timeout=20)
    assert set(topics.authorized_operations) == TOPIC_OPERATIONS

    cluster = a.describe_cluster(include_authorized_operations=True, request_timeout=10).result(timeout=20)
    assert set(cluster.authorized_operations) == CLUSTER_OPERATIONS

    group = f"ops-{protocol}"
    config = {
        "bootstrap.servers": broker.bootstrap,
        "group.id": group,
        "group.protocol": protocol,
        "enable.auto.commit": False,
    }
    if protocol == "classic":
        config["session.timeout.ms"] = 10_000
    c = Consumer(config)
    try:
        c.subscribe(["ops"])
        deadline = time.monotonic() + 30
        description = None
        while time.monotonic() < deadline:
            c.poll(0.2)
            description = wait_for_group(a, group, time.monotonic())
            if description.members:
                break
        assert description is not None and description.members, description
        assert set(description.authorized_operations) == GROUP_OPERATIONS
        plain = a.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=20)
        assert not plain.authorized_operations
    finally:
        c.close()
