"""The client's exception types (the hierarchy is drawn in the package docstring) and the
check that turns a response's error code into one.

Owns: `KafkaResponseError`, `KafkaConnectionError`, `KafkaTimeoutError`, `_check`, and the
error codes that mean "find the group coordinator again". Never: I/O, retries, or knowledge
of any request.
"""

from __future__ import annotations

from zoolog.protocol.kafka.errors import NAMES, RETRIABLE, Err, KafkaError

_COORDINATOR_ERRORS = frozenset({Err.NOT_COORDINATOR, Err.COORDINATOR_NOT_AVAILABLE,
                                 Err.COORDINATOR_LOAD_IN_PROGRESS})


class KafkaResponseError(KafkaError):
    """A broker answered with error code `code` (see the module docstring)."""

    def __init__(self, code: int, message: str = "", context: str = "") -> None:
        detail = ": ".join(part for part in (context, message) if part)
        super().__init__(code, detail)
        self.context = context

    @property
    def name(self) -> str:
        return NAMES.get(self.code, f"UNKNOWN_ERROR_{self.code}")

    @property
    def retriable(self) -> bool:
        return self.code in RETRIABLE


class KafkaConnectionError(ConnectionError):
    """No broker could be reached, or the connection to one dropped."""


class KafkaTimeoutError(KafkaConnectionError, TimeoutError):
    """A broker did not answer within the request timeout (its connection is closed)."""


def _check(code: int, message: str | None = None, context: str = "") -> None:
    if code != Err.NONE:
        raise KafkaResponseError(code, message or "", context)
