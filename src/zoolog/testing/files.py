"""An in-memory `FileSystem` that forgets what was not fsynced when it "crashes"."""

from __future__ import annotations

import random


class MemoryFileSystem:
    """Files as bytes; `durable` holds what survived the last fsync of each file.

    `crash(rng)` keeps, for each file, its durable bytes plus possibly a torn prefix of the
    bytes appended since (when `tear` is set), which is what a power loss can leave.
    """

    def __init__(self) -> None:
        self.files: dict[str, bytearray] = {}
        self.durable: dict[str, bytes] = {}
        self.fsyncs = 0

    def list(self) -> list[str]:
        return sorted(self.files)

    def read(self, name: str) -> bytes:
        return bytes(self.files[name])

    def append(self, name: str, data: bytes) -> None:
        self.files.setdefault(name, bytearray()).extend(data)

    def fsync(self, name: str) -> None:
        self.fsyncs += 1
        self.durable[name] = bytes(self.files[name])

    def truncate(self, name: str, size: int) -> None:
        del self.files[name][size:]

    def write_atomic(self, name: str, data: bytes) -> None:
        self.files[name] = bytearray(data)
        self.durable[name] = bytes(data)
        self.fsyncs += 1

    def remove(self, name: str) -> None:
        self.files.pop(name, None)
        self.durable.pop(name, None)

    def crash(self, rng: random.Random | None = None, tear: bool = False) -> None:
        survivors: dict[str, bytearray] = {}
        for name, data in self.files.items():
            kept = bytearray(self.durable.get(name, b""))
            if len(data) > len(kept) and data[: len(kept)] == kept and tear and rng is not None:
                extra = data[len(kept) :]
                kept += extra[: rng.randrange(len(extra) + 1)]
            if name in self.durable or kept:
                survivors[name] = kept
        self.files = survivors
        self.durable = {name: bytes(data) for name, data in survivors.items()}
