"""Kafka topics, rpk/kcat style: create, list, describe, alter-config, delete, produce, consume.

Works against any Kafka-protocol broker (zoolog, Apache Kafka, ...) through
`zoolog.client.kafka`. Brokers come from -b/--brokers, else $ZOOLOG_BROKERS, else
$KAFKA_BOOTSTRAP_SERVERS, else 127.0.0.1:9092. Every verb takes --format text|json: json is
one JSON document, or one JSON object per line for the produce and consume streams.
Exit status: 0 ok, 1 a Kafka error (the message names the error code) or no broker
reachable, 2 a usage error. Errors are one line on stderr.

produce reads records from stdin, one per line (or from -m VALUE, repeatable): -k KEY for
every record, -K DELIM splits "key DELIM value" like kcat -K, -H name=value adds a header,
-p PARTITION picks the partition (default: murmur2 of the key like the Java client, round
robin without a key), --acks 0|1|all, -z none|gzip|snappy|lz4|zstd. It prints where each
record landed (`partition@offset`, or --summary), and progress on stderr every N records or
S seconds when stderr is a terminal or with --progress.

consume prints records as they arrive: -p PARTITION (repeatable), -o beginning | end |
stored | OFFSET | -N (N before the end) | s@TIMESTAMP_MS (from the first record at or after
it) | e@TIMESTAMP_MS (stop before the first record at or after it; with a start offset,
give -o twice), -c COUNT, -e to exit at the end of every partition, -g GROUP to consume as a
member of a consumer group (committing as it goes; without -o it starts at the committed
offsets, else the beginning), -f FORMAT with kcat's tokens (%t topic, %p partition,
%o offset, %k key, %K key length, %s value, %S value length, %R value length as a binary
big-endian int32, %T timestamp, %h headers as n=v CSV, %% a percent sign; escapes \\n \\r
\\t \\xHH \\NNN), and --isolation read_committed|read_uncommitted.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import IO, Any

from zoolog.client.kafka import (
    READ_COMMITTED,
    READ_UNCOMMITTED,
    ConsumerRecord,
    GroupConsumer,
    KafkaClient,
    KafkaConnectionError,
    KafkaResponseError,
    ProducerRecord,
    RecordMetadata,
    TopicPartition,
    default_bootstrap,
    topic_id_text,
)
from zoolog.protocol.kafka.errors import Err
from zoolog.protocol.kafka.record_batch import CODEC_NAMES

PRODUCE_PIPELINE_DEPTH = 4
"""Produce calls in flight at once while reading stdin."""
PRODUCE_CHUNK_RECORDS_MAX = 5_000
PRODUCE_CHUNK_BYTES_MAX = 1024 * 1024
STDIN_LINES_BUFFERED_MAX = 50_000
"""The stdin reader thread waits while this many lines are read but not yet produced."""
CONSUME_MAX_WAIT_MS = 500
GROUP_COMMIT_INTERVAL_S = 1.0


class UsageError(Exception):
    """Arguments that do not fit together: exit status 2."""


class Refused(Exception):
    """The cluster's state does not allow the operation (exit status 1)."""


# --- shared by `zoolog topic` and `zoolog group` -------------------------------------------


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-b", "--brokers", default=None, metavar="HOST:PORT[,HOST:PORT...]",
                        help="bootstrap brokers (default $ZOOLOG_BROKERS, else "
                             "$KAFKA_BOOTSTRAP_SERVERS, else 127.0.0.1:9092)")
    parser.add_argument("--format", choices=("text", "json"), default="text",
                        help="output format (default text)")


def run_verb(args: argparse.Namespace, prog: str,
             work: Callable[[KafkaClient], Awaitable[int]]) -> int:
    """Connect, run `work`, map failures onto exit codes with one line on stderr."""
    brokers = args.brokers or default_bootstrap()

    async def main() -> int:
        client = await KafkaClient.connect(brokers, client_id="zoolog-cli")
        try:
            return await work(client)
        finally:
            await client.close()

    try:
        return asyncio.run(main())
    except BrokenPipeError:  # `| head`: the reader has what it wanted
        _silence_stdout()
        return 0
    except KafkaResponseError as err:
        detail = f": {err.message}" if err.message else ""
        print(f"{prog}: {err.name} (error code {err.code}){detail}", file=sys.stderr)
        return 1
    except KafkaConnectionError as err:
        print(f"{prog}: cannot reach the brokers at {brokers}: {err}", file=sys.stderr)
        return 1
    except Refused as err:
        print(f"{prog}: {err}", file=sys.stderr)
        return 1
    except (UsageError, ValueError) as err:
        print(f"{prog}: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def print_json(document: object) -> None:
    print(json.dumps(document, indent=2, sort_keys=False))


def print_table(header: list[str], rows: Iterable[list[object]]) -> None:
    """Columns padded to their widest cell, two spaces apart (the last one unpadded)."""
    cells = [header] + [["-" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row[:-1], widths[:-1], strict=True))
              + ("  " if len(row) > 1 else "") + row[-1])


