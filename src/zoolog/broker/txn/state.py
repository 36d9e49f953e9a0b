"""One transactional id's transaction: its state, producer id and epoch, partitions and
timestamps (Kafka's `TransactionState`, `TransactionMetadata` and `TxnTransitMetadata`).

States (valued by Kafka's on-disk ids) and every legal transition (`VALID_PREVIOUS` is the
table that every transition is checked against; Kafka's table for transaction versions 0
and 1, the ones zoolog speaks):

    Empty (0)             a producer id and epoch, no transaction
        -> Empty                InitProducerId bumps the epoch (or rotates the producer id)
        -> Ongoing              AddPartitionsToTxn / AddOffsetsToTxn: the transaction starts
        -> Dead                 the transactional id expired (a tombstone is written)
    Ongoing (1)           partitions joined; the timeout counts from the start timestamp
        -> Ongoing              more partitions join
        -> PrepareCommit        EndTxn(commit)
        -> PrepareAbort         EndTxn(abort)
        -> PrepareEpochFence    InitProducerId from a new producer instance, the timeout,
                                or an operator's abort: the epoch is bumped to fence the old
                                producer (in memory only, never written, as in Kafka)
    PrepareCommit (2)     decided; markers being written
        -> CompleteCommit       every partition has its COMMIT marker
    PrepareAbort (3)      decided; markers being written
        -> CompleteAbort        every partition has its ABORT marker
    CompleteCommit (4)    done
        -> Empty, Ongoing, Dead as from Empty
    CompleteAbort (5)     done
        -> Empty, Ongoing, Dead as from Empty
    Dead (6)              being forgotten (its tombstone is on its way to disk); no way out
    PrepareEpochFence (7) epoch bumped over an Ongoing transaction
        -> PrepareAbort         the abort at the bumped epoch

A transition is prepared (`TransactionMetadata.prepare`: checked, and held as `pending`
while its record is written) and completed (`complete`, once the record is durable): the
state a client sees changes only then. While a transition is pending, further requests for
the id are answered CONCURRENT_TRANSACTIONS. The one exception is the epoch fence, which is
in memory only (`fence_epoch`), at once followed by the pending PrepareAbort.

Invariants (checked by `complete`): for one producer id the epoch never decreases; a new
producer id starts at epoch 0; Ongoing only gains partitions; Empty and Complete* hold none.

Owns the state's data and the transition rules. Never: I/O, clocks, answering requests.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from zoolog.errors import LocalProtocolError

__all__ = [
    "EXPIRABLE",
    "NO_PRODUCER_EPOCH",
    "NO_PRODUCER_ID",
    "VALID_PREVIOUS",
    "IllegalTransitionError",
    "TopicPartition",
    "TransactionMetadata",
    "TxnLogEntry",
    "TxnState",
]

TopicPartition = tuple[str, int]
NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1


class TxnState(enum.IntEnum):
    """Kafka's transaction states, valued by the ids `__transaction_state` records carry."""

    EMPTY = 0
    ONGOING = 1
    PREPARE_COMMIT = 2
    PREPARE_ABORT = 3
    COMPLETE_COMMIT = 4
    COMPLETE_ABORT = 5
    DEAD = 6
    PREPARE_EPOCH_FENCE = 7

    @property
    def kafka_name(self) -> str:
        """The name ListTransactions and DescribeTransactions show ("PrepareCommit")."""
        return _NAMES[self]

    @classmethod
    def from_name(cls, name: str) -> TxnState | None:
        """The state Kafka calls `name` (exact, as Kafka matches it), or None."""
        return _BY_NAME.get(name)


_S = TxnState
_NAMES: dict[TxnState, str] = {
    _S.EMPTY: "Empty",
    _S.ONGOING: "Ongoing",
    _S.PREPARE_COMMIT: "PrepareCommit",
    _S.PREPARE_ABORT: "PrepareAbort",
    _S.COMPLETE_COMMIT: "CompleteCommit",
    _S.COMPLETE_ABORT: "CompleteAbort",
    _S.DEAD: "Dead",
    _S.PREPARE_EPOCH_FENCE: "PrepareEpochFence",
}
_BY_NAME: dict[str, TxnState] = {name: state for state, name in _NAMES.items()}

