"""Root error types of zoolog.

Errors are split by whose fault they are (STYLE.md rule 5):

    ZoologError
     ├── LocalProtocolError    we misused a codec or state machine (a bug in zoolog)
     ├── RemoteProtocolError   a peer sent bytes we cannot accept; close that connection only
     │    ├── JuteDecodeError  a jute record is truncated or malformed
     │    └── KafkaDecodeError a Kafka message is truncated or malformed
     ├── ConfigError           an operator's setting is invalid
     └── StartupError          a server part could not start (e.g. its client front process)

Protocol-level outcomes that a client must see as a wire error code (NONODE, BADVERSION, ...)
are not Python exceptions at this level: they live in `zoolog.coord.errors` as `ZkError`
values mapped one to one onto ZooKeeper's `KeeperException.Code`.
"""

from __future__ import annotations


class ZoologError(Exception):
    """Base of every error raised by zoolog."""


class LocalProtocolError(ZoologError):
    """zoolog itself misused a protocol object: a bug, never the peer's fault."""


class RemoteProtocolError(ZoologError):
    """The peer sent something we cannot accept; the connection to that peer is closed."""


class JuteDecodeError(RemoteProtocolError):
    """A jute record was truncated, had a negative or oversized length, or bad UTF-8."""


class KafkaDecodeError(RemoteProtocolError):
    """A Kafka message was truncated, had a bad length, count or varint, invalid UTF-8, a null
    where the version allows none, or a version outside the message's valid versions."""


class StartupError(ZoologError):
    """A part of the server could not start; the message says which and why."""


class ConfigError(ZoologError):
    """A configuration value is invalid (unknown key type, out of range, unreadable file)."""
