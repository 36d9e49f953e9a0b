"""A standalone coordination node: the asyncio runtime around `CoordService`.

The only place with clocks and disk for the coordination service. It:
- owns the listening socket and a client front (`zoolog.server.zk_front`: client sockets,
  framing, decoding; in this event loop or in a child process) whose hand-off events
  (`zoolog.protocol.zk.handoff`) it feeds to the service;
- carries out what the service asks for (`take_output`): frames and closes become front
  commands, proposals are stamped with the next zxid and handed to the group-commit writer;
  a connection with too many requests outstanding is paused (backpressure);
- group commit: every txn proposed while a batch is being fsynced joins the next batch; one
  `write` + `fdatasync` per batch runs in a worker thread, then the batch is applied in order
  and its replies go out (persist -> apply -> reply), while the next batch is being written;
- runs the timers: session expiry each tick, container/TTL cleanup, snapshots every
  `snap_count` txns (written by a forked child, `zk_snapshotter.py`, so the core never
  stops for them);
- answers four-letter words.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from typing import Any

from zoolog.coord.service import CoordService, Pending
from zoolog.coord.txn import Txn
from zoolog.protocol.zk._generated.jute_records import DeleteRequest
from zoolog.protocol.zk.handoff import (
    CMD_CLOSE,
    CMD_PAUSE,
    CMD_RESUME,
    CMD_SEND,
    EV_CONNECT,
    EV_FOUR_LETTER_WORD,
    EV_LOST,
    EV_OPEN,
    EV_REQUEST,
    EV_UNKNOWN,
    connect_from_plain,
    record_from_plain,
)
from zoolog.protocol.zk.opcodes import OpCode
from zoolog.server import four_letter
from zoolog.server.config import NodeConfig
from zoolog.server.zk_front import InlineFront, Listeners, ProcessFront
from zoolog.server.zk_snapshotter import Snapshotter
from zoolog.server.zk_storage import ZkStorage

log = logging.getLogger("zoolog.zk")


HANDOVER_FRAMES = 64
"""Reply and event frames a committed batch queues before they are handed to the front. A
group commit holds a whole wave of requests (and, in a read/write mix, the reads queued
behind each write), so handing over all its replies at once made the front and the core take
turns on that wave; in parts, the front writes the first replies (and reads the clients' next
requests) while the core applies the rest. Alternating quick rounds here: about 10 % more
durable writes (parts of 64 txns against one hand-over) and 10 % more of the 90/10 mix
(parts of 64 frames against 64 txns), at the same CPU per request (docs/BENCHMARKS.md)."""


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


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
        self.snapshotter = Snapshotter(self.storage)
        self.conns: dict[int, tuple[str, int]] = {}
        """Client connections the front reported open: conn_id -> peer address."""
        self.paused: set[int] = set()
        self.backpressure_pauses = 0
        self._batch: list[tuple[Txn, int | None, Pending | None, bytes]] = []
        self._flushing = False
        self._listeners: list[socket.socket] = []
        self.front: InlineFront | ProcessFront | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.started_ms = wall_ms()
        self.port = config.client_port
        """The plain client port (the TLS one when only secureClientPort is served)."""
        self.secure_port: int | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        config = self.config
        listeners: Listeners = []
        try:
            if config.client_port_enabled:
                listener = socket.create_server(
                    (config.host, config.client_port), backlog=1024, reuse_port=False)
                listeners.append((listener, None))
                self.port = listener.getsockname()[1]
            tls = config.tls_settings()
            if tls is not None:
                assert config.secure_client_port is not None
                listener = socket.create_server(
                    (config.secure_host or config.host, config.secure_client_port),
                    backlog=1024, reuse_port=False)
                listeners.append((listener, tls))
                self.secure_port = listener.getsockname()[1]
                if not config.client_port_enabled:
                    self.port = self.secure_port
        except BaseException:
            for listener, _ in listeners:
                listener.close()
            self.storage.close()
            raise
        for listener, _ in listeners:
            listener.setblocking(False)
        self._listeners = [listener for listener, _ in listeners]
        limits = self.limits
        if config.client_front_process:
            self.front = ProcessFront(self.handle, self._front_lost, listeners,
                                      limits.frame_bytes_max, limits.connections_per_address_max)
        else:
            self.front = InlineFront(self.handle, listeners, limits.frame_bytes_max,
                                     limits.connections_per_address_max)
        try:
            await self.front.start()
        except BaseException:
            for listener in self._listeners:
                listener.close()
            self.storage.close()
            raise
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
        if self.front is not None:
            await self.front.stop()
        for listener in self._listeners:
            listener.close()
        while self._flushing or self._batch:
            await asyncio.sleep(0.01)
        await self.snapshotter.wait()
        self.storage.close()

    # ------------------------------------------------------------------ events from the front

    def handle(self, events: list[tuple[Any, ...]]) -> None:
        """Feed one batch of the front's events to the service, then carry out its output."""
        service = self.service
        known = service.conns
        now = wall_ms()
        requested: set[int] = set()
        for event in events:
            kind = event[0]
            conn_id = event[1]
            if kind == EV_REQUEST:
                if conn_id in known:  # not if the service dropped it (session moved away)
                    op = event[3]
                    service.request(conn_id, event[2], op, record_from_plain(op, event[4]), now,
                                    event[5])
                    requested.add(conn_id)
            elif kind == EV_OPEN:
                self.conns[conn_id] = (event[2], event[3])
                service.open(conn_id, (event[2], event[3]), now, event[4])
            elif kind == EV_LOST:
                self.connection_lost(conn_id)
            elif kind == EV_CONNECT:
                if conn_id in known:
                    service.connect(conn_id, connect_from_plain(event[2]), event[3], now)
            elif kind == EV_UNKNOWN:
                if conn_id in known:
                    service.unknown_op(conn_id, event[2], event[3])
            elif kind == EV_FOUR_LETTER_WORD:
                self.answer_four_letter_word(conn_id, event[2])
        commands = self._output_commands()
        limit = self.limits.outstanding_requests_per_connection_max
        paused = self.paused
        for conn_id in requested:
            if conn_id not in paused and service.outstanding(conn_id) >= limit:
                paused.add(conn_id)
                self.backpressure_pauses += 1
                commands.append((CMD_PAUSE, conn_id))
        self._deliver(commands)

    def connection_lost(self, conn_id: int) -> None:
        if self.conns.pop(conn_id, None) is None:
            return
        self.paused.discard(conn_id)
        self.service.lost(conn_id)

    def _front_lost(self) -> None:
        """The front process died: its clients are gone (their sessions live on)."""
        for conn_id in list(self.conns):
            self.connection_lost(conn_id)
        self.drain()

    def answer_four_letter_word(self, conn_id: int, word: str) -> None:
        if word in self.config.four_letter_whitelist:
            text = four_letter.answer(self, word)
        else:
            text = f"{word} is not executed because it is not in the whitelist.\n"
        self._deliver([(CMD_SEND, conn_id, text.encode("utf-8")), (CMD_CLOSE, conn_id)])
        self.connection_lost(conn_id)

    # ------------------------------------------------------------------ output

    def drain(self) -> None:
        """Carry out everything the service asked for, in order."""
        commands = self._output_commands()
        if commands:
            self._deliver(commands)

    def _deliver(self, commands: list[tuple[Any, ...]]) -> None:
        if commands and self.front is not None:
            self.front.deliver(commands)

    def _output_commands(self) -> list[tuple[Any, ...]]:
        """Turn what the service asked for into front commands; stamp and batch proposals.

        The service joins each connection's frames (one `write` for a pipelined burst); a
        connection's close follows its frames.
        """
        sends, closes, proposals = self.service.take_output()
        if proposals:
            batch = self._batch
            zxid = self.next_zxid
            for txn, conn_id, pending in proposals:
                txn.zxid = zxid
                zxid += 1
                batch.append((txn, conn_id, pending, txn.to_bytes()))
            self.next_zxid = zxid
            if not self._flushing:
                self._flushing = True
                asyncio.get_running_loop().create_task(self._flush())
        commands: list[tuple[Any, ...]] = [(CMD_SEND, conn_id, data) for conn_id, data in sends]
        for conn_id, reason in closes:
            log.debug("closing connection %d: %s", conn_id, reason)
            commands.append((CMD_CLOSE, conn_id))
        return commands

    async def _flush(self) -> None:
        """Group commit, pipelined: while one batch is applied and answered, the next one is
        already being written and fsynced. Each txn is still on disk before it is applied, and
        batches are applied in log order. A snapshot waits until no write is in flight (it
        starts a new log segment)."""
        loop = asyncio.get_running_loop()
        storage = self.storage
        service = self.service
        writing: asyncio.Future[None] | None = None
        batch: list[tuple[Txn, int | None, Pending | None, bytes]] = []
        try:
            while True:
                if writing is None:
                    if not self._batch:
                        break
                    batch, self._batch = self._batch, []
                    writing = loop.run_in_executor(
                        None, storage.append_batch, [entry[3] for entry in batch]
                    )
                await writing
                durable, writing = batch, None
                self.txns_since_snapshot += len(durable)
                snapshot_due = self.txns_since_snapshot >= self.config.snap_count
                if self._batch and not snapshot_due:
                    batch, self._batch = self._batch, []
                    writing = loop.run_in_executor(
                        None, storage.append_batch, [entry[3] for entry in batch]
                    )
                now = wall_ms()
                committed = service.committed
                stats = service.stats
                handed = stats.packets_sent
                for txn, conn_id, pending, _ in durable:
                    committed(txn, conn_id, pending, now)
                    if stats.packets_sent - handed >= HANDOVER_FRAMES:
                        self.drain_after_commit()
                        handed = stats.packets_sent
                self.drain_after_commit()
                if snapshot_due:
                    self.take_snapshot()
        finally:
            self._flushing = False

    def drain_after_commit(self) -> None:
        commands = self._output_commands()
        # a commit can free room in a paused connection's FIFO
        if self.paused:
            limit = self.limits.outstanding_requests_per_connection_max
            for conn_id in list(self.paused):
                if self.service.outstanding(conn_id) < limit // 2 + 1:
                    self.paused.discard(conn_id)
                    commands.append((CMD_RESUME, conn_id))
        self._deliver(commands)

    def take_snapshot(self) -> None:
        """Start a new log segment and snapshot the applied state as of its last txn, in a
        forked child (`zk_snapshotter.py`); if the previous snapshot is still being written,
        the next batch tries again."""
        if self.snapshotter.running:
            return
        zxid = self.state.last_zxid
        self.storage.open_log(self.next_zxid)
        self.txns_since_snapshot = 0
        self.snapshotter.take(self.state, zxid)

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
