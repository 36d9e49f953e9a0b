"""Helpers for tests that hold several kazoo clients."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from kazoo.client import KazooClient


def stop_all(clients: Iterable[KazooClient]) -> None:
    """Stop and close each client, whatever state a test left it in (failed authentication,
    a server already gone)."""
    for client in clients:
        with contextlib.suppress(Exception):
            client.stop()
            client.close()
