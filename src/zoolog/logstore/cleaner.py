"""Log compaction (cleanup.policy=compact): keep the latest record of every key.

Owns the three steps of one cleaning of one `PartitionLog`, split by thread:

* `plan(log, now_ms)` (main thread, no I/O): decides whether the log is dirty enough (the
  bytes of non-active segments from the cleaner checkpoint on, over all non-active bytes, >=
  min.cleanable.dirty.ratio; or max.compaction.lag.ms passed), which segments are cleanable
  (below the active segment, below the first unstable offset the broker passes, and older
  than min.compaction.lag.ms) and how they are grouped into output segments (each group at
  most segment.bytes). It records itself as the log's cleaning in flight.
* `run(plan)` (any thread): builds key -> latest offset over the dirty segments (bounded by
  `keys_max`; a full map ends the cleaning early at a segment boundary), then rewrites every
  group into `<base>.log.cleaned` (+ `.index.cleaned`, `.timeindex.cleaned` and
  `.range.cleaned` holding the end offset of the replaced segments), fsynced. It reads the
  plan's segment files and writes only new files: it never touches the `PartitionLog`.
* `install(log, result)` (main thread): if every replaced segment is still in the log
  unchanged, renames the outputs `.cleaned` -> `.swap` (highest base first), fsyncs the
  directory (the commit point), renames the old segments `.deleted` (removed later, like
  retention's), renames `.swap` -> final names, swaps the new segments into the log and
  moves the cleaner checkpoint. Otherwise (retention, truncation or close got there first)
  it discards the outputs. `abandon(log, plan)` discards after a failed `run`.

Crash safety is by suffix, resolved by `PartitionLog.open`: `.cleaned` files are discarded;
`.swap` files count only if no `.log.cleaned` with a lower or equal base remains (so a crash in
the middle of the renames keeps the old segments), and then replace every segment whose base
lies in the swap's range; `.deleted` files are removed.

What is kept, per batch: records whose key's latest offset (over the dirty section) is not
above theirs; records with a null key are dropped (a compacted topic never accepts them);
tombstones (null value) are dropped once a previous cleaning has seen them (they lie below
the cleaner checkpoint) and their batch's max timestamp is older than delete.retention.ms
(zoolog's delete horizon, by batch timestamp rather than Kafka's per-batch horizon stamp).
A batch whose records all stay is copied byte for byte; otherwise it is rebuilt keeping base
offset, producer id/epoch, base sequence, transactional bit, timestamp type, partition
leader epoch and codec, and each kept record's offset; a batch left empty is dropped, unless
the broker named it as a producer's last batch (`producer_last_offsets`), which keeps it as
an empty batch so the producer's sequence survives. Control batches are kept as they are.
Records of aborted transactions (a transactional batch inside an entry of the segments'
`.txnindex`, captured by the plan) are neither mapped nor kept: an aborted value must never
shadow a committed one. Not done: removing obsolete markers (Kafka drops a marker once its
transaction's records are gone; zoolog keeps markers, a few bytes each).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from zoolog.logstore.files import LogFileSystem
from zoolog.logstore.log_config import LogConfig
from zoolog.logstore.partition_log import (
    CLEANED_SUFFIX,
    DELETED_SUFFIX,
    RANGE_SUFFIX,
    SWAP_SUFFIX,
    PartitionLog,
)
from zoolog.logstore.segment import INT32_MAX, BatchInfo, LogSegment, segment_name
from zoolog.protocol.kafka.record_batch import (
    ATTR_LOG_APPEND_TIME,
    HEADER,
    HEADER_BYTES,
    LOG_OVERHEAD,
    BatchHeader,
    Record,
    batch_records,
    build_batch,
)

KEYS_MAX = 1_000_000
"""Most distinct keys one cleaning maps (about 100 MB of Python objects for short keys)."""
READ_CHUNK_BYTES = 4 << 20
WRITE_CHUNK_BYTES = 1 << 20
RECORDS_BYTES_MAX = 64 << 20
"""Bound on one batch's decompressed records."""

_CRC_FIELD = struct.Struct(">I")


@dataclass(frozen=True)
class SourceSegment:
    """A segment as the plan saw it (run reads only these fields)."""

    base_offset: int
    log_path: str
    size: int
    segment: LogSegment = field(compare=False, repr=False)


