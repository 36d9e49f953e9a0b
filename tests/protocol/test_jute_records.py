"""Generated jute records: exact layouts, round trips for every record, and garbage safety."""

from __future__ import annotations

import contextlib
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zoolog.errors import JuteDecodeError
from zoolog.protocol.zk._generated import jute_records as jr

ROOT = Path(__file__).resolve().parents[2]

_INT = st.integers(-(2**31), 2**31 - 1)
_LONG = st.integers(-(2**63), 2**63 - 1)


def strategy_for(jtype: str, depth: int = 0) -> st.SearchStrategy[Any]:
    if jtype == "int":
        return _INT
    if jtype == "long":
        return _LONG
    if jtype == "boolean":
        return st.booleans()
    if jtype == "buffer":
        return st.none() | st.binary(max_size=40)
    if jtype == "ustring":
        return st.none() | st.text(max_size=20)
    if jtype.startswith("vector<"):
        inner = jtype[7:-1]
        if inner == "ustring":
            item: st.SearchStrategy[Any] = st.text(max_size=10)
        elif inner == "buffer":
            item = st.binary(max_size=10)
        else:
            item = strategy_for(inner, depth + 1)
        return st.none() | st.lists(item, max_size=3)
    return record_strategy(jtype)


def record_strategy(name: str) -> st.SearchStrategy[Any]:
    cls = jr.RECORDS[name]
    fields = jr.FIELDS[name]
    return st.builds(cls, *[strategy_for(t) for _, t in fields])


@pytest.mark.parametrize("name", sorted(jr.RECORDS))
def test_every_record_round_trips(name: str) -> None:
    @settings(max_examples=40, deadline=None)
    @given(record_strategy(name))
    def check(record: Any) -> None:
        assert type(record).from_bytes(record.to_bytes()) == record

    check()


@pytest.mark.parametrize("name", sorted(jr.RECORDS))
def test_garbage_only_raises_jute_decode_error(name: str) -> None:
    cls = jr.RECORDS[name]

    @settings(max_examples=60, deadline=None)
    @given(st.binary(max_size=120))
    def check(data: bytes) -> None:
        with contextlib.suppress(JuteDecodeError):
            cls.from_bytes(data)

    check()


def test_truncation_at_every_position_is_detected() -> None:
    record = jr.CreateRequest("/a/b", b"payload", [jr.ACL(31, jr.Id("world", "anyone"))], 3)
    data = record.to_bytes()
    for cut in range(len(data)):
        with pytest.raises(JuteDecodeError):
            jr.CreateRequest.from_bytes(data[:cut])


def test_huge_length_prefix_is_rejected_without_allocating() -> None:
    with pytest.raises(JuteDecodeError):
        jr.GetDataRequest.from_bytes(struct.pack(">i", 0x7FFFFFFF) + b"xx")


def test_known_layouts() -> None:
    assert len(jr.Stat().to_bytes()) == 68
    assert jr.ReplyHeader(1, 5, -101).to_bytes() == struct.pack(">iqi", 1, 5, -101)
    create = jr.CreateRequest("/a", b"x", [jr.ACL(31, jr.Id("world", "anyone"))], 0)
    expected = (
        struct.pack(">i", 2) + b"/a" + struct.pack(">i", 1) + b"x" + struct.pack(">ii", 1, 31)
        + struct.pack(">i", 5) + b"world" + struct.pack(">i", 6) + b"anyone"
        + struct.pack(">i", 0)
    )
    assert create.to_bytes() == expected
    assert jr.SetDataRequest("/a", None, -1).to_bytes()[6:10] == b"\xff\xff\xff\xff"


def test_regeneration_is_a_no_op() -> None:
    result = subprocess.run(
        [sys.executable, "tools/gen_jute.py", "--check"], cwd=ROOT, capture_output=True,
        text=True, check=False,
    )
    assert result.returncode == 0, result.stderr
