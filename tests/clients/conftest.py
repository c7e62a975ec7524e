"""Fixtures shared by the client compatibility tests: a running broker per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from harness import Broker, veltrix_binary


@pytest.fixture(scope="session")
def veltrix_bin():
    """The broker binary; the run stops at once if it was not built."""
    binary = veltrix_binary()
    if not binary.is_file():
        pytest.exit(f"{binary} does not exist: build it with `cargo build -p veltrix` (scripts/test-clients does)", 2)
    return binary


@pytest.fixture
def start_broker(request, tmp_path, veltrix_bin) -> Iterator[Callable[..., Broker]]:
    """Starts brokers with extra `veltrix serve` flags; stops each one afterwards.

    Each test gets its own broker and data directory, so that no test depends
    on another's topics and a broker bug shows in the test that caused it. On
    teardown every broker gets SIGTERM and must exit cleanly; if one died,
    hung, failed or panicked, the teardown fails with its log.
    """
    brokers: list[Broker] = []
    # The report hook below reads this to attach the brokers' logs to failures.
    request.node.veltrix_brokers = brokers

    def start(*extra_args: str) -> Broker:
        broker = Broker(veltrix_bin, tmp_path / f"veltrix-{len(brokers)}", list(extra_args))
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
