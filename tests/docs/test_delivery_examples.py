"""docs/DELIVERY.md's examples are programs: each `# example:` block runs as written, in
its own process, against one fresh broker, and must exit 0 (they assert their outcome)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from zoolog.testing.kafka_servers import KafkaServerThread

DOC = Path(__file__).resolve().parents[2] / "docs" / "DELIVERY.md"
BLOCK = re.compile(r"```python\n(# example: ([\w-]+)\n.*?)```", re.DOTALL)
EXAMPLES = {name: code for code, name in BLOCK.findall(DOC.read_text(encoding="utf-8"))}


def test_the_document_has_every_example() -> None:
    assert set(EXAMPLES) == {"acks", "acks-aiokafka", "at-most-once", "at-least-once",
                             "at-least-once-aiokafka", "exactly-once",
                             "exactly-once-aiokafka"}


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaServerThread]:
    with KafkaServerThread(tmp_path_factory.mktemp("delivery")) as server:
        yield server


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_runs(name: str, broker: KafkaServerThread, tmp_path: Path) -> None:
    script = tmp_path / f"{name}.py"
    script.write_text(EXAMPLES[name], encoding="utf-8")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=180, env={**os.environ, "BOOTSTRAP": broker.bootstrap},
                            cwd=tmp_path)
    assert result.returncode == 0, f"{name} failed:\n{result.stdout}\n{result.stderr}"
