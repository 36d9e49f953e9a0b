"""OffsetCommit, OffsetFetch, OffsetDelete, DeleteGroups and offset retention transcripts."""

from __future__ import annotations

from tests.broker.groups.harness import Harness, subscription

from zoolog.broker.groups import GroupConfig, GroupState, OffsetAndMetadata, OffsetRecord
from zoolog.broker.groups.records import decode_record
from zoolog.protocol.kafka._generated.offset_fetch import OffsetFetchRequest
from zoolog.protocol.kafka.errors import Err

S = GroupState
MINUTE = 60_000


# -- OffsetCommit -----------------------------------------------------------------------


def test_simple_commit_creates_an_empty_group_once_durable() -> None:
    h = Harness(auto_persist=False)
    token = h.commit("simple", {("t", 0): 42, ("t", 1): 7})
    assert h.answer(token) is None  # waits for the records
    assert h.coord.group("simple") is None
    assert h.fetch("simple", {"t": [0]}).topics[0].partitions[0].committed_offset == -1
    h.flush()
    assert {p.partition_index: p.error_code for p in h.answer(token).topics[0].partitions} == {
        0: Err.NONE, 1: Err.NONE}
    group = h.group("simple")
    assert group.state is S.EMPTY and group.protocol_type is None
    assert h.committed("simple", "t", 0) == (42, "", -1)


def test_simple_commit_to_a_group_with_members_is_refused() -> None:
    h = Harness()
    (_member,), _gen = h.form("g", 1)
    assert h.commit_codes("g", {("t", 0): 1}) == {("t", 0): Err.UNKNOWN_MEMBER_ID}
    assert h.commit_codes("g", {("t", 0): 1}, version=0) == {("t", 0): Err.UNKNOWN_MEMBER_ID}


def test_member_commit_checks() -> None:
    h = Harness()
    (leader, follower), gen = h.form("g", 2)
    ok = {("t", 0): Err.NONE}
    assert h.commit_codes("g", {("t", 0): 1}, generation=gen, member_id=follower) == ok
    assert h.commit_codes("g", {("t", 0): 1}, generation=gen + 1, member_id=follower) == {
        ("t", 0): Err.ILLEGAL_GENERATION}
    assert h.commit_codes("g", {("t", 0): 1}, generation=gen, member_id="stranger") == {
        ("t", 0): Err.UNKNOWN_MEMBER_ID}
    # PreparingRebalance: the current generation may still commit (cooperative rebalancing).
    h.join("g", leader)
    assert h.group("g").state is S.PREPARING_REBALANCE
    assert h.commit_codes("g", {("t", 0): 2}, generation=gen, member_id=follower) == ok
    # CompletingRebalance: a known member of the new generation is told to wait.
    t_follower = h.join("g", follower)
    new_gen = h.answer(t_follower).generation_id
    assert h.group("g").state is S.COMPLETING_REBALANCE
    assert h.commit_codes("g", {("t", 0): 3}, generation=new_gen, member_id=follower) == {
        ("t", 0): Err.REBALANCE_IN_PROGRESS}
    assert h.committed("g", "t", 0)[0] == 2


def test_commit_to_an_unknown_group_with_a_generation() -> None:
    h = Harness()
    for version, code in ((8, Err.ILLEGAL_GENERATION), (9, Err.GROUP_ID_NOT_FOUND)):
        codes = h.commit_codes("nope", {("t", 0): 1}, generation=3, member_id="m",
                               version=version)
        assert codes == {("t", 0): code}
    assert h.coord.group("nope") is None


def test_commit_to_a_group_being_deleted() -> None:
    h = Harness(auto_persist=False)
    h.commit("g", {("t", 0): 1})
    h.flush()
    h.delete_groups("g")
    assert h.commit_codes("g", {("t", 0): 2}) == {("t", 0): Err.COORDINATOR_NOT_AVAILABLE}


def test_metadata_limit_per_partition_and_metadata_kept_as_sent() -> None:
    h = Harness(GroupConfig(offset_metadata_max_bytes=10))
    codes = h.commit_codes("s", {("t", 0): (1, "x" * 10), ("t", 1): (1, "x" * 11),
                                 ("t", 2): (5, "meta\x00"), ("t", 3): (6, None),
                                 ("t", 4): (7, "\U0001F600" * 5)})  # 10 UTF-16 units
    assert codes == {("t", 0): Err.NONE, ("t", 1): Err.OFFSET_METADATA_TOO_LARGE,
                     ("t", 2): Err.NONE, ("t", 3): Err.NONE, ("t", 4): Err.NONE}
    assert h.committed("s", "t", 2) == (5, "meta\x00", -1)  # confluent-kafka's trailing NUL
    assert h.committed("s", "t", 3) == (6, "", -1)
    assert h.committed("s", "t", 4) == (7, "\U0001F600" * 5, -1)
    assert h.fetch("s", {"t": [1]}).topics[0].partitions[0].committed_offset == -1


