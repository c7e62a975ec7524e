"""Runs a real `veltrix serve` process for the client compatibility tests.

Every broker started here listens on 127.0.0.1 on an ephemeral port, keeps its
data in a fresh directory, writes its stderr to a file that the test report shows
when a test fails, and is stopped by the exact process id it was started with.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# How long a broker may take to accept connections after it is started, and to
# exit after SIGTERM. A debug build on a busy two-core machine starts in well
# under a second; the margin is for CI machines under load.
READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 15.0

# Kafka API keys the tests ask the broker about (ApiVersions), to skip tests of
# features the broker does not serve yet instead of letting the client fail.
API_FIND_COORDINATOR = 10
API_JOIN_GROUP = 11
API_SYNC_GROUP = 14
API_API_VERSIONS = 18
API_DELETE_TOPICS = 20
API_DELETE_RECORDS = 21
API_DESCRIBE_CONFIGS = 32
API_ALTER_CONFIGS = 33
API_CREATE_PARTITIONS = 37
API_DESCRIBE_CLUSTER = 60
API_INCREMENTAL_ALTER_CONFIGS = 44

_ANSI = re.compile(rb"\x1b\[[0-9;]*m")


class BrokerError(Exception):
    """The broker did not start, died, or did not stop cleanly."""


def veltrix_binary() -> Path:
    """The broker binary: $VELTRIX_BIN, else debug/veltrix in Cargo's target dir.

    scripts/test-clients sets VELTRIX_BIN from `cargo metadata`, so a custom
    CARGO_TARGET_DIR is honoured; the fallbacks make a bare `pytest` work too.
    """
    explicit = os.environ.get("VELTRIX_BIN")
    if explicit:
        return Path(explicit)
    target = os.environ.get("CARGO_TARGET_DIR")
    target_dir = (REPO / target) if target else REPO / "target"
    return target_dir / "debug" / "veltrix"


def _die_with_parent() -> None:
    """Asks the kernel to SIGKILL the broker if the test process dies first.

    The fixtures stop every broker they start, but a test run that is itself
    killed (a CI timeout, a SIGKILL) runs no teardown; this way no broker
    outlives it. Runs in the child between fork and exec.
    """
    pr_set_pdeathsig = 1
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)


def free_port() -> int:
    """A port that was free a moment ago: bind port 0 and let the kernel choose.

    Another process can take it before the broker binds it; `Broker.start`
    retries on a new port when that happens.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(data)} of {n} bytes")
        data.extend(chunk)
    return bytes(data)


def api_versions(host: str, port: int, timeout_s: float = 5.0) -> dict[int, tuple[int, int]]:
    """Sends ApiVersions v0 by hand and returns {api key: (min, max)}.

    Done without a client library so that the answer is exactly what the broker
    advertises, whatever version negotiation a client would do on top of it.
    """
    client_id = b"veltrix-client-tests"
    correlation_id = 7
    body = struct.pack(">hhih", API_API_VERSIONS, 0, correlation_id, len(client_id)) + client_id
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        data = _recv_exact(sock, size)
    got_correlation, error_code, count = struct.unpack_from(">ihi", data, 0)
    if got_correlation != correlation_id or error_code != 0:
        raise BrokerError(f"ApiVersions v0 answered correlation {got_correlation}, error {error_code}")
    apis = {}
    for i in range(count):
        key, lo, hi = struct.unpack_from(">hhh", data, 10 + 6 * i)
        apis[key] = (lo, hi)
    return apis


