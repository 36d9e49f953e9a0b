"""The periodic check (transaction timeouts abort with an epoch bump; idle transactional ids
expire), KIP-890 part 1 produce verification, and the operator's abort."""

from __future__ import annotations

import pytest
from tests.broker.txn.harness import START_MS, TXN_TIMEOUT_MS, Harness

from zoolog.broker.txn import TxnConfig, TxnState, decode
from zoolog.protocol.kafka._generated.describe_transactions import DescribeTransactionsRequest
from zoolog.protocol.kafka.errors import Err

S = TxnState
INTERVAL_MS = 10_000


def test_deadline_starts_with_the_first_call() -> None:
    h = Harness()
    assert h.coord.next_deadline_ms() is None
    h.init_ok("tid")
    assert h.coord.next_deadline_ms() == START_MS + INTERVAL_MS
    h.advance(INTERVAL_MS)
    assert h.coord.next_deadline_ms() == START_MS + 2 * INTERVAL_MS
    h.coord.tick(h.now + 1)  # early: nothing moves
    assert h.coord.next_deadline_ms() == START_MS + 2 * INTERVAL_MS


def test_timed_out_transaction_is_aborted_with_an_epoch_bump() -> None:
    h = Harness()
    pid, epoch = h.begin("tid", {"t": [0], "u": [1]})
    h.advance(TXN_TIMEOUT_MS)
    assert h.meta("tid").state is S.ONGOING  # start + timeout is not yet < now
    h.advance(INTERVAL_MS)
    meta = h.meta("tid")
    assert (meta.state, meta.producer_id, meta.producer_epoch) == (S.COMPLETE_ABORT, pid,
                                                                   epoch + 1)
    [write] = h.markers
    assert (write.commit, write.producer_epoch, write.partitions) == (
        False, epoch + 1, (("t", 0), ("u", 1)))
    # the zombie is fenced on its next request, whatever it is
    assert h.code(h.end("tid", pid, epoch, commit=True)) == Err.PRODUCER_FENCED
    assert h.code(h.end("tid", pid, epoch, commit=True, version=1)) == Err.INVALID_PRODUCER_EPOCH
    assert set(h.add_codes("tid", pid, epoch, {"t": [2]}).values()) == {Err.PRODUCER_FENCED}
    assert h.coord.verify_produce("tid", pid, epoch, "t", 0)[0] == Err.INVALID_PRODUCER_EPOCH
    # a new InitProducerId goes on at the next epoch
    assert h.init_ok("tid") == (pid, epoch + 2)


def test_timeout_skips_a_transaction_with_a_transition_in_flight() -> None:
    h = Harness(auto_persist=False)
    h.init("tid")
    h.flush()
    h.add("tid", 1000, 0, {"t": [0]})
    h.flush()
    h.add("tid", 1000, 0, {"t": [1]})  # in flight
    h.advance(TXN_TIMEOUT_MS + INTERVAL_MS)
    assert len(h.pending) == 1
    assert h.meta("tid").state is S.ONGOING
    h.flush()
    h.advance(INTERVAL_MS)
    h.flush()
    meta = h.meta("tid")
    assert (meta.state, meta.producer_epoch) == (S.COMPLETE_ABORT, 1)


def test_timeout_counts_from_the_start_not_the_last_add() -> None:
    h = Harness()
    pid, epoch = h.begin("tid", {"t": [0]}, timeout_ms=30_000)
    h.advance(20_000)
    h.add_codes("tid", pid, epoch, {"t": [1]})
    h.advance(20_000)
    assert h.meta("tid").state is S.COMPLETE_ABORT


