"""Raft consensus, sans-I/O (see `zoolog.consensus.node` for the contract)."""

from zoolog.consensus.node import Config, ProposalDropped, RaftNode, Role
from zoolog.consensus.types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryKind,
    HardState,
    Message,
    MsgType,
    ReadState,
    Ready,
    Snapshot,
)

__all__ = [
    "ConfChange", "ConfChangeType", "ConfState", "Config", "Entry", "EntryKind", "HardState",
    "Message", "MsgType", "ProposalDropped", "RaftNode", "ReadState", "Ready", "Role", "Snapshot",
]
