"""Run one Kafka-protocol broker that keeps its metadata in a coordination service.

`zoolog up` starts this in its own process next to the coordination service; run it alone
to point a broker at an Apache ZooKeeper or zoolog ensemble you already have
(`zoolog broker --zookeeper zk1:2181,zk2:2181`). Reads Kafka's `server.properties` with
--config; flags given here override it. Stops cleanly on Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from zoolog.errors import ConfigError, StartupError
from zoolog.server.kafka_config import KafkaNodeConfig, load_server_properties
from zoolog.server.process import die_with_parent, tune_gc_for_serving

READY = "zoolog broker ready"
"""The first line the broker prints once it serves (what `zoolog up` waits for)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", metavar="SERVER_PROPERTIES",
                        help="a Kafka server.properties to read")
    parser.add_argument("--data-dir", metavar="DIR", help="log directory (log.dirs)")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="Kafka port (default 9092; 0 = any free port)")
    parser.add_argument("--advertised-host", help="host clients are told to connect to")
    parser.add_argument("--zookeeper", metavar="HOST:PORT[,HOST:PORT...]",
                        help="coordination service keeping the metadata (zookeeper.connect)")
    parser.add_argument("--broker-id", type=int, help="broker.id (default 0)")
    parser.add_argument("--no-fsync", action="store_true",
                        help="do not fsync before answering acks=all produces and offset "
                             "commits (a machine crash may lose them; a process crash not)")
    parser.add_argument("--dev", action="store_true",
                        help="development defaults: group.initial.rebalance.delay.ms=0")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="any server.properties key (repeatable)")
    parser.add_argument("--log-level", default="INFO")


def build_config(args: argparse.Namespace, config: KafkaNodeConfig | None = None
                 ) -> KafkaNodeConfig:
    from zoolog.server.kafka_config import apply_server_properties

    config = config or KafkaNodeConfig()
    if args.dev:  # defaults only: a server.properties or --set given too wins
        apply_server_properties(config, {"group.initial.rebalance.delay.ms": "0"})
    if getattr(args, "kafka_config", None):
        load_server_properties(args.kafka_config, config)
    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set expects KEY=VALUE, not {item!r}")
        overrides[key.strip()] = value.strip()
    apply_server_properties(config, overrides)
    if args.data_dir:
        config.data_dir = Path(args.data_dir)
    if args.host:
        config.host = args.host
    if args.port is not None:
        config.port = args.port
    if args.advertised_host:
        config.advertised_host = args.advertised_host
    if args.zookeeper:
        config.zookeeper = args.zookeeper
    if args.broker_id is not None:
        config.settings.broker_id = args.broker_id
    if args.no_fsync:
        config.sync_writes = False
    config.validate()
    return config


async def _run(config: KafkaNodeConfig) -> None:
    from zoolog.server.kafka_node import KafkaNode

    node = KafkaNode(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await node.start()
    if stop.is_set():  # asked to stop while starting
        await node.stop()
        return
    tune_gc_for_serving()
    print(f"{READY} on {node.bootstrap} (metadata in {config.zookeeper}, data in "
          f"{Path(config.data_dir).resolve()}, {len(node.broker.partitions) if node.broker else 0}"
          f" partitions, started in {node.started_ms} ms"
          + (f", {node.truncated_bytes} bytes of torn log tails truncated"
             if node.truncated_bytes else "") + ")", flush=True)
    await stop.wait()
    await node.stop()


def run(args: argparse.Namespace) -> int:
    if os.environ.get("ZOOLOG_DIE_WITH_PARENT") == "1":  # started by `zoolog up`
        die_with_parent()
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args.kafka_config = args.config
    try:
        config = build_config(args)
    except ConfigError as exc:
        print(f"zoolog broker: {exc}", file=sys.stderr)
        return 2
    if config.unknown_keys:
        print("zoolog broker: ignoring server.properties keys zoolog does not use: "
              f"{', '.join(sorted(config.unknown_keys))}", file=sys.stderr)
    try:
        # the standard event loop: it has native sendfile for fetch responses (uvloop has
        # none, and was no faster on produce: 281 vs 281 MB/s, bench/kafka_bench.py)
        asyncio.run(_run(config))
    except OSError as exc:
        print(f"zoolog broker: cannot listen on {config.host}:{config.port}: {exc}",
              file=sys.stderr)
        return 1
    except StartupError as exc:
        print(f"zoolog broker: {exc}", file=sys.stderr)
        return 1
    return 0

