"""Produce and fetch throughput of a running Veltrix broker, driven by real Kafka clients.

scripts/bench-clients starts the broker and calls this module once per round
(`round`) and once at the end (`summary`); docs/BENCHMARKS.md ("Produce and
fetch with a real client") explains the method and records a run.

A round measures, in this order:

1. Python's own cost per record, without a broker (`overhead`): a loop calling
   a no-op function, confluent-kafka's `produce()` into librdkafka's queue
   while the bootstrap address refuses connections (nothing is ever sent), and
   serving the delivery callbacks of those queued records after `purge()`.
   Together they estimate what one Python thread can produce per second
   whatever the broker does; each cell also records its Python thread's CPU
   time per record, the same cost measured under load.
2. Every cell of the matrix: record size (100 B, 1 KiB) x partitions (1, 6) x
   `enable.idempotence` (false; true when the broker advertises
   InitProducerId), each with two clients one after the other: confluent-kafka
   in this process (`python`), then librdkafka's C path through kcat (`kcat`).
   A cell creates a fresh topic with the admin client, produces to it with
   acks=all, linger.ms=5, batch.size=1000000, no compression, no keys (so
   librdkafka's default sticky partitioner spreads records over the
   partitions), then reads everything back from offset 0 by explicit
   assignment (no consumer group), checks the counts, and deletes the topic.

Produce counts only records whose delivery report said success; a failed
delivery, a record missing from the log, an unexpected record or a client error
makes the round fail (exit status 1) after every cell has run. The Python
producer runs for `--seconds` (or `--max-records`); kcat produces a fixed count
from a file (`kcat -P -l FILE -c N`), sized in round 1 by a short probe so that
it also takes about `--seconds`.

For every phase the round records, besides records/s and MB/s (MB = 10^6 bytes
of record values; keys, headers and batch framing not counted), the CPU time
the broker, the client, their busiest threads and the whole machine spent, as
deltas of /proc/PID/stat, /proc/PID/task/*/stat, getrusage and /proc/stat, in
cores (CPU seconds per wall second), and the disk's writes, flushes and busy
time from /proc/diskstats. That tells which side bounds each number. The fetch
clock stops at the last expected record, not at the end-of-partition events
(see python_fetch). All of it goes to one JSON file per round; `summary`
prints medians across rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

import confluent_kafka
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

SIZES = (100, 1024)
PARTITIONS = (1, 6)
CLIENTS = ("python", "kcat")

API_INIT_PRODUCER_ID = 22
API_DELETE_TOPICS = 20
API_API_VERSIONS = 18

CLK_TCK = os.sysconf("SC_CLK_TCK")

# Producer settings shared by both clients (kcat gets them as -X name=value).
# batch.size stays at librdkafka's ceiling without raising message.max.bytes
# (1,000,000); the broker accepts batches up to 1 MiB + 12 bytes.
PRODUCER_CONFIG = {
    "acks": "all",
    "linger.ms": "5",
    "batch.size": "1000000",
    "compression.codec": "none",
}

# Record values: printable ASCII (kcat splits its input on newlines), 64
# distinct values per size so that neighbouring records differ.
_PATTERN = bytes(range(33, 127)) * 24


def values_for(size: int, count: int = 64) -> list[bytes]:
    return [(_PATTERN[i:] + _PATTERN)[:size] for i in range(count)]


# ---------------------------------------------------------------------------
# CPU accounting


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3 of the man page); utime and stime are
    # fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def process_alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def machine_cpu_seconds() -> dict[str, float]:
    """CPU seconds of the whole machine since boot, from /proc/stat.

    busy: everything but idle and iowait; irq: hard and soft interrupts (the
    loopback's packet processing lands partly here, charged to no process);
    steal: time the hypervisor gave to other guests.
    """
    with open("/proc/stat") as f:
        parts = f.readline().split()
    user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in parts[1:9])
    return {
        "machine": (user + nice + system + irq + softirq + steal) / CLK_TCK,
        "irq": (irq + softirq) / CLK_TCK,
        "steal": steal / CLK_TCK,
    }


def thread_cpu_seconds(pid: int) -> dict[int, tuple[str, float]]:
    """{thread id: (thread name, utime + stime)} of every thread of a process."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                data = f.read()
        except (FileNotFoundError, ProcessLookupError):
            continue
        name = data[data.index("(") + 1 : data.rindex(")")]
        fields = data.rsplit(")", 1)[1].split()
        out[int(tid)] = (name, (int(fields[11]) + int(fields[12])) / CLK_TCK)
    return out


def busiest_threads(start: dict, end: dict, wall: float, n: int = 3) -> list[list]:
    """The n threads that used the most CPU between two samples: [name, cores]."""
    used = []
    for tid, (name, cpu) in end.items():
        before = start.get(tid, (name, 0.0))[1]
        used.append((cpu - before, name))
    used.sort(reverse=True)
    return [[name, round(cpu / wall, 3)] for cpu, name in used[:n] if cpu > 0]


def disk_counters(device: str | None) -> dict[str, float]:
    """Write and flush counters of one block device, from /proc/diskstats."""
    if not device:
        return {}
    with open("/proc/diskstats") as f:
        for line in f:
            fields = line.split()
            if fields[2] == device:
                return {
                    "disk_writes": int(fields[7]),
                    "disk_write_bytes": int(fields[9]) * 512,
                    "disk_busy_ms": int(fields[12]),
                    "disk_flushes": int(fields[18]) if len(fields) > 18 else 0,
                }
    return {}


class Meter:
    """Deltas over one phase: wall clock; CPU of the broker, of this process
    and its children, of the whole machine; the busiest threads of the broker
    and of the client; the disk under test's writes, flushes and busy time."""

    def __init__(self, broker_pid: int, disk: str | None):
        self.broker_pid = broker_pid
        self.disk = disk
        # Set by the kcat runner: per-thread CPU of the kcat process, sampled
        # while it runs, and when the last sample was taken.
        self.child_threads: dict = {}
        self.child_threads_wall: float | None = None

    def __enter__(self) -> "Meter":
        self._broker_threads = thread_cpu_seconds(self.broker_pid)
        self._self_threads = thread_cpu_seconds(os.getpid())
        self._start = self._sample()
        return self

    def _sample(self) -> dict:
        t = os.times()
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return {
            "wall": time.monotonic(),
            "broker": proc_cpu_seconds(self.broker_pid),
            "self": t.user + t.system,
            "main_thread": time.thread_time(),
            "children": children.ru_utime + children.ru_stime,
            **machine_cpu_seconds(),
            **disk_counters(self.disk),
        }

    def __exit__(self, *exc) -> None:
        end = self._sample()
        self.delta = {k: end[k] - self._start[k] for k in end}
        wall = self.delta["wall"]
        self.broker_top = busiest_threads(self._broker_threads, thread_cpu_seconds(self.broker_pid), wall)
        self.self_top = busiest_threads(self._self_threads, thread_cpu_seconds(os.getpid()), wall)

    def report(self, client: str) -> dict:
        """CPU use in cores (CPU seconds per wall second) over the phase."""
        d = self.delta
        wall = d["wall"]
        client_cpu = d["children"] if client == "kcat" else d["self"]
        out = {
            "wall_s": wall,
            "broker_cpu_s": d["broker"],
            "client_cpu_s": client_cpu,
            "machine_cpu_s": d["machine"],
            "broker_cores": d["broker"] / wall,
            "client_cores": client_cpu / wall,
            "machine_cores": d["machine"] / wall,
            "irq_cores": d["irq"] / wall,
            "steal_cores": d["steal"] / wall,
            # What neither the broker nor the client used: interrupts, this
            # script's own work around kcat, other processes (a noisy neighbour
            # shows here). A difference of counters the kernel keeps apart
            # (/proc/stat's ticks, each process's own scaled times) and reads
            # at slightly different instants: when nothing else ran it can
            # come out a tick or two below zero, which means none.
            "other_cores": max(0.0, d["machine"] - d["broker"] - client_cpu
                               - (0 if client == "python" else d["self"])) / wall,
            "broker_busiest_threads": self.broker_top,
        }
        if client == "python":
            # The thread that calls produce()/consume() and runs the callbacks;
            # near 1.0 means the run was bounded by Python.
            out["client_main_thread_cores"] = d["main_thread"] / wall
            out["client_busiest_threads"] = self.self_top
        elif self.child_threads_wall:
            out["client_busiest_threads"] = busiest_threads({}, self.child_threads, self.child_threads_wall)
        if "disk_writes" in d:
            out.update(
                disk_write_mb_per_s=d["disk_write_bytes"] / wall / 1e6,
                disk_writes_per_s=d["disk_writes"] / wall,
                disk_flushes_per_s=d["disk_flushes"] / wall,
                disk_busy=d["disk_busy_ms"] / 1000 / wall,
            )
        return out


# ---------------------------------------------------------------------------
# Broker helpers


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(data)} of {n} bytes")
        data.extend(chunk)
    return bytes(data)


