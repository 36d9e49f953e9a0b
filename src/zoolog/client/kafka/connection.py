"""One connection to one broker: length-prefixed frames out and in, answers matched to
requests by correlation id, and the ApiVersions negotiation every new connection starts with.

Owns the framing (a frame announcing more than `response_bytes_max` closes the connection),
correlation ids, the per-connection version choice and the request timeout (a request not
answered in time aborts the connection). A dropped connection fails every request pending on
it with KafkaConnectionError. Never: retries, routing, metadata, reconnecting (the cluster
opens a new connection on the next request).
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Mapping
from typing import Any, NamedTuple

from zoolog.errors import KafkaDecodeError
from zoolog.protocol.kafka._generated import API_NAMES
from zoolog.protocol.kafka._generated._runtime import Message
from zoolog.protocol.kafka._generated.api_versions import (
    ApiVersionsRequest,
    ApiVersionsResponse,
)
from zoolog.protocol.kafka._generated.headers import RequestHeader, ResponseHeader
from zoolog.protocol.kafka.codec import request_header_version, response_header_version
from zoolog.protocol.kafka.errors import Err

from .errors import KafkaConnectionError, KafkaResponseError, KafkaTimeoutError, _check
from .versions import _API_VERSIONS

_SIZE = struct.Struct(">i")


class _Pending(NamedTuple):
    future: asyncio.Future[Any]
    response_cls: type[Any] | None
    """None: hand over the raw body (ApiVersions decodes it itself)."""
    version: int
    header_version: int


class _Connection(asyncio.Protocol):
    """A connection to one broker: frames out, responses matched by correlation id."""

    def __init__(self, name: str, client_id: str, response_bytes_max: int) -> None:
        self.name = name
        self.client_id = client_id
        self.response_bytes_max = response_bytes_max
        self.api_versions: dict[int, tuple[int, int]] = {}
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._pending: dict[int, _Pending] = {}
        self._next_correlation_id = 0
        self.lost: KafkaConnectionError | None = None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f": {exc}" if exc else ""
        self._fail(KafkaConnectionError(f"connection to {self.name} lost{reason}"))

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        pos = 0
        end = len(buffer)
        while end - pos >= 4:
            (size,) = _SIZE.unpack_from(buffer, pos)
            if size < 4 or size > self.response_bytes_max:
                self.abort(KafkaConnectionError(
                    f"{self.name} sent a response of {size} bytes (outside 4.."
                    f"{self.response_bytes_max}); connection closed"))
                return
            if end - pos - 4 < size:
                break
            frame = bytes(buffer[pos + 4 : pos + 4 + size])
            pos += 4 + size
            self._dispatch(memoryview(frame))
            if self.lost is not None:
                return
        if pos:
            del buffer[:pos]

    # ours

    @property
    def usable(self) -> bool:
        return self.lost is None and self._transport is not None

    def _dispatch(self, frame: memoryview) -> None:
        (correlation_id,) = _SIZE.unpack_from(frame, 0)
        pending = self._pending.pop(correlation_id, None)
        if pending is None:
            self.abort(KafkaConnectionError(
                f"{self.name} answered unknown correlation id {correlation_id}"))
            return
        if pending.future.done():  # the caller timed out or was cancelled
            return
        try:
            _, pos = ResponseHeader.decode(frame, 0, pending.header_version)
            if pending.response_cls is None:
                pending.future.set_result(frame[pos:])
            else:
                response, _ = pending.response_cls.decode(frame, pos, pending.version)
                pending.future.set_result(response)
        except KafkaDecodeError as exc:
            self.abort(KafkaConnectionError(f"{self.name} sent a malformed response: {exc}"))

    def send(self, api_key: int, version: int, request: Message, response_cls: type[Any] | None,
             expect_response: bool = True) -> asyncio.Future[Any]:
        """Write one request; the future gets its decoded response (None when
        `expect_response` is false: acks=0 produce)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.lost is not None or self._transport is None:
            future.set_exception(self.lost or KafkaConnectionError(f"{self.name}: not open"))
            return future
        correlation_id = self._next_correlation_id
        self._next_correlation_id = (correlation_id + 1) & 0x7FFFFFFF
        out = bytearray(4)
        RequestHeader(request_api_key=api_key, request_api_version=version,
                      correlation_id=correlation_id, client_id=self.client_id).encode(
            request_header_version(api_key, version), out)
        request.encode(version, out)
        _SIZE.pack_into(out, 0, len(out) - 4)
        if expect_response:
            self._pending[correlation_id] = _Pending(
                future, response_cls, version, response_header_version(api_key, version))
        else:
            future.set_result(None)
        self._transport.write(out)
        return future

    def abort(self, error: KafkaConnectionError) -> None:
        self._fail(error)
        if self._transport is not None:
            self._transport.abort()

    def close(self) -> None:
        self._fail(KafkaConnectionError(f"connection to {self.name} closed"))
        if self._transport is not None:
            self._transport.close()

    async def wait(self, future: asyncio.Future[Any], timeout_ms: int) -> Any:
        """The answer `future` (from `send`) gets; no answer within `timeout_ms` aborts
        the connection (KafkaTimeoutError)."""
        try:
            return await asyncio.wait_for(future, timeout_ms / 1000)
        except TimeoutError as exc:
            error = KafkaTimeoutError(f"{self.name} did not answer within {timeout_ms} ms")
            self.abort(error)
            raise error from exc

    async def negotiate(self, versions: Mapping[int, tuple[int, int]], timeout_ms: int
                        ) -> dict[int, tuple[int, int]]:
        """ApiVersions, in our highest version first, then in the highest the broker names
        if it does not know ours (it answers UNSUPPORTED_VERSION in v0)."""
        low, version = versions[_API_VERSIONS]
        for _ in range(3):
            request = ApiVersionsRequest(client_software_name="zoolog",
                                         client_software_version=_client_version())
            body = await self.wait(self.send(_API_VERSIONS, version, request, None),
                                   timeout_ms)
            response: ApiVersionsResponse | None
            try:
                response, _ = ApiVersionsResponse.decode(body, 0, version)
            except KafkaDecodeError:
                response = None
            if response is None or response.error_code == Err.UNSUPPORTED_VERSION:
                fallback, _ = ApiVersionsResponse.decode(body, 0, 0)
                theirs = {k.api_key: (k.min_version, k.max_version) for k in fallback.api_keys}
                their_max = theirs.get(_API_VERSIONS, (0, 0))[1]
                if fallback.error_code not in (Err.NONE, Err.UNSUPPORTED_VERSION):
                    _check(fallback.error_code, context=f"ApiVersions from {self.name}")
                if their_max >= version or their_max < low:
                    raise KafkaResponseError(
                        Err.UNSUPPORTED_VERSION,
                        f"no ApiVersions version both sides speak (ours {low}..{version})",
                        self.name)
                version = their_max
                continue
            _check(response.error_code, context=f"ApiVersions from {self.name}")
            return {k.api_key: (k.min_version, k.max_version) for k in response.api_keys}
        raise KafkaResponseError(Err.UNSUPPORTED_VERSION, "ApiVersions negotiation failed",
                                 self.name)

    def version(self, api_key: int, versions: Mapping[int, tuple[int, int]],
                max_version: int | None) -> int:
        """The version to send `api_key` in: the highest both this client (`versions`,
        capped at `max_version`) and the broker speak."""
        ours = versions.get(api_key)
        theirs = self.api_versions.get(api_key)
        api = API_NAMES.get(api_key, str(api_key))
        if ours is None:
            raise ValueError(f"this client does not speak {api}")
        if theirs is None:
            raise KafkaResponseError(Err.UNSUPPORTED_VERSION,
                                     f"the broker does not support {api}", self.name)
        high = min(ours[1], theirs[1], ours[1] if max_version is None else max_version)
        if high < max(ours[0], theirs[0]):
            raise KafkaResponseError(
                Err.UNSUPPORTED_VERSION,
                f"{api}: the broker speaks versions {theirs[0]}..{theirs[1]}, this client "
                f"{ours[0]}..{ours[1]}", self.name)
        return high

    def _fail(self, error: KafkaConnectionError) -> None:
        if self.lost is None:
            self.lost = error
        pending, self._pending = self._pending, {}
        for item in pending.values():
            if not item.future.done():
                item.future.set_exception(self.lost)


def _client_version() -> str:
    from zoolog import __version__
    return __version__
