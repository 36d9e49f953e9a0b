"""Raft as a pure object: `tick()`, `step(message)`, `propose(data)`, then `ready()`/`advance()`.

Owns one node's term, vote, role, log and (as leader) the progress of every peer. It never
touches a socket, clock, thread or file: time is `tick()` calls, randomness an injected
`random.Random`, persistence and sending are the caller's job through `Ready`.

Roles and transitions:

    FOLLOWER      --election timeout, pre-vote on-->   PRE_CANDIDATE
    FOLLOWER      --election timeout, pre-vote off-->  CANDIDATE
    PRE_CANDIDATE --quorum of pre-votes-->             CANDIDATE (term + 1)
    CANDIDATE     --quorum of votes-->                 LEADER (appends an empty entry)
    any           --message with a higher term-->      FOLLOWER
    LEADER        --check-quorum fails / removed-->    FOLLOWER
    FOLLOWER      --TIMEOUT_NOW (transfer)-->          CANDIDATE (skips pre-vote)

Safety rules carried here: votes only for up-to-date logs (§5.4.1), commit only of entries of
the current term by counting replicas (§5.4.2, Figure 8), one membership change in flight at a
time, entries at or below the commit index are never truncated, pre-vote and check-quorum keep
a partitioned node from disrupting a healthy leader, and read-index confirms leadership with a
quorum before a read is served.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING

from zoolog.consensus.log import RaftLog
from zoolog.consensus.types import (
    ConfChange,
    ConfState,
    Entry,
    EntryKind,
    HardState,
    Message,
    MsgType,
    ReadState,
    Ready,
    Snapshot,
)
from zoolog.errors import ConfigError, LocalProtocolError

if TYPE_CHECKING:
    from random import Random  # injected; the core never creates randomness itself


class Role(IntEnum):
    FOLLOWER = 0
    PRE_CANDIDATE = 1
    CANDIDATE = 2
    LEADER = 3


class ProgressState(IntEnum):
    PROBE = 0
    REPLICATE = 1
    SNAPSHOT = 2


@dataclass(frozen=True, slots=True)
class Config:
    node_id: int
    election_tick: int = 10
    heartbeat_tick: int = 1
    pre_vote: bool = True
    check_quorum: bool = True
    max_inflight_msgs: int = 64
    max_inflight_bytes: int = 8 << 20
    max_msg_bytes: int = 1 << 20
    max_uncommitted_entries: int = 100_000

    def validate(self) -> None:
        if self.node_id <= 0:
            raise ConfigError("node_id must be positive")
        if self.heartbeat_tick <= 0 or self.election_tick <= self.heartbeat_tick:
            raise ConfigError("need 0 < heartbeat_tick < election_tick")
        if self.max_inflight_msgs <= 0 or self.max_inflight_bytes <= 0:
            raise ConfigError("in-flight limits must be positive")


@dataclass(slots=True)
class Progress:
    match: int = 0
    next: int = 1
    state: ProgressState = ProgressState.PROBE
    probe_sent: bool = False
    recent_active: bool = False
    pending_snapshot: int = 0
    inflight: deque[tuple[int, int]] = field(default_factory=deque)  # (last index, bytes)
    inflight_bytes: int = 0

    def is_paused(self, config: Config) -> bool:
        if self.state == ProgressState.PROBE:
            return self.probe_sent
        if self.state == ProgressState.SNAPSHOT:
            return True
        return (
            len(self.inflight) >= config.max_inflight_msgs
            or self.inflight_bytes >= config.max_inflight_bytes
        )

    def free_to(self, index: int) -> None:
        while self.inflight and self.inflight[0][0] <= index:
            self.inflight_bytes -= self.inflight.popleft()[1]

    def become(self, state: ProgressState, next_index: int) -> None:
        self.state = state
        self.next = next_index
        self.probe_sent = False
        self.pending_snapshot = 0
        self.inflight.clear()
        self.inflight_bytes = 0


class ProposalDropped(LocalProtocolError):
    """The proposal cannot be accepted now (not leader, transfer in progress, conf pending)."""


class RaftNode:
    def __init__(
        self,
        config: Config,
        rng: Random,
        conf: ConfState | None = None,
        hard_state: HardState | None = None,
        snapshot: Snapshot | None = None,
        entries: list[Entry] | None = None,
    ) -> None:
        config.validate()
        self.config = config
        self.id = config.node_id
        self.rng = rng
        hard = hard_state or HardState()
        base = snapshot or Snapshot(0, 0, conf or ConfState(frozenset({config.node_id})))
        self.log = RaftLog(base, entries or [], hard.commit)
        self.conf = base.conf
        # membership changes in the log after the snapshot take effect once applied
        self.term = hard.term
        self.vote = hard.vote
        self.role = Role.FOLLOWER
        self.lead = 0
        self.progress: dict[int, Progress] = {}
        self.votes: dict[int, bool] = {}
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_timeout = config.election_tick
        self.pending_conf_index = 0
        self.lead_transferee = 0
        self.messages: list[Message] = []
        self.read_states: list[ReadState] = []
        self._pending_reads: list[tuple[int, bytes, int]] = []  # (index, ctx, requester)
        self._read_acks: dict[bytes, set[int]] = {}
        self._waiting_reads: list[tuple[bytes, int]] = []  # before the first commit of a term
        self._prev_hard = hard
        self._reset_timeout()

    # ------------------------------------------------------------------ queries

    @property
    def is_leader(self) -> bool:
        return self.role == Role.LEADER

    def hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.log.committed)

    def quorum(self) -> int:
        return len(self.conf.voters) // 2 + 1

    def _promotable(self) -> bool:
        return self.id in self.conf.voters

    # ------------------------------------------------------------------ time

    def _reset_timeout(self) -> None:
        tick = self.config.election_tick
        self.randomized_timeout = tick + self.rng.randrange(tick)

    def tick(self) -> None:
        if self.role == Role.LEADER:
            self._tick_leader()
        else:
            self.election_elapsed += 1
            if self._promotable() and self.election_elapsed >= self.randomized_timeout:
                self.election_elapsed = 0
                self._campaign(pre_vote=self.config.pre_vote)

    def _tick_leader(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.config.election_tick:
            self.election_elapsed = 0
            if self.config.check_quorum:
                active = sum(
                    1 for peer, pr in self.progress.items()
                    if peer in self.conf.voters and (peer == self.id or pr.recent_active)
                )
                for peer, pr in self.progress.items():
                    pr.recent_active = peer == self.id
                if active < self.quorum():
                    self._become_follower(self.term, 0)
                    return
            self.lead_transferee = 0  # a transfer that did not finish in time is abandoned
        if self.heartbeat_elapsed >= self.config.heartbeat_tick:
            self.heartbeat_elapsed = 0
            self._broadcast_heartbeat(b"")

    # ------------------------------------------------------------------ role changes

    def _become_follower(self, term: int, lead: int) -> None:
        if term != self.term:
            self.term = term
            self.vote = 0
        self.role = Role.FOLLOWER
        self.lead = lead
        self.election_elapsed = 0
        self.lead_transferee = 0
        self.progress = {}
        self._pending_reads.clear()
        self._read_acks.clear()
        self._reset_timeout()

    def campaign(self) -> None:
        """Start an election now, as if the election timeout had fired (operators, tests)."""
        if self.role != Role.LEADER and self._promotable():
            self.election_elapsed = 0
            self._campaign(pre_vote=self.config.pre_vote)

    def _campaign(self, pre_vote: bool, transfer: bool = False) -> None:
        if pre_vote:
            self.role = Role.PRE_CANDIDATE
            term = self.term + 1
            msg_type = MsgType.PRE_VOTE
        else:
            self.term += 1
            self.vote = self.id
            self.role = Role.CANDIDATE
            term = self.term
            msg_type = MsgType.VOTE
        self.lead = 0
        self.votes = {self.id: True}
        self._reset_timeout()
        if self._tally() >= self.quorum():
            self._won_election(pre_vote)
            return
        context = b"transfer" if transfer else b""
        for peer in sorted(self.conf.voters):
            if peer != self.id:
                self._send(Message(msg_type, peer, self.id, term, self.log.last_term(),
                                   self.log.last_index(), context=context))

    def _tally(self) -> int:
        return sum(1 for peer, granted in self.votes.items()
                   if granted and peer in self.conf.voters)

    def _won_election(self, pre_vote: bool) -> None:
        if pre_vote:
            self._campaign(pre_vote=False)
        else:
            self._become_leader()

    def _become_leader(self) -> None:
        self.role = Role.LEADER
        self.lead = self.id
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        last = self.log.last_index()
        self.progress = {}
        for peer in self.conf.voters | self.conf.learners:
            self.progress[peer] = Progress(match=0, next=last + 1)
        me = self.progress.setdefault(self.id, Progress())
        me.recent_active = True
        # conf changes in the uncommitted tail count as pending
        self.pending_conf_index = last
        self._append([Entry(self.term, last + 1)])
        self._broadcast_append()

    # ------------------------------------------------------------------ proposals

    def propose(self, data: bytes) -> int:
        """Append `data` as a new entry (leader only); return its index."""
        return self._propose(data, EntryKind.NORMAL)

    def propose_batch(self, datas: list[bytes]) -> int:
        """Append several entries with one broadcast; return the index of the last one."""
        self._check_can_propose(len(datas))
        first = self.log.last_index() + 1
        self._append([Entry(self.term, first + i, data) for i, data in enumerate(datas)])
        self._broadcast_append()
        return first + len(datas) - 1

    def propose_conf_change(self, change: ConfChange) -> int:
        if self.pending_conf_index > self.log.applied:
            raise ProposalDropped("a membership change is already in flight")
        index = self._propose(change.to_bytes(), EntryKind.CONF_CHANGE)
        self.pending_conf_index = index
        return index

    def _check_can_propose(self, count: int) -> None:
        if self.role != Role.LEADER:
            raise ProposalDropped(f"node {self.id} is not the leader (leader: {self.lead})")
        if self.lead_transferee:
            raise ProposalDropped("leadership transfer in progress")
        uncommitted = self.log.last_index() - self.log.committed
        if uncommitted + count > self.config.max_uncommitted_entries:
            raise ProposalDropped("too many uncommitted entries")

    def _propose(self, data: bytes, kind: EntryKind) -> int:
        self._check_can_propose(1)
        index = self.log.last_index() + 1
        self._append([Entry(self.term, index, data, kind)])
        self._broadcast_append()
        return index

    def _append(self, entries: list[Entry]) -> None:
        last = self.log.append(entries)
        me = self.progress[self.id]
        me.match, me.next = last, last + 1
        self._maybe_commit()

    def read_index(self, context: bytes) -> None:
        """Ask for a linearizable read; a ReadState with `context` comes out in a Ready."""
        if self.role == Role.LEADER:
            self._leader_read(context, self.id)
        elif self.lead:
            self._send(Message(MsgType.READ_INDEX, self.lead, self.id, self.term,
                               context=context))
        else:
            raise ProposalDropped("no leader known for a read index")

    def _leader_read(self, context: bytes, requester: int) -> None:
        if self.log.term(self.log.committed) != self.term:
            self._waiting_reads.append((context, requester))  # wait for our first commit
            return
        if len(self.conf.voters) == 1:
            self._release_read(self.log.committed, context, requester)
            return
        self._pending_reads.append((self.log.committed, context, requester))
        self._read_acks[context] = {self.id}
        self._broadcast_heartbeat(context)

    def _release_read(self, index: int, context: bytes, requester: int) -> None:
        if requester == self.id:
            self.read_states.append(ReadState(index, context))
        else:
            self._send(Message(MsgType.READ_INDEX_RESP, requester, self.id, self.term,
                               index=index, context=context))

    def transfer_leadership(self, to: int) -> None:
        if self.role != Role.LEADER or to == self.id or to not in self.conf.voters:
            raise ProposalDropped(f"cannot transfer leadership to {to}")
        self.lead_transferee = to
        self.election_elapsed = 0
        pr = self.progress[to]
        if pr.match == self.log.last_index():
            self._send(Message(MsgType.TIMEOUT_NOW, to, self.id, self.term))
        else:
            self._send_append(to)

    # ------------------------------------------------------------------ step

    def step(self, m: Message) -> None:
        """Handle one message from a peer."""
        if m.term > self.term:
            if m.type in (MsgType.PRE_VOTE, MsgType.VOTE):
                in_lease = (
                    self.config.check_quorum and self.lead != 0
                    and self.election_elapsed < self.config.election_tick
                )
                if in_lease and m.context != b"transfer":
                    return  # a healthy leader exists: ignore the disruptive candidate
            if m.type == MsgType.PRE_VOTE:
                pass  # pre-votes never change our term
            elif m.type == MsgType.PRE_VOTE_RESP and not m.reject:
                pass  # the term in a granted pre-vote is the candidate's future term
            else:
                lead = m.frm if m.type in (MsgType.APPEND, MsgType.HEARTBEAT,
                                           MsgType.SNAPSHOT) else 0
                self._become_follower(m.term, lead)
        elif m.term < self.term:
            if m.type in (MsgType.APPEND, MsgType.HEARTBEAT) and (
                self.config.check_quorum or self.config.pre_vote
            ):
                # let a stale leader learn our term and step down
                self._send(Message(MsgType.APPEND_RESP, m.frm, self.id, self.term))
            elif m.type == MsgType.PRE_VOTE:
                self._send(Message(MsgType.PRE_VOTE_RESP, m.frm, self.id, self.term,
                                   reject=True))
            return
        if m.type in (MsgType.PRE_VOTE, MsgType.VOTE):
            self._handle_vote_request(m)
            return
        handler = _HANDLERS[self.role].get(m.type)
        if handler is not None:
            handler(self, m)

    def _handle_vote_request(self, m: Message) -> None:
        can_vote = (
            self.vote == m.frm
            or (self.vote == 0 and self.lead == 0)
            or (m.type == MsgType.PRE_VOTE and m.term > self.term)
        )
        resp_type = MsgType.PRE_VOTE_RESP if m.type == MsgType.PRE_VOTE else MsgType.VOTE_RESP
        if can_vote and self.log.is_up_to_date(m.index, m.log_term):
            self._send(Message(resp_type, m.frm, self.id, m.term))
            if m.type == MsgType.VOTE:
                self.election_elapsed = 0
                self.vote = m.frm
        else:
            self._send(Message(resp_type, m.frm, self.id, self.term, reject=True))

    # follower ------------------------------------------------------------

    def _follower_append(self, m: Message) -> None:
        self.election_elapsed = 0
        self.lead = m.frm
        self._handle_append(m)

    def _follower_heartbeat(self, m: Message) -> None:
        self.election_elapsed = 0
        self.lead = m.frm
        self.log.commit_to(min(m.commit, self.log.last_index()))
        self._send(Message(MsgType.HEARTBEAT_RESP, m.frm, self.id, self.term,
                           context=m.context))

    def _follower_snapshot(self, m: Message) -> None:
        self.election_elapsed = 0
        self.lead = m.frm
        snap = m.snapshot
        assert snap is not None
        if snap.index <= self.log.committed:
            self._send(Message(MsgType.APPEND_RESP, m.frm, self.id, self.term,
                               index=self.log.committed))
            return
        if self.log.match_term(snap.index, snap.term):
            self.log.commit_to(snap.index)  # we already have the entries: fast-forward
        else:
            self.log.restore(snap)
            self.conf = snap.conf
        self._send(Message(MsgType.APPEND_RESP, m.frm, self.id, self.term,
                           index=self.log.last_index()))

    def _follower_timeout_now(self, m: Message) -> None:
        if self._promotable():
            self._campaign(pre_vote=False, transfer=True)

    def _follower_read_index_resp(self, m: Message) -> None:
        self.read_states.append(ReadState(m.index, m.context))

    def _handle_append(self, m: Message) -> None:
        log = self.log
        if m.index < log.committed:
            self._send(Message(MsgType.APPEND_RESP, m.frm, self.id, self.term,
                               index=log.committed))
            return
        if log.match_term(m.index, m.log_term):
            last_new = log.append_matching(m.index, m.entries)
            log.commit_to(min(m.commit, last_new))
            self._send(Message(MsgType.APPEND_RESP, m.frm, self.id, self.term, index=last_new))
        else:
            hint = min(m.index, log.last_index())
            self._send(Message(MsgType.APPEND_RESP, m.frm, self.id, self.term, index=m.index,
                               reject=True, reject_hint=hint))

    # candidate -----------------------------------------------------------

    def _candidate_vote_resp(self, m: Message) -> None:
        expected = MsgType.PRE_VOTE_RESP if self.role == Role.PRE_CANDIDATE else MsgType.VOTE_RESP
        if m.type != expected:
            return
        self.votes[m.frm] = not m.reject
        granted = self._tally()
        rejected = sum(1 for p, g in self.votes.items() if not g and p in self.conf.voters)
        if granted >= self.quorum():
            self._won_election(self.role == Role.PRE_CANDIDATE)
        elif rejected >= self.quorum():
            self._become_follower(self.term, 0)

    def _candidate_leader_msg(self, m: Message) -> None:
        self._become_follower(m.term, m.frm)
        _HANDLERS[Role.FOLLOWER][m.type](self, m)

    # leader --------------------------------------------------------------

    def _leader_append_resp(self, m: Message) -> None:
        pr = self.progress.get(m.frm)
        if pr is None:
            return
        pr.recent_active = True
        if m.reject:
            if m.index <= pr.match:
                return  # stale: that prefix is known to match
            if pr.state == ProgressState.REPLICATE:
                pr.become(ProgressState.PROBE, pr.match + 1)
            elif m.index == pr.next - 1:
                pr.next = max(min(m.index, m.reject_hint + 1), pr.match + 1)
                pr.probe_sent = False
            else:
                return  # a reply to an older probe
            self._send_append(m.frm)
            return
        if m.index > pr.match:
            pr.match = m.index
            pr.next = max(pr.next, m.index + 1)
            if pr.state == ProgressState.PROBE:
                pr.become(ProgressState.REPLICATE, m.index + 1)
            elif pr.state == ProgressState.SNAPSHOT and pr.match >= pr.pending_snapshot:
                pr.become(ProgressState.PROBE, pr.match + 1)
            else:
                pr.free_to(m.index)
            if self._maybe_commit():
                self._broadcast_append()
            elif pr.match < self.log.last_index():
                self._send_append(m.frm)
            if m.frm == self.lead_transferee and pr.match == self.log.last_index():
                self._send(Message(MsgType.TIMEOUT_NOW, m.frm, self.id, self.term))
        elif pr.state == ProgressState.PROBE:
            pr.probe_sent = False
            if pr.match < self.log.last_index():
                self._send_append(m.frm)

    def _leader_heartbeat_resp(self, m: Message) -> None:
        pr = self.progress.get(m.frm)
        if pr is None:
            return
        pr.recent_active = True
        pr.probe_sent = False
        if pr.state == ProgressState.SNAPSHOT:
            pr.become(ProgressState.PROBE, pr.match + 1)  # retry a snapshot that got lost
        elif pr.is_paused(self.config) and pr.inflight:
            # appends may have been lost: free a slot so the next one probes the gap
            pr.inflight_bytes -= pr.inflight.popleft()[1]
        if pr.match < self.log.last_index():
            self._send_append(m.frm)
        if m.context and m.context in self._read_acks and m.frm in self.conf.voters:
            acks = self._read_acks[m.context]
            acks.add(m.frm)
            if len(acks & self.conf.voters) >= self.quorum():
                self._release_reads_up_to(m.context)

    def _release_reads_up_to(self, context: bytes) -> None:
        while self._pending_reads:
            index, ctx, requester = self._pending_reads.pop(0)
            self._read_acks.pop(ctx, None)
            self._release_read(index, ctx, requester)
            if ctx == context:
                return

    def _leader_read_index(self, m: Message) -> None:
        self._leader_read(m.context, m.frm)

    # ------------------------------------------------------------------ replication

    def _maybe_commit(self) -> bool:
        matches = sorted(
            (self.progress[p].match if p in self.progress else 0 for p in self.conf.voters),
            reverse=True,
        )
        if not matches:
            return False
        candidate = matches[self.quorum() - 1]
        if candidate > self.log.committed and self.log.term(candidate) == self.term:
            self.log.commit_to(candidate)
            if self._waiting_reads:
                waiting, self._waiting_reads = self._waiting_reads, []
                for context, requester in waiting:
                    self._leader_read(context, requester)
            return True
        return False

    def _broadcast_append(self) -> None:
        for peer in sorted(self.progress):
            if peer != self.id:
                self._send_append(peer)

    def _broadcast_heartbeat(self, context: bytes) -> None:
        for peer in sorted(self.progress):
            if peer != self.id:
                pr = self.progress[peer]
                commit = min(pr.match, self.log.committed)
                self._send(Message(MsgType.HEARTBEAT, peer, self.id, self.term, commit=commit,
                                   context=context))

    def _send_append(self, to: int) -> None:
        pr = self.progress[to]
        if pr.is_paused(self.config):
            return
        log = self.log
        prev = pr.next - 1
        prev_term = log.term(prev)
        if prev_term is None or pr.next < log.first_index():
            snap = log.snapshot
            pr.become(ProgressState.SNAPSHOT, pr.next)
            pr.pending_snapshot = snap.index
            self._send(Message(MsgType.SNAPSHOT, to, self.id, self.term, snapshot=snap))
            return
        entries: tuple[Entry, ...] = ()
        if pr.next <= log.last_index():
            entries = tuple(log.slice(pr.next, log.last_index() + 1, self.config.max_msg_bytes))
        message = Message(MsgType.APPEND, to, self.id, self.term, prev_term, prev, entries,
                          log.committed)
        self._send(message)
        if pr.state == ProgressState.REPLICATE and entries:
            last = entries[-1].index
            pr.next = last + 1
            size = message.size_bytes()
            pr.inflight.append((last, size))
            pr.inflight_bytes += size
        elif pr.state == ProgressState.PROBE:
            pr.probe_sent = True

    def _send(self, message: Message) -> None:
        self.messages.append(message)

    # ------------------------------------------------------------------ ready / advance

    def has_ready(self) -> bool:
        return bool(
            self.messages or self.read_states or self.log.pending_snapshot
            or self.log.unstable_entries() or self.log.next_committed_entries()
            or self.hard_state() != self._prev_hard
        )

    def ready(self) -> Ready:
        hard = self.hard_state()
        ready = Ready(
            hard_state=hard if hard != self._prev_hard else None,
            entries=self.log.unstable_entries(),
            snapshot=self.log.pending_snapshot,
            messages=self.messages,
            committed_entries=self.log.next_committed_entries(),
            read_states=self.read_states,
            soft_leader=self.lead,
        )
        self.messages = []
        self.read_states = []
        return ready

    def advance(self, ready: Ready) -> None:
        """The caller persisted, sent and applied what `ready` held."""
        if ready.hard_state is not None:
            self._prev_hard = ready.hard_state
        if ready.snapshot is not None:
            self.log.pending_snapshot = None
            self.log.applied = max(self.log.applied, ready.snapshot.index)
        if ready.entries:
            last = ready.entries[-1]
            # a conflicting append may have replaced these entries meanwhile
            if self.log.term(last.index) == last.term:
                self.log.stable = max(self.log.stable, last.index)
        for entry in ready.committed_entries:
            if entry.kind == EntryKind.CONF_CHANGE:
                self._apply_conf_change(ConfChange.from_bytes(entry.data))
            self.log.applied = entry.index

    def _apply_conf_change(self, change: ConfChange) -> None:
        self.conf = change.apply_to(self.conf)
        if self.role != Role.LEADER:
            return
        if change.node_id == self.id and self.id not in self.conf.voters:
            self._become_follower(self.term, 0)
            return
        for peer in sorted(self.conf.voters | self.conf.learners):
            if peer not in self.progress:
                self.progress[peer] = Progress(match=0, next=self.log.last_index() + 1)
                self._send_append(peer)  # start catching the new member up at once
        for peer in list(self.progress):
            if peer not in self.conf.voters | self.conf.learners:
                del self.progress[peer]
        if self._maybe_commit():
            self._broadcast_append()

    def compact(self, index: int, data: bytes) -> None:
        """The application snapshotted its state at applied `index`: drop older entries."""
        self.log.compact(index, data, self.conf)


_HANDLERS: dict[Role, dict[MsgType, Callable[[RaftNode, Message], None]]] = {
    Role.FOLLOWER: {
        MsgType.APPEND: RaftNode._follower_append,
        MsgType.HEARTBEAT: RaftNode._follower_heartbeat,
        MsgType.SNAPSHOT: RaftNode._follower_snapshot,
        MsgType.TIMEOUT_NOW: RaftNode._follower_timeout_now,
        MsgType.READ_INDEX_RESP: RaftNode._follower_read_index_resp,
    },
    Role.PRE_CANDIDATE: {
        MsgType.PRE_VOTE_RESP: RaftNode._candidate_vote_resp,
        MsgType.APPEND: RaftNode._candidate_leader_msg,
        MsgType.HEARTBEAT: RaftNode._candidate_leader_msg,
        MsgType.SNAPSHOT: RaftNode._candidate_leader_msg,
    },
    Role.CANDIDATE: {
        MsgType.VOTE_RESP: RaftNode._candidate_vote_resp,
        MsgType.APPEND: RaftNode._candidate_leader_msg,
        MsgType.HEARTBEAT: RaftNode._candidate_leader_msg,
        MsgType.SNAPSHOT: RaftNode._candidate_leader_msg,
    },
    Role.LEADER: {
        MsgType.APPEND_RESP: RaftNode._leader_append_resp,
        MsgType.HEARTBEAT_RESP: RaftNode._leader_heartbeat_resp,
        MsgType.READ_INDEX: RaftNode._leader_read_index,
    },
}
