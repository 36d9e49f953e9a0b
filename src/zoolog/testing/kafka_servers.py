"""An in-process Kafka-protocol broker (with its coordination node) for tests.

`KafkaServerThread` runs a zoolog coordination node and a broker that keeps its metadata
there, both on real sockets and real disk, on one event loop in a background thread, so
that synchronous clients (confluent-kafka, kafka-python, kcat in a subprocess) can talk to
it from a test. `restart()` stops both cleanly and starts them again on the same ports and
data; `crash()` drops everything without a clean shutdown (what `kill -9` leaves: unflushed
page-cache data survives, as it would on a real machine).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from zoolog.server.config import NodeConfig
from zoolog.server.kafka_config import KafkaNodeConfig, apply_server_properties
from zoolog.server.kafka_node import KafkaNode
from zoolog.server.zk_node import ZkNode

T = TypeVar("T")

TEST_PROPERTIES = {
    "group.initial.rebalance.delay.ms": "0",
    "offsets.topic.num.partitions": "5",
    "transaction.state.log.num.partitions": "5",
}
"""What the fixture changes from Kafka's defaults: no initial rebalance delay (as in
development) and fewer offsets and transaction-state partitions (faster start; groups and
transactions behave the same)."""


class KafkaServerThread:
    """See the module docstring."""

    def __init__(self, data_dir: str | Path, properties: dict[str, str] | None = None,
                 **settings: Any) -> None:
        self.data_dir = Path(data_dir)
        self.zk_config = NodeConfig(data_dir=self.data_dir / "zk", client_port=0, tick_ms=200)
        self.properties = dict(TEST_PROPERTIES)
        self.properties.update(properties or {})
        self.settings = settings
        self.kafka_port = 0
        self.zk: ZkNode | None = None
        self.node: KafkaNode | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def _kafka_config(self) -> KafkaNodeConfig:
        assert self.zk is not None
        config = KafkaNodeConfig(data_dir=self.data_dir / "kafka", port=self.kafka_port,
                                 zookeeper=f"127.0.0.1:{self.zk.port}",
                                 retention_check_interval_ms=1000, cleaner_interval_ms=1000)
        apply_server_properties(config, self.properties)
        for name, value in self.settings.items():
            setattr(config, name, value)
        return config

    def start(self) -> KafkaServerThread:
        started = threading.Event()
        failure: list[BaseException] = []

        async def boot() -> None:
            self.zk = ZkNode(self.zk_config)
            await self.zk.start()
            self.zk_config.client_port = self.zk.port
            self.node = KafkaNode(self._kafka_config())
            await self.node.start()
            self.kafka_port = self.node.port

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(boot())
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="zoolog-kafka", daemon=True)
        self._thread.start()
        if not started.wait(60):
            raise TimeoutError("zoolog broker did not start within 60 s")
        if failure:
            raise failure[0]
        return self

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def zk_connect(self) -> str:
        return f"127.0.0.1:{self.zk_config.client_port}"

    def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the servers' loop and return its result (for inspecting state)."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(_call(fn), self._loop).result(30)

    def run(self, coro: Any) -> Any:
        """Run a coroutine on the servers' loop and return its result."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(60)

    def _shutdown(self, clean: bool) -> None:
        if self._loop is None:
            return

        async def down() -> None:
            if self.node is not None:
                await (self.node.stop() if clean else self.node.crash())
            if self.zk is not None:
                await self.zk.stop()

        asyncio.run_coroutine_threadsafe(down(), self._loop).result(60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join(30)
        self._loop = None
        self.node = None
        self.zk = None

    def stop(self) -> None:
        self._shutdown(clean=True)

    def crash(self) -> None:
        """Drop the broker without flushing or closing anything (its coordination session
        stays until it expires or the restarted broker resumes it)."""
        self._shutdown(clean=False)

    def restart(self, clean: bool = True) -> KafkaServerThread:
        self._shutdown(clean)
        return self.start()

    def __enter__(self) -> KafkaServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def _call(fn: Callable[[], T]) -> T:
    return fn()