def json_bytes(data: bytes | None) -> object:
    """A key, value or header value in JSON: text if it is UTF-8, else {"base64": ...}."""
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}


def parse_key_values(items: Iterable[str], flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{flag} expects key=value, not {item!r}")
        out[key.strip()] = value
    return out


# --- argument parsing ----------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    create = verbs.add_parser("create", help="create a topic")
    create.add_argument("name")
    create.add_argument("-p", "--partitions", type=int, default=-1,
                        help="partition count (default: the broker's num.partitions)")
    create.add_argument("-r", "--replicas", type=int, default=-1,
                        help="replication factor (default: the broker's "
                             "default.replication.factor)")
    create.add_argument("-c", "--config", action="append", default=[], metavar="KEY=VALUE",
                        help="a topic config (repeatable)")
    create.add_argument("--dry-run", action="store_true",
                        help="only validate (CreateTopics validate_only)")

    listing = verbs.add_parser("list", help="list topics")
    listing.add_argument("-i", "--internal", action="store_true",
                         help="include internal topics (__consumer_offsets)")

    describe = verbs.add_parser("describe", help="partitions, leaders, ISR, offsets, configs")
    describe.add_argument("name")

    alter = verbs.add_parser("alter-config", help="set or delete topic configs")
    alter.add_argument("name")
    alter.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="set a config (repeatable)")
    alter.add_argument("--delete", action="append", default=[], metavar="KEY",
                       help="remove a config override, back to the default (repeatable)")

    delete = verbs.add_parser("delete", help="delete topics")
    delete.add_argument("names", nargs="+", metavar="NAME")

    produce = verbs.add_parser("produce", help="produce records from stdin or -m")
    produce.add_argument("topic")
    produce.add_argument("-m", "--message", action="append", default=None, metavar="VALUE",
                         help="a record value (repeatable); stdin is not read")
    produce.add_argument("-k", "--key", help="key of every record (-K keys win)")
    produce.add_argument("-K", "--key-delimiter", metavar="DELIM",
                         help="split each line at the first DELIM into key and value")
    produce.add_argument("-H", "--header", action="append", default=[], metavar="NAME=VALUE",
                         help="a header on every record (repeatable; NAME alone: null value)")
    produce.add_argument("-p", "--partition", type=int, default=None,
                         help="partition (default: murmur2 of the key, round robin without)")
    produce.add_argument("--acks", choices=("0", "1", "all", "-1"), default="all")
    produce.add_argument("-z", "--compression", choices=sorted(CODEC_NAMES), default="none")
    produce.add_argument("--summary", action="store_true",
                         help="print one line per partition instead of one per record")
    produce.add_argument("--progress", action="store_true",
                         help="report progress on stderr even when it is not a terminal")
    produce.add_argument("--progress-every", type=int, default=100_000, metavar="N",
                         help="report progress every N records (default 100000)")
    produce.add_argument("--progress-seconds", type=float, default=2.0, metavar="S",
                         help="... or every S seconds (default 2)")

    consume = verbs.add_parser("consume", help="print records")
    consume.add_argument("topic")
    consume.add_argument("-p", "--partition", type=int, action="append", default=None,
                         help="partition to read (repeatable; default all)")
    consume.add_argument("-o", "--offset", action="append", default=None,
                         metavar="OFFSET",
                         help="beginning | end | stored | N | -N | s@TIMESTAMP_MS | "
                              "e@TIMESTAMP_MS (default beginning, stored with -g)")
    consume.add_argument("-c", "--count", type=int, default=None,
                         help="exit after COUNT records")
    consume.add_argument("-e", "--exit", action="store_true",
                         help="exit once every partition is read to its end")
    consume.add_argument("-g", "--group", help="consume as a member of this consumer group")
    consume.add_argument("-f", "--fmt", metavar="FORMAT",
                         help="kcat output format, e.g. '%%k=%%s@%%o\\n'")
    consume.add_argument("--isolation", choices=("read_uncommitted", "read_committed"),
                         default="read_uncommitted")
    for sub in (create, listing, describe, alter, delete, produce, consume):
        add_common_arguments(sub)