@dataclass(frozen=True)
class CleanPlan:
    fs: LogFileSystem
    dir: str
    config: LogConfig
    now_ms: int
    sources: tuple[SourceSegment, ...]
    """Every segment from the log start to the end of the cleanable range."""
    source_ends: tuple[int, ...]
    """The offset after each source (the next segment's base offset)."""
    groups: tuple[tuple[int, ...], ...]
    """Indexes into `sources`: each group becomes one output segment."""
    group_ends: tuple[int, ...]
    """The offset after each group (the next segment's base offset)."""
    first_dirty_offset: int
    end_offset: int
    """The first offset not cleanable (the base of the first segment left alone)."""
    dirty_ratio: float
    producer_last_offsets: Mapping[int, int]
    keys_max: int
    aborted: Mapping[int, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    """producer id -> (first offset, marker offset) of its aborted transactions that meet the
    sources (from the txn index at plan time; a batch below the LSO has its marker written)."""

    def is_aborted(self, header: BatchHeader) -> bool:
        if not header.is_transactional or header.is_control:
            return False
        ranges = self.aborted.get(header.producer_id)
        return ranges is not None and any(first <= header.base_offset <= last
                                           for first, last in ranges)


@dataclass
class CleanStats:
    bytes_read: int = 0
    bytes_written: int = 0
    records_kept: int = 0
    records_removed: int = 0
    tombstones_removed: int = 0
    batches_rebuilt: int = 0


@dataclass
class CleanResult:
    plan: CleanPlan
    outputs: list[tuple[tuple[int, ...], LogSegment, int]]
    """(group, the cleaned segment (still with `.cleaned` names), end offset of the group)."""
    end_offset: int
    """The cleaner checkpoint after install: the first offset the key map did not cover."""
    stats: CleanStats


# ---------------------------------------------------------------------------------- plan


def dirty_state(log: PartitionLog, now_ms: int, first_unstable_offset: int | None = None,
                ) -> tuple[int, int, int, int]:
    """(first dirty offset, first uncleanable offset, clean bytes, dirty bytes)."""
    config = log.config
    segments = log.segments[:-1]
    first_dirty = max(log.cleaner_checkpoint, log.log_start_offset)
    uncleanable = log.segments[-1].base_offset
    if first_unstable_offset is not None:
        uncleanable = min(uncleanable, first_unstable_offset)
    if config.min_compaction_lag_ms > 0:
        for i, segment in enumerate(segments):
            next_base = log.segments[i + 1].base_offset
            if next_base > first_dirty and (
                    segment.max_timestamp > now_ms - config.min_compaction_lag_ms):
                uncleanable = min(uncleanable, segment.base_offset)
                break
    clean = dirty = 0
    for i, segment in enumerate(segments):
        next_base = log.segments[i + 1].base_offset
        if next_base <= first_dirty:
            clean += segment.size
        elif next_base <= uncleanable:
            dirty += segment.size
    return first_dirty, uncleanable, clean, dirty


def dirty_ratio(log: PartitionLog, now_ms: int, first_unstable_offset: int | None = None,
                ) -> float:
    _, _, clean, dirty = dirty_state(log, now_ms, first_unstable_offset)
    return dirty / (clean + dirty) if clean + dirty else 0.0


def needs_cleaning(log: PartitionLog, now_ms: int,
                   first_unstable_offset: int | None = None) -> bool:
    if not log.config.compact or log.cleaning is not None or log.closed:
        return False
    first_dirty, _, clean, dirty = dirty_state(log, now_ms, first_unstable_offset)
    if dirty == 0:
        return False
    if dirty / (clean + dirty) >= log.config.min_cleanable_dirty_ratio:
        return True
    lag = log.config.max_compaction_lag_ms
    if lag <= 0 or lag >= (1 << 63) - 1:
        return False
    for i, segment in enumerate(log.segments[:-1]):
        if log.segments[i + 1].base_offset > first_dirty:
            first = segment.first_batch_timestamp()
            return 0 <= first < now_ms - lag
    return False


def plan(log: PartitionLog, now_ms: int, *, first_unstable_offset: int | None = None,
         producer_last_offsets: Mapping[int, int] | None = None, keys_max: int = KEYS_MAX,
         force: bool = False) -> CleanPlan | None:
    """The next cleaning of `log`, or None if it needs none (`force` ignores the ratio)."""
    if not log.config.compact or log.cleaning is not None or log.closed:
        return None
    if not force and not needs_cleaning(log, now_ms, first_unstable_offset):
        return None
    first_dirty, uncleanable, clean, dirty = dirty_state(log, now_ms, first_unstable_offset)
    if dirty == 0:
        return None
    sources: list[SourceSegment] = []
    ends: list[int] = []
    for i, segment in enumerate(log.segments[:-1]):
        next_base = log.segments[i + 1].base_offset
        if next_base > uncleanable:
            break
        sources.append(SourceSegment(segment.base_offset, segment.log_path, segment.size,
                                     segment))
        ends.append(next_base)
    if not sources:
        return None
    groups: list[tuple[int, ...]] = []
    group_ends: list[int] = []
    current: list[int] = []
    size = 0
    for i, source in enumerate(sources):
        if current and (size + source.size > log.config.segment_bytes
                        or ends[i] - 1 - sources[current[0]].base_offset > INT32_MAX):
            groups.append(tuple(current))
            group_ends.append(ends[current[-1]])
            current, size = [], 0
        current.append(i)
        size += source.size
    groups.append(tuple(current))
    group_ends.append(ends[current[-1]])
    aborted: dict[int, list[tuple[int, int]]] = {}
    for entry in log.aborted_between(sources[0].base_offset, ends[-1]):
        aborted.setdefault(entry.producer_id, []).append((entry.first_offset,
                                                          entry.last_offset))
    result = CleanPlan(log.fs, log.dir, log.config, now_ms, tuple(sources), tuple(ends),
                       tuple(groups),
                       tuple(group_ends), first_dirty, ends[-1],
                       dirty / (clean + dirty), dict(producer_last_offsets or {}), keys_max,
                       {pid: tuple(ranges) for pid, ranges in aborted.items()})
    log.cleaning = result
    return result


# ----------------------------------------------------------------------------------- run


def _batches(fs: LogFileSystem, path: str, size: int) -> Iterator[tuple[memoryview, BatchHeader]]:
    """Each whole batch of a segment file, reading READ_CHUNK_BYTES at a time."""
    position = 0
    while position < size:
        chunk = memoryview(fs.read(path, position, min(READ_CHUNK_BYTES, size - position)))
        at = 0
        while len(chunk) - at >= HEADER_BYTES:
            header = BatchHeader._make(HEADER.unpack_from(chunk, at))
            batch_size = header.batch_length + LOG_OVERHEAD
            if at + batch_size > len(chunk):
                if at == 0:
                    chunk = memoryview(fs.read(path, position, batch_size))
                    if len(chunk) < batch_size:
                        return
                    continue
                break
            yield chunk[at : at + batch_size], header
            at += batch_size
        if at == 0:
            return
        position += at


def _build_map(plan: CleanPlan, stats: CleanStats) -> tuple[dict[bytes, int], int]:
    """key -> latest offset over the dirty segments; and the first offset not mapped."""
    latest: dict[bytes, int] = {}
    end = plan.first_dirty_offset
    for source, source_end in zip(plan.sources, plan.source_ends, strict=True):
        if source_end <= plan.first_dirty_offset:
            continue
        if len(latest) >= plan.keys_max and end > plan.first_dirty_offset:
            break
        for view, header in _batches(plan.fs, source.log_path, source.size):
            stats.bytes_read += len(view)
            if (header.is_control or header.last_offset < plan.first_dirty_offset
                    or plan.is_aborted(header)):
                continue
            for record in batch_records(view, RECORDS_BYTES_MAX):
                if record.key is not None:
                    offset = header.base_offset + record.offset_delta
                    if offset >= plan.first_dirty_offset:
                        latest[record.key] = offset
        end = source_end
    return latest, end


def run(plan: CleanPlan) -> CleanResult:
    """Build the key map and write the cleaned segments (see the module docstring). Raises
    whatever the file system raises (the log changed under it); then `abandon`."""
    stats = CleanStats()
    latest, map_end = _build_map(plan, stats)
    fs, config = plan.fs, plan.config
    horizon_ms = plan.now_ms - config.delete_retention_ms
    outputs: list[tuple[tuple[int, ...], LogSegment, int]] = []
    for group, group_end in zip(plan.groups, plan.group_ends, strict=True):
        if plan.sources[group[0]].base_offset >= map_end:
            break
        if group_end > map_end:  # the map ended inside this group: shorten it
            group = tuple(i for i in group if plan.sources[i].base_offset < map_end)
            group_end = map_end
        base = plan.sources[group[0]].base_offset
        for path in LogSegment.paths(plan.dir, base, CLEANED_SUFFIX):
            fs.remove(path)
        output = LogSegment.create(fs, plan.dir, base, config, plan.now_ms,
                                   suffix=CLEANED_SUFFIX)
        parts: list[bytes | memoryview] = []
        infos: list[BatchInfo] = []
        pending = 0
        for i in group:
            source = plan.sources[i]
            for view, header in _batches(fs, source.log_path, source.size):
                kept = _clean_batch(view, header, latest, plan, horizon_ms, stats)
                if kept is None:
                    continue
                parts.append(kept)
                kept_header = header if kept is view else BatchHeader._make(
                    HEADER.unpack_from(kept, 0))
                infos.append(BatchInfo(kept_header.base_offset, kept_header.last_offset,
                                       kept_header.max_timestamp, len(kept)))
                pending += len(kept)
                if pending >= WRITE_CHUNK_BYTES:
                    output.append(parts, infos)
                    parts, infos, pending = [], [], 0
        if infos:
            output.append(parts, infos)
        for i in group:  # aborted transactions keep their entries (the offsets stay)
            for entry in plan.sources[i].segment.txn_index.entries:
                output.txn_index.append(entry)
        output.seal()
        stats.bytes_written += output.size
        range_path = f"{plan.dir}/{segment_name(base)}{RANGE_SUFFIX}{CLEANED_SUFFIX}"
        fs.remove(range_path)
        fs.append(range_path, (str(group_end).encode("ascii"),))
        for path in (*output.all_paths(), range_path):
            fs.fsync(path)
        outputs.append((group, output, group_end))
    fs.fsync_dir(plan.dir)
    return CleanResult(plan, outputs, map_end, stats)


def _clean_batch(view: memoryview, header: BatchHeader, latest: dict[bytes, int],
                 plan: CleanPlan, horizon_ms: int, stats: CleanStats) -> memoryview | bytes | None:
    """The batch as it stays: itself, a rebuilt one, or None (dropped)."""
    if header.is_control:
        return view
    records = batch_records(view, RECORDS_BYTES_MAX)
    tombstones_go = (header.last_offset < plan.first_dirty_offset
                     and header.max_timestamp < horizon_ms)
    kept: list[Record] = []
    aborted = plan.is_aborted(header)
    for record in records if not aborted else ():
        if record.key is None:
            continue
        offset = header.base_offset + record.offset_delta
        if offset < latest.get(record.key, -1):
            continue
        if record.value is None and tombstones_go:
            stats.tombstones_removed += 1
            continue
        kept.append(record)
    stats.records_kept += len(kept)
    stats.records_removed += len(records) - len(kept)
    if len(kept) == len(records):
        return view
    stats.batches_rebuilt += 1
    if not kept:
        if (header.producer_id >= 0
                and plan.producer_last_offsets.get(header.producer_id) == header.last_offset):
            return _empty_batch(header)
        return None
    log_append_time = bool(header.attributes & ATTR_LOG_APPEND_TIME)
    max_timestamp = header.max_timestamp if log_append_time else max(
        header.base_timestamp + r.timestamp_delta for r in kept)
    return build_batch(kept, base_offset=header.base_offset,
                       base_timestamp=header.base_timestamp, max_timestamp=max_timestamp,
                       codec=header.codec, producer_id=header.producer_id,
                       producer_epoch=header.producer_epoch,
                       base_sequence=header.base_sequence,
                       transactional=header.is_transactional,
                       log_append_time=log_append_time,
                       partition_leader_epoch=header.partition_leader_epoch)


def _empty_batch(header: BatchHeader) -> bytes:
    """A batch of no records keeping the header's offsets and producer state (Kafka's
    RETAIN_EMPTY)."""
    out = build_batch([], base_offset=header.base_offset,
                      base_timestamp=header.base_timestamp, max_timestamp=header.max_timestamp,
                      producer_id=header.producer_id, producer_epoch=header.producer_epoch,
                      base_sequence=header.base_sequence, transactional=header.is_transactional,
                      partition_leader_epoch=header.partition_leader_epoch,
                      last_offset_delta=header.last_offset_delta)
    return out


# ------------------------------------------------------------------------------- install


def install(log: PartitionLog, result: CleanResult, now_ms: int | None = None) -> bool:
    """Swap the cleaned segments into the log if every segment they replace is still there
    unchanged (True), else discard them (False). See the module docstring for the order."""
    plan = result.plan
    if log.cleaning is not plan:
        _discard(plan.fs, result)
        return False
    log.cleaning = None
    present = {id(s) for s in log.segments}
    for group, _, _ in result.outputs:
        for i in group:
            source = plan.sources[i]
            if id(source.segment) not in present or source.segment.size != source.size:
                _discard(plan.fs, result)
                return False
    replaced = {id(plan.sources[i].segment) for group, _, _ in result.outputs for i in group}
    if log.closed or id(log.segments[-1]) in replaced:
        _discard(plan.fs, result)
        return False
    fs, dir = log.fs, log.dir
    for _, output, _ in reversed(result.outputs):
        base = output.base_offset
        range_name = f"{dir}/{segment_name(base)}{RANGE_SUFFIX}"
        fs.rename(range_name + CLEANED_SUFFIX, range_name + SWAP_SUFFIX)
        for path in (output.index.path, output.time_index.path, output.txn_index.path,
                     output.log_path):
            fs.rename(path, path[: -len(CLEANED_SUFFIX)] + SWAP_SUFFIX)
    fs.fsync_dir(dir)  # the commit point: from here a crash completes the swap
    for group, output, _ in result.outputs:
        old = [plan.sources[i].segment for i in group]
        for segment in old:
            for path in segment.all_paths():
                fs.rename(path, path + DELETED_SUFFIX)
        log._pending_deletes.append(
            ([p + DELETED_SUFFIX for s in old for p in s.all_paths()],
             None if now_ms is None else now_ms + log.config.file_delete_delay_ms))
        final_paths = LogSegment.paths(dir, output.base_offset)
        for path in final_paths:
            fs.rename(path + SWAP_SUFFIX, path)
        fs.remove(f"{dir}/{segment_name(output.base_offset)}{RANGE_SUFFIX}{SWAP_SUFFIX}")
        output.log_path = final_paths[0]
        output.index.path = final_paths[1]
        output.time_index.path = final_paths[2]
        output.txn_index.path = final_paths[3]
        output.config = log.config
        start = log.segments.index(old[0])
        log.segments[start : start + len(old)] = [output]
    log._bases = [s.base_offset for s in log.segments]
    log._dir_generation += 1
    log.cleaner_checkpoint = max(log.cleaner_checkpoint, result.end_offset)
    return True


def abandon(log: PartitionLog, plan: CleanPlan) -> None:
    """A `run` failed: forget the plan and remove whatever it wrote."""
    if log.cleaning is plan:
        log.cleaning = None
    for base in {s.base_offset for s in plan.sources}:
        for path in LogSegment.paths(plan.dir, base, CLEANED_SUFFIX):
            plan.fs.remove(path)
        plan.fs.remove(f"{plan.dir}/{segment_name(base)}{RANGE_SUFFIX}{CLEANED_SUFFIX}")


def _discard(fs: LogFileSystem, result: CleanResult) -> None:
    for _, output, _ in result.outputs:
        for path in output.all_paths():
            fs.remove(path)
        fs.remove(f"{result.plan.dir}/{segment_name(output.base_offset)}{RANGE_SUFFIX}"
                  f"{CLEANED_SUFFIX}")


def clean(log: PartitionLog, now_ms: int, **kwargs: object) -> CleanResult | None:
    """plan + run + install on one thread (tests, tools)."""
    the_plan = plan(log, now_ms, **kwargs)  # type: ignore[arg-type]
    if the_plan is None:
        return None
    try:
        result = run(the_plan)
    except BaseException:
        abandon(log, the_plan)
        raise
    install(log, result, now_ms)
    return result
