"""Start a zoolog node: the coordination service on 127.0.0.1:2181 by default.

Data lives in ./zoolog-data unless --data-dir says otherwise; a ZooKeeper zoo.cfg may be given
with --config (its keys keep their ZooKeeper meaning; flags given here override it). Stops
cleanly on Ctrl-C and SIGTERM: in-flight writes are synced before the process exits.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from zoolog.errors import ConfigError, StartupError
from zoolog.server.config import NodeConfig, load_zoo_cfg
from zoolog.server.process import tune_gc_for_serving
from zoolog.server.zk_node import ZkNode


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", metavar="ZOO_CFG", help="a ZooKeeper zoo.cfg to read")
    parser.add_argument("--data-dir", metavar="DIR", help="data directory (default ./zoolog-data)")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="ZooKeeper client port (default 2181)")
    parser.add_argument("--tick-ms", type=int, help="tickTime in ms (default 2000)")
    parser.add_argument("--no-fsync", action="store_true",
                        help="do not fsync before acknowledging writes (forceSync=no): faster, "
                             "but a machine crash may lose the last acknowledged writes")
    parser.add_argument("--single-process", action="store_true",
                        help="serve client sockets in the state machine's process instead of a "
                             "separate front process (uses one CPU core)")
    parser.add_argument("--log-level", default="INFO")


def build_config(args: argparse.Namespace) -> NodeConfig:
    config = load_zoo_cfg(args.config) if args.config else NodeConfig()
    if args.data_dir:
        config.data_dir = Path(args.data_dir)
    if args.host:
        config.host = args.host
    if args.port is not None:
        config.client_port = args.port
    if args.tick_ms is not None:
        config.tick_ms = args.tick_ms
    if args.no_fsync:
        config.sync_writes = False
    config.client_front_process = not args.single_process
    config.validate()
    return config


async def _run(config: NodeConfig) -> None:
    node = ZkNode(config)
    await node.start()
    tune_gc_for_serving()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    recovered = node.recovery
    print(f"zoolog coordination service listening on {node.connect_string}", flush=True)
    print(f"  data dir: {config.data_dir.resolve()} (zxid {node.state.last_zxid:#x}, "
          f"{node.state.node_count()} znodes, {len(node.state.sessions)} sessions, "
          f"{recovered.replayed_txns} txns replayed)", flush=True)
    print(f"  connect with: zkCli.sh -server {node.connect_string}   or   "
          f"KazooClient(hosts='{node.connect_string}')", flush=True)
    await stop.wait()
    print("zoolog: stopping", flush=True)
    await node.stop()


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = build_config(args)
    except ConfigError as exc:
        print(f"zoolog up: {exc}", file=sys.stderr)
        return 2
    if config.unknown_keys:
        print(f"zoolog up: ignoring zoo.cfg keys zoolog does not use: "
              f"{', '.join(sorted(config.unknown_keys))}", file=sys.stderr)
    try:
        asyncio.run(_run(config))
    except OSError as exc:
        print(f"zoolog up: cannot listen on {config.host}:{config.client_port}: {exc}",
              file=sys.stderr)
        return 1
    except StartupError as exc:
        print(f"zoolog up: {exc}", file=sys.stderr)
        return 1
    return 0