def advertised_apis(bootstrap: str) -> dict[int, tuple[int, int]]:
    """ApiVersions v0, sent by hand: exactly what the broker advertises."""
    host, port = bootstrap.rsplit(":", 1)
    client_id = b"veltrix-bench-clients"
    body = struct.pack(">hhih", API_API_VERSIONS, 0, 1, len(client_id)) + client_id
    with socket.create_connection((host, int(port)), timeout=5.0) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        data = _recv_exact(sock, size)
    _, error_code, count = struct.unpack_from(">ihi", data, 0)
    if error_code != 0:
        raise RuntimeError(f"ApiVersions answered error {error_code}")
    return {k: (lo, hi) for k, lo, hi in (struct.unpack_from(">hhh", data, 10 + 6 * i) for i in range(count))}


def create_topic(admin: AdminClient, name: str, partitions: int) -> None:
    for future in admin.create_topics([NewTopic(name, partitions, 1)], operation_timeout=10).values():
        future.result(timeout=30)


def delete_topic(admin: AdminClient, name: str) -> None:
    for future in admin.delete_topics([name], operation_timeout=10).values():
        future.result(timeout=30)


def watermarks(bootstrap: str, topic: str, partitions: int) -> list[tuple[int, int]]:
    """(low, high) of every partition, asked of the broker (ListOffsets)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "veltrix-bench-unused", "enable.auto.commit": False})
    try:
        return [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False) for p in range(partitions)]
    finally:
        c.close()


# ---------------------------------------------------------------------------
# Python's own cost per record, without a broker


def measure_overhead(seconds: float, max_records: int) -> dict:
    """Python's cost per record on the producing thread, no broker involved.

    - `loop_ns`: a for loop calling a no-op function with (topic, value), the
      floor of any Python produce loop;
    - `produce_ns`: `Producer.produce()` of one record into librdkafka's queue
      (the value is copied, the record queued), in rounds of at most 100,000
      records (librdkafka's default queue.buffering.max.messages, as in the
      cells); the bootstrap address is a bound socket that does not listen, so
      nothing is ever sent;
    - `callback_ns`: serving one delivery callback, for the records of each
      round after `purge()`. They report _PURGE_QUEUE, which builds a
      KafkaError per record; a success passes None, so this is an upper bound.
    The cells measure the same thing under load directly: their Python main
    thread's CPU time per record (`client_main_thread_ns_per_record`).
    """
    out: dict = {"sizes": {}}
    sink = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sink.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    closed = f"127.0.0.1:{sink.getsockname()[1]}"
    # Below librdkafka's default queue.buffering.max.messages (100,000), in
    # whole passes over the 64 values.
    chunk = max(64, min(99_968, max_records) // 64 * 64)
    try:
        for size in SIZES:
            values = values_for(size)

            def noop(topic, value):
                return None

            n = 0
            t0 = time.perf_counter()
            deadline = t0 + seconds
            while n < max_records and time.perf_counter() < deadline:
                for v in values:
                    noop("t", v)
                n += len(values)
            loop_ns = (time.perf_counter() - t0) / n * 1e9

            calls = [0]

            def on_delivery(err, msg):
                calls[0] += 1

            p = Producer(
                {
                    "bootstrap.servers": closed,
                    "message.timeout.ms": 600_000,
                    "log_level": 0,
                    "error_cb": lambda err: None,
                    "on_delivery": on_delivery,
                    **PRODUCER_CONFIG,
                }
            )
            produce = p.produce
            n = 0
            produce_s = callback_s = 0.0
            started = time.perf_counter()
            while n < max_records and time.perf_counter() - started < 2 * seconds:
                calls[0] = 0
                queued = 0
                t0 = time.perf_counter()
                while queued < chunk:
                    for v in values:
                        produce("overhead", v)
                    queued += len(values)
                produce_s += time.perf_counter() - t0
                p.purge(in_queue=True, in_flight=True, blocking=True)
                t0 = time.perf_counter()
                deadline = t0 + 60
                while calls[0] < queued and time.perf_counter() < deadline:
                    p.poll(0.1)
                callback_s += time.perf_counter() - t0
                if calls[0] != queued:
                    raise RuntimeError(f"overhead: {calls[0]} of {queued} purged records reported")
                n += queued
            del p
            produce_ns, callback_ns = produce_s / n * 1e9, callback_s / n * 1e9
            out["sizes"][str(size)] = {
                "records": n,
                "loop_ns": loop_ns,
                "produce_ns": produce_ns,
                "callback_ns": callback_ns,
                "python_ceiling_records_per_s": 1e9 / (produce_ns + callback_ns),
            }
    finally:
        sink.close()
    return out


# ---------------------------------------------------------------------------
# Python client (confluent-kafka)


def python_produce(bootstrap: str, topic: str, size: int, idempotence: bool, seconds: float, max_records: int,
                   meter: Meter) -> dict:
    """Produces for `seconds` (or `max_records`), then flushes; counts acknowledged records."""
    errors: list = []
    ok = [0]
    failed: list = []

    def on_delivery(err, msg):
        if err is None:
            ok[0] += 1
        else:
            failed.append(str(err))

    config = {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": idempotence,
        "error_cb": lambda err: errors.append(str(err)),
        "on_delivery": on_delivery,
        **PRODUCER_CONFIG,
    }
    if not idempotence:
        # Without idempotence a retried request could store a record twice; no
        # retries makes any broker error a failed delivery the count sees.
        config["message.send.max.retries"] = 0
    p = Producer(config)
    values = values_for(size, 1000)
    # One record before the clock starts: connects, fetches metadata and, for
    # an idempotent producer, waits for its producer id (without it, a new
    # idempotent producer held its first records about 500 ms in tests here).
    p.produce(topic, values[0])
    if p.flush(30) != 0 or ok[0] != 1:
        raise RuntimeError(f"{topic}: the warm-up record was not acknowledged: {failed} {errors}")
    ok[0] = 0
    produce, poll = p.produce, p.poll
    sent = 0
    # Time the producing thread spent waiting because librdkafka's queue was
    # full (queue.buffering.max.messages, 100,000 by default): while it waits,
    # the bound is downstream of Python (librdkafka, the broker, the disk).
    full_waits = 0
    full_s = 0.0
    hard_deadline = time.monotonic() + seconds * 3 + 60
    with meter:
        end = time.monotonic() + seconds
        while sent < max_records:
            for v in values:
                while True:
                    try:
                        produce(topic, v)
                        break
                    except BufferError:
                        # librdkafka's queue is full: serve delivery reports.
                        t0 = time.monotonic()
                        poll(0.001)
                        full_waits += 1
                        full_s += time.monotonic() - t0
                        if t0 > hard_deadline:
                            raise RuntimeError(f"{topic}: producer queue stayed full") from None
            sent += len(values)
            poll(0)
            if time.monotonic() >= end:
                break
        produce_end = time.monotonic()
        remaining = p.flush(max(1.0, hard_deadline - time.monotonic()))
        flush_s = time.monotonic() - produce_end
    result = {
        "warmup_records": 1,
        "queue_full_waits": full_waits,
        "queue_full_s": full_s,
        "flush_s": flush_s,
        "sent": sent,
        "records": ok[0],
        "failed": len(failed),
        "unacknowledged": remaining,
        "first_failures": failed[:3],
        "client_errors": errors[:10],
    }
    return result


def python_fetch(bootstrap: str, topic: str, partitions: int, ends: list[int], deadline_s: float, meter: Meter,
                 fetch_queue_backoff_ms: int) -> dict:
    """Reads every partition from offset 0 to its end by explicit assignment.

    The clock stops at the last expected record rather than at the partitions'
    EOF events: librdkafka reports EOF only after a fetch at the end of the log
    comes back empty, which the broker holds for fetch.wait.max.ms (500 ms) as
    a long poll, a fixed cost that says nothing about throughput. The
    watermarks, checked before, already prove that nothing follows.
    """
    errors: list = []
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            # confluent-kafka refuses to create a Consumer without group.id
            # ("group.id must be set"), even one that never subscribes; with
            # assign() and nothing committed the group is never used.
            "group.id": "veltrix-bench-unused",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            # librdkafka stops fetching a partition for this long (settable
            # since v2.2.0) once its local queue holds queued.min.messages
            # (100,000) records; with the default, 1000 ms, a consumer that
            # drains the queue faster than that idles, and 100 B reads stall
            # near 200,000 records/s whatever the broker does.
            "fetch.queue.backoff.ms": fetch_queue_backoff_ms,
            "error_cb": lambda err: errors.append(str(err)),
        }
    )
    total = sum(ends)
    records = 0
    nbytes = 0
    problems: list[str] = []
    try:
        with meter:
            deadline = time.monotonic() + deadline_s
            c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
            while records < total:
                if time.monotonic() > deadline:
                    problems.append(f"fetch took longer than {deadline_s:.0f} s; {records} of {total} records read")
                    break
                # consume() returns early only once it has num_messages; the
                # short timeout keeps the last, partial batch from waiting.
                for m in c.consume(num_messages=10_000, timeout=0.01):
                    err = m.error()
                    if err is None:
                        records += 1
                        nbytes += len(m)
                    elif err.code() == KafkaError._PARTITION_EOF:
                        if m.offset() != ends[m.partition()]:
                            problems.append(f"partition {m.partition()} EOF at {m.offset()}, "
                                            f"expected {ends[m.partition()]}")
                    else:
                        problems.append(f"consume error: {err}")
                if problems:
                    break
    finally:
        c.close()
    return {"records": records, "bytes": nbytes, "problems": problems, "client_errors": errors[:10]}


# ---------------------------------------------------------------------------
# kcat (librdkafka's C path)


def kcat_input(scratch: Path, size: int, count: int) -> Path:
    """A file of at least `count` newline-separated values of `size` bytes."""
    path = scratch / f"kcat-input-{size}.txt"
    meta = scratch / f"kcat-input-{size}.count"
    have = int(meta.read_text()) if meta.exists() and path.exists() else 0
    if have >= count:
        return path
    block_records = 1000
    block = b"".join(v + b"\n" for v in values_for(size, block_records))
    blocks = -(-count // block_records)
    with open(path, "wb") as f:
        for _ in range(blocks):
            f.write(block)
        # On the disk under test: flushed now, not written back during a cell.
        f.flush()
        os.fsync(f.fileno())
    meta.write_text(str(blocks * block_records))
    return path


def kcat_producer_args(bootstrap: str, topic: str, idempotence: bool) -> list[str]:
    args = ["kcat", "-P", "-b", bootstrap, "-t", topic]
    config = dict(PRODUCER_CONFIG, **{"enable.idempotence": "true" if idempotence else "false"})
    if not idempotence:
        config["message.send.max.retries"] = "0"
    for k, v in config.items():
        args += ["-X", f"{k}={v}"]
    return args


def run_sampled(args: list[str], stdout, stderr, timeout_s: float, meter: Meter | None) -> int:
    """Runs a client process to completion, sampling its threads' CPU for `meter`."""
    started = time.monotonic()
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr)
    try:
        while True:
            try:
                return proc.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                pass
            if meter is not None:
                sample = thread_cpu_seconds(proc.pid)
                if sample:
                    meter.child_threads, meter.child_threads_wall = sample, time.monotonic() - started
            if time.monotonic() - started > timeout_s:
                raise TimeoutError(f"{args[0]} {args[1]} did not finish within {timeout_s:.0f} s")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def kcat_produce(bootstrap: str, topic: str, size: int, idempotence: bool, count: int, scratch: Path,
                 timeout_s: float, meter: Meter | None) -> dict:
    """`kcat -P -l FILE -c count`: exits 0 only if every delivery succeeded."""
    path = kcat_input(scratch, size, count)
    args = kcat_producer_args(bootstrap, topic, idempotence) + ["-l", str(path), "-c", str(count)]
    stderr_path = scratch / "kcat-produce.stderr"
    with open(stderr_path, "wb") as err:
        if meter is None:
            t0 = time.monotonic()
            code = run_sampled(args, subprocess.DEVNULL, err, timeout_s, None)
            wall = time.monotonic() - t0
        else:
            with meter:
                code = run_sampled(args, subprocess.DEVNULL, err, timeout_s, meter)
            wall = meter.delta["wall"]
    stderr = stderr_path.read_text(errors="replace")
    return {
        "command": " ".join(args),
        "exit": code,
        "records": count if code == 0 else 0,
        "sent": count,
        "failed": 0 if code == 0 else count,
        "stderr": stderr[-2000:],
        "wall_s": wall,
    }


