"""Generated Kafka codecs: every message round trips in every version, garbage and damaged
encodings only ever raise KafkaDecodeError, records fields splice, and regeneration is a no-op.

The Hypothesis strategies are derived from the same parsed schemas the code was generated from:
this module imports the generator's parser (`tools/gen_kafka.py`, `parse_all()`), so the
generated package carries no field-metadata table. Each example of a message's test covers all
of its versions, so every (message, version) pair is exercised on every run.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zoolog.errors import KafkaDecodeError, LocalProtocolError
from zoolog.protocol.kafka import _generated as gen
from zoolog.protocol.kafka import codec

ROOT = Path(__file__).resolve().parents[3]


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_kafka", ROOT / "tools" / "gen_kafka.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_kafka", module)
    spec.loader.exec_module(module)
    return module


GEN = _load_generator()
MESSAGES: dict[str, Any] = {m.name: m for m in GEN.parse_all()}
REQUEST_NAMES = sorted(n for n, m in MESSAGES.items() if m.kind == "request")


def message_class(name: str) -> Any:
    module = importlib.import_module(f"zoolog.protocol.kafka._generated.{MESSAGES[name].module}")
    return getattr(module, name)


# -- strategies from the schemas ---------------------------------------------------------------

INT_RANGES = {name: spec[3] for name, spec in GEN.FIXED.items() if spec[3] is not None}
_cache: dict[tuple[str, str, int], st.SearchStrategy[Any]] = {}


def scalar(type_name: str) -> st.SearchStrategy[Any]:
    if type_name in INT_RANGES:
        lo, hi = INT_RANGES[type_name]
        return st.integers(lo, hi)
    if type_name == "bool":
        return st.booleans()
    if type_name == "float64":
        return st.floats(allow_nan=False)
    if type_name == "uuid":
        return st.binary(min_size=16, max_size=16)
    if type_name == "string":
        return st.text(max_size=6)
    if type_name == "bytes":
        return st.binary(max_size=6)
    if type_name == "records":
        return st.binary(max_size=24)
    raise AssertionError(type_name)


def field_strategy(msg: Any, f: Any, version: int) -> st.SearchStrategy[Any]:
    if f.is_array:
        elem = f.element
        item = struct_strategy(msg, elem, version) if GEN.is_struct_type(elem) else scalar(elem)
        base: st.SearchStrategy[Any] = st.lists(item, max_size=2)
    elif f.is_struct:
        base = struct_strategy(msg, f.type, version)
    else:
        base = scalar(f.type)
    return st.none() | base if f.nullable_at(version) else base


def struct_strategy(msg: Any, sname: str, version: int) -> st.SearchStrategy[Any]:
    """Random instances of a struct for one version: fields present in it hold valid values
    (None only where nullable), tagged fields are sometimes left at their default, fields
    absent from the version keep their defaults."""
    key = (msg.name, sname, version)
    if key in _cache:
        return _cache[key]
    top = message_class(msg.name)
    cls = top if sname == msg.name else getattr(top, sname)
    struct = msg.top if sname == msg.name else msg.structs[sname]
    required: dict[str, st.SearchStrategy[Any]] = {}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for f in struct.fields:
        if version in f.versions:
            target = optional if version in f.tagged else required
            target[f.attr] = field_strategy(msg, f, version)

    def build(values: dict[str, Any]) -> Any:
        obj = cls()
        for attr, value in values.items():
            setattr(obj, attr, value)  # setattr: a None passed to __init__ means "default"
        return obj

    strategy = st.fixed_dictionaries(required, optional=optional).map(build)
    _cache[key] = strategy
    return strategy


def encoded(cls: Any, obj: Any, version: int) -> bytes:
    out = bytearray()
    obj.encode(version, out)
    return bytes(out)


PROPERTY = settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# -- round trips --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_every_version_round_trips(name: str) -> None:
    msg = MESSAGES[name]
    cls = message_class(name)

    @PROPERTY
    @given(st.data())
    def check(data: st.DataObject) -> None:
        for version in msg.versions():
            obj = data.draw(struct_strategy(msg, name, version), label=f"v{version}")
            raw = encoded(cls, obj, version)
            decoded, pos = cls.decode(memoryview(raw), 0, version)
            assert pos == len(raw), f"v{version} consumed {pos} of {len(raw)} bytes"
            assert decoded == obj, f"v{version}"
            assert decoded.to_bytes(version) == raw, f"v{version} re-encodes differently"
            # decoding at an offset inside a larger buffer gives the same object
            again, end = cls.decode(memoryview(b"\x01\x02" + raw + b"\x03"), 2, version)
            assert (again, end) == (obj, len(raw) + 2)

    check()


def test_class_constants_follow_the_schemas() -> None:
    for name, msg in MESSAGES.items():
        cls = message_class(name)
        assert msg.api_key == cls.API_KEY
        assert (msg.valid.lo, msg.valid.hi) == cls.VALID_VERSIONS
        assert msg.flexible_from == cls.FLEXIBLE_FROM
    assert set(gen.REQUESTS) == set(gen.RESPONSES) == set(gen.API_NAMES) == {
        key for key, _ in GEN.APIS
    }
    for key, name in gen.API_NAMES.items():
        assert gen.REQUESTS[key].__name__ == f"{name}Request"
        assert gen.RESPONSES[key].__name__ == f"{name}Response"


def test_defaults_and_absent_fields() -> None:
    # schema defaults, a fresh list per instance, default nested instances
    req = gen.FetchRequest()
    assert req.replica_id == -1 and req.max_bytes == 0x7FFFFFFF and req.isolation_level == 0
    assert req.cluster_id is None and req.rack_id == ""
    assert req.topics == [] and req.topics is not gen.FetchRequest().topics
    assert req.replica_state == gen.FetchRequest.ReplicaState(replica_id=-1, replica_epoch=-1)
    part = gen.MetadataResponse.MetadataResponseTopic()
    assert part.topic_id == bytes(16) and part.topic_authorized_operations == -(2**31)
    # a field absent from the decoded version takes its default
    raw = gen.ProduceRequest(transactional_id="tx", acks=1, timeout_ms=5).to_bytes(2)
    decoded, _ = gen.ProduceRequest.decode(memoryview(raw), 0, 2)
    assert decoded.transactional_id is None and decoded.acks == 1


def test_snake_case_names() -> None:
    assert GEN.snake("TopicData") == "topic_data"
    assert GEN.snake("leaderEpoch") == "leader_epoch"
    assert GEN.snake("ISRNodes") == "isr_nodes"
    assert GEN.snake("TopicID") == "topic_id"
    assert GEN.snake("ProducerId") == "producer_id"
    assert GEN.snake("Global") == "global_"


# -- garbage only raises KafkaDecodeError -------------------------------------------------------


def decodes_or_rejects(cls: Any, raw: bytes, version: int) -> None:
    with contextlib.suppress(KafkaDecodeError):
        cls.decode(memoryview(raw), 0, version)


FUZZ = settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_garbage_and_damage_only_raise_kafka_decode_error(name: str) -> None:
    """Random bytes, and single-byte changes and truncations of valid encodings, in every
    version: decoding succeeds or raises KafkaDecodeError, nothing else."""
    msg = MESSAGES[name]
    cls = message_class(name)

    @FUZZ
    @given(st.data())
    def check(data: st.DataObject) -> None:
        garbage = data.draw(st.binary(max_size=64), label="garbage")
        for version in msg.versions():
            decodes_or_rejects(cls, garbage, version)
            raw = encoded(cls, data.draw(struct_strategy(msg, name, version)), version)
            cut = data.draw(st.integers(0, max(len(raw) - 1, 0)), label="cut")
            decodes_or_rejects(cls, raw[:cut], version)
            if raw:
                at = data.draw(st.integers(0, len(raw) - 1), label="at")
                byte = data.draw(st.integers(0, 255), label="byte")
                decodes_or_rejects(cls, raw[:at] + bytes((byte,)) + raw[at + 1 :], version)

    check()


@pytest.mark.parametrize("name", REQUEST_NAMES)
def test_truncation_at_every_position_is_detected(name: str) -> None:
    cls = message_class(name)
    msg = MESSAGES[name]
    for version in msg.versions():
        raw = cls().to_bytes(version)
        for cut in range(len(raw)):
            with pytest.raises(KafkaDecodeError):
                cls.decode(memoryview(raw[:cut]), 0, version)


def test_lying_lengths_and_counts_are_rejected_without_allocating() -> None:
    # Metadata v1: topics array claiming 2**31 - 1 entries
    with pytest.raises(KafkaDecodeError, match="bad count"):
        gen.MetadataRequest.decode(memoryview(b"\x7f\xff\xff\xff"), 0, 1)
    # v12 (flexible): a compact count of 2**32 - 2 entries
    with pytest.raises(KafkaDecodeError, match="bad count"):
        gen.MetadataRequest.decode(memoryview(b"\xff\xff\xff\xff\x0f"), 0, 12)
    # a string longer than what is left
    with pytest.raises(KafkaDecodeError):
        gen.SaslHandshakeRequest.decode(memoryview(b"\x7f\xffPLAIN"), 0, 1)
    # a varint of six bytes
    with pytest.raises(KafkaDecodeError, match="varint"):
        gen.ApiVersionsRequest.decode(memoryview(b"\xff\xff\xff\xff\xff\x01"), 0, 3)
    # a tagged-field section claiming more fields than bytes
    with pytest.raises(KafkaDecodeError):
        gen.ApiVersionsRequest.decode(memoryview(b"\x01\x01\x7f"), 0, 3)


def test_nulls_invalid_utf8_and_versions_are_rejected() -> None:
    # null in a non-nullable string (SaslHandshake mechanism)
    with pytest.raises(KafkaDecodeError, match="not nullable"):
        gen.SaslHandshakeRequest.decode(memoryview(b"\xff\xff"), 0, 0)
    # a negative length other than -1 in a nullable one (ProduceRequest v3 TransactionalId)
    with pytest.raises(KafkaDecodeError, match="bad length"):
        gen.ProduceRequest.decode(memoryview(b"\xff\xfe" + bytes(10)), 0, 3)
    with pytest.raises(KafkaDecodeError, match="malformed"):
        gen.SaslHandshakeRequest.decode(memoryview(b"\x00\x02\xff\xfe"), 0, 0)
    for bad in (-1, 2, 100):
        with pytest.raises(KafkaDecodeError, match="unsupported version"):
            gen.SaslHandshakeRequest.decode(memoryview(b"\x00\x00"), 0, bad)
    with pytest.raises(LocalProtocolError):
        gen.SaslHandshakeRequest(mechanism="PLAIN").to_bytes(2)
    # None where the version does not allow it is our bug, not the peer's
    request = gen.MetadataRequest()
    request.topics = None  # null means "all topics" from v1 on; v0 has no null
    assert request.to_bytes(1) == b"\xff\xff\xff\xff"
    with pytest.raises(LocalProtocolError, match="not nullable"):
        request.to_bytes(0)


def test_unknown_tagged_fields_are_skipped() -> None:
    # ApiVersionsRequest v3 with two tagged fields nobody knows (tags 5 and 200)
    body = b"\x04abc\x021\x02" + b"\x05\x02hi" + b"\xc8\x01\x00"
    decoded, pos = gen.ApiVersionsRequest.decode(memoryview(body), 0, 3)
    assert pos == len(body)
    assert (decoded.client_software_name, decoded.client_software_version) == ("abc", "1")


def test_tagged_fields_are_written_only_when_not_default() -> None:
    part = gen.FetchResponse.PartitionData(partition_index=1)
    resp = gen.FetchResponse(responses=[gen.FetchResponse.FetchableTopicResponse(
        topic="t", partitions=[part])])
    plain = resp.to_bytes(12)
    part.current_leader.leader_id = 7
    tagged = resp.to_bytes(12)
    # one tagged field: tag 1, size 9 (leader id 7, leader epoch -1, the struct's own empty
    # tagged-field section) where the partition had an empty section
    field = b"\x01\x01\x09\x00\x00\x00\x07\xff\xff\xff\xff\x00"
    assert tagged.replace(field, b"\x00") == plain and tagged.count(field) == 1
    decoded, _ = gen.FetchResponse.decode(memoryview(tagged), 0, 12)
    assert decoded == resp
    # a known tagged field whose size disagrees with its content is an error
    wrong = tagged.replace(b"\x01\x01\x09\x00", b"\x01\x01\x0a\x00")
    with pytest.raises(KafkaDecodeError, match="does not fill its size"):
        gen.FetchResponse.decode(memoryview(wrong), 0, 12)
    # in a non-flexible version the tagged field is silently absent
    assert gen.FetchResponse.decode(memoryview(resp.to_bytes(11)), 0, 11)[0] != resp


# -- records: zero copy in, splices out ---------------------------------------------------------


class FileSlice:
    """A stand-in for a reference to bytes of a log segment (anything with len())."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size


