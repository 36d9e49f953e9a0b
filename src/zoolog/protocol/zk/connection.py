"""The server side of one ZooKeeper client connection, sans-I/O: bytes in, events out.

States and legal transitions:

    AWAIT_CONNECT --(4 bytes spelling a four-letter word)--> CLOSED   event FourLetterWord
    AWAIT_CONNECT --(ConnectRequest frame)----------------> CONNECTED event Connect
    CONNECTED     --(request frame)-----------------------> CONNECTED event Request
    CONNECTED     --(frame with an unknown opcode)---------> CONNECTED event UnknownOp
    any           --(length < 0 or > frame_bytes_max, undecodable record)--> RemoteProtocolError

`receive_data` never raises anything but RemoteProtocolError (the caller closes the connection);
the encoders build whole frames (length prefix included) for the caller to write.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from zoolog.errors import JuteDecodeError, RemoteProtocolError
from zoolog.protocol.zk._generated.jute_records import (
    AddWatchRequest,
    AuthPacket,
    CheckVersionRequest,
    CheckWatchesRequest,
    ConnectRequest,
    ConnectResponse,
    CreateRequest,
    CreateTTLRequest,
    DeleteRequest,
    ErrorResponse,
    ExistsRequest,
    GetACLRequest,
    GetAllChildrenNumberRequest,
    GetChildren2Request,
    GetChildrenRequest,
    GetDataRequest,
    GetEphemeralsRequest,
    GetSASLRequest,
    MultiHeader,
    ReconfigRequest,
    RemoveWatchesRequest,
    SetACLRequest,
    SetDataRequest,
    SetWatches,
    SetWatches2,
    SyncRequest,
)
from zoolog.protocol.zk.opcodes import OP

FOUR_LETTER_WORDS = frozenset(
    (
        "ruok", "isro", "srvr", "stat", "mntr", "cons", "conf", "envi", "wchs", "wchc", "wchp",
        "dump", "dirs", "crst", "srst",
    )
)
_FOUR_LETTER_INTS = {
    struct.unpack(">i", word.encode("ascii"))[0]: word for word in FOUR_LETTER_WORDS
}

REQUEST_RECORDS: dict[int, Any] = {
    OP.create: CreateRequest,
    OP.create2: CreateRequest,
    OP.createContainer: CreateRequest,
    OP.createTTL: CreateTTLRequest,
    OP.delete: DeleteRequest,
    OP.exists: ExistsRequest,
    OP.getData: GetDataRequest,
    OP.setData: SetDataRequest,
    OP.getACL: GetACLRequest,
    OP.setACL: SetACLRequest,
    OP.getChildren: GetChildrenRequest,
    OP.getChildren2: GetChildren2Request,
    OP.sync: SyncRequest,
    OP.check: CheckVersionRequest,
    OP.reconfig: ReconfigRequest,
    OP.checkWatches: CheckWatchesRequest,
    OP.removeWatches: RemoveWatchesRequest,
    OP.auth: AuthPacket,
    OP.setWatches: SetWatches,
    OP.setWatches2: SetWatches2,
    OP.sasl: GetSASLRequest,
    OP.getEphemerals: GetEphemeralsRequest,
    OP.getAllChildrenNumber: GetAllChildrenNumberRequest,
    OP.addWatch: AddWatchRequest,
    OP.ping: None,
    OP.closeSession: None,
    OP.whoAmI: None,
}

MULTI_WRITE_OPS = frozenset(
    (OP.create, OP.create2, OP.createContainer, OP.createTTL, OP.delete,
     OP.setData, OP.check)
)
MULTI_READ_OPS = frozenset((OP.getData, OP.getChildren))
_BODY_KEPT_OPS = frozenset(
    (OP.setData, OP.delete, OP.create, OP.create2, OP.createContainer, OP.createTTL)
)

_LEN = struct.Struct(">i")
_HEADER = struct.Struct(">ii")
_REPLY_HEADER = struct.Struct(">iiqi")  # frame length + ReplyHeader{xid, zxid, err}
_MULTI_END = MultiHeader(-1, True, -1).to_bytes()


@dataclass(slots=True)
class FourLetterWord:
    word: str


@dataclass(slots=True)
class Connect:
    request: ConnectRequest
    readonly_byte_present: bool


@dataclass(slots=True)
class Request:
    xid: int
    op: int
    record: Any
    """The request record; for multi and multiRead a list of (op, record)."""
    body: bytes | None = None
    """The record's bytes as received, for the writes whose logged txn body is usually the
    request record itself (creates, setData, delete): the log reuses them instead of encoding
    again when prep passes the record through unchanged."""


@dataclass(frozen=True, slots=True)
class MisplacedOp:
    """The record of a multi (or multiRead) holding an op of the wrong kind. ZooKeeper stops
    decoding there and answers MARSHALLINGERROR, keeping the connection."""

    op: int


@dataclass(slots=True)
class UnknownOp:
    xid: int
    op: int


Event = FourLetterWord | Connect | Request | UnknownOp


class ServerConnection:
    """Frames and decodes what one client sends. Encoders are module functions below."""

    __slots__ = ("_buffer", "connected", "frame_bytes_max")

    def __init__(self, frame_bytes_max: int) -> None:
        self.frame_bytes_max = frame_bytes_max
        self._buffer = bytearray()
        self.connected = False

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes; return the events of every complete frame."""
        buffer = self._buffer
        buffer += data
        events: list[Event] = []
        pos = 0
        end = len(buffer)
        limit = self.frame_bytes_max
        try:
            while end - pos >= 4:
                length = _LEN.unpack_from(buffer, pos)[0]
                if not self.connected and pos == 0 and length in _FOUR_LETTER_INTS:
                    events.append(FourLetterWord(_FOUR_LETTER_INTS[length]))
                    pos = end
                    break
                if length < 0 or length > limit:
                    raise RemoteProtocolError(f"frame length {length} outside 0..{limit}")
                if end - pos - 4 < length:
                    break
                frame = memoryview(buffer)[pos + 4 : pos + 4 + length]
                pos += 4 + length
                try:
                    events.append(self._decode(frame))
                finally:
                    frame.release()
        finally:
            if pos:
                del buffer[:pos]
        return events

    def _decode(self, frame: memoryview) -> Event:
        if not self.connected:
            # 3.8 clients append the readOnly byte by hand; older ones omit it.
            try:
                request, pos = ConnectRequest.read(frame, 0)
                readonly_present = True
            except JuteDecodeError:
                try:
                    request, pos = ConnectRequest.read(bytes(frame) + b"\0", 0)
                except JuteDecodeError as exc:
                    raise RemoteProtocolError(f"bad ConnectRequest: {exc}") from exc
                readonly_present = False
                pos -= 1
            if pos != len(frame):
                raise RemoteProtocolError(f"{len(frame) - pos} trailing bytes after connect")
            self.connected = True
            return Connect(request, readonly_present)
        if len(frame) < 8:
            raise RemoteProtocolError(f"request frame of {len(frame)} bytes has no header")
        xid, op = _HEADER.unpack_from(frame, 0)
        if op == OP.multi or op == OP.multiRead:
            allowed = MULTI_WRITE_OPS if op == OP.multi else MULTI_READ_OPS
            return Request(xid, op, _decode_multi(frame, allowed))
        if op not in REQUEST_RECORDS:
            return UnknownOp(xid, op)
        record_type = REQUEST_RECORDS[op]
        if record_type is None:
            return Request(xid, op, None)
        try:
            record, pos = record_type.read(frame, 8)
        except JuteDecodeError as exc:
            raise RemoteProtocolError(f"op {op}: {exc}") from exc
        if pos != len(frame):
            raise RemoteProtocolError(f"op {op}: {len(frame) - pos} bytes after the record")
        if op in _BODY_KEPT_OPS:
            return Request(xid, op, record, bytes(frame[8:]))
        return Request(xid, op, record)


