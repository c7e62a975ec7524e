"""Fixtures shared by the client compatibility tests: a running broker per test.

With VELTRIX_CLIENT_STORAGE=shared (scripts/test-clients --shared) each
`start_broker` starts three brokers in shared storage mode instead
(shared_storage.py), and the tests of what shared storage does not serve are
skipped, each for the reason NOT_ON_SHARED_STORAGE gives.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

import shared_storage
from harness import Broker, veltrix_binary

SHARED = shared_storage.enabled()

# The tests that do not apply to three brokers on shared storage, and why
# (docs/scale-out.md, "Running brokers on shared storage", lists what shared
# storage does not serve). A file's name covers all its tests. Nothing is here
# because it fails: a served feature failing on shared storage is a bug.
NOT_ON_SHARED_STORAGE: dict[str, str] = {
    "test_transactions.py": "transactions are not served (a transactional id is refused)",
    "test_kafkajs_transactions.py": "transactions are not served (a transactional id is refused)",
    "test_share_backoff.py": "sets a dead-letter topic: dead letters are not served",
    "test_share.py::test_broker_killed_five_times_loses_no_acknowledgement": (
        "checks the broker's own view of the group over its HTTP API, which on shared storage shows one broker's "
        "local copy; tests/shared/test_share_group_kills.py kills brokers under share consumers instead"
    ),
    "test_compaction.py": "compaction is not served (V153)",
    "test_dedup.py": "duplicate windows are not served (V153)",
    "test_routes.py": "routes and dead letters are not served (V153)",
    "test_dead_letters.py": "dead letters (share groups, routes) are not served",
    "test_disk_watermarks.py": "disk watermarks guard one broker's data directory, which holds no records on shared storage",
    "test_admin_answers.py::test_create_topics_with_a_replica_assignment_on_this_broker": (
        "assigns replicas to the one broker of a one-node cluster; shared storage has no replicas to assign"
    ),
    "test_kafka_python.py::test_kafka_python_offsets_for_times_inside_a_batch": (
        "ListOffsets by time answers by batch, not by record (no time index on shared storage)"
    ),
    "test_observability_deploy.py": (
        "reads every lag series from one broker; on shared storage each group's are on its coordinator alone"
    ),
}


@pytest.fixture(scope="session")
def veltrix_bin():
    """The broker binary; the run stops at once if it was not built."""
    binary = veltrix_binary()
    if not binary.is_file():
        pytest.exit(f"{binary} does not exist: build it with `cargo build -p veltrix` (scripts/test-clients does)", 2)
    return binary


def pytest_collection_modifyitems(config, items):
    """In shared mode, skips the tests NOT_ON_SHARED_STORAGE names, with its reason."""
    if not SHARED:
        return
    for item in items:
        file, _, name = item.nodeid.partition("::")
        name = name.split("[", 1)[0]
        reason = NOT_ON_SHARED_STORAGE.get(f"{file.rsplit('/', 1)[-1]}::{name}") or NOT_ON_SHARED_STORAGE.get(
            file.rsplit("/", 1)[-1]
        )
        if reason:
            item.add_marker(pytest.mark.skip(reason=f"not on shared storage: {reason}"))


@pytest.fixture(scope="session")
def shared_services(tmp_path_factory, veltrix_bin):
    """PostgreSQL and moto for the session, in shared mode only (None otherwise)."""
    if not SHARED:
        yield None
        return
    services = shared_storage.Services(tmp_path_factory.mktemp("shared-services"), veltrix_bin)
    try:
        services.start()
    except BaseException:
        services.close()
        raise
    yield services
    services.close()


@pytest.fixture
def start_broker(request, tmp_path, veltrix_bin, shared_services) -> Iterator[Callable[..., Broker]]:
    """Starts brokers with extra `veltrix serve` flags; stops each one afterwards.

    Each test gets its own broker and data directory, so that no test depends
    on another's topics and a broker bug shows in the test that caused it (in
    shared mode: three brokers on a database and key prefix of their own). On
    teardown every broker gets SIGTERM and must exit cleanly; if one died,
    hung, failed or panicked, the teardown fails with its log.
    """
    brokers: list[Broker] = []
    # The report hook below reads this to attach the brokers' logs to failures.
    request.node.veltrix_brokers = brokers

    def start(*extra_args: str) -> Broker:
        workdir = tmp_path / f"veltrix-{len(brokers)}"
        if shared_services is not None:
            broker = shared_storage.Deployment(shared_services, workdir, list(extra_args))
        else:
            broker = Broker(veltrix_bin, workdir, list(extra_args))
        brokers.append(broker)
        broker.start()
        return broker

    yield start

    problems = []
    for broker in brokers:
        problems += [f"{p} ({broker.describe()})" for p in broker.stop()]
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)
    # Keep the data of a failed test for inspection; drop it otherwise, since
    # the bulk test alone writes a gigabyte and pytest keeps three runs.
    if not getattr(request.node, "veltrix_failed", False):
        for broker in brokers:
            broker.remove_data()


@pytest.fixture
def broker(start_broker) -> Broker:
    """A broker with default settings: no auto-creation, one partition by default."""
    return start_broker()


@pytest.fixture
def bootstrap(broker) -> str:
    """The bootstrap address (127.0.0.1:PORT) of a fresh broker."""
    return broker.bootstrap


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Adds the brokers' stderr to the report of any failed test phase."""
    report = yield
    brokers = getattr(item, "veltrix_brokers", [])
    if report.failed and brokers:
        item.veltrix_failed = True
        for broker in brokers:
            report.sections.append((f"veltrix stderr ({broker.describe()})", broker.log_tail()))
    return report
