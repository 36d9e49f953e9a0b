"""Java `.properties` files (Kafka's server.properties) and telling them from a zoo.cfg.

Kept apart from the broker's configuration so that `zoolog up` can sort its --config files
without importing the broker (which runs in its own process).
"""

from __future__ import annotations

import re

DEFAULT_KAFKA_PORT = 9092


def parse_properties(text: str) -> dict[str, str]:
    """Java `.properties` text into a dict (last value of a key wins)."""
    out: dict[str, str] = {}
    logical = ""
    for raw in text.splitlines():
        line = raw.strip() if not logical else raw.lstrip()
        if not logical and (not line or line[0] in "#!"):
            continue
        if line.endswith("\\") and not line.endswith("\\\\"):
            logical += line[:-1]
            continue
        logical += line
        match = re.match(r"((?:\\.|[^=:\s])+)\s*[=:]?\s*(.*)$", logical)
        if match:
            key = re.sub(r"\\(.)", r"\1", match.group(1))
            out[key] = match.group(2).strip()
        logical = ""
    return out


def looks_like_server_properties(values: dict[str, str]) -> bool:
    """Whether a properties file is Kafka's (rather than ZooKeeper's zoo.cfg)."""
    kafka_keys = {"broker.id", "listeners", "log.dirs", "zookeeper.connect", "num.partitions",
                  "advertised.listeners", "log.retention.hours", "node.id", "process.roles"}
    return bool(kafka_keys & set(values))
