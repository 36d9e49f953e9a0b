"""pytest plugin: `zoolog_zk` gives a test a running coordination node on a free port,
`zoolog_kafka` a running broker (and the coordination node keeping its metadata)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from zoolog.testing.kafka_servers import KafkaServerThread
from zoolog.testing.servers import ZkServerThread


@pytest.fixture
def zoolog_zk(tmp_path: Path) -> Iterator[ZkServerThread]:
    """A fresh zoolog coordination node with its data in the test's tmp_path."""
    server = ZkServerThread(tmp_path / "zk", tick_ms=200, container_check_interval_ms=100)
    with server:
        yield server


@pytest.fixture
def zoolog_kafka(tmp_path: Path) -> Iterator[KafkaServerThread]:
    """A fresh zoolog broker (with its own coordination node) on free ports, its data in the
    test's tmp_path: `Producer({"bootstrap.servers": zoolog_kafka.bootstrap})`."""
    server = KafkaServerThread(tmp_path / "kafka")
    with server:
        yield server