def kcat_fetch(bootstrap: str, topic: str, total: int, scratch: Path, timeout_s: float, meter: Meter) -> dict:
    """`kcat -C -o beginning -c TOTAL -f .`: one output byte per record, to count them cheaply.

    -c makes kcat exit at the last expected record. Not -e: kcat stops each
    partition as it reaches its end, and stopping one waits for the fetch in
    flight, which the broker holds for fetch.wait.max.ms (500 ms) when the
    partitions still fetched have nothing new; a missing record shows as a
    timeout instead.
    """
    args = ["kcat", "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-c", str(total), "-q", "-f", "."]
    out_path = scratch / "kcat-fetch.out"
    stderr_path = scratch / "kcat-fetch.stderr"
    with open(out_path, "wb") as out, open(stderr_path, "wb") as err, meter:
        code = run_sampled(args, out, err, timeout_s, meter)
    records = out_path.stat().st_size
    out_path.unlink()
    return {
        "command": " ".join(args),
        "exit": code,
        "records": records,
        "stderr": stderr_path.read_text(errors="replace")[-2000:],
    }


# ---------------------------------------------------------------------------
# A round


def cell_name(client: str, size: int, partitions: int, idempotence: bool) -> str:
    size_name = "100B" if size == 100 else "1KiB"
    return f"{client}/{size_name}/{partitions}p/{'idem' if idempotence else 'plain'}"


