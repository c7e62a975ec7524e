"""deploy/: the Grafana dashboard and the Prometheus alerting rules against a real broker.

A dashboard or a rule that names a metric the broker does not export shows an
empty panel or never fires, and nothing says so. This test runs a broker with a
declared topic and lag alert, produces, consumes and commits with a
confluent-kafka group (and provokes one fetch error), so that every per-topic,
per-group, lag, alert and error series exists, then checks:

- every `veltrix_*` name in the dashboard's queries (panel targets and
  template variables) and in the rules' `expr` is a sample name that /metrics
  prints (histograms as `_bucket`, `_sum`, `_count`, as Prometheus stores them);
- `promtool check metrics` finds no problem in the /metrics text;
- `promtool check rules` accepts deploy/prometheus/veltrix-alerts.yml;
- the dashboard is valid JSON, every panel has a query, and every query
  parses as PromQL (promtool checks them as recording rules).

promtool comes with Debian's `prometheus` package; scripts/test-clients
installs it when it is missing.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.request

import pytest
from confluent_kafka import Consumer, TopicPartition

from harness import REPO
from rdkafka_helpers import producer

DASHBOARD = REPO / "deploy" / "grafana" / "veltrix-dashboard.json"
RULES = REPO / "deploy" / "prometheus" / "veltrix-alerts.yml"

TOPIC = "deploy-events"
GROUP = "deploy-readers"
PARTITIONS = 2
RECORDS = 200
EVALUATION_INTERVAL_MS = 200

METRIC_NAME = re.compile(r"\bveltrix_[A-Za-z0-9_]*")


@pytest.fixture
def promtool() -> str:
    """promtool is a test dependency: its absence fails the test, it is not skipped."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is not installed: install the Debian package `prometheus` "
            "(apt-get install -y --no-install-recommends prometheus; scripts/test-clients does)"
        )
    return path


