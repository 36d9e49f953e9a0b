"""A seeded simulator of the replicated coordination service: N `CoordReplica`s, clients, faults.

One seed drives everything. The servers run `CoordReplica` (the coordination service on the
Raft core) over the fault model of `zoolog.testing.sim` (drops, duplicates, delays that
reorder, partitions, crashes that lose what was not persisted, restarts from disk, clock
rates); simulated ZooKeeper clients talk to the servers' `CoordService` with decoded requests
and read back the reply bytes: sessions created, moved between servers, closed; writes to a
key each client owns (increasing counters), reads of any key, `sync` then read, ephemerals.

Checked while faults run (each violation raises `SimulationFailure` naming the seed):

- replies leave each connection in request order, and a session never sees its zxid go back,
  across reconnections to other servers;
- a read returns nothing older than what the reader's session saw or wrote before it
  (sequential consistency), and a read after `sync` nothing older than every write
  acknowledged before the sync was sent (linearizable sync-then-read);
- every server derives the same zxid at each log index, and states encoded at the same
  applied index are byte-identical.

Then faults heal and, within a bound, every client must get a write acknowledged and every
server must hold the same state (byte-identical snapshots), in which each key holds its last
acknowledged value or a later one that was sent, and every ephemeral node's session exists.
`zoolog sim --coord --seed N` replays a seed.
"""

from __future__ import annotations

import hashlib
import random
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from zoolog.consensus.node import Config as RaftConfig
from zoolog.consensus.node import Role
from zoolog.consensus.types import ConfState
from zoolog.coord import snapshot as snapshots
from zoolog.coord.replica import CoordReplica, PeerMessage, ReplicaConfig
from zoolog.coord.service import ServiceConfig
from zoolog.protocol.zk._generated.jute_records import (
    ACL,
    ConnectRequest,
    ConnectResponse,
    CreateRequest,
    DeleteRequest,
    GetDataRequest,
    GetDataResponse,
    Id,
    SetDataRequest,
    SyncRequest,
)
from zoolog.protocol.zk.opcodes import OP
from zoolog.testing.sim import Disk, Faults, SimulationFailure

TICK_MS = 10
SESSION_TIMEOUT_MS = 1500
_OPEN = [ACL(31, Id("world", "anyone"))]
_LEN = struct.Struct(">i")
_REPLY = struct.Struct(">iqi")
_EPHEMERAL = 1


def _value(data: bytes | None) -> int:
    return int(data) if data else 0


class SimServer:
    """A `CoordReplica` with its disk, its clock and its liveness."""

    def __init__(self, node_id: int, sim: CoordSimulation, voters: frozenset[int]) -> None:
        self.id = node_id
        self.sim = sim
        self.voters = voters
        self.disk = Disk()
        self.alive = True
        self.clock_rate = 1.0
        self.replica = self._boot()

    def _boot(self) -> CoordReplica:
        sim = self.sim
        disk = self.disk
        self.next_tick_ms = sim.now_ms + TICK_MS
        return sim.replica_class(
            ReplicaConfig(self.id, boot_id=sim.rng.getrandbits(62), forward_timeout_ms=800,
                          snapshot_entries=sim.snapshot_entries),
            ServiceConfig(server_id=self.id, tick_ms=100, replicated=True),
            RaftConfig(self.id, election_tick=10, heartbeat_tick=2, max_inflight_msgs=16,
                       max_msg_bytes=4096),
            random.Random(sim.rng.random()), ConfState(self.voters), sim.now_ms,
            hard_state=disk.hard, snapshot=disk.snapshot, entries=list(disk.entries),
        )

    def crash(self) -> None:
        self.alive = False
        self.sim.server_gone(self.id)

    def restart(self) -> None:
        self.alive = True
        self.replica = self._boot()


@dataclass
class Op:
    xid: int
    op: int
    key: str = ""
    value: int = 0
    floor: int = 0  # the least value a read may return
    after_sync: bool = False


