"""`veltrix doctor --broker` over TLS and SASL.

One broker with four Kafka listeners: the plaintext loopback one, an SSL one,
an SSL one that requires client certificates, and a SASL_SSL one offering
SCRAM-SHA-512 and PLAIN. Certificates are made by `openssl` (the broker's CA,
a server certificate for 127.0.0.1, a client certificate, and an unrelated
CA); users are added with `veltrix user add --password-file`. The doctor is
given client files that match a listener (no D009 or D011 finding) and files
that do not: a wrong password, a CA that did not sign the broker's
certificate, a mechanism the listener does not offer, PLAINTEXT against a
TLS port and the reverse, no SASL on a SASL listener, no client certificate
where one is required. Each must say why, in the file's terms, and never
print the password.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from harness import free_port, run, veltrix_binary

PASSWORDS = {"alice": "alice-Doctor-5be1", "bob": "bob-Doctor-93c0"}
# A producer with safe settings: only the connection's findings can fail it.
SAFE_PRODUCER = "acks=all\nenable.idempotence=true\n"


def openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, timeout=60)
    assert done.returncode == 0, f"openssl {' '.join(args)}: {done.stderr.decode()}"


def ec_key(name: str, cwd: Path) -> None:
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", name, cwd=cwd)


def make_certificates(d: Path) -> dict[str, Path]:
    """The broker's CA, a server certificate for 127.0.0.1 and localhost, a
    client certificate, all signed by that CA, and another CA."""
    d.mkdir(parents=True, exist_ok=True)
    for ca, cn in [("ca", "Veltrix Doctor CA"), ("other-ca", "Someone Else's CA")]:
        ec_key(f"{ca}.key", d)
        openssl("req", "-x509", "-key", f"{ca}.key", "-out", f"{ca}.pem", "-days", "30", "-subj", f"/CN={cn}",
                cwd=d)
    for name, ext, subject in [
        ("server", "subjectAltName=IP:127.0.0.1,DNS:localhost", "/CN=localhost"),
        ("client", "extendedKeyUsage=clientAuth", "/O=Veltrix Tests/CN=doctor-client"),
    ]:
        ec_key(f"{name}.key", d)
        (d / f"{name}.ext").write_text(ext + "\n")
        openssl("req", "-new", "-key", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.pem", "-days", "30", "-extfile", f"{name}.ext", cwd=d)
    return {n: d / n for n in ["ca.pem", "other-ca.pem", "server.pem", "server.key", "client.pem", "client.key"]}


@pytest.fixture
def secure(start_broker, tmp_path):
    certs = make_certificates(tmp_path / "certs")
    ports = {name: free_port() for name in ["ssl", "mtls", "sasl"]}
    tls = f'tls_cert_file = "{certs["server.pem"]}"\ntls_key_file = "{certs["server.key"]}"'
    config = tmp_path / "veltrix.toml"
    config.write_text(f"""
[listeners]
kafka_principal = "User:local-admin"

[security]
authentication_failure_delay_ms = 20

[[listener]]
name = "ssl"
address = "127.0.0.1:{ports['ssl']}"
protocol = "SSL"
{tls}

[[listener]]
name = "mtls"
address = "127.0.0.1:{ports['mtls']}"
protocol = "SSL"
{tls}
tls_client_ca_file = "{certs['ca.pem']}"
tls_client_auth = "required"

