"""One classic consumer group: its members, pending members, state, generation, leader and
protocol (Kafka's `ClassicGroup` and `ClassicGroupMember`).

States and every legal transition (`ClassicGroupState`; `VALID_PREVIOUS` is the table that
`ClassicGroup.transition_to` asserts against):

    Empty               no members (also a "simple" group that only stores offsets)
        -> PreparingRebalance   a JoinGroup from a new member
        -> Dead                 DeleteGroups, or retention removed its last offset
    PreparingRebalance  members (re)join; their JoinGroups are parked
        -> CompletingRebalance  every known member rejoined and no pending member is left,
                                or the rebalance timeout (the initial delay for a group that
                                was Empty) passed with at least one member rejoined
        -> Empty                the join completed with no member left
        -> Dead                 (Kafka: partition emigration; zoolog never takes it)
    CompletingRebalance generation chosen, JoinGroups answered; waiting for the leader's
                        SyncGroup (followers' SyncGroups are parked)
        -> Stable               the leader's assignments are durable (GroupMetadata record)
        -> PreparingRebalance   a member joins, rejoins with new metadata, leaves, or its
                                session or sync timeout passes
        -> Dead                 (Kafka: partition emigration; zoolog never takes it)
    Stable              assignments handed out; heartbeats
        -> PreparingRebalance   the leader rejoins, a member rejoins with new metadata, a new
                                member joins, a member leaves or its session expires, a member
                                fails to sync within the rebalance timeout, a static member
                                comes back with a protocol change
        -> Dead                 (Kafka: partition emigration; zoolog never takes it)
    Dead                a group being deleted: its tombstone is on its way to disk, after
                        which the group is forgotten
        -> Dead                 (Kafka allows it; a no-op)

Nothing else: Stable never goes straight to Empty (the last member leaving starts a
rebalance, which completes at once into Empty with the generation bumped), CompletingRebalance
only reaches Stable through a durable GroupMetadata record.

Invariants: the leader is None or a member; a static member's instance id maps to it and
to nothing else; a pending member is never a member; `awaiting_join_count` equals the
members with a parked JoinGroup; the generation never decreases.

Owns the group's data and its pure rules (protocol vote, member validation, offset
expiration condition). It never answers a request itself: the coordinator reads and clears
`Member.join_waiter` / `sync_waiter` and builds the responses. No I/O, no clock.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from zoolog.errors import KafkaDecodeError
from zoolog.protocol.kafka._generated.consumer_protocol import ConsumerProtocolSubscription
from zoolog.protocol.kafka.errors import Err

__all__ = [
    "CONSUMER_PROTOCOL_TYPE",
    "VALID_PREVIOUS",
    "ClassicGroup",
    "GroupState",
    "Member",
    "Parked",
]

CONSUMER_PROTOCOL_TYPE = "consumer"


class GroupState(enum.Enum):
    """The classic group states, valued by the names DescribeGroups and ListGroups show."""

    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


_S = GroupState
VALID_PREVIOUS: dict[GroupState, frozenset[GroupState]] = {
    _S.EMPTY: frozenset({_S.PREPARING_REBALANCE}),
    _S.PREPARING_REBALANCE: frozenset({_S.STABLE, _S.COMPLETING_REBALANCE, _S.EMPTY}),
    _S.COMPLETING_REBALANCE: frozenset({_S.PREPARING_REBALANCE}),
    _S.STABLE: frozenset({_S.COMPLETING_REBALANCE}),
    _S.DEAD: frozenset({_S.STABLE, _S.PREPARING_REBALANCE, _S.COMPLETING_REBALANCE, _S.EMPTY,
                        _S.DEAD}),
}
"""Target state -> the states it may be entered from (Kafka's `validPreviousStates`)."""


@dataclass(frozen=True, slots=True, eq=False)
class Parked:
    """A request held until the group can answer it: the runtime's token and the version
    the answer must be built for. Compared by identity."""

    token: object
    version: int


class Member:
    """One member (`ClassicGroupMember`). `protocols` are (name, metadata) pairs in the
    member's order of preference."""

    __slots__ = (
        "assignment",
        "client_host",
        "client_id",
        "group_instance_id",
        "is_new",
        "join_waiter",
        "member_id",
        "protocol_type",
        "protocols",
        "rebalance_timeout_ms",
        "session_timeout_ms",
        "sync_waiter",
    )

    def __init__(
        self,
        member_id: str,
        group_instance_id: str | None,
        client_id: str,
        client_host: str,
        rebalance_timeout_ms: int,
        session_timeout_ms: int,
        protocol_type: str,
        protocols: list[tuple[str, bytes]],
        assignment: bytes = b"",
    ) -> None:
        self.member_id = member_id
        self.group_instance_id = group_instance_id
        self.client_id = client_id
        self.client_host = client_host
        self.rebalance_timeout_ms = rebalance_timeout_ms
        self.session_timeout_ms = session_timeout_ms
        self.protocol_type = protocol_type
        self.protocols = protocols
        self.assignment = assignment
        self.join_waiter: Parked | None = None
        self.sync_waiter: Parked | None = None
        self.is_new = False
        """Joined during the current rebalance: its session does not wait on its parked
        JoinGroup (Kafka's new-member join timeout applies instead)."""

    @property
    def is_static(self) -> bool:
        return self.group_instance_id is not None

    @property
    def is_awaiting_join(self) -> bool:
        return self.join_waiter is not None

    @property
    def is_awaiting_sync(self) -> bool:
        return self.sync_waiter is not None

    def has_satisfied_heartbeat(self) -> bool:
        """A member with a parked JoinGroup or SyncGroup counts as alive (unless new)."""
        return not self.is_new and (self.is_awaiting_join or self.is_awaiting_sync)

    def metadata(self, protocol: str | None) -> bytes:
        for name, metadata in self.protocols:
            if name == protocol:
                return metadata
        return b""

    def matches(self, protocols: list[tuple[str, bytes]]) -> bool:
        return protocols == self.protocols

    def vote(self, candidates: set[str]) -> str:
        for name, _metadata in self.protocols:
            if name in candidates:
                return name
        raise AssertionError(f"member {self.member_id} supports none of {sorted(candidates)}")

    def __repr__(self) -> str:
        return (f"Member({self.member_id!r}, instance={self.group_instance_id!r}, "
                f"protocols={[name for name, _ in self.protocols]})")


class ClassicGroup:
    """The state of one group; see the module docstring for the state machine."""

    __slots__ = (
        "_on_transition",
        "_pending_sync",
        "_static",
        "_supported",
        "awaiting_join_count",
        "current_state_timestamp_ms",
        "generation_id",
        "group_id",
        "leader_id",
        "members",
        "new_member_added",
        "pending_members",
        "persisted",
        "previous_state",
        "protocol_name",
        "protocol_type",
        "state",
        "subscribed_topics",
        "sync_persist_generation",
    )

    def __init__(
        self,
        group_id: str,
        current_state_timestamp_ms: int | None,
        *,
        state: GroupState = GroupState.EMPTY,
        generation_id: int = 0,
        protocol_type: str | None = None,
        protocol_name: str | None = None,
        leader_id: str | None = None,
        on_transition: Callable[[ClassicGroup, GroupState, GroupState], None] | None = None,
    ) -> None:
        """A new group is Empty since now (`current_state_timestamp_ms` = now); a group
        loaded from its GroupMetadata record is Empty or Stable, since the record's time
        (None: an old record without one)."""
        assert state in (GroupState.EMPTY, GroupState.STABLE), state
        self.group_id = group_id
        self.state: GroupState = state
        self.previous_state = GroupState.DEAD
        self.current_state_timestamp_ms = current_state_timestamp_ms
        self.protocol_type = protocol_type
        self.protocol_name = protocol_name
        self.generation_id = generation_id
        self.leader_id = leader_id
        self.members: dict[str, Member] = {}
        self.pending_members: set[str] = set()
        self.awaiting_join_count = 0
        self.new_member_added = False
        self.subscribed_topics: frozenset[str] | None = None
        self.persisted = False
        """A GroupMetadata record of this group is (or is about to be) in the log, so
        forgetting the group takes a tombstone."""
        self.sync_persist_generation: int | None = None
        """The generation whose leader assignments are on their way to disk, if any."""
        self._static: dict[str, str] = {}
        self._supported: dict[str, int] = {}
        self._pending_sync: set[str] = set()
        self._on_transition = on_transition

    # -- state -------------------------------------------------------------------------

    def is_in(self, state: GroupState) -> bool:
        return self.state is state

    def transition_to(self, target: GroupState, now_ms: int) -> None:
        assert self.state in VALID_PREVIOUS[target], (
            f"group {self.group_id}: illegal transition {self.state.value} -> {target.value}")
        before = self.state
        self.previous_state = before
        self.state = target
        self.current_state_timestamp_ms = now_ms
        if self._on_transition is not None:
            self._on_transition(self, before, target)

    def can_rebalance(self) -> bool:
        return self.state in VALID_PREVIOUS[GroupState.PREPARING_REBALANCE]

    # -- members -----------------------------------------------------------------------

    def has_member(self, member_id: str) -> bool:
        return member_id in self.members

    def member(self, member_id: str) -> Member:
        return self.members[member_id]

    def is_leader(self, member_id: str) -> bool:
        return self.leader_id is not None and self.leader_id == member_id

    def add(self, member: Member) -> None:
        assert member.member_id not in self.members, member.member_id
        if member.group_instance_id is not None:
            assert member.group_instance_id not in self._static, member.group_instance_id
            self._static[member.group_instance_id] = member.member_id
        if not self.members:
            self.protocol_type = member.protocol_type
        assert self.protocol_type == member.protocol_type, (self.protocol_type, member)
        assert self.supports_protocols(member.protocol_type, self.protocol_names(member.protocols))
        if self.leader_id is None:
            self.leader_id = member.member_id
        self.members[member.member_id] = member
        self._count_protocols(member, 1)
        if member.is_awaiting_join:
            self.awaiting_join_count += 1
        self.pending_members.discard(member.member_id)

    def remove(self, member_id: str) -> Member | None:
        """Drop a member or pending member (its parked requests must be answered first)."""
        member = self.members.pop(member_id, None)
        if member is not None:
            assert member.join_waiter is None and member.sync_waiter is None, member
            self._count_protocols(member, -1)
            if member.group_instance_id is not None:
                del self._static[member.group_instance_id]
        if self.leader_id == member_id:
            self.leader_id = next(iter(self.members), None)
        self.pending_members.discard(member_id)
        self._pending_sync.discard(member_id)
        return member

    def replace_static_member(self, instance_id: str, old_member_id: str,
                              new_member_id: str) -> Member:
        """A static member came back with a new member id: the same member (protocols,
        timeouts, assignment) under the new id. The old one's parked requests must have
        been answered."""
        old = self.members.pop(old_member_id)
        assert old.join_waiter is None and old.sync_waiter is None, old
        new = Member(new_member_id, old.group_instance_id, old.client_id, old.client_host,
                     old.rebalance_timeout_ms, old.session_timeout_ms, old.protocol_type,
                     old.protocols, old.assignment)
        self.members[new_member_id] = new
        if self.leader_id == old_member_id:
            self.leader_id = new_member_id
        self._static[instance_id] = new_member_id
        if old_member_id in self._pending_sync:
            self._pending_sync.discard(old_member_id)
            self._pending_sync.add(new_member_id)
        return new

    def update_member(self, member: Member, protocols: list[tuple[str, bytes]],
                      rebalance_timeout_ms: int, session_timeout_ms: int,
                      join_waiter: Parked | None) -> None:
        """New protocols and timeouts, and the member's parked JoinGroup (None: not
        parked); a JoinGroup it had parked already must have been answered."""
        self._count_protocols(member, -1)
        member.protocols = protocols
        self._count_protocols(member, 1)
        member.rebalance_timeout_ms = rebalance_timeout_ms
        member.session_timeout_ms = session_timeout_ms
        if join_waiter is not None and member.join_waiter is None:
            self.awaiting_join_count += 1
        elif join_waiter is None and member.join_waiter is not None:
            self.awaiting_join_count -= 1
        member.join_waiter = join_waiter

    def take_join_waiter(self, member: Member) -> Parked | None:
        """The member's parked JoinGroup, no longer parked."""
        waiter = member.join_waiter
        if waiter is not None:
            member.join_waiter = None
            self.awaiting_join_count -= 1
        return waiter

    def static_member_id(self, instance_id: str | None) -> str | None:
        return None if instance_id is None else self._static.get(instance_id)

    def add_pending_member(self, member_id: str) -> None:
        assert member_id not in self.members, member_id
        self.pending_members.add(member_id)

    def is_pending_member(self, member_id: str) -> bool:
        return member_id in self.pending_members

    def has_all_members_joined(self) -> bool:
        return len(self.members) == self.awaiting_join_count and not self.pending_members

    def not_yet_rejoined(self) -> list[Member]:
        return [m for m in self.members.values() if not m.is_awaiting_join]

    def maybe_elect_new_joined_leader(self) -> bool:
        """Keep the leader if it rejoined, else pick the first member that did; False if
        there is no leader or nobody rejoined."""
        if self.leader_id is None:
            return False
        if self.members[self.leader_id].is_awaiting_join:
            return True
        for member in self.members.values():
            if member.is_awaiting_join:
                self.leader_id = member.member_id
                return True
        return False

    def rebalance_timeout_ms(self) -> int:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    def validate_member(self, member_id: str, instance_id: str | None) -> int:
        """Kafka's `validateMember`: NONE, UNKNOWN_MEMBER_ID or FENCED_INSTANCE_ID."""
        if instance_id is not None:
            existing = self._static.get(instance_id)
            if existing is None:
                return Err.UNKNOWN_MEMBER_ID
            if existing != member_id:
                return Err.FENCED_INSTANCE_ID
        return Err.NONE if member_id in self.members else Err.UNKNOWN_MEMBER_ID

    def static_members(self) -> dict[str, str]:
        """instance id -> member id (a copy)."""
        return dict(self._static)

    # -- sync phase --------------------------------------------------------------------

    def add_pending_sync(self, member_id: str) -> None:
        assert member_id in self.members, member_id
        self._pending_sync.add(member_id)

    def remove_pending_sync(self, member_id: str) -> None:
        self._pending_sync.discard(member_id)

    def pending_sync_members(self) -> list[str]:
        return [m for m in self.members if m in self._pending_sync]

    def has_received_sync_from_all(self) -> bool:
        return not self._pending_sync

    def clear_pending_sync(self) -> None:
        self._pending_sync.clear()

    # -- protocols ---------------------------------------------------------------------

    @staticmethod
    def protocol_names(protocols: Iterable[tuple[str, bytes]]) -> set[str]:
        return {name for name, _metadata in protocols}

    def _count_protocols(self, member: Member, delta: int) -> None:
        for name in self.protocol_names(member.protocols):
            self._supported[name] = self._supported.get(name, 0) + delta

    def supports_protocols(self, protocol_type: str, names: set[str]) -> bool:
        """Kafka's `supportsProtocols`: an Empty group takes any non-empty type and protocol
        list; otherwise the type must match and one protocol must be supported by every
        current member."""
        if self.state is GroupState.EMPTY:
            return bool(protocol_type) and bool(names)
        size = len(self.members)
        return (self.protocol_type == protocol_type
                and any(self._supported.get(name, 0) == size for name in names))

    def select_protocol(self) -> str:
        """Kafka's vote: each member votes for its most preferred protocol among those every
        member supports; most votes wins (ties: the first to get that many votes)."""
        assert self.members, self.group_id
        size = len(self.members)
        candidates = {name for name, count in self._supported.items() if count == size}
        votes: dict[str, int] = {}
        for member in self.members.values():
            choice = member.vote(candidates)
            votes[choice] = votes.get(choice, 0) + 1
        best = max(votes.values())
        return next(name for name, count in votes.items() if count == best)

    def uses_consumer_protocol(self) -> bool:
        return self.protocol_type == CONSUMER_PROTOCOL_TYPE

    def compute_subscribed_topics(self) -> frozenset[str] | None:
        """The topics the members' ConsumerProtocolSubscriptions name (Kafka reads them
        with version 0, the prefix of every version); None when unknown: not a consumer
        group, no protocol chosen, or metadata that does not parse."""
        if self.protocol_type != CONSUMER_PROTOCOL_TYPE:
            return None
        if not self.members:
            return frozenset()
        if self.protocol_name is None:
            return None
        topics: set[str] = set()
        for member in self.members.values():
            view = memoryview(member.metadata(self.protocol_name))
            if len(view) < 2:
                return None
            try:
                subscription, _pos = ConsumerProtocolSubscription.decode(view, 2, 0)
            except KafkaDecodeError:
                return None
            topics.update(subscription.topics)
        return frozenset(topics)

    def is_subscribed_to_topic(self, topic: str) -> bool:
        if self.subscribed_topics is None:
            return self.uses_consumer_protocol()
        return topic in self.subscribed_topics

    def init_next_generation(self, now_ms: int) -> None:
        self.generation_id += 1
        if self.members:
            self.protocol_name = self.select_protocol()
            self.subscribed_topics = self.compute_subscribed_topics()
            self.transition_to(GroupState.COMPLETING_REBALANCE, now_ms)
        else:
            self.protocol_name = None
            self.subscribed_topics = self.compute_subscribed_topics()
            self.transition_to(GroupState.EMPTY, now_ms)
        self.clear_pending_sync()

    # -- offsets -----------------------------------------------------------------------

    def validate_offset_commit(self, member_id: str, instance_id: str | None,
                               generation_id: int, *, transactional: bool = False) -> int:
        """Kafka's `ClassicGroup.validateOffsetCommit`. A transactional commit
        (TxnOffsetCommit) with neither member id nor generation is accepted whatever the
        state (v0-2 carry neither), and is not refused in CompletingRebalance."""
        if self.state is GroupState.DEAD:
            return Err.COORDINATOR_NOT_AVAILABLE
        if generation_id < 0 and self.state is GroupState.EMPTY:
            return Err.NONE
        if generation_id >= 0 or member_id or instance_id is not None:
            error = self.validate_member(member_id, instance_id)
            if error != Err.NONE:
                return error
            if generation_id != self.generation_id:
                return Err.ILLEGAL_GENERATION
        elif not transactional and self.state is not GroupState.EMPTY:
            return Err.UNKNOWN_MEMBER_ID
        if not transactional and self.state is GroupState.COMPLETING_REBALANCE:
            return Err.REBALANCE_IN_PROGRESS
        return Err.NONE

    def offset_expiration_base(self) -> Callable[[int], int] | None:
        """Kafka's `offsetExpirationCondition`, as a function from an offset's commit
        timestamp to the timestamp its retention counts from; None: nothing expires now.

        - no protocol type (a simple group): each offset from its own commit;
        - Empty: from the time the group became Empty (an old record without that time:
          from the commit);
        - a Stable consumer group that knows its subscriptions: from the commit, for the
          topics it is not subscribed to (the caller skips subscribed ones).
        """
        if self.protocol_type is None or self.protocol_type == "":
            return _commit_timestamp
        if self.state is GroupState.EMPTY:
            since = self.current_state_timestamp_ms
            if since is None:
                return _commit_timestamp
            return lambda _commit_ms: since
        if (self.uses_consumer_protocol() and self.subscribed_topics is not None
                and self.state is GroupState.STABLE):
            return _commit_timestamp
        return None

    def __repr__(self) -> str:
        return (f"ClassicGroup({self.group_id!r}, {self.state.value}, gen={self.generation_id}, "
                f"leader={self.leader_id!r}, members={list(self.members)}, "
                f"pending={sorted(self.pending_members)})")


def _commit_timestamp(commit_ms: int) -> int:
    return commit_ms
