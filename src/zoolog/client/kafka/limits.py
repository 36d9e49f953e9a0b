"""The client's named limits and defaults, units last.

Owns numbers only. Never: logic, imports of the rest of the client.
"""

REQUEST_TIMEOUT_MS_DEFAULT = 30_000
CONNECT_TIMEOUT_MS_DEFAULT = 10_000
RETRY_TIMEOUT_MS_DEFAULT = 20_000
"""How long a retried request keeps trying (leader moves, coordinator loading, lost links)."""
RETRY_BACKOFF_MS_MIN = 50
RETRY_BACKOFF_MS_MAX = 1_000
RESPONSE_BYTES_MAX_DEFAULT = 256 * 1024 * 1024
"""A response frame announcing more than this closes the connection (a broken peer)."""
DECOMPRESSED_BYTES_MAX = 128 * 1024 * 1024
"""The most one fetched batch may decompress to."""
BATCH_BYTES_MAX_DEFAULT = 900 * 1024
"""Records per produced batch are cut at about this many bytes (Kafka's message.max.bytes is
1 MiB by default, and each partition of a Produce request carries exactly one batch)."""
FETCH_MAX_BYTES_DEFAULT = 50 * 1024 * 1024
PARTITION_FETCH_MAX_BYTES_DEFAULT = 1024 * 1024
SESSION_TIMEOUT_MS_DEFAULT = 45_000
REBALANCE_TIMEOUT_MS_DEFAULT = 60_000
HEARTBEAT_INTERVAL_MS_DEFAULT = 3_000
