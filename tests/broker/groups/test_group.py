"""ClassicGroup on its own: the transition table is enforced, the protocol vote, member
bookkeeping."""

from __future__ import annotations

import pytest

from zoolog.broker.groups import VALID_PREVIOUS, ClassicGroup, GroupState, Member, Parked

S = GroupState


def _member(member_id: str, protocols: list[str], instance: str | None = None) -> Member:
    return Member(member_id, instance, "c", "h", 1000, 1000, "consumer",
                  [(p, b"") for p in protocols])


def test_the_transition_table_is_kafkas() -> None:
    legal = {(before, after) for after, befores in VALID_PREVIOUS.items() for before in befores}
    assert legal == {
        (S.PREPARING_REBALANCE, S.EMPTY),
        (S.STABLE, S.PREPARING_REBALANCE), (S.COMPLETING_REBALANCE, S.PREPARING_REBALANCE),
        (S.EMPTY, S.PREPARING_REBALANCE),
        (S.PREPARING_REBALANCE, S.COMPLETING_REBALANCE),
        (S.COMPLETING_REBALANCE, S.STABLE),
        (S.STABLE, S.DEAD), (S.PREPARING_REBALANCE, S.DEAD), (S.COMPLETING_REBALANCE, S.DEAD),
        (S.EMPTY, S.DEAD), (S.DEAD, S.DEAD),
    }


@pytest.mark.parametrize("target", [S.STABLE, S.COMPLETING_REBALANCE, S.EMPTY])
def test_an_illegal_transition_is_refused(target: GroupState) -> None:
    group = ClassicGroup("g", 0)
    with pytest.raises(AssertionError, match="illegal transition"):
        group.transition_to(target, 1)
    assert group.state is S.EMPTY


def test_vote_and_ties() -> None:
    group = ClassicGroup("g", 0)
    group.add(_member("a", ["x", "y"]))
    group.transition_to(S.PREPARING_REBALANCE, 1)
    group.add(_member("b", ["y", "x"]))
    assert group.select_protocol() == "x"  # one vote each: the first to get it wins
    group.add(_member("c", ["y", "x", "z"]))
    assert group.select_protocol() == "y"
    assert group.supports_protocols("consumer", {"z"}) is False
    assert group.supports_protocols("consumer", {"z", "x"}) is True
    assert group.supports_protocols("other", {"x"}) is False


def test_leader_moves_to_the_next_member_and_waiters_are_counted() -> None:
    group = ClassicGroup("g", 0)
    a = _member("a", ["x"], instance="ia")
    a.join_waiter = Parked(1, 5)
    group.add(a)
    group.add(_member("b", ["x"]))
    assert group.leader_id == "a" and group.awaiting_join_count == 1
    assert group.take_join_waiter(a) is not None and group.awaiting_join_count == 0
    group.remove("a")
    assert group.leader_id == "b" and group.static_members() == {}
    group.remove("b")
    assert group.leader_id is None
