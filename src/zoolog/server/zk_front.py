"""The client front of a coordination node: client sockets, framing and jute decoding.

The front accepts client connections on the listening socket it is given, splits and decodes
what clients send (`ServerConnection`), and hands the core (`ZkNode`) plain event tuples
(`zoolog.protocol.zk.handoff`); it carries out the core's commands (send bytes, close, pause or
resume reading). It holds no coordination state and decides nothing: sessions, ordering,
replies and four-letter-word answers all come from the core. It enforces the two limits that
belong to sockets: the frame size and the connections per client address. It terminates TLS
on a secure listener (`zoolog.server.tls`) and tells the core the subject of each client's
certificate (its x509 identity) with the connection's open event.

Two ways to run it, with the same `ClientFront` and the same hand-off tuples:
- `InlineFront`: in the core's event loop, events handed over by a direct call (tests, and
  `zoolog up --single-process`);
- `ProcessFront`: in a child process (`python -m zoolog.server.zk_front`), so that socket work
  and decoding run on another CPU core than the state machine. The core keeps the listening
  socket and passes it down, so a front that dies is replaced without losing the port; a front
  whose core dies exits (EOF on the link, and the kernel's parent-death signal).

Between a `ProcessFront` and its child runs a `MessageLink`: a Unix socket pair carrying
`u32 length | marshal(list of tuples)` messages, one per batch. marshal is only ever fed bytes
from our own child or parent over that private socket pair.

Flow control: the front stops reading from a client while the core says it has too many
requests outstanding, while the client leaves its replies unread (its transport's buffer is
over the high-water mark), and, for every client, while the link to the core is backed up;
so no buffer grows without bound.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import marshal
import os
import signal
import socket
import ssl
import struct
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from zoolog.errors import RemoteProtocolError, StartupError
from zoolog.protocol.zk.connection import (
    Connect,
    FourLetterWord,
    Request,
    ServerConnection,
    UnknownOp,
)
from zoolog.protocol.zk.handoff import (
    CMD_CLOSE,
    CMD_PAUSE,
    CMD_RESUME,
    CMD_SEND,
    EV_CONNECT,
    EV_FOUR_LETTER_WORD,
    EV_FRONT_READY,
    EV_LOST,
    EV_OPEN,
    EV_REQUEST,
    EV_UNKNOWN,
    plain_connect,
    plain_request,
)
from zoolog.server.process import die_with_parent
from zoolog.server.tls import TlsSettings, server_context, x509_identity
from zoolog.server.tls import add_arguments as tls_arguments

log = logging.getLogger("zoolog.zk.front")

Events = list[tuple[Any, ...]]
Sink = Callable[[Events], None]
Listeners = list[tuple[socket.socket, TlsSettings | None]]
"""The listening sockets a front accepts clients on, each plain (None) or TLS."""
KEY_PASSWORD_ENV = "ZOOLOG_TLS_KEY_STORE_PASSWORD"
"""How a front process is given the key store's password (never on its command line)."""
TLS_HANDSHAKE_TIMEOUT_S = 10.0

_LEN = struct.Struct(">I")
FRONT_START_TIMEOUT_S = 30.0
"""How long a new client front process may take to accept clients."""
FRONT_RESTART_DELAY_S = 1.0
"""Pause before replacing a front process that died within a second of starting."""
LINK_MESSAGE_BYTES_MAX = 64 << 20
LINGER_S = 2.0
"""How long a four-letter word's connection drains input after the answer (see
`FrontConnection.linger_close`)."""
"""Largest message on the link. A sender splits a larger batch (many big replies or writes in
one pass) into several messages; a receiver closes the link on a larger one (a bug)."""


