"""Routes with real clients: the treasure hunt's one stream sorted by event
type into critical, standard and bulk topics inside the broker, read back
by confluent-kafka; each record in its target exactly once across SIGKILLs;
records an expression fails on in the route's dead-letter topic with the
reason; a configuration with a bad expression refused at start."""

from __future__ import annotations

import json
import random
import subprocess
import time
import urllib.request

from confluent_kafka import Producer

from harness import veltrix_binary
from rdkafka_helpers import consume_all, consumer

# The treasure hunt's mix (crates/veltrix-bench/src/treasure.rs): kind,
# share, record bytes.
EVENTS = [("location_ping", 0.70, 64), ("clue_found", 0.25, 200), ("reward_granted", 0.04, 256), ("purchase", 0.01, 512)]
LANE = {"reward_granted": "hunt.critical", "purchase": "hunt.critical", "clue_found": "hunt.standard", "location_ping": "hunt.bulk"}
TARGETS = ["hunt.critical", "hunt.standard", "hunt.bulk"]
SOURCE_PARTITIONS = 4

CONFIG = """
[[topic]]
name = "hunt"
partitions = 4

[[topic]]
name = "hunt.critical"
partitions = 2
tier = "critical"

[[topic]]
name = "hunt.standard"
partitions = 2

[[topic]]
name = "hunt.bulk"
partitions = 2
tier = "bulk"

[[topic]]
name = "hunt.route-errors"
partitions = 1

[[route]]
name = "lanes"
source = "hunt"
dead_letter = "hunt.route-errors"

  [[route.rule]]
  when = 'FIELD == "reward_granted" || FIELD == "purchase"'
  to = "hunt.critical"

  [[route.rule]]
  when = 'FIELD == "clue_found"'
  to = "hunt.standard"

  [[route.rule]]
  when = 'FIELD == "location_ping"'
  to = "hunt.bulk"
"""
# Rules on the JSON value, and on the `event` header `veltrix bench
# treasure-hunt --one-topic` stamps on each record.
CONFIG_BY_VALUE = CONFIG.replace("FIELD", "value.type")
CONFIG_BY_HEADER = CONFIG.replace("FIELD", 'headers["event"]')


def events(n: int, players: int, seed: int = 7):
    """The treasure hunt's stream: (player, kind, seq, value bytes); every
    500th value is not JSON (a client bug), which the route cannot sort."""
    rng = random.Random(seed)
    kinds = [k for k, _, _ in EVENTS]
    weights = [s for _, s, _ in EVENTS]
    sizes = {k: b for k, _, b in EVENTS}
    for seq in range(n):
        kind = rng.choices(kinds, weights)[0]
        player = f"player-{rng.randrange(players)}"
        if seq % 500 == 499:
            yield player, None, seq, b"\x00garbage %d" % seq
            continue
        body = {"type": kind, "player": player, "seq": seq}
        text = json.dumps(body)
        pad = max(0, sizes[kind] - len(text) - 10)
        body["pad"] = "x" * pad
        yield player, kind, seq, json.dumps(body).encode()


def produce(bootstrap: str, stream, deadline: float) -> None:
    errors: list = []
    failed: list = []
    p = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 20,
            "batch.size": 1 << 20,
            "error_cb": errors.append,
        }
    )

    def done(err, _msg):
        if err is not None:
            failed.append(err)

    for player, _kind, _seq, value in stream:
        while True:
            try:
                p.produce("hunt", key=player.encode(), value=value, on_delivery=done)
                break
            except BufferError:
                p.poll(0.05)
                assert time.monotonic() < deadline, "producing took too long"
        p.poll(0)
    assert p.flush(max(1.0, deadline - time.monotonic())) == 0, "records not delivered in time"
    assert not failed, failed[:3]


def route(broker) -> dict:
    url = f"http://127.0.0.1:{broker.http_port}/api/v1/routes/lanes"
    return json.loads(urllib.request.urlopen(url, timeout=10).read())


