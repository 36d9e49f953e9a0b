"""Kafka's eager RangeAssignor, as a pure function over subscriptions and partition counts.

Owns the plan a group leader hands out. Never: I/O, encoding (see `consumer_protocol.py`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

RANGE_ASSIGNOR = "range"


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
