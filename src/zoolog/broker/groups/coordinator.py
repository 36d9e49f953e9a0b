"""The classic group coordinator, sans-I/O: request handlers, timers and an output queue
(Kafka's `GroupMetadataManager` + `OffsetMetadataManager` for classic groups).

The runtime drives it:

- it calls a handler per request (`join_group`, `sync_group`, `heartbeat`, `leave_group`,
  `offset_commit`, `offset_fetch`, `describe_groups`, `list_groups`, `delete_groups`,
  `offset_delete`) with an opaque `token` naming the request, the decoded request, its
  version and `now_ms`. Handlers return None and never raise for anything a client sends;
- it drains `take_output()`, a list in order of:
  - `Reply(token, response)`: send `response` for the request `token` now;
  - `Persist(partition, records, replies)`: append `records` (key, value; value None is a
    tombstone) to that partition of `__consumer_offsets`. Once they are durable the runtime
    calls `persisted(persist, now_ms)`, which applies them (offsets become visible only
    then) and queues the replies that waited on them. Persists of one partition must be
    acknowledged in the order they were taken;
- it calls `tick(now_ms)` at `next_deadline_ms()` (session and pending-member expiry, join
  and initial-delay timeouts, sync timeouts, the periodic retention check);
- before serving a partition it calls `load(partition, records, now_ms)` with that
  partition's records in log order.

Order of effects: a handler's records are written before anything that depends on them is
visible or answered (persist -> apply -> reply). What lives only in memory is membership
in flight: joins, pending members, heartbeats, parked requests, as in Kafka. Group
metadata is written when a generation's assignments are handed out (the leader's
SyncGroup), when a static member is replaced without a rebalance, and when a group
becomes Empty; offsets when committed; tombstones when offsets or groups are deleted or
expire. A group loaded from its record is Stable (or Empty) with its members' sessions
starting at the load.

Persist replies: `Persist.replies` holds the answers fixed when the records were taken
(OffsetCommit, OffsetDelete, a static member's rejoin). The leader's SyncGroup is different:
the answers go to every member parked in SyncGroup when the assignment is durable,
including members whose SyncGroup arrived after the records were taken, so `persisted`
builds them then (and none if a new rebalance started meanwhile: those were answered
REBALANCE_IN_PROGRESS already).

Where Kafka leaves a parked request unanswered (a member that re-sends JoinGroup or
SyncGroup while one is parked; a member removed while its SyncGroup is parked), the older
request is answered here (REBALANCE_IN_PROGRESS, UNKNOWN_MEMBER_ID): every token gets
exactly one answer.

Never: sockets, clocks, threads, files, randomness other than the injected `Random`.

Layout: `GroupCoordinator` (this module: the runtime interface, `load`, queries) is
made of parts over one shared state (`state.py`): `membership.py` (JoinGroup,
SyncGroup, Heartbeat, LeaveGroup), `rebalance.py` (join and sync phases, member
removal), `offset_handlers.py` (OffsetCommit, OffsetFetch, OffsetDelete), `admin.py`
(DescribeGroups, ListGroups, DeleteGroups), `retention.py` (offset expiry); with
`config.py` (GroupConfig), `outputs.py` (Reply, Persist), `timers.py` (deadlines) and
`partitioning.py` (which `__consumer_offsets` partition holds a group).
"""

from __future__ import annotations

from collections.abc import Iterable

from zoolog.protocol.kafka._generated.coordinator_records import GroupMetadataValue

from .admin import GROUP_AUTHORIZED_OPERATIONS, GroupAdmin
from .config import GroupConfig
from .group import ClassicGroup, GroupState, Member
from .membership import Membership
from .offset_handlers import OffsetHandlers
from .offsets import OffsetAndMetadata
from .outputs import Persist, Reply, TxnMarker, TxnRecord
from .partitioning import java_string_hash, partition_for
from .records import CorruptRecordError, GroupRecord, OffsetRecord, decode_record
from .retention import Retention
from .timers import _HEARTBEAT, _JOIN, _RETENTION, _SYNC, _JoinTimer, _SyncTimer