@dataclass
class SimClient:
    cid: int
    server: int = 0
    conn_id: int = 0
    connecting: bool = False
    session_id: int = 0
    passwd: bytes = bytes(16)
    xid: int = 0
    last_zxid: int = 0
    ops: deque[Op] = field(default_factory=deque)
    seen: dict[str, int] = field(default_factory=dict)  # key -> newest value seen or acked
    idle_ms: int = 0
    has_ephemeral: bool = False
    key_exists: bool = False
    sync_floor: dict[str, int] | None = None

    @property
    def key(self) -> str:
        return f"/k{self.cid}"


class CoordSimulation:
    def __init__(self, seed: int, servers: int = 3, clients: int = 4,
                 faults: Faults | None = None, snapshot_entries: int = 60,
                 replica_class: Callable[..., CoordReplica] = CoordReplica) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.faults = faults or Faults()
        self.snapshot_entries = snapshot_entries
        self.replica_class = replica_class
        self.now_ms = 0
        self.step_no = 0
        voters = frozenset(range(1, servers + 1))
        self.servers = {i: SimServer(i, self, voters) for i in sorted(voters)}
        for server in self.servers.values():
            server.clock_rate = 1.0 + self.rng.uniform(-self.faults.clock_skew,
                                                       self.faults.clock_skew)
        self.clients = [SimClient(c) for c in range(clients)]
        self.in_flight: list[tuple[int, int, PeerMessage]] = []
        self._seq = 0
        self._conn_no = 0
        self.blocked: set[tuple[int, int]] = set()
        self.conn_client: dict[int, SimClient] = {}
        self.acked: dict[str, int] = {}  # key -> last value acknowledged to its owner
        self.sent: dict[str, int] = {}  # key -> highest value ever sent
        self.zxid_at: dict[int, int] = {}  # log index -> zxid every server must derive
        self.digest_at: dict[int, bytes] = {}  # applied index -> state digest
        self.leader_terms: set[int] = set()
        self.stats = {"acked_writes": 0, "reads": 0, "syncs": 0, "sessions": 0,
                      "reconnects": 0, "crashes": 0, "elections": 0, "lost_conns": 0,
                      "expired": 0}

    def fail(self, what: str) -> None:
        raise SimulationFailure(self.seed, self.step_no, what)

    # ------------------------------------------------------------------ network

    def send(self, message: PeerMessage) -> None:
        if (message.frm, message.to) in self.blocked or self.rng.random() < self.faults.drop:
            return
        copies = 2 if self.rng.random() < self.faults.duplicate else 1
        for _ in range(copies):
            self._seq += 1
            delay = self.rng.randint(1, max(1, self.faults.delay_ms_max))
            self.in_flight.append((self.now_ms + delay, self._seq, message))

    def deliver_due(self) -> None:
        due = sorted(item for item in self.in_flight if item[0] <= self.now_ms)
        if not due:
            return
        self.in_flight = [item for item in self.in_flight if item[0] > self.now_ms]
        for _, _, message in due:
            server = self.servers.get(message.to)
            reachable = (message.frm, message.to) not in self.blocked
            if server is not None and server.alive and reachable:
                server.replica.step(message, self.now_ms)

    # ------------------------------------------------------------------ servers

    def server_gone(self, server_id: int) -> None:
        for client in self.clients:
            if client.server == server_id and client.conn_id:
                self.disconnect(client)

    def handle_ready(self, server: SimServer) -> None:
        replica = server.replica
        raft = replica.raft
        while server.alive and raft.has_ready():
            ready = raft.ready()
            if self.rng.random() < self.faults.crash * self.faults.crash_during_ready:
                server.crash()
                self.stats["crashes"] += 1
                return
            server.disk.persist(ready.hard_state, ready.snapshot, ready.entries)
            for raft_message in ready.messages:
                self.send(raft_message)
            for message in replica.take_peer_messages():
                self.send(message)
            snap = replica.advance(ready, self.now_ms)
            if snap is not None:
                server.disk.compact(snap)
            self.check_applied(server)
        for message in replica.take_peer_messages():
            self.send(message)

    def check_applied(self, server: SimServer) -> None:
        replica = server.replica
        index = replica.applied_index
        zxid = replica.state.last_zxid
        known = self.zxid_at.setdefault(index, zxid)
        if known != zxid:
            self.fail(f"server {server.id} derived zxid {zxid:#x} at index {index}, "
                      f"another {known:#x}")
        if self.rng.random() < 0.05:
            digest = hashlib.sha256(snapshots.encode(replica.state)).digest()
            other = self.digest_at.setdefault(index, digest)
            if other != digest:
                self.fail(f"server {server.id} state at index {index} differs from another's")

    # ------------------------------------------------------------------ clients

    def disconnect(self, client: SimClient) -> None:
        self.conn_client.pop(client.conn_id, None)
        server = self.servers.get(client.server)
        if server is not None and server.alive and client.conn_id in server.replica.service.conns:
            server.replica.lost(client.conn_id)
        client.conn_id = 0
        client.connecting = False
        client.ops.clear()  # their outcome is unknown: `sent` bounds what may have landed
        client.sync_floor = None
        self.stats["lost_conns"] += 1

    def connect(self, client: SimClient) -> None:
        alive = [s for s in self.servers.values() if s.alive]
        if not alive:
            return
        server = self.rng.choice(alive)
        self._conn_no += 1
        client.server, client.conn_id, client.connecting = server.id, self._conn_no, True
        client.idle_ms = 0
        self.conn_client[client.conn_id] = client
        if client.session_id:
            self.stats["reconnects"] += 1
        replica = server.replica
        replica.open(client.conn_id, (f"10.0.0.{client.cid}", 4000 + client.conn_id),
                     self.now_ms)
        replica.connect(client.conn_id, ConnectRequest(
            0, client.last_zxid, SESSION_TIMEOUT_MS, client.session_id, client.passwd
        ), True, self.now_ms)

    def submit(self, client: SimClient, op: int, record: Any, entry: Op) -> None:
        client.xid += 1
        entry.xid = client.xid
        client.ops.append(entry)
        client.idle_ms = 0
        self.servers[client.server].replica.request(client.conn_id, client.xid, op, record,
                                                    self.now_ms)

    def act(self, client: SimClient, writes_only: bool = False) -> None:
        if not client.conn_id:
            if self.rng.random() < 0.2:
                self.connect(client)
            return
        if client.connecting or len(client.ops) > 6:
            return
        roll = self.rng.random()
        key = client.key
        if writes_only or roll < 0.35:
            value = self.sent.get(key, 0) + 1
            self.sent[key] = value
            if not client.key_exists:
                record: Any = CreateRequest(key, b"%d" % value, _OPEN, 0)
                self.submit(client, OP.create, record, Op(0, OP.create, key, value))
            else:
                record = SetDataRequest(key, b"%d" % value, -1)
                self.submit(client, OP.setData, record, Op(0, OP.setData, key, value))
        elif roll < 0.6:
            other = f"/k{self.rng.randrange(len(self.clients))}"
            floor = client.seen.get(other, 0)
            self.submit(client, OP.getData, GetDataRequest(other, False),
                        Op(0, OP.getData, other, floor=floor))
        elif roll < 0.72:
            other = f"/k{self.rng.randrange(len(self.clients))}"
            floor = max(client.seen.get(other, 0), self.acked.get(other, 0))
            self.submit(client, OP.sync, SyncRequest(other), Op(0, OP.sync, other))
            self.submit(client, OP.getData, GetDataRequest(other, False),
                        Op(0, OP.getData, other, floor=floor, after_sync=True))
        elif roll < 0.78:
            path = f"/e{client.cid}"
            if client.has_ephemeral:
                self.submit(client, OP.delete, DeleteRequest(path, -1), Op(0, OP.delete, path))
            else:
                self.submit(client, OP.create, CreateRequest(path, b"", _OPEN, _EPHEMERAL),
                            Op(0, OP.create, path))
        elif roll < 0.785:
            self.submit(client, OP.closeSession, None, Op(0, OP.closeSession))
        elif roll < 0.80:
            self.disconnect(client)  # the client drops its connection; the session lives

    def ping_idle(self, client: SimClient) -> None:
        client.idle_ms += 1
        if client.conn_id and not client.connecting and client.idle_ms > SESSION_TIMEOUT_MS // 3:
            client.idle_ms = 0
            self.servers[client.server].replica.request(client.conn_id, -2, OP.ping, None,
                                                        self.now_ms)

    def deliver_to_clients(self, server: SimServer) -> None:
        out = server.replica.take_output(self.now_ms)
        for conn_id, data in out.sends:
            client = self.conn_client.get(conn_id)
            if client is None or client.server != server.id:
                continue
            pos = 0
            while pos < len(data) and client.conn_id == conn_id:
                (size,) = _LEN.unpack_from(data, pos)
                self.on_frame(client, data[pos + 4:pos + 4 + size])
                pos += 4 + size
        for conn_id, _reason in out.closes:
            client = self.conn_client.get(conn_id)
            if client is not None and client.conn_id == conn_id:
                self.disconnect(client)
            elif conn_id in server.replica.service.conns:
                server.replica.lost(conn_id)

    def on_frame(self, client: SimClient, frame: bytes) -> None:
        if client.connecting:
            response, _ = ConnectResponse.read(frame)
            client.connecting = False
            if response.sessionId == 0:  # expired or unknown: start afresh
                self.stats["expired"] += int(client.session_id != 0)
                client.session_id, client.passwd, client.last_zxid = 0, bytes(16), 0
                client.has_ephemeral = False
                self.disconnect(client)
                return
            if client.session_id not in (0, response.sessionId):
                self.fail(f"client {client.cid} reattached to another session")
            if client.session_id == 0:
                self.stats["sessions"] += 1
            client.session_id, client.passwd = response.sessionId, response.passwd or b""
            return
        xid, zxid, err = _REPLY.unpack_from(frame)
        if xid == -2 or xid == -1:
            return  # ping reply, watch event
        if zxid < client.last_zxid and zxid != -1:
            self.fail(f"client {client.cid} saw zxid go back from {client.last_zxid:#x} "
                      f"to {zxid:#x}")
        client.last_zxid = max(client.last_zxid, zxid)
        if not client.ops or client.ops[0].xid != xid:
            expected = client.ops[0].xid if client.ops else None
            self.fail(f"client {client.cid} got reply {xid}, expected {expected}")
        entry = client.ops.popleft()
        self.on_reply(client, entry, err, frame[_REPLY.size:])

    def on_reply(self, client: SimClient, entry: Op, err: int, body: bytes) -> None:
        if entry.op in (OP.create, OP.setData) and entry.key == client.key:
            if err == 0:
                self.acked[entry.key] = max(self.acked.get(entry.key, 0), entry.value)
                client.seen[entry.key] = max(client.seen.get(entry.key, 0), entry.value)
                client.key_exists = True
                self.stats["acked_writes"] += 1
            elif err == -110:  # NODEEXISTS: an earlier create of ours landed unanswered
                client.key_exists = True
            elif err == -101:  # NONODE: our create never landed
                client.key_exists = False
        elif entry.op == OP.create and err == 0:
            client.has_ephemeral = True
        elif entry.op == OP.delete and err in (0, -101):
            client.has_ephemeral = False
        elif entry.op == OP.getData:
            self.stats["reads"] += 1
            value = _value(GetDataResponse.read(body)[0].data) if err == 0 else 0
            if value < entry.floor:
                kind = "after sync" if entry.after_sync else "(sequential consistency)"
                self.fail(f"client {client.cid} read {entry.key}={value} on server "
                          f"{client.server} {kind}, older than {entry.floor}")
            client.seen[entry.key] = max(client.seen.get(entry.key, 0), value)
        elif entry.op == OP.sync:
            self.stats["syncs"] += 1
        elif entry.op == OP.closeSession:
            client.session_id, client.passwd, client.last_zxid = 0, bytes(16), 0
            client.has_ephemeral = False

    # ------------------------------------------------------------------ faults

    def inject_faults(self) -> None:
        faults = self.faults
        if self.rng.random() < faults.partition:
            ids = sorted(self.servers)
            self.blocked = set()
            if self.rng.random() < 0.7:
                lone = self.rng.choice(ids) if self.rng.random() < 0.5 else 0
                if lone:
                    self.blocked = {(lone, o) for o in ids if o != lone} | {
                        (o, lone) for o in ids if o != lone}
                else:
                    self.rng.shuffle(ids)
                    cut = self.rng.randrange(1, len(ids))
                    left, right = ids[:cut], ids[cut:]
                    self.blocked = {(a, b) for a in left for b in right} | {
                        (b, a) for a in left for b in right}
        for server in self.servers.values():
            if server.alive and self.rng.random() < faults.crash:
                if sum(1 for s in self.servers.values() if s.alive) > 1:
                    server.crash()
                    self.stats["crashes"] += 1
            elif not server.alive and self.rng.random() < 0.02:
                server.restart()

    # ------------------------------------------------------------------ driving

    def step(self, faults_on: bool = True, writes_only: bool = False) -> None:
        self.step_no += 1
        self.now_ms += 1
        if faults_on:
            self.inject_faults()
        self.deliver_due()
        for server in self.servers.values():
            if not server.alive:
                continue
            while self.now_ms >= server.next_tick_ms:
                server.replica.tick(self.now_ms)
                server.next_tick_ms += max(1, round(TICK_MS * server.clock_rate))
            raft = server.replica.raft
            if raft.role == Role.LEADER and raft.term not in self.leader_terms:
                self.leader_terms.add(raft.term)
                self.stats["elections"] += 1
        for client in self.clients:
            if self.rng.random() < 0.3:
                self.act(client, writes_only)
            self.ping_idle(client)
        for server in self.servers.values():
            if server.alive:
                self.deliver_to_clients(server)  # routes the proposals
                self.handle_ready(server)
                self.deliver_to_clients(server)  # the answers of what was applied

    def heal(self) -> None:
        self.blocked = set()
        self.faults = Faults(drop=0.0, duplicate=0.0, delay_ms_max=5, crash=0.0, partition=0.0)
        for server in self.servers.values():
            if not server.alive:
                server.restart()

    def liveness(self, steps_max: int) -> None:
        """Faults healed: every client gets a write acknowledged and the servers converge."""
        start = {c.cid: self.acked.get(c.key, 0) for c in self.clients}
        for _ in range(steps_max):
            self.step(faults_on=False, writes_only=True)
            if all(self.acked.get(c.key, 0) > start[c.cid] for c in self.clients):
                break
        else:
            stuck = [c.cid for c in self.clients if self.acked.get(c.key, 0) <= start[c.cid]]
            self.fail(f"clients {stuck} got no write acknowledged within {steps_max} steps "
                      f"after healing")
        for _ in range(steps_max):  # let the followers learn the last commits
            self.step(faults_on=False, writes_only=False)
            indexes = {s.replica.applied_index for s in self.servers.values()}
            if len(indexes) == 1 and all(not c.ops for c in self.clients if c.conn_id):
                break
        for _ in range(200):
            self.step(faults_on=False)
            if len({s.replica.applied_index for s in self.servers.values()}) == 1:
                break
        self.check_final()

    def check_final(self) -> None:
        images = {s.id: snapshots.encode(s.replica.state) for s in self.servers.values()}
        indexes = {s.id: s.replica.applied_index for s in self.servers.values()}
        if len(set(indexes.values())) != 1:
            self.fail(f"servers did not converge: applied indexes {indexes}")
        if len(set(images.values())) != 1:
            self.fail("servers hold different states at the same applied index")
        state = next(iter(self.servers.values())).replica.state
        for key, acked in self.acked.items():
            node = state.nodes.get(key)
            value = _value(node.data) if node is not None else 0
            if not acked <= value <= self.sent[key]:
                self.fail(f"{key} holds {value}; acknowledged {acked}, sent up to "
                          f"{self.sent[key]}")
        for path, node in state.nodes.items():
            if node.ephemeral_owner > 0 and node.ephemeral_owner not in state.sessions:
                self.fail(f"ephemeral {path} outlived its session")

    def run(self, steps: int, liveness_steps: int = 6000) -> dict[str, int]:
        for _ in range(steps):
            self.step()
        self.heal()
        self.liveness(liveness_steps)
        return self.stats


def run_coord_seed(seed: int, servers: int = 3, steps: int = 3000,
                   replica_class: Callable[..., CoordReplica] = CoordReplica,
                   faults: Faults | None = None) -> dict[str, int]:
    return CoordSimulation(seed, servers, faults=faults, replica_class=replica_class).run(steps)


__all__ = ["CoordSimulation", "SimClient", "SimServer", "run_coord_seed"]
