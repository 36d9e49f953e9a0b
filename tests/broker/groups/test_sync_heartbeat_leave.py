"""SyncGroup, Heartbeat and LeaveGroup transcripts: every error code, parked syncs and the
durable assignment, sync and session timeouts, single and batch leaves."""

from __future__ import annotations

from tests.broker.groups.harness import REBALANCE_MS, SESSION_MS, Harness, assignment

from zoolog.broker.groups import GroupRecord, GroupState, decode_record
from zoolog.protocol.kafka.errors import Err

S = GroupState


def _completing(h: Harness, group_id: str = "g", count: int = 2) -> tuple[list[str], int]:
    """A group that has just completed its join: (members, leader first; generation)."""
    tokens = [h.join(group_id, version=3) for _ in range(count)]
    h.settle(tokens)
    responses = [h.answer(t) for t in tokens]
    leader = responses[0].leader
    members = sorted((r.member_id for r in responses), key=lambda m: m != leader)
    assert h.group(group_id).state is S.COMPLETING_REBALANCE
    return members, responses[0].generation_id


# -- SyncGroup --------------------------------------------------------------------------


def test_sync_errors() -> None:
    h = Harness()
    assert h.answer(h.sync("nope", 1, "m")).error_code == Err.UNKNOWN_MEMBER_ID
    h.commit("simple", {("t", 0): 1})
    assert h.group("simple").state is S.EMPTY
    assert h.answer(h.sync("simple", 0, "m")).error_code == Err.UNKNOWN_MEMBER_ID
    (leader, follower), gen = _completing(h)
    assert h.answer(h.sync("g", gen, "stranger")).error_code == Err.UNKNOWN_MEMBER_ID
    assert h.answer(h.sync("g", gen + 1, follower)).error_code == Err.ILLEGAL_GENERATION
    assert h.answer(h.sync("g", gen - 1, follower)).error_code == Err.ILLEGAL_GENERATION
    bad_type = h.sync("g", gen, follower, version=5, protocol_type="connect")
    assert h.answer(bad_type).error_code == Err.INCONSISTENT_GROUP_PROTOCOL
    bad_name = h.sync("g", gen, follower, version=5, protocol_type="consumer",
                      protocol_name="roundrobin")
    assert h.answer(bad_name).error_code == Err.INCONSISTENT_GROUP_PROTOCOL
    # Below v5 the fields do not exist, so they cannot disagree.
    assert h.answer(h.sync("g", gen, follower, version=4)) is None
    # PreparingRebalance: the leader rejoined with new metadata (the parked sync is told
    # to rejoin as well).
    parked = h.sync("g", gen, follower)
    h.join("g", leader, protocols=[("range", b"new")])
    assert h.answer(parked).error_code == Err.REBALANCE_IN_PROGRESS
    assert h.answer(h.sync("g", gen, follower)).error_code == Err.REBALANCE_IN_PROGRESS


def test_followers_park_until_the_leaders_assignment_is_durable() -> None:
    h = Harness(auto_persist=False)
    (leader, f1, f2), gen = _completing(h, count=3)
    t_f1 = h.sync("g", gen, f1, version=5, protocol_type="consumer", protocol_name="range")
    assert h.answer(t_f1) is None
    t_leader = h.sync("g", gen, leader, {leader: assignment("t", 0), f1: assignment("t", 1),
                                         "ghost": b"x"})
    assert h.answer(t_leader) is None
    assert len(h.pending) == 1
    (key, value), = h.pending[0].records
    record = decode_record(key, value)
    assert isinstance(record, GroupRecord) and record.value is not None
    assert record.value.generation == gen and record.value.leader == leader
    assert {m.member_id: m.assignment for m in record.value.members} == {
        leader: assignment("t", 0), f1: assignment("t", 1), f2: b""}
    t_f2 = h.sync("g", gen, f2)  # arrives after the record was taken, before it is durable
    assert h.group("g").state is S.COMPLETING_REBALANCE
    assert h.answer(t_f1) is None and h.answer(t_f2) is None
    h.flush()
    assert h.group("g").state is S.STABLE
    assert h.answer(t_leader).assignment == assignment("t", 0)
    f1_answer = h.answer(t_f1)
    assert (f1_answer.assignment, f1_answer.protocol_type, f1_answer.protocol_name) == (
        assignment("t", 1), "consumer", "range")
    assert h.answer(t_f2).assignment == b""  # the leader gave it nothing
    # Stable: answered at once from the stored assignment.
    assert h.answer(h.sync("g", gen, f1)).assignment == assignment("t", 1)


