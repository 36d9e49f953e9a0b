"""Raft storage crash recovery with a file system that loses un-fsynced data."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zoolog.consensus.storage import CorruptedLogError, RaftStorage
from zoolog.consensus.types import ConfState, Entry, HardState, Ready, Snapshot
from zoolog.server.files import OsFileSystem
from zoolog.testing.files import MemoryFileSystem


def entries(first: int, last: int, term: int = 1) -> list[Entry]:
    return [Entry(term, i, b"data-%d" % i) for i in range(first, last + 1)]


def test_round_trip_across_segments_and_truncation() -> None:
    fs = MemoryFileSystem()
    storage = RaftStorage(fs, segment_bytes_max=100)
    storage.save(Ready(hard_state=HardState(1, 1, 0), entries=entries(1, 10)))
    assert len([n for n in fs.list() if n.startswith("wal.")]) > 2
    storage.save(Ready(hard_state=HardState(2, 2, 4), entries=entries(6, 8, term=2)))
    recovered = RaftStorage(fs, segment_bytes_max=100).open()
    assert recovered.hard_state == HardState(2, 2, 4)
    assert [(e.index, e.term) for e in recovered.entries] == (
        [(i, 1) for i in range(1, 6)] + [(i, 2) for i in range(6, 9)]
    )


def test_one_fsync_per_ready_is_the_group_commit() -> None:
    fs = MemoryFileSystem()
    storage = RaftStorage(fs)
    storage.save(Ready(entries=entries(1, 500)))
    assert fs.fsyncs == 1


def test_crash_loses_only_unsynced_data_and_tears_are_truncated() -> None:
    fs = MemoryFileSystem()
    storage = RaftStorage(fs)
    storage.save(Ready(hard_state=HardState(1, 1, 3), entries=entries(1, 5)))
    # a write that was never fsynced (the node died before its Ready completed)
    for entry in entries(6, 9):
        fs.append("wal.0000000000000001", __import__(
            "zoolog.consensus.storage", fromlist=["x"]).encode_entry(entry))
    fs.crash(random.Random(3), tear=True)
    recovered = RaftStorage(fs).open()
    assert [e.index for e in recovered.entries][:5] == [1, 2, 3, 4, 5]
    assert recovered.hard_state.commit == 3
    again = RaftStorage(fs).open()  # recovery left a clean log behind
    assert again.truncated_bytes == 0
    assert [e.index for e in again.entries] == [e.index for e in recovered.entries]


def test_damage_in_the_committed_prefix_refuses_to_start() -> None:
    fs = MemoryFileSystem()
    RaftStorage(fs).save(Ready(hard_state=HardState(1, 1, 4), entries=entries(1, 5)))
    fs.files["wal.0000000000000001"][30] ^= 0xFF  # inside the first record
    with pytest.raises(CorruptedLogError):
        RaftStorage(fs).open()


def test_damage_in_the_uncommitted_tail_is_truncated_and_reported() -> None:
    fs = MemoryFileSystem()
    RaftStorage(fs).save(Ready(hard_state=HardState(1, 1, 2), entries=entries(1, 5)))
    fs.files["wal.0000000000000001"][-3] ^= 0xFF  # inside the last record
    recovered = RaftStorage(fs).open()
    assert recovered.truncated_bytes > 0
    assert [e.index for e in recovered.entries] == [1, 2, 3, 4]


def test_snapshot_compacts_segments() -> None:
    fs = MemoryFileSystem()
    storage = RaftStorage(fs, segment_bytes_max=60)
    storage.save(Ready(hard_state=HardState(1, 1, 8), entries=entries(1, 10)))
    storage.save_snapshot(Snapshot(8, 1, ConfState(frozenset({1, 2, 3})), b"state"))
    recovered = RaftStorage(fs, segment_bytes_max=60).open()
    assert recovered.snapshot is not None and recovered.snapshot.data == b"state"
    assert recovered.snapshot.conf.voters == {1, 2, 3}
    assert [e.index for e in recovered.entries] == [9, 10]


def test_real_files(tmp_path: Path) -> None:
    fs = OsFileSystem(tmp_path)
    storage = RaftStorage(fs)
    storage.save(Ready(hard_state=HardState(3, 2, 2), entries=entries(1, 3, term=3)))
    fs.close()
    recovered = RaftStorage(OsFileSystem(tmp_path)).open()
    assert recovered.hard_state == HardState(3, 2, 2) and len(recovered.entries) == 3


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 6), st.integers(1, 3), st.booleans()), max_size=25),
       st.integers(0, 2**32))
def test_random_saves_and_crashes_never_lose_synced_entries(
    ops: list[tuple[int, int, bool]], seed: int
) -> None:
    """Model: what was saved (fsynced) survives any crash, whatever tears the tail."""
    rng = random.Random(seed)
    fs = MemoryFileSystem()
    storage = RaftStorage(fs, segment_bytes_max=80)
    storage.open()
    model: list[Entry] = []
    term = 1
    for count, back, crash in ops:
        first = max(1, len(model) + 1 - back)  # sometimes overwrite a suffix
        term += 1
        new = [Entry(term, i, b"x%d" % i) for i in range(first, first + count)]
        storage.save(Ready(hard_state=HardState(term, 1, 0), entries=new))
        model = model[: first - 1] + new
        if crash:
            fs.crash(rng, tear=True)
            storage = RaftStorage(fs, segment_bytes_max=80)
            recovered = storage.open()
            assert recovered.entries == model
