"""zoolog: ZooKeeper and Kafka rebuilt in pure Python, speaking their real wire protocols.

The coordination service (ZooKeeper protocol) is `zoolog.server.zk_server`; the command line is
`zoolog.cli`. See docs/ARCHITECTURE.md for the codemap.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
