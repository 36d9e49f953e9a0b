"""Consensus benchmark: core CPU per entry, and a 3-process loopback cluster vs etcd 3.4.

    python bench/raft_bench.py                 # all three parts
    python bench/raft_bench.py --quick         # short runs (smoke test)
    python bench/raft_bench.py --skip-etcd     # when Debian's etcd-server is not installed

1. core: three RaftNodes in one process, zero network delay, batched proposals of 100-byte
   entries; CPU seconds (process_time) per committed entry, all three nodes' work included.
2. zoolog: three `zoolog raft` processes on loopback with fsync; client processes pipeline
   100-byte proposals to the leader; committed proposals per second.
3. etcd: a three-member etcd 3.4 cluster on loopback (its default fsync), driven through its
   HTTP/JSON gateway (`/v3/kv/put`) by the same kind of client processes, keep-alive
   connections with one request in flight each (the gateway does not pipeline), many
   connections; committed puts per second. Reported as the ratio zoolog / etcd.

Figures go to stdout; docs/BENCHMARKS.md records them with this command.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from zoolog.consensus.node import Config, RaftNode
from zoolog.consensus.types import ConfState

REQUEST = struct.Struct(">IQ")
REPLY = struct.Struct(">IQBQ")
ENTRY_BYTES = 100


# ---------------------------------------------------------------------- 1. core CPU


def core_cpu_per_entry(entries_total: int, batch: int) -> float:
    voters = frozenset({1, 2, 3})
    nodes = {i: RaftNode(Config(i, max_inflight_msgs=1024), random.Random(i), ConfState(voters))
             for i in voters}
    nodes[1].campaign()
    payload = b"x" * ENTRY_BYTES

    def pump() -> int:
        applied = 0
        moved = True
        while moved:
            moved = False
            for node in nodes.values():
                if node.has_ready():
                    ready = node.ready()
                    for message in ready.messages:
                        nodes[message.to].step(message)
                    applied += len(ready.committed_entries)
                    node.advance(ready)
                    moved = True
        return applied

    pump()
    started = time.process_time()
    done = 0
    while done < entries_total:
        nodes[1].propose_batch([payload] * batch)
        pump()
        done += batch
    return (time.process_time() - started) / done


# ---------------------------------------------------------------------- helpers


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for sock in sockets:
        sock.close()
    return ports


def wait_port(port: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"port {port} did not open")


# ---------------------------------------------------------------------- 2. zoolog


async def _zoolog_client(port: int, outstanding: int, duration_s: float) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    payload = b"x" * ENTRY_BYTES
    frame = REQUEST.pack(8 + len(payload), 0) + payload
    writer.write(frame * outstanding)
    committed = 0
    deadline = time.monotonic() + duration_s
    buffer = b""
    while time.monotonic() < deadline:
        buffer += await reader.read(1 << 16)
        count = len(buffer) // REPLY.size
        for k in range(count):
            if REPLY.unpack_from(buffer, k * REPLY.size)[2] == 0:
                committed += 1
        buffer = buffer[count * REPLY.size :]
        writer.write(frame * count)
    writer.close()
    return committed


def _zoolog_worker(port: int, connections: int, outstanding: int, duration_s: float,
                   out: multiprocessing.Queue[int]) -> None:
    async def main() -> int:
        results = await asyncio.gather(*(_zoolog_client(port, outstanding, duration_s)
                                         for _ in range(connections)))
        return sum(results)

    out.put(asyncio.run(main()))


def run_zoolog(duration_s: float, processes: int, connections: int, outstanding: int) -> float:
    root = Path(tempfile.mkdtemp(prefix="zoolog-raft-bench-"))
    ports = free_ports(6)
    peers = ",".join(f"{i}=127.0.0.1:{ports[i - 1]}" for i in (1, 2, 3))
    procs = [
        subprocess.Popen([sys.executable, "-m", "zoolog", "raft", "--id", str(i), "--peers",
                          peers, "--client-port", str(ports[2 + i]), "--data-dir",
                          str(root / f"n{i}"), "--tick-ms", "50"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for i in (1, 2, 3)
    ]
    try:
        for i in (1, 2, 3):
            wait_port(ports[2 + i])
        leader_port = _find_zoolog_leader([ports[3], ports[4], ports[5]])
        return _drive(_zoolog_worker, leader_port, duration_s, processes, connections,
                      outstanding)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(30)
        shutil.rmtree(root, ignore_errors=True)


def _find_zoolog_leader(client_ports: list[int]) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for port in client_ports:
            with socket.create_connection(("127.0.0.1", port), 5) as sock:
                sock.sendall(REQUEST.pack(9, 1) + b"p")
                reply = sock.recv(REPLY.size)
                if len(reply) == REPLY.size and REPLY.unpack(reply)[2] == 0:
                    return port
        time.sleep(0.1)
    raise TimeoutError("no zoolog raft leader")


def _drive(worker: object, port: int, duration_s: float, processes: int, connections: int,
           outstanding: int) -> float:
    out: multiprocessing.Queue[int] = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=worker,  # type: ignore[arg-type]
                                       args=(port, connections, outstanding, duration_s, out))
               for _ in range(processes)]
    started = time.monotonic()
    for w in workers:
        w.start()
    total = sum(out.get(timeout=duration_s + 60) for _ in workers)
    for w in workers:
        w.join()
    return total / max(time.monotonic() - started, duration_s)


# ---------------------------------------------------------------------- 3. etcd


async def _etcd_client(port: int, in_flight: int, duration_s: float) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = json.dumps({
        "key": base64.b64encode(b"bench-key").decode(),
        "value": base64.b64encode(b"x" * ENTRY_BYTES).decode(),
    }).encode()
    request = (b"POST /v3/kv/put HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
               b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    committed = 0
    deadline = time.monotonic() + duration_s
    while time.monotonic() < deadline:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        if head.startswith(b"HTTP/1.1 200"):
            committed += 1
    writer.close()
    return committed


def _etcd_worker(port: int, connections: int, in_flight: int, duration_s: float,
                 out: multiprocessing.Queue[int]) -> None:
    async def main() -> int:
        results = await asyncio.gather(*(_etcd_client(port, in_flight, duration_s)
                                         for _ in range(connections)))
        return sum(results)

    out.put(asyncio.run(main()))


def run_etcd(duration_s: float, processes: int, connections: int) -> float:
    if shutil.which("etcd") is None:
        raise FileNotFoundError("etcd not installed (apt-get install etcd-server)")
    root = Path(tempfile.mkdtemp(prefix="etcd-bench-"))
    ports = free_ports(6)
    cluster = ",".join(f"e{i}=http://127.0.0.1:{ports[i - 1]}" for i in (1, 2, 3))
    procs = [
        subprocess.Popen(
            ["etcd", "--name", f"e{i}", "--data-dir", str(root / f"e{i}"),
             "--listen-peer-urls", f"http://127.0.0.1:{ports[i - 1]}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{ports[i - 1]}",
             "--listen-client-urls", f"http://127.0.0.1:{ports[2 + i]}",
             "--advertise-client-urls", f"http://127.0.0.1:{ports[2 + i]}",
             "--initial-cluster", cluster, "--initial-cluster-state", "new",
             "--log-level", "error"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for i in (1, 2, 3)
    ]
    try:
        for i in (1, 2, 3):
            wait_port(ports[2 + i])
        leader_port = _find_etcd_leader([ports[3], ports[4], ports[5]])
        return _drive(_etcd_worker, leader_port, duration_s, processes, connections, 1)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(30)
        shutil.rmtree(root, ignore_errors=True)


def _find_etcd_leader(client_ports: list[int]) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for port in client_ports:
            try:
                out = subprocess.run(
                    ["etcdctl", "--endpoints", f"http://127.0.0.1:{port}", "endpoint", "status",
                     "-w", "json"], capture_output=True, text=True, timeout=10, check=True,
                    env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
                ).stdout
            except (subprocess.SubprocessError, OSError):
                continue
            status = json.loads(out)[0]["Status"]
            if status["leader"] == status["header"]["member_id"]:
                return port
        time.sleep(0.2)
    raise TimeoutError("no etcd leader")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip-etcd", action="store_true")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    duration = 3.0 if args.quick else args.duration

    per_entry = core_cpu_per_entry(20_000 if args.quick else 100_000, batch=100)
    print(f"core: {per_entry * 1e6:.1f} us of CPU per committed entry "
          f"(3 nodes in one process, batches of 100, target <= 20 us)")

    zoolog_rate = run_zoolog(duration, args.processes, connections=8, outstanding=64)
    print(f"zoolog 3-process loopback cluster, fsync: {zoolog_rate:,.0f} committed "
          f"{ENTRY_BYTES}-byte proposals/s (target >= 20,000)")
    if args.skip_etcd:
        return 0
    etcd_rate = run_etcd(duration, args.processes, connections=128)
    print(f"etcd 3.4 3-member loopback cluster: {etcd_rate:,.0f} puts/s "
          f"(HTTP gateway, 2x128 connections)")
    print(f"ratio zoolog / etcd: {zoolog_rate / etcd_rate:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
