"""Watch registrations of one server's connections, and which watchers a change fires.

Owns two tables, as ZooKeeper's DataTree does: data watches (getData, exists, persistent and
persistent-recursive watches) and child watches (getChildren, persistent). Each maps a path to
the watchers (connection ids) on it and the mode of each. Never touches a connection: `trigger`
returns the watchers, the caller delivers the events.

Rules (ZooKeeper 3.8 `WatchManager.triggerWatch`):
- a standard watch fires once and is removed; persistent ones stay until removeWatches;
- a persistent-recursive watch on an ancestor fires for NodeCreated, NodeDeleted and
  NodeDataChanged below it, never for NodeChildrenChanged;
- NodeDeleted fires the node's data and child watchers, each watcher once;
- watches are not replicated state: they vanish with their connection.
"""

from __future__ import annotations

from enum import IntEnum

from zoolog.coord.paths import parent_of
from zoolog.protocol.zk.opcodes import EVENT, plain_ints


class Mode(IntEnum):
    STANDARD = 0
    PERSISTENT = 1
    PERSISTENT_RECURSIVE = 2


MODE = plain_ints(Mode)

_DATA_EVENTS = (EVENT.NodeCreated, EVENT.NodeDataChanged)


class WatchTable:
    """path -> {watcher: mode} plus the reverse index watcher -> paths."""

    __slots__ = ("by_path", "by_watcher", "recursive_count")

    def __init__(self) -> None:
        self.by_path: dict[str, dict[int, Mode]] = {}
        self.by_watcher: dict[int, set[str]] = {}
        self.recursive_count = 0

    def add(self, path: str, watcher: int, mode: Mode) -> None:
        watchers = self.by_path.setdefault(path, {})
        previous = watchers.get(watcher)
        if previous is not None and previous != MODE.STANDARD and mode == MODE.STANDARD:
            return  # a persistent watch already covers a one-shot one
        if previous == MODE.PERSISTENT_RECURSIVE:
            self.recursive_count -= 1
        if mode == MODE.PERSISTENT_RECURSIVE:
            self.recursive_count += 1
        watchers[watcher] = mode
        self.by_watcher.setdefault(watcher, set()).add(path)

    def remove(self, path: str, watcher: int) -> bool:
        watchers = self.by_path.get(path)
        if watchers is None or watcher not in watchers:
            return False
        if watchers.pop(watcher) == MODE.PERSISTENT_RECURSIVE:
            self.recursive_count -= 1
        if not watchers:
            del self.by_path[path]
        paths = self.by_watcher.get(watcher)
        if paths is not None:
            paths.discard(path)
            if not paths:
                del self.by_watcher[watcher]
        return True

    def has(self, path: str, watcher: int) -> bool:
        watchers = self.by_path.get(path)
        return watchers is not None and watcher in watchers

    def remove_watcher(self, watcher: int) -> None:
        for path in list(self.by_watcher.get(watcher, ())):
            self.remove(path, watcher)

    def trigger(self, path: str, event: int, suppress: set[int] | None) -> set[int]:
        fired: set[int] = set()
        watchers = self.by_path.get(path)
        if watchers:
            for watcher, mode in list(watchers.items()):
                if mode == MODE.PERSISTENT_RECURSIVE:
                    if event != EVENT.NodeChildrenChanged:
                        fired.add(watcher)
                    continue
                fired.add(watcher)
                if mode == MODE.STANDARD:
                    self.remove(path, watcher)
        if self.recursive_count and path != "/":
            current = path
            while current != "/":
                current = parent_of(current)
                ancestors = self.by_path.get(current)
                if not ancestors or event == EVENT.NodeChildrenChanged:
                    continue
                for watcher, mode in ancestors.items():
                    if mode == MODE.PERSISTENT_RECURSIVE:
                        fired.add(watcher)
        if suppress:
            fired -= suppress
        return fired

    def count(self) -> int:
        return sum(len(w) for w in self.by_path.values())


class WatchManager:
    """Both watch tables of one server and the firing rules between them."""

    __slots__ = ("child", "data")

    def __init__(self) -> None:
        self.data = WatchTable()
        self.child = WatchTable()

    def add_data_watch(self, path: str, watcher: int) -> None:
        self.data.add(path, watcher, MODE.STANDARD)

    def add_child_watch(self, path: str, watcher: int) -> None:
        self.child.add(path, watcher, MODE.STANDARD)

    def add_persistent(self, path: str, watcher: int, recursive: bool) -> None:
        if recursive:
            self.data.add(path, watcher, MODE.PERSISTENT_RECURSIVE)
        else:
            self.data.add(path, watcher, MODE.PERSISTENT)
            self.child.add(path, watcher, MODE.PERSISTENT)

    def remove_watcher(self, watcher: int) -> None:
        self.data.remove_watcher(watcher)
        self.child.remove_watcher(watcher)

    def trigger(self, event: int, path: str) -> list[int]:
        """Fire `event` on `path`; return the watchers to notify, in a stable order."""
        data = self.data
        if (
            not data.recursive_count
            and path not in data.by_path
            and path not in self.child.by_path
        ):
            return []  # the common case: nobody watches this path (recursive ones live in data)
        if event == EVENT.NodeChildrenChanged:
            fired = self.child.trigger(path, event, None)
        elif event == EVENT.NodeDeleted:
            fired = self.data.trigger(path, event, None)
            fired |= self.child.trigger(path, event, fired)
        else:
            fired = self.data.trigger(path, event, None)
        return sorted(fired)

    def count(self) -> int:
        return self.data.count() + self.child.count()

    def paths_of(self, watcher: int) -> set[str]:
        return self.data.by_watcher.get(watcher, set()) | self.child.by_watcher.get(watcher, set())

    def watchers(self) -> set[int]:
        return set(self.data.by_watcher) | set(self.child.by_watcher)