def test_leader_epoch_commit_timestamp_and_retention_per_version() -> None:
    h = Harness()
    h.commit("s", {("t", 0): 1}, version=6, leader_epoch=4)
    assert h.committed("s", "t", 0) == (1, "", 4)
    assert h.coord.offsets.get("s", "t", 0) == OffsetAndMetadata(1, 4, "", h.now, None)
    # v5 has no leader epoch on the wire.
    h.commit("s", {("t", 1): 1}, version=5, leader_epoch=4)
    assert h.committed("s", "t", 1)[2] == -1
    # v1 may carry the commit time.
    h.commit("s", {("t", 2): 1}, version=1, commit_timestamp=12345)
    assert h.coord.offsets.get("s", "t", 2) == OffsetAndMetadata(1, -1, "", 12345, None)
    # v2-4 may carry a retention: an expire timestamp, written as value v1.
    before = len(h.log[h.coord.partition_for("s")])
    h.commit("s", {("t", 3): 1}, version=2, retention_ms=5000)
    assert h.coord.offsets.get("s", "t", 3) == OffsetAndMetadata(1, -1, "", h.now, h.now + 5000)
    (key, value), = h.log[h.coord.partition_for("s")][before:]
    assert value is not None and value[:2] == b"\x00\x01"
    record = decode_record(key, value)
    assert isinstance(record, OffsetRecord) and record.value is not None
    assert record.value.expire_timestamp == h.now + 5000
    h.commit("s", {("t", 4): 1}, version=5, retention_ms=5000)  # v5: no retention field
    assert h.coord.offsets.get("s", "t", 4) == OffsetAndMetadata(1, -1, "", h.now, None)
    assert h.log[h.coord.partition_for("s")][-1][1][:2] == b"\x00\x03"  # type: ignore[index]


# -- OffsetFetch ------------------------------------------------------------------------


def test_fetch_forms() -> None:
    h = Harness()
    h.commit("s", {("a", 0): 10, ("a", 1): (11, "m"), ("b", 3): 12}, version=6, leader_epoch=2)
    # Named partitions, one never committed: -1, "", no error.
    response = h.fetch("s", {"a": [1, 5], "zz": [0]}, version=5)
    assert response.error_code == Err.NONE
    got = [(t.name, p.partition_index, p.committed_offset, p.committed_leader_epoch,
            p.metadata, p.error_code) for t in response.topics for p in t.partitions]
    assert got == [("a", 1, 11, 2, "m", 0), ("a", 5, -1, -1, "", 0), ("zz", 0, -1, -1, "", 0)]
    # topics = null (v2+): every committed partition.
    response = h.fetch("s", None, version=2)
    assert [(t.name, [(p.partition_index, p.committed_offset) for p in t.partitions])
            for t in response.topics] == [("a", [(0, 10), (1, 11)]), ("b", [(3, 12)])]
    # v0 and v1 work too (no leader epoch on the wire).
    response = h.fetch("s", {"a": [0]}, version=0)
    assert response.topics[0].partitions[0].committed_offset == 10
    # An unknown group: nothing committed, no error.
    assert h.fetch("nobody", None, version=3).topics == []
    assert h.fetch("nobody", {"a": [0]}, version=3).topics[0].partitions[0].committed_offset == -1


def test_fetch_v8_batched_groups() -> None:
    h = Harness()
    h.commit("s1", {("a", 0): 1})
    h.commit("s2", {("b", 0): 2, ("b", 1): 3})
    request = OffsetFetchRequest(groups=[
        OffsetFetchRequest.OffsetFetchRequestGroup(group_id="s1", topics=[
            OffsetFetchRequest.OffsetFetchRequestTopics(name="a", partition_indexes=[0, 1])]),
        OffsetFetchRequest.OffsetFetchRequestGroup(group_id="s2"),
        OffsetFetchRequest.OffsetFetchRequestGroup(group_id="none"),
    ])
    request.groups[1].topics = None
    request.groups[2].topics = None
    response = h.answer(h.call(h.coord.offset_fetch, request, 8))
    got = {g.group_id: [(t.name, p.partition_index, p.committed_offset, g.error_code)
                        for t in g.topics for p in t.partitions] for g in response.groups}
    assert got == {"s1": [("a", 0, 1, 0), ("a", 1, -1, 0)],
                   "s2": [("b", 0, 2, 0), ("b", 1, 3, 0)], "none": []}


