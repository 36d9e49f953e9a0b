"""Every bound zoolog enforces, with its name, its default and its unit (last in the name).

Each limit is checked where input enters and answered with the protocol's own error (or a
connection close where the protocol has no error for it); `Limits.validate()` asserts the
relations between them. Operators override them through `zoo.cfg` keys or `zoolog up` flags.
"""

from __future__ import annotations

from dataclasses import dataclass

from zoolog.errors import ConfigError

JUTE_MAXBUFFER_BYTES = 0xFFFFF
"""ZooKeeper's default `jute.maxbuffer` (1 MiB - 1)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """The coordination service's limits. Defaults match ZooKeeper 3.8 where it has one."""

    frame_bytes_max: int = JUTE_MAXBUFFER_BYTES + 1024
    """Largest request frame a client may send; larger lengths close the connection
    (ZooKeeper's "Len error"). The slack above jute.maxbuffer leaves room for the path and
    header around a maximal znode payload."""

    znode_data_bytes_max: int = JUTE_MAXBUFFER_BYTES
    """Largest znode payload; larger create/setData get BADARGUMENTS."""

    path_bytes_max: int = 4096
    """Longest znode path in UTF-8 bytes; longer paths get BADARGUMENTS."""

    children_per_node_max: int = 1_000_000
    """Most children one znode may hold; a create beyond it gets BADARGUMENTS."""

    acl_entries_max: int = 256
    """Most ACL entries on one znode; more gets INVALIDACL."""

    multi_ops_max: int = 10_000
    """Most operations in one multi/multiRead; more gets BADARGUMENTS."""

    outstanding_requests_per_connection_max: int = 1000
    """Requests a connection may have in flight before the server stops reading from it
    (backpressure, like ZooKeeper's globalOutstandingLimit)."""

    connections_per_address_max: int = 60
    """Concurrent connections from one client IP (`maxClientCnxns`; 0 means unlimited)."""

    sessions_max: int = 100_000
    """Live sessions; a new session beyond it is refused like an expired one."""

    watches_per_connection_max: int = 1_000_000
    """Watch registrations one connection may hold; beyond it the watch is not registered
    and the read answers BADARGUMENTS."""

    def validate(self) -> None:
        """Raise ConfigError if the limits contradict each other."""
        if self.znode_data_bytes_max <= 0 or self.path_bytes_max <= 0:
            raise ConfigError("znode_data_bytes_max and path_bytes_max must be positive")
        if self.frame_bytes_max < self.znode_data_bytes_max:
            raise ConfigError(
                f"frame_bytes_max ({self.frame_bytes_max}) must be at least "
                f"znode_data_bytes_max ({self.znode_data_bytes_max})"
            )
        if self.outstanding_requests_per_connection_max < 1:
            raise ConfigError("outstanding_requests_per_connection_max must be >= 1")
        if self.connections_per_address_max < 0:
            raise ConfigError("connections_per_address_max must be >= 0 (0 = unlimited)")
        for name in ("children_per_node_max", "acl_entries_max", "multi_ops_max",
                     "sessions_max", "watches_per_connection_max"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1")
