"""TLS on the client port, zoolog against Apache ZooKeeper 3.8 given the same zoo.cfg keys and
PEM files: the x509 identities client certificates give (Java's RFC 2253 names, in whoAmI's
order), refused handshakes, x509 ACLs and the x509 super user, and zkCli.sh with
`zookeeper.client.secure=true`; and zoolog's DN formatting against Java's X500Principal for a
set of awkward subjects.
"""

from __future__ import annotations

import os
import socket
import ssl
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from kazoo.client import KazooClient
from kazoo.security import make_acl

from tests.cli.zkcli import ZKCLI, require_zkcli, run_zoolog_cli, split_transcript
from tests.differential.harness import (
    JAVA,
    NETTY_JARS,
    ZOOKEEPER_JAR,
    ZooKeeperProcess,
    four_letter,
)
from tests.tls_certs import CertificateAuthority, Issued, name
from zoolog.protocol.zk._generated.jute_records import ConnectRequest, WhoAmIResponse
from zoolog.server.tls import x509_identity
from zoolog.testing import ZkServerThread

HERE = Path(__file__).parent
OP_WHOAMI = 107


@dataclass
class Pki:
    ca: CertificateAuthority
    server: Issued
    users: dict[str, Issued]
    rogue: Issued


@dataclass
class Side:
    name: str
    port: int
    secure_port: int


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    base = tmp_path_factory.mktemp("tls-pki")
    ca = CertificateAuthority(base / "ca")
    users = {
        "bob": ca.issue("bob", name(("C", "US"), ("O", "Acme, Inc."), ("OU", "ops"),
                                    ("CN", "bob+admin"))),
        "alice": ca.issue("alice", name(("DC", "com"), ("DC", "example"), ("CN", "alice"),
                                        ("emailAddress", "alice@example.com"))),
        "carol": ca.issue("carol", name(("CN", "carol"))),
        "admin": ca.issue("admin", name(("CN", "admin"))),
    }
    rogue = CertificateAuthority(base / "rogue").issue("rogue", name(("CN", "carol")))
    server = ca.issue("server", name(("CN", "localhost")), hosts=("127.0.0.1", "localhost"))
    return Pki(ca, server, users, rogue)


@pytest.fixture(scope="module")
def sides(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Side, Side]]:
    base = tmp_path_factory.mktemp("tls-servers")
    secure_port = _free_port()
    zookeeper = ZooKeeperProcess(
        base / "apache-zk",
        extra_cfg=(
            f"secureClientPort={secure_port}",
            "secureClientPortAddress=127.0.0.1",
            "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory",
            f"ssl.keyStore.location={pki.server.bundle}", "ssl.keyStore.type=PEM",
            f"ssl.trustStore.location={pki.ca.pem}", "ssl.trustStore.type=PEM",
            "authProvider.x509=org.apache.zookeeper.server.auth.X509AuthenticationProvider",
            "X509AuthenticationProvider.superUser=CN=admin",
        ),
        classpath=NETTY_JARS,
    )
    zookeeper.base.mkdir(parents=True, exist_ok=True)
    zookeeper.start()
    zoolog = ZkServerThread(base / "zoolog", tick_ms=2000, secure_client_port=0,
                            tls_key_store=pki.server.bundle, tls_trust_store=pki.ca.pem,
                            x509_super_user="CN=admin").start()
    try:
        yield (Side("zookeeper", zookeeper.port, secure_port),
               Side("zoolog", zoolog.port, zoolog.secure_port))
    finally:
        zoolog.stop()
        zookeeper.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tls_session(side: Side, pki: Pki, cert: Issued | None) -> Any:
    """whoAmI over a fresh TLS session with `cert`: the identities, or how it was refused."""
    context = ssl.create_default_context(cafile=str(pki.ca.pem))
    context.maximum_version = ssl.TLSVersion.TLSv1_2  # ZooKeeper 3.8 offers TLSv1.2 only
    if cert is not None:
        context.load_cert_chain(cert.cert, cert.key)
    try:
        with socket.create_connection(("127.0.0.1", side.secure_port), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname="localhost") as sock:
            def frame() -> bytes:
                head = sock.recv(4)
                if len(head) < 4:
                    raise ConnectionError("closed")
                (length,) = struct.unpack(">i", head)
                body = b""
                while len(body) < length:
                    chunk = sock.recv(length - len(body))
                    if not chunk:
                        raise ConnectionError("closed")
                    body += chunk
                return body

            request = ConnectRequest(0, 0, 30_000, 0, bytes(16), False).to_bytes()
            sock.sendall(struct.pack(">i", len(request)) + request)
            frame()
            sock.sendall(struct.pack(">iii", 8, 1, OP_WHOAMI))
            reply = frame()
            infos = WhoAmIResponse.from_bytes(reply[16:]).clientInfo or []
            return [(i.authScheme, i.user) for i in infos]
    except (ssl.SSLError, ConnectionError):
        return "refused"


