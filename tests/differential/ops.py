"""Operations run identically against Apache ZooKeeper and zoolog, and their normalised outcomes.

An outcome is what a client can rely on: return values, exception types, and Stat fields modulo
zxids, times and session ids. zxids are kept as *differences* from the example root's czxid,
which both servers must agree on when every write (failed ones included) consumes one zxid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException
from kazoo.protocol.serialization import (
    Create,
    Delete,
    Exists,
    GetACL,
    GetChildren,
    GetChildren2,
    GetData,
    SetACL,
    SetData,
    Sync,
)
from kazoo.protocol.states import ZnodeStat
from kazoo.security import ACL, CREATOR_ALL_ACL, OPEN_ACL_UNSAFE, READ_ACL_UNSAFE, Id, Permissions
from kazoo.security import make_digest_acl_credential as digest_credential

from tests.differential.harness import Server

OP_TIMEOUT_S = 15.0

ALICE_ID = Id("digest", digest_credential("alice", "secret"))
ACLS: dict[str, list[ACL]] = {
    "open": list(OPEN_ACL_UNSAFE),
    "world-read": list(READ_ACL_UNSAFE),
    "alice-all": [ACL(Permissions.ALL, ALICE_ID)],
    "creator-all": list(CREATOR_ALL_ACL),
    "alice-all+world-read": [ACL(Permissions.ALL, ALICE_ID),
                             ACL(Permissions.READ, Id("world", "anyone"))],
    "alice-read": [ACL(Permissions.READ, ALICE_ID)],
}


class NStat(NamedTuple):
    """A Stat modulo zxids/times/sessions: zxids are offsets from the example root's czxid."""

    version: int
    cversion: int
    aversion: int
    dataLength: int
    numChildren: int
    ephemeral: bool
    mzxid_is_czxid: bool
    pzxid_is_czxid: bool
    czxid_offset: int
    mzxid_offset: int
    pzxid_offset: int


@dataclass
class Side:
    """One server's clients and per-example bookkeeping."""

    server: Server
    main: KazooClient  # authenticated as alice:secret
    anon: KazooClient  # unauthenticated
    root: str = ""
    root_czxid: int = 0
    seq_names: list[str] = field(default_factory=list)

    def abs(self, rel: str) -> str:
        return self.root if rel == "" else f"{self.root}/{rel}"

    def rel(self, path: str) -> str:
        if path == self.root:
            return ""
        prefix = self.root + "/"
        return path[len(prefix):] if path.startswith(prefix) else "!" + path

    def resolve(self, spec: str) -> str:
        """A path spec is a relative path or '#k', the k-th sequential node created so far."""
        if spec.startswith("#"):
            if not self.seq_names:
                return "a"
            return self.seq_names[int(spec[1:]) % len(self.seq_names)]
        return spec

    def nstat(self, stat: Any) -> NStat:
        return NStat(
            stat.version, stat.cversion, stat.aversion, stat.dataLength, stat.numChildren,
            stat.ephemeralOwner != 0, stat.mzxid == stat.czxid, stat.pzxid == stat.czxid,
            stat.czxid - self.root_czxid, stat.mzxid - self.root_czxid,
            stat.pzxid - self.root_czxid,
        )


# ------------------------------------------------------------------------- operations


class CreateOp(NamedTuple):
    path: str
    data: bytes | None
    mode: str  # persistent | ephemeral | sequential | ephemeral_sequential
    include_data: bool = False
    acl: str = "open"
    actor: str = "main"


class DeleteOp(NamedTuple):
    path: str
    version: int = -1
    actor: str = "main"


class SetOp(NamedTuple):
    path: str
    data: bytes | None
    version: int = -1
    actor: str = "main"


class GetOp(NamedTuple):
    path: str
    actor: str = "main"


class ExistsOp(NamedTuple):
    path: str
    actor: str = "main"


class ChildrenOp(NamedTuple):
    path: str
    include_data: bool = False
    actor: str = "main"


class SyncOp(NamedTuple):
    path: str


class GetAclOp(NamedTuple):
    path: str
    actor: str = "main"


class SetAclOp(NamedTuple):
    path: str
    acl: str
    version: int = -1
    actor: str = "main"


class TxCreate(NamedTuple):
    path: str
    data: bytes
    mode: str


class TxDelete(NamedTuple):
    path: str
    version: int


class TxSet(NamedTuple):
    path: str
    data: bytes
    version: int


class TxCheck(NamedTuple):
    path: str
    version: int


class MultiOp(NamedTuple):
    ops: tuple[TxCreate | TxDelete | TxSet | TxCheck, ...]
    actor: str = "main"


class RawOp(NamedTuple):
    """A request sent without kazoo's path normalisation: `suffix` is appended to the root
    verbatim (so it may hold '//', '/./', a trailing '/', control characters); a suffix
    starting with '!' is the whole path instead (a relative or empty path)."""

    kind: str  # create | create_seq | delete | set | set_acl | exists | get | children |
    # children2 | get_acl | sync
    suffix: str


Op = (CreateOp | DeleteOp | SetOp | GetOp | ExistsOp | ChildrenOp | SyncOp | GetAclOp
      | SetAclOp | MultiOp | RawOp)

_MODES = {
    "persistent": (False, False),
    "ephemeral": (True, False),
    "sequential": (False, True),
    "ephemeral_sequential": (True, True),
}


def _error(exc: BaseException) -> tuple[str, str]:
    return ("error", type(exc).__name__)