[[listener]]
name = "sasl"
address = "127.0.0.1:{ports['sasl']}"
protocol = "SASL_SSL"
sasl_mechanisms = ["SCRAM-SHA-512", "PLAIN"]
{tls}
""")
    broker = start_broker("--config", str(config))
    for user, mechanisms in [("alice", ["SCRAM-SHA-512"]), ("bob", [])]:
        password_file = tmp_path / f"{user}.password"
        password_file.write_text(PASSWORDS[user] + "\n")
        password_file.chmod(0o600)
        flags = [a for m in mechanisms for a in ("--mechanism", m)]
        for address in broker.addresses:  # users are each broker's own
            done = run([str(veltrix_binary()), "user", "add", user, "--password-file", str(password_file), *flags,
                        "--bootstrap", address], timeout_s=30)
            assert done.returncode == 0, done.stderr.decode()
    addresses = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
    addresses["plain"] = broker.bootstrap
    return addresses, certs, tmp_path


def doctor(tmp: Path, name: str, text: str, *args: str) -> tuple[int, str, str]:
    path = tmp / name
    path.write_text(text + SAFE_PRODUCER)
    done = run([str(veltrix_binary()), "doctor", str(path), "--broker", *args, "--timeout-ms", "10000"],
               timeout_s=30)
    out, err = done.stdout.decode(), done.stderr.decode()
    for password in PASSWORDS.values():
        assert password not in out + err
    return done.returncode, out, err


def scram(addr: str, ca: Path, mechanism: str = "SCRAM-SHA-512", password: str = PASSWORDS["alice"]) -> str:
    return (f"bootstrap.servers={addr}\nsecurity.protocol=SASL_SSL\nsasl.mechanisms={mechanism}\n"
            f"sasl.username=alice\nsasl.password={password}\nssl.ca.location={ca}\n")


def clean(code: int, out: str, err: str) -> None:
    assert code == 0, out + err
    assert "D009" not in out and "D011" not in out, out


def test_matching_settings_connect_over_every_protocol(secure):
    addr, certs, tmp = secure
    ca = certs["ca.pem"]
    # SASL_SSL with SCRAM-SHA-512; `--broker` alone is the first bootstrap server.
    clean(*doctor(tmp, "scram.properties", scram(addr["sasl"], ca), addr["sasl"]))
    clean(*doctor(tmp, "scram-alone.properties", scram(addr["sasl"], ca)))
    # PLAIN in a Java file: the credentials in `sasl.jaas.config`, the CA in
    # a PEM trust store; JSON out, as a tool would read it.
    java = (f"bootstrap.servers={addr['sasl']}\nsecurity.protocol=SASL_SSL\nsasl.mechanism=PLAIN\n"
            "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required "
            f"username=\"bob\" password=\"{PASSWORDS['bob']}\";\n"
            f"ssl.truststore.type=PEM\nssl.truststore.location={ca}\nkey.serializer=x\n")
    code, out, err = doctor(tmp, "java.properties", java, addr["sasl"], "--format", "json")
    assert code == 0, out + err
    assert not [f for f in json.loads(out)["findings"] if f["rule"] in ("D009", "D011")], out
    # SSL, and mTLS with the client's certificate.
    clean(*doctor(tmp, "ssl.properties", f"bootstrap.servers={addr['ssl']}\nsecurity.protocol=SSL\n"
                  f"ssl.ca.location={ca}\n"))
    clean(*doctor(tmp, "mtls.properties", f"bootstrap.servers={addr['mtls']}\nsecurity.protocol=SSL\n"
                  f"ssl.ca.location={ca}\nssl.certificate.location={certs['client.pem']}\n"
                  f"ssl.key.location={certs['client.key']}\n"))


def test_each_failure_is_a_finding_that_says_why(secure):
    addr, certs, tmp = secure
    ca = certs["ca.pem"]

    code, out, _ = doctor(tmp, "wrong-password.properties", scram(addr["sasl"], ca, password="not-her-password"))
    assert code == 1 and "error[D011]" in out, out
    assert "refused the credentials of user `alice` with SCRAM-SHA-512" in out, out

    code, out, _ = doctor(tmp, "wrong-ca.properties", scram(addr["sasl"], certs["other-ca.pem"]))
    assert code == 1 and "error[D011]" in out, out
    assert "is not signed by a CA the client trusts" in out, out

    code, out, _ = doctor(tmp, "wrong-mechanism.properties", scram(addr["sasl"], ca, mechanism="SCRAM-SHA-256"))
    assert code == 1 and "error[D009]" in out, out
    assert "does not offer SCRAM-SHA-256; it offers SCRAM-SHA-512, PLAIN" in out, out
    assert "sasl.mechanisms=SCRAM-SHA-512" in out, out

    code, out, _ = doctor(tmp, "plaintext-to-tls.properties",
                          f"bootstrap.servers={addr['ssl']}\nsecurity.protocol=PLAINTEXT\n")
    assert code == 1 and "error[D009]" in out, out
    assert f"the listener at {addr['ssl']} speaks TLS" in out, out
    assert "security.protocol=SSL" in out, out

    code, out, _ = doctor(tmp, "tls-to-plaintext.properties",
                          f"bootstrap.servers={addr['plain']}\nsecurity.protocol=SSL\nssl.ca.location={ca}\n")
    assert code == 1 and "error[D009]" in out, out
    assert "does not speak TLS" in out, out

    code, out, _ = doctor(tmp, "no-sasl.properties",
                          f"bootstrap.servers={addr['sasl']}\nsecurity.protocol=SSL\nssl.ca.location={ca}\n")
    assert code == 1 and "error[D009]" in out, out
    assert "wants SASL authentication (SCRAM-SHA-512, PLAIN)" in out, out

    code, out, _ = doctor(tmp, "no-client-cert.properties",
                          f"bootstrap.servers={addr['mtls']}\nsecurity.protocol=SSL\nssl.ca.location={ca}\n")
    assert code == 1 and "error[D011]" in out, out
    assert "refused the TLS handshake" in out and "ssl.certificate.location" in out, out
