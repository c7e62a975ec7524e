"""A confluent-kafka producer of records with message ids, run as its own
process by test_dedup.py so that the test can SIGKILL it mid-stream.

    python dedup_worker.py BOOTSTRAP TOPIC COUNT KEYS PROGRESS_FILE

Produces records 0..COUNT-1 in order, record `seq` with key `key_of(seq)`
(one of KEYS), the header `message-id: id_of(seq)` and value
`value_of(seq)`, through an idempotent acks=all producer: what a careful
application sends. Every process is a new producer (a new producer id), so
the broker's idempotence cannot recognise a record a previous process sent;
only the topic's duplicate window can.

PROGRESS_FILE gets a line `acked N failed M` every 1,000 delivery reports
and at the end, then `done` once every record has a report; the first
failure's reason goes on a line `error WHY`. Exits 0 once every record is
acknowledged, 1 otherwise.
"""

from __future__ import annotations

import sys
import time

from confluent_kafka import Producer

ID_HEADER = "message-id"
# A worker that cannot finish must still end.
DEADLINE_S = 150.0


def id_of(seq: int) -> bytes:
    return b"id-%06d" % seq


def key_of(seq: int, keys: int) -> bytes:
    return b"key-%03d" % (seq % keys)


def value_of(seq: int) -> bytes:
    """Small, and different for every record, so a damaged one shows."""
    return b"%06d|%03d" % (seq, seq * 7 % 1000)


def seq_of(value: bytes) -> int:
    return int(value.split(b"|", 1)[0])


def main() -> int:
    bootstrap, topic, count, keys, progress_path = sys.argv[1:6]
    count, keys = int(count), int(keys)
    progress = open(progress_path, "a")
    acked = [0]
    failed = [0]

    def on_delivery(err, msg):
        if err is None:
            acked[0] += 1
        else:
            if failed[0] == 0:
                progress.write(f"error {err}\n")
            failed[0] += 1
        if (acked[0] + failed[0]) % 1000 == 0:
            report()

    def report():
        progress.write(f"acked {acked[0]} failed {failed[0]}\n")
        progress.flush()

    p = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
        }
    )
    deadline = time.monotonic() + DEADLINE_S
    for seq in range(count):
        while True:
            try:
                p.produce(
                    topic,
                    key=key_of(seq, keys),
                    value=value_of(seq),
                    headers=[(ID_HEADER, id_of(seq))],
                    on_delivery=on_delivery,
                )
                break
            except BufferError:
                p.poll(0.05)
                if time.monotonic() > deadline:
                    return 1
        if seq % 1000 == 0:
            p.poll(0)
    while p.flush(1.0) > 0:
        if time.monotonic() > deadline:
            report()
            return 1
    report()
    progress.write("done\n")
    progress.flush()
    return 0 if acked[0] == count and failed[0] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
