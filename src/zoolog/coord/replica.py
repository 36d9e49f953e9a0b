"""One server of a replicated coordination ensemble: `CoordService` on the Raft log, sans-I/O.

Owns the glue between this server's `CoordService` (its client connections, reads, prep) and
its `RaftNode` (the replicated log): where each proposal goes, how a committed entry becomes
an applied txn with its zxid, who decides session expiry, and how `sync` waits for a quorum.
It never touches a socket, clock, file or thread; the runtime (or `zoolog.testing.coord_sim`)
feeds it time, peer messages and client events, persists Raft's `Ready`, and carries out what
it asks for.

A write's path (ZooKeeper's FollowerRequestProcessor and Leader, on Raft):

    client -> this server's CoordService: prep (stateless) -> Txn
      leader:   entry = origin(this server, boot id, seq) + txn bytes, time stamped here
      follower: Forward(seq, txn) to the leader, which stamps its time and proposes it
    Raft commits the entry -> every server, in log order: zxid derived, CoordState.apply,
      watches fired on that server's connections; the origin server also answers its client

- **zxids** are `(epoch << 32) | counter`, derived at apply time from the log alone: the epoch is
  the Raft term of the entry, the counter restarts at 1 in each term that carries txns. So
  they are identical on every replica, monotonic across leaders, and survive snapshots (the
  last zxid is in the coordination snapshot, and the term and counter are its two halves).
- **Time** in a txn is the leader's clock when it proposed it: `apply` stays deterministic.
- **Lost proposals.** A proposal is answered only through its commit. One that cannot be
  (the leader changed, the proposal was refused, a committed entry from this server with a
  later sequence number overtook it, or it waited longer than `forward_timeout_ms`) closes
  its client's connection: the client sees a connection loss and retries, as with ZooKeeper.
- **A server's proposals reach the log in the order its clients sent them** (ZooKeeper's
  FIFO client order), whatever the network reorders: a leader takes a Forward only in the
  term it was sent for and only with sequence numbers above the last it took from that
  server in this term; terms only grow along the log. So an overtaken or late proposal is
  dropped, never logged out of order.
- **Sessions.** Creation and closing are txns. Every server reports the sessions its clients
  touched to the leader (`Touches`, every tick); the leader alone expires them (closeSession
  txns) and gives every session a fresh timeout when it takes over.
- **No leader, no service.** A server that knows no leader closes its client connections and
  refuses new ones, so that its clients move to a server that can reach a quorum (read-only
  mode is not built yet).
- **`sync`** asks Raft for a read index (a quorum confirms the leader) and is answered once
  this server has applied that index: sync-then-read is linearizable.
- **Snapshots.** Raft snapshots carry the coordination snapshot (`coord/snapshot.py`); an
  installed one replaces the state and closes this server's client connections.

Peer traffic besides Raft's own messages: `Forward` (follower -> leader, the txns of its
clients in sequence order) and `Touches` (any server -> leader).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from zoolog.consensus.node import Config as RaftConfig
from zoolog.consensus.node import ProposalDropped, RaftNode, Role
from zoolog.consensus.types import (
    ConfState,
    Entry,
    EntryKind,
    HardState,
    Message,
    Ready,
    Snapshot,
)
from zoolog.coord import snapshot as snapshots
from zoolog.coord.datatree import CoordState
from zoolog.coord.service import CoordService, Output, Pending, ServiceConfig
from zoolog.coord.txn import Txn
from zoolog.protocol.zk._generated.jute_records import ConnectRequest

if TYPE_CHECKING:
    from random import Random

ENTRY_TXN = 1
_ENTRY_HEAD = struct.Struct(">Biqq")  # kind, origin server, origin boot id, sequence number
_TIME_AT = _ENTRY_HEAD.size + 20  # TxnHeader: clientId(8) cxid(4) zxid(8) then time(8)
_TIME = struct.Struct(">q")
_SYNC_CONTEXT = struct.Struct(">qq")  # boot id, sync number
COUNTER_MAX = (1 << 32) - 1


@dataclass(frozen=True, slots=True)
class Forward:
    """A follower's proposals for the leader: (sequence number, txn bytes) in order."""

    to: int
    frm: int
    term: int
    """The leader's term as the follower knew it: a leader takes forwards of its own term
    only, so a late one cannot land after proposals the follower made to a later leader."""
    boot_id: int
    txns: tuple[tuple[int, bytes], ...]


@dataclass(frozen=True, slots=True)
class Touches:
    """Sessions whose clients were heard from since the last report."""

    to: int
    frm: int
    session_ids: tuple[int, ...]


PeerMessage = Message | Forward | Touches


