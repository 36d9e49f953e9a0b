"""Four-letter words: ZooKeeper's plain-text admin commands on the client port.

Formats follow ZooKeeper 3.8 line for line, so tools that parse them (kazoo's
`server_version()` reads `envi`, aiozk reads `srvr`, Prometheus exporters read `mntr`) work.
The version is reported as `3.8.0-zoolog-<version>` so feature detection picks 3.8 behaviour.
"""

from __future__ import annotations

import os
import platform
import socket
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from zoolog import __version__

if TYPE_CHECKING:
    from zoolog.coord.service import ConnState
    from zoolog.server.zk_node import ZkNode

ZK_VERSION = f"3.8.0-zoolog-{__version__}, built on 2026-11-24 00:00 UTC"


def _latency(count: int, minimum: int, total: int, maximum: int) -> str:
    avg = total / count if count else 0.0
    return f"{minimum}/{avg:.4f}/{maximum}"


def _srvr_lines(node: ZkNode) -> list[str]:
    stats = node.service.stats
    outstanding = sum(len(c.pending) for c in node.service.conns.values())
    return [
        f"Zookeeper version: {ZK_VERSION}",
        "Latency min/avg/max: "
        + _latency(stats.latency_count, stats.latency_min_ms, stats.latency_total_ms,
                   stats.latency_max_ms),
        f"Received: {stats.packets_received}",
        f"Sent: {stats.packets_sent}",
        f"Connections: {len(node.conns)}",
        f"Outstanding: {outstanding}",
        f"Zxid: {node.state.last_zxid:#x}",
        "Mode: standalone",
        f"Node count: {node.state.node_count()}",
    ]


def _conn_brief(conn: ConnState) -> str:
    ip, port = conn.peer
    return f" /{ip}:{port}[1](queued={len(conn.pending)},recved={conn.received},sent={conn.sent})"


def _conn_full(conn: ConnState) -> str:
    ip, port = conn.peer
    avg = conn.latency_total_ms // conn.latency_count if conn.latency_count else 0
    return (
        f" /{ip}:{port}[1](queued={len(conn.pending)},recved={conn.received},sent={conn.sent},"
        f"sid={conn.session_id & 0xFFFFFFFFFFFFFFFF:#x},lop={conn.last_op},"
        f"est={conn.established_ms},to={conn.timeout_ms},lcxid={conn.last_cxid:#x},"
        f"lzxid={conn.last_zxid & 0xFFFFFFFFFFFFFFFF:#x},lresp={int(time.time() * 1000)},"
        f"llat=0,minlat={conn.latency_min_ms},avglat={avg},maxlat={conn.latency_max_ms})"
    )


def _ruok(node: ZkNode) -> str:
    return "imok"


def _isro(node: ZkNode) -> str:
    return "rw"


def _srvr(node: ZkNode) -> str:
    return "\n".join(_srvr_lines(node)) + "\n"


def _stat(node: ZkNode) -> str:
    lines = _srvr_lines(node)
    clients = [_conn_brief(c) for c in node.service.conns.values()]
    return "\n".join([lines[0], "Clients:", *clients, "", *lines[1:]]) + "\n"


def _cons(node: ZkNode) -> str:
    return "".join(_conn_full(c) + "\n" for c in node.service.conns.values()) + "\n"


def _conf(node: ZkNode) -> str:
    config = node.config
    service = node.service.config
    data_dir = os.path.abspath(config.data_dir)
    size = node.storage.size_bytes()
    lines = [
        f"clientPort={node.port if config.client_port_enabled else -1}",
        f"secureClientPort={node.secure_port if node.secure_port is not None else -1}",
        f"dataDir={data_dir}/version-2",
        f"dataDirSize={size}",
        f"dataLogDir={data_dir}/version-2",
        f"dataLogSize={size}",
        f"tickTime={config.tick_ms}",
        f"maxClientCnxns={config.max_client_connections}",
        f"minSessionTimeout={service.min_timeout_ms}",
        f"maxSessionTimeout={service.max_timeout_ms}",
        "clientPortListenBacklog=-1",
        f"serverId={config.server_id}",
    ]
    return "\n".join(lines) + "\n"


def _envi(node: ZkNode) -> str:
    lines = [
        "Environment:",
        f"zookeeper.version={ZK_VERSION}",
        f"host.name={socket.gethostname()}",
        f"python.version={platform.python_version()}",
        f"python.implementation={platform.python_implementation()}",
        f"python.executable={sys.executable}",
        f"os.name={platform.system()}",
        f"os.arch={platform.machine()}",
        f"os.version={platform.release()}",
        f"user.name={os.environ.get('USER', '')}",
        f"user.dir={os.getcwd()}",
        f"zoolog.version={__version__}",
    ]
    return "\n".join(lines) + "\n"


