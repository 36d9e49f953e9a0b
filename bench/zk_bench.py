"""Coordination-service benchmark: zoolog vs Apache ZooKeeper 3.8 standalone, side by side.

    python bench/zk_bench.py            # 16 connections x 32 outstanding, 5 s per workload
    python bench/zk_bench.py --quick    # 2 s per workload
    python bench/zk_bench.py --rounds 5 # each server five times, alternating; medians
                                        #   (what docs/BENCHMARKS.md records)
    python bench/zk_bench.py --processes 2   # two load processes (takes CPU from the server)
    python bench/zk_bench.py --zoolog-args=--single-process   # zoolog in one process

Both servers run fresh, one after the other on this machine, with durable writes (zoolog's
default fsync; ZooKeeper's forceSync=yes). The load generator speaks the wire protocol
directly (hand-built jute frames, pipelined) in ONE process by default, as a user's
machine would leave the server the rest: on 2 cores a second load process takes CPU that
ZooKeeper's threads would otherwise use. Workloads: getData, exists, getChildren (100
children), setData (100-byte values), create (sequential, 100 bytes), mixed (90% getData,
10% setData). For each server and workload it prints ops/s, latency p50/p99/p99.9, the
server's CPU per operation (user+sys of all its processes and threads, from /proc, over the
measured interval) and the cores it and the load generator used; every round's ops/s; then
medians of the rounds and the ratios zoolog / ZooKeeper. ZooKeeper is started from Debian's
`zookeeper` package (/usr/share/java/zookeeper.jar).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import shlex
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procstat import cpu_seconds, process_tree

NODES = 100
VALUE = b"v" * 100
_LEN = struct.Struct(">i")
ZK_CLASSPATH = "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar"


def _ustring(text: str) -> bytes:
    data = text.encode()
    return _LEN.pack(len(data)) + data


def _frame(op: int, body: bytes) -> bytes:
    payload = struct.pack(">ii", 1, op) + body
    return _LEN.pack(len(payload)) + payload


_OPEN_ACL = struct.pack(">ii", 1, 31) + _ustring("world") + _ustring("anyone")


def requests_for(workload: str) -> list[bytes]:
    """A cycle of pre-built request frames for one workload."""
    get = [_frame(4, _ustring(f"/bench/n{i}") + b"\0") for i in range(NODES)]
    if workload == "getData":
        return get
    if workload == "exists":
        return [_frame(3, _ustring(f"/bench/n{i}") + b"\0") for i in range(NODES)]
    if workload == "getChildren":
        return [_frame(8, _ustring("/bench") + b"\0")]
    set_ = [_frame(5, _ustring(f"/bench/n{i}") + _LEN.pack(len(VALUE)) + VALUE
                   + _LEN.pack(-1)) for i in range(NODES)]
    if workload == "setData":
        return set_
    if workload == "create":
        return [_frame(1, _ustring("/bench-c/n-") + _LEN.pack(len(VALUE)) + VALUE + _OPEN_ACL
                       + _LEN.pack(2))]
    if workload == "mixed":
        return [set_[i] if i % 10 == 0 else get[i] for i in range(NODES)]
    raise ValueError(workload)


def _connect_frame() -> bytes:
    body = struct.pack(">iqiqi", 0, 0, 30_000, 0, 16) + bytes(16) + b"\0"
    return _LEN.pack(len(body)) + body


class LoadConnection(asyncio.Protocol):
    def __init__(self, requests: list[bytes], outstanding: int, done: asyncio.Future[None],
                 stop_at: float, measure_from: float) -> None:
        self.requests = requests
        self.outstanding = outstanding
        self.done = done
        self.stop_at = stop_at
        self.measure_from = measure_from
        self.buffer = bytearray()
        self.connected = False
        self.sent_at: list[float] = []
        self.next = 0
        self.completed = 0
        self.errors = 0
        self.latencies: list[float] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(_connect_frame())

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError(f"the server closed a load connection: {exc}"))

    def _send(self, count: int) -> None:
        assert self.transport is not None
        now = time.perf_counter()
        requests = self.requests
        out = []
        for _ in range(count):
            out.append(requests[self.next % len(requests)])
            self.next += 1
            self.sent_at.append(now)
        self.transport.write(b"".join(out))

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        pos = 0
        replies = 0
        errors = 0
        while len(buffer) - pos >= 4:
            (length,) = _LEN.unpack_from(buffer, pos)
            if len(buffer) - pos - 4 < length:
                break
            if not self.connected:
                self.connected = True
            else:
                replies += 1
                if length >= 16 and struct.unpack_from(">i", buffer, pos + 16)[0] != 0:
                    errors += 1
            pos += 4 + length
        del buffer[:pos]
        now = time.perf_counter()
        if replies:
            sent = self.sent_at
            if now >= self.measure_from:
                self.completed += replies
                self.errors += errors
                self.latencies.extend(now - t for t in sent[:replies:8])
            del sent[:replies]
        if now >= self.stop_at:
            if not self.done.done():
                self.done.set_result(None)
            return
        if not self.sent_at and not replies:
            self._send(self.outstanding)  # handshake done: fill the pipeline
        elif replies:
            self._send(replies)


def _worker(port: int, workload: str, connections: int, outstanding: int,
            measure_from_wall: float, duration_s: float,
            out: multiprocessing.Queue[tuple[int, int, list[float]]]) -> None:
    async def main() -> tuple[int, int, list[float]]:
        loop = asyncio.get_running_loop()
        now = time.perf_counter()
        measure_from = now + max(0.0, measure_from_wall - time.time())
        stop_at = measure_from + duration_s
        requests = requests_for(workload)
        protos = []
        waiters = []
        for _ in range(connections):
            done: asyncio.Future[None] = loop.create_future()
            _, proto = await loop.create_connection(
                lambda d=done: LoadConnection(requests, outstanding, d, stop_at, measure_from),
                "127.0.0.1", port)
            protos.append(proto)
            waiters.append(done)
        await asyncio.wait_for(asyncio.gather(*waiters), stop_at - now + 60)
        for proto in protos:
            assert proto.transport is not None
            proto.transport.close()
        latencies: list[float] = []
        for proto in protos:
            latencies.extend(proto.latencies)
        return (sum(p.completed for p in protos), sum(p.errors for p in protos), latencies)

    out.put(asyncio.run(main()))


def run_workload(port: int, workload: str, processes: int, connections: int,
                 outstanding: int, warmup_s: float, duration_s: float,
                 server_pid: int | None = None) -> dict[str, float]:
    out: multiprocessing.Queue[tuple[int, int, list[float]]] = multiprocessing.Queue()
    per_process = max(1, connections // processes)
    measure_from = time.time() + 0.5 + warmup_s  # after the processes started and warmed up
    workers = [multiprocessing.Process(target=_worker, args=(
        port, workload, per_process, outstanding, measure_from, duration_s, out))
        for _ in range(processes)]
    for w in workers:
        w.start()
    server_cpu = load_cpu = 0.0
    if server_pid is not None:
        pids = process_tree(server_pid)
        load_pids = [w.pid for w in workers if w.pid is not None]
        time.sleep(max(0.0, measure_from - time.time()))
        before, load_before = cpu_seconds(pids), cpu_seconds(load_pids)
        time.sleep(duration_s)
        server_cpu = cpu_seconds(pids) - before
        load_cpu = cpu_seconds(load_pids) - load_before
    results = [out.get(timeout=warmup_s + duration_s + 120) for _ in workers]
    for w in workers:
        w.join()
    completed = sum(r[0] for r in results)
    errors = sum(r[1] for r in results)
    latencies = sorted(x for r in results for x in r[2])

    def pct(q: float) -> float:
        if not latencies:
            return 0.0
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

    return {"ops": completed / duration_s, "errors": errors, "p50": pct(0.5), "p99": pct(0.99),
            "p999": pct(0.999),
            "server_us_per_op": server_cpu / completed * 1e6 if completed else 0.0,
            "server_cores": server_cpu / duration_s, "load_cores": load_cpu / duration_s}


def _rpc(sock: socket.socket, frame: bytes) -> int:
    sock.sendall(frame)
    data = b""
    while len(data) < 4 or len(data) < 4 + _LEN.unpack_from(data)[0]:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        data += chunk
    return int(struct.unpack_from(">i", data, 16)[0]) if len(data) >= 20 else 0


def prepare(port: int) -> None:
    """Create /bench with NODES children of 100 bytes, and /bench-c for creates."""
    with socket.create_connection(("127.0.0.1", port), 10) as sock:
        _rpc(sock, _connect_frame())
        for path in ["/bench", "/bench-c", *[f"/bench/n{i}" for i in range(NODES)]]:
            _rpc(sock, _frame(1, _ustring(path) + _LEN.pack(len(VALUE)) + VALUE + _OPEN_ACL
                              + _LEN.pack(0)))


def wait_serving(port: int, timeout_s: float = 60) -> None:
    """Until a session handshake succeeds (ZooKeeper answers ruok before it serves)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 2) as sock:
                _rpc(sock, _connect_frame())
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"no server accepted a session on {port}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


