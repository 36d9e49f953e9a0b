"""The coordination state machine without sockets: Stat exactness, sequence names, multi,
ephemerals, containers and TTL nodes, all through `CoordState.apply`."""

from __future__ import annotations

import itertools

import pytest

from zoolog.coord.acl import OPEN_ACL_UNSAFE
from zoolog.coord.datatree import CoordState
from zoolog.coord.errors import Code
from zoolog.coord.txn import MultiBody, Txn
from zoolog.protocol.zk._generated.jute_records import (
    CheckVersionRequest,
    CreateRequest,
    CreateResponse,
    CreateSessionTxn,
    CreateTTLRequest,
    DeleteRequest,
    ErrorResponse,
    SetDataRequest,
)
from zoolog.protocol.zk.opcodes import EventType, OpCode

SESSION = 0x100000000000001


class Driver:
    """Applies txns with increasing zxids, like the log would."""

    def __init__(self) -> None:
        self.state = CoordState()
        self.zxid = itertools.count(1)
        self.time_ms = 1_000

    def apply(self, op: int, body: object, session: int = SESSION):
        txn = Txn(session, 0, next(self.zxid), self.time_ms, op, (("ip", "127.0.0.1"),), body)
        return self.state.apply(txn)

    def create(self, path: str, data: bytes = b"", flags: int = 0, op: int = OpCode.create2):
        return self.apply(op, CreateRequest(path, data, list(OPEN_ACL_UNSAFE), flags))


def created_path(response: object) -> str:
    """The path in a create's reply body (CreateResponse, or Create2Response that starts
    with it), which apply hands over already encoded."""
    assert isinstance(response, bytes)
    record, _ = CreateResponse.read(response, 0)
    assert record.path is not None
    return record.path


@pytest.fixture
def d() -> Driver:
    driver = Driver()
    assert driver.apply(OpCode.createSession, CreateSessionTxn(10_000)).err == Code.OK
    return driver


def test_fresh_tree_matches_zookeeper_stats() -> None:
    state = CoordState()
    assert state.get("/").stat().cversion == -1
    assert state.get("/zookeeper").stat().cversion == -2
    assert state.get("/").stat().numChildren == 1


def test_visible_cversion_counts_creates_and_deletes(d: Driver) -> None:
    d.create("/p")
    d.create("/p/a")
    d.create("/p/b")
    d.apply(OpCode.delete, DeleteRequest("/p/a", -1))
    stat = d.state.get("/p").stat()
    # 2 creations and 1 deletion: 3 changes
    assert (stat.cversion, stat.numChildren) == (3, 1)


def test_sequence_names_come_from_creation_counter(d: Driver) -> None:
    d.create("/q")
    first = created_path(d.create("/q/item-", flags=2).response)
    d.apply(OpCode.delete, DeleteRequest(first, -1))
    second = created_path(d.create("/q/item-", flags=2).response)
    assert first == "/q/item-0000000000"
    assert second == "/q/item-0000000001"
    assert created_path(d.create("/q/", flags=2).response) == "/q/0000000002"


def test_failed_write_consumes_a_zxid_and_changes_nothing(d: Driver) -> None:
    d.create("/a", b"1")
    before = d.state.get("/a").stat()
    result = d.apply(OpCode.setData, SetDataRequest("/a", b"2", 7))
    assert result.err == Code.BADVERSION
    assert d.state.get("/a").stat() == before
    assert d.state.last_zxid == 3


def test_create_checks_in_zookeeper_order(d: Driver) -> None:
    assert d.create("/missing/child").err == Code.NONODE
    d.create("/e", flags=1)
    assert d.create("/e/x").err == Code.NOCHILDRENFOREPHEMERALS
    assert d.create("/e", flags=1).err == Code.NODEEXISTS
    assert d.create("/bad/./x").err == Code.NONODE  # parent looked up before validation


