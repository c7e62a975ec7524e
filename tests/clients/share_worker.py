"""One member of a share group (confluent-kafka's ShareConsumer), run as its own
process by test_share.py.

    python share_worker.py BOOTSTRAP TOPIC GROUP RESULTS_FILE STOP_FILE
        [--release-every N] [--reject-every N] [--poison P:O] [--release-always P:O]
        [--hold] [--pace RECORDS_PER_S]

Subscribes to TOPIC in share group GROUP with explicit acknowledgement and
decides, record by record, how to acknowledge it:

    --release-every N   RELEASE a record whose offset is a multiple of N on its
                        first delivery (ACCEPT it when it comes back)
    --reject-every N    REJECT a record whose offset is a multiple of N
    --poison P:O        crash (exit at once, no acknowledgement) on the record
                        at partition P, offset O, every time it is delivered
    --release-always P:O
                        RELEASE the record at partition P, offset O, every
                        time it is delivered
    --hold              acknowledge nothing: hold what the first poll acquired
                        until killed
    --pace R            process at most R records a second (a slow consumer,
                        so that a test's faults happen while it reads)

ACCEPT otherwise. After each poll it commits its acknowledgements
synchronously. It runs until STOP_FILE exists (or its own deadline passes),
then closes cleanly.

RESULTS_FILE gets one line per event, flushed before every commit, with T from
time.monotonic() (one clock for every process of the machine):

    start PID T
    r P O D A T      delivered: partition P, offset O, delivery count D,
                     acknowledged with A (accept, release, reject, hold, poison)
    ok P O T         the broker confirmed the acknowledgement of P:O
    fail P O T WHY   the broker refused it
    error T WHY      an error the client reported
    closed T
    timeout T
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from confluent_kafka import AcknowledgeType, ShareConsumer

# A worker that is never told to stop must still end.
DEADLINE_S = 170.0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("bootstrap")
    ap.add_argument("topic")
    ap.add_argument("group")
    ap.add_argument("results")
    ap.add_argument("stop_file")
    ap.add_argument("--release-every", type=int, default=0)
    ap.add_argument("--reject-every", type=int, default=0)
    ap.add_argument("--poison", default="")
    ap.add_argument("--release-always", default="")
    ap.add_argument("--hold", action="store_true")
    ap.add_argument("--pace", type=float, default=0.0)
    args = ap.parse_args()
    poison = tuple(int(x) for x in args.poison.split(":")) if args.poison else None
    release_always = tuple(int(x) for x in args.release_always.split(":")) if args.release_always else None

    out = open(args.results, "a", buffering=1 << 16)
    out.write(f"start {os.getpid()} {time.monotonic()}\n")
    out.flush()

    def on_error(err):
        out.write(f"error {time.monotonic()} {str(err).replace(chr(10), ' ')}\n")

    def on_commit(offsets, exception):
        now = time.monotonic()
        for tp, offs in offsets.items():
            for o in sorted(offs):
                if exception is None:
                    out.write(f"ok {tp.partition} {o} {now}\n")
                else:
                    why = str(exception).replace("\n", " ")
                    out.write(f"fail {tp.partition} {o} {now} {why}\n")

    c = ShareConsumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "share.acknowledgement.mode": "explicit",
            "error_cb": on_error,
        }
    )
    c.set_acknowledgement_commit_callback(on_commit)
    c.subscribe([args.topic])
    deadline = time.monotonic() + DEADLINE_S
    try:
        while not os.path.exists(args.stop_file):
            if time.monotonic() > deadline:
                out.write(f"timeout {time.monotonic()}\n")
                break
            msgs = c.poll(0.5)
            if not msgs:
                # Confirmations that arrived during the poll reach the file even
                # when no record comes after them.
                out.flush()
                continue
            now = time.monotonic()
            for m in msgs:
                if m.error():
                    out.write(f"error {now} {m.error()}\n")
                    continue
                p, o, d = m.partition(), m.offset(), m.delivery_count() or 0
                if poison is not None and (p, o) == poison:
                    out.write(f"r {p} {o} {d} poison {now}\n")
                    out.flush()
                    os._exit(3)
                if args.hold:
                    out.write(f"r {p} {o} {d} hold {now}\n")
                    continue
                if release_always is not None and (p, o) == release_always:
                    kind, ack = "release", AcknowledgeType.RELEASE
                elif args.reject_every and o % args.reject_every == 0:
                    kind, ack = "reject", AcknowledgeType.REJECT
                elif args.release_every and o % args.release_every == 0 and d == 1:
                    kind, ack = "release", AcknowledgeType.RELEASE
                else:
                    kind, ack = "accept", AcknowledgeType.ACCEPT
                out.write(f"r {p} {o} {d} {kind} {now}\n")
                c.acknowledge(m, ack)
            out.flush()
            if args.hold:
                # Hold the records until killed: no more polls (a poll would
                # accept them in implicit mode and is refused in explicit mode).
                while not os.path.exists(args.stop_file) and time.monotonic() < deadline:
                    time.sleep(0.05)
                break
            try:
                c.commit_sync(30)
            except Exception as e:  # noqa: BLE001 - every failure is recorded
                out.write(f"error {time.monotonic()} commit {str(e).replace(chr(10), ' ')}\n")
            out.flush()
            if args.pace > 0:
                # Rate limiting, not synchronisation: the worker's own pace,
                # between polls (what it holds is acknowledged first).
                time.sleep(len(msgs) / args.pace)
        out.flush()
        c.close()
        out.write(f"closed {time.monotonic()}\n")
    finally:
        out.flush()
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
