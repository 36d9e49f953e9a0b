"""Idempotent-producer state of one partition: per producer id, its epoch and last batches.

Kafka's rules (`ProducerAppendInfo`, `ProducerStateEntry`), applied to every batch that
carries a producer id before it is appended:

- a batch whose epoch and (first, last) sequence equal one of the producer's last
  `BATCHES_RETAINED` (5) batches is a **duplicate**: not appended again, answered with the
  original offsets (a client resending after a lost connection);
- an epoch lower than the producer's current one -> INVALID_PRODUCER_EPOCH;
- a new (higher) epoch must start at sequence 0, unless the broker knows nothing of the
  producer (its state expired or was deleted) -> otherwise OUT_OF_ORDER_SEQUENCE_NUMBER;
- within an epoch, the first sequence must follow the last one (wrapping from 2^31-1 to 0)
  -> otherwise OUT_OF_ORDER_SEQUENCE_NUMBER;
- a batch with a producer id but no sequence (-1) -> INVALID_RECORD (checked by the
  validator).

The state is derived from the log: `rebuild` replays batch headers, and a snapshot
(`encode_snapshot` / `decode_snapshot`, taken by the partition at segment roll and clean
shutdown and named by the offset it covers up to) shortens that replay. Transactions (the
next step) will add each producer's open transaction here: `ProducerEntry.txn_first_offset`
is kept for it and already snapshotted.

Pure data: no I/O, no clock (times come in as arguments).
"""

from __future__ import annotations

import struct
import zlib
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from zoolog.protocol.kafka.errors import Err, KafkaError
from zoolog.protocol.kafka.record_batch import NO_PRODUCER_EPOCH, BatchHeader

BATCHES_RETAINED = 5
"""Kafka's NUM_BATCHES_TO_RETAIN, matching max.in.flight.requests.per.connection <= 5."""

SEQUENCE_MAX = 0x7FFFFFFF

_SNAP_HEAD = struct.Struct(">hIi")  # version, crc32 of the rest, entry count
_SNAP_ENTRY = struct.Struct(">qhiqqb")  # pid, epoch, coordinator epoch, last ts, txn first, n
_SNAP_BATCH = struct.Struct(">iiqiq")  # first seq, last seq, last offset, offset delta, ts
_SNAPSHOT_VERSION = 1


@dataclass(frozen=True, slots=True)
class BatchMetadata:
    first_seq: int
    last_seq: int
    last_offset: int
    offset_delta: int
    timestamp_ms: int

    @property
    def first_offset(self) -> int:
        return self.last_offset - self.offset_delta


@dataclass(slots=True)
class ProducerEntry:
    producer_id: int
    producer_epoch: int = NO_PRODUCER_EPOCH
    batches: deque[BatchMetadata] = field(default_factory=lambda: deque(maxlen=BATCHES_RETAINED))
    coordinator_epoch: int = -1
    last_timestamp_ms: int = -1
    txn_first_offset: int = -1
    """First offset of the producer's open transaction on this partition, -1 if none."""

    @property
    def last_seq(self) -> int:
        return self.batches[-1].last_seq if self.batches else -1

    @property
    def last_offset(self) -> int:
        return self.batches[-1].last_offset if self.batches else -1

    def find_duplicate(self, epoch: int, first_seq: int, last_seq: int) -> BatchMetadata | None:
        if epoch != self.producer_epoch:
            return None
        for batch in self.batches:
            if batch.first_seq == first_seq and batch.last_seq == last_seq:
                return batch
        return None


def in_sequence(last_seq: int, next_seq: int) -> bool:
    return next_seq == last_seq + 1 or (next_seq == 0 and last_seq == SEQUENCE_MAX)


