"""PartitionLog over the in-memory file system: append, read, roll, retention, ListOffsets."""

from __future__ import annotations

import pytest

from tests.logstore.helpers import all_headers, batch, log_batches, prepared, small
from zoolog.logstore.log_config import LogConfig
from zoolog.logstore.partition_log import PartitionLog, UnexpectedAppendOffset
from zoolog.protocol.kafka.errors import Err, KafkaError
from zoolog.protocol.kafka.record_batch import Codec, batch_records, read_header
from zoolog.testing.log_files import MemoryLogFileSystem


def new_log(config: LogConfig | None = None, now_ms: int = 0,
            ) -> tuple[MemoryLogFileSystem, PartitionLog]:
    fs = MemoryLogFileSystem()
    fs.make_dir("t-0")
    fs.fsync_dir("")
    log, report = PartitionLog.open(fs, "t-0", config or LogConfig(), now_ms)
    assert report.truncated_bytes == 0
    return fs, log


def test_offsets_are_assigned_consecutively_and_stamped() -> None:
    _fs, log = new_log()
    raw = [batch(3), batch(1), batch(5, codec=Codec.GZIP)]
    info = log.append(prepared(*raw), 7, 1000)
    assert (info.first_offset, info.last_offset) == (0, 8)
    assert info.base_offsets == [0, 3, 4]
    info = log.append(prepared(batch(2)), 8, 1000)
    assert info.base_offsets == [9] and log.log_end_offset == 11
    data = log.read_bytes(0, 1 << 20)
    headers = log_batches(data)  # CRCs still valid after stamping
    assert [(h.base_offset, h.partition_leader_epoch) for h in headers] == [
        (0, 7), (3, 7), (4, 7), (9, 8)]
    # the rest of each batch is the client's bytes unchanged
    assert data[16 : headers[0].size] == raw[0][16:]
    assert log.epochs.entries() == [(7, 0), (8, 9)]


def test_the_client_batch_is_not_copied_whole() -> None:
    """The write is a 16-byte prefix plus a view of the client's buffer."""
    seen: list[list[int]] = []

    class Spy(MemoryLogFileSystem):
        def append(self, path, parts):  # type: ignore[no-untyped-def]
            if path.endswith(".log"):
                seen.append([len(p) for p in parts if len(p)])
                assert all(isinstance(p, (bytes, memoryview)) for p in parts)
            super().append(path, parts)

    fs = Spy()
    fs.make_dir("t-0")
    log, _ = PartitionLog.open(fs, "t-0", LogConfig(), 0)
    raw = batch(10, value_bytes=1000)
    log.append(prepared(raw, raw), 0, 0)
    assert seen[-1] == [16, len(raw) - 16, 16, len(raw) - 16]