ZOOLOG_ARGS: list[str] = []
"""Extra `zoolog up` flags (--zoolog-args), e.g. --single-process to compare layouts."""


def start_zoolog(root: Path, port: int) -> subprocess.Popen[bytes]:
    with (root / "zoolog.out").open("wb") as log:
        return subprocess.Popen([sys.executable, "-m", "zoolog", "up", "--data-dir",
                                 str(root / "zoolog"), "--port", str(port),
                                 "--log-level", "WARNING", *ZOOLOG_ARGS],
                                stdout=log, stderr=subprocess.STDOUT)


def start_zookeeper(root: Path, port: int) -> subprocess.Popen[bytes]:
    conf = root / "zk" / "zoo.cfg"
    conf.parent.mkdir(parents=True)
    conf.write_text(f"tickTime=2000\ndataDir={root / 'zk' / 'data'}\nclientPort={port}\n"
                    "4lw.commands.whitelist=*\nadmin.enableServer=false\n"
                    "forceSync=yes\n")
    with (root / "zookeeper.out").open("wb") as log:
        return subprocess.Popen(["java", "-cp", ZK_CLASSPATH, f"-Dzookeeper.log.dir={root}",
                                 "org.apache.zookeeper.server.ZooKeeperServerMain", str(conf)],
                                stdout=log, stderr=subprocess.STDOUT)


