"""InitProducerId with a transactional id: new ids, epoch bumps, fencing an Ongoing
transaction, epoch exhaustion, KIP-360 retries, and the errors by version."""

from __future__ import annotations

import pytest
from tests.broker.txn.harness import FIRST_PRODUCER_ID, Harness

from zoolog.broker.txn import (
    EPOCH_EXHAUSTED,
    Persist,
    TxnConfig,
    TxnLogEntry,
    TxnState,
    decode,
    encode_key,
    encode_value,
)
from zoolog.protocol.kafka.errors import Err

S = TxnState


def exhausted_harness(epoch: int = EPOCH_EXHAUSTED - 1) -> Harness:
    """A harness whose "tid" was loaded Empty at `epoch` of producer id 500."""
    h = Harness()
    record = TxnLogEntry(500, -1, epoch, 60_000, S.EMPTY, frozenset(), -1, h.now)
    h.coord.load(h.coord.partition_for("tid"), [(encode_key("tid"), encode_value(record))],
                 h.now)
    return h


def test_new_id_gets_a_fresh_producer_id_at_epoch_0_once_durable() -> None:
    h = Harness(auto_persist=False)
    token = h.init("tid", version=4)
    assert h.answer(token) is None
    [persist] = h.pending
    assert isinstance(persist, Persist)
    tid, entry = decode(persist.key, persist.value)
    assert tid == "tid" and entry is not None
    assert (entry.producer_id, entry.producer_epoch, entry.state) == (FIRST_PRODUCER_ID, 0,
                                                                      S.EMPTY)
    assert entry.txn_start_timestamp_ms == -1
    h.flush()
    response = h.answer(token)
    assert (response.error_code, response.producer_id, response.producer_epoch) == (
        Err.NONE, FIRST_PRODUCER_ID, 0)
    meta = h.meta("tid")
    assert (meta.state, meta.producer_epoch, meta.txn_timeout_ms) == (S.EMPTY, 0, 60_000)


def test_concurrent_while_the_first_record_is_in_flight() -> None:
    h = Harness(auto_persist=False)
    first = h.init("tid")
    second = h.init("tid")
    assert h.code(second) == Err.CONCURRENT_TRANSACTIONS
    assert h.answer(first) is None
    h.flush()
    assert h.code(first) == Err.NONE


@pytest.mark.parametrize("version", range(6))
def test_every_version(version: int) -> None:
    h = Harness()
    assert h.init_ok("tid", version=version) == (FIRST_PRODUCER_ID, 0)
    assert h.init_ok("tid", version=version) == (FIRST_PRODUCER_ID, 1)


def test_existing_empty_or_complete_bumps_the_epoch() -> None:
    h = Harness()
    pid, epoch = h.init_ok("tid", timeout_ms=1000)
    assert h.init_ok("tid", timeout_ms=2000) == (pid, epoch + 1)
    assert h.meta("tid").txn_timeout_ms == 2000  # the new timeout applies
    pid, epoch = h.begin("tid")
    assert h.code(h.end("tid", pid, epoch, commit=True)) == Err.NONE
    assert h.meta("tid").state is S.COMPLETE_COMMIT
    assert h.init_ok("tid") == (pid, epoch + 1)
    assert h.meta("tid").state is S.EMPTY


def test_ongoing_is_fenced_then_the_retry_gets_the_next_epoch() -> None:
    h = Harness(auto_markers=False)
    pid, epoch = h.begin("tid", {"t": [0], "u": [1]})
    assert h.code(h.init("tid")) == Err.CONCURRENT_TRANSACTIONS
    meta = h.meta("tid")
    assert (meta.state, meta.producer_epoch) == (S.PREPARE_ABORT, epoch + 1)
    [write] = h.pending_markers
    assert (write.commit, write.producer_id, write.producer_epoch, write.coordinator_epoch,
            write.partitions) == (False, pid, epoch + 1, 0, (("t", 0), ("u", 1)))
    # still aborting: the new producer waits, the old one is fenced
    assert h.code(h.init("tid")) == Err.CONCURRENT_TRANSACTIONS
    assert set(h.add_codes("tid", pid, epoch, {"t": [2]}).values()) == {Err.PRODUCER_FENCED}
    assert h.code(h.end("tid", pid, epoch, commit=True)) == Err.PRODUCER_FENCED
    h.write_markers()
    assert h.meta("tid").state is S.COMPLETE_ABORT
    assert h.init_ok("tid") == (pid, epoch + 2)
    assert h.code(h.end("tid", pid, epoch, commit=False)) == Err.PRODUCER_FENCED


