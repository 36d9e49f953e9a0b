"""The 3.8 operations kazoo does not send: setWatches(2), removeWatches/checkWatches,
getEphemerals, getAllChildrenNumber, multiRead, whoAmI, reconfig — over a real socket."""

from __future__ import annotations

import asyncio

import pytest

from zoolog.client.zk import ZkClient
from zoolog.coord.errors import Code, ZkError
from zoolog.protocol.zk._generated.jute_records import (
    CheckWatchesRequest,
    GetAllChildrenNumberRequest,
    GetAllChildrenNumberResponse,
    GetChildrenRequest,
    GetDataRequest,
    GetDataResponse,
    GetEphemeralsRequest,
    GetEphemeralsResponse,
    MultiHeader,
    ReconfigRequest,
    RemoveWatchesRequest,
    SetWatches,
    SetWatches2,
    WhoAmIResponse,
)
from zoolog.protocol.zk.opcodes import CreateFlag, EventType, OpCode, Xid
from zoolog.testing import ZkServerThread


class _Raw:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def write(self, out: bytearray) -> None:
        out += self.data


async def next_events(client: ZkClient, count: int) -> list[tuple[int, str]]:
    out = []
    for _ in range(count):
        event = await asyncio.wait_for(client.events.get(), 10)
        out.append((event.type, event.path))
    return out


def test_set_watches_fires_what_changed_and_rearms_the_rest(zoolog_zk: ZkServerThread) -> None:
    async def scenario() -> None:
        writer = await ZkClient.connect(zoolog_zk.connect_string)
        await writer.create("/sw")
        await writer.create("/sw/same")
        await writer.create("/sw/changed")
        await writer.create("/sw/gone")
        relative = writer.last_zxid
        await writer.set("/sw/changed", b"new")
        await writer.delete("/sw/gone")
        watcher = await ZkClient.connect(zoolog_zk.connect_string)
        record = SetWatches(relative, ["/sw/same", "/sw/changed", "/sw/gone"],
                            ["/sw/born"], ["/sw"])
        await watcher.request(OpCode.setWatches, record, xid=Xid.SET_WATCHES)
        fired = await next_events(watcher, 3)
        assert sorted(fired) == sorted([
            (EventType.NodeDataChanged, "/sw/changed"), (EventType.NodeDeleted, "/sw/gone"),
            (EventType.NodeChildrenChanged, "/sw"),
        ])
        await writer.set("/sw/same", b"x")  # the re-armed data watch
        await writer.create("/sw/born")  # the re-armed exist watch
        assert await next_events(watcher, 2) == [
            (EventType.NodeDataChanged, "/sw/same"), (EventType.NodeCreated, "/sw/born"),
        ]
        await watcher.request(OpCode.setWatches2,
                              SetWatches2(watcher.last_zxid, [], [], [], [], ["/sw"]),
                              xid=Xid.SET_WATCHES)
        await writer.create("/sw/born/deep")
        assert await next_events(watcher, 1) == [(EventType.NodeCreated, "/sw/born/deep")]
        await writer.close()
        await watcher.close()

    asyncio.run(scenario())


def test_check_and_remove_watches(zoolog_zk: ZkServerThread) -> None:
    async def scenario() -> None:
        client = await ZkClient.connect(zoolog_zk.connect_string)
        await client.create("/rw")
        with pytest.raises(ZkError) as info:
            await client.request(OpCode.checkWatches, CheckWatchesRequest("/rw", 2))
        assert info.value.code == Code.NOWATCHER
        await client.get("/rw", watch=True)
        await client.request(OpCode.checkWatches, CheckWatchesRequest("/rw", 2))
        await client.request(OpCode.removeWatches, RemoveWatchesRequest("/rw", 2))
        await client.set("/rw", b"1")  # nothing fires: the watch is gone
        await client.add_watch("/rw")
        await client.request(OpCode.removeWatches, RemoveWatchesRequest("/rw", 3))
        with pytest.raises(ZkError):
            await client.request(OpCode.removeWatches, RemoveWatchesRequest("/rw", 3))
        await client.set("/rw", b"2")
        await client.sync("/rw")
        assert client.events.empty()
        await client.close()

    asyncio.run(scenario())


def test_ephemerals_children_count_multiread_whoami_reconfig(zoolog_zk: ZkServerThread) -> None:
    async def scenario() -> None:
        client = await ZkClient.connect(zoolog_zk.connect_string)
        await client.create("/g")
        await client.create("/g/a")
        await client.create("/g/a/b")
        await client.create("/g/e1", flags=CreateFlag.EPHEMERAL)
        await client.create("/other", flags=CreateFlag.EPHEMERAL)
        body = await client.request(OpCode.getEphemerals, GetEphemeralsRequest("/g"))
        assert GetEphemeralsResponse.from_bytes(body).ephemerals == ["/g/e1"]
        body = await client.request(OpCode.getAllChildrenNumber,
                                    GetAllChildrenNumberRequest("/g"))
        assert GetAllChildrenNumberResponse.from_bytes(body).totalNumber == 3
        ops = bytearray()
        MultiHeader(OpCode.getData, False, -1).write(ops)
        GetDataRequest("/g/a", False).write(ops)
        MultiHeader(OpCode.getChildren, False, -1).write(ops)
        GetChildrenRequest("/missing", False).write(ops)
        MultiHeader(-1, True, -1).write(ops)
        body = await client.request(OpCode.multiRead, _Raw(bytes(ops)))
        first, pos = MultiHeader.read(body, 0)
        assert (first.type, first.err) == (OpCode.getData, 0)
        _, pos = GetDataResponse.read(body, pos)
        second, pos = MultiHeader.read(body, pos)
        assert (second.type, second.err) == (-1, Code.NONODE)
        body = await client.request(OpCode.whoAmI, None)
        infos = WhoAmIResponse.from_bytes(body).clientInfo
        assert [(i.authScheme, i.user) for i in infos or []] == [("ip", "127.0.0.1")]
        with pytest.raises(ZkError) as info:
            await client.request(OpCode.reconfig, ReconfigRequest("", "", "", -1))
        assert info.value.code == Code.RECONFIGDISABLED
        await client.close()

    asyncio.run(scenario())


def test_client_fails_fast_after_the_server_closes_the_connection(
    zoolog_zk: ZkServerThread,
) -> None:
    """An unknown opcode makes the server answer UNIMPLEMENTED and close the connection; the
    client's later requests fail with CONNECTIONLOSS at once instead of waiting forever."""

    async def scenario() -> None:
        client = await ZkClient.connect(zoolog_zk.connect_string)
        try:
            with pytest.raises(ZkError) as unknown:
                await asyncio.wait_for(client.request(999, None), 10)
            assert unknown.value.code == Code.UNIMPLEMENTED
            assert await client.wait_closed(10), "the server did not close the connection"
            with pytest.raises(ZkError) as lost:
                await asyncio.wait_for(client.exists("/"), 10)
            assert lost.value.code == Code.CONNECTIONLOSS
        finally:
            await client.close()

    asyncio.run(scenario())
