"""Dead letters (KIP-1191) with confluent-kafka: a share group's rejected and
poison records are copied to its dead-letter topic with their story, one
letter per record, across kill -9 of the broker (5 times while letters
are written, 5 times during a redrive); read back with a plain
consumer. A redrive (not its dry run) needs the broker to take changes
over HTTP: it is refused, with the setting to change, until it does."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from harness import run
from test_share import (
    API_SHARE_FETCH,
    PARTITIONS,
    Workers,
    all_records,
    assert_every_record_done,
    done_records,
    setup,
    wait_for_kill_rounds,
    wait_until,
)

DLQ = "dlq.q"


def read_letters(bootstrap: str, topic: str, want: int, timeout_s: float, group: str = "dlq-reader") -> list:
    """Every record of `topic`, read until `want` arrived and a little after
    (so that one too many would be seen), or the deadline."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "topic.metadata.refresh.interval.ms": 1000,
        }
    )
    c.subscribe([topic])
    letters = []
    deadline = time.monotonic() + timeout_s
    quiet_until = None
    try:
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                letters.append(m)
                continue
            if len(letters) >= want:
                quiet_until = quiet_until or time.monotonic() + 3
                if time.monotonic() > quiet_until:
                    break
    finally:
        c.close()
    return letters


def headers_of(m) -> dict[str, str]:
    return {k: (v or b"").decode() for k, v in (m.headers() or [])}


def test_rejected_records_get_exactly_one_letter_each_across_five_broker_kills(start_broker, tmp_path):
    broker = start_broker()
    if not broker.serves(API_SHARE_FETCH):
        pytest.skip("the broker does not serve ShareFetch")
    records = 30_000
    setup(
        broker.bootstrap,
        "q",
        "sg",
        records,
        **{"share.record.lock.duration.ms": "5000", "errors.deadletterqueue.topic.name": DLQ},
    )
    # The group's setting is shown as Kafka's admin client asks for it.
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    resource = ConfigResource(ResourceType.GROUP, "sg")
    described = admin.describe_configs([resource])[resource].result(15)
    assert described["errors.deadletterqueue.topic.name"].value == DLQ

    workers = Workers(tmp_path, broker.bootstrap, "q", "sg")
    workers.start(3, "--reject-every", "100")
    expected = all_records(records)
    try:
        assert wait_for_kill_rounds(workers, broker, "sg", "q", expected) == 5
    finally:
        problems = workers.stop()
        workers.kill_all()
    assert not problems, problems
    assert_every_record_done(workers.log(), expected)

    rejected = {(p, o) for (p, o) in expected if o % 100 == 0}
    letters = read_letters(broker.bootstrap, DLQ, len(rejected), 90)
    dlq_partitions = len(admin.list_topics(DLQ, timeout=15).topics[DLQ].partitions)
    seen: dict[tuple[int, int], int] = {}
    for m in letters:
        h = headers_of(m)
        key = (int(h["__dlq.errors.partition"]), int(h["__dlq.errors.offset"]))
        seen[key] = seen.get(key, 0) + 1
        assert h["__dlq.errors.topic"] == "q"
        assert h["__dlq.errors.group"] == "sg"
        assert h["veltrix.dlq.reason"] == "rejected"
        assert int(h["__dlq.errors.delivery.count"]) >= 1
        assert "rejected" in h["__dlq.errors.message"]
        # A partition's letters stay in one partition, in order.
        assert m.partition() == key[0] % dlq_partitions
    duplicates = {k: n for k, n in seen.items() if n > 1}
    assert not duplicates, f"{len(duplicates)} records with more than one letter: {sorted(duplicates.items())[:5]}"
    assert set(seen) == rejected, (
        f"missing letters: {sorted(rejected - set(seen))[:5]}, unexpected: {sorted(set(seen) - rejected)[:5]}"
    )
    # The record itself is copied: setup() wrote value v<i> for record i,
    # where i % PARTITIONS is the partition and i // PARTITIONS the offset.
    for m in letters[:50]:
        h = headers_of(m)
        p, o = int(h["__dlq.errors.partition"]), int(h["__dlq.errors.offset"])
        assert m.value() == b"v%d" % (o * PARTITIONS + p)


