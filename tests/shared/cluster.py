"""Three `veltrix serve` processes in shared storage mode on one PostgreSQL and one bucket.

Every service here is started by the tests themselves on 127.0.0.1 with an
ephemeral port, writes its output to a file in the test's temporary directory,
is stopped by the exact process id it was started with, and is waited for by
polling against a deadline:

- PostgreSQL from Debian's package (VELTRIX_PG_BIN, else the newest
  /usr/lib/postgresql/*/bin): one `initdb` into a template in the temporary
  directory (shared with crates/veltrix-shared/tests/it/support.rs, built the
  same way), copied per cluster; the `postgres` server is run directly, so its
  PID is the postmaster's. As root it runs as the `postgres` user, so its data
  directory lives in a directory of its own under the temporary directory,
  which that user can reach (pytest's are private to root).
- moto, an S3 server (VELTRIX_MOTO_SERVER, else
  <target>/cloud-venv/bin/moto_server, installed by scripts/cloud-services
  install, or beside the broker's target directory); the bucket is created
  with a plain HTTP PUT.
- the brokers (VELTRIX, else VELTRIX_BIN, else <target>/debug/veltrix), each
  with a veltrix.toml of its own, `[storage] mode = "shared"`.

scripts/cloud-services installs the services; scripts/test runs this suite.
tests/clients/shared_storage.py reuses `Postgres`, `Moto`, `SharedBroker`,
`storage_toml` and `wait_all_advertised` to run the client tests against
three brokers in shared mode.
"""

from __future__ import annotations

import ctypes
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

BUCKET = "veltrix-test"
# Readiness deadlines: generous for a debug build on a busy two-core machine.
SERVICE_START_S = 30.0
BROKER_START_S = 30.0
STOP_S = 15.0
POLL_S = 0.05

_ANSI = re.compile(rb"\x1b\[[0-9;]*m")


class ServiceError(Exception):
    """A service did not start, died, or did not stop cleanly."""


def target_dir() -> Path:
    explicit = os.environ.get("CARGO_TARGET_DIR")
    return Path(explicit) if explicit and Path(explicit).is_absolute() else REPO / (explicit or "target")


def veltrix_binary() -> Path:
    for var in ("VELTRIX", "VELTRIX_BIN"):
        if os.environ.get(var):
            return Path(os.environ[var])
    return target_dir() / "debug" / "veltrix"


def pg_bin() -> Path | None:
    explicit = os.environ.get("VELTRIX_PG_BIN")
    if explicit:
        return Path(explicit)
    found = []
    for entry in Path("/usr/lib/postgresql").glob("*/bin/initdb"):
        try:
            found.append((int(entry.parent.parent.name), entry.parent))
        except ValueError:
            pass
    return max(found)[1] if found else None


def moto_server() -> Path | None:
    explicit = os.environ.get("VELTRIX_MOTO_SERVER")
    candidates = [Path(explicit)] if explicit else []
    candidates.append(target_dir() / "cloud-venv" / "bin" / "moto_server")
    # Beside the broker's own target directory (<target>/debug/veltrix).
    candidates.append(veltrix_binary().parent.parent / "cloud-venv" / "bin" / "moto_server")
    which = shutil.which("moto_server")
    if which:
        candidates.append(Path(which))
    return next((c for c in candidates if c.exists()), None)


def free_port() -> int:
    """A port that was free a moment ago (bind port 0, let the kernel choose)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """SIGKILL for the child if the test process dies first (runs between fork and exec).

    For PostgreSQL it runs after the switch to the postgres user, which clears
    the setting, so it is set here, last.
    """
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def wait_until(what: str, deadline_s: float, ready, proc: subprocess.Popen | None = None) -> None:
    """Polls `ready()` until it is true; fails past the deadline or if `proc` exits."""
    end = time.monotonic() + deadline_s
    while not ready():
        if proc is not None and proc.poll() is not None:
            raise ServiceError(f"{what}: the process exited with status {proc.returncode}")
        if time.monotonic() >= end:
            raise ServiceError(f"{what} not ready within {deadline_s} s")
        time.sleep(POLL_S)


def stop_process(proc: subprocess.Popen | None, sig: int) -> int | None:
    """Sends `sig` to the exact child, then SIGKILL past the deadline; its exit status."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=STOP_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_S)
    return proc.returncode


