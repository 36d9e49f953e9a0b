"""The classic consumer-group coordinator (JoinGroup/SyncGroup/Heartbeat/LeaveGroup, offsets
in `__consumer_offsets`), sans-I/O. `GroupCoordinator` is the entry point; see its module
for how a runtime drives it."""

from .admin import GROUP_AUTHORIZED_OPERATIONS
from .config import GroupConfig
from .coordinator import GroupCoordinator
from .group import VALID_PREVIOUS, ClassicGroup, GroupState, Member, Parked
from .offsets import OffsetAndMetadata, OffsetStore
from .outputs import Persist, Reply, TxnMarker, TxnRecord
from .partitioning import java_string_hash, partition_for
from .records import CorruptRecordError, GroupRecord, OffsetRecord, decode_record

__all__ = [
    "GROUP_AUTHORIZED_OPERATIONS",
    "VALID_PREVIOUS",
    "ClassicGroup",
    "CorruptRecordError",
    "GroupConfig",
    "GroupCoordinator",
    "GroupRecord",
    "GroupState",
    "Member",
    "OffsetAndMetadata",
    "OffsetRecord",
    "OffsetStore",
    "Parked",
    "Persist",
    "Reply",
    "TxnMarker",
    "TxnRecord",
    "decode_record",
    "java_string_hash",
    "partition_for",
]
