"""One partition this broker leads: its log, its producers' state, its offsets.

`Partition` joins a `PartitionLog` (logstore) and a `ProducerStateManager` and answers in
Kafka's vocabulary:

- the **log end offset** (LEO) is the next offset to assign; on one node every append is
  replicated to the whole ISR (itself) when it is written, so the **high watermark** equals
  the LEO;
- the **last stable offset** is the first offset of the earliest open transaction, else the
  high watermark (no transactions yet: the LSO equals the HW);
- a client append validates idempotent batches against the producer state first: a
  duplicate is answered with the offsets it got the first time and not written again.

Producer state is derived from the log. `snapshot_producers()` writes it to
`<offset>.snapshot` (20 digits: the log end it covers up to, Kafka's name) beside the
segments; `open` loads the newest snapshot not beyond the log end and replays the batch
headers after it (or from the log start when there is none), then drops stale snapshots.

No I/O of its own: files go through the log's injected file system.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from zoolog.broker.producer_state import (
    ProducerStateManager,
    SnapshotError,
    decode_snapshot,
    encode_snapshot,
)
from zoolog.logstore.files import FileSlice, LogFileSystem
from zoolog.logstore.partition_log import PartitionLog
from zoolog.protocol.kafka import record_batch as rb
from zoolog.protocol.kafka.errors import Err, KafkaError

SNAPSHOT_SUFFIX = ".snapshot"
SNAPSHOTS_KEPT = 2


@dataclass(frozen=True, slots=True)
class AppendResult:
    base_offset: int
    last_offset: int
    log_append_time_ms: int
    log_start_offset: int
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class ReadResult:
    records: FileSlice | None
    high_watermark: int
    last_stable_offset: int
    log_start_offset: int


def partition_dir(topic: str, index: int) -> str:
    return f"{topic}-{index}"


class Partition:
    """See the module docstring."""

    def __init__(self, topic: str, index: int, topic_id: bytes, log: PartitionLog,
                 fs: LogFileSystem, leader_epoch: int) -> None:
        self.topic = topic
        self.index = index
        self.topic_id = topic_id
        self.log = log
        self.fs = fs
        self.dir = partition_dir(topic, index)
        self.leader_epoch = leader_epoch
        self.producers = ProducerStateManager()
        self.replayed_batches = 0
        self.on_append: Callable[[Partition], None] | None = None
        """Set by the runtime: called after every append (wakes parked fetches)."""
        self._snapshot_base = -1

    @classmethod
    def open(cls, fs: LogFileSystem, topic: str, index: int, topic_id: bytes,
             log: PartitionLog, leader_epoch: int) -> Partition:
        """Wrap an opened (recovered) log: rebuild the producer state, start the epoch."""
        partition = cls(topic, index, topic_id, log, fs, leader_epoch)
        partition._load_producers()
        if leader_epoch >= 0:
            log.epochs.assign(leader_epoch, log.log_end_offset)
        return partition

    # --- offsets ------------------------------------------------------------------------

    @property
    def log_start_offset(self) -> int:
        return self.log.log_start_offset

    @property
    def log_end_offset(self) -> int:
        return self.log.log_end_offset

    @property
    def high_watermark(self) -> int:
        return self.log.log_end_offset

    @property
    def last_stable_offset(self) -> int:
        unstable = self.producers.first_unstable_offset()
        return self.high_watermark if unstable is None else unstable

    # --- writes -------------------------------------------------------------------------

    def append_client(self, batches: list[tuple[memoryview, rb.BatchHeader]],
                      log_append_time_ms: int, now_ms: int) -> AppendResult:
        """Append validated client batches; idempotent duplicates answered, not rewritten."""
        if len(batches) == 1 and batches[0][1].producer_id >= 0:
            header = batches[0][1]
            duplicate = self.producers.check(header)
            if duplicate is not None:  # answered as the first time (Kafka: its timestamp too)
                return AppendResult(duplicate.first_offset, duplicate.last_offset,
                                    duplicate.timestamp_ms if log_append_time_ms >= 0 else -1,
                                    self.log_start_offset, duplicate=True)
        else:
            for _, header in batches:
                if header.producer_id >= 0 and self.producers.check(header) is not None:
                    raise KafkaError(Err.INVALID_RECORD,
                                     "a duplicate idempotent batch inside a multi-batch produce")
        info = self.log.append(batches, self.leader_epoch, now_ms)
        offset = info.first_offset
        for _, header in batches:
            if header.producer_id >= 0:
                self.producers.record(header, offset, now_ms)
            offset += header.last_offset_delta + 1
        self._after_append()
        return AppendResult(info.first_offset, info.last_offset, log_append_time_ms,
                            self.log_start_offset)

    def append_records(self, batch: bytes, now_ms: int) -> AppendResult:
        """Append a batch the broker built (coordinator records, markers)."""
        view = memoryview(bytearray(batch))
        header = rb.read_header(view)
        info = self.log.append([(view, header)], self.leader_epoch, now_ms)
        if header.producer_id >= 0:
            self.producers.record(header, info.first_offset, now_ms)
        self._after_append()
        return AppendResult(info.first_offset, info.last_offset, -1, self.log_start_offset)

    def _after_append(self) -> None:
        base = self.log.active_segment_base_offset
        if base != self._snapshot_base and base > 0:
            self.snapshot_producers()  # Kafka snapshots producer state at each segment roll
        if self.on_append is not None:
            self.on_append(self)

    # --- reads --------------------------------------------------------------------------

    def read(self, offset: int, max_bytes: int, read_committed: bool,
             min_one_batch: bool = True) -> ReadResult:
        """Whole batches from `offset` up to the HW (or the LSO for read_committed);
        OFFSET_OUT_OF_RANGE outside [log start, log end]."""
        upper = self.last_stable_offset if read_committed else self.high_watermark
        if offset < self.log_start_offset or offset > self.log_end_offset:
            raise KafkaError(Err.OFFSET_OUT_OF_RANGE,
                             f"offset {offset} is outside [{self.log_start_offset}, "
                             f"{self.log_end_offset}] of {self.topic}-{self.index}")
        records: FileSlice | None = None
        if offset < upper:
            result = self.log.read(offset, max_bytes, upper, min_one_batch)
            if result.slices:
                records = result.slices[0]  # like Kafka: at most one segment per fetch
        return ReadResult(records, self.high_watermark, self.last_stable_offset,
                          self.log_start_offset)

    # --- producer state -----------------------------------------------------------------

    def _snapshot_names(self) -> list[tuple[int, str]]:
        out = []
        for name in self.fs.list(self.dir):
            stem = name[: -len(SNAPSHOT_SUFFIX)]
            if name.endswith(SNAPSHOT_SUFFIX) and len(stem) == 20 and stem.isdigit():
                out.append((int(stem), name))
        return sorted(out)

    def _load_producers(self) -> None:
        end = self.log.log_end_offset
        start_offset = self.log.log_start_offset
        for offset, name in reversed(self._snapshot_names()):
            path = f"{self.dir}/{name}"
            if offset > end:
                self.fs.remove(path)
                continue
            try:
                data = self.fs.read(path, 0, self.fs.size(path))
                self.producers = decode_snapshot(data)
                start_offset = max(offset, start_offset)
                break
            except SnapshotError:
                self.fs.remove(path)
        self.replayed_batches = self.producers.rebuild(self.log.headers_from(start_offset))
        self._snapshot_base = self.log.active_segment_base_offset

    def snapshot_producers(self) -> None:
        """Write the producer state as of the log end (and keep only the newest few)."""
        end = self.log.log_end_offset
        self.fs.write_atomic(f"{self.dir}/{end:020d}{SNAPSHOT_SUFFIX}",
                             encode_snapshot(self.producers))
        self._snapshot_base = self.log.active_segment_base_offset
        names = self._snapshot_names()
        for _, name in names[:-SNAPSHOTS_KEPT]:
            self.fs.remove(f"{self.dir}/{name}")

    def close(self) -> None:
        """Snapshot the producer state (the log itself is closed by its LogManager)."""
        if not self.log.closed:
            self.snapshot_producers()
