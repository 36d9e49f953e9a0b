"""Snapshot encoding of `CoordState`: the whole tree and session table as bytes, and back.

Pure: the server layer decides when to snapshot and writes the bytes to disk. The encoding is
jute-style big-endian: a magic and format version, the last applied zxid, the sessions, then
every node parents-first (path, data, ACL, Stat counters), then a CRC-32 of everything before
it. Children sets and each session's ephemerals are derived again on load.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

from zoolog.coord.datatree import CoordState, Node, Session
from zoolog.coord.paths import name_of, parent_of
from zoolog.coord.txn import acl_vector_bytes
from zoolog.errors import JuteDecodeError
from zoolog.limits import Limits
from zoolog.protocol.zk._generated.jute_records import ACL

MAGIC = b"ZLSN"
FORMAT_VERSION = 1

_HEAD = struct.Struct(">4siqi")  # magic, version, last_zxid, session count
_SESSION = struct.Struct(">qi")
# czxid mzxid ctime mtime version cversion aversion ephemeral_owner pzxid
_NODE_STAT = struct.Struct(">qqqqiiiqq")
_INT = struct.Struct(">i")
_CRC = struct.Struct(">I")


def _put_bytes(out: bytearray, value: bytes | None) -> None:
    if value is None:
        out += _INT.pack(-1)
    else:
        out += _INT.pack(len(value))
        out += value


def encode(state: CoordState) -> bytes:
    out = bytearray(_HEAD.pack(MAGIC, FORMAT_VERSION, state.last_zxid, len(state.sessions)))
    for session in sorted(state.sessions.values(), key=lambda s: s.session_id):
        out += _SESSION.pack(session.session_id, session.timeout_ms)
    # the tree's own order is parents-first: a node is always created after its parent, and
    # a parent cannot go (or come back, in a failed multi's undo) before its children
    out += _INT.pack(len(state.nodes))
    for path, node in state.nodes.items():
        _put_bytes(out, path.encode("utf-8", "surrogatepass"))
        _put_bytes(out, node.data)
        out += acl_vector_bytes(node.acl)
        out += _NODE_STAT.pack(
            node.czxid, node.mzxid, node.ctime, node.mtime, node.version, node.cversion,
            node.aversion, node.ephemeral_owner, node.pzxid,
        )
    out += _CRC.pack(zlib.crc32(out))
    return bytes(out)


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def take(self, st: struct.Struct) -> tuple[Any, ...]:
        if self.pos + st.size > len(self.buf):
            raise JuteDecodeError("snapshot truncated")
        values = st.unpack_from(self.buf, self.pos)
        self.pos += st.size
        return tuple(values)

    def bytes_or_none(self) -> bytes | None:
        (length,) = self.take(_INT)
        if length == -1:
            return None
        if length < 0 or self.pos + length > len(self.buf):
            raise JuteDecodeError("snapshot truncated")
        value = self.buf[self.pos : self.pos + length]
        self.pos += length
        return value


def decode(buf: bytes, limits: Limits | None = None) -> CoordState:
    """Rebuild the state; raise JuteDecodeError on any damage (bad magic, CRC, truncation)."""
    if len(buf) < _HEAD.size + _CRC.size:
        raise JuteDecodeError("snapshot too short")
    (crc,) = _CRC.unpack_from(buf, len(buf) - _CRC.size)
    body = buf[: len(buf) - _CRC.size]
    if zlib.crc32(body) != crc:
        raise JuteDecodeError("snapshot checksum mismatch")
    reader = _Reader(body)
    magic, version, last_zxid, session_count = reader.take(_HEAD)
    if magic != MAGIC or version != FORMAT_VERSION:
        raise JuteDecodeError(f"not a zoolog snapshot (magic {magic!r}, version {version})")
    state = CoordState(limits)
    state.nodes.clear()
    state.last_zxid = last_zxid
    for _ in range(session_count):
        session_id, timeout_ms = reader.take(_SESSION)
        state.sessions[session_id] = Session(session_id, timeout_ms)
    (node_count,) = reader.take(_INT)
    for _ in range(node_count):
        raw_path = reader.bytes_or_none()
        if raw_path is None:
            raise JuteDecodeError("snapshot node without a path")
        path = raw_path.decode("utf-8", "surrogatepass")
        data = reader.bytes_or_none()
        (acl_count,) = reader.take(_INT)
        acl_list = []
        for _ in range(acl_count):
            acl, reader.pos = ACL.read(body, reader.pos)
            acl_list.append(acl)
        czxid, mzxid, ctime, mtime, version_, cversion, aversion, owner, pzxid = reader.take(
            _NODE_STAT
        )
        node = Node(data, acl_list, czxid, ctime, owner)
        node.mzxid, node.mtime, node.pzxid = mzxid, mtime, pzxid
        node.version, node.cversion, node.aversion = version_, cversion, aversion
        if path != "/":
            parent = state.nodes.get(parent_of(path))
            if parent is None:
                raise JuteDecodeError(f"snapshot node {path} before its parent")
            parent.children.add(name_of(path))
        state.nodes[path] = node
        if owner > 0:
            session = state.sessions.get(owner)
            if session is not None:
                session.ephemerals.add(path)
    if reader.pos != len(body):
        raise JuteDecodeError("trailing bytes in snapshot")
    return state
