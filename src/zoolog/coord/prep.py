"""The prep step: turn a client write into a `Txn`, checking everything that needs no state.

Checks made here (in ZooKeeper's order): create flags and opcode agree, TTL range, path shape,
payload and path sizes, ACL syntax and `auth` expansion. Everything that depends on the tree
(parent exists, permissions, versions, NODEEXISTS, NOTEMPTY, ephemeral parents) is checked by
`CoordState.apply`, deterministically, in ZooKeeper's order. A prep failure is still logged
(as an error txn) because in ZooKeeper every failed write consumes a zxid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from zoolog.coord import acl as acls
from zoolog.coord.datatree import SPECIAL_PATHS, TTL_MS_MAX
from zoolog.coord.errors import ERR, Code, ZkError
from zoolog.coord.paths import validate_path
from zoolog.coord.txn import MultiBody
from zoolog.limits import Limits
from zoolog.protocol.zk._generated.jute_records import (
    CheckVersionRequest,
    CreateRequest,
    CreateTTLRequest,
    DeleteRequest,
    SetACLRequest,
    SetDataRequest,
)
from zoolog.protocol.zk.connection import MisplacedOp
from zoolog.protocol.zk.opcodes import FLAG, OP, CreateFlag

WRITE_OPS = frozenset(
    (
        OP.create, OP.create2, OP.createContainer, OP.createTTL, OP.delete,
        OP.setData, OP.setACL, OP.multi,
    )
)
_TTL_FLAGS = (FLAG.PERSISTENT_WITH_TTL, FLAG.PERSISTENT_SEQUENTIAL_WITH_TTL)
_CREATE_FLAGS = frozenset(int(flag) for flag in CreateFlag)


@dataclass(slots=True)
class PrepContext:
    """Who sends writes, and under which limits: one per connection, rebuilt when its session
    or identities change. Read-only once built (not frozen: a frozen dataclass's __init__
    costs a microsecond)."""

    session_id: int
    identities: tuple[tuple[str, str], ...]
    limits: Limits
    extended_types_enabled: bool


class MultiPrepError(ZkError):
    """Op `index` of a multi failed prep with `code`."""

    def __init__(self, index: int, code: Code, detail: str) -> None:
        super().__init__(code, detail)
        self.index = index


def prep_write(op: int, record: Any, ctx: PrepContext) -> Any:
    """Validate a write and return its txn body (the record to log and apply). Raises
    ZkError."""
    if op == OP.multi:
        if isinstance(record, MisplacedOp):
            raise ZkError(ERR.MARSHALLINGERROR, f"op {record.op} is not allowed in a multi")
        ops: list[tuple[int, Any]] = []
        if len(record) > ctx.limits.multi_ops_max:
            raise MultiPrepError(0, ERR.BADARGUMENTS, f"multi of {len(record)} ops")
        for index, (sub_op, sub_record) in enumerate(record):
            try:
                ops.append((sub_op, _prep_one(sub_op, sub_record, ctx)))
            except ZkError as err:
                raise MultiPrepError(index, err.code, err.detail) from err
        return MultiBody(ops)
    return _prep_one(op, record, ctx)


def _check_data(data: bytes | None, limits: Limits) -> None:
    if data is not None and len(data) > limits.znode_data_bytes_max:
        raise ZkError(
            ERR.BADARGUMENTS,
            f"data of {len(data)} bytes exceeds znode_data_bytes_max {limits.znode_data_bytes_max}",
        )


def _check_path_size(path: str, limits: Limits) -> None:
    if len(path) * 4 <= limits.path_bytes_max:
        return  # no character takes more than 4 bytes in UTF-8: no need to encode
    if len(path.encode("utf-8", "surrogatepass")) > limits.path_bytes_max:
        raise ZkError(ERR.BADARGUMENTS, f"path longer than {limits.path_bytes_max} bytes")


def _prep_one(op: int, record: Any, ctx: PrepContext) -> Any:
    if op == OP.setData:  # the hottest write first
        assert type(record) is SetDataRequest
        validate_path(record.path or "")
        _check_data(record.data, ctx.limits)
        return record
    if op in (OP.create, OP.create2, OP.createContainer, OP.createTTL):
        return _prep_create(op, record, ctx)
    path = record.path or ""
    if op == OP.delete:
        assert isinstance(record, DeleteRequest)
        if not path:
            raise ZkError(ERR.MARSHALLINGERROR, "empty path")  # as ZooKeeper 3.8 answers
        if "/" not in path or "\0" in path or path in SPECIAL_PATHS:
            raise ZkError(ERR.BADARGUMENTS, f"cannot delete {path!r}")
        return record
    validate_path(path)
    if op == OP.setACL:
        assert isinstance(record, SetACLRequest)
        if record.acl is not None and len(record.acl) > ctx.limits.acl_entries_max:
            raise ZkError(ERR.INVALIDACL, "too many ACL entries")
        return SetACLRequest(path, acls.fixup(record.acl, ctx.identities), record.version)
    if op == OP.check:
        assert isinstance(record, CheckVersionRequest)
        return record
    raise AssertionError(f"op {op} is not a write")


def _prep_create(op: int, record: Any, ctx: PrepContext) -> Any:
    flags = record.flags
    # createContainer keeps its flags: the op makes the node a container, a sequential flag
    # still appends the counter (ZooKeeper 3.8 does both)
    if flags not in _CREATE_FLAGS:
        raise ZkError(ERR.BADARGUMENTS, f"invalid create flags {flags}")
    if op == OP.createTTL:
        assert isinstance(record, CreateTTLRequest)
        if not ctx.extended_types_enabled:
            raise ZkError(ERR.UNIMPLEMENTED, "TTL nodes are disabled (extendedTypesEnabled)")
        if flags not in _TTL_FLAGS or not 0 < record.ttl <= TTL_MS_MAX:
            raise ZkError(ERR.BADARGUMENTS, f"invalid TTL {record.ttl} with flags {flags}")
    elif flags in _TTL_FLAGS:
        raise ZkError(ERR.BADARGUMENTS, "TTL flags need the createTTL operation")
    elif flags == FLAG.CONTAINER and op != OP.createContainer:
        flags = FLAG.PERSISTENT  # ZooKeeper 3.8 logs a plain create for this
    path = record.path or ""
    if not path:
        raise ZkError(ERR.MARSHALLINGERROR, "empty path")  # as ZooKeeper 3.8 answers
    if "/" not in path or "\0" in path:
        raise ZkError(ERR.BADARGUMENTS, f"invalid path {path!r}")
    _check_path_size(path, ctx.limits)
    _check_data(record.data, ctx.limits)
    if record.acl is not None and len(record.acl) > ctx.limits.acl_entries_max:
        raise ZkError(ERR.INVALIDACL, "too many ACL entries")
    acl = acls.fixup(record.acl, ctx.identities)
    if acl is record.acl and flags == record.flags:
        return record  # nothing to change: the request's own bytes can be logged
    if op == OP.createTTL:
        return CreateTTLRequest(path, record.data, acl, flags, record.ttl)
    return CreateRequest(path, record.data, acl, flags)
