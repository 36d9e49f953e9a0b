"""Which Kafka APIs this client speaks, in which versions, and their api keys.

Owns `CLIENT_VERSIONS` (our range per api key; a request goes out in min(our max, the
broker's max), see `connection.py`) and the api key numbers the other modules send. Never:
I/O or negotiation (that is the connection's).
"""

CLIENT_VERSIONS: dict[int, tuple[int, int]] = {
    0: (3, 11),    # Produce: magic-2 record batches from v3
    1: (4, 13),    # Fetch: v13 names topics by id
    2: (1, 7),     # ListOffsets: timestamps from v1
    3: (1, 12),    # Metadata: null topics = all from v1
    8: (2, 9),     # OffsetCommit
    9: (1, 9),     # OffsetFetch: groups array from v8
    10: (0, 4),    # FindCoordinator: coordinator_keys from v4
    11: (0, 9),    # JoinGroup: MEMBER_ID_REQUIRED from v4
    12: (0, 4),    # Heartbeat
    13: (0, 5),    # LeaveGroup: members array from v3
    14: (0, 5),    # SyncGroup
    15: (0, 5),    # DescribeGroups
    16: (0, 5),    # ListGroups
    18: (0, 4),    # ApiVersions
    19: (2, 7),    # CreateTopics
    20: (1, 6),    # DeleteTopics: topics array from v6
    22: (0, 4),    # InitProducerId: PRODUCER_FENCED from v4 (KIP-588)
    27: (0, 1),    # WriteTxnMarkers
    32: (1, 4),    # DescribeConfigs: config_source from v1
    42: (0, 2),    # DeleteGroups
    44: (0, 1),    # IncrementalAlterConfigs
    61: (0, 0),    # DescribeProducers
    65: (0, 0),    # DescribeTransactions
    66: (0, 1),    # ListTransactions: duration_filter from v1
}
"""api_key -> (lowest, highest) version this client speaks."""

_API_VERSIONS = 18
_PRODUCE = 0
_FETCH = 1
_LIST_OFFSETS = 2
_METADATA = 3
_OFFSET_COMMIT = 8
_OFFSET_FETCH = 9
_FIND_COORDINATOR = 10
_JOIN_GROUP = 11
_HEARTBEAT = 12
_LEAVE_GROUP = 13
_SYNC_GROUP = 14
_DESCRIBE_GROUPS = 15
_LIST_GROUPS = 16
_CREATE_TOPICS = 19
_DELETE_TOPICS = 20
_INIT_PRODUCER_ID = 22
_WRITE_TXN_MARKERS = 27
_DESCRIBE_CONFIGS = 32
_DELETE_GROUPS = 42
_INCREMENTAL_ALTER_CONFIGS = 44
_DESCRIBE_PRODUCERS = 61
_DESCRIBE_TRANSACTIONS = 65
_LIST_TRANSACTIONS = 66