def test_reads_return_whole_batches_within_max_bytes() -> None:
    _, log = new_log(small(segment_bytes=1 << 20))
    for _ in range(40):
        log.append(prepared(batch(2, value_bytes=100)), 0, 0)
    size = read_header(log.read_bytes(0, 1 << 20)).size
    result = log.read(0, 3 * size + size // 2)
    assert result.size == 3 * size and result.next_offset == 6
    assert [h.base_offset for h in log_batches(log.read_bytes(0, 3 * size + 1))] == [0, 2, 4]
    # an offset inside a batch starts at that batch
    assert log.read(5, size).first_offset == 4
    # max_bytes smaller than one batch: one whole batch, or nothing without min_one_batch
    assert log.read(10, 1).size == size
    assert log.read(10, 1, min_one_batch=False).slices == []
    # the upper bound (high watermark) is never passed
    assert [h.base_offset for h in log_batches(log.read_bytes(0, 1 << 20, 8))] == [0, 2, 4, 6]
    assert log.read(8, 1 << 20, 8).slices == []
    # everything
    assert log.read(0, 1 << 20).size == 40 * size


def test_reads_span_segments_and_respect_max_bytes() -> None:
    _, log = new_log(small(segment_bytes=1000, index_interval_bytes=100))
    for _ in range(60):
        log.append(prepared(batch(1, value_bytes=50)), 0, 0)
    assert len(log.segments) > 5
    for offset in range(0, 60, 7):
        for max_bytes in (1, 150, 700, 2500, 1 << 20):
            headers = log_batches(log.read_bytes(offset, max_bytes))
            assert headers[0].base_offset == offset
            assert [h.base_offset for h in headers] == list(range(offset,
                                                                  offset + len(headers)))
            size = headers[0].size
            assert len(headers) == max(1, min(max_bytes // size, 60 - offset)) or (
                # a read may stop at a segment end it could have passed
                len(headers) * size <= max_bytes)


def test_offsets_out_of_range() -> None:
    _, log = new_log()
    log.append(prepared(batch(3)), 0, 0)
    with pytest.raises(KafkaError) as info:
        log.read(4, 100)
    assert info.value.code == Err.OFFSET_OUT_OF_RANGE
    assert log.read(3, 100).slices == []
    log.roll(0)
    log.append(prepared(batch(3)), 0, 0)
    log.delete_records_before(4)
    with pytest.raises(KafkaError) as info:
        log.read(3, 100)
    assert info.value.code == Err.OFFSET_OUT_OF_RANGE
    assert log.read(4, 1 << 20).first_offset == 3  # the batch holding 4 starts at 3


def test_roll_by_size_time_and_index() -> None:
    _, log = new_log(small(segment_bytes=1000))
    for _ in range(10):
        log.append(prepared(batch(1, value_bytes=200)), 0, 0)
    assert all(s.size <= 1000 for s in log.segments) and len(log.segments) >= 3

    _, log = new_log(LogConfig(segment_ms=1000))
    log.append(prepared(batch(1, timestamp=5000)), 0, 5000)
    log.append(prepared(batch(1, timestamp=5900)), 0, 5900)
    assert len(log.segments) == 1
    log.append(prepared(batch(1, timestamp=6100)), 0, 6100)
    assert [s.base_offset for s in log.segments] == [0, 2]

    _, log = new_log(LogConfig(segment_index_bytes=8 * 4, index_interval_bytes=10))
    for _ in range(30):
        log.append(prepared(batch(1)), 0, 0)
    assert len(log.segments) > 3
    assert all(len(s.index) <= 4 and len(s.time_index) <= 2 for s in log.segments)
    assert [h.base_offset for h in all_headers(log)] == list(range(30))


def test_retention_by_time_and_size_never_deletes_the_active_segment() -> None:
    _, log = new_log(small(segment_bytes=1000, retention_ms=10_000, file_delete_delay_ms=0))
    for i in range(20):
        log.append(prepared(batch(1, value_bytes=200, timestamp=i * 1000)), 0, i * 1000)
    segments = len(log.segments)
    assert log.apply_retention(now_ms=15_000) > 0
    assert all(s.max_timestamp >= 5_000 for s in log.segments[:-1])
    assert log.log_start_offset == log.segments[0].base_offset > 0
    assert len(log.segments) < segments
    before = len(log.segments)
    assert log.apply_retention(now_ms=10**9) == before - 1
    assert len(log.segments) == 1 and log.log_start_offset == log.segments[0].base_offset
    assert log.read(log.log_start_offset, 1 << 20).size == log.segments[0].size

    fs, log = new_log(small(segment_bytes=1000, retention_bytes=2500, file_delete_delay_ms=0))
    for _ in range(20):
        log.append(prepared(batch(1, value_bytes=200)), 0, 0)
    log.apply_retention(0)
    assert log.size - log.segments[0].size < 2500 <= log.size or len(log.segments) == 1
    assert not [n for n in fs.list("t-0") if n.endswith(".deleted")]


def test_retention_waits_for_the_high_watermark_and_the_delete_delay() -> None:
    fs, log = new_log(small(segment_bytes=500, retention_ms=0, file_delete_delay_ms=100))
    for _ in range(10):
        log.append(prepared(batch(1, value_bytes=200)), 0, 0)
    second = log.segments[1].base_offset
    assert log.apply_retention(5000, upper_bound_offset=second) == 1
    deleted = sorted(n for n in fs.list("t-0") if n.endswith(".deleted"))
    assert deleted == [f"00000000000000000000.{kind}.deleted"
                       for kind in ("index", "log", "timeindex", "txnindex")]
    log.apply_retention(5050)
    assert len([n for n in fs.list("t-0") if n.endswith(".deleted")]) > 0
    log.apply_retention(10**6)
    assert not [n for n in fs.list("t-0") if n.endswith(".deleted")]


def test_delete_records_before() -> None:
    _, log = new_log(small(segment_bytes=600, file_delete_delay_ms=0))
    for _ in range(12):
        log.append(prepared(batch(2, value_bytes=100)), 0, 0)
    assert log.delete_records_before(9) == 9
    assert log.segments[0].base_offset <= 8
    assert all(s.base_offset <= 9 for s in log.segments[:1])
    assert log.read(9, 1 << 20).first_offset == 8
    with pytest.raises(KafkaError):
        log.delete_records_before(log.log_end_offset + 1)
    log.delete_records_before(log.log_end_offset)
    assert log.read(log.log_end_offset, 100).slices == []
    assert len(log.segments) == 1


def test_list_offsets_by_timestamp_and_max_timestamp() -> None:
    _, log = new_log(small(segment_bytes=800, index_interval_bytes=100))
    for i in range(30):
        log.append(prepared(batch(3, timestamp=1000 + 10 * i, value_bytes=50)), 2, 0)
    # records of batch i have timestamps 1000+10i, +1, +2 and offsets 3i, 3i+1, 3i+2
    assert log.offset_for_timestamp(0) == (1000, 0, 2)
    assert log.offset_for_timestamp(1001) == (1001, 1, 2)
    assert log.offset_for_timestamp(1003) == (1010, 3, 2)
    assert log.offset_for_timestamp(1152) == (1152, 47, 2)
    assert log.offset_for_timestamp(1292) == (1292, 89, 2)
    assert log.offset_for_timestamp(1293) is None
    assert log.max_timestamp_and_offset() == (1292, 89, 2)
    log.append(prepared(batch(1, timestamp=5)), 2, 0)
    assert log.max_timestamp_and_offset() == (1292, 89, 2)
    log.append(prepared(batch(2, timestamp=9000)), 3, 0)
    assert log.max_timestamp_and_offset() == (9001, 92, 3)


def test_append_as_is_keeps_offsets_and_epochs() -> None:
    _, leader = new_log(small())
    leader.append(prepared(batch(2), batch(3)), 4, 0)
    leader.append(prepared(batch(1)), 6, 0)
    _, follower = new_log(small())
    data = leader.read_bytes(0, 1 << 20)
    follower.append_as_is(prepared(*[data[s:s + h.size] for s, h in _positions(data)]), 0)
    assert follower.read_bytes(0, 1 << 20) == data
    assert follower.epochs.entries() == [(4, 0), (6, 5)]
    assert follower.log_end_offset == 6
    with pytest.raises(UnexpectedAppendOffset):
        follower.append_as_is(prepared(data[: read_header(data).size]), 0)


def _positions(data: bytes) -> list[tuple[int, object]]:
    from zoolog.protocol.kafka.record_batch import iter_batches
    return list(iter_batches(data))  # type: ignore[arg-type]


def test_truncate_to_drops_the_tail_and_epochs() -> None:
    _, log = new_log(small(segment_bytes=500))
    for epoch in range(6):
        log.append(prepared(batch(2, value_bytes=100)), epoch, 0)
    log.truncate_to(5)  # inside the batch 4..5: it goes whole
    assert log.log_end_offset == 4
    assert [h.base_offset for h in all_headers(log)] == [0, 2]
    assert log.epochs.entries() == [(0, 0), (1, 2)]
    info = log.append(prepared(batch(1)), 9, 0)
    assert info.first_offset == 4
    assert log.epochs.end_offset_for(1, log.log_end_offset) == (1, 4)
    log.truncate_to(4)
    assert log.log_end_offset == 4 and log.epochs.entries() == [(0, 0), (1, 2)]
    log.truncate_to(0)
    assert log.log_end_offset == 0 and all_headers(log) == []


def test_records_decode_after_stamping() -> None:
    _, log = new_log()
    log.append(prepared(batch(4, key=b"k", codec=Codec.ZSTD)), 0, 0)
    data = log.read_bytes(0, 1 << 20)
    assert [r.key for r in batch_records(data, 1 << 20)] == [b"k"] * 4


def test_flush_plan_and_needs_flush() -> None:
    fs, log = new_log(small(segment_bytes=500, flush_messages=3))
    log.append(prepared(batch(1)), 0, 0)
    log.append(prepared(batch(2)), 0, 0)
    assert log.needs_flush(0)
    plan = log.flush_plan()
    assert plan.offset == 3 and "t-0/00000000000000000000.log" in plan.file_paths
    assert plan.dir_paths == ("t-0",)
    before = fs.fsyncs
    plan.run(fs)
    log.mark_flushed(plan, 0)
    assert fs.fsyncs > before and log.recovery_point == 3
    assert not log.needs_flush(0)
    assert log.flush_plan().dir_paths == ()