def test_require_stable_with_a_pending_transactional_offset() -> None:
    h = Harness()
    h.commit("s", {("t", 0): 5, ("t", 1): 6})
    h.coord.offsets.add_pending_transactional("s", 1000, "t", 0,
                                              OffsetAndMetadata(9, -1, "", h.now, None))
    stable = h.fetch("s", {"t": [0, 1]}, version=7, require_stable=True)
    assert [(p.committed_offset, p.error_code) for p in stable.topics[0].partitions] == [
        (-1, Err.UNSTABLE_OFFSET_COMMIT), (6, Err.NONE)]
    assert h.fetch("s", {"t": [0]}, version=7).topics[0].partitions[0].committed_offset == 5
    h.coord.offsets.complete_transaction("s", 1000, commit=True)
    assert h.committed("s", "t", 0)[0] == 9


# -- OffsetDelete -----------------------------------------------------------------------


def test_offset_delete() -> None:
    h = Harness()
    response = h.answer(h.offset_delete("nope", {"t": [0]}))
    assert response.error_code == Err.GROUP_ID_NOT_FOUND
    (member,), gen = h.form("g", 1, protocols=[("range", subscription("t", "u"))])
    h.commit("g", {("t", 0): 1, ("old", 0): 2, ("old", 1): 3}, generation=gen, member_id=member)
    response = h.answer(h.offset_delete("g", {"t": [0], "old": [0, 9]}))
    assert response.error_code == Err.NONE
    got = {(t.name, p.partition_index): p.error_code for t in response.topics
           for p in t.partitions}
    assert got == {("t", 0): Err.GROUP_SUBSCRIBED_TO_TOPIC, ("old", 0): Err.NONE,
                   ("old", 9): Err.NONE}
    assert h.fetch("g", None).topics[0].name == "old"
    assert [p.partition_index for p in h.fetch("g", None).topics[0].partitions] == [1]
    assert h.committed("g", "t", 0)[0] == 1
    # Once Empty, nothing is subscribed.
    h.leave("g", member)
    assert h.answer(h.offset_delete("g", {"t": [0]})).topics[0].partitions[0].error_code == 0
    assert h.fetch("g", {"t": [0]}).topics[0].partitions[0].committed_offset == -1


def test_offset_delete_on_a_non_consumer_group_with_members() -> None:
    h = Harness()
    tokens = [h.join("c", protocol_type="connect", protocols=[("default", b"")], version=3)]
    h.settle(tokens)
    response = h.answer(h.offset_delete("c", {"t": [0]}))
    assert response.error_code == Err.NON_EMPTY_GROUP


def test_offset_delete_when_subscriptions_cannot_be_read() -> None:
    h = Harness()
    (_member,), _gen = h.form("g", 1, protocols=[("range", b"\x00")])  # not a subscription
    response = h.answer(h.offset_delete("g", {"anything": [0]}))
    assert response.topics[0].partitions[0].error_code == Err.GROUP_SUBSCRIBED_TO_TOPIC


# -- DeleteGroups -----------------------------------------------------------------------


def test_delete_groups() -> None:
    h = Harness(auto_persist=False)
    h.auto_persist = True
    (_member,), _gen = h.form("busy", 1)
    h.commit("idle", {("t", 0): 1, ("u", 2): 2})
    h.auto_persist = False
    token = h.delete_groups("busy", "idle", "nope", "idle")
    assert h.answer(token) is None  # the tombstones are not durable yet
    assert h.group("idle").state is S.DEAD
    assert h.describe("idle")[0].group_state == "Dead"
    # Kafka hides a Dead group's offsets at once (validateOffsetFetch).
    assert h.fetch("idle", {"t": [0]}).topics[0].partitions[0].committed_offset == -1
    assert h.coord.offsets.get("idle", "t", 0) is not None  # gone once durable
    (persist,) = h.pending
    assert sorted(persist.records) == sorted([
        (k, None) for k in (persist.records[0][0], persist.records[1][0],
                            persist.records[2][0])])
    assert all(v is None for _k, v in persist.records)
    h.flush()
    results = {r.group_id: r.error_code for r in h.answer(token).results}
    assert results == {"busy": Err.NON_EMPTY_GROUP, "idle": Err.NONE,
                       "nope": Err.GROUP_ID_NOT_FOUND}
    assert h.coord.group("idle") is None
    assert h.fetch("idle", None).topics == []
    assert h.coord.offsets.has_offsets("idle") is False
    assert [g.group_id for g in h.list_groups()] == ["busy"]


