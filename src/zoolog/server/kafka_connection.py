"""One Kafka client connection of the broker: frames in, responses out in request order.

`KafkaConnection` (an `asyncio.Protocol`) splits frames (`protocol/kafka/connection.py`),
decodes each request with the generated codec and gives it a `Slot` in the connection's
response order; the node's handlers fill the slot now or later, and completed responses at
the head leave in order. Kafka's rules at this level: an ApiVersions version the broker
does not know is answered as v0 (header v0) with UNSUPPORTED_VERSION; an API or version the
codec cannot parse closes the connection; a version it can parse but the broker does not
serve is answered UNSUPPORTED_VERSION in that version; an acks=0 produce gets no response.

A request that must wait (a parked fetch, a group join, a metadata write) mutes the
connection: later frames queue (bounded) until it is answered, as Kafka mutes a channel
with a request in flight. Large file slices of fetch responses go out with `os.sendfile`
(`loop.sendfile`), everything else with `transport.writelines`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from zoolog.broker.api_versions import ADVERTISED, serves, unsupported_api_versions_response
from zoolog.broker.error_responses import error_response
from zoolog.errors import KafkaDecodeError
from zoolog.logstore.files import FileSlice
from zoolog.protocol.kafka._generated import REQUESTS
from zoolog.protocol.kafka.codec import assemble, request_header_version, response_header_version
from zoolog.protocol.kafka.connection import (
    FrameReader,
    FrameTooLarge,
    peek_api,
    read_request_header,
    response_prefix,
)
from zoolog.protocol.kafka.errors import Err, KafkaError

if TYPE_CHECKING:
    from zoolog.server.kafka_node import KafkaNode

log = logging.getLogger("zoolog.server.kafka_node")

SENDFILE_MIN_BYTES = 256 << 10
"""File slices this large go out with os.sendfile; smaller ones are read and written (a
sendfile round costs more than copying a small slice)."""
QUEUED_FRAMES_MAX = 64
"""Frames a muted connection buffers before it stops reading from its socket."""
WRITE_HIGH_WATER_BYTES = 8 << 20


def now_ms() -> int:
    return int(time.time() * 1000)


class Slot:
    """One request's place in its connection's response order."""

    __slots__ = ("api_key", "correlation_id", "header_version", "parts", "version", "waits")

    def __init__(self, api_key: int, version: int, correlation_id: int) -> None:
        self.api_key = api_key
        self.version = version
        self.correlation_id = correlation_id
        self.header_version = response_header_version(api_key, version)
        self.parts: list[Any] | None = None
        self.waits = False
        """True while the connection must not start the next request (a muting wait)."""


@dataclass(slots=True)
class RequestContext:
    connection: KafkaConnection
    slot: Slot
    client_id: str
    version: int


class KafkaConnection(asyncio.Protocol):
    """One client connection (see the module docstring)."""

    def __init__(self, node: KafkaNode) -> None:
        self.node = node
        self.reader = FrameReader()
        self.transport: asyncio.Transport | None = None
        self.client_host = ""
        self.slots: deque[Slot] = deque()
        self.queued: deque[bytes] = deque()
        self.muted = False
        self.writing_paused = False
        self.closed = False
        self._handling = False
        self._sending: deque[list[Any]] = deque()
        """Responses waiting for (or in) a sendfile, in order."""

    # --- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        stream: asyncio.Transport = transport  # type: ignore[assignment]  # uvloop: no subclass
        self.transport = stream
        stream.set_write_buffer_limits(WRITE_HIGH_WATER_BYTES)
        peer = transport.get_extra_info("peername")
        self.client_host = f"/{peer[0]}" if peer else ""
        self.node.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.node.connections.discard(self)
        self.node.parking.forget_connection(self)

    def pause_writing(self) -> None:
        self.writing_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._update_reading()
        self._drain_queue()

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.reader.feed(data)
        except FrameTooLarge as exc:
            log.warning("closing %s: %s", self.client_host, exc)
            self.close()
            return
        for frame in frames:
            if self.muted or self.queued or self.writing_paused:
                self.queued.append(bytes(frame))
            else:
                self.handle(frame)
            if self.closed:
                return
        self._update_reading()

    def _update_reading(self) -> None:
        if self.transport is None or self.closed:
            return
        if len(self.queued) >= QUEUED_FRAMES_MAX or self.writing_paused:
            self.transport.pause_reading()
        else:
            self.transport.resume_reading()

    def _drain_queue(self) -> None:
        while self.queued and not self.muted and not self.writing_paused and not self.closed:
            self.handle(memoryview(self.queued.popleft()))
        self._update_reading()

    def close(self) -> None:
        if not self.closed and self.transport is not None:
            self.closed = True
            self.transport.close()

    # --- requests -----------------------------------------------------------------------

    def handle(self, frame: memoryview) -> None:
        self._handling = True
        try:
            self._handle(frame)
        finally:
            self._handling = False

    def _handle(self, frame: memoryview) -> None:
        try:
            api_key, version, correlation_id = peek_api(frame)
        except KafkaDecodeError:
            self.close()
            return
        if api_key == 18 and not serves(18, version):
            # KIP-511: an ApiVersions version we do not know is answered as v0, header v0
            self._write_response(correlation_id, 0, unsupported_api_versions_response(), 0)
            return
        request_cls = REQUESTS.get(api_key)
        if request_cls is None or not (request_cls.VALID_VERSIONS[0] <= version
                                       <= request_cls.VALID_VERSIONS[1]):
            log.warning("closing %s: request for API key %d version %d, which this broker "
                        "cannot parse", self.client_host, api_key, version)
            self.close()
            return
        try:
            head = read_request_header(frame, request_header_version(api_key, version))
            request, _ = request_cls.decode(frame, head.body_pos, version)
        except KafkaDecodeError as exc:
            log.warning("closing %s: malformed %s v%d request: %s", self.client_host,
                        request_cls.__name__, version, exc)
            self.close()
            return
        if api_key == 0 and request.acks == 0:
            self.node.produce_without_response(self, request, version)
            return
        slot = Slot(api_key, version, correlation_id)
        self.slots.append(slot)
        context = RequestContext(self, slot, head.client_id or "", version)
        try:
            if not serves(api_key, version):
                low, high = ADVERTISED.get(api_key, (-1, -1))
                raise KafkaError(Err.UNSUPPORTED_VERSION,
                                 f"{request_cls.__name__} v{version} is not supported "
                                 f"(this broker serves {low}-{high})")
            self.node.dispatch(context, request)
        except KafkaError as exc:
            self.respond(slot, error_response(api_key, request, version, exc))
        except Exception:
            log.exception("%s v%d failed", request_cls.__name__, version)
            self.respond(slot, error_response(api_key, request, version,
                                              KafkaError(Err.UNKNOWN_SERVER_ERROR,
                                                         "internal error")))
        if slot.parts is None and slot.waits:
            self.muted = True

    def respond(self, slot: Slot, response: Any) -> None:
        """Complete `slot` with `response`; sends every completed response at the head."""
        if slot.parts is not None or self.closed:
            return
        out = bytearray()
        splices: list[tuple[int, object]] = []
        response.encode(slot.version, out, splices)
        slot.parts = assemble(out, splices)
        unmuted = slot.waits
        if slot.waits:
            slot.waits = False
            self.muted = False
        self._send_ready()
        if unmuted and not self._handling:
            self._drain_queue()

    def _send_ready(self) -> None:
        while self.slots and self.slots[0].parts is not None:
            slot = self.slots.popleft()
            assert slot.parts is not None
            self._write_parts(slot.correlation_id, slot.header_version, slot.parts)

    def _write_response(self, correlation_id: int, header_version: int, response: Any,
                        version: int) -> None:
        out = bytearray()
        response.encode(version, out)
        self._write_parts(correlation_id, header_version, [out])

    def _write_parts(self, correlation_id: int, header_version: int, parts: list[Any]) -> None:
        if self.transport is None or self.closed:
            return
        size = sum(len(p) for p in parts)
        buffers: list[Any] = [response_prefix(correlation_id, header_version, size)]
        large = False
        for part in parts:
            if isinstance(part, FileSlice) and (part.size < SENDFILE_MIN_BYTES
                                                or not self.node.sendfile):
                buffers.append(self.node.fs.read(part.path, part.position, part.size))
            else:
                large = large or isinstance(part, FileSlice)
                buffers.append(part)
        if not large and not self._sending:
            self.transport.writelines(buffers)
            return
        self._sending.append(buffers)
        if len(self._sending) == 1:
            asyncio.get_running_loop().create_task(self._send_with_sendfile())

    async def _send_with_sendfile(self) -> None:
        """Send queued responses in order, their large file slices with `os.sendfile`
        (no copy through Python); later responses wait their turn."""
        loop = asyncio.get_running_loop()
        fs = self.node.fs
        try:
            while self._sending and not self.closed and self.transport is not None:
                for part in self._sending[0]:
                    if isinstance(part, FileSlice):
                        await loop.sendfile(self.transport,
                                            _FdFile(fs.fd(part.path)),  # type: ignore[arg-type]
                                            part.position, part.size)
                    else:
                        self.transport.write(part)
                self._sending.popleft()
        except (OSError, RuntimeError) as exc:
            log.info("closing %s: sending a fetch response failed: %s", self.client_host, exc)
            self._sending.clear()
            self.close()


class _FdFile:
    """The file-object face `loop.sendfile` needs over a descriptor the log's file system
    keeps open (its position is never used: sendfile and pread take offsets)."""

    mode = "rb"

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def fileno(self) -> int:
        return self._fd

    def seek(self, offset: int, whence: int = 0) -> int:
        return offset

    def tell(self) -> int:
        return 0

    def readinto(self, buffer: Any) -> int:  # the fallback path (loops without sendfile)
        raise OSError("read through os.pread, not the file position")


