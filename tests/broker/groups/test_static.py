"""Static membership (KIP-345, JoinGroup v5+): replacement without a rebalance, fencing of
the old member id everywhere, the leader handing over, rebalances where Kafka has them."""

from __future__ import annotations

from tests.broker.groups.harness import SESSION_MS, Harness, assignment, subscription

from zoolog.broker.groups import GroupRecord, GroupState, decode_record
from zoolog.protocol.kafka.errors import Err

S = GroupState


def test_static_rejoin_in_stable_replaces_the_member_without_a_rebalance() -> None:
    h = Harness(auto_persist=False)
    h.auto_persist = True
    (leader, old), gen = h.form("g", 2, instances=["a", "b"])
    transitions = len(h.transitions)
    h.auto_persist = False
    # "b" restarts: no LeaveGroup, a JoinGroup with its instance id and no member id. Its
    # subscription now differs (no owned partitions any more): still no rebalance.
    token = h.join("g", instance="b", protocols=[("range", subscription("t", version=1))])
    assert h.answer(token) is None  # waits for the GroupMetadata record with the new id
    (key, value), = h.pending[0].records
    record = decode_record(key, value)
    assert isinstance(record, GroupRecord) and record.value is not None
    new = next(m.member_id for m in record.value.members if m.group_instance_id == "b")
    assert new != old and new.startswith("b-")
    h.flush()
    response = h.answer(token)
    assert (response.error_code, response.generation_id, response.member_id) == (
        Err.NONE, gen, new)
    assert response.leader == leader and response.members == []
    group = h.group("g")
    assert group.state is S.STABLE and len(h.transitions) == transitions
    assert set(group.members) == {leader, new}
    # It keeps the old member's assignment, and the others are not disturbed.
    assert h.answer(h.sync("g", gen, new, instance="b")).assignment == assignment("t", 1)
    assert h.heartbeat_code("g", gen, leader, instance="a") == Err.NONE


def test_the_old_member_id_of_a_replaced_instance_is_fenced_everywhere() -> None:
    h = Harness()
    (_leader, old), gen = h.form("g", 2, instances=["a", "b"])
    h.answer(h.join("g", instance="b"))
    new = h.group("g").static_members()["b"]
    assert h.heartbeat_code("g", gen, old, instance="b") == Err.FENCED_INSTANCE_ID
    assert h.answer(h.join("g", old, instance="b")).error_code == Err.FENCED_INSTANCE_ID
    assert h.answer(h.sync("g", gen, old, instance="b")).error_code == Err.FENCED_INSTANCE_ID
    leave = h.answer(h.leave("g", version=3, members=[(old, "b")]))
    assert leave.members[0].error_code == Err.FENCED_INSTANCE_ID
    codes = h.commit_codes("g", {("t", 0): 1}, generation=gen, member_id=old, instance="b")
    assert codes == {("t", 0): Err.FENCED_INSTANCE_ID}
    codes = h.commit_codes("g", {("t", 0): 1}, generation=gen, member_id=new, instance="b")
    assert codes == {("t", 0): Err.NONE}


def test_a_replaced_leader_hands_leadership_to_the_new_member_id() -> None:
    for version, expect_members in ((9, True), (5, False)):
        h = Harness()
        (leader, _follower), gen = h.form("g", 2, instances=["a", "b"])
        response = h.answer(h.join("g", instance="a", version=version))
        new = response.member_id
        assert h.group("g").leader_id == new
        assert response.generation_id == gen and h.group("g").state is S.STABLE
        if expect_members:
            # KIP-814: the returning leader sees the members but must not reassign.
            assert response.leader == new and response.skip_assignment is True
            assert sorted(m.group_instance_id for m in response.members) == ["a", "b"]
        else:
            # Older clients get the old leader id, so they do not compute an assignment.
            assert response.leader == leader and response.members == []


def test_a_static_rejoin_that_changes_the_chosen_protocol_rebalances() -> None:
    h = Harness()
    both = [("range", b""), ("roundrobin", b"")]
    (a, _b), gen = h.form("g", 2, instances=["a", "b"], protocols=both)
    assert h.group("g").protocol_name == "range"
    token = h.join("g", instance="b", protocols=[("roundrobin", b"")])
    assert h.answer(token) is None
    assert h.group("g").state is S.PREPARING_REBALANCE
    t_a = h.join("g", a, instance="a", protocols=both)
    assert h.answer(t_a).protocol_name == h.answer(token).protocol_name == "roundrobin"
    assert h.answer(t_a).generation_id == gen + 1


def test_a_static_rejoin_in_completing_rebalance_rebalances() -> None:
    h = Harness()
    tokens = [h.join("g", instance=i) for i in ("a", "b")]
    h.settle(tokens)
    gen = h.answer(tokens[0]).generation_id
    old_b = h.group("g").static_members()["b"]
    parked = h.sync("g", gen, old_b, instance="b")
    token = h.join("g", instance="b")
    assert h.answer(parked).error_code == Err.FENCED_INSTANCE_ID
    assert h.group("g").state is S.PREPARING_REBALANCE
    assert h.answer(token) is None


def test_a_parked_join_of_a_replaced_instance_is_fenced() -> None:
    h = Harness()
    (a, b), gen = h.form("g", 2, instances=["a", "b"])
    t_old = h.join("g", b, instance="b", protocols=[("range", b"changed")])  # rebalance
    assert h.answer(t_old) is None
    t_new = h.join("g", instance="b")
    assert h.answer(t_old).error_code == Err.FENCED_INSTANCE_ID
    t_a = h.join("g", a, instance="a")
    assert h.answer(t_new).generation_id == h.answer(t_a).generation_id == gen + 1


def test_static_members_stay_through_a_rebalance_they_miss_until_their_session_ends() -> None:
    h = Harness()
    (a, b), gen = h.form("g", 2, instances=["a", "b"], rebalance_ms=6000)
    t_a = h.join("g", a, instance="a", rebalance_ms=6000, protocols=[("range", b"x")])
    h.advance(3000)
    assert h.heartbeat_code("g", gen, b, instance="b") == Err.REBALANCE_IN_PROGRESS
    h.advance(3000)  # the rebalance timeout: a dynamic member would be gone now
    response = h.answer(t_a)
    assert response.generation_id == gen + 1
    assert len(response.members) == 2  # b is still a member
    assert set(h.group("g").members) == {a, b}
    # a carries on; b's session runs out: it is removed and the group rebalances again.
    assert h.answer(h.sync("g", gen + 1, a, {a: b"A", b: b"B"}, instance="a")).assignment == b"A"
    for _ in range(SESSION_MS // 2000):
        h.advance(2000)
        h.heartbeat("g", gen + 1, a, instance="a")
    assert b not in h.group("g").members
    assert h.group("g").state is S.PREPARING_REBALANCE


def test_leave_by_instance_id_removes_a_static_member() -> None:
    h = Harness()
    (a, _b), _gen = h.form("g", 2, instances=["a", "b"])
    response = h.answer(h.leave("g", version=4, members=[("", "b")]))
    assert response.members[0].error_code == Err.NONE
    assert set(h.group("g").members) == {a}
    assert h.group("g").static_members() == {"a": a}
