"""Recovery from `__transaction_state`: the state a run wrote comes back; transactions that
were deciding write their markers again; Ongoing ones time out; bad records are skipped."""

from __future__ import annotations

from collections.abc import Iterator

from tests.broker.txn.harness import START_MS, TXN_TIMEOUT_MS, Harness

from zoolog.broker.txn import (
    Persist,
    TransactionCoordinator,
    TxnConfig,
    TxnLogEntry,
    TxnState,
    WriteMarkers,
    encode_key,
    encode_value,
)
from zoolog.protocol.kafka._generated.coordinator_records import TransactionLogValue
from zoolog.protocol.kafka.errors import Err

S = TxnState


def reload(h: Harness, *, now_ms: int | None = None) -> Harness:
    """A fresh harness whose coordinator loaded every partition `h` wrote."""
    fresh = Harness(h.config, first_producer_id=5000)
    fresh.now = h.now if now_ms is None else now_ms
    for partition in range(h.config.transaction_state_log_num_partitions):
        fresh.coord.load(partition, h.log.get(partition, []), fresh.now)
    return fresh


def durable_view(coord: TransactionCoordinator) -> dict[str, bytes]:
    """Each id's state as a record holds it."""
    return {m.transactional_id: encode_value(m) for m in coord.transactions()}


def run_scenario(h: Harness) -> None:
    h.init_ok("empty")
    h.init_ok("empty")
    pid, epoch = h.begin("ongoing", {"t": [0, 1], "u": [0]})
    h.add_offsets("ongoing", pid, epoch, "group-a")
    pid, epoch = h.begin("committed")
    h.end("committed", pid, epoch, commit=True)
    pid, epoch = h.begin("aborted", {"u": [1]})
    h.end("aborted", pid, epoch, commit=False)
    h.begin("fenced")
    h.init("fenced")
    h.init_ok("gone")


def test_round_trip() -> None:
    h = Harness(TxnConfig(transactional_id_expiration_ms=3_600_000))
    h.init_ok("gone")
    h.advance(3_600_000)  # "gone" expires (tombstone)
    run_scenario(h)
    h.settle()
    assert h.coord.transaction("gone") is not None
    fresh = reload(h)
    assert durable_view(fresh.coord) == durable_view(h.coord)
    assert {m.transactional_id: m.state for m in fresh.coord.transactions()} == {
        "empty": S.EMPTY, "ongoing": S.ONGOING, "committed": S.COMPLETE_COMMIT,
        "aborted": S.COMPLETE_ABORT, "fenced": S.COMPLETE_ABORT, "gone": S.EMPTY}
    assert fresh.coord.corrupt_records == 0
    assert fresh.coord.take_output() == []
    assert fresh.coord.loaded_partitions == frozenset(range(50))
    # the loaded state serves requests as the old one would
    meta = fresh.meta("ongoing")
    assert fresh.code(fresh.end("ongoing", meta.producer_id, meta.producer_epoch, True)) == (
        Err.NONE)
    assert fresh.init_ok("empty") == (h.meta("empty").producer_id, 2)


def test_tombstone_forgets() -> None:
    h = Harness(TxnConfig(transactional_id_expiration_ms=60_000))
    h.init_ok("gone")
    h.advance(60_000)
    assert h.coord.transaction("gone") is None
    assert h.log[h.coord.partition_for("gone")][-1][1] is None
    fresh = reload(h)
    assert fresh.coord.transaction("gone") is None


def test_prepare_resumes_its_markers() -> None:
    h = Harness(auto_markers=False)
    pid, epoch = h.begin("c", {"t": [0], "u": [1]})
    h.end("c", pid, epoch, commit=True)
    pid2, epoch2 = h.begin("a", {"t": [2]})
    h.end("a", pid2, epoch2, commit=False)
    before = {(w.transactional_id, w.commit, w.producer_id, w.producer_epoch, w.partitions)
              for w in h.markers}
    fresh = Harness(h.config, auto_markers=False)
    for partition, records in h.log.items():
        fresh.coord.load(partition, records, fresh.now)
    fresh.drain()
    assert {(w.transactional_id, w.commit, w.producer_id, w.producer_epoch, w.partitions)
            for w in fresh.pending_markers} == before
    assert fresh.meta("c").state is S.PREPARE_COMMIT
    assert fresh.code(fresh.end("c", pid, epoch, commit=True)) == Err.CONCURRENT_TRANSACTIONS
    fresh.write_markers()
    assert fresh.meta("c").state is S.COMPLETE_COMMIT
    assert fresh.meta("a").state is S.COMPLETE_ABORT


