"""The data tree and session table, and `apply`: the coordination state machine.

Owns: every znode (data, ACL, Stat counters, children), every live session and its ephemerals,
and the last applied zxid. `CoordState.apply(txn)` is the only way state changes; it is
deterministic (time and zxid come in the txn, identities for permission checks too), so replicas
that apply the same log hold identical state. It returns the reply for the originating client
and the watch triggers as values; it never touches a connection, a clock or a file.

Invariants:
- `nodes` holds "/" and, for every other key, its parent; a parent's `children` names exactly
  the nodes below it.
- `Node.cversion` counts child *creations* (it drives sequential names); clients see
  `2 * cversion - numChildren`, ZooKeeper's "count of changes".
- An ephemeral node's owner is a live session, and that session's `ephemerals` lists it.
- A failed write (including a failed multi) changes nothing but `last_zxid`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from zoolog.coord import acl as acls
from zoolog.coord.errors import ERR, ZkError
from zoolog.coord.paths import name_of, parent_of, validate_path
from zoolog.coord.txn import MultiBody, Txn
from zoolog.limits import Limits
from zoolog.protocol.zk._generated.jute_records import (
    ACL,
    CheckVersionRequest,
    CreateRequest,
    CreateSessionTxn,
    CreateTTLRequest,
    DeleteRequest,
    ErrorResponse,
    Id,
    SetACLRequest,
    SetACLResponse,
    SetDataRequest,
    Stat,
)
from zoolog.protocol.zk.opcodes import EVENT, FLAG, OP

CONTAINER_OWNER = -0x8000000000000000
"""ephemeralOwner of a container node (0x8000000000000000 as a signed long)."""
TTL_OWNER_BASE = -0x0100000000000000
"""ephemeralOwner high byte 0xFF marks a TTL node; the low 56 bits hold the TTL in ms."""
TTL_MS_MAX = (1 << 40) - 1

SPECIAL_PATHS = frozenset(("/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"))

_STAT = struct.Struct(">qqqqiiiqiiq")
_INT = struct.Struct(">i")
_INT32_MIN = -(1 << 31)
_INT32_MAX = (1 << 31) - 1
_INT32_SPAN = 1 << 32


_CREATE_RECORDS = (CreateRequest, CreateTTLRequest)
_SEQUENTIAL_FLAGS = frozenset(
    (FLAG.PERSISTENT_SEQUENTIAL, FLAG.EPHEMERAL_SEQUENTIAL, FLAG.PERSISTENT_SEQUENTIAL_WITH_TTL)
)
_EPHEMERAL_FLAGS = frozenset((FLAG.EPHEMERAL, FLAG.EPHEMERAL_SEQUENTIAL))


def _int32(value: int) -> int:
    """Java int arithmetic: wrap to a signed 32-bit value."""
    return (value - _INT32_MIN) % _INT32_SPAN + _INT32_MIN


def is_ttl_owner(owner: int) -> bool:
    return owner < 0 and (owner >> 56) == -1 and owner != CONTAINER_OWNER


def ttl_of(owner: int) -> int:
    return owner & 0x00FFFFFFFFFFFFFF


class Node:
    """One znode. `cversion` is the internal child-creation count (see module docstring)."""

    __slots__ = (
        "acl",
        "aversion",
        "children",
        "ctime",
        "cversion",
        "czxid",
        "data",
        "ephemeral_owner",
        "mtime",
        "mzxid",
        "pzxid",
        "version",
    )

    def __init__(
        self,
        data: bytes | None,
        acl: list[ACL],
        zxid: int,
        time_ms: int,
        ephemeral_owner: int = 0,
    ) -> None:
        self.data = data
        self.acl = acl
        self.czxid = zxid
        self.mzxid = zxid
        self.pzxid = zxid
        self.ctime = time_ms
        self.mtime = time_ms
        self.version = 0
        self.cversion = 0
        self.aversion = 0
        self.ephemeral_owner = ephemeral_owner
        self.children: set[str] = set()

    def stat_bytes(self) -> bytes:
        """The client-visible Stat, jute-encoded (the hot path of every read)."""
        owner = self.ephemeral_owner
        num_children = len(self.children)
        data = self.data
        cversion = 2 * self.cversion - num_children
        if not _INT32_MIN <= cversion <= _INT32_MAX:
            cversion = _int32(cversion)
        return _STAT.pack(
            self.czxid,
            self.mzxid,
            self.ctime,
            self.mtime,
            self.version,
            cversion,
            self.aversion,
            owner if owner > 0 else 0,
            len(data) if data is not None else 0,
            num_children,
            self.pzxid,
        )

    def stat(self) -> Stat:
        """The client-visible Stat as a record (visible cversion, owner hidden for
        container/TTL nodes)."""
        return Stat.from_bytes(self.stat_bytes())

    @property
    def is_ephemeral(self) -> bool:
        return self.ephemeral_owner > 0

    @property
    def is_container(self) -> bool:
        return self.ephemeral_owner == CONTAINER_OWNER


@dataclass(slots=True)
class Session:
    session_id: int
    timeout_ms: int
    ephemerals: set[str] = field(default_factory=set)


@dataclass(slots=True)
class MultiResult:
    """One op's outcome inside a multi reply: `err` 0 with `response`, or an error code."""

    op: int
    err: int
    response: object | None