def rate(records: int, nbytes: int, wall: float) -> dict:
    return {"records_per_s": records / wall, "mb_per_s": nbytes / wall / 1e6}


def run_cell(args, admin, client: str, size: int, partitions: int, idempotence: bool, kcat_counts: dict,
             can_delete: bool) -> dict:
    name = cell_name(client, size, partitions, idempotence)
    topic = "bench-r{}-{}".format(args.round, name.replace("/", "-"))
    cell: dict = {"name": name, "client": client, "size": size, "partitions": partitions,
                  "idempotence": idempotence, "topic": topic, "problems": []}
    problems = cell["problems"]
    create_topic(admin, topic, partitions)

    # Produce.
    meter = Meter(args.broker_pid, args.disk)
    if client == "python":
        produced = python_produce(args.bootstrap, topic, size, idempotence, args.seconds, args.max_records, meter)
        if produced["failed"] or produced["unacknowledged"]:
            problems.append(f"{produced['failed']} failed and {produced['unacknowledged']} unacknowledged deliveries"
                            f" of {produced['sent']}: {produced['first_failures']}")
    else:
        count = kcat_counts[name]
        produced = kcat_produce(args.bootstrap, topic, size, idempotence, count, args.scratch,
                                args.seconds * 10 + 120, meter)
        if produced["exit"] != 0:
            problems.append(f"kcat -P exited {produced['exit']}: {produced['stderr'][-500:]}")
    if produced.get("client_errors"):
        problems.append(f"producer client errors: {produced['client_errors']}")
    wall = meter.delta["wall"]
    produced.update(rate(produced["records"], produced["records"] * size, wall))
    produced.update(meter.report(client))
    if client == "python" and produced["records"]:
        produced["client_main_thread_ns_per_record"] = meter.delta["main_thread"] / produced["records"] * 1e9
    cell["produce"] = produced

    # What the log holds must be exactly what was acknowledged.
    marks = watermarks(args.bootstrap, topic, partitions)
    cell["watermarks"] = marks
    ends = [hi for _, hi in marks]
    if produced["records"] == 0:
        problems.append("no record was acknowledged")
    expected = produced["records"] + produced.get("warmup_records", 0)
    if any(lo != 0 for lo, _ in marks) or sum(ends) != expected:
        problems.append(f"log holds {marks}, sum {sum(ends)}; {expected} records acknowledged")

    # Fetch everything back.
    meter = Meter(args.broker_pid, args.disk)
    fetch_deadline = max(60.0, args.seconds * 10)
    if client == "python":
        fetched = python_fetch(args.bootstrap, topic, partitions, ends, fetch_deadline, meter,
                               args.fetch_queue_backoff_ms)
        problems += fetched["problems"]
        if fetched["client_errors"]:
            problems.append(f"consumer client errors: {fetched['client_errors']}")
        if fetched["bytes"] != fetched["records"] * size:
            problems.append(f"fetched {fetched['bytes']} bytes in {fetched['records']} records of {size} bytes")
    else:
        fetched = kcat_fetch(args.bootstrap, topic, sum(ends), args.scratch, fetch_deadline, meter)
        if fetched["exit"] != 0:
            problems.append(f"kcat -C exited {fetched['exit']}: {fetched['stderr'][-500:]}")
    if fetched["records"] != sum(ends):
        problems.append(f"fetched {fetched['records']} records, the log holds {sum(ends)}")
    fetched.update(rate(fetched["records"], fetched["records"] * size, meter.delta["wall"]))
    fetched.update(meter.report(client))
    if client == "python" and fetched["records"]:
        fetched["client_main_thread_ns_per_record"] = meter.delta["main_thread"] / fetched["records"] * 1e9
    cell["fetch"] = fetched

    if can_delete:
        delete_topic(admin, topic)
    return cell


