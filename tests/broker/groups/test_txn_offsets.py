"""Transactional offset commits (TxnOffsetCommit, KIP-98/KIP-447) transcripts: a
transaction's offsets are pending (invisible to OffsetFetch, UNSTABLE_OFFSET_COMMIT with
require_stable) until its COMMIT marker makes them committed or its ABORT marker drops
them; the checks TxnOffsetCommit shares with OffsetCommit; and `load` rebuilding the same
state from plain records, transactional records and markers in log order.

Kafka's behaviour followed here (group-coordinator `OffsetMetadataManager` and
`ClassicGroup`, and the pre-KIP-848 `GroupMetadata`/`GroupMetadataManager`):

- `replayEndTransactionMarker`: at COMMIT a pending offset becomes the committed one only
  if its record is later in the log than the committed offset's record; a plain
  OffsetCommit written after the transaction's record wins;
- `fetchOffsets`: UNSTABLE_OFFSET_COMMIT is a partition error in every version that has it
  (v7 and the v8+ per-group form alike); the group's error stays NONE;
- `ClassicGroup.validateOffsetCommit(isTransactional = true)`: a member id or generation, when
  given, is checked as for OffsetCommit; without them the commit is accepted whatever the
  group's state; CompletingRebalance is not refused.
"""

from __future__ import annotations

from typing import Any

from tests.broker.groups.harness import Harness, subscription

from zoolog.broker.groups import (
    GroupConfig,
    GroupRecord,
    GroupState,
    Persist,
    TxnMarker,
    TxnRecord,
    decode_record,
)
from zoolog.broker.groups.records import offset_commit_key, offset_commit_value
from zoolog.protocol.kafka._generated.offset_fetch import OffsetFetchRequest
from zoolog.protocol.kafka._generated.txn_offset_commit import TxnOffsetCommitRequest
from zoolog.protocol.kafka.errors import Err

S = GroupState
MINUTE = 60_000
PID = 4000

LoadItem = tuple[bytes, bytes | None] | TxnRecord | TxnMarker
TP = TxnOffsetCommitRequest.TxnOffsetCommitRequestPartition
TT = TxnOffsetCommitRequest.TxnOffsetCommitRequestTopic


class TxnHarness(Harness):
    """The harness, keeping `__consumer_offsets` as `load` reads it: plain records, a
    transaction's records as `TxnRecord`, and the markers `end_txn` writes."""

    def __init__(self, config: GroupConfig | None = None, *, auto_persist: bool = True) -> None:
        super().__init__(config, auto_persist=auto_persist)
        self.records: dict[int, list[LoadItem]] = {}

    def written(self, persist: Persist) -> None:
        super().written(persist)
        typed: list[LoadItem] = list(persist.records) if persist.producer_id < 0 else [
            TxnRecord(key, value, persist.producer_id) for key, value in persist.records]
        self.records.setdefault(persist.partition, []).extend(typed)

    def txn_commit(self, group_id: str,
                   offsets: dict[tuple[str, int], int | tuple[int, str | None]], *,
                   producer_id: int = PID, producer_epoch: int = 0, version: int = 3,
                   generation: int = -1, member_id: str = "", instance: str | None = None,
                   leader_epoch: int = -1) -> int:
        topics: dict[str, list[Any]] = {}
        for (topic, partition), value in offsets.items():
            offset, metadata = value if isinstance(value, tuple) else (value, "")
            topics.setdefault(topic, []).append(TP(
                partition_index=partition, committed_offset=offset,
                committed_leader_epoch=leader_epoch, committed_metadata=metadata))
        request = TxnOffsetCommitRequest(
            transactional_id=f"txn-{producer_id}", group_id=group_id, producer_id=producer_id,
            producer_epoch=producer_epoch, generation_id=generation, member_id=member_id,
            group_instance_id=instance,
            topics=[TT(name=t, partitions=ps) for t, ps in topics.items()])
        return self.call(self.coord.txn_offset_commit, request, version)

    def txn_codes(self, group_id: str, offsets: Any, **kw: Any) -> dict[tuple[str, int], int]:
        response = self.answer(self.txn_commit(group_id, offsets, **kw))
        assert response is not None, "TxnOffsetCommit still waiting"
        return {(t.name, p.partition_index): p.error_code
                for t in response.topics for p in t.partitions}

    def end_txn(self, group_id: str, producer_id: int = PID, *, commit: bool) -> None:
        """The producer's marker is durable in the partition of `group_id`."""
        self.end_txn_in(self.coord.partition_for(group_id), producer_id, commit=commit)

    def end_txn_in(self, partition: int, producer_id: int = PID, *, commit: bool) -> None:
        self.records.setdefault(partition, []).append(TxnMarker(producer_id, commit))
        self.coord.transaction_completed(partition, producer_id, commit, self.now)
        self.drain()


