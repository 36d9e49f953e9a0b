"""`ProducerStateManager` against a model of Kafka's idempotence rules (COMPAT-KAFKA §3):

- a batch whose epoch and (first, last) sequence equal one of the producer's last 5 is a
  duplicate, answered with the original offsets;
- a lower epoch -> INVALID_PRODUCER_EPOCH;
- a higher epoch must start at sequence 0 -> else OUT_OF_ORDER_SEQUENCE_NUMBER;
- within an epoch the first sequence follows the last (2^31-1 wraps to 0) -> else
  OUT_OF_ORDER_SEQUENCE_NUMBER;
- a producer the state does not know may start anywhere.

Plus snapshots: encode/decode round trips, and damaged snapshots raise SnapshotError only.
"""

from __future__ import annotations

import contextlib
import struct
import zlib
from dataclasses import dataclass, field

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from zoolog.broker.producer_state import (
    BATCHES_RETAINED,
    BatchMetadata,
    ProducerEntry,
    ProducerStateManager,
    SnapshotError,
    decode_snapshot,
    encode_snapshot,
)
from zoolog.protocol.kafka.errors import Err, KafkaError
from zoolog.protocol.kafka.record_batch import BatchHeader

SEQ_MAX = 2**31 - 1
PIDS = (1000, 1001, 1002)


def header(pid: int, epoch: int, first_seq: int, count: int, *, base_offset: int = 0,
           timestamp_ms: int = 0, transactional: bool = False,
           control: bool = False) -> BatchHeader:
    attributes = (0x10 if transactional else 0) | (0x20 if control else 0)
    return BatchHeader(base_offset=base_offset, batch_length=49, partition_leader_epoch=0,
                       magic=2, crc=0, attributes=attributes, last_offset_delta=count - 1,
                       base_timestamp=timestamp_ms, max_timestamp=timestamp_ms,
                       producer_id=pid, producer_epoch=epoch, base_sequence=first_seq,
                       records_count=count)


def last_seq_of(first: int, count: int) -> int:
    return (first + count - 1) % (SEQ_MAX + 1)


def following(last: int) -> int:
    return 0 if last == SEQ_MAX else last + 1


# --- the model ---------------------------------------------------------------------------


@dataclass
class MBatch:
    epoch: int
    first_seq: int
    last_seq: int
    count: int
    first_offset: int
    last_offset: int
    timestamp_ms: int


@dataclass
class MProducer:
    epoch: int
    batches: list[MBatch] = field(default_factory=list)
    """The last (up to) 5 batches of the current epoch."""
    last_timestamp_ms: int = -1


def model_verdict(producer: MProducer | None, epoch: int, first: int,
                  last: int) -> tuple[str, MBatch | int | None]:
    """("append", None) | ("duplicate", batch) | ("error", code)."""
    if producer is None:
        return "append", None
    if epoch == producer.epoch:
        for batch in producer.batches:
            if (batch.first_seq, batch.last_seq) == (first, last):
                return "duplicate", batch
    if epoch < producer.epoch:
        return "error", Err.INVALID_PRODUCER_EPOCH
    if epoch > producer.epoch:
        return ("append", None) if first == 0 else ("error", Err.OUT_OF_ORDER_SEQUENCE_NUMBER)
    expected = following(producer.batches[-1].last_seq)
    return ("append", None) if first == expected else (
        "error", Err.OUT_OF_ORDER_SEQUENCE_NUMBER)


def snapshot_view(state: ProducerStateManager) -> dict[int, tuple[object, ...]]:
    return {pid: (e.producer_epoch, e.coordinator_epoch, e.last_timestamp_ms,
                  e.txn_first_offset, tuple(e.batches))
            for pid, e in state.entries.items()}


class ProducerStateMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.sut = ProducerStateManager()
        self.model: dict[int, MProducer] = {}
        self.history: dict[int, list[MBatch]] = {}
        """Every batch appended per producer (also those older than the last 5)."""
        self.log: list[tuple[MBatch, BatchHeader]] = []
        """The partition's log: every appended batch in offset order."""
        self.next_offset = 0
        self.now_ms = 1_000_000
        self.replay_exact = True
        """Replaying the log rebuilds exactly this state (no expiry or truncation yet)."""

    @initialize(start=st.integers(0, 10_000))
    def start_offsets(self, start: int) -> None:
        self.next_offset = start

    # --- appends -----------------------------------------------------------------------

    def _attempt(self, pid: int, epoch: int, first_seq: int, count: int) -> None:
        hdr = header(pid, epoch, first_seq, count, timestamp_ms=self.now_ms)
        last = last_seq_of(first_seq, count)
        assert hdr.last_sequence == last
        producer = self.model.get(pid)
        verdict, detail = model_verdict(producer, epoch, first_seq, last)
        event(f"{verdict} {detail}" if verdict == "error" else verdict)
        if first_seq + count - 1 > SEQ_MAX or (
                producer is not None and producer.batches[-1].last_seq == SEQ_MAX):
            event("sequence wraps")
        if verdict == "error":
            with pytest.raises(KafkaError) as caught:
                self.sut.check(hdr)
            assert caught.value.code == detail, (caught.value, detail)
            return
        found = self.sut.check(hdr)
        if verdict == "duplicate":
            assert isinstance(detail, MBatch)
            assert found is not None, "a retried batch must be answered as a duplicate"
            assert (found.first_offset, found.last_offset) == (detail.first_offset,
                                                                detail.last_offset)
            assert (found.first_seq, found.last_seq) == (detail.first_seq, detail.last_seq)
            return
        assert found is None, f"batch {first_seq}..{last} wrongly taken for {found}"
        first_offset = self.next_offset
        self.sut.record(hdr, first_offset, self.now_ms)
        batch = MBatch(epoch, first_seq, last, count, first_offset,
                       first_offset + count - 1, self.now_ms)
        self.next_offset += count
        if producer is None or producer.epoch != epoch:
            producer = self.model[pid] = MProducer(epoch)
        producer.batches = [*producer.batches, batch][-BATCHES_RETAINED:]
        producer.last_timestamp_ms = self.now_ms
        self.history.setdefault(pid, []).append(batch)
        self.log.append((batch, hdr._replace(base_offset=first_offset)))

    @rule(pid=st.sampled_from(PIDS), count=st.integers(1, 5), epoch=st.integers(0, 3),
          first=st.one_of(st.just(0), st.integers(0, 50),
                          st.integers(SEQ_MAX - 8, SEQ_MAX)))
    def append_unknown_or_any(self, pid: int, count: int, epoch: int, first: int) -> None:
        """Any epoch and sequence: an unknown producer starts there (also near the wrap)."""
        self._attempt(pid, epoch, first, count)

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data(), count=st.integers(1, 5))
    def append_next(self, data: st.DataObject, count: int) -> None:
        """The next batch in sequence (crossing 2^31-1 -> 0 where the state is there)."""
        pid = data.draw(st.sampled_from(sorted(self.model)))
        producer = self.model[pid]
        self._attempt(pid, producer.epoch, following(producer.batches[-1].last_seq), count)

    @precondition(lambda self: bool(self.history))
    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        """Resend an earlier batch: one of the last 5 is a duplicate, an older one is out of
        order, one of an older epoch is fenced."""
        pid = data.draw(st.sampled_from(sorted(self.history)))
        old = data.draw(st.sampled_from(self.history[pid]))
        self._attempt(pid, old.epoch, old.first_seq, old.count)

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data(), count=st.integers(1, 5), gap=st.integers(1, 3))
    def append_with_gap(self, data: st.DataObject, count: int, gap: int) -> None:
        pid = data.draw(st.sampled_from(sorted(self.model)))
        producer = self.model[pid]
        first = (following(producer.batches[-1].last_seq) + gap) % (SEQ_MAX + 1)
        self._attempt(pid, producer.epoch, first, count)

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data(), count=st.integers(1, 5), first=st.sampled_from([0, 0, 1, 7]))
    def bump_epoch(self, data: st.DataObject, count: int, first: int) -> None:
        """A new epoch: accepted only from sequence 0."""
        pid = data.draw(st.sampled_from(sorted(self.model)))
        bump = data.draw(st.integers(1, 2))
        self._attempt(pid, self.model[pid].epoch + bump, first, count)

    @precondition(lambda self: any(p.epoch > 0 for p in self.model.values()))
    @rule(data=st.data(), count=st.integers(1, 5))
    def older_epoch(self, data: st.DataObject, count: int) -> None:
        pid = data.draw(st.sampled_from(sorted(p for p, e in self.model.items() if e.epoch)))
        producer = self.model[pid]
        epoch = data.draw(st.integers(0, producer.epoch - 1))
        self._attempt(pid, epoch, following(producer.batches[-1].last_seq), count)

    # --- time, expiry, truncation, snapshots ------------------------------------------------

    @rule(ms=st.integers(0, 5_000))
    def advance(self, ms: int) -> None:
        self.now_ms += ms

    @rule(expiration_ms=st.integers(0, 10_000))
    def expire(self, expiration_ms: int) -> None:
        expected = {pid for pid, p in self.model.items()
                    if self.now_ms - p.last_timestamp_ms >= expiration_ms}
        gone = self.sut.expire(self.now_ms, expiration_ms)
        assert set(gone) == expected
        for pid in expected:
            del self.model[pid]
            self.history.pop(pid, None)
        if expected:
            self.replay_exact = False

    @precondition(lambda self: bool(self.log))
    @rule(data=st.data())
    def truncate(self, data: st.DataObject) -> None:
        """The log is truncated at a batch boundary: batches at or beyond it are forgotten."""
        index = data.draw(st.integers(0, len(self.log)))
        offset = self.log[index][0].first_offset if index < len(self.log) else self.next_offset
        self.sut.truncate_to(offset)
        del self.log[index:]
        self.next_offset = offset
        for pid in list(self.model):
            producer = self.model[pid]
            producer.batches = [b for b in producer.batches if b.last_offset < offset]
            self.history[pid] = [b for b in self.history[pid] if b.last_offset < offset]
            if not producer.batches:
                del self.model[pid]
                del self.history[pid]
        self.replay_exact = False

    @rule()
    def snapshot_round_trip(self) -> None:
        data = encode_snapshot(self.sut)
        restored = decode_snapshot(data)
        assert snapshot_view(restored) == snapshot_view(self.sut)
        assert encode_snapshot(restored) == data
        self.sut = restored  # go on from the restored state: it must behave the same

    @precondition(lambda self: self.replay_exact)
    @rule()
    def rebuild_from_the_log(self) -> None:
        """Replaying the stored batch headers gives the same state (what a reopen does)."""
        rebuilt = ProducerStateManager()
        assert rebuilt.rebuild(h for _, h in self.log) == len(self.log)
        assert snapshot_view(rebuilt) == snapshot_view(self.sut)

    @invariant()
    def matches_the_model(self) -> None:
        assert set(self.sut.entries) == set(self.model)
        for pid, producer in self.model.items():
            entry = self.sut.entries[pid]
            assert entry.producer_epoch == producer.epoch
            assert entry.last_timestamp_ms == producer.last_timestamp_ms
            assert [(b.first_seq, b.last_seq, b.first_offset, b.last_offset)
                    for b in entry.batches] == [
                (b.first_seq, b.last_seq, b.first_offset, b.last_offset)
                for b in producer.batches]
            assert entry.last_seq == producer.batches[-1].last_seq


ProducerStateMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40,
                                                  deadline=None)
TestProducerState = ProducerStateMachine.TestCase


# --- examples of each rule (readable failures) -------------------------------------------------


def test_rules_by_example() -> None:
    state = ProducerStateManager()
    assert state.check(header(7, 0, 0, 3)) is None
    state.record(header(7, 0, 0, 3), 100, 1)
    assert state.check(header(7, 0, 3, 2)) is None
    state.record(header(7, 0, 3, 2), 103, 2)
    duplicate = state.check(header(7, 0, 0, 3))
    assert duplicate is not None and (duplicate.first_offset, duplicate.last_offset) == (100, 102)
    for bad, code in [(header(7, 0, 6, 1), Err.OUT_OF_ORDER_SEQUENCE_NUMBER),
                      (header(7, 0, 4, 1), Err.OUT_OF_ORDER_SEQUENCE_NUMBER),
                      (header(7, 1, 5, 1), Err.OUT_OF_ORDER_SEQUENCE_NUMBER),
                      (header(7, 0, 0, 2), Err.OUT_OF_ORDER_SEQUENCE_NUMBER)]:
        with pytest.raises(KafkaError) as caught:
            state.check(bad)
        assert caught.value.code == code, bad
    assert state.check(header(7, 1, 0, 1)) is None
    state.record(header(7, 1, 0, 1), 105, 3)
    with pytest.raises(KafkaError) as caught:
        state.check(header(7, 0, 5, 1))
    assert caught.value.code == Err.INVALID_PRODUCER_EPOCH
    # the old epoch's batches are no duplicates any more either
    with pytest.raises(KafkaError) as caught:
        state.check(header(7, 0, 0, 3))
    assert caught.value.code == Err.INVALID_PRODUCER_EPOCH


def test_only_the_last_five_batches_are_remembered() -> None:
    state = ProducerStateManager()
    for i in range(7):
        state.record(header(7, 0, i, 1), i, i)
    for i in range(2, 7):
        found = state.check(header(7, 0, i, 1))
        assert found is not None and found.first_offset == i
    for i in range(2):
        with pytest.raises(KafkaError) as caught:
            state.check(header(7, 0, i, 1))
        assert caught.value.code == Err.OUT_OF_ORDER_SEQUENCE_NUMBER


