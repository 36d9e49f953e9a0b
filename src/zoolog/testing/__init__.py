"""Test support shipped with zoolog: in-process servers and a pytest plugin.

`ZkServerThread` runs a real coordination node (real sockets, real disk) on its own event loop
in a background thread, so synchronous clients such as kazoo can talk to it from a test.
The pytest plugin (`zoolog.testing.pytest_plugin`, registered as the `zoolog` entry point)
offers it as the `zoolog_zk` fixture.
"""

from zoolog.testing.servers import ZkServerThread, wait_until

__all__ = ["ZkServerThread", "wait_until"]
