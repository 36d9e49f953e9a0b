"""Helpers for the differential tests: launching Apache ZooKeeper 3.8, four-letter words,
bounded waits, kazoo client bookkeeping and an asyncio runner for zoolog's ZkClient.

ZooKeeper is the Debian `zookeeper` package's server, launched directly with java (no
zkServer.sh): `/usr/share/java/zookeeper.jar` carries a manifest `Class-Path` naming its
dependencies in /usr/share/java (the package's zkEnv.sh puts exactly that jar plus
/etc/zookeeper/conf, which only holds log4j settings, on the classpath). Main class
`org.apache.zookeeper.server.ZooKeeperServerMain` (standalone) with a zoo.cfg in a tmp dir.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kazoo.client import KazooClient

from zoolog.testing import wait_until

T = TypeVar("T")

ZOOKEEPER_JAR = Path("/usr/share/java/zookeeper.jar")
JAVA = shutil.which("java") or "/usr/bin/java"
NETTY_JARS = ("/usr/share/java/netty-codec.jar", "/usr/share/java/netty-resolver.jar")
"""Debian's zookeeper.jar leaves these off its manifest class path, yet its Netty TLS server
and client need them (NoClassDefFoundError without)."""
CONTAINER_CHECK_INTERVAL_MS = 100
"""Both servers check containers and TTL nodes this often, so expiry tests stay short."""

DIGEST_USER = "alice:secret"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def four_letter(port: int, word: str, timeout_s: float = 5.0) -> str:
    """Send a four-letter word to 127.0.0.1:port and return the whole reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(word.encode("ascii"))
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


@dataclass
class Server:
    """One server under comparison: `name` is "zookeeper" or "zoolog"."""

    name: str
    port: int

    @property
    def connect_string(self) -> str:
        return f"127.0.0.1:{self.port}"

    def four_letter(self, word: str) -> str:
        return four_letter(self.port, word)


class ZooKeeperProcess:
    """Apache ZooKeeper 3.8 standalone (ZooKeeperServerMain) in a child java process."""

    def __init__(self, base: Path, extra_cfg: tuple[str, ...] = (),
                 jvm_flags: tuple[str, ...] = (), classpath: tuple[str, ...] = ()) -> None:
        """`extra_cfg`: more zoo.cfg lines; `jvm_flags`: more JVM options (e.g.
        -Djava.security.auth.login.config=FILE); `classpath`: more jars (NETTY_JARS for
        TLS)."""
        self.base = base
        self.extra_cfg = extra_cfg
        self.jvm_flags = jvm_flags
        self.classpath = classpath
        self.port = free_port()
        self.log_path = base / "zookeeper.out"
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        cfg = self.base / "zoo.cfg"
        data = self.base / "data"
        data.mkdir(parents=True, exist_ok=True)
        cfg.write_text(
            "\n".join([
                "tickTime=2000",
                f"dataDir={data}",
                f"clientPort={self.port}",
                "clientPortAddress=127.0.0.1",
                "4lw.commands.whitelist=*",
                "admin.enableServer=false",
                *self.extra_cfg,
                "",
            ]),
            encoding="utf-8",
        )
        return [
            JAVA,
            "-Xmx256m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Dzookeeper.extendedTypesEnabled=true",
            "-Dzookeeper.admin.enableServer=false",
            "-Dzookeeper.4lw.commands.whitelist=*",
            f"-Dznode.container.checkIntervalMs={CONTAINER_CHECK_INTERVAL_MS}",
            f"-Dzookeeper.log.dir={self.base}",
            *self.jvm_flags,
            "-cp",
            ":".join((str(ZOOKEEPER_JAR), *self.classpath)),
            "org.apache.zookeeper.server.ZooKeeperServerMain",
            str(cfg),
        ]

    def start(self, timeout_s: float = 60.0) -> None:
        if not ZOOKEEPER_JAR.exists() or not os.access(JAVA, os.X_OK):
            pytest.fail(
                f"Apache ZooKeeper is not installed ({ZOOKEEPER_JAR} or java missing): "
                "install the Debian 'zookeeper' package to run the differential tests",
                pytrace=False,
            )
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.base
            )

        def answers_imok() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(
                    f"ZooKeeper exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                # ruok says imok as soon as the listener is up; srvr only once the server
                # serves requests (before that it says "not currently serving requests")
                return (four_letter(self.port, "ruok", timeout_s=2.0) == "imok"
                        and "Mode: standalone" in four_letter(self.port, "srvr", 2.0))
            except OSError:
                return False

        try:
            wait_until(answers_imok, timeout_s, "ZooKeeper answers ruok and serves requests")
        except AssertionError:
            self.stop()
            raise

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text("utf-8", "replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(15)
        self.process = None


class KazooFactory:
    """Makes started kazoo clients and stops them all at teardown."""

    def __init__(self) -> None:
        self.clients: list[KazooClient] = []

    def __call__(self, server: Server, **kwargs: Any) -> KazooClient:
        client = KazooClient(hosts=server.connect_string, timeout=10.0, **kwargs)
        client.start(timeout=15)
        self.clients.append(client)
        return client

    def close_all(self) -> None:
        for client in self.clients:
            try:
                client.stop()
                client.close()
            except Exception:
                pass
        self.clients.clear()


class AsyncRunner:
    """An asyncio loop in a daemon thread, for zoolog's asyncio ZkClient from sync tests."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="diff-aio",
                                       daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def close(self) -> None:
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(cancel_all())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