def describe(r: dict[str, float]) -> str:
    return (f"{r['ops']:>9,.0f} ops/s  p50/p99/p99.9 {r['p50']:.2f}/{r['p99']:.2f}/"
            f"{r['p999']:.2f} ms  server {r['server_us_per_op']:.1f} µs CPU/op "
            f"({r['server_cores']:.2f} cores), load generator {r['load_cores']:.2f} cores")


WORKLOADS = ["getData", "exists", "getChildren", "setData", "create", "mixed"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--outstanding", type=int, default=32)
    parser.add_argument("--processes", type=int, default=1,
                        help="load-generator processes (default 1: the server gets the rest "
                             "of the machine)")
    parser.add_argument("--server-warmup", type=float, default=8.0,
                        help="seconds of unmeasured mixed load before the workloads")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--rounds", type=int, default=1,
                        help="start each server this many times, alternating; report medians")
    parser.add_argument("--zoolog-args", default="",
                        help="extra flags for `zoolog up`, e.g. '--single-process'")
    args = parser.parse_args()
    ZOOLOG_ARGS.extend(shlex.split(args.zoolog_args))
    duration = 2.0 if args.quick else args.duration
    warmup = 0.5 if args.quick else 1.0
    server_warmup = 2.0 if args.quick else args.server_warmup
    workloads = args.workloads.split(",")
    runs: dict[str, dict[str, list[dict[str, float]]]] = {
        "zookeeper": {w: [] for w in workloads}, "zoolog": {w: [] for w in workloads}}
    for _ in range(args.rounds):
        for name, starter in (("zookeeper", start_zookeeper), ("zoolog", start_zoolog)):
            root = Path(tempfile.mkdtemp(prefix=f"zk-bench-{name}-"))
            port = free_port()
            proc = starter(root, port)
            try:
                wait_serving(port)
                prepare(port)
                # JIT and caches warm: unmeasured mixed load first (ZooKeeper's JVM needs it)
                run_workload(port, "mixed", args.processes, args.connections, args.outstanding,
                             0.0, server_warmup)
                for w in workloads:
                    result = run_workload(port, w, args.processes, args.connections,
                                          args.outstanding, warmup, duration, proc.pid)
                    runs[name][w].append(result)
                    print(f"round {len(runs[name][w])} {name:>9} {w:<12} {describe(result)}",
                          flush=True)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
                shutil.rmtree(root, ignore_errors=True)

    def median(samples: list[dict[str, float]]) -> dict[str, float]:
        return {key: statistics.median(r[key] for r in samples) for key in samples[0]}

    results = {name: {w: median(r) for w, r in per.items()} for name, per in runs.items()}
    print(f"\n{args.connections} connections x {args.outstanding} outstanding, "
          f"{args.processes} load process(es), {duration:.0f} s per workload after "
          f"{server_warmup:.0f} s of warm-up, durable writes, medians of {args.rounds} "
          f"round(s); {os.cpu_count()} CPUs")
    for w in workloads:
        zk, zl = results["zookeeper"][w], results["zoolog"][w]
        ratio = zl["ops"] / zk["ops"] if zk["ops"] else float("inf")
        cpu_ratio = (zl["server_us_per_op"] / zk["server_us_per_op"]
                     if zk["server_us_per_op"] else float("inf"))
        print(f"{w:<12} ZooKeeper {describe(zk)}")
        print(f"{'':<12} zoolog    {describe(zl)}")
        rounds = {name: ", ".join(format(r["ops"], ",.0f") for r in runs[name][w])
                  for name in runs}
        print(f"{'':<12} zoolog / ZooKeeper: {ratio:.2f}x ops/s, {cpu_ratio:.2f}x server CPU "
              f"per op (rounds: ZooKeeper {rounds['zookeeper']}; zoolog {rounds['zoolog']})"
              + (f"  errors zk={zk['errors']:.0f} zoolog={zl['errors']:.0f}"
                 if zk["errors"] or zl["errors"] else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
