"""`TxnRuntime`: the transaction coordinator's I/O inside a `KafkaNode`.

- `__transaction_state` (compacted, `transaction.state.log.num.partitions`) is created the
  first time a client looks for a transaction coordinator or initialises a transactional
  producer (as Kafka does: a broker whose clients never use transactions carries no such
  topic), and loaded at every start once it exists;
- transactional InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn and EndTxn go to the
  `TransactionCoordinator` with a `(connection, slot)` token; DescribeTransactions and
  ListTransactions are answered from its state;
- TxnOffsetCommit is verified (the group's `__consumer_offsets` partition must be in the
  producer's ongoing transaction, at its epoch) and handed to the group coordinator;
- its outputs: `Reply` -> the response; `Persist` -> one record appended to its
  `__transaction_state` partition and fsynced, then `persisted` (a Complete* record is not
  waited for: a restart completes the transaction again from its Prepare* record);
  `WriteMarkers` -> a control batch appended to each partition of the transaction, all
  fsynced (a Complete* state is never durable before its markers), the group coordinator
  told of markers in `__consumer_offsets`, then `markers_written`;
- WriteTxnMarkers (the inter-broker API; `zoolog txn abort --producer-id` for a hanging
  transaction, like kafka-transactions.sh) writes markers through the same path.

The produce path asks the coordinator's `verify_produce` through `Broker.verify_txn`.

At start, once the coordinator is loaded, `resolve_hanging` aborts every transaction a
partition holds open that the coordinator does not know as Ongoing with that partition (a
hanging transaction: data whose AddPartitionsToTxn record never became durable, or written
before verification existed). Kafka leaves those to an operator (kafka-transactions.sh
find-hanging / abort); zoolog's coordinator is on the same node and knows every producer,
so it writes the ABORT marker itself and says so in the log.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from zoolog.broker import topics_api
from zoolog.broker.error_responses import error_response
from zoolog.broker.metadata import CONSUMER_OFFSETS, TRANSACTION_STATE
from zoolog.broker.partition import Partition
from zoolog.broker.txn import TransactionCoordinator, TxnState
from zoolog.broker.txn.outputs import Persist, Reply, WriteMarkers
from zoolog.protocol.kafka._generated.write_txn_markers import (
    WriteTxnMarkersRequest,
    WriteTxnMarkersResponse,
)
from zoolog.protocol.kafka.errors import Err, KafkaError
from zoolog.server.coordinator_timer import DeadlineTimer
from zoolog.server.kafka_connection import KafkaConnection, RequestContext, Slot, now_ms
from zoolog.server.kafka_coordinator_logs import coordinator_batch, records_of

if TYPE_CHECKING:
    from zoolog.server.kafka_node import KafkaNode

log = logging.getLogger(__name__)

TXN_APIS = (24, 25, 26, 27, 28, 65, 66)
_OPEN_STATES = frozenset({TxnState.ONGOING, TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT,
                          TxnState.PREPARE_EPOCH_FENCE})
TRANSACTION_STATE_SEGMENT_BYTES = 104_857_600
"""Kafka's transaction.state.log.segment.bytes."""


