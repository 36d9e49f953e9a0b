"""The membership requests of classic groups: JoinGroup (new, known, pending and static
members; group.max.size), SyncGroup, Heartbeat (and session expiry), LeaveGroup.

Owns `Membership` (part of `GroupCoordinator`): validating each request against the group
and answering it now or parking it for the rebalance (see `rebalance.py`). Every token gets
exactly one answer; a handler never raises for anything a client sends. Never: I/O,
randomness other than the injected `Random` (member ids).
"""

from __future__ import annotations

from dataclasses import dataclass

from zoolog.protocol.kafka._generated.heartbeat import HeartbeatRequest, HeartbeatResponse
from zoolog.protocol.kafka._generated.join_group import JoinGroupRequest
from zoolog.protocol.kafka._generated.leave_group import LeaveGroupRequest, LeaveGroupResponse
from zoolog.protocol.kafka._generated.sync_group import SyncGroupRequest, SyncGroupResponse
from zoolog.protocol.kafka.errors import Err

from .group import ClassicGroup, GroupState, Member, Parked
from .rebalance import Rebalance, _join_error
from .timers import _SYNC, _at_least_1, _group_key, _heartbeat_key

_S = GroupState


@dataclass(frozen=True, slots=True)
class _JoinArgs:
    """A JoinGroup with the version differences settled."""

    token: object
    version: int
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    protocol_type: str
    protocols: list[tuple[str, bytes]]


