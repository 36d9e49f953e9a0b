"""An asyncio Kafka client over the generated codecs: admin, produce, fetch, offsets, groups.

It speaks the real wire protocol and assumes nothing zoolog-only, so the same calls work
against Apache Kafka and other Kafka-protocol brokers. `zoolog topic` and `zoolog group` are
built on it; tests use it to drive the broker directly.

Connections. One connection per broker, plus one to the group coordinator for offset
requests and one per group member: a broker answers a connection's requests one at a time,
so a JoinGroup parked until a rebalance completes, or a fetch parked for `max_wait_ms`, must
not hold up another member's heartbeats. Requests are pipelined and answers matched by
correlation id; concurrent `produce` calls write their requests in call order. Every new
connection first sends ApiVersions (our highest version; a broker that does not know it
answers UNSUPPORTED_VERSION in v0 with the range it does know, and we ask again in that
range, KIP-511); each request then goes out in min(our max, the broker's max) and fails with
UNSUPPORTED_VERSION when the two ranges do not meet. `CLIENT_VERSIONS` lists our ranges.

Routing. `KafkaClient.connect("h1:9092,h2:9092")` tries the bootstrap addresses in order and
reads Metadata; produce, fetch and list-offsets go to each partition's leader, group requests
to the coordinator FindCoordinator names, CreateTopics/DeleteTopics to the controller, the
rest to any broker.

Errors:

    KafkaError (zoolog.protocol.kafka.errors)   an error code and Kafka's name for it
     └── KafkaResponseError   a broker answered error_code != 0: `.code`, `.name`, `.message`,
                              `.retriable`; the topic/partition/group it concerns is in the text
    ConnectionError
     └── KafkaConnectionError no bootstrap broker reachable, or a connection dropped
          └── KafkaTimeoutError   no answer within the request timeout
    ValueError                a caller's mistake (a partition the topic does not have, ...)

Failure model. A connection that drops fails every request pending on it with
KafkaConnectionError and is opened again by the next request to that broker. Requests that
may safely be sent twice are retried on retriable error codes and lost connections (with
exponential backoff, for up to `retry_timeout_ms`), refreshing metadata or finding the
coordinator again in between: Metadata, Fetch, ListOffsets, FindCoordinator, DescribeConfigs,
DescribeGroups, ListGroups, OffsetFetch, OffsetCommit and the group membership requests
(which fail over to a new coordinator). Produce is retried only on retriable error codes
(the batch was not written); a connection lost after a Produce was sent raises, since the
batch may or may not be in the log. A retried batch may land after later batches of the same
partition (as with the Java producer without idempotence). CreateTopics, DeleteTopics and
IncrementalAlterConfigs are not retried; DeleteGroups is, like the group requests (so a
retry after a lost answer may report GROUP_ID_NOT_FOUND). An unreachable bootstrap list
fails `connect` at once.

What it does not do: idempotent or transactional produce, fetch sessions (every fetch is a
full fetch), SASL/TLS, consumer-group protocols other than the classic one with the eager
"range" assignor, static membership beyond passing `group_instance_id` through, follower
fetching, batching across `produce` calls (each call sends what it is given), automatic
offset reset (OFFSET_OUT_OF_RANGE is reported per partition; the caller decides).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import os
import struct
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

from zoolog.errors import KafkaDecodeError
from zoolog.protocol.kafka import record_batch as rb
from zoolog.protocol.kafka._generated import API_NAMES
from zoolog.protocol.kafka._generated._runtime import Message
from zoolog.protocol.kafka._generated.api_versions import (
    ApiVersionsRequest,
    ApiVersionsResponse,
)
from zoolog.protocol.kafka._generated.consumer_protocol import (
    ConsumerProtocolAssignment,
    ConsumerProtocolSubscription,
)
from zoolog.protocol.kafka._generated.create_topics import (
    CreateTopicsRequest,
    CreateTopicsResponse,
)
from zoolog.protocol.kafka._generated.delete_groups import (
    DeleteGroupsRequest,
    DeleteGroupsResponse,
)
from zoolog.protocol.kafka._generated.delete_topics import (
    DeleteTopicsRequest,
    DeleteTopicsResponse,
)
from zoolog.protocol.kafka._generated.describe_configs import (
    DescribeConfigsRequest,
    DescribeConfigsResponse,
)
from zoolog.protocol.kafka._generated.describe_groups import (
    DescribeGroupsRequest,
    DescribeGroupsResponse,
)
from zoolog.protocol.kafka._generated.fetch import FetchRequest, FetchResponse
from zoolog.protocol.kafka._generated.find_coordinator import (
    FindCoordinatorRequest,
    FindCoordinatorResponse,
)
from zoolog.protocol.kafka._generated.headers import RequestHeader, ResponseHeader
from zoolog.protocol.kafka._generated.heartbeat import HeartbeatRequest, HeartbeatResponse
from zoolog.protocol.kafka._generated.incremental_alter_configs import (
    IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
)
from zoolog.protocol.kafka._generated.join_group import JoinGroupRequest, JoinGroupResponse
from zoolog.protocol.kafka._generated.leave_group import LeaveGroupRequest, LeaveGroupResponse
from zoolog.protocol.kafka._generated.list_groups import ListGroupsRequest, ListGroupsResponse
from zoolog.protocol.kafka._generated.list_offsets import (
    ListOffsetsRequest,
    ListOffsetsResponse,
)
from zoolog.protocol.kafka._generated.metadata import MetadataRequest, MetadataResponse
from zoolog.protocol.kafka._generated.offset_commit import (
    OffsetCommitRequest,
    OffsetCommitResponse,
)
from zoolog.protocol.kafka._generated.offset_fetch import (
    OffsetFetchRequest,
    OffsetFetchResponse,
)
from zoolog.protocol.kafka._generated.produce import ProduceRequest, ProduceResponse
from zoolog.protocol.kafka._generated.sync_group import SyncGroupRequest, SyncGroupResponse
from zoolog.protocol.kafka.codec import request_header_version, response_header_version
from zoolog.protocol.kafka.errors import NAMES, RETRIABLE, Err, KafkaError

__all__ = [
    "CLIENT_VERSIONS",
    "EARLIEST",
    "LATEST",
    "READ_COMMITTED",
    "READ_UNCOMMITTED",
    "BrokerInfo",
    "ClusterMetadata",
    "ConfigEntry",
    "ConsumerRecord",
    "CreatedTopic",
    "FetchedPartition",
    "GroupConsumer",
    "GroupDescription",
    "GroupMember",
    "KafkaClient",
    "KafkaConnectionError",
    "KafkaResponseError",
    "KafkaTimeoutError",
    "ListedGroup",
    "OffsetAndTimestamp",
    "PartitionInfo",
    "ProducerRecord",
    "RecordMetadata",
    "TopicInfo",
    "TopicPartition",
    "decode_assignment",
    "decode_subscription",
    "default_bootstrap",
    "default_partition",
    "encode_assignment",
    "encode_subscription",
    "murmur2",
    "range_assign",
    "topic_id_text",
]

T = TypeVar("T")

# --- limits and defaults (units last) -----------------------------------------------------

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
REQUEST_TIMEOUT_MS_DEFAULT = 30_000
CONNECT_TIMEOUT_MS_DEFAULT = 10_000
RETRY_TIMEOUT_MS_DEFAULT = 20_000
"""How long a retried request keeps trying (leader moves, coordinator loading, lost links)."""
RETRY_BACKOFF_MS_MIN = 50
RETRY_BACKOFF_MS_MAX = 1_000
RESPONSE_BYTES_MAX_DEFAULT = 256 * 1024 * 1024
"""A response frame announcing more than this closes the connection (a broken peer)."""
DECOMPRESSED_BYTES_MAX = 128 * 1024 * 1024
"""The most one fetched batch may decompress to."""
BATCH_BYTES_MAX_DEFAULT = 900 * 1024
"""Records per produced batch are cut at about this many bytes (Kafka's message.max.bytes is
1 MiB by default, and each partition of a Produce request carries exactly one batch)."""
FETCH_MAX_BYTES_DEFAULT = 50 * 1024 * 1024
PARTITION_FETCH_MAX_BYTES_DEFAULT = 1024 * 1024
SESSION_TIMEOUT_MS_DEFAULT = 45_000
REBALANCE_TIMEOUT_MS_DEFAULT = 60_000
HEARTBEAT_INTERVAL_MS_DEFAULT = 3_000

EARLIEST = -2
"""ListOffsets timestamp for the log start offset."""
LATEST = -1
"""ListOffsets timestamp for the log end offset (the last stable offset in read_committed)."""
READ_UNCOMMITTED = 0
READ_COMMITTED = 1

CONSUMER_PROTOCOL_TYPE = "consumer"
RANGE_ASSIGNOR = "range"

CLIENT_VERSIONS: dict[int, tuple[int, int]] = {
    0: (3, 11),    # Produce: magic-2 record batches from v3
    1: (4, 13),    # Fetch: v13 names topics by id
    2: (1, 7),     # ListOffsets: timestamps from v1
    3: (1, 12),    # Metadata: null topics = all from v1
    8: (2, 9),     # OffsetCommit
    9: (1, 9),     # OffsetFetch: groups array from v8
    10: (0, 4),    # FindCoordinator: coordinator_keys from v4
    11: (0, 9),    # JoinGroup: MEMBER_ID_REQUIRED from v4
    12: (0, 4),    # Heartbeat
    13: (0, 5),    # LeaveGroup: members array from v3
    14: (0, 5),    # SyncGroup
    15: (0, 5),    # DescribeGroups
    16: (0, 5),    # ListGroups
    18: (0, 4),    # ApiVersions
    19: (2, 7),    # CreateTopics
    20: (1, 6),    # DeleteTopics: topics array from v6
    32: (1, 4),    # DescribeConfigs: config_source from v1
    42: (0, 2),    # DeleteGroups
    44: (0, 1),    # IncrementalAlterConfigs
}
"""api_key -> (lowest, highest) version this client speaks."""

_API_VERSIONS = 18
_PRODUCE = 0
_FETCH = 1
_LIST_OFFSETS = 2
_METADATA = 3
_OFFSET_COMMIT = 8
_OFFSET_FETCH = 9
_FIND_COORDINATOR = 10
_JOIN_GROUP = 11
_HEARTBEAT = 12
_LEAVE_GROUP = 13
_SYNC_GROUP = 14
_DESCRIBE_GROUPS = 15
_LIST_GROUPS = 16
_CREATE_TOPICS = 19
_DELETE_TOPICS = 20
_DESCRIBE_CONFIGS = 32
_DELETE_GROUPS = 42
_INCREMENTAL_ALTER_CONFIGS = 44

_RESOURCE_TOPIC = 2
_CONFIG_SET = 0
_CONFIG_DELETE = 1
CONFIG_SOURCES = {0: "UNKNOWN", 1: "DYNAMIC_TOPIC_CONFIG", 2: "DYNAMIC_BROKER_CONFIG",
                  3: "DYNAMIC_DEFAULT_BROKER_CONFIG", 4: "STATIC_BROKER_CONFIG",
                  5: "DEFAULT_CONFIG", 6: "DYNAMIC_BROKER_LOGGER_CONFIG",
                  7: "CLIENT_METRICS_CONFIG", 8: "GROUP_CONFIG"}

_MEMBER_LANES = itertools.count(1)
_COORDINATOR_ERRORS = frozenset({Err.NOT_COORDINATOR, Err.COORDINATOR_NOT_AVAILABLE,
                                 Err.COORDINATOR_LOAD_IN_PROGRESS})
_SIZE = struct.Struct(">i")
_INT16 = struct.Struct(">h")
_ZERO_UUID = bytes(16)


# --- errors -------------------------------------------------------------------------------


class KafkaResponseError(KafkaError):
    """A broker answered with error code `code` (see the module docstring)."""

    def __init__(self, code: int, message: str = "", context: str = "") -> None:
        detail = ": ".join(part for part in (context, message) if part)
        super().__init__(code, detail)
        self.context = context

    @property
    def name(self) -> str:
        return NAMES.get(self.code, f"UNKNOWN_ERROR_{self.code}")

    @property
    def retriable(self) -> bool:
        return self.code in RETRIABLE


class KafkaConnectionError(ConnectionError):
    """No broker could be reached, or the connection to one dropped."""


class KafkaTimeoutError(KafkaConnectionError, TimeoutError):
    """A broker did not answer within the request timeout (its connection is closed)."""


def _check(code: int, message: str | None = None, context: str = "") -> None:
    if code != Err.NONE:
        raise KafkaResponseError(code, message or "", context)


# --- values -------------------------------------------------------------------------------


class TopicPartition(NamedTuple):
    topic: str
    partition: int


class BrokerInfo(NamedTuple):
    node_id: int
    host: str
    port: int
    rack: str | None = None


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    partition: int
    leader: int
    leader_epoch: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    offline_replicas: tuple[int, ...]
    error_code: int = 0


@dataclass(frozen=True, slots=True)
class TopicInfo:
    name: str
    topic_id: bytes
    is_internal: bool
    partitions: dict[int, PartitionInfo]

    @property
    def replication_factor(self) -> int:
        return max((len(p.replicas) for p in self.partitions.values()), default=0)


@dataclass(frozen=True, slots=True)
class ClusterMetadata:
    cluster_id: str | None
    controller_id: int
    brokers: dict[int, BrokerInfo]
    topics: dict[str, TopicInfo]


class ProducerRecord(NamedTuple):
    value: bytes | None
    key: bytes | None = None
    headers: tuple[tuple[str, bytes | None], ...] = ()
    partition: int | None = None
    """None: murmur2 of the key, or round robin for records without one."""
    timestamp_ms: int | None = None
    """None: the time of the `produce` call."""


class RecordMetadata(NamedTuple):
    topic: str
    partition: int
    offset: int
    """-1 when produced with acks=0 (the broker does not say)."""
    timestamp_ms: int


class ConsumerRecord(NamedTuple):
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    log_append_time: bool
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]


@dataclass(slots=True)
class FetchedPartition:
    topic: str
    partition: int
    error: KafkaResponseError | None
    high_watermark: int
    last_stable_offset: int
    log_start_offset: int
    records: list[ConsumerRecord]
    next_offset: int
    """Where the next fetch of this partition starts (past skipped control batches too)."""


class OffsetAndTimestamp(NamedTuple):
    offset: int
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class ConfigEntry:
    name: str
    value: str | None
    source: str
    is_default: bool
    read_only: bool
    is_sensitive: bool


@dataclass(frozen=True, slots=True)
class CreatedTopic:
    name: str
    topic_id: bytes
    partitions: int
    replication_factor: int


class ListedGroup(NamedTuple):
    group_id: str
    protocol_type: str
    state: str
    """Empty string from brokers older than ListGroups v4."""


@dataclass(frozen=True, slots=True)
class GroupMember:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    subscription: list[str] | None
    """Topics, decoded from ConsumerProtocolSubscription (None if not a consumer group)."""
    assignment: dict[str, list[int]] | None
    """Partitions per topic, decoded from ConsumerProtocolAssignment."""


@dataclass(frozen=True, slots=True)
class GroupDescription:
    group_id: str
    state: str
    protocol_type: str
    protocol: str
    members: list[GroupMember]
    coordinator: BrokerInfo | None


def topic_id_text(topic_id: bytes) -> str:
    """Kafka's text form of a topic id (Uuid.toString: URL-safe base64 without padding)."""
    return base64.urlsafe_b64encode(topic_id).decode("ascii").rstrip("=")


