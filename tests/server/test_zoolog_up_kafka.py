"""`zoolog up` with the broker as users run it: Kafka's server.properties keys keep their
meaning, the printed bootstrap and export lines work, `--zookeeper` runs the broker alone."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import confluent_kafka as ck
from confluent_kafka.admin import AdminClient, ConfigResource


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(args: list[str]) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen([sys.executable, "-m", "zoolog", "up", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "export ZOOKEEPER_CONNECT" in line:
            return proc, lines
    raise AssertionError("zoolog up exited: " + "".join(lines) + (proc.stderr.read()
                                                                  if proc.stderr else ""))


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err
    return out


def test_server_properties_keys_keep_their_meaning(tmp_path: Path) -> None:
    kafka_port, zk_port = free_port(), free_port()
    properties = tmp_path / "server.properties"
    properties.write_text(
        "# a Kafka operator's file\n"
        "broker.id=0\n"
        f"listeners=PLAINTEXT://127.0.0.1:{kafka_port}\n"
        "num.partitions=3\n"
        "log.retention.hours=1\n"
        "auto.create.topics.enable=true\n"
        "group.initial.rebalance.delay.ms=0\n"
        "socket.send.buffer.bytes=102400\n")
    proc, lines = start(["--config", str(properties), "--data-dir", str(tmp_path / "data"),
                         "--port", str(zk_port)])
    try:
        text = "".join(lines)
        assert f"Kafka broker listening on 127.0.0.1:{kafka_port}" in text
        assert f"export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:{kafka_port}" in text
        bootstrap = f"127.0.0.1:{kafka_port}"
        producer = ck.Producer({"bootstrap.servers": bootstrap})
        producer.produce("auto", b"created on first use")
        assert producer.flush(30) == 0
        admin = AdminClient({"bootstrap.servers": bootstrap})
        metadata = admin.list_topics(timeout=10)
        assert len(metadata.topics["auto"].partitions) == 3  # num.partitions
        resource = ConfigResource(ConfigResource.Type.TOPIC, "auto")
        configs = admin.describe_configs([resource])[resource].result(20)
        retention = configs["retention.ms"]
        assert retention.value == "3600000"  # log.retention.hours=1
        assert retention.source == ck.admin.ConfigSource.STATIC_BROKER_CONFIG.value
    finally:
        out = stop(proc)
    assert "stopping" in out


def test_up_with_an_external_coordination_service_runs_the_broker_alone(tmp_path: Path) -> None:
    zk_port = free_port()
    zk = subprocess.Popen([sys.executable, "-m", "zoolog", "up", "--no-kafka", "--data-dir",
                           str(tmp_path / "zk"), "--port", str(zk_port)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert zk.stdout is not None and "listening" in zk.stdout.readline()
    try:
        kafka_port = free_port()
        proc, lines = start(["--zookeeper", f"127.0.0.1:{zk_port}", "--kafka-port",
                             str(kafka_port), "--data-dir", str(tmp_path / "broker")])
        text = "".join(lines)
        assert "coordination service listening" not in text  # only the broker started
        assert f"metadata in 127.0.0.1:{zk_port}" in text
        producer = ck.Producer({"bootstrap.servers": f"127.0.0.1:{kafka_port}"})
        producer.produce("elsewhere", b"x")
        assert producer.flush(30) == 0
        stop(proc)
    finally:
        zk.send_signal(signal.SIGTERM)
        zk.communicate(timeout=30)
