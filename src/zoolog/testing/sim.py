"""A deterministic, seeded simulator for `zoolog.consensus`: faults in, verdicts out.

One seed drives everything (`random.Random(seed)`): a cluster of N `RaftNode`s on a virtual
clock with per-node clock rates, a network that drops, duplicates, delays (so reorders) and
partitions messages (random splits, isolated nodes, a majorities ring), crashes that lose
whatever a node had not persisted, restarts from persisted state, snapshots and compaction,
and client proposals. Two phases:

- **safety** (faults on): after every step the checkers assert at most one leader per term,
  state-machine safety (every node applies the same entry at each index: a hash chain per
  index), leader completeness (a new leader holds every committed entry), commit index never
  going backwards (in memory between crashes, on disk across them), and that no
  acknowledged proposal is ever lost or replaced;
- **liveness** (faults healed): within a bound a leader must exist and a fresh proposal must
  be applied on every node.

A failure raises `SimulationFailure` naming the seed; `zoolog sim --seed N` replays it.
"""

from __future__ import annotations

import hashlib
import random
import struct
from dataclasses import dataclass, field

from zoolog.consensus.node import Config, ProposalDropped, RaftNode, Role
from zoolog.consensus.types import ConfState, Entry, HardState, Message, Snapshot

TICK_MS = 10


class SimulationFailure(AssertionError):
    def __init__(self, seed: int, step: int, what: str) -> None:
        super().__init__(f"seed {seed}, step {step}: {what} (replay: zoolog sim --seed {seed})")
        self.seed = seed
        self.step = step


@dataclass
class Faults:
    drop: float = 0.05
    duplicate: float = 0.02
    delay_ms_max: int = 40
    crash: float = 0.003
    partition: float = 0.01
    crash_during_ready: float = 0.2
    """When a crash happens, the chance it lands while a Ready is half-handled (its
    unpersisted entries and unsent messages are lost)."""
    clock_skew: float = 0.2