VALID_PREVIOUS: dict[TxnState, frozenset[TxnState]] = {
    _S.EMPTY: frozenset({_S.EMPTY, _S.COMPLETE_COMMIT, _S.COMPLETE_ABORT}),
    _S.ONGOING: frozenset({_S.ONGOING, _S.EMPTY, _S.COMPLETE_COMMIT, _S.COMPLETE_ABORT}),
    _S.PREPARE_COMMIT: frozenset({_S.ONGOING}),
    _S.PREPARE_ABORT: frozenset({_S.ONGOING, _S.PREPARE_EPOCH_FENCE}),
    _S.COMPLETE_COMMIT: frozenset({_S.PREPARE_COMMIT}),
    _S.COMPLETE_ABORT: frozenset({_S.PREPARE_ABORT}),
    _S.DEAD: frozenset({_S.EMPTY, _S.COMPLETE_COMMIT, _S.COMPLETE_ABORT}),
    _S.PREPARE_EPOCH_FENCE: frozenset({_S.ONGOING}),
}
"""State -> the states it may be entered from (Kafka's `validPreviousStates`)."""

EXPIRABLE: frozenset[TxnState] = frozenset({_S.EMPTY, _S.COMPLETE_COMMIT, _S.COMPLETE_ABORT})
"""States in which an idle transactional id may expire (Kafka's `isExpirationAllowed`)."""


class IllegalTransitionError(LocalProtocolError):
    """The coordinator tried a transition the table forbids: a bug in zoolog, never a
    client's fault (handlers check every request before they transition)."""


@dataclass(frozen=True, slots=True)
class TxnLogEntry:
    """A transaction's durable fields: what one `__transaction_state` record holds, and the
    target of a transition in flight. `last_producer_epoch` is never written (Kafka keeps
    it in memory only); `last_producer_id` is the producer id before the transition."""

    producer_id: int
    last_producer_id: int
    producer_epoch: int
    txn_timeout_ms: int
    state: TxnState
    partitions: frozenset[TopicPartition]
    txn_start_timestamp_ms: int
    txn_last_update_timestamp_ms: int
    last_producer_epoch: int = NO_PRODUCER_EPOCH


