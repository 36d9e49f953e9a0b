"""The cluster as the client sees it: bootstrap, a connection per broker (and per lane),
metadata, and where each request goes; the retry loop every retried request runs in.

Owns `Cluster`, the base of `KafkaClient`: its settings and state (connections, brokers,
topics, group and transaction coordinators, cached by key type and key), `_call` (send one
request to one broker in the negotiated version), `_retrying` (backoff on retriable errors
and lost connections, bounded by `retry_timeout_ms`), Metadata and topic lookup, partition
leaders, FindCoordinator (for group ids and transactional ids) and `_with_coordinator`.
Never: build or read the requests of other APIs (each API's module does), retry anything
not safe to send twice (callers choose `_retrying`), decide for a caller what a missing
topic means beyond raising UNKNOWN_TOPIC_OR_PARTITION.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from zoolog.protocol.kafka._generated._runtime import Message
from zoolog.protocol.kafka._generated.find_coordinator import (
    FindCoordinatorRequest,
    FindCoordinatorResponse,
)
from zoolog.protocol.kafka._generated.metadata import MetadataRequest, MetadataResponse
from zoolog.protocol.kafka.errors import Err

from .connection import _Connection
from .errors import _COORDINATOR_ERRORS, KafkaConnectionError, KafkaResponseError, _check
from .limits import (
    CONNECT_TIMEOUT_MS_DEFAULT,
    REQUEST_TIMEOUT_MS_DEFAULT,
    RESPONSE_BYTES_MAX_DEFAULT,
    RETRY_BACKOFF_MS_MAX,
    RETRY_BACKOFF_MS_MIN,
    RETRY_TIMEOUT_MS_DEFAULT,
)
from .values import BrokerInfo, ClusterMetadata, PartitionInfo, TopicInfo, TopicPartition
from .versions import _FIND_COORDINATOR, _METADATA, CLIENT_VERSIONS

T = TypeVar("T")

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
KEY_TYPE_GROUP = 0
"""FindCoordinator key types: a group id, or (v1+) a transactional id."""
KEY_TYPE_TRANSACTION = 1


def default_bootstrap() -> str:
    """`ZOOLOG_BROKERS`, else `KAFKA_BOOTSTRAP_SERVERS`, else 127.0.0.1:9092."""
    return (os.environ.get("ZOOLOG_BROKERS") or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
            or DEFAULT_BOOTSTRAP)


class Cluster:
    """Connections, metadata and routing: the part of `KafkaClient` every API shares (see
    the package docstring). Not used on its own: create a `KafkaClient`."""

    def __init__(self, bootstrap: str, *, client_id: str = "zoolog",
                 request_timeout_ms: int = REQUEST_TIMEOUT_MS_DEFAULT,
                 connect_timeout_ms: int = CONNECT_TIMEOUT_MS_DEFAULT,
                 retry_timeout_ms: int = RETRY_TIMEOUT_MS_DEFAULT,
                 response_bytes_max: int = RESPONSE_BYTES_MAX_DEFAULT,
                 versions: Mapping[int, tuple[int, int]] | None = None) -> None:
        self.bootstrap = [_parse_address(item) for item in bootstrap.split(",") if item.strip()]
        if not self.bootstrap:
            raise ValueError("no bootstrap address given")
        self.client_id = client_id
        self.request_timeout_ms = request_timeout_ms
        self.connect_timeout_ms = connect_timeout_ms
        self.retry_timeout_ms = retry_timeout_ms
        self.response_bytes_max = response_bytes_max
        self.versions = dict(CLIENT_VERSIONS)
        self.versions.update(versions or {})
        self.brokers: dict[int, BrokerInfo] = {}
        self.cluster_id: str | None = None
        self.controller_id = -1
        self._topics: dict[str, TopicInfo] = {}
        self._topic_errors: dict[str, KafkaResponseError] = {}
        self._coordinators: dict[tuple[int, str], int] = {}
        """(key type, group or transactional id) -> its coordinator's node id."""
        self._connections: dict[tuple[int, str], _Connection] = {}
        self._opening: dict[tuple[int, str], asyncio.Task[_Connection]] = {}
        self._bootstrap_node: int | None = None
        # the producer's: round robin for records without a key, and the lock that
        # makes concurrent `produce` calls write their requests in call order
        self._round_robin: dict[str, int] = defaultdict(int)
        self._produce_order = asyncio.Lock()
        self._closed = False

    async def close(self) -> None:
        self._closed = True
        for task in self._opening.values():
            task.cancel()
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()
        await asyncio.sleep(0)  # let the transports finish closing

    # --- connections and versions ----------------------------------------------------------

    async def _connection(self, node_id: int, lane: str = "") -> _Connection:
        key = (node_id, lane)
        connection = self._connections.get(key)
        if connection is not None and connection.usable:
            return connection
        task = self._opening.get(key)
        if task is None:
            task = asyncio.ensure_future(self._open(node_id, lane))
            self._opening[key] = task
            task.add_done_callback(lambda _t: self._opening.pop(key, None))
        return await asyncio.shield(task)

    def _address(self, node_id: int) -> tuple[str, int]:
        if node_id < 0:
            return self.bootstrap[-node_id - 1]
        broker = self.brokers.get(node_id)
        if broker is None:
            raise KafkaConnectionError(f"broker {node_id} is not in the cluster metadata")
        return broker.host, broker.port

    async def _open(self, node_id: int, lane: str) -> _Connection:
        if self._closed:
            raise KafkaConnectionError("client closed")
        host, port = self._address(node_id)
        name = f"broker {node_id} ({host}:{port})" if node_id >= 0 else f"{host}:{port}"
        loop = asyncio.get_running_loop()
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Connection(name, self.client_id, self.response_bytes_max),
                    host, port),
                self.connect_timeout_ms / 1000)
        except (TimeoutError, OSError) as exc:
            raise KafkaConnectionError(f"cannot connect to {name}: {exc or 'timed out'}"
                                       ) from exc
        try:
            connection.api_versions = await connection.negotiate(
                self.versions, self.request_timeout_ms)
        except BaseException:
            connection.close()
            raise
        old = self._connections.get((node_id, lane))
        if old is not None:
            old.close()
        self._connections[(node_id, lane)] = connection
        return connection

    async def api_versions(self, node_id: int | None = None) -> dict[int, tuple[int, int]]:
        """What a broker (default: any) said it supports: api_key -> (min, max)."""
        connection = await self._connection(await self._any_node() if node_id is None
                                            else node_id)
        return dict(connection.api_versions)

    async def negotiated_version(self, api_key: int, node_id: int | None = None) -> int:
        """The version requests of `api_key` to that broker go out in."""
        connection = await self._connection(await self._any_node() if node_id is None
                                            else node_id)
        return connection.version(api_key, self.versions, None)

    async def _call(self, node_id: int, api_key: int, build: Callable[[int], Message],
                    response_cls: type[Any], *, lane: str = "", timeout_ms: int | None = None,
                    max_version: int | None = None, expect_response: bool = True
                    ) -> tuple[Any, int]:
        """Send `build(version)` to a broker; (its decoded response, version)."""
        connection = await self._connection(node_id, lane)
        version = connection.version(api_key, self.versions, max_version)
        future = connection.send(api_key, version, build(version), response_cls,
                                 expect_response)
        response = await connection.wait(future, timeout_ms if timeout_ms is not None
                                         else self.request_timeout_ms)
        return response, version

    async def _retrying(self, op: Callable[[], Awaitable[T]], *,
                        on_retry: Callable[[], None] | None = None) -> T:
        """Run `op`, again after a backoff on retriable errors, until `retry_timeout_ms`."""
        deadline = time.monotonic() + self.retry_timeout_ms / 1000
        backoff_ms = RETRY_BACKOFF_MS_MIN
        while True:
            try:
                return await op()
            except KafkaResponseError as exc:
                if not exc.retriable or time.monotonic() + backoff_ms / 1000 > deadline:
                    raise
            except KafkaConnectionError:
                if self._closed or time.monotonic() + backoff_ms / 1000 > deadline:
                    raise
            if on_retry is not None:
                on_retry()
            await asyncio.sleep(backoff_ms / 1000)
            backoff_ms = min(backoff_ms * 2, RETRY_BACKOFF_MS_MAX)

    async def _any_node(self) -> int:
        """A broker for requests any of them can answer: the one we bootstrapped from while
        its connection lives, else the lowest live node id."""
        if self._bootstrap_node is not None:
            connection = self._connections.get((self._bootstrap_node, ""))
            if connection is not None and connection.usable:
                return self._bootstrap_node
        for key, connection in sorted(self._connections.items()):
            if connection.usable and key[1] == "":
                return key[0]
        if self.brokers:
            return min(self.brokers)
        return await self._bootstrap_connect()

    async def _bootstrap_connect(self) -> int:
        errors = []
        for index in range(len(self.bootstrap)):
            node = -index - 1
            try:
                await self._connection(node)
            except KafkaConnectionError as exc:
                errors.append(str(exc))
                continue
            self._bootstrap_node = node
            return node
        raise KafkaConnectionError("no bootstrap broker reachable: " + "; ".join(errors))

    # --- metadata --------------------------------------------------------------------------

    async def refresh_metadata(self, topics: Sequence[str] | None = None, *,
                               auto_create: bool = False) -> ClusterMetadata:
        """Read Metadata for `topics` (None: every topic; []: brokers only) and remember
        what it says. Topic errors are left in each TopicInfo's partitions/absence; see
        `topic()` for a checked lookup."""
        async def once() -> ClusterMetadata:
            node = await self._any_node()

            def build(version: int) -> MetadataRequest:
                request = MetadataRequest(
                    topics=[MetadataRequest.MetadataRequestTopic(name=name)
                            for name in topics or []],
                    allow_auto_topic_creation=auto_create)
                if topics is None:
                    request.topics = None
                return request
            response, _ = await self._call(node, _METADATA, build, MetadataResponse)
            return self._absorb_metadata(response)
        return await self._retrying(once)

    def _absorb_metadata(self, response: MetadataResponse) -> ClusterMetadata:
        brokers = {b.node_id: BrokerInfo(b.node_id, b.host, b.port, b.rack)
                   for b in response.brokers}
        if brokers:
            self.brokers = brokers
        self.cluster_id = response.cluster_id
        self.controller_id = response.controller_id
        topics: dict[str, TopicInfo] = {}
        for t in response.topics:
            if t.name is None:
                continue
            if t.error_code not in (Err.NONE, Err.LEADER_NOT_AVAILABLE):
                self._topic_errors[t.name] = KafkaResponseError(
                    t.error_code, context=f"topic {t.name!r}")
                self._topics.pop(t.name, None)
                continue
            partitions = {p.partition_index: PartitionInfo(
                p.partition_index, p.leader_id, p.leader_epoch, tuple(p.replica_nodes),
                tuple(p.isr_nodes), tuple(p.offline_replicas), p.error_code)
                for p in t.partitions}
            info = TopicInfo(t.name, t.topic_id, t.is_internal, partitions)
            topics[t.name] = info
            self._topics[t.name] = info
            self._topic_errors.pop(t.name, None)
        return ClusterMetadata(response.cluster_id, response.controller_id, dict(self.brokers),
                               topics)

    async def topic(self, name: str, *, refresh: bool = False,
                    auto_create: bool = False) -> TopicInfo:
        """The topic's metadata, every partition with a leader (waits, bounded by
        `retry_timeout_ms`, while one is being elected); UNKNOWN_TOPIC_OR_PARTITION if the
        topic does not exist (with `auto_create`, Metadata asks the broker to create it,
        which it does if `auto.create.topics.enable` is on)."""
        if not refresh:
            info = self._topics.get(name)
            if info is not None and info.partitions and all(
                    p.leader >= 0 for p in info.partitions.values()):
                return info

        async def once() -> TopicInfo:
            await self.refresh_metadata([name], auto_create=auto_create)
            error = self._topic_errors.get(name)
            if error is not None:
                if error.code == Err.UNKNOWN_TOPIC_OR_PARTITION:
                    raise KafkaResponseError(Err.UNKNOWN_TOPIC_OR_PARTITION,
                                             "the topic does not exist", f"topic {name!r}")
                raise error
            info = self._topics.get(name)
            if info is None:
                raise KafkaResponseError(Err.UNKNOWN_TOPIC_OR_PARTITION,
                                         "the topic does not exist", f"topic {name!r}")
            if not info.partitions or any(p.leader < 0 for p in info.partitions.values()):
                raise KafkaResponseError(Err.LEADER_NOT_AVAILABLE, "no leader yet",
                                         f"topic {name!r}")
            return info

        async def guarded() -> TopicInfo:
            try:
                return await once()
            except KafkaResponseError as exc:
                if exc.code == Err.UNKNOWN_TOPIC_OR_PARTITION:
                    raise _Fatal(exc) from exc  # do not retry a missing topic
                raise
        try:
            return await self._retrying(guarded)
        except _Fatal as fatal:
            raise fatal.error from None

    async def _partitions_of(self, topic: str, partitions: Iterable[int] | None) -> list[int]:
        """`partitions` of `topic` sorted (default: all of them); ValueError for one the
        topic does not have."""
        info = await self.topic(topic)
        wanted = sorted(info.partitions) if partitions is None else sorted(set(partitions))
        for p in wanted:
            if p not in info.partitions:
                raise ValueError(f"topic {topic!r} has no partition {p} "
                                 f"(it has {len(info.partitions)})")
        return wanted

    async def list_topics(self, *, internal: bool = False) -> list[TopicInfo]:
        metadata = await self.refresh_metadata(None)
        return sorted((t for t in metadata.topics.values() if internal or not t.is_internal),
                      key=lambda t: t.name)

    async def _leader(self, tp: TopicPartition) -> int:
        info = await self.topic(tp.topic)
        partition = info.partitions.get(tp.partition)
        if partition is None:
            raise ValueError(f"topic {tp.topic!r} has no partition {tp.partition} "
                             f"(it has {len(info.partitions)})")
        return partition.leader

    def _forget_topics(self, names: Iterable[str]) -> None:
        for name in names:
            self._topics.pop(name, None)

    # --- group and transaction coordinators -------------------------------------------------

    async def find_coordinator(self, key: str, *, key_type: int = KEY_TYPE_GROUP,
                               refresh: bool = False) -> BrokerInfo:
        """The broker coordinating `key`: a group id (KEY_TYPE_GROUP) or a transactional id
        (KEY_TYPE_TRANSACTION)."""
        cached = (key_type, key)
        if not refresh and cached in self._coordinators:
            node = self._coordinators[cached]
            if node in self.brokers:
                return self.brokers[node]
        context = _coordinator_context(key, key_type)

        async def once() -> BrokerInfo:
            def build(version: int) -> FindCoordinatorRequest:
                if version >= 4:
                    return FindCoordinatorRequest(key_type=key_type, coordinator_keys=[key])
                if version < 1 and key_type != KEY_TYPE_GROUP:
                    raise KafkaResponseError(Err.UNSUPPORTED_VERSION, "the broker finds only "
                                             "group coordinators (FindCoordinator v0)", context)
                return FindCoordinatorRequest(key=key, key_type=key_type)
            response, version = await self._call(await self._any_node(), _FIND_COORDINATOR,
                                                 build, FindCoordinatorResponse)
            if version >= 4:
                found = response.coordinators[0]
                code, message = found.error_code, found.error_message
                node_id, host, port = found.node_id, found.host, found.port
            else:
                code, message = response.error_code, response.error_message
                node_id, host, port = response.node_id, response.host, response.port
            _check(code, message, context)
            broker = BrokerInfo(node_id, host, port, self.brokers.get(node_id, BrokerInfo(
                node_id, host, port)).rack)
            self.brokers[node_id] = broker
            self._coordinators[cached] = node_id
            return broker
        return await self._retrying(once)

    async def _with_coordinator(self, key: str, op: Callable[[int], Awaitable[T]], *,
                                key_type: int = KEY_TYPE_GROUP) -> T:
        """Run `op(coordinator node id)`, finding the coordinator again on NOT_COORDINATOR
        and the like."""
        refresh = False

        async def once() -> T:
            nonlocal refresh
            broker = await self.find_coordinator(key, key_type=key_type, refresh=refresh)
            refresh = False
            try:
                return await op(broker.node_id)
            except (KafkaResponseError, KafkaConnectionError) as exc:
                if isinstance(exc, KafkaConnectionError) or exc.code in _COORDINATOR_ERRORS:
                    refresh = True
                raise
        return await self._retrying(once)

    def _close_lane(self, lane: str) -> None:
        for key in [k for k in self._connections if k[1] == lane]:
            self._connections.pop(key).close()


class _Fatal(Exception):
    """Carries an error past `_retrying` (which would retry it)."""

    def __init__(self, error: KafkaResponseError) -> None:
        super().__init__(str(error))
        self.error = error


def _coordinator_context(key: str, key_type: int) -> str:
    return f"transactional id {key!r}" if key_type == KEY_TYPE_TRANSACTION else f"group {key!r}"


def _parse_address(text: str) -> tuple[str, int]:
    text = text.strip()
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, 9092
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return host or "127.0.0.1", int(port)
    except ValueError:
        raise ValueError(f"bad broker address {text!r}: expected host:port") from None
