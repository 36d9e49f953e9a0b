"""kazoo over TLS (`use_ssl=True`) to zoolog's secureClientPort: server certificates checked by
the client, client certificates by the server (`ssl.clientAuth` need, want, none), the `x509`
identity in ACLs, and the plain port serving beside it."""

from __future__ import annotations

import dataclasses
import socket
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import InvalidACLError, NoAuthError, SessionClosedRequireSaslError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.security import make_acl
from tests.kazoo_clients import stop_all
from tests.tls_certs import CertificateAuthority, Issued, name

from zoolog.errors import ConfigError
from zoolog.protocol.zk._generated.jute_records import ConnectRequest
from zoolog.server.config import NodeConfig, parse_zoo_cfg
from zoolog.testing import ZkServerThread

CAROL = "CN=carol,O=zoolog tests"


@dataclasses.dataclass
class Pki:
    ca: CertificateAuthority
    server: Issued
    carol: Issued
    admin: Issued
    rogue: Issued


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    base = tmp_path_factory.mktemp("pki")
    ca = CertificateAuthority(base / "ca")
    rogue_ca = CertificateAuthority(base / "rogue-ca")
    return Pki(
        ca=ca,
        server=ca.issue("server", name(("CN", "localhost")), hosts=("127.0.0.1", "localhost")),
        carol=ca.issue("carol", name(("O", "zoolog tests"), ("CN", "carol"))),
        admin=ca.issue("admin", name(("CN", "admin"))),
        rogue=rogue_ca.issue("rogue", name(("O", "zoolog tests"), ("CN", "carol"))),
    )


@pytest.fixture
def start_node(tmp_path: Path, pki: Pki) -> Iterator[Callable[..., ZkServerThread]]:
    nodes: list[ZkServerThread] = []

    def start(**settings: Any) -> ZkServerThread:
        settings.setdefault("secure_client_port", 0)
        settings.setdefault("tls_key_store", pki.server.bundle)
        settings.setdefault("tls_trust_store", pki.ca.pem)
        node = ZkServerThread(tmp_path / f"zk{len(nodes)}", tick_ms=200, **settings).start()
        nodes.append(node)
        return node

    yield start
    for node in nodes:
        node.stop()


@pytest.fixture
def clients(pki: Pki) -> Iterator[Callable[..., KazooClient]]:
    made: list[KazooClient] = []

    def client(port: int, cert: Issued | None = None, *, tls: bool = True,
               ca: Path | None = None, start: bool = True) -> KazooClient:
        options: dict[str, Any] = {}
        if tls:
            options = {"use_ssl": True, "ca": str(ca or pki.ca.pem), "check_hostname": True}
            if cert is not None:
                options.update(certfile=str(cert.cert), keyfile=str(cert.key))
        kazoo = KazooClient(hosts=f"localhost:{port}", timeout=5,
                            connection_retry={"max_tries": 0}, **options)
        made.append(kazoo)
        if start:
            kazoo.start(timeout=5)
        return kazoo

    yield client
    stop_all(made)


def handshake(port: int, pki: Pki, cert: Issued | None,
              maximum: ssl.TLSVersion | None = None) -> str:
    """Connect, send a ConnectRequest and read its answer: "served" or why not."""
    context = ssl.create_default_context(cafile=str(pki.ca.pem))
    if cert is not None:
        context.load_cert_chain(cert.cert, cert.key)
    if maximum is not None:
        context.maximum_version = maximum
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname="localhost") as sock:
            connect = ConnectRequest(0, 0, 30_000, 0, bytes(16), False).to_bytes()
            sock.sendall(len(connect).to_bytes(4, "big") + connect)
            answer = sock.recv(4)
            return "served" if len(answer) == 4 else "closed"
    except ssl.SSLError as exc:
        return f"refused ({exc.reason})"
    except ConnectionResetError:
        return "closed"


def test_x509_identity_owns_a_node(start_node: Callable[..., ZkServerThread],
                                   clients: Callable[..., KazooClient], pki: Pki,
                                   front_process: bool) -> None:
    node = start_node(client_front_process=front_process)
    carol = clients(node.secure_port, pki.carol)
    carol.create("/carol", b"mine", acl=[make_acl("x509", CAROL, all=True)])
    assert carol.get("/carol")[0] == b"mine"
    acl = carol.get_acls("/carol")[0]
    assert [(a.id.scheme, a.id.id) for a in acl] == [("x509", CAROL)]
    admin = clients(node.secure_port, pki.admin)
    plain = clients(node.port, tls=False)
    for other in (admin, plain):
        with pytest.raises(NoAuthError):
            other.get("/carol")
    carol.create("/auth", b"", acl=[make_acl("auth", "", read=True)])
    assert [(a.id.scheme, a.id.id) for a in carol.get_acls("/auth")[0]] == [("x509", CAROL)]


def test_client_certificate_needed_by_default(start_node: Callable[..., ZkServerThread],
                                              pki: Pki, front_process: bool) -> None:
    node = start_node(client_front_process=front_process)
    assert handshake(node.secure_port, pki, pki.carol) == "served"
    assert handshake(node.secure_port, pki, None) != "served"
    assert handshake(node.secure_port, pki, pki.rogue) != "served"  # same name, other CA
    assert handshake(node.secure_port, pki, pki.carol) == "served"  # and it serves on


def test_client_checks_the_server_certificate(start_node: Callable[..., ZkServerThread],
                                              clients: Callable[..., KazooClient],
                                              pki: Pki) -> None:
    node = start_node()
    stranger = CertificateAuthority(pki.ca.directory.parent / "stranger")
    with pytest.raises((ssl.SSLError, KazooTimeoutError)):
        clients(node.secure_port, pki.carol, ca=stranger.pem)