def test_identities_from_client_certificates(sides: tuple[Side, Side], pki: Pki) -> None:
    def run(side: Side) -> list[Any]:
        return [tls_session(side, pki, cert) for cert in
                (pki.users["bob"], pki.users["alice"], pki.users["carol"], None, pki.rogue)]

    zookeeper, zoolog = (run(side) for side in sides)
    assert zoolog == zookeeper
    bob = r"CN=bob\+admin,OU=ops,O=Acme\, Inc.,C=US"
    assert zookeeper[0] == [("ip", "127.0.0.1"), ("x509", bob)]
    assert zookeeper[1][0] == ("x509", "1.2.840.113549.1.9.1=#1611616c696365406578616d706c652e"
                                       "636f6d,CN=alice,DC=example,DC=com")
    assert zookeeper[3:] == ["refused", "refused"]  # no certificate; one from another CA


def test_x509_acls_and_super_user(sides: tuple[Side, Side], pki: Pki) -> None:
    def run(side: Side) -> list[Any]:
        def client(user: str | None) -> KazooClient:
            if user is None:
                kazoo = KazooClient(hosts=f"127.0.0.1:{side.port}", timeout=10)
            else:
                cert = pki.users[user]
                kazoo = KazooClient(hosts=f"127.0.0.1:{side.secure_port}", timeout=10,
                                    use_ssl=True, ca=str(pki.ca.pem), certfile=str(cert.cert),
                                    keyfile=str(cert.key))
            kazoo.start(timeout=10)
            return kazoo

        carol, bob, admin, plain = (client("carol"), client("bob"), client("admin"),
                                    client(None))
        out: list[Any] = []
        root = "/tls-acl-" + side.name
        try:
            carol.create(root, b"", acl=[make_acl("x509", "CN=carol", all=True)])
            carol.create(root + "/auth", b"a", acl=[make_acl("auth", "", read=True)])
            out.append(carol.get_acls(root + "/auth")[0])
            for who, kazoo in (("carol", carol), ("bob", bob), ("admin", admin),
                               ("plain", plain)):
                try:
                    out.append((who, kazoo.get_children(root)))
                except Exception as exc:
                    out.append((who, type(exc).__name__))
            admin.delete(root, recursive=True)
        finally:
            for kazoo in (carol, bob, admin, plain):
                kazoo.stop()
                kazoo.close()
        return out

    zookeeper, zoolog = (run(side) for side in sides)
    assert zoolog == zookeeper
    assert ("bob", "NoAuthError") in zookeeper and ("admin", ["auth"]) in zookeeper


def test_zkcli_secure_client(sides: tuple[Side, Side], pki: Pki) -> None:
    require_zkcli()
    carol = pki.users["carol"]
    flags = " ".join([
        "-XX:TieredStopAtLevel=1",
        "-cp", ":".join((str(ZOOKEEPER_JAR), *NETTY_JARS)),
        "-Dzookeeper.client.secure=true",
        "-Dzookeeper.clientCnxnSocket=org.apache.zookeeper.ClientCnxnSocketNetty",
        f"-Dzookeeper.ssl.keyStore.location={carol.bundle}", "-Dzookeeper.ssl.keyStore.type=PEM",
        f"-Dzookeeper.ssl.trustStore.location={pki.ca.pem}",
        "-Dzookeeper.ssl.trustStore.type=PEM",
    ])

    def run(side: Side) -> list[str]:
        root = "/zkcli-tls-" + side.name
        commands = ["whoami", f"create {root} v", f"setAcl {root} x509:CN=carol:cdrwa",
                    f"getAcl {root}", f"get {root}", f"delete {root}", "quit"]
        done = subprocess.run(
            ["bash", str(ZKCLI), "-server", f"127.0.0.1:{side.secure_port}"],
            input="".join(f"{c}\n" for c in commands), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, timeout=60, check=False,
            env=dict(os.environ, ZOO_LOG_DIR="/tmp", CLIENT_JVMFLAGS=flags),
        )
        transcript = split_transcript(done.stdout, done.returncode)
        return [line.replace(side.name, "<server>")
                for line in [*transcript.lines, *transcript.events]]

    zookeeper, zoolog = (run(side) for side in sides)
    assert zoolog == zookeeper
    assert "x509: CN=carol" in zookeeper and "'x509,'CN=carol" in zookeeper