@dataclass(slots=True)
class ApplyResult:
    """What applying one txn produced.

    `err` and `response` form the reply to the originating client (`response` is a jute
    record or its encoding as bytes, a list of MultiResult for multi, or None); `triggers`
    are (EventType, path) pairs in the order the watch manager must fire them.
    """

    err: int
    response: object | None = None
    triggers: list[tuple[int, str]] = field(default_factory=list)


Undo = list[Callable[[], None]]


class CoordState:
    """The replicated state of the coordination service and its deterministic `apply`."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.nodes: dict[str, Node] = {}
        self.sessions: dict[int, Session] = {}
        self.last_zxid = 0
        open_acl = list(acls.OPEN_ACL_UNSAFE)
        read_acl = [ACL(perms=acls.READ, id=Id(scheme="world", id="anyone"))]
        for path, acl in (
            ("/", open_acl),
            ("/zookeeper", open_acl),
            ("/zookeeper/quota", open_acl),
            ("/zookeeper/config", read_acl),
        ):
            self.nodes[path] = Node(b"", list(acl), 0, 0)
            if path != "/":
                self.nodes[parent_of(path)].children.add(name_of(path))
        self.nodes["/zookeeper/config"].aversion = -1  # as ZooKeeper 3.8 creates it
        self._apply_op: dict[int, Callable[[Txn, int, object, Undo | None], ApplyResult]] = {
            OP.create: self._apply_create,
            OP.create2: self._apply_create,
            OP.createContainer: self._apply_create,
            OP.createTTL: self._apply_create,
            OP.delete: self._apply_delete,
            OP.deleteContainer: self._apply_delete_container,
            OP.setData: self._apply_set_data,
            OP.setACL: self._apply_set_acl,
            OP.check: self._apply_check,
        }

    # ------------------------------------------------------------------ queries

    def node_count(self) -> int:
        return len(self.nodes)

    def get(self, path: str) -> Node:
        node = self.nodes.get(path)
        if node is None:
            raise ZkError(ERR.NONODE, path)
        return node

    def existing(self, path: str) -> Node:
        """The node at `path`; BADARGUMENTS for a malformed path, else NONODE if missing.
        A path in the tree is valid by construction, so only a miss is validated."""
        node = self.nodes.get(path)
        if node is None:
            validate_path(path)
            raise ZkError(ERR.NONODE, path)
        return node

    def ephemeral_count(self) -> int:
        return sum(len(s.ephemerals) for s in self.sessions.values())

    def approximate_data_size(self) -> int:
        return sum(len(p) + len(n.data or b"") for p, n in self.nodes.items())

    def descendants(self, path: str) -> Iterator[str]:
        """Every path strictly below `path`, parents before children."""
        stack = [path]
        while stack:
            current = stack.pop()
            node = self.nodes[current]
            for name in sorted(node.children, reverse=True):
                child = current + "/" + name if current != "/" else "/" + name
                yield child
                stack.append(child)

    # ------------------------------------------------------------------ apply

    def apply(self, txn: Txn) -> ApplyResult:
        """Apply one txn: the only mutation of the state. Deterministic."""
        zxid = txn.zxid
        if zxid <= self.last_zxid:
            raise AssertionError(f"zxid {zxid:#x} applied after {self.last_zxid:#x}")
        self.last_zxid = zxid
        op = txn.op
        handler = self._apply_op.get(op)
        if handler is not None:  # a write on the tree
            if txn.session_id not in self.sessions and op != OP.deleteContainer:
                return ApplyResult(ERR.SESSIONEXPIRED)
            try:
                return handler(txn, op, txn.body, None)
            except ZkError as err:
                return ApplyResult(err.code)
        if op == OP.createSession:
            return self._apply_create_session(txn)
        if op == OP.closeSession:
            return self._apply_close_session(txn)
        if op == OP.error:
            body = txn.body
            assert isinstance(body, ErrorResponse)
            return ApplyResult(body.err)
        if op == OP.multi:
            if txn.session_id not in self.sessions:
                return ApplyResult(ERR.SESSIONEXPIRED)
            assert isinstance(txn.body, MultiBody)
            return self._apply_multi(txn, txn.body)
        raise AssertionError(f"txn with op {op} cannot be applied")

    def _apply_create_session(self, txn: Txn) -> ApplyResult:
        body = txn.body
        assert isinstance(body, CreateSessionTxn)
        if txn.session_id in self.sessions:
            return ApplyResult(ERR.SESSIONEXPIRED)
        if len(self.sessions) >= self.limits.sessions_max:
            return ApplyResult(ERR.SESSIONEXPIRED)
        self.sessions[txn.session_id] = Session(txn.session_id, body.timeOut)
        return ApplyResult(ERR.OK)

    def _apply_close_session(self, txn: Txn) -> ApplyResult:
        session = self.sessions.pop(txn.session_id, None)
        if session is None:
            return ApplyResult(ERR.SESSIONEXPIRED)
        triggers: list[tuple[int, str]] = []
        for path in sorted(session.ephemerals):
            node = self.nodes.get(path)
            if node is not None and node.ephemeral_owner == session.session_id:
                self._remove_node(path, node, txn.zxid, triggers, None)
        return ApplyResult(ERR.OK, None, triggers)

    def _apply_multi(self, txn: Txn, body: MultiBody) -> ApplyResult:
        undo: Undo = []
        results: list[MultiResult] = []
        triggers: list[tuple[int, str]] = []
        for index, (op, record) in enumerate(body.ops):
            try:
                result = self._apply_op[op](txn, op, record, undo)
            except ZkError as err:
                for restore in reversed(undo):
                    restore()
                failed = [MultiResult(o, 0, None) for o, _ in body.ops[:index]]
                failed.append(MultiResult(op, err.code, None))
                failed.extend(
                    MultiResult(o, ERR.RUNTIMEINCONSISTENCY, None)
                    for o, _ in body.ops[index + 1 :]
                )
                return ApplyResult(ERR.OK, failed)
            results.append(MultiResult(op, ERR.OK, result.response))
            triggers.extend(result.triggers)
        return ApplyResult(ERR.OK, results, triggers)

    # ------------------------------------------------------------------ per-op handlers

    def _apply_create(
        self, txn: Txn, op: int, record: object, undo: Undo | None
    ) -> ApplyResult:
        assert isinstance(record, _CREATE_RECORDS)
        path = record.path or ""
        flags = record.flags
        cut = path.rfind("/")
        parent_path = path[:cut] if cut > 0 else "/"
        nodes = self.nodes
        parent = nodes.get(parent_path)
        if parent is None:
            raise ZkError(ERR.NONODE, parent_path)
        acls.require(parent.acl, acls.CREATE, txn.identities)
        if flags in _SEQUENTIAL_FLAGS:
            # digits never change a path's validity: validate the base with one digit, a
            # string that repeats (and so hits validate_path's cache) unlike the new name
            validate_path(path + "0")
            path = f"{path}{parent.cversion:010d}"
        else:
            validate_path(path)
        if path in nodes:
            raise ZkError(ERR.NODEEXISTS, path)
        if parent.ephemeral_owner > 0:
            raise ZkError(ERR.NOCHILDRENFOREPHEMERALS, path)
        if len(parent.children) >= self.limits.children_per_node_max:
            raise ZkError(ERR.BADARGUMENTS, f"{parent_path} has too many children")
        if op == OP.createContainer:
            owner = CONTAINER_OWNER
        elif op == OP.createTTL:
            assert isinstance(record, CreateTTLRequest)
            owner = TTL_OWNER_BASE | record.ttl
        elif flags in _EPHEMERAL_FLAGS:
            owner = txn.session_id
        else:
            owner = 0
        acl = record.acl if record.acl is not None else []  # a value, shared (acl.fixup)
        zxid = txn.zxid
        node = Node(record.data, acl, zxid, txn.time_ms, owner)
        name = path[cut + 1 :]  # digits of a sequential name extend the last component
        if undo is not None:
            undo.append(self._undo_create(path, parent, name, owner))
        nodes[path] = node
        parent.children.add(name)
        cversion = parent.cversion
        parent.cversion = cversion + 1 if cversion != _INT32_MAX else _INT32_MIN
        parent.pzxid = zxid
        if owner > 0:
            session = self.sessions.get(owner)
            if session is not None:
                session.ephemerals.add(path)
        encoded_path = path.encode("utf-8", "surrogatepass")
        response = _INT.pack(len(encoded_path)) + encoded_path  # CreateResponse{path}
        if op != OP.create:  # Create2Response{path, stat}
            response += node.stat_bytes()
        return ApplyResult(
            ERR.OK,
            response,
            [(EVENT.NodeCreated, path), (EVENT.NodeChildrenChanged, parent_path)],
        )

    def _undo_create(self, path: str, parent: Node, name: str, owner: int) -> Callable[[], None]:
        """How to take back a create inside a multi that fails later (state before it)."""
        old_cversion, old_pzxid = parent.cversion, parent.pzxid
        session = self.sessions.get(owner) if owner > 0 else None

        def restore() -> None:
            del self.nodes[path]
            parent.children.discard(name)
            parent.cversion, parent.pzxid = old_cversion, old_pzxid
            if session is not None:
                session.ephemerals.discard(path)

        return restore

    def _apply_delete(
        self, txn: Txn, op: int, record: object, undo: Undo | None
    ) -> ApplyResult:
        assert isinstance(record, DeleteRequest)
        path = record.path or ""
        if path in SPECIAL_PATHS or "/" not in path:
            raise ZkError(ERR.BADARGUMENTS, f"cannot delete {path}")
        parent = self.nodes.get(parent_of(path))
        if parent is None:
            raise ZkError(ERR.NONODE, path)
        acls.require(parent.acl, acls.DELETE, txn.identities)
        node = self.nodes.get(path)
        if node is None:
            raise ZkError(ERR.NONODE, path)
        if record.version != -1 and record.version != node.version:
            raise ZkError(ERR.BADVERSION, path)
        if node.children:
            raise ZkError(ERR.NOTEMPTY, path)
        triggers: list[tuple[int, str]] = []
        self._remove_node(path, node, txn.zxid, triggers, undo)
        return ApplyResult(ERR.OK, None, triggers)

    def _apply_delete_container(
        self, txn: Txn, op: int, record: object, undo: Undo | None
    ) -> ApplyResult:
        """Server-initiated removal of an empty container or an expired TTL node."""
        assert isinstance(record, DeleteRequest)
        path = record.path or ""
        node = self.nodes.get(path)
        if node is None:
            raise ZkError(ERR.NONODE, path)
        if node.children:
            raise ZkError(ERR.NOTEMPTY, path)
        owner = node.ephemeral_owner
        if owner == CONTAINER_OWNER:
            if node.cversion <= 0:
                raise ZkError(ERR.BADARGUMENTS, f"container {path} never had a child")
        elif is_ttl_owner(owner):
            if txn.time_ms - node.mtime <= ttl_of(owner):
                raise ZkError(ERR.BADARGUMENTS, f"TTL node {path} has not expired")
        else:
            raise ZkError(ERR.BADARGUMENTS, f"{path} is neither a container nor a TTL node")
        triggers: list[tuple[int, str]] = []
        self._remove_node(path, node, txn.zxid, triggers, undo)
        return ApplyResult(ERR.OK, None, triggers)

    def _remove_node(
        self, path: str, node: Node, zxid: int, triggers: list[tuple[int, str]], undo: Undo | None
    ) -> None:
        parent_path = parent_of(path)
        parent = self.nodes[parent_path]
        name = name_of(path)
        old_pzxid = parent.pzxid
        del self.nodes[path]
        parent.children.discard(name)
        parent.pzxid = zxid
        owner = node.ephemeral_owner
        session = self.sessions.get(owner) if owner > 0 else None
        if session is not None:
            session.ephemerals.discard(path)
        if undo is not None:

            def restore() -> None:
                self.nodes[path] = node
                parent.children.add(name)
                parent.pzxid = old_pzxid
                if session is not None:
                    session.ephemerals.add(path)

            undo.append(restore)
        triggers.append((EVENT.NodeDeleted, path))
        triggers.append((EVENT.NodeChildrenChanged, parent_path))

    def _apply_set_data(
        self, txn: Txn, op: int, record: object, undo: Undo | None
    ) -> ApplyResult:
        assert type(record) is SetDataRequest
        path = record.path or ""
        node = self.nodes.get(path)
        if node is None:
            node = self.existing(path)  # raises the right error
        acls.require(node.acl, acls.WRITE, txn.identities)
        version = record.version
        if version != -1 and version != node.version:
            raise ZkError(ERR.BADVERSION, path)
        if undo is not None:
            saved = (node.data, node.version, node.mzxid, node.mtime)

            def restore() -> None:
                node.data, node.version, node.mzxid, node.mtime = saved

            undo.append(restore)
        node.data = record.data
        version = node.version
        node.version = version + 1 if version != _INT32_MAX else _INT32_MIN
        node.mzxid = txn.zxid
        node.mtime = txn.time_ms
        # the reply body (a SetDataResponse) is just the Stat: pack it once
        return ApplyResult(ERR.OK, node.stat_bytes(), [(EVENT.NodeDataChanged, path)])

    def _apply_set_acl(
        self, txn: Txn, op: int, record: object, undo: Undo | None
    ) -> ApplyResult:
        assert isinstance(record, SetACLRequest)
        path = record.path or ""
        node = self.existing(path)
        acls.require(node.acl, acls.ADMIN, txn.identities)
        if record.version != -1 and record.version != node.aversion:
            raise ZkError(ERR.BADVERSION, path)
        node.acl = list(record.acl or ())
        node.aversion = _int32(node.aversion + 1)
        return ApplyResult(ERR.OK, SetACLResponse(node.stat()))

    def _apply_check(
        self, txn: Txn, op: int, record: object, undo: Undo | None
    ) -> ApplyResult:
        assert isinstance(record, CheckVersionRequest)
        path = record.path or ""
        node = self.existing(path)
        acls.require(node.acl, acls.READ, txn.identities)
        if record.version != -1 and record.version != node.version:
            raise ZkError(ERR.BADVERSION, path)
        return ApplyResult(ERR.OK)

