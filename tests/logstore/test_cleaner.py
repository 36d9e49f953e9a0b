"""Log compaction: latest value per key survives at its offset, tombstones expire, crashes
between the swap steps recover to the old or the new state."""

from __future__ import annotations

import contextlib
import random

import pytest

from tests.logstore.helpers import batch, prepared
from zoolog.logstore import cleaner
from zoolog.logstore.log_config import LogConfig
from zoolog.logstore.partition_log import PartitionLog
from zoolog.logstore.txn_index import AbortedTxn
from zoolog.protocol.kafka.record_batch import (
    Codec,
    batch_records,
    control_batch,
    iter_batches,
)
from zoolog.testing.log_files import MemoryLogFileSystem

CONFIG = LogConfig(cleanup_policy="compact", segment_bytes=2000, index_interval_bytes=100,
                   delete_retention_ms=1000, file_delete_delay_ms=0,
                   min_cleanable_dirty_ratio=0.5)


def setup(config: LogConfig = CONFIG) -> tuple[MemoryLogFileSystem, PartitionLog]:
    fs = MemoryLogFileSystem()
    fs.make_dir("t-0")
    fs.fsync_dir("")
    log, _ = PartitionLog.open(fs, "t-0", config, 0)
    return fs, log


def records(log: PartitionLog) -> list[tuple[int, bytes | None, bytes | None]]:
    """(offset, key, value) of every record, control batches skipped."""
    data = log.read_bytes(log.log_start_offset, 1 << 30)
    out = []
    for pos, header in iter_batches(data):
        if header.is_control:
            continue
        for r in batch_records(data[pos : pos + header.size], 1 << 24):
            out.append((header.base_offset + r.offset_delta, r.key, r.value))
    return out


def latest(entries: list[tuple[int, bytes | None, bytes | None]],
           ) -> dict[bytes, tuple[int, bytes | None]]:
    out: dict[bytes, tuple[int, bytes | None]] = {}
    for offset, key, value in entries:
        if key is not None:
            out[key] = (offset, value)
    return out


def fill(log: PartitionLog, rng: random.Random, count: int, keys: int, now_ms: int,
         codec: int = Codec.NONE) -> None:
    for _ in range(count):
        n = rng.randrange(1, 4)
        ks = [b"k%d" % rng.randrange(keys) for _ in range(n)]
        vs: list[bytes | None] = [b"v%d-" % rng.randrange(1000) + b"x" * rng.randrange(40)
                                  for _ in range(n)]
        log.append(prepared(batch(n, keys=ks, values=vs, timestamp=now_ms, codec=codec)), 0,
                   now_ms)


@pytest.mark.parametrize("codec", [Codec.NONE, Codec.GZIP, Codec.LZ4])
def test_latest_value_per_key_survives_at_its_offset(codec: int) -> None:
    rng = random.Random(codec)
    fs, log = setup()
    fill(log, rng, 120, 15, 0, codec)
    before = records(log)
    want = latest(before)
    active_bytes = fs.read(log.active.log_path, 0, log.active.size)
    result = cleaner.clean(log, 10)
    assert result is not None and result.stats.records_removed > 0
    after = records(log)
    assert latest(after) == want
    # only superseded records went: everything kept below the active segment is the latest
    # for its key there (the active segment is never cleaned nor used to supersede)
    active_base = log.active.base_offset
    cleanable = latest([r for r in before if r[0] < active_base])
    for offset, key, _ in after:
        assert offset >= active_base or cleanable[key][0] == offset  # type: ignore[index]
    assert fs.read(log.active.log_path, 0, log.active.size) == active_bytes
    assert sorted(o for o, _, _ in after) == [o for o, _, _ in after]
    # reads, indexes and a reopen still work
    for offset, _, _ in after[::7]:
        assert log.read(offset, 1).first_offset <= offset
    log.flush()
    log2, report = PartitionLog.open(fs, "t-0", CONFIG, 20,
                                     cleaner_checkpoint=log.cleaner_checkpoint)
    assert records(log2) == after and report.truncated_bytes == 0
    assert cleaner.plan(log2, 30) is None  # nothing dirty left
    assert log.cleaner_checkpoint == log.active.base_offset


