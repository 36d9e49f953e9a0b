"""`Snapshotter`: the coordination core's snapshots, written without stopping the core.

Encoding the tree takes time in proportion to its size (about 0.3 s for 200 k znodes);
done on the core, it held every request for that long (create's p99.9 of 0.5 s in
docs/BENCHMARKS.md).
So the core `fork()`s: the child inherits the applied state as it stands — the operating
system's copy-on-write keeps that image while the core goes on applying txns — encodes
it, writes `snapshot.<zxid>` atomically (temp file, fsync, rename, directory fsync) and
exits; the core learns of the exit from a worker thread (`os.waitpid`) and then prunes old
snapshots and log segments (Redis' BGSAVE works the same way).

The child closes every inherited descriptor first (client sockets, the listening socket,
the links to the client front and the broker, the txn log), so that a connection the core
closes is closed at once, and dies with the core (PR_SET_PDEATHSIG): a `kill -9` of the core
never leaves a writer behind in its data directory; a temp file it leaves is removed by the
next prune. It touches nothing but the state and its own new file, and leaves with
`os._exit` (no atexit handlers, no inherited buffers flushed).

The log segment after the snapshot is started by the core before the fork, so recovery is
correct whether the snapshot lands or not: until it does, the previous snapshot and every
segment since are kept. One child at a time; where `fork` is not available the snapshot is
written in-line, as before.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

from zoolog.coord import snapshot
from zoolog.coord.datatree import CoordState
from zoolog.server.process import die_with_parent
from zoolog.server.zk_storage import ZkStorage

log = logging.getLogger(__name__)


class Snapshotter:
    """See the module docstring."""

    def __init__(self, storage: ZkStorage, background: bool = True) -> None:
        self.storage = storage
        self.background = background and hasattr(os, "fork")
        self.child: int | None = None
        self.written = 0
        self.failed = 0
        self._waiter: asyncio.Future[tuple[int, int]] | None = None

    @property
    def running(self) -> bool:
        return self.child is not None

    def take(self, state: CoordState, zxid: int,
             on_done: Callable[[], None] | None = None) -> None:
        """Snapshot `state` (whose last txn is `zxid`): in a child if possible. The caller
        must not start another while `running`."""
        assert self.child is None
        if not self.background:
            self.storage.write_snapshot(snapshot.encode(state), zxid)
            self.written += 1
            return
        pid = os.fork()
        if pid == 0:  # the child: never returns
            code = 1
            try:
                os.closerange(3, os.sysconf("SC_OPEN_MAX"))
                die_with_parent()
                self.storage.write_snapshot_file(snapshot.encode(state), zxid)
                code = 0
            finally:
                os._exit(code)
        self.child = pid
        loop = asyncio.get_running_loop()
        self._waiter = loop.run_in_executor(None, os.waitpid, pid, 0)

        def finished(future: asyncio.Future[tuple[int, int]]) -> None:
            self.child = None
            self._waiter = None
            status = future.result()[1] if future.exception() is None else -1
            if status != -1 and os.waitstatus_to_exitcode(status) == 0:
                self.written += 1
                self.storage.prune(zxid)
            else:
                self.failed += 1
                log.error("writing the snapshot at zxid %#x failed (status %s); the txn log "
                          "keeps everything since the previous one", zxid, status)
            if on_done is not None:
                on_done()
        self._waiter.add_done_callback(finished)

    async def wait(self) -> None:
        """Until the snapshot being written (if any) is done (a clean stop)."""
        if self._waiter is not None:
            await asyncio.shield(self._waiter)
            await asyncio.sleep(0)  # let `finished` run