def _visible(h: Harness, group_id: str, topic: str, partitions: list[int]) -> list[int]:
    """Committed offsets as a consumer without require_stable sees them (v7)."""
    response = h.fetch(group_id, {topic: partitions}, version=7)
    assert all(p.error_code == Err.NONE for p in response.topics[0].partitions)
    return [p.committed_offset for p in response.topics[0].partitions]


def _stable(h: Harness, group_id: str, topic: str, partitions: list[int]) -> list[tuple[int, int]]:
    """(offset, error) per partition for OffsetFetch v7 with require_stable."""
    response = h.fetch(group_id, {topic: partitions}, version=7, require_stable=True)
    assert response.error_code == Err.NONE
    return [(p.committed_offset, p.error_code) for p in response.topics[0].partitions]


def _fetch_v8(h: Harness, groups: dict[str, dict[str, list[int]] | None], *,
              require_stable: bool, version: int = 8) -> dict[str, tuple[int, list[Any]]]:
    """group -> (group error, [(topic, partition, offset, error)]) from OffsetFetch v8+."""
    request = OffsetFetchRequest(require_stable=require_stable, groups=[])
    for group_id, topics in groups.items():
        group = OffsetFetchRequest.OffsetFetchRequestGroup(group_id=group_id)
        group.topics = None if topics is None else [  # the constructor turns None into []
            OffsetFetchRequest.OffsetFetchRequestTopics(name=t, partition_indexes=ps)
            for t, ps in topics.items()]
        request.groups.append(group)
    response = h.answer(h.call(h.coord.offset_fetch, request, version))
    return {g.group_id: (g.error_code, [(t.name, p.partition_index, p.committed_offset,
                                         p.error_code) for t in g.topics for p in t.partitions])
            for g in response.groups}


# -- pending until the marker -------------------------------------------------------------


def test_txn_offsets_are_pending_until_the_commit_marker() -> None:
    h = TxnHarness(auto_persist=False)
    token = h.txn_commit("s", {("t", 0): (10, "meta\x00"), ("t", 1): 11}, version=2,
                         leader_epoch=3, producer_epoch=7)
    assert h.answer(token) is None  # waits for its records
    (persist,) = h.pending
    assert (persist.producer_id, persist.producer_epoch) == (PID, 7)
    assert persist.partition == h.coord.partition_for("s")
    assert persist.records == [
        (offset_commit_key("s", "t", 0), offset_commit_value(10, 3, "meta\x00", h.now, None)),
        (offset_commit_key("s", "t", 1), offset_commit_value(11, 3, "", h.now, None)),
    ]
    assert h.coord.group("s") is None
    h.flush()
    assert {p.partition_index: p.error_code for p in h.answer(token).topics[0].partitions} == {
        0: Err.NONE, 1: Err.NONE}
    # Durable but pending: a simple group exists, its offsets are not visible yet.
    group = h.group("s")
    assert group.state is S.EMPTY and group.protocol_type is None
    assert _visible(h, "s", "t", [0, 1]) == [-1, -1]
    assert h.fetch("s", None, version=7).topics == []
    h.end_txn("s", commit=True)
    assert h.committed("s", "t", 0) == (10, "meta\x00", 3)
    assert h.committed("s", "t", 1) == (11, "", 3)
    assert _stable(h, "s", "t", [0, 1]) == [(10, Err.NONE), (11, Err.NONE)]
    # The marker is spent: a second one changes nothing.
    h.end_txn("s", commit=False)
    assert _visible(h, "s", "t", [0, 1]) == [10, 11]