class Membership(Rebalance):
    """JoinGroup, SyncGroup, Heartbeat and LeaveGroup (part of `GroupCoordinator`)."""

    # -- JoinGroup ---------------------------------------------------------------------------

    def join_group(self, token: object, request: JoinGroupRequest, version: int,
                   client_id: str, client_host: str, now_ms: int) -> None:
        self._clock(now_ms)
        member_id = request.member_id
        cfg = self.config
        if not request.group_id:
            self._reply(token, _join_error(member_id, Err.INVALID_GROUP_ID, version))
            return
        if not (cfg.group_min_session_timeout_ms <= request.session_timeout_ms
                <= cfg.group_max_session_timeout_ms):
            self._reply(token, _join_error(member_id, Err.INVALID_SESSION_TIMEOUT, version))
            return
        join = _JoinArgs(
            token=token,
            version=version,
            group_instance_id=request.group_instance_id if version >= 5 else None,
            client_id=client_id,
            client_host=client_host,
            rebalance_timeout_ms=(request.rebalance_timeout_ms if version >= 1
                                  else request.session_timeout_ms),
            session_timeout_ms=request.session_timeout_ms,
            protocol_type=request.protocol_type,
            protocols=[(p.name, bytes(p.metadata)) for p in request.protocols],
        )
        is_unknown = member_id == ""
        group = self._groups.get(request.group_id)
        if group is None:
            if not is_unknown:
                self._reply(token, _join_error(member_id, Err.UNKNOWN_MEMBER_ID, version))
                return
            group = self._new_group(request.group_id, now_ms)
        if not self._accept_joining_member(group, member_id):
            # Kafka sheds the member (a group over capacity after group.max.size shrank).
            if group.has_member(member_id):
                self._remove_member(group, group.member(member_id))
                self._maybe_complete_join_phase(group, now_ms)
            elif group.is_pending_member(member_id):
                self._drop_pending_member(group, member_id, now_ms)
            self._reply(token, _join_error("", Err.GROUP_MAX_SIZE_REACHED, version))
        elif is_unknown:
            self._join_new_member(group, join, now_ms)
        else:
            self._join_existing_member(group, member_id, join, now_ms)

    def _accept_joining_member(self, group: ClassicGroup, member_id: str) -> bool:
        """Kafka's `acceptJoiningMember` (group.max.size)."""
        max_size = self.config.group_max_size
        if group.state in (_S.EMPTY, _S.DEAD):
            return True
        if group.state is _S.PREPARING_REBALANCE:
            return ((group.has_member(member_id) and group.member(member_id).is_awaiting_join)
                    or group.awaiting_join_count < max_size)
        return group.has_member(member_id) or len(group.members) < max_size

    def _join_new_member(self, group: ClassicGroup, join: _JoinArgs, now_ms: int) -> None:
        if group.is_in(_S.DEAD):
            self._reply(join.token, _join_error("", Err.COORDINATOR_NOT_AVAILABLE, join.version))
            return
        if not group.supports_protocols(join.protocol_type,
                                        ClassicGroup.protocol_names(join.protocols)):
            self._reply(join.token,
                        _join_error("", Err.INCONSISTENT_GROUP_PROTOCOL, join.version))
            return
        instance_id = join.group_instance_id
        new_member_id = f"{join.client_id if instance_id is None else instance_id}-{self._uuid()}"
        if instance_id is not None:
            existing = group.static_member_id(instance_id)
            if existing is not None:
                self._replace_static_member(group, existing, new_member_id, join, now_ms)
            else:
                self._add_member_and_rebalance(group, new_member_id, join, now_ms)
        elif join.version >= 4:
            group.add_pending_member(new_member_id)
            self._timers.schedule(_heartbeat_key(group, new_member_id),
                                  now_ms + _at_least_1(join.session_timeout_ms), group)
            self._reply(join.token,
                        _join_error(new_member_id, Err.MEMBER_ID_REQUIRED, join.version))
        else:
            self._add_member_and_rebalance(group, new_member_id, join, now_ms)

    def _join_existing_member(self, group: ClassicGroup, member_id: str, join: _JoinArgs,
                              now_ms: int) -> None:
        version = join.version
        if group.is_in(_S.DEAD):
            self._reply(join.token,
                        _join_error(member_id, Err.COORDINATOR_NOT_AVAILABLE, version))
            return
        if not group.supports_protocols(join.protocol_type,
                                        ClassicGroup.protocol_names(join.protocols)):
            self._reply(join.token,
                        _join_error(member_id, Err.INCONSISTENT_GROUP_PROTOCOL, version))
            return
        if group.is_pending_member(member_id) and join.group_instance_id is None:
            self._add_member_and_rebalance(group, member_id, join, now_ms)
            return
        error = group.validate_member(member_id, join.group_instance_id)
        if error != Err.NONE:
            self._reply(join.token, _join_error(member_id, error, version))
            return
        member = group.member(member_id)
        self._schedule_heartbeat(group, member, now_ms)
        state = group.state
        if state is _S.PREPARING_REBALANCE:
            self._update_member_and_rebalance(group, member, join, now_ms)
        elif state is _S.COMPLETING_REBALANCE:
            if member.matches(join.protocols):
                members = self._leader_members(group) if group.is_leader(member_id) else []
                self._reply(join.token, self._join_ok(group, member_id, version, members,
                                                      leader_id=group.leader_id))
            else:
                self._update_member_and_rebalance(group, member, join, now_ms)
        elif state is _S.STABLE:
            if group.is_leader(member_id) or not member.matches(join.protocols):
                self._update_member_and_rebalance(group, member, join, now_ms)
            else:
                self._reply(join.token, self._join_ok(group, member_id, version, [],
                                                      leader_id=group.leader_id))
        else:
            self._reply(join.token, _join_error(member_id, Err.UNKNOWN_MEMBER_ID, version))

    def _add_member_and_rebalance(self, group: ClassicGroup, member_id: str, join: _JoinArgs,
                                  now_ms: int) -> None:
        member = Member(member_id, join.group_instance_id, join.client_id, join.client_host,
                        join.rebalance_timeout_ms, join.session_timeout_ms, join.protocol_type,
                        join.protocols)
        member.is_new = True
        member.join_waiter = Parked(join.token, join.version)
        if group.is_in(_S.PREPARING_REBALANCE) and group.previous_state is _S.EMPTY:
            group.new_member_added = True
        group.add(member)
        # A parked JoinGroup cannot heartbeat; a new member is kept for the new-member join
        # timeout instead of its session (KIP-394).
        self._timers.schedule(_heartbeat_key(group, member_id),
                              now_ms + self.config.group_new_member_join_timeout_ms, group)
        self._maybe_prepare_rebalance_or_complete_join(group, now_ms)

    def _update_member_and_rebalance(self, group: ClassicGroup, member: Member,
                                     join: _JoinArgs, now_ms: int) -> None:
        self._supersede_join(group, member)
        group.update_member(member, join.protocols, join.rebalance_timeout_ms,
                            join.session_timeout_ms, Parked(join.token, join.version))
        self._maybe_prepare_rebalance_or_complete_join(group, now_ms)

    def _replace_static_member(self, group: ClassicGroup, old_member_id: str,
                               new_member_id: str, join: _JoinArgs, now_ms: int) -> None:
        """Kafka's `updateStaticMemberThenRebalanceOrCompleteJoin`."""
        assert join.group_instance_id is not None
        current_leader = group.leader_id
        old = group.member(old_member_id)
        self._fence(group, old)
        self._timers.cancel(_heartbeat_key(group, old_member_id))
        member = group.replace_static_member(join.group_instance_id, old_member_id,
                                             new_member_id)
        self._schedule_heartbeat(group, member, now_ms)
        group.update_member(member, join.protocols, join.rebalance_timeout_ms,
                            join.session_timeout_ms, Parked(join.token, join.version))
        if group.is_in(_S.STABLE):
            # No rebalance while the protocol the group would choose stays the same (Kafka
            # compares the selection, not the metadata: a restarted consumer's subscription
            # differs in its owned partitions and generation, and must not rebalance).
            if group.protocol_name == group.select_protocol():
                self._persist_static_rejoin(group, member, current_leader)
            else:
                self._maybe_prepare_rebalance_or_complete_join(group, now_ms)
        elif group.is_in(_S.COMPLETING_REBALANCE):
            # The leader may already have been sent the old member id: rebalance so that
            # the new id gets an assignment.
            self._prepare_rebalance(group, now_ms)
        else:
            assert group.is_in(_S.PREPARING_REBALANCE), group
            self._maybe_complete_join_phase(group, now_ms)

    def _persist_static_rejoin(self, group: ClassicGroup, member: Member,
                               previous_leader: str | None) -> None:
        waiter = member.join_waiter
        assert waiter is not None
        records = [self._group_metadata_record(group, {m.member_id: m.assignment
                                                       for m in group.members.values()})]

        def on_durable(now_ms: int) -> None:
            if member.join_waiter is not waiter:
                return  # a rebalance answered it meanwhile
            group.take_join_waiter(member)
            if waiter.version >= 9:
                # KIP-814: a returning leader gets the members but must not reassign.
                is_leader = group.is_leader(member.member_id)
                members = self._leader_members(group) if is_leader else []
                response = self._join_ok(group, member.member_id, waiter.version, members,
                                         leader_id=group.leader_id, skip_assignment=is_leader)
            else:
                # The old leader id, so that the returning member never thinks it leads a
                # generation that will not take its assignment.
                response = self._join_ok(group, member.member_id, waiter.version, [],
                                         leader_id=previous_leader)
            self._reply(waiter.token, response)

        self._emit_persist(group.group_id, records, [], on_durable=on_durable)

    # -- SyncGroup ----------------------------------------------------------------------------

    def sync_group(self, token: object, request: SyncGroupRequest, version: int,
                   now_ms: int) -> None:
        self._clock(now_ms)
        group = self._groups.get(request.group_id)
        if group is None or group.is_in(_S.EMPTY):
            self._reply(token, SyncGroupResponse(error_code=Err.UNKNOWN_MEMBER_ID))
            return
        error = self._validate_sync(group, request, version)
        if error != Err.NONE:
            self._reply(token, SyncGroupResponse(error_code=error))
            return
        if group.is_in(_S.PREPARING_REBALANCE):
            self._reply(token, SyncGroupResponse(error_code=Err.REBALANCE_IN_PROGRESS))
            return
        member = group.member(request.member_id)
        self._schedule_heartbeat(group, member, now_ms)
        if group.is_in(_S.STABLE):
            self._remove_pending_sync(group, member.member_id)
            self._reply(token, self._sync_response(group, member, Err.NONE, version))
            return
        assert group.is_in(_S.COMPLETING_REBALANCE), group
        if member.sync_waiter is not None:
            self._reply(member.sync_waiter.token,
                        SyncGroupResponse(error_code=Err.REBALANCE_IN_PROGRESS))
        member.sync_waiter = Parked(token, version)
        self._remove_pending_sync(group, member.member_id)
        generation = group.generation_id
        if not group.is_leader(member.member_id) or group.sync_persist_generation == generation:
            return
        given = {a.member_id: bytes(a.assignment) for a in request.assignments}
        assignments = {m: given.get(m, b"") for m in group.members}
        group.sync_persist_generation = generation
        group.persisted = True

        def on_durable(durable_ms: int) -> None:
            if self._groups.get(group.group_id) is not group:
                return
            if group.sync_persist_generation == generation:
                group.sync_persist_generation = None
            if group.is_in(_S.COMPLETING_REBALANCE) and group.generation_id == generation:
                for m in group.members.values():
                    m.assignment = assignments.get(m.member_id, b"")
                self._propagate_assignment(group, Err.NONE, durable_ms)
                group.transition_to(_S.STABLE, durable_ms)

        self._emit_persist(group.group_id, [self._group_metadata_record(group, assignments)],
                           [], on_durable=on_durable)

    def _validate_sync(self, group: ClassicGroup, request: SyncGroupRequest, version: int) -> int:
        error = _member_at_generation(group, request, version)
        if error != Err.NONE:
            return error
        if version >= 5 and (_inconsistent(request.protocol_type, group.protocol_type)
                             or _inconsistent(request.protocol_name, group.protocol_name)):
            return Err.INCONSISTENT_GROUP_PROTOCOL
        return Err.NONE

    def _remove_pending_sync(self, group: ClassicGroup, member_id: str) -> None:
        group.remove_pending_sync(member_id)
        if group.has_received_sync_from_all():
            self._timers.cancel(_group_key(_SYNC, group))

    # -- Heartbeat ----------------------------------------------------------------------------

    def heartbeat(self, token: object, request: HeartbeatRequest, version: int,
                  now_ms: int) -> None:
        self._clock(now_ms)
        self._reply(token, HeartbeatResponse(error_code=self._heartbeat(request, version,
                                                                        now_ms)))

    def _heartbeat(self, request: HeartbeatRequest, version: int, now_ms: int) -> int:
        group = self._groups.get(request.group_id)
        if group is None:
            return Err.UNKNOWN_MEMBER_ID
        error = _member_at_generation(group, request, version)
        if error != Err.NONE:
            return error
        if group.is_in(_S.EMPTY):
            return Err.UNKNOWN_MEMBER_ID
        self._schedule_heartbeat(group, group.member(request.member_id), now_ms)
        if group.is_in(_S.PREPARING_REBALANCE):
            return Err.REBALANCE_IN_PROGRESS
        # CompletingRebalance and Stable: a member may heartbeat once it has its JoinGroup
        # answer (Kafka 3.x GroupMetadataManager.classicGroupHeartbeatToClassicGroup).
        return Err.NONE

    def _on_heartbeat_expired(self, group: ClassicGroup, member_id: str, now_ms: int) -> None:
        if self._groups.get(group.group_id) is not group or group.is_in(_S.DEAD):
            return
        if group.is_pending_member(member_id):
            group.remove(member_id)
            if group.is_in(_S.PREPARING_REBALANCE) and group.has_all_members_joined():
                self._complete_join(group, now_ms)
            return
        member = group.members.get(member_id)
        if member is None:
            return
        if member.has_satisfied_heartbeat():
            # Parked in JoinGroup or SyncGroup: alive; the rebalance reschedules it.
            self._schedule_heartbeat(group, member, now_ms)
            return
        self._remove_member(group, member)
        if group.state in (_S.STABLE, _S.COMPLETING_REBALANCE):
            self._maybe_prepare_rebalance_or_complete_join(group, now_ms)
        elif group.is_in(_S.PREPARING_REBALANCE) and group.has_all_members_joined():
            self._complete_join(group, now_ms)

    # -- LeaveGroup ---------------------------------------------------------------------------

    def leave_group(self, token: object, request: LeaveGroupRequest, version: int,
                    now_ms: int) -> None:
        self._clock(now_ms)
        group = self._groups.get(request.group_id)
        if group is None or group.is_in(_S.DEAD):
            code = Err.UNKNOWN_MEMBER_ID if group is None else Err.COORDINATOR_NOT_AVAILABLE
            self._reply(token, LeaveGroupResponse(error_code=code))
            return
        if version >= 3:
            identities = [(m.member_id, m.group_instance_id) for m in request.members]
        else:
            identities = [(request.member_id, None)]
        results: list[LeaveGroupResponse.MemberResponse] = []
        left = 0
        for member_id, instance_id in identities:
            code = self._leave_one(group, member_id, instance_id)
            if code == Err.NONE:
                left += 1
            results.append(LeaveGroupResponse.MemberResponse(
                member_id=member_id, group_instance_id=instance_id, error_code=code))
        if left:
            if group.state in (_S.STABLE, _S.COMPLETING_REBALANCE):
                self._maybe_prepare_rebalance_or_complete_join(group, now_ms)
            elif group.is_in(_S.PREPARING_REBALANCE):
                self._maybe_complete_join_phase(group, now_ms)
        if version >= 3:
            self._reply(token, LeaveGroupResponse(error_code=Err.NONE, members=results))
        else:
            first_error = next((r.error_code for r in results if r.error_code != Err.NONE),
                               Err.NONE)
            self._reply(token, LeaveGroupResponse(error_code=first_error))

    def _leave_one(self, group: ClassicGroup, member_id: str, instance_id: str | None) -> int:
        if member_id == "":
            # Removal by instance id (the admin client's removeMembersFromConsumerGroup).
            existing = group.static_member_id(instance_id)
            if existing is None:
                return Err.UNKNOWN_MEMBER_ID
            self._remove_member(group, group.member(existing))
            return Err.NONE
        if group.is_pending_member(member_id):
            self._drop_pending_member(group, member_id, None)
            return Err.NONE
        error = group.validate_member(member_id, instance_id)
        if error != Err.NONE:
            return error
        self._remove_member(group, group.member(member_id))
        return Err.NONE

    def _uuid(self) -> str:
        """A random UUID in Java's `UUID.randomUUID().toString()` form (version 4)."""
        bits = self._rng.getrandbits(128)
        bits = (bits & ~(0xF << 76)) | (0x4 << 76)
        bits = (bits & ~(0x3 << 62)) | (0x2 << 62)
        h = f"{bits:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def _supersede_join(self, group: ClassicGroup, member: Member) -> None:
        """The member sent JoinGroup again while one was parked: answer the older one."""
        waiter = group.take_join_waiter(member)
        if waiter is not None:
            self._reply(waiter.token, _join_error(member.member_id, Err.REBALANCE_IN_PROGRESS,
                                                  waiter.version))

    def _fence(self, group: ClassicGroup, member: Member) -> None:
        """A static member's instance was taken over: its parked requests are fenced."""
        waiter = group.take_join_waiter(member)
        if waiter is not None:
            self._reply(waiter.token, _join_error(member.member_id, Err.FENCED_INSTANCE_ID,
                                                  waiter.version))
        if member.sync_waiter is not None:
            self._reply(member.sync_waiter.token,
                        SyncGroupResponse(error_code=Err.FENCED_INSTANCE_ID))
            member.sync_waiter = None


def _inconsistent(requested: str | None, actual: str | None) -> bool:
    return requested is not None and actual is not None and requested != actual


def _member_at_generation(group: ClassicGroup, request: SyncGroupRequest | HeartbeatRequest,
                          version: int) -> int:
    """SyncGroup's and Heartbeat's common checks: the group is alive, the member (and its
    instance id, v3+) belongs to it, and it speaks of the current generation."""
    if group.is_in(_S.DEAD):
        return Err.COORDINATOR_NOT_AVAILABLE
    instance_id = request.group_instance_id if version >= 3 else None
    error = group.validate_member(request.member_id, instance_id)
    if error != Err.NONE:
        return error
    if request.generation_id != group.generation_id:
        return Err.ILLEGAL_GENERATION
    return Err.NONE
