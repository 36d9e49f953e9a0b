"""Three real `zoolog raft` processes on loopback: replication, kill -9 of the leader,
restart, and nothing committed lost."""

from __future__ import annotations

import signal
import socket
import struct
import subprocess
import sys
from pathlib import Path

from zoolog.testing import wait_until

REQUEST = struct.Struct(">IQ")
REPLY = struct.Struct(">IQBQ")


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for sock in sockets:
        sock.close()
    return ports


class Cluster:
    def __init__(self, root: Path) -> None:
        ports = free_ports(6)
        self.peer_ports = dict(zip((1, 2, 3), ports[:3], strict=True))
        self.client_ports = dict(zip((1, 2, 3), ports[3:], strict=True))
        self.peers = ",".join(f"{i}=127.0.0.1:{p}" for i, p in self.peer_ports.items())
        self.root = root
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    def start(self, node_id: int) -> None:
        self.procs[node_id] = subprocess.Popen(
            [sys.executable, "-m", "zoolog", "raft", "--id", str(node_id), "--peers", self.peers,
             "--client-port", str(self.client_ports[node_id]),
             "--data-dir", str(self.root / f"n{node_id}"), "--tick-ms", "50"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        assert self.procs[node_id].stdout is not None
        assert b"up" in self.procs[node_id].stdout.readline()

    def propose(self, node_id: int, payloads: list[bytes]) -> list[tuple[int, int]]:
        """Pipeline proposals to one node; return (status, value) per payload."""
        with socket.create_connection(("127.0.0.1", self.client_ports[node_id]), 5) as sock:
            sock.sendall(b"".join(REQUEST.pack(8 + len(p), i) + p for i, p in enumerate(payloads)))
            data = b""
            while len(data) < REPLY.size * len(payloads):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        replies = [REPLY.unpack_from(data, k * REPLY.size) for k in range(len(data) // REPLY.size)]
        return [(status, value) for _, _, status, value in sorted(replies, key=lambda r: r[1])]

    def leader(self) -> int | None:
        for node_id in self.procs:
            if self.procs[node_id].poll() is None:
                try:
                    [(status, _)] = self.propose(node_id, [b"probe"])
                except OSError:
                    continue
                if status == 0:
                    return node_id
        return None

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            proc.wait(30)


def test_three_processes_replicate_and_survive_leader_kill(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    try:
        for node_id in (1, 2, 3):
            cluster.start(node_id)
        leader: list[int | None] = [None]
        wait_until(lambda: leader.__setitem__(0, cluster.leader()) or leader[0], timeout_s=30)
        first = leader[0]
        assert first is not None
        results = cluster.propose(first, [b"v%d" % i for i in range(500)])
        assert [s for s, _ in results] == [0] * 500
        committed_before = max(index for _, index in results)
        cluster.procs[first].send_signal(signal.SIGKILL)
        cluster.procs[first].wait()
        wait_until(lambda: leader.__setitem__(0, cluster.leader()) or leader[0], timeout_s=30)
        second = leader[0]
        assert second is not None and second != first
        after = cluster.propose(second, [b"after"])
        assert after[0][0] == 0 and after[0][1] > committed_before
        cluster.start(first)  # the killed node recovers from its disk and catches up
        target = after[0][1]
        wait_until(lambda: cluster.propose(first, [b""])[0] == (3, target), timeout_s=30)
        # kill -9 every node: on restart the cluster still holds everything it committed
        for proc in cluster.procs.values():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        for node_id in (1, 2, 3):
            cluster.start(node_id)
        wait_until(lambda: leader.__setitem__(0, cluster.leader()) or leader[0], timeout_s=30)
        for node_id in (1, 2, 3):
            wait_until(lambda n=node_id: cluster.propose(n, [b""])[0][1] >= target,
                       timeout_s=30)
    finally:
        cluster.stop()
