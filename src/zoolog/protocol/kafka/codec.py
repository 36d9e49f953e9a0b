"""Helpers around the generated Kafka codecs: header versions and zero-copy encoding.

Header versions. Every request starts with a RequestHeader and every response with a
ResponseHeader whose version follows from the API's first flexible version: requests use header
v2 from it on (v1 before), responses header v1 (v0 before). The one exception generated here is
ApiVersionsResponse, whose header is always v0 so that a client that does not yet know what the
broker supports can read it. (ControlledShutdown v0 would use request header v0; it is not
generated.)

`Message` is the base class of every generated top-level class (messages, headers, data and
records).

Splices. Encoding a `records` field writes its length prefix, then either copies the value into
`out` (a bytes, bytearray or memoryview under 64 KiB) or, when the caller passed a `splices`
list, records `(len(out), value)` there and copies nothing: large buffers and other objects with
`len()` (for example a reference to a slice of a log segment, sent later with `os.sendfile`).
`assemble` turns the encoded bytes and the splices into the ordered parts to write. Without a
splices list (`to_bytes`, `encode(..., splices=None)`) byte buffers of any size are copied and
any other object raises LocalProtocolError.

Must never: perform I/O, or hold on to the parts it returns.
"""

from __future__ import annotations

from zoolog.errors import LocalProtocolError

from ._generated import REQUESTS, RESPONSES
from ._generated._runtime import SPLICE_MIN_BYTES, Message, Splices

__all__ = [
    "SPLICE_MIN_BYTES",
    "Message",
    "Splices",
    "assemble",
    "encode_parts",
    "request_header_version",
    "response_header_version",
]

_API_VERSIONS_KEY = 18


def request_header_version(api_key: int, api_version: int) -> int:
    """RequestHeader version for a request: 2 in the API's flexible versions, else 1."""
    cls = REQUESTS.get(api_key)
    if cls is None:
        raise LocalProtocolError(f"no request class for api key {api_key}")
    flexible_from: int | None = cls.FLEXIBLE_FROM
    return 2 if flexible_from is not None and api_version >= flexible_from else 1


def response_header_version(api_key: int, api_version: int) -> int:
    """ResponseHeader version for a response: 1 in the API's flexible versions, else 0;
    always 0 for ApiVersions."""
    cls = RESPONSES.get(api_key)
    if cls is None:
        raise LocalProtocolError(f"no response class for api key {api_key}")
    if api_key == _API_VERSIONS_KEY:
        return 0
    flexible_from: int | None = cls.FLEXIBLE_FROM
    return 1 if flexible_from is not None and api_version >= flexible_from else 0


def assemble(out: bytearray, splices: Splices | None) -> list[object]:
    """The parts to write, in order: memoryview slices of `out` between the splice points and
    the spliced objects themselves. `out` must not be resized while the slices are alive."""
    if not splices:
        return [memoryview(out)] if out else []
    view = memoryview(out)
    parts: list[object] = []
    start = 0
    for position, value in splices:
        if position > start:
            parts.append(view[start:position])
        parts.append(value)
        start = position
    if start < len(out):
        parts.append(view[start:])
    return parts


def encode_parts(message: Message, version: int) -> list[object]:
    """Encode `message` (any generated top-level class) at `version` into parts to write."""
    out = bytearray()
    splices: Splices = []
    message.encode(version, out, splices)
    return assemble(out, splices)
