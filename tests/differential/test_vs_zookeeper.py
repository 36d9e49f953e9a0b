"""Differential tests: the same client operations against Apache ZooKeeper 3.8 and zoolog.

Hypothesis generates operation sequences (each example in a fresh root created on both servers)
and every outcome must match: return values, exception types, Stat fields modulo zxids, times and
session ids (see ops.py), the final tree, and the watch events other connections receive.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.differential.harness import AsyncRunner, KazooFactory, Server
from tests.differential.ops import (
    ACLS,
    OP_TIMEOUT_S,
    ChildrenOp,
    CreateOp,
    DeleteOp,
    ExistsOp,
    GetAclOp,
    GetOp,
    MultiOp,
    Op,
    RawOp,
    SetAclOp,
    SetOp,
    Side,
    SyncOp,
    TxCheck,
    TxCreate,
    TxDelete,
    TxSet,
    dump_tree,
    run_op,
)
from zoolog.client.zk import WatchedEvent, ZkClient
from zoolog.coord.errors import ZkError

_roots = itertools.count()


def new_root(sides: tuple[Side, ...], tag: str) -> None:
    """Give every side the same fresh example root (created with create2 for its czxid)."""
    name = f"/{tag}-{next(_roots)}-{uuid.uuid4().hex[:8]}"
    for side in sides:
        _, stat = side.main.create_async(name, b"", include_data=True).get(timeout=OP_TIMEOUT_S)
        side.root = name
        side.root_czxid = stat.czxid
        side.seq_names = []


@pytest.fixture(scope="module")
def pair(servers: tuple[Server, Server], kazoo_factory: KazooFactory) -> tuple[Side, Side]:
    """(ZooKeeper side, zoolog side), each with an alice-authenticated and an anonymous client."""
    return tuple(  # type: ignore[return-value]
        Side(
            server,
            main=kazoo_factory(server, auth_data=[("digest", "alice:secret")]),
            anon=kazoo_factory(server),
        )
        for server in servers
    )


# ------------------------------------------------------------------------- strategies

PATHS = ["", "a", "b", "a/b", "a/c", "b/a", "a/b/c", "#0", "#1", "#2"]
CREATE_PATHS = [p for p in PATHS if p]
paths = st.sampled_from(PATHS)
create_paths = st.sampled_from(CREATE_PATHS)
datas = st.sampled_from([b"", b"x", b"hello", None])
tx_datas = st.sampled_from([b"", b"x", b"hello"])
versions = st.sampled_from([-1, -1, 0, 1, 2])
modes = st.sampled_from(
    ["persistent", "persistent", "persistent", "ephemeral", "sequential", "ephemeral_sequential"]
)
acl_names = st.sampled_from(["open"] * 6 + sorted(ACLS))
actors = st.sampled_from(["main"] * 6 + ["anon"])
RAW_SUFFIXES = [
    "/a/", "//a", "/./a", "/a/.", "/a/..", "/../a", "/a//b", "/a/b/", "/", "",
    "/a\x01b", "/a\x00b", "/a\x7fb", "/a/\u00e9t\u00e9", "!x",
]

tx_ops = st.one_of(
    st.builds(TxCreate, create_paths, tx_datas, modes),
    st.builds(TxDelete, paths, versions),
    st.builds(TxSet, paths, tx_datas, versions),
    st.builds(TxCheck, paths, versions),
)

operations: st.SearchStrategy[Op] = st.one_of(
    st.builds(CreateOp, create_paths, datas, modes, st.booleans(), acl_names, actors),
    st.builds(CreateOp, create_paths, datas, modes, st.booleans(), acl_names, actors),
    st.builds(DeleteOp, paths, versions, actors),
    st.builds(SetOp, paths, datas, versions, actors),
    st.builds(GetOp, paths, actors),
    st.builds(ExistsOp, paths, actors),
    st.builds(ChildrenOp, paths, st.booleans(), actors),
    st.builds(SyncOp, paths),
    st.builds(GetAclOp, paths, actors),
    st.builds(SetAclOp, paths, acl_names, versions, actors),
    st.builds(MultiOp, st.lists(tx_ops, min_size=1, max_size=4).map(tuple), actors),
    # malformed paths in writes only: reads and the empty path are covered cell by cell in
    # test_focused_vs_zookeeper.py::test_invalid_paths_matrix, so a known difference there
    # does not mask everything else here
    st.builds(RawOp, st.sampled_from(["create", "create_seq", "delete", "set", "set_acl"]),
              st.sampled_from(RAW_SUFFIXES)),
)


def _describe(history: list[tuple[Op, Any]]) -> str:
    return "\n".join(f"  {i:2d}. {op!r} -> {out!r}" for i, (op, out) in enumerate(history))


def run_both(pair: tuple[Side, Side], ops: list[Op]) -> None:
    zk, zl = pair
    history: list[tuple[Op, Any]] = []
    for step, op in enumerate(ops):
        expected = run_op(zk, op)
        actual = run_op(zl, op)
        history.append((op, expected))
        assert actual == expected, (
            f"step {step} differs: {op!r}\n  ZooKeeper 3.8: {expected!r}\n  zoolog:        "
            f"{actual!r}\nsequence so far (ZooKeeper's outcomes):\n{_describe(history)}"
        )
    assert dump_tree(zl) == dump_tree(zk), "final trees differ after:\n" + _describe(history)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(operations, min_size=5, max_size=30))
def test_random_operation_sequences_match_zookeeper(pair: tuple[Side, Side],
                                                     ops: list[Op]) -> None:
    new_root(pair, "hyp")
    run_both(pair, ops)


# ------------------------------------------------------------------------- watches


@dataclass
class WatchSide:
    """The watching connections of one server. The persistent watch has a connection of its own:
    in ZooKeeper 3.8 a standard watch set later on the same path by the same connection replaces
    a persistent one (see test_focused_vs_zookeeper.py::test_standard_watch_after_persistent_one),
    which would otherwise mask every other difference here."""

    side: Side
    oneshot: ZkClient  # one-shot watches, re-armed before every step
    persistent: ZkClient  # a persistent watch on ROOT/a
    recursive: ZkClient  # a persistent recursive watch on ROOT


@pytest.fixture(scope="module")
def watch_pair(pair: tuple[Side, Side], aio: AsyncRunner) -> Iterator[tuple[WatchSide, WatchSide]]:
    made: list[ZkClient] = []

    def connect(side: Side) -> ZkClient:
        client = aio.run(ZkClient.connect(side.server.connect_string))
        made.append(client)
        return client

    sides = tuple(WatchSide(side, connect(side), connect(side), connect(side)) for side in pair)
    yield sides  # type: ignore[misc]
    for client in made:
        aio.run(client.close())


WATCH_PATHS = ["", "a", "a/b", "b"]
MAIN = st.just("main")
ARM_KINDS = ["exists", "data", "child"]
watch_tx_ops = st.one_of(
    st.builds(TxCreate, st.sampled_from(["a", "b", "a/b", "a/c", "a/b/c"]), tx_datas, modes),
    st.builds(TxDelete, st.sampled_from(WATCH_PATHS), st.just(-1)),
    st.builds(TxSet, st.sampled_from(WATCH_PATHS), tx_datas, st.just(-1)),
)
watch_write_ops: st.SearchStrategy[Op] = st.one_of(
    st.builds(CreateOp, st.sampled_from(["a", "b", "a/b", "a/c", "a/b/c"]), datas, modes,
              st.booleans(), st.just("open"), MAIN),
    st.builds(DeleteOp, st.sampled_from([*WATCH_PATHS, "a/c", "a/b/c"]), st.just(-1), MAIN),
    st.builds(SetOp, st.sampled_from([*WATCH_PATHS, "a/b/c"]), datas, st.just(-1), MAIN),
    st.builds(MultiOp, st.lists(watch_tx_ops, min_size=1, max_size=3).map(tuple), MAIN),
)
arm_sets = st.lists(
    st.tuples(st.sampled_from(WATCH_PATHS), st.sampled_from(ARM_KINDS)), max_size=6, unique=True
)


async def _arm(client: ZkClient, root: str, arms: list[tuple[str, str]]) -> list[str]:
    """Set the one-shot watches; return what each arming read answered (compared too)."""
    answers = []
    for rel, kind in arms:
        path = root if rel == "" else f"{root}/{rel}"
        try:
            if kind == "exists":
                answers.append("yes" if await client.exists(path, watch=True) else "no")
            elif kind == "data":
                await client.get(path, watch=True)
                answers.append("ok")
            else:
                await client.get_children(path, watch=True)
                answers.append("ok")
        except ZkError as err:
            answers.append(err.code.name)
    return answers


async def _drain(client: ZkClient, root: str) -> list[tuple[int, str]]:
    """A round trip on the connection, then every notification that arrived before its reply
    (the server sends a write's notifications before anything it answers afterwards)."""
    await client.exists(root)
    events: list[WatchedEvent] = []
    while not client.events.empty():
        events.append(client.events.get_nowait())
    out = []
    for ev in events:
        rel = "" if ev.path == root else ev.path.removeprefix(root + "/")
        out.append((ev.type, rel if ev.path.startswith(root) else "!" + ev.path))
    return out


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(st.tuples(arm_sets, watch_write_ops), min_size=3, max_size=20))
def test_watch_events_match_zookeeper(watch_pair: tuple[WatchSide, WatchSide], aio: AsyncRunner,
                                      steps: list[tuple[list[tuple[str, str]], Op]]) -> None:
    zk, zl = watch_pair
    new_root((zk.side, zl.side), "watch")
    for ws in watch_pair:
        root = ws.side.root
        aio.run(ws.persistent.add_watch(root + "/a", recursive=False))
        aio.run(ws.recursive.add_watch(root, recursive=True))
    history: list[Any] = []
    for step, (arms, op) in enumerate(steps):
        seen = []
        for ws in watch_pair:
            root = ws.side.root
            armed = aio.run(_arm(ws.oneshot, root, arms))
            outcome = run_op(ws.side, op)
            events = tuple(aio.run(_drain(client, root))
                           for client in (ws.oneshot, ws.persistent, ws.recursive))
            seen.append((armed, outcome, events))
        history.append((arms, op, seen[0]))
        assert seen[1] == seen[0], (
            f"step {step} differs: arm {arms!r} then {op!r}\n"
            f"  ZooKeeper 3.8 (arming answers, op outcome, (one-shot, persistent, recursive "
            f"events)): {seen[0]!r}\n  zoolog: {seen[1]!r}\nhistory:\n"
            + "\n".join(f"  {i}. {h!r}" for i, h in enumerate(history))
        )
