"""Fetches waiting for data (Kafka's DelayedFetch purgatory).

A parked fetch is woken when one of its partitions gets an append (evaluations are batched
with `call_soon`, so a burst of appends costs one re-read) or when its `max_wait_ms`
deadline passes, and is then answered with whatever it can read.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from zoolog.broker.fetch import FetchOperation
from zoolog.broker.partition import Partition
from zoolog.server.kafka_connection import KafkaConnection, RequestContext, now_ms

if TYPE_CHECKING:
    from zoolog.server.kafka_node import KafkaNode


class FetchParking:
    """Fetches waiting for data: woken by appends to their partitions or their deadline."""

    def __init__(self, node: KafkaNode) -> None:
        self.node = node
        self._by_partition: dict[tuple[str, int], set[_ParkedFetch]] = {}
        self._woken: set[_ParkedFetch] = set()
        self._scheduled = False

    def park(self, context: RequestContext, operation: FetchOperation) -> None:
        parked = _ParkedFetch(context, operation)
        for key in operation.partition_keys:
            self._by_partition.setdefault(key, set()).add(parked)
        loop = asyncio.get_running_loop()
        delay = max(0.0, (operation.deadline_ms - now_ms()) / 1000)
        parked.timer = loop.call_later(delay, self._expire, parked)

    def appended(self, partition: Partition) -> None:
        waiting = self._by_partition.get((partition.topic, partition.index))
        if not waiting:
            return
        self._woken.update(waiting)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._evaluate)

    def _evaluate(self) -> None:
        self._scheduled = False
        woken, self._woken = self._woken, set()
        now = now_ms()
        for parked in woken:
            if parked.done:
                continue
            response = parked.operation.evaluate(now)
            if response is not None:
                self._finish(parked, response)

    def _expire(self, parked: _ParkedFetch) -> None:
        if parked.done:
            return
        response = parked.operation.evaluate(max(now_ms(), parked.operation.deadline_ms))
        if response is None:  # cannot happen at the deadline; answer empty rather than hang
            response = parked.operation.evaluate(parked.operation.deadline_ms + 1)
        assert response is not None
        self._finish(parked, response)

    def _finish(self, parked: _ParkedFetch, response: Any) -> None:
        parked.done = True
        if parked.timer is not None:
            parked.timer.cancel()
        for key in parked.operation.partition_keys:
            waiting = self._by_partition.get(key)
            if waiting is not None:
                waiting.discard(parked)
                if not waiting:
                    del self._by_partition[key]
        parked.context.connection.respond(parked.context.slot, response)

    def forget_connection(self, connection: KafkaConnection) -> None:
        for waiting in list(self._by_partition.values()):
            for parked in list(waiting):
                if parked.context.connection is connection:
                    parked.done = True
                    if parked.timer is not None:
                        parked.timer.cancel()
                    waiting.discard(parked)

    def wake_all(self) -> None:
        """Answer every parked fetch now (shutdown)."""
        for waiting in list(self._by_partition.values()):
            for parked in list(waiting):
                if not parked.done:
                    self._expire(parked)


class _ParkedFetch:
    __slots__ = ("context", "done", "operation", "timer")

    def __init__(self, context: RequestContext, operation: FetchOperation) -> None:
        self.context = context
        self.operation = operation
        self.timer: asyncio.TimerHandle | None = None
        self.done = False