# --------------------------------------------------------------- names, against Java's

def test_subject_names_as_java_prints_them(tmp_path: Path) -> None:
    """zoolog's x509 id for awkward subjects equals Java's X500Principal.getName()
    (tests/differential/X500Names.java, run from source by the JDK)."""
    attribute = x509.NameAttribute
    subjects = [
        x509.Name([attribute(NameOID.COMMON_NAME, 'a=b#c;d<e>f"g\\h,i+j')]),
        x509.Name([attribute(NameOID.COMMON_NAME, "  lead and trail  ")]),
        x509.Name([attribute(NameOID.COMMON_NAME, "#hash")]),
        x509.Name([attribute(NameOID.COMMON_NAME, " ")]),
        x509.Name([attribute(NameOID.COMMON_NAME, "jürgen Ωμέγα 😀")]),
        x509.Name([x509.RelativeDistinguishedName([
            attribute(NameOID.COMMON_NAME, "x"), attribute(NameOID.ORGANIZATION_NAME, "y")])]),
        x509.Name([attribute(NameOID.SERIAL_NUMBER, "1234"), attribute(NameOID.TITLE, "boss"),
                   attribute(NameOID.USER_ID, "u1"),
                   attribute(NameOID.STREET_ADDRESS, "Main St 1"),
                   attribute(NameOID.LOCALITY_NAME, "Town"),
                   attribute(NameOID.STATE_OR_PROVINCE_NAME, "State")]),
        x509.Name([attribute(NameOID.GIVEN_NAME, "Ünï"),
                   attribute(NameOID.COMMON_NAME, "tab\there")]),
        x509.Name([attribute(NameOID.EMAIL_ADDRESS, "a" * 200 + "@example.com")]),
    ]
    ca = CertificateAuthority(tmp_path)
    certs = [ca.issue(f"subject{i}", subject).cert for i, subject in enumerate(subjects)]
    done = subprocess.run([JAVA, str(HERE / "X500Names.java"), *map(str, certs)],
                          capture_output=True, text=True, timeout=120, check=True)
    java = done.stdout.splitlines()
    ours = [x509_identity(x509.load_pem_x509_certificate(cert.read_bytes())
                          .public_bytes(Encoding.DER)) for cert in certs]
    assert ours == java


def test_conf_names_both_ports(sides: tuple[Side, Side]) -> None:
    for side in sides:
        lines = four_letter(side.port, "conf").splitlines()
        assert f"clientPort={side.port}" in lines
        assert f"secureClientPort={side.secure_port}" in lines


def test_zoolog_cli_over_tls(sides: tuple[Side, Side], pki: Pki) -> None:
    """zoolog's own CLI on a secureClientPort, as zkCli.sh with zookeeper.client.secure."""
    bob = pki.users["bob"]
    tls = ["--tls", "--tls-ca", str(pki.ca.pem), "--tls-cert", str(bob.cert),
           "--tls-key", str(bob.key)]

    def run(side: Side) -> list[Any]:
        done = run_zoolog_cli(f"localhost:{side.secure_port}", [*tls, "whoami"])
        untrusted = run_zoolog_cli(f"localhost:{side.secure_port}",
                                   ["--tls", "--tls-ca", str(pki.ca.pem), "whoami"])
        return [done.returncode, done.stdout.splitlines(), untrusted.returncode]

    zookeeper, zoolog = (run(side) for side in sides)
    assert zoolog == zookeeper
    assert zookeeper[0] == 0 and r"x509: CN=bob\+admin,OU=ops,O=Acme\, Inc.,C=US" in zookeeper[1]
    assert zookeeper[2] == 1  # no client certificate: the handshake is refused
