"""Durability as a user sees it: real processes, `kill -9` mid-load, restarts, torn logs."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import KazooException
from kazoo.handlers.threading import KazooTimeoutError

from zoolog.coord.acl import OPEN_ACL_UNSAFE
from zoolog.coord.datatree import CoordState
from zoolog.coord.txn import Txn
from zoolog.protocol.zk._generated.jute_records import CreateRequest, CreateSessionTxn
from zoolog.protocol.zk.opcodes import OpCode
from zoolog.server.zk_storage import ZkStorage
from zoolog.testing import wait_until


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_node(data_dir: Path, port: int, snap_count: int | None = None
               ) -> subprocess.Popen[bytes]:
    config: list[str] = []
    if snap_count is not None:
        cfg = data_dir.parent / f"{data_dir.name}.cfg"
        cfg.write_text(f"snapCount={snap_count}\n")
        config = ["--config", str(cfg)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "zoolog", "up", "--no-kafka", *config, "--data-dir", str(data_dir),
         "--port",
         str(port), "--log-level", "WARNING"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    assert "listening on" in line, line
    return proc


@pytest.mark.parametrize("snap_count", [None, 300], ids=["default", "snapshot-every-300"])
def test_kill_9_during_writes_loses_no_acknowledged_write(tmp_path: Path,
                                                          snap_count: int | None) -> None:
    # with frequent snapshots, the kill also lands between snapshots, new log segments and
    # pipelined batches, and recovery starts from a snapshot with later segments to replay
    port = free_port()
    data_dir = tmp_path / "data"
    proc = start_node(data_dir, port, snap_count)
    acked: list[int] = []
    client = KazooClient(hosts=f"127.0.0.1:{port}", timeout=30,
                         connection_retry={"max_tries": 0}, command_retry={"max_tries": 0})
    client.start(timeout=10)
    client.create("/load")
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            batch = [(i + k, client.create_async(f"/load/n{i + k}", b"x" * 100))
                     for k in range(32)]
            for number, result in batch:
                try:
                    result.get(timeout=10)
                except (KazooException, KazooTimeoutError, OSError):
                    return
                acked.append(number)
            i += 32

    thread = threading.Thread(target=writer)
    thread.start()
    wait_until(lambda: len(acked) >= 2000 or not thread.is_alive(), 30,
               "2000 acknowledged creates")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stop.set()
    thread.join(30)
    client.stop()
    client.close()
    assert len(acked) >= 1000
    if snap_count is not None:
        assert any(p.name.startswith("snapshot.") for p in (data_dir / "version-2").iterdir())

    proc = start_node(data_dir, port, snap_count)
    try:
        check = KazooClient(hosts=f"127.0.0.1:{port}")
        check.start(timeout=10)
        present = {int(name[1:]) for name in check.get_children("/load")}
        missing = [n for n in acked if n not in present]
        assert missing == [], f"{len(missing)} acknowledged creates lost"
        check.stop()
        check.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


LOG_HEADER_BYTES = 8  # ZLTX + format version


def _txn(zxid: int, op: int, body: object) -> Txn:
    return Txn(7, zxid, zxid, 1000 + zxid, op, (), body)


def test_torn_log_tail_is_truncated_and_reported(tmp_path: Path) -> None:
    storage = ZkStorage(tmp_path)
    storage.open_log(1)
    txns = [_txn(1, OpCode.createSession, CreateSessionTxn(5000))]
    txns += [_txn(z, OpCode.create, CreateRequest(f"/n{z}", b"d", list(OPEN_ACL_UNSAFE), 0))
             for z in range(2, 12)]
    storage.append_batch([t.to_bytes() for t in txns])
    storage.close()
    log_file = next((tmp_path / "version-2").glob("log.*"))
    records_end = LOG_HEADER_BYTES + storage.bytes_written  # zeros follow (preallocation)
    assert log_file.stat().st_size > records_end
    with open(log_file, "r+b") as handle:  # tear the last record in half
        handle.truncate(records_end - 7)
    recovery = ZkStorage(tmp_path).recover()
    assert recovery.truncated_bytes > 0
    assert recovery.state.last_zxid == 10
    assert "/n10" in recovery.state.nodes and "/n11" not in recovery.state.nodes
    # the truncated file is clean again: a second recovery finds nothing to cut
    assert ZkStorage(tmp_path).recover().truncated_bytes == 0


def test_corrupted_record_in_tail_is_detected_by_checksum(tmp_path: Path) -> None:
    storage = ZkStorage(tmp_path)
    storage.open_log(1)
    txns = [_txn(1, OpCode.createSession, CreateSessionTxn(5000))]
    txns += [_txn(z, OpCode.create, CreateRequest(f"/n{z}", b"data", list(OPEN_ACL_UNSAFE), 0))
             for z in range(2, 6)]
    storage.append_batch([t.to_bytes() for t in txns])
    storage.close()
    log_file = next((tmp_path / "version-2").glob("log.*"))
    raw = bytearray(log_file.read_bytes())
    raw[LOG_HEADER_BYTES + storage.bytes_written - 3] ^= 0xFF  # inside the last payload
    log_file.write_bytes(bytes(raw))
    recovery = ZkStorage(tmp_path).recover()
    assert recovery.truncated_bytes > 0
    assert recovery.state.last_zxid == 4


def test_snapshot_plus_log_rebuilds_identical_state(tmp_path: Path) -> None:
    from zoolog.coord import snapshot

    storage = ZkStorage(tmp_path)
    storage.open_log(1)
    state = CoordState()
    txns = [_txn(1, OpCode.createSession, CreateSessionTxn(5000))]
    txns += [_txn(z, OpCode.create, CreateRequest(f"/n{z}", b"d", list(OPEN_ACL_UNSAFE), 1))
             for z in range(2, 20)]
    for txn in txns[:10]:
        state.apply(txn)
    storage.append_batch([t.to_bytes() for t in txns[:10]])
    storage.write_snapshot(snapshot.encode(state), state.last_zxid)
    storage.open_log(11)
    for txn in txns[10:]:
        state.apply(txn)
    storage.append_batch([t.to_bytes() for t in txns[10:]])
    storage.close()
    recovered = ZkStorage(tmp_path).recover()
    assert recovered.snapshot_zxid == 10 and recovered.replayed_txns == 9
    assert snapshot.encode(recovered.state) == snapshot.encode(state)
    assert recovered.state.sessions[7].ephemerals == state.sessions[7].ephemerals


def test_preallocated_zeros_are_no_damage_and_appends_go_on_after_the_records(
    tmp_path: Path,
) -> None:
    storage = ZkStorage(tmp_path)
    storage.open_log(1)
    storage.append_batch([_txn(1, OpCode.createSession, CreateSessionTxn(5000)).to_bytes()])
    storage.append_batch([
        _txn(z, OpCode.create, CreateRequest(f"/n{z}", b"d", list(OPEN_ACL_UNSAFE), 0)).to_bytes()
        for z in range(2, 5)
    ])
    storage.close()
    log_file = next((tmp_path / "version-2").glob("log.*"))
    assert log_file.stat().st_size > LOG_HEADER_BYTES + storage.bytes_written
    again = ZkStorage(tmp_path)
    recovery = again.recover()
    assert (recovery.truncated_bytes, recovery.state.last_zxid) == (0, 4)  # nothing torn
    # the same segment goes on after its last record, not after the zeros
    again.open_log(1)
    again.append_batch([
        _txn(5, OpCode.create, CreateRequest("/n5", b"d", list(OPEN_ACL_UNSAFE), 0)).to_bytes()
    ])
    again.close()
    final = ZkStorage(tmp_path).recover()
    assert (final.truncated_bytes, final.state.last_zxid) == (0, 5)
    assert "/n5" in final.state.nodes


def test_a_torn_record_before_the_zeros_is_reported(tmp_path: Path) -> None:
    storage = ZkStorage(tmp_path)
    storage.open_log(1)
    storage.append_batch([_txn(1, OpCode.createSession, CreateSessionTxn(5000)).to_bytes()])
    storage.close()
    log_file = next((tmp_path / "version-2").glob("log.*"))
    with open(log_file, "r+b") as handle:  # half a record written, the rest still zeros
        handle.seek(LOG_HEADER_BYTES + storage.bytes_written)
        handle.write(struct.pack(">II", 40, 12345) + b"partial")
    recovery = ZkStorage(tmp_path).recover()
    assert recovery.state.last_zxid == 1
    assert recovery.truncated_bytes > 0 and recovery.truncated_file == log_file.name
