"""The coordinator's deadlines: one per key (a member's session, a group's join or sync
phase, the periodic retention check), in abstract milliseconds the runtime passes in.

Owns `_Timers` (scheduling a key again replaces its deadline; due ones pop in deadline,
then scheduling, order), the timer keys and payloads. Never: read a clock, decide what an
expiry means (the coordinator's `tick` does).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from .group import ClassicGroup

_TimerKey = tuple[str, str, str]
_HEARTBEAT = "heartbeat"
_JOIN = "join"
_SYNC = "sync"
_RETENTION = "retention"
_RETENTION_KEY: _TimerKey = (_RETENTION, "", "")


class _Timers:
    """Kafka's coordinator timer: one deadline per key (scheduling a key again replaces
    it), due ones popped in deadline order (then scheduling order). A heap with lazy
    deletion, compacted when stale entries dominate."""

    __slots__ = ("_entries", "_heap", "_seq")

    def __init__(self) -> None:
        self._entries: dict[_TimerKey, tuple[int, int, object]] = {}
        self._heap: list[tuple[int, int, _TimerKey]] = []
        self._seq = 0

    def schedule(self, key: _TimerKey, deadline_ms: int, payload: object = None) -> None:
        self._seq += 1
        self._entries[key] = (deadline_ms, self._seq, payload)
        heapq.heappush(self._heap, (deadline_ms, self._seq, key))
        if len(self._heap) > 64 and len(self._heap) > 4 * len(self._entries):
            self._heap = [(d, s, k) for k, (d, s, _p) in self._entries.items()]
            heapq.heapify(self._heap)

    def cancel(self, key: _TimerKey) -> None:
        self._entries.pop(key, None)

    def has(self, key: _TimerKey) -> bool:
        return key in self._entries

    def _drop_stale(self) -> None:
        heap = self._heap
        while heap:
            _deadline, seq, key = heap[0]
            entry = self._entries.get(key)
            if entry is not None and entry[1] == seq:
                return
            heapq.heappop(heap)

    def next_deadline(self) -> int | None:
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now_ms: int) -> tuple[_TimerKey, object] | None:
        self._drop_stale()
        if not self._heap or self._heap[0][0] > now_ms:
            return None
        _deadline, _seq, key = heapq.heappop(self._heap)
        payload = self._entries.pop(key)[2]
        return key, payload

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(frozen=True, slots=True)
class _JoinTimer:
    group: ClassicGroup
    initial: bool
    delay_ms: int = 0
    remaining_ms: int = 0


@dataclass(frozen=True, slots=True)
class _SyncTimer:
    group: ClassicGroup
    generation_id: int


def _heartbeat_key(group: ClassicGroup, member_id: str) -> _TimerKey:
    return (_HEARTBEAT, group.group_id, member_id)


def _group_key(kind: str, group: ClassicGroup) -> _TimerKey:
    return (kind, group.group_id, "")


def _at_least_1(delay_ms: int) -> int:
    """Timers fire at least 1 ms ahead, so one tick never loops on its own timers."""
    return max(delay_ms, 1)
