"""Fixtures for differential tests: a real Apache ZooKeeper 3.8 and a zoolog node side by side.

See harness.py for how ZooKeeper is launched. If the Debian `zookeeper` package or java is
missing the fixture fails loudly (CI installs them); nothing is skipped.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import pytest

from tests.differential.harness import (
    CONTAINER_CHECK_INTERVAL_MS,
    AsyncRunner,
    KazooFactory,
    Server,
    ZooKeeperProcess,
)
from zoolog.testing import ZkServerThread

# When a Hypothesis test fails, its pytest plugin imports hypothesis.extra._patching -> libcst,
# whose import emits a DeprecationWarning (mypy_extensions.TypedDict); with pyproject's
# filterwarnings=error that turns the failure report into an INTERNALERROR that hides the
# falsifying example. Import it once here with that warning silenced.
with warnings.catch_warnings(), contextlib.suppress(ImportError):
    warnings.simplefilter("ignore", DeprecationWarning)
    import hypothesis.extra._patching  # noqa: F401


@pytest.fixture(scope="session")
def zookeeper_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real Apache ZooKeeper 3.8 standalone server (extended types on, all 4lw allowed)."""
    process = ZooKeeperProcess(tmp_path_factory.mktemp("apache-zk"))
    process.start()
    try:
        yield Server("zookeeper", process.port)
    finally:
        process.stop()


@pytest.fixture(scope="session")
def zoolog_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A zoolog node with the same tick and container check interval as `zookeeper_server`."""
    with ZkServerThread(
        tmp_path_factory.mktemp("zoolog-zk"),
        tick_ms=2000,
        container_check_interval_ms=CONTAINER_CHECK_INTERVAL_MS,
    ) as node:
        yield Server("zoolog", node.port)


@pytest.fixture(scope="session")
def servers(zookeeper_server: Server, zoolog_server: Server) -> tuple[Server, Server]:
    """(ZooKeeper, zoolog): the reference first."""
    return zookeeper_server, zoolog_server


@pytest.fixture(scope="module")
def kazoo_factory() -> Iterator[KazooFactory]:
    factory = KazooFactory()
    yield factory
    factory.close_all()


@pytest.fixture(scope="session")
def aio() -> Iterator[AsyncRunner]:
    runner = AsyncRunner()
    yield runner
    runner.close()
