"""The `.txnindex` file: Kafka's 34-byte AbortedTxn entries, torn tails cut, garbage refused,
and PartitionLog's queries over the entries of several segments."""

from __future__ import annotations

import struct

import pytest

from tests.logstore.helpers import batch, prepared
from zoolog.logstore.log_config import LogConfig
from zoolog.logstore.partition_log import PartitionLog
from zoolog.logstore.txn_index import ENTRY_BYTES, AbortedTxn, TransactionIndex
from zoolog.testing.log_files import MemoryLogFileSystem


def test_entries_are_kafkas_layout() -> None:
    fs = MemoryLogFileSystem()
    index = TransactionIndex(fs, "x.txnindex")
    index.append(AbortedTxn(7, 10, 20, 21))
    index.append(AbortedTxn(9, 5, 30, 31))
    data = fs.read("x.txnindex", 0, fs.size("x.txnindex"))
    assert ENTRY_BYTES == 34
    assert data[:34] == struct.pack(">hqqqq", 0, 7, 10, 20, 21)
    reopened, torn = TransactionIndex.open(fs, "x.txnindex")
    assert reopened is not None and not torn
    assert reopened.entries == [AbortedTxn(7, 10, 20, 21), AbortedTxn(9, 5, 30, 31)]
    assert reopened.overlapping(21, 40) == [AbortedTxn(9, 5, 30, 31)]
    assert reopened.overlapping(0, 6) == [AbortedTxn(9, 5, 30, 31)]
    assert reopened.overlapping(0, 5) == []
    with pytest.raises(ValueError):
        reopened.append(AbortedTxn(1, 1, 30, 31))  # markers only move forward
    reopened.truncate_to(30)
    assert reopened.entries == [AbortedTxn(7, 10, 20, 21)]


def test_torn_tails_are_cut_and_garbage_or_missing_files_refused() -> None:
    fs = MemoryLogFileSystem()
    index = TransactionIndex(fs, "x.txnindex")
    index.append(AbortedTxn(7, 10, 20, 21))
    fs.append("x.txnindex", (b"\0\0\0",))
    reopened, torn = TransactionIndex.open(fs, "x.txnindex")
    assert torn and reopened is not None and reopened.entries == [AbortedTxn(7, 10, 20, 21)]
    assert fs.size("x.txnindex") == 34
    fs.write_atomic("x.txnindex", struct.pack(">hqqqq", 3, 7, 10, 20, 21))
    assert TransactionIndex.open(fs, "x.txnindex") == (None, False)
    fs.write_atomic("x.txnindex", struct.pack(">hqqqq", 0, 7, 30, 20, 21))  # first > last
    assert TransactionIndex.open(fs, "x.txnindex") == (None, False)
    assert TransactionIndex.open(fs, "missing.txnindex") == (None, False)


def test_the_log_answers_over_segments_and_rebuilds_from_an_offset() -> None:
    fs = MemoryLogFileSystem()
    fs.make_dir("t-0")
    log, _ = PartitionLog.open(fs, "t-0", LogConfig(segment_bytes=300), 0)
    for _ in range(8):
        log.append(prepared(batch(1, value_bytes=200)), 0, 0)
    assert len(log.segments) >= 4
    bases = [s.base_offset for s in log.segments]
    log.add_aborted(AbortedTxn(1, 0, bases[1], bases[1] + 1))
    log.add_aborted(AbortedTxn(2, bases[1] + 1, bases[3], bases[3] + 1))
    assert log.segments[1].txn_index.entries == [AbortedTxn(1, 0, bases[1], bases[1] + 1)]
    assert log.aborted_between(bases[2], bases[2] + 1) == [
        AbortedTxn(2, bases[1] + 1, bases[3], bases[3] + 1)]
    assert len(log.aborted_between(0, log.log_end_offset)) == 2
    log.rebuild_aborted_from(bases[2], [AbortedTxn(3, bases[2], bases[2], bases[2] + 1)])
    assert log.aborted_between(0, log.log_end_offset) == [
        AbortedTxn(1, 0, bases[1], bases[1] + 1), AbortedTxn(3, bases[2], bases[2], bases[2] + 1)]
    assert log.txn_index_lost_from == log.txn_index_unsynced_from == log.log_end_offset


def test_a_range_collects_transactions_that_end_much_later() -> None:
    """Kafka's completeness rule: the search stops only at an entry whose LSO reaches the
    range's end, so a transaction still open when an earlier one aborted is found too."""
    fs = MemoryLogFileSystem()
    fs.make_dir("t-0")
    log, _ = PartitionLog.open(fs, "t-0", LogConfig(segment_bytes=300), 0)
    for _ in range(14):
        log.append(prepared(batch(1, value_bytes=200)), 0, 0)
    log.add_aborted(AbortedTxn(1, 2, 10, 1))   # pid 2 still open from offset 1
    log.add_aborted(AbortedTxn(2, 1, 12, 13))
    log.add_aborted(AbortedTxn(3, 13, 13, 14))
    assert log.aborted_between(0, 5) == [AbortedTxn(1, 2, 10, 1), AbortedTxn(2, 1, 12, 13)]
    assert log.aborted_between(11, 14) == [AbortedTxn(2, 1, 12, 13), AbortedTxn(3, 13, 13, 14)]
