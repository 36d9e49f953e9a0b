"""A tiny interpreter for Raft scenario transcripts (tests/consensus/testdata/*.txt).

Each line is a command; `expect ...` lines assert state. Messages travel through FIFO
queues per link and are only delivered by `deliver`, so a transcript controls exactly which
messages arrive. Every node's Ready is handled (persist -> send -> apply -> advance) after
each command, on an in-memory disk that survives `crash`/`restart`.

    options prevote=on|off checkquorum=on|off maxmsg=BYTES
    nodes 1 2 3                         start a cluster (all voters)
    boot N term=T vote=V log=1,1,2      restart N with this persisted state (entry terms)
    campaign N | tick N [COUNT] | propose N DATA | transfer N TO | read N CTX
    conf N add-voter|add-learner|remove ID
    deliver [A->B]                      deliver queued messages (all, or one link) until quiet
    drop A->B                           discard what is queued on that link
    partition 1 2 | 3 4 5  /  heal      block links between groups
    crash N / restart N / compact N INDEX
    expect role N leader|follower|candidate|pre_candidate
    expect term N T / expect commit N C / expect log N T1 T2 ... / expect leader N ID
    expect read N CTX INDEX / expect voters N 1 2 3 / expect applied N DATA...
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from zoolog.consensus.node import Config, RaftNode, Role
from zoolog.consensus.types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryKind,
    HardState,
    Message,
    Snapshot,
)


@dataclass
class Disk:
    hard: HardState = field(default_factory=HardState)
    snapshot: Snapshot | None = None
    entries: list[Entry] = field(default_factory=list)


class TranscriptError(AssertionError):
    pass


class Cluster:
    def __init__(self, raft_class: type[RaftNode] = RaftNode) -> None:
        self.raft_class = raft_class
        self.options = {"prevote": True, "checkquorum": True, "maxmsg": 1 << 20}
        self.voters: frozenset[int] = frozenset()
        self.nodes: dict[int, RaftNode] = {}
        self.disks: dict[int, Disk] = {}
        self.down: set[int] = set()
        self.queues: dict[tuple[int, int], deque[Message]] = {}
        self.blocked: set[tuple[int, int]] = set()
        self.applied: dict[int, list[bytes]] = {}
        self.reads: dict[int, list[tuple[bytes, int]]] = {}

    def _config(self, node_id: int) -> Config:
        return Config(node_id, election_tick=10, heartbeat_tick=1,
                      pre_vote=bool(self.options["prevote"]),
                      check_quorum=bool(self.options["checkquorum"]),
                      max_msg_bytes=int(self.options["maxmsg"]))

    def boot(self, node_id: int) -> None:
        disk = self.disks[node_id]
        self.nodes[node_id] = self.raft_class(
            self._config(node_id), random.Random(node_id), ConfState(self.voters),
            disk.hard, disk.snapshot, list(disk.entries),
        )
        self.applied[node_id] = []
        self.down.discard(node_id)

    def handle_readies(self) -> None:
        for node_id, node in self.nodes.items():
            if node_id in self.down:
                continue
            while node.has_ready():
                ready = node.ready()
                disk = self.disks[node_id]
                if ready.hard_state is not None:
                    disk.hard = ready.hard_state
                if ready.snapshot is not None:
                    disk.snapshot = ready.snapshot
                    disk.entries = [e for e in disk.entries if e.index > ready.snapshot.index]
                if ready.entries:
                    first = ready.entries[0].index
                    disk.entries = [e for e in disk.entries if e.index < first]
                    disk.entries += ready.entries
                for message in ready.messages:
                    self.queues.setdefault((message.frm, message.to), deque()).append(message)
                for entry in ready.committed_entries:
                    if entry.kind == EntryKind.NORMAL and entry.data:
                        self.applied[node_id].append(entry.data)
                for read in ready.read_states:
                    self.reads.setdefault(node_id, []).append((read.context, read.index))
                node.advance(ready)

    def deliver(self, link: tuple[int, int] | None) -> None:
        for _ in range(10_000):
            moved = False
            for key in sorted(self.queues):
                if link is not None and key != link:
                    continue
                queue = self.queues[key]
                while queue:
                    message = queue.popleft()
                    moved = True
                    if key in self.blocked or message.to in self.down:
                        continue
                    self.nodes[message.to].step(message)
                    self.handle_readies()
            if not moved:
                return
        raise TranscriptError("messages never stopped flowing")

    def run_line(self, line: str) -> None:
        words = line.split()
        command, args = words[0], words[1:]
        handler = getattr(self, "cmd_" + command.replace("-", "_"), None)
        if handler is None:
            raise TranscriptError(f"unknown command {command!r}")
        handler(args)
        self.handle_readies()

    # commands ------------------------------------------------------------

    def cmd_options(self, args: list[str]) -> None:
        for arg in args:
            key, _, value = arg.partition("=")
            self.options[key] = int(value) if value.isdigit() else value == "on"

    def cmd_nodes(self, args: list[str]) -> None:
        self.voters = frozenset(int(a) for a in args)
        for node_id in sorted(self.voters):
            self.disks[node_id] = Disk()
            self.boot(node_id)

    def cmd_boot(self, args: list[str]) -> None:
        node_id = int(args[0])
        fields = dict(arg.split("=") for arg in args[1:])
        terms = [int(t) for t in fields.get("log", "").split(",") if t]
        entries = [Entry(term, index) for index, term in enumerate(terms, 1)]
        hard = HardState(int(fields.get("term", "0")), int(fields.get("vote", "0")),
                         int(fields.get("commit", "0")))
        self.disks[node_id] = Disk(hard, None, entries)
        self.boot(node_id)

    def cmd_campaign(self, args: list[str]) -> None:
        self.nodes[int(args[0])].campaign()

    def cmd_tick(self, args: list[str]) -> None:
        for _ in range(int(args[1]) if len(args) > 1 else 1):
            self.nodes[int(args[0])].tick()

    def cmd_propose(self, args: list[str]) -> None:
        self.nodes[int(args[0])].propose(args[1].encode())

    def cmd_transfer(self, args: list[str]) -> None:
        self.nodes[int(args[0])].transfer_leadership(int(args[1]))

    def cmd_read(self, args: list[str]) -> None:
        self.nodes[int(args[0])].read_index(args[1].encode())

    def cmd_conf(self, args: list[str]) -> None:
        kinds = {"add-voter": ConfChangeType.ADD_VOTER, "add-learner": ConfChangeType.ADD_LEARNER,
                 "remove": ConfChangeType.REMOVE}
        node_id = int(args[2])
        if node_id not in self.disks:
            self.disks[node_id] = Disk()
            # a joining node is started with the current membership (as etcd's
            # --initial-cluster-state=existing), then follows the log from there
            self.nodes[node_id] = self.raft_class(
                self._config(node_id), random.Random(node_id), self.nodes[int(args[0])].conf
            )
            self.applied[node_id] = []
        self.nodes[int(args[0])].propose_conf_change(ConfChange(kinds[args[1]], node_id))

    def cmd_deliver(self, args: list[str]) -> None:
        link = None
        if args:
            a, b = args[0].split("->")
            link = (int(a), int(b))
        self.deliver(link)

    def cmd_drop(self, args: list[str]) -> None:
        a, b = args[0].split("->")
        self.queues.pop((int(a), int(b)), None)

    def cmd_partition(self, args: list[str]) -> None:
        groups: list[set[int]] = [set()]
        for arg in args:
            if arg == "|":
                groups.append(set())
            else:
                groups[-1].add(int(arg))
        self.blocked = {(a, b) for g in groups for h in groups if g is not h
                        for a in g for b in h}

    def cmd_heal(self, args: list[str]) -> None:
        self.blocked = set()

    def cmd_crash(self, args: list[str]) -> None:
        node_id = int(args[0])
        self.down.add(node_id)
        for key in [k for k in self.queues if node_id in k]:
            del self.queues[key]

    def cmd_restart(self, args: list[str]) -> None:
        self.boot(int(args[0]))

    def cmd_compact(self, args: list[str]) -> None:
        node_id, index = int(args[0]), int(args[1])
        node = self.nodes[node_id]
        node.compact(index, b"snapshot-at-%d" % index)
        self.disks[node_id].snapshot = node.log.snapshot
        self.disks[node_id].entries = [e for e in self.disks[node_id].entries if e.index > index]

    def cmd_expect(self, args: list[str]) -> None:
        what, node_id, rest = args[0], int(args[1]), args[2:]
        node = self.nodes[node_id]
        if what == "role":
            actual: object = node.role.name.lower()
            expected: object = rest[0]
        elif what == "term":
            actual, expected = node.term, int(rest[0])
        elif what == "commit":
            actual, expected = node.log.committed, int(rest[0])
        elif what == "leader":
            actual, expected = node.lead, int(rest[0])
        elif what == "log":
            actual = [e.term for e in node.log.entries]
            expected = [int(t) for t in rest]
        elif what == "voters":
            actual, expected = sorted(node.conf.voters), [int(t) for t in rest]
        elif what == "applied":
            actual = [d.decode() for d in self.applied[node_id]]
            expected = rest
        elif what == "read":
            actual = (self.reads.get(node_id) or [(b"-", -1)])[-1]
            expected = (rest[0].encode(), int(rest[1]))
        else:
            raise TranscriptError(f"unknown expectation {what!r}")
        if actual != expected:
            raise TranscriptError(f"expect {what} {node_id}: wanted {expected}, got {actual}")


def run_transcript(path: Path, raft_class: type[RaftNode] = RaftNode) -> None:
    cluster = Cluster(raft_class)
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            cluster.run_line(line)
        except TranscriptError as exc:
            raise TranscriptError(f"{path.name}:{number}: {line}\n  {exc}") from None


__all__ = ["Cluster", "Role", "TranscriptError", "run_transcript"]