def calibrate_kcat(args, admin, cells, can_delete: bool) -> dict:
    """Records per kcat cell so that producing takes about --seconds (probed in round 1)."""
    path = args.results / "kcat-counts.json"
    if path.exists():
        return json.loads(path.read_text())
    counts = {}
    for size, partitions, idempotence in cells:
        name = cell_name("kcat", size, partitions, idempotence)
        if args.smoke:
            counts[name] = args.kcat_smoke_records
            continue
        probe = 200_000 if size == 100 else 40_000
        topic = "bench-probe-" + name.replace("/", "-")
        create_topic(admin, topic, partitions)
        r = kcat_produce(args.bootstrap, topic, size, idempotence, probe, args.scratch, 300, None)
        if r["exit"] != 0:
            raise RuntimeError(f"kcat probe {name} failed: {r['stderr'][-500:]}")
        if can_delete:
            delete_topic(admin, topic)
        # The probe's wall time includes start-up; the count errs on the short side.
        cap = args.kcat_max_bytes // (size + 1)
        counts[name] = int(min(cap, max(probe, probe / r["wall_s"] * args.seconds)))
        print(f"  kcat probe {name}: {probe / r['wall_s']:,.0f} records/s -> {counts[name]:,} records per run",
              file=sys.stderr, flush=True)
    path.write_text(json.dumps(counts, indent=2))
    return counts


