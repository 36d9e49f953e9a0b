"""Binary encoding of Raft messages between peers (pure: bytes in, messages out).

Frame: `u32 length` + payload. Payload: a fixed header
`type b, to q, frm q, term q, log_term q, index q, commit q, reject b, reject_hint q`, then
`u32 context length + context`, `u32 entry count` + entries (`term q, index q, kind b,
u32 data length, data`), then `b has_snapshot` and, if set, the snapshot (`index q, term q,
u32 voters, u32 learners, ids q..., u32 data length, data`).
"""

from __future__ import annotations

import struct

from zoolog.consensus.types import ConfState, Entry, EntryKind, Message, MsgType, Snapshot
from zoolog.errors import RemoteProtocolError

_HEAD = struct.Struct(">bqqqqqqbq")
_U32 = struct.Struct(">I")
_ENTRY = struct.Struct(">qqbI")
_SNAP = struct.Struct(">qqII")

FRAME_BYTES_MAX = 64 << 20


def encode(message: Message) -> bytes:
    out = bytearray(4)
    out += _HEAD.pack(message.type, message.to, message.frm, message.term, message.log_term,
                      message.index, message.commit, message.reject, message.reject_hint)
    out += _U32.pack(len(message.context))
    out += message.context
    out += _U32.pack(len(message.entries))
    for entry in message.entries:
        out += _ENTRY.pack(entry.term, entry.index, entry.kind, len(entry.data))
        out += entry.data
    snap = message.snapshot
    if snap is None:
        out.append(0)
    else:
        out.append(1)
        voters, learners = sorted(snap.conf.voters), sorted(snap.conf.learners)
        out += _SNAP.pack(snap.index, snap.term, len(voters), len(learners))
        out += struct.pack(f">{len(voters) + len(learners)}q", *voters, *learners)
        out += _U32.pack(len(snap.data))
        out += snap.data
    _U32.pack_into(out, 0, len(out) - 4)
    return bytes(out)


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def take(self, layout: struct.Struct) -> tuple[int, ...]:
        if self.pos + layout.size > len(self.buf):
            raise RemoteProtocolError("truncated raft message")
        values = layout.unpack_from(self.buf, self.pos)
        self.pos += layout.size
        return tuple(values)

    def raw(self, size: int) -> bytes:
        if size < 0 or self.pos + size > len(self.buf):
            raise RemoteProtocolError("truncated raft message")
        value = self.buf[self.pos : self.pos + size]
        self.pos += size
        return value


def decode(payload: bytes) -> Message:
    """Decode one frame payload; anything malformed raises RemoteProtocolError."""
    reader = _Reader(payload)
    kind, to, frm, term, log_term, index, commit, reject, hint = reader.take(_HEAD)
    try:
        msg_type = MsgType(kind)
    except ValueError as exc:
        raise RemoteProtocolError(f"unknown raft message type {kind}") from exc
    context = reader.raw(reader.take(_U32)[0])
    (count,) = reader.take(_U32)
    if count > len(payload):
        raise RemoteProtocolError("bad entry count")
    entries = []
    for _ in range(count):
        e_term, e_index, e_kind, size = reader.take(_ENTRY)
        try:
            entry_kind = EntryKind(e_kind)
        except ValueError as exc:
            raise RemoteProtocolError(f"unknown entry kind {e_kind}") from exc
        entries.append(Entry(e_term, e_index, reader.raw(size), entry_kind))
    snapshot = None
    if reader.raw(1) == b"\x01":
        s_index, s_term, n_voters, n_learners = reader.take(_SNAP)
        if n_voters + n_learners > len(payload):
            raise RemoteProtocolError("bad member count")
        ids = struct.unpack(f">{n_voters + n_learners}q", reader.raw(8 * (n_voters + n_learners)))
        data = reader.raw(reader.take(_U32)[0])
        snapshot = Snapshot(s_index, s_term,
                            ConfState(frozenset(ids[:n_voters]), frozenset(ids[n_voters:])),
                            data)
    if reader.pos != len(payload):
        raise RemoteProtocolError("trailing bytes in raft message")
    return Message(msg_type, to, frm, term, log_term, index, tuple(entries), commit,
                   bool(reject), hint, snapshot, context)


class FrameSplitter:
    """Accumulates bytes and yields complete frame payloads."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self._buffer
        buffer += data
        frames = []
        pos = 0
        while len(buffer) - pos >= 4:
            (length,) = _U32.unpack_from(buffer, pos)
            if length > FRAME_BYTES_MAX:
                raise RemoteProtocolError(f"raft frame of {length} bytes")
            if len(buffer) - pos - 4 < length:
                break
            frames.append(bytes(buffer[pos + 4 : pos + 4 + length]))
            pos += 4 + length
        del buffer[:pos]
        return frames
