"""Run one bare replicated-log node (the consensus core over TCP, with fsync).

`zoolog raft --id 1 --peers 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003
--client-port 8001 --data-dir ./raft-1`. Used by the consensus benchmark and tests; the
coordination ensemble runs the same core inside its nodes.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path

from zoolog.server.process import tune_gc_for_serving
from zoolog.server.raft_node import RaftNodeConfig, RaftServer, parse_peers


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--id", type=int, required=True)
    parser.add_argument("--peers", required=True, help="ID=HOST:PORT,... including this node")
    parser.add_argument("--client-port", type=int, required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--tick-ms", type=int, default=100)


async def _run(config: RaftNodeConfig) -> None:
    server = RaftServer(config)
    await server.start()
    tune_gc_for_serving()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"raft node {config.node_id} up: peers {config.peers}, "
          f"clients on {config.client_port}", flush=True)
    await stop.wait()
    await server.stop()


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level="WARNING")
    config = RaftNodeConfig(args.id, parse_peers(args.peers), args.client_port,
                            Path(args.data_dir), tick_ms=args.tick_ms)
    asyncio.run(_run(config))
    return 0