class TxnRuntime:
    """See the module docstring."""

    def __init__(self, node: KafkaNode) -> None:
        self.node = node
        self.coordinator: TransactionCoordinator | None = None
        self._timer = DeadlineTimer(lambda: self.coordinator.next_deadline_ms()
                                    if self.coordinator is not None else None, self._tick)
        self._creating: asyncio.Future[None] | None = None
        self.resolved_hanging = 0
        """Hanging transactions `resolve_hanging` aborted at start."""

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Build the coordinator and load `__transaction_state` if it exists (after the
        group coordinator: markers written again at load complete offsets there)."""
        node = self.node
        broker = node._broker
        offsets = broker.metadata.topics[CONSUMER_OFFSETS]
        config = dataclasses.replace(node.config.txn,
                                     offsets_topic_num_partitions=len(offsets.partitions))
        state = broker.metadata.topics.get(TRANSACTION_STATE)
        if state is not None:
            config = dataclasses.replace(
                config, transaction_state_log_num_partitions=len(state.partitions))
        self.coordinator = TransactionCoordinator(
            config, self._next_producer_id,
            lambda topic, index: broker.metadata.partition(topic, index) is not None)
        broker.verify_txn = self.coordinator.verify_produce
        if state is not None:
            self._load(len(state.partitions))
        self.resolved_hanging = self.resolve_hanging()

    def resolve_hanging(self) -> int:
        """ABORT markers for open transactions the coordinator does not hold open there
        (see the module docstring); returns how many were written."""
        ongoing: dict[int, set[tuple[str, int]]] = {}
        for meta in self.txns.transactions():
            if meta.state in _OPEN_STATES:
                ongoing[meta.producer_id] = set(meta.partitions)
        written: dict[int, Partition] = {}
        count = 0
        for (topic, index), partition in list(self.node._broker.partitions.items()):
            for entry in list(partition.producers.entries.values()):
                if entry.txn_first_offset < 0:
                    continue
                if (topic, index) in ongoing.get(entry.producer_id, ()):
                    continue
                log.warning("aborting a hanging transaction in %s-%d: producer %d (epoch %d) "
                            "opened it at offset %d and the transaction coordinator does not "
                            "hold it open", topic, index, entry.producer_id,
                            entry.producer_epoch, entry.txn_first_offset)
                if self._write_marker(topic, index, entry.producer_id, entry.producer_epoch,
                                      max(entry.coordinator_epoch, 0), False,
                                      written) == Err.NONE:
                    count += 1
                    if topic == CONSUMER_OFFSETS:  # its pending offsets go
                        self.node.group_runtime.transaction_completed(
                            index, entry.producer_id, False)
        if written:
            self.node.flusher.flush(list(written.values()))
        return count

    def _load(self, partitions: int) -> None:
        coordinator = self.txns
        now = now_ms()
        for index in range(partitions):
            partition = self.node._broker.partition(TRANSACTION_STATE, index)
            coordinator.load(index, (item for item in records_of(partition)
                                     if isinstance(item, tuple)), now)
        self.drain()

    def stop(self) -> None:
        self._timer.cancel()

    @property
    def txns(self) -> TransactionCoordinator:
        assert self.coordinator is not None
        return self.coordinator

    async def ensure_topic(self) -> None:
        """Create `__transaction_state` if it does not exist yet (once; callers wait)."""
        broker = self.node._broker
        if TRANSACTION_STATE in broker.metadata.topics:
            return
        if self._creating is None:
            self._creating = asyncio.get_running_loop().create_future()
            try:
                count = self.txns.config.transaction_state_log_num_partitions
                new = topics_api.new_topic(broker, TRANSACTION_STATE, count, 1, {
                    "cleanup.policy": "compact",
                    "segment.bytes": str(TRANSACTION_STATE_SEGMENT_BYTES),
                    "compression.type": "uncompressed",
                })
                try:
                    await self.node._create_topic(new)
                except KafkaError as exc:
                    if exc.code != Err.TOPIC_ALREADY_EXISTS:
                        raise
                info = broker.metadata.topics[TRANSACTION_STATE]
                if len(info.partitions) != count:  # created elsewhere with another count
                    self.txns.config = dataclasses.replace(
                        self.txns.config,
                        transaction_state_log_num_partitions=len(info.partitions))
                self._load(len(info.partitions))
                self._creating.set_result(None)
            except BaseException as exc:
                self._creating.set_exception(exc)
                self._creating.exception()  # retrieved: waiters get it too
                self._creating = None
                raise
        else:
            await asyncio.shield(self._creating)

    # --- producer ids -------------------------------------------------------------------

    def _next_producer_id(self) -> int:
        pid = self.node._broker.producer_ids.take()
        assert pid is not None, "the runtime keeps the producer-id block filled"
        if self.node._broker.producer_ids.remaining < 100:
            self.node._start_pid_refill()
        return pid

    # --- requests -----------------------------------------------------------------------

    def find_coordinator_ready(self, context: RequestContext, request: Any,
                               answer: Any) -> None:
        """Answer a FindCoordinator for transactional ids once the topic exists."""
        if TRANSACTION_STATE in self.node._broker.metadata.topics:
            context.connection.respond(context.slot, answer())
            return

        async def create_then_answer() -> Any:
            await self.ensure_topic()
            return answer()
        self.node.run_async_for(context, request, create_then_answer())

    def init_producer_id(self, context: RequestContext, request: Any) -> None:
        if (TRANSACTION_STATE in self.node._broker.metadata.topics
                and self.node._broker.producer_ids.remaining > 0):
            self._call(context, request)
            return
        context.slot.waits = True

        async def prepare() -> None:
            await self.ensure_topic()
            if self.node._broker.producer_ids.remaining == 0:
                await self.node._refill_producer_ids()
            if self.node._broker.producer_ids.remaining == 0:
                raise KafkaError(Err.COORDINATOR_NOT_AVAILABLE, "no producer ids left")

        def then(task: asyncio.Task[None]) -> None:
            if task.cancelled():  # the node is stopping
                return
            exc = task.exception()
            if exc is None:
                self._call(context, request)
                return
            if not isinstance(exc, KafkaError):
                log.error("preparing the transaction coordinator failed: %s", exc)
                exc = KafkaError(Err.COORDINATOR_NOT_AVAILABLE, str(exc))
            context.connection.respond(context.slot, error_response(
                context.slot.api_key, request, context.version, exc))
        asyncio.get_running_loop().create_task(prepare()).add_done_callback(then)

    def call(self, context: RequestContext, request: Any) -> None:
        key = context.slot.api_key
        if key == 27:
            self._write_txn_markers(context, request)
        elif key == 28:
            self._txn_offset_commit(context, request)
        elif key == 65:
            context.connection.respond(context.slot,
                                       self.txns.describe_transactions(request))
        elif key == 66:
            context.connection.respond(context.slot, self.txns.list_transactions(
                request, context.version, now_ms()))
        else:
            self._call(context, request)

    def _call(self, context: RequestContext, request: Any) -> None:
        txns = self.txns
        token = (context.connection, context.slot)
        context.slot.waits = True
        handler: dict[int, Callable[[object, Any, int, int], None]] = {
            22: txns.init_producer_id, 24: txns.add_partitions_to_txn,
            25: txns.add_offsets_to_txn, 26: txns.end_txn}
        handler[context.slot.api_key](token, request, context.version, now_ms())
        self.drain()

    def _txn_offset_commit(self, context: RequestContext, request: Any) -> None:
        groups = self.node.group_runtime.groups
        code, message = self.txns.verify_produce(
            request.transactional_id, request.producer_id, request.producer_epoch,
            CONSUMER_OFFSETS, groups.partition_for(request.group_id))
        if code == Err.NONE:
            self.node.group_runtime.call(context, request)
            return
        if code == Err.INVALID_PRODUCER_EPOCH and context.version >= 3:
            code = Err.PRODUCER_FENCED  # KIP-588: TxnOffsetCommit v3+ knows it
        context.connection.respond(context.slot, error_response(
            28, request, context.version, KafkaError(code, message)))

    def _write_txn_markers(self, context: RequestContext,
                           request: WriteTxnMarkersRequest) -> None:
        response = WriteTxnMarkersResponse()
        written: dict[int, Partition] = {}
        offsets_markers: list[tuple[int, int, bool]] = []
        for marker in request.markers:
            topics: list[WriteTxnMarkersResponse.WritableTxnMarkerTopicResult] = []
            response.markers.append(WriteTxnMarkersResponse.WritableTxnMarkerResult(
                producer_id=marker.producer_id, topics=topics))
            for topic in marker.topics:
                results: list[WriteTxnMarkersResponse.WritableTxnMarkerPartitionResult] = []
                topics.append(WriteTxnMarkersResponse.WritableTxnMarkerTopicResult(
                    name=topic.name, partitions=results))
                for index in topic.partition_indexes:
                    code = self._write_marker(topic.name, index, marker.producer_id,
                                              marker.producer_epoch, marker.coordinator_epoch,
                                              marker.transaction_result, written)
                    if code == Err.NONE and topic.name == CONSUMER_OFFSETS:
                        offsets_markers.append((index, marker.producer_id,
                                                marker.transaction_result))
                    results.append(WriteTxnMarkersResponse.WritableTxnMarkerPartitionResult(
                        partition_index=index, error_code=code))
        context.slot.waits = True
        slot = context.slot

        def done(_: asyncio.Future[None]) -> None:
            for index, pid, commit in offsets_markers:
                self.node.group_runtime.transaction_completed(index, pid, commit)
            context.connection.respond(slot, response)
        self.node.flusher.flush(list(written.values())).add_done_callback(done)

    def _write_marker(self, topic: str, index: int, producer_id: int, producer_epoch: int,
                      coordinator_epoch: int, commit: bool,
                      written: dict[int, Partition]) -> int:
        try:
            partition = self.node._broker.partition(topic, index)
            partition.write_marker(producer_id, producer_epoch, coordinator_epoch, commit,
                                   now_ms())
        except KafkaError as exc:
            log.warning("%s marker of producer %d (epoch %d) not written to %s-%d: %s",
                        "COMMIT" if commit else "ABORT", producer_id, producer_epoch,
                        topic, index, exc.message or exc.code)
            return exc.code
        written[id(partition)] = partition
        return Err.NONE

    # --- outputs ------------------------------------------------------------------------

    def drain(self) -> None:
        for item in self.txns.take_output():
            if isinstance(item, Reply):
                token: tuple[KafkaConnection, Slot] = item.token  # type: ignore[assignment]
                connection, slot = token
                connection.respond(slot, item.response)
            elif isinstance(item, Persist):
                self._persist(item)
            else:
                self._markers(item)
        self._timer.arm()

    def _persist(self, persist: Persist) -> None:
        partition = self.node._broker.partition(TRANSACTION_STATE, persist.partition)
        now = now_ms()
        partition.append_records(coordinator_batch([(persist.key, persist.value)], now), now)
        if not persist.sync:  # a Complete* record: a restart redoes it from Prepare*
            self.txns.persisted(persist, now)
            self.drain()
            return

        def done(_: asyncio.Future[None]) -> None:
            self.txns.persisted(persist, now_ms())
            self.drain()
        self.node.flusher.flush([partition]).add_done_callback(done)

    def _markers(self, write: WriteMarkers) -> None:
        written: dict[int, Partition] = {}
        offsets: list[int] = []
        for topic, index in write.partitions:
            if self.node._broker.metadata.partition(topic, index) is None:
                continue  # deleted meanwhile
            code = self._write_marker(topic, index, write.producer_id, write.producer_epoch,
                                      write.coordinator_epoch, write.commit, written)
            if code == Err.NONE and topic == CONSUMER_OFFSETS:
                offsets.append(index)

        def done(_: asyncio.Future[None]) -> None:
            for index in offsets:
                self.node.group_runtime.transaction_completed(index, write.producer_id,
                                                              write.commit)
            self.txns.markers_written(write, now_ms())
            self.drain()
        self.node.flusher.flush(list(written.values())).add_done_callback(done)

    def _tick(self) -> None:
        self.txns.tick(now_ms())
        self.drain()
