"""A broker crowded with topics and groups, made fast: topics by admin
requests of many at once, groups by committing one offset each through the
admin client (AlterConsumerGroupOffsets, all in flight together). Shared by
test_scale.py and measure_render.py."""

from __future__ import annotations

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

# Topics per CreateTopics request.
TOPICS_PER_REQUEST = 500
TIMEOUT_S = 120


def create_topics(bootstrap: str, names: list[str]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for start in range(0, len(names), TOPICS_PER_REQUEST):
        chunk = names[start : start + TOPICS_PER_REQUEST]
        futures = admin.create_topics([NewTopic(n, 1, 1) for n in chunk], request_timeout=TIMEOUT_S)
        for future in futures.values():
            future.result(timeout=TIMEOUT_S)


def create_groups(bootstrap: str, groups: list[str], topic: str) -> None:
    """Each group commits offset 0 of `topic`'s partition 0: it exists, empty."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = []
    for g in groups:
        request = [ConsumerGroupTopicPartitions(g, [TopicPartition(topic, 0, 0)])]
        futures.extend(admin.alter_consumer_group_offsets(request, request_timeout=TIMEOUT_S).values())
    for future in futures:
        future.result(timeout=TIMEOUT_S)
