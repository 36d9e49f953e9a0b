"""DescribeTransactions and ListTransactions (with its state, producer id and duration
filters), and the CLI's iterator."""

from __future__ import annotations

from typing import Any

from tests.broker.txn.harness import Harness

from zoolog.broker.txn import TxnState
from zoolog.protocol.kafka._generated.describe_transactions import DescribeTransactionsRequest
from zoolog.protocol.kafka._generated.list_transactions import ListTransactionsRequest
from zoolog.protocol.kafka.errors import Err


def listed(h: Harness, version: int = 1, **filters: Any) -> dict[str, tuple[int, str]]:
    response = h.coord.list_transactions(ListTransactionsRequest(**filters), version, h.now)
    response.to_bytes(version)
    assert response.error_code == Err.NONE
    return {t.transactional_id: (t.producer_id, t.transaction_state)
            for t in response.transaction_states}


def scenario() -> Harness:
    h = Harness(auto_markers=False)
    h.init_ok("empty")
    h.begin("old", {"u": [1], "t": [2, 0]})
    h.now += 25_000
    pid, epoch = h.begin("new", {"t": [0]})
    h.end("new", pid, epoch, commit=True)  # PrepareCommit (markers not written)
    h.now += 5_000
    return h


def test_describe() -> None:
    h = scenario()
    response = h.coord.describe_transactions(
        DescribeTransactionsRequest(transactional_ids=["old", "nope", "", "empty"]))
    response.to_bytes(0)
    old, nope, blank, empty = response.transaction_states
    assert (old.error_code, old.transactional_id, old.transaction_state,
            old.transaction_timeout_ms, old.producer_id, old.producer_epoch) == (
        Err.NONE, "old", "Ongoing", 60_000, 1001, 0)
    assert old.transaction_start_time_ms == h.meta("old").txn_start_timestamp_ms
    assert [(t.topic, t.partitions) for t in old.topics] == [("t", [0, 2]), ("u", [1])]
    assert (nope.transactional_id, nope.error_code) == ("nope", Err.TRANSACTIONAL_ID_NOT_FOUND)
    assert blank.error_code == Err.INVALID_REQUEST
    assert (empty.transaction_state, empty.transaction_start_time_ms, empty.topics) == (
        "Empty", -1, [])


def test_list_everything() -> None:
    h = scenario()
    assert listed(h) == {"empty": (1000, "Empty"), "old": (1001, "Ongoing"),
                         "new": (1002, "PrepareCommit")}


def test_list_by_state_and_unknown_states() -> None:
    h = scenario()
    assert set(listed(h, state_filters=["Ongoing", "PrepareCommit"])) == {"old", "new"}
    response = h.coord.list_transactions(
        ListTransactionsRequest(state_filters=["Ongoing", "Bogus", "ongoing", "Bogus"]), 0, h.now)
    assert response.unknown_state_filters == ["Bogus", "ongoing"]
    assert [t.transactional_id for t in response.transaction_states] == ["old"]
    # only unknown states: they match nothing
    assert listed(h, state_filters=["Bogus"]) == {}


def test_list_by_producer_id() -> None:
    h = scenario()
    assert set(listed(h, producer_id_filters=[1000, 1002, 77])) == {"empty", "new"}
    assert listed(h, producer_id_filters=[1002], state_filters=["Ongoing"]) == {}


def test_list_by_duration() -> None:
    h = scenario()
    assert set(listed(h, duration_filter=10_000)) == {"old"}  # 30 s old; "new" 5 s
    assert set(listed(h, duration_filter=0)) == {"old", "new"}
    assert set(listed(h, duration_filter=30_000)) == set()  # "longer than", not "as long as"
    assert set(listed(h, duration_filter=-1)) == {"empty", "old", "new"}
    assert set(listed(h, version=0, duration_filter=10_000)) == {"empty", "old", "new"}


def test_transactions_for_the_cli() -> None:
    h = scenario()
    assert [(m.transactional_id, m.state) for m in h.coord.transactions()] == [
        ("empty", TxnState.EMPTY), ("old", TxnState.ONGOING), ("new", TxnState.PREPARE_COMMIT)]