def run(args: argparse.Namespace) -> int:
    return dispatch(args, "zoolog topic", _VERBS)


Verbs = dict[str, Callable[[argparse.Namespace], Callable[[KafkaClient], Awaitable[int]]]]


def dispatch(args: argparse.Namespace, command: str, verbs: Verbs) -> int:
    """Build `args.verb`'s work (a UsageError there exits 2 before connecting), then run
    it with `run_verb`."""
    prog = f"{command} {args.verb}"
    try:
        work = verbs[args.verb](args)
    except UsageError as err:
        print(f"{prog}: {err}", file=sys.stderr)
        return 2
    return run_verb(args, prog, work)


# --- admin verbs ---------------------------------------------------------------------------


def _create(args: argparse.Namespace) -> Callable[[KafkaClient], Awaitable[int]]:
    configs = parse_key_values(args.config, "-c")

    async def work(client: KafkaClient) -> int:
        created = await client.create_topic(args.name, args.partitions, args.replicas, configs,
                                            validate_only=args.dry_run)
        if args.format == "json":
            print_json({"topic": created.name, "topic_id": topic_id_text(created.topic_id),
                        "partitions": created.partitions,
                        "replication_factor": created.replication_factor,
                        "configs": configs, "validate_only": args.dry_run})
        else:
            verb = "Validated" if args.dry_run else "Created"
            print(f"{verb} topic {created.name} ({created.partitions} partitions, "
                  f"replication factor {created.replication_factor})")
        return 0
    return work


def _list(args: argparse.Namespace) -> Callable[[KafkaClient], Awaitable[int]]:
    async def work(client: KafkaClient) -> int:
        topics = await client.list_topics(internal=args.internal)
        if args.format == "json":
            print_json([{"topic": t.name, "topic_id": topic_id_text(t.topic_id),
                         "partitions": len(t.partitions),
                         "replication_factor": t.replication_factor,
                         "internal": t.is_internal} for t in topics])
        else:
            print_table(["NAME", "PARTITIONS", "REPLICAS"],
                        [[t.name, len(t.partitions), t.replication_factor] for t in topics])
        return 0
    return work


def _describe(args: argparse.Namespace) -> Callable[[KafkaClient], Awaitable[int]]:
    async def work(client: KafkaClient) -> int:
        info = await client.topic(args.name, refresh=True)
        ranges, configs = await asyncio.gather(client.offset_range(args.name),
                                               client.describe_configs(args.name))
        overrides = {c.name: c.value for c in configs if c.source == "DYNAMIC_TOPIC_CONFIG"}
        partitions = [info.partitions[p] for p in sorted(info.partitions)]
        if args.format == "json":
            print_json({
                "topic": info.name, "topic_id": topic_id_text(info.topic_id),
                "internal": info.is_internal, "partition_count": len(partitions),
                "replication_factor": info.replication_factor, "configs": overrides,
                "partitions": [{
                    "partition": p.partition, "leader": p.leader,
                    "leader_epoch": p.leader_epoch, "replicas": list(p.replicas),
                    "isr": list(p.isr), "offline_replicas": list(p.offline_replicas),
                    "log_start_offset": ranges[p.partition][0],
                    "log_end_offset": ranges[p.partition][1]} for p in partitions]})
            return 0
        print(f"NAME                {info.name}")
        print(f"TOPIC-ID            {topic_id_text(info.topic_id)}")
        print(f"INTERNAL            {str(info.is_internal).lower()}")
        print(f"PARTITIONS          {len(partitions)}")
        print(f"REPLICATION-FACTOR  {info.replication_factor}")
        print("CONFIGS             " + (", ".join(f"{k}={v}" for k, v in sorted(
            overrides.items())) or "(all defaults)"))
        print()
        print_table(["PARTITION", "LEADER", "EPOCH", "REPLICAS", "ISR", "LOG-START-OFFSET",
                     "LOG-END-OFFSET"],
                    [[p.partition, p.leader, p.leader_epoch, _ids(p.replicas), _ids(p.isr),
                      ranges[p.partition][0], ranges[p.partition][1]] for p in partitions])
        return 0
    return work


def _ids(ids: Iterable[int]) -> str:
    return "[" + ",".join(str(i) for i in ids) + "]"


