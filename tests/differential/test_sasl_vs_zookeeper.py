"""SASL DIGEST-MD5 on the client port, zoolog against Apache ZooKeeper 3.8 configured with the
same JAAS file: the exchange, the error paths byte for byte (wrong password, unknown user,
`addauth sasl`, enforced authentication), sasl ids in ACLs, and zkCli.sh with a JAAS Client
section.

ZooKeeper is given `authProvider.1=...SASLAuthenticationProvider` (without it ZooKeeper knows no
`sasl` ACL scheme; zoolog always does) and `superUser=super`.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient
from kazoo.security import make_acl
from puresasl.client import SASLClient

from tests.cli.zkcli import ZKCLI, require_zkcli, run_zoolog_cli, split_transcript
from tests.differential.harness import Server, ZooKeeperProcess
from zoolog.protocol.sasl.digest_md5 import parse_directives
from zoolog.protocol.zk._generated.jute_records import (
    AuthPacket,
    ConnectRequest,
    ExistsRequest,
    GetSASLRequest,
    SetSASLResponse,
    WhoAmIResponse,
)
from zoolog.testing import ZkServerThread

SERVER_JAAS = """\
Server {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_super="adminsecret"
    user_bob="bobsecret";
};
"""

OP_EXISTS, OP_PING, OP_AUTH, OP_SASL, OP_WHOAMI = 3, 11, 100, 102, 107


def client_jaas(path: Path, user: str, password: str) -> Path:
    path.write_text(
        "Client {\n"
        "    org.apache.zookeeper.server.auth.DigestLoginModule required\n"
        f'    username="{user}"\n'
        f'    password="{password}";\n'
        "};\n",
        encoding="utf-8",
    )
    return path


def start_pair(base: Path, zoo_cfg: tuple[str, ...], **zoolog_settings: Any
               ) -> tuple[ZooKeeperProcess, ZkServerThread, tuple[Server, Server]]:
    base.mkdir(parents=True, exist_ok=True)
    jaas = base / "server-jaas.conf"
    jaas.write_text(SERVER_JAAS, encoding="utf-8")
    zookeeper = ZooKeeperProcess(
        base / "apache-zk",
        extra_cfg=("authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider",
                   "superUser=super", *zoo_cfg),
        jvm_flags=(f"-Djava.security.auth.login.config={jaas}",),
    )
    zookeeper.base.mkdir(parents=True, exist_ok=True)
    zookeeper.start()
    zoolog = ZkServerThread(base / "zoolog", tick_ms=2000, jaas_path=jaas,
                            sasl_super_user="super", **zoolog_settings).start()
    return zookeeper, zoolog, (Server("zookeeper", zookeeper.port), Server("zoolog", zoolog.port))


@pytest.fixture(scope="module")
def sasl_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    zookeeper, zoolog, servers = start_pair(tmp_path_factory.mktemp("sasl"), ())
    try:
        yield servers
    finally:
        zoolog.stop()
        zookeeper.stop()


@pytest.fixture(scope="module")
def enforcing_servers(tmp_path_factory: pytest.TempPathFactory
                      ) -> Iterator[tuple[Server, Server]]:
    zookeeper, zoolog, servers = start_pair(
        tmp_path_factory.mktemp("sasl-enforced"), ("sessionRequireClientSASLAuth=true",),
        session_require_client_sasl_auth=True)
    try:
        yield servers
    finally:
        zoolog.stop()
        zookeeper.stop()


@dataclass
class Reply:
    xid: int
    zxid: int
    err: int
    body: bytes


class RawSession:
    """A client connection spoken by hand, to see the bytes each server sends."""

    def __init__(self, server: Server) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        request = ConnectRequest(0, 0, 30_000, 0, bytes(16), False).to_bytes()
        self.sock.sendall(struct.pack(">i", len(request)) + request)
        self._read_frame()  # the ConnectResponse

    def _read_exactly(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError(f"closed after {len(out)} of {n} bytes")
            out += chunk
        return out

    def _read_frame(self) -> bytes:
        (length,) = struct.unpack(">i", self._read_exactly(4))
        return self._read_exactly(length)

    def call(self, xid: int, op: int, body: bytes = b"") -> Reply:
        self.sock.sendall(struct.pack(">iii", 8 + len(body), xid, op) + body)
        frame = self._read_frame()
        xid_, zxid, err = struct.unpack(">iqi", frame[:16])
        return Reply(xid_, zxid, err, frame[16:])

    def closed_by_server(self) -> bool:
        """True once the server closes the connection with nothing more sent."""
        return self.sock.recv(1) == b""

    def close(self) -> None:
        self.sock.close()


def sasl_client(user: str, password: str) -> SASLClient:
    return SASLClient(host="zk-sasl-md5", service="zookeeper", mechanism="DIGEST-MD5",
                      username=user, password=password)


def token(reply: Reply) -> bytes | None:
    return SetSASLResponse.from_bytes(reply.body).token


def negotiate(session: RawSession, user: str, password: str) -> list[Any]:
    """The exchange as (xid, zxid, err) and what can be compared of each token."""
    client = sasl_client(user, password)
    first = session.call(1, OP_SASL, GetSASLRequest(b"").to_bytes())
    challenge = token(first) or b""
    fields = parse_directives(challenge.decode())
    seen: list[Any] = [(first.xid, first.zxid, first.err),
                       sorted((k, v) for k, v in fields.items() if k != "nonce"),
                       len(fields["nonce"]) >= 16]
    response = client.process(challenge)
    second = session.call(2, OP_SASL, GetSASLRequest(response).to_bytes())
    seen.append((second.xid, second.zxid, second.err))
    if second.err == 0:
        rspauth = token(second) or b""
        client.process(rspauth)  # pure-sasl checks the server's proof here
        seen.append((rspauth.startswith(b"rspauth="), len(rspauth), client.complete))
    else:
        seen.append(second.body)
        seen.append(session.closed_by_server())
    return seen


def who_am_i(session: RawSession) -> list[tuple[str, str]]:
    reply = session.call(3, OP_WHOAMI)
    return [(i.authScheme, i.user) for i in WhoAmIResponse.from_bytes(reply.body).clientInfo]


def test_digest_md5_exchange_and_identity(sasl_servers: tuple[Server, Server]) -> None:
    def run(server: Server) -> list[Any]:
        session = RawSession(server)
        try:
            return [negotiate(session, "bob", "bobsecret"), who_am_i(session)]
        finally:
            session.close()

    zookeeper, zoolog = (run(server) for server in sasl_servers)
    assert zoolog == zookeeper
    # in ZooKeeper's order (a hash set's), which zkCli's `whoami` prints as it comes
    assert zookeeper[1] == [("sasl", "bob"), ("ip", "127.0.0.1")]


def test_failed_negotiation_bytes_and_close(sasl_servers: tuple[Server, Server]) -> None:
    """A wrong password. (An unknown user is not compared: ZooKeeper 3.8's server callback
    handler keeps the name of the last user it found, so an unknown user who gives that user's
    password is let in under the unknown name. zoolog refuses every unknown user; see
    tests/compat/test_kazoo_sasl.py and test_unknown_user_is_refused below.)"""
    def run(server: Server) -> list[Any]:
        session = RawSession(server)
        try:
            return negotiate(session, "bob", "wrong")
        finally:
            session.close()

    zookeeper, zoolog = (run(server) for server in sasl_servers)
    assert zoolog == zookeeper
    assert zookeeper[3] == (2, 0, -115)  # AUTHFAILED, zxid 0
    assert zookeeper[4] == b"\xff\xff\xff\xff"  # a null token follows the error header
    assert zookeeper[5] is True


def test_unknown_user_is_refused(sasl_servers: tuple[Server, Server]) -> None:
    session = RawSession(sasl_servers[1])
    try:
        seen = negotiate(session, "mallory", "bobsecret")
    finally:
        session.close()
    assert seen[3:] == [(2, 0, -115), b"\xff\xff\xff\xff", True]


def test_addauth_sasl_is_authfailed_and_closes(sasl_servers: tuple[Server, Server]) -> None:
    def run(server: Server) -> list[Any]:
        session = RawSession(server)
        try:
            reply = session.call(-4, OP_AUTH, AuthPacket(0, "sasl", b"bob:bobsecret").to_bytes())
            return [reply, session.closed_by_server()]
        finally:
            session.close()

    zookeeper, zoolog = (run(server) for server in sasl_servers)
    assert zoolog == zookeeper
    assert zookeeper == [Reply(-4, 0, -115, b""), True]


def test_sasl_ids_in_acls(sasl_servers: tuple[Server, Server]) -> None:
    """Which sasl ids an ACL may hold (ZooKeeper's Kerberos-name rule), and who may then read:
    the user, the super user, nobody else."""
    def run(server: Server) -> list[Any]:
        def client(user: str | None, password: str = "") -> KazooClient:
            options = ({"mechanism": "DIGEST-MD5", "username": user, "password": password}
                       if user else None)
            kazoo = KazooClient(hosts=server.connect_string, timeout=10, sasl_options=options)
            kazoo.start(timeout=10)
            return kazoo

        bob, admin, anonymous = (client("bob", "bobsecret"), client("super", "adminsecret"),
                                 client(None))
        out: list[Any] = []
        try:
            root = "/sasl-acl-" + server.name
            bob.create(root, b"")
            for ident in ("bob", "a@b@c", "x/y/z@R", "@", "svc/host@REALM", "a/b/c"):
                try:
                    bob.create(f"{root}/n", b"v", acl=[make_acl("sasl", ident, all=True)])
                    bob.delete(f"{root}/n")
                    out.append((ident, "ok"))
                except Exception as exc:
                    out.append((ident, type(exc).__name__))
            bob.create(f"{root}/mine", b"v", acl=[make_acl("sasl", "bob", read=True)])
            for who, kazoo in (("bob", bob), ("super", admin), ("anonymous", anonymous)):
                try:
                    out.append((who, kazoo.get(f"{root}/mine")[0]))
                except Exception as exc:
                    out.append((who, type(exc).__name__))
            admin.delete(root, recursive=True)
        finally:
            for kazoo in (bob, admin, anonymous):
                kazoo.stop()
                kazoo.close()
        return out

    zookeeper, zoolog = (run(server) for server in sasl_servers)
    assert zoolog == zookeeper
    assert ("a@b@c", "InvalidACLError") in zookeeper
    assert ("anonymous", "NoAuthError") in zookeeper


def test_enforced_sasl_refuses_unauthenticated_requests(
    enforcing_servers: tuple[Server, Server],
) -> None:
    """sessionRequireClientSASLAuth=true: the first request that is neither auth nor sasl gets
    SESSIONCLOSEDREQUIRESASLAUTH and the connection closes; a failed negotiation gets the same
    code; an authenticated connection is served."""
    def run(server: Server) -> list[Any]:
        out: list[Any] = []
        for op, body in ((OP_EXISTS, ExistsRequest("/", False).to_bytes()), (OP_PING, b"")):
            session = RawSession(server)
            try:
                xid = 5 if op == OP_EXISTS else -2
                out.append([session.call(xid, op, body), session.closed_by_server()])
            finally:
                session.close()
        session = RawSession(server)
        try:
            out.append(negotiate(session, "bob", "wrong"))
        finally:
            session.close()
        session = RawSession(server)
        try:
            out.append(negotiate(session, "bob", "bobsecret"))
            reply = session.call(4, OP_EXISTS, ExistsRequest("/", False).to_bytes())
            out.append((reply.xid, reply.err, len(reply.body)))
        finally:
            session.close()
        return out

    zookeeper, zoolog = (run(server) for server in enforcing_servers)
    assert zoolog == zookeeper
    assert zookeeper[0] == [Reply(5, 0, -124, b""), True]
    assert zookeeper[2][3] == (2, 0, -124)
    assert zookeeper[4] == (4, 0, 68)  # exists answered with a Stat


def zkcli_with_jaas(server: Server, jaas: Path, commands: list[str]) -> list[str]:
    require_zkcli()
    env = dict(os.environ, ZOO_LOG_DIR="/tmp",
               CLIENT_JVMFLAGS=f"-XX:TieredStopAtLevel=1 -Djava.security.auth.login.config={jaas}")
    done = subprocess.run(
        ["bash", str(ZKCLI), "-server", server.connect_string],
        input="".join(f"{c}\n" for c in [*commands, "quit"]),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60, env=env,
        check=False,
    )
    transcript = split_transcript(done.stdout, done.returncode)
    return [*transcript.lines, *transcript.events]


def test_zkcli_with_a_jaas_client_section(sasl_servers: tuple[Server, Server],
                                          tmp_path: Path) -> None:
    good = client_jaas(tmp_path / "good.conf", "bob", "bobsecret")
    wrong = client_jaas(tmp_path / "wrong.conf", "bob", "nope")

    def run(server: Server) -> list[list[str]]:
        root = "/zkcli-sasl-" + server.name
        session = [
            "whoami",
            f"create {root} v",
            f"setAcl {root} sasl:bob:cdrwa",
            f"getAcl {root}",
            f"get {root}",
            f"delete {root}",
        ]
        return [
            [line.replace(server.name, "<server>")
             for line in zkcli_with_jaas(server, good, session)],
            zkcli_with_jaas(server, wrong, ["whoami", "ls /"]),
        ]

    zookeeper, zoolog = (run(server) for server in sasl_servers)
    assert zoolog == zookeeper
    assert "sasl: bob" in zookeeper[0]
    assert "WatchedEvent state:SaslAuthenticated type:None path:null" in zookeeper[0]
    assert "WatchedEvent state:AuthFailed type:None path:null" in zookeeper[1]


def test_zoolog_cli_with_a_jaas_client_section(sasl_servers: tuple[Server, Server],
                                               tmp_path: Path) -> None:
    """zoolog's own CLI authenticates to both servers as zkCli.sh does, and its `whoami`
    prints what zkCli.sh's does."""
    good = client_jaas(tmp_path / "good.conf", "bob", "bobsecret")
    wrong = client_jaas(tmp_path / "wrong.conf", "bob", "nope")

    def run(server: Server) -> list[Any]:
        ok = run_zoolog_cli(server.connect_string, ["--jaas", str(good), "whoami"])
        refused = run_zoolog_cli(server.connect_string, ["--jaas", str(wrong), "whoami"])
        return [ok.returncode, ok.stdout.splitlines(), refused.returncode,
                "AUTHFAILED" in refused.stderr]

    zookeeper, zoolog = (run(server) for server in sasl_servers)
    assert zoolog == zookeeper
    assert zookeeper == [0, ["Auth scheme: User", "sasl: bob", "ip: 127.0.0.1"], 1, True]
