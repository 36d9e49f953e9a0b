"""Which partition of `__consumer_offsets` holds a group: Java's `String.hashCode` and
Kafka's `Utils.abs(hash) % partitions`, bit for bit (a group must live where Kafka would
put it).

Owns the two pure functions. Never: state, I/O.
"""

from __future__ import annotations


def java_string_hash(text: str) -> int:
    """Java's `String.hashCode`: 31-polynomial over UTF-16 code units, in int32."""
    data = text.encode("utf-16-be", "surrogatepass")
    h = 0
    for i in range(0, len(data), 2):
        h = (31 * h + ((data[i] << 8) | data[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(group_id: str, partitions: int) -> int:
    """Kafka's `Utils.abs(groupId.hashCode) % partitions` (`Utils.abs(MIN_VALUE)` is 0)."""
    h = java_string_hash(group_id)
    return (0 if h == -(2**31) else abs(h)) % partitions
