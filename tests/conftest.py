"""Every test that takes `zoolog_zk` runs against both layouts of a node: the client front in
the core's event loop, and the client front in its own process (what `zoolog up` runs)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import kazoo.protocol.connection
import kazoo.retry
import pytest

from zoolog.testing.servers import ZkServerThread

# kazoo's connection threads draw ping jitter and retry backoff from the global `random`
# module whenever they wake. Hypothesis checks that the global random state is unchanged
# while it draws a test case and fails the test with HypothesisDeprecationWarning when it is
# not, so a kazoo ping landing during a draw failed differential tests at random (CI, under
# CPU load). kazoo gets a generator of its own; nothing it does depends on which one it uses.
kazoo.protocol.connection.random = random.Random()  # type: ignore[attr-defined]
kazoo.retry.random = random.Random()  # type: ignore[attr-defined]

FRONTS = {"inline-front": False, "front-process": True}


@pytest.fixture(params=sorted(FRONTS))
def front_process(request: pytest.FixtureRequest) -> bool:
    """Whether the node under test runs its client front in a separate process."""
    return FRONTS[request.param]


@pytest.fixture
def zoolog_zk(tmp_path: Path, front_process: bool) -> Iterator[ZkServerThread]:
    server = ZkServerThread(tmp_path / "zk", tick_ms=200, container_check_interval_ms=100,
                            client_front_process=front_process)
    with server:
        yield server
