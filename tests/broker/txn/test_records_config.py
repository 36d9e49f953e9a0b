"""`__transaction_state` records (Kafka's layout, round trips, v1 and newer values, corrupt
input) and TxnConfig."""

from __future__ import annotations

import contextlib
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zoolog.broker.txn import (
    CorruptRecordError,
    TransactionMetadata,
    TxnConfig,
    TxnLogEntry,
    TxnState,
    decode,
    encode_key,
    encode_value,
)
from zoolog.errors import ConfigError
from zoolog.protocol.kafka._generated.coordinator_records import (
    TransactionLogKey,
    TransactionLogValue,
)

S = TxnState


def entry(state: TxnState = S.ONGOING, **kw: Any) -> TxnLogEntry:
    fields: dict[str, Any] = {
        "producer_id": 4000, "last_producer_id": -1, "producer_epoch": 3,
        "txn_timeout_ms": 60_000, "state": state,
        "partitions": frozenset({("t", 1), ("t", 0), ("u", 2)}),
        "txn_start_timestamp_ms": 100, "txn_last_update_timestamp_ms": 200}
    if state in (S.EMPTY, S.COMPLETE_ABORT, S.COMPLETE_COMMIT):
        fields["partitions"] = frozenset()
    fields.update(kw)
    return TxnLogEntry(**fields)


def test_key_is_version_0_and_the_id() -> None:
    key = encode_key("my-txn")
    assert key == b"\x00\x00" + b"\x00\x06my-txn"
    assert TransactionLogKey.decode(memoryview(key), 2, 0)[0].transactional_id == "my-txn"


def test_value_is_version_0_in_kafkas_layout() -> None:
    value = encode_value(entry())
    assert value[:2] == b"\x00\x00"
    body, pos = TransactionLogValue.decode(memoryview(value), 2, 0)
    assert pos == len(value)
    assert (body.producer_id, body.producer_epoch, body.transaction_timeout_ms,
            body.transaction_status, body.transaction_start_timestamp_ms,
            body.transaction_last_update_timestamp_ms) == (4000, 3, 60_000, 1, 100, 200)
    assert [(p.topic, p.partition_ids) for p in body.transaction_partitions or []] == [
        ("t", [0, 1]), ("u", [2])]  # grouped by topic, sorted


def test_empty_has_null_partitions_complete_an_empty_list() -> None:
    empty = TransactionLogValue.decode(memoryview(encode_value(entry(S.EMPTY))), 2, 0)[0]
    assert empty.transaction_partitions is None
    done = TransactionLogValue.decode(memoryview(encode_value(entry(S.COMPLETE_COMMIT))), 2, 0)[0]
    assert done.transaction_partitions == []


def test_same_state_same_bytes() -> None:
    a = entry(partitions=frozenset({("u", 2), ("t", 0), ("t", 1)}))
    b = entry(partitions=frozenset({("t", 1), ("u", 2), ("t", 0)}))
    assert encode_value(a) == encode_value(b)


def test_metadata_encodes_as_its_entry() -> None:
    meta = TransactionMetadata.from_entry("x", entry())
    assert encode_value(meta) == encode_value(entry())


def test_dead_is_a_tombstone_not_a_value() -> None:
    with pytest.raises(ValueError, match="tombstone"):
        encode_value(entry(S.DEAD, partitions=frozenset()))
    assert decode(encode_key("x"), None) == ("x", None)


@pytest.mark.parametrize("state", [s for s in S if s is not S.DEAD])
def test_round_trip_every_state(state: TxnState) -> None:
    e = entry(state)
    assert decode(encode_key("tid"), encode_value(e)) == ("tid", e)


def test_v0_loses_the_last_producer_id_and_epoch() -> None:
    e = entry(S.EMPTY, last_producer_id=3999, last_producer_epoch=7)
    _tid, back = decode(encode_key("tid"), encode_value(e))
    assert back is not None
    assert (back.last_producer_id, back.last_producer_epoch) == (-1, -1)


def test_reads_v1_with_its_tagged_fields() -> None:
    body = TransactionLogValue(producer_id=5, previous_producer_id=4, next_producer_id=6,
                               producer_epoch=0, transaction_timeout_ms=1000,
                               transaction_status=4, transaction_partitions=[],
                               transaction_last_update_timestamp_ms=9,
                               transaction_start_timestamp_ms=8, client_transaction_version=1)
    value = struct.pack(">h", 1) + body.to_bytes(1)
    tid, back = decode(encode_key("v1"), value)
    assert tid == "v1" and back is not None
    assert (back.producer_id, back.last_producer_id, back.state, back.partitions) == (
        5, 4, S.COMPLETE_COMMIT, frozenset())


