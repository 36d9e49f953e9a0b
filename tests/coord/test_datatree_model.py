"""Hypothesis RuleBasedStateMachine: CoordState against a plain dict model of a znode tree,
plus snapshot round trips and a check that replay gives byte-identical state."""

from __future__ import annotations

import itertools

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from zoolog.coord import snapshot
from zoolog.coord.acl import OPEN_ACL_UNSAFE
from zoolog.coord.datatree import CoordState
from zoolog.coord.errors import Code
from zoolog.coord.txn import MultiBody, Txn
from zoolog.protocol.zk._generated.jute_records import (
    CreateRequest,
    CreateSessionTxn,
    DeleteRequest,
    SetDataRequest,
)
from zoolog.protocol.zk.opcodes import OpCode

NAMES = st.sampled_from(["a", "b", "c"])
PATHS = st.lists(NAMES, min_size=1, max_size=3).map(lambda parts: "/" + "/".join(parts))
SESSIONS = (11, 22)


class Model:
    """A dict of path -> [data, version, ephemeral owner, creations under it]."""

    def __init__(self) -> None:
        self.nodes: dict[str, list] = {"/": [b"", 0, 0, 0]}

    def parent(self, path: str) -> str:
        return path.rsplit("/", 1)[0] or "/"

    def children(self, path: str) -> list[str]:
        return [p for p in self.nodes if p != path and self.parent(p) == path]


class TreeMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.state = CoordState()
        self.model = Model()
        self.zxid = itertools.count(1)
        self.log: list[Txn] = []
        for session in SESSIONS:
            self.apply(session, OpCode.createSession, CreateSessionTxn(5000))

    def apply(self, session: int, op: int, body: object):  # type: ignore[no-untyped-def]
        txn = Txn(session, 0, next(self.zxid), 1000, op, (), body)
        self.log.append(txn)
        return self.state.apply(txn)

    @rule(path=PATHS, data=st.binary(max_size=4), ephemeral=st.booleans(),
          session=st.sampled_from(SESSIONS))
    def create(self, path: str, data: bytes, ephemeral: bool, session: int) -> None:
        result = self.apply(session, OpCode.create,
                            CreateRequest(path, data, list(OPEN_ACL_UNSAFE), int(ephemeral)))
        parent = self.model.parent(path)
        if parent not in self.model.nodes:
            assert result.err == Code.NONODE
        elif path in self.model.nodes:
            assert result.err == Code.NODEEXISTS
        elif self.model.nodes[parent][2]:
            assert result.err == Code.NOCHILDRENFOREPHEMERALS
        else:
            assert result.err == Code.OK
            self.model.nodes[path] = [data, 0, session if ephemeral else 0, 0]
            self.model.nodes[parent][3] += 1

    @rule(path=PATHS, version=st.sampled_from([-1, 0, 1]))
    def set_data(self, path: str, version: int) -> None:
        result = self.apply(SESSIONS[0], OpCode.setData, SetDataRequest(path, b"s", version))
        node = self.model.nodes.get(path)
        if node is None:
            assert result.err == Code.NONODE
        elif version not in (-1, node[1]):
            assert result.err == Code.BADVERSION
        else:
            assert result.err == Code.OK
            node[0], node[1] = b"s", node[1] + 1

    @rule(path=PATHS, version=st.sampled_from([-1, 0, 1]))
    def delete(self, path: str, version: int) -> None:
        result = self.apply(SESSIONS[0], OpCode.delete, DeleteRequest(path, version))
        node = self.model.nodes.get(path)
        if node is None:
            assert result.err == Code.NONODE
        elif version not in (-1, node[1]):
            assert result.err == Code.BADVERSION
        elif self.model.children(path):
            assert result.err == Code.NOTEMPTY
        else:
            assert result.err == Code.OK
            del self.model.nodes[path]

    @rule(paths=st.lists(PATHS, min_size=1, max_size=3))
    def multi_create(self, paths: list[str]) -> None:
        ops = [(int(OpCode.create), CreateRequest(p, b"", list(OPEN_ACL_UNSAFE), 0))
               for p in paths]
        result = self.apply(SESSIONS[0], OpCode.multi, MultiBody(ops))
        trial = {k: list(v) for k, v in self.model.nodes.items()}
        ok = True
        for path in paths:
            parent = self.model.parent(path)
            if parent not in trial or path in trial or trial[parent][2]:
                ok = False
                break
            trial[path] = [b"", 0, 0, 0]
            trial[parent][3] += 1
        assert all(r.err == 0 for r in result.response) == ok
        if ok:
            self.model.nodes = trial

    @rule(session=st.sampled_from(SESSIONS))
    def close_and_reopen_session(self, session: int) -> None:
        self.apply(session, OpCode.closeSession, None)
        for path in [p for p, n in self.model.nodes.items() if n[2] == session]:
            del self.model.nodes[path]
        self.apply(session, OpCode.createSession, CreateSessionTxn(5000))

    @invariant()
    def tree_matches_model(self) -> None:
        user_paths = {p for p in self.state.nodes if not p.startswith("/zookeeper")}
        assert user_paths == set(self.model.nodes)
        for path, (data, version, owner, creations) in self.model.nodes.items():
            node = self.state.nodes[path]
            stat = node.stat()
            assert (node.data, stat.version, stat.ephemeralOwner) == (data, version, owner)
            if path != "/":
                children = len(self.model.children(path))
                assert stat.numChildren == children
                assert stat.cversion == 2 * creations - children

    @invariant()
    def snapshot_and_replay_agree(self) -> None:
        encoded = snapshot.encode(self.state)
        assert snapshot.encode(snapshot.decode(encoded)) == encoded
        replica = CoordState()
        for txn in self.log:
            replica.apply(Txn.from_bytes(txn.to_bytes()))
        assert snapshot.encode(replica) == encoded


TestTreeMachine = TreeMachine.TestCase
TestTreeMachine.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
