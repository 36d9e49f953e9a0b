"""An already-encoded jute record: the reply body of hot paths, built straight from bytes."""

from __future__ import annotations


class RawRecord(bytes):
    """Bytes that behave as a jute record (`write`, `to_bytes`), e.g. a packed Stat."""

    __slots__ = ()

    def write(self, out: bytearray) -> None:
        out += self

    def to_bytes(self) -> bytes:
        return bytes(self)
