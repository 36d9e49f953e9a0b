"""An asyncio Kafka client over the generated codecs: admin, produce, fetch, offsets, groups,
transactions.

It speaks the real wire protocol and assumes nothing zoolog-only, so the same calls work
against Apache Kafka and other Kafka-protocol brokers. `zoolog topic`, `zoolog group` and
`zoolog txn` are built on it; tests use it to drive the broker directly.

Connections. One connection per broker, plus one to the group coordinator for offset
requests and one per group member: a broker answers a connection's requests one at a time,
so a JoinGroup parked until a rebalance completes, or a fetch parked for `max_wait_ms`, must
not hold up another member's heartbeats. Requests are pipelined and answers matched by
correlation id; concurrent `produce` calls write their requests in call order. Every new
connection first sends ApiVersions (our highest version; a broker that does not know it
answers UNSUPPORTED_VERSION in v0 with the range it does know, and we ask again in that
range, KIP-511); each request then goes out in min(our max, the broker's max) and fails with
UNSUPPORTED_VERSION when the two ranges do not meet. `CLIENT_VERSIONS` lists our ranges.

Routing. `KafkaClient.connect("h1:9092,h2:9092")` tries the bootstrap addresses in order and
reads Metadata; produce, fetch, list-offsets, DescribeProducers and WriteTxnMarkers go to
each partition's leader, group requests to the group coordinator FindCoordinator names,
DescribeTransactions and InitProducerId to the transactional id's coordinator (FindCoordinator
key type 1), ListGroups and ListTransactions to every broker, CreateTopics/DeleteTopics to the
controller, the rest to any broker.

Errors:

    KafkaError (zoolog.protocol.kafka.errors)   an error code and Kafka's name for it
     └── KafkaResponseError   a broker answered error_code != 0: `.code`, `.name`, `.message`,
                              `.retriable`; the topic/partition/group it concerns is in the text
    ConnectionError
     └── KafkaConnectionError no bootstrap broker reachable, or a connection dropped
          └── KafkaTimeoutError   no answer within the request timeout
    ValueError                a caller's mistake (a partition the topic does not have, ...)

Failure model. A connection that drops fails every request pending on it with
KafkaConnectionError and is opened again by the next request to that broker. Requests that
may safely be sent twice are retried on retriable error codes and lost connections (with
exponential backoff, for up to `retry_timeout_ms`), refreshing metadata or finding the
coordinator again in between: Metadata, Fetch, ListOffsets, FindCoordinator, DescribeConfigs,
DescribeGroups, ListGroups, OffsetFetch, OffsetCommit and the group membership requests
(which fail over to a new coordinator). Produce is retried only on retriable error codes
(the batch was not written); a connection lost after a Produce was sent raises, since the
batch may or may not be in the log. A retried batch may land after later batches of the same
partition (as with the Java producer without idempotence). CreateTopics, DeleteTopics and
IncrementalAlterConfigs are not retried; DeleteGroups is, like the group requests (so a
retry after a lost answer may report GROUP_ID_NOT_FOUND). The transaction admin requests
are all retried: ListTransactions, DescribeTransactions, DescribeProducers, InitProducerId
(also while the coordinator answers CONCURRENT_TRANSACTIONS; a second one only bumps the
epoch again) and WriteTxnMarkers (a second ABORT marker changes nothing). An unreachable
bootstrap list fails `connect` at once.

What it does not do: idempotent or transactional produce (`txn_admin` only looks at
transactions and aborts them from outside), fetch sessions (every fetch is a full fetch),
SASL/TLS, consumer-group protocols other than the classic one with the eager "range"
assignor, static membership beyond passing `group_instance_id` through, follower
fetching, batching across `produce` calls (each call sends what it is given), automatic
offset reset (OFFSET_OUT_OF_RANGE is reported per partition; the caller decides).

Modules, one noun each: `client` (the `KafkaClient` facade), `cluster` (bootstrap,
connections per broker and lane, metadata, routing, the retry loop), `connection` (one
broker connection: framing, correlation ids, version negotiation), `versions` (the API
versions we speak), `admin` (topics and configs), `group_admin` (groups and committed
offsets), `txn_admin` (transactions and the producers of partitions), `producer`, `fetch`
(ListOffsets and Fetch), `group_member` (`GroupConsumer`), `assignor` (range),
`consumer_protocol` (subscription and assignment bytes), `partitioner` (murmur2), `values`,
`errors`, `limits`. This package re-exports the
public API; import it from here.
"""

from .assignor import range_assign
from .client import KafkaClient
from .cluster import KEY_TYPE_GROUP, KEY_TYPE_TRANSACTION, default_bootstrap
from .consumer_protocol import (
    decode_assignment,
    decode_subscription,
    encode_assignment,
    encode_subscription,
)
from .errors import KafkaConnectionError, KafkaResponseError, KafkaTimeoutError
from .fetch import EARLIEST, LATEST, READ_COMMITTED, READ_UNCOMMITTED
from .fetch import _fetched as _fetched  # for tests of fetched-batch decoding
from .group_member import GroupConsumer
from .partitioner import default_partition, murmur2
from .txn_admin import FENCE_TRANSACTION_TIMEOUT_MS
from .values import (
    BrokerInfo,
    ClusterMetadata,
    ConfigEntry,
    ConsumerRecord,
    CreatedTopic,
    FetchedPartition,
    GroupDescription,
    GroupMember,
    ListedGroup,
    ListedTransaction,
    OffsetAndTimestamp,
    PartitionInfo,
    ProducerRecord,
    ProducerState,
    RecordMetadata,
    TopicInfo,
    TopicPartition,
    TransactionDescription,
    topic_id_text,
)
from .versions import CLIENT_VERSIONS

__all__ = [
    "CLIENT_VERSIONS",
    "EARLIEST",
    "FENCE_TRANSACTION_TIMEOUT_MS",
    "KEY_TYPE_GROUP",
    "KEY_TYPE_TRANSACTION",
    "LATEST",
    "READ_COMMITTED",
    "READ_UNCOMMITTED",
    "BrokerInfo",
    "ClusterMetadata",
    "ConfigEntry",
    "ConsumerRecord",
    "CreatedTopic",
    "FetchedPartition",
    "GroupConsumer",
    "GroupDescription",
    "GroupMember",
    "KafkaClient",
    "KafkaConnectionError",
    "KafkaResponseError",
    "KafkaTimeoutError",
    "ListedGroup",
    "ListedTransaction",
    "OffsetAndTimestamp",
    "PartitionInfo",
    "ProducerRecord",
    "ProducerState",
    "RecordMetadata",
    "TopicInfo",
    "TopicPartition",
    "TransactionDescription",
    "decode_assignment",
    "decode_subscription",
    "default_bootstrap",
    "default_partition",
    "encode_assignment",
    "encode_subscription",
    "murmur2",
    "range_assign",
    "topic_id_text",
]