def test_delete_rules(d: Driver) -> None:
    d.create("/a")
    d.create("/a/b")
    assert d.apply(OpCode.delete, DeleteRequest("/a", -1)).err == Code.NOTEMPTY
    assert d.apply(OpCode.delete, DeleteRequest("/a/b", 3)).err == Code.BADVERSION
    assert d.apply(OpCode.delete, DeleteRequest("/zookeeper", -1)).err == Code.BADARGUMENTS
    result = d.apply(OpCode.delete, DeleteRequest("/a/b", 0))
    assert result.err == Code.OK
    assert result.triggers == [(EventType.NodeDeleted, "/a/b"),
                               (EventType.NodeChildrenChanged, "/a")]


def test_multi_is_atomic_with_per_op_results(d: Driver) -> None:
    d.create("/m", b"x")
    body = MultiBody([
        (OpCode.create, CreateRequest("/m/new", b"", list(OPEN_ACL_UNSAFE), 0)),
        (OpCode.setData, SetDataRequest("/m", b"y", 5)),
        (OpCode.delete, DeleteRequest("/m/new", -1)),
    ])
    result = d.apply(OpCode.multi, body)
    assert [(r.op, r.err) for r in result.response] == [
        (OpCode.create, 0), (OpCode.setData, Code.BADVERSION),
        (OpCode.delete, Code.RUNTIMEINCONSISTENCY),
    ]
    assert "/m/new" not in d.state.nodes
    assert d.state.get("/m").cversion == 0 and d.state.get("/m").data == b"x"
    assert result.triggers == []
    ok = d.apply(OpCode.multi, MultiBody([
        (OpCode.check, CheckVersionRequest("/m", 0)),
        (OpCode.create, CreateRequest("/m/c", b"", list(OPEN_ACL_UNSAFE), 2)),
        (OpCode.setData, SetDataRequest("/m", b"z", 0)),
    ]))
    assert [r.err for r in ok.response] == [0, 0, 0]
    assert created_path(ok.response[1].response) == "/m/c0000000000"
    assert d.state.get("/m").data == b"z"


def test_close_session_removes_ephemerals(d: Driver) -> None:
    d.create("/live")
    d.create("/live/me", flags=3)
    d.create("/live/me", flags=3)
    assert len(d.state.sessions[SESSION].ephemerals) == 2
    result = d.apply(OpCode.closeSession, None)
    assert d.state.get("/live").children == set()
    assert (EventType.NodeDeleted, "/live/me0000000000") in result.triggers
    assert d.create("/x").err == Code.SESSIONEXPIRED


def test_container_and_ttl_nodes_hide_their_owner(d: Driver) -> None:
    d.create("/c", op=OpCode.createContainer)
    d.apply(OpCode.createTTL, CreateTTLRequest("/t", b"", list(OPEN_ACL_UNSAFE), 5, 500))
    assert d.state.get("/c").stat().ephemeralOwner == 0
    assert d.state.get("/t").stat().ephemeralOwner == 0
    assert d.state.get("/c").is_container
    # a container that never had a child is kept; once its last child goes it can be removed
    assert d.apply(OpCode.deleteContainer, DeleteRequest("/c", -1)).err != Code.OK
    d.create("/c/kid")
    d.apply(OpCode.delete, DeleteRequest("/c/kid", -1))
    assert d.apply(OpCode.deleteContainer, DeleteRequest("/c", -1)).err == Code.OK
    # a TTL node goes only once its TTL has passed since the last change
    assert d.apply(OpCode.deleteContainer, DeleteRequest("/t", -1)).err != Code.OK
    d.time_ms += 501
    assert d.apply(OpCode.deleteContainer, DeleteRequest("/t", -1)).err == Code.OK


def test_error_txn_reports_its_code(d: Driver) -> None:
    assert d.apply(OpCode.error, ErrorResponse(Code.BADARGUMENTS)).err == Code.BADARGUMENTS


def test_create2_flag4_is_plain_persistent_but_op19_is_a_container(d: Driver) -> None:
    d.create("/p4", flags=4, op=OpCode.create2)
    assert not d.state.get("/p4").is_container
