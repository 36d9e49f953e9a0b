"""`LogManager`: every partition log of one data directory.

Owns the data directory's layout and its data-dir-wide files, Kafka's names and formats
(version line "0", a count, then "topic partition offset" lines):

    recovery-point-offset-checkpoint   each log's recovery point (its flushed prefix)
    log-start-offset-checkpoint        each log's log start offset
    cleaner-offset-checkpoint          each compacted log's cleaner checkpoint
    .kafka_cleanshutdown               present only between a clean close and the next open
    <topic>-<partition>/               one PartitionLog each

Topic names may hold '-' and '.', so a directory name splits at its last '-'. A directory
ending in `-delete` is a deleted log (`<topic>-<partition>.<token>-delete`), removed on open;
`-future` and `-stray` directories (Kafka's) and unparseable names are left alone and
listed in `skipped`.

Checkpoints are written by `write_checkpoints` (or `checkpoint_files` for the runtime to write
in a worker thread), periodically and on close; a stale one is safe (see PartitionLog). The
clean-shutdown marker is written last by `close`, after every log was flushed and the
checkpoints written, and removed by `open` once every log is loaded: a marker means the
recovery points are exact and no segment needs re-validation.

Never does I/O except through the injected `LogFileSystem`; never reads a clock; never
decides when to flush, retain or clean (`logs_needing_flush`, `logs_needing_cleaning` say
which logs would; the runtime schedules).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import NamedTuple

from zoolog.logstore import cleaner
from zoolog.logstore.files import LogFileSystem
from zoolog.logstore.log_config import LogConfig
from zoolog.logstore.partition_log import PartitionLog, RecoveryReport

RECOVERY_POINT_CHECKPOINT = "recovery-point-offset-checkpoint"
LOG_START_CHECKPOINT = "log-start-offset-checkpoint"
CLEANER_CHECKPOINT = "cleaner-offset-checkpoint"
CLEAN_SHUTDOWN_MARKER = ".kafka_cleanshutdown"
DELETE_DIR_SUFFIX = "-delete"
IGNORED_DIR_SUFFIXES = ("-future", "-stray")

TopicPartition = tuple[str, int]


class LoadReport(NamedTuple):
    clean_shutdown: bool
    logs: dict[TopicPartition, RecoveryReport]
    deleted_dirs: list[str]
    skipped: list[str]


def parse_log_dir(name: str) -> TopicPartition | None:
    """(topic, partition) of a directory name `<topic>-<partition>`, or None."""
    topic, dash, partition = name.rpartition("-")
    if not dash or not topic or not partition.isdigit():
        return None
    return topic, int(partition)


def log_dir_name(topic: str, partition: int) -> str:
    return f"{topic}-{partition}"


def read_checkpoint(fs: LogFileSystem, path: str) -> dict[TopicPartition, int]:
    """A data-dir checkpoint file; missing or unreadable gives {} (every value then falls
    back to the safe default)."""
    try:
        text = fs.read(path, 0, fs.size(path)).decode("ascii")
        lines = text.split("\n")
        if lines[0].strip() != "0":
            return {}
        count = int(lines[1])
        out: dict[TopicPartition, int] = {}
        for line in lines[2 : 2 + count]:
            topic, partition, offset = line.split()
            out[(topic, int(partition))] = int(offset)
        return out if len(out) == count else {}
    except (FileNotFoundError, ValueError, IndexError, UnicodeDecodeError):
        return {}


def format_tp_checkpoint(values: dict[TopicPartition, int]) -> bytes:
    lines = [f"{topic} {partition} {offset}\n"
             for (topic, partition), offset in sorted(values.items())]
    return "".join(["0\n", f"{len(lines)}\n", *lines]).encode("ascii")


class LogManager:
    """See the module docstring."""

    def __init__(self, fs: LogFileSystem, config_for: Callable[[str], LogConfig]) -> None:
        self.fs = fs
        self.config_for = config_for
        """topic -> its LogConfig (the broker's topic configs)."""
        self.logs: dict[TopicPartition, PartitionLog] = {}
        self._delete_counter = 0
        self.closed = False

    @classmethod
    def open(cls, fs: LogFileSystem, config_for: Callable[[str], LogConfig],
             now_ms: int) -> tuple[LogManager, LoadReport]:
        manager = cls(fs, config_for)
        clean = CLEAN_SHUTDOWN_MARKER in fs.list("")
        recovery_points = read_checkpoint(fs, RECOVERY_POINT_CHECKPOINT)
        log_starts = read_checkpoint(fs, LOG_START_CHECKPOINT)
        cleaner_points = read_checkpoint(fs, CLEANER_CHECKPOINT)
        reports: dict[TopicPartition, RecoveryReport] = {}
        deleted: list[str] = []
        skipped: list[str] = []
        for name in fs.list_dirs():
            if name.endswith(DELETE_DIR_SUFFIX):
                fs.remove_dir(name)
                deleted.append(name)
                continue
            tp = parse_log_dir(name)
            if tp is None or name.endswith(IGNORED_DIR_SUFFIXES):
                skipped.append(name)
                continue
            log, report = PartitionLog.open(
                fs, name, config_for(tp[0]), now_ms,
                recovery_point=recovery_points.get(tp, 0),
                log_start_offset=log_starts.get(tp, 0),
                cleaner_checkpoint=cleaner_points.get(tp, 0),
                clean_shutdown=clean and tp in recovery_points)
            manager.logs[tp] = log
            reports[tp] = report
        if clean:
            fs.remove(CLEAN_SHUTDOWN_MARKER)
        if clean or deleted:
            fs.fsync_dir("")
        return manager, LoadReport(clean, reports, deleted, skipped)

    # ------------------------------------------------------------------ logs

    def get(self, topic: str, partition: int) -> PartitionLog | None:
        return self.logs.get((topic, partition))

    def create_log(self, topic: str, partition: int, now_ms: int,
                   config: LogConfig | None = None) -> PartitionLog:
        """The partition's log, created (directory durable) if it does not exist."""
        existing = self.logs.get((topic, partition))
        if existing is not None:
            return existing
        name = log_dir_name(topic, partition)
        self.fs.make_dir(name)
        self.fs.fsync_dir("")
        log, _ = PartitionLog.open(self.fs, name, config or self.config_for(topic), now_ms)
        self.fs.fsync_dir(name)
        self.logs[(topic, partition)] = log
        return log

    def delete_log(self, topic: str, partition: int, token: str | None = None) -> bool:
        """Delete a partition's log as Kafka does: rename the directory to
        `<topic>-<partition>.<token>-delete` (durably), then remove it (Kafka removes it
        after file.delete.delay.ms; zoolog at once, a crash in between finishes on open).
        `token` is the caller's UUID hex; without one a counter is used."""
        log = self.logs.pop((topic, partition), None)
        if log is None:
            return False
        log.close(flush=False)
        if token is None:
            self._delete_counter += 1
            token = f"{self._delete_counter:032x}"
        name = log_dir_name(topic, partition)
        doomed = f"{name}.{token}{DELETE_DIR_SUFFIX}"
        self.fs.rename(name, doomed)
        self.fs.fsync_dir("")
        self.fs.remove_dir(doomed)
        return True

    def __iter__(self) -> Iterator[tuple[TopicPartition, PartitionLog]]:
        return iter(list(self.logs.items()))

    # ------------------------------------------------------------------ background work

    def logs_needing_flush(self, now_ms: int) -> list[tuple[TopicPartition, PartitionLog]]:
        return [(tp, log) for tp, log in self.logs.items() if log.needs_flush(now_ms)]

    def logs_for_retention(self) -> list[tuple[TopicPartition, PartitionLog]]:
        """Every open log (retention checks are cheap; `apply_retention` decides)."""
        return list(self.logs.items())

    def logs_needing_cleaning(self, now_ms: int) -> list[tuple[TopicPartition, PartitionLog]]:
        """Compacted logs due for cleaning, the dirtiest first."""
        due = [(cleaner.dirty_ratio(log, now_ms), tp, log) for tp, log in self.logs.items()
               if cleaner.needs_cleaning(log, now_ms)]
        due.sort(key=lambda item: -item[0])
        return [(tp, log) for _, tp, log in due]

    # ------------------------------------------------------------------ checkpoints

    def checkpoint_files(self) -> list[tuple[str, bytes]]:
        """The three checkpoint files' paths and bytes as of now (write them with
        `write_atomic`, in a worker thread if wanted, one writer at a time)."""
        logs = self.logs.items()
        return [
            (RECOVERY_POINT_CHECKPOINT,
             format_tp_checkpoint({tp: log.recovery_point for tp, log in logs})),
            (LOG_START_CHECKPOINT,
             format_tp_checkpoint({tp: log.log_start_offset for tp, log in logs})),
            (CLEANER_CHECKPOINT,
             format_tp_checkpoint({tp: log.cleaner_checkpoint for tp, log in logs
                                   if log.config.compact})),
        ]

    def write_checkpoints(self) -> None:
        for path, data in self.checkpoint_files():
            self.fs.write_atomic(path, data)

    def close(self) -> None:
        """Flush and close every log, write the checkpoints, then the clean-shutdown
        marker. The runtime must have finished (or abandoned) every cleaning first."""
        if self.closed:
            return
        for log in self.logs.values():
            log.close(flush=True)
        self.write_checkpoints()
        self.fs.write_atomic(CLEAN_SHUTDOWN_MARKER, b"")
        self.closed = True