def test_leader_epoch_only_from_v2() -> None:
    h = TxnHarness()
    h.txn_commit("s", {("t", 0): 1}, version=1, leader_epoch=3)
    h.txn_commit("s", {("t", 1): 1}, version=2, leader_epoch=3)
    h.end_txn("s", commit=True)
    assert h.committed("s", "t", 0)[2] == -1
    assert h.committed("s", "t", 1)[2] == 3


def test_an_aborted_transaction_leaves_the_older_offset() -> None:
    h = TxnHarness()
    h.commit("s", {("t", 0): (5, "plain")})
    assert h.txn_codes("s", {("t", 0): (10, "txn"), ("t", 1): 11}) == {
        ("t", 0): Err.NONE, ("t", 1): Err.NONE}
    assert _visible(h, "s", "t", [0, 1]) == [5, -1]
    h.end_txn("s", commit=False)
    assert h.committed("s", "t", 0) == (5, "plain", -1)
    assert _visible(h, "s", "t", [0, 1]) == [5, -1]
    assert _stable(h, "s", "t", [0, 1]) == [(5, Err.NONE), (-1, Err.NONE)]
    # A commit marker after the abort finds nothing to commit.
    h.end_txn("s", commit=True)
    assert _visible(h, "s", "t", [0, 1]) == [5, -1]


# -- require_stable ---------------------------------------------------------------------------


def test_require_stable_v7_is_per_partition_and_cleared_by_the_marker() -> None:
    h = TxnHarness()
    h.commit("s", {("t", 0): 5, ("t", 1): 6})
    h.txn_commit("s", {("t", 0): 9, ("t", 3): 1})
    assert _stable(h, "s", "t", [0, 1, 2, 3]) == [
        (-1, Err.UNSTABLE_OFFSET_COMMIT), (6, Err.NONE), (-1, Err.NONE),
        (-1, Err.UNSTABLE_OFFSET_COMMIT)]
    # Without require_stable (and before v7, which cannot ask): the last committed offsets.
    assert _visible(h, "s", "t", [0, 1, 3]) == [5, 6, -1]
    response = h.fetch("s", {"t": [0]}, version=6, require_stable=True)
    assert response.topics[0].partitions[0].committed_offset == 5
    # All partitions (topics null): Kafka lists the committed ones, unstable if pending.
    response = h.fetch("s", None, version=7, require_stable=True)
    assert [(p.partition_index, p.committed_offset, p.error_code)
            for p in response.topics[0].partitions] == [
        (0, -1, Err.UNSTABLE_OFFSET_COMMIT), (1, 6, Err.NONE)]
    h.end_txn("s", commit=True)
    assert _stable(h, "s", "t", [0, 1, 2, 3]) == [
        (9, Err.NONE), (6, Err.NONE), (-1, Err.NONE), (1, Err.NONE)]


def test_require_stable_v8_is_a_partition_error_of_that_group() -> None:
    h = TxnHarness()
    h.commit("a", {("t", 0): 5, ("t", 1): 6})
    h.commit("b", {("t", 0): 7})
    h.txn_commit("a", {("t", 0): 9})
    wanted: dict[str, dict[str, list[int]] | None] = {"a": {"t": [0, 1]}, "b": {"t": [0]}}
    for version in (8, 9):
        assert _fetch_v8(h, wanted, require_stable=True, version=version) == {
            "a": (Err.NONE, [("t", 0, -1, Err.UNSTABLE_OFFSET_COMMIT), ("t", 1, 6, Err.NONE)]),
            "b": (Err.NONE, [("t", 0, 7, Err.NONE)])}
    assert _fetch_v8(h, {"a": None}, require_stable=True) == {
        "a": (Err.NONE, [("t", 0, -1, Err.UNSTABLE_OFFSET_COMMIT), ("t", 1, 6, Err.NONE)])}
    assert _fetch_v8(h, wanted, require_stable=False) == {
        "a": (Err.NONE, [("t", 0, 5, Err.NONE), ("t", 1, 6, Err.NONE)]),
        "b": (Err.NONE, [("t", 0, 7, Err.NONE)])}
    h.end_txn("a", commit=True)
    assert _fetch_v8(h, wanted, require_stable=True) == {
        "a": (Err.NONE, [("t", 0, 9, Err.NONE), ("t", 1, 6, Err.NONE)]),
        "b": (Err.NONE, [("t", 0, 7, Err.NONE)])}