__all__ = [
    "GROUP_AUTHORIZED_OPERATIONS",
    "GroupConfig",
    "GroupCoordinator",
    "Persist",
    "Reply",
    "java_string_hash",
    "partition_for",
]

_S = GroupState


class GroupCoordinator(Membership, OffsetHandlers, GroupAdmin, Retention):
    """Classic groups and their offsets, for every partition of `__consumer_offsets` this
    broker coordinates."""

    # -- runtime interface ---------------------------------------------------------------

    def take_output(self) -> list[Reply | Persist]:
        out, self._output = self._output, []
        return out

    def next_deadline_ms(self) -> int | None:
        return self._timers.next_deadline()

    def tick(self, now_ms: int) -> None:
        self._clock(now_ms)
        while (due := self._timers.pop_due(now_ms)) is not None:
            key, payload = due
            kind = key[0]
            if kind == _HEARTBEAT:
                assert isinstance(payload, ClassicGroup)
                self._on_heartbeat_expired(payload, key[2], now_ms)
            elif kind == _JOIN:
                assert isinstance(payload, _JoinTimer)
                self._on_join_timer(payload, now_ms)
            elif kind == _SYNC:
                assert isinstance(payload, _SyncTimer)
                self._on_sync_timer(payload, now_ms)
            else:
                assert kind == _RETENTION, key
                self._on_retention_timer(now_ms)

    def persisted(self, persist: Persist, now_ms: int) -> None:
        """`persist`'s records are durable: apply them, then answer what waited on them."""
        self._clock(now_ms)
        for group_id, topic, partition, value in persist._updates:
            if persist.producer_id >= 0:  # a transaction's offsets: pending until its marker
                if value is not None:
                    self._ensure_simple_group(group_id, now_ms)
                    self.offsets.add_pending_transactional(group_id, persist.producer_id,
                                                           topic, partition, value)
                self.offsets.end_write(group_id, topic, partition)
                continue
            if value is None:
                self.offsets.delete(group_id, topic, partition)
                self.offsets.discard_pending_transactional(group_id, topic, partition)
            else:
                self._ensure_simple_group(group_id, now_ms)
                self.offsets.put(group_id, topic, partition, value)
            self.offsets.end_write(group_id, topic, partition)
        if persist._on_durable is not None:
            persist._on_durable(now_ms)
        self._output.extend(persist.replies)

    def transaction_completed(self, partition: int, producer_id: int, commit: bool,
                              now_ms: int) -> None:
        """A COMMIT or ABORT marker of `producer_id` is durable in `partition` of
        `__consumer_offsets`: the offsets that producer's transaction committed there for
        its groups become committed offsets (commit) or vanish (abort)."""
        self._clock(now_ms)
        for group_id in self.offsets.groups_with_pending(producer_id):
            if self.partition_for(group_id) == partition:
                self.offsets.complete_transaction(group_id, producer_id, commit=commit)

    def load(self, partition: int,
             records: Iterable[tuple[bytes, bytes | None] | TxnRecord | TxnMarker],
             now_ms: int) -> None:
        """Rebuild the state of `partition` from its records in log order, before any
        request for its groups is served (groups it names are replaced). Groups whose
        last GroupMetadata record has members come back Stable, their members' sessions
        starting now; offsets come back as committed; offsets without a group get a simple
        (Empty, no protocol) one. Raises CorruptRecordError."""
        self._clock(now_ms)
        self._loaded.add(partition)
        touched: dict[str, None] = {}
        for item in records:
            if isinstance(item, TxnMarker):
                for group_id in self.offsets.groups_with_pending(item.producer_id):
                    if self.partition_for(group_id) == partition:
                        self.offsets.complete_transaction(group_id, item.producer_id,
                                                          commit=item.commit)
                continue
            if isinstance(item, TxnRecord):
                txn_record = decode_record(item.key, item.value)
                if isinstance(txn_record, OffsetRecord) and txn_record.value is not None:
                    touched[txn_record.group] = None
                    self._ensure_simple_group(txn_record.group, now_ms)
                    v = txn_record.value
                    self.offsets.add_pending_transactional(
                        txn_record.group, item.producer_id, txn_record.topic,
                        txn_record.partition, OffsetAndMetadata(
                            offset=v.offset, leader_epoch=v.leader_epoch, metadata=v.metadata,
                            commit_timestamp_ms=v.commit_timestamp,
                            expire_timestamp_ms=None))
                continue
            key, value = item
            record = decode_record(key, value)
            if isinstance(record, OffsetRecord):
                touched[record.group] = None
                if record.value is None:
                    self.offsets.delete(record.group, record.topic, record.partition)
                    self.offsets.discard_pending_transactional(record.group, record.topic,
                                                               record.partition)
                    continue
                self._ensure_simple_group(record.group, now_ms)
                v = record.value
                self.offsets.put(record.group, record.topic, record.partition, OffsetAndMetadata(
                    offset=v.offset, leader_epoch=v.leader_epoch, metadata=v.metadata,
                    commit_timestamp_ms=v.commit_timestamp,
                    expire_timestamp_ms=None if v.expire_timestamp == -1 else v.expire_timestamp,
                ))
            elif isinstance(record, GroupRecord):
                touched[record.group] = None
                previous = self._groups.pop(record.group, None)
                if previous is not None:
                    self._cancel_group_timers(previous)
                if record.value is not None:
                    self._groups[record.group] = self._group_from_record(
                        record.group, record.value)
        for group_id in touched:
            if self.offsets.has_offsets(group_id):
                self._ensure_simple_group(group_id, now_ms)  # offsets outlived their group
            group = self._groups.get(group_id)
            if group is None:
                continue
            for member in group.members.values():
                self._schedule_heartbeat(group, member, now_ms)

    # -- queries (for the broker, the console and tests) ---------------------------------

    def group(self, group_id: str) -> ClassicGroup | None:
        return self._groups.get(group_id)

    def groups(self) -> list[ClassicGroup]:
        return list(self._groups.values())

    @property
    def loaded_partitions(self) -> frozenset[int]:
        """The `__consumer_offsets` partitions `load` has been called for."""
        return frozenset(self._loaded)

    def _group_from_record(self, group_id: str, value: GroupMetadataValue) -> ClassicGroup:
        protocol_type = value.protocol_type or None
        timestamp = None if value.current_state_timestamp == -1 else value.current_state_timestamp
        group = ClassicGroup(
            group_id, timestamp,
            state=_S.STABLE if value.members else _S.EMPTY,
            generation_id=value.generation, protocol_type=protocol_type,
            protocol_name=value.protocol, leader_id=value.leader,
            on_transition=self._on_transition)
        instance_ids: set[str] = set()
        for m in value.members:
            if m.member_id in group.members or (m.group_instance_id is not None
                                                and m.group_instance_id in instance_ids):
                raise CorruptRecordError(f"group {group_id}: member {m.member_id} twice")
            if m.group_instance_id is not None:
                instance_ids.add(m.group_instance_id)
            rebalance_timeout = m.session_timeout if m.rebalance_timeout == -1 \
                else m.rebalance_timeout
            group.add(Member(m.member_id, m.group_instance_id, m.client_id, m.client_host,
                             rebalance_timeout, m.session_timeout, value.protocol_type,
                             [(value.protocol or "", bytes(m.subscription))],
                             bytes(m.assignment)))
        if group.leader_id is not None and group.leader_id not in group.members:
            group.leader_id = next(iter(group.members), None)
        group.subscribed_topics = group.compute_subscribed_topics()
        group.persisted = True
        return group
