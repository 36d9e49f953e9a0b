"""AddPartitionsToTxn, AddOffsetsToTxn and EndTxn: joining partitions, the producer checks
and their errors by version, committing and aborting, retries."""

from __future__ import annotations

from typing import Any

import pytest
from tests.broker.txn.harness import APT, Harness, wire

from zoolog.broker.groups import partition_for as group_partition_for
from zoolog.broker.txn import Persist, Reply, TxnConfig, TxnState, WriteMarkers, decode
from zoolog.protocol.kafka._generated.add_partitions_to_txn import AddPartitionsToTxnRequest
from zoolog.protocol.kafka.errors import Err

S = TxnState


# -- AddPartitionsToTxn ---------------------------------------------------------------------

def test_add_starts_the_transaction_once_durable() -> None:
    h = Harness(auto_persist=False)
    h.init("tid")
    h.flush()
    start = h.now
    token = h.add("tid", 1000, 0, {"t": [0, 1]})
    assert h.answer(token) is None
    assert h.meta("tid").state is S.EMPTY  # nothing visible before the record is durable
    [persist] = h.pending
    _tid, entry = decode(persist.key, persist.value)
    assert entry is not None
    assert (entry.state, entry.partitions, entry.txn_start_timestamp_ms) == (
        S.ONGOING, frozenset({("t", 0), ("t", 1)}), start)
    assert set(h.add_codes("tid", 1000, 0, {"u": [0]}).values()) == {
        Err.CONCURRENT_TRANSACTIONS}
    h.now += 5
    h.flush()
    assert h.code_of_partitions(token) == {("t", 0): Err.NONE, ("t", 1): Err.NONE}
    meta = h.meta("tid")
    assert (meta.state, meta.partitions, meta.txn_start_timestamp_ms) == (
        S.ONGOING, {("t", 0), ("t", 1)}, start)


def test_add_more_keeps_the_start_and_joins_the_union() -> None:
    h = Harness()
    pid, epoch = h.begin("tid", {"t": [0]})
    start = h.meta("tid").txn_start_timestamp_ms
    h.now += 1000
    assert h.add_codes("tid", pid, epoch, {"t": [0], "u": [1]}) == {
        ("t", 0): Err.NONE, ("u", 1): Err.NONE}
    meta = h.meta("tid")
    assert meta.partitions == {("t", 0), ("u", 1)}
    assert meta.txn_start_timestamp_ms == start
    assert meta.txn_last_update_timestamp_ms == h.now


def test_add_partitions_already_in_the_transaction_answers_at_once() -> None:
    h = Harness(auto_persist=False)
    h.init("tid")
    h.flush()
    h.add("tid", 1000, 0, {"t": [0, 1]})
    h.flush()
    token = h.add("tid", 1000, 0, {"t": [1, 1, 0]})
    assert h.pending == []
    assert h.code_of_partitions(token) == {("t", 1): Err.NONE, ("t", 0): Err.NONE}


def test_add_after_a_completed_transaction_starts_a_new_one() -> None:
    h = Harness()
    pid, epoch = h.begin("tid", {"t": [0]})
    h.end("tid", pid, epoch, commit=True)
    h.now += 10_000
    h.add_codes("tid", pid, epoch, {"u": [0]})
    meta = h.meta("tid")
    assert (meta.state, meta.partitions, meta.txn_start_timestamp_ms) == (
        S.ONGOING, {("u", 0)}, h.now)


def test_add_unknown_partition() -> None:
    h = Harness()
    pid, epoch = h.init_ok("tid")
    assert h.add_codes("tid", pid, epoch, {"t": [0, 3], "nope": [0], "u": [1]}) == {
        ("t", 0): Err.OPERATION_NOT_ATTEMPTED, ("t", 3): Err.UNKNOWN_TOPIC_OR_PARTITION,
        ("nope", 0): Err.UNKNOWN_TOPIC_OR_PARTITION, ("u", 1): Err.OPERATION_NOT_ATTEMPTED}
    assert h.meta("tid").state is S.EMPTY


