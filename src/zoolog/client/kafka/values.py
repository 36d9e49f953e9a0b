"""The values the client takes and returns: topic partitions, brokers, topic and cluster
metadata, records produced and consumed, offsets, configs, groups, transactions and the
producers of a partition.

Owns plain immutable-ish data (NamedTuples and slotted dataclasses) and `topic_id_text`.
Never: I/O, requests, or behaviour beyond derived properties.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import NamedTuple

from .errors import KafkaResponseError


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


class ListedTransaction(NamedTuple):
    transactional_id: str
    producer_id: int
    state: str
    """Kafka's name: Empty, Ongoing, PrepareCommit, PrepareAbort, CompleteCommit,
    CompleteAbort, PrepareEpochFence."""
    coordinator_id: int
    """The broker whose ListTransactions answer listed it (its coordinator)."""


@dataclass(frozen=True, slots=True)
class TransactionDescription:
    transactional_id: str
    error: KafkaResponseError | None
    """Why the coordinator could not describe it (TRANSACTIONAL_ID_NOT_FOUND, ...); the
    other fields are then the defaults."""
    state: str = ""
    producer_id: int = -1
    producer_epoch: int = -1
    timeout_ms: int = 0
    start_timestamp_ms: int = -1
    """When the open transaction began (-1: none is open)."""
    partitions: tuple[TopicPartition, ...] = ()
    """The partitions in the open (or deciding) transaction."""
    coordinator: BrokerInfo | None = None


@dataclass(frozen=True, slots=True)
class ProducerState:
    """One active producer of a partition (DescribeProducers); -1 where there is none."""
    producer_id: int
    producer_epoch: int
    last_sequence: int
    last_timestamp_ms: int
    coordinator_epoch: int
    current_txn_start_offset: int
    """The first offset of its open transaction in this partition (-1: none open)."""


def topic_id_text(topic_id: bytes) -> str:
    """Kafka's text form of a topic id (Uuid.toString: URL-safe base64 without padding)."""
    return base64.urlsafe_b64encode(topic_id).decode("ascii").rstrip("=")