def _mntr(node: ZkNode) -> str:
    stats = node.service.stats
    state = node.state
    avg = stats.latency_total_ms / stats.latency_count if stats.latency_count else 0.0
    try:
        open_fds = len(os.listdir("/proc/self/fd"))
    except OSError:
        open_fds = -1
    try:
        import resource

        max_fds = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, ValueError):
        max_fds = -1
    rows = [
        ("zk_version", ZK_VERSION),
        ("zk_server_state", "standalone"),
        ("zk_avg_latency", f"{avg:.4f}"),
        ("zk_max_latency", stats.latency_max_ms),
        ("zk_min_latency", stats.latency_min_ms),
        ("zk_packets_received", stats.packets_received),
        ("zk_packets_sent", stats.packets_sent),
        ("zk_num_alive_connections", len(node.conns)),
        ("zk_outstanding_requests", sum(len(c.pending) for c in node.service.conns.values())),
        ("zk_znode_count", state.node_count()),
        ("zk_watch_count", node.service.watches.count()),
        ("zk_ephemerals_count", state.ephemeral_count()),
        ("zk_approximate_data_size", state.approximate_data_size()),
        ("zk_open_file_descriptor_count", open_fds),
        ("zk_max_file_descriptor_count", max_fds),
        ("zk_global_sessions", len(state.sessions)),
        ("zk_local_sessions", 0),
        ("zk_uptime", int(time.time() * 1000) - node.started_ms),
        ("zk_last_zxid", f"{state.last_zxid:#x}"),
        ("zk_txn_log_bytes_written", node.storage.bytes_written),
        ("zoolog_backpressure_pauses", node.backpressure_pauses),
    ]
    return "".join(f"{key}\t{value}\n" for key, value in rows)


def _wchs(node: ZkNode) -> str:
    watches = node.service.watches
    watchers = watches.watchers()
    paths = set(watches.data.by_path) | set(watches.child.by_path)
    return (
        f"{len(watchers)} connections watching {len(paths)} paths\n"
        f"Total watches:{watches.count()}\n"
    )


def _wchc(node: ZkNode) -> str:
    out = []
    for conn in node.service.conns.values():
        paths = node.service.watches.paths_of(conn.conn_id)
        if paths:
            out.append(f"{conn.session_id & 0xFFFFFFFFFFFFFFFF:#x}")
            out.extend(f"\t{p}" for p in sorted(paths))
    return "\n".join(out) + "\n"


def _wchp(node: ZkNode) -> str:
    watches = node.service.watches
    by_path: dict[str, set[int]] = {}
    for table in (watches.data, watches.child):
        for path, watchers in table.by_path.items():
            by_path.setdefault(path, set()).update(watchers)
    out = []
    for path in sorted(by_path):
        out.append(path)
        for conn_id in sorted(by_path[path]):
            conn = node.service.conns.get(conn_id)
            if conn is not None:
                out.append(f"\t{conn.session_id & 0xFFFFFFFFFFFFFFFF:#x}")
    return "\n".join(out) + "\n"


def _dump(node: ZkNode) -> str:
    state = node.state
    tracker = node.service.tracker
    out = ["SessionTracker dump:", f"Global Sessions({len(tracker)}):"]
    for session_id in sorted(tracker.deadline_ms, key=lambda s: tracker.deadline_ms[s]):
        deadline = datetime.fromtimestamp(tracker.deadline_ms[session_id] / 1000, UTC)
        out.append(
            f"{session_id & 0xFFFFFFFFFFFFFFFF:#x}\t{tracker.timeout_ms[session_id]}ms"
            f"\texpires {deadline:%Y-%m-%d %H:%M:%S} UTC"
        )
    with_ephemerals = [s for s in state.sessions.values() if s.ephemerals]
    out.append("ephemeral nodes dump:")
    out.append(f"Sessions with Ephemerals ({len(with_ephemerals)}):")
    for session in with_ephemerals:
        out.append(f"{session.session_id & 0xFFFFFFFFFFFFFFFF:#x}:")
        out.extend(f"\t{p}" for p in sorted(session.ephemerals))
    out.append("Connections dump:")
    out.append(f"Connections Sets ({len(node.service.conns)}):")
    for conn in node.service.conns.values():
        out.append(f"\t{conn.session_id & 0xFFFFFFFFFFFFFFFF:#x}")
    return "\n".join(out) + "\n"


def _dirs(node: ZkNode) -> str:
    size = node.storage.size_bytes()
    return f"datadir_size: {size}\nlogdir_size: {size}\n"


def _crst(node: ZkNode) -> str:
    for conn in node.service.conns.values():
        conn.received = conn.sent = 0
        conn.latency_count = conn.latency_total_ms = conn.latency_max_ms = 0
        conn.latency_min_ms = 0
    return "Connection stats reset.\n"


def _srst(node: ZkNode) -> str:
    stats = node.service.stats
    stats.packets_received = stats.packets_sent = 0
    stats.latency_count = stats.latency_total_ms = stats.latency_max_ms = 0
    stats.latency_min_ms = 0
    return "Server stats reset.\n"


COMMANDS: dict[str, Callable[[ZkNode], str]] = {
    "ruok": _ruok, "isro": _isro, "srvr": _srvr, "stat": _stat, "cons": _cons, "conf": _conf,
    "envi": _envi, "mntr": _mntr, "wchs": _wchs, "wchc": _wchc, "wchp": _wchp, "dump": _dump,
    "dirs": _dirs, "crst": _crst, "srst": _srst,
}


def answer(node: ZkNode, word: str) -> str:
    command = COMMANDS.get(word)
    return command(node) if command is not None else ""
