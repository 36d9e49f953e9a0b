"""The file system the log store runs on: `LogFileSystem` (a Protocol) and `FileSlice`.

Owns the vocabulary between the sans-I/O log store and whatever really holds the bytes
(`zoolog.server.log_files.OsLogFileSystem` on disk, `zoolog.testing.log_files.
MemoryLogFileSystem` in memory, which can crash). Never does I/O itself.

Paths are relative strings under one data directory: `"<dir>/<name>"` for a file in a
partition directory, `"<name>"` for a file at the top (checkpoints), and `""` names the data
directory itself (for `list("")` and `fsync_dir("")`). No path has a leading `/` or a `..`.

Durability contract every implementation keeps (and `MemoryLogFileSystem` models):

* `append` and `truncate` reach the file at once (later reads see them) but survive a crash
  only after `fsync(path)`;
* creating a file (its first `append`), `rename`, `remove`, `make_dir` and `remove_dir` survive
  a crash only after `fsync_dir` of the directory holding the name;
* `write_atomic` is durable when it returns (temporary file, fsync, rename, directory fsync):
  after a crash the file holds either the old or the new bytes, whole.

`fsync`, `fsync_dir`, `read` and `write_atomic` may be called from a worker thread while the
main thread appends to other files or to the same one; nothing else may.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

Buffer = bytes | bytearray | memoryview
Names = list[str]
"""(`list` is also a method name below, so annotations use this alias.)"""


class FileSlice(NamedTuple):
    """`size` bytes of the file `path` from byte `position`: what a fetch sends with
    `os.sendfile`. `len()` is the byte size (the protocol encoder splices any object with a
    length), so `_make`/`_replace` of NamedTuple do not work on it: build it directly."""

    path: str
    position: int
    size: int

    def __len__(self) -> int:
        return self.size


class LogFileSystem(Protocol):
    """See the module docstring for the path convention and the durability contract."""

    def list_dirs(self) -> Names:
        """The directories directly under the data directory, sorted."""
        ...

    def list(self, dir: str) -> Names:
        """The names of the files in `dir` (not paths), sorted; `""` is the data directory."""
        ...

    def make_dir(self, dir: str) -> None: ...

    def remove_dir(self, dir: str) -> None:
        """Remove `dir` and everything in it (missing is fine)."""
        ...

    def size(self, path: str) -> int:
        """The file's size in bytes; FileNotFoundError if it does not exist."""
        ...

    def read(self, path: str, position: int, size: int) -> bytes:
        """Up to `size` bytes from `position` (fewer at the end of the file)."""
        ...

    def append(self, path: str, parts: Sequence[Buffer]) -> None:
        """Append the parts, in order, in one gathered write (creating the file if needed)."""
        ...

    def truncate(self, path: str, size: int) -> None: ...

    def fsync(self, path: str) -> None:
        """Make the file's bytes durable (fdatasync); FileNotFoundError if it is gone."""
        ...

    def fsync_dir(self, dir: str) -> None:
        """Make the names in `dir` (creates, renames, removes) durable."""
        ...

    def rename(self, path: str, new_path: str) -> None:
        """Rename a file (or a top-level directory), replacing `new_path` if it exists."""
        ...

    def write_atomic(self, path: str, data: Buffer) -> None: ...

    def remove(self, path: str) -> None:
        """Remove a file (missing is fine)."""
        ...

    def close(self, path: str) -> None:
        """Release any handle kept for `path` (the file stays)."""
        ...
