"""The broker keeping its metadata in a real Apache ZooKeeper 3.8 (`zoolog broker
--zookeeper`), in Kafka's ZooKeeper-mode layout, read back with kazoo as Kafka tooling would."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import confluent_kafka as ck
import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from kazoo.client import KazooClient

from tests.differential.harness import Server, ZooKeeperProcess
from zoolog.testing import wait_until


@pytest.fixture(scope="module")
def own_zookeeper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """An Apache ZooKeeper 3.8 of this module's own: the broker writes znodes at the root,
    which would shift the sequential counters the differential tests compare on the shared
    `zookeeper_server`."""
    process = ZooKeeperProcess(tmp_path_factory.mktemp("apache-zk-broker"))
    process.start()
    try:
        yield Server("zookeeper", process.port)
    finally:
        process.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_broker(data_dir: Path, zk_port: int, port: int, chroot: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "zoolog", "broker", "--zookeeper",
         f"127.0.0.1:{zk_port}{chroot}", "--data-dir", str(data_dir), "--port", str(port),
         "--dev", "--log-level", "WARNING", "--set", "offsets.topic.num.partitions=3"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "zoolog broker ready on" in line:
            return proc
    raise AssertionError("the broker exited:\n" + "".join(seen))


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out


def test_broker_metadata_in_apache_zookeeper(own_zookeeper: Server, tmp_path: Path) -> None:
    port = free_port()
    chroot = "/kafka/cluster-a"  # operators often give zookeeper.connect a chroot
    proc = start_broker(tmp_path / "kafka", own_zookeeper.port, port, chroot)
    zk = KazooClient(hosts=f"127.0.0.1:{own_zookeeper.port}{chroot}", timeout=30)
    zk.start(timeout=15)
    try:
        bootstrap = f"127.0.0.1:{port}"
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic("orders", 2, 1, config={"retention.ms": "3600000"})]
                            )["orders"].result(30)
        producer = ck.Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                                "acks": "all"})
        for i in range(20):
            producer.produce("orders", key=str(i % 4).encode(), value=str(i).encode())
        assert producer.flush(30) == 0

        registration = json.loads(zk.get("/brokers/ids/0")[0])
        assert registration["endpoints"] == [f"PLAINTEXT://127.0.0.1:{port}"]
        assert registration["host"] == "127.0.0.1" and registration["port"] == port
        assert zk.exists("/brokers/ids/0").ephemeralOwner != 0
        assert json.loads(zk.get("/controller")[0])["brokerid"] == 0
        assert int(zk.get("/controller_epoch")[0]) >= 1
        topic = json.loads(zk.get("/brokers/topics/orders")[0])
        assert topic["partitions"] == {"0": [0], "1": [0]}
        assert len(topic["topic_id"]) == 22
        state = json.loads(zk.get("/brokers/topics/orders/partitions/1/state")[0])
        assert state["leader"] == 0 and state["isr"] == [0]
        config = json.loads(zk.get("/config/topics/orders")[0])
        assert config == {"version": 1, "config": {"retention.ms": "3600000"}}
        assert len(json.loads(zk.get("/cluster/id")[0])["id"]) == 22
        block = json.loads(zk.get("/latest_producer_id_block")[0])
        assert int(block["block_end"]) - int(block["block_start"]) == 999
        assert "__consumer_offsets" in zk.get_children("/brokers/topics")

        stop(proc)
        wait_until(lambda: zk.exists("/brokers/ids/0") is None, 10,
                   "the broker's registration to go with its session")
        assert zk.exists("/brokers/topics/orders") is not None  # metadata outlives the broker

        proc = start_broker(tmp_path / "kafka", own_zookeeper.port, port, chroot)
        consumer = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "check",
                                "auto.offset.reset": "earliest"})
        consumer.subscribe(["orders"])
        values = []
        deadline_polls = 200
        while len(values) < 20 and deadline_polls:
            message = consumer.poll(0.2)
            deadline_polls -= 1
            if message is not None and message.error() is None:
                values.append(int(message.value()))
        consumer.close()
        assert sorted(values) == list(range(20))
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.delete_topics(["orders"])["orders"].result(30)
        assert zk.exists("/brokers/topics/orders") is None
        assert zk.exists("/config/topics/orders") is None
    finally:
        zk.stop()
        zk.close()
        if proc.poll() is None:
            stop(proc)


def test_changes_made_by_zookeeper_mode_tools_are_followed(own_zookeeper: Server,
                                                         tmp_path: Path) -> None:
    """What kafka-topics.sh / kafka-configs.sh --zookeeper wrote in Kafka's ZooKeeper era: a
    topic's assignment znode, a config override plus its change notification, a deletion
    request. The broker follows each, as Kafka's controller did."""
    port = free_port()
    proc = start_broker(tmp_path / "kafka", own_zookeeper.port, port, "/tools")
    zk = KazooClient(hosts=f"127.0.0.1:{own_zookeeper.port}/tools", timeout=30)
    zk.start(timeout=15)
    bootstrap = f"127.0.0.1:{port}"
    try:
        zk.create("/brokers/topics/made-by-a-tool", json.dumps(
            {"version": 1, "partitions": {"0": [0], "1": [0]}}).encode())
        admin = AdminClient({"bootstrap.servers": bootstrap})
        wait_until(lambda: "made-by-a-tool" in admin.list_topics(timeout=5).topics, 10,
                   "the broker to open a topic created in ZooKeeper")
        producer = ck.Producer({"bootstrap.servers": bootstrap})
        producer.produce("made-by-a-tool", b"hello", partition=1)
        assert producer.flush(20) == 0

        zk.create("/config/topics/made-by-a-tool",
                  json.dumps({"version": 1, "config": {"retention.ms": "1234567"}}).encode())
        zk.create("/config/changes/config_change_", json.dumps(
            {"version": 2, "entity_path": "topics/made-by-a-tool"}).encode(), sequence=True)
        resource = ck.admin.ConfigResource(ck.admin.ConfigResource.Type.TOPIC, "made-by-a-tool")

        def retention() -> str:
            return str(admin.describe_configs([resource])[resource].result(10)[
                "retention.ms"].value)
        wait_until(lambda: retention() == "1234567", 10, "the config change to be followed")

        zk.create("/admin/delete_topics/made-by-a-tool")
        wait_until(lambda: zk.exists("/brokers/topics/made-by-a-tool") is None, 10,
                   "the deletion request to be carried out")
        wait_until(lambda: zk.exists("/admin/delete_topics/made-by-a-tool") is None, 10,
                   "the deletion request to be removed")
        wait_until(lambda: "made-by-a-tool" not in admin.list_topics(timeout=5).topics, 10,
                   "the topic to be gone from the broker")
        assert not list((tmp_path / "kafka").glob("made-by-a-tool-*"))
    finally:
        zk.stop()
        zk.close()
        stop(proc)
