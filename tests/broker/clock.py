"""`TickingClock`: the fake clock the sans-I/O coordinator harnesses share (groups, txn).

A harness mixing it in has `now` (ms), `coord` (a coordinator with `next_deadline_ms()`
and `tick(now_ms)`) and `drain()` (takes the coordinator's output)."""

from __future__ import annotations

from typing import Any


class TickingClock:
    now: int
    coord: Any

    def drain(self) -> None:
        raise NotImplementedError

    def advance(self, ms: int) -> None:
        """Let `ms` pass, ticking at every deadline on the way."""
        target = self.now + ms
        while (deadline := self.coord.next_deadline_ms()) is not None and deadline <= target:
            self.now = max(self.now, deadline)
            self.coord.tick(self.now)
            self.drain()
        self.now = target
        self.coord.tick(self.now)
        self.drain()