def prepare_kcat_inputs(args, counts: dict) -> None:
    """Writes kcat's input files before any cell runs (see kcat_input)."""
    for size in SIZES:
        size_name = "100B" if size == 100 else "1KiB"
        needed = [n for name, n in counts.items() if f"/{size_name}/" in name]
        if needed:
            kcat_input(args.scratch, size, max(needed))


def cmd_round(args) -> int:
    apis = advertised_apis(args.bootstrap)
    idempotence_options = [False]
    notes = []
    if API_INIT_PRODUCER_ID in apis:
        idempotence_options.append(True)
    else:
        notes.append("the broker does not advertise InitProducerId: enable.idempotence=true cells skipped")
    can_delete = API_DELETE_TOPICS in apis
    if not can_delete:
        notes.append("the broker does not advertise DeleteTopics: topics are kept until the run ends")
    for note in notes:
        print(f"  note: {note}", file=sys.stderr, flush=True)

    cells = [(s, p, i) for s in SIZES for p in PARTITIONS for i in idempotence_options]
    if args.filter:
        cells = [c for c in cells if any(args.filter in cell_name(cl, *c) for cl in CLIENTS)]
    # Even rounds run the matrix backwards, so that no cell always runs first.
    if args.round % 2 == 0:
        cells.reverse()

    result: dict = {
        "round": args.round,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": args.seconds,
        "smoke": args.smoke,
        "fetch_queue_backoff_ms": args.fetch_queue_backoff_ms,
        "confluent_kafka": confluent_kafka.__version__,
        "librdkafka_python": confluent_kafka.libversion()[0],
        "notes": notes,
        "advertised_apis": sorted(apis),
    }
    print(f"  Python overhead (no broker), {args.overhead_seconds} s per measurement", file=sys.stderr, flush=True)
    result["overhead"] = measure_overhead(args.overhead_seconds, args.overhead_records)

    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    kcat_counts = calibrate_kcat(args, admin, cells, can_delete)
    prepare_kcat_inputs(args, kcat_counts)
    result["cells"] = []
    failed = 0
    for size, partitions, idempotence in cells:
        for client in CLIENTS:
            name = cell_name(client, size, partitions, idempotence)
            if args.filter and args.filter not in name:
                continue
            if not process_alive(args.broker_pid):
                # Every cell would only wait for its timeouts.
                result["cells"].append({"name": name, "problems": ["the broker is not running"]})
                failed += 1
                print(f"  {name:<22} FAILED: the broker is not running", file=sys.stderr, flush=True)
                continue
            try:
                cell = run_cell(args, admin, client, size, partitions, idempotence, kcat_counts, can_delete)
            except Exception as e:  # a broken cell must not hide the others
                cell = {"name": name, "problems": [f"{type(e).__name__}: {e}"]}
            result["cells"].append(cell)
            p, f = cell.get("produce"), cell.get("fetch")
            line = f"  {name:<22}"
            if p and f:
                line += (f" produce {p['records_per_s']:>10,.0f} rec/s {p['mb_per_s']:>7.1f} MB/s"
                         f" (broker {p['broker_cores']:.2f}, client {p['client_cores']:.2f} cores)"
                         f" | fetch {f['records_per_s']:>10,.0f} rec/s {f['mb_per_s']:>7.1f} MB/s"
                         f" (broker {f['broker_cores']:.2f}, client {f['client_cores']:.2f})")
            if cell["problems"]:
                failed += 1
                line += "  FAILED: " + "; ".join(cell["problems"])
            print(line, file=sys.stderr, flush=True)
    result["failed_cells"] = failed
    args.out.write_text(json.dumps(result, indent=2))
    return 1 if failed else 0


