"""The broker of `zoolog up`, in a process of its own next to the coordination service.

`BrokerProcess` runs `python -m zoolog broker ...` as a child, waits for its ready line,
and restarts it if it dies (after a pause if it dies at once, so that a broker that cannot
start does not spin). The child runs in its own process group (a terminal's Ctrl-C reaches
`zoolog up`, which stops it in order) and dies with its parent (PR_SET_PDEATHSIG): `kill -9` of
`zoolog up` takes the broker with it, and the restarted `zoolog up` recovers the broker's
logs and resumes its coordination session. `stop()` sends SIGTERM (the broker flushes,
closes its logs and its session) and waits; the coordination service must outlive it.

Why a process: the broker's data path (produce, fetch, fsync) and the coordination
service's request path each get a CPU core, so that neither's load slows the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from zoolog.errors import StartupError

log = logging.getLogger(__name__)

READY_PREFIX = "zoolog broker ready on "
START_TIMEOUT_S = 60.0
RESTART_DELAY_S = 2.0
STOP_TIMEOUT_S = 30.0


class BrokerProcess:
    """See the module docstring."""

    def __init__(self, args: list[str]) -> None:
        self.args = args
        self.process: asyncio.subprocess.Process | None = None
        self.bootstrap = ""
        self.ready_line = ""
        self.restarts = 0
        self._stopping = False
        self._watcher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the broker and wait for it to serve (StartupError if it cannot)."""
        env = dict(os.environ, ZOOLOG_DIE_WITH_PARENT="1")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "zoolog", "broker", *self.args,
            stdout=subprocess.PIPE, env=env,
            # its own process group: a terminal's Ctrl-C reaches `zoolog up` alone, which
            # then stops the broker (SIGTERM) before the coordination service
            start_new_session=True)
        assert self.process.stdout is not None
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), START_TIMEOUT_S)
        except TimeoutError as exc:
            self.process.kill()
            raise StartupError(f"the broker did not start within {START_TIMEOUT_S:.0f} s") from exc
        text = line.decode(errors="replace").strip()
        if not text.startswith(READY_PREFIX):
            code = await self.process.wait()
            raise StartupError(f"the broker exited before serving (exit code {code}); its "
                               f"error is above")
        self.ready_line = text
        self.bootstrap = text[len(READY_PREFIX):].split()[0]
        self._watcher = asyncio.get_running_loop().create_task(self._watch(self.process))

    async def _watch(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        started = asyncio.get_running_loop().time()
        while await process.stdout.readline():
            pass  # the broker prints only its ready line; keep its pipe drained
        code = await process.wait()
        if self._stopping:
            return
        log.error("the broker process exited (exit code %s); starting a new one", code)
        self.restarts += 1
        ran_s = asyncio.get_running_loop().time() - started
        delay = RESTART_DELAY_S if ran_s < 5 else 0.0
        while not self._stopping:
            await asyncio.sleep(delay)
            try:
                await self.start()
                return
            except StartupError as exc:
                log.error("%s; trying again", exc)
                delay = RESTART_DELAY_S

    async def stop(self) -> None:
        self._stopping = True
        process = self.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            log.error("the broker did not stop within %.0f s; killing it", STOP_TIMEOUT_S)
            process.kill()
            await process.wait()
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher


def broker_args(data_dir: Path, host: str, port: int, zookeeper: str,
                properties: list[str], no_fsync: bool, log_level: str) -> list[str]:
    """The `zoolog broker` command line `zoolog up` starts."""
    args = ["--data-dir", str(data_dir), "--host", host, "--port", str(port),
            "--zookeeper", zookeeper, "--dev", "--log-level", log_level]
    for path in properties:
        args += ["--config", path]
    if no_fsync:
        args.append("--no-fsync")
    return args