class FrontConnection(asyncio.Protocol):
    """One client connection: bytes in, hand-off events out."""

    __slots__ = ("codec", "conn_id", "done_reading", "front", "lingering", "paused_by_core",
                 "peer", "reading", "registered", "transport", "unread_replies", "x509")

    def __init__(self, front: ClientFront) -> None:
        self.front = front
        self.codec = ServerConnection(front.frame_bytes_max)
        self.conn_id = 0
        self.transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] = ("", 0)
        self.registered = False
        self.paused_by_core = False
        self.unread_replies = False  # the client is not taking its replies
        self.done_reading = False  # a four-letter word was asked: its answer ends the talk
        self.lingering = False  # answered and half-closed: draining what the client sent
        self.reading = True
        self.x509: str | None = None  # the subject of the client's TLS certificate

    def update_reading(self) -> None:
        """Read from the client unless the core, the link or the client itself holds back."""
        want = not (self.paused_by_core or self.unread_replies or self.front.link_paused
                    or self.done_reading)
        if want != self.reading and self.transport is not None:
            self.reading = want
            if want:
                self.transport.resume_reading()
            else:
                self.transport.pause_reading()

    def pause_writing(self) -> None:
        # replies pile up past the transport's high-water mark: take no new requests until
        # the client reads them, so that its buffer stays bounded
        self.unread_replies = True
        self.update_reading()

    def resume_writing(self) -> None:
        self.unread_replies = False
        self.update_reading()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername") or ("", 0)
        self.peer = (str(peer[0]), int(peer[1]))
        tls = transport.get_extra_info("ssl_object")
        if tls is not None:  # asyncio calls this once the handshake has succeeded
            der = tls.getpeercert(binary_form=True)
            if der:
                try:
                    self.x509 = x509_identity(der)
                except ValueError as exc:
                    log.warning("client %s:%d: unreadable certificate subject (%s); closing",
                                *self.peer, exc)
                    transport.abort()
                    return
        self.front.connection_made(self)

    def data_received(self, data: bytes) -> None:
        if self.done_reading:  # what follows a four-letter word is discarded, never parsed
            return
        try:
            decoded = self.codec.receive_data(data)
        except RemoteProtocolError as exc:
            log.info("closing %s:%d: %s", self.peer[0], self.peer[1], exc)
            assert self.transport is not None
            self.transport.abort()
            return
        conn_id = self.conn_id
        events: Events = []
        for event in decoded:
            if type(event) is Request:
                op = event.op
                events.append((EV_REQUEST, conn_id, event.xid, op,
                               plain_request(op, event.record), event.body))
            elif type(event) is Connect:
                events.append((EV_CONNECT, conn_id, plain_connect(event.request),
                               event.readonly_byte_present))
            elif type(event) is UnknownOp:
                events.append((EV_UNKNOWN, conn_id, event.xid, event.op))
            elif type(event) is FourLetterWord:
                events.append((EV_FOUR_LETTER_WORD, conn_id, event.word))
                # whatever follows the word (a newline from `nc`) must not be taken for a
                # frame while the core's answer is on its way
                self.done_reading = True
                self.update_reading()
                break
        if events:
            self.front.sink(events)

    def linger_close(self) -> None:
        """Close after a four-letter word's answer without losing it: a close with unread
        input in the socket sends a reset, which can overtake the answer on its way to the
        client (`nc` sends its newline after the word). So half-close, discard what the
        client still sends until it closes (or LINGER_S pass), then close."""
        transport = self.transport
        assert transport is not None
        self.lingering = True
        if transport.can_write_eof():
            transport.write_eof()
        transport.resume_reading()
        asyncio.get_running_loop().call_later(LINGER_S, transport.close)

    def eof_received(self) -> bool | None:
        return None  # the client is done: close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.front.connection_lost(self)