def normalise(side: Side, value: Any) -> Any:
    """Turn a kazoo result into something comparable across servers."""
    if isinstance(value, ZnodeStat):
        return side.nstat(value)
    if isinstance(value, BaseException):
        return _error(value)
    if isinstance(value, str):
        return side.rel(value)
    if isinstance(value, ACL):
        return (value.perms, value.id.scheme, value.id.id)
    if isinstance(value, tuple | list):
        return type(value)(normalise(side, v) for v in value)
    return value


def run_op(side: Side, op: Op) -> Any:
    """Run `op` against one server; return its normalised outcome (never raises kazoo errors)."""
    try:
        return _run(side, op)
    except KazooException as exc:
        return _error(exc)


def _client(side: Side, op: Any) -> KazooClient:
    return side.anon if getattr(op, "actor", "main") == "anon" else side.main


def _run(side: Side, op: Op) -> Any:
    t = OP_TIMEOUT_S
    if isinstance(op, RawOp):
        return _run_raw(side, op)
    client = _client(side, op)
    if isinstance(op, MultiOp):
        tx = client.transaction()
        for sub in op.ops:
            path = side.abs(side.resolve(sub.path))
            if isinstance(sub, TxCreate):
                ephemeral, sequence = _MODES[sub.mode]
                tx.create(path, sub.data, ephemeral=ephemeral, sequence=sequence)
            elif isinstance(sub, TxDelete):
                tx.delete(path, sub.version)
            elif isinstance(sub, TxSet):
                tx.set_data(path, sub.data, sub.version)
            else:
                tx.check(path, sub.version)
        results = tx.commit_async().get(timeout=t)
        for sub, result in zip(op.ops, results, strict=True):
            if isinstance(sub, TxCreate) and isinstance(result, str) and _MODES[sub.mode][1]:
                side.seq_names.append(side.rel(result))
        return normalise(side, results)
    path = side.abs(side.resolve(op.path))
    if isinstance(op, CreateOp):
        ephemeral, sequence = _MODES[op.mode]
        result = client.create_async(
            path, op.data, acl=ACLS[op.acl], ephemeral=ephemeral, sequence=sequence,
            include_data=op.include_data,
        ).get(timeout=t)
        created = result[0] if op.include_data else result
        if sequence:
            side.seq_names.append(side.rel(created))
        return normalise(side, result)
    if isinstance(op, DeleteOp):
        return client.delete_async(path, op.version).get(timeout=t)
    if isinstance(op, SetOp):
        return normalise(side, client.set_async(path, op.data, op.version).get(timeout=t))
    if isinstance(op, GetOp):
        return normalise(side, client.get_async(path).get(timeout=t))
    if isinstance(op, ExistsOp):
        return normalise(side, client.exists_async(path).get(timeout=t))
    if isinstance(op, ChildrenOp):
        result = client.get_children_async(path, include_data=op.include_data).get(timeout=t)
        if op.include_data:
            children, stat = result
            return (sorted(children), side.nstat(stat))
        return sorted(result)
    if isinstance(op, SyncOp):
        return normalise(side, client.sync_async(path).get(timeout=t))
    if isinstance(op, GetAclOp):
        return normalise(side, client.get_acls_async(path).get(timeout=t))
    if isinstance(op, SetAclOp):
        return normalise(side, client.set_acls_async(path, ACLS[op.acl], op.version).get(timeout=t))
    raise TypeError(op)


def _run_raw(side: Side, op: RawOp) -> Any:
    client = side.main
    path = op.suffix[1:] if op.suffix.startswith("!") else side.root + op.suffix
    request: Any
    if op.kind == "create":
        request = Create(path, b"raw", list(OPEN_ACL_UNSAFE), 0)
    elif op.kind == "create_seq":
        request = Create(path, b"raw", list(OPEN_ACL_UNSAFE), 2)
    elif op.kind == "set_acl":
        request = SetACL(path, list(OPEN_ACL_UNSAFE), -1)
    elif op.kind == "children2":
        request = GetChildren2(path, None)
    elif op.kind == "get_acl":
        request = GetACL(path)
    elif op.kind == "sync":
        request = Sync(path)
    elif op.kind == "delete":
        request = Delete(path, -1)
    elif op.kind == "set":
        request = SetData(path, b"raw", -1)
    elif op.kind == "exists":
        request = Exists(path, None)
    elif op.kind == "get":
        request = GetData(path, None)
    elif op.kind == "children":
        request = GetChildren(path, None)
    else:
        raise ValueError(op.kind)
    result = client.handler.async_result()
    client._call(request, result)
    value = result.get(timeout=OP_TIMEOUT_S)
    if op.kind == "children":
        value = sorted(value)
    elif op.kind == "children2":
        value = (sorted(value[0]), value[1])
    return normalise(side, value)


def dump_tree(side: Side) -> list[Any]:
    """Every node under the example root: path, data, ACL, normalised Stat (anon-free view)."""
    out: list[Any] = []
    stack = [side.root]
    t = OP_TIMEOUT_S
    while stack:
        path = stack.pop()
        try:
            data, stat = side.main.get_async(path).get(timeout=t)
        except KazooException as exc:
            data, stat = _error(exc), None
        try:
            acl, _ = side.main.get_acls_async(path).get(timeout=t)
            acl_view: Any = normalise(side, acl)
        except KazooException as exc:
            acl_view = _error(exc)
        stat_view: Any = side.nstat(stat) if stat is not None else None
        if stat is None:
            stat_view = normalise(side, side.main.exists_async(path).get(timeout=t))
        out.append((side.rel(path), data, acl_view, stat_view))
        try:
            children = side.main.get_children_async(path).get(timeout=t)
        except KazooException as exc:
            out.append((side.rel(path), "children", _error(exc)))
            continue
        stack.extend(f"{path}/{c}" for c in sorted(children, reverse=True))
    return out
