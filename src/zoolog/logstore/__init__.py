"""Kafka's on-disk log, sans I/O: segments with offset and time indexes, partition logs,
compaction and the data directory, all over an injected `LogFileSystem`
(`zoolog.server.log_files.OsLogFileSystem` on disk, `zoolog.testing.log_files.
MemoryLogFileSystem` in memory). Nothing here imports os, time, threading or opens a file."""

from zoolog.logstore.files import FileSlice, LogFileSystem
from zoolog.logstore.leader_epoch import LeaderEpochCache
from zoolog.logstore.log_config import LogConfig
from zoolog.logstore.log_manager import LoadReport, LogManager
from zoolog.logstore.partition_log import (
    AppendInfo,
    FlushPlan,
    PartitionLog,
    ReadResult,
    RecoveryReport,
    TimestampAndOffset,
    UnexpectedAppendOffset,
)

__all__ = [
    "AppendInfo",
    "FileSlice",
    "FlushPlan",
    "LeaderEpochCache",
    "LoadReport",
    "LogConfig",
    "LogFileSystem",
    "LogManager",
    "PartitionLog",
    "ReadResult",
    "RecoveryReport",
    "TimestampAndOffset",
    "UnexpectedAppendOffset",
]