def test_dirty_ratio_is_honoured() -> None:
    rng = random.Random(5)
    _fs, log = setup()
    fill(log, rng, 60, 100_000, 0)  # keys mostly distinct: cleaning keeps most bytes
    log.roll(0)
    assert cleaner.dirty_ratio(log, 0) == 1.0
    assert cleaner.clean(log, 0) is not None
    assert cleaner.dirty_ratio(log, 0) == 0.0
    fill(log, rng, 8, 10, 0)
    log.roll(0)
    ratio = cleaner.dirty_ratio(log, 0)
    assert 0 < ratio < 0.5
    assert cleaner.plan(log, 0) is None
    assert cleaner.needs_cleaning(log, 0) is False
    fill(log, rng, 80, 10, 0)
    assert cleaner.dirty_ratio(log, 0) >= 0.5
    assert cleaner.needs_cleaning(log, 0)


def test_min_compaction_lag_keeps_young_segments() -> None:
    config = LogConfig(**{**_fields(CONFIG), "min_compaction_lag_ms": 500})
    _, log = setup(config)
    rng = random.Random(1)
    fill(log, rng, 40, 5, 0)
    fill(log, rng, 40, 5, 1000)
    young = [s.base_offset for s in log.segments if s.max_timestamp >= 1000]
    first_young = min(young)
    before = [r for r in records(log) if r[0] >= first_young]
    assert cleaner.clean(log, 1200) is not None
    assert [r for r in records(log) if r[0] >= first_young] == before


def test_tombstones_go_after_delete_retention_and_a_previous_cleaning() -> None:
    _, log = setup()
    log.append(prepared(batch(1, key=b"a", value=b"1")), 0, 0)
    log.append(prepared(batch(1, key=b"b", value=b"1")), 0, 0)
    log.append(prepared(batch(1, keys=[b"a"], values=[None], timestamp=100)), 0, 100)
    log.append(prepared(batch(1, key=b"", value=b"pad", value_bytes=1900)), 0, 100)
    log.roll(100)
    log.append(prepared(batch(1, key=b"c", value=b"1", timestamp=100)), 0, 100)
    cleaner.clean(log, 200)
    # first cleaning: the old value of a goes, its tombstone stays
    assert [(o, k, v) for o, k, v in records(log) if k == b"a"] == [(2, b"a", None)]
    log.roll(200)
    fill(log, random.Random(2), 30, 3, 300)  # make the log dirty again
    cleaner.clean(log, 500, force=True)
    assert (2, b"a", None) in records(log)  # within delete.retention.ms
    fill(log, random.Random(3), 30, 3, 2000)
    cleaner.clean(log, 2000, force=True)
    assert [k for _, k, _ in records(log)].count(b"a") == 0
    assert (1, b"b", b"1" + b"\x00" * 9) in records(log) or any(
        k == b"b" for _, k, _ in records(log))


def test_null_keys_are_dropped_and_control_batches_kept() -> None:
    _, log = setup()
    log.append(prepared(batch(2, keys=[None, b"k"], values=[b"x", b"y"])), 0, 0)
    marker = control_batch(commit=True, producer_id=7, producer_epoch=0, coordinator_epoch=1,
                           timestamp_ms=0)
    log.append(prepared(marker), 0, 0)
    log.append(prepared(batch(1, key=b"k", value=b"z")), 0, 0)
    log.roll(0)
    log.append(prepared(batch(1, key=b"q")), 0, 0)
    cleaner.clean(log, 0)
    assert [(o, k, v) for o, k, v in records(log)] == [(3, b"k", b"z" + b"\x02" * 9),
                                                       (4, b"q", b"\x00" * 10)] or \
        [o for o, _, _ in records(log)] == [3, 4]
    data = log.read_bytes(0, 1 << 20)
    assert [h.is_control for _, h in iter_batches(data)] == [True, False, False]


def test_producer_last_batch_is_kept_empty() -> None:
    _, log = setup()
    raw = batch(2, keys=[b"k", b"k"], values=[b"1", b"2"], producer_id=9)
    log.append(prepared(raw), 0, 0)
    log.append(prepared(batch(1, key=b"k", value=b"3")), 0, 0)
    log.roll(0)
    log.append(prepared(batch(1, key=b"x")), 0, 0)
    cleaner.clean(log, 0, producer_last_offsets={9: 1})
    data = log.read_bytes(0, 1 << 20)
    headers = [h for _, h in iter_batches(data)]
    assert (headers[0].producer_id, headers[0].records_count, headers[0].last_offset) == (9, 0, 1)
    assert [o for o, _, _ in records(log)] == [2, 3]


