"""`KafkaNode`: the broker's asyncio runtime — sockets, disk, timers, the coordination service.

The broker logic (`zoolog.broker`) decides; this module does the I/O it asks for:

```
socket bytes -> KafkaConnection.data_received -> FrameReader (protocol/kafka/connection.py)
  -> request header + generated decoder -> one Slot per request (responses leave in request
     order, whatever order they complete in)
  -> handler: broker function -> response now, or later:
       acks=all produce      -> Flusher (fsync in a worker thread, group commit) -> response
       fetch with min_bytes  -> parked until data arrives on its partitions or max_wait_ms
       group requests        -> GroupRuntime (kafka_groups.py): GroupCoordinator outputs,
                                Reply now / Persist to __consumer_offsets, fsync, replies
       transactions          -> TxnRuntime (kafka_txn.py): TransactionCoordinator outputs,
                                Persist to __transaction_state, markers, replies
       admin, auto-create    -> ZkMetadataStore (coordination service) -> open/close logs
  -> encode (records as FileSlices of segment files) -> transport
```

A connection processes one request at a time unless the one in flight only waits for an
fsync (Kafka mutes a connection while a request is in flight; a produce pipeline needs no
muting since appends are ordered already). Reading stops while the socket's write buffer is
over its high-water mark (`pause_writing`) or too many requests are queued.

Durability (docs/ARCHITECTURE.md): an acks=all produce and every coordinator write are
answered after `fdatasync` of the segment; acks=1 after the write reaches the page cache;
`flush.messages` / `flush.ms` add periodic fsyncs; `--no-fsync` turns the fsyncs off.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from zoolog.broker import (
    cluster_api,
    configs_api,
    offsets_api,
    producers_api,
    topics_api,
    znodes,
)
from zoolog.broker.api_versions import (
    api_versions_response,
)
from zoolog.broker.broker import Broker
from zoolog.broker.error_responses import error_response
from zoolog.broker.fetch import FetchOperation
from zoolog.broker.groups.coordinator import GroupCoordinator
from zoolog.broker.metadata import MetadataImage, TopicInfo
from zoolog.broker.produce import produce, unknown_topics
from zoolog.broker.znodes import BrokerRegistration
from zoolog.coord.errors import Code, ZkError
from zoolog.errors import StartupError
from zoolog.logstore import cleaner
from zoolog.protocol.kafka.errors import Err, KafkaError
from zoolog.server.kafka_config import KafkaNodeConfig
from zoolog.server.kafka_connection import KafkaConnection, RequestContext, now_ms
from zoolog.server.kafka_fetch_parking import FetchParking
from zoolog.server.kafka_flusher import Flusher, write_files
from zoolog.server.kafka_groups import GROUP_APIS, GroupRuntime
from zoolog.server.kafka_metadata import ZkMetadataStore
from zoolog.server.kafka_txn import TXN_APIS, TxnRuntime
from zoolog.server.log_files import OsLogFileSystem

log = logging.getLogger(__name__)

Handler = Callable[[RequestContext, Any], None]


class KafkaNode:
    """One broker (see the module docstring). `await start()`, `await stop()`."""

    def __init__(self, config: KafkaNodeConfig) -> None:
        config.validate()
        self.config = config
        self.data_dir = Path(config.data_dir)
        self.fs = OsLogFileSystem(self.data_dir)
        self.store = ZkMetadataStore(config.zookeeper, self.data_dir, config.settings.broker_id,
                                     config.zookeeper_session_timeout_ms)
        self.connections: set[KafkaConnection] = set()
        self.flusher = Flusher(self)
        self.parking = FetchParking(self)
        self.broker: Broker | None = None
        self.group_runtime = GroupRuntime(self)
        self.txn_runtime = TxnRuntime(self)
        self.port = config.port
        self.sendfile = True
        """Whether the event loop has native sendfile (uvloop has not: then slices are read
        and written)."""
        self._server: asyncio.AbstractServer | None = None
        self._lock_fd: int | None = None
        self._timers: list[asyncio.Task[None]] = []
        self._admin_lock = asyncio.Lock()
        self._pid_refill: asyncio.Task[None] | None = None
        self._config_changes_seen = ""
        """The last `/config/changes` notification followed (they are sequential)."""
        self.started_ms = 0
        self.truncated_bytes = 0
        """Bytes of torn log tails the last start truncated."""
        self.handlers: dict[int, Handler] = {
            0: self._produce, 1: self._fetch, 2: self._list_offsets, 3: self._metadata,
            10: self._find_coordinator, 18: self._api_versions, 19: self._create_topics,
            20: self._delete_topics,
            21: self._delete_records, 22: self._init_producer_id,
            23: self._offset_for_leader_epoch, 32: self._describe_configs,
            33: self._alter_configs, 37: self._create_partitions,
            44: self._alter_configs, 60: self._describe_cluster,
            61: self._describe_producers,
        }
        for key in GROUP_APIS:
            self.handlers[key] = self.group_runtime.call
        for key in TXN_APIS:
            self.handlers[key] = self.txn_runtime.call

    # --- lifecycle ----------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        return f"{self.advertised_host}:{self.advertised_port}"

    @property
    def advertised_host(self) -> str:
        host = self.config.advertised_host or self.config.host
        return "127.0.0.1" if host in ("", "0.0.0.0") else host

    @property
    def advertised_port(self) -> int:
        return self.config.advertised_port or self.port

    def _lock_data_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.data_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise StartupError(f"{self.data_dir} is in use by another broker process") from exc
        self._lock_fd = fd

    async def start(self) -> None:
        started = time.monotonic()
        self._lock_data_dir()
        loop = asyncio.get_running_loop()
        self.sendfile = isinstance(loop, asyncio.selector_events.BaseSelectorEventLoop)
        self._server = await loop.create_server(lambda: KafkaConnection(self), self.config.host,
                                                self.config.port, start_serving=False,
                                                reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        settings = self.config.settings
        settings.host, settings.port = self.advertised_host, self.advertised_port
        registration = BrokerRegistration(settings.broker_id, settings.host, settings.port,
                                          settings.rack)
        try:
            await self.store.start(registration)
        except (TimeoutError, ZkError, OSError) as exc:
            self._server.close()
            raise StartupError(f"cannot keep metadata in the coordination service at "
                               f"{self.config.zookeeper}: {exc}") from exc
        self._check_cluster_id(self.store.cluster_id)
        image = MetadataImage(self.store.cluster_id, registration)
        image.controller_id = settings.broker_id
        self.broker = Broker(settings, image, self.fs)
        topics = [await self.store.bump_leader_epoch(info)
                  for info in await self.store.load_topics()]
        for info in topics:
            image.put_topic(info)
        now = now_ms()
        self.load_report = self.broker.open_logs(now)
        self._report_recovery()
        for info in topics:
            self._open(info)
        for topic, index in self.broker.stray_logs():
            log.warning("log %s-%d on disk belongs to no topic in the metadata: left alone",
                        topic, index)
        await self.group_runtime.start()
        await self._refill_producer_ids()
        self.txn_runtime.start()
        self.store.watch(self._metadata_changed)
        await self._server.start_serving()
        self._timers.append(asyncio.create_task(self._periodic()))
        self.started_ms = int((time.monotonic() - started) * 1000)

    def _report_recovery(self) -> None:
        """Say what opening the logs found: a torn or damaged tail is truncated, never
        silently (Kafka logs the same at recovery)."""
        report = self.load_report
        if not report.clean_shutdown and report.logs:
            validated = sum(r.batches_validated for r in report.logs.values())
            log.warning("the broker did not shut down cleanly: re-validated %d batches in %d "
                        "logs", validated, sum(1 for r in report.logs.values()
                                              if r.segments_recovered))
        for (topic, index), recovery in sorted(report.logs.items()):
            if recovery.truncated_bytes or recovery.segments_dropped:
                log.warning("log %s-%d: truncated %d bytes of a torn or damaged tail (%d "
                            "segments dropped); every batch before them is intact", topic,
                            index, recovery.truncated_bytes, recovery.segments_dropped)
        self.truncated_bytes = sum(r.truncated_bytes for r in report.logs.values())

    async def _metadata_changed(self, path: str, children: list[str]) -> None:
        """Follow what other tools change in the coordination service (see
        `ZkMetadataStore.watch`): topics created or removed there, deletions asked for under
        /admin/delete_topics, config change notifications."""
        broker = self._broker
        async with self._admin_lock:
            if path == znodes.BROKER_TOPICS:
                # re-read under the lock: a topic this broker created while the listener
                # waited for the lock is not in the watch's older list, and must stay open
                children = await self.store.children(path)
                for name in children:
                    if name not in broker.metadata.topics:
                        info = await self.store.load_topic(name)
                        if info is not None:
                            log.info("topic %s was created in the coordination service: "
                                     "opening it", name)
                            await self.store.complete_topic(info)
                            self._open(info)
                for name in [n for n in broker.metadata.topics if n not in children]:
                    log.warning("topic %s is gone from the coordination service: closing it "
                                "(its data stays on disk)", name)
                    broker.close_topic(name, delete_data=False)
            elif path == znodes.DELETE_TOPICS:
                for name in children:
                    info = broker.metadata.topics.get(name)
                    if info is not None and not info.internal:
                        log.info("deleting topic %s as asked under %s", name, path)
                        await self.store.delete_topic(info)
                        broker.close_topic(name, delete_data=True, token=uuid.uuid4().hex)
                    await self.store.finish_deletion_request(name)
            elif path == znodes.CONFIG_CHANGES:
                for name in sorted(children):
                    if name <= self._config_changes_seen:
                        continue
                    self._config_changes_seen = name
                    topic = await self.store.read_config_change(name)
                    info = broker.metadata.topics.get(topic) if topic else None
                    if info is not None:
                        configs = await self.store.load_topic_config(info.name)
                        if configs != info.configs:
                            info.configs = configs
                            broker.topic_configs_changed(info.name)

    def _check_cluster_id(self, cluster_id: str) -> None:
        """Kafka's meta.properties: a data directory belongs to one cluster; pointing the
        broker at another coordination service must not mix (or delete) its data."""
        path = self.data_dir / "meta.properties"
        if path.exists():
            values = dict(line.split("=", 1) for line in path.read_text().splitlines()
                          if "=" in line and not line.startswith("#"))
            if values.get("cluster.id", cluster_id) != cluster_id:
                raise StartupError(
                    f"the data in {self.data_dir} belongs to cluster {values['cluster.id']}, "
                    f"but the coordination service at {self.config.zookeeper} holds cluster "
                    f"{cluster_id} (Kafka's InconsistentClusterIdException)")
            return
        temp = path.with_suffix(".tmp")
        temp.write_text(f"#zoolog broker\nversion=0\nbroker.id={self.config.settings.broker_id}"
                        f"\ncluster.id={cluster_id}\n")
        temp.replace(path)

    async def stop(self) -> None:
        for task in self._timers:
            task.cancel()
        self.group_runtime.stop()
        self.txn_runtime.stop()
        if self._server is not None:
            self._server.close()
        self.parking.wake_all()
        for connection in list(self.connections):
            connection.close()
        if self.broker is not None:
            self.broker.close()  # flushes every log, checkpoints, clean-shutdown marker
        await self.store.close()
        self.fs.close_all()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    async def crash(self) -> None:
        """Stop without closing anything cleanly (tests: what kill -9 leaves)."""
        for task in self._timers:
            task.cancel()
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.abort()
        await self.store.disconnect()
        self.fs.close_all()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    async def _periodic(self) -> None:
        """Background work, once a second: flush.ms / flush.messages, idle fetch sessions;
        every `retention_check_interval_ms` retention and producer expiry; every
        `cleaner_interval_ms` compaction (in a worker thread); every minute the recovery-point
        and log-start checkpoints (Kafka's log.flush.*.checkpoint.interval.ms)."""
        last_retention = last_clean = last_checkpoint = now_ms()
        while True:
            await asyncio.sleep(1.0)
            broker = self.broker
            if broker is None or broker.logs is None:
                continue
            now = now_ms()
            due = [p for p in broker.partitions.values() if p.log.needs_flush(now)]
            if due:
                self.flusher.flush(due)
            broker.fetch_sessions.expire(now, self.config.settings.fetch_session_idle_ms)
            try:
                if now - last_retention >= self.config.retention_check_interval_ms:
                    last_retention = now
                    for partition in list(broker.partitions.values()):
                        partition.log.apply_retention(now, partition.high_watermark)
                        partition.producers.expire(
                            now, self.config.settings.producer_id_expiration_ms)
                if now - last_clean >= self.config.cleaner_interval_ms:
                    last_clean = now
                    await self._clean(now)
                if now - last_checkpoint >= 60_000:
                    last_checkpoint = now
                    await self.write_checkpoints()
            except OSError as exc:
                log.error("background log work failed: %s", exc)

    async def _clean(self, now: int) -> None:
        """Compact the logs that need it, one at a time, the file work off the loop."""
        broker = self._broker
        assert broker.logs is not None
        for tp, partition_log in broker.logs.logs_needing_cleaning(now):
            partition = broker.partitions.get(tp)
            unstable = partition.producers.first_unstable_offset() if partition else None
            plan = cleaner.plan(partition_log, now, first_unstable_offset=unstable)
            if plan is None:
                continue
            try:
                result = await asyncio.to_thread(cleaner.run, plan)
            except Exception:
                log.exception("compaction of %s-%d failed", *tp)
                cleaner.abandon(partition_log, plan)
                continue
            cleaner.install(partition_log, result, now_ms())

    async def write_checkpoints(self) -> None:
        broker = self._broker
        if broker.logs is None:
            return
        files = broker.logs.checkpoint_files()
        await asyncio.to_thread(write_files, self.fs, files)

    # --- dispatch -----------------------------------------------------------------------

    def dispatch(self, context: RequestContext, request: Any) -> None:
        handler = self.handlers.get(context.slot.api_key)
        if handler is None:
            raise KafkaError(Err.UNSUPPORTED_VERSION, "API not served")
        handler(context, request)

    def _run_async(self, context: RequestContext, work: Awaitable[Any]) -> None:
        """Answer `context` with what `work` returns; the connection waits meanwhile."""
        context.slot.waits = True

        async def run() -> None:
            try:
                response = await work
            except KafkaError as exc:
                response = error_response(context.slot.api_key, request_of(work),
                                          context.version, exc)
            except ZkError as exc:
                log.warning("coordination service error: %s", exc)
                response = error_response(context.slot.api_key, request_of(work),
                                          context.version,
                                          KafkaError(Err.REQUEST_TIMED_OUT,
                                                     f"coordination service: {exc}"))
            except Exception:
                log.exception("request failed")
                response = error_response(context.slot.api_key, request_of(work),
                                          context.version,
                                          KafkaError(Err.UNKNOWN_SERVER_ERROR, "internal error"))
            context.connection.respond(context.slot, response)

        asyncio.get_running_loop().create_task(run())

    def run_async_for(self, context: RequestContext, request: Any,
                      work: Awaitable[Any]) -> None:
        """`_run_async` for a request whose error answer needs the request itself."""
        self._run_async(context, _with_request(work, request))

    @property
    def groups(self) -> GroupCoordinator | None:
        return self.group_runtime.coordinator

    @property
    def _broker(self) -> Broker:
        assert self.broker is not None
        return self.broker

    # --- handlers: cluster --------------------------------------------------------------

    def _api_versions(self, context: RequestContext, request: Any) -> None:
        context.connection.respond(context.slot, api_versions_response())

    def _metadata(self, context: RequestContext, request: Any) -> None:
        broker = self._broker
        missing = cluster_api.topics_to_create(broker, request, context.version)
        if not missing:
            context.connection.respond(context.slot,
                                       cluster_api.metadata(broker, request, context.version))
            return

        async def create_then_answer() -> Any:
            await self._auto_create(missing)
            return cluster_api.metadata(broker, request, context.version)
        self._run_async(context, _with_request(create_then_answer(), request))

    async def _auto_create(self, names: list[str]) -> None:
        for name in names:
            if name in self._broker.metadata.topics:
                continue
            try:
                new = topics_api.new_topic(self._broker, name)
            except KafkaError:
                continue
            try:
                await self._create_topic(new)
            except KafkaError as exc:
                if exc.code != Err.TOPIC_ALREADY_EXISTS:
                    raise

    def _describe_cluster(self, context: RequestContext, request: Any) -> None:
        context.connection.respond(context.slot, cluster_api.describe_cluster(
            self._broker, request, context.version))

    def _find_coordinator(self, context: RequestContext, request: Any) -> None:
        def answer() -> Any:
            return cluster_api.find_coordinator(self._broker, request, context.version)
        if cluster_api.asks_for_transactions(request, context.version):
            self.txn_runtime.find_coordinator_ready(context, request, answer)
            return
        context.connection.respond(context.slot, answer())

    # --- handlers: data -----------------------------------------------------------------

    def _produce(self, context: RequestContext, request: Any) -> None:
        broker = self._broker
        missing = unknown_topics(broker, request)
        if missing and broker.settings.auto_create_topics_enable:
            async def create_then_produce() -> Any:
                await self._auto_create(missing)
                result = produce(broker, request, context.version, now_ms())
                if result.flush:
                    await self.flusher.flush(result.flush)
                return result.response
            self._run_async(context, _with_request(create_then_produce(), request))
            return
        result = produce(broker, request, context.version, now_ms())
        if not result.flush:
            context.connection.respond(context.slot, result.response)
            return
        future = self.flusher.flush(result.flush)
        slot = context.slot

        def done(f: asyncio.Future[None]) -> None:
            if f.exception() is not None:
                exc = f.exception()
                assert isinstance(exc, KafkaError)
                context.connection.respond(slot, error_response(0, request, context.version, exc))
            else:
                context.connection.respond(slot, result.response)
        future.add_done_callback(done)

    def produce_without_response(self, connection: KafkaConnection, request: Any,
                                 version: int) -> None:
        """acks=0: no response; a failed append closes the connection (Kafka's signal)."""
        broker = self._broker
        if unknown_topics(broker, request) and broker.settings.auto_create_topics_enable:
            connection.muted = True

            async def create_then_produce() -> None:
                await self._auto_create(unknown_topics(broker, request))
                result = produce(broker, request, version, now_ms())
                connection.muted = False
                if result.failed:
                    connection.close()
                else:
                    connection._drain_queue()
            asyncio.get_running_loop().create_task(create_then_produce())
            return
        try:
            result = produce(broker, request, version, now_ms())
        except Exception:
            log.exception("acks=0 produce failed")
            connection.close()
            return
        if result.failed:
            connection.close()

    def _fetch(self, context: RequestContext, request: Any) -> None:
        operation = FetchOperation(self._broker, request, context.version, now_ms())
        response = operation.evaluate(now_ms())
        if response is not None:
            context.connection.respond(context.slot, response)
            return
        context.slot.waits = True
        self.parking.park(context, operation)

    def _list_offsets(self, context: RequestContext, request: Any) -> None:
        context.connection.respond(context.slot, offsets_api.list_offsets(
            self._broker, request, context.version, now_ms()))

    def _offset_for_leader_epoch(self, context: RequestContext, request: Any) -> None:
        context.connection.respond(context.slot, offsets_api.offset_for_leader_epoch(
            self._broker, request, context.version))

    def _delete_records(self, context: RequestContext, request: Any) -> None:
        response, changed = offsets_api.delete_records(self._broker, request, now_ms())
        if not changed:
            context.connection.respond(context.slot, response)
            return

        async def checkpoint() -> Any:
            await self.flusher.flush(changed)
            await self.write_checkpoints()  # the new log start survives a crash
            return response
        self._run_async(context, _with_request(checkpoint(), request))

    # --- handlers: producers ------------------------------------------------------------

    def _init_producer_id(self, context: RequestContext, request: Any) -> None:
        if request.transactional_id is not None:
            self.txn_runtime.init_producer_id(context, request)
            return
        response = producers_api.init_producer_id(self._broker, request)
        if response is not None:
            context.connection.respond(context.slot, response)
            if self._broker.producer_ids.remaining < 100:
                self._start_pid_refill()
            return

        async def refill_then_answer() -> Any:
            await self._refill_producer_ids()
            answer = producers_api.init_producer_id(self._broker, request)
            if answer is None:
                raise KafkaError(Err.COORDINATOR_NOT_AVAILABLE, "no producer ids left")
            return answer
        self._run_async(context, _with_request(refill_then_answer(), request))

    def _start_pid_refill(self) -> None:
        if self._pid_refill is None or self._pid_refill.done():
            self._pid_refill = asyncio.get_running_loop().create_task(
                self._refill_producer_ids())

    async def _refill_producer_ids(self) -> None:
        block = self._broker.producer_ids
        if block.remaining >= 100:
            return
        start, end = await self.store.reserve_producer_ids()
        if block.remaining == 0:
            block.next_id, block.end = start, end
        else:  # keep the rest of the old block, then continue with the new one
            block.end = end if start == block.end + 1 else block.end

    def _describe_producers(self, context: RequestContext, request: Any) -> None:
        context.connection.respond(context.slot,
                                   producers_api.describe_producers(self._broker, request))

    # --- handlers: topics and configs ---------------------------------------------------

    async def _create_topic(self, new: topics_api.NewTopic) -> TopicInfo:
        broker = self._broker
        async with self._admin_lock:
            if new.name in broker.metadata.topics:
                raise KafkaError(Err.TOPIC_ALREADY_EXISTS, f"Topic '{new.name}' already exists.")
            try:
                info = await self.store.create_topic(new)
            except ZkError as exc:
                if exc.code == Code.NODEEXISTS:
                    loaded = await self.store.load_topic(new.name)
                    if loaded is not None:
                        self._open(loaded)
                    raise KafkaError(Err.TOPIC_ALREADY_EXISTS,
                                     f"Topic '{new.name}' already exists.") from exc
                raise
            self._open(info)
            return info

    def _open(self, info: TopicInfo) -> None:
        for partition in self._broker.open_topic(info, now_ms()):
            partition.on_append = self.parking.appended

    def _create_topics(self, context: RequestContext, request: Any) -> None:
        broker = self._broker
        plan = topics_api.plan_create_topics(broker, request)

        async def create() -> Any:
            outcomes: dict[str, KafkaError | None] = {}
            if not plan.validate_only:
                for new in plan.create:
                    try:
                        await self._create_topic(new)
                        outcomes[new.name] = None
                    except KafkaError as exc:
                        outcomes[new.name] = exc
            return topics_api.create_topics_response(broker, request, plan, outcomes)
        self._run_async(context, _with_request(create(), request))

    def _delete_topics(self, context: RequestContext, request: Any) -> None:
        broker = self._broker
        plan = topics_api.plan_delete_topics(broker, request, context.version)

        async def delete() -> Any:
            outcomes: dict[str, KafkaError | None] = {}
            for info in plan.delete:
                async with self._admin_lock:
                    try:
                        await self.store.delete_topic(info)
                    except ZkError as exc:
                        outcomes[info.name] = KafkaError(Err.UNKNOWN_SERVER_ERROR, str(exc))
                        continue
                    broker.close_topic(info.name, delete_data=True, token=uuid.uuid4().hex)
                    outcomes[info.name] = None
            return topics_api.delete_topics_response(plan, outcomes)
        self._run_async(context, _with_request(delete(), request))

    def _create_partitions(self, context: RequestContext, request: Any) -> None:
        broker = self._broker
        plan = topics_api.plan_create_partitions(broker, request)

        async def grow() -> Any:
            outcomes: dict[str, KafkaError | None] = {}
            if not plan.validate_only:
                for info, added in plan.grow:
                    async with self._admin_lock:
                        try:
                            grown = await self.store.add_partitions(info, added)
                        except ZkError as exc:
                            outcomes[info.name] = KafkaError(Err.UNKNOWN_SERVER_ERROR, str(exc))
                            continue
                        self._open(grown)
                        outcomes[info.name] = None
            return topics_api.create_partitions_response(request, plan, outcomes)
        self._run_async(context, _with_request(grow(), request))

    def _describe_configs(self, context: RequestContext, request: Any) -> None:
        context.connection.respond(context.slot, configs_api.describe_configs(
            self._broker, request, context.version))

    def _alter_configs(self, context: RequestContext, request: Any) -> None:
        broker = self._broker
        if context.slot.api_key == 33:
            plan = configs_api.plan_alter_configs(broker, request)
        else:
            plan = configs_api.plan_incremental_alter_configs(broker, request)

        async def alter() -> Any:
            outcomes: dict[str, KafkaError | None] = {}
            if not plan.validate_only:
                for topic, configs in plan.changes.items():
                    async with self._admin_lock:
                        try:
                            await self.store.set_topic_config(topic, configs)
                        except ZkError as exc:
                            outcomes[topic] = KafkaError(Err.UNKNOWN_SERVER_ERROR, str(exc))
                            continue
                        info = broker.metadata.topics.get(topic)
                        if info is not None:
                            info.configs = dict(configs)
                            broker.topic_configs_changed(topic)
                        outcomes[topic] = None
            return configs_api.alter_configs_response(request, plan, outcomes)
        self._run_async(context, _with_request(alter(), request))


class _WithRequest:
    """An awaitable that remembers the request it answers (for error responses)."""

    def __init__(self, work: Awaitable[Any], request: Any) -> None:
        self.work = work
        self.request = request

    def __await__(self) -> Any:
        return self.work.__await__()


def _with_request(work: Awaitable[Any], request: Any) -> _WithRequest:
    return _WithRequest(work, request)


def request_of(work: Awaitable[Any]) -> Any:
    return work.request if isinstance(work, _WithRequest) else None


async def serve_forever(node: KafkaNode, stop: asyncio.Event) -> None:
    await node.start()
    try:
        await stop.wait()
    finally:
        with contextlib.suppress(Exception):
            await node.stop()
