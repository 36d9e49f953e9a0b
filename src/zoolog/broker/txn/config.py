"""The transaction coordinator's settings (`TxnConfig`), Kafka's names and defaults,
validated on construction and readable from server.properties keys.

Owns the bounds and their checks (a bad value is a ConfigError). Never: behaviour that
depends on the settings (the coordinator's), I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import ClassVar

from zoolog.broker.groups.config import int_properties
from zoolog.errors import ConfigError

_INT32_MAX = 2**31 - 1


@dataclass(frozen=True, slots=True)
class TxnConfig:
    """The transaction coordinator's settings, Kafka's names with `.` as `_` and Kafka's
    defaults."""

    transaction_max_timeout_ms: int = 900_000
    """The longest `transaction_timeout_ms` an InitProducerId may ask for."""
    transaction_state_log_num_partitions: int = 50
    """Partitions of `__transaction_state` (which one holds a transactional id)."""
    transaction_abort_timed_out_transaction_cleanup_interval_ms: int = 10_000
    """How often `tick` looks for timed-out transactions and idle transactional ids."""
    transactional_id_expiration_ms: int = 604_800_000
    """A transactional id with no transaction for this long is forgotten (7 days)."""
    offsets_topic_num_partitions: int = 50
    """Partitions of `__consumer_offsets` (the group config's value, copied by the runtime):
    AddOffsetsToTxn adds the group's partition to the transaction."""

    PROPERTIES: ClassVar[dict[str, str]] = {
        "transaction.max.timeout.ms": "transaction_max_timeout_ms",
        "transaction.state.log.num.partitions": "transaction_state_log_num_partitions",
        "transaction.abort.timed.out.transaction.cleanup.interval.ms":
            "transaction_abort_timed_out_transaction_cleanup_interval_ms",
        "transactional.id.expiration.ms": "transactional_id_expiration_ms",
        "offsets.topic.num.partitions": "offsets_topic_num_partitions",
    }
    """server.properties key -> field."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"{f.name} must be an int, not {value!r}")
        for key, name in self.PROPERTIES.items():
            value = getattr(self, name)
            if not 1 <= value <= _INT32_MAX:
                raise ConfigError(f"{key} must be between 1 and {_INT32_MAX}, not {value}")

    @classmethod
    def from_properties(cls, properties: Mapping[str, str]) -> TxnConfig:
        """The settings named in `properties` (server.properties keys; others ignored)."""
        return cls(**int_properties(properties, cls.PROPERTIES))