def produce(records: Any) -> Any:
    P = gen.ProduceRequest
    return P(acks=-1, timeout_ms=1000, topic_data=[
        P.TopicProduceData(name="t", partition_data=[P.PartitionProduceData(
            index=0, records=records)])])


def test_records_decode_as_a_view_of_the_input() -> None:
    raw = produce(b"batch").to_bytes(9)
    decoded, _ = gen.ProduceRequest.decode(memoryview(raw), 0, 9)
    records = decoded.topic_data[0].partition_data[0].records
    assert isinstance(records, memoryview) and records.obj is raw and records == b"batch"


def test_small_records_are_copied_and_large_ones_spliced() -> None:
    small = b"s" * 100
    out = bytearray()
    splices: list[tuple[int, object]] = []
    produce(small).encode(9, out, splices)
    assert splices == [] and out.endswith(small + b"\x00\x00\x00")

    big = bytes(range(256)) * 300  # 75 KiB
    for records in (big, FileSlice(70_000)):
        out = bytearray()
        splices = []
        produce(records).encode(9, out, splices)
        assert len(splices) == 1 and splices[0][1] is records
        parts = codec.assemble(out, splices)
        assert parts[1] is records and len(parts) == 3
        if records is big:
            joined = b"".join(bytes(p) if isinstance(p, memoryview) else p for p in parts)
            assert joined == produce(big).to_bytes(9)
            assert gen.ProduceRequest.decode(memoryview(joined), 0, 9)[0] == produce(big)
    empty = codec.encode_parts(gen.ProduceRequest(), 9)
    assert [bytes(p) for p in empty] == [b"\x00" + bytes(6) + b"\x01\x00"]
    # without a splices list, bytes of any size are copied; other objects cannot be
    assert len(produce(big).to_bytes(3)) > len(big)
    with pytest.raises(LocalProtocolError, match="spliced"):
        produce(FileSlice(10)).to_bytes(9)