def _alter_config(args: argparse.Namespace) -> Callable[[KafkaClient], Awaitable[int]]:
    set_values = parse_key_values(args.set, "--set")
    if not set_values and not args.delete:
        raise UsageError("nothing to alter: give --set KEY=VALUE and/or --delete KEY")
    both = set(set_values) & set(args.delete)
    if both:
        raise UsageError(f"both set and deleted: {', '.join(sorted(both))}")

    async def work(client: KafkaClient) -> int:
        await client.alter_topic_config(args.name, set_values, args.delete)
        if args.format == "json":
            print_json({"topic": args.name, "set": set_values, "deleted": list(args.delete)})
        else:
            parts = [f"set {k}={v}" for k, v in set_values.items()]
            parts += [f"deleted {k}" for k in args.delete]
            print(f"Altered topic {args.name}: {'; '.join(parts)}")
        return 0
    return work


def _delete(args: argparse.Namespace) -> Callable[[KafkaClient], Awaitable[int]]:
    async def work(client: KafkaClient) -> int:
        results = await client.delete_topics(args.names)
        status = 0
        for name, error in results.items():
            if error is not None:
                status = 1
                detail = f": {error.message}" if error.message else ""
                print(f"zoolog topic delete: {error.name} (error code {error.code}){detail}",
                      file=sys.stderr)
            elif args.format == "text":
                print(f"Deleted topic {name}")
        if args.format == "json":
            print_json([{"topic": name, "error": None if error is None else error.name,
                         "error_code": 0 if error is None else error.code}
                        for name, error in results.items()])
        return status
    return work


# --- produce -------------------------------------------------------------------------------


class LineSource:
    """Lines of a stream, read by a daemon thread and handed to the event loop in chunks:
    whatever has arrived when the loop asks (at least one line), so that a terminal sends
    each line at once and a pipe sends large batches. The thread waits while
    `lines_buffered_max` lines are unclaimed (backpressure)."""

    def __init__(self, stream: IO[Any], lines_buffered_max: int = STDIN_LINES_BUFFERED_MAX
                 ) -> None:
        self._stream = stream
        self._lines: deque[bytes] = deque()
        self._cond = threading.Condition()
        self._eof = False
        self._error: BaseException | None = None
        self._lines_buffered_max = lines_buffered_max
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        threading.Thread(target=self._read, name="zoolog-stdin", daemon=True).start()

    def _read(self) -> None:
        binary = getattr(self._stream, "buffer", None)
        try:
            for raw in binary if binary is not None else self._stream:
                line = raw if isinstance(raw, bytes) else raw.encode("utf-8")
                with self._cond:
                    while len(self._lines) >= self._lines_buffered_max:
                        self._cond.wait()
                    was_empty = not self._lines
                    self._lines.append(line)
                if was_empty:
                    self._loop.call_soon_threadsafe(self._wake.set)
        except BaseException as exc:  # reported to the loop
            self._error = exc
        finally:
            with self._cond:
                self._eof = True
            with contextlib.suppress(RuntimeError):  # the loop may be gone already
                self._loop.call_soon_threadsafe(self._wake.set)

    async def chunk(self, count_max: int, bytes_max: int) -> list[bytes] | None:
        """The next lines (newline stripped), None at the end of the stream."""
        while True:
            with self._cond:
                if self._lines:
                    out: list[bytes] = []
                    size = 0
                    while self._lines and len(out) < count_max and size < bytes_max:
                        line = self._lines.popleft()
                        size += len(line)
                        out.append(line[:-1] if line.endswith(b"\n") else line)
                    self._cond.notify_all()
                    return out
                if self._eof:
                    if self._error is not None:
                        raise self._error
                    return None
                self._wake.clear()
            await self._wake.wait()


def parse_headers(items: Iterable[str]) -> tuple[tuple[str, bytes | None], ...]:
    """kcat's -H: name=value, or name alone for a null value."""
    out = []
    for item in items:
        name, sep, value = item.partition("=")
        if not name:
            raise UsageError(f"-H expects name=value or name, not {item!r}")
        out.append((name, value.encode("utf-8") if sep else None))
    return tuple(out)


def record_from_line(line: bytes, key: bytes | None, delimiter: bytes | None,
                     headers: tuple[tuple[str, bytes | None], ...], partition: int | None
                     ) -> ProducerRecord:
    """kcat -K: the key is what precedes the first delimiter; a line without one is all
    value (with the -k key, if any)."""
    if delimiter:
        at = line.find(delimiter)
        if at >= 0:
            return ProducerRecord(line[at + len(delimiter):], line[:at], headers, partition)
    return ProducerRecord(line, key, headers, partition)


