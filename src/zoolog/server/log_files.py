"""`OsLogFileSystem`: the log store's `LogFileSystem` on local disk, fsync meant.

One data directory; paths are relative to it (see `zoolog.logstore.files`). File descriptors
are opened on first use (read-write, append mode: every append lands at the end, `pread`
reads anywhere) and kept until `close`, `remove` or `remove_dir`; `rename` keeps the
descriptor under the new name. Appends are one `os.writev` per call (split at IOV_MAX parts,
and resumed after a short write); `fsync` is `os.fdatasync`, skipped for a kept descriptor
with no write or truncation since its last fsync (an fdatasync of an unchanged file still
costs about 85 µs here, and a flush names every file of a segment, most of them unchanged).

Threads: the main thread does everything; a worker thread may call `fsync`, `fsync_dir`,
`read` and `write_atomic` (and append to files only it writes, like a cleaner's output).
The descriptor table is guarded by a lock so a worker never uses a descriptor that the main
thread is closing (closing happens under the same lock).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path

from zoolog.logstore.files import Buffer, Names

_IOV_MAX = 1024
_OPEN_FLAGS = os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)


class OsLogFileSystem:
    """See the module docstring."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._base = str(self.dir)
        self._fds: dict[str, int] = {}
        self._lock = threading.Lock()
        self._writes: dict[int, int] = {}
        """fd -> writes and truncations through it (bumped before they happen)."""
        self._synced: dict[int, int] = {}
        """fd -> the `_writes` count its last fdatasync covered."""

    def _abs(self, path: str) -> str:
        return f"{self._base}/{path}" if path else self._base

    def fd(self, path: str, create: bool = False) -> int:
        """The kept descriptor of `path`, opened if needed (for `os.sendfile` of a
        FileSlice). FileNotFoundError if the file does not exist and `create` is false."""
        fd = self._fds.get(path)
        if fd is not None:
            return fd
        with self._lock:
            fd = self._fds.get(path)
            if fd is None:
                flags = _OPEN_FLAGS if create else _OPEN_FLAGS & ~os.O_CREAT
                fd = os.open(self._abs(path), flags, 0o644)
                self._fds[path] = fd
            return fd

    def _drop(self, path: str) -> None:
        with self._lock:
            fd = self._fds.pop(path, None)
            if fd is not None:
                self._forget(fd)
                os.close(fd)

    def _forget(self, fd: int) -> None:
        """A descriptor is closed: its number may be reused for another file."""
        self._writes.pop(fd, None)
        self._synced.pop(fd, None)

    def _written(self, fd: int) -> None:
        self._writes[fd] = self._writes.get(fd, 0) + 1

    # ------------------------------------------------------------------ LogFileSystem

    def list_dirs(self) -> Names:
        with os.scandir(self._base) as it:
            return sorted(e.name for e in it if e.is_dir(follow_symlinks=False))

    def list(self, dir: str) -> Names:
        with os.scandir(self._abs(dir)) as it:
            return sorted(e.name for e in it if e.is_file(follow_symlinks=False)
                          and not e.name.endswith(".atomic-tmp"))

    def make_dir(self, dir: str) -> None:
        os.makedirs(self._abs(dir), exist_ok=True)

    def remove_dir(self, dir: str) -> None:
        prefix = dir + "/"
        with self._lock:
            for path in [p for p in self._fds if p.startswith(prefix)]:
                fd = self._fds.pop(path)
                self._forget(fd)
                os.close(fd)
        shutil.rmtree(self._abs(dir), ignore_errors=True)

    def size(self, path: str) -> int:
        fd = self._fds.get(path)
        if fd is not None:
            return os.fstat(fd).st_size
        return os.stat(self._abs(path)).st_size

    def read(self, path: str, position: int, size: int) -> bytes:
        return os.pread(self.fd(path), size, position)

    def append(self, path: str, parts: Sequence[Buffer]) -> None:
        fd = self.fd(path, create=True)
        self._written(fd)
        if len(parts) == 1:
            view = memoryview(parts[0])
            written = os.write(fd, view)
            if written < len(view):
                _write_rest(fd, [view], written)
            return
        if len(parts) <= _IOV_MAX:
            written = os.writev(fd, parts)
            if written < sum(map(len, parts)):
                _write_rest(fd, parts, written)
            return
        for start in range(0, len(parts), _IOV_MAX):
            chunk = parts[start : start + _IOV_MAX]
            written = os.writev(fd, chunk)
            if written < sum(map(len, chunk)):
                _write_rest(fd, chunk, written)

    def truncate(self, path: str, size: int) -> None:
        fd = self._fds.get(path)
        if fd is not None:
            self._written(fd)
            os.ftruncate(fd, size)
        else:
            os.truncate(self._abs(path), size)

    def fsync(self, path: str) -> None:
        with self._lock:
            fd = self._fds.get(path)
            if fd is not None:
                writes = self._writes.get(fd, 0)
                if self._synced.get(fd) == writes:
                    return  # nothing written through it since its last fdatasync
                os.fdatasync(fd)
                self._synced[fd] = writes
                return
        fd = os.open(self._abs(path), os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            os.fdatasync(fd)
        finally:
            os.close(fd)

    def fsync_dir(self, dir: str) -> None:
        fd = os.open(self._abs(dir), os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def rename(self, path: str, new_path: str) -> None:
        with self._lock:
            old = self._fds.pop(new_path, None)
            if old is not None:
                self._forget(old)
                os.close(old)
            os.replace(self._abs(path), self._abs(new_path))
            fd = self._fds.pop(path, None)
            if fd is not None:
                self._fds[new_path] = fd
            if "/" not in path:  # a directory: its files' descriptors follow it
                prefix = path + "/"
                for moved in [p for p in self._fds if p.startswith(prefix)]:
                    self._fds[new_path + moved[len(path):]] = self._fds.pop(moved)

    def write_atomic(self, path: str, data: Buffer) -> None:
        temp = self._abs(path) + ".atomic-tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0),
                     0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        with self._lock:
            old = self._fds.pop(path, None)
            if old is not None:
                self._forget(old)
                os.close(old)
            os.replace(temp, self._abs(path))
        self.fsync_dir(path.rpartition("/")[0])

    def remove(self, path: str) -> None:
        self._drop(path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._abs(path))

    def close(self, path: str) -> None:
        self._drop(path)

    def close_all(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()
            self._writes.clear()
            self._synced.clear()


def _write_rest(fd: int, parts: Sequence[Buffer], written: int) -> None:
    """Finish a short gathered write: skip the `written` bytes, write the rest."""
    for part in parts:
        view = memoryview(part).cast("B")
        if written >= len(view):
            written -= len(view)
            continue
        view = view[written:]
        written = 0
        while view:
            view = view[os.write(fd, view):]
