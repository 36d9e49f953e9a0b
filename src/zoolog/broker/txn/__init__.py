"""Kafka's transaction coordinator (InitProducerId for transactional ids, AddPartitionsToTxn,
AddOffsetsToTxn, EndTxn, the transaction timeout, `__transaction_state`), sans-I/O.
`TransactionCoordinator` is the entry point; see its module for how a runtime drives it."""

from .config import TxnConfig
from .coordinator import COORDINATOR_EPOCH, EPOCH_EXHAUSTED, OFFSETS_TOPIC, TransactionCoordinator
from .outputs import Persist, Reply, WriteMarkers
from .records import CorruptRecordError, decode, encode_key, encode_value
from .state import (
    EXPIRABLE,
    VALID_PREVIOUS,
    IllegalTransitionError,
    TopicPartition,
    TransactionMetadata,
    TxnLogEntry,
    TxnState,
)

__all__ = [
    "COORDINATOR_EPOCH",
    "EPOCH_EXHAUSTED",
    "EXPIRABLE",
    "OFFSETS_TOPIC",
    "VALID_PREVIOUS",
    "CorruptRecordError",
    "IllegalTransitionError",
    "Persist",
    "Reply",
    "TopicPartition",
    "TransactionCoordinator",
    "TransactionMetadata",
    "TxnConfig",
    "TxnLogEntry",
    "TxnState",
    "WriteMarkers",
    "decode",
    "encode_key",
    "encode_value",
]