def test_idle_transactional_id_expires_with_a_tombstone() -> None:
    h = Harness(TxnConfig(transactional_id_expiration_ms=100_000), auto_persist=False)
    h.init("tid")
    h.flush()
    h.advance(90_000)
    assert h.pending == []
    h.advance(10_000)
    [persist] = h.pending
    assert persist.value is None and decode(persist.key, None) == ("tid", None)
    assert h.meta("tid").pending_state is S.DEAD
    assert h.code(h.init("tid")) == Err.CONCURRENT_TRANSACTIONS
    h.flush()
    assert h.coord.transaction("tid") is None
    [described] = h.coord.describe_transactions(
        DescribeTransactionsRequest(transactional_ids=["tid"])).transaction_states
    assert described.error_code == Err.TRANSACTIONAL_ID_NOT_FOUND
    assert set(h.add_codes("tid", 1000, 0, {"t": [0]}).values()) == {
        Err.INVALID_PRODUCER_ID_MAPPING}
    token = h.init("tid")
    h.flush()
    assert (h.answer(token).producer_id, h.answer(token).producer_epoch) == (1001, 0)


@pytest.mark.parametrize("end", [True, False])
def test_completed_transactions_expire_too(end: bool) -> None:
    h = Harness(TxnConfig(transactional_id_expiration_ms=100_000))
    pid, epoch = h.begin("tid")
    h.end("tid", pid, epoch, commit=end)
    h.advance(100_000)
    assert h.coord.transaction("tid") is None


def test_activity_keeps_an_id_alive_and_ongoing_never_expires() -> None:
    h = Harness(TxnConfig(transactional_id_expiration_ms=100_000))
    h.init_ok("idle")
    h.begin("busy", timeout_ms=900_000)
    h.advance(60_000)
    h.init_ok("idle")
    h.advance(60_000)
    assert h.coord.transaction("idle") is not None
    assert h.meta("busy").state is S.ONGOING
    h.advance(40_000)
    assert h.coord.transaction("idle") is None
    assert h.meta("busy").state is S.ONGOING


# -- verify_produce --------------------------------------------------------------------------

def test_verify_produce() -> None:
    h = Harness(auto_persist=False, auto_markers=False)
    v = h.coord.verify_produce
    assert v("nobody", 1, 0, "t", 0)[0] == Err.INVALID_PRODUCER_ID_MAPPING
    h.init("tid")
    h.flush()
    assert v("tid", 1000, 0, "t", 0)[0] == Err.INVALID_TXN_STATE  # Empty
    h.add("tid", 1000, 0, {"t": [0]})
    assert v("tid", 1000, 0, "t", 0)[0] == Err.INVALID_TXN_STATE  # not durable yet
    h.flush()
    assert v("tid", 1000, 0, "t", 0) == (Err.NONE, "")
    code, message = v("tid", 1000, 0, "t", 1)
    assert code == Err.INVALID_TXN_STATE and "t-1" in message
    code, message = v("tid", 999, 0, "t", 0)
    assert code == Err.INVALID_PRODUCER_ID_MAPPING and "999" in message
    code, message = v("tid", 1000, 1, "t", 0)
    assert code == Err.INVALID_PRODUCER_EPOCH and "epoch 1" in message
    h.add("tid", 1000, 0, {"t": [1]})  # adding more: the durable ones stay writable
    assert v("tid", 1000, 0, "t", 0) == (Err.NONE, "")
    h.flush()
    h.end("tid", 1000, 0, commit=True)  # PrepareCommit in flight: no more writes
    code, message = v("tid", 1000, 0, "t", 0)
    assert code == Err.INVALID_TXN_STATE and "PrepareCommit pending" in message
    h.flush()
    assert v("tid", 1000, 0, "t", 0)[0] == Err.INVALID_TXN_STATE
    h.write_markers()
    h.flush()
    assert v("tid", 1000, 0, "t", 0)[0] == Err.INVALID_TXN_STATE  # CompleteCommit


def test_verify_produce_of_a_fenced_producer() -> None:
    h = Harness(auto_persist=False)
    h.init("tid")
    h.flush()
    h.add("tid", 1000, 0, {"t": [0]})
    h.flush()
    h.init("tid")  # fences at once, in memory
    code, _ = h.coord.verify_produce("tid", 1000, 0, "t", 0)
    assert code == Err.INVALID_PRODUCER_EPOCH
