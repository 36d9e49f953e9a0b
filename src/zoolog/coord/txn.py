"""Transactions: what the coordination service logs, replicates and applies.

A `Txn` is a client write after the prep step: stamped with the session, the client's cxid, the
zxid it will carry, the leader's wall-clock time and the identities the session had proven, with
its stateless checks (flags, TTL, ACL syntax, sizes) already passed. State-dependent checks
(existence, versions, permissions) happen in `apply`, deterministically, so every replica that
applies the same log reaches the same tree and the same reply.

Wire layout (jute, big-endian), used by the transaction log and the replicated log alike:
`TxnHeader{clientId, cxid, zxid, time, type}` + `vector<Id>` identities + the body, where the
body is the request record of `type` (CreateRequest, DeleteRequest, ...), a sequence of
`int op + record` for multi, `CreateSessionTxn{timeOut}` for createSession, nothing for
closeSession and `ErrorResponse{err}` for a write that prep already failed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, Union

from zoolog.coord import acl as acls
from zoolog.errors import JuteDecodeError
from zoolog.protocol.zk._generated.jute_records import (
    CheckVersionRequest,
    CreateRequest,
    CreateSessionTxn,
    CreateTTLRequest,
    DeleteRequest,
    ErrorResponse,
    Id,
    SetACLRequest,
    SetDataRequest,
    TxnHeader,
    _write_buffer,
    _write_ustring,
)
from zoolog.protocol.zk.opcodes import OP

SubOp = CreateRequest | CreateTTLRequest | DeleteRequest | SetDataRequest | CheckVersionRequest
Body = Union[
    CreateRequest,
    CreateTTLRequest,
    DeleteRequest,
    SetDataRequest,
    SetACLRequest,
    CheckVersionRequest,
    CreateSessionTxn,
    ErrorResponse,
    "MultiBody",
    None,
]

_BODY_TYPES: dict[int, Any] = {
    OP.create: CreateRequest,
    OP.create2: CreateRequest,
    OP.createContainer: CreateRequest,
    OP.createTTL: CreateTTLRequest,
    OP.delete: DeleteRequest,
    OP.deleteContainer: DeleteRequest,
    OP.setData: SetDataRequest,
    OP.setACL: SetACLRequest,
    OP.check: CheckVersionRequest,
    OP.createSession: CreateSessionTxn,
    OP.error: ErrorResponse,
}

MULTI_SUB_OPS = frozenset(
    (
        OP.create,
        OP.create2,
        OP.createContainer,
        OP.createTTL,
        OP.delete,
        OP.setData,
        OP.check,
    )
)

_INT = struct.Struct(">i")
_TXN_HEADER = struct.Struct(">qiqqi")  # TxnHeader: clientId, cxid, zxid, time, type
_IDENTITIES_CACHE: dict[tuple[tuple[str, str], ...], bytes] = {}


def _identities_bytes(identities: tuple[tuple[str, str], ...]) -> bytes:
    """The encoded identity vector; the few distinct ones are encoded once."""
    encoded = _IDENTITIES_CACHE.get(identities)
    if encoded is None:
        out = bytearray(_INT.pack(len(identities)))
        for scheme, ident in identities:
            Id(scheme=scheme, id=ident).write(out)
        encoded = bytes(out)
        if len(_IDENTITIES_CACHE) >= 4096:
            _IDENTITIES_CACHE.clear()
        _IDENTITIES_CACHE[identities] = encoded
    return encoded


def _write_create(out: bytearray, record: CreateRequest) -> None:
    """`CreateRequest.write`, with the ACL vector encoded once per list (the hot write)."""
    _write_ustring(out, record.path)
    _write_buffer(out, record.data)
    out += acls.vector_bytes(record.acl)
    out += _INT.pack(record.flags)


@dataclass(slots=True)
class MultiBody:
    ops: list[tuple[int, SubOp]] = field(default_factory=list)


@dataclass(slots=True)
class Txn:
    session_id: int
    cxid: int
    zxid: int
    time_ms: int
    op: int
    identities: tuple[tuple[str, str], ...] = ()
    body: Body = None
    body_bytes: bytes | None = field(default=None, compare=False, repr=False)
    """`body`'s jute encoding when already known (the request bytes of a setData or delete,
    whose record prep passes through unchanged)."""

    def to_bytes(self) -> bytes:
        header = _TXN_HEADER.pack(self.session_id, self.cxid, self.zxid, self.time_ms, self.op)
        if self.body_bytes is not None:
            return header + _identities_bytes(self.identities) + self.body_bytes
        out = bytearray(header)
        out += _identities_bytes(self.identities)
        body = self.body
        if type(body) is CreateRequest:
            _write_create(out, body)
        elif isinstance(body, MultiBody):
            out += _INT.pack(len(body.ops))
            for op, record in body.ops:
                out += _INT.pack(op)
                record.write(out)
        elif body is not None:
            body.write(out)
        return bytes(out)

    @classmethod
    def from_bytes(cls, buf: bytes | memoryview) -> Txn:
        header, pos = TxnHeader.read(buf, 0)
        count, pos = _read_count(buf, pos)
        identities = []
        for _ in range(count):
            ident, pos = Id.read(buf, pos)
            identities.append((ident.scheme or "", ident.id or ""))
        op = header.type
        body: Body
        if op == OP.multi:
            n, pos = _read_count(buf, pos)
            ops: list[tuple[int, SubOp]] = []
            for _ in range(n):
                sub, pos = _read_int(buf, pos)
                sub_type = _BODY_TYPES.get(sub)
                if sub not in MULTI_SUB_OPS or sub_type is None:
                    raise JuteDecodeError(f"txn multi holds op {sub}")
                record, pos = sub_type.read(buf, pos)
                ops.append((sub, record))
            body = MultiBody(ops)
        elif op == OP.closeSession:
            body = None
        else:
            body_type = _BODY_TYPES.get(op)
            if body_type is None:
                raise JuteDecodeError(f"unknown txn type {op}")
            body, pos = body_type.read(buf, pos)
        if pos != len(buf):
            raise JuteDecodeError(f"{len(buf) - pos} trailing bytes after txn")
        return cls(header.clientId, header.cxid, header.zxid, header.time, op,
                   tuple(identities), body)


def _read_int(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    if pos + 4 > len(buf):
        raise JuteDecodeError("truncated txn")
    return _INT.unpack_from(buf, pos)[0], pos + 4


def _read_count(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    n, pos = _read_int(buf, pos)
    if n < 0 or n > len(buf) - pos:
        raise JuteDecodeError(f"bad count {n} in txn")
    return n, pos
