"""TLS, SASL and ACLs with real clients.

One broker per test with three Kafka listeners: the plaintext loopback one the
command-line tools use (its principal `User:local-admin`, a super user), a
SASL_SSL one offering SCRAM-SHA-512, SCRAM-SHA-256 and PLAIN, and an SSL one
that requires client certificates (mTLS) and maps the certificate's CN to the
principal. Certificates are made for each test by `openssl` (a CA, a server
certificate for 127.0.0.1 and a client certificate). Users are added with
`veltrix user add`, ACLs with `veltrix acl add`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from kafka import KafkaConsumer, KafkaProducer

from harness import free_port, run, veltrix_binary

JS_DIR = Path(__file__).resolve().parent / "js"
PASSWORDS = {"alice": "alice-Secret-1f9c", "bob": "bob-Secret-77aa", "carol": "carol-Secret-0e21"}
RECORDS = 200


def openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, timeout=60)
    assert done.returncode == 0, f"openssl {' '.join(args)}: {done.stderr.decode()}"


def make_certificates(d: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and localhost, and a client
    certificate with CN=kcat-client, all signed by the CA."""
    d.mkdir(parents=True, exist_ok=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "30", "-subj", "/CN=Veltrix Test CA", cwd=d)
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=localhost", cwd=d)
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "90", "-extfile", "server.ext", cwd=d)
    # Extensions make it an X.509 v3 certificate: rustls (webpki), like
    # browsers, accepts no other version.
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "client.key", "-out", "client.csr",
            "-subj", "/O=Veltrix Tests/CN=kcat-client", cwd=d)
    openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "client.pem", "-days", "90", "-extfile", "client.ext", cwd=d)
    return {n: d / f"{n}" for n in ["ca.pem", "server.pem", "server.key", "client.pem", "client.key"]}


class Secure:
    """A broker with plaintext, SASL_SSL and mTLS listeners."""

    def __init__(self, start_broker, tmp_path: Path, authorization: bool, mechanisms: list[str]):
        self.certs = make_certificates(tmp_path / "certs")
        self.sasl_port = free_port()
        self.mtls_port = free_port()
        config = tmp_path / "veltrix.toml"
        config.write_text(f"""
[listeners]
kafka_principal = "User:local-admin"

[security]
authorization = {str(authorization).lower()}
super_users = ["User:local-admin"]
authentication_failure_delay_ms = 50

[[listener]]
name = "sasl-ssl"
address = "127.0.0.1:{self.sasl_port}"
protocol = "SASL_SSL"
sasl_mechanisms = {json.dumps(mechanisms)}
tls_cert_file = "{self.certs['server.pem']}"
tls_key_file = "{self.certs['server.key']}"

[[listener]]
name = "mtls"
address = "127.0.0.1:{self.mtls_port}"
protocol = "SSL"
tls_cert_file = "{self.certs['server.pem']}"
tls_key_file = "{self.certs['server.key']}"
tls_client_ca_file = "{self.certs['ca.pem']}"
tls_client_auth = "required"
principal_mapping_rules = ["RULE:^CN=([^,]+),.*$/$1/", "DEFAULT"]
""")
        self.broker = start_broker("--config", str(config))
        self.sasl = f"127.0.0.1:{self.sasl_port}"
        self.mtls = f"127.0.0.1:{self.mtls_port}"

    def cli(self, *args: str, stdin: bytes | None = None) -> str:
        """A `veltrix` command; users and ACLs are each broker's own, so those go to every broker."""
        addresses = self.broker.addresses if args[0] in ("user", "acl") and args[1] != "list" else self.broker.addresses[:1]
        for address in addresses:
            done = run([str(veltrix_binary()), *args, "--bootstrap", address], timeout_s=60, input=stdin)
            assert done.returncode == 0, f"veltrix {' '.join(args)}: {done.stderr.decode()}"
        return done.stdout.decode()

    def add_user(self, name: str, *mechanisms: str) -> None:
        flags = [a for m in mechanisms for a in ("--mechanism", m)]
        self.cli("user", "add", name, "--password-stdin", *flags, stdin=PASSWORDS[name].encode() + b"\n")

    def topic(self, name: str, partitions: int = 1) -> str:
        self.cli("topic", "create", name, "--partitions", str(partitions))
        return name

    def end_offset(self, topic: str) -> int:
        c = Consumer({"bootstrap.servers": self.broker.bootstrap, "group.id": "offsets"})
        try:
            _, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
            return high
        finally:
            c.close()