def test_client_auth_want_and_none(start_node: Callable[..., ZkServerThread],
                                   clients: Callable[..., KazooClient], pki: Pki) -> None:
    want = start_node(tls_client_auth="want")
    anonymous = clients(want.secure_port)
    carol = clients(want.secure_port, pki.carol)
    carol.create("/want", b"v", acl=[make_acl("x509", CAROL, read=True)])
    assert carol.get("/want")[0] == b"v"
    with pytest.raises(NoAuthError):
        anonymous.get("/want")
    assert handshake(want.secure_port, pki, pki.rogue) != "served"  # presented: checked

    none = start_node(tls_client_auth="none")
    carol_unasked = clients(none.secure_port, pki.carol)
    with pytest.raises(InvalidACLError):  # no certificate asked for: no identity to expand
        carol_unasked.create("/none", b"", acl=[make_acl("auth", "", read=True)])
    assert handshake(none.secure_port, pki, pki.rogue) == "served"


def test_x509_super_user(start_node: Callable[..., ZkServerThread],
                         clients: Callable[..., KazooClient], pki: Pki) -> None:
    node = start_node(x509_super_user="CN=admin")
    carol = clients(node.secure_port, pki.carol)
    carol.create("/locked", b"secret", acl=[make_acl("x509", CAROL, read=True)])
    admin = clients(node.secure_port, pki.admin)
    assert admin.get("/locked")[0] == b"secret"
    admin.delete("/locked")


def test_enforced_x509_refuses_the_plain_port(start_node: Callable[..., ZkServerThread],
                                              clients: Callable[..., KazooClient],
                                              pki: Pki) -> None:
    node = start_node(enforce_auth_enabled=True, enforce_auth_schemes=frozenset({"x509"}))
    assert clients(node.secure_port, pki.carol).exists("/") is not None
    with pytest.raises(SessionClosedRequireSaslError):
        clients(node.port, tls=False).exists("/")


def test_tls_only_from_zoo_cfg_with_an_encrypted_key(tmp_path: Path, pki: Pki,
                                                     clients: Callable[..., KazooClient],
                                                     front_process: bool) -> None:
    """A zoo.cfg with secureClientPort and no clientPort serves TLS only, as ZooKeeper does;
    the key store's password reaches the front process too."""
    locked = pki.ca.issue("locked-server", name(("CN", "localhost")),
                          hosts=("127.0.0.1", "localhost"), password="s3cret")
    config = parse_zoo_cfg(
        f"dataDir={tmp_path / 'data'}\nsecureClientPort=0\n"
        "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\n"
        f"ssl.keyStore.location={locked.bundle}\nssl.keyStore.password=s3cret\n"
        "ssl.keyStore.type=PEM\n"
        f"ssl.trustStore.location={pki.ca.pem}\nssl.trustStore.type=PEM\n"
        "authProvider.x509=org.apache.zookeeper.server.auth.X509AuthenticationProvider\n"
    )
    assert not config.client_port_enabled
    config.client_front_process = front_process
    settings = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
                if f.name != "data_dir"}
    with ZkServerThread(config.data_dir, **settings) as node:
        assert node.port == node.secure_port
        assert clients(node.secure_port, pki.carol).exists("/") is not None


def test_protocol_versions(start_node: Callable[..., ZkServerThread], pki: Pki) -> None:
    default = start_node()
    assert handshake(default.secure_port, pki, pki.carol, ssl.TLSVersion.TLSv1_2) == "served"
    only13 = start_node(tls_protocols=("TLSv1.3",))
    assert handshake(only13.secure_port, pki, pki.carol, ssl.TLSVersion.TLSv1_2).startswith(
        "refused")
    assert handshake(only13.secure_port, pki, pki.carol) == "served"


@pytest.mark.parametrize(("lines", "message"), [
    (["secureClientPort=0"], "needs ssl.keyStore.location"),
    (["secureClientPort=0", "ssl.keyStore.location={missing}"], "cannot load a private key"),
    (["secureClientPort=0", "ssl.keyStore.location=/etc/zk/keystore.jks"],
     "JKS stores are not supported, only PEM"),
    (["secureClientPort=0", "ssl.keyStore.location={server}", "ssl.keyStore.type=PKCS12"],
     "PKCS12 stores are not supported"),
    (["secureClientPort=0", "ssl.keyStore.location={server}", "ssl.clientAuth=maybe"],
     "ssl.clientAuth must be none, want or need"),
    (["secureClientPort=0", "ssl.keyStore.location={server}",
      "ssl.ciphersuites=TLS_AES_128_GCM_SHA256"], "ssl.ciphersuites is not supported"),
    (["secureClientPort=0", "ssl.keyStore.location={server}", "ssl.protocol=TLSv1.1"],
     "TLS protocol 'TLSv1.1' is not supported"),
    (["secureClientPort=0", "ssl.keyStore.location={ca}"], "cannot load a private key"),
])
def test_bad_tls_settings_are_named(tmp_path: Path, pki: Pki, lines: list[str],
                                    message: str) -> None:
    values = {"missing": tmp_path / "missing.pem", "server": pki.server.bundle,
              "ca": pki.ca.pem}
    text = "".join(line.format(**values) + "\n" for line in lines)
    with pytest.raises(ConfigError, match=message):
        parse_zoo_cfg(f"dataDir={tmp_path}\n{text}", NodeConfig())
