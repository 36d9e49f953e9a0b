"""A standalone coordination node: the asyncio runtime around `CoordService`.

The only place with sockets, clocks and disk for the coordination service. It:
- accepts client connections (`ZkClientProtocol`, an `asyncio.Protocol` with the sans-I/O
  `ServerConnection` doing the framing) and feeds decoded events to the service;
- carries out the service's outbox: frames to transports, closes, and proposals, which it
  stamps with the next zxid and hands to the group-commit writer;
- group commit: every txn proposed while a batch is being fsynced joins the next batch; one
  `write` + `fdatasync` per batch runs in a worker thread, then the batch is applied in order
  and its replies go out (persist -> apply -> reply);
- runs the timers: session expiry each tick, container/TTL cleanup, snapshots every
  `snap_count` txns;
- answers four-letter words.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from zoolog.coord import snapshot
from zoolog.coord.service import CoordService, Propose, Send
from zoolog.coord.txn import Txn
from zoolog.errors import RemoteProtocolError
from zoolog.protocol.zk._generated.jute_records import DeleteRequest
from zoolog.protocol.zk.connection import (
    Connect,
    FourLetterWord,
    Request,
    ServerConnection,
    UnknownOp,
)
from zoolog.protocol.zk.opcodes import OpCode
from zoolog.server import four_letter
from zoolog.server.config import NodeConfig
from zoolog.server.zk_storage import ZkStorage

log = logging.getLogger("zoolog.zk")


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class ZkClientProtocol(asyncio.Protocol):
    """One client connection: bytes to events, events to the node."""

    __slots__ = ("codec", "conn_id", "node", "paused", "peer", "transport")

    def __init__(self, node: ZkNode) -> None:
        self.node = node
        self.codec = ServerConnection(node.limits.frame_bytes_max)
        self.conn_id = 0
        self.transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] = ("", 0)
        self.paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername") or ("", 0)
        self.peer = (str(peer[0]), int(peer[1]))
        self.node.connection_made(self)

    def data_received(self, data: bytes) -> None:
        node = self.node
        try:
            events = self.codec.receive_data(data)
        except RemoteProtocolError as exc:
            log.info("closing %s:%d: %s", self.peer[0], self.peer[1], exc)
            node.drop(self)
            return
        service = node.service
        now = wall_ms()
        conn_id = self.conn_id
        for event in events:
            if type(event) is Request:
                service.request(conn_id, event.xid, event.op, event.record, now)
            elif type(event) is Connect:
                service.connect(conn_id, event.request, event.readonly_byte_present, now)
            elif type(event) is UnknownOp:
                service.unknown_op(conn_id, event.xid, event.op)
            elif type(event) is FourLetterWord:
                node.answer_four_letter_word(self, event.word)
                return
        node.drain()
        limit = node.limits.outstanding_requests_per_connection_max
        if not self.paused and service.outstanding(conn_id) >= limit:
            self.paused = True
            node.backpressure_pauses += 1
            if self.transport is not None:
                self.transport.pause_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.node.connection_lost(self)


class ZkNode:
    """A standalone zoolog coordination server."""

    def __init__(self, config: NodeConfig) -> None:
        config.validate()
        self.config = config
        self.limits = config.limits()
        self.storage = ZkStorage(config.data_dir, config.sync_writes)
        recovery = self.storage.recover(self.limits)
        if recovery.truncated_bytes:
            log.warning(
                "txn log %s had a torn tail: truncated %d bytes that were never acknowledged",
                recovery.truncated_file, recovery.truncated_bytes,
            )
        self.recovery = recovery
        self.state = recovery.state
        self.service = CoordService(self.state, config.service_config(), wall_ms())
        self.next_zxid = self.state.last_zxid + 1
        self.storage.open_log(self.next_zxid)
        self.txns_since_snapshot = recovery.replayed_txns
        self.conns: dict[int, ZkClientProtocol] = {}
        self.per_address: dict[str, int] = {}
        self._next_conn_id = 1
        self.backpressure_pauses = 0
        self._batch: list[tuple[Txn, int, bytes]] = []
        self._flushing = False
        self._server: asyncio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.started_ms = wall_ms()
        self.port = config.client_port

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: ZkClientProtocol(self), self.config.host, self.config.client_port,
            reuse_address=True, backlog=1024,
        )
        sockets = self._server.sockets
        if sockets:
            self.port = sockets[0].getsockname()[1]
        self._tasks.append(asyncio.create_task(self._session_timer()))
        self._tasks.append(asyncio.create_task(self._container_timer()))

    @property
    def connect_string(self) -> str:
        return f"{self.config.host}:{self.port}"

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for proto in list(self.conns.values()):
            if proto.transport is not None:
                proto.transport.abort()
        while self._flushing or self._batch:
            await asyncio.sleep(0.01)
        self.storage.close()

    # ------------------------------------------------------------------ connections

    def connection_made(self, proto: ZkClientProtocol) -> None:
        address = proto.peer[0]
        limit = self.limits.connections_per_address_max
        if limit and self.per_address.get(address, 0) >= limit:
            log.warning("too many connections from %s (max %d)", address, limit)
            assert proto.transport is not None
            proto.transport.abort()
            return
        self.per_address[address] = self.per_address.get(address, 0) + 1
        proto.conn_id = self._next_conn_id
        self._next_conn_id += 1
        self.conns[proto.conn_id] = proto
        self.service.open(proto.conn_id, proto.peer, wall_ms())

    def connection_lost(self, proto: ZkClientProtocol) -> None:
        if self.conns.pop(proto.conn_id, None) is None:
            return
        address = proto.peer[0]
        remaining = self.per_address.get(address, 1) - 1
        if remaining:
            self.per_address[address] = remaining
        else:
            self.per_address.pop(address, None)
        self.service.lost(proto.conn_id)

    def drop(self, proto: ZkClientProtocol) -> None:
        if proto.transport is not None:
            proto.transport.abort()

    def answer_four_letter_word(self, proto: ZkClientProtocol, word: str) -> None:
        assert proto.transport is not None
        if word in self.config.four_letter_whitelist:
            text = four_letter.answer(self, word)
        else:
            text = f"{word} is not executed because it is not in the whitelist.\n"
        proto.transport.write(text.encode("utf-8"))
        proto.transport.close()

    # ------------------------------------------------------------------ outbox

    def drain(self) -> None:
        """Carry out everything the service asked for, in order.

        Frames for one connection are joined into one `write` per drain (one syscall for a
        whole pipelined burst); a Close first flushes what was queued for that connection.
        """
        service = self.service
        outbox = service.outbox
        if not outbox:
            return
        service.outbox = []
        conns = self.conns
        frames: dict[int, list[bytes]] = {}
        for item in outbox:
            if isinstance(item, Send):
                queued = frames.get(item.conn_id)
                if queued is None:
                    frames[item.conn_id] = [item.frame]
                else:
                    queued.append(item.frame)
            elif isinstance(item, Propose):
                txn = item.txn
                txn.zxid = self.next_zxid
                self.next_zxid += 1
                self._batch.append((txn, item.token, txn.to_bytes()))
            else:
                proto = conns.get(item.conn_id)
                queued = frames.pop(item.conn_id, None)
                if proto is not None and proto.transport is not None:
                    if queued:
                        proto.transport.write(b"".join(queued))
                    proto.transport.close()
        for conn_id, queued in frames.items():
            proto = conns.get(conn_id)
            if proto is not None and proto.transport is not None:
                proto.transport.write(queued[0] if len(queued) == 1 else b"".join(queued))
        if self._batch and not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._batch:
                batch, self._batch = self._batch, []
                await loop.run_in_executor(
                    None, self.storage.append_batch, [payload for _, _, payload in batch]
                )
                now = wall_ms()
                service = self.service
                for txn, token, _ in batch:
                    service.committed(txn, token, now)
                self.txns_since_snapshot += len(batch)
                self.drain_after_commit()
                if self.txns_since_snapshot >= self.config.snap_count:
                    self.take_snapshot()
        finally:
            self._flushing = False

    def drain_after_commit(self) -> None:
        # a commit can free room in a paused connection's FIFO
        self.drain()
        limit = self.limits.outstanding_requests_per_connection_max
        for proto in self.conns.values():
            if proto.paused and self.service.outstanding(proto.conn_id) < limit // 2 + 1:
                proto.paused = False
                if proto.transport is not None:
                    proto.transport.resume_reading()

    def take_snapshot(self) -> None:
        """Snapshot the applied state and start a new log segment after it."""
        zxid = self.state.last_zxid
        self.storage.write_snapshot(snapshot.encode(self.state), zxid)
        self.storage.open_log(self.next_zxid)
        self.txns_since_snapshot = 0

    # ------------------------------------------------------------------ timers

    async def _session_timer(self) -> None:
        period = max(self.config.tick_ms / 2000, 0.01)
        while True:
            await asyncio.sleep(period)
            self.service.tick(wall_ms())
            self.drain()

    async def _container_timer(self) -> None:
        period = max(self.config.container_check_interval_ms / 1000, 0.01)
        while True:
            await asyncio.sleep(period)
            now = wall_ms()
            for path in self.service.expirable_nodes(now):
                self.service.propose_internal(
                    Txn(0, 0, 0, now, OpCode.deleteContainer, (), DeleteRequest(path, -1))
                )
            self.drain()


async def serve(config: NodeConfig, ready: asyncio.Event | None = None) -> None:
    """Run a node until cancelled."""
    node = ZkNode(config)
    await node.start()
    if ready is not None:
        ready.set()
    try:
        await asyncio.Event().wait()
    finally:
        await node.stop()