def default_bootstrap() -> str:
    """`ZOOLOG_BROKERS`, else `KAFKA_BOOTSTRAP_SERVERS`, else 127.0.0.1:9092."""
    return (os.environ.get("ZOOLOG_BROKERS") or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
            or DEFAULT_BOOTSTRAP)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


# --- partitioner --------------------------------------------------------------------------


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`): a signed 32-bit int,
    seed 0x9747b28c."""
    length = len(data)
    m = 0x5BD1E995
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    tail = length & ~3
    for i in range(0, tail, 4):
        k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    left = length & 3
    if left == 3:
        h ^= data[tail + 2] << 16
    if left >= 2:
        h ^= data[tail + 1] << 8
    if left >= 1:
        h ^= data[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def default_partition(key: bytes, partition_count: int) -> int:
    """The Java client's partition for a keyed record: toPositive(murmur2(key)) % count."""
    if partition_count <= 0:
        raise ValueError("a topic has at least one partition")
    return (murmur2(key) & 0x7FFFFFFF) % partition_count


# --- consumer protocol (JoinGroup metadata and SyncGroup assignments) ----------------------

_SUBSCRIPTION_MAX = ConsumerProtocolSubscription.VALID_VERSIONS[1]
_ASSIGNMENT_MAX = ConsumerProtocolAssignment.VALID_VERSIONS[1]


def encode_subscription(topics: Iterable[str]) -> bytes:
    """ConsumerProtocolSubscription v0 with its version prefix, as consumers send it."""
    body = ConsumerProtocolSubscription(topics=sorted(set(topics)))
    return _INT16.pack(0) + body.to_bytes(0)


def decode_subscription(data: bytes | memoryview | None) -> list[str] | None:
    """Topics of a ConsumerProtocolSubscription (any version: newer ones are read as the
    newest we know, their extra fields trail); None if it does not parse."""
    view = memoryview(data or b"")
    if len(view) < 2:
        return None
    version = min(_INT16.unpack_from(view, 0)[0], _SUBSCRIPTION_MAX)
    try:
        subscription, _ = ConsumerProtocolSubscription.decode(view, 2, max(version, 0))
    except KafkaDecodeError:
        return None
    return list(subscription.topics)


def encode_assignment(assignment: Mapping[str, Sequence[int]]) -> bytes:
    """ConsumerProtocolAssignment v0 with its version prefix."""
    body = ConsumerProtocolAssignment(assigned_partitions=[
        ConsumerProtocolAssignment.TopicPartition(topic=topic, partitions=sorted(parts))
        for topic, parts in sorted(assignment.items())])
    return _INT16.pack(0) + body.to_bytes(0)


def decode_assignment(data: bytes | memoryview | None) -> dict[str, list[int]] | None:
    """Partitions per topic of a ConsumerProtocolAssignment; {} for an empty assignment,
    None if it does not parse."""
    view = memoryview(data or b"")
    if len(view) == 0:
        return {}
    if len(view) < 2:
        return None
    version = min(_INT16.unpack_from(view, 0)[0], _ASSIGNMENT_MAX)
    try:
        assignment, _ = ConsumerProtocolAssignment.decode(view, 2, max(version, 0))
    except KafkaDecodeError:
        return None
    out: dict[str, list[int]] = {}
    for tp in assignment.assigned_partitions:
        out.setdefault(tp.topic, []).extend(tp.partitions)
    return {topic: sorted(parts) for topic, parts in out.items()}


def range_assign(subscriptions: Mapping[str, Sequence[str]],
                 partition_counts: Mapping[str, int]) -> dict[str, dict[str, list[int]]]:
    """Kafka's RangeAssignor: per topic, members sorted by id take consecutive ranges, the
    first `count % members` one partition more. member -> topic -> partitions."""
    out: dict[str, dict[str, list[int]]] = {member: {} for member in subscriptions}
    by_topic: dict[str, list[str]] = defaultdict(list)
    for member, topics in subscriptions.items():
        for topic in set(topics):
            by_topic[topic].append(member)
    for topic, members in by_topic.items():
        count = partition_counts.get(topic, 0)
        members.sort()
        share, extra = divmod(count, len(members))
        start = 0
        for index, member in enumerate(members):
            size = share + (1 if index < extra else 0)
            if size:
                out[member][topic] = list(range(start, start + size))
            start += size
    return out


# --- one connection -----------------------------------------------------------------------


class _Pending(NamedTuple):
    future: asyncio.Future[Any]
    response_cls: type[Any] | None
    """None: hand over the raw body (ApiVersions decodes it itself)."""
    version: int
    header_version: int


class _Connection(asyncio.Protocol):
    """A connection to one broker: frames out, responses matched by correlation id."""

    def __init__(self, name: str, client_id: str, response_bytes_max: int) -> None:
        self.name = name
        self.client_id = client_id
        self.response_bytes_max = response_bytes_max
        self.api_versions: dict[int, tuple[int, int]] = {}
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._pending: dict[int, _Pending] = {}
        self._next_correlation_id = 0
        self.lost: KafkaConnectionError | None = None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f": {exc}" if exc else ""
        self._fail(KafkaConnectionError(f"connection to {self.name} lost{reason}"))

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        pos = 0
        end = len(buffer)
        while end - pos >= 4:
            (size,) = _SIZE.unpack_from(buffer, pos)
            if size < 4 or size > self.response_bytes_max:
                self.abort(KafkaConnectionError(
                    f"{self.name} sent a response of {size} bytes (outside 4.."
                    f"{self.response_bytes_max}); connection closed"))
                return
            if end - pos - 4 < size:
                break
            frame = bytes(buffer[pos + 4 : pos + 4 + size])
            pos += 4 + size
            self._dispatch(memoryview(frame))
            if self.lost is not None:
                return
        if pos:
            del buffer[:pos]

    # ours

    @property
    def usable(self) -> bool:
        return self.lost is None and self._transport is not None

    def _dispatch(self, frame: memoryview) -> None:
        (correlation_id,) = _SIZE.unpack_from(frame, 0)
        pending = self._pending.pop(correlation_id, None)
        if pending is None:
            self.abort(KafkaConnectionError(
                f"{self.name} answered unknown correlation id {correlation_id}"))
            return
        if pending.future.done():  # the caller timed out or was cancelled
            return
        try:
            _, pos = ResponseHeader.decode(frame, 0, pending.header_version)
            if pending.response_cls is None:
                pending.future.set_result(frame[pos:])
            else:
                response, _ = pending.response_cls.decode(frame, pos, pending.version)
                pending.future.set_result(response)
        except KafkaDecodeError as exc:
            self.abort(KafkaConnectionError(f"{self.name} sent a malformed response: {exc}"))

    def send(self, api_key: int, version: int, request: Message, response_cls: type[Any] | None,
             expect_response: bool = True) -> asyncio.Future[Any]:
        """Write one request; the future gets its decoded response (None when
        `expect_response` is false: acks=0 produce)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.lost is not None or self._transport is None:
            future.set_exception(self.lost or KafkaConnectionError(f"{self.name}: not open"))
            return future
        correlation_id = self._next_correlation_id
        self._next_correlation_id = (correlation_id + 1) & 0x7FFFFFFF
        out = bytearray(4)
        RequestHeader(request_api_key=api_key, request_api_version=version,
                      correlation_id=correlation_id, client_id=self.client_id).encode(
            request_header_version(api_key, version), out)
        request.encode(version, out)
        _SIZE.pack_into(out, 0, len(out) - 4)
        if expect_response:
            self._pending[correlation_id] = _Pending(
                future, response_cls, version, response_header_version(api_key, version))
        else:
            future.set_result(None)
        self._transport.write(out)
        return future

    def abort(self, error: KafkaConnectionError) -> None:
        self._fail(error)
        if self._transport is not None:
            self._transport.abort()

    def close(self) -> None:
        self._fail(KafkaConnectionError(f"connection to {self.name} closed"))
        if self._transport is not None:
            self._transport.close()

    def _fail(self, error: KafkaConnectionError) -> None:
        if self.lost is None:
            self.lost = error
        pending, self._pending = self._pending, {}
        for item in pending.values():
            if not item.future.done():
                item.future.set_exception(self.lost)


# --- the client ---------------------------------------------------------------------------


class KafkaClient:
    """See the module docstring. Create with `await KafkaClient.connect("host:port,...")`."""

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
        self._coordinators: dict[str, int] = {}
        self._connections: dict[tuple[int, str], _Connection] = {}
        self._opening: dict[tuple[int, str], asyncio.Task[_Connection]] = {}
        self._bootstrap_node: int | None = None
        self._round_robin: dict[str, int] = defaultdict(int)
        self._produce_order = asyncio.Lock()
        self._closed = False

    @classmethod
    async def connect(cls, bootstrap: str | None = None, **options: Any) -> KafkaClient:
        """A client that has read the cluster's metadata from a bootstrap broker."""
        client = cls(bootstrap or default_bootstrap(), **options)
        try:
            await client._bootstrap_connect()  # no retries: an unreachable address fails fast
            await client.refresh_metadata([])
        except BaseException:
            await client.close()
            raise
        return client

    async def close(self) -> None:
        self._closed = True
        for task in self._opening.values():
            task.cancel()
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()
        await asyncio.sleep(0)  # let the transports finish closing

    async def __aenter__(self) -> KafkaClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

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
            connection.api_versions = await self._negotiate(connection)
        except BaseException:
            connection.close()
            raise
        old = self._connections.get((node_id, lane))
        if old is not None:
            old.close()
        self._connections[(node_id, lane)] = connection
        return connection

    async def _negotiate(self, connection: _Connection) -> dict[int, tuple[int, int]]:
        """ApiVersions, in our highest version first, then in the highest the broker names
        if it does not know ours (it answers UNSUPPORTED_VERSION in v0)."""
        low, version = self.versions[_API_VERSIONS]
        for _ in range(3):
            request = ApiVersionsRequest(client_software_name="zoolog",
                                         client_software_version=_client_version())
            body = await self._wait(connection.send(_API_VERSIONS, version, request, None),
                                    connection, self.request_timeout_ms)
            response: ApiVersionsResponse | None
            try:
                response, _ = ApiVersionsResponse.decode(body, 0, version)
            except KafkaDecodeError:
                response = None
            if response is None or response.error_code == Err.UNSUPPORTED_VERSION:
                fallback, _ = ApiVersionsResponse.decode(body, 0, 0)
                theirs = {k.api_key: (k.min_version, k.max_version) for k in fallback.api_keys}
                their_max = theirs.get(_API_VERSIONS, (0, 0))[1]
                if fallback.error_code not in (Err.NONE, Err.UNSUPPORTED_VERSION):
                    _check(fallback.error_code, context=f"ApiVersions from {connection.name}")
                if their_max >= version or their_max < low:
                    raise KafkaResponseError(
                        Err.UNSUPPORTED_VERSION,
                        f"no ApiVersions version both sides speak (ours {low}..{version})",
                        connection.name)
                version = their_max
                continue
            _check(response.error_code, context=f"ApiVersions from {connection.name}")
            return {k.api_key: (k.min_version, k.max_version) for k in response.api_keys}
        raise KafkaResponseError(Err.UNSUPPORTED_VERSION, "ApiVersions negotiation failed",
                                 connection.name)

    def _version(self, connection: _Connection, api_key: int, max_version: int | None) -> int:
        ours = self.versions.get(api_key)
        theirs = connection.api_versions.get(api_key)
        api = API_NAMES.get(api_key, str(api_key))
        if ours is None:
            raise ValueError(f"this client does not speak {api}")
        if theirs is None:
            raise KafkaResponseError(Err.UNSUPPORTED_VERSION,
                                     f"the broker does not support {api}", connection.name)
        high = min(ours[1], theirs[1], ours[1] if max_version is None else max_version)
        if high < max(ours[0], theirs[0]):
            raise KafkaResponseError(
                Err.UNSUPPORTED_VERSION,
                f"{api}: the broker speaks versions {theirs[0]}..{theirs[1]}, this client "
                f"{ours[0]}..{ours[1]}", connection.name)
        return high

    async def api_versions(self, node_id: int | None = None) -> dict[int, tuple[int, int]]:
        """What a broker (default: any) said it supports: api_key -> (min, max)."""
        connection = await self._connection(await self._any_node() if node_id is None
                                            else node_id)
        return dict(connection.api_versions)

    async def negotiated_version(self, api_key: int, node_id: int | None = None) -> int:
        """The version requests of `api_key` to that broker go out in."""
        connection = await self._connection(await self._any_node() if node_id is None
                                            else node_id)
        return self._version(connection, api_key, None)

    async def _wait(self, future: asyncio.Future[Any], connection: _Connection,
                    timeout_ms: int) -> Any:
        try:
            return await asyncio.wait_for(future, timeout_ms / 1000)
        except TimeoutError as exc:
            error = KafkaTimeoutError(f"{connection.name} did not answer within {timeout_ms} ms")
            connection.abort(error)
            raise error from exc

    async def _call(self, node_id: int, api_key: int, build: Callable[[int], Message],
                    response_cls: type[Any], *, lane: str = "", timeout_ms: int | None = None,
                    max_version: int | None = None, expect_response: bool = True
                    ) -> tuple[Any, int]:
        """Send `build(version)` to a broker; (its decoded response, version)."""
        connection = await self._connection(node_id, lane)
        version = self._version(connection, api_key, max_version)
        future = connection.send(api_key, version, build(version), response_cls,
                                 expect_response)
        response = await self._wait(future, connection,
                                    timeout_ms if timeout_ms is not None
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

    # --- admin: topics and configs ---------------------------------------------------------

    async def _controller(self) -> int:
        if self.controller_id < 0 or self.controller_id not in self.brokers:
            await self.refresh_metadata([])
        return self.controller_id if self.controller_id in self.brokers else \
            await self._any_node()

    async def create_topic(self, name: str, partitions: int = -1, replication_factor: int = -1,
                           configs: Mapping[str, str] | None = None, *,
                           validate_only: bool = False, timeout_ms: int = 30_000
                           ) -> CreatedTopic:
        """Create one topic (-1: the broker's num.partitions / default.replication.factor).
        Raises KafkaResponseError (TOPIC_ALREADY_EXISTS, INVALID_CONFIG, ...)."""
        def build(version: int) -> CreateTopicsRequest:
            return CreateTopicsRequest(topics=[CreateTopicsRequest.CreatableTopic(
                name=name, num_partitions=partitions, replication_factor=replication_factor,
                configs=[CreateTopicsRequest.CreatableTopicConfig(name=k, value=v)
                         for k, v in (configs or {}).items()])],
                timeout_ms=timeout_ms, validate_only=validate_only)
        response, version = await self._call(await self._controller(), _CREATE_TOPICS, build,
                                             CreateTopicsResponse,
                                             timeout_ms=timeout_ms + self.request_timeout_ms)
        result = response.topics[0]
        _check(result.error_code, result.error_message, f"topic {name!r}")
        self._forget_topics([name])
        if version >= 5 and result.num_partitions > 0:
            return CreatedTopic(name, result.topic_id, result.num_partitions,
                                result.replication_factor)
        info = await self.topic(name, refresh=True)
        return CreatedTopic(name, info.topic_id, len(info.partitions), info.replication_factor)

    async def delete_topics(self, names: Sequence[str], *, timeout_ms: int = 30_000
                            ) -> dict[str, KafkaResponseError | None]:
        """Delete topics; each name -> None or the error that topic failed with."""
        def build(version: int) -> DeleteTopicsRequest:
            if version >= 6:
                return DeleteTopicsRequest(topics=[DeleteTopicsRequest.DeleteTopicState(
                    name=n) for n in names], timeout_ms=timeout_ms)
            return DeleteTopicsRequest(topic_names=list(names), timeout_ms=timeout_ms)
        response, _ = await self._call(await self._controller(), _DELETE_TOPICS, build,
                                       DeleteTopicsResponse,
                                       timeout_ms=timeout_ms + self.request_timeout_ms)
        out: dict[str, KafkaResponseError | None] = {n: None for n in names}
        for result in response.responses:
            if result.name is not None and result.error_code != Err.NONE:
                out[result.name] = KafkaResponseError(result.error_code, result.error_message
                                                      or "", f"topic {result.name!r}")
        self._forget_topics(names)
        return out

    async def describe_configs(self, topic: str, keys: Sequence[str] | None = None
                               ) -> list[ConfigEntry]:
        """A topic's configs (every key, or `keys`), each with where its value comes from."""
        async def once() -> list[ConfigEntry]:
            def build(version: int) -> DescribeConfigsRequest:
                resource = DescribeConfigsRequest.DescribeConfigsResource(
                    resource_type=_RESOURCE_TOPIC, resource_name=topic,
                    configuration_keys=list(keys) if keys is not None else None)
                if keys is None:
                    resource.configuration_keys = None
                return DescribeConfigsRequest(resources=[resource])
            response, _ = await self._call(await self._any_node(), _DESCRIBE_CONFIGS, build,
                                           DescribeConfigsResponse)
            result = response.results[0]
            _check(result.error_code, result.error_message, f"topic {topic!r}")
            return [ConfigEntry(c.name, c.value, CONFIG_SOURCES.get(c.config_source, "UNKNOWN"),
                                c.config_source == 5, c.read_only, c.is_sensitive)
                    for c in result.configs]
        return await self._retrying(once)

    async def alter_topic_config(self, topic: str, set_values: Mapping[str, str] | None = None,
                                 delete: Sequence[str] = (), *, validate_only: bool = False
                                 ) -> None:
        """IncrementalAlterConfigs: SET each of `set_values`, DELETE each of `delete` (back
        to the default)."""
        def build(version: int) -> IncrementalAlterConfigsRequest:
            configs = [IncrementalAlterConfigsRequest.AlterableConfig(
                name=k, config_operation=_CONFIG_SET, value=v)
                for k, v in (set_values or {}).items()]
            for name in delete:
                entry = IncrementalAlterConfigsRequest.AlterableConfig(
                    name=name, config_operation=_CONFIG_DELETE)
                entry.value = None
                configs.append(entry)
            return IncrementalAlterConfigsRequest(resources=[
                IncrementalAlterConfigsRequest.AlterConfigsResource(
                    resource_type=_RESOURCE_TOPIC, resource_name=topic, configs=configs)],
                validate_only=validate_only)
        response, _ = await self._call(await self._any_node(), _INCREMENTAL_ALTER_CONFIGS,
                                       build, IncrementalAlterConfigsResponse)
        result = response.responses[0]
        _check(result.error_code, result.error_message, f"topic {topic!r}")

    # --- produce ---------------------------------------------------------------------------

    def choose_partition(self, topic: TopicInfo, record: ProducerRecord) -> int:
        """Explicit partition, else murmur2 of the key, else round robin."""
        count = len(topic.partitions)
        if record.partition is not None:
            if record.partition not in topic.partitions:
                raise ValueError(f"topic {topic.name!r} has no partition {record.partition} "
                                 f"(it has {count})")
            return record.partition
        if record.key is not None:
            return default_partition(record.key, count)
        index = self._round_robin[topic.name]
        self._round_robin[topic.name] = index + 1
        return sorted(topic.partitions)[index % count]

    async def produce(self, topic: str, records: Sequence[ProducerRecord], *, acks: int = -1,
                      codec: int = rb.Codec.NONE, timeout_ms: int = 30_000,
                      batch_bytes_max: int = BATCH_BYTES_MAX_DEFAULT,
                      auto_create: bool = False) -> list[RecordMetadata]:
        """Write `records` to `topic` (acks -1/all, 1 or 0) and return, in input order, where
        each landed (`auto_create`: see `topic()`). Concurrent calls write their requests in
        call order, so the records of a partition land in the order of the calls (retries
        aside, see the module docstring)."""
        if acks not in (-1, 0, 1):
            raise ValueError(f"acks must be -1 (all), 0 or 1, not {acks}")
        if not records:
            return []
        results: list[RecordMetadata | None] = [None] * len(records)
        async with self._produce_order:  # held until the requests are written, not answered
            info = await self.topic(topic, auto_create=auto_create)
            now = _now_ms()
            by_partition: dict[int, list[int]] = defaultdict(list)
            for index, record in enumerate(records):
                by_partition[self.choose_partition(info, record)].append(index)
            batches = [_ProduceBatch.build(partition, chunk, records, now, codec)
                       for partition, indexes in sorted(by_partition.items())
                       for chunk in _cut(indexes, records, batch_bytes_max)]
            sent = await self._send_batches(topic, batches, acks, timeout_ms)
        deadline = time.monotonic() + self.retry_timeout_ms / 1000
        backoff_ms = RETRY_BACKOFF_MS_MIN
        while True:
            retry = await self._collect(topic, sent, results)
            if not retry:
                break
            batches = [batch for batch, _ in retry]
            error = retry[-1][1]
            if time.monotonic() + backoff_ms / 1000 > deadline:
                raise error
            self._forget_topics([topic])
            await asyncio.sleep(backoff_ms / 1000)
            backoff_ms = min(backoff_ms * 2, RETRY_BACKOFF_MS_MAX)
            async with self._produce_order:
                sent = await self._send_batches(topic, batches, acks, timeout_ms)
        assert all(r is not None for r in results)
        return [r for r in results if r is not None]

    async def _send_batches(self, topic: str, batches: list[_ProduceBatch], acks: int,
                            timeout_ms: int) -> list[_SentProduce]:
        """Write Produce requests for `batches`: one request per leader per round, a round
        holding at most one batch of each partition (Produce v3+ takes one per partition)."""
        rounds: list[dict[int, _ProduceBatch]] = []
        for batch in batches:
            for round_batches in rounds:
                if batch.partition not in round_batches:
                    round_batches[batch.partition] = batch
                    break
            else:
                rounds.append({batch.partition: batch})
        sent: list[_SentProduce] = []
        for round_batches in rounds:
            by_leader: dict[int, list[_ProduceBatch]] = defaultdict(list)
            for partition, batch in sorted(round_batches.items()):
                by_leader[await self._leader(TopicPartition(topic, partition))].append(batch)
            for leader, group in by_leader.items():
                def build(version: int, group: list[_ProduceBatch] = group) -> ProduceRequest:
                    request = ProduceRequest(acks=acks, timeout_ms=timeout_ms, topic_data=[
                        ProduceRequest.TopicProduceData(name=topic, partition_data=[
                            ProduceRequest.PartitionProduceData(index=b.partition,
                                                                records=b.data)
                            for b in group])])
                    request.transactional_id = None
                    return request
                connection = await self._connection(leader)
                version = self._version(connection, _PRODUCE, None)
                future = connection.send(_PRODUCE, version, build(version), ProduceResponse,
                                         expect_response=acks != 0)
                sent.append(_SentProduce(group, future, connection,
                                         timeout_ms + self.request_timeout_ms))
        return sent

    async def _collect(self, topic: str, sent: list[_SentProduce],
                       results: list[RecordMetadata | None]
                       ) -> list[tuple[_ProduceBatch, KafkaResponseError]]:
        """Wait for the answers of `sent`, fill `results`; the batches to send again (with
        their retriable error). A non-retriable error or a lost connection raises."""
        retry: list[tuple[_ProduceBatch, KafkaResponseError]] = []
        failure: BaseException | None = None
        for item in sent:
            try:
                response = await self._wait(item.future, item.connection, item.timeout_ms)
            except KafkaConnectionError as exc:
                failure = failure or exc
                continue
            answers: dict[int, Any] = {}
            if response is not None:
                for t in response.responses:
                    for p in t.partition_responses:
                        answers[p.index] = p
            for batch in item.batches:
                where = f"topic {topic!r} partition {batch.partition}"
                if response is None:  # acks=0
                    batch.landed(topic, -1, -1, results)
                    continue
                answer = answers.get(batch.partition)
                if answer is None:
                    failure = failure or KafkaResponseError(
                        Err.UNKNOWN_SERVER_ERROR, "the broker did not answer for it", where)
                    continue
                if answer.error_code != Err.NONE:
                    detail = answer.error_message or "; ".join(
                        e.batch_index_error_message or "" for e in answer.record_errors)
                    error = KafkaResponseError(answer.error_code, detail, where)
                    if error.retriable:
                        retry.append((batch, error))
                    else:
                        failure = failure or error
                    continue
                batch.landed(topic, answer.base_offset, answer.log_append_time_ms, results)
        if failure is not None:
            raise failure
        return retry

    # --- offsets ---------------------------------------------------------------------------

    async def list_offsets(self, topic: str, spec: int, partitions: Iterable[int] | None = None,
                           *, isolation: int = READ_UNCOMMITTED
                           ) -> dict[int, OffsetAndTimestamp]:
        """Per partition (default: all of the topic's): the offset for `spec` — EARLIEST,
        LATEST or a timestamp in ms (the first offset whose timestamp is at or after it; -1
        when there is none)."""
        info = await self.topic(topic)
        wanted = sorted(info.partitions) if partitions is None else sorted(set(partitions))
        for p in wanted:
            if p not in info.partitions:
                raise ValueError(f"topic {topic!r} has no partition {p} "
                                 f"(it has {len(info.partitions)})")
        out: dict[int, OffsetAndTimestamp] = {}

        async def once() -> dict[int, OffsetAndTimestamp]:
            by_leader: dict[int, list[int]] = defaultdict(list)
            for p in wanted:
                if p not in out:
                    by_leader[await self._leader(TopicPartition(topic, p))].append(p)
            for leader, parts in by_leader.items():
                def build(version: int, parts: list[int] = parts) -> ListOffsetsRequest:
                    return ListOffsetsRequest(replica_id=-1, isolation_level=isolation, topics=[
                        ListOffsetsRequest.ListOffsetsTopic(name=topic, partitions=[
                            ListOffsetsRequest.ListOffsetsPartition(partition_index=p,
                                                                    timestamp=spec)
                            for p in parts])])
                response, _ = await self._call(leader, _LIST_OFFSETS, build, ListOffsetsResponse)
                for t in response.topics:
                    for p in t.partitions:
                        _check(p.error_code, context=f"topic {topic!r} partition "
                                                     f"{p.partition_index}")
                        out[p.partition_index] = OffsetAndTimestamp(p.offset, p.timestamp)
            return out
        return await self._retrying(once, on_retry=lambda: self._forget_topics([topic]))

    async def offset_range(self, topic: str, partitions: Iterable[int] | None = None, *,
                           isolation: int = READ_UNCOMMITTED) -> dict[int, tuple[int, int]]:
        """partition -> (log start offset, log end offset)."""
        wanted = None if partitions is None else list(partitions)
        starts, ends = await asyncio.gather(
            self.list_offsets(topic, EARLIEST, wanted, isolation=isolation),
            self.list_offsets(topic, LATEST, wanted, isolation=isolation))
        return {p: (starts[p].offset, ends[p].offset) for p in ends}

    # --- fetch -----------------------------------------------------------------------------

    async def fetch(self, positions: Mapping[TopicPartition, int], *, max_wait_ms: int = 500,
                    min_bytes: int = 1, max_bytes: int = FETCH_MAX_BYTES_DEFAULT,
                    partition_max_bytes: int = PARTITION_FETCH_MAX_BYTES_DEFAULT,
                    isolation: int = READ_UNCOMMITTED) -> dict[TopicPartition, FetchedPartition]:
        """One fetch from each leader of `positions` (partition -> next offset to read),
        concurrently. Per-partition errors (OFFSET_OUT_OF_RANGE, ...) come back in
        `FetchedPartition.error`; a leader change is retried."""
        out: dict[TopicPartition, FetchedPartition] = {}

        async def once() -> dict[TopicPartition, FetchedPartition]:
            by_leader: dict[int, list[TopicPartition]] = defaultdict(list)
            for tp in positions:
                if tp not in out:
                    by_leader[await self._leader(tp)].append(tp)
            fetched = await asyncio.gather(*(
                self._fetch_from(leader, {tp: positions[tp] for tp in tps}, max_wait_ms,
                                 min_bytes, max_bytes, partition_max_bytes, isolation)
                for leader, tps in by_leader.items()))
            retry: KafkaResponseError | None = None
            for part in fetched:
                for tp, result in part.items():
                    if result.error is not None and result.error.retriable:
                        retry = result.error
                        continue
                    out[tp] = result
            if retry is not None:
                raise retry
            return out
        return await self._retrying(
            once, on_retry=lambda: self._forget_topics({tp.topic for tp in positions}))

    async def _fetch_from(self, leader: int, positions: dict[TopicPartition, int],
                          max_wait_ms: int, min_bytes: int, max_bytes: int,
                          partition_max_bytes: int, isolation: int
                          ) -> dict[TopicPartition, FetchedPartition]:
        by_topic: dict[str, list[TopicPartition]] = defaultdict(list)
        for tp in sorted(positions):
            by_topic[tp.topic].append(tp)
        ids = {name: (self._topics[name].topic_id if name in self._topics else _ZERO_UUID)
               for name in by_topic}
        names_by_id = {topic_id: name for name, topic_id in ids.items()}
        max_version = None if all(i != _ZERO_UUID for i in ids.values()) else 12

        def build(version: int) -> FetchRequest:
            return FetchRequest(
                replica_id=-1, max_wait_ms=max_wait_ms, min_bytes=min_bytes,
                max_bytes=max_bytes, isolation_level=isolation, session_id=0,
                session_epoch=-1, topics=[FetchRequest.FetchTopic(
                    topic=name, topic_id=ids[name], partitions=[FetchRequest.FetchPartition(
                        partition=tp.partition, fetch_offset=positions[tp],
                        partition_max_bytes=partition_max_bytes) for tp in tps])
                    for name, tps in by_topic.items()])
        response, version = await self._call(
            leader, _FETCH, build, FetchResponse, max_version=max_version,
            timeout_ms=self.request_timeout_ms + max_wait_ms)
        if response.error_code != Err.NONE:
            error = KafkaResponseError(response.error_code, context="fetch")
            return {tp: FetchedPartition(tp.topic, tp.partition, error, -1, -1, -1, [],
                                         position) for tp, position in positions.items()}
        out: dict[TopicPartition, FetchedPartition] = {}
        for t in response.responses:
            name = names_by_id.get(t.topic_id, t.topic) if version >= 13 else t.topic
            for p in t.partitions:
                tp = TopicPartition(name, p.partition_index)
                if tp not in positions:
                    continue
                out[tp] = _fetched(tp, positions[tp], p, isolation)
        for tp, position in positions.items():
            if tp not in out:
                out[tp] = FetchedPartition(tp.topic, tp.partition, None, -1, -1, -1, [],
                                           position)
        return out

    # --- groups ----------------------------------------------------------------------------

    async def find_coordinator(self, group_id: str, *, refresh: bool = False) -> BrokerInfo:
        """The broker coordinating `group_id`."""
        if not refresh and group_id in self._coordinators:
            node = self._coordinators[group_id]
            if node in self.brokers:
                return self.brokers[node]

        async def once() -> BrokerInfo:
            def build(version: int) -> FindCoordinatorRequest:
                if version >= 4:
                    return FindCoordinatorRequest(key_type=0, coordinator_keys=[group_id])
                return FindCoordinatorRequest(key=group_id, key_type=0)
            response, version = await self._call(await self._any_node(), _FIND_COORDINATOR,
                                                 build, FindCoordinatorResponse)
            if version >= 4:
                found = response.coordinators[0]
                code, message = found.error_code, found.error_message
                node_id, host, port = found.node_id, found.host, found.port
            else:
                code, message = response.error_code, response.error_message
                node_id, host, port = response.node_id, response.host, response.port
            _check(code, message, f"group {group_id!r}")
            broker = BrokerInfo(node_id, host, port, self.brokers.get(node_id, BrokerInfo(
                node_id, host, port)).rack)
            self.brokers[node_id] = broker
            self._coordinators[group_id] = node_id
            return broker
        return await self._retrying(once)

    async def _with_coordinator(self, group_id: str, op: Callable[[int], Awaitable[T]]) -> T:
        """Run `op(coordinator node id)`, finding the coordinator again on NOT_COORDINATOR
        and the like."""
        refresh = False

        async def once() -> T:
            nonlocal refresh
            broker = await self.find_coordinator(group_id, refresh=refresh)
            refresh = False
            try:
                return await op(broker.node_id)
            except (KafkaResponseError, KafkaConnectionError) as exc:
                if isinstance(exc, KafkaConnectionError) or exc.code in _COORDINATOR_ERRORS:
                    refresh = True
                raise
        return await self._retrying(once)

    async def list_groups(self) -> list[ListedGroup]:
        """Every group of every broker (ListGroups is answered per coordinator)."""
        await self.refresh_metadata([])
        seen: dict[str, ListedGroup] = {}
        for node in sorted(self.brokers):
            async def once(node: int = node) -> ListGroupsResponse:
                response, _ = await self._call(node, _LIST_GROUPS, lambda v: ListGroupsRequest(),
                                               ListGroupsResponse)
                _check(response.error_code, context=f"ListGroups from broker {node}")
                return response  # type: ignore[no-any-return]
            response = await self._retrying(once)
            for g in response.groups:
                seen[g.group_id] = ListedGroup(g.group_id, g.protocol_type, g.group_state)
        return sorted(seen.values())

    async def describe_group(self, group_id: str) -> GroupDescription:
        """State, protocol and members (with decoded subscriptions and assignments)."""
        async def op(node: int) -> GroupDescription:
            response, _ = await self._call(
                node, _DESCRIBE_GROUPS, lambda v: DescribeGroupsRequest(groups=[group_id]),
                DescribeGroupsResponse)
            g = response.groups[0]
            _check(g.error_code, context=f"group {group_id!r}")
            consumer = g.protocol_type == CONSUMER_PROTOCOL_TYPE
            members = [GroupMember(
                m.member_id, m.group_instance_id, m.client_id, m.client_host,
                decode_subscription(m.member_metadata) if consumer else None,
                decode_assignment(m.member_assignment) if consumer else None)
                for m in g.members]
            return GroupDescription(g.group_id, g.group_state, g.protocol_type, g.protocol_data,
                                    members, self.brokers.get(node))
        return await self._with_coordinator(group_id, op)

    async def delete_groups(self, group_ids: Sequence[str]
                            ) -> dict[str, KafkaResponseError | None]:
        """Delete groups (each must be Empty); group -> None or its error."""
        out: dict[str, KafkaResponseError | None] = {}
        for group_id in group_ids:
            async def op(node: int, group_id: str = group_id) -> KafkaResponseError | None:
                response, _ = await self._call(
                    node, _DELETE_GROUPS, lambda v: DeleteGroupsRequest(groups_names=[group_id]),
                    DeleteGroupsResponse)
                result = response.results[0]
                if result.error_code in _COORDINATOR_ERRORS:
                    _check(result.error_code, context=f"group {group_id!r}")
                if result.error_code != Err.NONE:
                    return KafkaResponseError(result.error_code, context=f"group {group_id!r}")
                return None
            try:
                out[group_id] = await self._with_coordinator(group_id, op)
            except KafkaResponseError as exc:
                out[group_id] = exc
        return out

    async def fetch_committed(self, group_id: str,
                              partitions: Iterable[TopicPartition] | None = None, *,
                              lane: str = "group") -> dict[TopicPartition, int]:
        """OffsetFetch: committed offsets of `partitions` (None: every partition the group
        has committed); -1 where nothing is committed."""
        wanted = None if partitions is None else sorted(set(partitions))

        def topics_of(cls: Any) -> Any:
            if wanted is None:
                return None
            by_topic: dict[str, list[int]] = defaultdict(list)
            for tp in wanted:
                by_topic[tp.topic].append(tp.partition)
            return [cls(name=t, partition_indexes=parts) for t, parts in by_topic.items()]

        def build(version: int) -> OffsetFetchRequest:
            if version >= 8:
                group = OffsetFetchRequest.OffsetFetchRequestGroup(group_id=group_id)
                group.topics = topics_of(OffsetFetchRequest.OffsetFetchRequestTopics)
                return OffsetFetchRequest(groups=[group])
            request = OffsetFetchRequest(group_id=group_id)
            request.topics = topics_of(OffsetFetchRequest.OffsetFetchRequestTopic)
            return request

        async def op(node: int) -> dict[TopicPartition, int]:
            response, version = await self._call(node, _OFFSET_FETCH, build,
                                                 OffsetFetchResponse, lane=lane)
            if version >= 8:
                group = response.groups[0]
                code, topics = group.error_code, group.topics
            else:
                code, topics = response.error_code, response.topics
            _check(code, context=f"group {group_id!r}")
            out: dict[TopicPartition, int] = {}
            for t in topics:
                for p in t.partitions:
                    _check(p.error_code, context=f"group {group_id!r} topic {t.name!r} "
                                                 f"partition {p.partition_index}")
                    out[TopicPartition(t.name, p.partition_index)] = p.committed_offset
            if wanted is not None:
                for tp in wanted:
                    out.setdefault(tp, -1)
            return out
        return await self._with_coordinator(group_id, op)

    async def commit_offsets(self, group_id: str, offsets: Mapping[TopicPartition, int], *,
                             generation_id: int = -1, member_id: str = "",
                             group_instance_id: str | None = None, lane: str = "group"
                             ) -> None:
        """OffsetCommit. With the defaults (generation -1, no member) a "simple" commit,
        which the coordinator accepts only while the group has no members."""
        if not offsets:
            return
        by_topic: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for tp, offset in sorted(offsets.items()):
            by_topic[tp.topic].append((tp.partition, offset))

        def build(version: int) -> OffsetCommitRequest:
            return OffsetCommitRequest(
                group_id=group_id, generation_id_or_member_epoch=generation_id,
                member_id=member_id, group_instance_id=group_instance_id, topics=[
                    OffsetCommitRequest.OffsetCommitRequestTopic(name=topic, partitions=[
                        OffsetCommitRequest.OffsetCommitRequestPartition(
                            partition_index=p, committed_offset=o) for p, o in parts])
                    for topic, parts in by_topic.items()])

        async def op(node: int) -> None:
            response, _ = await self._call(node, _OFFSET_COMMIT, build, OffsetCommitResponse,
                                           lane=lane)
            for t in response.topics:
                for p in t.partitions:
                    _check(p.error_code, context=f"group {group_id!r} topic {t.name!r} "
                                                 f"partition {p.partition_index}")
        await self._with_coordinator(group_id, op)

    def group_consumer(self, group_id: str, topics: Sequence[str], **options: Any
                       ) -> GroupConsumer:
        return GroupConsumer(self, group_id, topics, **options)

    def _close_lane(self, lane: str) -> None:
        for key in [k for k in self._connections if k[1] == lane]:
            self._connections.pop(key).close()


@dataclass(slots=True)
class _ProduceBatch:
    """One record batch of one partition, and which input records it holds."""

    partition: int
    indexes: list[int]
    timestamps: list[int]
    data: bytes

    @classmethod
    def build(cls, partition: int, indexes: list[int], records: Sequence[ProducerRecord],
              now_ms: int, codec: int) -> _ProduceBatch:
        stamps: list[int] = []
        for i in indexes:
            stamp = records[i].timestamp_ms
            stamps.append(now_ms if stamp is None else stamp)
        base = min(stamps)
        data = rb.build_batch(
            [rb.Record(delta, stamp - base, records[i].key, records[i].value,
                       tuple(records[i].headers))
             for delta, (i, stamp) in enumerate(zip(indexes, stamps, strict=True))],
            base_timestamp=base, codec=codec)
        return cls(partition, indexes, stamps, data)

    def landed(self, topic: str, base_offset: int, log_append_time_ms: int,
               results: list[RecordMetadata | None]) -> None:
        for delta, index in enumerate(self.indexes):
            offset = base_offset + delta if base_offset >= 0 else -1
            stamp = log_append_time_ms if log_append_time_ms >= 0 else self.timestamps[delta]
            results[index] = RecordMetadata(topic, self.partition, offset, stamp)


class _SentProduce(NamedTuple):
    batches: list[_ProduceBatch]
    future: asyncio.Future[Any]
    connection: _Connection
    timeout_ms: int


class _Fatal(Exception):
    """Carries an error past `_retrying` (which would retry it)."""

    def __init__(self, error: KafkaResponseError) -> None:
        super().__init__(str(error))
        self.error = error


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


def _client_version() -> str:
    from zoolog import __version__
    return __version__


def _cut(indexes: list[int], records: Sequence[ProducerRecord], bytes_max: int
         ) -> list[list[int]]:
    """Split a partition's record indexes into batches of about `bytes_max` bytes."""
    out: list[list[int]] = [[]]
    size = 0
    for index in indexes:
        record = records[index]
        estimate = 24 + len(record.key or b"") + len(record.value or b"") + sum(
            len(name) + len(value or b"") + 4 for name, value in record.headers)
        if out[-1] and size + estimate > bytes_max:
            out.append([])
            size = 0
        out[-1].append(index)
        size += estimate
    return out


def _fetched(tp: TopicPartition, position: int, p: Any, isolation: int) -> FetchedPartition:
    """Records of one partition of a FetchResponse at or after `position`; aborted
    transactions dropped in read_committed; control batches skipped."""
    error = None
    if p.error_code != Err.NONE:
        error = KafkaResponseError(p.error_code, context=f"topic {tp.topic!r} partition "
                                                         f"{tp.partition} offset {position}")
        return FetchedPartition(tp.topic, tp.partition, error, p.high_watermark,
                                p.last_stable_offset, p.log_start_offset, [], position)
    records: list[ConsumerRecord] = []
    next_offset = position
    data = p.records
    aborted = sorted((a.first_offset, a.producer_id) for a in (p.aborted_transactions or ()))
    active_aborted: set[int] = set()
    if data:
        for pos, header in rb.iter_batches(data):
            if header.next_offset <= position:
                continue
            if isolation == READ_COMMITTED:
                while aborted and aborted[0][0] <= header.last_offset:
                    active_aborted.add(aborted.pop(0)[1])
            next_offset = max(next_offset, header.next_offset)
            batch = memoryview(data)[pos : pos + header.size]
            if header.is_control:
                if isolation == READ_COMMITTED and header.producer_id in active_aborted:
                    for record in rb.batch_records(batch, DECOMPRESSED_BYTES_MAX):
                        if rb.control_type(record) == rb.CONTROL_ABORT:
                            active_aborted.discard(header.producer_id)
                continue
            if (isolation == READ_COMMITTED and header.is_transactional
                    and header.producer_id in active_aborted):
                continue
            log_append = bool(header.attributes & rb.ATTR_LOG_APPEND_TIME)
            for record in rb.batch_records(batch, DECOMPRESSED_BYTES_MAX):
                offset = header.base_offset + record.offset_delta
                if offset < position:
                    continue
                stamp = header.max_timestamp if log_append else \
                    header.base_timestamp + record.timestamp_delta
                records.append(ConsumerRecord(tp.topic, tp.partition, offset, stamp, log_append,
                                              record.key, record.value, record.headers))
    return FetchedPartition(tp.topic, tp.partition, None, p.high_watermark,
                            p.last_stable_offset, p.log_start_offset, records, next_offset)


# --- group membership ---------------------------------------------------------------------


class GroupConsumer:
    """One member of a classic consumer group using the eager "range" assignor.

    `await join()` runs JoinGroup (again with the member id the coordinator hands out on
    MEMBER_ID_REQUIRED) and SyncGroup (as leader it computes the range assignment for every
    member) and starts heartbeats; `assignment` then holds this member's partitions.
    Heartbeat answers REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION or UNKNOWN_MEMBER_ID set
    `rebalance_needed`: the caller commits what it has and calls `join()` again. `commit()`
    commits with the current generation; `leave()` sends LeaveGroup and stops heartbeats.

    Failure model: a heartbeat that cannot reach the coordinator is retried at the next
    interval; if none gets through for `session_timeout_ms` the coordinator drops the member
    and the next heartbeat or commit says so (UNKNOWN_MEMBER_ID), which means: rejoin.
    """

    def __init__(self, client: KafkaClient, group_id: str, topics: Sequence[str], *,
                 session_timeout_ms: int = SESSION_TIMEOUT_MS_DEFAULT,
                 rebalance_timeout_ms: int = REBALANCE_TIMEOUT_MS_DEFAULT,
                 heartbeat_interval_ms: int = HEARTBEAT_INTERVAL_MS_DEFAULT,
                 group_instance_id: str | None = None) -> None:
        if not topics:
            raise ValueError("a group consumer subscribes to at least one topic")
        self.client = client
        self.group_id = group_id
        self.topics = sorted(set(topics))
        self.session_timeout_ms = session_timeout_ms
        self.rebalance_timeout_ms = rebalance_timeout_ms
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.group_instance_id = group_instance_id
        self.member_id = ""
        self.generation_id = -1
        self.leader_id = ""
        self.protocol = RANGE_ASSIGNOR
        self.assignment: dict[str, list[int]] = {}
        self.rebalance_needed = False
        self._heartbeat: asyncio.Task[None] | None = None
        self._lane = f"member-{next(_MEMBER_LANES)}"
        """Each member talks to the coordinator over its own connection: a broker answers
        a connection's requests one at a time, and another member's JoinGroup, parked until
        the rebalance completes, must not hold up this member's heartbeats."""

    @property
    def partitions(self) -> list[TopicPartition]:
        return sorted(TopicPartition(t, p) for t, parts in self.assignment.items()
                      for p in parts)

    async def join(self) -> dict[str, list[int]]:
        """Join (or rejoin) the group; this member's assignment."""
        await self._stop_heartbeat()
        client = self.client
        for topic in self.topics:
            await client.topic(topic)  # the assignment needs them; fail early if missing
        deadline = time.monotonic() + (self.rebalance_timeout_ms * 2 + 10_000) / 1000
        while True:
            if time.monotonic() > deadline:
                raise KafkaResponseError(Err.REBALANCE_IN_PROGRESS,
                                         "the group did not settle", f"group {self.group_id!r}")
            join = await self._join_once()
            if join.error_code == Err.MEMBER_ID_REQUIRED:
                self.member_id = join.member_id
                continue
            if join.error_code in (Err.UNKNOWN_MEMBER_ID, Err.ILLEGAL_GENERATION):
                self.member_id = ""
                continue
            if join.error_code == Err.REBALANCE_IN_PROGRESS:
                continue
            _check(join.error_code, context=f"group {self.group_id!r} JoinGroup")
            self.member_id = join.member_id
            self.generation_id = join.generation_id
            self.leader_id = join.leader
            self.protocol = join.protocol_name or RANGE_ASSIGNOR
            assignments: dict[str, bytes] = {}
            if join.leader == join.member_id:
                assignments = await self._assign(join.members)
            sync = await self._sync_once(assignments)
            if sync.error_code in (Err.REBALANCE_IN_PROGRESS,):
                continue
            if sync.error_code in (Err.UNKNOWN_MEMBER_ID, Err.ILLEGAL_GENERATION):
                if sync.error_code == Err.UNKNOWN_MEMBER_ID:
                    self.member_id = ""
                continue
            _check(sync.error_code, context=f"group {self.group_id!r} SyncGroup")
            decoded = decode_assignment(sync.assignment)
            if decoded is None:
                raise KafkaResponseError(Err.INCONSISTENT_GROUP_PROTOCOL,
                                         "the assignment does not parse",
                                         f"group {self.group_id!r}")
            self.assignment = decoded
            self.rebalance_needed = False
            self._heartbeat = asyncio.ensure_future(self._heartbeat_loop())
            return self.assignment

    async def _join_once(self) -> Any:
        def build(version: int) -> JoinGroupRequest:
            return JoinGroupRequest(
                group_id=self.group_id, session_timeout_ms=self.session_timeout_ms,
                rebalance_timeout_ms=self.rebalance_timeout_ms, member_id=self.member_id,
                group_instance_id=self.group_instance_id,
                protocol_type=CONSUMER_PROTOCOL_TYPE, protocols=[
                    JoinGroupRequest.JoinGroupRequestProtocol(
                        name=RANGE_ASSIGNOR, metadata=encode_subscription(self.topics))])

        async def op(node: int) -> Any:
            response, _ = await self.client._call(
                node, _JOIN_GROUP, build, JoinGroupResponse, lane=self._lane,
                timeout_ms=self.rebalance_timeout_ms + self.client.request_timeout_ms)
            if response.error_code in _COORDINATOR_ERRORS:
                _check(response.error_code, context=f"group {self.group_id!r}")
            return response
        return await self.client._with_coordinator(self.group_id, op)

    async def _assign(self, members: Sequence[Any]) -> dict[str, bytes]:
        subscriptions = {m.member_id: decode_subscription(m.metadata) or [] for m in members}
        topics = sorted({t for subscribed in subscriptions.values() for t in subscribed})
        counts: dict[str, int] = {}
        for topic in topics:
            try:
                counts[topic] = len((await self.client.topic(topic)).partitions)
            except KafkaResponseError as exc:
                if exc.code != Err.UNKNOWN_TOPIC_OR_PARTITION:
                    raise
        plan = range_assign(subscriptions, counts)
        return {member: encode_assignment(parts) for member, parts in plan.items()}

    async def _sync_once(self, assignments: dict[str, bytes]) -> Any:
        def build(version: int) -> SyncGroupRequest:
            return SyncGroupRequest(
                group_id=self.group_id, generation_id=self.generation_id,
                member_id=self.member_id, group_instance_id=self.group_instance_id,
                protocol_type=CONSUMER_PROTOCOL_TYPE, protocol_name=self.protocol,
                assignments=[SyncGroupRequest.SyncGroupRequestAssignment(
                    member_id=member, assignment=data)
                    for member, data in sorted(assignments.items())])

        async def op(node: int) -> Any:
            response, _ = await self.client._call(
                node, _SYNC_GROUP, build, SyncGroupResponse, lane=self._lane,
                timeout_ms=self.rebalance_timeout_ms + self.client.request_timeout_ms)
            if response.error_code in _COORDINATOR_ERRORS:
                _check(response.error_code, context=f"group {self.group_id!r}")
            return response
        return await self.client._with_coordinator(self.group_id, op)

    async def heartbeat(self) -> int:
        """One Heartbeat; its error code (also recorded in `rebalance_needed`)."""
        def build(version: int) -> HeartbeatRequest:
            return HeartbeatRequest(group_id=self.group_id, generation_id=self.generation_id,
                                    member_id=self.member_id,
                                    group_instance_id=self.group_instance_id)

        async def op(node: int) -> int:
            response, _ = await self.client._call(node, _HEARTBEAT, build, HeartbeatResponse,
                                                  lane=self._lane)
            if response.error_code in _COORDINATOR_ERRORS:
                _check(response.error_code, context=f"group {self.group_id!r}")
            return int(response.error_code)
        code = await self.client._with_coordinator(self.group_id, op)
        if code in (Err.REBALANCE_IN_PROGRESS, Err.ILLEGAL_GENERATION, Err.UNKNOWN_MEMBER_ID,
                    Err.FENCED_INSTANCE_ID):
            if code == Err.UNKNOWN_MEMBER_ID:
                self.member_id = ""
            self.rebalance_needed = True
        return code

    async def _heartbeat_loop(self) -> None:
        while not self.rebalance_needed:
            await asyncio.sleep(self.heartbeat_interval_ms / 1000)
            with contextlib.suppress(KafkaResponseError, KafkaConnectionError):
                await self.heartbeat()

    async def _stop_heartbeat(self) -> None:
        task, self._heartbeat = self._heartbeat, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def committed(self) -> dict[TopicPartition, int]:
        """Committed offsets of the assigned partitions (-1: none)."""
        return await self.client.fetch_committed(self.group_id, self.partitions,
                                                 lane=self._lane)

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit as this member of the current generation. REBALANCE_IN_PROGRESS,
        ILLEGAL_GENERATION or UNKNOWN_MEMBER_ID mean the offsets were not committed and
        the member must rejoin (`rebalance_needed` is set)."""
        try:
            await self.client.commit_offsets(
                self.group_id, offsets, generation_id=self.generation_id,
                member_id=self.member_id, group_instance_id=self.group_instance_id,
                lane=self._lane)
        except KafkaResponseError as exc:
            if exc.code in (Err.REBALANCE_IN_PROGRESS, Err.ILLEGAL_GENERATION,
                            Err.UNKNOWN_MEMBER_ID):
                self.rebalance_needed = True
            raise

    async def leave(self) -> None:
        """LeaveGroup (errors ignored: the member is gone either way) and stop heartbeats."""
        await self._stop_heartbeat()
        if not self.member_id:
            self.client._close_lane(self._lane)
            return

        def build(version: int) -> LeaveGroupRequest:
            if version >= 3:
                return LeaveGroupRequest(group_id=self.group_id, members=[
                    LeaveGroupRequest.MemberIdentity(member_id=self.member_id,
                                                     group_instance_id=self.group_instance_id)])
            return LeaveGroupRequest(group_id=self.group_id, member_id=self.member_id)

        async def op(node: int) -> None:
            await self.client._call(node, _LEAVE_GROUP, build, LeaveGroupResponse,
                                    lane=self._lane)
        with contextlib.suppress(KafkaResponseError, KafkaConnectionError):
            await self.client._with_coordinator(self.group_id, op)
        self.client._close_lane(self._lane)
        self.member_id = ""
        self.generation_id = -1
        self.assignment = {}