def test_require_stable_while_the_txn_records_are_being_written() -> None:
    """Kafka holds the transaction's offsets as pending from before they are appended
    (`prepareTxnOffsetCommit`; the KIP-848 coordinator orders a require_stable fetch
    after the writes in flight): a fetch then must not call the old offset stable."""
    h = TxnHarness(auto_persist=False)
    h.commit("s", {("t", 0): 5})
    h.flush()
    token = h.txn_commit("s", {("t", 0): 9})
    assert h.answer(token) is None
    assert _stable(h, "s", "t", [0]) == [(-1, Err.UNSTABLE_OFFSET_COMMIT)]
    assert _visible(h, "s", "t", [0]) == [5]
    h.flush()
    assert _stable(h, "s", "t", [0]) == [(-1, Err.UNSTABLE_OFFSET_COMMIT)]
    h.end_txn("s", commit=True)
    assert _stable(h, "s", "t", [0]) == [(9, Err.NONE)]
    # The same holds for a plain commit in flight (`pendingOffsetCommits` in Kafka).
    h.commit("s", {("t", 0): 11})
    assert _stable(h, "s", "t", [0]) == [(-1, Err.UNSTABLE_OFFSET_COMMIT)]
    h.flush()
    assert _stable(h, "s", "t", [0]) == [(11, Err.NONE)]


# -- several transactions, and plain commits beside them -------------------------------------


def test_two_producers_pending_for_different_partitions_of_one_group() -> None:
    h = TxnHarness()
    h.commit("s", {("t", 1): 1})
    h.txn_commit("s", {("t", 0): 10}, producer_id=1)
    h.txn_commit("s", {("t", 1): 20}, producer_id=2)
    assert _stable(h, "s", "t", [0, 1]) == [(-1, Err.UNSTABLE_OFFSET_COMMIT)] * 2
    h.end_txn("s", 1, commit=True)
    assert _stable(h, "s", "t", [0, 1]) == [(10, Err.NONE), (-1, Err.UNSTABLE_OFFSET_COMMIT)]
    assert _visible(h, "s", "t", [0, 1]) == [10, 1]
    h.end_txn("s", 2, commit=False)
    assert _stable(h, "s", "t", [0, 1]) == [(10, Err.NONE), (1, Err.NONE)]


def test_two_producers_for_one_partition_the_later_record_wins() -> None:
    """Kafka keeps the offset whose record is later in the log, whatever the order of the
    markers."""
    h = TxnHarness()
    h.txn_commit("s", {("t", 0): 10}, producer_id=1)
    h.txn_commit("s", {("t", 0): 20}, producer_id=2)
    h.end_txn("s", 2, commit=True)
    assert _stable(h, "s", "t", [0]) == [(-1, Err.UNSTABLE_OFFSET_COMMIT)]  # 1 still open
    assert _visible(h, "s", "t", [0]) == [20]
    h.end_txn("s", 1, commit=True)
    assert _stable(h, "s", "t", [0]) == [(20, Err.NONE)]


def test_a_plain_commit_written_after_the_txn_record_wins() -> None:
    """Kafka's `replayEndTransactionMarker`: the most recent record is kept when plain and
    transactional commits mix; a plain commit is visible as soon as it is durable."""
    h = TxnHarness()
    h.txn_commit("s", {("t", 0): 10})
    h.commit("s", {("t", 0): 7})
    assert _visible(h, "s", "t", [0]) == [7]
    assert _stable(h, "s", "t", [0]) == [(-1, Err.UNSTABLE_OFFSET_COMMIT)]  # still open
    h.end_txn("s", commit=True)
    assert _stable(h, "s", "t", [0]) == [(7, Err.NONE)]


def test_a_txn_record_written_after_a_plain_commit_wins_at_commit() -> None:
    h = TxnHarness()
    h.commit("s", {("t", 0): 7})
    h.txn_commit("s", {("t", 0): 10})
    assert _visible(h, "s", "t", [0]) == [7]
    h.end_txn("s", commit=True)
    assert _visible(h, "s", "t", [0]) == [10]


