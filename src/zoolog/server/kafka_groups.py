"""`GroupRuntime`: the group coordinator's I/O inside a `KafkaNode`.

It creates `__consumer_offsets` if missing, loads every partition of it into the
`GroupCoordinator`, hands group requests (and TxnOffsetCommit, after the transaction
coordinator verified it) to the coordinator with a `(connection, slot)` token, and carries
out its outputs: `Reply` -> the response; `Persist` -> one batch appended to the
partition (a transactional batch of the producer for a transaction's offsets), fsynced,
then `persisted`; the coordinator's timer armed at `next_deadline_ms`.

A group request may wait (a parked join or sync, a commit being persisted): later requests
of its connection start once it is answered, as in Kafka.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from zoolog.broker import topics_api
from zoolog.broker.error_responses import error_response
from zoolog.broker.groups.coordinator import GroupCoordinator, Persist, Reply
from zoolog.broker.metadata import CONSUMER_OFFSETS
from zoolog.protocol.kafka.errors import Err, KafkaError
from zoolog.server.coordinator_timer import DeadlineTimer
from zoolog.server.kafka_connection import KafkaConnection, RequestContext, Slot, now_ms
from zoolog.server.kafka_coordinator_logs import coordinator_batch, records_of

if TYPE_CHECKING:
    from zoolog.server.kafka_node import KafkaNode

GROUP_APIS = (8, 9, 11, 12, 13, 14, 15, 16, 42, 47)


class GroupRuntime:
    """See the module docstring."""

    def __init__(self, node: KafkaNode) -> None:
        self.node = node
        self.coordinator: GroupCoordinator | None = None
        self._timer = DeadlineTimer(lambda: self.coordinator.next_deadline_ms()
                                    if self.coordinator is not None else None, self._tick)
        self._pending_merges: dict[int, Any] = {}
        """OffsetCommit responses waiting to merge the coordinator's answer (by slot)."""

    @property
    def groups(self) -> GroupCoordinator:
        assert self.coordinator is not None
        return self.coordinator

    async def start(self) -> None:
        node = self.node
        broker = node._broker
        settings = node.config.settings
        if CONSUMER_OFFSETS not in broker.metadata.topics:
            new = topics_api.new_topic(broker, CONSUMER_OFFSETS,
                                       settings.offsets_topic_num_partitions, 1,
                                       {"cleanup.policy": "compact",
                                        "segment.bytes": str(settings.offsets_topic_segment_bytes),
                                        "compression.type": "producer"})
            await node._create_topic(new)
        info = broker.metadata.topics[CONSUMER_OFFSETS]
        config = dataclasses.replace(node.config.groups,
                                     offsets_topic_num_partitions=len(info.partitions))
        self.coordinator = GroupCoordinator(config, random.Random())
        now = now_ms()
        for meta in info.partitions:
            partition = broker.partition(CONSUMER_OFFSETS, meta.index)
            self.coordinator.load(meta.index, records_of(partition, transactional=True), now)
        self.drain()

    def stop(self) -> None:
        self._timer.cancel()

    # --- requests -----------------------------------------------------------------------

    def call(self, context: RequestContext, request: Any) -> None:
        groups = self.groups
        key = context.slot.api_key
        now = now_ms()
        token = (context.connection, context.slot)
        context.slot.waits = True
        if key == 8:
            request = self._known_partitions_only(context, request)
            if request is None:
                return
        handlers: dict[int, Callable[[object, Any, int, int], None]] = {
            8: groups.offset_commit, 9: groups.offset_fetch, 12: groups.heartbeat,
            13: groups.leave_group, 15: groups.describe_groups, 16: groups.list_groups,
            28: groups.txn_offset_commit, 42: groups.delete_groups, 47: groups.offset_delete,
        }
        if key == 11:
            groups.join_group(token, request, context.version, context.client_id,
                              context.connection.client_host, now)
        elif key == 14:
            groups.sync_group(token, request, context.version, now)
        else:
            handlers[key](token, request, context.version, now)
        self.drain()

    def _known_partitions_only(self, context: RequestContext, request: Any) -> Any:
        """OffsetCommit for unknown topic-partitions: UNKNOWN_TOPIC_OR_PARTITION for those
        (Kafka checks its metadata before the coordinator sees the commit)."""
        broker = self.node._broker
        unknown = [(t.name, p.partition_index) for t in request.topics for p in t.partitions
                   if broker.metadata.partition(t.name, p.partition_index) is None]
        if not unknown:
            return request
        context.slot.waits = False
        response = error_response(8, request, context.version,
                                  KafkaError(Err.UNKNOWN_TOPIC_OR_PARTITION))
        known = [t for t in request.topics
                 if all(broker.metadata.partition(t.name, p.partition_index) is not None
                        for p in t.partitions)]
        if not known:
            context.connection.respond(context.slot, response)
            return None
        for topic in response.topics:
            for p in topic.partitions:
                if (topic.name, p.partition_index) not in unknown:
                    p.error_code = Err.NONE
        request.topics = known
        self._pending_merges[id(context.slot)] = response
        return request

    # --- outputs ------------------------------------------------------------------------

    def drain(self) -> None:
        for item in self.groups.take_output():
            if isinstance(item, Reply):
                self._reply(item)
            else:
                self._persist(item)
        self._timer.arm()

    def _reply(self, reply: Reply) -> None:
        token: tuple[KafkaConnection, Slot] = reply.token  # type: ignore[assignment]
        connection, slot = token
        response: Any = reply.response
        merged = self._pending_merges.pop(id(slot), None)
        if merged is not None:
            answered = {(t.name, p.partition_index): p.error_code for t in response.topics
                        for p in t.partitions}
            for topic in merged.topics:
                for p in topic.partitions:
                    p.error_code = answered.get((topic.name, p.partition_index), p.error_code)
            response = merged
        connection.respond(slot, response)

    def _persist(self, persist: Persist) -> None:
        partition = self.node._broker.partition(CONSUMER_OFFSETS, persist.partition)
        now = now_ms()
        if persist.records:
            partition.append_records(coordinator_batch(persist.records, now,
                                                       persist.producer_id,
                                                       persist.producer_epoch), now)
        future = self.node.flusher.flush([partition])

        def done(_: asyncio.Future[None]) -> None:
            self.groups.persisted(persist, now_ms())
            self.drain()
        future.add_done_callback(done)

    def transaction_completed(self, partition: int, producer_id: int, commit: bool) -> None:
        """A marker of `producer_id` is durable in `__consumer_offsets` partition
        `partition`: its transaction's offsets there become committed (or go)."""
        self.groups.transaction_completed(partition, producer_id, commit, now_ms())
        self.drain()

    def _tick(self) -> None:
        self.groups.tick(now_ms())
        self.drain()