@dataclass
class Disk:
    """What a node has fsynced: survives its crashes."""

    hard: HardState = field(default_factory=HardState)
    snapshot: Snapshot | None = None
    entries: list[Entry] = field(default_factory=list)

    def persist(self, hard: HardState | None, snapshot: Snapshot | None,
                entries: list[Entry]) -> None:
        if hard is not None:
            self.hard = hard
        if snapshot is not None:
            self.snapshot = snapshot
            self.entries = [e for e in self.entries if e.index > snapshot.index]
        if entries:
            first = entries[0].index
            self.entries = [e for e in self.entries if e.index < first] + list(entries)

    def compact(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.entries = [e for e in self.entries if e.index > snapshot.index]


class SimNode:
    """A RaftNode with its disk, its applied state (a hash chain) and its clock."""

    def __init__(self, node_id: int, sim: Simulation, voters: frozenset[int]) -> None:
        self.id = node_id
        self.sim = sim
        self.disk = Disk()
        self.voters = voters
        self.clock_rate = 1.0
        self.alive = True
        self.raft = self._boot()

    def _boot(self) -> RaftNode:
        disk = self.disk
        snap = disk.snapshot
        raft = self.sim.raft_class(
            self.sim.raft_config(self.id), random.Random(self.sim.rng.random()),
            conf=ConfState(self.voters), hard_state=disk.hard, snapshot=snap,
            entries=list(disk.entries),
        )
        if snap is not None and snap.data:
            self.applied_index, self.digest = struct.unpack(">q32s", snap.data)
        else:
            self.applied_index, self.digest = 0, bytes(32)
        self.next_tick_ms = self.sim.now_ms + TICK_MS
        self.max_commit_seen = raft.log.committed
        return raft

    def crash(self) -> None:
        self.alive = False

    def restart(self) -> None:
        self.alive = True
        self.raft = self._boot()

    def apply(self, entry: Entry) -> None:
        assert entry.index == self.applied_index + 1, (entry.index, self.applied_index)
        self.digest = hashlib.sha256(self.digest + entry.data + bytes([entry.kind])).digest()
        self.applied_index = entry.index
        self.sim.check_applied(self, entry)

    def snapshot_bytes(self) -> bytes:
        return struct.pack(">q32s", self.applied_index, self.digest)


class Simulation:
    def __init__(
        self,
        seed: int,
        nodes: int = 3,
        faults: Faults | None = None,
        snapshot_every: int = 40,
        raft_class: type[RaftNode] = RaftNode,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.faults = faults or Faults()
        self.now_ms = 0
        self.step_no = 0
        self.snapshot_every = snapshot_every
        self.raft_class = raft_class
        self._leader_terms_checked: set[int] = set()
        voters = frozenset(range(1, nodes + 1))
        self.nodes = {i: SimNode(i, self, voters) for i in voters}
        for node in self.nodes.values():
            node.clock_rate = 1.0 + self.rng.uniform(-self.faults.clock_skew,
                                                     self.faults.clock_skew)
        self.in_flight: list[tuple[int, int, Message]] = []  # (deliver at, seq, message)
        self._seq = 0
        self.blocked: set[tuple[int, int]] = set()
        self.leaders: dict[int, int] = {}  # term -> leader
        self.committed: dict[int, tuple[int, bytes]] = {}  # index -> (term, digest)
        self.acked: dict[int, bytes] = {}  # index -> proposal data acknowledged to a client
        self.proposed: dict[tuple[int, int], bytes] = {}  # (leader, index) -> data
        self._proposal_no = 0
        self._read_no = 0
        self.reads: dict[bytes, int] = {}  # read context -> highest acked index when asked
        self.stats = {"proposals": 0, "acked": 0, "elections": 0, "crashes": 0,
                      "snapshots": 0, "messages": 0, "reads": 0, "transfers": 0}

    def raft_config(self, node_id: int) -> Config:
        # small messages: a few entries each, so flow control and pipelining are exercised
        return Config(node_id, election_tick=10, heartbeat_tick=2, max_inflight_msgs=16,
                      max_msg_bytes=60)

    def fail(self, what: str) -> None:
        raise SimulationFailure(self.seed, self.step_no, what)

    # ------------------------------------------------------------------ checkers

    def check_applied(self, node: SimNode, entry: Entry) -> None:
        known = self.committed.get(entry.index)
        if known is None:
            self.committed[entry.index] = (entry.term, node.digest)
        elif known != (entry.term, node.digest):
            self.fail(f"state machine safety: node {node.id} applied a different entry "
                      f"at index {entry.index}")
        acked = self.acked.get(entry.index)
        if acked is not None and acked != entry.data:
            self.fail(f"acknowledged entry at {entry.index} replaced on node {node.id}")

    def check_node(self, node: SimNode) -> None:
        raft = node.raft
        if raft.log.committed < node.max_commit_seen:
            self.fail(f"node {node.id} commit went back from {node.max_commit_seen} "
                      f"to {raft.log.committed}")
        node.max_commit_seen = raft.log.committed
        if raft.role == Role.LEADER:
            leader = self.leaders.setdefault(raft.term, node.id)
            if leader != node.id:
                self.fail(f"two leaders in term {raft.term}: {leader} and {node.id}")
            if raft.term not in self._leader_terms_checked:
                self._leader_terms_checked.add(raft.term)
                self.stats["elections"] += 1
                log = raft.log
                for index, (term, _) in self.committed.items():
                    if index > log.snapshot.index and log.term(index) != term:
                        self.fail(f"leader completeness: leader {node.id} of term {raft.term} "
                                  f"lacks committed entry {index}")

    # ------------------------------------------------------------------ network

    def send(self, message: Message) -> None:
        self.stats["messages"] += 1
        if (message.frm, message.to) in self.blocked:
            return
        faults = self.faults
        if self.rng.random() < faults.drop:
            return
        copies = 2 if self.rng.random() < faults.duplicate else 1
        for _ in range(copies):
            delay = self.rng.randint(1, max(1, faults.delay_ms_max))
            self._seq += 1
            self.in_flight.append((self.now_ms + delay, self._seq, message))

    def deliver_due(self) -> None:
        due = [item for item in self.in_flight if item[0] <= self.now_ms]
        if not due:
            return
        self.in_flight = [item for item in self.in_flight if item[0] > self.now_ms]
        for _, _, message in sorted(due):
            node = self.nodes.get(message.to)
            if node is not None and node.alive and (message.frm, message.to) not in self.blocked:
                node.raft.step(message)

    # ------------------------------------------------------------------ faults

    def random_partition(self) -> None:
        ids = sorted(self.nodes)
        shape = self.rng.randrange(4)
        self.blocked = set()
        if shape == 0:  # heal
            return
        if shape == 1:  # split into two groups
            self.rng.shuffle(ids)
            cut = self.rng.randrange(1, len(ids))
            left, right = set(ids[:cut]), set(ids[cut:])
            self.blocked = {(a, b) for a in left for b in right} | {
                (b, a) for a in left for b in right}
        elif shape == 2:  # isolate one node
            lone = self.rng.choice(ids)
            self.blocked = {(lone, o) for o in ids if o != lone} | {
                (o, lone) for o in ids if o != lone}
        else:  # majorities ring: each node reaches only its ring neighbours
            n = len(ids)
            for i, a in enumerate(ids):
                for j, b in enumerate(ids):
                    if a != b and min((i - j) % n, (j - i) % n) > 1:
                        self.blocked.add((a, b))
        if self.rng.random() < 0.3:  # asymmetric: one direction of one link only
            links = sorted(self.blocked)
            if links:
                self.blocked = {self.rng.choice(links)}

    def inject_faults(self) -> None:
        faults = self.faults
        if self.rng.random() < faults.partition:
            self.random_partition()
        for node in self.nodes.values():
            if node.alive and self.rng.random() < faults.crash:
                alive = sum(1 for n in self.nodes.values() if n.alive)
                if alive > 1:
                    node.crash()
                    self.stats["crashes"] += 1
            elif not node.alive and self.rng.random() < 0.05:
                node.restart()

    # ------------------------------------------------------------------ driving

    def propose_some(self) -> None:
        for node in self.nodes.values():
            if not (node.alive and node.raft.role == Role.LEADER):
                continue
            roll = self.rng.random()
            if roll < 0.02:
                # a linearizable read must see every write acknowledged before it was asked
                self._read_no += 1
                context = b"r%d" % self._read_no
                self.reads[context] = max(self.acked, default=0)
                node.raft.read_index(context)
            elif roll < 0.021:
                target = self.rng.choice(sorted(node.raft.conf.voters))
                try:
                    node.raft.transfer_leadership(target)
                    self.stats["transfers"] += 1
                except ProposalDropped:
                    pass
            if self.rng.random() < 0.3:
                self._proposal_no += 1
                data = f"p{self._proposal_no}".encode()
                try:
                    index = node.raft.propose(data)
                except ProposalDropped:
                    continue
                self.proposed[(node.id, index)] = data
                self.stats["proposals"] += 1

    def handle_ready(self, node: SimNode) -> None:
        raft = node.raft
        while node.alive and raft.has_ready():
            ready = raft.ready()
            if self.rng.random() < self.faults.crash * self.faults.crash_during_ready:
                node.crash()  # dies before fsync: the Ready is lost
                self.stats["crashes"] += 1
                return
            if ready.hard_state is not None and ready.hard_state.commit < node.disk.hard.commit:
                self.fail(f"node {node.id} persisted commit {ready.hard_state.commit} below "
                          f"{node.disk.hard.commit}")
            node.disk.persist(ready.hard_state, ready.snapshot, ready.entries)
            for message in ready.messages:
                self.send(message)
            if ready.snapshot is not None:
                node.applied_index, node.digest = struct.unpack(">q32s", ready.snapshot.data)
                known = self.committed.get(node.applied_index)
                if known is not None and known[1] != node.digest:
                    self.fail(f"node {node.id} installed a snapshot that disagrees at "
                              f"{node.applied_index}")
            for entry in ready.committed_entries:
                if entry.index <= node.applied_index:
                    continue
                node.apply(entry)
                data = self.proposed.pop((node.id, entry.index), None)
                if data is not None and raft.role == Role.LEADER and data == entry.data:
                    self.acked[entry.index] = data
                    self.stats["acked"] += 1
            for read in ready.read_states:
                floor = self.reads.pop(read.context, None)
                if floor is not None and read.index < floor:
                    self.fail(f"read {read.context!r} on node {node.id} at index {read.index} "
                              f"would miss the write acknowledged at {floor}")
                self.stats["reads"] += 1
            raft.advance(ready)
            if node.applied_index - raft.log.snapshot.index >= self.snapshot_every:
                snap_data = node.snapshot_bytes()
                raft.compact(node.applied_index, snap_data)
                node.disk.compact(raft.log.snapshot)
                self.stats["snapshots"] += 1

    def step(self, faults_on: bool = True, proposals: bool | None = None) -> None:
        self.step_no += 1
        self.now_ms += 1
        if faults_on:
            self.inject_faults()
        self.deliver_due()
        for node in self.nodes.values():
            if not node.alive:
                continue
            while self.now_ms >= node.next_tick_ms:
                node.raft.tick()
                node.next_tick_ms += max(1, round(TICK_MS * node.clock_rate))
        if faults_on if proposals is None else proposals:
            self.propose_some()
        for node in self.nodes.values():
            if node.alive:
                self.handle_ready(node)
        for node in self.nodes.values():
            if node.alive:
                self.check_node(node)

    def apply_action(self, kind: str, arg: int) -> None:
        """One structural fault of an explicit schedule (see `run_schedule`)."""
        ids = sorted(self.nodes)
        node = self.nodes[ids[arg % len(ids)]]
        if kind == "crash":
            if node.alive and sum(1 for n in self.nodes.values() if n.alive) > 1:
                node.crash()
                self.stats["crashes"] += 1
        elif kind == "restart":
            if not node.alive:
                node.restart()
        elif kind == "isolate":
            self.blocked = {(node.id, o) for o in ids if o != node.id} | {
                (o, node.id) for o in ids if o != node.id}
        elif kind == "split":
            cut = 1 + arg % (len(ids) - 1)
            left, right = ids[:cut], ids[cut:]
            self.blocked = {(a, b) for a in left for b in right} | {
                (b, a) for a in left for b in right}
        elif kind == "heal":
            self.blocked = set()
        elif kind == "run":
            for _ in range(arg):
                self.step(faults_on=False, proposals=True)
        else:
            raise ValueError(f"unknown schedule action {kind!r}")

    def run_schedule(self, actions: list[tuple[str, int]], liveness_steps: int = 3000) -> None:
        """Run an explicit fault schedule (random drops and delays still come from the
        seed), then heal and require progress. Hypothesis shrinks such schedules."""
        for kind, arg in actions:
            self.apply_action(kind, arg)
        self.heal()
        self.liveness(liveness_steps)

    def heal(self) -> None:
        self.blocked = set()
        self.faults = Faults(drop=0.0, duplicate=0.0, delay_ms_max=5, crash=0.0, partition=0.0)
        for node in self.nodes.values():
            if not node.alive:
                node.restart()

    def liveness(self, steps_max: int) -> None:
        """With faults healed, a leader must commit a fresh proposal on every node."""
        marker: tuple[int, int] | None = None  # (term, index) of the marker proposal
        for _ in range(steps_max):
            self.step(faults_on=False)
            leaders = [n for n in self.nodes.values() if n.raft.role == Role.LEADER]
            if leaders:
                leader = max(leaders, key=lambda n: n.raft.term)
                # a marker proposed by a deposed leader may be truncated: propose again
                if marker is None or marker[0] != leader.raft.term:
                    try:
                        marker = (leader.raft.term, leader.raft.propose(b"liveness"))
                    except ProposalDropped:
                        continue
            if marker is not None and all(
                n.applied_index >= marker[1] for n in self.nodes.values()
            ):
                return
        self.fail(f"no progress within {steps_max} steps after healing "
                  f"(leaders: {[n.id for n in self.nodes.values() if n.raft.is_leader]})")

    def run(self, steps: int, liveness_steps: int = 3000) -> dict[str, int]:
        for _ in range(steps):
            self.step()
        self.heal()
        self.liveness(liveness_steps)
        return self.stats


HARSH = Faults(drop=0.2, duplicate=0.05, delay_ms_max=60, crash=0.004, partition=0.03)
"""A fault profile with frequent crashes and partitions: short-lived leaders, many terms."""


def run_seed(
    seed: int,
    nodes: int = 3,
    steps: int = 2000,
    raft_class: type[RaftNode] = RaftNode,
    faults: Faults | None = None,
) -> dict[str, int]:
    return Simulation(seed, nodes, faults=faults, raft_class=raft_class).run(steps)


__all__ = ["HARSH", "Faults", "Simulation", "SimulationFailure", "run_seed"]
