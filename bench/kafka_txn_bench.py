"""Transactions benchmark: transactional produce vs plain idempotent produce, same server,
same run, and side by side with the references that support transactions.

    python bench/kafka_txn_bench.py                  # zoolog, noida-db, tansu; 3 rounds
    python bench/kafka_txn_bench.py --servers zoolog --rounds 1 --seconds 4

Workloads (1 KiB records, one partition, acks=all as transactional producers require,
linger.ms 5, batch.size 256 KiB, ONE load process: confluent-kafka / librdkafka):
- idempotent: `enable.idempotence=true`, no transactions: the baseline;
- txn-100, txn-1000: begin, 100 / 1,000 records, flush, commit, again, for the run. The
  commit latency is the time of `commit_transaction()` alone (the records were flushed
  before it): EndTxn, the PrepareCommit record, the markers and the CompleteCommit record.

For every server and workload: msgs/s, MB/s, the server's CPU per MB (all its processes and
threads, from /proc), and latency p50/p99/p99.9 (delivery reports for idempotent, sampled
every 16th record, mostly the flooded client queue; commit_transaction for transactions);
medians over alternating rounds, every round printed, and per server the ratio of each transactional
workload to its idempotent baseline (the issue's target: txn-1000 >= 0.8x, commit p99 <= 20
ms on one node). A server that fails a workload (no transactions) is reported as such.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import confluent_kafka as ck

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kafka_bench import (
    STARTERS,
    Result,
    Server,
    create_topic,
    latency_text,
    measured,
    produce_load,
)

RECORD = b"x" * 1024
COMMON = {"acks": "all", "linger.ms": 5, "batch.size": 262144, "log_level": 0,
          "queue.buffering.max.kbytes": 1048576, "queue.buffering.max.messages": 2_000_000}


def idempotent_load(server: Server, seconds: float, topic: str) -> Result:
    return produce_load(server, len(RECORD), seconds, topic, batched=False,
                        **{**COMMON, "enable.idempotence": True})


def transactional_load(server: Server, seconds: float, topic: str, per_txn: int) -> Result:
    create_topic(server.bootstrap, topic)
    producer = ck.Producer({"bootstrap.servers": server.bootstrap,
                            "transactional.id": f"bench-{topic}", **COMMON})
    producer.init_transactions(30)
    for _ in range(3):  # warm-up: coordinator, partitions, first segment
        producer.begin_transaction()
        for _ in range(per_txn):
            producer.produce(topic, RECORD)
        producer.commit_transaction(30)
    result = Result(latency_label="commit")
    committed = 0
    with measured(server, result):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            producer.begin_transaction()
            for _ in range(per_txn):
                while True:
                    try:
                        producer.produce(topic, RECORD)
                        break
                    except BufferError:
                        producer.poll(0.001)
            producer.flush(30)
            started = time.monotonic()
            producer.commit_transaction(30)
            result.latencies_ms.append((time.monotonic() - started) * 1000)
            committed += per_txn
    result.msgs = committed
    result.bytes = committed * len(RECORD)
    return result


def run(server: Server, workload: str, seconds: float, topic: str) -> Result:
    if workload == "idempotent":
        return idempotent_load(server, seconds, topic)
    return transactional_load(server, seconds, topic, int(workload.split("-")[1]))


def describe(result: Result) -> str:
    text = (f"{result.msgs_per_s:>9,.0f} msgs/s {result.mb_per_s:7.1f} MB/s  server CPU "
            f"{result.cpu_ms_per_mb:6.2f} ms/MB, load generator "
            f"{result.client_cpu_s / result.seconds * 100:.0f}%")
    if result.latencies_ms:
        text += f"  {latency_text(result)} ({len(result.latencies_ms)} samples)"
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--servers", default="zoolog,noida-db,tansu")
    parser.add_argument("--workloads", default="idempotent,txn-100,txn-1000")
    parser.add_argument("--zoolog-args", default="", help="extra `zoolog up` flags")
    args = parser.parse_args()
    servers = args.servers.split(",")
    workloads = args.workloads.split(",")
    print(f"load generator: 1 process (confluent-kafka {ck.version()[0]}, librdkafka "
          f"{ck.libversion()[0]}); {os.cpu_count()} CPUs; {args.rounds} round(s) of "
          f"{args.seconds:.0f} s", flush=True)
    results: dict[tuple[str, str], list[Result]] = {}
    failures: dict[tuple[str, str], str] = {}
    for round_ in range(args.rounds):
        order = servers if round_ % 2 == 0 else list(reversed(servers))
        for name in order:
            for workload in workloads:
                if (name, workload) in failures:
                    continue
                server = STARTERS[name](args.zoolog_args.split())
                try:
                    result = run(server, workload, args.seconds,
                                 f"txbench-{workload}-{round_}")
                except ck.KafkaException as exc:
                    failures[(name, workload)] = str(exc.args[0])
                    print(f"round {round_ + 1} {name:>8} {workload:<10} FAILED: {exc}",
                          flush=True)
                    continue
                finally:
                    server.stop()
                results.setdefault((name, workload), []).append(result)
                print(f"round {round_ + 1} {name:>8} {workload:<10} {describe(result)}",
                      flush=True)
    print("\nmedians:")
    for name in servers:
        base = None
        for workload in workloads:
            runs = results.get((name, workload))
            if not runs:
                print(f"  {name:>8} {workload:<10} not measured: "
                      f"{failures.get((name, workload), 'no run')}")
                continue
            mb = statistics.median(r.mb_per_s for r in runs)
            msgs = statistics.median(r.msgs_per_s for r in runs)
            line = (f"  {name:>8} {workload:<10} {msgs:>9,.0f} msgs/s {mb:7.1f} MB/s, server "
                    f"CPU {statistics.median(r.cpu_ms_per_mb for r in runs):.2f} ms/MB "
                    f"(rounds: {', '.join(f'{r.mb_per_s:.0f}' for r in runs)} MB/s)")
            if runs[0].latencies_ms:
                line += (f"; {runs[0].latency_label} p50 "
                         f"{statistics.median(r.percentile(0.5) for r in runs):.2f}"
                         f" p99 {statistics.median(r.percentile(0.99) for r in runs):.2f} "
                         f"p99.9 {statistics.median(r.percentile(0.999) for r in runs):.2f} ms")
            if workload == "idempotent":
                base = mb
            elif base:
                line += f"; {mb / base:.2f}x of idempotent"
            print(line)
    for workload in workloads:
        zoolog = results.get(("zoolog", workload))
        for name in servers:
            other = results.get((name, workload))
            if name == "zoolog" or not zoolog or not other:
                continue
            ratio = (statistics.median(r.mb_per_s for r in zoolog)
                     / statistics.median(r.mb_per_s for r in other))
            print(f"  {workload:<10} zoolog / {name}: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
