"""Generate zoolog's jute record classes from ZooKeeper's jute IDL.

    python tools/gen_jute.py            write src/zoolog/protocol/zk/_generated/jute_records.py
    python tools/gen_jute.py --check    exit 1 if the committed file differs from a regeneration

The spec (../shared/protocol-specs/zookeeper/zookeeper.jute) is data: only facts (class, field
and type names) reach the generated code, never its comments.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SPEC = ROOT.parent / "shared" / "protocol-specs" / "zookeeper" / "zookeeper.jute"
DEFAULT_OUT = ROOT / "src" / "zoolog" / "protocol" / "zk" / "_generated" / "jute_records.py"

FIXED = {"int": ("i", "int", "0"), "long": ("q", "int", "0"), "boolean": ("?", "bool", "False")}

Field = tuple[str, str]  # (name, jute type)


def parse(text: str) -> dict[str, list[Field]]:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    classes: dict[str, list[Field]] = {}
    for match in re.finditer(r"class\s+(\w+)\s*\{([^}]*)\}", text):
        name, body = match.group(1), match.group(2)
        if name in classes:
            raise SystemExit(f"gen_jute: class {name} defined twice")
        fields: list[Field] = []
        for decl in body.split(";"):
            decl = " ".join(decl.split())
            if not decl:
                continue
            m = re.fullmatch(r"(.+?)\s*(\w+)", decl)
            if m is None:
                raise SystemExit(f"gen_jute: cannot parse field {decl!r} in {name}")
            jtype = m.group(1).replace(" ", "")
            fields.append((m.group(2), jtype))
        classes[name] = fields
    return classes


def short(jtype: str) -> str:
    return jtype.rsplit(".", 1)[-1]


def py_type(jtype: str) -> str:
    if jtype in FIXED:
        return FIXED[jtype][1]
    if jtype == "buffer":
        return "bytes | None"
    if jtype == "ustring":
        return "str | None"
    if jtype.startswith("vector<"):
        return f"list[{element_type(jtype[7:-1])}] | None"
    return short(jtype)


def element_type(jtype: str) -> str:
    """Vector items are never null on the wire in practice: they decode as "" / b""."""
    return {"ustring": "str", "buffer": "bytes"}.get(jtype) or py_type(jtype)


def default(jtype: str) -> str:
    if jtype in FIXED:
        return f" = {FIXED[jtype][2]}"
    if jtype == "buffer":
        return " = None"
    if jtype == "ustring":
        return ' = ""'
    if jtype.startswith("vector<"):
        return " = field(default_factory=list)"
    return f" = field(default_factory=lambda: {short(jtype)}())"


def runs(fields: list[Field]) -> list[list[Field]]:
    """Group consecutive fixed-size fields so each group packs with one Struct."""
    groups: list[list[Field]] = []
    for f in fields:
        if f[1] in FIXED and groups and groups[-1][0][1] in FIXED:
            groups[-1].append(f)
        else:
            groups.append([f])
    return groups


def struct_name(group: list[Field]) -> str:
    return "_S_" + "".join(FIXED[t][0] for _, t in group).replace("?", "b_")


def write_lines(value: str, jtype: str, indent: str, depth: int = 0) -> list[str]:
    if jtype == "buffer":
        return [f"{indent}_write_buffer(out, {value})"]
    if jtype == "ustring":
        return [f"{indent}_write_ustring(out, {value})"]
    if jtype in FIXED:
        return [f"{indent}out += _S_{FIXED[jtype][0].replace('?', 'b_')}.pack({value})"]
    if jtype.startswith("vector<"):
        item = f"item{depth}"
        inner = jtype[7:-1]
        lines = [
            f"{indent}if {value} is None:",
            f"{indent}    out += _MINUS_ONE",
            f"{indent}else:",
            f"{indent}    out += _S_i.pack(len({value}))",
            f"{indent}    for {item} in {value}:",
        ]
        lines += write_lines(item, inner, indent + "        ", depth + 1)
        return lines
    return [f"{indent}{value}.write(out)"]


def read_lines(
    target: str, jtype: str, indent: str, depth: int = 0, in_vector: bool = False
) -> list[str]:
    if jtype == "buffer":
        reader = "_read_buffer_item" if in_vector else "_read_buffer"
        return [f"{indent}{target}, pos = {reader}(buf, pos)"]
    if jtype == "ustring":
        reader = "_read_ustring_item" if in_vector else "_read_ustring"
        return [f"{indent}{target}, pos = {reader}(buf, pos)"]
    if jtype in FIXED:
        s = f"_S_{FIXED[jtype][0].replace('?', 'b_')}"
        return [
            f"{indent}if pos + {s}.size > len(buf):",
            f"{indent}    raise JuteDecodeError(_TRUNCATED)",
            f"{indent}({target},) = {s}.unpack_from(buf, pos)",
            f"{indent}pos += {s}.size",
        ]
    if jtype.startswith("vector<"):
        inner = jtype[7:-1]
        tag = target.removeprefix("v_")
        count, items, item = f"count_{tag}", f"items_{tag}", f"item_{tag}"
        lines = [
            f"{indent}{count}, pos = _read_count(buf, pos)",
            f"{indent}{items}: {py_type(jtype).removesuffix(' | None')} | None = None",
            f"{indent}if {count} >= 0:",
            f"{indent}    {items} = []",
            f"{indent}    for _ in range({count}):",
        ]
        lines += read_lines(item, inner, indent + "        ", depth + 1, in_vector=True)
        lines += [f"{indent}        {items}.append({item})", f"{indent}{target} = {items}"]
        return lines
    return [f"{indent}{target}, pos = {short(jtype)}.read(buf, pos)"]


HEADER = '''"""Jute records of ZooKeeper's wire protocol. GENERATED by tools/gen_jute.py from
zookeeper.jute: do not edit; change the generator and regenerate.