@pytest.mark.parametrize(("version", "fenced"), [(0, Err.INVALID_PRODUCER_EPOCH),
                                                 (1, Err.INVALID_PRODUCER_EPOCH),
                                                 (2, Err.PRODUCER_FENCED),
                                                 (3, Err.PRODUCER_FENCED)])
def test_add_wrong_epoch_by_version(version: int, fenced: int) -> None:
    h = Harness()
    pid, epoch = h.init_ok("tid")
    h.init_ok("tid")
    assert h.add_codes("tid", pid, epoch, {"t": [0], "u": [0]}, version=version) == {
        ("t", 0): fenced, ("u", 0): fenced}
    assert h.add_codes("tid", pid, epoch + 5, {"t": [0]}, version=version) == {("t", 0): fenced}


def test_add_unknown_id_or_wrong_producer_id() -> None:
    h = Harness()
    assert h.add_codes("nobody", 1, 0, {"t": [0]}) == {("t", 0): Err.INVALID_PRODUCER_ID_MAPPING}
    pid, epoch = h.init_ok("tid")
    assert h.add_codes("tid", pid + 1, epoch, {"t": [0]}) == {
        ("t", 0): Err.INVALID_PRODUCER_ID_MAPPING}


def test_add_while_deciding_is_concurrent() -> None:
    h = Harness(auto_markers=False)
    pid, epoch = h.begin("tid")
    h.end("tid", pid, epoch, commit=True)
    assert h.meta("tid").state is S.PREPARE_COMMIT
    assert h.add_codes("tid", pid, epoch, {"u": [0]}) == {("u", 0): Err.CONCURRENT_TRANSACTIONS}
    h.write_markers()
    assert h.add_codes("tid", pid, epoch, {"u": [0]}) == {("u", 0): Err.NONE}


def test_add_without_a_transactional_id() -> None:
    h = Harness()
    assert h.add_codes("", 1, 0, {"t": [0]}) == {("t", 0): Err.INVALID_REQUEST}


def test_add_nothing() -> None:
    h = Harness()
    pid, epoch = h.init_ok("tid")
    assert h.add_codes("tid", pid, epoch, {}) == {}
    assert h.meta("tid").state is S.EMPTY


@pytest.mark.parametrize("version", [4, 5])
def test_add_batched_versions_are_not_served(version: int) -> None:
    h = Harness()
    pid, epoch = h.init_ok("tid")
    T = AddPartitionsToTxnRequest.AddPartitionsToTxnTransaction
    request = AddPartitionsToTxnRequest(transactions=[
        T(transactional_id="tid", producer_id=pid, producer_epoch=epoch, verify_only=True,
          topics=[APT(name="t", partitions=[0, 1])]),
        T(transactional_id="other", producer_id=1, producer_epoch=0,
          topics=[APT(name="u", partitions=[0])])])
    response = h.answer(h.call(h.coord.add_partitions_to_txn, request, version))
    assert response.error_code == Err.UNSUPPORTED_VERSION
    got = {(r.transactional_id, t.name, p.partition_index): p.partition_error_code
           for r in response.results_by_transaction for t in r.topic_results
           for p in t.results_by_partition}
    assert got == {("tid", "t", 0): Err.UNSUPPORTED_VERSION,
                   ("tid", "t", 1): Err.UNSUPPORTED_VERSION,
                   ("other", "u", 0): Err.UNSUPPORTED_VERSION}
    assert h.meta("tid").state is S.EMPTY


# -- AddOffsetsToTxn ------------------------------------------------------------------------

def test_add_offsets_adds_the_groups_offsets_partition() -> None:
    h = Harness(TxnConfig(offsets_topic_num_partitions=7))
    pid, epoch = h.init_ok("tid")
    assert h.code(h.add_offsets("tid", pid, epoch, "my-group")) == Err.NONE
    expected = ("__consumer_offsets", group_partition_for("my-group", 7))
    meta = h.meta("tid")
    assert (meta.state, meta.partitions) == (S.ONGOING, {expected})
    persists = len(h.log.get(h.coord.partition_for("tid"), []))
    assert h.code(h.add_offsets("tid", pid, epoch, "my-group")) == Err.NONE
    assert len(h.log[h.coord.partition_for("tid")]) == persists  # already there: no record


