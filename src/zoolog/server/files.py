"""The real `FileSystem` for Raft storage: one directory on local disk, fsync meant."""

from __future__ import annotations

import os
from pathlib import Path


class OsFileSystem:
    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._fds: dict[str, int] = {}

    def _fd(self, name: str) -> int:
        fd = self._fds.get(name)
        if fd is None:
            fd = os.open(self.dir / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            self._fds[name] = fd
            self._fsync_dir()
        return fd

    def _fsync_dir(self) -> None:
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def list(self) -> list[str]:
        return sorted(p.name for p in self.dir.iterdir() if p.is_file() and p.name[0] != "."
                      and not p.name.endswith(".tmp"))

    def read(self, name: str) -> bytes:
        return (self.dir / name).read_bytes()

    def append(self, name: str, data: bytes) -> None:
        fd = self._fd(name)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]

    def fsync(self, name: str) -> None:
        os.fdatasync(self._fd(name))

    def truncate(self, name: str, size: int) -> None:
        os.truncate(self.dir / name, size)

    def write_atomic(self, name: str, data: bytes) -> None:
        temp = self.dir / (name + ".tmp")
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, self.dir / name)
        self._fsync_dir()

    def remove(self, name: str) -> None:
        fd = self._fds.pop(name, None)
        if fd is not None:
            os.close(fd)
        (self.dir / name).unlink(missing_ok=True)
        self._fsync_dir()

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
