"""Session ids, passwords and expiry tracking (ZooKeeper's SessionTrackerImpl, as values).

- Session ids: `((now_ms << 24) >> 8) | (server_id << 56)` at start, then +1 per session, so the
  high byte names the server that created the session.
- Passwords: Java's `new Random(sessionId ^ 0xB3415C00L).nextBytes(16)`; deterministic, so any
  server can check a reconnecting client without storing passwords.
- Expiry: a session expires `timeout_ms` after the last packet from its client, rounded up to the
  next tick boundary as ZooKeeper's ExpiryQueue does. The tracker only reports expired ids; the
  caller turns them into closeSession txns. Time comes in as an argument.
"""

from __future__ import annotations

import heapq

_MASK48 = (1 << 48) - 1
_MASK64 = (1 << 64) - 1
_MULTIPLIER = 0x5DEECE66D


def _to_signed64(value: int) -> int:
    value &= _MASK64
    return value - (1 << 64) if value >> 63 else value


def session_password(session_id: int) -> bytes:
    """The 16-byte password ZooKeeper derives for `session_id` (java.util.Random)."""
    seed = ((session_id ^ 0xB3415C00) & _MASK64 ^ _MULTIPLIER) & _MASK48
    out = bytearray()
    while len(out) < 16:
        seed = (seed * _MULTIPLIER + 0xB) & _MASK48
        rnd = seed >> 16  # next(32) as an unsigned 32-bit value
        for _ in range(min(4, 16 - len(out))):
            out.append(rnd & 0xFF)
            rnd >>= 8
    return bytes(out)


def initial_session_id(server_id: int, now_ms: int) -> int:
    """ZooKeeper's `initializeNextSessionId` (the unsigned shift keeps the high byte free)."""
    base = ((now_ms << 24) & _MASK64) >> 8
    return _to_signed64(base | (server_id << 56))


class SessionTracker:
    """Deadlines of live sessions; `expired(now_ms)` pops those past their deadline."""

    def __init__(self, tick_ms: int) -> None:
        self.tick_ms = tick_ms
        self.deadline_ms: dict[int, int] = {}
        self.timeout_ms: dict[int, int] = {}
        self._heap: list[tuple[int, int]] = []

    def _round_up(self, when_ms: int) -> int:
        tick = self.tick_ms
        return (when_ms // tick + 1) * tick

    def add(self, session_id: int, timeout_ms: int, now_ms: int) -> None:
        self.timeout_ms[session_id] = timeout_ms
        self.touch(session_id, now_ms)

    def touch(self, session_id: int, now_ms: int) -> bool:
        timeout = self.timeout_ms.get(session_id)
        if timeout is None:
            return False
        deadline = self._round_up(now_ms + timeout)
        if self.deadline_ms.get(session_id) != deadline:
            self.deadline_ms[session_id] = deadline
            heapq.heappush(self._heap, (deadline, session_id))
        return True

    def remove(self, session_id: int) -> None:
        self.timeout_ms.pop(session_id, None)
        self.deadline_ms.pop(session_id, None)

    def expired(self, now_ms: int) -> list[int]:
        out: list[int] = []
        heap = self._heap
        while heap and heap[0][0] <= now_ms:
            deadline, session_id = heapq.heappop(heap)
            if self.deadline_ms.get(session_id) == deadline:
                out.append(session_id)
                self.remove(session_id)
        return out

    def __contains__(self, session_id: int) -> bool:
        return session_id in self.timeout_ms

    def __len__(self) -> int:
        return len(self.timeout_ms)