@dataclass(eq=False, slots=True)
class TransactionMetadata:
    """The coordinator's view of one transactional id (mutable; `pending` is the transition
    waiting for its record to be durable)."""

    transactional_id: str
    producer_id: int
    last_producer_id: int
    producer_epoch: int
    last_producer_epoch: int
    txn_timeout_ms: int
    state: TxnState
    partitions: set[TopicPartition] = field(default_factory=set)
    txn_start_timestamp_ms: int = -1
    txn_last_update_timestamp_ms: int = -1
    pending: TxnLogEntry | None = None

    @classmethod
    def from_entry(cls, transactional_id: str, entry: TxnLogEntry) -> TransactionMetadata:
        return cls(transactional_id, entry.producer_id, entry.last_producer_id,
                   entry.producer_epoch, entry.last_producer_epoch, entry.txn_timeout_ms,
                   entry.state, set(entry.partitions), entry.txn_start_timestamp_ms,
                   entry.txn_last_update_timestamp_ms)

    @property
    def pending_state(self) -> TxnState | None:
        return None if self.pending is None else self.pending.state

    def entry(self) -> TxnLogEntry:
        """The current (durable) fields as a record would hold them."""
        return TxnLogEntry(self.producer_id, self.last_producer_id, self.producer_epoch,
                           self.txn_timeout_ms, self.state, frozenset(self.partitions),
                           self.txn_start_timestamp_ms, self.txn_last_update_timestamp_ms,
                           self.last_producer_epoch)

    def target(self, state: TxnState, now_ms: int, *, producer_id: int | None = None,
               producer_epoch: int | None = None, last_producer_epoch: int | None = None,
               txn_timeout_ms: int | None = None,
               partitions: frozenset[TopicPartition] | None = None,
               txn_start_timestamp_ms: int | None = None) -> TxnLogEntry:
        """The current fields moved to `state` at `now_ms`, with the given ones changed
        (`last_producer_id` becomes the current producer id, as in Kafka's transitions)."""
        return TxnLogEntry(
            producer_id=self.producer_id if producer_id is None else producer_id,
            last_producer_id=self.producer_id,
            producer_epoch=self.producer_epoch if producer_epoch is None else producer_epoch,
            txn_timeout_ms=self.txn_timeout_ms if txn_timeout_ms is None else txn_timeout_ms,
            state=state,
            partitions=frozenset(self.partitions) if partitions is None else partitions,
            txn_start_timestamp_ms=(self.txn_start_timestamp_ms if txn_start_timestamp_ms
                                    is None else txn_start_timestamp_ms),
            txn_last_update_timestamp_ms=now_ms,
            last_producer_epoch=(self.last_producer_epoch if last_producer_epoch is None
                                 else last_producer_epoch),
        )

    def prepare(self, target: TxnLogEntry) -> TxnLogEntry:
        """Hold `target` as the pending transition (checked against the table)."""
        if self.pending is not None:
            raise IllegalTransitionError(
                f"transactional id {self.transactional_id}: preparing {target.state.kafka_name}"
                f" while {self.pending.state.kafka_name} is pending")
        _check(self.transactional_id, self.state, target.state)
        self.pending = target
        return target

    def complete(self, target: TxnLogEntry) -> None:
        """`target`'s record is durable: apply it."""
        if self.pending is not target:
            raise IllegalTransitionError(
                f"transactional id {self.transactional_id}: completing "
                f"{target.state.kafka_name}, which is not the pending transition")
        _check(self.transactional_id, self.state, target.state)
        self._check_fields(target)
        self.pending = None
        self.producer_id = target.producer_id
        self.last_producer_id = target.last_producer_id
        self.producer_epoch = target.producer_epoch
        self.last_producer_epoch = target.last_producer_epoch
        self.txn_timeout_ms = target.txn_timeout_ms
        self.state = target.state
        self.partitions = set(target.partitions)
        self.txn_start_timestamp_ms = target.txn_start_timestamp_ms
        self.txn_last_update_timestamp_ms = max(self.txn_last_update_timestamp_ms,
                                                target.txn_last_update_timestamp_ms)

    def fence_epoch(self, now_ms: int) -> None:
        """Ongoing -> PrepareEpochFence, in memory: bump the epoch so that the current
        producer is fenced (Kafka's `prepareFenceProducerEpoch`, whose state is never
        written). The bumped epoch is never handed to a client."""
        if self.pending is not None:
            raise IllegalTransitionError(
                f"transactional id {self.transactional_id}: fencing while "
                f"{self.pending.state.kafka_name} is pending")
        _check(self.transactional_id, self.state, _S.PREPARE_EPOCH_FENCE)
        if self.producer_epoch >= _EPOCH_MAX:
            raise IllegalTransitionError(
                f"transactional id {self.transactional_id}: epoch {self.producer_epoch} "
                "cannot be bumped")
        self.state = _S.PREPARE_EPOCH_FENCE
        self.producer_epoch += 1
        self.last_producer_epoch = NO_PRODUCER_EPOCH
        self.txn_last_update_timestamp_ms = max(self.txn_last_update_timestamp_ms, now_ms)

    def _check_fields(self, target: TxnLogEntry) -> None:
        tid = self.transactional_id
        if target.producer_id == self.producer_id:
            if target.producer_epoch < self.producer_epoch:
                raise IllegalTransitionError(
                    f"transactional id {tid}: epoch {self.producer_epoch} -> "
                    f"{target.producer_epoch}")
        elif target.producer_epoch != 0 or target.state is not _S.EMPTY:
            raise IllegalTransitionError(
                f"transactional id {tid}: new producer id {target.producer_id} at epoch "
                f"{target.producer_epoch} ({target.state.kafka_name})")
        if target.state is _S.ONGOING and not self.partitions <= target.partitions:
            raise IllegalTransitionError(f"transactional id {tid}: Ongoing lost partitions")
        if target.state in EXPIRABLE and target.partitions:
            raise IllegalTransitionError(
                f"transactional id {tid}: {target.state.kafka_name} with partitions")


_EPOCH_MAX = 32767  # Short.MAX_VALUE


def _check(transactional_id: str, before: TxnState, after: TxnState) -> None:
    if before not in VALID_PREVIOUS[after]:
        raise IllegalTransitionError(
            f"transactional id {transactional_id}: illegal transition "
            f"{before.kafka_name} -> {after.kafka_name}")
