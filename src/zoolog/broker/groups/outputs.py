"""What the coordinator hands its runtime (see `coordinator.py` for the order): `Reply`
(answer a request now) and `Persist` (append records to `__consumer_offsets`, then call
`GroupCoordinator.persisted`).

Owns the two output types and the offset changes a Persist carries. Never: I/O, behaviour
(applying a Persist is the coordinator's).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .offsets import OffsetAndMetadata


@dataclass(frozen=True, slots=True)
class Reply:
    """Send `response` (a generated response object) for the request `token` now."""

    token: object
    response: object


_OffsetUpdate = tuple[str, str, int, "OffsetAndMetadata | None"]


@dataclass(eq=False, slots=True)
class Persist:
    """Append `records` to partition `partition` of `__consumer_offsets`, then call
    `GroupCoordinator.persisted(this, now_ms)`. Compared by identity.

    `persisted` applies the records without decoding them again: the offset changes they
    carry are kept beside them (`_updates`), and what a GroupMetadata record means is
    applied by `_on_durable` (the in-memory group is the authority at run time, as in
    Kafka, whose classic-group writes are not replayed either; `load` is what reads
    GroupMetadata records back)."""

    partition: int
    records: list[tuple[bytes, bytes | None]]
    replies: list[Reply]
    _updates: list[_OffsetUpdate] = field(default_factory=list, repr=False)
    _on_durable: Callable[[int], None] | None = field(default=None, repr=False)
    producer_id: int = -1
    """>= 0: the records are a transaction's offsets (TxnOffsetCommit): the runtime writes
    them as a transactional batch of this producer, and they become committed offsets only
    when the transaction's COMMIT marker reaches this partition."""
    producer_epoch: int = -1


@dataclass(frozen=True, slots=True)
class TxnRecord:
    """A record of `__consumer_offsets` that a transaction wrote (TxnOffsetCommit): for
    `GroupCoordinator.load`, pending until that producer's marker."""

    key: bytes
    value: bytes | None
    producer_id: int


@dataclass(frozen=True, slots=True)
class TxnMarker:
    """A COMMIT or ABORT marker of `producer_id` in `__consumer_offsets` (for `load`)."""

    producer_id: int
    commit: bool
