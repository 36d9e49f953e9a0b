"""Fixtures for the CLI tests: a fresh zoolog node per test (zkCli.sh needs the Debian
`zookeeper` package; its absence fails the tests, see zkcli.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from zoolog.testing import ZkServerThread


@pytest.fixture
def zoolog_node(tmp_path: Path) -> Iterator[ZkServerThread]:
    with ZkServerThread(tmp_path / "zk", tick_ms=2000, container_check_interval_ms=100) as node:
        yield node