Each record is a slotted dataclass with `write(out)`, `to_bytes()`, `read(buf, pos)` and
`from_bytes(buf)`. Decoding raises only `JuteDecodeError`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, Self

from zoolog.errors import JuteDecodeError

Buf = bytes | bytearray | memoryview

_TRUNCATED = "truncated jute record"
_S_i = struct.Struct(">i")
_MINUS_ONE = _S_i.pack(-1)


def _read_count(buf: Buf, pos: int) -> tuple[int, int]:
    """A length or count prefix: -1 means null; nothing may claim more than what is left."""
    if pos + 4 > len(buf):
        raise JuteDecodeError(_TRUNCATED)
    (n,) = _S_i.unpack_from(buf, pos)
    pos += 4
    if n < -1 or n > len(buf) - pos:
        raise JuteDecodeError(f"bad length {n} with {len(buf) - pos} bytes left")
    return n, pos


def _read_buffer(buf: Buf, pos: int) -> tuple[bytes | None, int]:
    n, pos = _read_count(buf, pos)
    if n < 0:
        return None, pos
    return bytes(buf[pos : pos + n]), pos + n


def _read_ustring(buf: Buf, pos: int) -> tuple[str | None, int]:
    n, pos = _read_count(buf, pos)
    if n < 0:
        return None, pos
    try:
        return bytes(buf[pos : pos + n]).decode("utf-8"), pos + n
    except UnicodeDecodeError as exc:
        raise JuteDecodeError(f"invalid UTF-8 in string: {exc}") from exc


def _read_buffer_item(buf: Buf, pos: int) -> tuple[bytes, int]:
    value, pos = _read_buffer(buf, pos)
    return (b"" if value is None else value), pos


def _read_ustring_item(buf: Buf, pos: int) -> tuple[str, int]:
    value, pos = _read_ustring(buf, pos)
    return ("" if value is None else value), pos


def _write_buffer(out: bytearray, value: bytes | None) -> None:
    if value is None:
        out += _MINUS_ONE
    else:
        out += _S_i.pack(len(value))
        out += value


