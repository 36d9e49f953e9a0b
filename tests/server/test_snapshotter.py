"""Snapshots written by a forked child (`server/zk_snapshotter.py`): the snapshot is the
state as it stood at the fork even though the core goes on changing it, old files are
pruned only once it landed, a failed child keeps everything, and the child holds none of
the core's descriptors (a closed client socket is closed at once)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from zoolog.coord import snapshot
from zoolog.coord.acl import OPEN_ACL_UNSAFE
from zoolog.coord.datatree import CoordState
from zoolog.coord.txn import Txn
from zoolog.protocol.zk._generated.jute_records import CreateRequest, CreateSessionTxn
from zoolog.protocol.zk.opcodes import OpCode
from zoolog.server.zk_snapshotter import Snapshotter
from zoolog.server.zk_storage import ZkStorage


def txn(zxid: int, op: int, record: object) -> Txn:
    return Txn(7, zxid, zxid, 1000 + zxid, op, (), record)


def state_with(nodes: int) -> CoordState:
    state = CoordState()
    state.apply(txn(1, OpCode.createSession, CreateSessionTxn(5000)))
    for z in range(2, nodes + 2):
        state.apply(txn(z, OpCode.create,
                        CreateRequest(f"/n{z}", b"x" * 50, list(OPEN_ACL_UNSAFE), 0)))
    return state


def test_the_child_writes_the_state_as_it_was_at_the_fork(tmp_path: Path) -> None:
    storage = ZkStorage(tmp_path)
    storage.open_log(1)
    state = state_with(20_000)
    at_fork = snapshot.encode(state)
    zxid = state.last_zxid
    snapshotter = Snapshotter(storage)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    async def run() -> bool:
        done = asyncio.Event()
        client = socket.create_connection(listener.getsockname())
        server_side, _ = listener.accept()
        snapshotter.take(state, zxid, done.set)
        was_running = snapshotter.running
        # the core goes on: change the state, close a connection
        for z in range(zxid + 1, zxid + 200):
            state.apply(txn(z, OpCode.create,
                            CreateRequest(f"/later{z}", b"y", list(OPEN_ACL_UNSAFE), 0)))
        server_side.close()  # the child closed its copy: the peer sees EOF now
        client.settimeout(5)
        assert client.recv(1) == b""
        client.close()
        await asyncio.wait_for(done.wait(), 60)
        return was_running

    assert asyncio.run(run()) is True
    assert snapshotter.written == 1 and not snapshotter.running
    path = storage.dir / f"snapshot.{zxid:016x}"
    assert path.read_bytes() == at_fork
    assert not list(storage.dir.glob("*.tmp"))
    listener.close()
    storage.close()


def test_a_failed_child_keeps_the_logs_and_is_reported(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    storage = ZkStorage(tmp_path)
    storage.open_log(1)
    state = state_with(10)

    def broken(data: bytes, zxid: int) -> Path:
        raise OSError("disk full")
    monkeypatch.setattr(storage, "write_snapshot_file", broken)
    snapshotter = Snapshotter(storage)

    async def run() -> None:
        done = asyncio.Event()
        snapshotter.take(state, state.last_zxid, done.set)
        await asyncio.wait_for(done.wait(), 30)

    asyncio.run(run())
    assert (snapshotter.written, snapshotter.failed) == (0, 1)
    assert not list(storage.dir.glob("snapshot.*"))
    assert list(storage.dir.glob("log.*"))
    storage.close()


def test_without_fork_the_snapshot_is_written_in_line(tmp_path: Path) -> None:
    storage = ZkStorage(tmp_path)
    storage.open_log(1)
    state = state_with(10)
    snapshotter = Snapshotter(storage, background=False)
    snapshotter.take(state, state.last_zxid)
    assert snapshotter.written == 1 and not snapshotter.running
    assert (storage.dir / f"snapshot.{state.last_zxid:016x}").read_bytes() == snapshot.encode(state)
    storage.close()
