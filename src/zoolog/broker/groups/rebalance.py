"""The rebalance machinery of classic groups: the join phase (initial delay, completion
when every member has rejoined or the rebalance timeout passes), the sync phase (the
leader's assignment handed to every parked SyncGroup, members that never synced removed),
and member removal that answers a member's parked requests.

Owns `Rebalance` (part of `GroupCoordinator`) and the JoinGroup/SyncGroup answers it
builds. Every legal group transition is `ClassicGroup`'s (see `group.py`); this module
only decides when. Never: parse requests (see `membership.py`), I/O.
"""

from __future__ import annotations

from zoolog.protocol.kafka._generated.join_group import JoinGroupResponse
from zoolog.protocol.kafka._generated.sync_group import SyncGroupResponse
from zoolog.protocol.kafka.errors import Err

from .group import ClassicGroup, GroupState, Member
from .state import CoordinatorState
from .timers import _JOIN, _SYNC, _at_least_1, _group_key, _heartbeat_key, _JoinTimer, _SyncTimer

_S = GroupState


class Rebalance(CoordinatorState):
    """Join and sync phases, and removing members (part of `GroupCoordinator`)."""

    def _maybe_prepare_rebalance_or_complete_join(self, group: ClassicGroup,
                                                  now_ms: int) -> None:
        if group.can_rebalance():
            self._prepare_rebalance(group, now_ms)
        else:
            self._maybe_complete_join_phase(group, now_ms)

    def _prepare_rebalance(self, group: ClassicGroup, now_ms: int) -> None:
        if group.is_in(_S.COMPLETING_REBALANCE):
            for member in group.members.values():
                member.assignment = b""
            self._propagate_assignment(group, Err.REBALANCE_IN_PROGRESS, now_ms)
        group.clear_pending_sync()
        self._timers.cancel(_group_key(_SYNC, group))
        initial = group.is_in(_S.EMPTY)
        if initial:
            delay_ms = self.config.group_initial_rebalance_delay_ms
            remaining_ms = max(group.rebalance_timeout_ms() - delay_ms, 0)
            self._timers.schedule(_group_key(_JOIN, group), now_ms + _at_least_1(delay_ms),
                                  _JoinTimer(group, True, delay_ms, remaining_ms))
        group.transition_to(_S.PREPARING_REBALANCE, now_ms)
        if not initial:
            if group.has_all_members_joined():
                self._complete_join(group, now_ms)
            else:
                self._timers.schedule(_group_key(_JOIN, group),
                                      now_ms + _at_least_1(group.rebalance_timeout_ms()),
                                      _JoinTimer(group, False))

    def _maybe_complete_join_phase(self, group: ClassicGroup, now_ms: int) -> None:
        if (group.is_in(_S.PREPARING_REBALANCE) and group.previous_state is not _S.EMPTY
                and group.has_all_members_joined()):
            self._complete_join(group, now_ms)

    def _on_join_timer(self, timer: _JoinTimer, now_ms: int) -> None:
        group = timer.group
        if self._groups.get(group.group_id) is not group:
            return
        if timer.initial and group.new_member_added and timer.remaining_ms != 0:
            # InitialDelayedJoin: a member joined during the delay; wait another delay,
            # never longer than the rebalance timeout in all.
            group.new_member_added = False
            delay_ms = min(self.config.group_initial_rebalance_delay_ms, timer.remaining_ms)
            remaining_ms = max(timer.remaining_ms - timer.delay_ms, 0)
            self._timers.schedule(_group_key(_JOIN, group), now_ms + _at_least_1(delay_ms),
                                  _JoinTimer(group, True, delay_ms, remaining_ms))
            return
        self._complete_join(group, now_ms)

    def _complete_join(self, group: ClassicGroup, now_ms: int) -> None:
        """Kafka's `completeClassicGroupJoin`."""
        self._timers.cancel(_group_key(_JOIN, group))
        if not group.is_in(_S.PREPARING_REBALANCE):
            return
        for member in group.not_yet_rejoined():
            if not member.is_static:
                self._remove_member(group, member)
        if not group.maybe_elect_new_joined_leader() and group.members:
            # Only static members are left and none rejoined: wait another rebalance
            # timeout (their sessions will remove them).
            self._timers.schedule(_group_key(_JOIN, group),
                                  now_ms + _at_least_1(group.rebalance_timeout_ms()),
                                  _JoinTimer(group, False))
            return
        group.init_next_generation(now_ms)
        if group.is_in(_S.EMPTY):
            group.persisted = True
            self._emit_persist(group.group_id, [self._group_metadata_record(group, {})], [])
            return
        for member in group.members.values():
            waiter = group.take_join_waiter(member)
            if waiter is not None:
                members = (self._leader_members(group) if group.is_leader(member.member_id)
                           else [])
                self._reply(waiter.token, self._join_ok(group, member.member_id, waiter.version,
                                                        members, leader_id=group.leader_id))
            self._schedule_heartbeat(group, member, now_ms)
            member.is_new = False
            group.add_pending_sync(member.member_id)
        self._timers.schedule(_group_key(_SYNC, group),
                              now_ms + _at_least_1(group.rebalance_timeout_ms()),
                              _SyncTimer(group, group.generation_id))

    def _on_sync_timer(self, timer: _SyncTimer, now_ms: int) -> None:
        """Members that did not SyncGroup within the rebalance timeout leave; rebalance."""
        group = timer.group
        if self._groups.get(group.group_id) is not group:
            return
        if timer.generation_id != group.generation_id:
            return
        if group.state not in (_S.COMPLETING_REBALANCE, _S.STABLE):
            return
        missing = group.pending_sync_members()
        if not missing:
            return
        for member_id in missing:
            self._remove_member(group, group.member(member_id))
        self._prepare_rebalance(group, now_ms)

    def _propagate_assignment(self, group: ClassicGroup, error: int, now_ms: int) -> None:
        for member in group.members.values():
            waiter = member.sync_waiter
            if waiter is None:
                continue
            member.sync_waiter = None
            self._reply(waiter.token, self._sync_response(group, member, error, waiter.version))
            self._schedule_heartbeat(group, member, now_ms)

    def _remove_member(self, group: ClassicGroup, member: Member) -> None:
        """Drop a member, answering its parked requests UNKNOWN_MEMBER_ID (so that a live
        client rejoins)."""
        waiter = group.take_join_waiter(member)
        if waiter is not None:
            self._reply(waiter.token, _join_error("", Err.UNKNOWN_MEMBER_ID, waiter.version))
        if member.sync_waiter is not None:
            self._reply(member.sync_waiter.token,
                        SyncGroupResponse(error_code=Err.UNKNOWN_MEMBER_ID))
            member.sync_waiter = None
        self._timers.cancel(_heartbeat_key(group, member.member_id))
        group.remove(member.member_id)

    def _drop_pending_member(self, group: ClassicGroup, member_id: str,
                             now_ms: int | None) -> None:
        group.remove(member_id)
        self._timers.cancel(_heartbeat_key(group, member_id))
        if (now_ms is not None and group.is_in(_S.PREPARING_REBALANCE)
                and group.has_all_members_joined()):
            self._complete_join(group, now_ms)

    def _leader_members(
        self, group: ClassicGroup
    ) -> list[JoinGroupResponse.JoinGroupResponseMember]:
        return [JoinGroupResponse.JoinGroupResponseMember(
            member_id=m.member_id, group_instance_id=m.group_instance_id,
            metadata=m.metadata(group.protocol_name)) for m in group.members.values()]

    def _join_ok(self, group: ClassicGroup, member_id: str, version: int,
                 members: list[JoinGroupResponse.JoinGroupResponseMember], *,
                 leader_id: str | None, skip_assignment: bool = False) -> JoinGroupResponse:
        response = JoinGroupResponse(
            error_code=Err.NONE,
            generation_id=group.generation_id,
            protocol_type=group.protocol_type,
            protocol_name=_protocol_name(group.protocol_name, version),
            leader=leader_id or "",
            member_id=member_id,
            members=members,
        )
        if version >= 9:
            response.skip_assignment = skip_assignment
        return response

    def _sync_response(self, group: ClassicGroup, member: Member, error: int,
                       version: int) -> SyncGroupResponse:
        ok = error == Err.NONE
        return SyncGroupResponse(
            error_code=error,
            protocol_type=group.protocol_type if ok else None,
            protocol_name=group.protocol_name if ok else None,
            assignment=member.assignment,
        )


def _protocol_name(name: str | None, version: int) -> str | None:
    """ProtocolName is nullable from JoinGroup v7 only."""
    return name if name is not None or version >= 7 else ""


def _join_error(member_id: str, error: int, version: int) -> JoinGroupResponse:
    return JoinGroupResponse(error_code=error, member_id=member_id,
                             protocol_name=_protocol_name(None, version))
