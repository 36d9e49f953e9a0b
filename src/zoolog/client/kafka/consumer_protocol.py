"""The consumer protocol embedded in group requests: ConsumerProtocolSubscription (JoinGroup
metadata) and ConsumerProtocolAssignment (SyncGroup assignments), each with its int16
version prefix.

Owns encoding and lenient decoding (anything that does not parse decodes to None, never
raises). Never: I/O, group state, assignment strategy (see `assignor.py`).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence

from zoolog.errors import KafkaDecodeError
from zoolog.protocol.kafka._generated.consumer_protocol import (
    ConsumerProtocolAssignment,
    ConsumerProtocolSubscription,
)

CONSUMER_PROTOCOL_TYPE = "consumer"
_INT16 = struct.Struct(">h")
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
