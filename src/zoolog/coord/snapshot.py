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

from zoolog.coord import acl as acls
from zoolog.coord.datatree import CoordState, Node, Session
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
        out += acls.vector_bytes(node.acl)
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


def _read_acls(buf: bytes, pos: int, shared: dict[bytes, list[ACL]]) -> tuple[list[ACL], int]:
    """A node's ACL vector at `pos`, and the position after it. Nodes share a few distinct
    lists (ACL lists are values): equal vectors decode to one list object, found by their
    bytes."""
    if pos + 4 > len(buf):
        raise JuteDecodeError("snapshot truncated")
    (count,) = _INT.unpack_from(buf, pos)
    if count < 0 or count > len(buf):
        raise JuteDecodeError("snapshot ACL count out of range")
    end = pos + 4
    for _ in range(count):  # perms, then the scheme and id strings
        end += 4
        for _field in range(2):
            if end + 4 > len(buf):
                raise JuteDecodeError("snapshot truncated")
            (length,) = _INT.unpack_from(buf, end)
            end += 4 + max(length, 0)
    if end > len(buf):
        raise JuteDecodeError("snapshot truncated")
    key = buf[pos:end]
    acl_list = shared.get(key)
    if acl_list is None:
        acl_list = []
        read_pos = pos + 4
        for _ in range(count):
            acl, read_pos = ACL.read(buf, read_pos)
            acl_list.append(acl)
        shared[key] = acl_list
    return acl_list, end


def _read_nodes(state: CoordState, body: bytes, pos: int, node_count: int) -> int:
    """Decode `node_count` nodes from `body` at `pos` into `state` (the hot loop of a
    restart: plain local reads, equal ACL vectors decoded once). Returns the end position."""
    nodes = state.nodes
    sessions = state.sessions
    shared_acls: dict[bytes, list[ACL]] = {}
    unpack_int = _INT.unpack_from
    unpack_stat = _NODE_STAT.unpack_from
    stat_size = _NODE_STAT.size
    end = len(body)
    for _ in range(node_count):
        (length,) = unpack_int(body, pos)
        pos += 4
        if length < 0 or pos + length > end:
            raise JuteDecodeError("snapshot node without a path")
        path = body[pos : pos + length].decode("utf-8", "surrogatepass")
        pos += length
        (length,) = unpack_int(body, pos)
        pos += 4
        if length == -1:
            data = None
        elif length < 0 or pos + length > end:
            raise JuteDecodeError("snapshot truncated")
        else:
            data = body[pos : pos + length]
            pos += length
        acl_list, pos = _read_acls(body, pos, shared_acls)
        czxid, mzxid, ctime, mtime, version_, cversion, aversion, owner, pzxid = unpack_stat(
            body, pos
        )
        pos += stat_size
        node = Node(data, acl_list, czxid, ctime, owner)
        node.mzxid, node.mtime, node.pzxid = mzxid, mtime, pzxid
        node.version, node.cversion, node.aversion = version_, cversion, aversion
        if path != "/":
            cut = path.rfind("/")
            parent = nodes.get(path[:cut] if cut > 0 else "/")
            if parent is None:
                raise JuteDecodeError(f"snapshot node {path} before its parent")
            parent.children.add(path[cut + 1 :])
        nodes[path] = node
        if owner > 0:
            session = sessions.get(owner)
            if session is not None:
                session.ephemerals.add(path)
    return pos


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
    if session_count < 0:
        raise JuteDecodeError(f"snapshot with {session_count} sessions")
    for _ in range(session_count):
        session_id, timeout_ms = reader.take(_SESSION)
        state.sessions[session_id] = Session(session_id, timeout_ms)
    (node_count,) = reader.take(_INT)
    if node_count < 1:  # the root at least
        raise JuteDecodeError(f"snapshot with {node_count} nodes")
    try:
        reader.pos = _read_nodes(state, body, reader.pos, node_count)
    except (struct.error, UnicodeDecodeError) as exc:  # a length past the end, a bad path
        raise JuteDecodeError(f"snapshot damaged: {exc}") from exc
    if reader.pos != len(body):
        raise JuteDecodeError("trailing bytes in snapshot")
    return state