def scram(secure: Secure, user: str, mechanism: str, password: str | None = None) -> dict:
    return {
        "bootstrap.servers": secure.sasl,
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": str(secure.certs["ca.pem"]),
        "sasl.mechanism": mechanism,
        "sasl.username": user,
        "sasl.password": password if password is not None else PASSWORDS[user],
    }


def produce_and_consume(conf: dict, topic: str, count: int) -> list[bytes]:
    """Produces `count` records with acks=all, then reads them back."""
    errors: list = []
    p = Producer({**conf, "acks": "all", "error_cb": errors.append})
    for i in range(count):
        p.produce(topic, value=f"record-{i}".encode(), on_delivery=lambda e, m: e and errors.append(e))
    assert p.flush(30) == 0, errors
    assert not errors, errors
    c = Consumer({**conf, "group.id": f"g-{uuid.uuid4()}", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    got: list[bytes] = []
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + 30
        while len(got) < count and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                got.append(m.value())
    finally:
        c.close()
    return got


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "SCRAM-SHA-256"])
def test_confluent_kafka_over_sasl_ssl_with_scram(start_broker, tmp_path, mechanism):
    """confluent-kafka authenticates with SCRAM over TLS, produces and reads back."""
    secure = Secure(start_broker, tmp_path, authorization=False, mechanisms=["SCRAM-SHA-512", "SCRAM-SHA-256"])
    secure.add_user("alice", mechanism)
    topic = secure.topic("scram-topic")
    got = produce_and_consume(scram(secure, "alice", mechanism), topic, RECORDS)
    assert got == [f"record-{i}".encode() for i in range(RECORDS)]


def test_wrong_password_is_refused_and_writes_nothing(start_broker, tmp_path):
    """A wrong password: an authentication error, and no record reaches the topic."""
    secure = Secure(start_broker, tmp_path, authorization=False, mechanisms=["SCRAM-SHA-512"])
    secure.add_user("alice", "SCRAM-SHA-512")
    topic = secure.topic("guarded")
    errors: list = []
    p = Producer({**scram(secure, "alice", "SCRAM-SHA-512", password="not-her-password"),
                  "error_cb": errors.append, "message.timeout.ms": 5000})
    p.produce(topic, value=b"should never be stored")
    p.flush(8)
    assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), errors
    assert secure.end_offset(topic) == 0
    assert "authentication_failed" in secure.broker.log_text()


def test_kafka_python_with_sasl_plain_over_ssl(start_broker, tmp_path):
    """kafka-python authenticates with PLAIN over TLS (checked against the
    user's SCRAM credentials), produces and reads back."""
    secure = Secure(start_broker, tmp_path, authorization=False, mechanisms=["PLAIN"])
    secure.add_user("bob")
    topic = secure.topic("plain-topic")
    common = dict(bootstrap_servers=secure.sasl, security_protocol="SASL_SSL",
                  ssl_cafile=str(secure.certs["ca.pem"]), sasl_mechanism="PLAIN",
                  sasl_plain_username="bob", sasl_plain_password=PASSWORDS["bob"])
    producer = KafkaProducer(acks="all", enable_idempotence=False, **common)
    for i in range(RECORDS):
        producer.send(topic, f"plain-{i}".encode())
    producer.flush(30)
    producer.close()
    consumer = KafkaConsumer(topic, auto_offset_reset="earliest", consumer_timeout_ms=10_000,
                             enable_auto_commit=False, **common)
    got = [m.value for m in consumer][:RECORDS]
    consumer.close()
    assert got == [f"plain-{i}".encode() for i in range(RECORDS)]


def test_kafkajs_with_scram(start_broker, tmp_path):
    """KafkaJS authenticates with SCRAM-SHA-256 and -512 over TLS, produces and reads back."""
    node = shutil.which("node")
    assert node, "the KafkaJS tests need Node 20"
    secure = Secure(start_broker, tmp_path, authorization=False, mechanisms=["SCRAM-SHA-512", "SCRAM-SHA-256"])
    secure.add_user("carol")
    for mechanism in ["scram-sha-256", "scram-sha-512"]:
        topic = secure.topic(f"kafkajs-{mechanism}")
        env = dict(os.environ, KAFKAJS_NO_PARTITIONER_WARNING="1")
        done = run([node, "sasl.mjs", secure.sasl, str(secure.certs["ca.pem"]), mechanism, "carol",
                    PASSWORDS["carol"], topic, "50"], timeout_s=90, cwd=JS_DIR, env=env)
        assert done.returncode == 0, done.stderr.decode()
        out = json.loads(done.stdout.decode().strip().splitlines()[-1])
        assert out["consumed"] == [f"js-{i}" for i in range(50)], out