def wait_caught_up(broker, records: int, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        r = route(broker)
        ends = sum(p["end"] for p in r["partitions"])
        if ends >= records and r["lag_records"] == 0:
            return r
        assert time.monotonic() < deadline, f"the route did not catch up: {r['lag_records']} records behind"
        time.sleep(0.1)


def read_topic(bootstrap: str, topic: str, ends: dict[int, int], deadline: float) -> list:
    errors: list = []
    c = consumer(bootstrap, errors)
    out: list = []
    try:
        consume_all(c, topic, ends, out.append, deadline)
    finally:
        c.close()
    return out


def ends_of(bootstrap: str, topic: str) -> dict[int, int]:
    errors: list = []
    c = consumer(bootstrap, errors)
    try:
        meta = c.list_topics(topic, timeout=15).topics[topic]
        out = {}
        for p in meta.partitions:
            from confluent_kafka import TopicPartition

            _, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=15)
            out[p] = high
        return out
    finally:
        c.close()


def check_targets(bootstrap: str, expected: dict[int, str], deadline: float) -> dict[str, int]:
    """Each sortable record exactly once in its lane, per-player order kept;
    the counts per target."""
    seen: dict[int, str] = {}
    counts = {}
    for topic in TARGETS:
        msgs = read_topic(bootstrap, topic, ends_of(bootstrap, topic), deadline)
        counts[topic] = len(msgs)
        last: dict[bytes, int] = {}
        for m in msgs:
            seq = json.loads(m.value())["seq"]
            assert seq not in seen, f"record {seq} in {seen[seq]} and {topic}"
            seen[seq] = topic
            assert expected.get(seq) == topic, f"record {seq} in {topic}, expected {expected.get(seq)}"
            prev = last.get(m.key(), -1)
            assert prev < seq, f"{m.key()!r}: {prev} before {seq} in {topic}"
            last[m.key()] = seq
    missing = set(expected) - set(seen)
    assert not missing, f"{len(missing)} records never routed, e.g. {sorted(missing)[:5]}"
    return counts


def test_the_treasure_hunt_stream_is_sorted_into_lanes_and_failures_become_dead_letters(start_broker, tmp_path):
    config = tmp_path / "veltrix.toml"
    config.write_text(CONFIG_BY_HEADER)
    broker = start_broker("--config", str(config))
    # The game's events, every kind to one topic, as `veltrix bench` makes them.
    bench = subprocess.run(
        [str(veltrix_binary()), "bench", "treasure-hunt", "--bootstrap", broker.bootstrap, "--one-topic", "hunt",
         "--partitions", str(SOURCE_PARTITIONS), "--players", "300", "--rate", "4000", "--duration-s", "4",
         "--warmup-s", "1", "--spike-s", "0"],
        capture_output=True, timeout=120,
    )
    assert bench.returncode == 0, (bench.stdout + bench.stderr).decode()[-3000:]
    # And a few records of a client that forgot the header: no rule can judge them.
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    for i in range(7):
        p.produce("hunt", key=b"player-x", value=b"no event header %d" % i)
    assert p.flush(30) == 0
    deadline = time.monotonic() + 120
    source = {}
    for partition, end in ends_of(broker.bootstrap, "hunt").items():
        source[partition] = read_topic(broker.bootstrap, "hunt", {partition: end}, deadline) if end else []
    n = sum(len(v) for v in source.values())
    assert n > 10_000, n
    r = wait_caught_up(broker, n, 120)

    # What each lane must hold: per player, the source's records of that
    # lane in the source's order.
    expected: dict[str, dict[bytes, list[bytes]]] = {t: {} for t in TARGETS}
    unjudged = 0
    for msgs in source.values():
        for m in msgs:
            event = dict(m.headers() or []).get("event")
            if event is None:
                unjudged += 1
                continue
            expected[LANE[event.decode()]].setdefault(m.key(), []).append(m.value())
    assert unjudged == 7
    counts = {}
    for topic in TARGETS:
        got: dict[bytes, list[bytes]] = {}
        msgs = read_topic(broker.bootstrap, topic, ends_of(broker.bootstrap, topic), deadline)
        for m in msgs:
            got.setdefault(m.key(), []).append(m.value())
        counts[topic] = len(msgs)
        assert got.keys() == expected[topic].keys(), topic
        for key, values in expected[topic].items():
            assert got[key] == values, f"{topic}, {key!r}: {len(got[key])} records, expected {len(values)} in the source's order"
    generated = {t: sum(len(v) for v in expected[t].values()) for t in TARGETS}
    assert counts == generated, (counts, generated)
    assert all(counts[t] > 0 for t in TARGETS), counts
    assert r["counts"]["records_in"] == n
    assert r["counts"]["out"] == {**generated, "hunt.route-errors": 7}

    letters = read_topic(broker.bootstrap, "hunt.route-errors", ends_of(broker.bootstrap, "hunt.route-errors"), deadline)
    assert len(letters) == 7
    for m in letters:
        h = {k: (v or b"").decode(errors="replace") for k, v in m.headers()}
        assert "event" in h["veltrix.route.error"], h
        assert h["veltrix.route.name"] == "lanes"
        topic, partition, offset = h["veltrix.route.source"].split("/")
        assert topic == "hunt" and 0 <= int(partition) < SOURCE_PARTITIONS and int(offset) >= 0
        assert m.value().startswith(b"no event header")

    metrics = urllib.request.urlopen(f"http://127.0.0.1:{broker.http_port}/metrics", timeout=10).read().decode()
    assert f'veltrix_route_records_in_total{{route="lanes"}} {n}' in metrics
    assert 'veltrix_route_lag_records{route="lanes"} 0' in metrics