def test_assemble_orders_parts() -> None:
    out = bytearray(b"abcdef")
    a, b = FileSlice(1), FileSlice(2)
    parts = codec.assemble(out, [(0, a), (3, b), (6, a)])
    assert [p if isinstance(p, FileSlice) else bytes(p) for p in parts] == [
        a, b"abc", b, b"def", a]
    assert [bytes(p) for p in codec.assemble(bytearray(b"xy"), [])] == [b"xy"]
    assert codec.assemble(bytearray(), None) == []


# -- headers ------------------------------------------------------------------------------------


def test_header_versions() -> None:
    assert codec.request_header_version(18, 0) == 1
    assert codec.request_header_version(18, 3) == 2
    assert codec.request_header_version(0, 8) == 1 and codec.request_header_version(0, 9) == 2
    assert codec.response_header_version(18, 3) == 0  # ApiVersions: always v0
    assert codec.response_header_version(18, 0) == 0
    assert codec.response_header_version(3, 8) == 0 and codec.response_header_version(3, 9) == 1
    assert codec.request_header_version(17, 1) == 1  # SaslHandshake: never flexible
    with pytest.raises(LocalProtocolError):
        codec.request_header_version(1000, 0)


def test_request_header_client_id_stays_a_classic_string_in_v2() -> None:
    header = gen.RequestHeader(request_api_key=3, request_api_version=12, correlation_id=9,
                               client_id="cli")
    assert header.to_bytes(2) == b"\x00\x03\x00\x0c\x00\x00\x00\x09\x00\x03cli\x00"
    assert header.to_bytes(1) == b"\x00\x03\x00\x0c\x00\x00\x00\x09\x00\x03cli"
    assert header.to_bytes(0) == b"\x00\x03\x00\x0c\x00\x00\x00\x09"
    null = gen.RequestHeader(request_api_key=3, request_api_version=12, correlation_id=9)
    assert null.client_id == "" and null.to_bytes(2).endswith(b"\x00\x00\x00")
    null.client_id = None
    assert null.to_bytes(2).endswith(b"\xff\xff\x00")
    assert gen.ResponseHeader(correlation_id=5).to_bytes(1) == b"\x00\x00\x00\x05\x00"


