"""The transaction coordinator, sans-I/O: request handlers, the periodic timeout and expiry
check, recovery from `__transaction_state`, and queries (Kafka's `TransactionCoordinator`
+ `TransactionStateManager` for transaction versions 0 and 1, with KIP-890 part 1's
server-side verification).

The runtime drives it:

- it calls a handler per request (`init_producer_id`, `add_partitions_to_txn`,
  `add_offsets_to_txn`, `end_txn`) with an opaque `token` naming the request, the decoded
  request, its version and `now_ms`. Handlers return None and never raise for anything a
  client sends; every token gets exactly one Reply, at once or when a record is durable;
- it drains `take_output()`, a list in order of:
  - `Reply(token, response)`: send `response` for the request `token` now;
  - `Persist(partition, key, value, replies, ...)`: append that record to that partition of
    `__transaction_state`. Once it is durable the runtime calls `persisted(persist,
    now_ms)`, which applies the transition (a client sees it only then), queues the replies
    that waited on it, and the next step (WriteMarkers after a Prepare* state);
  - `WriteMarkers(...)`: write a COMMIT or ABORT control batch of that producer to each of
    the partitions, then call `markers_written(write, now_ms)`, which persists the
    Complete* state;
- it calls `tick(now_ms)` at `next_deadline_ms()` (every
  `transaction.abort.timed.out.transaction.cleanup.interval.ms`): Ongoing transactions
  older than their timeout are aborted with an epoch bump (the producer is fenced, as
  Kafka's `abortTimedOutTransactions` does), and transactional ids idle (Empty, Complete*)
  for `transactional.id.expiration.ms` are tombstoned and forgotten;
- before serving a partition of `__transaction_state` it calls `load(partition, records,
  now_ms)` with its records in log order; transactions that were deciding (Prepare*) have
  their markers written again, an Ongoing one keeps its start (the timeout aborts it);
- the broker asks `verify_produce` before it appends a transactional batch (Produce, and
  TxnOffsetCommit's offsets), `partition_for` for
  FindCoordinator, and `describe_transactions` / `list_transactions` / `transactions()`
  for admin requests and the CLI.

Order of effects: persist -> apply -> reply -> next step. One transactional id has at most
one transition in flight (its `pending`): any request for it meanwhile is answered
CONCURRENT_TRANSACTIONS (retriable). EndTxn is answered once the transaction is complete:
its markers and its Complete* record durable. Kafka answers as soon as the Prepare* record
is durable; its producer's next AddPartitionsToTxn then meets CONCURRENT_TRANSACTIONS
while the markers are written and backs off (librdkafka and the Java client wait about 20
ms), which caps a producer of small transactions at a few dozen per second. On one node
the markers cost a few fsyncs, so zoolog waits for them and the next transaction starts at
once.

Fencing: InitProducerId over an Ongoing transaction and the timeout bump the
epoch in memory (Ongoing -> PrepareEpochFence, never written, as in Kafka), then persist
PrepareAbort at the bumped epoch and write ABORT markers with it; the old producer's next
request is refused (PRODUCER_FENCED, or INVALID_PRODUCER_EPOCH for versions before KIP-588's
bump; INVALID_PRODUCER_EPOCH on Produce). InitProducerId answers CONCURRENT_TRANSACTIONS
at once there (Kafka answers the same once the PrepareAbort is durable); the producer
retries and gets the next epoch once the abort completed.

`coordinator_epoch` is 0, a constant: one node leads every partition of
`__transaction_state`, and only that node ever writes markers (`COORDINATOR_EPOCH`).

Never: sockets, clocks, threads, files, randomness (producer ids come from the injected
`next_producer_id`, partition existence from `known_partition`).

Layout: `TransactionCoordinator` (this module) over `state.py` (TxnState, the transition
table, TransactionMetadata), with `config.py` (TxnConfig), `records.py` (the
`__transaction_state` record format) and `outputs.py` (Reply, Persist, WriteMarkers).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from zoolog.broker.groups.partitioning import partition_for as _hash_partition
from zoolog.protocol.kafka._generated.add_offsets_to_txn import (
    AddOffsetsToTxnRequest,
    AddOffsetsToTxnResponse,
)
from zoolog.protocol.kafka._generated.add_partitions_to_txn import (
    AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse,
)
from zoolog.protocol.kafka._generated.describe_transactions import (
    DescribeTransactionsRequest,
    DescribeTransactionsResponse,
)
from zoolog.protocol.kafka._generated.end_txn import EndTxnRequest, EndTxnResponse
from zoolog.protocol.kafka._generated.init_producer_id import (
    InitProducerIdRequest,
    InitProducerIdResponse,
)
from zoolog.protocol.kafka._generated.list_transactions import (
    ListTransactionsRequest,
    ListTransactionsResponse,
)
from zoolog.protocol.kafka.errors import Err

from .config import TxnConfig
from .outputs import Persist, Reply, WriteMarkers
from .records import CorruptRecordError, decode, encode_key, encode_value
from .state import (
    EXPIRABLE,
    NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID,
    TopicPartition,
    TransactionMetadata,
    TxnLogEntry,
    TxnState,
)

__all__ = [
    "COORDINATOR_EPOCH",
    "EPOCH_EXHAUSTED",
    "OFFSETS_TOPIC",
    "TransactionCoordinator",
]

COORDINATOR_EPOCH = 0
"""The coordinator epoch of every marker: one node leads `__transaction_state`."""
OFFSETS_TOPIC = "__consumer_offsets"
EPOCH_EXHAUSTED = 32766
"""Short.MAX_VALUE - 1: an InitProducerId at this epoch gets a new producer id (the last
epoch is kept free so that the coordinator can always fence)."""

# The first version of each API whose clients know PRODUCER_FENCED (KIP-588); older
# versions are answered INVALID_PRODUCER_EPOCH instead (KafkaApis).
_INIT_FENCED_FROM = 4
_ADD_PARTITIONS_FENCED_FROM = 2
_ADD_OFFSETS_FENCED_FROM = 2
_END_TXN_FENCED_FROM = 2
_ADD_PARTITIONS_BATCHED_FROM = 4

_S = TxnState
_PREPARING = frozenset({_S.PREPARE_COMMIT, _S.PREPARE_ABORT, _S.PREPARE_EPOCH_FENCE})
_DECIDED = frozenset({_S.PREPARE_COMMIT, _S.PREPARE_ABORT})
_EPOCH_MAX = 32767

Output = Reply | Persist | WriteMarkers
_PR = AddPartitionsToTxnResponse


class TransactionCoordinator:
    """Every transactional id of every `__transaction_state` partition this node leads."""

    def __init__(self, config: TxnConfig, next_producer_id: Callable[[], int],
                 known_partition: Callable[[str, int], bool]) -> None:
        self.config = config
        self._next_producer_id = next_producer_id
        self._known_partition = known_partition
        self._txns: dict[str, TransactionMetadata] = {}
        self._markers: dict[str, WriteMarkers] = {}
        self._end_replies: dict[str, list[Reply]] = {}
        """EndTxn answers waiting for their transaction to complete (by transactional id)."""
        self._output: list[Output] = []
        self._next_check_ms: int | None = None
        self._loaded: set[int] = set()
        self.corrupt_records = 0
        """Records `load` skipped: undecodable, or of an id that belongs to another partition."""

    # -- runtime interface ---------------------------------------------------------------

    def take_output(self) -> list[Output]:
        out, self._output = self._output, []
        return out

    def next_deadline_ms(self) -> int | None:
        """When `tick` is due next: the periodic timeout and expiry check (None until the
        first call that passes a time)."""
        return self._next_check_ms

    def tick(self, now_ms: int) -> None:
        self._clock(now_ms)
        assert self._next_check_ms is not None
        if now_ms < self._next_check_ms:
            return
        self._next_check_ms = (
            now_ms + self.config.transaction_abort_timed_out_transaction_cleanup_interval_ms)
        expired_before_ms = now_ms - self.config.transactional_id_expiration_ms
        for meta in list(self._txns.values()):
            if meta.pending is not None:
                continue
            if meta.state is _S.ONGOING:
                if meta.txn_start_timestamp_ms + meta.txn_timeout_ms < now_ms:
                    self._fence_and_abort(meta, now_ms)
            elif meta.state in EXPIRABLE and meta.txn_last_update_timestamp_ms <= expired_before_ms:
                self._persist(meta, meta.target(_S.DEAD, meta.txn_last_update_timestamp_ms), [])

    def persisted(self, persist: Persist, now_ms: int) -> None:
        """`persist`'s record is durable: apply its transition, then answer what waited."""
        self._clock(now_ms)
        meta, target = persist._meta, persist._target
        tid = persist.transactional_id
        if self._txns.get(tid) is not meta or meta.pending is not target:
            # `load` replaced the id meanwhile (a runtime that reloads with records in
            # flight): the answers decided when the record was taken still go out.
            self._output.extend(persist.replies)
            return
        meta.complete(target)
        if target.state is _S.DEAD:
            del self._txns[tid]
        self._output.extend(persist.replies)
        if target.state in _DECIDED:
            self._send_markers(meta, now_ms)

    def markers_written(self, write: WriteMarkers, now_ms: int) -> None:
        """`write`'s markers are durable in every partition: persist Complete*."""
        self._clock(now_ms)
        tid = write.transactional_id
        if self._markers.get(tid) is not write:
            return  # `load` replaced the id meanwhile; it wrote the markers again
        del self._markers[tid]
        meta = self._txns[tid]
        assert meta.pending is None and meta.state in _DECIDED, meta
        assert (meta.producer_id, meta.producer_epoch) == (write.producer_id,
                                                           write.producer_epoch), meta
        self._complete(meta, now_ms)

    def load(self, partition: int, records: Iterable[tuple[bytes, bytes | None]],
             now_ms: int) -> None:
        """Rebuild the transactional ids of `partition` from its records in log order (the
        last record of an id wins; a tombstone forgets it), replacing what was held for
        that partition, then resume what was under way: markers again for Prepare*, the
        abort for PrepareEpochFence. Records that do not decode, or whose id hashes to
        another partition, are skipped and counted in `corrupt_records`."""
        self._clock(now_ms)
        self._loaded.add(partition)
        for tid in [t for t in self._txns if self.partition_for(t) == partition]:
            del self._txns[tid]
            self._markers.pop(tid, None)
            self._output.extend(self._end_replies.pop(tid, []))  # decided: they stand
        last: dict[str, TxnLogEntry | None] = {}
        for key, value in records:
            try:
                tid, entry = decode(key, value)
            except CorruptRecordError:
                self.corrupt_records += 1
                continue
            if self.partition_for(tid) != partition:
                self.corrupt_records += 1
                continue
            last.pop(tid, None)  # keep log order of the last records
            last[tid] = entry
        for tid, entry in last.items():
            if entry is None or entry.state is _S.DEAD:
                continue
            meta = TransactionMetadata.from_entry(tid, entry)
            self._txns[tid] = meta
            if meta.state in _DECIDED:
                self._send_markers(meta, now_ms)
            elif meta.state is _S.PREPARE_EPOCH_FENCE:
                self._persist(meta, meta.target(_S.PREPARE_ABORT, now_ms), [])

    # -- handlers ------------------------------------------------------------------------

    def init_producer_id(self, token: object, request: InitProducerIdRequest, version: int,
                         now_ms: int) -> None:
        self._clock(now_ms)
        tid = request.transactional_id
        if not tid:  # None is the broker's (idempotent producers); "" is invalid
            self._init_error(token, Err.INVALID_REQUEST)
            return
        timeout_ms = request.transaction_timeout_ms
        if not 0 < timeout_ms <= self.config.transaction_max_timeout_ms:
            self._init_error(token, Err.INVALID_TRANSACTION_TIMEOUT)
            return
        expected: tuple[int, int] | None = None
        if version >= 3 and (request.producer_id, request.producer_epoch) != (
                NO_PRODUCER_ID, NO_PRODUCER_EPOCH):
            if NO_PRODUCER_ID in (request.producer_id, request.producer_epoch):
                self._init_error(token, Err.INVALID_REQUEST)
                return
            expected = (request.producer_id, request.producer_epoch)
        meta = self._txns.get(tid)
        if meta is None:
            meta = TransactionMetadata(
                tid, self._next_producer_id(), NO_PRODUCER_ID, NO_PRODUCER_EPOCH,
                NO_PRODUCER_EPOCH, timeout_ms, _S.EMPTY, txn_last_update_timestamp_ms=now_ms)
            self._txns[tid] = meta
        if meta.pending is not None:
            self._init_error(token, Err.CONCURRENT_TRANSACTIONS)
            return
        if expected is not None and not _known_producer(meta, *expected):
            self._init_error(token, _versioned(Err.PRODUCER_FENCED, version, _INIT_FENCED_FROM))
            return
        if meta.state in _PREPARING:
            self._init_error(token, Err.CONCURRENT_TRANSACTIONS)
            return
        if meta.state is _S.ONGOING:
            self._fence_and_abort(meta, now_ms)
            self._init_error(token, Err.CONCURRENT_TRANSACTIONS)
            return
        target = self._init_target(meta, timeout_ms, expected, now_ms)
        if target is None:
            self._init_error(token, _versioned(Err.PRODUCER_FENCED, version, _INIT_FENCED_FROM))
            return
        self._persist(meta, target, [Reply(token, InitProducerIdResponse(
            producer_id=target.producer_id, producer_epoch=target.producer_epoch))])

    def add_partitions_to_txn(self, token: object, request: AddPartitionsToTxnRequest,
                              version: int, now_ms: int) -> None:
        self._clock(now_ms)
        if version >= _ADD_PARTITIONS_BATCHED_FROM:
            self._reply(token, _batched_unsupported(request))
            return
        wanted: dict[str, dict[int, None]] = {}
        for topic in request.v3_and_below_topics:
            wanted.setdefault(topic.name, {}).update(dict.fromkeys(topic.partitions))
        tid = request.v3_and_below_transactional_id
        if not tid:
            self._reply(token, _partition_results(wanted, lambda _t, _p: Err.INVALID_REQUEST))
            return
        unknown = {(t, p) for t, ps in wanted.items() for p in ps
                   if not self._known_partition(t, p)}
        if unknown:
            self._reply(token, _partition_results(wanted, lambda t, p: (
                Err.UNKNOWN_TOPIC_OR_PARTITION if (t, p) in unknown
                else Err.OPERATION_NOT_ATTEMPTED)))
            return
        added = frozenset((t, p) for t, ps in wanted.items() for p in ps)
        if not added:
            self._reply(token, _PR())  # nothing to add, nowhere to put an error
            return
        code, meta = self._check_adding(tid, request.v3_and_below_producer_id,
                                        request.v3_and_below_producer_epoch)
        if meta is None:
            code = _versioned(code, version, _ADD_PARTITIONS_FENCED_FROM)
            self._reply(token, _partition_results(wanted, lambda _t, _p: code))
            return
        success = Reply(token, _partition_results(wanted, lambda _t, _p: Err.NONE))
        if meta.state is _S.ONGOING and added <= meta.partitions:
            self._output.append(success)
            return
        self._persist(meta, _adding_target(meta, added, now_ms), [success])

    def add_offsets_to_txn(self, token: object, request: AddOffsetsToTxnRequest, version: int,
                           now_ms: int) -> None:
        self._clock(now_ms)
        tid = request.transactional_id
        if not tid:
            self._reply(token, AddOffsetsToTxnResponse(error_code=Err.INVALID_REQUEST))
            return
        offsets_partition = (OFFSETS_TOPIC, _hash_partition(
            request.group_id, self.config.offsets_topic_num_partitions))
        code, meta = self._check_adding(tid, request.producer_id, request.producer_epoch)
        if meta is None:
            code = _versioned(code, version, _ADD_OFFSETS_FENCED_FROM)
            self._reply(token, AddOffsetsToTxnResponse(error_code=code))
            return
        success = Reply(token, AddOffsetsToTxnResponse(error_code=Err.NONE))
        if meta.state is _S.ONGOING and offsets_partition in meta.partitions:
            self._output.append(success)
            return
        self._persist(meta, _adding_target(meta, frozenset({offsets_partition}), now_ms),
                      [success])

    def end_txn(self, token: object, request: EndTxnRequest, version: int,
                now_ms: int) -> None:
        self._clock(now_ms)
        tid = request.transactional_id
        commit = request.committed
        meta = self._txns.get(tid) if tid else None
        if not tid:
            code = Err.INVALID_REQUEST
        elif meta is None or meta.producer_id != request.producer_id:
            code = Err.INVALID_PRODUCER_ID_MAPPING
        elif (meta.producer_epoch != request.producer_epoch
              or meta.state is _S.PREPARE_EPOCH_FENCE):
            code = _versioned(Err.PRODUCER_FENCED, version, _END_TXN_FENCED_FROM)
        elif meta.pending is not None:
            code = Err.CONCURRENT_TRANSACTIONS
        elif meta.state is _S.ONGOING:
            target = meta.target(_S.PREPARE_COMMIT if commit else _S.PREPARE_ABORT, now_ms)
            self._end_replies.setdefault(tid, []).append(
                Reply(token, EndTxnResponse(error_code=Err.NONE)))
            self._persist(meta, target, [])
            return
        else:
            code = _END_TXN_RETRY.get((meta.state, commit), Err.INVALID_TXN_STATE)
        self._reply(token, EndTxnResponse(error_code=code))

    # -- for the broker ------------------------------------------------------------------

    def verify_produce(self, transactional_id: str, producer_id: int, producer_epoch: int,
                       topic: str, partition: int) -> tuple[int, str]:
        """May this producer append a transactional batch to `topic`-`partition` now
        (KIP-890 part 1)? (0, "") or (error code, why): the code is what Produce answers
        (INVALID_PRODUCER_EPOCH for a stale epoch, as Kafka's Produce does)."""
        tid = transactional_id
        meta = self._txns.get(tid)
        if meta is None:
            return (Err.INVALID_PRODUCER_ID_MAPPING,
                    f"transactional id {tid!r} is not known to the transaction coordinator")
        if meta.producer_id != producer_id:
            return (Err.INVALID_PRODUCER_ID_MAPPING,
                    f"producer id {producer_id} is not the one of transactional id {tid!r}")
        if meta.producer_epoch != producer_epoch:
            return (Err.INVALID_PRODUCER_EPOCH,
                    f"producer epoch {producer_epoch} of producer id {producer_id} is not the "
                    f"current epoch {meta.producer_epoch} of transactional id {tid!r}")
        pending = meta.pending_state
        if meta.state is not _S.ONGOING or pending not in (None, _S.ONGOING):
            now = meta.state.kafka_name + ("" if pending is None
                                           else f", {pending.kafka_name} pending")
            return (Err.INVALID_TXN_STATE,
                    f"transactional id {tid!r} has no ongoing transaction ({now})")
        if (topic, partition) not in meta.partitions:
            return (Err.INVALID_TXN_STATE,
                    f"partition {topic}-{partition} is not in the transaction of "
                    f"transactional id {tid!r} (AddPartitionsToTxn first)")
        return Err.NONE, ""

    def partition_for(self, transactional_id: str) -> int:
        """The `__transaction_state` partition of `transactional_id` (Kafka's
        `Utils.abs(hashCode) % transaction.state.log.num.partitions`)."""
        return _hash_partition(transactional_id,
                               self.config.transaction_state_log_num_partitions)

    # -- queries (admin requests, the CLI, tests) ----------------------------------------

    def describe_transactions(self, request: DescribeTransactionsRequest
                              ) -> DescribeTransactionsResponse:
        described: list[DescribeTransactionsResponse.TransactionState] = []
        for tid in request.transactional_ids:
            state = DescribeTransactionsResponse.TransactionState(transactional_id=tid)
            described.append(state)
            meta = self._txns.get(tid)
            if not tid:
                state.error_code = Err.INVALID_REQUEST
            elif meta is None or meta.state is _S.DEAD:
                state.error_code = Err.TRANSACTIONAL_ID_NOT_FOUND
            else:
                by_topic: dict[str, list[int]] = {}
                for topic, partition in sorted(meta.partitions):
                    by_topic.setdefault(topic, []).append(partition)
                state.transaction_state = meta.state.kafka_name
                state.transaction_timeout_ms = meta.txn_timeout_ms
                state.transaction_start_time_ms = meta.txn_start_timestamp_ms
                state.producer_id = meta.producer_id
                state.producer_epoch = meta.producer_epoch
                state.topics = [DescribeTransactionsResponse.TopicData(topic=t, partitions=ps)
                                for t, ps in by_topic.items()]
        return DescribeTransactionsResponse(transaction_states=described)

    def list_transactions(self, request: ListTransactionsRequest, version: int,
                          now_ms: int) -> ListTransactionsResponse:
        """Kafka's filters: by state name (names Kafka does not know are reported back in
        `unknown_state_filters` and match nothing), by producer id, and (v1+) transactions
        started more than `duration_filter` ms before `now_ms`. Dead ids are never listed."""
        states: set[TxnState] = set()
        unknown: dict[str, None] = {}
        for name in request.state_filters:
            state = TxnState.from_name(name)
            if state is None:
                unknown[name] = None
            else:
                states.add(state)
        producer_ids = set(request.producer_id_filters)
        duration_ms = request.duration_filter if version >= 1 else -1
        listed: list[ListTransactionsResponse.TransactionState] = []
        for tid, meta in self._txns.items():
            if (meta.state is _S.DEAD
                    or (producer_ids and meta.producer_id not in producer_ids)
                    or (request.state_filters and meta.state not in states)
                    or (duration_ms >= 0 and (meta.txn_start_timestamp_ms < 0 or now_ms
                                              - meta.txn_start_timestamp_ms <= duration_ms))):
                continue
            listed.append(ListTransactionsResponse.TransactionState(
                transactional_id=tid, producer_id=meta.producer_id,
                transaction_state=meta.state.kafka_name))
        return ListTransactionsResponse(unknown_state_filters=list(unknown),
                                        transaction_states=listed)

    def transactions(self) -> Iterator[TransactionMetadata]:
        """Every transactional id held (for the CLI; do not mutate)."""
        return iter(list(self._txns.values()))

    def transaction(self, transactional_id: str) -> TransactionMetadata | None:
        return self._txns.get(transactional_id)

    @property
    def loaded_partitions(self) -> frozenset[int]:
        """The `__transaction_state` partitions `load` has been called for."""
        return frozenset(self._loaded)

    # -- internals -----------------------------------------------------------------------

    def _clock(self, now_ms: int) -> None:
        if self._next_check_ms is None:
            self._next_check_ms = (
                now_ms + self.config.transaction_abort_timed_out_transaction_cleanup_interval_ms)

    def _reply(self, token: object, response: object) -> None:
        self._output.append(Reply(token, response))

    def _init_error(self, token: object, code: int) -> None:
        self._reply(token, InitProducerIdResponse(error_code=code, producer_id=NO_PRODUCER_ID,
                                                  producer_epoch=NO_PRODUCER_EPOCH))

    def _persist(self, meta: TransactionMetadata, target: TxnLogEntry,
                 replies: list[Reply], sync: bool = True) -> None:
        meta.prepare(target)
        tid = meta.transactional_id
        value = None if target.state is _S.DEAD else encode_value(target)
        self._output.append(Persist(self.partition_for(tid), encode_key(tid), value, replies,
                                    tid, meta, target, sync))

    def _check_adding(self, tid: str, producer_id: int, producer_epoch: int
                      ) -> tuple[int, TransactionMetadata | None]:
        """AddPartitionsToTxn's and AddOffsetsToTxn's checks, in Kafka's order: (error,
        None) or (NONE, the metadata to add to)."""
        meta = self._txns.get(tid)
        if meta is None or meta.producer_id != producer_id:
            return Err.INVALID_PRODUCER_ID_MAPPING, None
        if meta.producer_epoch != producer_epoch:
            return Err.PRODUCER_FENCED, None
        if meta.pending is not None or meta.state in _PREPARING:
            return Err.CONCURRENT_TRANSACTIONS, None
        return Err.NONE, meta

    def _init_target(self, meta: TransactionMetadata, timeout_ms: int,
                     expected: tuple[int, int] | None, now_ms: int) -> TxnLogEntry | None:
        """InitProducerId on Empty or Complete*: the next Empty state (None: the expected
        epoch is stale). Kafka's `prepareIncrementProducerEpoch` and
        `prepareProducerIdRotation`: without an expected epoch, or with the current one,
        bump (a new producer id once the epoch is exhausted); with the last one, this is a
        retry of a bump whose answer was lost: the current epoch again."""
        epoch = meta.producer_epoch
        if expected is None or epoch == NO_PRODUCER_EPOCH or expected[1] == epoch:
            last_epoch = NO_PRODUCER_EPOCH if expected is None else epoch
            if epoch >= EPOCH_EXHAUSTED:
                return meta.target(_S.EMPTY, now_ms, producer_id=self._next_producer_id(),
                                   producer_epoch=0, last_producer_epoch=last_epoch,
                                   txn_timeout_ms=timeout_ms, partitions=frozenset(),
                                   txn_start_timestamp_ms=-1)
            return meta.target(_S.EMPTY, now_ms, producer_epoch=epoch + 1,
                               last_producer_epoch=last_epoch, txn_timeout_ms=timeout_ms,
                               partitions=frozenset(), txn_start_timestamp_ms=-1)
        if expected[1] == meta.last_producer_epoch:
            return meta.target(_S.EMPTY, now_ms, txn_timeout_ms=timeout_ms,
                               partitions=frozenset(), txn_start_timestamp_ms=-1)
        return None

    def _fence_and_abort(self, meta: TransactionMetadata, now_ms: int) -> None:
        """Bump the epoch over an Ongoing transaction and abort it at the bumped epoch."""
        if meta.producer_epoch < _EPOCH_MAX:  # else nobody can hold a newer epoch anyway
            meta.fence_epoch(now_ms)
        self._persist(meta, meta.target(_S.PREPARE_ABORT, now_ms), [])

    def _send_markers(self, meta: TransactionMetadata, now_ms: int) -> None:
        if not meta.partitions:
            self._complete(meta, now_ms)
            return
        write = WriteMarkers(meta.transactional_id, meta.producer_id, meta.producer_epoch,
                             COORDINATOR_EPOCH, meta.state is _S.PREPARE_COMMIT,
                             tuple(sorted(meta.partitions)))
        self._markers[meta.transactional_id] = write
        self._output.append(write)

    def _complete(self, meta: TransactionMetadata, now_ms: int) -> None:
        state = _S.COMPLETE_COMMIT if meta.state is _S.PREPARE_COMMIT else _S.COMPLETE_ABORT
        self._persist(meta, meta.target(state, now_ms, partitions=frozenset()),
                      self._end_replies.pop(meta.transactional_id, []), sync=False)


