"""The front -> core hand-off is exact: every request record survives plain form + marshal."""

from __future__ import annotations

import dataclasses
import marshal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from zoolog.protocol.zk._generated.jute_records import ACL, ConnectRequest, Id
from zoolog.protocol.zk.connection import REQUEST_RECORDS, MisplacedOp
from zoolog.protocol.zk.handoff import (
    connect_from_plain,
    plain_connect,
    plain_request,
    record_from_plain,
)
from zoolog.protocol.zk.opcodes import OpCode

# jute hands over valid UTF-8 only; marshal would also carry lone surrogates (tested below)
texts = st.none() | st.text(max_size=20)
ints = st.integers(-(2**63), 2**63 - 1)
acl_lists = st.none() | st.lists(
    st.builds(ACL, st.integers(-(2**31), 2**31 - 1), st.builds(Id, texts, texts)), max_size=3)


def value_for(annotation: str) -> st.SearchStrategy[Any]:
    if annotation == "int":
        return ints
    if annotation == "bool":
        return st.booleans()
    if annotation.startswith("str"):
        return texts
    if annotation.startswith("bytes"):
        return st.none() | st.binary(max_size=20)
    if annotation.startswith("list[ACL]"):
        return acl_lists
    if annotation.startswith("list[str]"):
        return st.none() | st.lists(st.text(max_size=8), max_size=3)
    raise AssertionError(f"a request record field of type {annotation}: teach the hand-off")


def records_of(cls: type) -> st.SearchStrategy[Any]:
    fields = dataclasses.fields(cls)
    return st.builds(cls, *[value_for(str(f.type)) for f in fields])


REQUEST_OPS = sorted(op for op, cls in REQUEST_RECORDS.items() if cls is not None)


@settings(deadline=None)
@given(st.data())
def test_every_request_record_round_trips(data: st.DataObject) -> None:
    op = data.draw(st.sampled_from(REQUEST_OPS))
    record = data.draw(records_of(REQUEST_RECORDS[op]))
    carried = marshal.loads(marshal.dumps(plain_request(int(op), record)))
    assert record_from_plain(int(op), carried) == record


@settings(deadline=None)
@given(st.data())
def test_multi_and_misplaced_ops_round_trip(data: st.DataObject) -> None:
    sub_ops = [OpCode.create, OpCode.delete, OpCode.setData, OpCode.check]
    ops = data.draw(st.lists(st.sampled_from(sub_ops), max_size=4))
    multi = [(int(op), data.draw(records_of(REQUEST_RECORDS[op]))) for op in ops]
    for op in (int(OpCode.multi), int(OpCode.multiRead)):
        assert record_from_plain(op, marshal.loads(marshal.dumps(plain_request(op, multi)))) \
            == multi
        misplaced = MisplacedOp(int(OpCode.getData))
        assert record_from_plain(op, plain_request(op, misplaced)) == misplaced
    assert record_from_plain(int(OpCode.ping), plain_request(int(OpCode.ping), None)) is None


@settings(deadline=None)
@given(records_of(ConnectRequest))
def test_connect_request_round_trips(request: ConnectRequest) -> None:
    assert connect_from_plain(marshal.loads(marshal.dumps(plain_connect(request)))) == request


def test_surrogates_from_jute_survive_marshal() -> None:
    path = "/a\udc80b"  # what a non-UTF-8 path decodes to
    record = REQUEST_RECORDS[OpCode.getData]("" + path, False)
    plain = marshal.loads(marshal.dumps(plain_request(int(OpCode.getData), record)))
    assert record_from_plain(int(OpCode.getData), plain).path == path
