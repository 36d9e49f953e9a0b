"""`zoolog up` as a real process on fixed ports, for tests that `kill -9` it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

from zoolog.testing import wait_until


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Up:
    """A `zoolog up` process on fixed ports and a data directory."""

    def __init__(self, data_dir: Path, *extra_args: str) -> None:
        self.data_dir = data_dir
        self.extra_args = list(extra_args)
        self.zk_port = free_port()
        self.kafka_port = free_port()
        self.proc: subprocess.Popen[str] | None = None
        self.output: list[str] = []

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    def start(self) -> None:
        self.output = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "zoolog", "up", "--data-dir", str(self.data_dir), "--port",
             str(self.zk_port), "--kafka-port", str(self.kafka_port), "--log-level", "WARNING",
             *self.extra_args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            if "export ZOOKEEPER_CONNECT" in line:
                break
        else:
            raise AssertionError("zoolog up exited:\n" + "".join(self.output))
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    def kill9(self) -> None:
        assert self.proc is not None
        children = _descendants(self.proc.pid)
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        wait_until(lambda: all(_gone(pid) for pid in children), 15,
                   "the broker and the client front to die with zoolog up")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)


def _descendants(pid: int) -> list[int]:
    out: list[int] = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        for child in Path(f"/proc/{pid}/task/{tid}/children").read_text().split():
            out.append(int(child))
            out.extend(_descendants(int(child)))
    return out


def _gone(pid: int) -> bool:
    try:
        return "State:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
