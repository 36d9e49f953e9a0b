"""The sans-I/O server connection: framing, the optional readOnly byte, 4lw, and garbage."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zoolog.errors import RemoteProtocolError
from zoolog.protocol.zk._generated.jute_records import (
    ConnectRequest,
    CreateRequest,
    GetDataRequest,
    MultiHeader,
)
from zoolog.protocol.zk.connection import (
    Connect,
    FourLetterWord,
    MisplacedOp,
    Request,
    ServerConnection,
    UnknownOp,
)
from zoolog.protocol.zk.opcodes import OpCode


def frame(body: bytes) -> bytes:
    return struct.pack(">i", len(body)) + body


def connect_frame(readonly_byte: bool = True) -> bytes:
    body = ConnectRequest(0, 0, 10_000, 0, bytes(16), False).to_bytes()
    return frame(body if readonly_byte else body[:-1])


def request_frame(xid: int, op: int, record: object | None = None) -> bytes:
    body = struct.pack(">ii", xid, op) + (record.to_bytes() if record is not None else b"")
    return frame(body)


def test_connect_with_and_without_readonly_byte() -> None:
    for with_byte in (True, False):
        conn = ServerConnection(1 << 20)
        [event] = conn.receive_data(connect_frame(with_byte))
        assert isinstance(event, Connect) and event.readonly_byte_present is with_byte


def test_byte_at_a_time_delivery_yields_the_same_events() -> None:
    stream = connect_frame() + request_frame(1, OpCode.getData, GetDataRequest("/a", True))
    conn = ServerConnection(1 << 20)
    events = []
    for i in range(len(stream)):
        events += conn.receive_data(stream[i : i + 1])
    assert isinstance(events[0], Connect)
    assert events[1] == Request(1, OpCode.getData, GetDataRequest("/a", True))


def test_four_letter_word_only_before_the_handshake() -> None:
    conn = ServerConnection(1 << 20)
    assert conn.receive_data(b"ruok") == [FourLetterWord("ruok")]
    connected = ServerConnection(1 << 20)
    connected.receive_data(connect_frame())
    with pytest.raises(RemoteProtocolError):
        connected.receive_data(b"ruok")  # now it is a (huge) length prefix


def test_unknown_opcode_is_an_event_not_an_error() -> None:
    conn = ServerConnection(1 << 20)
    conn.receive_data(connect_frame())
    assert conn.receive_data(request_frame(3, 999)) == [UnknownOp(3, 999)]


def test_oversized_and_negative_lengths_close_the_connection() -> None:
    for length in (-5, (1 << 20) + 1):
        conn = ServerConnection(1 << 20)
        conn.receive_data(connect_frame())
        with pytest.raises(RemoteProtocolError):
            conn.receive_data(struct.pack(">i", length))


def test_multi_decoding_and_forbidden_ops() -> None:
    ops = bytearray()
    MultiHeader(OpCode.create, False, -1).write(ops)
    CreateRequest("/x", b"", [], 0).write(ops)
    MultiHeader(-1, True, -1).write(ops)
    conn = ServerConnection(1 << 20)
    conn.receive_data(connect_frame())
    [event] = conn.receive_data(frame(struct.pack(">ii", 5, OpCode.multi) + bytes(ops)))
    assert isinstance(event, Request) and event.record == [(1, CreateRequest("/x", b"", [], 0))]
    bad = bytearray()
    MultiHeader(OpCode.getData, False, -1).write(bad)
    GetDataRequest("/x", False).write(bad)
    MultiHeader(-1, True, -1).write(bad)
    # a read inside multi is decoded as a misplaced op (ZooKeeper answers MARSHALLINGERROR and
    # keeps the connection), not as a protocol error
    [event] = conn.receive_data(frame(struct.pack(">ii", 6, OpCode.multi) + bytes(bad)))
    assert isinstance(event, Request) and event.record == MisplacedOp(OpCode.getData)
    [event] = conn.receive_data(frame(struct.pack(">ii", 7, OpCode.multiRead) + bytes(ops)))
    assert isinstance(event, Request) and event.record == MisplacedOp(OpCode.create)
    with pytest.raises(RemoteProtocolError):  # a truncated sub-record still closes
        conn.receive_data(frame(struct.pack(">ii", 8, OpCode.multi) + bytes(ops[:-6])))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.booleans())
def test_garbage_only_raises_remote_protocol_error(data: bytes, connected: bool) -> None:
    conn = ServerConnection(4096)
    if connected:
        conn.receive_data(connect_frame())
    with contextlib.suppress(RemoteProtocolError):
        conn.receive_data(data)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, OpCode.whoAmI), st.binary(max_size=60))
def test_random_bodies_for_every_opcode(op: int, body: bytes) -> None:
    conn = ServerConnection(4096)
    conn.receive_data(connect_frame())
    with contextlib.suppress(RemoteProtocolError):
        conn.receive_data(frame(struct.pack(">ii", 1, op) + body))
