"""Snapshots: damage anywhere is a JuteDecodeError, never another exception or a wrong tree."""

from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zoolog.coord import snapshot
from zoolog.coord.acl import OPEN_ACL_UNSAFE
from zoolog.coord.datatree import CoordState
from zoolog.coord.txn import Txn
from zoolog.errors import JuteDecodeError
from zoolog.protocol.zk._generated.jute_records import (
    ACL,
    CreateRequest,
    CreateSessionTxn,
    Id,
)
from zoolog.protocol.zk.opcodes import OpCode


def sample_state() -> CoordState:
    state = CoordState()
    txns = [Txn(9, 0, 1, 5, OpCode.createSession, (), CreateSessionTxn(10_000))]
    digest = [ACL(31, Id("digest", "u:h"))]
    for i, (path, acl, flags) in enumerate([
        ("/a", list(OPEN_ACL_UNSAFE), 0), ("/a/b", digest, 0), ("/a/e", digest, 1),
        ("/q", list(OPEN_ACL_UNSAFE), 0), ("/q/n-", list(OPEN_ACL_UNSAFE), 2),
    ]):
        txns.append(Txn(9, i, i + 2, 5, OpCode.create, (), CreateRequest(path, b"x", acl, flags)))
    for txn in txns:
        state.apply(txn)
    return state


def with_crc(body: bytes) -> bytes:
    return body + struct.pack(">I", zlib.crc32(body))


def test_round_trip_shares_equal_acl_lists() -> None:
    state = sample_state()
    decoded = snapshot.decode(snapshot.encode(state))
    assert snapshot.encode(decoded) == snapshot.encode(state)
    assert decoded.nodes["/a/b"].acl is decoded.nodes["/a/e"].acl
    assert decoded.sessions[9].ephemerals == {"/a/e"}


@settings(deadline=None)
@given(st.data())
def test_truncated_snapshots_fail_cleanly(data: st.DataObject) -> None:
    body = snapshot.encode(sample_state())[:-4]
    cut = data.draw(st.integers(0, len(body) - 1))
    with pytest.raises(JuteDecodeError):
        snapshot.decode(with_crc(body[:cut]))


@settings(deadline=None)
@given(st.data())
def test_altered_snapshots_fail_cleanly_or_decode_to_a_consistent_tree(
    data: st.DataObject,
) -> None:
    # with a matching checksum an altered byte may still spell a valid snapshot: then the
    # tree it gives must itself survive a round trip; no other exception may escape
    encoded = snapshot.encode(sample_state())
    body = bytearray(encoded[:-4])
    at = data.draw(st.integers(0, len(body) - 1))
    body[at] ^= data.draw(st.integers(1, 255))
    try:
        state = snapshot.decode(with_crc(bytes(body)))
    except JuteDecodeError:
        return
    again = snapshot.encode(state)
    assert snapshot.encode(snapshot.decode(again)) == again


def test_a_checksum_mismatch_is_refused() -> None:
    encoded = snapshot.encode(sample_state())
    with pytest.raises(JuteDecodeError):
        snapshot.decode(encoded[:-1] + bytes([encoded[-1] ^ 1]))
