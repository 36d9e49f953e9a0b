"""Group commit for the broker's logs: fsync in a worker thread, one batch at a time.

`Flusher.flush(partitions)` returns a future that completes once every byte appended to
those partitions before the call is durable. Partitions asked for while a batch is being
fsynced share the next batch, so one fdatasync per segment serves every acks=all produce
and coordinator write that arrived meanwhile. With `sync_writes` off (`--no-fsync`) the
future completes at once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from zoolog.broker.partition import Partition
from zoolog.logstore.partition_log import FlushPlan
from zoolog.protocol.kafka.errors import Err, KafkaError
from zoolog.server.log_files import OsLogFileSystem

if TYPE_CHECKING:
    from zoolog.server.kafka_node import KafkaNode

log = logging.getLogger("zoolog.server.kafka_node")


class Flusher:
    """Group commit for the log: fsyncs the partitions asked for in a worker thread, one
    batch at a time; requests arriving meanwhile share the next batch."""

    def __init__(self, node: KafkaNode) -> None:
        self.node = node
        self._pending: dict[int, Partition] = {}
        self._waiters: list[asyncio.Future[None]] = []
        self._task: asyncio.Task[None] | None = None
        self.fsyncs = 0

    def flush(self, partitions: list[Partition]) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not self.node.config.sync_writes or not partitions:
            future.set_result(None)
            return future
        for partition in partitions:
            self._pending[id(partition)] = partition
        self._waiters.append(future)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        return future

    async def _run(self) -> None:
        while self._pending:
            batch = list(self._pending.values())
            waiters = self._waiters
            self._pending = {}
            self._waiters = []
            plans = [(p, p.log.flush_plan()) for p in batch if not p.log.closed]
            fs = self.node.fs
            try:
                await asyncio.to_thread(_run_plans, fs, [plan for _, plan in plans])
                self.fsyncs += sum(len(plan.file_paths) for _, plan in plans)
                for partition, plan in plans:
                    if not partition.log.closed:
                        partition.log.mark_flushed(plan)
            except OSError as exc:
                log.error("fsync failed: %s", exc)
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_exception(KafkaError(Err.KAFKA_STORAGE_ERROR, str(exc)))
                continue
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)


def write_files(fs: OsLogFileSystem, files: list[tuple[str, bytes]]) -> None:
    for path, data in files:
        fs.write_atomic(path, data)


def _run_plans(fs: OsLogFileSystem, plans: list[FlushPlan]) -> None:
    for plan in plans:
        plan.run(fs)


