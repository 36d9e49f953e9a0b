"""Crash recovery with the file system that loses what was not fsynced."""

from __future__ import annotations

import random

import pytest

from tests.logstore.helpers import all_headers, batch, log_batches, prepared, small
from zoolog.logstore.log_config import LogConfig
from zoolog.logstore.partition_log import PartitionLog
from zoolog.logstore.segment import LogSegment
from zoolog.testing.log_files import MemoryLogFileSystem


def setup(config: LogConfig) -> tuple[MemoryLogFileSystem, PartitionLog]:
    fs = MemoryLogFileSystem()
    fs.make_dir("t-0")
    fs.fsync_dir("")
    log, _ = PartitionLog.open(fs, "t-0", config, 0)
    return fs, log


Entries = list[tuple[int, int]]


def index_state(log: PartitionLog) -> list[tuple[int, Entries, Entries]]:
    return [(s.base_offset, s.index.entries(), s.time_index.entries()) for s in log.segments]


def fresh_build(fs_data: bytes, config: LogConfig) -> list[list[tuple[int, int]]]:
    """The offset index an append of these batches builds in a fresh segment."""
    fs = MemoryLogFileSystem()
    fs.make_dir("x")
    segment = LogSegment.create(fs, "x", 0, config, 0)
    from zoolog.logstore.segment import BatchInfo
    from zoolog.protocol.kafka.record_batch import iter_batches
    for pos, header in iter_batches(fs_data):
        segment.append([fs_data[pos:pos + header.size]],
                       [BatchInfo(header.base_offset, header.last_offset,
                                  header.max_timestamp, header.size)])
    return [segment.index.entries(), segment.time_index.entries()]


@pytest.mark.parametrize("seed", range(12))
def test_fsynced_batches_survive_and_a_torn_tail_is_truncated(seed: int) -> None:
    rng = random.Random(seed)
    config = small(segment_bytes=3000, index_interval_bytes=200)
    fs, log = setup(config)
    for i in range(rng.randrange(5, 40)):
        log.append(prepared(*[batch(rng.randrange(1, 4), value_bytes=rng.randrange(10, 300),
                                    timestamp=1000 + i)
                              for _ in range(rng.randrange(1, 3))]), 1, 0)
        if rng.random() < 0.2:
            log.flush()
    log.flush()
    flushed = log.log_end_offset
    flushed_bytes = log.read_bytes(0, 1 << 30)
    checkpoint = log.recovery_point
    for _ in range(rng.randrange(1, 10)):
        log.append(prepared(batch(2, value_bytes=rng.randrange(10, 400))), 2, 0)
    before = log.read_bytes(0, 1 << 30)
    fs.crash(rng, tear=True)
    log2, report = PartitionLog.open(fs, "t-0", config, 0, recovery_point=checkpoint)
    after = log2.read_bytes(0, 1 << 30)
    assert after[: len(flushed_bytes)] == flushed_bytes
    assert before.startswith(after)
    assert log2.log_end_offset >= flushed
    assert report.segments_recovered >= 1
    headers = log_batches(after)
    assert log2.log_end_offset == (headers[-1].next_offset if headers else 0)
    # indexes equal what appending the surviving batches builds
    for segment in log2.segments[-1:]:
        data = fs.read(segment.log_path, 0, segment.size)
        assert [segment.index.entries(), segment.time_index.entries()] == \
            fresh_build(data, config)
    # appends resume at the right offset, and a second open finds nothing to fix
    info = log2.append(prepared(batch(1)), 3, 0)
    assert info.first_offset == log2.log_end_offset - 1
    log2.flush()
    log3, report3 = PartitionLog.open(fs, "t-0", config, 0)
    assert report3.truncated_bytes == 0
    assert log3.read_bytes(0, 1 << 30) == log2.read_bytes(0, 1 << 30)
    assert index_state(log3) == index_state(log2)


def test_torn_tail_is_reported() -> None:
    fs, log = setup(LogConfig())
    log.append(prepared(batch(3)), 0, 0)
    log.flush()
    size = log.active.size
    fs.append("t-0/00000000000000000000.log", [batch(2)[:40]])  # half a batch
    log2, report = PartitionLog.open(fs, "t-0", LogConfig(), 0)
    assert report.truncated_bytes == 40 and log2.log_end_offset == 3
    assert fs.size("t-0/00000000000000000000.log") == size


def test_a_corrupt_byte_truncates_at_that_batch() -> None:
    fs, log = setup(LogConfig())
    for _ in range(5):
        log.append(prepared(batch(2, value_bytes=50)), 0, 0)
    log.flush()
    positions = [s for s, _ in _iter(fs.read(log.active.log_path, 0, 1 << 20))]
    fs.corrupt(log.active.log_path, positions[3] + 70)  # inside the 4th batch's records
    log2, report = PartitionLog.open(fs, "t-0", LogConfig(), 0)
    assert log2.log_end_offset == 6
    assert report.truncated_bytes == log.active.size - positions[3]


