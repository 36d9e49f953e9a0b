"""Offset retention: Kafka's periodic `cleanupGroupMetadata`, run from the retention timer
every offsets.retention.check.interval.ms.

Owns `Retention` (part of `GroupCoordinator`): expired offsets are tombstoned, Empty groups
left without offsets deleted (or forgotten if they were never written). Never: I/O, a clock
of its own (the runtime's `tick` passes the time).
"""

from __future__ import annotations

from collections.abc import Callable

from .group import GroupState
from .offsets import OffsetAndMetadata, TopicPartitionKey
from .records import offset_commit_key
from .state import CoordinatorState
from .timers import _RETENTION_KEY

_S = GroupState


class Retention(CoordinatorState):
    """The periodic retention check (part of `GroupCoordinator`)."""

    def _on_retention_timer(self, now_ms: int) -> None:
        """Kafka's periodic `cleanupGroupMetadata`: expire offsets, then delete Empty
        groups that have none left."""
        self._timers.schedule(_RETENTION_KEY,
                              now_ms + self.config.offsets_retention_check_interval_ms)
        retention_ms = self.config.offsets_retention_ms
        for group in list(self._groups.values()):
            if group.is_in(_S.DEAD):
                continue
            group_id = group.group_id
            offsets = self.offsets
            if not offsets.has_offsets(group_id):
                expired: list[TopicPartitionKey] = []
                all_gone = not (offsets.has_pending_transactions(group_id)
                                or offsets.has_writes_in_flight(group_id))
            else:
                base = group.offset_expiration_base()
                if base is None:
                    continue
                expired, all_gone = offsets.expired(
                    group_id, now_ms, retention_ms,
                    _by_commit_timestamp(base),
                    group.is_subscribed_to_topic)
            if all_gone and group.is_in(_S.EMPTY):
                if not group.persisted and not expired:
                    # Never written (a group whose joins all failed or timed out): forget it.
                    group.transition_to(_S.DEAD, now_ms)
                    self._cancel_group_timers(group)
                    del self._groups[group_id]
                else:
                    self._delete_group(group, now_ms)
            elif expired:
                records: list[tuple[bytes, bytes | None]] = [
                    (offset_commit_key(group_id, t, p), None) for t, p in expired]
                self._emit_persist(group_id, records, [],
                                   updates=[(group_id, t, p, None) for t, p in expired])


def _by_commit_timestamp(base: Callable[[int], int]) -> Callable[[OffsetAndMetadata], int]:
    return lambda value: base(value.commit_timestamp_ms)