@dataclass(frozen=True, slots=True)
class ReplicaConfig:
    node_id: int
    boot_id: int
    """Distinguishes this run of the server from earlier ones (its sequence numbers restart)."""
    forward_timeout_ms: int = 4000
    """A proposal not committed within this long is given up (its connection is closed)."""
    snapshot_entries: int = 10_000
    """Compact the Raft log once this many entries were applied since the last snapshot."""


@dataclass(slots=True)
class _Waiting:
    txn: Txn
    conn_id: int | None
    pending: Pending | None
    sent_ms: int


@dataclass(slots=True)
class ReplicaStats:
    proposed: int = 0
    forwarded: int = 0
    lost: int = 0
    applied: int = 0
    snapshots_installed: int = 0
    leader_changes: int = 0
    syncs: int = 0
    touches_sent: int = 0
    stale_entries: list[str] = field(default_factory=list)


def encode_entry(origin: int, boot_id: int, seq: int, txn_bytes: bytes) -> bytes:
    return _ENTRY_HEAD.pack(ENTRY_TXN, origin, boot_id, seq) + txn_bytes


class CoordReplica:
    """See the module docstring. Call order for the runtime:

    1. client events -> `open`, `connect`, `request`, `lost`; peer messages -> `step`;
       time -> `tick(now_ms)` (once per Raft tick)
    2. `take_output(now_ms)`: route the service's proposals; returns the client sends/closes
    3. while `raft.has_ready()`: `ready = raft.ready()`, persist it, send `ready.messages`
       and `take_peer_messages()`, then `advance(ready, now_ms)` (applies, answers), which
       returns a Snapshot to persist when it compacted the log
    """

    def __init__(
        self,
        config: ReplicaConfig,
        service_config: ServiceConfig,
        raft_config: RaftConfig,
        rng: Random,
        conf: ConfState,
        now_ms: int,
        hard_state: HardState | None = None,
        snapshot: Snapshot | None = None,
        entries: list[Entry] | None = None,
    ) -> None:
        assert service_config.replicated, "a replica's service must be configured replicated"
        assert raft_config.node_id == config.node_id == service_config.server_id
        self.config = config
        self.id = config.node_id
        state = (
            snapshots.decode(snapshot.data, service_config.limits)
            if snapshot is not None and snapshot.data
            else CoordState(service_config.limits)
        )
        self.service = CoordService(state, service_config, now_ms)
        self.raft = RaftNode(raft_config, rng, conf=conf, hard_state=hard_state,
                             snapshot=snapshot, entries=entries)
        self._epoch, self._counter = state.last_zxid >> 32, state.last_zxid & COUNTER_MAX
        self._seq = 0
        self._waiting: dict[int, _Waiting] = {}  # by sequence number, in order
        self._lead = 0
        self._role = Role.FOLLOWER
        self._sync_no = 0
        self._syncs: dict[bytes, tuple[int, Pending]] = {}  # read context -> waiting sync
        self._syncs_ready: list[tuple[int, int, Pending]] = []  # (index, conn, pending)
        self._outbox: list[PeerMessage] = []
        self._sync_sent_ms: dict[bytes, int] = {}
        self._accepted: dict[tuple[int, int], int] = {}  # leader: (server, boot) -> last seq
        self.stats = ReplicaStats()

    # ------------------------------------------------------------------ queries

    @property
    def serving(self) -> bool:
        """Clients are served only while a leader is known."""
        return self.raft.lead != 0

    @property
    def applied_index(self) -> int:
        return self.raft.log.applied

    @property
    def state(self) -> CoordState:
        return self.service.state

    # ------------------------------------------------------------------ client events

    def open(self, conn_id: int, peer: tuple[str, int], now_ms: int,
             x509: str | None = None) -> None:
        self.service.open(conn_id, peer, now_ms, x509)

    def connect(self, conn_id: int, request: ConnectRequest, readonly_byte: bool,
                now_ms: int) -> None:
        if not self.serving:
            self.service.close(conn_id, "this server has no leader (no quorum)")
            return
        self.service.connect(conn_id, request, readonly_byte, now_ms)

    def request(self, conn_id: int, xid: int, op: int, record: object, now_ms: int,
                body: bytes | None = None) -> None:
        self.service.request(conn_id, xid, op, record, now_ms, body)

    def lost(self, conn_id: int) -> None:
        self.service.lost(conn_id)

    # ------------------------------------------------------------------ routing

    def take_output(self, now_ms: int) -> Output:
        """Route the service's proposals and syncs; return what the clients are sent."""
        self._route_syncs()
        out = self.service.take_output()
        if out.proposals:
            self._route(out.proposals, now_ms)
            # a refused proposal closed connections: collect those closes too
            more = self.service.take_output()
            out = Output(out.sends + more.sends, out.closes + more.closes, [])
        return out

    def _route(self, proposals: Iterable[tuple[Txn, int | None, Pending | None]],
               now_ms: int) -> None:
        is_leader = self.raft.role == Role.LEADER
        lead = self.raft.lead
        batch: list[bytes] = []
        forward: list[tuple[int, bytes]] = []
        for txn, conn_id, pending in proposals:
            self._seq += 1
            seq = self._seq
            if is_leader:
                txn.time_ms = now_ms
                batch.append(encode_entry(self.id, self.config.boot_id, seq, txn.to_bytes()))
            elif lead and conn_id is not None:
                forward.append((seq, txn.to_bytes()))
            else:
                # the server's own txns (expiry) are the leader's alone; without a leader
                # a client's txn has nowhere to go
                self.service.proposal_lost(txn, conn_id, "no leader to take the write")
                self.stats.lost += 1
                continue
            self._waiting[seq] = _Waiting(txn, conn_id, pending, now_ms)
        if batch:
            try:
                self.raft.propose_batch(batch)
                self.stats.proposed += len(batch)
            except ProposalDropped as err:
                self._lose_all(f"write refused: {err}")
        if forward:
            self._outbox.append(Forward(lead, self.id, self.raft.term, self.config.boot_id,
                                        tuple(forward)))
            self.stats.forwarded += len(forward)

    def _route_syncs(self) -> None:
        syncs = self.service.syncs
        if not syncs:
            return
        self.service.syncs = []
        for conn_id, pending in syncs:
            self._sync_no += 1
            context = _SYNC_CONTEXT.pack(self.config.boot_id, self._sync_no)
            try:
                self.raft.read_index(context)
            except ProposalDropped:
                self.service.close(conn_id, "no leader to confirm the sync")
                continue
            self._syncs[context] = (conn_id, pending)
            self._sync_sent_ms[context] = pending.started_ms
            self.stats.syncs += 1

    def _lose_all(self, reason: str) -> None:
        for waiting in self._waiting.values():
            self.service.proposal_lost(waiting.txn, waiting.conn_id, reason)
            self.stats.lost += 1
        self._waiting.clear()

    # ------------------------------------------------------------------ peers

    def step(self, message: PeerMessage, now_ms: int) -> None:
        """A message from another server of the ensemble."""
        if isinstance(message, Message):
            self.raft.step(message)
        elif isinstance(message, Forward):
            self._forwarded(message, now_ms)
        else:
            if self.raft.role == Role.LEADER:
                tracker = self.service.tracker
                for session_id in message.session_ids:
                    tracker.touch(session_id, now_ms)
        self._after_step(now_ms)

    def _forwarded(self, message: Forward, now_ms: int) -> None:
        if self.raft.role != Role.LEADER or message.term != self.raft.term:
            return  # the sender learns the new leader and gives these up
        key = (message.frm, message.boot_id)
        last = self._accepted.get(key, 0)
        stamp = _TIME.pack(now_ms)
        batch = []
        for seq, txn_bytes in message.txns:
            if seq <= last:
                continue  # late: something sent after it is in the log already
            last = seq
            entry = bytearray(encode_entry(message.frm, message.boot_id, seq, txn_bytes))
            entry[_TIME_AT:_TIME_AT + 8] = stamp
            batch.append(bytes(entry))
        if not batch:
            return
        try:
            self.raft.propose_batch(batch)
            self.stats.proposed += len(batch)
            self._accepted[key] = last
        except ProposalDropped:
            pass  # the follower times them out

    def take_peer_messages(self) -> list[PeerMessage]:
        out, self._outbox = self._outbox, []
        return out

    # ------------------------------------------------------------------ time

    def tick(self, now_ms: int) -> None:
        """One Raft tick: elections and heartbeats, session reports or expiry, timeouts."""
        self.raft.tick()
        self._after_step(now_ms)
        if self.raft.role == Role.LEADER:
            self.service.touched.clear()
            self.service.tick(now_ms)  # expiry: closeSession txns
        elif self.raft.lead and self.service.touched:
            touched = tuple(sorted(self.service.touched))
            self.service.touched.clear()
            self._outbox.append(Touches(self.raft.lead, self.id, touched))
            self.stats.touches_sent += 1
        else:
            self.service.touched.clear()
        deadline = now_ms - self.config.forward_timeout_ms
        expired = [seq for seq, w in self._waiting.items() if w.sent_ms < deadline]
        for seq in expired:
            waiting = self._waiting.pop(seq)
            self.service.proposal_lost(waiting.txn, waiting.conn_id,
                                       "write not committed in time")
            self.stats.lost += 1
        late = [c for c, sent in self._sync_sent_ms.items() if sent < deadline]
        for context in late:
            del self._sync_sent_ms[context]
            waiting_sync = self._syncs.pop(context, None)
            if waiting_sync is not None:
                self.service.close(waiting_sync[0], "sync not confirmed in time")

    def _after_step(self, now_ms: int) -> None:
        raft = self.raft
        if raft.lead == self._lead and raft.role == self._role:
            return
        was_leader = self._role == Role.LEADER
        self._lead, self._role = raft.lead, raft.role
        self.stats.leader_changes += 1
        self._lose_all(f"leader changed (now {raft.lead or 'none'})")
        for conn_id, _ in self._syncs.values():
            self.service.close(conn_id, "leader changed during a sync")
        self._syncs.clear()
        self._sync_sent_ms.clear()
        self._accepted.clear()
        if raft.role == Role.LEADER:
            self.service.refresh_sessions(now_ms)
        elif was_leader:
            self.service.refresh_sessions(now_ms)  # forget closes this server proposed
        if not raft.lead:
            self.service.close_all("this server lost its leader")

    # ------------------------------------------------------------------ apply

    def advance(self, ready: Ready, now_ms: int) -> Snapshot | None:
        """`ready` was persisted and its messages sent: apply it. Returns the snapshot to
        persist if the log was compacted."""
        applied = self.raft.log.applied
        if ready.snapshot is not None and ready.snapshot.index > applied:
            self._install(ready.snapshot, now_ms)
            applied = ready.snapshot.index
        for entry in ready.committed_entries:
            if entry.index <= applied:
                continue
            if entry.kind == EntryKind.NORMAL and entry.data:
                self._apply(entry, now_ms)
            applied = entry.index
        for read in ready.read_states:
            waiting = self._syncs.pop(read.context, None)
            self._sync_sent_ms.pop(read.context, None)
            if waiting is not None:
                self._syncs_ready.append((read.index, *waiting))
        self.raft.advance(ready)
        self._release_syncs(now_ms)
        self._after_step(now_ms)
        if self.raft.log.applied - self.raft.log.snapshot.index >= self.config.snapshot_entries:
            return self.compact()
        return None

    def compact(self) -> Snapshot:
        """Snapshot the applied state into the Raft log (dropping the entries it covers)."""
        self.raft.compact(self.raft.log.applied, snapshots.encode(self.service.state))
        return self.raft.log.snapshot

    def _install(self, snap: Snapshot, now_ms: int) -> None:
        state = snapshots.decode(snap.data, self.service.config.limits)
        self.service.replace_state(state, now_ms)
        self._epoch, self._counter = state.last_zxid >> 32, state.last_zxid & COUNTER_MAX
        self.stats.snapshots_installed += 1

    def _apply(self, entry: Entry, now_ms: int) -> None:
        data = entry.data
        kind, origin, boot_id, seq = _ENTRY_HEAD.unpack_from(data)
        assert kind == ENTRY_TXN, f"entry {entry.index} of unknown kind {kind}"
        txn = Txn.from_bytes(memoryview(data)[_ENTRY_HEAD.size:])
        if entry.term != self._epoch:
            assert entry.term > self._epoch, (entry.term, self._epoch)
            self._epoch, self._counter = entry.term, 0
        self._counter += 1
        # a term with 2**32 txns would need ZooKeeper's epoch rollover; a leader proposes far
        # fewer in its term on any real machine, so this is an assertion, not a code path
        assert self._counter <= COUNTER_MAX, "zxid counter exhausted within one term"
        txn.zxid = (self._epoch << 32) | self._counter
        conn_id: int | None = None
        pending: Pending | None = None
        if origin == self.id and boot_id == self.config.boot_id:
            waiting = self._waiting.pop(seq, None)
            # anything of ours older than this entry was dropped and can never commit now
            for older in [s for s in self._waiting if s < seq]:
                lost = self._waiting.pop(older)
                self.service.proposal_lost(lost.txn, lost.conn_id,
                                           "write overtaken (dropped by the leader)")
                self.stats.lost += 1
            if waiting is not None:
                conn_id, pending = waiting.conn_id, waiting.pending
        self.service.committed(txn, conn_id, pending, now_ms)
        self.stats.applied += 1

    def _release_syncs(self, now_ms: int) -> None:
        if not self._syncs_ready:
            return
        applied = self.raft.log.applied
        keep = []
        for index, conn_id, pending in self._syncs_ready:
            if index <= applied:
                self.service.complete_sync(conn_id, pending, now_ms)
            else:
                keep.append((index, conn_id, pending))
        self._syncs_ready = keep


__all__ = [
    "CoordReplica",
    "Forward",
    "PeerMessage",
    "ReplicaConfig",
    "ReplicaStats",
    "Touches",
    "encode_entry",
]