# ---------------------------------------------------------------------------
# Summary across rounds


def bound_of(phase: dict, cores: int) -> str:
    """A reading of the medians: the first resource that was (nearly) saturated.

    A single thread at 0.85 of a core or more is taken as saturated, since a
    thread that also waits now and then cannot reach 1.0 on a shared machine.
    """
    main = phase.get("client_main_thread_cores")
    if main is not None and main >= 0.85:
        return "client: Python thread"
    client_top = phase.get("client_top_thread")
    if client_top and client_top[1] >= 0.85:
        return f"client: {client_top[0]} thread"
    broker_top = phase.get("broker_top_thread")
    if broker_top and broker_top[1] >= 0.85:
        return f"broker: {broker_top[0]} thread"
    if (phase.get("disk_busy") or 0) >= 0.9:
        return "disk"
    if phase["machine_cores"] >= 0.85 * cores:
        return "CPU: machine full"
    return "nothing saturated"


def cmd_summary(args) -> int:
    rounds = []
    for path in sorted(args.results.glob("round-*.json")):
        rounds.append(json.loads(path.read_text()))
    if not rounds:
        print("no rounds to summarise", file=sys.stderr)
        return 1
    cores = os.cpu_count() or 1

    def fio_runs(bs: str) -> list[float]:
        runs = []
        for path in sorted(args.results.glob(f"fio-{bs}-*.json")):
            try:
                runs.append(json.loads(path.read_text())["jobs"][0]["write"]["bw_bytes"] / 1e6)
            except (ValueError, KeyError, IndexError):
                pass
        return runs

    def med(values):
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None

    fio_64k, fio_1m = fio_runs("64k"), fio_runs("1m")
    base, ref = med(fio_64k), med(fio_1m)

    lines = []

    def emit(text=""):
        lines.append(text)
        print(text)

    emit(f"medians of {len(rounds)} round(s); MB = 10^6 bytes of record values")
    emit(f"CPU in cores (CPU s / wall s; the machine has {cores}): broker; client = kcat, or this whole Python "
         "process; py = its main thread; irq = interrupts (loopback packets partly land here); other = everything "
         "else (other processes); all = the whole machine")
    emit("disk = the disk under test: MB/s written, flushes/s, busy = share of the time with I/O in flight")
    emit("qfull = share of the produce time the Python thread waited on a full librdkafka queue")
    if base:
        emit(f"fio, same directory, same run, fsync after every 64 KiB write: median {base:.1f} MB/s "
             f"(rounds: {', '.join(f'{v:.0f}' for v in fio_64k)})")
    if ref:
        emit(f"fio, same directory, same run, fsync after every 1 MiB write:  median {ref:.1f} MB/s "
             f"(rounds: {', '.join(f'{v:.0f}' for v in fio_1m)})")
    emit()
    emit("Python's own cost per record on the producing thread, no broker (medians):")
    for size in SIZES:
        o = [r["overhead"]["sizes"][str(size)] for r in rounds]
        emit(f"  {size:>4} B: loop {med(x['loop_ns'] for x in o):.0f} ns, produce() {med(x['produce_ns'] for x in o):.0f} ns,"
             f" purged-delivery callback {med(x['callback_ns'] for x in o):.0f} ns -> "
             f"{med(x['python_ceiling_records_per_s'] for x in o):,.0f} records/s from one Python thread")
    summary: dict = {"rounds": len(rounds), "fio_64k_mb_per_s": fio_64k, "fio_64k_mb_per_s_median": base,
                     "fio_1m_mb_per_s": fio_1m, "fio_1m_mb_per_s_median": ref,
                     "overhead": {str(s): {k: med(r["overhead"]["sizes"][str(s)][k] for r in rounds)
                                           for k in ("loop_ns", "produce_ns", "callback_ns",
                                                     "python_ceiling_records_per_s")} for s in SIZES},
                     "cells": []}
    names = []
    for r in rounds:
        for c in r["cells"]:
            if c["name"] not in names:
                names.append(c["name"])
    # The matrix in a fixed order, whatever order the rounds ran it in.
    names.sort(key=lambda n: (n.split("/")[1] != "100B", n.split("/")[2], n.split("/")[3] == "idem",
                              n.split("/")[0] != "python"))
    failed = sum(1 for r in rounds for c in r["cells"] if c.get("problems"))
    for r in rounds:
        for c in r["cells"]:
            p = c.get("produce")
            if p and "queue_full_s" in p:
                p["queue_full_share"] = p["queue_full_s"] / p["wall_s"]
    cols = ("queue_full_share", "records_per_s", "mb_per_s", "broker_cores", "client_cores", "client_main_thread_cores",
            "client_main_thread_ns_per_record", "irq_cores", "other_cores", "machine_cores", "steal_cores",
            "disk_write_mb_per_s", "disk_flushes_per_s", "disk_busy")

    def top_thread(runs, phase_name, key):
        """The thread name most often busiest across rounds, with its median cores."""
        tops = [c[phase_name].get(key) or [] for c in runs]
        tops = [t[0] for t in tops if t]
        if not tops:
            return None
        name = statistics.mode(t[0] for t in tops)
        return [name, med(t[1] for t in tops if t[0] == name)]

    def f(v, fmt):
        return "-" if v is None else format(v, fmt)

    for phase_name in ("produce", "fetch"):
        emit()
        emit(f"{phase_name}:")
        head = (f"  {'cell':<22} {'records/s':>10} {'MB/s':>7} {'broker':>6} {'client':>6} {'py':>5} "
                f"{'irq':>4} {'other':>5} {'all':>4} {'disk MB/s':>9} {'flush/s':>7} {'busy':>5}")
        if phase_name == "produce":
            head += f" {'/fio64k':>7} {'/fio1M':>6} {'qfull':>5}"
        emit(head + "  busiest broker / client thread   bound                  MB/s by round")
        for name in names:
            runs = [c for r in rounds for c in r["cells"] if c["name"] == name and phase_name in c]
            if not runs:
                continue
            m = {k: med(c[phase_name].get(k) for c in runs) for k in cols}
            m["broker_top_thread"] = top_thread(runs, phase_name, "broker_busiest_threads")
            m["client_top_thread"] = top_thread(runs, phase_name, "client_busiest_threads")
            bound = bound_of(m, cores)
            threads = " / ".join(f"{t[0]} {t[1]:.2f}" if t else "-"
                                 for t in (m["broker_top_thread"], m["client_top_thread"]))
            line = (f"  {name:<22} {m['records_per_s']:>10,.0f} {m['mb_per_s']:>7.1f} {m['broker_cores']:>6.2f} "
                    f"{m['client_cores']:>6.2f} {f(m['client_main_thread_cores'], '>5.2f'):>5} "
                    f"{m['irq_cores']:>4.2f} {m['other_cores']:>5.2f} {m['machine_cores']:>4.2f} "
                    f"{f(m['disk_write_mb_per_s'], '>9.1f'):>9} {f(m['disk_flushes_per_s'], '>7.0f'):>7} "
                    f"{f(m['disk_busy'], '>5.0%'):>5}")
            ratios = {}
            if phase_name == "produce":
                for key, fio in (("ratio_to_fio_64k", base), ("ratio_to_fio_1m", ref)):
                    ratios[key] = m["mb_per_s"] / fio if fio else None
                line += (f" {f(ratios['ratio_to_fio_64k'], '>7.0%'):>7} {f(ratios['ratio_to_fio_1m'], '>6.0%'):>6}"
                         f" {f(m['queue_full_share'], '>5.0%'):>5}")
            by_round = ", ".join(f"{c[phase_name]['mb_per_s']:.1f}" for c in runs)
            emit(line + f"  {threads:<31} {bound:<22} {by_round}")
            entry = next((e for e in summary["cells"] if e["name"] == name), None)
            if entry is None:
                entry = {"name": name}
                summary["cells"].append(entry)
            entry[phase_name] = dict(m, bound=bound, **ratios,
                                     mb_per_s_rounds=[c[phase_name]["mb_per_s"] for c in runs],
                                     records_rounds=[c[phase_name]["records"] for c in runs])
    notes = sorted({n for r in rounds for n in r.get("notes", [])})
    for n in notes:
        emit(f"note: {n}")
    emit()
    emit(f"cells with problems: {failed}" if failed else "every record acknowledged was read back, in every cell")
    summary["failed_cells"] = failed
    (args.results / "summary.json").write_text(json.dumps(summary, indent=2))
    (args.results / "summary.txt").write_text("\n".join(lines) + "\n")
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("round", help="one round of the matrix against a running broker")
    r.add_argument("--bootstrap", required=True)
    r.add_argument("--broker-pid", type=int, required=True)
    r.add_argument("--round", type=int, required=True)
    r.add_argument("--seconds", type=float, default=10.0)
    r.add_argument("--max-records", type=int, default=100_000_000)
    r.add_argument("--overhead-seconds", type=float, default=2.0)
    r.add_argument("--overhead-records", type=int, default=1_000_000)
    r.add_argument("--kcat-smoke-records", type=int, default=5_000)
    r.add_argument("--kcat-max-bytes", type=int, default=3_000_000_000)
    r.add_argument("--filter", default="")
    r.add_argument("--disk", default=None, help="block device under test, as named in /proc/diskstats")
    r.add_argument("--fetch-queue-backoff-ms", type=int, default=10)
    r.add_argument("--smoke", action="store_true")
    r.add_argument("--scratch", type=Path, required=True)
    r.add_argument("--results", type=Path, required=True)
    r.add_argument("--out", type=Path, required=True)
    s = sub.add_parser("summary", help="medians across the rounds in --results")
    s.add_argument("--results", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "round":
        return cmd_round(args)
    return cmd_summary(args)


if __name__ == "__main__":
    sys.exit(main())
