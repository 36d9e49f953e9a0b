"""Administration through the clients' admin APIs: confluent-kafka's AdminClient,
kafka-python's KafkaAdminClient and aiokafka's AIOKafkaAdminClient, each against the
broker over real sockets: topics (create with and without valid configs and names,
partitions, delete), configs (describe values and sources, incremental alter), consumer
groups (list, describe, offsets, delete), records (delete, then read from the new low
watermark) and the cluster."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import aiokafka.admin
import confluent_kafka as ck
import kafka
import kafka.admin
import kafka.errors
import pytest
from aiokafka.admin.config_resource import ConfigResource as AkConfigResource
from aiokafka.admin.config_resource import ConfigResourceType as AkConfigResourceType
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
)
from tests.compat.kafka_helpers import (
    CkMember,
    create_topic,
    poll_until,
    produce,
    read_log,
    settled,
)

from zoolog.testing import wait_until
from zoolog.testing.kafka_servers import KafkaServerThread

Err = ck.KafkaError


def error_of(future: object) -> ck.KafkaError:
    """The KafkaError a failed admin future carries."""
    with pytest.raises(ck.KafkaException) as raised:
        future.result(20)  # type: ignore[attr-defined]
    return raised.value.args[0]


@pytest.fixture
def ck_admin(zoolog_kafka: KafkaServerThread) -> AdminClient:
    return AdminClient({"bootstrap.servers": zoolog_kafka.bootstrap})


@pytest.fixture
def kp_admin(zoolog_kafka: KafkaServerThread) -> Iterator[kafka.KafkaAdminClient]:
    client = kafka.KafkaAdminClient(bootstrap_servers=zoolog_kafka.bootstrap)
    yield client
    client.close()


def topic_configs(admin: AdminClient, topic: str) -> dict[str, ConfigEntry]:
    resource = ConfigResource(ck.admin.ResourceType.TOPIC, topic)
    return admin.describe_configs([resource])[resource].result(20)


# --- confluent-kafka AdminClient -------------------------------------------------------


def test_confluent_create_topics_success_and_each_refusal(ck_admin: AdminClient) -> None:
    """One CreateTopics with a good topic (with configs) and one of each mistake: each
    topic gets its own answer; the good one exists afterwards with its configs."""
    futures = ck_admin.create_topics([
        NewTopic("invoices", 3, 1, config={"retention.ms": "3600000",
                                          "cleanup.policy": "compact"}),
        NewTopic("bad-value", 1, 1, config={"retention.ms": "soon"}),
        NewTopic("bad-key", 1, 1, config={"retention.tomorrow": "1"}),
        NewTopic("spaces are not allowed", 1, 1),
        NewTopic("..", 1, 1),
        NewTopic("x" * 250, 1, 1),
        NewTopic("replicated", 1, 3),
    ], operation_timeout=20)
    assert futures["invoices"].result(20) is None
    for name in ("bad-value", "bad-key"):
        error = error_of(futures[name])
        assert error.code() == Err.INVALID_CONFIG, (name, error)
        assert error.str(), f"{name}: INVALID_CONFIG without a message"
    for name in ("spaces are not allowed", "..", "x" * 250):
        assert error_of(futures[name]).code() == Err.TOPIC_EXCEPTION, name
    assert error_of(futures["replicated"]).code() == Err.INVALID_REPLICATION_FACTOR

    again = ck_admin.create_topics([NewTopic("invoices", 1, 1)], operation_timeout=20)
    assert error_of(again["invoices"]).code() == Err.TOPIC_ALREADY_EXISTS

    dry = ck_admin.create_topics([NewTopic("dry-run", 1, 1)], validate_only=True)
    assert dry["dry-run"].result(20) is None

    topics = ck_admin.list_topics(timeout=10).topics
    assert "invoices" in topics and len(topics["invoices"].partitions) == 3
    assert not {"bad-value", "bad-key", "replicated", "dry-run", ".."} & set(topics)
    configs = topic_configs(ck_admin, "invoices")
    assert configs["retention.ms"].value == "3600000"
    assert configs["cleanup.policy"].value == "compact"


def test_confluent_describe_and_incrementally_alter_configs(ck_admin: AdminClient) -> None:
    """Describe shows each key's value and source (set on the topic or Kafka's default);
    IncrementalAlterConfigs SETs, DELETEs (back to the default) and APPENDs to a list,
    and refuses a bad value with INVALID_CONFIG, leaving the rest untouched."""
    ck_admin.create_topics([NewTopic("ledger", 1, 1, config={
        "retention.ms": "86400000", "max.message.bytes": "200000"})])["ledger"].result(20)
    configs = topic_configs(ck_admin, "ledger")
    assert configs["retention.ms"].value == "86400000"
    assert configs["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert not configs["retention.ms"].is_default
    assert configs["cleanup.policy"].value == "delete"
    assert configs["cleanup.policy"].source == ConfigSource.DEFAULT_CONFIG.value
    assert configs["cleanup.policy"].is_default
    assert configs["segment.bytes"].value == str(1 << 30)

    resource = ConfigResource(ck.admin.ResourceType.TOPIC, "ledger", incremental_configs=[
        ConfigEntry("retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("max.message.bytes", None, incremental_operation=AlterConfigOpType.DELETE),
        ConfigEntry("cleanup.policy", "compact",
                    incremental_operation=AlterConfigOpType.APPEND),
    ])
    assert ck_admin.incremental_alter_configs([resource])[resource].result(20) is None
    configs = topic_configs(ck_admin, "ledger")
    assert configs["retention.ms"].value == "7200000"
    assert configs["max.message.bytes"].source == ConfigSource.DEFAULT_CONFIG.value
    assert configs["max.message.bytes"].value == "1048588"
    assert configs["cleanup.policy"].value == "delete,compact"
    assert configs["cleanup.policy"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value

    bad = ConfigResource(ck.admin.ResourceType.TOPIC, "ledger", incremental_configs=[
        ConfigEntry("retention.ms", "forever", incremental_operation=AlterConfigOpType.SET)])
    error = error_of(ck_admin.incremental_alter_configs([bad])[bad])
    assert error.code() == Err.INVALID_CONFIG and error.str()
    assert topic_configs(ck_admin, "ledger")["retention.ms"].value == "7200000"

    broker = ConfigResource(ck.admin.ResourceType.BROKER, "0")
    settings = ck_admin.describe_configs([broker])[broker].result(20)
    assert settings["num.partitions"].value == "1"
    assert settings["log.segment.bytes"].value == str(1 << 30)

    missing = ConfigResource(ck.admin.ResourceType.TOPIC, "no-such-topic")
    assert error_of(ck_admin.describe_configs([missing])[missing]).code() == \
        Err.UNKNOWN_TOPIC_OR_PART


def test_confluent_topic_config_inherits_broker_default(tmp_path: Path) -> None:
    """A topic without an override shows the broker's server.properties value, with
    source STATIC_BROKER_CONFIG."""
    with KafkaServerThread(tmp_path / "kafka", properties={"log.retention.hours": "48"}) as s:
        admin = AdminClient({"bootstrap.servers": s.bootstrap})
        create_topic(s.bootstrap, "audit")
        entry = topic_configs(admin, "audit")["retention.ms"]
        assert entry.value == str(48 * 3_600_000)
        assert entry.source == ConfigSource.STATIC_BROKER_CONFIG.value


def test_confluent_create_partitions(zoolog_kafka: KafkaServerThread,
                                     ck_admin: AdminClient) -> None:
    """Growing a topic 1 -> 3 partitions; the new partitions take records; shrinking is
    INVALID_PARTITIONS."""
    bootstrap = zoolog_kafka.bootstrap
    create_topic(bootstrap, "clicks", 1)
    assert ck_admin.create_partitions([NewPartitions("clicks", 3)])["clicks"].result(20) is None
    wait_until(lambda: len(ck_admin.list_topics("clicks", timeout=10)
                           .topics["clicks"].partitions) == 3, 10, "3 partitions")
    produce(bootstrap, "clicks", [(None, b"on-2")], partition=2)
    assert [r.value for r in read_log(bootstrap, "clicks")] == [b"on-2"]
    shrink = ck_admin.create_partitions([NewPartitions("clicks", 2)])["clicks"]
    assert error_of(shrink).code() == Err.INVALID_PARTITIONS
    unknown = ck_admin.create_partitions([NewPartitions("nope", 2)])["nope"]
    assert error_of(unknown).code() == Err.UNKNOWN_TOPIC_OR_PART


def test_confluent_consumer_group_admin(zoolog_kafka: KafkaServerThread,
                                        ck_admin: AdminClient) -> None:
    """A live group is listed (Stable) and described with its member and assignment; its
    committed offsets are listed; deleting it is NON_EMPTY_GROUP while it has members and
    works once it is empty; an unknown group is GROUP_ID_NOT_FOUND."""
    bootstrap = zoolog_kafka.bootstrap
    create_topic(bootstrap, "visits", 2)
    produce(bootstrap, "visits", [(None, b"v%d" % i) for i in range(20)], partition=0)
    produce(bootstrap, "visits", [(None, b"w%d" % i) for i in range(5)], partition=1)
    member = CkMember("analytics-1", bootstrap, "analytics", ["visits"])
    try:
        settled(bootstrap, "analytics", [member], {("visits", 0), ("visits", 1)})
        poll_until([member], lambda: len(member.processed) == 25, 20, "25 records")
        member.commit()

        listed = ck_admin.list_consumer_groups().result(20)
        states = {g.group_id: g.state for g in listed.valid}
        assert states.get("analytics") == ck.ConsumerGroupState.STABLE, states
        stable_only = ck_admin.list_consumer_groups(
            states={ck.ConsumerGroupState.EMPTY}).result(20)
        assert "analytics" not in {g.group_id for g in stable_only.valid}

        described = ck_admin.describe_consumer_groups(["analytics"])["analytics"].result(20)
        assert described.state == ck.ConsumerGroupState.STABLE
        assert described.partition_assignor == "range"
        (only,) = described.members
        assert only.client_id == "analytics-1"
        assert {(tp.topic, tp.partition) for tp in only.assignment.topic_partitions} == {
            ("visits", 0), ("visits", 1)}

        request = ck.ConsumerGroupTopicPartitions("analytics")
        offsets = ck_admin.list_consumer_group_offsets([request])["analytics"].result(20)
        assert {(tp.topic, tp.partition): tp.offset for tp in offsets.topic_partitions} == {
            ("visits", 0): 20, ("visits", 1): 5}

        deleting = ck_admin.delete_consumer_groups(["analytics", "nobody"])
        assert error_of(deleting["analytics"]).code() == Err.NON_EMPTY_GROUP
        assert error_of(deleting["nobody"]).code() == Err.GROUP_ID_NOT_FOUND
    finally:
        member.close()
    wait_until(lambda: ck_admin.describe_consumer_groups(["analytics"])["analytics"]
               .result(20).state == ck.ConsumerGroupState.EMPTY, 10, "the group to be empty")
    # an empty group's offsets can be moved (a "reset offsets" before a replay)
    moved = ck.ConsumerGroupTopicPartitions("analytics", [ck.TopicPartition("visits", 0, 15)])
    assert ck_admin.alter_consumer_group_offsets([moved])["analytics"].result(20)
    replay = CkMember("analytics-2", bootstrap, "analytics", ["visits"])
    try:
        poll_until([replay], lambda: len(replay.processed) >= 5, 20, "5 records")
        assert [(r.partition, r.offset) for r in replay.processed] == [
            (0, o) for o in range(15, 20)]
    finally:
        replay.close()
    assert ck_admin.delete_consumer_groups(["analytics"])["analytics"].result(20) is None
    listed = ck_admin.list_consumer_groups().result(20)
    assert "analytics" not in {g.group_id for g in listed.valid}
    request = ck.ConsumerGroupTopicPartitions(
        "analytics", [ck.TopicPartition("visits", 0), ck.TopicPartition("visits", 1)])
    offsets = ck_admin.list_consumer_group_offsets([request])["analytics"].result(20)
    assert [tp.offset for tp in offsets.topic_partitions] == [ck.OFFSET_INVALID] * 2


def test_confluent_delete_records_moves_the_low_watermark(zoolog_kafka: KafkaServerThread,
                                                          ck_admin: AdminClient) -> None:
    """Deleting records before offset 40 of 100: the low watermark becomes 40, a consumer
    reading from earliest starts there; deleting past the high watermark is
    OFFSET_OUT_OF_RANGE."""
    bootstrap = zoolog_kafka.bootstrap
    create_topic(bootstrap, "sensor", 1)
    produce(bootstrap, "sensor", [(None, b"reading-%d" % i) for i in range(100)])
    tp = ck.TopicPartition("sensor", 0, 40)
    deleted = ck_admin.delete_records([tp])
    (future,) = deleted.values()
    assert future.result(20).low_watermark == 40
    records = read_log(bootstrap, "sensor")
    assert [r.offset for r in records] == list(range(40, 100))
    assert records[0].value == b"reading-40"

    reader = CkMember("from-earliest-1", bootstrap, "from-earliest", ["sensor"])
    try:
        assert reader.consumer is not None
        assert reader.consumer.get_watermark_offsets(ck.TopicPartition("sensor", 0),
                                                     timeout=10) == (40, 100)
        poll_until([reader], lambda: len(reader.processed) == 60, 20, "60 records")
        assert reader.processed[0].offset == 40 and not reader.errors
    finally:
        reader.close()

    (too_far,) = ck_admin.delete_records([ck.TopicPartition("sensor", 0, 500)]).values()
    assert error_of(too_far).code() == Err.OFFSET_OUT_OF_RANGE


def test_confluent_describe_cluster_and_delete_topics(zoolog_kafka: KafkaServerThread,
                                                      ck_admin: AdminClient) -> None:
    """DescribeCluster names the one broker (also the controller) and a cluster id;
    DescribeTopics and DeleteTopics; deleting an unknown topic is
    UNKNOWN_TOPIC_OR_PART."""
    cluster = ck_admin.describe_cluster().result(20)
    assert cluster.cluster_id
    (node,) = cluster.nodes
    assert (node.host, node.port) == ("127.0.0.1", zoolog_kafka.kafka_port)
    assert cluster.controller.id == node.id

    create_topic(zoolog_kafka.bootstrap, "short-lived", 2)
    topics = ck.TopicCollection(["short-lived"])
    description = ck_admin.describe_topics(topics)["short-lived"].result(20)
    assert [p.id for p in description.partitions] == [0, 1]
    assert all(p.leader.id == node.id for p in description.partitions)

    assert ck_admin.delete_topics(["short-lived"],
                                  operation_timeout=20)["short-lived"].result(20) is None
    wait_until(lambda: "short-lived" not in ck_admin.list_topics(timeout=10).topics, 10,
               "the topic to go")
    gone = ck_admin.delete_topics(["short-lived"], operation_timeout=20)["short-lived"]
    assert error_of(gone).code() == Err.UNKNOWN_TOPIC_OR_PART


# --- kafka-python KafkaAdminClient -----------------------------------------------------


def test_kafka_python_admin_topics_and_configs(kp_admin: kafka.KafkaAdminClient) -> None:
    """Create (with configs; each refusal as its exception), create partitions, describe
    configs with sources, incremental alter, delete."""
    kp_admin.create_topics({"kp-orders": {"num_partitions": 2, "replication_factor": 1,
                                          "configs": {"retention.ms": "600000"}}})
    refusals = {
        "kp-bad": ({"num_partitions": 1, "replication_factor": 1,
                    "configs": {"retention.ms": "soon"}}, kafka.errors.InvalidConfigurationError),
        "kp bad name": ({"num_partitions": 1, "replication_factor": 1},
                        kafka.errors.InvalidTopicError),
        "kp-orders": ({"num_partitions": 1, "replication_factor": 1},
                      kafka.errors.TopicAlreadyExistsError),
        "kp-replicated": ({"num_partitions": 1, "replication_factor": 3},
                          kafka.errors.InvalidReplicationFactorError),
    }
    for name, (spec, error) in refusals.items():
        with pytest.raises(error):
            kp_admin.create_topics({name: spec})
    result = kp_admin.create_topics({"kp-bad": refusals["kp-bad"][0]}, raise_errors=False)
    (answer,) = result["topics"]
    assert answer["error_code"] == 40 and answer["error_message"]

    kp_admin.create_partitions({"kp-orders": 4})
    assert kp_admin.describe_topics(["kp-orders"])[0]["partitions"].__len__() == 4

    resource = kafka.admin.ConfigResource("TOPIC", "kp-orders")
    described = kp_admin.describe_configs([resource], config_filter="all")
    entries = described["topic"]["kp-orders"]
    assert entries["retention.ms"]["value"] == "600000"
    assert entries["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
    assert entries["cleanup.policy"]["config_source"] == "DEFAULT_CONFIG"

    kp_admin.alter_configs([kafka.admin.ConfigResource("TOPIC", "kp-orders", {
        "retention.ms": ("SET", "1200000"), "cleanup.policy": ("APPEND", "compact")})],
        incremental=True)
    entries = kp_admin.describe_configs([resource], config_filter="all")["topic"]["kp-orders"]
    assert entries["retention.ms"]["value"] == "1200000"
    assert entries["cleanup.policy"]["value"] == "delete,compact"

    kp_admin.delete_topics(["kp-orders"])
    assert "kp-orders" not in kp_admin.list_topics()
    with pytest.raises(kafka.errors.UnknownTopicOrPartitionError):
        kp_admin.delete_topics(["kp-orders"])


def test_kafka_python_admin_groups_records_cluster(zoolog_kafka: KafkaServerThread,
                                                   kp_admin: kafka.KafkaAdminClient) -> None:
    """List/describe/delete groups (NON_EMPTY_GROUP, GROUP_ID_NOT_FOUND), list group
    offsets, delete records, describe the cluster."""
    bootstrap = zoolog_kafka.bootstrap
    create_topic(bootstrap, "kp-visits", 1)
    produce(bootstrap, "kp-visits", [(None, b"v%d" % i) for i in range(30)])
    member = CkMember("kp-analytics-1", bootstrap, "kp-analytics", ["kp-visits"])
    try:
        settled(bootstrap, "kp-analytics", [member], {("kp-visits", 0)})
        poll_until([member], lambda: len(member.processed) == 30, 20, "30 records")
        member.commit()
        groups = {g["group_id"]: g for g in kp_admin.list_groups()}
        assert groups["kp-analytics"]["group_state"] == "Stable", groups
        described = kp_admin.describe_groups(["kp-analytics"])["kp-analytics"]
        assert described["group_state"] == "Stable"
        assert [m["client_id"] for m in described["members"]] == ["kp-analytics-1"]
        offsets = kp_admin.list_group_offsets("kp-analytics")["kp-analytics"]
        assert {(tp.topic, tp.partition): om.offset for tp, om in offsets.items()} == {
            ("kp-visits", 0): 30}
        # kafka-python 3.0 names each group's outcome by its error class
        deleted = kp_admin.delete_groups(["kp-analytics", "kp-nobody"])
        assert deleted == {"kp-analytics": "NonEmptyGroupError",  # 68
                           "kp-nobody": "GroupIdNotFoundError"}  # 69
    finally:
        member.close()
    wait_until(lambda: kp_admin.describe_groups(["kp-analytics"])["kp-analytics"]
               ["group_state"] == "Empty", 10, "the group to be empty")
    assert kp_admin.delete_groups(["kp-analytics"]) == {"kp-analytics": "OK"}
    assert "kp-analytics" not in {g["group_id"] for g in kp_admin.list_groups()}

    result = kp_admin.delete_records({kafka.TopicPartition("kp-visits", 0): 10})
    (answer,) = result.values()
    assert answer["low_watermark"] == 10
    assert read_log(bootstrap, "kp-visits")[0].offset == 10

    cluster = kp_admin.describe_cluster()
    assert cluster["cluster_id"]
    (broker,) = cluster["brokers"]
    assert broker["port"] == zoolog_kafka.kafka_port
    assert cluster["controller_id"] == broker["broker_id"]


# --- aiokafka AIOKafkaAdminClient ------------------------------------------------------


def test_aiokafka_admin_create_describe_delete(zoolog_kafka: KafkaServerThread) -> None:
    """aiokafka's admin client: create topics (and the existing-topic refusal), describe
    them and their configs, create partitions, list groups, describe the cluster,
    delete."""
    bootstrap = zoolog_kafka.bootstrap

    async def run() -> None:
        admin = aiokafka.admin.AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.create_topics([aiokafka.admin.NewTopic(
                "ak-orders", 2, 1, topic_configs={"retention.ms": "900000"})])
            assert "ak-orders" in await admin.list_topics()
            again = await admin.create_topics([aiokafka.admin.NewTopic("ak-orders", 1, 1)])
            assert [t[1] for t in again.topic_errors] == [36]  # TOPIC_ALREADY_EXISTS
            (described,) = await admin.describe_topics(["ak-orders"])
            assert described["error_code"] == 0 and len(described["partitions"]) == 2
            (configs,) = await admin.describe_configs([AkConfigResource(
                AkConfigResourceType.TOPIC, "ak-orders", {"retention.ms": None})])
            (resource,) = configs.resources
            entries = {entry[0]: entry[1] for entry in resource[4]}
            assert entries == {"retention.ms": "900000"}
            await admin.create_partitions({"ak-orders": aiokafka.admin.NewPartitions(3)})
            (described,) = await admin.describe_topics(["ak-orders"])
            assert len(described["partitions"]) == 3
            cluster = await admin.describe_cluster()
            assert cluster["cluster_id"] and len(cluster["brokers"]) == 1
            assert isinstance(await admin.list_consumer_groups(), list)
            await admin.delete_topics(["ak-orders"])
            assert "ak-orders" not in await admin.list_topics()
        finally:
            await admin.close()

    asyncio.run(run())