class ClientFront:
    """The client connections of one node and the core's commands for them."""

    def __init__(self, sink: Sink, frame_bytes_max: int, connections_per_address_max: int) -> None:
        self.sink = sink
        self.frame_bytes_max = frame_bytes_max
        self.connections_per_address_max = connections_per_address_max
        self.conns: dict[int, FrontConnection] = {}
        self.per_address: dict[str, int] = {}
        self._next_conn_id = 1
        self.link_paused = False
        self._servers: list[asyncio.Server] = []

    async def serve(self, listener: socket.socket, tls: ssl.SSLContext | None = None) -> None:
        """Accept clients on `listener` (a TLS listener with `tls`); call once per listener."""
        loop = asyncio.get_running_loop()
        self._servers.append(await loop.create_server(
            lambda: FrontConnection(self), sock=listener, ssl=tls,
            ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT_S if tls is not None else None))

    def connection_made(self, conn: FrontConnection) -> None:
        address = conn.peer[0]
        limit = self.connections_per_address_max
        if limit and self.per_address.get(address, 0) >= limit:
            log.warning("too many connections from %s (max %d)", address, limit)
            assert conn.transport is not None
            conn.transport.abort()
            return
        self.per_address[address] = self.per_address.get(address, 0) + 1
        conn.conn_id = self._next_conn_id
        self._next_conn_id += 1
        conn.registered = True
        self.conns[conn.conn_id] = conn
        conn.update_reading()
        self.sink([(EV_OPEN, conn.conn_id, conn.peer[0], conn.peer[1], conn.x509)])

    def connection_lost(self, conn: FrontConnection) -> None:
        if not conn.registered or self.conns.pop(conn.conn_id, None) is None:
            return
        address = conn.peer[0]
        remaining = self.per_address.get(address, 1) - 1
        if remaining:
            self.per_address[address] = remaining
        else:
            self.per_address.pop(address, None)
        self.sink([(EV_LOST, conn.conn_id)])

    def deliver(self, commands: Events) -> None:
        """Carry out the core's commands, in order."""
        conns = self.conns
        for command in commands:
            conn = conns.get(command[1])
            if conn is None or conn.transport is None:
                continue  # the client left meanwhile; its EV_LOST is on its way
            kind = command[0]
            if kind == CMD_SEND:
                conn.transport.write(command[2])
            elif kind == CMD_CLOSE:
                if conn.done_reading and not conn.lingering:
                    conn.linger_close()
                else:
                    conn.transport.close()
            elif kind == CMD_PAUSE:
                conn.paused_by_core = True
                conn.update_reading()
            elif kind == CMD_RESUME:
                conn.paused_by_core = False
                conn.update_reading()

    def pause_all(self) -> None:
        """The link to the core is backed up: stop reading from every client."""
        self.link_paused = True
        for conn in self.conns.values():
            conn.update_reading()

    def resume_all(self) -> None:
        self.link_paused = False
        for conn in self.conns.values():
            conn.update_reading()

    async def close(self) -> None:
        """Stop accepting and drop every client."""
        for server in self._servers:
            server.close()
        for conn in list(self.conns.values()):
            if conn.transport is not None:
                conn.transport.abort()
        for server in self._servers:
            await server.wait_closed()


class InlineFront:
    """A `ClientFront` in the core's own event loop: events go to the core by a direct call."""

    def __init__(self, handle: Sink, listeners: Listeners, frame_bytes_max: int,
                 connections_per_address_max: int) -> None:
        self.listeners = listeners
        self.front = ClientFront(handle, frame_bytes_max, connections_per_address_max)

    async def start(self) -> None:
        for listener, tls in self.listeners:
            await self.front.serve(listener, server_context(tls) if tls is not None else None)

    def deliver(self, commands: Events) -> None:
        self.front.deliver(commands)

    async def stop(self) -> None:
        await self.front.close()


