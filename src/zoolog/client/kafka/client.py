"""`KafkaClient`, the facade: one object over the cluster (connections, metadata, routing)
and every API module (topic admin, group admin, transaction admin, produce, fetch), plus
`group_consumer`.

Owns construction (`connect`), the async context manager and nothing else: each API lives
in its own module, the shared state in `cluster.py`. The package docstring holds the
client's routing, error and failure model. Never: request building of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .admin import TopicAdmin
from .cluster import default_bootstrap
from .fetch import Fetcher
from .group_admin import GroupAdmin
from .group_member import GroupConsumer
from .producer import Producer
from .txn_admin import TxnAdmin


class KafkaClient(TopicAdmin, GroupAdmin, TxnAdmin, Producer, Fetcher):
    """See the `zoolog.client.kafka` docstring. Create with
    `await KafkaClient.connect("host:port,...")`."""

    @classmethod
    async def connect(cls, bootstrap: str | None = None, **options: Any) -> KafkaClient:
        """A client that has read the cluster's metadata from a bootstrap broker."""
        client = cls(bootstrap or default_bootstrap(), **options)
        try:
            await client._bootstrap_connect()  # no retries: an unreachable address fails fast
            await client.refresh_metadata([])
        except BaseException:
            await client.close()
            raise
        return client

    async def __aenter__(self) -> KafkaClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def group_consumer(self, group_id: str, topics: Sequence[str], **options: Any
                       ) -> GroupConsumer:
        return GroupConsumer(self, group_id, topics, **options)