def test_delete_groups_across_partitions_answers_when_all_are_durable() -> None:
    h = Harness(auto_persist=False)
    names = ["a", "b", "c", "d"]
    assert len({h.coord.partition_for(n) for n in names}) > 1
    for n in names:
        h.commit(n, {("t", 0): 1})
    h.flush()
    token = h.delete_groups(*names)
    assert len(h.pending) == 4
    h.flush(3)
    assert h.answer(token) is None
    h.flush()
    assert {r.error_code for r in h.answer(token).results} == {Err.NONE}


def test_a_commit_in_flight_is_deleted_with_its_group() -> None:
    h = Harness(auto_persist=False)
    h.commit("g", {("t", 0): 1})
    h.flush()
    h.commit("g", {("t", 1): 2})  # not durable yet
    h.delete_groups("g")
    h.flush()
    assert h.coord.offsets.has_offsets("g") is False


# -- retention --------------------------------------------------------------------------


def _retention(minutes: int = 10) -> GroupConfig:
    return GroupConfig(offsets_retention_minutes=minutes,
                       offsets_retention_check_interval_ms=MINUTE)


def test_simple_group_offsets_expire_per_commit_then_the_group_goes() -> None:
    h = Harness(_retention())
    h.commit("s", {("t", 0): 1})
    h.advance(5 * MINUTE)
    h.commit("s", {("t", 1): 2})
    h.advance(5 * MINUTE)  # t0 is 10 minutes old: gone; t1 stays
    assert h.fetch("s", None).topics[0].partitions[0].partition_index == 1
    h.advance(5 * MINUTE)
    assert h.coord.group("s") is None
    assert h.describe("s")[0].group_state == "Dead"


def test_empty_group_offsets_expire_retention_after_the_group_became_empty() -> None:
    h = Harness(_retention())
    (member,), gen = h.form("g", 1, session_ms=MINUTE)
    h.commit("g", {("t", 0): 1}, generation=gen, member_id=member)
    for _ in range(60):  # 30 minutes of life: nothing expires while it has members
        h.advance(MINUTE // 2)
        assert h.heartbeat_code("g", gen, member) == Err.NONE
    assert h.committed("g", "t", 0)[0] == 1
    h.leave("g", member)
    h.advance(10 * MINUTE - 1)
    assert h.committed("g", "t", 0)[0] == 1
    h.advance(MINUTE + 1)  # the first check at least 10 minutes after the leave
    assert h.coord.group("g") is None


def test_an_explicit_expire_timestamp_wins() -> None:
    h = Harness(_retention(minutes=100))
    h.commit("s", {("t", 0): 1}, version=2, retention_ms=2 * MINUTE)
    h.commit("s", {("t", 1): 1}, version=2)
    h.advance(2 * MINUTE)
    assert [p.partition_index for p in h.fetch("s", None).topics[0].partitions] == [1]


def test_a_stable_consumer_group_keeps_subscribed_offsets() -> None:
    h = Harness(_retention())
    (member,), gen = h.form("g", 1, protocols=[("range", subscription("t"))],
                           session_ms=MINUTE)
    h.commit("g", {("t", 0): 1, ("gone", 0): 2}, generation=gen, member_id=member)
    for _ in range(24):
        h.advance(MINUTE // 2)
        assert h.heartbeat_code("g", gen, member) == Err.NONE
    assert [t.name for t in h.fetch("g", None).topics] == ["t"]
    assert h.group("g").state is S.STABLE


def test_an_empty_group_without_offsets_is_removed_at_the_next_check() -> None:
    h = Harness(_retention())
    (member,), _gen = h.form("g", 1)
    h.leave("g", member)
    assert h.group("g").state is S.EMPTY
    h.advance(MINUTE)
    assert h.coord.group("g") is None
    partition = h.log[h.coord.partition_for("g")]
    assert partition[-1][1] is None  # the group's tombstone


def test_a_group_that_was_never_written_is_forgotten_without_a_record() -> None:
    h = Harness(_retention())
    h.answer(h.join("g"))  # MEMBER_ID_REQUIRED, and the member never comes back
    h.advance(MINUTE)
    assert h.coord.group("g") is None
    assert h.log == {}
