"""The broker's view of the cluster: brokers, controller, topics, partitions, topic configs.

`MetadataImage` is what the handlers read (Metadata, DescribeCluster, Produce and Fetch
routing, DescribeConfigs). It is filled from the coordination service by the runtime
(`zoolog.server.kafka_metadata`) and changed only through its methods, which keep the
name and id indexes consistent. Topic names are checked here with Kafka's rules.

Pure data: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from zoolog.broker.znodes import BrokerRegistration
from zoolog.protocol.kafka.errors import Err, KafkaError

TOPIC_NAME_BYTES_MAX = 249
"""Kafka's `Topic.MAX_NAME_LENGTH`."""

_LEGAL = re.compile(r"[a-zA-Z0-9._-]+")

CONSUMER_OFFSETS = "__consumer_offsets"
TRANSACTION_STATE = "__transaction_state"
INTERNAL_TOPICS = frozenset({CONSUMER_OFFSETS, TRANSACTION_STATE})

ZERO_UUID = b"\0" * 16


def check_topic_name(name: str) -> None:
    """Kafka's `Topic.validate`: INVALID_TOPIC_EXCEPTION with Kafka's reason."""
    if not name:
        raise KafkaError(Err.INVALID_TOPIC_EXCEPTION, "Topic name is illegal, it can't be empty")
    if name in (".", ".."):
        raise KafkaError(Err.INVALID_TOPIC_EXCEPTION,
                         "Topic name cannot be \".\" or \"..\"")
    if len(name) > TOPIC_NAME_BYTES_MAX:
        raise KafkaError(Err.INVALID_TOPIC_EXCEPTION,
                         f"Topic name is illegal, it can't be longer than "
                         f"{TOPIC_NAME_BYTES_MAX} characters, topic name: {name}")
    if not _LEGAL.fullmatch(name):
        raise KafkaError(Err.INVALID_TOPIC_EXCEPTION,
                         f"Topic name \"{name}\" is illegal, it contains a character other "
                         f"than ASCII alphanumerics, '.', '_' and '-'")


def collision_key(name: str) -> str:
    """Topics whose names differ only in '.' versus '_' collide in metric names: Kafka
    refuses to create the second one."""
    return name.replace(".", "_")


@dataclass(slots=True)
class PartitionInfo:
    index: int
    leader: int
    leader_epoch: int
    replicas: list[int]
    isr: list[int]


@dataclass(slots=True)
class TopicInfo:
    name: str
    topic_id: bytes
    partitions: list[PartitionInfo]
    configs: dict[str, str] = field(default_factory=dict)
    """The topic's overrides as the user gave them (defaults are the broker's)."""

    @property
    def internal(self) -> bool:
        return self.name in INTERNAL_TOPICS


class MetadataImage:
    """See the module docstring."""

    def __init__(self, cluster_id: str, broker: BrokerRegistration) -> None:
        self.cluster_id = cluster_id
        self.local = broker
        self.brokers: dict[int, BrokerRegistration] = {broker.broker_id: broker}
        self.controller_id = -1
        self.topics: dict[str, TopicInfo] = {}
        self.topics_by_id: dict[bytes, TopicInfo] = {}
        self._collisions: dict[str, str] = {}

    @property
    def broker_id(self) -> int:
        return self.local.broker_id

    def put_topic(self, topic: TopicInfo) -> None:
        old = self.topics.get(topic.name)
        if old is not None:
            self.topics_by_id.pop(old.topic_id, None)
        self.topics[topic.name] = topic
        self.topics_by_id[topic.topic_id] = topic
        self._collisions[collision_key(topic.name)] = topic.name

    def remove_topic(self, name: str) -> TopicInfo | None:
        topic = self.topics.pop(name, None)
        if topic is not None:
            self.topics_by_id.pop(topic.topic_id, None)
            if self._collisions.get(collision_key(name)) == name:
                del self._collisions[collision_key(name)]
        return topic

    def colliding_topic(self, name: str) -> str | None:
        other = self._collisions.get(collision_key(name))
        return other if other is not None and other != name else None

    def partition(self, topic: str, index: int) -> PartitionInfo | None:
        info = self.topics.get(topic)
        if info is None or not 0 <= index < len(info.partitions):
            return None
        return info.partitions[index]
