"""Which Kafka APIs and versions the broker advertises, and the ApiVersions answer.

The ranges follow ../shared/COMPAT-KAFKA.md §1.4: every range overlaps what each supported
client sends (kafka-python 3, aiokafka 0.14, librdkafka 2.16 and kcat's librdkafka 2.0.2,
including the single versions old librdkafka pins for feature detection), and the maximum
is what zoolog implements and tests. Produce is advertised from v0 because librdkafka before
2.11.1 compresses only when Produce v0 is in range; like Kafka 4 (KAFKA-18659), versions
that no client sends any more (Produce v0-2, which carry message-format v0/v1) are answered
UNSUPPORTED_VERSION in their own version rather than implemented.

Transactions: the versions clients send (§8) up to the last before KIP-890 part 2's
transaction version 2 (AddPartitionsToTxn v4+ is the batched broker-to-broker form).
WriteTxnMarkers is served for `zoolog txn abort` (kafka-transactions.sh's abort sends it).

Not advertised: SASL (no SASL listener yet),
ConsumerGroupHeartbeat/Describe (KIP-848) and telemetry (71/72: librdkafka would start
pushing metrics), and every inter-broker API.
"""

from __future__ import annotations

from zoolog.protocol.kafka._generated.api_versions import ApiVersionsResponse

ADVERTISED: dict[int, tuple[int, int]] = {
    0: (0, 9),     # Produce (v0-2 answered UNSUPPORTED_VERSION, see ANSWERED_MIN)
    1: (4, 13),    # Fetch
    2: (1, 7),     # ListOffsets
    3: (0, 12),    # Metadata
    8: (2, 9),     # OffsetCommit
    9: (1, 9),     # OffsetFetch
    10: (0, 4),    # FindCoordinator
    11: (0, 7),    # JoinGroup
    12: (0, 4),    # Heartbeat
    13: (0, 5),    # LeaveGroup
    14: (0, 5),    # SyncGroup
    15: (0, 5),    # DescribeGroups
    16: (0, 5),    # ListGroups
    18: (0, 4),    # ApiVersions
    19: (2, 7),    # CreateTopics
    20: (1, 6),    # DeleteTopics
    21: (0, 2),    # DeleteRecords
    22: (0, 4),    # InitProducerId
    23: (2, 4),    # OffsetForLeaderEpoch
    24: (0, 3),    # AddPartitionsToTxn
    25: (0, 3),    # AddOffsetsToTxn
    26: (0, 3),    # EndTxn
    27: (0, 1),    # WriteTxnMarkers
    28: (0, 3),    # TxnOffsetCommit
    32: (0, 4),    # DescribeConfigs
    33: (0, 2),    # AlterConfigs
    37: (0, 3),    # CreatePartitions
    42: (0, 2),    # DeleteGroups
    44: (0, 1),    # IncrementalAlterConfigs
    47: (0, 0),    # OffsetDelete
    60: (0, 1),    # DescribeCluster
    61: (0, 0),    # DescribeProducers
    65: (0, 0),    # DescribeTransactions
    66: (0, 1),    # ListTransactions
}
"""api_key -> (min, max) put in the ApiVersions response."""

ANSWERED_MIN: dict[int, int] = {0: 3}
"""Where the lowest version actually served is above the advertised minimum."""

API_VERSIONS_KEY = 18


def serves(api_key: int, version: int) -> bool:
    """Whether the broker handles this version (advertised and not below ANSWERED_MIN)."""
    advertised = ADVERTISED.get(api_key)
    if advertised is None:
        return False
    low, high = advertised
    return max(low, ANSWERED_MIN.get(api_key, low)) <= version <= high


def api_versions_response(error_code: int = 0) -> ApiVersionsResponse:
    keys = [ApiVersionsResponse.ApiVersion(api_key=k, min_version=low, max_version=high)
            for k, (low, high) in sorted(ADVERTISED.items())]
    return ApiVersionsResponse(error_code=error_code, api_keys=keys)


def unsupported_api_versions_response() -> ApiVersionsResponse:
    """Kafka's answer to an ApiVersions version it does not know: UNSUPPORTED_VERSION, sent
    as v0 with header v0, listing ApiVersions' own range so the client can retry (KIP-511)."""
    low, high = ADVERTISED[API_VERSIONS_KEY]
    return ApiVersionsResponse(
        error_code=35,
        api_keys=[ApiVersionsResponse.ApiVersion(api_key=API_VERSIONS_KEY, min_version=low,
                                                 max_version=high)])