class _ProduceReport:
    """Prints where records landed and progress on stderr."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.json = args.format == "json"
        self.count = 0
        self.started = time.monotonic()
        self.progress = args.progress or sys.stderr.isatty()
        self.reported_count = 0
        self.reported_at = self.started
        self.ranges: dict[int, list[int]] = {}  # partition -> [first, last, count]

    def landed(self, results: list[RecordMetadata]) -> None:
        lines = []
        for r in results:
            if self.args.summary:
                span = self.ranges.setdefault(r.partition, [r.offset, r.offset, 0])
                span[0] = min(span[0], r.offset)
                span[1] = max(span[1], r.offset)
                span[2] += 1
            elif self.json:
                lines.append(json.dumps({"topic": r.topic, "partition": r.partition,
                                         "offset": r.offset, "timestamp": r.timestamp_ms}))
            else:
                lines.append(f"{r.partition}@{r.offset}")
        if lines:
            sys.stdout.write("\n".join(lines) + "\n")
            sys.stdout.flush()
        self.count += len(results)
        now = time.monotonic()
        if self.progress and (self.count - self.reported_count >= self.args.progress_every
                              or now - self.reported_at >= self.args.progress_seconds):
            self.reported_count = self.count
            self.reported_at = now
            rate = self.count / max(now - self.started, 1e-9)
            print(f"zoolog topic produce: {self.count} records ({rate:.0f}/s)",
                  file=sys.stderr, flush=True)

    def finish(self, topic: str) -> None:
        elapsed = time.monotonic() - self.started
        if self.args.summary:
            if self.json:
                print_json({"topic": topic, "records": self.count, "partitions": [
                    {"partition": p, "first_offset": first, "last_offset": last,
                     "records": count}
                    for p, (first, last, count) in sorted(self.ranges.items())]})
            else:
                print(f"Produced {self.count} records to {topic}")
                for p, (first, last, count) in sorted(self.ranges.items()):
                    where = "offsets unknown (acks=0)" if first < 0 else \
                        f"offsets {first}..{last}"
                    print(f"  partition {p}: {count} records, {where}")
        if self.progress:
            print(f"zoolog topic produce: {self.count} records in {elapsed:.2f} s",
                  file=sys.stderr, flush=True)


def _produce(args: argparse.Namespace) -> Callable[[KafkaClient], Awaitable[int]]:
    headers = parse_headers(args.header)
    key = args.key.encode("utf-8") if args.key is not None else None
    delimiter = _unescape(args.key_delimiter).encode("utf-8") if args.key_delimiter else None
    if args.key_delimiter is not None and not delimiter:
        raise UsageError("-K needs a non-empty delimiter")
    acks = -1 if args.acks in ("all", "-1") else int(args.acks)
    codec = CODEC_NAMES[args.compression]
    if args.progress_every <= 0 or args.progress_seconds <= 0:
        raise UsageError("--progress-every and --progress-seconds must be positive")

    async def work(client: KafkaClient) -> int:
        await client.topic(args.topic)  # UNKNOWN_TOPIC_OR_PARTITION before reading stdin
        report = _ProduceReport(args)
        in_flight: deque[asyncio.Task[list[RecordMetadata]]] = deque()

        def send(lines: list[bytes], skip_empty: bool = True) -> None:
            records = [record_from_line(line, key, delimiter, headers, args.partition)
                       for line in lines if line or not skip_empty]
            if records:
                in_flight.append(asyncio.ensure_future(
                    client.produce(args.topic, records, acks=acks, codec=codec,
                                   auto_create=True)))
        try:
            if args.message is not None:
                send([m.encode("utf-8") for m in args.message], skip_empty=False)
            else:
                source = LineSource(sys.stdin)
                while True:
                    lines = await source.chunk(PRODUCE_CHUNK_RECORDS_MAX,
                                               PRODUCE_CHUNK_BYTES_MAX)
                    if lines is None:
                        break
                    send(lines)
                    while len(in_flight) >= PRODUCE_PIPELINE_DEPTH:
                        report.landed(await in_flight.popleft())
            while in_flight:
                report.landed(await in_flight.popleft())
        finally:
            for task in in_flight:
                task.cancel()
        report.finish(args.topic)
        return 0
    return work


def _unescape(text: str) -> str:
    """\\n, \\t, \\r and \\xHH in a delimiter, as kcat reads -D and -K."""
    return _format_literal(text).decode("latin-1")


# --- consume -------------------------------------------------------------------------------


class OffsetSpec:
    """Where consumption starts and stops, from kcat-style -o values."""

    def __init__(self, values: list[str] | None, group: str | None) -> None:
        self.start = "stored" if group else "beginning"
        self.start_value = 0
        self.stop_timestamp_ms: int | None = None
        starts = 0
        for value in values or []:
            if value.startswith("e@"):
                self.stop_timestamp_ms = _int(value[2:], value)
                continue
            starts += 1
            if value in ("beginning", "end", "stored"):
                self.start = value
            elif value.startswith("s@"):
                self.start, self.start_value = "timestamp", _int(value[2:], value)
            else:
                number = _int(value, value)
                self.start, self.start_value = ("relative", -number) if number < 0 else \
                    ("absolute", number)
        if starts > 1:
            raise UsageError("-o: give at most one start (and at most one e@TIMESTAMP)")
        if self.start == "stored" and not group:
            raise UsageError("-o stored needs a consumer group (-g GROUP)")


def _int(text: str, original: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"-o {original!r}: expected beginning, end, stored, an offset, -N, "
                         "s@TIMESTAMP_MS or e@TIMESTAMP_MS") from None


_FORMAT_TOKENS = frozenset("tpokKsSRTh%")


def compile_format(fmt: str) -> list[bytes | str]:
    """kcat's -f: literal byte strings (escapes converted) and one-letter tokens."""
    parts: list[bytes | str] = []
    literal = []
    i = 0
    while i < len(fmt):
        char = fmt[i]
        if char != "%":
            literal.append(char)
            i += 1
            continue
        if i + 1 >= len(fmt):
            raise UsageError("-f: empty formatter at the end")
        token = fmt[i + 1]
        if token not in _FORMAT_TOKENS:
            raise UsageError(f"-f: unsupported formatter %{token}")
        if literal:
            parts.append(_format_literal("".join(literal)))
            literal = []
        parts.append(b"%" if token == "%" else token)
        i += 2
    if literal:
        parts.append(_format_literal("".join(literal)))
    return parts


