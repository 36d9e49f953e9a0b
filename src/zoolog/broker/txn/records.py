"""The records of `__transaction_state`, in Kafka's own format, so that a Kafka tool can read
them (`TransactionLog` / `TransactionCoordinatorRecordSerde`).

A record is a key and a value (None: a tombstone, written when a transactional id expires).
Both start with an int16 version that names the schema of what follows:

| part | version | schema | zoolog writes |
| --- | --- | --- | --- |
| key | 0 | `TransactionLogKey {transactional_id}` | 0 |
| value | 0 | `TransactionLogValue` v0, not flexible | 0 (*) |
| value | 1 | `TransactionLogValue` v1 (**) | never; read |

(*) as Kafka does for clients of transaction versions 0 and 1 (the ones zoolog speaks).
(**) v0 plus tagged fields: previous and next producer ids, the client's transaction version.

Values of a newer version are read as v1 (KIP-915: newer versions only add tagged fields).
Version 0 carries neither the previous producer id nor the previous epoch, so a value read
back has `last_producer_id` -1 (as in Kafka) and `last_producer_epoch` -1 (never written).

`transaction_partitions` is null for Empty and the (possibly empty) partitions grouped by
topic otherwise; topics and partitions are written sorted, so one state always encodes to
the same bytes.

Anything that does not decode raises `CorruptRecordError`. Owns the byte layout only; does
no I/O.
"""

from __future__ import annotations

import struct

from zoolog.errors import KafkaDecodeError, ZoologError
from zoolog.protocol.kafka._generated.coordinator_records import (
    TransactionLogKey,
    TransactionLogValue,
)

from .state import TopicPartition, TransactionMetadata, TxnLogEntry, TxnState

__all__ = [
    "KEY_VERSION",
    "VALUE_VERSION",
    "CorruptRecordError",
    "TxnLogEntry",
    "decode",
    "encode_key",
    "encode_value",
]

KEY_VERSION = 0
VALUE_VERSION = 0

_VERSION = struct.Struct(">h")
_PS = TransactionLogValue.PartitionsSchema


class CorruptRecordError(ZoologError):
    """A `__transaction_state` record does not decode: a damaged log, or a format this
    coordinator cannot read."""


def encode_key(transactional_id: str) -> bytes:
    body = TransactionLogKey(transactional_id=transactional_id)
    return _VERSION.pack(KEY_VERSION) + body.to_bytes(KEY_VERSION)


def encode_value(meta: TxnLogEntry | TransactionMetadata) -> bytes:
    """The value of a transaction in state `meta.state` (never Dead: that is a tombstone)."""
    entry = meta.entry() if isinstance(meta, TransactionMetadata) else meta
    if entry.state is TxnState.DEAD:
        raise ValueError("a Dead transaction is written as a tombstone, not a value")
    partitions: list[TransactionLogValue.PartitionsSchema] | None = None
    if entry.state is not TxnState.EMPTY:
        by_topic: dict[str, list[int]] = {}
        for topic, partition in sorted(entry.partitions):
            by_topic.setdefault(topic, []).append(partition)
        partitions = [_PS(topic=t, partition_ids=ps) for t, ps in by_topic.items()]
    body = TransactionLogValue(
        producer_id=entry.producer_id,
        producer_epoch=entry.producer_epoch,
        transaction_timeout_ms=entry.txn_timeout_ms,
        transaction_status=int(entry.state),
        transaction_partitions=partitions,
        transaction_last_update_timestamp_ms=entry.txn_last_update_timestamp_ms,
        transaction_start_timestamp_ms=entry.txn_start_timestamp_ms,
    )
    body.transaction_partitions = partitions  # the constructor turns None into []
    return _VERSION.pack(VALUE_VERSION) + body.to_bytes(VALUE_VERSION)


def decode(key: bytes, value: bytes | None) -> tuple[str, TxnLogEntry | None]:
    """The transactional id and its state as read back from the log (None: a tombstone)."""
    transactional_id = _decode_key(key)
    if value is None:
        return transactional_id, None
    return transactional_id, _decode_value(transactional_id, value)


def _read_version(view: memoryview, what: str) -> int:
    if len(view) < 2:
        raise CorruptRecordError(f"__transaction_state {what} of {len(view)} bytes")
    version: int = _VERSION.unpack_from(view, 0)[0]
    return version


def _decode_key(key: bytes) -> str:
    view = memoryview(key)
    version = _read_version(view, "key")
    if version != KEY_VERSION:
        raise CorruptRecordError(f"TransactionLogKey with unknown version {version}")
    try:
        body, pos = TransactionLogKey.decode(view, 2, version)
    except KafkaDecodeError as exc:
        raise CorruptRecordError(f"TransactionLogKey v{version}: {exc}") from exc
    if pos != len(view):
        raise CorruptRecordError(f"TransactionLogKey: {len(view) - pos} bytes after the key")
    return body.transactional_id


def _decode_value(transactional_id: str, value: bytes) -> TxnLogEntry:
    view = memoryview(value)
    version = _read_version(view, "value")
    low, high = TransactionLogValue.VALID_VERSIONS
    exact = version <= high
    if version > high:
        version = high  # KIP-915: a newer version is the newest known one plus tagged fields
    if version < low:
        raise CorruptRecordError(f"TransactionLogValue with unknown version {version}")
    try:
        body, pos = TransactionLogValue.decode(view, 2, version)
    except KafkaDecodeError as exc:
        raise CorruptRecordError(f"TransactionLogValue v{version}: {exc}") from exc
    if exact and pos != len(view):
        raise CorruptRecordError(
            f"TransactionLogValue v{version}: {len(view) - pos} bytes after the value")
    try:
        state = TxnState(body.transaction_status)
    except ValueError:
        raise CorruptRecordError(
            f"transactional id {transactional_id}: unknown transaction status "
            f"{body.transaction_status}") from None
    partitions: set[TopicPartition] = set()
    for p in body.transaction_partitions or ():
        partitions.update((p.topic, i) for i in p.partition_ids)
    return TxnLogEntry(
        producer_id=body.producer_id,
        last_producer_id=body.previous_producer_id,
        producer_epoch=body.producer_epoch,
        txn_timeout_ms=body.transaction_timeout_ms,
        state=state,
        partitions=frozenset(partitions),
        txn_start_timestamp_ms=body.transaction_start_timestamp_ms,
        txn_last_update_timestamp_ms=body.transaction_last_update_timestamp_ms,
    )
