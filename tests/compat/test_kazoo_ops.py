"""kazoo, unchanged, against a zoolog node over a real socket: every operation it sends."""

from __future__ import annotations

import asyncio

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import (
    BadArgumentsError,
    BadVersionError,
    NoAuthError,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    RolledBackError,
)
from kazoo.protocol.states import EventType, KazooState
from kazoo.security import make_digest_acl

from zoolog.client.zk import ZkClient
from zoolog.coord.errors import Code, ZkError
from zoolog.protocol.zk.opcodes import CreateFlag
from zoolog.testing import ZkServerThread, wait_until


def test_create_get_set_delete_roundtrip(zk: KazooClient) -> None:
    path = zk.create("/app", b"v1")
    assert path == "/app"
    data, stat = zk.get("/app")
    assert data == b"v1" and stat.version == 0 and stat.dataLength == 2
    stat = zk.set("/app", b"v2", version=0)
    assert stat.version == 1
    with pytest.raises(BadVersionError):
        zk.set("/app", b"v3", version=0)
    zk.delete("/app", version=1)
    assert zk.exists("/app") is None
    with pytest.raises(NoNodeError):
        zk.get("/app")


def test_create_modes_and_errors(zk: KazooClient) -> None:
    zk.create("/a")
    with pytest.raises(NodeExistsError):
        zk.create("/a")
    with pytest.raises(NoNodeError):
        zk.create("/missing/child")
    zk.create("/a/eph", ephemeral=True)
    with pytest.raises(NoChildrenForEphemeralsError):
        zk.create("/a/eph/x")
    with pytest.raises(NotEmptyError):
        zk.delete("/a")
    seq = zk.create("/a/s-", sequence=True)
    assert seq == "/a/s-0000000001"
    with pytest.raises(BadArgumentsError):
        zk.create("/a/bad\u0001name")
    zk.delete("/a", recursive=True)
    assert zk.exists("/a") is None


def test_create2_returns_stat(zk: KazooClient) -> None:
    path, stat = zk.create("/c2", b"abc", include_data=True)
    assert path == "/c2" and stat.dataLength == 3 and stat.czxid == stat.mzxid


def test_children_and_stat(zk: KazooClient) -> None:
    zk.ensure_path("/p/q")
    zk.create("/p/r")
    assert sorted(zk.get_children("/p")) == ["q", "r"]
    _, stat = zk.get_children("/p", include_data=True)
    assert stat.numChildren == 2 and stat.cversion == 2
    assert zk.exists("/p").numChildren == 2


def test_data_watch_fires_once_before_the_reply(zk: KazooClient) -> None:
    zk.create("/w", b"0")
    events = []
    zk.get("/w", watch=events.append)
    zk.set("/w", b"1")
    # event-before-reply: the watch has fired by the time set() returned its reply
    wait_until(lambda: len(events) == 1)
    assert events[0].type == EventType.CHANGED and events[0].path == "/w"
    zk.set("/w", b"2")
    zk.sync("/w")
    assert len(events) == 1


def test_child_and_exists_watches(zk: KazooClient) -> None:
    created, children = [], []
    zk.exists("/later", watch=created.append)
    zk.create("/later")
    zk.get_children("/later", watch=children.append)
    zk.create("/later/kid")
    wait_until(lambda: created and children)
    assert created[0].type == EventType.CREATED
    assert children[0].type == EventType.CHILD and children[0].path == "/later"
    deleted = []
    zk.get("/later/kid", watch=deleted.append)
    zk.delete("/later/kid")
    wait_until(lambda: deleted)
    assert deleted[0].type == EventType.DELETED


def test_watch_seen_by_another_session(make_client) -> None:
    a, b = make_client(), make_client()
    a.create("/shared", b"x")
    events = []
    b.get("/shared", watch=events.append)
    a.set("/shared", b"y")
    wait_until(lambda: events)
    assert b.get("/shared")[0] == b"y"


def test_transaction_commits_atomically(zk: KazooClient) -> None:
    zk.create("/t", b"0")
    tx = zk.transaction()
    tx.check("/t", 0)
    tx.create("/t/a", b"a")
    tx.set_data("/t", b"1")
    assert tx.commit() == [True, "/t/a", pytest.approx(zk.exists("/t"))]
    tx = zk.transaction()
    tx.create("/t/b")
    tx.check("/t", 99)
    tx.delete("/t/a")
    results = tx.commit()
    assert isinstance(results[0], RolledBackError)
    assert isinstance(results[1], BadVersionError)
    assert zk.exists("/t/b") is None


