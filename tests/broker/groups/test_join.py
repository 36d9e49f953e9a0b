"""JoinGroup transcripts: validation, member ids, protocol choice, the initial delay, the
join phase and its timeouts, rejoins in each state, group.max.size."""

from __future__ import annotations

import re

from tests.broker.groups.harness import (
    REBALANCE_MS,
    Harness,
    subscription,
)
from tests.broker.groups.harness import (
    START_MS as START,
)

from zoolog.broker.groups import GroupConfig, GroupState
from zoolog.protocol.kafka.errors import Err

S = GroupState
UUID_ID = re.compile(
    r"^client-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def test_empty_group_id_is_invalid() -> None:
    h = Harness()
    response = h.answer(h.join(""))
    assert response.error_code == Err.INVALID_GROUP_ID
    assert h.coord.groups() == []


def test_session_timeout_outside_the_configured_range() -> None:
    h = Harness(GroupConfig(group_min_session_timeout_ms=6000,
                            group_max_session_timeout_ms=300_000))
    for session_ms in (5999, 300_001):
        response = h.answer(h.join("g", session_ms=session_ms))
        assert response.error_code == Err.INVALID_SESSION_TIMEOUT
    assert h.answer(h.join("g", session_ms=6000)).error_code == Err.MEMBER_ID_REQUIRED
    assert h.answer(h.join("g", session_ms=300_000)).error_code == Err.MEMBER_ID_REQUIRED


def test_known_member_id_for_an_unknown_group() -> None:
    h = Harness()
    response = h.answer(h.join("g", "client-x"))
    assert response.error_code == Err.UNKNOWN_MEMBER_ID
    assert response.member_id == "client-x"


def test_v4_new_member_gets_member_id_required_then_joins() -> None:
    h = Harness()
    first = h.answer(h.join("g", version=4))
    assert first.error_code == Err.MEMBER_ID_REQUIRED
    assert UUID_ID.match(first.member_id), first.member_id
    group = h.group("g")
    assert group.state is S.EMPTY
    assert group.pending_members == {first.member_id}
    token = h.join("g", first.member_id, version=4)
    assert h.answer(token) is None  # parked for the initial delay
    assert group.state is S.PREPARING_REBALANCE and group.pending_members == set()
    h.advance(2999)
    assert h.answer(token) is None
    h.advance(1)
    response = h.answer(token)
    assert response.error_code == Err.NONE
    assert response.generation_id == 1
    assert response.member_id == response.leader == first.member_id
    assert response.protocol_name == "range"
    assert [(m.member_id, m.metadata) for m in response.members] == [
        (first.member_id, subscription("t"))]
    assert group.state is S.COMPLETING_REBALANCE


def test_member_ids_are_distinct_and_come_from_the_injected_random() -> None:
    ids = [Harness(seed=3).new_member_id("g") for _ in range(2)]
    assert ids[0] == ids[1]  # same seed, same id
    h = Harness(seed=3)
    assert len({h.new_member_id("g") for _ in range(5)}) == 5


def test_pending_member_expires_after_its_session_timeout() -> None:
    h = Harness()
    member_id = h.new_member_id("g", session_ms=7000)
    h.advance(6999)
    assert h.group("g").pending_members == {member_id}
    h.advance(1)
    assert h.group("g").pending_members == set()
    # It comes back too late: a known member id the group no longer knows.
    assert h.answer(h.join("g", member_id)).error_code == Err.UNKNOWN_MEMBER_ID


def test_v3_joins_without_member_id_required() -> None:
    h = Harness()
    token = h.join("g", version=3)
    h.advance(3000)
    response = h.answer(token)
    assert response.error_code == Err.NONE and UUID_ID.match(response.member_id)
    assert h.group("g").pending_members == set()


def test_v0_rebalance_timeout_is_the_session_timeout() -> None:
    h = Harness()
    token = h.join("g", version=0, session_ms=12_000)
    h.advance(3000)
    member_id = h.answer(token).member_id
    assert h.group("g").member(member_id).rebalance_timeout_ms == 12_000


def test_inconsistent_protocols() -> None:
    h = Harness()
    # An Empty group takes any type and protocols, but not none.
    assert h.answer(h.join("g", protocol_type="")).error_code == Err.INCONSISTENT_GROUP_PROTOCOL
    assert h.answer(h.join("g", protocols=[])).error_code == Err.INCONSISTENT_GROUP_PROTOCOL
    members, _gen = h.form("g", 1)
    # Another protocol type, or no protocol in common with the group.
    response = h.answer(h.join("g", protocol_type="connect", version=3))
    assert response.error_code == Err.INCONSISTENT_GROUP_PROTOCOL and response.member_id == ""
    response = h.answer(h.join("g", protocols=[("roundrobin", b"")], version=3))
    assert response.error_code == Err.INCONSISTENT_GROUP_PROTOCOL
    response = h.answer(h.join("g", members[0], protocols=[("roundrobin", b"")]))
    assert response.error_code == Err.INCONSISTENT_GROUP_PROTOCOL
    assert response.member_id == members[0]
    assert h.group("g").state is S.STABLE


def test_protocol_is_the_one_most_members_prefer_among_those_all_support() -> None:
    h = Harness()
    prefs = [
        [("sticky", b"1"), ("range", b"1"), ("roundrobin", b"1")],
        [("roundrobin", b"2"), ("range", b"2"), ("sticky", b"2")],
        [("roundrobin", b"3"), ("sticky", b"3")],  # no range: range is no candidate
    ]
    tokens = [h.join("g", protocols=p, version=3) for p in prefs]
    h.settle(tokens)
    responses = [h.answer(t) for t in tokens]
    assert {r.protocol_name for r in responses} == {"roundrobin"}
    leader = next(r for r in responses if r.members)
    # The leader sees every member's metadata for the chosen protocol.
    assert sorted(m.metadata for m in leader.members) == [b"1", b"2", b"3"]


def test_initial_delay_is_extended_by_new_joiners_up_to_the_rebalance_timeout() -> None:
    h = Harness()  # delay 3000
    t1 = h.join("g", version=3, rebalance_ms=10_000)
    h.advance(2000)
    t2 = h.join("g", version=3, rebalance_ms=10_000)
    h.advance(1000)  # t=3000: a member came during the delay -> one more delay
    assert h.answer(t1) is None and h.answer(t2) is None
    h.advance(2999)
    assert h.answer(t1) is None
    h.advance(1)  # t=6000, nobody new: complete
    assert h.answer(t1).error_code == h.answer(t2).error_code == Err.NONE


def test_initial_delay_never_exceeds_the_rebalance_timeout() -> None:
    h = Harness()  # delay 3000, rebalance timeout 7000: delays of 3000, 3000, then 1000
    first = h.join("g", version=3, rebalance_ms=7000)
    for at in (2900, 5800, 6900):
        h.advance(at - (h.now - START))
        h.join("g", version=3, rebalance_ms=7000)
    h.advance(7000 - 1 - (h.now - START))
    assert h.answer(first) is None
    h.advance(1)
    assert h.answer(first).error_code == Err.NONE
    assert len(h.group("g").members) == 4


def test_rebalance_completes_when_every_known_member_rejoined() -> None:
    h = Harness()
    members, gen = h.form("g", 2)
    leader, follower = members
    t_leader = h.join("g", leader)  # the leader rejoins: a rebalance
    assert h.group("g").state is S.PREPARING_REBALANCE and h.answer(t_leader) is None
    assert h.heartbeat_code("g", gen, follower) == Err.REBALANCE_IN_PROGRESS
    t_follower = h.join("g", follower)
    # No initial delay outside the first rebalance: done at once.
    r_leader, r_follower = h.answer(t_leader), h.answer(t_follower)
    assert r_leader.generation_id == r_follower.generation_id == gen + 1
    assert r_leader.leader == leader
    assert len(r_leader.members) == 2 and r_follower.members == []


def test_members_that_do_not_rejoin_are_removed_at_the_rebalance_timeout() -> None:
    h = Harness()
    members, gen = h.form("g", 3)
    leader = members[0]
    # A new member joins a Stable group; only it and member 2 come back, the leader not.
    newcomer = h.new_member_id("g")
    t_new = h.join("g", newcomer, rebalance_ms=5000)
    t_two = h.join("g", members[2])
    for _ in range(REBALANCE_MS // 5000 - 1):
        h.advance(5000)
        for m in members[:2]:  # alive, but busy: they do not rejoin
            assert h.heartbeat_code("g", gen, m) == Err.REBALANCE_IN_PROGRESS
    h.advance(4999)
    assert h.answer(t_new) is None
    h.advance(1)
    r_new, r_two = h.answer(t_new), h.answer(t_two)
    assert r_new.generation_id == gen + 1
    group = h.group("g")
    assert set(group.members) == {newcomer, members[2]}
    assert r_new.leader == r_two.leader != leader  # the leader did not rejoin
    assert r_new.leader == members[2]  # the first member that did
    assert group.state is S.COMPLETING_REBALANCE


def test_leader_response_carries_instance_ids_followers_get_no_members() -> None:
    h = Harness()
    tokens = [h.join("g", instance="a"), h.join("g", instance="b")]
    h.settle(tokens)
    responses = [h.answer(t) for t in tokens]
    leader = next(r for r in responses if r.member_id == r.leader)
    follower = next(r for r in responses if r.member_id != r.leader)
    assert sorted((m.group_instance_id, m.metadata) for m in leader.members) == [
        ("a", subscription("t")), ("b", subscription("t"))]
    assert follower.members == []
    assert responses[0].member_id.startswith("a-")  # static ids start with the instance id


def test_rejoin_with_same_metadata_in_completing_rebalance_gets_the_current_generation() -> None:
    h = Harness()
    t1 = h.join("g", version=3)
    t2 = h.join("g", version=3)
    h.settle([t1, t2])
    r1, r2 = h.answer(t1), h.answer(t2)
    leader, follower = (r1, r2) if r1.member_id == r1.leader else (r2, r1)
    again = h.answer(h.join("g", follower.member_id))
    assert (again.error_code, again.generation_id, again.members) == (Err.NONE, 1, [])
    again = h.answer(h.join("g", leader.member_id))
    assert again.generation_id == 1 and len(again.members) == 2
    assert h.group("g").state is S.COMPLETING_REBALANCE
    # Changed metadata: a new rebalance.
    token = h.join("g", follower.member_id, protocols=[("range", subscription("t", "u"))])
    assert h.answer(token) is None
    assert h.group("g").state is S.PREPARING_REBALANCE


def test_rejoins_in_stable() -> None:
    h = Harness()
    members, gen = h.form("g", 2)
    leader, follower = members
    same = h.answer(h.join("g", follower))
    assert (same.error_code, same.generation_id, same.leader, same.members) == (
        Err.NONE, gen, leader, [])
    assert h.group("g").state is S.STABLE
    # A follower with new metadata starts a rebalance.
    token = h.join("g", follower, protocols=[("range", subscription("t", "u"))])
    assert h.answer(token) is None and h.group("g").state is S.PREPARING_REBALANCE
    t_leader = h.join("g", leader)
    assert h.answer(token).generation_id == h.answer(t_leader).generation_id == gen + 1


def test_a_join_resent_while_parked_answers_the_older_one() -> None:
    h = Harness()
    members, gen = h.form("g", 2)
    t_old = h.join("g", members[0])
    t_new = h.join("g", members[0])
    assert h.answer(t_old).error_code == Err.REBALANCE_IN_PROGRESS
    assert h.answer(t_new) is None
    t_other = h.join("g", members[1])
    assert h.answer(t_new).generation_id == h.answer(t_other).generation_id == gen + 1


def test_group_max_size() -> None:
    h = Harness(GroupConfig(group_max_size=2))
    members, _gen = h.form("g", 2)
    response = h.answer(h.join("g", version=3))
    assert response.error_code == Err.GROUP_MAX_SIZE_REACHED and response.member_id == ""
    assert h.answer(h.join("g")).error_code == Err.GROUP_MAX_SIZE_REACHED  # before any id
    assert h.group("g").state is S.STABLE and set(h.group("g").members) == set(members)
    # An Empty group hands out ids; the joins beyond the limit are refused when they come.
    h2 = Harness(GroupConfig(group_max_size=1))
    first, second = h2.new_member_id("h"), h2.new_member_id("h")
    t_first = h2.join("h", first)
    response = h2.answer(h2.join("h", second))
    assert response.error_code == Err.GROUP_MAX_SIZE_REACHED
    assert h2.group("h").pending_members == set()
    h2.settle([t_first])
    assert h2.answer(t_first).error_code == Err.NONE


def test_join_to_a_group_being_deleted_is_coordinator_not_available() -> None:
    h = Harness(auto_persist=False)
    h.commit("g", {("t", 0): 1})
    h.flush()
    h.delete_groups("g")
    assert h.group("g").state is S.DEAD
    assert h.answer(h.join("g")).error_code == Err.COORDINATOR_NOT_AVAILABLE
    h.flush()
    assert h.coord.group("g") is None
    assert h.answer(h.join("g")).error_code == Err.MEMBER_ID_REQUIRED


def test_new_member_join_timeout_removes_a_member_stuck_in_join() -> None:
    h = Harness(GroupConfig(group_new_member_join_timeout_ms=20_000))
    (old,), gen = h.form("g", 1, rebalance_ms=60_000)
    # A newcomer waits for the old member, which heartbeats but does not rejoin.
    newcomer = h.new_member_id("g")
    token = h.join("g", newcomer, rebalance_ms=60_000)
    for _ in range(3):
        h.advance(5000)
        assert h.heartbeat_code("g", gen, old) == Err.REBALANCE_IN_PROGRESS
    assert h.answer(token) is None
    h.advance(5000)  # 20 s: the newcomer's JoinGroup has waited too long
    response = h.answer(token)
    assert response.error_code == Err.UNKNOWN_MEMBER_ID
    assert set(h.group("g").members) == {old}


def test_a_pending_member_holds_the_join_phase_until_it_joins_or_expires() -> None:
    h = Harness()
    (leader, follower), gen = h.form("g", 2)
    pending = h.new_member_id("g", session_ms=7000)  # MEMBER_ID_REQUIRED, not yet back
    t_leader = h.join("g", leader)
    t_follower = h.join("g", follower)
    assert h.answer(t_leader) is None  # every known member rejoined, one pending is left
    for _ in range(3):
        h.advance(2000)
    h.advance(999)
    assert h.answer(t_leader) is None
    h.advance(1)  # 7 s: the pending member's session ran out
    assert h.answer(t_leader).generation_id == h.answer(t_follower).generation_id == gen + 1
    assert set(h.group("g").members) == {leader, follower}
    # And one that does come back is waited for and joins the same generation.
    h.sync("g", gen + 1, leader, {})
    h.sync("g", gen + 1, follower)
    assert h.group("g").state is GroupState.STABLE
    pending = h.new_member_id("g")
    t_leader = h.join("g", leader)
    t_follower = h.join("g", follower)
    assert h.answer(t_leader) is None
    t_pending = h.join("g", pending)
    assert {h.answer(t).generation_id for t in (t_leader, t_follower, t_pending)} == {gen + 2}