def test_a_txn_rewrite_of_the_same_partition_keeps_the_last() -> None:
    h = TxnHarness()
    h.txn_commit("s", {("t", 0): 10})
    h.commit("s", {("t", 0): 7})
    h.txn_commit("s", {("t", 0): 12})  # the same transaction, later in the log
    h.end_txn("s", commit=True)
    assert _visible(h, "s", "t", [0]) == [12]


def test_markers_reach_only_the_groups_of_their_partition() -> None:
    h = TxnHarness()
    assert h.coord.partition_for("a") != h.coord.partition_for("b")
    h.txn_commit("a", {("t", 0): 1})
    h.txn_commit("b", {("t", 0): 2})
    h.end_txn("a", commit=True)
    assert _stable(h, "a", "t", [0]) == [(1, Err.NONE)]
    assert _stable(h, "b", "t", [0]) == [(-1, Err.UNSTABLE_OFFSET_COMMIT)]
    h.end_txn("b", commit=False)
    assert _stable(h, "b", "t", [0]) == [(-1, Err.NONE)]
    assert _visible(h, "a", "t", [0]) == [1]


def test_a_marker_with_nothing_pending_is_harmless() -> None:
    h = TxnHarness()
    h.commit("s", {("t", 0): 5})
    h.txn_commit("s", {("t", 1): 6}, producer_id=1)
    before = len(h.log[h.coord.partition_for("s")])
    for commit in (True, False):
        h.end_txn("s", 77, commit=commit)
        h.end_txn_in((h.coord.partition_for("s") + 1) % h.config.offsets_topic_num_partitions,
                     1, commit=commit)  # producer 1's marker in another partition
    assert h.coord.take_output() == [] and h.pending == []
    assert len(h.log[h.coord.partition_for("s")]) == before  # nothing written
    assert _stable(h, "s", "t", [0, 1]) == [(5, Err.NONE), (-1, Err.UNSTABLE_OFFSET_COMMIT)]
    h.end_txn("s", 1, commit=True)
    assert _stable(h, "s", "t", [0, 1]) == [(5, Err.NONE), (6, Err.NONE)]


# -- what TxnOffsetCommit checks ----------------------------------------------------------------


def test_generation_and_member_checks_from_v3() -> None:
    h = TxnHarness()
    (leader, follower), gen = h.form("g", 2)
    ok = {("t", 0): Err.NONE}
    assert h.txn_codes("g", {("t", 0): 1}, generation=gen, member_id=follower) == ok
    assert h.txn_codes("g", {("t", 0): 1}, generation=gen - 1, member_id=follower) == {
        ("t", 0): Err.ILLEGAL_GENERATION}
    assert h.txn_codes("g", {("t", 0): 1}, generation=gen, member_id="stranger") == {
        ("t", 0): Err.UNKNOWN_MEMBER_ID}
    # A member id without a generation is still checked (Kafka checks either).
    assert h.txn_codes("g", {("t", 0): 1}, member_id="stranger") == {
        ("t", 0): Err.UNKNOWN_MEMBER_ID}
    assert h.txn_codes("g", {("t", 0): 1}, member_id=follower) == {
        ("t", 0): Err.ILLEGAL_GENERATION}
    # Neither (a producer with no group metadata, and every v0-2 request): accepted even
    # though the group has members, unlike OffsetCommit.
    assert h.txn_codes("g", {("t", 0): 1}) == ok
    for version in (0, 1, 2):
        assert h.txn_codes("g", {("t", 0): 1}, version=version, generation=gen + 5,
                           member_id="not on the wire") == ok
    # The group's state is not enforced: CompletingRebalance accepts the new generation.
    h.join("g", leader)
    t_follower = h.join("g", follower)
    new_gen = h.answer(t_follower).generation_id
    assert h.group("g").state is S.COMPLETING_REBALANCE
    assert h.txn_codes("g", {("t", 0): 2}, generation=new_gen, member_id=follower) == ok
    assert h.txn_codes("g", {("t", 0): 2}, generation=gen, member_id=follower) == {
        ("t", 0): Err.ILLEGAL_GENERATION}
    # Refused commits wrote nothing.
    h.end_txn("g", commit=True)
    assert h.committed("g", "t", 0)[0] == 2


