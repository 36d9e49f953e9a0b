"""Generate zoolog's Kafka protocol codecs from Kafka's JSON message schemas.

    python tools/gen_kafka.py            write src/zoolog/protocol/kafka/_generated/
    python tools/gen_kafka.py --check    exit 1 if the committed files differ from a regeneration

The schemas (../shared/protocol-specs/kafka/*.json and ../shared/protocol-specs/
kafka-coordinator-records/*.json, JSON with `//` comments; the schema language is described in
the README.md beside them) are data: only facts (message, field and struct names, types,
versions, defaults, tags) reach the generated code, never their "about" prose or comments.

What is generated, per message (see `_generated/__init__.py` for the class shape):

- one plain slotted class per message, every struct type of its schema nested directly under it;
- one private decode and one encode function per (struct, distinct wire layout): the generator
  writes the straight-line body of every version, and versions whose bodies are identical share
  one function (the class dispatches through a tuple indexed by version). Bodies call the
  functions of nested structs for the same version directly, so no schema is interpreted at
  run time;
- precompiled `struct.Struct` objects, one per run of consecutive fixed-size fields.

`parse_all()` is importable (the tests derive their Hypothesis strategies from it).
"""

from __future__ import annotations

import argparse
import json
import keyword
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SPEC_DIR = ROOT.parent / "shared" / "protocol-specs" / "kafka"
RECORDS_DIR = ROOT.parent / "shared" / "protocol-specs" / "kafka-coordinator-records"
OUT_DIR = ROOT / "src" / "zoolog" / "protocol" / "kafka" / "_generated"

# The APIs zoolog speaks: (api key, name); <name>Request.json and <name>Response.json each.
APIS: tuple[tuple[int, str], ...] = (
    (0, "Produce"),
    (1, "Fetch"),
    (2, "ListOffsets"),
    (3, "Metadata"),
    (8, "OffsetCommit"),
    (9, "OffsetFetch"),
    (10, "FindCoordinator"),
    (11, "JoinGroup"),
    (12, "Heartbeat"),
    (13, "LeaveGroup"),
    (14, "SyncGroup"),
    (15, "DescribeGroups"),
    (16, "ListGroups"),
    (17, "SaslHandshake"),
    (18, "ApiVersions"),
    (19, "CreateTopics"),
    (20, "DeleteTopics"),
    (21, "DeleteRecords"),
    (22, "InitProducerId"),
    (23, "OffsetForLeaderEpoch"),
    (24, "AddPartitionsToTxn"),
    (25, "AddOffsetsToTxn"),
    (26, "EndTxn"),
    (27, "WriteTxnMarkers"),
    (28, "TxnOffsetCommit"),
    (32, "DescribeConfigs"),
    (33, "AlterConfigs"),
    (36, "SaslAuthenticate"),
    (37, "CreatePartitions"),
    (42, "DeleteGroups"),
    (44, "IncrementalAlterConfigs"),
    (47, "OffsetDelete"),
    (60, "DescribeCluster"),
    (61, "DescribeProducers"),
    (65, "DescribeTransactions"),
    (66, "ListTransactions"),
)

# Non-API schemas: module -> (folder, schema names).
OTHER_MODULES: dict[str, tuple[Path, tuple[str, ...]]] = {
    "headers": (SPEC_DIR, ("RequestHeader", "ResponseHeader")),
    "consumer_protocol": (
        SPEC_DIR, ("ConsumerProtocolSubscription", "ConsumerProtocolAssignment")
    ),
    "coordinator_records": (
        RECORDS_DIR,
        (
            "OffsetCommitKey",
            "OffsetCommitValue",
            "GroupMetadataKey",
            "GroupMetadataValue",
            "TransactionLogKey",
            "TransactionLogValue",
        ),
    ),
}

SHORT_MAX = 0x7FFF
SPLICE_MIN_BYTES = 64 * 1024

# Fixed-size types: struct format code, Python type, size in bytes, (min, max) for ints.
FIXED: dict[str, tuple[str, str, int, tuple[int, int] | None]] = {
    "bool": ("?", "bool", 1, None),
    "int8": ("b", "int", 1, (-(2**7), 2**7 - 1)),
    "int16": ("h", "int", 2, (-(2**15), 2**15 - 1)),
    "uint16": ("H", "int", 2, (0, 2**16 - 1)),
    "int32": ("i", "int", 4, (-(2**31), 2**31 - 1)),
    "uint32": ("I", "int", 4, (0, 2**32 - 1)),
    "int64": ("q", "int", 8, (-(2**63), 2**63 - 1)),
    "float64": ("d", "float", 8, None),
    "uuid": ("16s", "bytes", 16, None),
}
BLOBS = ("string", "bytes", "records")
RESERVED_ATTRS = {"decode", "encode", "to_bytes"}


class SpecError(Exception):
    """A schema the generator cannot accept; the message names the file and field."""


# ---------------------------------------------------------------------------------------------
# Schema model and parser


@dataclass(frozen=True)
class Versions:
    """An inclusive version range; empty when lo > hi."""

    lo: int
    hi: int

    def __contains__(self, version: object) -> bool:
        return isinstance(version, int) and self.lo <= version <= self.hi

    @property
    def empty(self) -> bool:
        return self.lo > self.hi


NO_VERSIONS = Versions(1, 0)


def parse_versions(text: object, default: Versions | None, where: str) -> Versions:
    if text is None or text == "":
        if default is None:
            raise SpecError(f"{where}: versions missing")
        return default
    if not isinstance(text, str):
        raise SpecError(f"{where}: versions {text!r} is not a string")
    if text == "none":
        return NO_VERSIONS
    m = re.fullmatch(r"(\d+)(\+|-(\d+))?", text.strip())
    if m is None:
        raise SpecError(f"{where}: cannot parse versions {text!r}")
    lo = int(m.group(1))
    if m.group(2) is None:
        return Versions(lo, lo)
    if m.group(2) == "+":
        return Versions(lo, SHORT_MAX)
    return Versions(lo, int(m.group(3)))


@dataclass
class FieldSpec:
    name: str  # as in the schema
    attr: str  # Python attribute name
    type: str  # "int32", "string", "[]int32", "[]Foo", "Foo", ...
    versions: Versions
    nullable: Versions
    tagged: Versions
    tag: int | None
    default: str  # as in the schema, "" when absent
    flexible: Versions | None  # field-level flexibleVersions override
    where: str

    @property
    def is_array(self) -> bool:
        return self.type.startswith("[]")

    @property
    def element(self) -> str:
        return self.type[2:]

    @property
    def is_struct(self) -> bool:
        return not self.is_array and is_struct_type(self.type)

    @property
    def struct_name(self) -> str | None:
        """The struct type this field holds (single or as array elements), if any."""
        t = self.element if self.is_array else self.type
        return t if is_struct_type(t) else None

    @property
    def default_is_null(self) -> bool:
        return self.default == "null"

    def nullable_at(self, version: int) -> bool:
        return version in self.nullable

    def ever_nullable(self) -> bool:
        return not self.nullable.empty or self.default_is_null


@dataclass
class StructSpec:
    name: str
    fields: list[FieldSpec]


