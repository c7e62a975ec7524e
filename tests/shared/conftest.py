"""Fixtures of the shared-storage cluster tests: PostgreSQL, moto and three brokers per test."""

from __future__ import annotations

import os

import pytest

from cluster import Cluster, moto_server, pg_bin, veltrix_binary


@pytest.fixture(scope="session")
def services():
    """The broker binary and the services' binaries; stops the run or skips when missing.

    A missing PostgreSQL or moto skips the tests loudly, unless
    VELTRIX_CLOUD_TESTS=require (scripts/test sets it once
    scripts/cloud-services install worked), which fails them instead.
    """
    binary = veltrix_binary()
    if not binary.is_file():
        pytest.exit(f"{binary} does not exist: build it with `cargo build -p veltrix` (or set VELTRIX)", 2)
    pg, moto = pg_bin(), moto_server()
    if pg is None or not (pg / "initdb").exists() or moto is None:
        why = f"PostgreSQL binaries: {pg}, moto_server: {moto} (install both with scripts/cloud-services install)"
        if os.environ.get("VELTRIX_CLOUD_TESTS") == "require":
            pytest.fail(f"VELTRIX_CLOUD_TESTS=require but a service is missing: {why}", pytrace=False)
        pytest.skip(f"!!! SKIPPING the shared-storage cluster tests: {why}")
    return binary, pg, moto


@pytest.fixture
def cluster(request, tmp_path, services):
    """PostgreSQL, a moto bucket and three brokers in shared mode, stopped after the test.

    Each broker writes its stderr to broker-N/veltrix.stderr.log in the test's
    temporary directory; a failed test's report shows the tail of each, and of
    PostgreSQL's and moto's logs. On teardown every broker gets SIGTERM and
    must exit cleanly, without a panic in its log.
    """
    binary, pg, moto = services
    c = Cluster(tmp_path, brokers=3, binary=binary, pg=pg, moto=moto)
    request.node.veltrix_cluster = c
    try:
        c.start()
    except BaseException:
        c.close()
        raise
    yield c
    problems = c.close()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Adds the brokers', PostgreSQL's and moto's logs to the report of any failed phase."""
    report = yield
    c = getattr(item, "veltrix_cluster", None)
    if report.failed and c is not None:
        report.sections.extend(c.report_sections())
    return report
