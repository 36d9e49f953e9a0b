"""PartitionLog against a list-of-batches model (Hypothesis state machine)."""

from __future__ import annotations

import random
import struct

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tests.logstore.helpers import batch, log_batches, prepared
from zoolog.logstore.log_config import LogConfig
from zoolog.logstore.partition_log import PartitionLog
from zoolog.protocol.kafka.errors import Err, KafkaError
from zoolog.protocol.kafka.record_batch import iter_batches, read_header
from zoolog.testing.log_files import MemoryLogFileSystem

CONFIG = LogConfig(segment_bytes=1500, index_interval_bytes=150, retention_ms=200,
                   file_delete_delay_ms=30, segment_index_bytes=8 * 6)


class LogMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.fs = MemoryLogFileSystem()
        self.fs.make_dir("t-0")
        self.fs.fsync_dir("")
        self.log, _ = PartitionLog.open(self.fs, "t-0", CONFIG, 0)
        self.batches: list[tuple[int, int, bytes]] = []  # (base, last, stamped bytes)
        self.ever: set[bytes] = set()
        self.now_ms = 0
        self.epoch = 0

    @property
    def end(self) -> int:
        return self.batches[-1][1] + 1 if self.batches else self.log.log_end_offset

    def expected_from(self, offset: int) -> bytes:
        return b"".join(raw for _, last, raw in self.batches if last >= offset)

    @rule(sizes=st.lists(st.tuples(st.integers(1, 4), st.integers(0, 400)), min_size=1,
                         max_size=4), epoch_bump=st.booleans())
    def append(self, sizes: list[tuple[int, int]], epoch_bump: bool) -> None:
        self.now_ms += 10
        self.epoch += epoch_bump
        raws = [batch(n, value_bytes=v, timestamp=self.now_ms) for n, v in sizes]
        end = self.log.log_end_offset
        info = self.log.append(prepared(*raws), self.epoch, self.now_ms)
        offset = info.first_offset
        assert offset == end
        for raw in raws:
            header = read_header(raw)
            stamped = struct.pack(">qii", offset, header.batch_length, self.epoch) + raw[16:]
            self.batches.append((offset, offset + header.last_offset_delta, stamped))
            self.ever.add(stamped)
            offset += header.last_offset_delta + 1
        assert self.log.log_end_offset == offset

    @rule(data=st.data(), max_bytes=st.integers(1, 3000), one=st.booleans())
    def read(self, data: st.DataObject, max_bytes: int, one: bool) -> None:
        start, end = self.log.log_start_offset, self.log.log_end_offset
        offset = data.draw(st.integers(start, end))
        bound = data.draw(st.integers(offset, end + 2))
        got = self.log.read_bytes(offset, max_bytes, bound, one)
        expected = [(b, last, raw) for b, last, raw in self.batches if last >= offset]
        headers = log_batches(got)
        want: list[bytes] = []
        total = 0
        for _, last, raw in expected:
            if last >= min(bound, end):
                break
            if total + len(raw) > max_bytes and (want or not one):
                break
            want.append(raw)
            total += len(raw)
        assert got[: sum(map(len, want))] == b"".join(want)
        # a read may stop early at a segment end, but never returns less than one batch
        # when one qualifies, and what it returns is a prefix of what qualifies
        assert len(headers) <= len(want)
        if want:
            assert headers, "a qualifying batch was not returned"

    @rule(data=st.data())
    def read_out_of_range(self, data: st.DataObject) -> None:
        below = self.log.log_start_offset - 1
        above = self.log.log_end_offset + data.draw(st.integers(1, 5))
        for offset in ([below] if below >= 0 else []) + [above]:
            try:
                self.log.read(offset, 100)
            except KafkaError as exc:
                assert exc.code == Err.OFFSET_OUT_OF_RANGE
            else:
                raise AssertionError(f"offset {offset} read")

    @rule()
    def roll(self) -> None:
        self.log.roll(self.now_ms)

    @rule()
    def flush(self) -> None:
        self.log.flush(self.now_ms)

    @rule(advance=st.integers(0, 400))
    def retention(self, advance: int) -> None:
        self.now_ms += advance
        active = self.log.active.base_offset
        self.log.apply_retention(self.now_ms)
        assert self.log.active.base_offset == active  # never the active segment

    @precondition(lambda self: self.batches)
    @rule(data=st.data())
    def delete_records(self, data: st.DataObject) -> None:
        start = self.log.log_start_offset
        offset = data.draw(st.integers(start, self.log.log_end_offset))
        assert self.log.delete_records_before(offset, self.now_ms) == max(start, offset)

    @precondition(lambda self: self.batches)
    @rule(data=st.data())
    def truncate(self, data: st.DataObject) -> None:
        start = self.log.log_start_offset
        offset = data.draw(st.integers(start, self.log.log_end_offset))
        self.log.truncate_to(offset, self.now_ms)
        dropped = [b for b, last, _ in self.batches if last >= offset]
        self.batches = [b for b in self.batches if b[1] < offset]
        end = min([offset, *dropped])
        assert self.log.log_end_offset == (end if end >= start else offset)
        if end < start:
            self.batches = []

    @rule(seed=st.integers(0, 2**32), tear=st.booleans())
    def crash_and_reopen(self, seed: int, tear: bool) -> None:
        flushed = self.log.recovery_point
        kept = [b for b in self.batches if b[1] < flushed]
        start = self.log.log_start_offset
        self.fs.crash(random.Random(seed), tear=tear)
        self.log, report = PartitionLog.open(self.fs, "t-0", CONFIG, self.now_ms,
                                             recovery_point=flushed, log_start_offset=start)
        assert self.log.log_end_offset >= flushed
        got = self.log.read_bytes(self.log.log_start_offset, 1 << 30)
        prefix = b"".join(raw for _, last, raw in kept if last >= self.log.log_start_offset)
        assert got.startswith(prefix)
        # beyond the flushed point: whole batches that were written at some point
        rebuilt: list[tuple[int, int, bytes]] = []
        for pos, header in iter_batches(got):
            raw = got[pos : pos + header.size]
            if header.last_offset >= flushed:
                assert raw in self.ever
            rebuilt.append((header.base_offset, header.last_offset, raw))
        self.batches = rebuilt
        assert report.truncated_bytes >= 0

    @rule()
    def close_and_reopen_clean(self) -> None:
        self.log.close()
        self.log, report = PartitionLog.open(
            self.fs, "t-0", CONFIG, self.now_ms, recovery_point=self.log.recovery_point,
            log_start_offset=self.log.log_start_offset, clean_shutdown=True)
        assert report.segments_recovered == 0 and report.truncated_bytes == 0

    @invariant()
    def contents_match(self) -> None:
        start = self.log.log_start_offset
        if self.batches:
            assert self.log.log_end_offset == self.end
        got = self.log.read_bytes(start, 1 << 30)
        assert got == self.expected_from(start)

    @invariant()
    def indexes_point_at_batches(self) -> None:
        for segment in self.log.segments[-2:]:
            for offset, position in segment.index.entries():
                header = read_header(self.fs.read(segment.log_path, position, 61))
                assert header.last_offset == offset


LogMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=50,
                                        deadline=None,
                                        suppress_health_check=[HealthCheck.too_slow])
TestLogMachine = LogMachine.TestCase