def test_fence_record_is_prepare_abort_at_the_bumped_epoch() -> None:
    h = Harness(auto_persist=False)
    token = h.init("tid")
    h.flush()
    pid, epoch = h.answer(token).producer_id, 0
    h.add("tid", pid, epoch, {"t": [0]})
    h.flush()
    h.init("tid")
    assert h.meta("tid").state is S.PREPARE_EPOCH_FENCE  # in memory, never written
    [persist] = h.pending
    _tid, entry = decode(persist.key, persist.value)
    assert entry is not None
    assert (entry.state, entry.producer_epoch) == (S.PREPARE_ABORT, epoch + 1)
    states = [decode(k, v)[1] for k, v in h.all_records()]
    assert all(e is not None and e.state is not S.PREPARE_EPOCH_FENCE for e in states)


def test_epoch_exhaustion_rotates_the_producer_id() -> None:
    h = exhausted_harness()
    assert h.init_ok("tid") == (500, EPOCH_EXHAUSTED)
    new_pid, epoch = h.init_ok("tid")
    assert (new_pid, epoch) == (FIRST_PRODUCER_ID, 0)
    meta = h.meta("tid")
    assert (meta.last_producer_id, meta.last_producer_epoch) == (500, -1)
    assert h.init_ok("tid") == (new_pid, 1)


def test_fencing_at_the_last_client_epoch_uses_short_max() -> None:
    h = exhausted_harness()
    pid, epoch = h.init_ok("tid")
    assert epoch == EPOCH_EXHAUSTED
    h.add_codes("tid", pid, epoch, {"t": [0]})
    assert h.code(h.init("tid")) == Err.CONCURRENT_TRANSACTIONS
    assert h.markers[-1].producer_epoch == 32767
    assert h.init_ok("tid") == (FIRST_PRODUCER_ID, 0)


# -- KIP-360: v3+ names the producer ------------------------------------------------------

def test_kip360_bump_with_the_current_epoch_and_its_retry() -> None:
    h = Harness()
    pid, epoch = h.init_ok("tid")
    assert h.init_ok("tid", version=4, producer_id=pid, producer_epoch=epoch) == (pid, epoch + 1)
    assert h.meta("tid").last_producer_epoch == epoch
    # the answer was lost: the retry names the old epoch again and gets the same one
    assert h.init_ok("tid", version=4, producer_id=pid, producer_epoch=epoch) == (pid, epoch + 1)
    assert h.meta("tid").producer_epoch == epoch + 1
    # a plain InitProducerId (a new producer) bumps and forgets the last epoch
    assert h.init_ok("tid") == (pid, epoch + 2)
    assert h.meta("tid").last_producer_epoch == -1
    assert h.code(h.init("tid", version=4, producer_id=pid, producer_epoch=epoch)) == (
        Err.PRODUCER_FENCED)


@pytest.mark.parametrize(("version", "code"), [(3, Err.INVALID_PRODUCER_EPOCH),
                                               (4, Err.PRODUCER_FENCED),
                                               (5, Err.PRODUCER_FENCED)])
