"""Sans-I/O server side of one Kafka connection: frames in, request headers out, responses
framed.

Kafka frames are an int32 size then that many bytes. A request starts with its header
(api_key int16, api_version int16, correlation_id int32; v1+ a nullable int16-length
client_id; v2 a tagged-field section), then the body in the API's version. The header
version follows the API's first flexible version (`codec.request_header_version`).

`FrameReader.feed(data)` returns the complete frames in `data` (memoryviews into `data`
where a frame lies whole in it, so a large Produce is not copied on its way to the log;
copies only of frames that span reads) and keeps the partial tail. A size below 8 or above
`frame_bytes_max` is a RemoteProtocolError: Kafka closes such connections
(`socket.request.max.bytes`).

`read_request_header(frame)` -> `RequestHead`; the caller (the broker runtime) decides by the
API key and version whether it can decode the body. `frame_response(correlation_id,
header_version, parts)` prepends the size and response header to an encoded body.

Nothing here touches sockets; the server's protocol object feeds bytes in and writes what
comes out.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from zoolog.errors import KafkaDecodeError, RemoteProtocolError

_SIZE = struct.Struct(">i")
_HEAD = struct.Struct(">hhi")
_STR_LEN = struct.Struct(">h")
_CORRELATION = struct.Struct(">ii")  # size, correlation id

FRAME_BYTES_MAX_DEFAULT = 104_857_600
"""Kafka's `socket.request.max.bytes` (100 MiB)."""


class FrameTooLarge(RemoteProtocolError):
    """A client announced a request larger than the broker accepts."""


class FrameReader:
    """Split a byte stream into Kafka frames (see the module docstring)."""

    __slots__ = ("_partial", "frame_bytes_max")

    def __init__(self, frame_bytes_max: int = FRAME_BYTES_MAX_DEFAULT) -> None:
        self._partial = bytearray()
        self.frame_bytes_max = frame_bytes_max

    @property
    def buffered(self) -> int:
        return len(self._partial)

    def feed(self, data: bytes | bytearray | memoryview) -> list[memoryview]:
        frames: list[memoryview] = []
        if self._partial:
            self._partial += data
            if not self._enough(self._partial):
                return frames
            buf = memoryview(self._partial)  # the frames keep this buffer alive
            self._partial = bytearray()
        else:
            buf = data if isinstance(data, memoryview) else memoryview(data)
        pos = 0
        end = len(buf)
        while end - pos >= 4:
            (size,) = _SIZE.unpack_from(buf, pos)
            if size < 8 or size > self.frame_bytes_max:
                raise FrameTooLarge(
                    f"request size {size} outside 8..{self.frame_bytes_max} bytes")
            if end - pos - 4 < size:
                break
            frames.append(buf[pos + 4 : pos + 4 + size])
            pos += 4 + size
        if pos < end:
            self._partial += buf[pos:]
        return frames

    def _enough(self, partial: bytearray) -> bool:
        """Whether the buffered bytes hold at least one whole frame."""
        if len(partial) < 4:
            return False
        size: int = _SIZE.unpack_from(partial, 0)[0]
        if size < 8 or size > self.frame_bytes_max:
            raise FrameTooLarge(f"request size {size} outside 8..{self.frame_bytes_max} bytes")
        return len(partial) - 4 >= size


class RequestHead(NamedTuple):
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    body_pos: int
    """Where the body starts in the frame (after the header for `header_version`)."""


def read_request_header(frame: memoryview, header_version: int) -> RequestHead:
    """Decode the request header of `frame` in `header_version` (0, 1 or 2)."""
    if len(frame) < 8:
        raise KafkaDecodeError("request shorter than its header")
    api_key, api_version, correlation_id = _HEAD.unpack_from(frame, 0)
    pos = 8
    client_id: str | None = None
    if header_version >= 1:
        if len(frame) < pos + 2:
            raise KafkaDecodeError("truncated client id")
        (n,) = _STR_LEN.unpack_from(frame, pos)
        pos += 2
        if n >= 0:
            if pos + n > len(frame):
                raise KafkaDecodeError("client id runs past the request")
            try:
                client_id = str(frame[pos : pos + n], "utf-8")
            except UnicodeDecodeError as exc:
                raise KafkaDecodeError(f"client id is not UTF-8: {exc}") from exc
            pos += n
        elif n != -1:
            raise KafkaDecodeError(f"client id length {n}")
    if header_version >= 2:
        pos = skip_tagged_fields(frame, pos)
    return RequestHead(api_key, api_version, correlation_id, client_id, pos)


def peek_api(frame: memoryview) -> tuple[int, int, int]:
    """(api_key, api_version, correlation_id) without validating the rest."""
    if len(frame) < 8:
        raise KafkaDecodeError("request shorter than its header")
    key, version, correlation_id = _HEAD.unpack_from(frame, 0)
    return key, version, correlation_id


def _read_uvarint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise KafkaDecodeError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 28:
            raise KafkaDecodeError("varint longer than 5 bytes")


def skip_tagged_fields(buf: memoryview, pos: int) -> int:
    count, pos = _read_uvarint(buf, pos)
    for _ in range(count):
        _, pos = _read_uvarint(buf, pos)
        size, pos = _read_uvarint(buf, pos)
        pos += size
        if pos > len(buf):
            raise KafkaDecodeError("tagged field runs past the request")
    return pos


def response_prefix(correlation_id: int, header_version: int, body_size: int) -> bytes:
    """Size + response header for a body of `body_size` bytes (header v1 adds an empty
    tagged-field section)."""
    if header_version >= 1:
        return _CORRELATION.pack(body_size + 5, correlation_id) + b"\x00"
    return _CORRELATION.pack(body_size + 4, correlation_id)
