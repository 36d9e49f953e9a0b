"""In-process coordination servers for tests (see package docstring)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from zoolog.server.config import NodeConfig
from zoolog.server.zk_node import ZkNode

T = TypeVar("T")


class ZkServerThread:
    """A ZkNode on 127.0.0.1 (a free port unless given) in a daemon thread."""

    def __init__(self, data_dir: str | Path, **settings: Any) -> None:
        settings.setdefault("client_port", 0)
        self.config = NodeConfig(data_dir=Path(data_dir), **settings)
        self.node: ZkNode | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> ZkServerThread:
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self.node = ZkNode(self.config)
                loop.run_until_complete(self.node.start())
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="zoolog-zk", daemon=True)
        self._thread.start()
        if not started.wait(30):
            raise TimeoutError("zoolog node did not start within 30 s")
        if failure:
            raise failure[0]
        # later restarts reuse the same port so clients can reconnect to it
        assert self.node is not None
        self.config.client_port = self.node.port
        if self.node.secure_port is not None:
            self.config.secure_client_port = self.node.secure_port
        return self

    @property
    def port(self) -> int:
        assert self.node is not None
        return self.node.port

    @property
    def connect_string(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def secure_port(self) -> int:
        """The TLS client port (secure_client_port given)."""
        assert self.node is not None and self.node.secure_port is not None
        return self.node.secure_port

    def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the server's loop and return its result (for inspecting state)."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(_call(fn), self._loop).result(30)

    def stop(self) -> None:
        if self._loop is None or self.node is None:
            return
        node = self.node
        asyncio.run_coroutine_threadsafe(node.stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join(30)
        self._loop = None
        self.node = None

    def restart(self) -> ZkServerThread:
        self.stop()
        return self.start()

    def __enter__(self) -> ZkServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_until(predicate: Callable[[], object], timeout_s: float = 10.0, what: str = "") -> None:
    """Poll `predicate` until it is true; AssertionError after `timeout_s` (no fixed sleeps),
    naming `what` was awaited."""
    pause = threading.Event()
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s: {what or predicate}")
        pause.wait(0.01)


async def _call(fn: Callable[[], T]) -> T:
    return fn()