class MessageLink(asyncio.Protocol):
    """One end of the front <-> core socket pair: batches of tuples, marshalled."""

    def __init__(self, on_message: Sink, on_lost: Callable[[], None],
                 on_pause: Callable[[], None] | None = None,
                 on_resume: Callable[[], None] | None = None) -> None:
        self.on_message = on_message
        self.on_lost = on_lost
        self.on_pause = on_pause
        self.on_resume = on_resume
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=8 << 20, low=1 << 20)

    def send(self, items: Events) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        blob = marshal.dumps(items)
        if len(blob) > LINK_MESSAGE_BYTES_MAX and len(items) > 1:
            half = len(items) // 2  # rare (a pass full of big frames): split, keep the order
            self.send(items[:half])
            self.send(items[half:])
            return
        self.transport.write(_LEN.pack(len(blob)) + blob)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        pos = 0
        end = len(buffer)
        try:
            while end - pos >= 4:
                (length,) = _LEN.unpack_from(buffer, pos)
                if length > LINK_MESSAGE_BYTES_MAX:
                    raise RemoteProtocolError(f"link message of {length} bytes")
                if end - pos - 4 < length:
                    break
                items = marshal.loads(memoryview(buffer)[pos + 4 : pos + 4 + length])
                pos += 4 + length
                self.on_message(items)
        finally:
            if pos:
                del buffer[:pos]

    def pause_writing(self) -> None:
        if self.on_pause is not None:
            self.on_pause()

    def resume_writing(self) -> None:
        if self.on_resume is not None:
            self.on_resume()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.on_lost()


class ProcessFront:
    """A `ClientFront` in a child process, reached over a `MessageLink`.

    If the child dies, every client connection it held is reported lost to the core (sessions
    live on, clients reconnect) and a new child takes over the same listening socket.
    """

    def __init__(self, handle: Sink, on_front_lost: Callable[[], None],
                 listeners: Listeners, frame_bytes_max: int,
                 connections_per_address_max: int) -> None:
        self.handle = handle
        self.on_front_lost = on_front_lost
        self.listeners = listeners
        self.frame_bytes_max = frame_bytes_max
        self.connections_per_address_max = connections_per_address_max
        self.process: subprocess.Popen[bytes] | None = None
        self.link: MessageLink | None = None
        self.restarts = 0
        self._stopping = False
        self._started_at = 0.0
        self._restarting: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None

    def _on_message(self, items: Events) -> None:
        if items and items[0][0] == EV_FRONT_READY:
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(None)
            items = items[1:]
        if items:
            self.handle(items)

    async def start(self) -> None:
        """Start the child and wait until it accepts clients (StartupError if it cannot)."""
        loop = asyncio.get_running_loop()
        self._started_at = loop.time()
        self._ready = loop.create_future()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        listen_args: list[str] = []
        env = dict(os.environ)
        for listener, tls in self.listeners:
            if tls is None:
                listen_args += ["--listen-fd", str(listener.fileno())]
            else:
                listen_args += ["--secure-listen-fd", str(listener.fileno()), *tls.as_args()]
                if tls.key_store_password is not None:  # not on a command line others see
                    env[KEY_PASSWORD_ENV] = tls.key_store_password
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "zoolog.server.zk_front", *listen_args,
                 "--link-fd", str(theirs.fileno()),
                 "--frame-bytes-max", str(self.frame_bytes_max),
                 "--connections-per-address-max", str(self.connections_per_address_max),
                 "--log-level", logging.getLevelName(logging.getLogger().getEffectiveLevel())],
                pass_fds=(*(listener.fileno() for listener, _ in self.listeners),
                          theirs.fileno()),
                env=env,
            )
        finally:
            theirs.close()
        link = MessageLink(self._on_message, self._link_lost)
        # the core stops reading new requests while the front does not take its replies
        link.on_pause = lambda: link.transport.pause_reading() if link.transport else None
        link.on_resume = lambda: link.transport.resume_reading() if link.transport else None
        await loop.create_unix_connection(lambda: link, sock=ours)
        self.link = link
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), FRONT_START_TIMEOUT_S)
        except TimeoutError as exc:
            if self.process is not None:
                self.process.kill()
            raise StartupError(
                f"the client front process did not start within {FRONT_START_TIMEOUT_S} s"
            ) from exc

    def deliver(self, commands: Events) -> None:
        if self.link is not None:
            self.link.send(commands)

    def _link_lost(self) -> None:
        self.link = None
        if self._ready is not None and not self._ready.done():
            code = self.process.poll() if self.process is not None else None
            self._ready.set_exception(StartupError(
                f"the client front process exited before accepting clients (exit code {code})"
            ))
            return
        if self._stopping:
            return
        process = self.process
        code = process.poll() if process is not None else None
        log.error("the client front process exited (%s); starting a new one",
                  f"exit code {code}" if code is not None else "link closed")
        if process is not None and code is None:
            process.kill()
        self.restarts += 1
        self.on_front_lost()
        loop = asyncio.get_running_loop()
        # a front that dies at once (it cannot start) is not restarted in a tight loop
        delay = FRONT_RESTART_DELAY_S if loop.time() - self._started_at < 1.0 else 0.0
        self._restarting = loop.create_task(self._restart(delay))

    async def _restart(self, delay_s: float) -> None:
        while not self._stopping:
            await asyncio.sleep(delay_s)
            if self._stopping:
                return
            try:
                await self.start()
                return
            except StartupError as exc:
                log.error("%s; trying again", exc)
                delay_s = FRONT_RESTART_DELAY_S

    async def stop(self) -> None:
        self._stopping = True
        if self._restarting is not None:
            self._restarting.cancel()
        if self.link is not None and self.link.transport is not None:
            self.link.transport.close()
        process = self.process
        if process is None:
            return
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(loop.run_in_executor(None, process.wait), 10)
        except TimeoutError:
            process.kill()
            await loop.run_in_executor(None, process.wait)