def http_text(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return r.read().decode()


def sample_names(metrics_text: str) -> set[str]:
    """The names of the samples in a Prometheus text exposition."""
    names = set()
    for line in metrics_text.splitlines():
        if line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def dashboard_panels(dashboard: dict) -> list[dict]:
    """Every panel, those inside collapsed rows included, rows themselves excluded."""
    panels = []
    for p in dashboard.get("panels", []):
        if p.get("type") == "row":
            panels += p.get("panels", [])
        else:
            panels.append(p)
    return panels


def dashboard_queries(dashboard: dict) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and every query template variable."""
    queries = []
    for p in dashboard_panels(dashboard):
        for t in p.get("targets", []):
            if t.get("expr"):
                queries.append((f"panel {p.get('title')!r} target {t.get('refId')}", t["expr"]))
    for v in dashboard.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            q = v.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            queries.append((f"template variable {v.get('name')!r}", q))
    return queries


def rule_exprs(rules_text: str) -> list[str]:
    """The `expr` of every rule, inline or as a YAML block scalar (| or >).

    The client venv has no YAML parser; the rules file only uses these two
    forms, and the caller compares the count with promtool's.
    """
    exprs = []
    lines = rules_text.splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)(?:-\s+)?expr:\s*(.*)$", lines[i])
        i += 1
        if not m:
            continue
        indent, value = len(m.group(1)), m.group(2).strip()
        if value[:1] in ("|", ">"):
            block = []
            while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
                block.append(lines[i].strip())
                i += 1
            exprs.append(" ".join(block).strip())
        else:
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            exprs.append(value)
    return exprs


def exercise(broker) -> None:
    """Produces, consumes and commits with a group, and provokes a fetch error."""
    errors: list = []
    p = producer(broker.bootstrap, errors)
    failed = []
    for i in range(RECORDS):
        p.produce(
            TOPIC,
            value=b"record-%d" % i,
            partition=i % PARTITIONS,
            on_delivery=lambda err, _msg: err and failed.append(err),
        )
    assert p.flush(30) == 0, "records still queued after 30 s"
    assert not failed and not errors, f"produce failed: {failed or errors}"

    c = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": GROUP,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        c.subscribe([TOPIC])
        consumed = 0
        deadline = time.monotonic() + 30
        while consumed < RECORDS and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is None or m.error():
                continue
            consumed += 1
        assert consumed == RECORDS, f"the group consumed {consumed} of {RECORDS} records in 30 s"
        c.commit(asynchronous=False)
    finally:
        c.close()

    # A fetch past the end is answered OFFSET_OUT_OF_RANGE (counted in
    # veltrix_kafka_request_errors_total); the client then resets to earliest.
    stray = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "deploy-stray",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        stray.assign([TopicPartition(TOPIC, 0, RECORDS * 100)])
        deadline = time.monotonic() + 20
        got = None
        while got is None and time.monotonic() < deadline:
            m = stray.poll(0.2)
            if m is not None and not m.error():
                got = m
        assert got is not None, "the out-of-range consumer never reset to a record"
    finally:
        stray.close()


@pytest.mark.timeout(120)
def test_dashboard_and_rules_use_real_metrics_and_pass_promtool(start_broker, tmp_path, promtool):
    dashboard = json.loads(DASHBOARD.read_text())
    rules_text = RULES.read_text()

    # (d) The dashboard: valid JSON, a Prometheus datasource variable, and a
    # query in every panel.
    assert isinstance(dashboard.get("schemaVersion"), int) and dashboard["schemaVersion"] >= 36, dashboard.get(
        "schemaVersion"
    )
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables.get("datasource", {}).get("type") == "datasource", variables.get("datasource")
    assert variables["datasource"].get("query") == "prometheus"
    for name in ("group", "topic"):
        assert name in variables and "label_values(" in json.dumps(variables[name]["query"]), variables.get(name)
    panels = dashboard_panels(dashboard)
    assert panels, "the dashboard has no panels"
    no_query = [p.get("title") for p in panels if not any(t.get("expr") for t in p.get("targets", []))]
    assert not no_query, f"panels without a target with an expr: {no_query}"
    ids = [p.get("id") for p in dashboard["panels"]]
    ids += [q.get("id") for p in dashboard["panels"] if p.get("type") == "row" for q in p.get("panels", [])]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {ids}"

    # The panels' PromQL parses: promtool checks it as recording rules, with
    # Grafana's variables replaced by values Prometheus accepts.
    as_rules = tmp_path / "dashboard-queries.yml"
    lines = ["groups:", "  - name: dashboard", "    rules:"]
    for i, (where, query) in enumerate(dashboard_queries(dashboard)):
        if where.startswith("template variable"):
            continue
        promql = query.replace("$__rate_interval", "5m").replace("$group", ".*").replace("$topic", ".*")
        lines += [f"      - record: dashboard:query_{i}", f"        expr: {json.dumps(promql)}"]
    as_rules.write_text("\n".join(lines) + "\n")
    parsed = subprocess.run([promtool, "check", "rules", str(as_rules)], capture_output=True, text=True, timeout=60)
    assert parsed.returncode == 0, f"a dashboard query does not parse:\n{parsed.stdout}{parsed.stderr}"

    # (c) The rules file, as Prometheus will load it.
    checked = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, f"promtool check rules failed:\n{checked.stdout}{checked.stderr}"
    found = re.search(r"SUCCESS: (\d+) rules found", checked.stdout)
    assert found, f"unexpected promtool output:\n{checked.stdout}{checked.stderr}"
    exprs = rule_exprs(rules_text)
    assert len(exprs) == int(found.group(1)), f"read {len(exprs)} exprs, promtool found {found.group(1)} rules"

    # A broker whose every series the dashboard and rules use exists.
    config = tmp_path / "veltrix.toml"
    config.write_text(
        f"""
[observability]
lag_evaluation_interval_ms = {EVALUATION_INTERVAL_MS}

[[topic]]
name = "{TOPIC}"
partitions = {PARTITIONS}

[[topic]]
name = "{TOPIC}.routed"

[[route]]
name = "deploy-copy"
source = "{TOPIC}"
default = ["{TOPIC}.routed"]
dead_letter = "{TOPIC}.routed"

[[alert]]
name = "deploy-readers-behind"
group = "{GROUP}"
topic = "{TOPIC}"
lag_records_max = 1000000
"""
    )
    broker = start_broker("--config", str(config))
    exercise(broker)

    # (a) Every metric the dashboard and the rules query is exported. Lag is
    # published every evaluation interval, so wait for a few of them.
    wanted: dict[str, list[str]] = {}
    for where, query in dashboard_queries(dashboard):
        for name in METRIC_NAME.findall(query):
            wanted.setdefault(name, []).append(f"dashboard {where}")
    for expr in exprs:
        for name in METRIC_NAME.findall(expr):
            wanted.setdefault(name, []).append(f"rule expr {expr.splitlines()[0][:60]!r}")
    assert "veltrix_group_lag_seconds" in wanted and "veltrix_produce_bytes_total" in wanted, sorted(wanted)
    deadline = time.monotonic() + 20
    while True:
        text = http_text(broker.http_port, "/metrics")
        exported = sample_names(text)
        lag_ours = re.search(
            rf'^veltrix_group_lag_records\{{[^}}]*group="{GROUP}"[^}}]*topic="{TOPIC}"[^}}]*\}} 0$', text, re.M
        )
        missing = {name: uses for name, uses in wanted.items() if name not in exported}
        if (not missing and lag_ours) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not missing, "metrics queried but not exported by /metrics:\n" + "\n".join(
        f"  {name}: {', '.join(uses)}" for name, uses in sorted(missing.items())
    )
    assert lag_ours, f"no zero lag for group {GROUP} on {TOPIC} after its commit:\n" + "\n".join(
        line for line in text.splitlines() if line.startswith("veltrix_group_lag")
    )

    # (b) promtool's lint of the exposition: it prints one line per problem
    # (metric name, complaint) and exits non-zero; a clean text prints nothing.
    linted = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    output = (linted.stdout + linted.stderr).strip()
    assert linted.returncode == 0 and not output, (
        f"promtool check metrics exited {linted.returncode}:\n{output}"
    )