_END_TXN_RETRY: dict[tuple[TxnState, bool], int] = {
    (_S.COMPLETE_COMMIT, True): Err.NONE,
    (_S.COMPLETE_ABORT, False): Err.NONE,
    (_S.PREPARE_COMMIT, True): Err.CONCURRENT_TRANSACTIONS,
    (_S.PREPARE_ABORT, False): Err.CONCURRENT_TRANSACTIONS,
}
"""EndTxn on a transaction already decided: (state, commit) -> answer; any other pair
(and Empty) is INVALID_TXN_STATE (Kafka's `endTransaction`)."""


def _versioned(code: int, version: int, fenced_from: int) -> int:
    """PRODUCER_FENCED as a client of `version` understands it (KIP-588)."""
    if code == Err.PRODUCER_FENCED and version < fenced_from:
        return Err.INVALID_PRODUCER_EPOCH
    return code


def _known_producer(meta: TransactionMetadata, producer_id: int, producer_epoch: int) -> bool:
    """KIP-360: may an InitProducerId naming this producer go on? Yes for a new id, for the
    current producer id, and for the last one if its epoch was exhausted (a retry of the
    rotation); otherwise the caller is fenced (Kafka's `isValidProducerId`)."""
    return (meta.producer_epoch == NO_PRODUCER_EPOCH
            or producer_id == meta.producer_id
            or (producer_id == meta.last_producer_id and producer_epoch >= EPOCH_EXHAUSTED))


