"""Start zoolog: the coordination service on 127.0.0.1:2181 and the Kafka broker on :9092.

One command, one data directory: ./zoolog-data unless --data-dir says otherwise (the
coordination service's files in it, the broker's logs in its `kafka/` directory). The broker
runs in a process of its own and keeps its metadata in the coordination service, as Kafka
did in ZooKeeper mode. --config takes a ZooKeeper zoo.cfg or a Kafka server.properties (or
both, given twice); their keys keep their meaning, and flags given here override them.
With --zookeeper HOST:PORT only the broker starts, keeping its metadata in that service
(an Apache ZooKeeper or a zoolog ensemble). Stops cleanly on Ctrl-C and SIGTERM: the broker
first (its logs flushed), then the coordination service (in-flight writes synced).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from zoolog.errors import ConfigError, StartupError
from zoolog.server.broker_process import BrokerProcess, broker_args
from zoolog.server.config import NodeConfig, load_zoo_cfg
from zoolog.server.process import tune_gc_for_serving
from zoolog.server.properties import (
    DEFAULT_KAFKA_PORT as DEFAULT_PORT,
)
from zoolog.server.properties import (
    looks_like_server_properties,
    parse_properties,
)
from zoolog.server.zk_node import ZkNode


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", metavar="FILE", action="append", default=[],
                        help="a ZooKeeper zoo.cfg or a Kafka server.properties (repeatable)")
    parser.add_argument("--data-dir", metavar="DIR", help="data directory (default ./zoolog-data)")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="ZooKeeper client port (default 2181)")
    parser.add_argument("--kafka-port", type=int,
                        help=f"Kafka port (default {DEFAULT_PORT}; 0 = any free port)")
    parser.add_argument("--no-kafka", action="store_true",
                        help="run only the coordination service")
    parser.add_argument("--zookeeper", metavar="HOST:PORT[,...]",
                        help="run only the broker, keeping its metadata in this coordination "
                             "service (an Apache ZooKeeper or zoolog ensemble)")
    parser.add_argument("--tick-ms", type=int, help="tickTime in ms (default 2000)")
    parser.add_argument("--jaas", metavar="FILE",
                        help="JAAS login file whose Server section lists the SASL DIGEST-MD5 "
                             "users of the ZooKeeper port (as java.security.auth.login.config)")
    parser.add_argument("--no-fsync", action="store_true",
                        help="do not fsync before acknowledging writes (forceSync=no; for the "
                             "broker, acks=all and offset commits): faster, but a machine crash "
                             "may lose the last acknowledged writes")
    parser.add_argument("--single-process", action="store_true",
                        help="serve ZooKeeper client sockets in the state machine's process "
                             "instead of a separate front process")
    parser.add_argument("--log-level", default="INFO")


def split_configs(paths: list[str]) -> tuple[str | None, str | None]:
    """(zoo.cfg, server.properties) among the --config files, by their keys."""
    zoo_cfg = server_properties = None
    for path in paths:
        try:
            values = parse_properties(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from exc
        if looks_like_server_properties(values):
            if server_properties is not None:
                raise ConfigError("give at most one server.properties")
            server_properties = path
        else:
            if zoo_cfg is not None:
                raise ConfigError("give at most one zoo.cfg")
            zoo_cfg = path
    return zoo_cfg, server_properties


def build_config(args: argparse.Namespace, zoo_cfg: str | None) -> NodeConfig:
    # --jaas goes in before zoo.cfg's keys are checked (they may require SASL) and wins
    base = NodeConfig(jaas_path=Path(args.jaas)) if args.jaas else NodeConfig()
    config = load_zoo_cfg(zoo_cfg, base) if zoo_cfg else base
    if args.data_dir:
        config.data_dir = Path(args.data_dir)
    if args.host:
        config.host = args.host
    if args.port is not None:
        config.client_port = args.port
    if args.tick_ms is not None:
        config.tick_ms = args.tick_ms
    if args.jaas:
        config.jaas_path = Path(args.jaas)
    if args.no_fsync:
        config.sync_writes = False
    config.client_front_process = not args.single_process
    config.validate()
    return config


def _kafka_port(args: argparse.Namespace, server_properties: str | None) -> int:
    if args.kafka_port is not None:
        return int(args.kafka_port)
    if server_properties:
        values = parse_properties(Path(server_properties).read_text(encoding="utf-8"))
        if "listeners" in values:
            return -1  # the file's listener decides
    return DEFAULT_PORT


async def _run(args: argparse.Namespace, config: NodeConfig,
               server_properties: str | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    node: ZkNode | None = None
    zookeeper = args.zookeeper
    if zookeeper is None:
        node = ZkNode(config)
        await node.start()
        recovered = node.recovery
        print(f"zoolog coordination service listening on {node.connect_string}", flush=True)
        if node.secure_port is not None and config.client_port_enabled:
            print(f"  TLS on {config.secure_host or config.host}:{node.secure_port} "
                  f"(ssl.clientAuth={config.tls_client_auth})", flush=True)
        print(f"  data dir: {config.data_dir.resolve()} (zxid {node.state.last_zxid:#x}, "
              f"{node.state.node_count()} znodes, {len(node.state.sessions)} sessions, "
              f"{recovered.replayed_txns} txns replayed)", flush=True)
        print(f"  connect with: zkCli.sh -server {node.connect_string}   or   "
              f"KazooClient(hosts='{node.connect_string}')", flush=True)
        host = "127.0.0.1" if config.host in ("", "0.0.0.0") else config.host
        zookeeper = f"{host}:{node.port}"
    broker: BrokerProcess | None = None
    try:
        if not args.no_kafka:
            port = _kafka_port(args, server_properties)
            broker_argv = broker_args(config.data_dir / "kafka", config.host, port, zookeeper,
                                      [server_properties] if server_properties else [],
                                      args.no_fsync, args.log_level)
            if port < 0:  # the server.properties listener wins
                drop = broker_argv.index("--port")
                del broker_argv[drop : drop + 2]
                drop = broker_argv.index("--host")
                del broker_argv[drop : drop + 2]
            broker = BrokerProcess(broker_argv)
            starting = asyncio.ensure_future(broker.start())
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not starting.done():  # Ctrl-C / SIGTERM while the broker was starting
                stopping.cancel()
                with contextlib.suppress(StartupError):
                    await starting
                print("zoolog: stopping", flush=True)
                return
            stopping.cancel()
            starting.result()
            print(f"zoolog Kafka broker listening on {broker.bootstrap} (metadata in "
                  f"{zookeeper}, logs in {(config.data_dir / 'kafka').resolve()})", flush=True)
            if "truncated" in broker.ready_line:
                detail = broker.ready_line.rsplit(", ", 1)[-1].rstrip(")")
                print(f"  recovered after an unclean stop: {detail}", flush=True)
            print("  use it from a shell:", flush=True)
            print(f"    export KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap}", flush=True)
            print(f"    export ZOOLOG_BROKERS={broker.bootstrap}", flush=True)
            print(f"    export ZOOKEEPER_CONNECT={zookeeper}", flush=True)
        tune_gc_for_serving()
        await stop.wait()
        print("zoolog: stopping", flush=True)
    finally:
        if broker is not None:
            await broker.stop()
        if node is not None:
            await node.stop()


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        zoo_cfg, server_properties = split_configs(args.config)
        config = build_config(args, zoo_cfg)
    except ConfigError as exc:
        print(f"zoolog up: {exc}", file=sys.stderr)
        return 2
    if config.unknown_keys:
        print(f"zoolog up: ignoring zoo.cfg keys zoolog does not use: "
              f"{', '.join(sorted(config.unknown_keys))}", file=sys.stderr)
    try:
        asyncio.run(_run(args, config, server_properties))
    except OSError as exc:
        print(f"zoolog up: cannot listen on {config.host}:{config.client_port}: {exc}",
              file=sys.stderr)
        return 1
    except StartupError as exc:
        print(f"zoolog up: {exc}", file=sys.stderr)
        return 1
    return 0
