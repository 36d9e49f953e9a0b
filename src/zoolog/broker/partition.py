"""One partition this broker leads: its log, its producers' state, its offsets.

`Partition` joins a `PartitionLog` (logstore) and a `ProducerStateManager` and answers in
Kafka's vocabulary:

- the **log end offset** (LEO) is the next offset to assign; on one node every append is
  replicated to the whole ISR (itself) when it is written, so the **high watermark** equals
  the LEO;
- the **last stable offset** (LSO) is the first offset of the earliest open transaction,
  else the high watermark; read_committed reads stop there;
- a client append validates idempotent batches against the producer state first: a
  duplicate is answered with the offsets it got the first time and not written again;
- `write_marker` appends a transaction's COMMIT or ABORT control batch (what WriteTxnMarkers
  does on a partition leader); an ABORT of a producer with data here adds an `AbortedTxn`
  (first offset, marker offset, the LSO after it) to the log's `.txnindex`, which a
  read_committed fetch returns as `aborted_transactions`.

Producer state is derived from the log. `snapshot_producers()` writes it to
`<offset>.snapshot` (20 digits: the log end it covers up to, Kafka's name) beside the
segments; `open` loads the newest snapshot not beyond the log end and replays the batch
headers after it (or from the log start when there is none), then drops stale snapshots.
The aborted-transaction index is derived too: where the log does not trust it (segments
re-validated after an unclean stop, a torn `.txnindex`) the replay starts at or before that
point and rebuilds its entries from the ABORT markers it passes.

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
from zoolog.logstore.txn_index import AbortedTxn
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
    aborted: list[AbortedTxn] | None = None
    """read_committed: the aborted transactions overlapping the returned batches."""


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

    def write_marker(self, producer_id: int, producer_epoch: int, coordinator_epoch: int,
                     commit: bool, now_ms: int) -> AppendResult:
        """Append the COMMIT or ABORT marker of `producer_id`'s transaction (Kafka's
        appendEndTxnMarker). A marker with an epoch older than the producer's current one is
        refused (INVALID_PRODUCER_EPOCH); a marker for a producer with no open transaction
        here (nothing was produced, or the marker is written again after a restart) is
        appended all the same and changes nothing. A marker from an older coordinator
        epoch than the last one seen for that producer is TRANSACTION_COORDINATOR_FENCED
        (a deposed coordinator; on one node the epoch is always 0, `zoolog txn abort` may
        send another)."""
        entry = self.producers.entries.get(producer_id)
        if entry is not None and producer_epoch < entry.producer_epoch:
            raise KafkaError(Err.INVALID_PRODUCER_EPOCH,
                             f"marker epoch {producer_epoch} of producer {producer_id} is "
                             f"older than its current epoch {entry.producer_epoch}")
        if entry is not None and coordinator_epoch < entry.coordinator_epoch:
            raise KafkaError(Err.TRANSACTION_COORDINATOR_FENCED,
                             f"marker of producer {producer_id} from coordinator epoch "
                             f"{coordinator_epoch}, older than {entry.coordinator_epoch}: a "
                             f"newer transaction coordinator wrote here")
        first = entry.txn_first_offset if entry is not None else -1
        view = memoryview(bytearray(rb.control_batch(
            commit=commit, producer_id=producer_id, producer_epoch=producer_epoch,
            coordinator_epoch=coordinator_epoch, timestamp_ms=now_ms)))
        header = rb.read_header(view)
        info = self.log.append([(view, header)], self.leader_epoch, now_ms)
        self.producers.record(header, info.first_offset, now_ms)  # creates the entry
        self.producers.entries[producer_id].coordinator_epoch = coordinator_epoch
        if not commit and first >= 0:
            self.log.add_aborted(AbortedTxn(producer_id, first, info.first_offset,
                                            self.last_stable_offset))
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
        aborted: list[AbortedTxn] | None = [] if read_committed else None
        if offset < upper:
            result = self.log.read(offset, max_bytes, upper, min_one_batch)
            if result.slices:
                records = result.slices[0]  # like Kafka: at most one segment per fetch
                if read_committed:  # the first slice ends with its segment at the latest
                    end = min(result.next_offset, self.log.segment_end(offset))
                    aborted = self.log.aborted_between(offset, end)
        return ReadResult(records, self.high_watermark, self.last_stable_offset,
                          self.log_start_offset, aborted)

    # --- producer state -----------------------------------------------------------------

    def _snapshot_names(self) -> list[tuple[int, str]]:
        out = []
        for name in self.fs.list(self.dir):
            stem = name[: -len(SNAPSHOT_SUFFIX)]
            if name.endswith(SNAPSHOT_SUFFIX) and len(stem) == 20 and stem.isdigit():
                out.append((int(stem), name))
        return sorted(out)

    def _load_producers(self) -> None:
        log = self.log
        end = log.log_end_offset
        lost_from = log.txn_index_lost_from
        start_offset = log.log_start_offset
        for offset, name in reversed(self._snapshot_names()):
            path = f"{self.dir}/{name}"
            if offset > end:
                self.fs.remove(path)
                continue
            if offset > lost_from:
                continue  # the replay must pass every marker whose index entry was lost
            try:
                data = self.fs.read(path, 0, self.fs.size(path))
                self.producers = decode_snapshot(data)
                start_offset = max(offset, start_offset)
                break
            except SnapshotError:
                self.fs.remove(path)
        # entries below a snapshot were synced before it was written
        trusted = min(lost_from, max(log.txn_index_unsynced_from, start_offset))
        self.replayed_batches = self._replay(start_offset, trusted)
        self._snapshot_base = log.active_segment_base_offset

    def _replay(self, start_offset: int, trusted: int) -> int:
        """Replay batch headers from `start_offset` into the producer state, rebuilding the
        aborted-transaction entries of markers at or after `trusted`."""
        producers = self.producers
        rebuilt: list[AbortedTxn] = []
        count = 0
        for header in self.log.headers_from(start_offset):
            count += 1
            pid = header.producer_id
            if pid < 0:
                continue
            first = -1
            if header.is_control and header.base_offset >= trusted:
                entry = producers.entries.get(pid)
                first = entry.txn_first_offset if entry is not None else -1
            producers.record(header, header.base_offset, header.max_timestamp)
            if first >= 0 and self.log.control_type(header) == rb.CONTROL_ABORT:
                unstable = producers.first_unstable_offset()
                rebuilt.append(AbortedTxn(pid, first, header.base_offset,
                                          header.base_offset + 1 if unstable is None
                                          else unstable))
        if trusted < self.log.log_end_offset:
            self.log.rebuild_aborted_from(trusted, rebuilt)
        return count

    def snapshot_producers(self) -> None:
        """Write the producer state as of the log end (and keep only the newest few)."""
        end = self.log.log_end_offset
        self.log.sync_txn_indexes()  # a snapshot vouches for the index below it
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