def test_install_gives_up_when_the_log_changed() -> None:
    fs, log = setup()
    fill(log, random.Random(4), 60, 5, 0)
    plan = cleaner.plan(log, 0)
    assert plan is not None
    assert cleaner.plan(log, 0) is None  # one cleaning at a time
    result = cleaner.run(plan)
    log.truncate_to(plan.sources[1].base_offset)  # a follower truncation got there first
    before = records(log)
    assert cleaner.install(log, result) is False
    assert records(log) == before
    assert not [n for n in fs.list("t-0") if ".cleaned" in n or ".swap" in n]


CRASH_POINTS = ["after_run", "mid_swap", "after_swap_fsync", "mid_final"]


@pytest.mark.parametrize("point", CRASH_POINTS)
@pytest.mark.parametrize("seed", range(3))
def test_crash_between_swap_steps_recovers_old_or_new(point: str, seed: int) -> None:
    fs, log = setup()
    rng = random.Random(seed)
    fill(log, rng, 100, 12, 0)
    log.flush()
    old = records(log)
    want = latest(old)
    plan = cleaner.plan(log, 0)
    assert plan is not None
    result = cleaner.run(plan)
    assert len(result.outputs) >= 2 or point != "mid_swap"

    renames: list[tuple[str, str]] = []
    real_rename = fs.rename
    stop_after = {"after_run": 0, "mid_swap": 3, "after_swap_fsync": None,
                  "mid_final": None}[point]

    class Crash(Exception):
        pass

    def rename(a: str, b: str) -> None:
        if stop_after is not None and len(renames) >= stop_after:
            raise Crash
        renames.append((a, b))
        real_rename(a, b)

    real_fsync_dir = fs.fsync_dir
    fsync_dirs = [0]

    def fsync_dir(d: str) -> None:
        real_fsync_dir(d)
        fsync_dirs[0] += 1
        if point == "after_swap_fsync":
            raise Crash

    fs.rename = rename  # type: ignore[method-assign]
    fs.fsync_dir = fsync_dir  # type: ignore[method-assign]
    if point == "mid_final":
        stop_after = 4 * len(result.outputs) + 2
    with contextlib.suppress(Crash):
        cleaner.install(log, result)
    fs.rename = real_rename  # type: ignore[method-assign]
    fs.fsync_dir = real_fsync_dir  # type: ignore[method-assign]
    if point == "mid_final":  # the renames after the commit point reached the disk
        fs.fsync_dir("t-0")
    fs.crash(rng, tear=True)
    log2, report = PartitionLog.open(fs, "t-0", CONFIG, 0, recovery_point=log.recovery_point)
    got = records(log2)
    assert latest(got) == want
    assert got == old or point in ("after_swap_fsync", "mid_final")
    names = fs.list("t-0")
    assert not [n for n in names if n.endswith((".cleaned", ".swap", ".deleted"))]
    assert [o for o, _, _ in got] == sorted(o for o, _, _ in got)
    assert report.truncated_bytes == 0


def _fields(config: LogConfig) -> dict[str, object]:
    from dataclasses import fields
    return {f.name: getattr(config, f.name) for f in fields(config)}


def test_aborted_records_never_shadow_committed_ones() -> None:
    """An aborted transaction's value for a key must not make the cleaner drop the key's
    committed value (`__consumer_offsets` with an aborted TxnOffsetCommit), and the aborted
    records themselves go; committed transactional records are kept like any other."""
    _, log = setup()
    log.append(prepared(batch(1, key=b"k", value=b"committed")), 0, 0)          # 0
    log.append(prepared(batch(1, key=b"k", value=b"aborted", producer_id=7,
                              transactional=True)), 0, 0)                        # 1
    abort = control_batch(commit=False, producer_id=7, producer_epoch=0,
                          coordinator_epoch=0, timestamp_ms=0)
    log.append(prepared(abort), 0, 0)                                            # 2
    log.add_aborted(AbortedTxn(7, 1, 2, 3))
    log.append(prepared(batch(1, key=b"j", value=b"in-txn", producer_id=8,
                              transactional=True)), 0, 0)                        # 3
    log.append(prepared(control_batch(commit=True, producer_id=8, producer_epoch=0,
                                      coordinator_epoch=0, timestamp_ms=0)), 0, 0)  # 4
    log.roll(0)
    log.append(prepared(batch(1, key=b"q")), 0, 0)
    cleaner.clean(log, 0)
    kept = [(o, k, (v or b"").rstrip(b"\0")) for o, k, v in records(log)]
    assert kept == [(0, b"k", b"committed"), (3, b"j", b"in-txn"), (5, b"q", b"")]
    assert log.aborted_between(0, log.log_end_offset) == [AbortedTxn(7, 1, 2, 3)]
