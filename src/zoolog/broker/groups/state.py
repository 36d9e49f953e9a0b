"""The state every part of the group coordinator shares, and the primitives they write it
with: the groups, the offset store, the timers, the output queue; replying, persisting
(offsets in flight marked before the records go out), group creation, GroupMetadata
records, session deadlines, group deletion.

Owns `CoordinatorState`, the base of `GroupCoordinator`. Never: handle a request itself
(see `membership.py`, `offset_handlers.py`, `admin.py`), sockets, clocks, randomness other
than the injected `Random`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from zoolog.protocol.kafka._generated.coordinator_records import GroupMetadataValue

from .config import GroupConfig
from .group import ClassicGroup, GroupState, Member
from .offsets import OffsetStore, TopicPartitionKey
from .outputs import Persist, Reply, _OffsetUpdate
from .partitioning import partition_for
from .records import group_metadata_key, group_metadata_value, offset_commit_key
from .timers import _JOIN, _RETENTION_KEY, _SYNC, _at_least_1, _group_key, _heartbeat_key, _Timers

if TYPE_CHECKING:
    from random import Random

_S = GroupState


class CoordinatorState:
    """Groups, offsets, timers and the output queue of a `GroupCoordinator` (create that)."""

    def __init__(
        self,
        config: GroupConfig,
        rng: Random,
        *,
        on_transition: Callable[[ClassicGroup, GroupState, GroupState], None] | None = None,
    ) -> None:
        self.config = config
        self.offsets = OffsetStore()
        self._rng = rng
        self._groups: dict[str, ClassicGroup] = {}
        self._timers = _Timers()
        self._output: list[Reply | Persist] = []
        self._on_transition = on_transition
        self._clock_started = False
        self._loaded: set[int] = set()

    def partition_for(self, group_id: str) -> int:
        return partition_for(group_id, self.config.offsets_topic_num_partitions)

    def _clock(self, now_ms: int) -> None:
        if not self._clock_started:
            self._clock_started = True
            self._timers.schedule(_RETENTION_KEY,
                                  now_ms + self.config.offsets_retention_check_interval_ms)

    def _reply(self, token: object, response: object) -> None:
        self._output.append(Reply(token, response))

    def _emit_persist(self, group_id: str, records: list[tuple[bytes, bytes | None]],
                      replies: list[Reply], *, updates: list[_OffsetUpdate] | None = None,
                      on_durable: Callable[[int], None] | None = None,
                      producer_id: int = -1, producer_epoch: int = -1) -> None:
        updates = [] if updates is None else updates
        for g, topic, partition, _value in updates:
            self.offsets.begin_write(g, topic, partition)
        self._output.append(Persist(self.partition_for(group_id), records, replies, updates,
                                    on_durable, producer_id, producer_epoch))

    def _new_group(self, group_id: str, now_ms: int) -> ClassicGroup:
        group = ClassicGroup(group_id, now_ms, on_transition=self._on_transition)
        self._groups[group_id] = group
        return group

    def _ensure_simple_group(self, group_id: str, now_ms: int) -> None:
        if group_id not in self._groups:
            self._new_group(group_id, now_ms)

    def _group_metadata_record(self, group: ClassicGroup,
                               assignments: dict[str, bytes]) -> tuple[bytes, bytes | None]:
        protocol = group.protocol_name
        value = GroupMetadataValue(
            protocol_type=group.protocol_type or "",
            generation=group.generation_id,
            protocol=protocol,
            leader=group.leader_id,
            current_state_timestamp=(-1 if group.current_state_timestamp_ms is None
                                     else group.current_state_timestamp_ms),
            members=[GroupMetadataValue.MemberMetadata(
                member_id=m.member_id,
                group_instance_id=m.group_instance_id,
                client_id=m.client_id,
                client_host=m.client_host,
                rebalance_timeout=m.rebalance_timeout_ms,
                session_timeout=m.session_timeout_ms,
                subscription=m.metadata(protocol),
                assignment=assignments.get(m.member_id, b""),
            ) for m in group.members.values()],
        )
        return group_metadata_key(group.group_id), group_metadata_value(value)

    def _schedule_heartbeat(self, group: ClassicGroup, member: Member, now_ms: int) -> None:
        self._timers.schedule(_heartbeat_key(group, member.member_id),
                              now_ms + _at_least_1(member.session_timeout_ms), group)

    def _cancel_group_timers(self, group: ClassicGroup) -> None:
        self._timers.cancel(_group_key(_JOIN, group))
        self._timers.cancel(_group_key(_SYNC, group))
        for member_id in [*group.members, *group.pending_members]:
            self._timers.cancel(_heartbeat_key(group, member_id))

    def _delete_group(self, group: ClassicGroup, now_ms: int,
                      then: Callable[[int], None] | None = None) -> None:
        """Tombstone every offset of the group (durable, in flight or pending in a
        transaction) and the group itself; Dead until they are durable, then forgotten."""
        group_id = group.group_id
        keys: dict[TopicPartitionKey, None] = dict.fromkeys(self.offsets.keys(group_id))
        keys.update(dict.fromkeys(self.offsets.in_flight_keys(group_id)))
        keys.update(dict.fromkeys(self.offsets.pending_transactional_keys(group_id)))
        records: list[tuple[bytes, bytes | None]] = [
            (offset_commit_key(group_id, topic, partition), None) for topic, partition in keys]
        records.append((group_metadata_key(group_id), None))
        updates: list[_OffsetUpdate] = [(group_id, t, p, None) for t, p in keys]
        group.transition_to(_S.DEAD, now_ms)
        self._cancel_group_timers(group)

        def on_durable(durable_ms: int) -> None:
            if self._groups.get(group_id) is group:
                del self._groups[group_id]
            if then is not None:
                then(durable_ms)

        self._emit_persist(group_id, records, [], updates=updates, on_durable=on_durable)