def test_ephemerals_vanish_when_the_session_closes(make_client) -> None:
    owner, observer = make_client(), make_client()
    owner.create("/eph", ephemeral=True)
    gone = []
    observer.exists("/eph", watch=gone.append)
    owner.stop()
    wait_until(lambda: gone)
    assert gone[0].type == EventType.DELETED
    assert observer.exists("/eph") is None


def test_session_expiry_removes_ephemerals(zoolog_zk: ZkServerThread, make_client) -> None:
    observer = make_client()
    seen = []
    observer.exists("/lease", watch=seen.append)

    async def create_and_vanish() -> int:
        # a client that dies without closing its session: the server must expire it
        client = await ZkClient.connect(zoolog_zk.connect_string, timeout_ms=500)
        await client.create("/lease", b"", flags=CreateFlag.EPHEMERAL)
        assert client.session is not None
        await client.disconnect()
        return client.session.session_id

    session_id = asyncio.run(create_and_vanish())
    wait_until(lambda: len(seen) == 1)
    assert seen[0].type == EventType.CREATED
    gone = []
    observer.exists("/lease", watch=gone.append)
    wait_until(lambda: gone, timeout_s=15)
    assert gone[0].type == EventType.DELETED
    assert session_id not in zoolog_zk.call(lambda: set(zoolog_zk.node.state.sessions))


def test_acl_digest_and_world(zoolog_zk: ZkServerThread, make_client) -> None:
    alice = make_client(auth_data=[("digest", "alice:secret")])
    acl = make_digest_acl("alice", "secret", all=True)
    assert acl.id.id == "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E="
    alice.create("/secret", b"s", acl=[acl])
    assert alice.get("/secret")[0] == b"s"
    stranger = make_client()
    with pytest.raises(NoAuthError):
        stranger.get("/secret")
    assert stranger.exists("/secret") is not None  # exists needs no permission
    acls, stat = alice.get_acls("/secret")
    assert acls == [acl] and stat.aversion == 0
    alice.set_acls("/secret", [make_digest_acl("alice", "secret", read=True, admin=True)])
    with pytest.raises(NoAuthError):
        alice.set("/secret", b"t")


def test_server_version_from_envi(zk: KazooClient) -> None:
    assert zk.server_version()[:2] == (3, 8)
    assert zk.command(b"ruok") == "imok"


def test_session_survives_a_server_restart(zoolog_zk: ZkServerThread, zk: KazooClient) -> None:
    zk.create("/keep", ephemeral=True)
    before = zk.client_id
    states = []
    zk.add_listener(states.append)
    zoolog_zk.restart()
    wait_until(lambda: states and states[-1] == KazooState.CONNECTED, timeout_s=20)
    assert zk.client_id == before
    assert zk.exists("/keep") is not None


def test_restart_keeps_acknowledged_data(zoolog_zk: ZkServerThread, zk: KazooClient) -> None:
    for i in range(50):
        zk.create(f"/durable-{i}", str(i).encode())
    zk.stop()
    zoolog_zk.restart()
    client = KazooClient(hosts=zoolog_zk.connect_string)
    client.start(timeout=10)
    try:
        assert client.get("/durable-49")[0] == b"49"
        assert len([c for c in client.get_children("/") if c.startswith("durable-")]) == 50
    finally:
        client.stop()
        client.close()


def test_ip_acl_super_user_and_failed_auth(tmp_path) -> None:
    from kazoo.security import ACL, Id

    from zoolog.coord.acl import digest_id

    with ZkServerThread(tmp_path, super_digest=digest_id("root:pw")) as server:
        hosts = server.connect_string
        owner = KazooClient(hosts=hosts, auth_data=[("digest", "alice:secret")])
        owner.start(timeout=10)
        owner.create("/local-only", b"1", acl=[ACL(31, Id("ip", "127.0.0.0/8"))])
        owner.create("/elsewhere", b"2", acl=[ACL(31, Id("ip", "10.1.2.3"))])
        owner.create("/alice", b"3", acl=[make_digest_acl("alice", "secret", all=True)])
        assert owner.get("/local-only")[0] == b"1"
        with pytest.raises(NoAuthError):
            owner.get("/elsewhere")
        root = KazooClient(hosts=hosts, auth_data=[("digest", "root:pw")])
        root.start(timeout=10)
        assert root.get("/elsewhere")[0] == b"2" and root.get("/alice")[0] == b"3"

        async def bad_auth() -> None:
            client = await ZkClient.connect(hosts)
            with pytest.raises(ZkError) as info:
                await client.add_auth("nosuchscheme", b"x")
            assert info.value.code == Code.AUTHFAILED
            with pytest.raises(ZkError):  # and the server closed the connection
                await client.sync("/")
            await client.disconnect()

        asyncio.run(bad_auth())
        for client in (owner, root):
            client.stop()
            client.close()
