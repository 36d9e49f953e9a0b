"""`PartitionLog`: one partition's log, a directory `<topic>-<partition>` of segments.

Owns the segments (the last one is active: the only one appended to), the log start offset,
the log end offset (the next offset to assign), the recovery point (every offset below it is
fsynced), the leader epoch cache and the cleaner checkpoint; and the rules for rolling,
reading, retention, truncation, flushing and recovery.

Never does I/O except through the injected `LogFileSystem`; never reads a clock (time comes
in as `now_ms`); never fsyncs on the append or read path: flushing is a plan
(`flush_plan()`) that the runtime runs wherever it likes (a worker thread) and then reports
with `mark_flushed`.

Appending. `append` takes batches the broker validated (a memoryview of each and its
`BatchHeader`) and assigns them consecutive offsets from the log end: each batch is written
as a 16-byte prefix (base offset, batch length, partition leader epoch: the fields Kafka
stamps, none under the CRC) plus a memoryview of its remaining bytes, all of an append in one
gathered write per segment. Every batch that the broker itself writes at the leader
(coordinator records, transaction markers) goes through `append` too, built with
`record_batch.build_batch` at base offset 0. `append_as_is` is for batches whose offsets
and epochs were assigned elsewhere (a follower's fetched batches): nothing is stamped, base
offsets must be >= the log end and increasing (gaps allowed, as compaction leaves them).
LogAppendTime is the broker's job (`record_batch.stamp_log_append_time` before appending,
passing the re-read header).

Rolling: before a batch, a new active segment starts when the current one is non-empty and
would pass `segment.bytes`, or is older than `segment.ms` (minus a deterministic jitter) by
the batches' timestamps as Kafka counts it, or its index might fill up, or the batch's last
offset is beyond int32 of the base offset.

Reading: `read` returns `FileSlice`s of whole batches, from the batch holding the offset,
across segments, up to `max_bytes` (at least one whole batch with `min_one_batch`), never a
batch reaching `upper_bound_offset` (the broker passes the high watermark or the last stable
offset). Offsets below the log start or above the log end are OFFSET_OUT_OF_RANGE; the log
end itself reads nothing.

Persisted per partition, where: the leader epoch checkpoint lives in the directory (written
by the flush); the log start offset, the recovery point and the cleaner checkpoint live in
the data directory's checkpoint files, owned by `LogManager`, and come in as arguments to
`open` (a stale value is safe: a lower recovery point re-validates more, a lower log start
keeps data a DeleteRecords had dropped until the next checkpoint, as in Kafka).

Recovery (`open`): leftovers of a cleaning or a deletion are resolved first, as Kafka does
(`.cleaned` files are discarded, a complete set of `.swap` files replaces the segments its
range covers, `.deleted` files are removed, index files without a segment are removed);
then segments from the one holding the recovery point on are re-validated (`recover()`:
truncated at the first invalid batch, and every later segment dropped), unless the data
directory was shut down cleanly; segments below it trust their indexes unless those are
missing or fail their sanity check (then they are rebuilt). Nothing is ever a crash: what
was truncated or rebuilt is in the `RecoveryReport`.

Deleting segments (retention, DeleteRecords, truncation): the segment's files are renamed
`.deleted` and removed `file.delete.delay.ms` later by `apply_retention` (or by `close`, or
on the next open), so a fetch still sending from them is not cut short; while a cleaning is
in flight nothing is removed, since its worker may be reading those files.
"""

from __future__ import annotations

import contextlib
import struct
import zlib
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple

from zoolog.errors import ZoologError
from zoolog.logstore.files import LogFileSystem
from zoolog.logstore.leader_epoch import CHECKPOINT_NAME, LeaderEpochCache
from zoolog.logstore.log_config import LogConfig
from zoolog.logstore.offset_index import OffsetIndex
from zoolog.logstore.segment import (
    INDEX_SUFFIX,
    INT32_MAX,
    LOG_SUFFIX,
    SEGMENT_SUFFIXES,
    TIME_INDEX_SUFFIX,
    TXN_INDEX_SUFFIX,
    BatchInfo,
    LogSegment,
    segment_name,
)
from zoolog.logstore.time_index import TimeIndex
from zoolog.logstore.txn_index import AbortedTxn
from zoolog.protocol.kafka.errors import Err, KafkaError
from zoolog.protocol.kafka.record_batch import (
    ATTR_LOG_APPEND_TIME,
    LOG_OVERHEAD,
    BatchHeader,
    batch_records,
    control_type,
    read_header,
)

if TYPE_CHECKING:
    from zoolog.logstore.files import FileSlice

_PREFIX = struct.Struct(">qii")
"""base_offset, batch_length, partition_leader_epoch: the first 16 bytes of a batch."""
_PREFIX_BYTES = _PREFIX.size

DELETED_SUFFIX = ".deleted"
CLEANED_SUFFIX = ".cleaned"
SWAP_SUFFIX = ".swap"
RANGE_SUFFIX = ".range"
"""`<base>.range.cleaned` / `.swap`: the end offset of the segments a cleaned segment
replaces (written by the cleaner, read by recovery to complete a swap)."""

