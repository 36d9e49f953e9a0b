"""The transition table (Kafka's, for transaction versions 0 and 1), every legal and illegal
transition through TransactionMetadata, and the field checks on completion."""

from __future__ import annotations

import itertools

import pytest

from zoolog.broker.txn import (
    EXPIRABLE,
    VALID_PREVIOUS,
    IllegalTransitionError,
    TransactionMetadata,
    TxnLogEntry,
    TxnState,
)

S = TxnState

KAFKA_TABLE = {
    S.EMPTY: {S.EMPTY, S.COMPLETE_COMMIT, S.COMPLETE_ABORT},
    S.ONGOING: {S.ONGOING, S.EMPTY, S.COMPLETE_COMMIT, S.COMPLETE_ABORT},
    S.PREPARE_COMMIT: {S.ONGOING},
    S.PREPARE_ABORT: {S.ONGOING, S.PREPARE_EPOCH_FENCE},
    S.COMPLETE_COMMIT: {S.PREPARE_COMMIT},
    S.COMPLETE_ABORT: {S.PREPARE_ABORT},
    S.DEAD: {S.EMPTY, S.COMPLETE_ABORT, S.COMPLETE_COMMIT},
    S.PREPARE_EPOCH_FENCE: {S.ONGOING},
}

ALL_PAIRS = list(itertools.product(S, S))
LEGAL = [(a, b) for a, b in ALL_PAIRS if a in KAFKA_TABLE[b]]
ILLEGAL = [(a, b) for a, b in ALL_PAIRS if a not in KAFKA_TABLE[b]]


def meta_in(state: TxnState) -> TransactionMetadata:
    partitions = set() if state in EXPIRABLE else {("t", 0)}
    return TransactionMetadata("tid", 7, -1, 3, -1, 60_000, state, partitions,
                               txn_start_timestamp_ms=10, txn_last_update_timestamp_ms=10)


def target_for(meta: TransactionMetadata, state: TxnState) -> TxnLogEntry:
    partitions: frozenset[tuple[str, int]] | None = (
        frozenset() if state in EXPIRABLE else None)
    return meta.target(state, 20, partitions=partitions)


def test_ids_and_names_are_kafkas() -> None:
    assert [(s.value, s.kafka_name) for s in S] == [
        (0, "Empty"), (1, "Ongoing"), (2, "PrepareCommit"), (3, "PrepareAbort"),
        (4, "CompleteCommit"), (5, "CompleteAbort"), (6, "Dead"), (7, "PrepareEpochFence")]
    for s in S:
        assert S.from_name(s.kafka_name) is s
    assert S.from_name("ongoing") is None  # exact, as Kafka
    assert S.from_name("Nope") is None


def test_table_is_kafkas() -> None:
    assert {k: set(v) for k, v in VALID_PREVIOUS.items()} == KAFKA_TABLE
    assert {S.EMPTY, S.COMPLETE_COMMIT, S.COMPLETE_ABORT} == EXPIRABLE


@pytest.mark.parametrize(("before", "after"), LEGAL)
def test_legal_transition(before: TxnState, after: TxnState) -> None:
    meta = meta_in(before)
    target = meta.prepare(target_for(meta, after))
    assert meta.pending is target and meta.pending_state is after
    assert meta.state is before  # nothing visible until durable
    meta.complete(target)
    assert meta.state is after and meta.pending is None
    assert meta.txn_last_update_timestamp_ms == 20


@pytest.mark.parametrize(("before", "after"), ILLEGAL)
def test_illegal_transition(before: TxnState, after: TxnState) -> None:
    meta = meta_in(before)
    with pytest.raises(IllegalTransitionError, match="illegal transition"):
        meta.prepare(target_for(meta, after))
    assert meta.pending is None and meta.state is before


def test_one_pending_transition_at_a_time() -> None:
    meta = meta_in(S.ONGOING)
    meta.prepare(target_for(meta, S.ONGOING))
    with pytest.raises(IllegalTransitionError, match="pending"):
        meta.prepare(target_for(meta, S.PREPARE_COMMIT))
    with pytest.raises(IllegalTransitionError, match="pending"):
        meta.fence_epoch(30)


def test_complete_only_the_pending_transition() -> None:
    meta = meta_in(S.ONGOING)
    meta.prepare(target_for(meta, S.PREPARE_COMMIT))
    with pytest.raises(IllegalTransitionError, match="not the pending"):
        meta.complete(target_for(meta, S.PREPARE_COMMIT))


@pytest.mark.parametrize("before", [s for s in S if s is not S.ONGOING])
def test_fence_only_from_ongoing(before: TxnState) -> None:
    with pytest.raises(IllegalTransitionError):
        meta_in(before).fence_epoch(30)


def test_fence_bumps_the_epoch_in_memory() -> None:
    meta = meta_in(S.ONGOING)
    meta.last_producer_epoch = 2
    meta.fence_epoch(30)
    assert (meta.state, meta.producer_epoch, meta.last_producer_epoch) == (
        S.PREPARE_EPOCH_FENCE, 4, -1)
    assert meta.pending is None
    target = meta.prepare(meta.target(S.PREPARE_ABORT, 40))
    meta.complete(target)
    assert (meta.state, meta.producer_epoch, meta.partitions) == (S.PREPARE_ABORT, 4, {("t", 0)})


def test_fence_refuses_to_overflow_the_epoch() -> None:
    meta = meta_in(S.ONGOING)
    meta.producer_epoch = 32767
    with pytest.raises(IllegalTransitionError, match="cannot be bumped"):
        meta.fence_epoch(30)


def test_epoch_never_decreases_for_one_producer_id() -> None:
    meta = meta_in(S.EMPTY)
    target = meta.prepare(meta.target(S.EMPTY, 20, producer_epoch=2))
    with pytest.raises(IllegalTransitionError, match="epoch 3 -> 2"):
        meta.complete(target)


def test_new_producer_id_starts_empty_at_epoch_0() -> None:
    meta = meta_in(S.EMPTY)
    target = meta.prepare(meta.target(S.EMPTY, 20, producer_id=8, producer_epoch=1))
    with pytest.raises(IllegalTransitionError, match="new producer id"):
        meta.complete(target)
    meta = meta_in(S.EMPTY)
    target = meta.prepare(meta.target(S.EMPTY, 20, producer_id=8, producer_epoch=0))
    meta.complete(target)
    assert (meta.producer_id, meta.last_producer_id, meta.producer_epoch) == (8, 7, 0)


def test_ongoing_only_gains_partitions_and_complete_holds_none() -> None:
    meta = meta_in(S.ONGOING)
    target = meta.prepare(meta.target(S.ONGOING, 20, partitions=frozenset({("u", 1)})))
    with pytest.raises(IllegalTransitionError, match="lost partitions"):
        meta.complete(target)
    meta = meta_in(S.PREPARE_COMMIT)
    target = meta.prepare(meta.target(S.COMPLETE_COMMIT, 20))
    with pytest.raises(IllegalTransitionError, match="with partitions"):
        meta.complete(target)


def test_target_names_the_current_producer_id_as_the_last_one() -> None:
    meta = meta_in(S.EMPTY)
    meta.last_producer_id = 3
    assert meta.target(S.ONGOING, 20).last_producer_id == 7
    assert meta.entry().last_producer_id == 3
