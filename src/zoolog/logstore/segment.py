"""`LogSegment`: one segment of a partition log, its `.log` file and its two indexes.

Files, named by the base offset as 20 zero-padded digits (Kafka's names):

    00000000000000000000.log        record batches, back to back, as written
    00000000000000000000.index      OffsetIndex (derived)
    00000000000000000000.timeindex  TimeIndex (derived)

Owns: the segment's size, next offset, max timestamp (and the offset of the batch carrying
it), its indexes and a short memory of the last appended batches' (base offset, last offset,
position), so that finding a batch near the log end needs neither the index nor a scan.

Invariants: batches in the file are whole, validated batches with strictly increasing offsets,
all >= the base offset and within int32 of it; `size` is the file's size; index entries are
added by one rule (`_note_batch`), on append and on rebuild alike, so a rebuilt index equals
the one built by appending. A forward scan of batch headers reads the file in chunks of
`SCAN_CHUNK_BYTES` and parses every header in a chunk, never one read per header.

Never does I/O except through the injected `LogFileSystem`; never decides when to roll,
retain or flush (the `PartitionLog` does); never fsyncs on the append path.
"""

from __future__ import annotations

import struct
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

from zoolog.logstore.files import Buffer, FileSlice, LogFileSystem
from zoolog.logstore.log_config import LogConfig
from zoolog.logstore.offset_index import OffsetIndex
from zoolog.logstore.time_index import TimeIndex
from zoolog.logstore.txn_index import TransactionIndex
from zoolog.protocol.kafka.record_batch import (
    HEADER,
    HEADER_BYTES,
    LOG_OVERHEAD,
    MAGIC,
    BatchHeader,
    compute_crc,
)

SCAN_CHUNK_BYTES = 64 * 1024
RECOVER_CHUNK_BYTES = 4 << 20
RECENT_BATCHES = 64
INDEX_WRITE_BYTES = 4096
"""New index entries are appended to their files once this many bytes are queued, and at
every flush plan, seal, truncation and close (index files are derived data)."""
INT32_MAX = (1 << 31) - 1

_SCAN = struct.Struct(">qi11xi8xq")
"""base_offset, batch_length, last_offset_delta, max_timestamp: the first 43 header bytes."""
_SCAN_BYTES = _SCAN.size

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIME_INDEX_SUFFIX = ".timeindex"
TXN_INDEX_SUFFIX = ".txnindex"
SEGMENT_SUFFIXES = (LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX)


def segment_name(base_offset: int) -> str:
    return f"{base_offset:020d}"


class BatchInfo(NamedTuple):
    """What a segment keeps of an appended batch."""

    base_offset: int
    last_offset: int
    max_timestamp: int
    size: int


class RecoverStats(NamedTuple):
    batches: int
    valid_bytes: int
    truncated_bytes: int