def test_each_record_is_routed_exactly_once_across_five_broker_kills(start_broker, tmp_path):
    config = tmp_path / "veltrix.toml"
    config.write_text(CONFIG_BY_VALUE)
    broker = start_broker("--config", str(config))
    n = 500_000
    # Small values, so that producing is quick and routing is what takes time.
    stream = [(p, k, s, v if k is None else json.dumps({"type": k, "seq": s}).encode()) for p, k, s, v in events(n, players=1000, seed=11)]
    produce(broker.bootstrap, stream, time.monotonic() + 300)
    behind_at_kill = []
    for _kill in range(5):
        # Kill while the route is mid-way: after it has moved on since the
        # last start, and before it is done.
        start = route(broker)["counts"]["records_in"]
        deadline = time.monotonic() + 120
        while True:
            r = route(broker)
            if r["lag_records"] == 0:
                break
            if r["counts"]["records_in"] - start >= n // 12:
                break
            assert time.monotonic() < deadline, "the route made no progress"
            time.sleep(0.02)
        behind_at_kill.append(r["lag_records"])
        broker.kill()
        broker.start(same_port=True)
    # Most kills hit the route mid-way (it may finish before the last ones).
    assert sum(1 for lag in behind_at_kill if lag > 0) >= 3, behind_at_kill
    wait_caught_up(broker, n, 300)
    expected = {seq: LANE[kind] for _p, kind, seq, _v in stream if kind is not None}
    check_targets(broker.bootstrap, expected, time.monotonic() + 300)
    letters = ends_of(broker.bootstrap, "hunt.route-errors")
    assert sum(letters.values()) == n // 500, letters


def test_a_bad_expression_is_pointed_at_and_the_broker_refuses_to_start(tmp_path):
    config = tmp_path / "veltrix.toml"
    bad = CONFIG_BY_VALUE.replace('when = \'value.type == "clue_found"\'', "when = 'value.type == \"clue_found\" &&'")
    assert bad != CONFIG_BY_VALUE
    config.write_text(bad)
    line = bad.splitlines().index("  when = 'value.type == \"clue_found\" &&'") + 1
    check = subprocess.run(
        [str(veltrix_binary()), "check", str(config)], capture_output=True, timeout=60, env={"NO_COLOR": "1"}
    )
    out = (check.stdout + check.stderr).decode()
    assert check.returncode != 0, out
    assert f"veltrix.toml:{line}:" in out, out
    serve = subprocess.run(
        [
            str(veltrix_binary()),
            "serve",
            "--config",
            str(config),
            "--data-dir",
            str(tmp_path / "data"),
            "--kafka-listener",
            "127.0.0.1:0",
            "--http-listener",
            "127.0.0.1:0",
        ],
        capture_output=True,
        timeout=60,
        env={"NO_COLOR": "1"},
    )
    assert serve.returncode != 0, (serve.stdout + serve.stderr).decode()