def _write_ustring(out: bytearray, value: str | None) -> None:
    if value is None:
        out += _MINUS_ONE
    else:
        encoded = value.encode("utf-8", "surrogatepass")
        out += _S_i.pack(len(encoded))
        out += encoded
'''


def generate(classes: dict[str, list[Field]]) -> str:
    structs: set[str] = {"i", "q", "b_"}
    for fields in classes.values():
        for group in runs(fields):
            if group[0][1] in FIXED:
                structs.add(struct_name(group)[3:])
    lines = [HEADER]
    for code in sorted(structs):
        if code == "i":
            continue
        fmt = code.replace("b_", "?")
        lines.append(f'_S_{code} = struct.Struct(">{fmt}")')
    lines.append("")
    for name, fields in classes.items():
        lines += ["", "@dataclass(slots=True)", f"class {name}:"]
        if not fields:
            lines.append("    pass")
        for fname, jtype in fields:
            lines.append(f"    {fname}: {py_type(jtype)}{default(jtype)}")
        lines += ["", "    def write(self, out: bytearray) -> None:"]
        body: list[str] = []
        for group in runs(fields):
            if group[0][1] in FIXED:
                args = ", ".join(f"self.{f}" for f, _ in group)
                body.append(f"        out += {struct_name(group)}.pack({args})")
            else:
                fname, jtype = group[0]
                body += write_lines(f"self.{fname}", jtype, "        ")
        lines += body or ["        return"]
        lines += [
            "",
            "    def to_bytes(self) -> bytes:",
            "        out = bytearray()",
            "        self.write(out)",
            "        return bytes(out)",
            "",
            "    @classmethod",
            "    def read(cls, buf: Buf, pos: int = 0) -> tuple[Self, int]:",
        ]
        names: list[str] = []
        for group in runs(fields):
            if group[0][1] in FIXED:
                s = struct_name(group)
                targets = ", ".join(f"v_{f}" for f, _ in group) + ("," if len(group) == 1 else "")
                lines += [
                    f"        if pos + {s}.size > len(buf):",
                    "            raise JuteDecodeError(_TRUNCATED)",
                    f"        {targets} = {s}.unpack_from(buf, pos)",
                    f"        pos += {s}.size",
                ]
            else:
                fname, jtype = group[0]
                lines += read_lines(f"v_{fname}", jtype, "        ")
            names += [f"v_{f}" for f, _ in group]
        lines.append(f"        return cls({', '.join(names)}), pos")
        lines += [
            "",
            "    @classmethod",
            "    def from_bytes(cls, buf: Buf) -> Self:",
            "        record, pos = cls.read(buf, 0)",
            "        if pos != len(buf):",
            '            raise JuteDecodeError(f"{len(buf) - pos} trailing bytes after '
            + name
            + '")',
            "        return record",
            "",
        ]
    lines += ["", "RECORDS: dict[str, Any] = {"]
    lines += [f'    "{name}": {name},' for name in classes]
    lines += ["}", "", "FIELDS: dict[str, tuple[tuple[str, str], ...]] = {"]
    for name, fields in classes.items():
        inner = ", ".join(f'("{f}", "{short_type(t)}")' for f, t in fields)
        trailing = "," if len(fields) == 1 else ""
        lines.append(f'    "{name}": ({inner}{trailing}),')
    lines += ["}", ""]
    return "\n".join(lines)


def short_type(jtype: str) -> str:
    if jtype.startswith("vector<"):
        return f"vector<{short_type(jtype[7:-1])}>"
    return short(jtype)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spec", type=Path, default=DEFAULT_SPEC)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    code = generate(parse(args.spec.read_text(encoding="utf-8")))
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current != code:
            print(f"gen_jute: {args.out} is stale; run python tools/gen_jute.py", file=sys.stderr)
            return 1
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    init = args.out.parent / "__init__.py"
    if not init.exists():
        init.write_text('"""Code generated from ../shared/protocol-specs; do not edit."""\n')
    args.out.write_text(code, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