@pytest.mark.parametrize(("version", "fenced"), [(0, Err.INVALID_PRODUCER_EPOCH),
                                                 (1, Err.INVALID_PRODUCER_EPOCH),
                                                 (2, Err.PRODUCER_FENCED),
                                                 (3, Err.PRODUCER_FENCED),
                                                 (4, Err.PRODUCER_FENCED)])
def test_add_offsets_errors(version: int, fenced: int) -> None:
    h = Harness(auto_markers=False)
    assert h.code(h.add_offsets("", 1, 0, "g", version=version)) == Err.INVALID_REQUEST
    assert h.code(h.add_offsets("nobody", 1, 0, "g", version=version)) == (
        Err.INVALID_PRODUCER_ID_MAPPING)
    pid, epoch = h.begin("tid")
    assert h.code(h.add_offsets("tid", pid + 1, epoch, "g", version=version)) == (
        Err.INVALID_PRODUCER_ID_MAPPING)
    assert h.code(h.add_offsets("tid", pid, epoch - 1, "g", version=version)) == fenced
    h.end("tid", pid, epoch, commit=False)
    assert h.code(h.add_offsets("tid", pid, epoch, "g", version=version)) == (
        Err.CONCURRENT_TRANSACTIONS)


# -- EndTxn ---------------------------------------------------------------------------------

@pytest.mark.parametrize("commit", [True, False])
def test_end_decides_then_writes_markers_then_completes(commit: bool) -> None:
    h = Harness(auto_persist=False, auto_markers=False)
    h.init("tid")
    h.flush()
    h.add("tid", 1000, 0, {"u": [1], "t": [2]})
    h.flush()
    token = h.end("tid", 1000, 0, commit=commit)
    [persist] = h.pending
    _tid, entry = decode(persist.key, persist.value)
    assert entry is not None and entry.state is (S.PREPARE_COMMIT if commit else S.PREPARE_ABORT)
    assert h.answer(token) is None and h.pending_markers == []
    # durable: the markers; the answer waits for the transaction to complete
    h.pending.pop(0)
    h.coord.persisted(persist, h.now)
    [write] = h.coord.take_output()
    assert isinstance(write, WriteMarkers)
    assert (write.transactional_id, write.producer_id, write.producer_epoch, write.commit,
            write.partitions) == ("tid", 1000, 0, commit, (("t", 2), ("u", 1)))
    assert h.meta("tid").state is (S.PREPARE_COMMIT if commit else S.PREPARE_ABORT)
    h.coord.markers_written(write, h.now)
    [done] = h.coord.take_output()
    assert isinstance(done, Persist)
    _tid, entry = decode(done.key, done.value)
    assert entry is not None
    assert (entry.state, entry.partitions) == (
        S.COMPLETE_COMMIT if commit else S.COMPLETE_ABORT, frozenset())
    h.coord.persisted(done, h.now)
    [reply] = h.coord.take_output()
    assert isinstance(reply, Reply)
    response: Any = reply.response
    assert reply.token == token and response.error_code == Err.NONE
    meta = h.meta("tid")
    assert (meta.state, meta.partitions) == (entry.state, set())


def test_end_retries_and_mismatches() -> None:
    h = Harness(auto_markers=False)
    pid, epoch = h.begin("tid")
    first = h.end("tid", pid, epoch, commit=True)
    assert h.answer(first) is None  # answered once the transaction is complete
    # PrepareCommit: the same decision waits, the other one is invalid
    assert h.code(h.end("tid", pid, epoch, commit=True)) == Err.CONCURRENT_TRANSACTIONS
    assert h.code(h.end("tid", pid, epoch, commit=False)) == Err.INVALID_TXN_STATE
    h.write_markers()
    assert h.code(first) == Err.NONE
    assert h.code(h.end("tid", pid, epoch, commit=True)) == Err.NONE
    assert h.code(h.end("tid", pid, epoch, commit=False)) == Err.INVALID_TXN_STATE
    h.add_codes("tid", pid, epoch, {"t": [0]})
    abort = h.end("tid", pid, epoch, commit=False)
    assert h.code(h.end("tid", pid, epoch, commit=False)) == Err.CONCURRENT_TRANSACTIONS
    assert h.code(h.end("tid", pid, epoch, commit=True)) == Err.INVALID_TXN_STATE
    h.write_markers()
    assert h.code(abort) == Err.NONE
    assert h.code(h.end("tid", pid, epoch, commit=False)) == Err.NONE
    assert h.code(h.end("tid", pid, epoch, commit=True)) == Err.INVALID_TXN_STATE
    assert len(h.markers) == 2  # a retry never writes markers again


