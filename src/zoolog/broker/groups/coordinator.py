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
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, ClassVar

from zoolog.errors import ConfigError
from zoolog.protocol.kafka._generated.coordinator_records import GroupMetadataValue
from zoolog.protocol.kafka._generated.delete_groups import (
    DeleteGroupsRequest,
    DeleteGroupsResponse,
)
from zoolog.protocol.kafka._generated.describe_groups import (
    DescribeGroupsRequest,
    DescribeGroupsResponse,
)
from zoolog.protocol.kafka._generated.heartbeat import HeartbeatRequest, HeartbeatResponse
from zoolog.protocol.kafka._generated.join_group import JoinGroupRequest, JoinGroupResponse
from zoolog.protocol.kafka._generated.leave_group import LeaveGroupRequest, LeaveGroupResponse
from zoolog.protocol.kafka._generated.list_groups import ListGroupsRequest, ListGroupsResponse
from zoolog.protocol.kafka._generated.offset_commit import (
    OffsetCommitRequest,
    OffsetCommitResponse,
)
from zoolog.protocol.kafka._generated.offset_delete import (
    OffsetDeleteRequest,
    OffsetDeleteResponse,
)
from zoolog.protocol.kafka._generated.offset_fetch import OffsetFetchRequest, OffsetFetchResponse
from zoolog.protocol.kafka._generated.sync_group import SyncGroupRequest, SyncGroupResponse
from zoolog.protocol.kafka.errors import Err

from .group import ClassicGroup, GroupState, Member, Parked
from .offsets import OffsetAndMetadata, OffsetStore, TopicPartitionKey
from .records import (
    CorruptRecordError,
    GroupRecord,
    OffsetRecord,
    decode_record,
    group_metadata_key,
    group_metadata_value,
    offset_commit_key,
    offset_commit_value,
)

if TYPE_CHECKING:
    from random import Random

__all__ = [
    "GROUP_AUTHORIZED_OPERATIONS",
    "GroupConfig",
    "GroupCoordinator",
    "Persist",
    "Reply",
    "java_string_hash",
    "partition_for",
]

_INT32_MAX = 2**31 - 1
_AUTHORIZED_OPERATIONS_OMITTED = -(2**31)
GROUP_AUTHORIZED_OPERATIONS = (1 << 3) | (1 << 6) | (1 << 8)
"""READ, DELETE and DESCRIBE (AclOperation codes 3, 6, 8): what Kafka reports for a group
when no authorizer is configured (`AclEntry.supportedOperations(GROUP)`, KafkaApis)."""

_S = GroupState