def test_a_poison_record_gets_a_letter_saying_it_reached_the_delivery_limit(start_broker, tmp_path):
    broker = start_broker()
    if not broker.serves(API_SHARE_FETCH):
        pytest.skip("the broker does not serve ShareFetch")
    records = 600
    setup(
        broker.bootstrap,
        "q",
        "sg",
        records,
        **{
            "share.record.lock.duration.ms": "2000",
            "share.delivery.count.limit": "3",
            "veltrix.share.backoff.initial.ms": "100",
            "errors.deadletterqueue.topic.name": DLQ,
        },
    )
    workers = Workers(tmp_path, broker.bootstrap, "q", "sg")
    poison = (0, 37)
    workers.start(2, "--release-always", "0:37")
    try:
        wait_until(
            lambda: done_records(workers.log()) >= all_records(records) - {poison}
            and len(workers.log().by_record().get(poison, [])) >= 3,
            120,
            "the records and the poison's three deliveries",
        )
    finally:
        problems = workers.stop()
        workers.kill_all()
    assert not problems, problems
    [letter] = read_letters(broker.bootstrap, DLQ, 1, 60)
    h = headers_of(letter)
    assert (h["__dlq.errors.partition"], h["__dlq.errors.offset"]) == ("0", "37")
    assert h["veltrix.dlq.reason"] == "delivery_limit"
    assert h["__dlq.errors.delivery.count"] == "3"
    assert int(h["veltrix.dlq.last.delivery.ms"]) >= int(h["veltrix.dlq.first.delivery.ms"]) > 0
    assert h["veltrix.dlq.last.client.id"], h
    assert letter.value() == b"v%d" % (37 * PARTITIONS)

    def counted() -> bool:
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{broker.http_port}/metrics", timeout=10).read().decode()
        return any(
            line.startswith("veltrix_share_dead_letters_total{")
            and 'reason="delivery_limit"' in line
            and 'group="sg"' in line
            and line.split()[-1] == "1"
            for line in metrics.splitlines()
        )

    wait_until(counted, 30, "the dead letter counted by reason")


def changes_on(tmp_path) -> list[str]:
    """`veltrix serve` flags of a broker that takes changes over HTTP
    (`[listeners] http_mutations = true`), which a redrive needs; its
    dry run does not."""
    config = tmp_path / "changes-on.toml"
    config.write_text("[listeners]\nhttp_mutations = true\n")
    return ["--config", str(config)]


def cli(broker, *args: str, timeout_s: float = 120) -> str:
    """Runs `veltrix dlq ...` against the broker's HTTP listener."""
    out = run(
        [str(broker.binary), "dlq", *args, "--http", f"127.0.0.1:{broker.http_port}"],
        timeout_s,
    )
    assert out.returncode == 0, f"veltrix dlq {' '.join(args)}: {out.stderr.decode(errors='replace')}"
    return out.stdout.decode()


def redriven_records(bootstrap: str, topic: str, want: int, timeout_s: float) -> list:
    """Records of `topic` that a redrive wrote (they carry `veltrix.redrive.from`)."""
    return [m for m in read_letters(bootstrap, topic, want, timeout_s, group="redriven-reader")
            if "veltrix.redrive.from" in headers_of(m)]


def letters_of_rejects(broker, tmp_path, records: int, reject_every: int) -> set:
    """Fills `q`, rejects every `reject_every`-th record of each partition with
    share consumers, and waits for their letters; returns the rejected records."""
    setup(
        broker.bootstrap,
        "q",
        "sg",
        records,
        **{"share.record.lock.duration.ms": "5000", "errors.deadletterqueue.topic.name": DLQ},
    )
    workers = Workers(tmp_path, broker.bootstrap, "q", "sg")
    workers.start(2, "--reject-every", str(reject_every))
    try:
        wait_until(lambda: done_records(workers.log()) >= all_records(records), 120, "every record")
    finally:
        problems = workers.stop()
        workers.kill_all()
    assert not problems, problems
    rejected = {(p, o) for (p, o) in all_records(records) if o % reject_every == 0}

    def planned() -> int:
        return json.loads(cli(broker, "redrive", DLQ, "--dry-run", "--format", "json"))["plan"]["selected"]

    wait_until(lambda: planned() >= len(rejected), 60, "every letter")
    return rejected