def http_status(port: int, method: str, path: str, timeout_s: float = 5.0) -> int | None:
    """One plain HTTP/1.1 request; its status code, or None if unreachable."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as s:
            s.sendall(
                f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                "Content-Length: 0\r\nConnection: close\r\n\r\n".encode()
            )
            head = b""
            while len(head) < 12:
                chunk = s.recv(12 - len(head))
                if not chunk:
                    return None
                head += chunk
        return int(head[9:12])
    except (OSError, ValueError):
        return None


def tail(path: Path, lines: int = 150) -> str:
    try:
        text = _ANSI.sub(b"", path.read_bytes()).decode("utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return f"({path} does not exist)"
    skipped = len(text) - lines
    head = [f"... ({skipped} earlier lines in {path})"] if skipped > 0 else []
    return "\n".join(head + text[-lines:])


def _postgres_ids() -> tuple[int, int] | None:
    """The postgres user's uid and gid when we are root (the server refuses root)."""
    if os.getuid() != 0:
        return None
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError as e:
        raise ServiceError("no postgres user: run scripts/cloud-services install") from e
    return entry.pw_uid, entry.pw_gid


def _chown_tree(path: Path) -> None:
    ids = _postgres_ids()
    if ids:
        subprocess.run(["chown", "-R", f"{ids[0]}:{ids[1]}", str(path)], check=True)


def _as_postgres() -> dict:
    ids = _postgres_ids()
    return {"user": ids[0], "group": ids[1], "extra_groups": []} if ids else {}


def _pg_template(bin_dir: Path) -> Path:
    """An initdb'd cluster kept in the temporary directory and copied per cluster.

    The same template, made the same way, as the Rust tests' support.rs.
    """
    root = Path(tempfile.gettempdir())
    template = root / f"veltrix-pg-template-{bin_dir.parent.name}"
    if (template / "PG_VERSION").exists():
        return template
    work = Path(tempfile.mkdtemp(prefix="veltrix-pg-init", dir=root))
    _chown_tree(work)
    data = work / "data"
    out = subprocess.run(
        [str(bin_dir / "initdb"), "-D", str(data), "-U", "veltrix", "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"],
        capture_output=True,
        timeout=120,
        **_as_postgres(),
    )
    if out.returncode != 0:
        raise ServiceError(f"initdb failed: {out.stderr.decode(errors='replace')}")
    try:
        data.rename(template)
    except OSError:
        pass  # another run made it first: theirs is as good
    shutil.rmtree(work, ignore_errors=True)
    return template


