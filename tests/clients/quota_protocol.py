"""AlterClientQuotas and DescribeClientQuotas (v0) by hand.

confluent-kafka's AdminClient has no client-quota calls (librdkafka does not
implement them), and kafka-python only ships the message schemas, so the tests
speak these two requests themselves, exactly as Kafka's protocol guide lays
them out: a request header v1, then the body; a response header v0.
"""

from __future__ import annotations

import socket
import struct

from harness import _recv_exact

API_ALTER_CLIENT_QUOTAS = 49
API_DESCRIBE_CLIENT_QUOTAS = 48

MATCH_EXACT, MATCH_DEFAULT, MATCH_SPECIFIED = 0, 1, 2


def _string(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def _nullable(s: str | None) -> bytes:
    return struct.pack(">h", -1) if s is None else _string(s)


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.at = data, 0

    def take(self, fmt: str):
        values = struct.unpack_from(fmt, self.data, self.at)
        self.at += struct.calcsize(fmt)
        return values if len(values) > 1 else values[0]

    def string(self) -> str | None:
        n = self.take(">h")
        if n < 0:
            return None
        s = self.data[self.at : self.at + n].decode()
        self.at += n
        return s


def _call(bootstrap: str, api: int, body: bytes, timeout_s: float = 10.0) -> _Reader:
    host, port = bootstrap.rsplit(":", 1)
    client_id = b"quota-admin"
    header = struct.pack(">hhih", api, 0, 11, len(client_id)) + client_id
    frame = header + body
    with socket.create_connection((host, int(port)), timeout=timeout_s) as sock:
        sock.sendall(struct.pack(">i", len(frame)) + frame)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        r = _Reader(_recv_exact(sock, size))
    assert r.take(">i") == 11
    return r


Entity = dict  # {"user": name or None (default), "client-id": ...}


def alter(bootstrap: str, entries: list[tuple[Entity, dict]], validate_only: bool = False) -> list[tuple[int, str | None]]:
    """Sets (a float) or removes (None) quotas; returns (error code, message) per entry.

    With several brokers in `bootstrap` (shared storage, where quotas are each
    broker's own, set alike on every broker) each gets the same change, and
    they must all answer alike."""
    answers = [_alter_one(addr, entries, validate_only) for addr in bootstrap.split(",")]
    assert all(a == answers[0] for a in answers), f"the brokers answered differently: {answers}"
    return answers[0]


def _alter_one(bootstrap: str, entries: list[tuple[Entity, dict]], validate_only: bool) -> list[tuple[int, str | None]]:
    body = struct.pack(">i", len(entries))
    for entity, ops in entries:
        body += struct.pack(">i", len(entity))
        for kind, name in entity.items():
            body += _string(kind) + _nullable(name)
        body += struct.pack(">i", len(ops))
        for key, value in ops.items():
            body += _string(key) + struct.pack(">d?", value or 0.0, value is None)
    body += struct.pack(">?", validate_only)
    r = _call(bootstrap, API_ALTER_CLIENT_QUOTAS, body)
    r.take(">i")  # throttle
    out = []
    for _ in range(r.take(">i")):
        code, message = r.take(">h"), r.string()
        for _ in range(r.take(">i")):
            r.string(), r.string()
        out.append((code, message))
    return out


def describe(bootstrap: str, components: list[tuple[str, int, str | None]], strict: bool = False):
    """Returns (error code, message, [({entity type: name}, {key: value})])."""
    body = struct.pack(">i", len(components))
    for kind, match_type, match in components:
        body += _string(kind) + struct.pack(">b", match_type) + _nullable(match)
    body += struct.pack(">?", strict)
    r = _call(bootstrap.split(",")[0], API_DESCRIBE_CLIENT_QUOTAS, body)
    r.take(">i")
    code, message = r.take(">h"), r.string()
    entries = []
    n = r.take(">i")
    for _ in range(max(n, 0)):
        entity = {}
        for _ in range(r.take(">i")):
            kind = r.string()
            entity[kind] = r.string()
        values = {}
        for _ in range(r.take(">i")):
            key = r.string()
            values[key] = r.take(">d")
        entries.append((entity, values))
    return code, message, entries