def _adding_target(meta: TransactionMetadata, added: frozenset[TopicPartition],
                   now_ms: int) -> TxnLogEntry:
    """Ongoing with `added` joined; the transaction starts now if it was not Ongoing."""
    start_ms = now_ms if meta.state in EXPIRABLE else meta.txn_start_timestamp_ms
    return meta.target(_S.ONGOING, now_ms, partitions=frozenset(meta.partitions | added),
                       txn_start_timestamp_ms=start_ms)


def _partition_results(wanted: dict[str, dict[int, None]],
                       code_of: Callable[[str, int], int]) -> AddPartitionsToTxnResponse:
    return _PR(results_by_topic_v3_and_below=[
        _PR.AddPartitionsToTxnTopicResult(name=topic, results_by_partition=[
            _PR.AddPartitionsToTxnPartitionResult(partition_index=p,
                                                  partition_error_code=code_of(topic, p))
            for p in partitions])
        for topic, partitions in wanted.items()])


def _batched_unsupported(request: AddPartitionsToTxnRequest) -> AddPartitionsToTxnResponse:
    """v4+ (broker-to-coordinator verification batches) is not served: every partition of
    every transaction is answered UNSUPPORTED_VERSION."""
    results: dict[str, _PR.AddPartitionsToTxnResult] = {}
    for txn in request.transactions:
        if txn.transactional_id in results:
            continue
        wanted: dict[str, dict[int, None]] = {}
        for topic in txn.topics:
            wanted.setdefault(topic.name, {}).update(dict.fromkeys(topic.partitions))
        by_topic = _partition_results(wanted, lambda _t, _p: Err.UNSUPPORTED_VERSION)
        results[txn.transactional_id] = _PR.AddPartitionsToTxnResult(
            transactional_id=txn.transactional_id,
            topic_results=by_topic.results_by_topic_v3_and_below)
    return _PR(error_code=Err.UNSUPPORTED_VERSION, results_by_transaction=list(results.values()))
