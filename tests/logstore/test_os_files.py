"""The log store on the real file system (OsLogFileSystem in a temporary directory)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.logstore.helpers import all_headers, batch, log_batches, prepared, small
from zoolog.logstore.log_config import LogConfig
from zoolog.logstore.log_manager import LogManager
from zoolog.logstore.partition_log import PartitionLog
from zoolog.server.log_files import OsLogFileSystem


def test_append_read_reopen(tmp_path: Path) -> None:
    fs = OsLogFileSystem(tmp_path)
    fs.make_dir("t-0")
    config = small(segment_bytes=3000, index_interval_bytes=200)
    log, _ = PartitionLog.open(fs, "t-0", config, 0)
    for i in range(50):
        log.append(prepared(batch(2, value_bytes=100, timestamp=i), batch(1)), 3, i)
    data = log.read_bytes(0, 1 << 30)
    assert [h.base_offset for h in log_batches(data)][:4] == [0, 2, 3, 5]
    result = log.read(10, 500)
    for piece in result.slices:  # what sendfile would send
        assert os.pread(fs.fd(piece.path), piece.size, piece.position) == \
            fs.read(piece.path, piece.position, piece.size)
    log.close()
    fs.close_all()
    fs2 = OsLogFileSystem(tmp_path)
    log2, report = PartitionLog.open(fs2, "t-0", config, 0, recovery_point=log.recovery_point,
                                     clean_shutdown=True)
    assert report.segments_recovered == 0
    assert log2.read_bytes(0, 1 << 30) == data
    assert log2.append(prepared(batch(1)), 3, 0).first_offset == 150
    fs2.close_all()


def test_a_torn_tail_written_with_plain_appends_is_truncated(tmp_path: Path) -> None:
    fs = OsLogFileSystem(tmp_path)
    fs.make_dir("t-0")
    log, _ = PartitionLog.open(fs, "t-0", LogConfig(), 0)
    log.append(prepared(batch(3), batch(2)), 0, 0)
    log.close()
    fs.close_all()
    segment = tmp_path / "t-0" / "00000000000000000000.log"
    good = segment.stat().st_size
    with segment.open("ab") as handle:  # a torn write: a batch cut short
        handle.write(batch(4)[:50])
    fs2 = OsLogFileSystem(tmp_path)
    log2, report = PartitionLog.open(fs2, "t-0", LogConfig(), 0)
    assert report.truncated_bytes == 50 and log2.log_end_offset == 5
    assert segment.stat().st_size == good
    assert [h.base_offset for h in all_headers(log2)] == [0, 3]
    fs2.close_all()


def test_manager_on_disk(tmp_path: Path) -> None:
    fs = OsLogFileSystem(tmp_path)
    manager, report = LogManager.open(fs, lambda topic: small(), 0)
    assert report.logs == {}
    log = manager.create_log("my-topic.v2", 3, 0)
    log.append(prepared(batch(2)), 0, 0)
    manager.create_log("other", 0, 0)
    manager.delete_log("other", 0, token="ab" * 16)
    manager.close()
    fs.close_all()
    assert sorted(os.listdir(tmp_path)) == [
        ".kafka_cleanshutdown", "cleaner-offset-checkpoint", "log-start-offset-checkpoint",
        "my-topic.v2-3", "recovery-point-offset-checkpoint"]
    fs2 = OsLogFileSystem(tmp_path)
    manager2, report2 = LogManager.open(fs2, lambda topic: small(), 0)
    assert report2.clean_shutdown and list(report2.logs) == [("my-topic.v2", 3)]
    log2 = manager2.get("my-topic.v2", 3)
    assert log2 is not None and log2.log_end_offset == 2
    assert not (tmp_path / ".kafka_cleanshutdown").exists()
    fs2.close_all()


def test_fsync_skips_files_unchanged_since_their_last_fsync(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    fs = OsLogFileSystem(tmp_path)
    fs.make_dir("t-0")
    synced: list[int] = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (synced.append(fd), real(fd)))
    fs.append("t-0/a", [b"one"])
    fs.fsync("t-0/a")
    fs.fsync("t-0/a")                      # nothing new: skipped
    assert len(synced) == 1
    fs.append("t-0/a", [b"two"])
    fs.fsync("t-0/a")                      # appended: synced
    fs.truncate("t-0/a", 2)
    fs.fsync("t-0/a")                      # truncated: synced
    assert len(synced) == 3
    fs.rename("t-0/a", "t-0/b")            # the descriptor (and what it synced) moves
    fs.fsync("t-0/b")
    assert len(synced) == 3
    fs.close("t-0/b")
    fs.append("t-0/c", [b"x"])             # may reuse the closed descriptor's number
    fs.fsync("t-0/c")
    assert len(synced) == 4
    fs.fsync("t-0/b")                      # not kept open: always synced
    assert len(synced) == 5
    assert fs.read("t-0/c", 0, 1) == b"x"
