"""The client tests against three brokers in shared storage mode.

With VELTRIX_CLIENT_STORAGE=shared (scripts/test-clients --shared), every
`start_broker` of a test starts three `veltrix serve` processes in shared mode
(`[storage] mode = "shared"`, broker ids 1 to 3) instead of one broker on its
own disk. PostgreSQL and the moto S3 server are started once per session by
tests/shared/cluster.py's `Postgres` and `Moto`; each deployment gets a
database of its own (`CREATE DATABASE` through psql) and a key prefix of its
own in the one bucket, so no test sees another's topics, offsets or objects.

The test's extra `veltrix serve` flags go to all three brokers. A `--config`
file of the test is copied per broker with the `[storage]` table added, and
the addresses of its extra listeners (`[[listener]] address`) moved to ports
of their own for brokers 2 and 3, which cannot bind the same ones.

`Deployment` answers what the tests ask of `harness.Broker`: `bootstrap`
lists all three brokers, so clients spread over them; `port`, `http_port` and
`data_dir` are broker 1's (the first address in `bootstrap`, where clients
start); kill, start and restart act on all three; stop checks that each one
exits cleanly after SIGTERM.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import re
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

from harness import api_versions, free_port

REPO = Path(__file__).resolve().parents[2]
BROKERS = 3


def enabled() -> bool:
    """Whether this run is against shared storage (VELTRIX_CLIENT_STORAGE=shared)."""
    mode = os.environ.get("VELTRIX_CLIENT_STORAGE", "local")
    if mode not in ("local", "shared"):
        raise ValueError(f"VELTRIX_CLIENT_STORAGE={mode!r}: expected `local` or `shared`")
    return mode == "shared"


def _load_cluster():
    """tests/shared/cluster.py, under a name of its own (tests/clients has its own modules)."""
    path = REPO / "tests" / "shared" / "cluster.py"
    spec = importlib.util.spec_from_file_location("veltrix_shared_cluster", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cluster = _load_cluster()

_LISTENER_ADDRESS = re.compile(r'^(\s*address\s*=\s*")127\.0\.0\.1:(\d+)(")', re.MULTILINE)


class Services:
    """PostgreSQL and moto for the whole session; a database and key prefix per deployment."""

    def __init__(self, workdir: Path, binary: Path):
        pg, moto = cluster.pg_bin(), cluster.moto_server()
        if pg is None or not (pg / "initdb").exists() or moto is None:
            raise cluster.ServiceError(
                f"PostgreSQL binaries: {pg}, moto_server: {moto} (install both with scripts/cloud-services install)"
            )
        self.binary = binary
        self.workdir = workdir
        self.postgres = cluster.Postgres(pg, workdir / "postgres.log")
        self.moto = cluster.Moto(moto, workdir / "moto.log")
        self._numbers = itertools.count(1)

    def start(self) -> None:
        self.postgres.start()
        self.moto.start()

    def close(self) -> None:
        self.moto.close()
        self.postgres.close()

    def new_storage(self) -> dict:
        """A fresh database and key prefix: the `storage` of one deployment."""
        n = next(self._numbers)
        database = f"veltrix_client_{n}"
        done = self.postgres.sql(f"CREATE DATABASE {database}")
        if done.returncode != 0:
            raise cluster.ServiceError(f"CREATE DATABASE {database}: {done.stderr.strip()}")
        return {
            "bucket": cluster.BUCKET,
            "key_prefix": f"client-{n}",
            "endpoint": self.moto.endpoint,
            "postgres_url": self.postgres.url_for(database),
        }

    def bucket_bytes(self, prefix: str) -> int:
        """Bytes of the objects under `prefix/` in the bucket."""
        return sum(size for _, size in self._objects(prefix))

    def _objects(self, prefix: str) -> list[tuple[str, int]]:
        """(key, size) of the objects under `prefix/` (ListObjectsV2, page by page)."""
        found, token = [], None
        while True:
            url = f"{self.moto.endpoint}/{cluster.BUCKET}?list-type=2&prefix={prefix}/"
            if token:
                url += "&continuation-token=" + urllib.request.quote(token, safe="")
            with urllib.request.urlopen(url, timeout=10) as r:
                root = ET.fromstring(r.read())
            ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
            found += [(c.findtext(f"{ns}Key"), int(c.findtext(f"{ns}Size"))) for c in root.iter(f"{ns}Contents")]
            token_el = root.find(f"{ns}NextContinuationToken")
            if root.findtext(f"{ns}IsTruncated") != "true" or token_el is None:
                return found
            token = token_el.text


class ClientSharedBroker(cluster.SharedBroker):
    """A shared-mode broker started with a client test's `veltrix serve` flags.

    Its listeners and data directory are given as flags, as `harness.Broker`
    gives them; its configuration file is the test's own (if any) with the
    `[storage]` table appended.
    """

    def __init__(self, binary: Path, workdir: Path, broker_id: int, storage: dict, extra_args: list[str]):
        super().__init__(binary, workdir, broker_id, storage)
        args = list(extra_args)
        self.test_config: Path | None = None
        if "--config" in args:
            i = args.index("--config")
            self.test_config = Path(args[i + 1])
            del args[i : i + 2]
        self.extra_args = args
        self.data_dir = workdir / "data"
        # The test's extra listeners' ports, moved for every broker but the first.
        self._listener_ports: dict[str, int] = {}

    def _write_config(self) -> None:
        text = self.test_config.read_text() if self.test_config else ""
        if self.broker_id != 1:
            def moved(m: re.Match) -> str:
                port = self._listener_ports.setdefault(m.group(2), free_port())
                return f"{m.group(1)}127.0.0.1:{port}{m.group(3)}"

            text = _LISTENER_ADDRESS.sub(moved, text)
        self.config_path.write_text(text + "\n\n" + cluster.storage_toml(self.storage, self.broker_id))

    def command(self) -> list[str]:
        return [
            str(self.binary),
            "serve",
            "--config",
            str(self.config_path),
            "--data-dir",
            str(self.data_dir),
            "--kafka-listener",
            f"127.0.0.1:{self.port}",
            "--http-listener",
            f"127.0.0.1:{self.http_port}",
            *self.extra_args,
        ]


class Deployment:
    """Three shared-mode brokers on one database and key prefix, used as tests use `harness.Broker`."""

    def __init__(self, services: Services, workdir: Path, extra_args: list[str]):
        self.services = services
        self.workdir = workdir
        self.extra_args = extra_args
        self.storage = services.new_storage()
        self.brokers = [
            ClientSharedBroker(services.binary, workdir / f"broker-{i}", i, self.storage, extra_args)
            for i in range(1, BROKERS + 1)
        ]
        self.killed = False
        self._apis: dict[int, tuple[int, int]] | None = None

    # -- what the tests read -------------------------------------------------

    @property
    def binary(self) -> Path:
        return self.services.binary

    @property
    def bootstrap(self) -> str:
        return ",".join(b.bootstrap for b in self.brokers)

    @property
    def port(self) -> int | None:
        return self.brokers[0].port

    @property
    def http_port(self) -> int | None:
        return self.brokers[0].http_port

    @property
    def data_dir(self) -> Path:
        return self.brokers[0].data_dir

    @property
    def nodes(self) -> list[tuple[int, str, int]]:
        """(node id, host, port) of every broker, as DescribeCluster should name them."""
        return [(b.broker_id, "127.0.0.1", b.port) for b in self.brokers]

    @property
    def node_ids(self) -> set[int]:
        return {b.broker_id for b in self.brokers}

    @property
    def addresses(self) -> list[str]:
        """Each broker's own address: users, ACLs and quotas are each broker's own, set on every one."""
        return [b.bootstrap for b in self.brokers]

    def describe(self) -> str:
        return (
            f"{BROKERS} brokers in shared mode, database {self.storage['postgres_url'].rsplit('/', 1)[1]}, "
            f"prefix {self.storage['key_prefix']}: " + "; ".join(b.describe() for b in self.brokers)
        )

    def log_text(self) -> str:
        """Every broker's stderr so far, one after the other."""
        return "\n".join(b.log_text() for b in self.brokers)

    def log_tail(self, lines: int = 200) -> str:
        return "\n".join(f"--- {b.describe()}\n{b.log_tail(lines // BROKERS)}" for b in self.brokers)

    def apis(self) -> dict[int, tuple[int, int]]:
        if self._apis is None:
            self._apis = api_versions("127.0.0.1", self.port)
        return self._apis

    def serves(self, *api_keys: int) -> bool:
        return all(k in self.apis() for k in api_keys)

    def data_bytes(self) -> int:
        """The bytes the deployment stores: its objects in the bucket."""
        return self.services.bucket_bytes(self.storage["key_prefix"])

    # -- what the tests do ---------------------------------------------------

    def start(self, same_port: bool = False) -> None:
        """Starts the three brokers (a broker keeps its ports across starts); waits until each lists all."""
        self.killed = False
        self._apis = None
        for b in self.brokers:
            b.start()
        cluster.wait_all_advertised(self.brokers)

    def kill(self) -> None:
        """SIGKILLs all three brokers."""
        for b in self.brokers:
            b.kill()
        self.killed = True

    def restart(self) -> None:
        problems = self.stop()
        if problems:
            raise cluster.ServiceError("; ".join(problems) + f"\n{self.log_tail()}")
        self.start()

    def stop(self) -> list[str]:
        """SIGTERM to each broker; the problems seen (died, hung, failed, panicked)."""
        problems = []
        for b in self.brokers:
            problems += [f"{p} (broker {b.broker_id})" for p in b.stop()]
            # A stopped broker is not stopped again by the next stop().
            b.killed = True
        return problems

    def remove_data(self) -> None:
        """Deletes the brokers' data directories (the objects stay in moto until the session ends)."""
        for b in self.brokers:
            cluster.shutil.rmtree(b.data_dir, ignore_errors=True)