def test_prepare_epoch_fence_goes_on_to_the_abort() -> None:
    h = Harness()
    record = TxnLogEntry(77, -1, 4, 60_000, S.PREPARE_EPOCH_FENCE,
                         frozenset({("t", 0)}), START_MS - 5, START_MS - 1)
    h.coord.load(h.coord.partition_for("f"), [(encode_key("f"), encode_value(record))], h.now)
    h.drain()
    meta = h.meta("f")
    assert (meta.state, meta.producer_epoch) == (S.COMPLETE_ABORT, 4)
    assert [(w.commit, w.producer_epoch) for w in h.markers] == [(False, 4)]


def test_ongoing_is_aborted_at_its_timeout_after_load() -> None:
    h = Harness()
    pid, epoch = h.begin("tid", {"t": [0]})
    start = h.meta("tid").txn_start_timestamp_ms
    fresh = reload(h, now_ms=h.now + 30_000)
    assert fresh.meta("tid").txn_start_timestamp_ms == start
    fresh.advance(TXN_TIMEOUT_MS - 30_000)
    assert fresh.meta("tid").state is S.ONGOING
    fresh.advance(10_000)
    meta = fresh.meta("tid")
    assert (meta.state, meta.producer_epoch) == (S.COMPLETE_ABORT, epoch + 1)
    assert fresh.code(fresh.end("tid", pid, epoch, commit=True)) == Err.PRODUCER_FENCED


def ids_in(coord: TransactionCoordinator, partition: int, prefix: str) -> Iterator[str]:
    return (t for t in (f"{prefix}{i}" for i in range(10_000))
            if coord.partition_for(t) == partition)


def test_last_record_wins_and_bad_records_are_counted() -> None:
    h = Harness()
    part = h.coord.partition_for("tid")
    was, dead = next(ids_in(h.coord, part, "was")), next(ids_in(h.coord, part, "dead"))
    other = next(ids_in(h.coord, (part + 1) % 50, "other"))
    older = TxnLogEntry(9, -1, 1, 1000, S.EMPTY, frozenset(), -1, 10)
    newer = TxnLogEntry(9, -1, 2, 1000, S.EMPTY, frozenset(), -1, 20)
    # Dead is never written (a tombstone is); a value saying Dead is read as one
    dead_value = b"\x00\x00" + TransactionLogValue(
        producer_id=9, producer_epoch=2, transaction_timeout_ms=1000,
        transaction_status=int(S.DEAD)).to_bytes(0)
    h.coord.load(part, [
        (encode_key("tid"), encode_value(older)),
        (b"\x00", b"garbage"),
        (encode_key("tid"), b"\x00\x00\x01"),
        (encode_key(other), encode_value(older)),  # belongs to another partition
        (encode_key("tid"), encode_value(newer)),
        (encode_key(was), encode_value(older)),
        (encode_key(was), None),
        (encode_key(dead), dead_value),
    ], h.now)
    assert h.coord.corrupt_records == 3
    assert h.meta("tid").producer_epoch == 2
    assert h.coord.transaction(was) is None
    assert h.coord.transaction(other) is None
    assert h.coord.transaction(dead) is None


def test_load_replaces_only_its_partition() -> None:
    h = Harness()
    h.init_ok("a")
    b = next(t for t in (f"b{i}" for i in range(100))
             if h.coord.partition_for(t) != h.coord.partition_for("a"))
    h.init_ok(b)
    h.coord.load(h.coord.partition_for("a"), [], h.now)
    assert h.coord.transaction("a") is None
    assert h.coord.transaction(b) is not None


def test_a_persist_superseded_by_load_still_answers() -> None:
    h = Harness(auto_persist=False)
    token = h.init("tid")
    [persist] = h.pending
    h.coord.load(h.coord.partition_for("tid"), [], h.now)
    h.coord.persisted(persist, h.now)
    out = h.coord.take_output()
    assert [type(o).__name__ for o in out] == ["Reply"]
    assert not isinstance(out[0], Persist | WriteMarkers)
    assert out[0].token == token
    assert h.coord.transaction("tid") is None