class Postgres:
    """A throwaway PostgreSQL server on its own copy of the template."""

    def __init__(self, bin_dir: Path, log_path: Path):
        self.bin_dir = bin_dir
        self.log_path = log_path
        self.dir = Path(tempfile.mkdtemp(prefix="veltrix-shared-pg-"))
        subprocess.run(["cp", "-a", "-T", str(_pg_template(bin_dir)), str(self.dir / "data")], check=True)
        _chown_tree(self.dir)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        return f"postgresql://veltrix@127.0.0.1:{self.port}/{database}"

    def sql(self, query: str, database: str = "postgres") -> subprocess.CompletedProcess:
        """One statement through psql (text output, unaligned, tuples only)."""
        return subprocess.run(
            [str(self.bin_dir / "psql"), self.url_for(database), "-tAc", query], capture_output=True, text=True, timeout=20
        )

    def start(self) -> None:
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"==> start {self.starts} on port {self.port}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [
                    str(self.bin_dir / "postgres"),
                    "-D", str(self.dir / "data"),
                    "-p", str(self.port),
                    "-k", str(self.dir),
                    "-c", "listen_addresses=127.0.0.1",
                    "-c", "fsync=off",
                    "-c", "max_connections=200",
                    "-c", "shared_buffers=32MB",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                preexec_fn=_die_with_parent,
                **_as_postgres(),
            )
        isready = [str(self.bin_dir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", "veltrix", "-d", "postgres"]
        wait_until(
            "PostgreSQL",
            SERVICE_START_S,
            lambda: subprocess.run(isready, timeout=10).returncode == 0,
            self.proc,
        )

    def stop(self, sig: int = signal.SIGINT) -> None:
        """SIGINT is PostgreSQL's fast shutdown (clients cut off, clean exit); SIGKILL a crash.

        After a SIGKILL of the postmaster its backends linger until they notice;
        they are waited for (by the data directory's lock file going stale) so
        that the next start on the same directory works.
        """
        stop_process(self.proc, sig)
        self.proc = None
        if sig == signal.SIGKILL:
            wait_until("PostgreSQL's backends to exit", STOP_S, lambda: not self._backends_left())

    def _backends_left(self) -> bool:
        """Whether any process still runs in this cluster's data directory (backends chdir there)."""
        data = str(self.dir / "data")
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if os.readlink(entry / "cwd") == data:
                        return True
                except OSError:
                    pass
        return False

    def restart(self, sig: int = signal.SIGINT, down_s: float = 0.0) -> None:
        """Stopped (fast shutdown by default) and started on the same port and data."""
        self.stop(sig)
        if down_s:
            time.sleep(down_s)  # the outage itself, not a wait for anything
        self.start()

    def close(self) -> None:
        stop_process(self.proc, signal.SIGINT)
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


class Moto:
    """A moto S3 server with one bucket."""

    def __init__(self, binary: Path, log_path: Path):
        self.binary = binary
        self.log_path = log_path
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.frozen = False

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [str(self.binary), "-H", "127.0.0.1", "-p", str(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                preexec_fn=_die_with_parent,
            )
        wait_until("moto", SERVICE_START_S, lambda: http_status(self.port, "HEAD", "/", 1.0) is not None, self.proc)
        status = http_status(self.port, "PUT", f"/{BUCKET}")
        if status != 200:
            raise ServiceError(f"creating bucket {BUCKET}: HTTP {status}")

    def freeze(self) -> None:
        """SIGSTOP: connections hang, as to an unreachable server."""
        self.proc.send_signal(signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        self.proc.send_signal(signal.SIGCONT)
        self.frozen = False

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
        stop_process(self.proc, signal.SIGTERM)
        self.proc = None


def storage_toml(storage: dict, broker_id: int) -> str:
    """The `[storage]` table of a broker in shared mode (`key_prefix` when `storage` names one)."""
    s = storage
    prefix = f'key_prefix = "{s["key_prefix"]}"\n' if s.get("key_prefix") else ""
    return (
        "[storage]\n"
        'mode = "shared"\n'
        f"broker_id = {broker_id}\n"
        f'bucket = "{s["bucket"]}"\n'
        f"{prefix}"
        f'endpoint = "{s["endpoint"]}"\n'
        "allow_http = true\n"
        'region = "us-east-1"\n'
        f'postgres_url = "{s["postgres_url"]}"\n'
        f"flush_interval_ms = {s.get('flush_interval_ms', 50)}\n"
        f"lease_ms = {s.get('lease_ms', 3000)}\n"
        # Small objects merged a second after their commit, a round every
        # second: every test here runs with batches moving between objects.
        "merge_age_ms_min = 1000\n"
    )


class SharedBroker:
    """One `veltrix serve` in shared storage mode, with a fixed broker id."""

    def __init__(self, binary: Path, workdir: Path, broker_id: int, storage: dict):
        self.binary = binary
        self.broker_id = broker_id
        self.workdir = workdir
        self.config_path = workdir / "veltrix.toml"
        self.log_path = workdir / "veltrix.stderr.log"
        self.storage = storage
        self.port: int | None = None
        self.http_port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        # Set by kill(): the process is gone on purpose.
        self.killed = False

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def up(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def describe(self) -> str:
        pid = self.proc.pid if self.proc else None
        return f"broker {self.broker_id}, pid {pid}, {self.bootstrap}, log {self.log_path}"

    def log_text(self) -> str:
        try:
            return _ANSI.sub(b"", self.log_path.read_bytes()).decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 150) -> str:
        return tail(self.log_path, lines)

    def _write_config(self) -> None:
        self.config_path.write_text(
            "[broker]\n"
            f'data_dir = "{self.workdir / "data"}"\n'
            "\n[listeners]\n"
            f'kafka = "127.0.0.1:{self.port}"\n'
            f'http = "127.0.0.1:{self.http_port}"\n'
            "\n" + storage_toml(self.storage, self.broker_id)
        )

    def command(self) -> list[str]:
        """The `veltrix serve` command line, once `_write_config` has written the file."""
        return [str(self.binary), "serve", "--config", str(self.config_path)]

    def start(self) -> None:
        """Starts the broker on its ports (chosen on the first start, kept afterwards)."""
        (self.workdir / "data").mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update({"NO_COLOR": "1", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"})
        first = self.port is None
        for attempt in range(5 if first else 1):
            if first:
                self.port, self.http_port = free_port(), free_port()
            self._write_config()
            self.starts += 1
            args = self.command()
            with open(self.log_path, "ab") as log:
                log.write(f"==> start {self.starts}: {' '.join(args)} (kafka {self.port}, http {self.http_port})\n".encode())
                log.flush()
                self.proc = subprocess.Popen(
                    args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, preexec_fn=_die_with_parent
                )
            self.killed = False
            if self._wait_ready():
                return
            text = self.log_text()
            if first and self.proc.poll() is not None and "binding the" in text.split("==> start")[-1]:
                continue  # another process took the port in between: new ports
            problem = "exited" if self.proc.poll() is not None else f"not ready within {BROKER_START_S} s"
            self.proc.kill()
            self.proc.wait(timeout=STOP_S)
            raise ServiceError(f"veltrix {problem} ({self.describe()}):\n{self.log_tail()}")
        raise ServiceError(f"veltrix could not bind free ports in 5 attempts:\n{self.log_tail()}")

    def _wait_ready(self) -> bool:
        """The log says this start's listener is ready, and it accepts connections."""
        end = time.monotonic() + BROKER_START_S
        ready_line = f"kafka listener ready addr=127.0.0.1:{self.port}"
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                return False
            if ready_line in self.log_text().split("==> start")[-1]:
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1.0):
                        return True
                except OSError:
                    pass
            time.sleep(POLL_S)
        return False

    def kill(self) -> None:
        """SIGKILL, as a crash or a lost machine stops it."""
        self.proc.kill()
        self.proc.wait(timeout=STOP_S)
        self.killed = True
        with open(self.log_path, "ab") as log:
            log.write(f"==> SIGKILLed by the test at {time.strftime('%H:%M:%S')}\n".encode())

    def stop(self) -> list[str]:
        """SIGTERM (SIGKILL if it hangs); the problems seen, as the client tests report them."""
        problems = []
        if self.proc is None:
            return problems
        if not self.killed:
            code = self.proc.poll()
            if code is not None:
                problems.append(f"veltrix exited during the test with status {code}")
            else:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    code = self.proc.wait(timeout=STOP_S)
                    if code != 0:
                        problems.append(f"veltrix exited with status {code} after SIGTERM")
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=STOP_S)
                    problems.append(f"veltrix did not exit within {STOP_S} s of SIGTERM and was killed")
        if "panicked at" in self.log_text():
            problems.append("veltrix logged a panic")
        return problems


def advertised(broker: SharedBroker) -> set[int] | None:
    """The broker ids `broker`'s Metadata answer lists, or None if it did not answer."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": broker.bootstrap, "socket.timeout.ms": 3000})
    try:
        md = admin.list_topics(timeout=3)
    except Exception:
        return None
    return set(md.brokers)


def wait_all_advertised(brokers: list[SharedBroker], deadline_s: float = 30.0) -> None:
    """Every running broker's Metadata lists every running broker's id."""
    end = time.monotonic() + deadline_s
    want = {b.broker_id for b in brokers if b.up}
    seen: dict[int, set | None] = {}
    while True:
        seen = {b.broker_id: advertised(b) for b in brokers if b.up}
        if all(s is not None and want <= s for s in seen.values()):
            return
        if time.monotonic() >= end:
            raise ServiceError(f"brokers {sorted(want)} not all advertised within {deadline_s} s: each broker lists {seen}")
        time.sleep(0.2)


class Cluster:
    """PostgreSQL, moto and N brokers sharing them."""

    def __init__(self, workdir: Path, brokers: int = 3, binary: Path | None = None, pg: Path | None = None, moto: Path | None = None):
        self.workdir = workdir
        self.binary = binary or veltrix_binary()
        self.postgres = Postgres(pg or pg_bin(), workdir / "postgres.log")
        self.moto = Moto(moto or moto_server(), workdir / "moto.log")
        self.brokers: list[SharedBroker] = []
        self.count = brokers

    def start(self) -> None:
        self.postgres.start()
        self.moto.start()
        storage = {"bucket": BUCKET, "endpoint": self.moto.endpoint, "postgres_url": self.postgres.url}
        for i in range(self.count):
            broker = SharedBroker(self.binary, self.workdir / f"broker-{i + 1}", i + 1, storage)
            self.brokers.append(broker)
            broker.start()
        self.wait_all_advertised()

    # -- addresses ---------------------------------------------------------

    def bootstrap(self, i: int | None = None) -> str:
        """One broker's address (index i), or all of them, comma-separated."""
        if i is not None:
            return self.brokers[i].bootstrap
        return ",".join(b.bootstrap for b in self.brokers)

    def up_bootstrap(self) -> str:
        return ",".join(b.bootstrap for b in self.brokers if b.up)

    def broker_by_id(self, broker_id: int) -> SharedBroker:
        return next(b for b in self.brokers if b.broker_id == broker_id)

    # -- faults ------------------------------------------------------------

    def kill(self, i: int) -> None:
        self.brokers[i].kill()

    def restart(self, i: int) -> None:
        """Starts a killed broker again: same broker id, same ports; waits until it is advertised."""
        self.brokers[i].start()
        self.wait_all_advertised()

    def kill_and_restart(self, i: int) -> None:
        self.kill(i)
        self.restart(i)

    def restart_postgres(self, sig: int = signal.SIGINT, down_s: float = 0.0) -> None:
        self.postgres.restart(sig, down_s)

    def freeze_bucket(self, seconds: float) -> None:
        """moto SIGSTOPped for `seconds` (the outage itself), then SIGCONTed."""
        self.moto.freeze()
        try:
            time.sleep(seconds)
        finally:
            self.moto.thaw()

    # -- readiness ---------------------------------------------------------

    def advertised(self, broker: SharedBroker) -> set[int] | None:
        return advertised(broker)

    def wait_all_advertised(self, deadline_s: float = 30.0) -> None:
        wait_all_advertised(self.brokers, deadline_s)

    def sql(self, query: str) -> str:
        """One query through psql, for the numbers a test prints; the error text if it fails."""
        out = self.postgres.sql(query)
        return out.stdout.strip() if out.returncode == 0 else out.stderr.strip()

    # -- teardown ----------------------------------------------------------

    def close(self) -> list[str]:
        problems = []
        for b in self.brokers:
            problems += [f"{p} ({b.describe()})" for p in b.stop()]
        self.moto.close()
        self.postgres.close()
        return problems

    def report_sections(self) -> list[tuple[str, str]]:
        sections = [(f"veltrix stderr ({b.describe()})", b.log_tail()) for b in self.brokers]
        sections.append((f"postgres log ({self.postgres.log_path})", tail(self.postgres.log_path, 60)))
        sections.append((f"moto log ({self.moto.log_path})", tail(self.moto.log_path, 30)))
        return sections
