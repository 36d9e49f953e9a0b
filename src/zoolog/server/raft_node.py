"""A replicated-log node: the asyncio runtime around `zoolog.consensus.RaftNode`.

It listens on its peer address for Raft messages and on a client port for proposals, ticks the
core on a timer, and drives the Ready loop in the documented order: persist (one fsync per
Ready, in a worker thread: the group commit) -> send -> apply -> reply -> advance. Proposals
that arrive while a Ready is being persisted are appended together and make the next batch.

Client protocol (for benchmarks and tests): request frame `u32 length | u64 request id |
payload`; reply `u32 length | u64 request id | u8 status | u64 value` with status 0 =
committed at index `value`, 1 = not the leader (`value` = leader id or 0), 2 = dropped (a
leader change discarded the proposal). An empty payload asks for status 3 with the node's
applied index as `value`, without proposing anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import struct
from dataclasses import dataclass
from pathlib import Path

from zoolog.consensus import wire
from zoolog.consensus.node import Config, ProposalDropped, RaftNode
from zoolog.consensus.storage import RaftStorage
from zoolog.consensus.types import ConfState, Message
from zoolog.errors import RemoteProtocolError
from zoolog.server.files import OsFileSystem

log = logging.getLogger("zoolog.raft")

_REQUEST_HEAD = struct.Struct(">IQ")
_REPLY = struct.Struct(">IQBQ")
COMMITTED, NOT_LEADER, DROPPED, APPLIED = 0, 1, 2, 3


@dataclass(frozen=True)
class RaftNodeConfig:
    node_id: int
    peers: dict[int, tuple[str, int]]
    client_port: int
    data_dir: Path
    tick_ms: int = 100
    election_tick: int = 10
    heartbeat_tick: int = 1


class _PeerIn(asyncio.Protocol):
    def __init__(self, server: RaftServer) -> None:
        self.server = server
        self.splitter = wire.FrameSplitter()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            for frame in self.splitter.feed(data):
                self.server.raft.step(wire.decode(frame))
        except RemoteProtocolError as exc:
            log.warning("dropping peer connection: %s", exc)
            if self.transport is not None:
                self.transport.abort()
            return
        self.server.kick()


class _Client(asyncio.Protocol):
    def __init__(self, server: RaftServer) -> None:
        self.server = server
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        pos = 0
        requests: list[tuple[int, bytes]] = []
        while len(buffer) - pos >= _REQUEST_HEAD.size:
            length, request_id = _REQUEST_HEAD.unpack_from(buffer, pos)
            if length < 8 or length > wire.FRAME_BYTES_MAX:
                assert self.transport is not None
                self.transport.abort()
                return
            if len(buffer) - pos - 4 < length:
                break
            payload = bytes(buffer[pos + _REQUEST_HEAD.size : pos + 4 + length])
            requests.append((request_id, payload))
            pos += 4 + length
        del buffer[:pos]
        status = [r for r in requests if not r[1]]
        for request_id, _ in status:
            self.reply(request_id, APPLIED, self.server.applied_index)
        proposals = [r for r in requests if r[1]]
        if proposals:
            self.server.propose(self, proposals)

    def reply(self, request_id: int, status: int, value: int) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_REPLY.pack(_REPLY.size - 4, request_id, status, value))


class RaftServer:
    def __init__(self, config: RaftNodeConfig) -> None:
        self.config = config
        self.fs = OsFileSystem(config.data_dir)
        self.storage = RaftStorage(self.fs)
        recovered = self.storage.open()
        voters = frozenset(config.peers)
        self.raft = RaftNode(
            Config(config.node_id, election_tick=config.election_tick,
                   heartbeat_tick=config.heartbeat_tick, max_inflight_msgs=256),
            random.Random(), ConfState(voters), recovered.hard_state, recovered.snapshot,
            recovered.entries,
        )
        self.applied_index = self.raft.log.applied
        self.waiting: dict[int, list[tuple[_Client, int, int]]] = {}  # index -> (client, id, term)
        self._outgoing: dict[int, asyncio.StreamWriter | None] = {}
        self._connecting: set[int] = set()
        self._servers: list[asyncio.Server] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._running = False
        self._kicked = False

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        host, port = self.config.peers[self.config.node_id]
        self._servers.append(await loop.create_server(lambda: _PeerIn(self), host, port,
                                                      reuse_address=True))
        self._servers.append(await loop.create_server(lambda: _Client(self), host,
                                                      self.config.client_port,
                                                      reuse_address=True))
        self._tasks.append(asyncio.create_task(self._ticker()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for server in self._servers:
            server.close()
        for writer in self._outgoing.values():
            if writer is not None:
                writer.close()
        self.fs.close()

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.config.tick_ms / 1000)
            self.raft.tick()
            self.kick()

    def propose(self, client: _Client, requests: list[tuple[int, bytes]]) -> None:
        raft = self.raft
        try:
            last = raft.propose_batch([payload for _, payload in requests])
        except ProposalDropped:
            for request_id, _ in requests:
                client.reply(request_id, NOT_LEADER, raft.lead)
            return
        first = last - len(requests) + 1
        for offset, (request_id, _) in enumerate(requests):
            self.waiting.setdefault(first + offset, []).append((client, request_id, raft.term))
        self.kick()

    def kick(self) -> None:
        """Something changed in the core: run the Ready loop soon (once)."""
        if not self._kicked and not self._running:
            self._kicked = True
            asyncio.get_running_loop().call_soon(self._start_ready_loop)

    def _start_ready_loop(self) -> None:
        self._kicked = False
        if not self._running:
            self._running = True
            self._tasks.append(asyncio.create_task(self._ready_loop()))
            self._tasks = [t for t in self._tasks if not t.done()]

    async def _ready_loop(self) -> None:
        loop = asyncio.get_running_loop()
        raft = self.raft
        try:
            while raft.has_ready():
                ready = raft.ready()
                if ready.entries or ready.hard_state is not None or ready.snapshot is not None:
                    await loop.run_in_executor(None, self.storage.save, ready)
                self._send(ready.messages)
                for entry in ready.committed_entries:
                    self.applied_index = entry.index
                    for client, request_id, term in self.waiting.pop(entry.index, ()):
                        status = COMMITTED if entry.term == term else DROPPED
                        client.reply(request_id, status, entry.index)
                raft.advance(ready)
        finally:
            self._running = False

    def _send(self, messages: list[Message]) -> None:
        by_peer: dict[int, list[bytes]] = {}
        for message in messages:
            by_peer.setdefault(message.to, []).append(wire.encode(message))
        for peer, frames in by_peer.items():
            writer = self._outgoing.get(peer)
            if writer is None or writer.is_closing():
                self._connect(peer)
                continue  # Raft tolerates the loss; it retries on its own schedule
            writer.write(b"".join(frames))

    def _connect(self, peer: int) -> None:
        if peer in self._connecting or peer not in self.config.peers:
            return
        self._connecting.add(peer)

        async def connect() -> None:
            host, port = self.config.peers[peer]
            try:
                _, writer = await asyncio.open_connection(host, port)
                self._outgoing[peer] = writer
            except OSError:
                self._outgoing[peer] = None
            finally:
                self._connecting.discard(peer)

        self._tasks.append(asyncio.create_task(connect()))


def parse_peers(text: str) -> dict[int, tuple[str, int]]:
    """`1=127.0.0.1:7001,2=127.0.0.1:7002` -> {1: ("127.0.0.1", 7001), ...}"""
    peers = {}
    for item in text.split(","):
        node_id, _, address = item.partition("=")
        host, _, port = address.rpartition(":")
        peers[int(node_id)] = (host, int(port))
    return peers