def test_kip360_stale_epoch_or_producer_is_fenced(version: int, code: int) -> None:
    h = Harness()
    pid, _ = h.init_ok("tid")
    pid, epoch = h.init_ok("tid")
    h.init_ok("tid")
    assert h.code(h.init("tid", version=version, producer_id=pid, producer_epoch=epoch)) == code
    assert h.code(h.init("tid", version=version, producer_id=pid + 7,
                         producer_epoch=epoch + 1)) == code


def test_kip360_a_new_id_accepts_any_producer() -> None:
    h = Harness()
    assert h.init_ok("tid", version=4, producer_id=77, producer_epoch=3) == (FIRST_PRODUCER_ID, 0)


def test_kip360_half_given_producer_is_invalid() -> None:
    h = Harness()
    h.init_ok("tid")
    assert h.code(h.init("tid", version=3, producer_id=FIRST_PRODUCER_ID)) == Err.INVALID_REQUEST
    assert h.code(h.init("tid", version=3, producer_epoch=0)) == Err.INVALID_REQUEST


def test_kip360_before_v3_the_fields_do_not_exist() -> None:
    h = Harness()
    pid, _ = h.init_ok("tid")
    assert h.init_ok("tid", version=2, producer_id=pid + 9, producer_epoch=9) == (pid, 1)


def test_kip360_fenced_before_concurrent_on_prepare() -> None:
    h = Harness(auto_markers=False)
    pid, epoch = h.begin("tid")
    h.end("tid", pid, epoch, commit=True)
    assert h.meta("tid").state is S.PREPARE_COMMIT
    assert h.code(h.init("tid", version=4, producer_id=pid + 1, producer_epoch=0)) == (
        Err.PRODUCER_FENCED)
    assert h.code(h.init("tid", version=4, producer_id=pid, producer_epoch=epoch)) == (
        Err.CONCURRENT_TRANSACTIONS)


def test_kip360_retry_of_a_rotation() -> None:
    h = exhausted_harness(EPOCH_EXHAUSTED)
    assert h.init_ok("tid", version=4, producer_id=500, producer_epoch=EPOCH_EXHAUSTED) == (
        FIRST_PRODUCER_ID, 0)
    meta = h.meta("tid")
    assert (meta.last_producer_id, meta.last_producer_epoch) == (500, EPOCH_EXHAUSTED)
    assert h.init_ok("tid", version=4, producer_id=500, producer_epoch=EPOCH_EXHAUSTED) == (
        FIRST_PRODUCER_ID, 0)
    # an old producer id with an epoch that was not exhausted is fenced
    assert h.code(h.init("tid", version=4, producer_id=500, producer_epoch=3)) == (
        Err.PRODUCER_FENCED)


def test_kip360_exhausted_and_stale_is_fenced_not_a_crash() -> None:
    h = exhausted_harness(EPOCH_EXHAUSTED)
    assert h.code(h.init("tid", version=4, producer_id=500, producer_epoch=4)) == (
        Err.PRODUCER_FENCED)


# -- request checks -------------------------------------------------------------------------

@pytest.mark.parametrize("timeout_ms", [0, -1, 900_001, 2**31 - 1])
def test_invalid_transaction_timeout(timeout_ms: int) -> None:
    h = Harness()
    token = h.init("tid", timeout_ms=timeout_ms)
    response = h.answer(token)
    assert (response.error_code, response.producer_id, response.producer_epoch) == (
        Err.INVALID_TRANSACTION_TIMEOUT, -1, -1)
    assert h.coord.transaction("tid") is None


def test_transaction_timeout_up_to_the_max() -> None:
    h = Harness(TxnConfig(transaction_max_timeout_ms=5000))
    h.init_ok("tid", timeout_ms=5000)
    assert h.code(h.init("tid", timeout_ms=5001)) == Err.INVALID_TRANSACTION_TIMEOUT


@pytest.mark.parametrize("tid", [None, ""])
def test_no_transactional_id_is_not_this_coordinators(tid: str | None) -> None:
    h = Harness()
    assert h.code(h.init(tid)) == Err.INVALID_REQUEST
    assert list(h.coord.transactions()) == []
