"""One member of a confluent-kafka consumer group, run as its own process by test_groups.py.

    python group_worker.py BOOTSTRAP TOPIC GROUP RESULTS_FILE STOP_FILE
        [--batch-records N] [--batch-sleep-ms MS] [--session-timeout-ms MS]
        [--protocol classic|consumer]

Subscribes to TOPIC in GROUP with auto-commit off and processes records by
writing them to RESULTS_FILE (then sleeping --batch-sleep-ms per batch, as slow
processing would). After each poll batch it commits, synchronously,
the offsets after the records it processed; it commits the same way when its
partitions are revoked, and once more before closing. It runs until STOP_FILE
exists (or its own deadline passes), then closes cleanly, leaving the group.

RESULTS_FILE gets one line per event, in the order they happened; the Python
buffer is flushed to the file before every commit, so every record a commit
covers is in the file before the commit is sent (a SIGKILL keeps what reached
the file):

    start PID T                  the process started (T: time.monotonic(), shared by processes)
    assign T P,P,...             partitions assigned (the classic protocol's eager assignor:
                                 the whole assignment; the consumer protocol: the
                                 partitions added)
    revoke T P,P,...             partitions revoked
    lost T P,P,...               partitions lost (session gone, no commit possible)
    r P O                        the record at partition P, offset O was processed
    commit T P:O,P:O,... MEMBER  a commit of these next offsets succeeded; MEMBER is the
                                 member id the client held when it returned ("-": none)
    commitfail T WHY P:O,...     a commit failed
    error T WHY                  an error the client reported (error_cb or a consume error)
    closed T                     close() returned
    timeout T                    the worker's own deadline passed before STOP_FILE appeared
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from confluent_kafka import Consumer, KafkaException, TopicPartition

# A worker that is never told to stop must still end.
DEADLINE_S = 170.0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("bootstrap")
    ap.add_argument("topic")
    ap.add_argument("group")
    ap.add_argument("results")
    ap.add_argument("stop_file")
    ap.add_argument("--batch-sleep-ms", type=int, default=0)
    ap.add_argument("--batch-records", type=int, default=500)
    ap.add_argument("--session-timeout-ms", type=int, default=6000)
    # classic: JoinGroup/SyncGroup with the range assignor; consumer: KIP-848,
    # where the broker assigns and sets the session timeout.
    ap.add_argument("--protocol", choices=["classic", "consumer"], default="classic")
    args = ap.parse_args()

    out = open(args.results, "w", buffering=1 << 20)

    def line(text: str) -> None:
        out.write(text + "\n")

    def now() -> str:
        return f"{time.monotonic():.3f}"

    line(f"start {os.getpid()} {now()}")
    out.flush()

    # Next offset to commit per partition, for records processed since the last
    # successful commit of that partition.
    pending: dict[int, int] = {}

    def fmt(offsets: dict[int, int]) -> str:
        return ",".join(f"{p}:{o}" for p, o in sorted(offsets.items())) or "-"

    def commit(c: Consumer, why: str) -> None:
        if not pending:
            return
        offsets = dict(pending)
        out.flush()
        # When the commit was asked for: a worker stopped (SIGSTOP) while its
        # commit is under way writes the line only once it runs again.
        started = now()
        try:
            c.commit(offsets=[TopicPartition(args.topic, p, o) for p, o in offsets.items()], asynchronous=False)
        except KafkaException as e:
            line(f"commitfail {now()} {why}:{e.args[0].name()} {fmt(offsets)}")
            out.flush()
            # Kept for the next try while the partitions stay assigned; a revoke
            # or loss drops them (whoever gets them next reads them again).
            return
        line(f"commit {now()} {fmt(offsets)} {c.memberid() or '-'} {started}")
        out.flush()
        for p, o in offsets.items():
            if pending.get(p) == o:
                del pending[p]

    def on_assign(c, partitions):
        line(f"assign {now()} {','.join(str(tp.partition) for tp in partitions) or '-'}")
        out.flush()

    def on_revoke(c, partitions):
        line(f"revoke {now()} {','.join(str(tp.partition) for tp in partitions) or '-'}")
        commit(c, "revoke")
        revoked = {tp.partition for tp in partitions}
        for p in list(pending):
            if p in revoked:
                del pending[p]
        out.flush()

    def on_lost(c, partitions):
        line(f"lost {now()} {','.join(str(tp.partition) for tp in partitions) or '-'}")
        lost = {tp.partition for tp in partitions}
        for p in list(pending):
            if p in lost:
                del pending[p]
        out.flush()

    def on_error(err):
        line(f"error {now()} {err.name()}:{err.str()}")

    config = {
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "client.id": f"group-worker-{os.getpid()}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "reconnect.backoff.ms": 50,
        "reconnect.backoff.max.ms": 500,
        "error_cb": on_error,
    }
    if args.protocol == "consumer":
        config["group.protocol"] = "consumer"
    else:
        config.update(
            {
                "session.timeout.ms": args.session_timeout_ms,
                "heartbeat.interval.ms": 1000,
                "partition.assignment.strategy": "range",
            }
        )
    c = Consumer(config)
    c.subscribe([args.topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
    deadline = time.monotonic() + DEADLINE_S
    try:
        while not os.path.exists(args.stop_file):
            if time.monotonic() > deadline:
                line(f"timeout {now()}")
                break
            msgs = c.consume(num_messages=args.batch_records, timeout=0.2)
            for m in msgs:
                err = m.error()
                if err is not None:
                    line(f"error {now()} {err.name()}:{err.str()}")
                    continue
                p, o = m.partition(), m.offset()
                line(f"r {p} {o}")
                pending[p] = o + 1
            if msgs and args.batch_sleep_ms:
                # Slow processing: the records are in the file, not committed yet.
                out.flush()
                time.sleep(args.batch_sleep_ms / 1000)
            if msgs or pending:
                commit(c, "batch" if msgs else "retry")
        commit(c, "shutdown")
    finally:
        c.close()
        line(f"closed {now()}")
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