def test_reads_a_newer_value_version_as_v1() -> None:
    body = TransactionLogValue(producer_id=5, producer_epoch=1, transaction_timeout_ms=1000,
                               transaction_status=0, transaction_partitions=None)
    value = struct.pack(">h", 2) + body.to_bytes(1)
    _tid, back = decode(encode_key("v2"), value)
    assert back is not None and back.state is S.EMPTY


GOOD_KEY = encode_key("tid")
GOOD_VALUE = encode_value(entry())


@pytest.mark.parametrize(("key", "value", "match"), [
    (b"", GOOD_VALUE, "key of 0 bytes"),
    (b"\x00", GOOD_VALUE, "key of 1 bytes"),
    (b"\x00\x01" + GOOD_KEY[2:], GOOD_VALUE, "unknown version 1"),
    (b"\xff\xff" + GOOD_KEY[2:], GOOD_VALUE, "unknown version -1"),
    (GOOD_KEY[:-1], GOOD_VALUE, "TransactionLogKey"),
    (GOOD_KEY + b"x", GOOD_VALUE, "after the key"),
    (GOOD_KEY, b"\x00", "value of 1 bytes"),
    (GOOD_KEY, b"\xff\xff" + GOOD_VALUE[2:], "unknown version -1"),
    (GOOD_KEY, GOOD_VALUE[:-3], "TransactionLogValue v0"),
    (GOOD_KEY, GOOD_VALUE + b"\x00", "after the value"),
    (GOOD_KEY, GOOD_VALUE[:16] + b"\x09" + GOOD_VALUE[17:],
     "unknown transaction status 9"),
])
def test_corrupt(key: bytes, value: bytes, match: str) -> None:
    with pytest.raises(CorruptRecordError, match=match):
        decode(key, value)


@given(st.binary(max_size=64), st.one_of(st.none(), st.binary(max_size=96)))
def test_garbage_only_raises_corrupt_record_error(key: bytes, value: bytes | None) -> None:
    with contextlib.suppress(CorruptRecordError):
        decode(key, value)


_names = st.text(min_size=0, max_size=12)
_entries = st.builds(
    TxnLogEntry,
    producer_id=st.integers(0, 2**63 - 1),
    last_producer_id=st.just(-1),
    producer_epoch=st.integers(0, 32767),
    txn_timeout_ms=st.integers(1, 2**31 - 1),
    state=st.sampled_from([S.ONGOING, S.PREPARE_COMMIT, S.PREPARE_ABORT,
                           S.PREPARE_EPOCH_FENCE]),
    partitions=st.frozensets(st.tuples(_names, st.integers(0, 2**31 - 1)), max_size=8),
    txn_start_timestamp_ms=st.integers(-1, 2**62),
    txn_last_update_timestamp_ms=st.integers(0, 2**62),
)


@given(_names, _entries)
def test_round_trip(tid: str, e: TxnLogEntry) -> None:
    assert decode(encode_key(tid), encode_value(e)) == (tid, e)


# -- config ---------------------------------------------------------------------------------

def test_config_defaults_are_kafkas() -> None:
    c = TxnConfig()
    assert (c.transaction_max_timeout_ms, c.transaction_state_log_num_partitions,
            c.transaction_abort_timed_out_transaction_cleanup_interval_ms,
            c.transactional_id_expiration_ms, c.offsets_topic_num_partitions) == (
        900_000, 50, 10_000, 604_800_000, 50)


def test_config_from_properties() -> None:
    c = TxnConfig.from_properties({
        "transaction.max.timeout.ms": " 1000 ",
        "transaction.state.log.num.partitions": "3",
        "transaction.abort.timed.out.transaction.cleanup.interval.ms": "500",
        "transactional.id.expiration.ms": "60000",
        "offsets.topic.num.partitions": "7",
        "unrelated.key": "x",
    })
    assert c == TxnConfig(1000, 3, 500, 60_000, 7)


@pytest.mark.parametrize("key", list(TxnConfig.PROPERTIES))
@pytest.mark.parametrize("bad", ["0", "-1", str(2**31)])
def test_config_bounds(key: str, bad: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        TxnConfig.from_properties({key: bad})


def test_config_not_an_integer() -> None:
    with pytest.raises(ConfigError, match="not an integer"):
        TxnConfig.from_properties({"transaction.max.timeout.ms": "1e3"})
    with pytest.raises(ConfigError, match="must be an int"):
        TxnConfig(transaction_max_timeout_ms=True)
