"""`MemoryLogFileSystem`: the log store's file system in memory, able to crash like a disk.

The model (honest, and deliberately simple):

* Every file keeps two byte strings: what a read sees now (`data`) and what survived its
  last `fsync` (`durable`). A crash keeps `durable`, plus, when `tear` is set, a random prefix
  of the bytes appended after it (a torn write). A file truncated (or rewritten) below its
  durable bytes and not fsynced again comes back with its durable bytes: the truncation is
  not durable until the fsync.
* Every directory keeps its entries now and as of its last `fsync_dir`. A crash restores the
  entries of the last `fsync_dir` (recursively: the data directory's durable entries say which
  partition directories exist, each of those its own durable files). So a created, renamed or
  removed name is only durable once its directory was fsynced; a file that was fsynced but
  whose name never was is lost. Renames move one node (file or directory) between entries;
  a rename across directories is durable per side (both sides need their `fsync_dir`).
* `write_atomic` is durable at once (the real one writes a temporary file, fsyncs it, renames
  and fsyncs the directory), so it also makes every other name in its directory durable.

Nesting is one level: the data directory holds files and directories, directories hold files.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from zoolog.logstore.files import Buffer, Names


class _File:
    __slots__ = ("data", "durable")

    def __init__(self, data: bytes = b"", durable: bytes = b"") -> None:
        self.data = bytearray(data)
        self.durable = durable


class _Dir:
    __slots__ = ("durable_entries", "entries")

    def __init__(self) -> None:
        self.entries: dict[str, _File | _Dir] = {}
        self.durable_entries: dict[str, _File | _Dir] = {}


class MemoryLogFileSystem:
    """See the module docstring. `fsyncs` counts fsync and fsync_dir calls."""

    def __init__(self) -> None:
        self.root = _Dir()
        self.fsyncs = 0

    # ------------------------------------------------------------------ lookups

    def _dir(self, dir: str) -> _Dir:
        if dir == "":
            return self.root
        node = self.root.entries.get(dir)
        if not isinstance(node, _Dir):
            raise FileNotFoundError(dir)
        return node

    def _split(self, path: str) -> tuple[_Dir, str]:
        dir, _, name = path.rpartition("/")
        return self._dir(dir), name

    def _file(self, path: str) -> _File:
        parent, name = self._split(path)
        node = parent.entries.get(name)
        if not isinstance(node, _File):
            raise FileNotFoundError(path)
        return node

    def exists(self, path: str) -> bool:
        try:
            self._file(path)
        except FileNotFoundError:
            return False
        return True

    # ------------------------------------------------------------------ LogFileSystem

    def list_dirs(self) -> Names:
        return sorted(n for n, node in self.root.entries.items() if isinstance(node, _Dir))

    def list(self, dir: str) -> Names:
        return sorted(n for n, node in self._dir(dir).entries.items() if isinstance(node, _File))

    def make_dir(self, dir: str) -> None:
        if not isinstance(self.root.entries.get(dir), _Dir):
            self.root.entries[dir] = _Dir()

    def remove_dir(self, dir: str) -> None:
        if isinstance(self.root.entries.get(dir), _Dir):
            del self.root.entries[dir]

    def size(self, path: str) -> int:
        return len(self._file(path).data)

    def read(self, path: str, position: int, size: int) -> bytes:
        return bytes(self._file(path).data[position : position + size])

    def append(self, path: str, parts: Sequence[Buffer]) -> None:
        parent, name = self._split(path)
        node = parent.entries.get(name)
        if node is None:
            node = parent.entries[name] = _File()
        if not isinstance(node, _File):
            raise IsADirectoryError(path)
        for part in parts:
            node.data += part

    def truncate(self, path: str, size: int) -> None:
        del self._file(path).data[size:]

    def fsync(self, path: str) -> None:
        node = self._file(path)
        self.fsyncs += 1
        node.durable = bytes(node.data)

    def fsync_dir(self, dir: str) -> None:
        node = self._dir(dir)
        self.fsyncs += 1
        node.durable_entries = dict(node.entries)

    def rename(self, path: str, new_path: str) -> None:
        parent, name = self._split(path)
        new_parent, new_name = self._split(new_path)
        node = parent.entries.pop(name, None)
        if node is None:
            raise FileNotFoundError(path)
        new_parent.entries[new_name] = node

    def write_atomic(self, path: str, data: Buffer) -> None:
        parent, name = self._split(path)
        parent.entries[name] = _File(bytes(data), bytes(data))
        self.fsync_dir(path.rpartition("/")[0])

    def remove(self, path: str) -> None:
        parent, name = self._split(path)
        if isinstance(parent.entries.get(name), _File):
            del parent.entries[name]

    def close(self, path: str) -> None:
        pass

    # ------------------------------------------------------------------ faults

    def crash(self, rng: random.Random | None = None, tear: bool = False) -> None:
        """Lose everything not durable (see the module docstring); with `tear`, each file
        keeps a random prefix of its unsynced appended bytes."""
        self.root = self._survivor(self.root, rng if tear else None)

    def _survivor(self, node: _Dir, rng: random.Random | None) -> _Dir:
        out = _Dir()
        for name, child in node.durable_entries.items():
            if isinstance(child, _Dir):
                out.entries[name] = self._survivor(child, rng)
            else:
                kept = child.durable
                data = child.data
                if rng is not None and len(data) > len(kept) and data[: len(kept)] == kept:
                    extra = len(data) - len(kept)
                    kept = bytes(data[: len(kept) + rng.randrange(extra + 1)])
                out.entries[name] = _File(kept, kept)
        out.durable_entries = dict(out.entries)
        return out

    def corrupt(self, path: str, position: int) -> None:
        """Flip one byte, durably (bit rot or a misdirected write)."""
        node = self._file(path)
        node.data[position] ^= 0xFF
        node.durable = bytes(node.data)

    def sync_everything(self) -> None:
        """Make every byte and name durable (a clean machine shutdown)."""
        for node in [self.root, *self.root.entries.values()]:
            if isinstance(node, _Dir):
                node.durable_entries = dict(node.entries)
                for child in node.entries.values():
                    if isinstance(child, _File):
                        child.durable = bytes(child.data)