class Broker:
    """One `veltrix serve` process with its own data directory and log file."""

    def __init__(self, binary: Path, workdir: Path, extra_args: list[str]):
        self.binary = binary
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.log_path = workdir / "veltrix.stderr.log"
        self.extra_args = extra_args
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.http_port: int | None = None
        # Set by kill(): the process is gone on purpose, not by a crash.
        self.killed = False
        self._apis: dict[int, tuple[int, int]] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def nodes(self) -> list[tuple[int, str, int]]:
        """(node id, host, port) of the brokers the clients see: this one, node 0."""
        return [(0, "127.0.0.1", self.port)]

    @property
    def node_ids(self) -> set[int]:
        return {n[0] for n in self.nodes}

    @property
    def addresses(self) -> list[str]:
        """Each broker's own address: users, ACLs and quotas are set on every one."""
        return [self.bootstrap]

    def describe(self) -> str:
        pid = self.proc.pid if self.proc else None
        return f"pid {pid}, {self.bootstrap}, log {self.log_path}"

    def log_text(self) -> str:
        """The broker's stderr so far, without colour codes."""
        try:
            raw = self.log_path.read_bytes()
        except FileNotFoundError:
            return ""
        return _ANSI.sub(b"", raw).decode("utf-8", errors="replace")

    def log_tail(self, lines: int = 200) -> str:
        text = self.log_text().splitlines()
        skipped = len(text) - lines
        head = [f"... ({skipped} earlier lines in {self.log_path})"] if skipped > 0 else []
        return "\n".join(head + text[-lines:])

    def start(self, same_port: bool = False) -> None:
        """Starts the broker and returns once it accepts connections.

        The port is chosen by binding port 0 first; if another process takes it
        in between, the broker fails to bind and exits, and a new port is tried.
        With `same_port` the broker comes back on the port it had, so that
        clients connected before a kill reconnect to it by themselves.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.killed = False
        self._apis = None
        env = dict(os.environ)
        # The log is read by people in a test report, not on a terminal.
        env["NO_COLOR"] = "1"
        for attempt in range(5):
            port = self.port if same_port and self.port else free_port()
            http_port = self.http_port if same_port and self.http_port else free_port()
            args = [
                str(self.binary),
                "serve",
                "--data-dir",
                str(self.data_dir),
                "--kafka-listener",
                f"127.0.0.1:{port}",
                "--http-listener",
                f"127.0.0.1:{http_port}",
                *self.extra_args,
            ]
            with open(self.log_path, "ab") as log:
                log.write(f"==> attempt {attempt + 1}: {' '.join(args)}\n".encode())
                log.flush()
                self.proc = subprocess.Popen(
                    args,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    env=env,
                    preexec_fn=_die_with_parent,
                )
            self.port = port
            self.http_port = http_port
            if self._wait_ready(port):
                return
            if self.proc.poll() is not None and (
                "binding the Kafka listener" in self.log_text() or "binding the HTTP listener" in self.log_text()
            ):
                continue
            problem = "exited" if self.proc.poll() is not None else f"not ready within {READY_TIMEOUT_S} s"
            self._kill()
            raise BrokerError(f"veltrix {problem} ({self.describe()}):\n{self.log_tail()}")
        raise BrokerError(f"veltrix could not bind a free port in 5 attempts:\n{self.log_tail()}")

    def _wait_ready(self, port: int) -> bool:
        """Waits until the port accepts connections and the log says so."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        ready_line = f"kafka listener ready addr=127.0.0.1:{port}"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            # A connection alone could reach another process that took the
            # port; the log line proves it is this broker listening.
            if ready_line in self.log_text():
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                        return True
                except OSError:
                    pass
            time.sleep(0.05)
        return False

    def apis(self) -> dict[int, tuple[int, int]]:
        """What the broker advertises in ApiVersions, asked once."""
        if self._apis is None:
            self._apis = api_versions("127.0.0.1", self.port)
        return self._apis

    def serves(self, *api_keys: int) -> bool:
        return all(k in self.apis() for k in api_keys)

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT_S)

    def kill(self) -> None:
        """SIGKILLs the broker, as a crash or power cut would stop it."""
        self.proc.kill()
        self.proc.wait(timeout=STOP_TIMEOUT_S)
        self.killed = True

    def restart(self) -> None:
        """Stops the broker cleanly and starts it again on the same data (new port)."""
        problems = self.stop()
        if problems:
            raise BrokerError("; ".join(problems) + f"\n{self.log_tail()}")
        self.start()

    def stop(self) -> list[str]:
        """Stops the broker with SIGTERM (SIGKILL if it hangs); returns problems.

        A broker that died during the test, did not exit in time, exited with
        an error, or logged a panic is a broker bug, and is reported so.
        """
        if self.proc is None or self.killed:
            return []
        problems = []
        code = self.proc.poll()
        if code is not None:
            problems.append(f"veltrix exited during the test with status {code}")
        else:
            # Popen.send_signal signals the exact child started above and
            # never a recycled PID, since the child is not reaped yet.
            self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(timeout=STOP_TIMEOUT_S)
                if code != 0:
                    problems.append(f"veltrix exited with status {code} after SIGTERM")
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT_S)
                problems.append(f"veltrix did not exit within {STOP_TIMEOUT_S} s of SIGTERM and was killed")
        if "panicked at" in self.log_text():
            problems.append("veltrix logged a panic")
        return problems

    def remove_data(self) -> None:
        """Deletes the data directory; the bulk test leaves a gigabyte there."""
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def data_bytes(self) -> int:
        """Bytes in all files under the data directory (the stored batches)."""
        return sum(p.stat().st_size for p in self.data_dir.rglob("*") if p.is_file())


def run(args: list[str], timeout_s: float, **kwargs) -> subprocess.CompletedProcess:
    """Runs a client command with a deadline; on timeout the child is killed."""
    return subprocess.run(args, timeout=timeout_s, capture_output=True, **kwargs)