# ---------------------------------------------------------------------- the child process

async def _serve_front(listeners: list[tuple[int, TlsSettings | None]], link_fd: int,
                       frame_bytes_max: int, connections_per_address_max: int) -> None:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    pending: Events = []

    def core_gone() -> None:
        if not done.done():
            done.set_result(None)

    link = MessageLink(lambda commands: front.deliver(commands), core_gone)

    def flush() -> None:
        batch = pending[:]
        pending.clear()
        link.send(batch)

    def sink(events: Events) -> None:
        # one message per event-loop pass: every client read in this pass goes in one batch
        if not pending:
            loop.call_soon(flush)
        pending.extend(events)

    front = ClientFront(sink, frame_bytes_max, connections_per_address_max)
    link.on_pause = front.pause_all
    link.on_resume = front.resume_all
    await loop.create_unix_connection(lambda: link, sock=socket.socket(fileno=link_fd))
    for fd, tls in listeners:
        await front.serve(socket.socket(fileno=fd),
                          server_context(tls) if tls is not None else None)
    link.send([(EV_FRONT_READY, 0)])
    await done
    await front.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zoolog.server.zk_front",
                                     description="zoolog's client front process (started by "
                                                 "the coordination node, not by hand)")
    parser.add_argument("--listen-fd", type=int, help="a plain listening socket")
    parser.add_argument("--secure-listen-fd", type=int, help="a TLS listening socket")
    tls_arguments(parser)
    parser.add_argument("--link-fd", type=int, required=True)
    parser.add_argument("--frame-bytes-max", type=int, required=True)
    parser.add_argument("--connections-per-address-max", type=int, required=True)
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    die_with_parent()
    # the core decides when to stop (Ctrl-C and SIGTERM reach the whole process group): the
    # front ends when its link to the core closes
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from zoolog.server.process import tune_gc_for_serving

    tune_gc_for_serving()
    listeners: list[tuple[int, TlsSettings | None]] = []
    if args.listen_fd is not None:
        listeners.append((args.listen_fd, None))
    if args.secure_listen_fd is not None:
        listeners.append((args.secure_listen_fd,
                          TlsSettings.from_args(args, os.environ.get(KEY_PASSWORD_ENV))))
    asyncio.run(_serve_front(listeners, args.link_fd, args.frame_bytes_max,
                             args.connections_per_address_max))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
