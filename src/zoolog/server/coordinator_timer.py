"""`DeadlineTimer`: one event-loop timer that follows a sans-I/O coordinator's
`next_deadline_ms()` and calls its tick there (the group and transaction runtimes).

Owns the armed timer and the deadline it was armed for. Never: what a tick does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from zoolog.server.kafka_connection import now_ms


class DeadlineTimer:
    def __init__(self, next_deadline_ms: Callable[[], int | None],
                 tick: Callable[[], None]) -> None:
        self._next_deadline_ms = next_deadline_ms
        self._tick = tick
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: int | None = None

    def arm(self) -> None:
        """(Re)arm for the coordinator's current deadline, if it moved."""
        deadline = self._next_deadline_ms()
        if deadline is None or deadline == self._deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._deadline = deadline
        delay = max(0.0, (deadline - now_ms()) / 1000)
        self._timer = asyncio.get_running_loop().call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._deadline = None
        self._tick()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._deadline = None