def _format_literal(text: str) -> bytes:
    """kcat's escapes in literal text: \\t \\n \\r, \\xHH (hex digits), \\NNN (a number
    in C's strtoul base 0: 0x.. hex, 0.. octal, else decimal), any other \\c is c."""
    out = bytearray()
    i = 0
    while i < len(text):
        char = text[i]
        if char != "\\" or i + 1 >= len(text):
            out += char.encode("utf-8")
            i += 1
            continue
        i += 1
        char = text[i]
        simple = {"t": b"\t", "n": b"\n", "r": b"\r"}
        if char in simple:
            out += simple[char]
            i += 1
            continue
        if char == "x":
            end = i + 1
            while end < len(text) and text[end] in "0123456789abcdefABCDEF":
                end += 1
            if end > i + 1:
                out.append(int(text[i + 1:end], 16) & 0xFF)
                i = end
            else:
                out += b"x"
                i += 1
            continue
        if char.isdigit():
            end = i
            if text.startswith(("0x", "0X"), i) and i + 2 < len(text) and \
                    text[i + 2] in "0123456789abcdefABCDEF":
                end = i + 2
                while end < len(text) and text[end] in "0123456789abcdefABCDEF":
                    end += 1
                value = int(text[i + 2:end], 16)
            elif char == "0":
                end = i + 1
                while end < len(text) and text[end] in "01234567":
                    end += 1
                value = int(text[i:end], 8)
            else:
                while end < len(text) and text[end].isdigit():
                    end += 1
                value = int(text[i:end])
            out.append(value & 0xFF)
            i = end
            continue
        out += char.encode("utf-8")
        i += 1
    return bytes(out)


_INT32 = struct.Struct(">i")


def format_record(parts: list[bytes | str], record: ConsumerRecord) -> bytes:
    out = bytearray()
    for part in parts:
        if isinstance(part, bytes):
            out += part
        elif part == "s":
            out += record.value or b""
        elif part == "k":
            out += record.key or b""
        elif part == "o":
            out += str(record.offset).encode()
        elif part == "p":
            out += str(record.partition).encode()
        elif part == "t":
            out += record.topic.encode("utf-8")
        elif part == "T":
            out += str(record.timestamp_ms).encode()
        elif part == "S":
            out += str(-1 if record.value is None else len(record.value)).encode()
        elif part == "K":
            out += str(-1 if record.key is None else len(record.key)).encode()
        elif part == "R":
            out += _INT32.pack(-1 if record.value is None else len(record.value))
        elif part == "h":
            out += b",".join(name.encode("utf-8") + b"=" + (b"NULL" if value is None else value)
                             for name, value in record.headers)
    return bytes(out)


