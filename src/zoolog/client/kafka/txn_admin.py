"""Transaction administration, as kafka-transactions.sh does it: ListTransactions (to every
broker), DescribeTransactions and InitProducerId (to each transactional id's coordinator),
DescribeProducers and WriteTxnMarkers (to the partition's leader).

Owns `TxnAdmin`, the part of `KafkaClient` that looks at transactions and ends them from
outside the producer: `fence_transactional_id` (Kafka 4's `force-terminate`, Admin's
fenceProducers: an InitProducerId for the id, which aborts its open transaction and bumps
its epoch, so the producer holding it is fenced) and `abort_hanging_transaction` (an ABORT
marker written straight into one partition, for a transaction its coordinator no longer
tracks; the coordinator is not told). Every request here is retried: InitProducerId while
the coordinator answers CONCURRENT_TRANSACTIONS (it is completing the abort), a second
InitProducerId after a lost answer only bumps the epoch again, and a second ABORT marker
for a producer whose transaction is closed changes nothing in the partition. Never:
produce, begin or commit transactions (no transactional producer here), or decide which
open transaction is hanging (the caller names it).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Sequence

from zoolog.protocol.kafka._generated.describe_producers import (
    DescribeProducersRequest,
    DescribeProducersResponse,
)
from zoolog.protocol.kafka._generated.describe_transactions import (
    DescribeTransactionsRequest,
    DescribeTransactionsResponse,
)
from zoolog.protocol.kafka._generated.init_producer_id import (
    InitProducerIdRequest,
    InitProducerIdResponse,
)
from zoolog.protocol.kafka._generated.list_transactions import (
    ListTransactionsRequest,
    ListTransactionsResponse,
)
from zoolog.protocol.kafka._generated.write_txn_markers import (
    WriteTxnMarkersRequest,
    WriteTxnMarkersResponse,
)
from zoolog.protocol.kafka.errors import Err

from .cluster import KEY_TYPE_TRANSACTION, Cluster
from .errors import _COORDINATOR_ERRORS, KafkaResponseError, _check
from .values import ListedTransaction, ProducerState, TopicPartition, TransactionDescription
from .versions import (
    _DESCRIBE_PRODUCERS,
    _DESCRIBE_TRANSACTIONS,
    _INIT_PRODUCER_ID,
    _LIST_TRANSACTIONS,
    _WRITE_TXN_MARKERS,
)

FENCE_TRANSACTION_TIMEOUT_MS = 60_000
"""The transaction timeout the fencing InitProducerId carries (the broker checks it against
`transaction.max.timeout.ms`; no transaction is begun with it)."""

_WM = WriteTxnMarkersRequest


class TxnAdmin(Cluster):
    """Transactions and the producers of partitions (part of `KafkaClient`)."""

    async def list_transactions(self, states: Sequence[str] = (),
                                producer_ids: Sequence[int] = (), duration_ms: int = -1
                                ) -> list[ListedTransaction]:
        """Every transactional id of every broker's coordinator, filtered by state name,
        producer id and (ListTransactions v1+, else UNSUPPORTED_VERSION) transactions open
        for longer than `duration_ms`. A state name the broker does not know is a
        ValueError (it would match nothing)."""
        await self.refresh_metadata([])
        seen: dict[str, ListedTransaction] = {}
        for node in sorted(self.brokers):
            def build(version: int, node: int = node) -> ListTransactionsRequest:
                if version < 1 and duration_ms >= 0:
                    raise KafkaResponseError(Err.UNSUPPORTED_VERSION, "the broker cannot "
                                             "filter by duration (ListTransactions v0)",
                                             f"broker {node}")
                return ListTransactionsRequest(state_filters=list(states),
                                               producer_id_filters=list(producer_ids),
                                               duration_filter=duration_ms)

            async def once(node: int = node) -> ListTransactionsResponse:
                response, _ = await self._call(node, _LIST_TRANSACTIONS, build,
                                               ListTransactionsResponse)
                _check(response.error_code, context=f"ListTransactions from broker {node}")
                return response  # type: ignore[no-any-return]
            response = await self._retrying(once)
            if response.unknown_state_filters:
                raise ValueError("unknown transaction state(s): "
                                 + ", ".join(response.unknown_state_filters))
            for t in response.transaction_states:
                seen[t.transactional_id] = ListedTransaction(
                    t.transactional_id, t.producer_id, t.transaction_state, node)
        return sorted(seen.values())

    async def describe_transactions(self, transactional_ids: Sequence[str]
                                    ) -> list[TransactionDescription]:
        """Each id's transaction as its coordinator holds it, in the order asked; an id
        the coordinator cannot describe carries its error (TRANSACTIONAL_ID_NOT_FOUND)."""
        async def one(tid: str) -> TransactionDescription:
            context = f"transactional id {tid!r}"

            async def op(node: int) -> TransactionDescription:
                response, _ = await self._call(
                    node, _DESCRIBE_TRANSACTIONS,
                    lambda v: DescribeTransactionsRequest(transactional_ids=[tid]),
                    DescribeTransactionsResponse)
                t = response.transaction_states[0]
                if t.error_code in _COORDINATOR_ERRORS:
                    _check(t.error_code, context=context)
                coordinator = self.brokers.get(node)
                if t.error_code != Err.NONE:
                    return TransactionDescription(tid, KafkaResponseError(
                        t.error_code, context=context), coordinator=coordinator)
                return TransactionDescription(
                    tid, None, t.transaction_state, t.producer_id, t.producer_epoch,
                    t.transaction_timeout_ms, t.transaction_start_time_ms,
                    tuple(sorted(TopicPartition(d.topic, p) for d in t.topics
                                 for p in d.partitions)), coordinator)
            try:
                return await self._with_coordinator(tid, op, key_type=KEY_TYPE_TRANSACTION)
            except KafkaResponseError as exc:
                return TransactionDescription(tid, exc)
        return list(await asyncio.gather(*(one(tid) for tid in transactional_ids)))

    async def describe_producers(self, topic: str, partitions: Iterable[int] | None = None
                                 ) -> dict[int, list[ProducerState]]:
        """Per partition (default: all of the topic's), its active producers by producer
        id, as its leader's producer state holds them."""
        wanted = await self._partitions_of(topic, partitions)
        out: dict[int, list[ProducerState]] = {}

        async def once() -> dict[int, list[ProducerState]]:
            by_leader: dict[int, list[int]] = defaultdict(list)
            for p in wanted:
                if p not in out:
                    by_leader[await self._leader(TopicPartition(topic, p))].append(p)
            for leader, parts in by_leader.items():
                def build(version: int, parts: list[int] = parts) -> DescribeProducersRequest:
                    return DescribeProducersRequest(topics=[
                        DescribeProducersRequest.TopicRequest(name=topic,
                                                              partition_indexes=parts)])
                response, _ = await self._call(leader, _DESCRIBE_PRODUCERS, build,
                                               DescribeProducersResponse)
                for t in response.topics:
                    for p in t.partitions:
                        _check(p.error_code, p.error_message,
                               f"topic {topic!r} partition {p.partition_index}")
                        out[p.partition_index] = sorted(
                            (ProducerState(s.producer_id, s.producer_epoch, s.last_sequence,
                                           s.last_timestamp, s.coordinator_epoch,
                                           s.current_txn_start_offset)
                             for s in p.active_producers), key=lambda s: s.producer_id)
            return out
        return await self._retrying(once, on_retry=lambda: self._forget_topics([topic]))

    async def find_open_transaction(self, topic: str, partition: int, start_offset: int
                                    ) -> ProducerState | None:
        """The producer whose open transaction in that partition starts at `start_offset`
        (kafka-transactions.sh abort --start-offset's lookup); None if there is none."""
        producers = (await self.describe_producers(topic, [partition]))[partition]
        return next((s for s in producers if s.current_txn_start_offset == start_offset),
                    None)

    async def fence_transactional_id(
            self, transactional_id: str, *,
            transaction_timeout_ms: int = FENCE_TRANSACTION_TIMEOUT_MS) -> tuple[int, int]:
        """InitProducerId for `transactional_id` at its coordinator: its open transaction is
        aborted and the producer holding it fenced. (producer id, new epoch), once the
        abort has completed. An id the coordinator does not know yet is created, as
        Kafka's fenceProducers does."""
        context = f"transactional id {transactional_id!r}"

        async def op(node: int) -> tuple[int, int]:
            response, _ = await self._call(
                node, _INIT_PRODUCER_ID, lambda v: InitProducerIdRequest(
                    transactional_id=transactional_id,
                    transaction_timeout_ms=transaction_timeout_ms,
                    producer_id=-1, producer_epoch=-1),
                InitProducerIdResponse)
            _check(response.error_code, context=context)  # CONCURRENT_TRANSACTIONS: retried
            return response.producer_id, response.producer_epoch
        return await self._with_coordinator(transactional_id, op,
                                            key_type=KEY_TYPE_TRANSACTION)

    async def abort_hanging_transaction(self, topic: str, partition: int, producer_id: int,
                                        producer_epoch: int, coordinator_epoch: int) -> None:
        """Write an ABORT marker of that producer into the partition (WriteTxnMarkers to
        its leader, as kafka-transactions.sh abort does). The transaction's coordinator is
        not told: this is for transactions it no longer tracks."""
        tp = TopicPartition(topic, partition)
        context = f"topic {topic!r} partition {partition}"

        def build(version: int) -> WriteTxnMarkersRequest:
            return WriteTxnMarkersRequest(markers=[_WM.WritableTxnMarker(
                producer_id=producer_id, producer_epoch=producer_epoch,
                transaction_result=False, coordinator_epoch=coordinator_epoch,
                topics=[_WM.WritableTxnMarkerTopic(name=topic, partition_indexes=[partition])])])

        async def once() -> None:
            response, _ = await self._call(await self._leader(tp), _WRITE_TXN_MARKERS, build,
                                           WriteTxnMarkersResponse)
            codes = [p.error_code for m in response.markers if m.producer_id == producer_id
                     for t in m.topics if t.name == topic
                     for p in t.partitions if p.partition_index == partition]
            if not codes:
                raise KafkaResponseError(Err.UNKNOWN_SERVER_ERROR,
                                         "the answer does not name the partition", context)
            _check(codes[0], context=context)
        await self._retrying(once, on_retry=lambda: self._forget_topics([topic]))