def test_static_member_checks() -> None:
    h = TxnHarness()
    (member,), gen = h.form("g", 1, instances=["i1"])
    assert h.txn_codes("g", {("t", 0): 1}, generation=gen, member_id=member,
                       instance="i1") == {("t", 0): Err.NONE}
    assert h.txn_codes("g", {("t", 0): 1}, generation=gen, member_id="old",
                       instance="i1") == {("t", 0): Err.FENCED_INSTANCE_ID}
    assert h.txn_codes("g", {("t", 0): 1}, generation=gen, member_id=member,
                       instance="unknown") == {("t", 0): Err.UNKNOWN_MEMBER_ID}


def test_unknown_group_with_a_generation_and_a_group_being_deleted() -> None:
    h = TxnHarness(auto_persist=False)
    for version in (3, 4):
        token = h.txn_commit("nope", {("t", 0): 1}, generation=3, member_id="m",
                             version=version)
        assert h.answer(token).topics[0].partitions[0].error_code == Err.ILLEGAL_GENERATION
    assert h.coord.group("nope") is None and h.pending == []
    h.commit("g", {("t", 0): 1})
    h.flush()
    h.delete_groups("g")
    token = h.txn_commit("g", {("t", 0): 2})
    assert h.answer(token).topics[0].partitions[0].error_code == Err.COORDINATOR_NOT_AVAILABLE


def test_metadata_over_the_limit_is_refused_per_partition() -> None:
    h = TxnHarness(GroupConfig(offset_metadata_max_bytes=10), auto_persist=False)
    token = h.txn_commit("s", {("t", 0): (1, "x" * 10), ("t", 1): (2, "x" * 11),
                               ("t", 2): (3, None), ("t", 3): (4, "\U0001F600" * 6)})
    (persist,) = h.pending
    assert [decode_record(k, v) for k, v in persist.records] == [
        decode_record(offset_commit_key("s", "t", p), offset_commit_value(o, -1, m, h.now, None))
        for p, o, m in ((0, 1, "x" * 10), (2, 3, ""))]
    h.flush()
    assert {p.partition_index: p.error_code for p in h.answer(token).topics[0].partitions} == {
        0: Err.NONE, 1: Err.OFFSET_METADATA_TOO_LARGE, 2: Err.NONE,
        3: Err.OFFSET_METADATA_TOO_LARGE}
    assert _stable(h, "s", "t", [0, 1, 2, 3]) == [
        (-1, Err.UNSTABLE_OFFSET_COMMIT), (-1, Err.NONE), (-1, Err.UNSTABLE_OFFSET_COMMIT),
        (-1, Err.NONE)]
    h.end_txn("s", commit=True)
    assert _visible(h, "s", "t", [0, 1, 2, 3]) == [1, -1, 3, -1]
    # Nothing left to write: answered at once, no group made, no records.
    token = h.txn_commit("other", {("t", 0): (1, "y" * 11)})
    assert h.answer(token).topics[0].partitions[0].error_code == Err.OFFSET_METADATA_TOO_LARGE
    assert h.pending == [] and h.coord.group("other") is None


# -- the simple group, retention and deletions --------------------------------------------------


def test_a_simple_group_made_by_a_transaction_lives_while_it_is_pending() -> None:
    h = TxnHarness(GroupConfig(offsets_retention_minutes=10,
                               offsets_retention_check_interval_ms=MINUTE))
    h.txn_commit("s", {("t", 0): 1})
    assert h.group("s").state is S.EMPTY
    assert [g.group_id for g in h.list_groups()] == ["s"]
    h.advance(30 * MINUTE)  # nothing committed, but a transaction is open: kept
    assert h.coord.group("s") is not None
    h.end_txn("s", commit=False)
    h.advance(MINUTE)  # nothing left: the group goes at the next check
    assert h.coord.group("s") is None


def test_pending_offsets_are_not_expired_under_an_expired_committed_one() -> None:
    h = TxnHarness(GroupConfig(offsets_retention_minutes=10,
                               offsets_retention_check_interval_ms=MINUTE))
    h.commit("s", {("t", 0): 1})
    h.txn_commit("s", {("t", 0): 2})
    h.advance(20 * MINUTE)
    assert _visible(h, "s", "t", [0]) == [1]
    h.end_txn("s", commit=True)
    assert _visible(h, "s", "t", [0]) == [2]


