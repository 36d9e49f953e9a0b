"""What a client sees on the wire from a running node: 4lw, limits, bad input, ordering,
persistent watches, containers and TTL nodes. Raw sockets and zoolog's own asyncio client."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from zoolog.client.zk import ZkClient, four_letter_word
from zoolog.coord.errors import Code, ZkError
from zoolog.protocol.zk._generated.jute_records import (
    ConnectRequest,
    ConnectResponse,
    ReplyHeader,
    SetDataRequest,
)
from zoolog.protocol.zk.opcodes import CreateFlag, EventType, OpCode
from zoolog.testing import ZkServerThread, wait_until


def raw_session(port: int, readonly_byte: bool = True) -> tuple[socket.socket, ConnectResponse]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    body = ConnectRequest(0, 0, 10_000, 0, bytes(16), False).to_bytes()
    if not readonly_byte:
        body = body[:-1]
    sock.sendall(struct.pack(">i", len(body)) + body)
    frame = read_frame(sock)
    padded = frame if readonly_byte else frame + b"\0"
    return sock, ConnectResponse.from_bytes(padded)


def read_frame(sock: socket.socket) -> bytes:
    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    (length,) = struct.unpack(">i", exactly(4))
    return exactly(length)


def send_request(sock: socket.socket, xid: int, op: int, record: object | None = None) -> None:
    body = struct.pack(">ii", xid, op) + (record.to_bytes() if record is not None else b"")
    sock.sendall(struct.pack(">i", len(body)) + body)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_four_letter_words(zoolog_zk: ZkServerThread) -> None:
    port = zoolog_zk.port

    def word(w: str) -> str:
        return run(four_letter_word("127.0.0.1", port, w))

    assert word("ruok") == "imok"
    assert word("isro") == "rw"
    srvr = word("srvr")
    assert srvr.startswith("Zookeeper version: 3.8.0-zoolog")
    assert "Mode: standalone" in srvr and "Node count: 4" in srvr
    mntr = dict(line.split("\t", 1) for line in word("mntr").splitlines())
    assert mntr["zk_server_state"] == "standalone" and mntr["zk_znode_count"] == "4"
    assert "zookeeper.version=3.8.0-zoolog" in word("envi")
    assert f"clientPort={port}" in word("conf")
    client = KazooClient(hosts=zoolog_zk.connect_string)
    client.start(timeout=10)
    try:
        client.create("/e", ephemeral=True)
        client.get("/e", watch=lambda event: None)
        assert "1 connections watching 1 paths" in word("wchs")
        assert "/e" in word("dump") and "sid=0x" in word("cons")
        assert "Clients:" in word("stat")
        assert word("srst") == "Server stats reset.\n"
    finally:
        client.stop()
        client.close()


def test_non_whitelisted_word_is_refused(tmp_path: Path, front_process: bool) -> None:
    with ZkServerThread(tmp_path, four_letter_whitelist=frozenset({"srvr"}),
                        client_front_process=front_process) as server:
        answer = run(four_letter_word("127.0.0.1", server.port, "ruok"))
        assert answer == "ruok is not executed because it is not in the whitelist.\n"


def test_connect_response_mirrors_the_readonly_byte(zoolog_zk: ZkServerThread) -> None:
    for with_byte in (True, False):
        sock, response = raw_session(zoolog_zk.port, with_byte)
        assert response.timeOut == 4000  # 10 s clamped to 20 x tick (200 ms)
        assert response.sessionId >> 56 == 1  # high byte: server id
        sock.close()


def test_unknown_opcode_gets_unimplemented_and_a_close(zoolog_zk: ZkServerThread) -> None:
    sock, _ = raw_session(zoolog_zk.port)
    send_request(sock, 1, 777)
    header = ReplyHeader.from_bytes(read_frame(sock))
    assert (header.xid, header.err) == (1, Code.UNIMPLEMENTED)
    with pytest.raises(ConnectionError):
        read_frame(sock)


def test_bad_input_closes_only_the_offender(zoolog_zk: ZkServerThread) -> None:
    good = KazooClient(hosts=zoolog_zk.connect_string)
    good.start(timeout=10)
    try:
        good.create("/before", b"kept")
        offenders = [
            struct.pack(">i", 0x7FFFFFF0),  # huge length prefix
            struct.pack(">i", -3),  # negative length
            struct.pack(">i", 5) + b"\x00\x00\x00\x01\x00",  # truncated ConnectRequest
        ]
        for payload in offenders:
            sock = socket.create_connection(("127.0.0.1", zoolog_zk.port), timeout=10)
            sock.sendall(payload)
            assert sock.recv(100) == b""  # closed by the server
            sock.close()
        sock, _ = raw_session(zoolog_zk.port)
        send_request(sock, 1, OpCode.getData, SetDataRequest("/x", b"", 0))  # wrong record
        with pytest.raises(ConnectionError):
            read_frame(sock)
        sock.close()
        assert good.get("/before")[0] == b"kept"
        good.create("/after")
    finally:
        good.stop()
        good.close()


def test_client_ahead_of_server_is_refused(zoolog_zk: ZkServerThread) -> None:
    sock = socket.create_connection(("127.0.0.1", zoolog_zk.port), timeout=10)
    body = ConnectRequest(0, 1 << 40, 10_000, 0, bytes(16), False).to_bytes()
    sock.sendall(struct.pack(">i", len(body)) + body)
    assert sock.recv(100) == b""


def test_wrong_password_is_refused_as_expired(zoolog_zk: ZkServerThread) -> None:
    async def scenario() -> None:
        client = await ZkClient.connect(zoolog_zk.connect_string)
        assert client.session is not None
        from zoolog.client.zk import Session

        forged = Session(client.session.session_id, b"x" * 16, 10_000)
        with pytest.raises(ZkError) as info:
            await ZkClient.connect(zoolog_zk.connect_string, session=forged)
        assert info.value.code == Code.SESSIONEXPIRED
        await client.disconnect()

    run(scenario())


def test_data_limit_and_frame_limit(zoolog_zk: ZkServerThread) -> None:
    async def scenario() -> None:
        client = await ZkClient.connect(zoolog_zk.connect_string)
        await client.create("/big", b"x" * 1_000_000)  # under the 1 MiB default
        with pytest.raises(ZkError) as info:
            await client.create("/too-big", b"x" * (0xFFFFF + 1))
        assert info.value.code == Code.BADARGUMENTS
        with pytest.raises(ZkError) as info:
            await client.create("/" + "p" * 5000)
        assert info.value.code == Code.BADARGUMENTS
        await client.close()

    run(scenario())


def test_connections_per_address_limit(tmp_path: Path, front_process: bool) -> None:
    with ZkServerThread(tmp_path, max_client_connections=2,
                        client_front_process=front_process) as server:
        first, _ = raw_session(server.port)
        second, _ = raw_session(server.port)
        third = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        assert third.recv(10) == b""  # refused
        for sock in (first, second, third):
            sock.close()


def test_pipelined_replies_keep_request_order(zoolog_zk: ZkServerThread) -> None:
    sock, _ = raw_session(zoolog_zk.port)
    from zoolog.protocol.zk._generated.jute_records import CreateRequest, GetDataRequest

    acl = [__import__("zoolog.coord.acl", fromlist=["x"]).OPEN_ACL_UNSAFE[0]]
    requests = []
    for i in range(1, 201):
        if i % 2:
            requests.append((i, OpCode.create, CreateRequest(f"/o{i}", b"", acl, 0)))
        else:
            requests.append((i, OpCode.getData, GetDataRequest(f"/o{i - 1}", False)))
    for xid, op, record in requests:
        send_request(sock, xid, op, record)
    xids, errors = [], []
    for _ in requests:
        header, _pos = ReplyHeader.read(read_frame(sock), 0)
        xids.append(header.xid)
        errors.append(header.err)
    assert xids == list(range(1, 201))
    assert set(errors) == {0}  # each read saw the create its connection sent before it
    sock.close()


def test_persistent_recursive_watch_events(zoolog_zk: ZkServerThread) -> None:
    async def scenario() -> list[tuple[int, str]]:
        client = await ZkClient.connect(zoolog_zk.connect_string)
        await client.create("/r")
        await client.create("/r/a")
        await client.add_watch("/r", recursive=True)
        await client.create("/r/a/b")
        await client.set("/r/a/b", b"1")
        await client.set("/r/a/b", b"2")
        await client.delete("/r/a/b")
        events = []
        while len(events) < 4:
            event = await asyncio.wait_for(client.events.get(), 10)
            events.append((event.type, event.path))
        await client.close()
        return events

    assert run(scenario()) == [
        (EventType.NodeCreated, "/r/a/b"), (EventType.NodeDataChanged, "/r/a/b"),
        (EventType.NodeDataChanged, "/r/a/b"), (EventType.NodeDeleted, "/r/a/b"),
    ]


def test_containers_and_ttl_nodes_are_cleaned_up(zoolog_zk: ZkServerThread) -> None:
    async def scenario() -> None:
        client = await ZkClient.connect(zoolog_zk.connect_string)
        await client.create("/box", container=True)
        await client.create("/box/item")
        await client.create("/ttl", ttl_ms=100, flags=CreateFlag.PERSISTENT_WITH_TTL)
        stat = await client.exists("/ttl")
        assert stat is not None and stat.ephemeralOwner == 0
        await client.delete("/box/item")
        deadline = time.monotonic() + 10
        while await client.exists("/box") or await client.exists("/ttl"):
            assert time.monotonic() < deadline, "container/TTL node not removed"
            await asyncio.sleep(0.02)
        with pytest.raises(ZkError) as info:
            await client.create("/bad-ttl", ttl_ms=0, flags=CreateFlag.PERSISTENT_WITH_TTL)
        assert info.value.code == Code.BADARGUMENTS  # TTL flags need createTTL with a TTL > 0
        await client.close()

    run(scenario())


def test_standalone_check_is_answered_as_a_read(zoolog_zk: ZkServerThread) -> None:
    async def scenario() -> None:
        client = await ZkClient.connect(zoolog_zk.connect_string)
        await client.create("/v", b"")
        await client.check("/v", 0)
        with pytest.raises(ZkError) as info:
            await client.check("/v", 3)
        assert info.value.code == Code.BADVERSION
        await client.close()

    run(scenario())
    last = zoolog_zk.call(lambda: zoolog_zk.node.state.last_zxid)
    assert last == 3  # createSession, create, closeSession: the checks logged nothing


def test_outstanding_limit_applies_backpressure_without_losing_requests(
    tmp_path: Path, front_process: bool
) -> None:
    from zoolog.coord.acl import OPEN_ACL_UNSAFE
    from zoolog.protocol.zk._generated.jute_records import CreateRequest

    with ZkServerThread(tmp_path, outstanding_requests_max=4,
                        client_front_process=front_process) as server:
        sock, _ = raw_session(server.port)
        burst = bytearray()
        for xid in range(1, 301):
            body = struct.pack(">ii", xid, OpCode.create) + CreateRequest(
                f"/bp{xid}", b"", list(OPEN_ACL_UNSAFE), 0).to_bytes()
            burst += struct.pack(">i", len(body)) + body
        sock.sendall(bytes(burst))
        xids = [ReplyHeader.read(read_frame(sock), 0)[0].xid for _ in range(300)]
        assert xids == list(range(1, 301))
        assert server.call(lambda: server.node.backpressure_pauses) > 0
        assert server.call(lambda: server.node.state.node_count()) == 304
        sock.close()


def test_children_per_node_limit(tmp_path: Path, front_process: bool) -> None:
    with ZkServerThread(tmp_path, limit_overrides={"children_per_node_max": 3},
                        client_front_process=front_process) as server:
        client = KazooClient(hosts=server.connect_string)
        client.start(timeout=10)
        try:
            client.create("/few")
            for i in range(3):
                client.create(f"/few/c{i}")
            from kazoo.exceptions import BadArgumentsError

            with pytest.raises(BadArgumentsError):
                client.create("/few/c3")
        finally:
            client.stop()
            client.close()


def test_a_client_that_leaves_its_replies_unread_is_not_read_from(
    zoolog_zk: ZkServerThread, front_process: bool
) -> None:
    from zoolog.coord.acl import OPEN_ACL_UNSAFE
    from zoolog.protocol.zk._generated.jute_records import CreateRequest, GetDataRequest

    value = b"v" * 900_000
    sock, _ = raw_session(zoolog_zk.port)
    send_request(sock, 1, OpCode.create, CreateRequest("/big", value, list(OPEN_ACL_UNSAFE), 0))
    assert ReplyHeader.read(read_frame(sock), 0)[0].err == 0
    burst = b"".join(
        struct.pack(">i", 8 + len(body)) + struct.pack(">ii", xid, OpCode.getData) + body
        for xid, body in ((x, GetDataRequest("/big", False).to_bytes()) for x in range(2, 62))
    )
    sock.sendall(burst)  # 60 replies of 900 kB = 54 MB if the server buffered them all
    if not front_process:
        node = zoolog_zk.node
        assert node is not None and node.front is not None

        def reading_from_client() -> bool:
            front = node.front.front  # type: ignore[union-attr]
            return all(conn.reading for conn in front.conns.values())

        wait_until(lambda: not zoolog_zk.call(reading_from_client), 10,
                   "the front to stop reading from the client whose replies pile up")
    for xid in range(2, 62):  # reading them resumes the flow; nothing is lost or reordered
        frame = read_frame(sock)
        header = ReplyHeader.read(frame, 0)[0]
        assert (header.xid, header.err, len(frame)) == (xid, 0, 16 + 4 + len(value) + 68)
    if not front_process:
        wait_until(lambda: zoolog_zk.call(reading_from_client), 10, "reading to resume")
    sock.close()


def test_four_letter_word_answered_whatever_follows_it(zoolog_zk: ZkServerThread) -> None:
    # `echo ruok | nc` may send the newline (or more) in a later segment than the word
    for trailer in (b"\n", b"\x7f\xff\xff\xff garbage that is no frame"):
        sock = socket.create_connection(("127.0.0.1", zoolog_zk.port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(b"ruok")
        sock.sendall(trailer)
        answer = b""
        while chunk := sock.recv(100):
            answer += chunk
        assert answer == b"imok"
        sock.close()