class LogSegment:
    """See the module docstring."""

    def __init__(self, fs: LogFileSystem, dir: str, base_offset: int, config: LogConfig, *,
                 size: int, index: OffsetIndex, time_index: TimeIndex, created_ms: int,
                 suffix: str = "", txn_index: TransactionIndex | None = None) -> None:
        self.fs = fs
        self.dir = dir
        self.base_offset = base_offset
        self.config = config
        name = f"{dir}/{segment_name(base_offset)}"
        self.log_path = name + LOG_SUFFIX + suffix
        self.size = size
        self.index = index
        self.time_index = time_index
        self.txn_index = txn_index if txn_index is not None else TransactionIndex(
            fs, name + TXN_INDEX_SUFFIX + suffix)
        self.created_ms = created_ms
        self.txn_index_lost = False
        """Set by `open`: the `.txnindex` was missing or garbage (rebuilt empty)."""
        self.txn_index_torn = False
        """Set by `open`: the `.txnindex` had a torn tail (cut to whole entries)."""
        """The `.txnindex` was torn and emptied: its entries must be rebuilt (by the
        broker, which knows where each aborted transaction began)."""
        self.max_timestamp = -1
        self.offset_of_max_timestamp = base_offset
        self._next_offset: int | None = base_offset if size == 0 else None
        self._first_batch_timestamp: int | None = None
        last = index.last_entry()
        self._last_index_position = last[1] if last is not None else 0
        last_time = time_index.last_entry()
        if last_time is not None:
            self.max_timestamp, self.offset_of_max_timestamp = last_time
        self._recent_bases: list[int] = []
        self._recent_lasts: list[int] = []
        self._recent_positions: list[int] = []

    # ------------------------------------------------------------------ creating, opening

    @staticmethod
    def paths(dir: str, base_offset: int, suffix: str = "") -> tuple[str, str, str, str]:
        """The segment's files: `.log`, `.index`, `.timeindex`, `.txnindex`."""
        name = f"{dir}/{segment_name(base_offset)}"
        return (name + LOG_SUFFIX + suffix, name + INDEX_SUFFIX + suffix,
                name + TIME_INDEX_SUFFIX + suffix, name + TXN_INDEX_SUFFIX + suffix)

    @classmethod
    def create(cls, fs: LogFileSystem, dir: str, base_offset: int, config: LogConfig,
               now_ms: int, *, suffix: str = "") -> LogSegment:
        """A new empty segment (its four files created empty)."""
        log_path, index_path, time_path, txn_path = cls.paths(dir, base_offset, suffix)
        for path in (log_path, index_path, time_path, txn_path):
            fs.append(path, (b"",))
        return cls(fs, dir, base_offset, config, size=0,
                   index=OffsetIndex(fs, index_path, base_offset,
                                     config.offset_index_entries_max),
                   time_index=TimeIndex(fs, time_path, base_offset,
                                        config.time_index_entries_max),
                   created_ms=now_ms, suffix=suffix,
                   txn_index=TransactionIndex(fs, txn_path))

    @classmethod
    def open(cls, fs: LogFileSystem, dir: str, base_offset: int, config: LogConfig,
             now_ms: int, *, suffix: str = "") -> tuple[LogSegment, bool]:
        """The segment on disk, trusting its indexes if they pass their sanity checks; the
        flag says whether they did (if not, the caller must `recover()` it)."""
        log_path, index_path, time_path, txn_path = cls.paths(dir, base_offset, suffix)
        size = fs.size(log_path)
        index = OffsetIndex.open(fs, index_path, base_offset, config.offset_index_entries_max,
                                 max(size, 1))
        time_index = TimeIndex.open(fs, time_path, base_offset, config.time_index_entries_max)
        sane = index is not None and time_index is not None
        if index is None or time_index is None:
            index = OffsetIndex(fs, index_path, base_offset, config.offset_index_entries_max)
            time_index = TimeIndex(fs, time_path, base_offset, config.time_index_entries_max)
        txn_index, txn_torn = TransactionIndex.open(fs, txn_path)
        txn_lost = txn_index is None and size > 0
        if txn_index is None:  # missing or garbage: the broker rebuilds it from the batches
            txn_index = TransactionIndex(fs, txn_path)
            txn_index.replace_all([])
        segment = cls(fs, dir, base_offset, config, size=size, index=index,
                      time_index=time_index, created_ms=now_ms, suffix=suffix,
                      txn_index=txn_index)
        segment.txn_index_lost = txn_lost
        segment.txn_index_torn = txn_torn
        if sane and len(index) and size == 0:
            sane = False
        if sane and size:
            last = index.last_entry()
            if last is not None and last[0] < base_offset:
                sane = False
        return segment, sane

    # ------------------------------------------------------------------ properties

    @property
    def next_offset(self) -> int:
        """The offset after the segment's last batch (its base offset when empty)."""
        if self._next_offset is None:
            self._next_offset = self._read_next_offset()
        return self._next_offset

    def _read_next_offset(self) -> int:
        last = self.index.last_entry()
        position = last[1] if last is not None else 0
        next_offset = last[0] + 1 if last is not None else self.base_offset
        for _, _, last_offset, _, _ in self.scan(position):
            next_offset = last_offset + 1
        return next_offset

    def first_batch_timestamp(self) -> int:
        """The first batch's max timestamp (what time-based rolling counts from), or -1."""
        if self._first_batch_timestamp is None:
            if self.size == 0:
                return -1
            head = self.fs.read(self.log_path, 0, _SCAN_BYTES)
            self._first_batch_timestamp = _SCAN.unpack(head)[3] if len(head) == _SCAN_BYTES else -1
        return self._first_batch_timestamp

    @property
    def is_full(self) -> bool:
        return self.index.is_full or self.time_index.is_full

    # ------------------------------------------------------------------ appending

    def append(self, parts: Sequence[Buffer], batches: Sequence[BatchInfo]) -> list[int]:
        """Write the parts (the stamped bytes of `batches`, in order) with one gathered
        append, then account for each batch; the position of each batch is returned."""
        self.fs.append(self.log_path, parts)
        positions: list[int] = []
        position = self.size
        for batch in batches:
            positions.append(position)
            self._note_batch(batch.base_offset, batch.last_offset, batch.max_timestamp,
                             position)
            position += batch.size
        self.size = position
        self._next_offset = batches[-1].last_offset + 1
        if self._first_batch_timestamp is None and positions[0] == 0:
            self._first_batch_timestamp = batches[0].max_timestamp
        self.index.write_pending(INDEX_WRITE_BYTES)
        self.time_index.write_pending(INDEX_WRITE_BYTES)
        if len(self._recent_bases) > 2 * RECENT_BATCHES:
            del self._recent_bases[:-RECENT_BATCHES]
            del self._recent_lasts[:-RECENT_BATCHES]
            del self._recent_positions[:-RECENT_BATCHES]
        return positions

    def _note_batch(self, base_offset: int, last_offset: int, max_timestamp: int,
                    position: int) -> None:
        """The one rule for max timestamp and index entries (Kafka's LogSegment.append and
        recover agree on it)."""
        if max_timestamp > self.max_timestamp:
            self.max_timestamp = max_timestamp
            self.offset_of_max_timestamp = last_offset
        if position - self._last_index_position > self.config.index_interval_bytes:
            self.index.add(last_offset, position)
            self.time_index.maybe_add(self.max_timestamp, self.offset_of_max_timestamp)
            self._last_index_position = position
        self._recent_bases.append(base_offset)
        self._recent_lasts.append(last_offset)
        self._recent_positions.append(position)

    def seal(self) -> None:
        """The segment stops being active: its time index gets a last entry holding its max
        timestamp (Kafka's onBecomeInactiveSegment), so a reopen knows it without a scan."""
        if self.size and self.max_timestamp >= 0:
            self.time_index.maybe_add(self.max_timestamp, self.offset_of_max_timestamp,
                                      skip_full_check=True)
        self.index.write_pending()
        self.time_index.write_pending()

    # ------------------------------------------------------------------ scanning

    def scan(self, position: int = 0, end: int | None = None,
             ) -> Iterator[tuple[int, int, int, int, int]]:
        """(position, base offset, last offset, size, max timestamp) of each whole batch from
        `position` (a batch boundary) up to `end` (default: the segment's size), reading
        SCAN_CHUNK_BYTES at a time (only the next header when batches are larger than a
        chunk, so that scanning over big batches does not read their bodies); stops at a
        partial batch."""
        limit = self.size if end is None else end
        read = self.fs.read
        path = self.log_path
        chunk_bytes = SCAN_CHUNK_BYTES
        while limit - position >= _SCAN_BYTES:
            chunk = read(path, position, min(chunk_bytes, limit - position))
            n = len(chunk)
            at = 0
            while at + _SCAN_BYTES <= n:
                base, length, delta, max_timestamp = _SCAN.unpack_from(chunk, at)
                size = length + LOG_OVERHEAD
                if size < HEADER_BYTES or position + at + size > limit:
                    return
                yield position + at, base, base + delta, size, max_timestamp
                at += size
            if at == 0:
                return
            chunk_bytes = _SCAN_BYTES if at > n else SCAN_CHUNK_BYTES
            position += at

    def headers(self, position: int = 0) -> Iterator[tuple[int, BatchHeader]]:
        """(position, full header) of each batch from `position`."""
        for batch_position, *_ in self.scan(position):
            yield batch_position, BatchHeader._make(HEADER.unpack(
                self.fs.read(self.log_path, batch_position, HEADER_BYTES)))

    def find_batch(self, offset: int) -> tuple[int, int, int] | None:
        """(position, base offset, last offset) of the first batch whose last offset is >=
        `offset`, or None if there is none in this segment."""
        bases = self._recent_bases
        if bases and offset >= bases[0]:
            i = bisect_left(self._recent_lasts, offset)
            if i == len(bases):
                return None
            return self._recent_positions[i], bases[i], self._recent_lasts[i]
        _, position = self.index.lookup(offset)
        for batch_position, base, last, _, _ in self.scan(position):
            if last >= offset:
                return batch_position, base, last
        return None

    def _end_within(self, start: int, target: int, limit: int) -> tuple[int, int]:
        """Where a read from the batch at `start` ends so that it stays within `target`:
        (end position, offset after the returned batches). The end is the largest batch
        boundary in (start, target]; if the first batch alone ends past `target`, its end
        (the caller decides whether one oversized batch is allowed)."""
        candidate = start
        positions = self._recent_positions
        if positions and positions[0] <= target:
            candidate = max(candidate, positions[bisect_right(positions, target) - 1])
        floor = self.index.floor_by_position(target)
        if floor is not None and floor[1] > candidate:
            candidate = floor[1]
        end, end_offset = candidate, -1
        for position, base, last, size, _ in self.scan(candidate, limit):
            if position + size > target:
                if position == start:
                    return position + size, last + 1
                return position, base
            end, end_offset = position + size, last + 1
        return end, end_offset

    def read(self, offset: int, max_bytes: int, upper_bound_offset: int,
             min_one_batch: bool) -> tuple[FileSlice | None, int, int] | None:
        """Whole batches from the one holding `offset`: at most `max_bytes` (but a whole
        first batch if `min_one_batch`), every batch wholly below `upper_bound_offset`.
        None if the segment has no batch with a last offset >= `offset` (read on in the next
        segment); else (slice or None if the first batch does not qualify, base offset of the
        first batch, an offset above every returned batch and not above any batch after
        the slice)."""
        found = self.find_batch(offset)
        if found is None:
            return None
        start, base, _ = found
        if base >= upper_bound_offset:
            return None, base, base
        limit = self.size
        next_offset = self.next_offset
        if upper_bound_offset < next_offset:
            bound = self.find_batch(upper_bound_offset)
            if bound is not None:
                limit, next_offset = bound[0], bound[1]
        if limit <= start:
            return None, base, base
        if limit - start <= max_bytes:
            return FileSlice(self.log_path, start, limit - start), base, next_offset
        end, end_offset = self._end_within(start, start + max_bytes, limit)
        if end - start > max_bytes and not min_one_batch:
            return None, base, base
        if end_offset < 0 or end >= limit:
            end, end_offset = limit, next_offset
        return FileSlice(self.log_path, start, end - start), base, end_offset

    # ------------------------------------------------------------------ recovery

    def recover(self, on_batch: Callable[[int, int], None] | None = None) -> RecoverStats:
        """Re-validate every batch (length, magic 2, CRC-32C, offsets increasing and within
        the segment's int32 range), truncate the file at the first invalid one (fsynced),
        rebuild both indexes. `on_batch(partition_leader_epoch, base_offset)` is called for
        every valid batch (the leader epoch cache is rebuilt from it)."""
        self.max_timestamp = -1
        self.offset_of_max_timestamp = self.base_offset
        self._last_index_position = 0
        self._recent_bases, self._recent_lasts, self._recent_positions = [], [], []
        index_path, time_path = self.index.path, self.time_index.path
        self.index = OffsetIndex(self.fs, index_path, self.base_offset,
                                 self.config.offset_index_entries_max)
        self.time_index = TimeIndex(self.fs, time_path, self.base_offset,
                                    self.config.time_index_entries_max)
        file_size = self.fs.size(self.log_path)
        valid = 0
        batches = 0
        expected = self.base_offset
        buf = b""
        buf_start = 0
        first_timestamp = -1
        while True:
            at = valid - buf_start
            if len(buf) - at < HEADER_BYTES:
                if file_size - valid < HEADER_BYTES:
                    break
                buf = self.fs.read(self.log_path, valid, max(RECOVER_CHUNK_BYTES, HEADER_BYTES))
                buf_start, at = valid, 0
                if len(buf) < HEADER_BYTES:
                    break
            header = BatchHeader._make(HEADER.unpack_from(buf, at))
            size = header.batch_length + LOG_OVERHEAD
            if (size < HEADER_BYTES or valid + size > file_size or header.magic != MAGIC
                    or header.base_offset < expected or header.last_offset_delta < 0
                    or header.last_offset - self.base_offset > INT32_MAX):
                break
            if at + size > len(buf):
                buf = self.fs.read(self.log_path, valid, max(RECOVER_CHUNK_BYTES, size))
                buf_start, at = valid, 0
                if len(buf) < size:
                    break
            if compute_crc(buf, at, size) != header.crc:
                break
            if batches == 0:
                first_timestamp = header.max_timestamp
            self._note_batch(header.base_offset, header.last_offset, header.max_timestamp,
                             valid)
            if on_batch is not None:
                on_batch(header.partition_leader_epoch, header.base_offset)
            expected = header.last_offset + 1
            valid += size
            batches += 1
        truncated = file_size - valid
        if truncated:
            self.fs.truncate(self.log_path, valid)
            self.fs.fsync(self.log_path)
        self.size = valid
        self._next_offset = expected
        self.txn_index.truncate_to(expected)  # entries past the valid batches go
        self._first_batch_timestamp = first_timestamp if batches else None
        self.index.replace_all(self.index.entries())
        self.time_index.replace_all(self.time_index.entries())
        self._trim_recent()
        return RecoverStats(batches, valid, truncated)

    def _trim_recent(self) -> None:
        del self._recent_bases[:-RECENT_BATCHES]
        del self._recent_lasts[:-RECENT_BATCHES]
        del self._recent_positions[:-RECENT_BATCHES]

    # ------------------------------------------------------------------ truncation

    def truncate_to(self, offset: int) -> int:
        """Drop every batch whose last offset is >= `offset` (Kafka truncates at batch
        boundaries); returns the base offset of the first batch dropped (`offset` if none:
        so the log may end at min(offset, that))."""
        found = self.find_batch(offset)
        if found is None:
            return offset
        position = found[0]
        dropped = self.size - position
        self.index.truncate_to(offset)
        self.time_index.truncate_to(offset)
        self.fs.truncate(self.log_path, position)
        self.txn_index.truncate_to(offset)
        self.size = position
        self._recent_bases, self._recent_lasts, self._recent_positions = [], [], []
        last_index = self.index.last_entry()
        self._last_index_position = last_index[1] if last_index is not None else 0
        last_time = self.time_index.last_entry()
        self.max_timestamp, self.offset_of_max_timestamp = (
            last_time if last_time is not None else (-1, self.base_offset))
        start = last_index[1] if last_index is not None else 0
        next_offset = last_index[0] + 1 if last_index is not None else self.base_offset
        for _, _, last, _, max_timestamp in self.scan(start):
            if max_timestamp > self.max_timestamp:
                self.max_timestamp, self.offset_of_max_timestamp = max_timestamp, last
            next_offset = last + 1
        self._next_offset = next_offset if position else self.base_offset
        if position == 0:
            self._first_batch_timestamp = None
        assert dropped >= 0
        return found[1]

    # ------------------------------------------------------------------ files

    def write_indexes(self) -> None:
        """Append every queued index entry to the index files."""
        self.index.write_pending()
        self.time_index.write_pending()

    def all_paths(self) -> tuple[str, str, str, str]:
        return self.log_path, self.index.path, self.time_index.path, self.txn_index.path

    def close(self) -> None:
        self.write_indexes()
        for path in self.all_paths():
            self.fs.close(path)