def test_corruption_in_an_older_segment_drops_the_later_ones() -> None:
    config = small(segment_bytes=400)
    fs, log = setup(config)
    for _ in range(10):
        log.append(prepared(batch(1, value_bytes=150)), 0, 0)
    log.flush()
    assert len(log.segments) >= 3
    fs.corrupt(log.segments[1].log_path, 30)
    log2, report = PartitionLog.open(fs, "t-0", config, 0)  # recovery point 0: all checked
    assert log2.log_end_offset == log.segments[1].base_offset
    assert report.segments_dropped == len(log.segments) - 2
    assert [h.base_offset for h in all_headers(log2)] == list(range(log2.log_end_offset))


def test_segments_below_the_recovery_point_are_trusted_and_missing_indexes_rebuilt() -> None:
    config = small(segment_bytes=1500, index_interval_bytes=100)
    fs, log = setup(config)
    for i in range(30):
        log.append(prepared(batch(2, value_bytes=100, timestamp=i)), 0, 0)
    log.flush()
    state = index_state(log)
    # corrupt a byte in an old segment: trusted, so not noticed (Kafka does the same)
    fs.corrupt(log.segments[0].log_path, 30)
    fs.remove(log.segments[1].index.path)
    fs.remove(log.segments[2].time_index.path)
    fs.fsync_dir("t-0")
    log2, report = PartitionLog.open(fs, "t-0", config, 0, recovery_point=log.recovery_point)
    assert report.indexes_rebuilt == 2
    assert report.segments_recovered == 1  # the floor segment of the recovery point
    assert index_state(log2) == state
    assert log2.log_end_offset == 60


def test_clean_shutdown_skips_revalidation() -> None:
    config = small(segment_bytes=1500)
    fs, log = setup(config)
    for _ in range(20):
        log.append(prepared(batch(2, value_bytes=100)), 4, 0)
    log.close()
    log2, report = PartitionLog.open(fs, "t-0", config, 0, recovery_point=log.recovery_point,
                                     clean_shutdown=True)
    assert report.segments_recovered == 0 and report.batches_validated == 0
    assert log2.log_end_offset == 40 and log2.epochs.entries() == [(4, 0)]
    assert log2.append(prepared(batch(1)), 4, 0).first_offset == 40


def test_unsynced_segment_names_vanish_but_fsynced_data_stays() -> None:
    config = small(segment_bytes=400)
    fs, log = setup(config)
    for _ in range(3):
        log.append(prepared(batch(1, value_bytes=150)), 0, 0)
    log.flush()
    for _ in range(6):
        log.append(prepared(batch(1, value_bytes=150)), 0, 0)
    for segment in log.segments:  # data fsynced, but the new names are not
        fs.fsync(segment.log_path)
    fs.crash()
    log2, _ = PartitionLog.open(fs, "t-0", config, 0)
    assert log2.log_end_offset >= 3
    assert [h.base_offset for h in all_headers(log2)] == list(range(log2.log_end_offset))


def test_epoch_cache_is_rebuilt_from_recovered_batches() -> None:
    fs, log = setup(LogConfig())
    log.append(prepared(batch(2)), 0, 0)
    log.flush()
    log.append(prepared(batch(2)), 3, 0)
    fs.fsync(log.active.log_path)  # data durable, epoch checkpoint not rewritten
    fs.crash()
    log2, _ = PartitionLog.open(fs, "t-0", LogConfig(), 0)
    assert log2.epochs.entries() == [(0, 0), (3, 2)]
    assert log2.epochs.end_offset_for(0, log2.log_end_offset) == (0, 2)


def test_leftover_files_are_resolved() -> None:
    fs, log = setup(LogConfig())
    log.append(prepared(batch(2)), 0, 0)
    log.close()
    for name in ("00000000000000000000.log.deleted", "00000000000000000005.log.cleaned",
                 "00000000000000000005.index.cleaned", "00000000000000000009.index"):
        fs.append(f"t-0/{name}", [b"junk"])
    log2, report = PartitionLog.open(fs, "t-0", LogConfig(), 0)
    assert report.leftovers == 4
    assert fs.list("t-0") == ["00000000000000000000.index", "00000000000000000000.log",
                              "00000000000000000000.timeindex", "00000000000000000000.txnindex",
                              "leader-epoch-checkpoint"]
    assert log2.log_end_offset == 2


def _iter(data: bytes) -> list[tuple[int, object]]:
    from zoolog.protocol.kafka.record_batch import iter_batches
    return list(iter_batches(data))  # type: ignore[arg-type]