# -- configuration ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GroupConfig:
    """The group coordinator's settings, Kafka's names with `.` as `_` and Kafka's defaults."""

    group_min_session_timeout_ms: int = 6000
    group_max_session_timeout_ms: int = 1_800_000
    group_initial_rebalance_delay_ms: int = 3000
    group_max_size: int = _INT32_MAX
    offsets_topic_num_partitions: int = 50
    offset_metadata_max_bytes: int = 4096
    offsets_retention_minutes: int = 10080
    offsets_retention_check_interval_ms: int = 600_000
    group_new_member_join_timeout_ms: int = 300_000
    """How long a new member's parked JoinGroup keeps it alive (Kafka's internal
    `NEW_MEMBER_JOIN_TIMEOUT_MS`, KIP-394; not a Kafka property)."""

    PROPERTIES: ClassVar[dict[str, str]] = {
        "group.min.session.timeout.ms": "group_min_session_timeout_ms",
        "group.max.session.timeout.ms": "group_max_session_timeout_ms",
        "group.initial.rebalance.delay.ms": "group_initial_rebalance_delay_ms",
        "group.max.size": "group_max_size",
        "offsets.topic.num.partitions": "offsets_topic_num_partitions",
        "offset.metadata.max.bytes": "offset_metadata_max_bytes",
        "offsets.retention.minutes": "offsets_retention_minutes",
        "offsets.retention.check.interval.ms": "offsets_retention_check_interval_ms",
    }
    """server.properties key -> field."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"{f.name} must be an int, not {value!r}")
        if self.group_min_session_timeout_ms < 0:
            raise ConfigError("group.min.session.timeout.ms must be >= 0")
        if self.group_max_session_timeout_ms < self.group_min_session_timeout_ms:
            raise ConfigError("group.max.session.timeout.ms must be >= "
                              "group.min.session.timeout.ms")
        if self.group_initial_rebalance_delay_ms < 0:
            raise ConfigError("group.initial.rebalance.delay.ms must be >= 0")
        if self.group_max_size < 1:
            raise ConfigError("group.max.size must be >= 1")
        if self.offsets_topic_num_partitions < 1:
            raise ConfigError("offsets.topic.num.partitions must be >= 1")
        if self.offset_metadata_max_bytes < 0:
            raise ConfigError("offset.metadata.max.bytes must be >= 0")
        if self.offsets_retention_minutes < 1:
            raise ConfigError("offsets.retention.minutes must be >= 1")
        if self.offsets_retention_check_interval_ms < 1:
            raise ConfigError("offsets.retention.check.interval.ms must be >= 1")
        if self.group_new_member_join_timeout_ms < 1:
            raise ConfigError("group_new_member_join_timeout_ms must be >= 1")

    @property
    def offsets_retention_ms(self) -> int:
        return self.offsets_retention_minutes * 60_000

    @classmethod
    def from_properties(cls, properties: Mapping[str, str]) -> GroupConfig:
        """The settings named in `properties` (server.properties keys; others ignored)."""
        values: dict[str, int] = {}
        for key, name in cls.PROPERTIES.items():
            if key in properties:
                try:
                    values[name] = int(properties[key].strip())
                except ValueError:
                    raise ConfigError(f"{key}: not an integer: {properties[key]!r}") from None
        return cls(**values)


# -- hashing --------------------------------------------------------------------------------


def java_string_hash(text: str) -> int:
    """Java's `String.hashCode`: 31-polynomial over UTF-16 code units, in int32."""
    data = text.encode("utf-16-be", "surrogatepass")
    h = 0
    for i in range(0, len(data), 2):
        h = (31 * h + ((data[i] << 8) | data[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(group_id: str, partitions: int) -> int:
    """Kafka's `Utils.abs(groupId.hashCode) % partitions` (`Utils.abs(MIN_VALUE)` is 0)."""
    h = java_string_hash(group_id)
    return (0 if h == -(2**31) else abs(h)) % partitions


def _java_length(text: str) -> int:
    """Java's `String.length()`: UTF-16 code units (what offset.metadata.max.bytes checks)."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


# -- outputs ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    """Send `response` (a generated response object) for the request `token` now."""

    token: object
    response: object


_OffsetUpdate = tuple[str, str, int, "OffsetAndMetadata | None"]


@dataclass(eq=False, slots=True)
class Persist:
    """Append `records` to partition `partition` of `__consumer_offsets`, then call
    `GroupCoordinator.persisted(this, now_ms)`. Compared by identity.

    `persisted` applies the records without decoding them again: the offset changes they
    carry are kept beside them (`_updates`), and what a GroupMetadata record means is
    applied by `_on_durable` (the in-memory group is the authority at run time, as in
    Kafka, whose classic-group writes are not replayed either; `load` is what reads
    GroupMetadata records back)."""

    partition: int
    records: list[tuple[bytes, bytes | None]]
    replies: list[Reply]
    _updates: list[_OffsetUpdate] = field(default_factory=list, repr=False)
    _on_durable: Callable[[int], None] | None = field(default=None, repr=False)


# -- timers ------------------------------------------------------------------------------------

_TimerKey = tuple[str, str, str]
_HEARTBEAT = "heartbeat"
_JOIN = "join"
_SYNC = "sync"
_RETENTION = "retention"
_RETENTION_KEY: _TimerKey = (_RETENTION, "", "")


class _Timers:
    """Kafka's coordinator timer: one deadline per key (scheduling a key again replaces
    it), due ones popped in deadline order (then scheduling order). A heap with lazy
    deletion, compacted when stale entries dominate."""

    __slots__ = ("_entries", "_heap", "_seq")

    def __init__(self) -> None:
        self._entries: dict[_TimerKey, tuple[int, int, object]] = {}
        self._heap: list[tuple[int, int, _TimerKey]] = []
        self._seq = 0

    def schedule(self, key: _TimerKey, deadline_ms: int, payload: object = None) -> None:
        self._seq += 1
        self._entries[key] = (deadline_ms, self._seq, payload)
        heapq.heappush(self._heap, (deadline_ms, self._seq, key))
        if len(self._heap) > 64 and len(self._heap) > 4 * len(self._entries):
            self._heap = [(d, s, k) for k, (d, s, _p) in self._entries.items()]
            heapq.heapify(self._heap)

    def cancel(self, key: _TimerKey) -> None:
        self._entries.pop(key, None)

    def has(self, key: _TimerKey) -> bool:
        return key in self._entries

    def _drop_stale(self) -> None:
        heap = self._heap
        while heap:
            _deadline, seq, key = heap[0]
            entry = self._entries.get(key)
            if entry is not None and entry[1] == seq:
                return
            heapq.heappop(heap)

    def next_deadline(self) -> int | None:
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now_ms: int) -> tuple[_TimerKey, object] | None:
        self._drop_stale()
        if not self._heap or self._heap[0][0] > now_ms:
            return None
        _deadline, _seq, key = heapq.heappop(self._heap)
        payload = self._entries.pop(key)[2]
        return key, payload

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(frozen=True, slots=True)
class _JoinTimer:
    group: ClassicGroup
    initial: bool
    delay_ms: int = 0
    remaining_ms: int = 0


@dataclass(frozen=True, slots=True)
class _SyncTimer:
    group: ClassicGroup
    generation_id: int


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


# -- the coordinator ---------------------------------------------------------------------------


class GroupCoordinator:
    """Classic groups and their offsets, for every partition of `__consumer_offsets` this
    broker coordinates."""

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

    def load(self, partition: int, records: Iterable[tuple[bytes, bytes | None]],
             now_ms: int) -> None:
        """Rebuild the state of `partition` from its records in log order, before any
        request for its groups is served (groups it names are replaced). Groups whose
        last GroupMetadata record has members come back Stable, their members' sessions
        starting now; offsets come back as committed; offsets without a group get a simple
        (Empty, no protocol) one. Raises CorruptRecordError."""
        self._clock(now_ms)
        self._loaded.add(partition)
        touched: dict[str, None] = {}
        for key, value in records:
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

    def partition_for(self, group_id: str) -> int:
        return partition_for(group_id, self.config.offsets_topic_num_partitions)

    @property
    def loaded_partitions(self) -> frozenset[int]:
        """The `__consumer_offsets` partitions `load` has been called for."""
        return frozenset(self._loaded)

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

    # -- rebalance machinery --------------------------------------------------------------

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
        if group.is_in(_S.DEAD):
            return Err.COORDINATOR_NOT_AVAILABLE
        instance_id = request.group_instance_id if version >= 3 else None
        error = group.validate_member(request.member_id, instance_id)
        if error != Err.NONE:
            return error
        if request.generation_id != group.generation_id:
            return Err.ILLEGAL_GENERATION
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
        if group.is_in(_S.DEAD):
            return Err.COORDINATOR_NOT_AVAILABLE
        instance_id = request.group_instance_id if version >= 3 else None
        error = group.validate_member(request.member_id, instance_id)
        if error != Err.NONE:
            return error
        if request.generation_id != group.generation_id:
            return Err.ILLEGAL_GENERATION
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

    # -- OffsetCommit ----------------------------------------------------------------------

    def offset_commit(self, token: object, request: OffsetCommitRequest, version: int,
                      now_ms: int) -> None:
        self._clock(now_ms)
        group_id = request.group_id
        generation = request.generation_id_or_member_epoch if version >= 1 else -1
        member_id = request.member_id if version >= 1 else ""
        instance_id = request.group_instance_id if version >= 7 else None
        group = self._groups.get(group_id)
        if group is None:
            if generation < 0:
                error = Err.NONE  # a simple group: created when the commit is durable
            else:
                error = Err.GROUP_ID_NOT_FOUND if version >= 9 else Err.ILLEGAL_GENERATION
        else:
            error = group.validate_offset_commit(member_id, instance_id, generation)
        if error != Err.NONE:
            self._reply(token, _commit_response(request, lambda _p: error))
            return
        if group is not None and group.state in (_S.STABLE, _S.PREPARING_REBALANCE):
            member = group.members.get(member_id)
            if member is not None:
                self._schedule_heartbeat(group, member, now_ms)
        retention_ms = request.retention_time_ms if 2 <= version <= 4 else -1
        expire_ms = None if retention_ms == -1 else now_ms + retention_ms
        max_length = self.config.offset_metadata_max_bytes
        records: list[tuple[bytes, bytes | None]] = []
        updates: list[_OffsetUpdate] = []
        codes: dict[tuple[str, int], int] = {}
        for topic in request.topics:
            for p in topic.partitions:
                metadata = "" if p.committed_metadata is None else p.committed_metadata
                if _java_length(metadata) > max_length:
                    codes[(topic.name, p.partition_index)] = Err.OFFSET_METADATA_TOO_LARGE
                    continue
                commit_ms = p.commit_timestamp if version == 1 and p.commit_timestamp != -1 \
                    else now_ms
                leader_epoch = p.committed_leader_epoch if version >= 6 else -1
                value = OffsetAndMetadata(p.committed_offset, leader_epoch, metadata,
                                          commit_ms, expire_ms)
                records.append((
                    offset_commit_key(group_id, topic.name, p.partition_index),
                    offset_commit_value(value.offset, value.leader_epoch, value.metadata,
                                        value.commit_timestamp_ms, value.expire_timestamp_ms),
                ))
                updates.append((group_id, topic.name, p.partition_index, value))
        response = _commit_response(request, lambda key: codes.get(key, Err.NONE))
        if not records:
            self._reply(token, response)
            return
        self._emit_persist(group_id, records, [Reply(token, response)], updates=updates)

    # -- OffsetFetch -----------------------------------------------------------------------

    def offset_fetch(self, token: object, request: OffsetFetchRequest, version: int,
                     now_ms: int) -> None:
        self._clock(now_ms)
        require_stable = request.require_stable if version >= 7 else False
        if version >= 8:
            groups = []
            for g in request.groups:
                wanted = None if g.topics is None else [
                    (t.name, list(t.partition_indexes)) for t in g.topics]
                topics = self._fetch(g.group_id, wanted, require_stable)
                groups.append(OffsetFetchResponse.OffsetFetchResponseGroup(
                    group_id=g.group_id,
                    topics=[OffsetFetchResponse.OffsetFetchResponseTopics(
                        name=name,
                        partitions=[OffsetFetchResponse.OffsetFetchResponsePartitions(
                            partition_index=partition, committed_offset=offset,
                            committed_leader_epoch=epoch, metadata=metadata,
                            error_code=code)
                            for partition, offset, epoch, metadata, code in partitions])
                        for name, partitions in topics]))
            self._reply(token, OffsetFetchResponse(groups=groups))
            return
        wanted = None if request.topics is None else [
            (t.name, list(t.partition_indexes)) for t in request.topics]
        topics = self._fetch(request.group_id, wanted, require_stable)
        self._reply(token, OffsetFetchResponse(
            error_code=Err.NONE,
            topics=[OffsetFetchResponse.OffsetFetchResponseTopic(
                name=name,
                partitions=[OffsetFetchResponse.OffsetFetchResponsePartition(
                    partition_index=partition, committed_offset=offset,
                    committed_leader_epoch=epoch, metadata=metadata, error_code=code)
                    for partition, offset, epoch, metadata, code in partitions])
                for name, partitions in topics]))

    def _fetch(
        self, group_id: str, wanted: list[tuple[str, list[int]]] | None, require_stable: bool
    ) -> list[tuple[str, list[tuple[int, int, int, str, int]]]]:
        """(topic, [(partition, offset, leader epoch, metadata, error)]) for the wanted
        partitions (None: every committed one). Nothing committed: offset -1, no error."""
        group = self._groups.get(group_id)
        known = group is not None and not group.is_in(_S.DEAD)
        offsets = self.offsets
        out: list[tuple[str, list[tuple[int, int, int, str, int]]]] = []

        def entry(topic: str, partition: int,
                  value: OffsetAndMetadata | None) -> tuple[int, int, int, str, int]:
            if require_stable and offsets.has_pending_transactional(group_id, topic, partition):
                return partition, -1, -1, "", Err.UNSTABLE_OFFSET_COMMIT
            if value is None:
                return partition, -1, -1, "", Err.NONE
            return partition, value.offset, value.leader_epoch, value.metadata, Err.NONE

        if wanted is None:
            if not known:
                return out
            for topic, partitions in sorted(offsets.topics(group_id).items()):
                out.append((topic, [entry(topic, p, v) for p, v in sorted(partitions.items())]))
            return out
        for topic, indexes in wanted:
            out.append((topic, [entry(topic, p, offsets.get(group_id, topic, p) if known
                                      else None) for p in indexes]))
        return out

    # -- DescribeGroups / ListGroups -------------------------------------------------------

    def describe_groups(self, token: object, request: DescribeGroupsRequest, version: int,
                        now_ms: int) -> None:
        self._clock(now_ms)
        with_ops = version >= 3 and request.include_authorized_operations
        described = []
        for group_id in request.groups:
            described.append(self._describe(group_id, version))
            if with_ops:
                described[-1].authorized_operations = GROUP_AUTHORIZED_OPERATIONS
        self._reply(token, DescribeGroupsResponse(groups=described))

    def _describe(self, group_id: str, version: int) -> DescribeGroupsResponse.DescribedGroup:
        group = self._groups.get(group_id)
        if group is None:
            return DescribeGroupsResponse.DescribedGroup(group_id=group_id,
                                                         group_state=_S.DEAD.value)
        stable = group.is_in(_S.STABLE)
        protocol = group.protocol_name if stable else None
        members = [DescribeGroupsResponse.DescribedGroupMember(
            member_id=m.member_id,
            group_instance_id=m.group_instance_id,
            client_id=m.client_id,
            client_host=m.client_host,
            member_metadata=m.metadata(protocol) if stable else b"",
            member_assignment=m.assignment,
        ) for m in group.members.values()]
        return DescribeGroupsResponse.DescribedGroup(
            group_id=group_id,
            group_state=group.state.value,
            protocol_type=group.protocol_type or "",
            protocol_data=(protocol or "") if stable else "",
            members=members,
        )

    def list_groups(self, token: object, request: ListGroupsRequest, version: int,
                    now_ms: int) -> None:
        self._clock(now_ms)
        states = {s.strip().lower() for s in request.states_filter} if version >= 4 else set()
        types = {t.strip().lower() for t in request.types_filter} if version >= 5 else set()
        listed = []
        for group in self._groups.values():
            if states and group.state.value.lower() not in states:
                continue
            if types and "classic" not in types:
                continue
            listed.append(ListGroupsResponse.ListedGroup(
                group_id=group.group_id, protocol_type=group.protocol_type or "",
                group_state=group.state.value, group_type="classic"))
        self._reply(token, ListGroupsResponse(error_code=Err.NONE, groups=listed))

    # -- DeleteGroups / OffsetDelete -------------------------------------------------------

    def delete_groups(self, token: object, request: DeleteGroupsRequest, version: int,
                      now_ms: int) -> None:
        self._clock(now_ms)
        results: list[DeleteGroupsResponse.DeletableGroupResult] = []
        doomed: list[ClassicGroup] = []
        for group_id in dict.fromkeys(request.groups_names):
            group = self._groups.get(group_id)
            if group is None or group.is_in(_S.DEAD):
                code = Err.GROUP_ID_NOT_FOUND
            elif not group.is_in(_S.EMPTY):
                code = Err.NON_EMPTY_GROUP
            else:
                code = Err.NONE
                doomed.append(group)
            results.append(DeleteGroupsResponse.DeletableGroupResult(group_id=group_id,
                                                                     error_code=code))
        reply = Reply(token, DeleteGroupsResponse(results=results))
        if not doomed:
            self._output.append(reply)
            return
        waiting = [len(doomed)]

        def one_done(_now_ms: int) -> None:
            waiting[0] -= 1
            if waiting[0] == 0:
                self._output.append(reply)

        for group in doomed:
            self._delete_group(group, now_ms, then=one_done)

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

    def offset_delete(self, token: object, request: OffsetDeleteRequest, version: int,
                      now_ms: int) -> None:
        self._clock(now_ms)
        group_id = request.group_id
        group = self._groups.get(group_id)
        if group is None or group.is_in(_S.DEAD):
            self._reply(token, OffsetDeleteResponse(error_code=Err.GROUP_ID_NOT_FOUND))
            return
        if not group.is_in(_S.EMPTY) and not group.uses_consumer_protocol():
            self._reply(token, OffsetDeleteResponse(error_code=Err.NON_EMPTY_GROUP))
            return
        records: list[tuple[bytes, bytes | None]] = []
        updates: list[_OffsetUpdate] = []
        topics = []
        for topic in request.topics:
            subscribed = group.is_subscribed_to_topic(topic.name)
            partitions = []
            for p in topic.partitions:
                index = p.partition_index
                if subscribed:
                    code = Err.GROUP_SUBSCRIBED_TO_TOPIC
                else:
                    code = Err.NONE
                    if (self.offsets.get(group_id, topic.name, index) is not None
                            or self.offsets.has_write_in_flight(group_id, topic.name, index)
                            or self.offsets.has_pending_transactional(group_id, topic.name,
                                                                      index)):
                        records.append((offset_commit_key(group_id, topic.name, index), None))
                        updates.append((group_id, topic.name, index, None))
                partitions.append(OffsetDeleteResponse.OffsetDeleteResponsePartition(
                    partition_index=index, error_code=code))
            topics.append(OffsetDeleteResponse.OffsetDeleteResponseTopic(
                name=topic.name, partitions=partitions))
        reply = Reply(token, OffsetDeleteResponse(error_code=Err.NONE, topics=topics))
        if not records:
            self._output.append(reply)
            return
        self._emit_persist(group_id, records, [reply], updates=updates)

    # -- retention ----------------------------------------------------------------------------

    def _on_retention_timer(self, now_ms: int) -> None:
        """Kafka's periodic `cleanupGroupMetadata`: expire offsets, then delete Empty
        groups that have none left."""
        self._timers.schedule(_RETENTION_KEY,
                              now_ms + self.config.offsets_retention_check_interval_ms)
        retention_ms = self.config.offsets_retention_ms
        for group in list(self._groups.values()):
            if group.is_in(_S.DEAD):
                continue
            group_id = group.group_id
            offsets = self.offsets
            if not offsets.has_offsets(group_id):
                expired: list[TopicPartitionKey] = []
                all_gone = not (offsets.has_pending_transactions(group_id)
                                or offsets.has_writes_in_flight(group_id))
            else:
                base = group.offset_expiration_base()
                if base is None:
                    continue
                expired, all_gone = offsets.expired(
                    group_id, now_ms, retention_ms,
                    _by_commit_timestamp(base),
                    group.is_subscribed_to_topic)
            if all_gone and group.is_in(_S.EMPTY):
                if not group.persisted and not expired:
                    # Never written (a group whose joins all failed or timed out): forget it.
                    group.transition_to(_S.DEAD, now_ms)
                    self._cancel_group_timers(group)
                    del self._groups[group_id]
                else:
                    self._delete_group(group, now_ms)
            elif expired:
                records: list[tuple[bytes, bytes | None]] = [
                    (offset_commit_key(group_id, t, p), None) for t, p in expired]
                self._emit_persist(group_id, records, [],
                                   updates=[(group_id, t, p, None) for t, p in expired])

    # -- helpers ------------------------------------------------------------------------------

    def _clock(self, now_ms: int) -> None:
        if not self._clock_started:
            self._clock_started = True
            self._timers.schedule(_RETENTION_KEY,
                                  now_ms + self.config.offsets_retention_check_interval_ms)

    def _reply(self, token: object, response: object) -> None:
        self._output.append(Reply(token, response))

    def _emit_persist(self, group_id: str, records: list[tuple[bytes, bytes | None]],
                      replies: list[Reply], *, updates: list[_OffsetUpdate] | None = None,
                      on_durable: Callable[[int], None] | None = None) -> None:
        updates = [] if updates is None else updates
        for g, topic, partition, _value in updates:
            self.offsets.begin_write(g, topic, partition)
        self._output.append(Persist(self.partition_for(group_id), records, replies, updates,
                                    on_durable))

    def _uuid(self) -> str:
        """A random UUID in Java's `UUID.randomUUID().toString()` form (version 4)."""
        bits = self._rng.getrandbits(128)
        bits = (bits & ~(0xF << 76)) | (0x4 << 76)
        bits = (bits & ~(0x3 << 62)) | (0x2 << 62)
        h = f"{bits:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def _new_group(self, group_id: str, now_ms: int) -> ClassicGroup:
        group = ClassicGroup(group_id, now_ms, on_transition=self._on_transition)
        self._groups[group_id] = group
        return group

    def _ensure_simple_group(self, group_id: str, now_ms: int) -> None:
        if group_id not in self._groups:
            self._new_group(group_id, now_ms)

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

    def _cancel_group_timers(self, group: ClassicGroup) -> None:
        self._timers.cancel(_group_key(_JOIN, group))
        self._timers.cancel(_group_key(_SYNC, group))
        for member_id in [*group.members, *group.pending_members]:
            self._timers.cancel(_heartbeat_key(group, member_id))

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


# -- module helpers -------------------------------------------------------------------------


def _heartbeat_key(group: ClassicGroup, member_id: str) -> _TimerKey:
    return (_HEARTBEAT, group.group_id, member_id)


def _group_key(kind: str, group: ClassicGroup) -> _TimerKey:
    return (kind, group.group_id, "")


def _by_commit_timestamp(base: Callable[[int], int]) -> Callable[[OffsetAndMetadata], int]:
    return lambda value: base(value.commit_timestamp_ms)


def _at_least_1(delay_ms: int) -> int:
    """Timers fire at least 1 ms ahead, so one tick never loops on its own timers."""
    return max(delay_ms, 1)


def _inconsistent(requested: str | None, actual: str | None) -> bool:
    return requested is not None and actual is not None and requested != actual


def _protocol_name(name: str | None, version: int) -> str | None:
    """ProtocolName is nullable from JoinGroup v7 only."""
    return name if name is not None or version >= 7 else ""


def _join_error(member_id: str, error: int, version: int) -> JoinGroupResponse:
    return JoinGroupResponse(error_code=error, member_id=member_id,
                             protocol_name=_protocol_name(None, version))


def _commit_response(request: OffsetCommitRequest,
                     code: Callable[[tuple[str, int]], int]) -> OffsetCommitResponse:
    return OffsetCommitResponse(topics=[
        OffsetCommitResponse.OffsetCommitResponseTopic(
            name=topic.name,
            partitions=[OffsetCommitResponse.OffsetCommitResponsePartition(
                partition_index=p.partition_index, error_code=code((topic.name, p.partition_index)))
                for p in topic.partitions])
        for topic in request.topics])
