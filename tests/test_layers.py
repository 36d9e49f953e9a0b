"""The layering rules of STYLE.md, enforced: cores never touch the world, imports go down."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "zoolog"

CORES = ("protocol", "coord", "consensus", "logstore", "broker")
FORBIDDEN_IN_CORES = {"asyncio", "socket", "selectors", "threading", "time", "random", "os",
                      "subprocess", "multiprocessing"}
# package -> packages it must not import
FORBIDDEN_IMPORTS = {
    "protocol": {"coord", "server", "cli", "client", "testing"},
    "coord": {"server", "cli", "client", "testing"},
    "consensus": {"coord", "protocol", "server", "cli", "client", "testing"},
    # the runtime may use the asyncio clients (the broker keeps its metadata in the
    # coordination service through the ZooKeeper client); the clients never import it
    "server": {"cli", "testing"},
    "client": {"server", "cli", "testing"},
    "logstore": {"coord", "server", "cli", "client", "testing", "broker"},
    "broker": {"server", "cli", "client", "testing"},
}


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except those under `if TYPE_CHECKING:` (type-only imports)."""
    out: list[ast.AST] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            stack.extend(node.orelse)
            continue
        out.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return out


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_cores_touch_no_sockets_clocks_threads_or_files() -> None:
    offenders = []
    for core in CORES:
        for path in (SRC / core).rglob("*.py"):
            for name in imports_of(path):
                if name.split(".")[0] in FORBIDDEN_IN_CORES:
                    offenders.append(f"{path.relative_to(SRC)} imports {name}")
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                        and node.func.id == "open"):
                    offenders.append(f"{path.relative_to(SRC)} opens a file")
    assert offenders == []


def test_imports_only_go_down_the_layers() -> None:
    offenders = []
    for package, banned in FORBIDDEN_IMPORTS.items():
        for path in (SRC / package).rglob("*.py"):
            for name in imports_of(path):
                parts = name.split(".")
                if parts[0] == "zoolog" and len(parts) > 1 and parts[1] in banned:
                    offenders.append(f"{path.relative_to(SRC)} imports {name}")
    assert offenders == []