RECORDS_BYTES_MAX = 64 << 20
"""Bound on a batch's decompressed records when ListOffsets looks inside one."""


class UnexpectedAppendOffset(ZoologError):
    """`append_as_is` got a batch below the log end or out of order (the replica fetcher
    must truncate first)."""


class RecoveryReport(NamedTuple):
    segments: int
    """Segments in the log after recovery."""
    segments_recovered: int
    """Segments re-validated batch by batch."""
    batches_validated: int
    truncated_bytes: int
    """Bytes cut from the tail of the first invalid segment and the segments after it."""
    segments_dropped: int
    """Segments after an invalid batch, removed."""
    indexes_rebuilt: int
    """Trusted segments whose indexes were missing or inconsistent, rebuilt."""
    leftovers: int
    """`.cleaned`, `.swap`, `.deleted` and orphan index files resolved."""


class AppendInfo(NamedTuple):
    first_offset: int
    last_offset: int
    max_timestamp: int
    offset_of_max_timestamp: int
    """The last offset of the first batch carrying `max_timestamp` (Kafka's shallow
    offset of the max timestamp)."""
    base_offsets: list[int]
    """Each batch's assigned base offset."""
    positions: list[int]
    """Each batch's byte position in the segment it was written to."""


class ReadResult(NamedTuple):
    slices: list[FileSlice]
    size: int
    """Bytes in all slices."""
    first_offset: int
    """Base offset of the first returned batch (the requested offset if none)."""
    next_offset: int
    """An offset above every returned batch and not above any batch after them (the
    requested offset if none)."""


class TimestampAndOffset(NamedTuple):
    timestamp: int
    offset: int
    leader_epoch: int


class FlushPlan(NamedTuple):
    """What a flush must make durable: data files first, then directory names, then the
    leader epoch checkpoint; `offset` becomes the recovery point once it ran."""

    offset: int
    file_paths: tuple[str, ...]
    dir_paths: tuple[str, ...]
    epoch_checkpoint_path: str
    epoch_checkpoint: bytes | None
    dir_generation: int
    truncation_generation: int

    def run(self, fs: LogFileSystem) -> None:
        """Do the fsyncs (safe in a worker thread); a file removed meanwhile is skipped."""
        for path in self.file_paths:
            with contextlib.suppress(FileNotFoundError):
                fs.fsync(path)
        for dir in self.dir_paths:
            fs.fsync_dir(dir)
        if self.epoch_checkpoint is not None:
            fs.write_atomic(self.epoch_checkpoint_path, self.epoch_checkpoint)


def parse_segment_file(name: str) -> tuple[int, str] | None:
    """(base offset, suffix after the digits) of a segment file name, or None."""
    digits, dot, rest = name.partition(".")
    if len(digits) != 20 or not digits.isdigit() or not dot:
        return None
    return int(digits), "." + rest