def test_a_rebalance_while_the_assignment_is_being_written() -> None:
    h = Harness(auto_persist=False)
    (leader, follower), gen = _completing(h)
    t_follower = h.sync("g", gen, follower)
    t_leader = h.sync("g", gen, leader, {leader: b"L", follower: b"F"})
    t_join = h.join("g", version=3)  # a newcomer: rebalance before the record is durable
    assert h.answer(t_follower).error_code == Err.REBALANCE_IN_PROGRESS
    assert h.answer(t_leader).error_code == Err.REBALANCE_IN_PROGRESS
    h.flush()
    assert h.group("g").state is S.PREPARING_REBALANCE  # the late write changes nothing
    assert h.answer(t_join) is None


def test_a_member_that_does_not_sync_in_time_is_removed_in_stable() -> None:
    h = Harness()
    (leader, follower), gen = _completing(h)
    h.sync("g", gen, leader, {leader: b"L", follower: b"F"})
    assert h.group("g").state is S.STABLE
    # The follower heartbeats but never syncs: the rebalance timeout after the join
    # completed, it is dropped and the group rebalances.
    for _ in range(REBALANCE_MS // 5000 - 1):
        h.advance(5000)
        assert h.heartbeat_code("g", gen, leader) == Err.NONE
        assert h.heartbeat_code("g", gen, follower) == Err.NONE
    h.advance(4999)
    assert follower in h.group("g").members
    h.advance(1)
    assert set(h.group("g").members) == {leader}
    assert h.group("g").state is S.PREPARING_REBALANCE


def test_sync_timeout_in_completing_rebalance_removes_the_missing_members() -> None:
    h = Harness()
    (leader, follower), gen = _completing(h)
    t_follower = h.sync("g", gen, follower)
    for _ in range(REBALANCE_MS // 5000 - 1):  # alive, but the leader never syncs
        h.advance(5000)
        assert h.heartbeat_code("g", gen, leader) == Err.NONE
    h.advance(5000)
    assert h.answer(t_follower).error_code == Err.REBALANCE_IN_PROGRESS
    assert set(h.group("g").members) == {follower}
    assert h.group("g").state is S.PREPARING_REBALANCE


# -- Heartbeat --------------------------------------------------------------------------


def test_heartbeat_answers_in_every_state() -> None:
    h = Harness()
    assert h.heartbeat_code("nope", 0, "m") == Err.UNKNOWN_MEMBER_ID
    h.commit("simple", {("t", 0): 1})
    assert h.heartbeat_code("simple", 0, "m") == Err.UNKNOWN_MEMBER_ID  # Empty
    (leader, follower), gen = _completing(h)
    # CompletingRebalance: fine (Kafka 3.x: a member heartbeats once it has its join answer).
    assert h.heartbeat_code("g", gen, follower) == Err.NONE
    assert h.heartbeat_code("g", gen, "stranger") == Err.UNKNOWN_MEMBER_ID
    assert h.heartbeat_code("g", gen + 1, follower) == Err.ILLEGAL_GENERATION
    h.sync("g", gen, leader, {})
    assert h.group("g").state is S.STABLE
    assert h.heartbeat_code("g", gen, follower) == Err.NONE
    assert h.heartbeat_code("g", gen - 1, follower) == Err.ILLEGAL_GENERATION
    h.join("g", leader)
    assert h.heartbeat_code("g", gen, follower) == Err.REBALANCE_IN_PROGRESS
    # Everyone leaves: Empty, and a heartbeat is from an unknown member.
    h.leave("g", leader)
    h.leave("g", follower)
    assert h.group("g").state is S.EMPTY
    assert h.heartbeat_code("g", gen + 1, follower) == Err.UNKNOWN_MEMBER_ID


def test_heartbeat_fenced_instance() -> None:
    h = Harness()
    (member,), gen = h.form("g", 1, instances=["i1"])
    assert h.heartbeat_code("g", gen, member, instance="i1") == Err.NONE
    assert h.heartbeat_code("g", gen, "other", instance="i1") == Err.FENCED_INSTANCE_ID
    assert h.heartbeat_code("g", gen, member, instance="i2") == Err.UNKNOWN_MEMBER_ID
    # Before v3 there is no instance id on the wire: only the member id counts.
    assert h.heartbeat_code("g", gen, member, instance="i2", version=2) == Err.NONE


def test_heartbeats_keep_a_member_and_silence_removes_it() -> None:
    h = Harness()
    (leader, follower), gen = h.form("g", 2)
    for _ in range(10):  # ten session timeouts, heartbeating every 3 s
        for _ in range(3):
            h.advance(3000)
            assert h.heartbeat_code("g", gen, leader) == Err.NONE
            assert h.heartbeat_code("g", gen, follower) == Err.NONE
    assert h.group("g").state is S.STABLE
    # The follower goes quiet: gone one session timeout after its last heartbeat.
    h.advance(3000)
    assert h.heartbeat_code("g", gen, leader) == Err.NONE
    h.advance(SESSION_MS - 3000 - 1)
    assert follower in h.group("g").members
    h.advance(1)
    assert follower not in h.group("g").members
    assert h.heartbeat_code("g", gen, leader) == Err.REBALANCE_IN_PROGRESS
    token = h.join("g", leader)
    response = h.answer(token)  # the only member rejoined: complete at once
    assert response.generation_id == gen + 1 and response.members[0].member_id == leader


def test_session_expiry_during_preparing_rebalance_completes_the_join() -> None:
    h = Harness()
    (leader, _follower), gen = h.form("g", 2)
    token = h.join("g", leader)
    assert h.answer(token) is None
    h.advance(SESSION_MS)  # the follower neither heartbeats nor rejoins
    response = h.answer(token)
    assert response is not None and response.generation_id == gen + 1
    assert set(h.group("g").members) == {leader}


# -- LeaveGroup -------------------------------------------------------------------------


def test_leave_v0_to_v2_single_member() -> None:
    h = Harness()
    assert h.answer(h.leave("nope", "m", version=0)).error_code == Err.UNKNOWN_MEMBER_ID
    (leader, follower), _gen = h.form("g", 2)
    assert h.answer(h.leave("g", "stranger", version=2)).error_code == Err.UNKNOWN_MEMBER_ID
    response = h.answer(h.leave("g", follower, version=0))
    assert response.error_code == Err.NONE
    assert set(h.group("g").members) == {leader}
    assert h.group("g").state is S.PREPARING_REBALANCE


def test_leave_v3_batch_with_per_member_errors() -> None:
    h = Harness()
    assert h.answer(h.leave("nope", version=3, members=[("m", None)])).error_code == \
        Err.UNKNOWN_MEMBER_ID
    (_m1, m2, m3), _gen = h.form("g", 3, instances=["a", "b", None])
    response = h.answer(h.leave("g", version=3, members=[
        ("", "a"),           # by instance id only (admin removeMembersFromConsumerGroup)
        (m2, "b"),           # by member and instance id
        ("stale", "b"),      # a stale id for an instance: fenced... b is gone by now
        ("", "zzz"),         # unknown instance
        ("nobody", None),    # unknown member
    ]))
    assert response.error_code == Err.NONE
    codes = [(r.member_id, r.group_instance_id, r.error_code) for r in response.members]
    assert codes == [("", "a", Err.NONE), (m2, "b", Err.NONE),
                     ("stale", "b", Err.UNKNOWN_MEMBER_ID), ("", "zzz", Err.UNKNOWN_MEMBER_ID),
                     ("nobody", None, Err.UNKNOWN_MEMBER_ID)]
    assert set(h.group("g").members) == {m3}
    fenced = h.answer(h.leave("g", version=3, members=[("stale", None)]))
    assert fenced.members[0].error_code == Err.UNKNOWN_MEMBER_ID


def test_leave_fenced_instance() -> None:
    h = Harness()
    (member,), _gen = h.form("g", 1, instances=["i"])
    response = h.answer(h.leave("g", version=3, members=[("stale", "i")]))
    assert response.members[0].error_code == Err.FENCED_INSTANCE_ID
    assert member in h.group("g").members


def test_a_member_leaving_with_a_parked_join_gets_unknown_member_id() -> None:
    h = Harness()
    (a, b, c), gen = h.form("g", 3)
    t_a = h.join("g", a)
    t_b = h.join("g", b)
    assert h.answer(h.leave("g", b)).error_code == Err.NONE
    assert h.answer(t_b).error_code == Err.UNKNOWN_MEMBER_ID
    assert h.answer(t_a) is None
    h.leave("g", c)  # everyone left has rejoined now
    assert h.answer(t_a).generation_id == gen + 1
    assert set(h.group("g").members) == {a}


def test_the_last_member_leaving_empties_the_group_and_writes_it() -> None:
    h = Harness()
    (a,), gen = h.form("g", 1)
    before = len(h.log[h.coord.partition_for("g")])
    assert h.answer(h.leave("g", a)).error_code == Err.NONE
    group = h.group("g")
    assert group.state is S.EMPTY and group.generation_id == gen + 1
    assert group.protocol_type == "consumer" and group.protocol_name is None
    (key, value), = h.log[h.coord.partition_for("g")][before:]
    record = decode_record(key, value)
    assert isinstance(record, GroupRecord) and record.value is not None
    assert (record.value.generation, record.value.members, record.value.protocol) == (
        gen + 1, [], None)
    assert record.value.current_state_timestamp == h.now
    assert (S.PREPARING_REBALANCE, S.EMPTY) in [(b, a) for _g, b, a in h.transitions]


def test_a_pending_member_can_leave() -> None:
    h = Harness()
    (_a,), _gen = h.form("g", 1)
    pending = h.new_member_id("g")
    assert h.group("g").pending_members == {pending}
    assert h.answer(h.leave("g", pending)).error_code == Err.NONE
    assert h.group("g").pending_members == set()
    # Kafka counts it as a member that left, so a Stable group rebalances.
    assert h.group("g").state is S.PREPARING_REBALANCE


def test_requests_to_a_group_being_deleted() -> None:
    h = Harness(auto_persist=False)
    h.commit("g", {("t", 0): 1})
    h.flush()
    h.delete_groups("g")
    assert h.group("g").state is S.DEAD
    assert h.heartbeat_code("g", 0, "m") == Err.COORDINATOR_NOT_AVAILABLE
    assert h.answer(h.sync("g", 0, "m")).error_code == Err.COORDINATOR_NOT_AVAILABLE
    assert h.answer(h.leave("g", "m")).error_code == Err.COORDINATOR_NOT_AVAILABLE
    assert h.answer(h.delete_groups("g")).results[0].error_code == Err.GROUP_ID_NOT_FOUND
    assert h.answer(h.offset_delete("g", {"t": [0]})).error_code == Err.GROUP_ID_NOT_FOUND
    h.flush()
    assert h.coord.group("g") is None
    assert h.heartbeat_code("g", 0, "m") == Err.UNKNOWN_MEMBER_ID