@dataclass
class MessageSpec:
    name: str  # class name, e.g. ProduceRequest
    kind: str  # request | response | header | data
    api_key: int  # -1 for non-API schemas
    valid: Versions
    flexible: Versions
    top: StructSpec
    structs: dict[str, StructSpec] = field(default_factory=dict)  # nested, first-seen order
    module: str = ""

    @property
    def flexible_from(self) -> int | None:
        return None if self.flexible.empty else self.flexible.lo

    def versions(self) -> range:
        return range(self.valid.lo, self.valid.hi + 1)

    def is_flexible(self, version: int) -> bool:
        return version in self.flexible


def is_struct_type(t: str) -> bool:
    return t not in FIXED and t not in BLOBS and t[:1].isupper()


def strip_comments(text: str) -> str:
    """Remove `//` comments outside JSON strings (the prose inside strings may hold `//`)."""
    out: list[str] = []
    i, n = 0, len(text)
    in_string = False
    while i < n:
        c = text[i]
        if in_string:
            out.append(c)
            if c == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 2
                continue
            if c == '"':
                in_string = False
            i += 1
        elif c == '"':
            in_string = True
            out.append(c)
            i += 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def snake(name: str) -> str:
    """`TopicData` -> `topic_data`, `leaderEpoch` -> `leader_epoch`, `ISRNodes` -> `isr_nodes`."""
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s).lower()
    return s + "_" if keyword.iskeyword(s) or keyword.issoftkeyword(s) else s