# -- the generator ------------------------------------------------------------------------------


def test_regeneration_is_a_no_op() -> None:
    result = subprocess.run(
        [sys.executable, "tools/gen_kafka.py", "--check"], cwd=ROOT, capture_output=True,
        text=True, check=False,
    )
    assert result.returncode == 0, result.stderr


def test_generated_code_holds_no_schema_prose() -> None:
    abouts = set()
    for path in GEN.SPEC_DIR.glob("*.json"):
        text = GEN.strip_comments(path.read_text(encoding="utf-8"))
        abouts.update(re.findall(r'"about": "([^"]{25,})"', text))
    generated = "".join(p.read_text(encoding="utf-8") for p in GEN.OUT_DIR.glob("*.py"))
    assert abouts and not [a for a in abouts if a in generated]
    assert "Licensed to the Apache" not in generated


def test_spec_errors_name_the_field() -> None:
    with pytest.raises(GEN.SpecError, match="versions"):
        GEN.parse_versions("1-x", None, "X.y")
    f = GEN.FieldSpec("A", "a", "int8", GEN.Versions(0, 1), GEN.NO_VERSIONS, GEN.NO_VERSIONS,
                      None, "300", None, "M.A")
    with pytest.raises(GEN.SpecError, match=r"M\.A: default 300 out of range"):
        GEN.default_value(f)