def test_offset_delete_drops_the_pending_offset_for_good() -> None:
    h = TxnHarness()
    h.txn_commit("s", {("t", 0): 1, ("t", 1): 2})
    response = h.answer(h.offset_delete("s", {"t": [0]}))
    assert response.topics[0].partitions[0].error_code == Err.NONE
    tombstone = (offset_commit_key("s", "t", 0), None)
    assert h.log[h.coord.partition_for("s")][-1] == tombstone
    assert _stable(h, "s", "t", [0, 1]) == [(-1, Err.NONE), (-1, Err.UNSTABLE_OFFSET_COMMIT)]
    h.end_txn("s", commit=True)
    assert _visible(h, "s", "t", [0, 1]) == [-1, 2]


def test_delete_groups_tombstones_pending_partitions() -> None:
    h = TxnHarness()
    h.commit("s", {("t", 0): 1})
    h.txn_commit("s", {("t", 0): 2, ("t", 1): 3})
    results = h.answer(h.delete_groups("s")).results
    assert [(r.group_id, r.error_code) for r in results] == [("s", Err.NONE)]
    written = h.log[h.coord.partition_for("s")][-3:]
    assert written[:2] == [(offset_commit_key("s", "t", 0), None),
                           (offset_commit_key("s", "t", 1), None)]
    assert written[2][1] is None and isinstance(decode_record(*written[2]), GroupRecord)
    assert h.coord.group("s") is None
    h.end_txn("s", commit=True)
    assert h.coord.group("s") is None
    assert h.fetch("s", None, version=7).topics == []


# -- load ---------------------------------------------------------------------------------------


def _key(group: str, topic: str, partition: int) -> bytes:
    return offset_commit_key(group, topic, partition)


def _value(offset: int, metadata: str = "", leader_epoch: int = -1,
           timestamp_ms: int = 1_000) -> bytes:
    return offset_commit_value(offset, leader_epoch, metadata, timestamp_ms, None)


def _loaded(logs: dict[int, list[LoadItem]], config: GroupConfig | None = None) -> TxnHarness:
    fresh = TxnHarness(config)
    for partition, items in sorted(logs.items()):
        fresh.coord.load(partition, iter(items), fresh.now)
    assert fresh.coord.take_output() == []
    return fresh


def test_load_rebuilds_committed_aborted_and_open_transactions() -> None:
    """A log written by hand with the real record encoders, in log order."""
    h = TxnHarness()
    p_a, p_b = h.coord.partition_for("a"), h.coord.partition_for("b")
    assert p_a != p_b
    log_a: list[LoadItem] = [
        (_key("a", "t", 0), _value(1, "plain")),
        TxnRecord(_key("a", "t", 0), _value(2, "committed", 4), 1),
        TxnRecord(_key("a", "t", 1), _value(3), 1),
        TxnMarker(99, True),  # nobody's: harmless
        TxnMarker(1, True),
        TxnRecord(_key("a", "t", 0), _value(4, "aborted"), 2),
        TxnMarker(2, False),
        TxnRecord(_key("a", "t", 2), _value(5, "open"), 3),  # no marker: still pending
        TxnRecord(_key("a", "t", 3), _value(6), 4),
        (_key("a", "t", 3), _value(7, "plain after")),  # later than the txn record: wins
        TxnMarker(4, True),
        TxnRecord(_key("a", "t", 4), _value(8), 5),
        (_key("a", "t", 4), None),  # a tombstone drops the pending offset
        TxnMarker(5, True),
        TxnRecord(_key("a", "u", 0), _value(9), 6),  # producer 6's marker is in p_b only
    ]
    log_b: list[LoadItem] = [
        TxnRecord(_key("b", "t", 0), _value(10), 6),
        TxnMarker(6, True),
    ]
    fresh = _loaded({p_a: log_a, p_b: log_b})
    group = fresh.group("a")
    assert group.state is S.EMPTY and group.protocol_type is None
    assert fresh.committed("a", "t", 0) == (2, "committed", 4)
    assert _stable(fresh, "a", "t", [0, 1, 2, 3, 4]) == [
        (2, Err.NONE), (3, Err.NONE), (-1, Err.UNSTABLE_OFFSET_COMMIT),
        (7, Err.NONE), (-1, Err.NONE)]
    assert fresh.committed("a", "t", 3) == (7, "plain after", -1)
    assert _visible(fresh, "a", "t", [2]) == [-1]
    assert _stable(fresh, "a", "u", [0]) == [(-1, Err.UNSTABLE_OFFSET_COMMIT)]
    assert _stable(fresh, "b", "t", [0]) == [(10, Err.NONE)]
    # The open transactions complete after the load as they would have before it.
    fresh.end_txn("a", 3, commit=True)
    fresh.end_txn("a", 6, commit=False)
    assert _stable(fresh, "a", "t", [2]) == [(5, Err.NONE)]
    assert _stable(fresh, "a", "u", [0]) == [(-1, Err.NONE)]