class ProducerStateManager:
    """See the module docstring. One per partition."""

    def __init__(self) -> None:
        self.entries: dict[int, ProducerEntry] = {}

    def check(self, header: BatchHeader) -> BatchMetadata | None:
        """Validate a client batch with a producer id against the state. Returns the original
        batch's metadata if it is a duplicate (the caller must not append it); None if it may
        be appended (then call `record` with its offsets). Raises KafkaError."""
        entry = self.entries.get(header.producer_id)
        epoch = header.producer_epoch
        first_seq = header.base_sequence
        last_seq = header.last_sequence
        if entry is None:
            return None  # an unknown producer may start anywhere (Kafka >= 2.5, KIP-360)
        duplicate = entry.find_duplicate(epoch, first_seq, last_seq)
        if duplicate is not None:
            return duplicate
        if epoch < entry.producer_epoch:
            raise KafkaError(Err.INVALID_PRODUCER_EPOCH,
                             f"producer {header.producer_id} epoch {epoch} is older than the "
                             f"current epoch {entry.producer_epoch}")
        if epoch != entry.producer_epoch:
            if first_seq != 0 and entry.producer_epoch != NO_PRODUCER_EPOCH:
                raise KafkaError(Err.OUT_OF_ORDER_SEQUENCE_NUMBER,
                                 f"producer {header.producer_id}: new epoch {epoch} must start "
                                 f"at sequence 0, not {first_seq}")
        elif entry.batches and not in_sequence(entry.last_seq, first_seq):
            raise KafkaError(Err.OUT_OF_ORDER_SEQUENCE_NUMBER,
                             f"producer {header.producer_id} epoch {epoch}: sequence "
                             f"{first_seq} does not follow {entry.last_seq}")
        return None

    def record(self, header: BatchHeader, first_offset: int, timestamp_ms: int) -> None:
        """Remember an appended batch (its offsets as assigned by the log)."""
        pid = header.producer_id
        entry = self.entries.get(pid)
        if entry is None:
            entry = self.entries[pid] = ProducerEntry(pid)
        if header.producer_epoch != entry.producer_epoch:
            entry.producer_epoch = header.producer_epoch
            entry.batches.clear()
        if header.base_sequence >= 0 and not header.is_control:
            entry.batches.append(BatchMetadata(
                header.base_sequence, header.last_sequence,
                first_offset + header.last_offset_delta, header.last_offset_delta,
                timestamp_ms))
        entry.last_timestamp_ms = timestamp_ms
        if header.is_transactional:
            if header.is_control:
                entry.txn_first_offset = -1
            elif entry.txn_first_offset < 0:
                entry.txn_first_offset = first_offset

    def rebuild(self, headers: Iterable[BatchHeader]) -> int:
        """Replay stored batch headers (in log order) into the state; returns how many."""
        count = 0
        for header in headers:
            if header.producer_id >= 0:
                timestamp = header.max_timestamp
                self.record(header, header.base_offset, timestamp)
            count += 1
        return count

    def expire(self, now_ms: int, expiration_ms: int) -> list[int]:
        """Forget producers idle for `producer.id.expiration.ms` (never one with an open
        transaction); returns their ids."""
        gone = [pid for pid, entry in self.entries.items()
                if entry.txn_first_offset < 0 and entry.last_timestamp_ms >= 0
                and now_ms - entry.last_timestamp_ms >= expiration_ms]
        for pid in gone:
            del self.entries[pid]
        return gone

    def truncate_to(self, offset: int) -> None:
        """Forget batches at or beyond `offset` (the log was truncated below them)."""
        for pid in list(self.entries):
            entry = self.entries[pid]
            kept = [b for b in entry.batches if b.last_offset < offset]
            entry.batches.clear()
            entry.batches.extend(kept)
            if entry.txn_first_offset >= offset:
                entry.txn_first_offset = -1
            if not entry.batches and entry.txn_first_offset < 0:
                del self.entries[pid]

    def first_unstable_offset(self) -> int | None:
        """The first offset of the earliest open transaction (the last stable offset), if any."""
        firsts = [e.txn_first_offset for e in self.entries.values() if e.txn_first_offset >= 0]
        return min(firsts) if firsts else None


def encode_snapshot(state: ProducerStateManager) -> bytes:
    body = bytearray()
    for entry in state.entries.values():
        body += _SNAP_ENTRY.pack(entry.producer_id, entry.producer_epoch,
                                 entry.coordinator_epoch, entry.last_timestamp_ms,
                                 entry.txn_first_offset, len(entry.batches))
        for batch in entry.batches:
            body += _SNAP_BATCH.pack(batch.first_seq, batch.last_seq, batch.last_offset,
                                     batch.offset_delta, batch.timestamp_ms)
    return _SNAP_HEAD.pack(_SNAPSHOT_VERSION, zlib.crc32(body), len(state.entries)) + body


class SnapshotError(ValueError):
    """A producer-state snapshot is damaged (the partition then rebuilds from the log)."""


def decode_snapshot(data: bytes) -> ProducerStateManager:
    if len(data) < _SNAP_HEAD.size:
        raise SnapshotError("producer snapshot shorter than its header")
    version, crc, count = _SNAP_HEAD.unpack_from(data, 0)
    body = memoryview(data)[_SNAP_HEAD.size :]
    if version != _SNAPSHOT_VERSION or zlib.crc32(body) != crc:
        raise SnapshotError("producer snapshot has a bad version or checksum")
    state = ProducerStateManager()
    pos = 0
    try:
        for _ in range(count):
            pid, epoch, coordinator_epoch, last_ts, txn_first, n = _SNAP_ENTRY.unpack_from(
                body, pos)
            pos += _SNAP_ENTRY.size
            entry = ProducerEntry(pid, epoch, coordinator_epoch=coordinator_epoch,
                                  last_timestamp_ms=last_ts, txn_first_offset=txn_first)
            for _ in range(n):
                entry.batches.append(BatchMetadata(*_SNAP_BATCH.unpack_from(body, pos)))
                pos += _SNAP_BATCH.size
            state.entries[pid] = entry
    except struct.error as exc:
        raise SnapshotError(f"truncated producer snapshot: {exc}") from exc
    if pos != len(body):
        raise SnapshotError("producer snapshot has trailing bytes")
    return state
