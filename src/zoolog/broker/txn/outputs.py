"""What the transaction coordinator hands its runtime (see `coordinator.py` for the order):
`Reply` (answer a request now), `Persist` (append one record to `__transaction_state`, then
call `TransactionCoordinator.persisted`) and `WriteMarkers` (write a transaction's COMMIT
or ABORT markers, then call `TransactionCoordinator.markers_written`).

Owns the three output types and the transition a Persist carries. Never: I/O, behaviour
(applying a Persist is the coordinator's).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .state import TopicPartition, TransactionMetadata, TxnLogEntry

__all__ = ["Persist", "Reply", "WriteMarkers"]


@dataclass(frozen=True, slots=True)
class Reply:
    """Send `response` (a generated response object) for the request `token` now."""

    token: object
    response: object


@dataclass(eq=False, slots=True)
class Persist:
    """Append the record `key`/`value` (value None: a tombstone) to partition `partition` of
    `__transaction_state`, then call `TransactionCoordinator.persisted(this, now_ms)`, which
    applies the transition and sends `replies`. Compared by identity.

    The transition is kept beside the record (`_target`, `_meta`) so that `persisted` need
    not decode it again. One transactional id has at most one Persist in flight."""

    partition: int
    key: bytes
    value: bytes | None
    replies: list[Reply]
    transactional_id: str
    _meta: TransactionMetadata = field(repr=False)
    _target: TxnLogEntry = field(repr=False)
    sync: bool = True
    """The record must be durable before `persisted`. False for a Complete* record: if a
    crash loses it, the restart finds the Prepare* record and completes the transaction
    again (markers are harmless twice), so the runtime may call `persisted` as soon as the
    record is appended; a later fsync of the partition makes it durable in log order."""


@dataclass(eq=False, frozen=True, slots=True)
class WriteMarkers:
    """Write a COMMIT (`commit`) or ABORT control batch of `producer_id`/`producer_epoch`
    with `coordinator_epoch` to each of `partitions` (skipping partitions that no longer
    exist), then call `TransactionCoordinator.markers_written(this, now_ms)`. Compared by
    identity. A marker for a transaction the partition has already ended must be harmless
    (after `load`, markers of a Prepare* transaction are written again)."""

    transactional_id: str
    producer_id: int
    producer_epoch: int
    coordinator_epoch: int
    commit: bool
    partitions: tuple[TopicPartition, ...]
