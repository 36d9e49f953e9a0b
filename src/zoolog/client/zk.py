"""An asyncio ZooKeeper client speaking the real wire protocol (works with zoolog and ZooKeeper).

One connection, one session. Requests are pipelined; replies come back in request order and
resolve futures FIFO. Watch notifications land on `events` (an asyncio.Queue of WatchedEvent).
Errors are `ZkError` with ZooKeeper's code. Failure model: when the connection drops every
pending request fails with CONNECTIONLOSS and the client does not reconnect by itself; the
session lives on at the server until its timeout, so `connect(session=...)` can resume it.

A connect string may end in a chroot, as ZooKeeper's own clients accept
(`host:2181,host2:2181/kafka`): every path is then relative to it (requests are prefixed,
returned paths and watch events have it taken off).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import secrets
import ssl
import struct
from collections import deque
from dataclasses import dataclass
from typing import Any

from zoolog.coord.acl import OPEN_ACL_UNSAFE
from zoolog.coord.errors import Code, ZkError
from zoolog.protocol.sasl.digest_md5 import DigestMd5Client, SaslError
from zoolog.protocol.zk._generated.jute_records import (
    ACL,
    AddWatchRequest,
    AuthPacket,
    CheckVersionRequest,
    ConnectRequest,
    ConnectResponse,
    Create2Response,
    CreateRequest,
    CreateResponse,
    CreateTTLRequest,
    DeleteRequest,
    ExistsRequest,
    GetACLRequest,
    GetACLResponse,
    GetChildren2Request,
    GetChildren2Response,
    GetDataRequest,
    GetDataResponse,
    GetSASLRequest,
    MultiHeader,
    ReplyHeader,
    SetACLRequest,
    SetACLResponse,
    SetDataRequest,
    SetDataResponse,
    SetSASLResponse,
    Stat,
    SyncRequest,
    WatcherEvent,
)
from zoolog.protocol.zk.opcodes import OpCode, Xid

_LEN = struct.Struct(">i")
_HEADER = struct.Struct(">ii")


@dataclass(frozen=True, slots=True)
class WatchedEvent:
    type: int
    state: int
    path: str


@dataclass(frozen=True, slots=True)
class Session:
    session_id: int
    password: bytes
    timeout_ms: int


class ZkClient:
    """See the module docstring. Create with `await ZkClient.connect("host:port")`."""

    def __init__(self) -> None:
        self.events: asyncio.Queue[WatchedEvent] = asyncio.Queue()
        self.session: Session | None = None
        self.last_zxid = 0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: deque[tuple[int, asyncio.Future[tuple[int, bytes]]]] = deque()
        self._xid = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self._lost: BaseException | None = None  # why the connection ended, once it has
        self.chroot = ""

    @classmethod
    async def connect(
        cls,
        hosts: str,
        timeout_ms: int = 10_000,
        session: Session | None = None,
        connect_timeout_s: float = 10.0,
        tls: ssl.SSLContext | None = None,
        sasl: tuple[str, str] | None = None,
    ) -> ZkClient:
        """`tls`: connect over TLS (a secureClientPort) with this client context; `sasl`:
        (user, password) to authenticate with SASL DIGEST-MD5 once the session is up (an
        AUTHFAILED ZkError if the server refuses)."""
        client = cls()
        hosts, slash, chroot = hosts.partition("/")
        client.chroot = ("/" + chroot.strip("/")) if slash and chroot.strip("/") else ""
        host, _, port = hosts.split(",")[0].strip().rpartition(":")
        await asyncio.wait_for(client._open(host or "127.0.0.1", int(port or 2181),
                                            timeout_ms, session, tls), connect_timeout_s)
        if sasl is not None:
            await asyncio.wait_for(client._sasl(*sasl), connect_timeout_s)
        return client

    async def _sasl(self, user: str, password: str) -> None:
        mechanism = DigestMd5Client(user, password, secrets.token_hex(16))
        try:
            challenge = SetSASLResponse.from_bytes(
                await self._request(OpCode.sasl, GetSASLRequest(b""))).token or b""
            rspauth = SetSASLResponse.from_bytes(await self._request(
                OpCode.sasl, GetSASLRequest(mechanism.respond(challenge)))).token or b""
            mechanism.verify(rspauth)
        except ZkError:  # AUTHFAILED (or SESSIONCLOSEDREQUIRESASLAUTH): the server closes
            await self.disconnect()
            raise
        except SaslError as exc:
            await self.disconnect()
            raise ZkError(Code.AUTHFAILED, str(exc)) from exc

    async def _open(self, host: str, port: int, timeout_ms: int, session: Session | None,
                    tls: ssl.SSLContext | None = None) -> None:
        self._reader, self._writer = await asyncio.open_connection(
            host, port, ssl=tls, server_hostname=host if tls is not None else None)
        request = ConnectRequest(
            0, self.last_zxid, timeout_ms,
            session.session_id if session else 0,
            session.password if session else bytes(16), False,
        )
        body = request.to_bytes()
        self._writer.write(_LEN.pack(len(body)) + body)
        frame = await self._read_frame()
        response, _ = ConnectResponse.read(frame + b"\0" if len(frame) == 36 else frame, 0)
        if response.timeOut <= 0:
            self._writer.close()
            raise ZkError(Code.SESSIONEXPIRED, "the server refused the session")
        self.session = Session(response.sessionId, response.passwd or b"", response.timeOut)
        self._tasks.append(asyncio.create_task(self._read_loop()))
        self._tasks.append(asyncio.create_task(self._ping_loop(response.timeOut)))

    async def _read_frame(self) -> bytes:
        assert self._reader is not None
        (length,) = _LEN.unpack(await self._reader.readexactly(4))
        return await self._reader.readexactly(length)

    async def _read_loop(self) -> None:
        error: BaseException = ZkError(Code.CONNECTIONLOSS, "connection closed")
        try:
            while True:
                frame = await self._read_frame()
                header, pos = ReplyHeader.read(frame, 0)
                if header.zxid > 0:
                    self.last_zxid = max(self.last_zxid, header.zxid)
                if header.xid == Xid.NOTIFICATION:
                    event, _ = WatcherEvent.read(frame, pos)
                    self.events.put_nowait(WatchedEvent(event.type, event.state,
                                                        self._strip(event.path or "")))
                    continue
                if not self._pending:
                    raise ZkError(Code.MARSHALLINGERROR, f"unexpected reply xid {header.xid}")
                xid, future = self._pending.popleft()
                if xid != header.xid:
                    raise ZkError(Code.MARSHALLINGERROR, f"xid {header.xid} != expected {xid}")
                if not future.done():
                    future.set_result((header.err, frame[pos:]))
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        except ZkError as exc:
            error = exc
        finally:
            self._lost = error
            while self._pending:
                _, future = self._pending.popleft()
                if not future.done():
                    future.set_exception(error)

    async def _ping_loop(self, timeout_ms: int) -> None:
        with contextlib.suppress(ZkError, ConnectionError):
            while True:
                await asyncio.sleep(timeout_ms / 3000)
                await self._call(Xid.PING, OpCode.ping, None)

    async def _call(self, xid: int, op: int, record: Any) -> bytes:
        if self._writer is None or self._closed:
            raise ZkError(Code.CONNECTIONLOSS, "not connected")
        if self._lost is not None:
            raise ZkError(Code.CONNECTIONLOSS, f"connection lost: {self._lost}")
        out = bytearray(_HEADER.pack(xid, op))
        if record is not None:
            record.write(out)
        future: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        self._pending.append((xid, future))
        self._writer.write(_LEN.pack(len(out)) + out)
        err, body = await future
        if err:
            raise ZkError(Code(err))
        return body

    async def _request(self, op: int, record: Any) -> bytes:
        self._xid += 1
        return await self._call(self._xid, op, record)

    async def request(self, op: int, record: Any, xid: int | None = None) -> bytes:
        """Send any request record with `op` (and a special xid if given); return the reply
        body. For operations this client has no method for (getEphemerals, whoAmI, ...)."""
        if xid is None:
            return await self._request(op, record)
        return await self._call(xid, op, record)

    # ------------------------------------------------------------------ operations

    def _root(self, path: str) -> str:
        if not self.chroot:
            return path
        return self.chroot if path == "/" else self.chroot + path

    def _strip(self, path: str) -> str:
        if self.chroot and path.startswith(self.chroot):
            return path[len(self.chroot):] or "/"
        return path

    async def create(
        self,
        path: str,
        data: bytes | None = b"",
        acl: list[ACL] | None = None,
        flags: int = 0,
        ttl_ms: int = 0,
        container: bool = False,
    ) -> tuple[str, Stat]:
        acl_list = list(acl) if acl is not None else list(OPEN_ACL_UNSAFE)
        if ttl_ms:
            body = await self._request(
                OpCode.createTTL, CreateTTLRequest(self._root(path), data, acl_list, flags, ttl_ms)
            )
        else:
            op = OpCode.createContainer if container else OpCode.create2
            body = await self._request(op, CreateRequest(self._root(path), data, acl_list, flags))
        response = Create2Response.from_bytes(body)
        return self._strip(response.path or ""), response.stat

    async def delete(self, path: str, version: int = -1) -> None:
        await self._request(OpCode.delete, DeleteRequest(self._root(path), version))

    async def exists(self, path: str, watch: bool = False) -> Stat | None:
        try:
            body = await self._request(OpCode.exists, ExistsRequest(self._root(path), watch))
        except ZkError as err:
            if err.code == Code.NONODE:
                return None
            raise
        return Stat.from_bytes(body)

    async def get(self, path: str, watch: bool = False) -> tuple[bytes | None, Stat]:
        response = GetDataResponse.from_bytes(
            await self._request(OpCode.getData, GetDataRequest(self._root(path), watch))
        )
        return response.data, response.stat

    async def set(self, path: str, data: bytes | None, version: int = -1) -> Stat:
        body = await self._request(OpCode.setData, SetDataRequest(self._root(path), data, version))
        return SetDataResponse.from_bytes(body).stat

    async def get_children(self, path: str, watch: bool = False) -> tuple[list[str], Stat]:
        response = GetChildren2Response.from_bytes(
            await self._request(OpCode.getChildren2, GetChildren2Request(self._root(path), watch))
        )
        return sorted(response.children or []), response.stat

    async def get_acl(self, path: str) -> tuple[list[ACL], Stat]:
        response = GetACLResponse.from_bytes(
            await self._request(OpCode.getACL, GetACLRequest(self._root(path)))
        )
        return list(response.acl or []), response.stat

    async def set_acl(self, path: str, acl: list[ACL], version: int = -1) -> Stat:
        body = await self._request(OpCode.setACL, SetACLRequest(self._root(path), acl, version))
        return SetACLResponse.from_bytes(body).stat

    async def sync(self, path: str = "/") -> None:
        await self._request(OpCode.sync, SyncRequest(self._root(path)))

    async def add_auth(self, scheme: str, credential: bytes) -> None:
        await self._call(Xid.AUTH, OpCode.auth, AuthPacket(0, scheme, credential))

    async def add_watch(self, path: str, recursive: bool = False) -> None:
        await self._request(OpCode.addWatch,
                            AddWatchRequest(self._root(path), 1 if recursive else 0))

    async def check(self, path: str, version: int) -> None:
        await self._request(OpCode.check, CheckVersionRequest(self._root(path), version))

    async def multi(self, ops: list[tuple[int, Any]]) -> list[tuple[int, int, Any]]:
        """Run ops atomically; return (op, err, result) per op (err 0 on success)."""
        out = bytearray()
        for op, record in ops:
            MultiHeader(op, False, -1).write(out)
            if self.chroot and hasattr(record, "path"):
                record = copy.copy(record)
                record.path = self._root(record.path)
            record.write(out)
        MultiHeader(-1, True, -1).write(out)
        body = await self._request(OpCode.multi, _Raw(bytes(out)))
        results: list[tuple[int, int, Any]] = []
        pos = 0
        for op, _ in ops:
            header, pos = MultiHeader.read(body, pos)
            if header.type == -1:
                err, pos = struct.unpack_from(">i", body, pos)[0], pos + 4
                results.append((op, err, None))
            elif header.type in (OpCode.create,):
                response, pos = CreateResponse.read(body, pos)
                results.append((op, 0, self._strip(response.path or "")))
            elif header.type in (OpCode.create2, OpCode.createContainer, OpCode.createTTL):
                response2, pos = Create2Response.read(body, pos)
                results.append((op, 0, self._strip(response2.path or "")))
            elif header.type == OpCode.setData:
                stat, pos = Stat.read(body, pos)
                results.append((op, 0, stat))
            else:
                results.append((op, 0, None))
        return results

    async def wait_closed(self, timeout_s: float) -> bool:
        """Whether the connection ends (the server closes it) within `timeout_s`."""
        if not self._tasks:
            return True
        reader = self._tasks[0]  # the read loop ends when the connection does
        await asyncio.wait({reader}, timeout=timeout_s)
        return reader.done()

    async def close(self) -> None:
        """Close the session (its ephemerals go) and the connection."""
        if self._closed:
            return
        with contextlib.suppress(ZkError, ConnectionError):
            await self._request(OpCode.closeSession, None)
        await self.disconnect()

    async def disconnect(self) -> None:
        """Drop the connection but leave the session to expire (or be resumed)."""
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, ZkError, ConnectionError):
                await task
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self._writer.wait_closed()

    async def __aenter__(self) -> ZkClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class _Raw:
    """Pre-encoded request bytes (multi builds its own framing)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def write(self, out: bytearray) -> None:
        out += self.data


async def four_letter_word(host: str, port: int, word: str, timeout_s: float = 5.0) -> str:
    """Send a four-letter word and return the server's whole answer."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    try:
        writer.write(word.encode("ascii"))
        data = await asyncio.wait_for(reader.read(), timeout_s)
    finally:
        writer.close()
    return data.decode("utf-8", "replace")