def _decode_multi(
    frame: memoryview, allowed: frozenset[int]
) -> list[tuple[int, Any]] | MisplacedOp:
    ops: list[tuple[int, Any]] = []
    pos = 8
    try:
        while True:
            header, pos = MultiHeader.read(frame, pos)
            if header.done:
                break
            if header.type not in allowed:
                return MisplacedOp(header.type)
            record, pos = REQUEST_RECORDS[header.type].read(frame, pos)
            ops.append((header.type, record))
    except JuteDecodeError as exc:
        raise RemoteProtocolError(f"multi: {exc}") from exc
    if pos != len(frame):
        raise RemoteProtocolError(f"multi: {len(frame) - pos} bytes after the last op")
    return ops


def encode_reply(xid: int, zxid: int, err: int, record: Any = None) -> bytes:
    """A whole reply frame; the body is sent only when err == 0, as ZooKeeper does. `record`
    is a jute record or its encoding (bytes, e.g. a packed Stat)."""
    if err or record is None:
        return _REPLY_HEADER.pack(16, xid, zxid, err)
    body: bytes = record if isinstance(record, bytes) else record.to_bytes()
    return _REPLY_HEADER.pack(16 + len(body), xid, zxid, 0) + body


def encode_raw_reply(xid: int, zxid: int, body: bytes, err: int = 0) -> bytes:
    """A reply frame with `body` sent whatever `err` is (ZooKeeper does so for a failed sasl
    request: its header and a null token)."""
    return _REPLY_HEADER.pack(16 + len(body), xid, zxid, err) + body


def encode_event(event_type: int, state: int, path: str) -> bytes:
    """A watch notification: ReplyHeader{-1, -1, 0} + WatcherEvent."""
    encoded = path.encode("utf-8")
    body = struct.pack(">iii", event_type, state, len(encoded)) + encoded
    return _REPLY_HEADER.pack(16 + len(body), -1, -1, 0) + body


def encode_connect_response(response: ConnectResponse, with_readonly_byte: bool) -> bytes:
    body = response.to_bytes()
    if not with_readonly_byte:
        body = body[:-1]
    return _LEN.pack(len(body)) + body


def encode_multi_body(results: list[tuple[int, int, Any]]) -> bytes:
    """MultiHeader-framed results: (op, err, record) each, the record a jute record or its
    encoding; err != 0 becomes an error result."""
    out = bytearray()
    for op, err, record in results:
        if err:
            MultiHeader(-1, False, err).write(out)
            ErrorResponse(err).write(out)
        else:
            MultiHeader(op, False, 0).write(out)
            if isinstance(record, bytes):
                out += record
            elif record is not None:
                record.write(out)
    out += _MULTI_END
    return bytes(out)
