"""Restart: the records the coordinator persisted, loaded into a fresh coordinator, give the
same offsets and described groups; restored members keep their generation and static
members rejoin without a rebalance."""

from __future__ import annotations

from random import Random
from typing import Any

from tests.broker.groups.harness import SESSION_MS, Harness, subscription

from zoolog.broker.groups import GroupConfig, GroupCoordinator, GroupState
from zoolog.protocol.kafka.errors import Err

S = GroupState


def _restart(h: Harness) -> Harness:
    """A new coordinator that loads every partition h wrote, `SESSION_MS // 2` later."""
    fresh = Harness(h.config, seed=99)
    fresh.now = h.now + SESSION_MS // 2
    for partition, records in sorted(h.log.items()):
        fresh.coord.load(partition, iter(records), fresh.now)
    assert fresh.coord.take_output() == []
    assert fresh.coord.loaded_partitions == frozenset(h.log)
    return fresh


def _snapshot(h: Harness, group_ids: list[str]) -> tuple[Any, ...]:
    described = [(g.group_id, g.group_state, g.protocol_type, g.protocol_data,
                  sorted((m.member_id, m.group_instance_id, m.client_id, m.client_host,
                          m.member_metadata, m.member_assignment) for m in g.members))
                 for g in h.describe(*group_ids)]
    offsets = [(gid, [(t.name, [(p.partition_index, p.committed_offset,
                                 p.committed_leader_epoch, p.metadata)
                                for p in t.partitions]) for t in h.fetch(gid, None).topics])
               for gid in group_ids]
    listed = sorted((g.group_id, g.group_state, g.protocol_type) for g in h.list_groups())
    generations = {gid: h.coord.group(gid).generation_id  # type: ignore[union-attr]
                   for gid in group_ids if h.coord.group(gid) is not None}
    return described, offsets, listed, generations


def test_replaying_the_persisted_records_gives_the_same_state() -> None:
    h = Harness()
    (a, b), gen_g = h.form("g", 2, instances=["ia", None])
    h.commit("g", {("t", 0): (10, "meta\x00"), ("t", 1): 11}, generation=gen_g, member_id=a,
             leader_epoch=3)
    h.commit("g", {("t", 0): 12}, generation=gen_g, member_id=b)  # overwrites
    (c,), gen_h = h.form("h", 1, protocols=[("roundrobin", subscription("u"))])
    h.commit("h", {("u", 0): 1, ("v", 0): 2}, generation=gen_h, member_id=c)
    h.answer(h.offset_delete("h", {"v": [0]}))
    h.leave("h", c)  # h becomes Empty with a newer generation
    h.commit("simple", {("x", 3): 30}, version=2, retention_ms=60_000)
    h.commit("doomed", {("y", 0): 1})
    h.delete_groups("doomed")
    # A static member was replaced without a rebalance: the new id is what was written.
    h.answer(h.join("g", instance="ia"))
    assert h.group("g").state is S.STABLE
    ids = ["g", "h", "simple", "doomed"]
    before = _snapshot(h, ids)
    after = _snapshot(_restart(h), ids)
    assert after == before
    described = {d[0]: d[1] for d in after[0]}
    assert described == {"g": "Stable", "h": "Empty", "simple": "Empty", "doomed": "Dead"}


def test_restored_members_keep_their_generation_then_expire() -> None:
    h = Harness()
    (a, b), gen = h.form("g", 2)
    r = _restart(h)
    group = r.group("g")
    assert group.state is S.STABLE and group.generation_id == gen and group.leader_id == a
    assert r.heartbeat_code("g", gen, a) == Err.NONE
    assert r.answer(r.sync("g", gen, b)).error_code == Err.NONE
    # a keeps heartbeating; b's session (from the load, then its sync) runs out.
    for _ in range(4):
        r.advance(3000)
        r.heartbeat("g", gen, a)
    assert set(r.group("g").members) == {a}
    assert r.heartbeat_code("g", gen, a) == Err.REBALANCE_IN_PROGRESS


def test_a_static_member_rejoins_a_restarted_broker_without_a_rebalance() -> None:
    h = Harness()
    both = [("range", subscription("t", version=1)), ("cooperative-sticky",
                                                      subscription("t", version=1))]
    (a, _b), gen = h.form("g", 2, instances=["ia", "ib"], protocols=both)
    r = _restart(h)
    # The record kept only the chosen protocol; the member comes back with all of them.
    response = r.answer(r.join("g", instance="ib", protocols=both))
    assert response.error_code == Err.NONE and response.generation_id == gen
    assert r.group("g").state is S.STABLE
    assert r.answer(r.sync("g", gen, response.member_id, instance="ib")).error_code == Err.NONE
    assert r.heartbeat_code("g", gen, a, instance="ia") == Err.NONE


def test_load_keeps_the_last_record_of_each_key() -> None:
    h = Harness()
    h.commit("s", {("t", 0): 1})
    h.commit("s", {("t", 0): 2})
    h.commit("s", {("t", 1): 3})
    h.answer(h.offset_delete("s", {"t": [1]}))
    r = _restart(h)
    assert [(t.name, [(p.partition_index, p.committed_offset) for p in t.partitions])
            for t in r.fetch("s", None).topics] == [("t", [(0, 2)])]


def test_a_coordinator_with_nothing_to_load() -> None:
    coordinator = GroupCoordinator(GroupConfig(), Random(1))
    coordinator.load(0, [], 0)
    assert coordinator.groups() == [] and coordinator.take_output() == []
    assert coordinator.next_deadline_ms() == GroupConfig().offsets_retention_check_interval_ms


def test_offsets_that_outlive_their_group_record_get_a_simple_group() -> None:
    from zoolog.broker.groups.records import (
        group_metadata_key,
        offset_commit_key,
        offset_commit_value,
    )

    coordinator = GroupCoordinator(GroupConfig(), Random(1))
    coordinator.load(0, [(offset_commit_key("g", "t", 0), offset_commit_value(5, -1, "", 1, None)),
                         (group_metadata_key("g"), None)], 10)
    group = coordinator.group("g")
    assert group is not None and group.state is S.EMPTY and group.protocol_type is None
    assert coordinator.offsets.get("g", "t", 0) is not None


def test_next_deadline_is_the_earliest_timer() -> None:
    h = Harness()
    assert h.coord.next_deadline_ms() is None  # nothing has happened yet
    h.new_member_id("g", session_ms=7000)
    assert h.coord.next_deadline_ms() == h.now + 7000
    h.advance(7000)
    assert h.coord.next_deadline_ms() == h.now - 7000 + h.config.offsets_retention_check_interval_ms
