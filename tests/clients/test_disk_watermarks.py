"""Disk watermarks on a real small file system: a 48 MiB tmpfs mounted by the
test under the broker's data directory. Filled with bulk records, bulk produce
is refused first (a retriable error, nothing lost), critical produce is still
accepted; once the bulk topic is deleted, everything resumes by itself. No
partition is poisoned and the broker never stops."""

from __future__ import annotations

import subprocess
import time
import urllib.request

from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient

from harness import Broker
from rdkafka_helpers import create_topic

VALUE = b"d" * 65_536


def level(broker: Broker) -> int:
    text = urllib.request.urlopen(f"http://127.0.0.1:{broker.http_port}/metrics", timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith("veltrix_disk_watermark_level "):
            return int(float(line.split()[-1]))
    raise AssertionError("no veltrix_disk_watermark_level")


def until(what: str, check, seconds: float = 20.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"not within {seconds} s: {what}")


def produce(bootstrap: str, topic: str, count: int) -> tuple[int, list[str]]:
    """Sends `count` 64 KiB records with acks=all; (delivered, errors)."""
    delivered, errors = [0], []

    def report(err, _msg):
        if err is None:
            delivered[0] += 1
        else:
            errors.append(err.name())

    p = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "message.timeout.ms": 3000,
            # Batches within the topics' max.message.bytes (512 KiB).
            "batch.size": 262_144,
        }
    )
    for _ in range(count):
        while True:
            try:
                p.produce(topic, VALUE, on_delivery=report)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    p.flush(30)
    return delivered[0], errors


def test_bulk_is_refused_first_critical_keeps_writing_and_space_coming_back_clears_it(veltrix_bin, tmp_path):
    workdir = tmp_path / "broker"
    data = workdir / "data"
    data.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(data)], check=True)
    config = tmp_path / "veltrix.toml"
    config.write_text(
        "[broker]\ndisk_bulk_free_percent_min = 50\ndisk_standard_free_percent_min = 25\n"
        "disk_reserve_bytes_min = 4_194_304\n"
    )
    broker = Broker(veltrix_bin, workdir, ["--config", str(config)])
    try:
        broker.start()
        create_topic(broker.bootstrap, "bulk", 1, {"veltrix.tier": "bulk", "segment.bytes": "1048576", "max.message.bytes": "524288"})
        create_topic(broker.bootstrap, "critical", 1, {"veltrix.tier": "critical", "segment.bytes": "1048576", "max.message.bytes": "524288"})
        assert level(broker) == 0

        # 48 MiB of bulk records against a disk that refuses bulk at half full.
        delivered, errors = produce(broker.bootstrap, "bulk", 768)
        print(f"bulk: {delivered} delivered ({delivered * 64} KiB), {len(errors)} refused: {sorted(set(errors))}")
        assert errors, "bulk produce was refused once the disk was half full"
        assert set(errors) <= {"KAFKA_STORAGE_ERROR", "_MSG_TIMED_OUT"}, errors
        # Refused from half full (24 MiB, 384 records); what was in flight then
        # still lands, and what arrives before the next reading of the free
        # space (at most DISK_READING_MS_MAX old). Either way bulk stops well
        # short of the standard watermark (36 MiB, 576 records): 500 is 31 MiB.
        # (On a loaded machine 441 were seen once, against an earlier bound of 440.)
        assert 300 <= delivered <= 500, delivered
        assert until("bulk watermark", lambda: level(broker) >= 1)

        # Critical records still go in.
        delivered, errors = produce(broker.bootstrap, "critical", 20)
        assert (delivered, errors) == (20, []), errors

        # Space comes back: the bulk topic is deleted, the level clears, bulk
        # produce resumes.
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        for f in admin.delete_topics(["bulk"], operation_timeout=10).values():
            f.result(timeout=20)
        until("the watermark clears", lambda: level(broker) == 0)
        create_topic(broker.bootstrap, "bulk-again", 1, {"veltrix.tier": "bulk"})
        delivered, errors = produce(broker.bootstrap, "bulk-again", 20)
        assert (delivered, errors) == (20, []), errors

        log = broker.log_text()
        assert "disk watermark crossed" in log and "disk watermark cleared" in log
        assert "poison" not in log, broker.log_tail()
    finally:
        problems = broker.stop()
        subprocess.run(["umount", str(data)], check=False)
    assert not problems, problems