class PartitionLog:
    """See the module docstring."""

    def __init__(self, fs: LogFileSystem, dir: str, config: LogConfig) -> None:
        self.fs = fs
        self.dir = dir
        self.segments: list[LogSegment] = []
        self._config = config
        self._bases: list[int] = []
        self.log_start_offset = 0
        self._log_end_offset = 0
        self.recovery_point = 0
        self.txn_index_lost_from = 0
        """Aborted-transaction entries of markers from this offset on may be missing even
        below a producer snapshot (a `.txnindex` file was missing or garbage)."""
        self.txn_index_unsynced_from = 0
        """Entries of markers from this offset on may be missing unless a producer snapshot
        above them was taken (entries are synced before every snapshot): an unclean stop
        (the recovery point) or a torn `.txnindex`. The broker rebuilds missing entries
        (`rebuild_aborted_from`) from the batches it replays."""
        self.cleaner_checkpoint = 0
        self.epochs = LeaderEpochCache()
        self.cleaning: object | None = None
        """The cleaner's plan in flight (set by `cleaner.plan`, cleared by install/abandon)."""
        self.closed = False
        self._dir_generation = 0
        self._dir_synced_generation = 0
        self._last_flush_ms = 0
        self._pending_deletes: list[tuple[list[str], int | None]] = []
        self._truncated: dict[str, int] = {}
        """Log files truncated since their last fsync -> the truncation's generation: a
        truncation is durable only once fsynced, even below the recovery point."""
        self._truncation_generation = 0
        self._jitter_ms: dict[int, int] = {}

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, fs: LogFileSystem, dir: str, config: LogConfig, now_ms: int, *,
             recovery_point: int = 0, log_start_offset: int = 0, cleaner_checkpoint: int = 0,
             clean_shutdown: bool = False) -> tuple[PartitionLog, RecoveryReport]:
        """Open (and recover) the log in `dir`, creating its first segment if it has none."""
        log = cls(fs, dir, config)
        log._last_flush_ms = now_ms
        leftovers = log._resolve_leftovers(now_ms)
        log.epochs = LeaderEpochCache.load(fs, dir)
        bases = sorted(parse[0] for name in fs.list(dir)
                       if (parse := parse_segment_file(name)) is not None
                       and parse[1] == LOG_SUFFIX)
        sane: list[bool] = []
        for base in bases:
            segment, ok = LogSegment.open(fs, dir, base, config, now_ms)
            log.segments.append(segment)
            sane.append(ok)
        log._bases = bases
        recovered = batches = truncated = dropped = rebuilt = 0
        if clean_shutdown:
            first_recover = len(bases)
        else:
            first_recover = max(0, bisect_right(bases, recovery_point) - 1)
        for i in range(min(first_recover, len(bases))):
            if not sane[i]:
                log.segments[i].recover()
                rebuilt += 1
                if i < len(bases) - 1:
                    log.segments[i].seal()
        if first_recover < len(bases):
            log.epochs.truncate_from_end(bases[first_recover])
            epochs = log.epochs

            def assign(epoch: int, base_offset: int) -> None:
                if epoch > epochs.latest_epoch:
                    epochs.assign(epoch, base_offset)

            i = first_recover
            while i < len(log.segments):
                segment = log.segments[i]
                stats = segment.recover(assign)
                recovered += 1
                batches += stats.batches
                truncated += stats.truncated_bytes
                last = i == len(log.segments) - 1
                if stats.truncated_bytes and not last:
                    for later in log.segments[i + 1 :]:
                        truncated += later.size
                        dropped += 1
                        log._remove_segment_files(later)
                    del log.segments[i + 1 :]
                    del log._bases[i + 1 :]
                    last = True
                if not last:
                    segment.seal()
                i += 1
        if not log.segments:
            log._add_segment(LogSegment.create(fs, dir, max(log_start_offset, 0), config,
                                               now_ms))
        log._log_end_offset = log.segments[-1].next_offset
        log.log_start_offset = max(log_start_offset, log.segments[0].base_offset)
        if log.log_start_offset > log._log_end_offset:
            log._truncate_fully_and_start_at(log.log_start_offset, now_ms)
        log.recovery_point = (recovery_point if clean_shutdown
                              else min(recovery_point, log._log_end_offset))
        log.recovery_point = min(max(log.recovery_point, log.log_start_offset),
                                 log._log_end_offset)
        log.cleaner_checkpoint = min(max(cleaner_checkpoint, log.log_start_offset),
                                     log._log_end_offset)
        log.epochs.truncate_from_end(log._log_end_offset)
        log.epochs.truncate_from_start(log.log_start_offset)
        end = log._log_end_offset
        log.txn_index_lost_from = min((s.base_offset for s in log.segments
                                       if s.txn_index_lost), default=end)
        unsynced = [s.base_offset for s in log.segments if s.txn_index_torn]
        if not clean_shutdown:
            unsynced.append(log.recovery_point)
        log.txn_index_unsynced_from = min(unsynced, default=end)
        if leftovers or dropped or truncated:
            fs.fsync_dir(dir)
        report = RecoveryReport(len(log.segments), recovered, batches, truncated, dropped,
                                rebuilt, leftovers)
        return log, report

    def _resolve_leftovers(self, now_ms: int) -> int:
        """Kafka's handling of interrupted swaps and deletions (see the module docstring)."""
        fs, dir = self.fs, self.dir
        names = fs.list(dir)
        count = 0
        parsed = [(name, p[0], p[1]) for name in names
                  if (p := parse_segment_file(name)) is not None]
        cleaned_log_bases = [base for _, base, suffix in parsed
                             if suffix == LOG_SUFFIX + CLEANED_SUFFIX]
        min_cleaned = min(cleaned_log_bases, default=None)
        swap_bases = sorted(base for _, base, suffix in parsed
                            if suffix == LOG_SUFFIX + SWAP_SUFFIX)
        valid_swaps = [b for b in swap_bases if min_cleaned is None or b < min_cleaned]
        for name, base, suffix in parsed:
            if suffix.endswith(DELETED_SUFFIX) or suffix.endswith(CLEANED_SUFFIX) or (
                    suffix.endswith(SWAP_SUFFIX) and base not in valid_swaps):
                fs.remove(f"{dir}/{name}")
                count += 1
        live = sorted(base for _, base, suffix in parsed if suffix == LOG_SUFFIX)
        for swap_base in valid_swaps:
            log_swap = f"{dir}/{segment_name(swap_base)}{LOG_SUFFIX}{SWAP_SUFFIX}"
            range_swap = f"{dir}/{segment_name(swap_base)}{RANGE_SUFFIX}{SWAP_SUFFIX}"
            end = self._swap_end(log_swap, range_swap, swap_base, now_ms)
            for base in [b for b in live if swap_base <= b < end]:
                for suffix in SEGMENT_SUFFIXES:
                    fs.remove(f"{dir}/{segment_name(base)}{suffix}")
                live.remove(base)
            for suffix in (INDEX_SUFFIX, TIME_INDEX_SUFFIX):
                fs.remove(f"{dir}/{segment_name(swap_base)}{suffix}{SWAP_SUFFIX}")
                fs.remove(f"{dir}/{segment_name(swap_base)}{suffix}")
            txn_swap = f"{dir}/{segment_name(swap_base)}{TXN_INDEX_SUFFIX}{SWAP_SUFFIX}"
            if TXN_INDEX_SUFFIX + SWAP_SUFFIX in {s for n, b, s in parsed if b == swap_base}:
                fs.rename(txn_swap, f"{dir}/{segment_name(swap_base)}{TXN_INDEX_SUFFIX}")
            fs.rename(log_swap, f"{dir}/{segment_name(swap_base)}{LOG_SUFFIX}")
            fs.remove(range_swap)
            count += 1
            live.append(swap_base)
        live_set = set(live)
        for name, base, suffix in parsed:
            if (suffix in (INDEX_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX)
                    and base not in live_set):
                fs.remove(f"{dir}/{name}")
                count += 1
        return count

    def _swap_end(self, log_swap: str, range_swap: str, base: int, now_ms: int) -> int:
        try:
            return int(self.fs.read(range_swap, 0, 64).decode("ascii"))
        except (FileNotFoundError, ValueError, UnicodeDecodeError):
            pass
        size = self.fs.size(log_swap)
        probe = LogSegment(self.fs, self.dir, base, self.config, size=size,
                           index=OffsetIndex(self.fs, "", base, 1),
                           time_index=TimeIndex(self.fs, "", base, 1),
                           created_ms=now_ms, suffix=SWAP_SUFFIX)
        end = base
        for _, _, last, _, _ in probe.scan(0):
            end = last + 1
        return end

    # ------------------------------------------------------------------ properties

    @property
    def log_end_offset(self) -> int:
        return self._log_end_offset

    @property
    def active(self) -> LogSegment:
        return self.segments[-1]

    @property
    def active_segment_base_offset(self) -> int:
        return self.segments[-1].base_offset

    @property
    def size(self) -> int:
        return sum(s.size for s in self.segments)

    @property
    def config(self) -> LogConfig:
        return self._config

    @config.setter
    def config(self, config: LogConfig) -> None:
        """A topic config change: the log and its segments use the new values from now."""
        self._config = config
        for segment in getattr(self, "segments", ()):
            segment.config = config

    def update_config(self, config: LogConfig) -> None:
        self.config = config

    # ------------------------------------------------------------------ appending

    def append(self, batches: Sequence[tuple[memoryview, BatchHeader]], leader_epoch: int,
               now_ms: int) -> AppendInfo:
        """Assign offsets from the log end, stamp base offset and leader epoch, write."""
        if not batches:
            raise ValueError("append of no batches")
        self._check_open()
        offset = self._log_end_offset
        first = offset
        segment = self.segments[-1]
        parts: list[memoryview | bytes] = []
        infos: list[BatchInfo] = []
        pending_bytes = 0
        base_offsets: list[int] = []
        positions: list[int] = []
        max_timestamp = -1
        offset_of_max = offset
        pack = _PREFIX.pack
        for view, header in batches:
            size = header.batch_length + 12
            last = offset + header.last_offset_delta
            if self._should_roll(segment, pending_bytes, len(infos), size, header.max_timestamp,
                                 last, now_ms):
                if infos:
                    positions += segment.append(parts, infos)
                    parts, infos, pending_bytes = [], [], 0
                segment = self._roll(offset, now_ms)
            parts.append(pack(offset, header.batch_length, leader_epoch))
            parts.append(view[_PREFIX_BYTES:size])
            infos.append(BatchInfo(offset, last, header.max_timestamp, size))
            base_offsets.append(offset)
            pending_bytes += size
            if header.max_timestamp > max_timestamp:
                max_timestamp = header.max_timestamp
                offset_of_max = last
            offset = last + 1
        positions += segment.append(parts, infos)
        self._log_end_offset = offset
        if leader_epoch >= 0:
            self.epochs.assign(leader_epoch, first)
        return AppendInfo(first, offset - 1, max_timestamp, offset_of_max, base_offsets,
                          positions)

    def append_as_is(self, batches: Sequence[tuple[memoryview, BatchHeader]],
                     now_ms: int) -> AppendInfo:
        """Append batches whose offsets and leader epochs are already set (replication):
        UnexpectedAppendOffset if one starts below the log end or below its predecessor."""
        if not batches:
            raise ValueError("append of no batches")
        self._check_open()
        expected = self._log_end_offset
        segment = self.segments[-1]
        parts: list[memoryview | bytes] = []
        infos: list[BatchInfo] = []
        pending_bytes = 0
        positions: list[int] = []
        max_timestamp = -1
        offset_of_max = expected
        for view, header in batches:
            if header.base_offset < expected:
                raise UnexpectedAppendOffset(
                    f"{self.dir}: batch at offset {header.base_offset} is below {expected}")
            size = header.batch_length + 12
            last = header.last_offset
            if self._should_roll(segment, pending_bytes, len(infos), size, header.max_timestamp,
                                 last, now_ms):
                if infos:
                    positions += segment.append(parts, infos)
                    parts, infos, pending_bytes = [], [], 0
                segment = self._roll(header.base_offset, now_ms)
            parts.append(view[:size])
            infos.append(BatchInfo(header.base_offset, last, header.max_timestamp, size))
            pending_bytes += size
            if header.max_timestamp > max_timestamp:
                max_timestamp = header.max_timestamp
                offset_of_max = last
            epoch = header.partition_leader_epoch
            if epoch >= 0 and epoch > self.epochs.latest_epoch:
                self.epochs.assign(epoch, header.base_offset)
            expected = last + 1
        positions += segment.append(parts, infos)
        first = batches[0][1].base_offset
        self._log_end_offset = expected
        return AppendInfo(first, expected - 1, max_timestamp, offset_of_max,
                          [h.base_offset for _, h in batches], positions)

    def _should_roll(self, segment: LogSegment, pending_bytes: int, pending_batches: int,
                     size: int, max_timestamp: int, last_offset: int, now_ms: int) -> bool:
        config = self.config
        used = segment.size + pending_bytes
        if used == 0:
            return last_offset - segment.base_offset > INT32_MAX
        if used + size > config.segment_bytes:
            return True
        if last_offset - segment.base_offset > INT32_MAX:
            return True
        if (len(segment.index) + pending_batches + 1 > segment.index.entries_max
                or len(segment.time_index) + pending_batches + 2 > segment.time_index.entries_max):
            return True
        if segment.size == 0:
            return False  # the segment's first batch is in this very append
        first_timestamp = segment.first_batch_timestamp()
        waited = (max_timestamp - first_timestamp if first_timestamp >= 0
                  else now_ms - segment.created_ms)
        return waited > config.segment_ms - self._jitter(segment.base_offset)

    def _jitter(self, base_offset: int) -> int:
        jitter_ms = self.config.segment_jitter_ms
        if jitter_ms <= 0:
            return 0
        cached = self._jitter_ms.get(base_offset)
        if cached is None:
            bound = min(jitter_ms, self.config.segment_ms)
            cached = zlib.crc32(f"{self.dir}/{base_offset}".encode()) % max(bound, 1)
            self._jitter_ms[base_offset] = cached
        return cached

    def _roll(self, base_offset: int, now_ms: int) -> LogSegment:
        """Seal the active segment and start a new one at `base_offset`."""
        old = self.segments[-1]
        if old.size == 0:  # an empty active segment is replaced rather than kept
            self.segments.pop()
            self._bases.pop()
            self._remove_segment_files(old)
        else:
            old.seal()
        segment = LogSegment.create(self.fs, self.dir, base_offset, self.config, now_ms)
        self._add_segment(segment)
        return segment

    def _add_segment(self, segment: LogSegment) -> None:
        self.segments.append(segment)
        self._bases.append(segment.base_offset)
        self._dir_generation += 1

    def roll(self, now_ms: int) -> None:
        """Start a new active segment at the log end (if the active one is not empty)."""
        self._check_open()
        if self.segments[-1].size:
            self._roll(self._log_end_offset, now_ms)

    # ------------------------------------------------------------------ reading

    # ------------------------------------------------------------------ aborted transactions

    def _segment_index_for(self, offset: int) -> int:
        return max(0, bisect_right(self._bases, offset) - 1)

    def segment_end(self, offset: int) -> int:
        """The offset after the segment holding `offset` (its next segment's base)."""
        return self.segments[self._segment_index_for(offset)].next_offset

    def add_aborted(self, entry: AbortedTxn) -> None:
        """Record an aborted transaction whose ABORT marker was just appended at
        `entry.last_offset` (in the segment holding the marker)."""
        self._check_open()
        self.segments[self._segment_index_for(entry.last_offset)].txn_index.append(entry)

    def aborted_between(self, start_offset: int, end_offset: int) -> list[AbortedTxn]:
        """Aborted transactions overlapping [start_offset, end_offset): what a
        read_committed fetch of that range returns (Kafka's collectAbortedTransactions).
        An entry's marker lies at or after its first offset, so the search starts at the
        segment holding `start_offset`; it may have to go on past `end_offset` (a
        transaction begun in the range can end much later) and stops at the first entry
        whose last stable offset reaches `end_offset`: no transaction open in the range is
        left after it."""
        out: list[AbortedTxn] = []
        for segment in self.segments[self._segment_index_for(start_offset):]:
            for entry in segment.txn_index.entries:
                if entry.last_offset >= start_offset and entry.first_offset < end_offset:
                    out.append(entry)
                if entry.last_stable_offset >= end_offset:
                    return out
        return out

    def sync_txn_indexes(self) -> None:
        """Make every aborted-transaction entry durable (before a producer snapshot)."""
        for segment in self.segments:
            segment.txn_index.sync()

    def rebuild_aborted_from(self, offset: int, entries: Sequence[AbortedTxn]) -> None:
        """Replace the aborted-transaction entries whose markers lie at or after `offset`
        with `entries` (rebuilt by the broker from the batches)."""
        for segment in self.segments:
            if segment.next_offset <= offset:
                continue
            kept = [e for e in segment.txn_index.entries if e.last_offset < offset]
            mine = [e for e in entries
                    if segment.base_offset <= e.last_offset < segment.next_offset]
            if kept + mine != segment.txn_index.entries:
                segment.txn_index.replace_all(kept + mine)
                segment.txn_index.sync()  # the recovery point already covers these markers
        self.txn_index_lost_from = self.txn_index_unsynced_from = self._log_end_offset

    def read(self, offset: int, max_bytes: int, upper_bound_offset: int | None = None,
             min_one_batch: bool = True) -> ReadResult:
        """See the module docstring."""
        end = self._log_end_offset
        if offset < self.log_start_offset or offset > end:
            raise KafkaError(Err.OFFSET_OUT_OF_RANGE,
                             f"offset {offset} is outside [{self.log_start_offset}, {end}]")
        bound = end if upper_bound_offset is None or upper_bound_offset > end \
            else upper_bound_offset
        if offset >= bound:
            return ReadResult([], 0, offset, offset)
        segments = self.segments
        i = bisect_right(self._bases, offset) - 1
        if i < 0:
            i = 0
        slices: list[FileSlice] = []
        total = 0
        first_offset = -1
        next_offset = offset
        remaining = max_bytes
        need_one = min_one_batch
        while i < len(segments):
            segment = segments[i]
            got = segment.read(offset, remaining, bound, need_one)
            if got is None:
                i += 1
                continue
            piece, base, after = got
            if piece is None:
                break
            if first_offset < 0:
                first_offset = base
            slices.append(piece)
            total += piece.size
            remaining -= piece.size
            next_offset = after
            need_one = False
            if (after >= bound or remaining <= 0
                    or piece.position + piece.size < segment.size):
                break
            offset = after
            i += 1
        if first_offset < 0:
            first_offset = offset
        return ReadResult(slices, total, first_offset, next_offset)

    def read_bytes(self, offset: int, max_bytes: int, upper_bound_offset: int | None = None,
                   min_one_batch: bool = True) -> bytes:
        """`read`, with the slices' bytes (for tests, tools and small internal reads)."""
        result = self.read(offset, max_bytes, upper_bound_offset, min_one_batch)
        return b"".join(self.fs.read(s.path, s.position, s.size) for s in result.slices)

    def headers_from(self, offset: int) -> Iterator[BatchHeader]:
        """Every batch header from the batch holding `offset` to the log end."""
        i = max(0, bisect_right(self._bases, offset) - 1)
        for segment in list(self.segments[i:]):
            found = segment.find_batch(offset)
            if found is None:
                continue
            for _, header in segment.headers(found[0]):
                yield header

    def control_type(self, header: BatchHeader) -> int | None:
        """CONTROL_ABORT / CONTROL_COMMIT of the control batch `header` (read from its
        segment: the kind is in the record's key), None if it is not found or unreadable."""
        i = max(0, bisect_right(self._bases, header.base_offset) - 1)
        segment = self.segments[i]
        found = segment.find_batch(header.base_offset)
        if found is None or found[1] != header.base_offset:
            return None
        data = self.fs.read(segment.log_path, found[0], header.batch_length + LOG_OVERHEAD)
        try:
            records = batch_records(data, 1 << 20)
        except (KafkaError, ValueError, IndexError):
            return None
        return control_type(records[0]) if records else None

    def offset_for_timestamp(self, timestamp_ms: int) -> TimestampAndOffset | None:
        """ListOffsets by timestamp: the first record (at or above the log start) whose
        timestamp is >= `timestamp_ms`, looked up in the first batch whose max timestamp
        is; None if no batch has one."""
        for segment in self.segments:
            if segment.max_timestamp < timestamp_ms or segment.next_offset <= \
                    self.log_start_offset:
                continue
            start = max(segment.time_index.lookup(timestamp_ms), self.log_start_offset)
            _, position = segment.index.lookup(start)
            for batch_position, _, last, size, max_timestamp in segment.scan(position):
                if max_timestamp >= timestamp_ms and last >= self.log_start_offset:
                    return self._record_at_or_after(segment, batch_position, size,
                                                    timestamp_ms)
        return None

    def max_timestamp_and_offset(self) -> TimestampAndOffset | None:
        """ListOffsets MAX_TIMESTAMP (-3): the largest timestamp and the offset of the first
        record carrying it; None for an empty log."""
        best: LogSegment | None = None
        for segment in self.segments:
            if segment.size and (best is None or segment.max_timestamp > best.max_timestamp):
                best = segment
        if best is None:
            return None
        found = best.find_batch(best.offset_of_max_timestamp)
        if found is None:
            return TimestampAndOffset(best.max_timestamp, best.offset_of_max_timestamp, -1)
        size = read_header(self.fs.read(best.log_path, found[0], 61)).size
        return self._record_at_or_after(best, found[0], size, best.max_timestamp)

    def _record_at_or_after(self, segment: LogSegment, position: int, size: int,
                            timestamp_ms: int) -> TimestampAndOffset:
        data = self.fs.read(segment.log_path, position, size)
        header = read_header(data)
        floor = self.log_start_offset
        if header.attributes & ATTR_LOG_APPEND_TIME:
            return TimestampAndOffset(header.max_timestamp, max(header.base_offset, floor),
                                      header.partition_leader_epoch)
        try:
            records = batch_records(data, RECORDS_BYTES_MAX)
        except KafkaError:
            records = []
        for record in records:
            timestamp = header.base_timestamp + record.timestamp_delta
            offset = header.base_offset + record.offset_delta
            if timestamp >= timestamp_ms and offset >= floor:
                return TimestampAndOffset(timestamp, offset, header.partition_leader_epoch)
        return TimestampAndOffset(header.max_timestamp, max(header.base_offset, floor),
                                  header.partition_leader_epoch)

    # ------------------------------------------------------------------ deleting

    def delete_records_before(self, offset: int, now_ms: int | None = None) -> int:
        """DeleteRecords: raise the log start to `offset` (OFFSET_OUT_OF_RANGE above the log
        end), then delete the segments wholly below it; returns the new log start."""
        self._check_open()
        if offset > self._log_end_offset or offset < 0:
            raise KafkaError(Err.OFFSET_OUT_OF_RANGE,
                             f"offset {offset} is beyond the log end {self._log_end_offset}")
        if offset > self.log_start_offset:
            self.log_start_offset = offset
            self.epochs.truncate_from_start(offset)
            self.cleaner_checkpoint = max(self.cleaner_checkpoint, offset)
            self.recovery_point = max(self.recovery_point, min(offset, self._log_end_offset))
        self._delete_prefix(lambda segment, next_base: next_base <= self.log_start_offset,
                            None, now_ms)
        return self.log_start_offset

    def apply_retention(self, now_ms: int, upper_bound_offset: int | None = None) -> int:
        """Delete segments below the log start, then (for cleanup.policy delete) by
        retention.ms (the segment's max timestamp) and retention.bytes (the log's size);
        never the active segment, never one reaching `upper_bound_offset` (the high
        watermark). Also removes `.deleted` files whose delay passed. Returns the number of
        segments deleted."""
        self._check_open()
        deleted = self._delete_prefix(
            lambda segment, next_base: next_base <= self.log_start_offset,
            upper_bound_offset, now_ms)
        config = self.config
        if config.delete and config.retention_ms >= 0:
            deleted += self._delete_prefix(
                lambda segment, next_base: (segment.max_timestamp >= 0 and
                                            now_ms - segment.max_timestamp > config.retention_ms),
                upper_bound_offset, now_ms)
        if config.delete and config.retention_bytes >= 0:
            excess = [self.size - config.retention_bytes]

            def over(segment: LogSegment, next_base: int) -> bool:
                if excess[0] - segment.size >= 0:
                    excess[0] -= segment.size
                    return True
                return False

            deleted += self._delete_prefix(over, upper_bound_offset, now_ms)
        self._remove_due_files(now_ms)
        return deleted

    def _delete_prefix(self, predicate: Callable[[LogSegment, int], bool],
                       upper_bound_offset: int | None,
                       now_ms: int | None) -> int:
        """Delete the longest prefix of non-active segments that `predicate(segment,
        next segment's base offset)` holds for."""
        bound = self._log_end_offset if upper_bound_offset is None else upper_bound_offset
        count = 0
        while len(self.segments) > 1:
            segment, next_base = self.segments[0], self.segments[1].base_offset
            if next_base > bound or not predicate(segment, next_base):
                break
            self.segments.pop(0)
            self._bases.pop(0)
            self._schedule_delete(segment, now_ms)
            count += 1
        if count:
            self._dir_generation += 1
            first = self.segments[0].base_offset
            if first > self.log_start_offset:
                self.log_start_offset = first
                self.epochs.truncate_from_start(first)
            self.cleaner_checkpoint = max(self.cleaner_checkpoint, self.log_start_offset)
            self.recovery_point = max(self.recovery_point, self.log_start_offset)
        return count

    def _schedule_delete(self, segment: LogSegment, now_ms: int | None) -> None:
        paths: list[str] = []
        for path in segment.all_paths():
            try:
                self.fs.rename(path, path + DELETED_SUFFIX)
            except FileNotFoundError:
                continue
            paths.append(path + DELETED_SUFFIX)
        due = None if now_ms is None else now_ms + self.config.file_delete_delay_ms
        self._pending_deletes.append((paths, due))
        if now_ms is not None:
            self._remove_due_files(now_ms)

    def _remove_due_files(self, now_ms: int | None) -> None:
        """Remove `.deleted` files whose delay passed (all with `now_ms=None`), unless a
        cleaning is in flight."""
        if self.cleaning is not None or not self._pending_deletes:
            return
        kept: list[tuple[list[str], int | None]] = []
        for paths, due in self._pending_deletes:
            if due is None and now_ms is not None:
                due = now_ms + self.config.file_delete_delay_ms
            if now_ms is None or (due is not None and due <= now_ms):
                for path in paths:
                    self.fs.remove(path)
            else:
                kept.append((paths, due))
        self._pending_deletes = kept

    def _remove_segment_files(self, segment: LogSegment) -> None:
        for path in segment.all_paths():
            self.fs.remove(path)
        self._dir_generation += 1

    def truncate_to(self, offset: int, now_ms: int | None = None) -> None:
        """Drop every batch with a last offset >= `offset` (a follower truncating to its
        leader); below the log start, the log is emptied and restarts at `offset`."""
        self._check_open()
        if offset >= self._log_end_offset:
            return
        if offset < self.log_start_offset:
            self._truncate_fully_and_start_at(offset, now_ms or 0)
            return
        found = None
        for segment in reversed(self.segments):
            if segment.base_offset <= offset or segment is self.segments[0]:
                found = segment.find_batch(offset)
                break
        if found is not None and found[1] < self.log_start_offset:
            # the batch holding `offset` starts below the log start: nothing stays
            self._truncate_fully_and_start_at(offset, now_ms or 0)
            return
        while len(self.segments) > 1 and self.segments[-1].base_offset >= offset:
            segment = self.segments.pop()
            self._bases.pop()
            self._schedule_delete(segment, now_ms)
            self._dir_generation += 1
        dropped_base = self.segments[-1].truncate_to(offset)
        self._truncation_generation += 1
        self._truncated[self.segments[-1].log_path] = self._truncation_generation
        offset = min(offset, dropped_base)
        self._log_end_offset = offset
        self.recovery_point = min(self.recovery_point, offset)
        self.cleaner_checkpoint = min(self.cleaner_checkpoint, offset)
        self.epochs.truncate_from_end(offset)

    def _truncate_fully_and_start_at(self, offset: int, now_ms: int) -> None:
        for segment in self.segments:
            self._schedule_delete(segment, None)
        self.segments, self._bases = [], []
        self._add_segment(LogSegment.create(self.fs, self.dir, offset, self.config, now_ms))
        self._log_end_offset = offset
        self.log_start_offset = offset
        self.recovery_point = offset
        self.cleaner_checkpoint = offset
        self.epochs = LeaderEpochCache()
        self.epochs.dirty = True

    # ------------------------------------------------------------------ flushing

    @property
    def flush_point(self) -> int:
        """The recovery point the next flush reaches: the log end."""
        return self._log_end_offset

    def unflushed_paths(self) -> list[str]:
        """The files holding data at or above the recovery point, with their indexes."""
        paths: list[str] = []
        point = self.recovery_point
        segments = self.segments
        for i in range(len(segments) - 1, -1, -1):
            if i < len(segments) - 1 and segments[i + 1].base_offset <= point:
                break
            paths.extend(segments[i].all_paths())
        paths.extend(p for p in self._truncated if p not in paths)
        return paths

    def flush_plan(self) -> FlushPlan:
        """What to fsync to move the recovery point to the log end (see `FlushPlan`)."""
        for segment in self.segments[-2:]:
            segment.write_indexes()
        dirs = (self.dir,) if self._dir_generation != self._dir_synced_generation else ()
        return FlushPlan(self._log_end_offset, tuple(self.unflushed_paths()), dirs,
                         f"{self.dir}/{CHECKPOINT_NAME}",
                         self.epochs.checkpoint_bytes() if self.epochs.dirty else None,
                         self._dir_generation, self._truncation_generation)

    def mark_flushed(self, plan: FlushPlan | int, now_ms: int | None = None) -> None:
        """A flush ran: the recovery point moves up to its offset (never past the log end:
        a truncation may have happened meanwhile)."""
        offset = plan if isinstance(plan, int) else plan.offset
        if isinstance(plan, FlushPlan):
            self._dir_synced_generation = max(self._dir_synced_generation,
                                              plan.dir_generation)
            if plan.epoch_checkpoint == self.epochs.checkpoint_bytes():
                self.epochs.dirty = False
            self._truncated = {p: g for p, g in self._truncated.items()
                               if g > plan.truncation_generation}
        self.recovery_point = max(self.recovery_point, min(offset, self._log_end_offset))
        if now_ms is not None:
            self._last_flush_ms = now_ms

    def flush(self, now_ms: int | None = None) -> None:
        """Flush here and now (tests, close)."""
        plan = self.flush_plan()
        plan.run(self.fs)
        self.mark_flushed(plan, now_ms)

    def needs_flush(self, now_ms: int) -> bool:
        """By flush.messages and flush.ms (Kafka's defaults never ask), or because a
        segment was rolled since the last flush (Kafka flushes a rolled segment at once)."""
        unflushed = self._log_end_offset - self.recovery_point
        if unflushed <= 0:
            return (self._dir_generation != self._dir_synced_generation or self.epochs.dirty
                    or bool(self._truncated))
        if self.recovery_point < self.segments[-1].base_offset:
            return True
        return (unflushed >= self.config.flush_messages
                or now_ms - self._last_flush_ms >= self.config.flush_ms)

    # ------------------------------------------------------------------ closing

    def close(self, flush: bool = True) -> None:
        """Seal the active segment's time index, flush (unless told not to), remove pending
        `.deleted` files, release file handles."""
        if self.closed:
            return
        self.segments[-1].seal()
        if flush:
            self.flush()
        self._remove_due_files(None)
        for segment in self.segments:
            segment.close()
        self.closed = True

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError(f"{self.dir}: the log is closed")

