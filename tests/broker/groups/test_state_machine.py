"""Hypothesis RuleBasedStateMachine: a few clients in two groups join, sync, heartbeat, leave,
commit and restart (static members) in any order while time passes and persists become
durable late. Checked after every step: only legal transitions, one leader that is a
member, generations never go down, every token answered at most once, membership
bookkeeping consistent, no member in two groups. At the end, with the clients gone quiet
and enough time passed, every request has been answered exactly once."""

from __future__ import annotations

from dataclasses import dataclass, field
from random import Random

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from tests.broker.groups.harness import Harness, assignment, subscription

from zoolog.broker.groups import (
    VALID_PREVIOUS,
    ClassicGroup,
    GroupConfig,
    GroupCoordinator,
    GroupState,
)
from zoolog.protocol.kafka.errors import Err

GROUPS = ("g1", "g2")
PROTOCOLS = {
    "plain": [("range", subscription("t"))],
    "wide": [("range", subscription("t", "u"))],
    "both": [("roundrobin", subscription("t")), ("range", subscription("t"))],
}


@dataclass
class Client:
    group: str
    instance: str | None
    member_id: str = ""
    generation: int = -1
    leader: bool = False
    members: list[str] = field(default_factory=list)


class GroupMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.h = Harness(GroupConfig(group_initial_rebalance_delay_ms=500,
                                     group_new_member_join_timeout_ms=60_000,
                                     offsets_retention_minutes=2,
                                     offsets_retention_check_interval_ms=30_000),
                         auto_persist=False)
        self.clients = [Client("g1", None), Client("g1", "s1"), Client("g1", None),
                        Client("g2", None), Client("g2", "s2")]
        self.sent: dict[int, tuple[int, str]] = {}  # token -> (client, request kind)
        self.seen: set[int] = set()
        self.generations: dict[str, tuple[ClassicGroup, int]] = {}
        self.checked_transitions = 0

    # -- plumbing -----------------------------------------------------------------------

    def _send(self, index: int, kind: str, token: int) -> None:
        self.sent[token] = (index, kind)
        self._learn()

    def _learn(self) -> None:
        """Feed every new answer back to the client that asked, as a client would."""
        for token, answers in list(self.h.answers.items()):
            if token in self.seen or token not in self.sent:
                continue
            self.seen.add(token)
            index, kind = self.sent[token]
            client = self.clients[index]
            response = answers[0]
            if kind == "commit":
                code = response.topics[0].partitions[0].error_code
            elif kind == "leave" and response.members:
                code = response.members[0].error_code
            else:
                code = response.error_code
            if kind == "join":
                if code in (Err.NONE, Err.MEMBER_ID_REQUIRED):
                    client.member_id = response.member_id
                if code == Err.NONE:
                    client.generation = response.generation_id
                    client.leader = response.leader == response.member_id
                    client.members = [m.member_id for m in response.members]
                elif code in (Err.UNKNOWN_MEMBER_ID, Err.FENCED_INSTANCE_ID):
                    client.member_id, client.generation = "", -1
            elif code in (Err.UNKNOWN_MEMBER_ID, Err.FENCED_INSTANCE_ID, Err.ILLEGAL_GENERATION):
                client.member_id, client.generation = "", -1

    # -- rules --------------------------------------------------------------------------

    @rule(index=st.integers(0, 4), version=st.sampled_from([3, 5, 9]),
          protocols=st.sampled_from(sorted(PROTOCOLS)))
    def join(self, index: int, version: int, protocols: str) -> None:
        c = self.clients[index]
        instance = c.instance if version >= 5 else None
        token = self.h.join(c.group, c.member_id, version=version, instance=instance,
                            protocols=PROTOCOLS[protocols], rebalance_ms=4000)
        self._send(index, "join", token)

    @rule(version=st.sampled_from([3, 5, 9]))
    def join_everyone(self, version: int) -> None:
        """Every client (re)joins with what it knows; a new one twice (MEMBER_ID_REQUIRED)."""
        for index, c in enumerate(self.clients):
            fresh = c.member_id == ""
            self.join(index, version, "plain")
            if fresh and c.member_id != "" and c.generation < 0:
                self.join(index, version, "plain")

    @rule(index=st.integers(0, 4))
    def restart(self, index: int) -> None:
        """The client forgets its member id (a static one comes back by instance id)."""
        c = self.clients[index]
        c.member_id, c.generation = "", -1

    @rule(index=st.integers(0, 4), as_leader=st.booleans())
    def sync(self, index: int, as_leader: bool) -> None:
        c = self.clients[index]
        given = {m: assignment("t", i) for i, m in enumerate(c.members)} \
            if (as_leader and c.leader) else None
        token = self.h.sync(c.group, c.generation, c.member_id, given, version=3,
                            instance=c.instance)
        self._send(index, "sync", token)

    @rule(durable=st.booleans())
    def sync_everyone(self, durable: bool) -> None:
        """Every client that has a generation syncs (the leader with assignments)."""
        for index, c in enumerate(self.clients):
            if c.generation >= 0:
                self.sync(index, as_leader=True)
        if durable:
            self.h.flush()
            self._learn()

    @rule()
    def heartbeat_everyone(self) -> None:
        for index, c in enumerate(self.clients):
            if c.generation >= 0:
                self.heartbeat(index)

    @rule(index=st.integers(0, 4))
    def heartbeat(self, index: int) -> None:
        c = self.clients[index]
        self._send(index, "heartbeat",
                   self.h.heartbeat(c.group, c.generation, c.member_id, instance=c.instance))

    @rule(index=st.integers(0, 4), batch=st.booleans())
    def leave(self, index: int, batch: bool) -> None:
        c = self.clients[index]
        if batch:
            token = self.h.leave(c.group, version=3, members=[(c.member_id, c.instance)])
        else:
            token = self.h.leave(c.group, c.member_id, version=1)
        self._send(index, "leave", token)

    @rule(index=st.integers(0, 4), offset=st.integers(0, 100))
    def commit(self, index: int, offset: int) -> None:
        c = self.clients[index]
        token = self.h.commit(c.group, {("t", 0): offset}, generation=c.generation,
                              member_id=c.member_id, instance=c.instance)
        self._send(index, "commit", token)

    @rule(ms=st.sampled_from([1, 100, 500, 2000, 4000, 11_000]))
    def advance(self, ms: int) -> None:
        self.h.advance(ms)
        self._learn()

    @precondition(lambda self: bool(self.h.pending))
    @rule(count=st.integers(1, 3))
    def flush(self, count: int) -> None:
        self.h.flush(count)
        self._learn()

    @rule()
    def read(self) -> None:
        for described in self.h.describe(*GROUPS):
            group = self.h.coord.group(described.group_id)
            state = "Dead" if group is None else group.state.value
            assert described.group_state == state
        assert {g.group_id for g in self.h.list_groups()} <= set(GROUPS)

    # -- invariants ---------------------------------------------------------------------

    @invariant()
    def transitions_are_legal(self) -> None:
        for _gid, before, after in self.h.transitions[self.checked_transitions:]:
            assert before in VALID_PREVIOUS[after], (before, after)
        self.checked_transitions = len(self.h.transitions)

    @invariant()
    def answered_at_most_once(self) -> None:
        for token, answers in self.h.answers.items():
            assert len(answers) == 1, (token, answers)

    @invariant()
    def groups_are_consistent(self) -> None:
        owner: dict[str, str] = {}
        for group in self.h.coord.groups():
            members = group.members
            if group.leader_id is None:
                assert not members, group
            else:
                assert group.leader_id in members, group
            assert not (group.pending_members & members.keys()), group
            assert group.awaiting_join_count == sum(m.is_awaiting_join for m in members.values())
            statics = group.static_members()
            assert statics == {m.group_instance_id: m.member_id for m in members.values()
                               if m.group_instance_id is not None}
            if group.state is GroupState.STABLE:
                assert all(isinstance(m.assignment, bytes) for m in members.values())
            if group.state in (GroupState.EMPTY, GroupState.DEAD):
                assert not members, group
            for member_id in members:
                assert owner.setdefault(member_id, group.group_id) == group.group_id, member_id
            previous = self.generations.get(group.group_id)
            if previous is not None and previous[0] is group:
                assert group.generation_id >= previous[1], group
            self.generations[group.group_id] = (group, group.generation_id)

    @invariant()
    def offsets_are_exactly_what_the_log_holds(self) -> None:
        """Nothing unsynced is visible: the offsets served equal a replay of the log."""
        fresh = GroupCoordinator(self.h.config, Random(0))
        for partition, records in self.h.log.items():
            fresh.load(partition, records, self.h.now)
        served = {g: self.h.coord.offsets.topics(g) for g in self.h.coord.offsets.groups()}
        assert served == {g: fresh.offsets.topics(g) for g in fresh.offsets.groups()}

    def teardown(self) -> None:
        """Quiet clients, everything durable, time enough: all requests answered once."""
        self.h.auto_persist = True
        self.h.flush()
        for _ in range(12):
            self.h.advance(60_000)
        unanswered = [t for t in self.sent if t not in self.h.answers]
        assert unanswered == [], [(t, self.sent[t]) for t in unanswered]
        self.answered_at_most_once()
        self.transitions_are_legal()
        for group in self.h.coord.groups():
            assert not group.members, group  # nobody heartbeats any more


GroupMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40,
                                          deadline=None)
TestGroupMachine = GroupMachine.TestCase