def record_json(record: ConsumerRecord) -> dict[str, object]:
    return {"topic": record.topic, "partition": record.partition, "offset": record.offset,
            "timestamp": record.timestamp_ms,
            "timestamp_type": "LogAppendTime" if record.log_append_time else "CreateTime",
            "key": json_bytes(record.key), "value": json_bytes(record.value),
            "headers": [{"key": name, "value": json_bytes(value)}
                        for name, value in record.headers]}


class _Consumer:
    """The consume loop: positions per partition, fetch rounds, output, group commits."""

    def __init__(self, client: KafkaClient, args: argparse.Namespace, spec: OffsetSpec,
                 parts: list[bytes | str] | None) -> None:
        self.client = client
        self.args = args
        self.spec = spec
        self.parts = parts
        self.isolation = READ_COMMITTED if args.isolation == "read_committed" else \
            READ_UNCOMMITTED
        self.positions: dict[TopicPartition, int] = {}
        self.stops: dict[TopicPartition, int] = {}
        self.done: set[TopicPartition] = set()
        self.count = 0
        self.member: GroupConsumer | None = None
        self.committed: dict[TopicPartition, int] = {}
        self.committed_at = time.monotonic()
        self.out = _binary_stdout()

    async def run(self) -> int:
        args = self.args
        info = await self.client.topic(args.topic)
        if args.group:
            self.member = self.client.group_consumer(args.group, [args.topic])
            await self._join()
        else:
            partitions = sorted(set(args.partition)) if args.partition else \
                sorted(info.partitions)
            for p in partitions:
                if p not in info.partitions:
                    raise UsageError(f"topic {args.topic} has no partition {p} "
                                     f"(it has {len(info.partitions)})")
            await self._start([TopicPartition(args.topic, p) for p in partitions])
        try:
            await self._loop()
        finally:
            if self.member is not None:
                with contextlib.suppress(KafkaResponseError, KafkaConnectionError):
                    await self._commit(force=True)
                await self.member.leave()
        return 0

    async def _join(self) -> None:
        assert self.member is not None
        await self.member.join()
        self.positions.clear()
        self.stops.clear()
        self.done.clear()
        self.committed.clear()
        await self._start(self.member.partitions)

    async def _start(self, partitions: list[TopicPartition]) -> None:
        """Start positions, stop offsets, and which partitions are done already."""
        topic = self.args.topic
        numbers = [tp.partition for tp in partitions]
        if not numbers:
            return
        ranges = await self.client.offset_range(topic, numbers, isolation=self.isolation)
        start = self.spec.start
        stored: dict[TopicPartition, int] = {}
        if start == "stored":
            assert self.args.group
            stored = await self.client.fetch_committed(self.args.group, partitions)
        by_time: dict[int, int] = {}
        if start == "timestamp":
            found = await self.client.list_offsets(topic, self.spec.start_value, numbers,
                                                   isolation=self.isolation)
            by_time = {p: o.offset for p, o in found.items()}
        for tp in partitions:
            low, high = ranges[tp.partition]
            if start == "beginning":
                position = low
            elif start == "end":
                position = high
            elif start == "stored":
                position = stored.get(tp, -1)
                if position < 0:
                    position = low
                else:
                    self.committed[tp] = position
            elif start == "timestamp":
                position = by_time.get(tp.partition, -1)
                if position < 0:
                    position = high
            elif start == "relative":
                position = max(low, high - self.spec.start_value)
            else:
                position = self.spec.start_value
            self.positions[tp] = position
        if self.spec.stop_timestamp_ms is not None:
            found = await self.client.list_offsets(topic, self.spec.stop_timestamp_ms, numbers,
                                                   isolation=self.isolation)
            for tp in partitions:
                stop = found[tp.partition].offset
                if stop >= 0:
                    self.stops[tp] = stop
        for tp in partitions:
            self._check_done(tp, ranges[tp.partition][1])

    def _check_done(self, tp: TopicPartition, end: int) -> None:
        position = self.positions[tp]
        stop = self.stops.get(tp)
        if (stop is not None and position >= stop) or (self.args.exit and position >= end):
            self.done.add(tp)

    def _finished(self) -> bool:
        if self.args.count is not None and self.count >= self.args.count:
            return True
        if not self.positions:
            return bool(self.args.exit)
        return all(tp in self.done for tp in self.positions)

    async def _loop(self) -> None:
        while not self._finished():
            if self.member is not None and self.member.rebalance_needed:
                with contextlib.suppress(KafkaResponseError):
                    await self._commit(force=True)
                await self._join()
                continue
            active = {tp: pos for tp, pos in self.positions.items() if tp not in self.done}
            if not active:
                # a group member with nothing (left) to read waits for a rebalance
                await asyncio.sleep(CONSUME_MAX_WAIT_MS / 1000)
                continue
            fetched = await self.client.fetch(active, max_wait_ms=CONSUME_MAX_WAIT_MS,
                                              isolation=self.isolation)
            chunk = bytearray()
            for tp in sorted(fetched):
                result = fetched[tp]
                if result.error is not None:
                    self._fetch_error(tp, result)
                    continue
                stop = self.stops.get(tp)
                stop_ms = self.spec.stop_timestamp_ms
                complete = True
                for record in result.records:
                    if (stop is not None and record.offset >= stop) or (
                            stop_ms is not None and record.timestamp_ms >= stop_ms):
                        self.done.add(tp)
                        complete = False
                        break
                    if self.args.count is not None and self.count >= self.args.count:
                        complete = False
                        break
                    chunk += self._render(record)
                    self.count += 1
                    self.positions[tp] = record.offset + 1
                if complete:
                    self.positions[tp] = max(self.positions[tp], result.next_offset)
                end = result.last_stable_offset if (
                    self.isolation == READ_COMMITTED and result.last_stable_offset >= 0) \
                    else result.high_watermark
                self._check_done(tp, end)
            self._write(chunk)
            if self.member is not None:
                try:
                    await self._commit()
                except KafkaResponseError:
                    if not self.member.rebalance_needed:
                        raise  # else: rejoin at the top of the loop

    def _fetch_error(self, tp: TopicPartition, result: Any) -> None:
        error = result.error
        if error.code == Err.OFFSET_OUT_OF_RANGE and 0 <= self.positions[tp] < \
                result.log_start_offset:
            print(f"zoolog topic consume: partition {tp.partition} offset "
                  f"{self.positions[tp]} is gone; continuing at the log start "
                  f"{result.log_start_offset}", file=sys.stderr)
            self.positions[tp] = result.log_start_offset
            return
        raise error

    def _render(self, record: ConsumerRecord) -> bytes:
        if self.args.format == "json":
            return json.dumps(record_json(record)).encode("utf-8") + b"\n"
        if self.parts is not None:
            return format_record(self.parts, record)
        return (record.value or b"") + b"\n"

    def _write(self, chunk: bytearray) -> None:
        if not chunk:
            return
        self.out.write(chunk)
        self.out.flush()

    async def _commit(self, force: bool = False) -> None:
        assert self.member is not None
        now = time.monotonic()
        if not force and now - self.committed_at < GROUP_COMMIT_INTERVAL_S:
            return
        changed = {tp: pos for tp, pos in self.positions.items()
                   if self.committed.get(tp) != pos}
        self.committed_at = now
        if not changed:
            return
        await self.member.commit(changed)
        self.committed.update(changed)


def _binary_stdout() -> IO[bytes]:
    sys.stdout.flush()
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:
        raise UsageError("stdout takes no bytes")
    return buffer  # type: ignore[no-any-return]


def _consume(args: argparse.Namespace) -> Callable[[KafkaClient], Awaitable[int]]:
    spec = OffsetSpec(args.offset, args.group)
    if args.group and args.partition:
        raise UsageError("-p and -g do not go together: the group assigns the partitions")
    if args.fmt is not None and args.format == "json":
        raise UsageError("-f and --format json do not go together")
    if args.count is not None and args.count < 0:
        raise UsageError("-c must not be negative")
    parts = compile_format(args.fmt) if args.fmt is not None else None

    async def work(client: KafkaClient) -> int:
        return await _Consumer(client, args, spec, parts).run()
    return work


def _silence_stdout() -> None:
    """After EPIPE (`| head`): point stdout at /dev/null so exiting does not complain."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


_VERBS: Verbs = {
    "create": _create,
    "list": _list,
    "describe": _describe,
    "alter-config": _alter_config,
    "delete": _delete,
    "produce": _produce,
    "consume": _consume,
}

__all__ = ["Refused", "UsageError", "add_arguments", "add_common_arguments", "run", "run_verb"]