def test_redrive_brings_1000_letters_back_and_a_second_run_moves_nothing(start_broker, tmp_path):
    broker = start_broker(*changes_on(tmp_path))
    if not broker.serves(API_SHARE_FETCH):
        pytest.skip("the broker does not serve ShareFetch")
    # 1,667 or 1,666 records in each of 6 partitions: 1,002 letters.
    rejected = letters_of_rejects(broker, tmp_path, 10_000, 10)
    n = len(rejected)
    assert n == 1002

    listed = cli(broker, "list", DLQ, "--reason", "rejected", "--limit", "5")
    assert "rejected" in listed and "q:" in listed, listed
    shown = json.loads(cli(broker, "show", DLQ, "0", "0", "--format", "json"))
    assert shown["reason"] == "rejected" and shown["redriven"] is False

    plan = json.loads(cli(broker, "redrive", DLQ, "--dry-run", "--format", "json"))["plan"]
    assert plan["selected"] == n and sum(sum(p.values()) for p in plan["moves"].values()) == n
    assert "nothing moved" in cli(broker, "redrive", DLQ, "--dry-run")
    done = cli(broker, "redrive", DLQ, "--rate", "5000", "--wait")
    assert f"{n} moved" in done, done

    # The group takes them again, accepting every one this time.
    (tmp_path / "again").mkdir()
    workers = Workers(tmp_path / "again", broker.bootstrap, "q", "sg")
    workers.start(2)
    try:
        wait_until(lambda: len(workers.log().deliveries) >= n, 120, "the redriven records")
    finally:
        problems = workers.stop()
        workers.kill_all()
    assert not problems, problems
    again = workers.log().deliveries
    assert all(d.ack == "accept" for d in again)
    assert len({(d.partition, d.offset) for d in again}) == n

    plan = json.loads(cli(broker, "redrive", DLQ, "--dry-run", "--format", "json"))["plan"]
    assert (plan["selected"], plan["already_redriven"], plan["moves"]) == (n, n, {})
    second = cli(broker, "redrive", DLQ, "--wait")
    assert "0 moved" in second, second
    assert len(redriven_records(broker.bootstrap, "q", n, 30)) == n


def test_a_redrive_killed_five_times_moves_each_letter_once(start_broker, tmp_path):
    broker = start_broker(*changes_on(tmp_path))
    if not broker.serves(API_SHARE_FETCH):
        pytest.skip("the broker does not serve ShareFetch")
    rejected = letters_of_rejects(broker, tmp_path, 10_000, 10)
    # 1,002 letters at 150 a second: about 7 s, killed five times on the way.
    cli(broker, "redrive", DLQ, "--rate", "150")
    for _ in range(5):
        time.sleep(0.9)
        broker.kill()
        broker.start(same_port=True)

    def finished() -> bool:
        jobs = json.loads(cli(broker, "jobs", "--format", "json"))["redrives"]
        return jobs[0]["state"]["state"] != "running"

    wait_until(finished, 120, "the redrive to finish")
    jobs = json.loads(cli(broker, "jobs", "--format", "json"))["redrives"]
    assert jobs[0]["state"]["state"] == "done" and jobs[0]["moved"] == len(rejected), jobs[0]
    moved = redriven_records(broker.bootstrap, "q", len(rejected), 60)
    origins = [headers_of(m)["veltrix.redrive.from"] for m in moved]
    duplicates = {o for o in origins if origins.count(o) > 1}
    assert not duplicates, sorted(duplicates)[:5]
    assert len(origins) == len(rejected)


def test_a_redrive_is_refused_with_the_setting_to_change_until_the_broker_takes_changes(start_broker, tmp_path):
    """The dry run is answered either way; the redrive only once
    `[listeners] http_mutations = true`, and the refusal says so."""
    broker = start_broker()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for future in admin.create_topics([NewTopic(DLQ, 1, 1)]).values():
        future.result(30)
    plan = json.loads(cli(broker, "redrive", DLQ, "--dry-run", "--format", "json"))["plan"]
    assert plan["selected"] == 0
    out = run([str(broker.binary), "dlq", "redrive", DLQ, "--http", f"127.0.0.1:{broker.http_port}"], 60)
    stderr = out.stderr.decode(errors="replace")
    assert out.returncode == 1, stderr
    assert "set `[listeners] http_mutations = true`" in stderr, stderr
    assert "VELTRIX_LISTENERS__HTTP_MUTATIONS=true" in stderr, stderr
    assert json.loads(cli(broker, "jobs", "--format", "json"))["redrives"] == []

    assert broker.stop() == []
    broker.extra_args += changes_on(tmp_path)
    broker.start()
    assert "started" in cli(broker, "redrive", DLQ)
