"""Every test that takes `zoolog_zk` runs against both layouts of a node: the client front in
the core's event loop, and the client front in its own process (what `zoolog up` runs)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from zoolog.testing.servers import ZkServerThread

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
