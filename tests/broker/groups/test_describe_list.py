"""DescribeGroups and ListGroups as Kafka answers them (v0-5)."""

from __future__ import annotations

from tests.broker.groups.harness import Harness, assignment, subscription

from zoolog.broker.groups import GROUP_AUTHORIZED_OPERATIONS, GroupState

S = GroupState


def test_describe_a_stable_group() -> None:
    h = Harness()
    (leader, follower), _gen = h.form("g", 2, instances=["i1", None])
    (described,) = h.describe("g", version=4)
    assert (described.error_code, described.group_state, described.protocol_type,
            described.protocol_data) == (0, "Stable", "consumer", "range")
    got = {m.member_id: (m.group_instance_id, m.client_id, m.client_host, m.member_metadata,
                         m.member_assignment) for m in described.members}
    assert got == {
        leader: ("i1", "client", "/10.0.0.1", subscription("t"), assignment("t", 0)),
        follower: (None, "client", "/10.0.0.1", subscription("t"), assignment("t", 1)),
    }
    assert described.authorized_operations == -(2**31)


def test_describe_outside_stable_has_no_metadata_and_no_protocol() -> None:
    h = Harness()
    (leader, follower), _gen = h.form("g", 2)
    h.join("g", leader)  # PreparingRebalance
    (described,) = h.describe("g")
    assert (described.group_state, described.protocol_type, described.protocol_data) == (
        "PreparingRebalance", "consumer", "")
    # Kafka's describeNoMetadata: no metadata; the assignment of the last generation.
    assert {m.member_id: (m.member_metadata, m.member_assignment)
            for m in described.members} == {leader: (b"", assignment("t", 0)),
                                             follower: (b"", assignment("t", 1))}
    h.join("g", follower)
    (described,) = h.describe("g")
    assert described.group_state == "CompletingRebalance" and described.protocol_data == ""


def test_describe_unknown_empty_and_simple_groups() -> None:
    h = Harness()
    h.commit("simple", {("t", 0): 1})
    (member,), _gen = h.form("g", 1)
    h.leave("g", member)
    unknown, simple, empty = h.describe("nope", "simple", "g", version=0)
    assert (unknown.error_code, unknown.group_state, unknown.members) == (0, "Dead", [])
    assert (simple.group_state, simple.protocol_type, simple.protocol_data) == ("Empty", "", "")
    assert (empty.group_state, empty.protocol_type, empty.members) == ("Empty", "consumer", [])


def test_authorized_operations_only_when_asked_from_v3() -> None:
    h = Harness()
    h.commit("s", {("t", 0): 1})
    assert [g.authorized_operations for g in h.describe("s", "nope", version=3, ops=True)] == [
        GROUP_AUTHORIZED_OPERATIONS, GROUP_AUTHORIZED_OPERATIONS]
    assert GROUP_AUTHORIZED_OPERATIONS == 0b1_0100_1000  # READ(3), DELETE(6), DESCRIBE(8)
    assert h.describe("s", version=3)[0].authorized_operations == -(2**31)
    assert h.describe("s", version=2, ops=True)[0].authorized_operations == -(2**31)


def test_list_groups_with_filters() -> None:
    h = Harness()
    h.form("stable", 1)
    h.commit("simple", {("t", 0): 1})
    t = h.join("preparing", version=3)
    assert h.answer(t) is None
    everything = {(g.group_id, g.protocol_type, g.group_state, g.group_type)
                  for g in h.list_groups()}
    assert everything == {("stable", "consumer", "Stable", "classic"),
                          ("simple", "", "Empty", "classic"),
                          ("preparing", "consumer", "PreparingRebalance", "classic")}
    # v4 states filter, case-insensitive as Kafka.
    assert [g.group_id for g in h.list_groups(version=4, states=["STABLE", "empty"])] == [
        "stable", "simple"]
    assert h.list_groups(version=4, states=["dead"]) == []
    # Below v4 there is no filter on the wire.
    assert len(h.list_groups(version=3, states=["stable"])) == 3
    # v5 types filter: every group here is a classic one.
    assert len(h.list_groups(types=["Classic"])) == 3
    assert h.list_groups(types=["consumer"]) == []
    assert len(h.list_groups(types=["consumer", "classic"], states=["Empty"])) == 1
