"""Txn bytes: the hot create encoding (ACL vectors encoded once per shared list) is byte for
byte the generic jute encoding, and every txn survives the round trip."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from zoolog.coord import acl as acls
from zoolog.coord.datatree import CoordState
from zoolog.coord.service import CoordService, ServiceConfig
from zoolog.coord.txn import Txn
from zoolog.protocol.zk._generated.jute_records import (
    ACL,
    AuthPacket,
    ConnectRequest,
    CreateRequest,
    Id,
    SetDataRequest,
    TxnHeader,
)
from zoolog.protocol.zk.connection import Request, ServerConnection
from zoolog.protocol.zk.opcodes import OpCode

texts = st.text(max_size=12)
acl_lists = st.lists(st.builds(ACL, st.integers(0, 31), st.builds(Id, texts, texts)),
                     max_size=3)
creates = st.builds(CreateRequest, texts, st.none() | st.binary(max_size=16), acl_lists,
                    st.integers(0, 6))
identities = st.lists(st.tuples(texts, texts), max_size=2).map(tuple)


@settings(deadline=None)
@given(creates, identities)
def test_create_txn_bytes_are_the_generic_jute_encoding(record: CreateRequest,
                                                        who: tuple[tuple[str, str], ...]) -> None:
    txn = Txn(7, 3, 9, 1234, OpCode.create, who, record)
    generic = bytearray(TxnHeader(7, 3, 9, 1234, OpCode.create).to_bytes())
    generic += len(who).to_bytes(4, "big", signed=True)
    for scheme, ident in who:
        Id(scheme, ident).write(generic)
    record.write(generic)
    assert txn.to_bytes() == bytes(generic)
    assert txn.to_bytes() == bytes(generic)  # again, from the cached ACL vector
    assert Txn.from_bytes(txn.to_bytes()) == txn


def test_fixup_result_is_remembered_per_list_and_identities() -> None:
    requested = [ACL(31, Id("auth", ""))]
    alice = (("ip", "127.0.0.1"), ("digest", "alice:x"))
    bob = (("ip", "127.0.0.1"), ("digest", "bob:y"))
    for_alice = acls.fixup(requested, alice)
    assert for_alice == [ACL(31, Id("digest", "alice:x"))]
    assert acls.fixup(requested, alice) is for_alice
    assert acls.fixup(requested, bob) == [ACL(31, Id("digest", "bob:y"))]
    equal_but_other = [ACL(31, Id("auth", ""))]
    assert acls.fixup(equal_but_other, alice) == for_alice


@settings(deadline=None)
@given(st.builds(SetDataRequest, texts, st.none() | st.binary(max_size=16),
                 st.integers(-(2**31), 2**31 - 1)))
def test_set_data_txn_from_the_received_bytes_is_the_encoded_txn(record: SetDataRequest) -> None:
    # what the decoder keeps (`Request.body`) is what encoding the record would give
    codec = ServerConnection(1 << 20)
    connect = ConnectRequest(0, 0, 10_000, 0, bytes(16), False).to_bytes()
    codec.receive_data(len(connect).to_bytes(4, "big") + connect)
    payload = struct.pack(">ii", 5, OpCode.setData) + record.to_bytes()
    [request] = codec.receive_data(len(payload).to_bytes(4, "big") + payload)
    assert isinstance(request, Request) and request.record == record
    kept = Txn(7, 5, 9, 1234, OpCode.setData, (("ip", "127.0.0.1"),), request.record,
               request.body)
    encoded = Txn(7, 5, 9, 1234, OpCode.setData, (("ip", "127.0.0.1"),), record)
    assert kept.to_bytes() == encoded.to_bytes()
    assert Txn.from_bytes(kept.to_bytes()) == encoded


@settings(deadline=None)
@given(st.sampled_from([OpCode.create, OpCode.create2, OpCode.createContainer]),
       st.sampled_from([0, 1, 2, 3, 4]), st.binary(max_size=16),
       st.sampled_from([[ACL(31, Id("world", "anyone"))], [ACL(1, Id("auth", ""))],
                        [ACL(3, Id("digest", "u:h")), ACL(3, Id("digest", "u:h"))]]))
def test_logged_create_is_the_encoded_prepped_txn(op: int, flags: int, data: bytes,
                                                  acl: list[ACL]) -> None:
    # whether the service logs the client's bytes (prep changed nothing) or encodes the
    # prepped record (auth expanded, duplicates dropped, container flag), the bytes are those
    # of the txn it applies
    service = CoordService(CoordState(), ServiceConfig(), 1000)
    service.open(1, ("127.0.0.1", 5000), 1000)
    service.connect(1, ConnectRequest(0, 0, 10_000, 0, bytes(16), False), True, 1000)
    [(session_txn, conn_id, pending)] = service.take_output().proposals
    session_txn.zxid = 1
    service.committed(session_txn, conn_id, pending, 1000)
    service.request(1, 2, OpCode.auth, AuthPacket(0, "digest", b"u:p"), 1000)
    codec = ServerConnection(1 << 20)
    connect = ConnectRequest(0, 0, 10_000, 0, bytes(16), False).to_bytes()
    codec.receive_data(len(connect).to_bytes(4, "big") + connect)
    payload = struct.pack(">ii", 3, op) + CreateRequest("/n", data, acl, flags).to_bytes()
    [request] = codec.receive_data(len(payload).to_bytes(4, "big") + payload)
    assert isinstance(request, Request)
    service.request(1, 3, op, request.record, 1000, request.body)
    [(txn, _, _)] = service.take_output().proposals
    reencoded = Txn(txn.session_id, txn.cxid, txn.zxid, txn.time_ms, txn.op, txn.identities,
                    txn.body)
    assert txn.to_bytes() == reencoded.to_bytes()
    assert Txn.from_bytes(txn.to_bytes()) == txn
    unchanged = acl[0].id.scheme == "world" and (flags != 4 or op == OpCode.createContainer)
    assert (txn.body_bytes is not None) == unchanged  # the client's bytes, when they fit