def default_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_message(path: Path, module: str) -> MessageSpec:
    try:
        data = json.loads(strip_comments(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise SpecError(f"{path.name}: {exc}") from exc
    name = data["name"]
    kind = data["type"]
    if kind not in ("request", "response", "header", "data"):
        raise SpecError(f"{path.name}: unknown message type {kind!r}")
    valid = parse_versions(data.get("validVersions"), None, f"{name}.validVersions")
    flexible = parse_versions(data.get("flexibleVersions"), None, f"{name}.flexibleVersions")
    msg = MessageSpec(
        name=name,
        kind=kind,
        api_key=int(data.get("apiKey", -1)),
        valid=valid,
        flexible=flexible,
        top=StructSpec(name, []),
        module=module,
    )
    common = {s["name"]: s for s in data.get("commonStructs", [])}
    msg.top.fields = parse_fields(msg, name, data.get("fields", []), common)
    for cname, cdata in common.items():
        if cname not in msg.structs:
            # A common struct nobody uses still gets its class.
            register_struct(msg, cname, cdata.get("fields", []), common)
    return msg


def parse_fields(
    msg: MessageSpec, owner: str, raw_fields: Any, common: dict[str, Any]
) -> list[FieldSpec]:
    fields: list[FieldSpec] = []
    attrs: set[str] = set()
    tags: set[int] = set()
    for raw in raw_fields:
        fname = str(raw["name"])
        where = f"{msg.name}.{owner}.{fname}" if owner != msg.name else f"{msg.name}.{fname}"
        tagged = parse_versions(raw.get("taggedVersions"), NO_VERSIONS, where)
        versions = parse_versions(raw.get("versions"), None if tagged.empty else tagged, where)
        nullable = parse_versions(raw.get("nullableVersions"), NO_VERSIONS, where)
        flex_raw = raw.get("flexibleVersions")
        flex = None if flex_raw is None else parse_versions(flex_raw, None, where)
        tag_raw = raw.get("tag")
        tag = None if tag_raw is None else int(str(tag_raw))
        ftype = str(raw["type"])
        f = FieldSpec(
            name=fname,
            attr=snake(fname),
            type=ftype,
            versions=versions,
            nullable=nullable,
            tagged=tagged,
            tag=tag,
            default=default_text(raw.get("default")),
            flexible=flex,
            where=where,
        )
        check_field(msg, f)
        if f.attr in attrs:
            raise SpecError(f"{where}: attribute {f.attr} used twice")
        attrs.add(f.attr)
        if tag is not None:
            if tag in tags:
                raise SpecError(f"{where}: tag {tag} used twice")
            tags.add(tag)
        fields.append(f)
        sname = f.struct_name
        if sname is not None:
            if "fields" in raw:
                register_struct(msg, sname, raw["fields"], common, where)
            elif sname in common:
                if sname not in msg.structs:
                    register_struct(msg, sname, common[sname]["fields"], common)
            else:
                raise SpecError(f"{where}: struct type {sname} has no definition")
    return fields


def register_struct(
    msg: MessageSpec,
    sname: str,
    raw_fields: Any,
    common: dict[str, Any],
    where: str = "",
) -> None:
    if sname in msg.structs or sname == msg.name:
        raise SpecError(f"{where or msg.name}: struct {sname} defined twice")
    struct = StructSpec(sname, [])
    msg.structs[sname] = struct  # registered first: fields of nested structs follow it
    struct.fields = parse_fields(msg, sname, raw_fields, common)


def check_field(msg: MessageSpec, f: FieldSpec) -> None:
    where = f.where
    if f.attr in RESERVED_ATTRS:
        raise SpecError(f"{where}: attribute name {f.attr} clashes with a method")
    base = f.element if f.is_array else f.type
    if f.is_array and (base.startswith("[]") or base == "records"):
        raise SpecError(f"{where}: unsupported array element type {base}")
    if not (base in FIXED or base in BLOBS or is_struct_type(base)):
        raise SpecError(f"{where}: unknown type {f.type}")
    if not f.nullable.empty and not f.is_array and f.type in FIXED and f.type != "uuid":
        raise SpecError(f"{where}: type {f.type} cannot be nullable")
    if f.type == "uuid" and not f.nullable.empty:
        raise SpecError(f"{where}: nullable uuid is not supported")
    if f.default_is_null and not (
        f.nullable.lo <= f.versions.lo and f.nullable.hi >= f.versions.hi
    ):
        raise SpecError(f"{where}: null default but not nullable in every version")
    if f.tag is not None:
        if f.tagged.empty or f.tagged.hi != SHORT_MAX or f.tag < 0:
            raise SpecError(f"{where}: bad tag or taggedVersions")
        if f.type == "records":
            raise SpecError(f"{where}: records cannot be tagged")
        both = Versions(max(f.nullable.lo, f.tagged.lo), min(f.nullable.hi, f.tagged.hi))
        if not both.empty and both != f.tagged:
            raise SpecError(f"{where}: tagged versions must be all nullable or none")
        if f.tagged.lo < msg.flexible.lo or msg.flexible.empty:
            raise SpecError(f"{where}: tagged outside flexible versions")
    elif not f.tagged.empty:
        raise SpecError(f"{where}: taggedVersions without a tag")
    if f.flexible is not None and f.type not in ("string", "bytes"):
        raise SpecError(f"{where}: flexibleVersions override on {f.type}")
    default_literal(f)  # validates the default


def parse_all() -> list[MessageSpec]:
    """Every generated message, in output order (API modules, then the others)."""
    messages: list[MessageSpec] = []
    for api_key, api in APIS:
        module = snake(api)
        for kind in ("Request", "Response"):
            path = SPEC_DIR / f"{api}{kind}.json"
            msg = parse_message(path, module)
            if msg.api_key != api_key or msg.kind != kind.lower():
                raise SpecError(f"{path.name}: expected {kind.lower()} with api key {api_key}")
            messages.append(msg)
    for module, (folder, names) in OTHER_MODULES.items():
        for name in names:
            msg = parse_message(folder / f"{name}.json", module)
            if msg.api_key != -1:
                raise SpecError(f"{name}: unexpected api key")
            messages.append(msg)
    return messages


# ---------------------------------------------------------------------------------------------
# Defaults and Python types


def parse_int(text: str, where: str) -> int:
    t = text.strip()
    neg = t.startswith("-")
    body = t[1:] if neg else t
    try:
        value = int(body[2:], 16) if body.lower().startswith("0x") else int(body, 10)
    except ValueError as exc:
        raise SpecError(f"{where}: bad integer default {text!r}") from exc
    return -value if neg else value


def default_value(f: FieldSpec) -> object:
    """The Python value of a field's default (lists and structs as the markers [] and {})."""
    d = f.default
    if f.is_array:
        if d == "null":
            return None
        if d:
            raise SpecError(f"{f.where}: arrays default only to empty or null")
        return []
    if f.is_struct:
        if d == "null":
            return None
        if d:
            raise SpecError(f"{f.where}: structs default only to empty or null")
        return {}
    t = f.type
    if t == "bool":
        if d.lower() not in ("", "true", "false"):
            raise SpecError(f"{f.where}: bad bool default {d!r}")
        return d.lower() == "true"
    if t == "float64":
        try:
            return float(d) if d else 0.0
        except ValueError as exc:
            raise SpecError(f"{f.where}: bad float default {d!r}") from exc
    if t == "uuid":
        if d:
            raise SpecError(f"{f.where}: uuid defaults are not supported")
        return bytes(16)
    if t in FIXED:
        value = parse_int(d, f.where) if d else 0
        lo, hi = FIXED[t][3] or (0, 0)
        if not lo <= value <= hi:
            raise SpecError(f"{f.where}: default {d} out of range for {t}")
        return value
    if t == "string":
        return None if d == "null" else d
    if t == "bytes":
        if d == "null":
            return None
        if d:
            raise SpecError(f"{f.where}: bytes default only to empty or null")
        return b""
    if t == "records":
        return None
    raise SpecError(f"{f.where}: no default for type {t}")


def default_literal(f: FieldSpec) -> str:
    value = default_value(f)
    if isinstance(value, bytes) and len(value) == 16:
        return "_ZERO_UUID"
    if isinstance(value, str):
        return q(value)
    return repr(value)


# ---------------------------------------------------------------------------------------------
# Code generation


def uvarint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


ARRAY_TABLE = 32  # arrays of fixed-size items shorter than this use a precompiled Struct


def array_table(code: str) -> str:
    """The runtime's tuple of Structs for 0..ARRAY_TABLE-1 items of one fixed-size type."""
    return "_ARRAY_" + code.replace("?", "T")


def fmt_name(fmt: str) -> str:
    return "_S_" + fmt.lstrip(">").replace("?", "T")


def q(text: str) -> str:
    """A double-quoted Python string literal."""
    return json.dumps(text, ensure_ascii=False)


def bq(data: bytes) -> str:
    """A double-quoted Python bytes literal, every byte as a hex escape."""
    return 'b"' + "".join(f"\\x{c:02x}" for c in data) + '"'



class ModuleGen:
    """Generates one module: its messages' classes, codec functions and Struct constants."""

    def __init__(self, module: str, messages: list[MessageSpec]) -> None:
        self.module = module
        self.messages = messages
        self.formats: set[str] = set()
        self.funcs: list[str] = []
        self.bodies: dict[tuple[str, str], str] = {}  # (prefix, body) -> function name
        self.counters: dict[str, int] = {}
        self.memo: dict[tuple[str, str, str, int], str] = {}
        self.msg: MessageSpec = messages[0]
        self.splicing: dict[str, bool] = {}
        self.defaults_needed: set[str] = set()

    # -- naming -----------------------------------------------------------------------------

    def qual(self, sname: str) -> str:
        """The annotation for a struct type: the top-level class or a class nested in it."""
        return sname if sname == self.msg.name else f"{self.msg.name}.{sname}"

    def alias(self, sname: str) -> str:
        return sname if sname == self.msg.name else f"_C_{self.msg.name}_{sname}"

    def struct(self, sname: str) -> StructSpec:
        return self.msg.top if sname == self.msg.name else self.msg.structs[sname]

    def needs_splices(self, sname: str) -> bool:
        """Whether a struct (transitively) holds a records field."""
        if sname not in self.splicing:
            self.splicing[sname] = False
            self.splicing[sname] = any(
                f.type == "records"
                or (f.struct_name is not None and self.needs_splices(f.struct_name))
                for f in self.struct(sname).fields
            )
        return self.splicing[sname]

    def fixed(self, fmt: str) -> str:
        self.formats.add(fmt)
        return fmt_name(fmt)

    def add_function(self, prefix: str, signature: str, body: list[str]) -> str:
        """Add a function unless one with the same body exists; return its name."""
        text = "\n".join(body)
        key = (prefix + signature, text)
        if key in self.bodies:
            return self.bodies[key]
        index = self.counters.get(prefix, 0)
        self.counters[prefix] = index + 1
        name = f"{prefix}_{index}"
        self.bodies[key] = name
        self.funcs.append(f"def {name}{signature}:\n{text}\n")
        return name

    def py_type(self, f: FieldSpec) -> str:
        if f.type == "records":
            return "Any"
        if f.is_array:
            elem = f.element
            inner = FIXED[elem][1] if elem in FIXED else self.elem_type(elem)
            base = f"list[{inner}]"
        elif f.is_struct:
            base = self.qual(f.type)
        elif f.type in FIXED:
            return FIXED[f.type][1]
        else:
            base = {"string": "str", "bytes": "bytes"}[f.type]
        return base + " | None" if f.ever_nullable() else base

    def elem_type(self, elem: str) -> str:
        if elem in FIXED:
            return FIXED[elem][1]
        if elem == "string":
            return "str"
        if elem == "bytes":
            return "bytes"
        return self.qual(elem)

    def field_flexible(self, f: FieldSpec, version: int) -> bool:
        if f.flexible is not None:
            return version in f.flexible
        return self.msg.is_flexible(version)

    # -- decoding ---------------------------------------------------------------------------

    def decoder(self, sname: str, version: int) -> str:
        key = (self.msg.name, "d", sname, version)
        if key not in self.memo:
            self.memo[key] = self.gen_decoder(sname, version)
        return self.memo[key]

    def gen_decoder(self, sname: str, version: int) -> str:
        struct = self.struct(sname)
        flexible = self.msg.is_flexible(version)
        alias = self.alias(sname)
        ind = "    "
        body = [f"{ind}o = {alias}.__new__({alias})"]
        present: list[FieldSpec] = []
        tagged: list[FieldSpec] = []
        for f in struct.fields:
            if version not in f.versions:
                body.append(f"{ind}o.{f.attr} = {self.default_expr(f)}")
            elif version in f.tagged:
                body.append(f"{ind}o.{f.attr} = {self.default_expr(f)}")
                tagged.append(f)
            else:
                present.append(f)
        for run in runs(present):
            if len(run) > 1 or run[0].type in FIXED:
                fmt = "".join(FIXED[f.type][0] for f in run)
                size = sum(FIXED[f.type][2] for f in run)
                targets = ", ".join(f"o.{f.attr}" for f in run)
                if len(run) == 1:
                    targets = f"({targets},)"
                body.append(f"{ind}{targets} = {self.fixed('>' + fmt)}.unpack_from(buf, pos)")
                body.append(f"{ind}pos += {size}")
            else:
                f = run[0]
                flex = self.field_flexible(f, version)
                body += self.dec_field(f, version, f"o.{f.attr}", ind, flex)
        if flexible:
            # the tagged-field count: almost always a single zero byte
            if tagged:
                tags = self.tag_decoder(sname, version, tagged)
                call = f"{tags}(o, buf, pos)"
            else:
                call = "_skip_tags(buf, pos)"
            body += [f"{ind}if buf[pos]:", f"{ind}    pos = {call}", f"{ind}else:",
                     f"{ind}    pos += 1"]
        body.append(f"{ind}return o, pos")
        sig = f"(buf: memoryview, pos: int) -> tuple[{self.qual(sname)}, int]"
        return self.add_function(self.fn_prefix("d", sname), sig, body)

    def default_expr(self, f: FieldSpec) -> str:
        value = default_value(f)
        if f.is_array:
            return "None" if value is None else "[]"
        if f.is_struct:
            return "None" if value is None else f"{self.alias(f.type)}()"
        return default_literal(f)

    def dec_field(
        self, f: FieldSpec, version: int, target: str, ind: str, flexible: bool
    ) -> list[str]:
        nullable = f.nullable_at(version)
        if f.is_array:
            return self.dec_array(f, version, target, ind, flexible, nullable)
        if f.is_struct:
            dec = self.decoder(f.type, version)
            if nullable:
                return [
                    f"{ind}if buf[pos] & 0x80:",
                    f"{ind}    {target} = None",
                    f"{ind}    pos += 1",
                    f"{ind}else:",
                    f"{ind}    {target}, pos = {dec}(buf, pos + 1)",
                ]
            return [f"{ind}{target}, pos = {dec}(buf, pos)"]
        if f.type in FIXED:
            code, _, size, _ = FIXED[f.type]
            return [
                f"{ind}({target},) = {self.fixed('>' + code)}.unpack_from(buf, pos)",
                f"{ind}pos += {size}",
            ]
        return self.dec_blob(f.type, target, ind, flexible, nullable, f.where)

    def dec_blob(
        self, kind: str, target: str, ind: str, flexible: bool, nullable: bool, where: str
    ) -> list[str]:
        def value(start: str) -> str:
            if kind == "string":
                return f'str(buf[{start} : pos], "utf-8")'
            if kind == "bytes":
                return f"bytes(buf[{start} : pos])"
            return f"buf[{start} : pos]"

        if flexible:
            # fast path: a one-byte length that is not null
            slow = f"_compact_{kind}_or_none(buf, pos)" if nullable else (
                f"_compact_{kind}(buf, pos, {q(where)})"
            )
            return [
                f"{ind}n = buf[pos]",
                f"{ind}if 0 < n < 0x80:",
                f"{ind}    pos += n",
                f"{ind}    {target} = {value('pos - n + 1')}",
                f"{ind}else:",
                f"{ind}    {target}, pos = {slow}",
            ]
        prefix, size = ("h", 2) if kind == "string" else ("i", 4)
        lines = [
            f"{ind}(n,) = {self.fixed('>' + prefix)}.unpack_from(buf, pos)",
            f"{ind}if n >= 0:",
            f"{ind}    pos += n + {size}",
            f"{ind}    {target} = {value('pos - n')}",
            f"{ind}else:",
        ]
        if nullable:
            return [
                *lines,
                f"{ind}    _null_length(n)",
                f"{ind}    {target} = None",
                f"{ind}    pos += {size}",
            ]
        return [*lines, f"{ind}    raise _null_error({q(where)})"]

    def dec_array(
        self, f: FieldSpec, version: int, target: str, ind: str, flexible: bool, nullable: bool
    ) -> list[str]:
        elem = f.element
        items = f"items_{f.attr}"
        item = f"item_{f.attr}"
        where = q(f.where)
        if flexible:
            # fast path: a one-byte count that is neither null nor more than the bytes left
            slow = "_compact_count_or_null(buf, pos" if nullable else "_compact_count(buf, pos"
            lines = [
                f"{ind}n = buf[pos] - 1",
                f"{ind}if 0 <= n < 0x7F and n < len(buf) - pos:",
                f"{ind}    pos += 1",
                f"{ind}else:",
                f"{ind}    n, pos = {slow}, {where})",
            ]
            if nullable:
                lines += [f"{ind}if n < 0:", f"{ind}    {target} = None", f"{ind}else:"]
                inner = ind + "    "
            else:
                inner = ind
        else:
            lines = [
                f"{ind}(n,) = {self.fixed('>i')}.unpack_from(buf, pos)",
                f"{ind}pos += 4",
            ]
            if nullable:
                lines += [f"{ind}if n == -1:", f"{ind}    {target} = None", f"{ind}else:"]
                inner = ind + "    "
            else:
                inner = ind
            lines += [
                f"{inner}if n < 0 or n > len(buf) - pos:",
                f"{inner}    raise _count_error(n, len(buf) - pos, {where})",
            ]
        if elem in FIXED and elem != "uuid":
            code, _, size, _ = FIXED[elem]
            arr = f"{array_table(code)}[n]"
            lines += [
                f"{inner}{target} = list(({arr} if n < {ARRAY_TABLE} else "
                f'_Struct(f">{{n}}{code}")).unpack_from(buf, pos))',
                f"{inner}pos += {size} * n",
            ]
            return lines
        if elem == "uuid":
            lines += [
                f"{inner}{target} = [bytes(buf[p : p + 16]) for p in range(pos, pos + 16 * n, 16)]",
                f"{inner}pos += 16 * n",
            ]
            return lines
        lines += [f"{inner}{items}: list[{self.elem_type(elem)}] = []"]
        if elem in BLOBS:
            lines += [f"{inner}for _ in range(n):"]
            lines += self.dec_blob(elem, item, inner + "    ", flexible, False, f.where)
            lines += [f"{inner}    {items}.append({item})"]
        else:
            dec = self.decoder(elem, version)
            lines += [
                f"{inner}for _ in range(n):",
                f"{inner}    {item}, pos = {dec}(buf, pos)",
                f"{inner}    {items}.append({item})",
            ]
        lines += [f"{inner}{target} = {items}"]
        return lines

    def tag_decoder(self, sname: str, version: int, tagged: list[FieldSpec]) -> str:
        ind = "        "
        body = [
            "    count, pos = _read_uvarint(buf, pos)",
            "    if count > len(buf) - pos:",
            "        raise _count_error(count, len(buf) - pos, \"tagged fields\")",
            "    for _ in range(count):",
            "        tag, pos = _read_uvarint(buf, pos)",
            "        size, pos = _read_uvarint(buf, pos)",
            "        tag_end = pos + size",
        ]
        first = True
        for f in sorted(tagged, key=lambda x: x.tag or 0):
            body.append(f"{ind}{'if' if first else 'elif'} tag == {f.tag}:")
            first = False
            inner = ind + "    "
            target = f"o.{f.attr}"
            if f.is_struct and f.nullable_at(version):
                dec = self.decoder(f.type, version)
                body += read_uvarint("n", inner)
                body += [
                    f"{inner}if n:",
                    f"{inner}    {target}, pos = {dec}(buf, pos)",
                    f"{inner}else:",
                    f"{inner}    {target} = None",
                ]
            else:
                body += self.dec_field(f, version, target, inner, True)
            body += [
                f"{inner}if pos != tag_end:",
                f"{inner}    raise _tag_size_error({f.tag}, {q(f.where)})",
            ]
        body += [f"{ind}pos = tag_end", "    return pos"]
        sig = f"(o: {self.qual(sname)}, buf: memoryview, pos: int) -> int"
        return self.add_function(self.fn_prefix("t", sname), sig, body)

    def fn_prefix(self, kind: str, sname: str) -> str:
        if sname == self.msg.name:
            return f"_{kind}_{sname}"
        return f"_{kind}_{self.msg.name}_{sname}"

    # -- encoding ---------------------------------------------------------------------------

    def encoder(self, sname: str, version: int) -> str:
        key = (self.msg.name, "e", sname, version)
        if key not in self.memo:
            self.memo[key] = self.gen_encoder(sname, version)
        return self.memo[key]

    def call_encoder(self, sname: str, version: int, value: str, out: str) -> str:
        enc = self.encoder(sname, version)
        extra = ", splices" if self.needs_splices(sname) and sname != self.msg.name else ""
        return f"{enc}({value}, {out}{extra})"

    def gen_encoder(self, sname: str, version: int) -> str:
        struct = self.struct(sname)
        flexible = self.msg.is_flexible(version)
        ind = "    "
        body: list[str] = []
        present = [f for f in struct.fields if version in f.versions and version not in f.tagged]
        tagged = [f for f in struct.fields if version in f.versions and version in f.tagged]
        for run in runs(present):
            if len(run) > 1 or run[0].type in FIXED:
                fmt = "".join(FIXED[f.type][0] for f in run)
                args = ", ".join(f"o.{f.attr}" for f in run)
                body.append(f"{ind}out += {self.fixed('>' + fmt)}.pack({args})")
            else:
                f = run[0]
                body += self.enc_field(f, version, f"o.{f.attr}", ind, "out",
                                       self.field_flexible(f, version))
        if flexible:
            if tagged:
                body.append(f"{ind}{self.tag_encoder(sname, version, tagged)}(o, out)")
            else:
                body.append(f"{ind}out.append(0)")
        if not body:
            body.append(f"{ind}return")
        with_splices = self.needs_splices(sname) or sname == self.msg.name
        splices = ", splices: Splices | None" if with_splices else ""
        sig = f"(o: {self.qual(sname)}, out: bytearray{splices}) -> None"
        return self.add_function(self.fn_prefix("e", sname), sig, body)

    def enc_field(
        self, f: FieldSpec, version: int, value: str, ind: str, out: str, flexible: bool
    ) -> list[str]:
        nullable = f.nullable_at(version)
        var = f"v_{f.attr}"
        may_be_none = f.ever_nullable()
        lines: list[str] = []
        if f.type in FIXED:
            code = FIXED[f.type][0]
            return [f"{ind}{out} += {self.fixed('>' + code)}.pack({value})"]
        if f.is_struct:
            call = self.call_encoder(f.type, version, var, out)
            if nullable:
                return [
                    f"{ind}{var} = {value}",
                    f"{ind}if {var} is None:",
                    f"{ind}    {out}.append(0xFF)",
                    f"{ind}else:",
                    f"{ind}    {out}.append(1)",
                    f"{ind}    {call}",
                ]
            lines = [f"{ind}{var} = {value}"]
            if may_be_none:
                lines += [f"{ind}if {var} is None:", f"{ind}    raise _none_error({q(f.where)})"]
            return [*lines, f"{ind}{call}"]
        lines = [f"{ind}{var} = {value}"]
        if may_be_none or f.type == "records":
            if nullable:
                if flexible:
                    null = f"{out}.append(0)"
                elif f.type == "string":
                    null = f'{out} += b"\\xff\\xff"'
                else:
                    null = f'{out} += b"\\xff\\xff\\xff\\xff"'
            else:
                null = f"raise _none_error({q(f.where)})"
            lines += [f"{ind}if {var} is None:", f"{ind}    {null}", f"{ind}else:"]
            ind += "    "
        if f.is_array:
            lines += self.enc_array(f, version, var, ind, out, flexible)
        else:
            lines += self.enc_blob(f.type, var, ind, out, flexible)
        return lines

    def enc_length(self, length: str, ind: str, out: str, flexible: bool, fmt: str) -> list[str]:
        if flexible:
            return [
                f"{ind}n = {length} + 1",
                f"{ind}if n < 0x80:",
                f"{ind}    {out}.append(n)",
                f"{ind}else:",
                f"{ind}    {out} += _uvarint(n)",
            ]
        return [f"{ind}{out} += {self.fixed('>' + fmt)}.pack({length})"]

    def enc_blob(self, kind: str, var: str, ind: str, out: str, flexible: bool) -> list[str]:
        if kind == "string":
            lines = [f"{ind}b = {var}.encode()"]
            lines += self.enc_length("len(b)", ind, out, flexible, "h")
            return [*lines, f"{ind}{out} += b"]
        if kind == "bytes":
            lines = self.enc_length(f"len({var})", ind, out, flexible, "i")
            return [*lines, f"{ind}{out} += {var}"]
        lines = [f"{ind}size = len({var})"]
        lines += self.enc_length("size", ind, out, flexible, "i")
        return [*lines, f"{ind}_put_records({out}, {var}, size, splices)"]

    def enc_array(
        self, f: FieldSpec, version: int, var: str, ind: str, out: str, flexible: bool
    ) -> list[str]:
        elem = f.element
        lines = self.enc_length(f"len({var})", ind, out, flexible, "i")
        item = f"e_{f.attr}"
        if elem in FIXED and elem != "uuid":
            code = FIXED[elem][0]
            n = f"len({var})"
            return [
                *lines,
                f"{ind}{out} += ({array_table(code)}[{n}] if {n} < {ARRAY_TABLE} else "
                f'_Struct(f">{{{n}}}{code}")).pack(*{var})',
            ]
        if elem == "uuid":
            return [*lines, f"{ind}for {item} in {var}:", f"{ind}    {out} += {item}"]
        lines.append(f"{ind}for {item} in {var}:")
        if elem in BLOBS:
            return lines + self.enc_blob(elem, item, ind + "    ", out, flexible)
        return [*lines, f"{ind}    {self.call_encoder(elem, version, item, out)}"]

    def tag_encoder(self, sname: str, version: int, tagged: list[FieldSpec]) -> str:
        ind = "    "
        body = [f"{ind}count = 0", f"{ind}t = bytearray()"]
        for f in sorted(tagged, key=lambda x: x.tag or 0):
            assert f.tag is not None
            var = f"v_{f.attr}"
            tag_bytes = uvarint(f.tag)
            body.append(f"{ind}{var} = o.{f.attr}")
            check = self.non_default(f, var, version)
            nullable = f.nullable_at(version)
            inner = ind + "    "
            present: list[str] = [f"{inner}count += 1"]
            if f.type in FIXED:
                size = FIXED[f.type][2]
                present.append(f"{inner}t += {bq(tag_bytes + uvarint(size))}")
                present.append(f"{inner}t += {self.fixed('>' + FIXED[f.type][0])}.pack({var})")
            else:
                present.append(f"{inner}w = bytearray()")
                if f.struct_name is not None and self.needs_splices(f.struct_name):
                    raise SpecError(f"{f.where}: a tagged field cannot hold records")
                if f.is_struct:
                    if nullable:
                        present.append(f"{inner}w.append(1)")
                    present.append(f"{inner}{self.call_encoder(f.type, version, var, 'w')}")
                elif f.is_array:
                    present += self.enc_array(f, version, var, inner, "w", True)
                else:
                    present += self.enc_blob(f.type, var, inner, "w", True)
                present += [
                    f"{inner}t += {bq(tag_bytes)}",
                    f"{inner}t += _uvarint(len(w))",
                    f"{inner}t += w",
                ]
            if f.default_is_null:
                body.append(f"{ind}if {check}:")
            elif f.ever_nullable():
                if nullable:  # null differs from the default: written as a null marker
                    marker = tag_bytes + bytes((1, 0))
                    none = [f"{inner}count += 1", f"{inner}t += {bq(marker)}"]
                else:
                    none = [f"{inner}raise _none_error({q(f.where)})"]
                body += [f"{ind}if {var} is None:", *none, f"{ind}elif {check}:"]
            else:
                body.append(f"{ind}if {check}:")
            body += present
        body += [f"{ind}out += _uvarint(count)", f"{ind}out += t"]
        sig = f"(o: {self.qual(sname)}, out: bytearray) -> None"
        return self.add_function(self.fn_prefix("et", sname), sig, body)

    def non_default(self, f: FieldSpec, var: str, version: int) -> str:
        """A condition true when a tagged field differs from its default (None handled apart
        when nullable and the default is not null)."""
        if f.default_is_null:
            return f"{var} is not None"
        if f.is_struct:
            inline = self.struct_differs(f.type, var)
            if inline is not None:
                return inline
            self.defaults_needed.add(f.type)
            return f"{var} != _DEFAULT_{self.msg.name}_{f.type}"
        if f.is_array or f.type == "bytes":
            return f"len({var}) != 0"
        if f.type == "bool":
            return f"not {var}" if default_value(f) else var
        return f"{var} != {default_literal(f)}"

    def struct_differs(self, sname: str, var: str) -> str | None:
        """A condition true when a struct differs from its default instance, field by field,
        when all its fields are scalars (else None: compare with a default instance)."""
        conds = []
        for f in self.struct(sname).fields:
            if f.is_array or f.is_struct:
                return None
            value = default_value(f)
            if value is None:
                conds.append(f"{var}.{f.attr} is not None")
            else:
                conds.append(f"{var}.{f.attr} != {default_literal(f)}")
        return "(" + " or ".join(conds) + ")" if conds else "False"

    # -- classes ----------------------------------------------------------------------------

    def class_lines(self, sname: str, ind: str, top: bool) -> list[str]:
        msg = self.msg
        struct = self.struct(sname)
        lines = [f"{ind}class {sname}(Message):" if top else f"{ind}class {sname}:"]
        inner = ind + "    "
        if top:
            flex = "None" if msg.flexible_from is None else str(msg.flexible_from)
            lines += [
                f"{inner}API_KEY: ClassVar[int] = {msg.api_key}",
                f"{inner}VALID_VERSIONS: ClassVar[tuple[int, int]] = "
                f"({msg.valid.lo}, {msg.valid.hi})",
                f"{inner}FLEXIBLE_FROM: ClassVar[int | None] = {flex}",
            ]
        slots = ", ".join(f'"{a}"' for a in sorted(f.attr for f in struct.fields))
        if len(struct.fields) == 1:
            slots += ","
        lines.append(f"{inner}__slots__ = ({slots})")
        if top:
            for nested in msg.structs:
                lines.append("")
                lines += self.class_lines(nested, inner, False)
        lines.append("")
        # __init__
        if struct.fields:
            params = []
            assigns = []
            for f in struct.fields:
                ptype = self.py_type(f)
                value = default_value(f)
                if f.is_array or f.is_struct:
                    if value is None:
                        params.append(f"{f.attr}: {ptype} = None")
                        assigns.append(f"self.{f.attr} = {f.attr}")
                    else:
                        sentinel_type = ptype if ptype.endswith("| None") else ptype + " | None"
                        params.append(f"{f.attr}: {sentinel_type} = None")
                        fresh = "[]" if f.is_array else f"{self.qual(f.type)}()"
                        assigns.append(
                            f"self.{f.attr}: {ptype} = {fresh} if {f.attr} is None else {f.attr}"
                        )
                else:
                    params.append(f"{f.attr}: {ptype} = {default_literal(f)}")
                    assigns.append(f"self.{f.attr} = {f.attr}")
            lines.append(f"{inner}def __init__(")
            lines.append(f"{inner}    self,")
            lines.append(f"{inner}    *,")
            lines += [f"{inner}    {p}," for p in params]
            lines.append(f"{inner}) -> None:")
            lines += [f"{inner}    {a}" for a in assigns]
            lines.append("")
        # __eq__ and __repr__
        qual = self.qual(sname)
        lines += [
            f"{inner}def __eq__(self, other: object) -> bool:",
            f"{inner}    if not isinstance(other, {qual}):",
            f"{inner}        return NotImplemented",
        ]
        if len(struct.fields) > 1:
            mine = ", ".join(f"self.{f.attr}" for f in struct.fields)
            theirs = ", ".join(f"other.{f.attr}" for f in struct.fields)
            lines.append(f"{inner}    return ({mine}) == ({theirs})")
        elif struct.fields:
            attr = struct.fields[0].attr
            lines.append(f"{inner}    return bool(self.{attr} == other.{attr})")
        else:
            lines.append(f"{inner}    return True")
        lines.append("")
        lines.append(f"{inner}def __repr__(self) -> str:")
        shown = ", ".join(f"{f.attr}={{self.{f.attr}!r}}" for f in struct.fields)
        lines.append(f'{inner}    return f"{sname}({shown})"' if struct.fields else
                     f'{inner}    return "{sname}()"')
        return lines

    # -- module -----------------------------------------------------------------------------

    def generate(self) -> str:
        classes: list[str] = []
        aliases: list[str] = []
        tables: list[str] = []
        for msg in self.messages:
            self.msg = msg
            self.splicing = {}
            classes += ["", "", *self.class_lines(msg.name, "", True)]
            for sname in msg.structs:
                aliases.append(f"{self.alias(sname)} = {msg.name}.{sname}")
            decs = [self.decoder(msg.name, v) for v in msg.versions()]
            encs = [self.encoder(msg.name, v) for v in msg.versions()]
            tables += [
                "",
                f"{msg.name}._DECODERS = (",
                *[f"    {d}," for d in decs],
                ")",
                f"{msg.name}._ENCODERS = (",
                *[f"    {e}," for e in encs],
                ")",
            ]
            for sname in sorted(self.defaults_needed):
                aliases.append(f"_DEFAULT_{msg.name}_{sname} = {self.alias(sname)}()")
            self.defaults_needed = set()
        names = ", ".join(m.name for m in self.messages)
        head = [
            f'"""Kafka {names}. GENERATED by tools/gen_kafka.py from the Kafka',
            'message schemas: do not edit; change the generator and regenerate."""',
            "",
            "from __future__ import annotations",
            "",
        ]
        structs = [f'{fmt_name(f)} = _Struct("{f}")' for f in sorted(self.formats)]
        code_text = "\n".join(classes + aliases + self.funcs + tables + structs)
        typing = [n for n in ("Any", "ClassVar") if re.search(r"\b" + n + r"\b", code_text)]
        if typing:
            head += [f"from typing import {', '.join(typing)}", ""]
        used = [
            name for name in RUNTIME_IMPORTS
            if re.search(r"\b" + name + r"\b", code_text)
        ]
        head += ["from ._runtime import (", *[f"    {n}," for n in sort_names(used)], ")", ""]
        head += structs
        parts = [
            "\n".join(head),
            "\n".join(classes),
            "",
            "\n".join(aliases),
            "",
            "",
            "\n\n\n".join(self.funcs),
            "\n".join(tables),
        ]
        text = "\n".join(parts).rstrip() + "\n"
        return re.sub(r"\n{4,}", "\n\n\n", text)


def sort_names(names: list[str]) -> list[str]:
    """isort's order-by-type: constants, then classes, then the rest (case-insensitive)."""

    def key(name: str) -> tuple[int, str]:
        kind = 0 if name.isupper() else 1 if name[:1].isupper() else 2
        return kind, name.lower() if kind == 2 else name

    return sorted(names, key=key)


def runs(fields: list[FieldSpec]) -> list[list[FieldSpec]]:
    """Group consecutive fixed-size fields so each group packs with one Struct."""
    groups: list[list[FieldSpec]] = []
    for f in fields:
        if f.type in FIXED and groups and groups[-1][0].type in FIXED:
            groups[-1].append(f)
        else:
            groups.append([f])
    return groups


def read_uvarint(var: str, ind: str) -> list[str]:
    """Inline unsigned varint read with a fast path for one byte."""
    return [
        f"{ind}{var} = buf[pos]",
        f"{ind}if {var} < 0x80:",
        f"{ind}    pos += 1",
        f"{ind}else:",
        f"{ind}    {var}, pos = _read_uvarint(buf, pos)",
    ]


# Names the generated modules may import from _runtime (each module imports those it uses).
RUNTIME_IMPORTS = (
    "Message",
    "Splices",
    "_ZERO_UUID",
    "_Struct",
    "_compact_bytes",
    "_compact_bytes_or_none",
    "_compact_count",
    "_compact_count_or_null",
    "_compact_records",
    "_compact_records_or_none",
    "_compact_string",
    "_compact_string_or_none",
    "_count_error",
    "_length_error",
    "_none_error",
    "_null_error",
    "_null_length",
    *(array_table(spec[0]) for spec in FIXED.values() if spec[0] != "16s"),
    "_put_records",
    "_read_uvarint",
    "_skip_tags",
    "_tag_size_error",
    "_uvarint",
)

ARRAY_LINES = "\n".join(
    f'{array_table(code)} = tuple(_Struct(f">{{n}}{code}") for n in range({ARRAY_TABLE}))'
    for code, _, _, _ in FIXED.values()
    if code != "16s"
)

RUNTIME = f'''"""Helpers shared by the generated Kafka codecs. GENERATED by tools/gen_kafka.py:
do not edit; change the generator and regenerate.

`Message` is the base of every generated top-level class. The private helpers are for the
generated modules only and are off the hot path, except `_read_uvarint` (varints of two bytes or
more) and `_uvarint`; one-byte varints and lengths are handled inline by the generated code.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, ClassVar, Self

from zoolog.errors import KafkaDecodeError, LocalProtocolError

__all__ = ["SPLICE_MIN_BYTES", "Decoder", "Encoder", "Message", "Splices"]

Splices = list[tuple[int, object]]
Decoder = Callable[[memoryview, int], tuple[Any, int]]
Encoder = Callable[[Any, bytearray, "Splices | None"], None]

SPLICE_MIN_BYTES = {SPLICE_MIN_BYTES}

# What reading past the end, a bad varint tail or bad UTF-8 raise inside a generated decoder;
# the top-level decode turns them into KafkaDecodeError.
_DECODE_ERRORS = (struct.error, IndexError, ValueError, OverflowError)
_ZERO_UUID = bytes(16)
_BYTES_LIKE = (bytes, bytearray, memoryview)
_Struct = struct.Struct
{ARRAY_LINES}


class Message:
    """Base of the generated top-level classes (messages, headers, data and records): checks
    the version and dispatches to the generated function for it; the generated subclass sets
    its constants and the `_DECODERS`/`_ENCODERS` tables (index: version - VALID_VERSIONS[0])."""

    __slots__ = ()
    API_KEY: ClassVar[int] = -1
    VALID_VERSIONS: ClassVar[tuple[int, int]] = (0, -1)
    FLEXIBLE_FROM: ClassVar[int | None] = None
    _DECODERS: ClassVar[tuple[Decoder, ...]] = ()
    _ENCODERS: ClassVar[tuple[Encoder, ...]] = ()

    @classmethod
    def decode(cls, buf: memoryview, pos: int, version: int) -> tuple[Self, int]:
        """Decode version `version` at `buf[pos:]`; return it and the position after it.
        Raises only KafkaDecodeError, whatever the bytes."""
        lo, hi = cls.VALID_VERSIONS
        if version < lo or version > hi:
            raise KafkaDecodeError(f"{{cls.__name__}}: unsupported version {{version}}")
        if not isinstance(buf, memoryview):
            buf = memoryview(buf)
        try:
            obj, pos = cls._DECODERS[version - lo](buf, pos)
        except _DECODE_ERRORS as exc:
            raise KafkaDecodeError(
                f"{{cls.__name__}} v{{version}}: malformed ({{type(exc).__name__}}: {{exc}})"
            ) from exc
        if pos > len(buf):
            raise KafkaDecodeError(f"{{cls.__name__}} v{{version}}: truncated")
        return obj, pos

    def encode(self, version: int, out: bytearray, splices: Splices | None = None) -> None:
        """Append version `version` to `out`; fields absent in it are skipped. A records field
        is spliced into `splices` when given (see zoolog.protocol.kafka.codec)."""
        lo, hi = self.VALID_VERSIONS
        if version < lo or version > hi:
            raise LocalProtocolError(
                f"{{type(self).__name__}}: cannot encode unsupported version {{version}}"
            )
        self._ENCODERS[version - lo](self, out, splices)

    def to_bytes(self, version: int) -> bytes:
        """The encoding at `version` (records values are copied; see codec.py)."""
        out = bytearray()
        self.encode(version, out)
        return bytes(out)


def _read_uvarint(buf: memoryview, pos: int) -> tuple[int, int]:
    """An unsigned varint of at most 5 bytes (Kafka's readUnsignedVarint)."""
    b = buf[pos]
    value = b & 0x7F
    shift = 7
    pos += 1
    while b & 0x80:
        if shift > 28:
            raise KafkaDecodeError("unsigned varint longer than 5 bytes")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
    return value, pos


def _uvarint(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _skip_tags(buf: memoryview, pos: int) -> int:
    """Skip a tagged-field section (count, then tag, size and bytes each) of fields that this
    version does not know."""
    count, pos = _read_uvarint(buf, pos)
    if count > len(buf) - pos:
        raise _count_error(count, len(buf) - pos, "tagged fields")
    for _ in range(count):
        _tag, pos = _read_uvarint(buf, pos)
        size, pos = _read_uvarint(buf, pos)
        pos += size
    return pos


def _compact(buf: memoryview, pos: int) -> tuple[int, int]:
    """A compact length (unsigned varint of length + 1, 0 for null): (length or -1, start)."""
    n, pos = _read_uvarint(buf, pos)
    return n - 1, pos


def _compact_count(buf: memoryview, pos: int, where: str) -> tuple[int, int]:
    """A compact array count that is not null and not more than the bytes left."""
    n, pos = _compact(buf, pos)
    if n < 0 or n > len(buf) - pos:
        raise _count_error(n, len(buf) - pos, where)
    return n, pos


def _compact_count_or_null(buf: memoryview, pos: int, where: str) -> tuple[int, int]:
    """A compact array count: -1 for null, else not more than the bytes left."""
    n, pos = _compact(buf, pos)
    if n > len(buf) - pos:
        raise _count_error(n, len(buf) - pos, where)
    return n, pos


def _compact_string(buf: memoryview, pos: int, where: str) -> tuple[str, int]:
    n, pos = _compact(buf, pos)
    if n < 0:
        raise _null_error(where)
    return str(buf[pos : pos + n], "utf-8"), pos + n


def _compact_string_or_none(buf: memoryview, pos: int) -> tuple[str | None, int]:
    n, pos = _compact(buf, pos)
    if n < 0:
        return None, pos
    return str(buf[pos : pos + n], "utf-8"), pos + n


def _compact_bytes(buf: memoryview, pos: int, where: str) -> tuple[bytes, int]:
    n, pos = _compact(buf, pos)
    if n < 0:
        raise _null_error(where)
    return bytes(buf[pos : pos + n]), pos + n


def _compact_bytes_or_none(buf: memoryview, pos: int) -> tuple[bytes | None, int]:
    n, pos = _compact(buf, pos)
    if n < 0:
        return None, pos
    return bytes(buf[pos : pos + n]), pos + n


def _compact_records(buf: memoryview, pos: int, where: str) -> tuple[Any, int]:
    n, pos = _compact(buf, pos)
    if n < 0:
        raise _null_error(where)
    return buf[pos : pos + n], pos + n


def _compact_records_or_none(buf: memoryview, pos: int) -> tuple[Any, int]:
    n, pos = _compact(buf, pos)
    if n < 0:
        return None, pos
    return buf[pos : pos + n], pos + n


def _null_length(n: int) -> None:
    """A negative classic length of a nullable field: -1 is null, anything else an error."""
    if n != -1:
        raise _length_error(n)


def _put_records(out: bytearray, value: Any, size: int, splices: Splices | None) -> None:
    """A records payload after its length prefix: small byte buffers are copied into `out`,
    anything else is spliced (recorded at its position, never copied) when `splices` is given;
    without `splices` byte buffers of any size are copied and other objects are refused."""
    if isinstance(value, _BYTES_LIKE) and (size < SPLICE_MIN_BYTES or splices is None):
        out += value
    elif splices is None:
        raise LocalProtocolError(
            f"a records value of type {{type(value).__name__}} must be spliced: "
            "encode with a splices list (codec.encode_parts)"
        )
    else:
        splices.append((len(out), value))


def _count_error(count: int, left: int, what: str) -> KafkaDecodeError:
    return KafkaDecodeError(f"{{what}}: bad count {{count}} with {{left}} bytes left")


def _length_error(length: int) -> KafkaDecodeError:
    return KafkaDecodeError(f"bad length {{length}}")


def _null_error(what: str) -> KafkaDecodeError:
    return KafkaDecodeError(f"{{what}}: null in a version where it is not nullable")


def _tag_size_error(tag: int, what: str) -> KafkaDecodeError:
    return KafkaDecodeError(f"{{what}}: tagged field {{tag}} does not fill its size")


def _none_error(what: str) -> LocalProtocolError:
    return LocalProtocolError(f"{{what}}: None in a version where it is not nullable")
'''


INIT_DOC = '''"""Kafka protocol codecs. GENERATED by tools/gen_kafka.py from the Kafka message
schemas in ../shared/protocol-specs: do not edit; change the generator and regenerate.

One module per API (`produce.py` holds `ProduceRequest` and `ProduceResponse`), plus
`headers.py`, `consumer_protocol.py` and `coordinator_records.py`. Every message class:

- has `API_KEY` (-1 for non-API schemas), `VALID_VERSIONS = (min, max)` and `FLEXIBLE_FROM`
  (the first flexible version, or None);
- nests every struct type of its schema directly (`ProduceRequest.PartitionProduceData`);
- is a plain slotted class: `__init__` takes every field as a keyword argument with its schema
  default (arrays and non-null struct defaults: None in the signature means a new empty list or
  default instance), plus `__eq__` and `__repr__`;
- `decode(buf, pos, version) -> (message, next_pos)` raises only KafkaDecodeError; fields absent
  in the version take their defaults, unknown tagged fields are skipped;
- `encode(version, out, splices=None)` appends to `out` (fields absent in the version are
  skipped; tagged fields are written when they differ from their default); `to_bytes(version)`.

Values: ints -> int, float64 -> float, bool -> bool, string -> str, bytes and uuid -> bytes,
arrays -> list, null -> None; records decode as memoryview slices of the input (zero copy) and
encode from any object with `len()` (see `zoolog.protocol.kafka.codec` for splices).
"""'''


def generate_all(messages: list[MessageSpec]) -> dict[str, str]:
    """Every generated file, by name."""
    modules: dict[str, list[MessageSpec]] = {}
    for msg in messages:
        modules.setdefault(msg.module, []).append(msg)
    files: dict[str, str] = {"_runtime.py": RUNTIME}
    for module, msgs in modules.items():
        files[f"{module}.py"] = ModuleGen(module, msgs).generate()
    init = [INIT_DOC, "", "from __future__ import annotations", "", "from typing import Any", ""]
    for module, msgs in sorted(modules.items()):
        names = sorted(m.name for m in msgs)
        line = f"from .{module} import {', '.join(names)}"
        if len(line) <= 100:
            init.append(line)
        else:
            init += [f"from .{module} import (", *[f"    {n}," for n in names], ")"]
    exported = [m.name for m in messages]
    init += ["", "__all__ = ["]
    init += [f'    "{n}",' for n in sort_names(["API_NAMES", "REQUESTS", "RESPONSES", *exported])]
    init += ["]", "", "REQUESTS: dict[int, type[Any]] = {"]
    init += [f"    {m.api_key}: {m.name}," for m in messages if m.kind == "request"]
    init += ["}", "RESPONSES: dict[int, type[Any]] = {"]
    init += [f"    {m.api_key}: {m.name}," for m in messages if m.kind == "response"]
    init += ["}", "API_NAMES: dict[int, str] = {"]
    init += [f'    {key}: "{name}",' for key, name in APIS]
    init += ["}", ""]
    files["__init__.py"] = "\n".join(init)
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    try:
        files = generate_all(parse_all())
    except SpecError as exc:
        print(f"gen_kafka: {exc}", file=sys.stderr)
        return 2
    out: Path = args.out
    if args.check:
        stale = [
            name for name, text in files.items()
            if not (out / name).exists() or (out / name).read_text(encoding="utf-8") != text
        ]
        extra = sorted(
            p.name for p in out.glob("*.py") if p.name not in files
        ) if out.exists() else []
        if stale or extra:
            print(
                f"gen_kafka: {out} is stale ({', '.join(stale + extra)}); "
                "run python tools/gen_kafka.py",
                file=sys.stderr,
            )
            return 1
        return 0
    out.mkdir(parents=True, exist_ok=True)
    for p in out.glob("*.py"):
        if p.name not in files:
            p.unlink()
    for name, text in files.items():
        (out / name).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