def kcat(secure: Secure, *args: str, stdin: bytes | None = None, cert: bool = True) -> subprocess.CompletedProcess:
    tls = ["-X", "security.protocol=ssl", "-X", f"ssl.ca.location={secure.certs['ca.pem']}"]
    if cert:
        tls += ["-X", f"ssl.certificate.location={secure.certs['client.pem']}",
                "-X", f"ssl.key.location={secure.certs['client.key']}"]
    return run(["kcat", "-b", secure.mtls, *tls, *args], timeout_s=60, input=stdin)


def test_kcat_with_mutual_tls_and_acls(start_broker, tmp_path):
    """kcat with a client certificate: its CN is the principal; without an ACL
    it may not write, with one it produces and consumes; without a
    certificate it cannot connect at all."""
    secure = Secure(start_broker, tmp_path, authorization=True, mechanisms=["SCRAM-SHA-512"])
    topic = secure.topic("mtls-topic")
    lines = b"".join(f"mtls-{i}\n".encode() for i in range(20))
    denied = kcat(secure, "-P", "-t", topic, "-p", "0", stdin=lines)
    assert "authorization failed" in denied.stderr.decode().lower(), denied.stderr.decode()
    assert secure.end_offset(topic) == 0
    for op in ["WRITE", "READ", "DESCRIBE"]:
        secure.cli("acl", "add", "--principal", "User:kcat-client", "--operation", op, "--topic", topic)
    produced = kcat(secure, "-P", "-t", topic, "-p", "0", stdin=lines)
    assert produced.returncode == 0, produced.stderr.decode()
    consumed = kcat(secure, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-q")
    assert consumed.returncode == 0, consumed.stderr.decode()
    assert consumed.stdout.decode().split() == [f"mtls-{i}" for i in range(20)]
    listed = secure.cli("acl", "list", "--topic", topic)
    assert "User:kcat-client" in listed and "WRITE" in listed
    no_cert = kcat(secure, "-L", "-m", "5", cert=False)
    assert no_cert.returncode != 0


def test_acls_decide_what_a_scram_user_may_do(start_broker, tmp_path):
    """With authorization on: no ACL, no access (TOPIC_AUTHORIZATION_FAILED);
    a PREFIXED ALLOW opens every topic under it; a DENY wins over it."""
    secure = Secure(start_broker, tmp_path, authorization=True, mechanisms=["SCRAM-SHA-512"])
    secure.add_user("alice", "SCRAM-SHA-512")
    topic = secure.topic("payments.events")
    conf = scram(secure, "alice", "SCRAM-SHA-512")

    def produce_one() -> KafkaError | None:
        errors: list = []
        p = Producer({**conf, "acks": "all", "message.timeout.ms": 8000, "error_cb": errors.append})
        p.produce(topic, value=b"x", on_delivery=lambda e, m: errors.append(e))
        p.flush(12)
        return next((e for e in errors if e is not None), None)

    refused = produce_one()
    assert refused is not None and refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, refused
    secure.cli("acl", "add", "--principal", "User:alice", "--operation", "WRITE", "--operation", "DESCRIBE",
               "--topic", "payments.", "--prefixed")
    assert produce_one() is None
    secure.cli("acl", "add", "--principal", "User:alice", "--deny", "--operation", "WRITE", "--topic", topic)
    denied = produce_one()
    assert denied is not None and denied.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, denied
    assert secure.end_offset(topic) == 1


def test_no_plain_text_password_on_disk(start_broker, tmp_path):
    """The data directory (credentials included) holds no password in clear,
    after users were added and authenticated with SCRAM and PLAIN."""
    secure = Secure(start_broker, tmp_path, authorization=False, mechanisms=["SCRAM-SHA-512", "PLAIN"])
    secure.add_user("alice")
    secure.add_user("bob")
    topic = secure.topic("disk-check")
    produce_and_consume(scram(secure, "alice", "SCRAM-SHA-512"), topic, 5)
    produce_and_consume({**scram(secure, "bob", "PLAIN")}, topic, 5)
    users = secure.cli("user", "list")
    assert "alice" in users and "SCRAM-SHA-512" in users and "8192" in users
    assert (secure.broker.data_dir / "credentials.json").is_file()
    for path in secure.broker.data_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for password in PASSWORDS.values():
                assert password.encode() not in data, f"{path} holds a password"