@pytest.mark.parametrize("commit", [True, False])
def test_end_without_a_transaction(commit: bool) -> None:
    h = Harness()
    pid, epoch = h.init_ok("tid")
    assert h.code(h.end("tid", pid, epoch, commit=commit)) == Err.INVALID_TXN_STATE


def test_end_while_a_record_is_in_flight() -> None:
    h = Harness(auto_persist=False)
    h.init("tid")
    h.flush()
    h.add("tid", 1000, 0, {"t": [0]})
    assert h.code(h.end("tid", 1000, 0, commit=True)) == Err.CONCURRENT_TRANSACTIONS


@pytest.mark.parametrize(("version", "fenced"), [(0, Err.INVALID_PRODUCER_EPOCH),
                                                 (1, Err.INVALID_PRODUCER_EPOCH),
                                                 (2, Err.PRODUCER_FENCED),
                                                 (3, Err.PRODUCER_FENCED),
                                                 (4, Err.PRODUCER_FENCED)])
def test_end_producer_checks(version: int, fenced: int) -> None:
    h = Harness()
    assert h.code(h.end("", 1, 0, True, version=version)) == Err.INVALID_REQUEST
    assert h.code(h.end("nobody", 1, 0, True, version=version)) == (
        Err.INVALID_PRODUCER_ID_MAPPING)
    pid, epoch = h.begin("tid")
    assert h.code(h.end("tid", pid + 1, epoch, True, version=version)) == (
        Err.INVALID_PRODUCER_ID_MAPPING)
    assert h.code(h.end("tid", pid, epoch + 1, True, version=version)) == fenced
    assert h.code(h.end("tid", pid, epoch - 1, True, version=version)) == fenced
    assert h.meta("tid").state is S.ONGOING


def test_end_during_an_epoch_fence_is_fenced_even_with_the_new_epoch() -> None:
    h = Harness(auto_persist=False)
    h.init("tid")
    h.flush()
    h.add("tid", 1000, 0, {"t": [0]})
    h.flush()
    assert h.code(h.init("tid")) == Err.CONCURRENT_TRANSACTIONS
    assert h.meta("tid").state is S.PREPARE_EPOCH_FENCE
    assert h.code(h.end("tid", 1000, 0, True)) == Err.PRODUCER_FENCED
    assert h.code(h.end("tid", 1000, 1, False)) == Err.PRODUCER_FENCED


def test_stale_markers_written_are_ignored() -> None:
    h = Harness(auto_markers=False)
    pid, epoch = h.begin("tid")
    token = h.end("tid", pid, epoch, commit=True)
    [write] = h.pending_markers
    h.coord.load(h.coord.partition_for("tid"), h.log[h.coord.partition_for("tid")], h.now)
    reply, again = h.coord.take_output()
    assert isinstance(reply, Reply) and reply.token == token  # decided: the answer stands
    assert isinstance(again, WriteMarkers) and again is not write
    h.coord.markers_written(write, h.now)  # the old one: nothing happens
    assert h.coord.take_output() == []
    assert h.meta("tid").state is S.PREPARE_COMMIT
    h.coord.markers_written(again, h.now)
    [done] = h.coord.take_output()
    assert isinstance(done, Persist)


def test_requests_survive_the_wire_at_every_version() -> None:
    h = Harness()
    pid, epoch = h.init_ok("tid")
    for version in range(4):
        request = AddPartitionsToTxnRequest(
            v3_and_below_transactional_id="tid", v3_and_below_producer_id=pid,
            v3_and_below_producer_epoch=epoch, v3_and_below_topics=[APT(name="t",
                                                                         partitions=[0])])
        assert wire(request, version) == request
        assert h.add_codes("tid", pid, epoch, {"t": [version % 3]}, version=version) == {
            ("t", version % 3): Err.NONE}
