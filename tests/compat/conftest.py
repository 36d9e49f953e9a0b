from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from kazoo.client import KazooClient
from tests.kazoo_clients import stop_all

from zoolog.testing import ZkServerThread


@pytest.fixture
def make_client(zoolog_zk: ZkServerThread) -> Iterator[Callable[..., KazooClient]]:
    clients: list[KazooClient] = []

    def make(**kwargs: object) -> KazooClient:
        client = KazooClient(hosts=zoolog_zk.connect_string, **kwargs)
        client.start(timeout=10)
        clients.append(client)
        return client

    yield make
    stop_all(clients)


@pytest.fixture
def zk(make_client: Callable[..., KazooClient]) -> KazooClient:
    return make_client()