def test_sequence_wraps_at_int32_max() -> None:
    state = ProducerStateManager()
    state.record(header(7, 0, SEQ_MAX - 1, 2), 0, 0)  # SEQ_MAX-1 .. SEQ_MAX
    assert state.check(header(7, 0, 0, 3)) is None
    state.record(header(7, 0, 0, 3), 2, 0)
    state.record(header(7, 0, 3, 1), 5, 0)
    # a batch that itself crosses the wrap
    state.record(header(8, 0, SEQ_MAX - 1, 4), 6, 0)  # SEQ_MAX-1, SEQ_MAX, 0, 1
    assert state.entries[8].last_seq == 1
    assert state.check(header(8, 0, 2, 1)) is None
    found = state.check(header(8, 0, SEQ_MAX - 1, 4))
    assert found is not None and found.first_offset == 6
    with pytest.raises(KafkaError):
        state.check(header(8, 0, 0, 1))


def test_an_unknown_producer_may_start_anywhere() -> None:
    state = ProducerStateManager()
    assert state.check(header(9, 5, 12345, 1)) is None
    state.record(header(9, 5, 12345, 1), 0, 0)
    assert state.expire(10, 10) == [9]
    assert state.check(header(9, 5, 999, 1)) is None  # forgotten: anything goes again


def test_expiry_keeps_open_transactions() -> None:
    state = ProducerStateManager()
    state.record(header(1, 0, 0, 1, transactional=True), 0, 0)
    state.record(header(2, 0, 0, 1), 1, 0)
    assert state.first_unstable_offset() == 0
    assert state.expire(1000, 10) == [2]
    assert set(state.entries) == {1}
    state.record(header(1, 0, -1, 1, transactional=True, control=True), 2, 5)
    assert state.first_unstable_offset() is None
    assert state.expire(1000, 10) == [1]


# --- damaged snapshots ----------------------------------------------------------------------

batch_metadata = st.builds(
    BatchMetadata, st.integers(0, SEQ_MAX), st.integers(0, SEQ_MAX),
    st.integers(0, 2**62), st.integers(0, 2**31 - 1), st.integers(-1, 2**62))


@st.composite
def producer_states(draw: st.DrawFn) -> ProducerStateManager:
    state = ProducerStateManager()
    for pid in draw(st.lists(st.integers(0, 2**62), max_size=4, unique=True)):
        entry = ProducerEntry(pid, draw(st.integers(-1, 32767)),
                              coordinator_epoch=draw(st.integers(-1, 2**31 - 1)),
                              last_timestamp_ms=draw(st.integers(-1, 2**62)),
                              txn_first_offset=draw(st.integers(-1, 2**62)))
        entry.batches.extend(draw(st.lists(batch_metadata, max_size=BATCHES_RETAINED)))
        state.entries[pid] = entry
    return state


@given(producer_states())
@settings(max_examples=100, deadline=None)
def test_snapshot_round_trip(state: ProducerStateManager) -> None:
    restored = decode_snapshot(encode_snapshot(state))
    assert snapshot_view(restored) == snapshot_view(state)


def _decode_or_snapshot_error(data: bytes) -> None:
    with contextlib.suppress(SnapshotError):  # the only exception a damaged snapshot may raise
        decode_snapshot(data)


@given(st.binary(max_size=300))
@settings(max_examples=300, deadline=None)
def test_random_bytes_raise_snapshot_error_only(data: bytes) -> None:
    _decode_or_snapshot_error(data)


@given(producer_states(), st.data(), st.booleans())
@settings(max_examples=300, deadline=None)
def test_damaged_snapshots_raise_snapshot_error_only(state: ProducerStateManager,
                                                     data: st.DataObject,
                                                     fix_crc: bool) -> None:
    """Flipped bytes, truncations, extensions; with `fix_crc` the checksum is recomputed so
    that the damage reaches the entry parser (a snapshot written by a buggy version)."""
    raw = bytearray(encode_snapshot(state))
    for _ in range(data.draw(st.integers(0, 4))):
        position = data.draw(st.integers(0, len(raw) - 1))
        raw[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    raw = raw[:cut] + data.draw(st.binary(max_size=40))
    if fix_crc and len(raw) >= 10:
        struct.pack_into(">I", raw, 2, zlib.crc32(raw[10:]))
    _decode_or_snapshot_error(bytes(raw))


@pytest.mark.parametrize("count", [-1, -2**31, 2**31 - 1, 2])
def test_lying_entry_counts_raise_snapshot_error(count: int) -> None:
    state = ProducerStateManager()
    state.record(header(3, 0, 0, 1), 0, 0)
    raw = bytearray(encode_snapshot(state))
    struct.pack_into(">i", raw, 6, count)
    with pytest.raises(SnapshotError):
        decode_snapshot(bytes(raw))
