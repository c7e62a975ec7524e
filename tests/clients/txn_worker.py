"""A consume-transform-produce loop with confluent-kafka transactions, run as
its own process by test_transactions.py:

    python txn_worker.py BOOTSTRAP INPUT OUTPUT GROUP TRANSACTIONAL_ID LOG STOP_FILE

Reads INPUT in consumer group GROUP (read_committed), writes each record's
value to OUTPUT (same partition) and commits the consumed offsets in the same
transaction. An abortable error aborts the transaction and rewinds to the
committed offsets; a fatal one (fenced, for instance) exits with status 4 so
that the test starts a new worker, as an application's supervisor would.
LOG gets a line per committed transaction: `commit N` (records in it).
Runs until STOP_FILE exists or its deadline passes.
"""

from __future__ import annotations

import os
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

DEADLINE_S = 400.0


def rewind(c: Consumer) -> None:
    """Back to the group's committed offsets (what the aborted transaction
    would have moved them past)."""
    assignment = c.assignment()
    if not assignment:
        return
    for tp in c.committed(assignment, 30):
        c.seek(TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else 0))


def main() -> int:
    bootstrap, topic_in, topic_out, group, tx_id, log_path, stop_file = sys.argv[1:8]
    log = open(log_path, "a", buffering=1)
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    c.subscribe([topic_in])
    conf = {
        "bootstrap.servers": bootstrap,
        "transactional.id": tx_id,
        "linger.ms": 5,
        # With one broker, a restart takes every broker down, and librdkafka
        # (up to 2.16 at least) then re-bootstraps: it decommissions the
        # broker it knew, which its coordinator cache keeps as the group's
        # coordinator, and send_offsets_to_transaction waits forever for that
        # handle to come up (confluentinc/librdkafka#5511). Without
        # re-bootstrap the broker handle survives and reconnects.
        "metadata.recovery.strategy": "none",
    }
    # librdkafka's own trace of the transaction manager, to stderr, when asked.
    if os.environ.get("VELTRIX_TXN_DEBUG"):
        conf["debug"] = os.environ["VELTRIX_TXN_DEBUG"]
    p = Producer(conf)
    p.init_transactions(60)
    deadline = time.monotonic() + DEADLINE_S
    try:
        while not os.path.exists(stop_file) and time.monotonic() < deadline:
            msgs = [m for m in c.consume(500, 0.5) if m.error() is None]
            if not msgs:
                continue
            try:
                log.write(f"got {len(msgs)} first {msgs[0].partition()}:{msgs[0].offset()}\n")
                p.begin_transaction()
                for m in msgs:
                    while True:
                        try:
                            p.produce(topic_out, value=m.value(), partition=m.partition())
                            break
                        except BufferError:
                            p.poll(0.1)
                log.write("send offsets\n")
                # The offsets of what was consumed (not the consumer's
                # position, which a rebalance may have moved meanwhile).
                ends: dict[tuple[str, int], int] = {}
                for m in msgs:
                    ends[(m.topic(), m.partition())] = max(ends.get((m.topic(), m.partition()), 0), m.offset() + 1)
                offsets = [TopicPartition(t, part, o) for (t, part), o in ends.items()]
                p.send_offsets_to_transaction(offsets, c.consumer_group_metadata(), 60)
                log.write("commit\n")
                p.commit_transaction(60)
                log.write(f"commit {len(msgs)}\n")
            except KafkaException as e:
                err = e.args[0]
                log.write(f"error {err.code()} fatal={err.fatal()} abortable={err.txn_requires_abort()} {err.str()}\n")
                if err.fatal():
                    return 4
                try:
                    p.abort_transaction(60)
                except KafkaException as again:
                    log.write(f"abort failed {again.args[0].str()}\n")
                    if again.args[0].fatal():
                        return 4
                rewind(c)
    finally:
        log.close()
        c.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