def _state(h: TxnHarness, group_ids: list[str], wanted: dict[str, list[int]]) -> Any:
    visible = {g: [(t.name, [(p.partition_index, p.committed_offset, p.committed_leader_epoch,
                              p.metadata) for p in t.partitions])
                   for t in h.fetch(g, None, version=7).topics] for g in group_ids}
    stable = {g: [(t.name, [(p.partition_index, p.committed_offset, p.error_code)
                            for p in t.partitions])
                  for t in h.fetch(g, wanted, version=7, require_stable=True).topics]
              for g in group_ids}
    groups = {g: None if h.coord.group(g) is None else h.group(g).state for g in group_ids}
    return visible, stable, groups


def test_load_of_what_the_coordinator_wrote_gives_the_same_state() -> None:
    h = TxnHarness()
    assert h.coord.partition_for("a") != h.coord.partition_for("b")
    (member,), gen = h.form("g", 1, protocols=[("range", subscription("t"))])
    h.commit("g", {("t", 0): 1}, generation=gen, member_id=member)
    h.txn_commit("g", {("t", 0): 2, ("t", 1): (3, "m")}, producer_id=1, generation=gen,
                 member_id=member, leader_epoch=5)
    h.end_txn("g", 1, commit=True)
    h.txn_commit("g", {("t", 0): 4}, producer_id=2)
    h.end_txn("g", 2, commit=False)
    h.txn_commit("a", {("t", 0): 5}, producer_id=3)  # left open
    h.txn_commit("a", {("t", 1): 6}, producer_id=4)
    h.commit("a", {("t", 1): 7})  # after producer 4's record
    h.end_txn("a", 4, commit=True)
    h.txn_commit("b", {("t", 0): 8}, producer_id=3)  # producer 3 in two partitions
    h.end_txn("b", 3, commit=True)  # only b's partition has the marker
    h.end_txn("b", 77, commit=True)  # nothing pending for 77
    ids, wanted = ["g", "a", "b"], {"t": [0, 1, 2]}
    before = _state(h, ids, wanted)
    assert before[1]["a"] == [("t", [(0, -1, Err.UNSTABLE_OFFSET_COMMIT), (1, 7, Err.NONE),
                                     (2, -1, Err.NONE)])]
    assert any(isinstance(item, TxnRecord) for items in h.records.values() for item in items)
    fresh = _loaded(h.records, h.config)
    after = _state(fresh, ids, wanted)
    assert after[:2] == before[:2]
    assert after[2] == {"g": S.STABLE, "a": S.EMPTY, "b": S.EMPTY}
    # And the one transaction still open ends the same way in both.
    for harness in (h, fresh):
        harness.end_txn("a", 3, commit=True)
    assert _state(fresh, ids, wanted)[:2] == _state(h, ids, wanted)[:2]
    assert _visible(fresh, "a", "t", [0, 1]) == [5, 7]


def test_load_ignores_a_marker_before_the_records_of_its_producer() -> None:
    h = TxnHarness()
    partition = h.coord.partition_for("s")
    fresh = _loaded({partition: [
        TxnMarker(1, True),  # an older transaction of producer 1, with nothing here
        TxnRecord(_key("s", "t", 0), _value(3), 1),
    ]})
    assert _stable(fresh, "s", "t", [0]) == [(-1, Err.UNSTABLE_OFFSET_COMMIT)]

