"""Random and malformed request bytes for any RPC, built from the message descriptors.

A case is the bytes of one request. Most are a random message of the right type whose fields
take awkward values (empty, huge, unicode, NUL and control characters, integer extremes, NaN and
infinities, negative and out-of-range durations and timestamps, unknown enum numbers, deep
Structs, long repeated fields); some name rows that exist, so calls reach past the lookups.
The rest are bytes no valid message has: truncated, bit-flipped, fields with the wrong wire
type, or plain noise. Page tokens are often forged: unsigned, signed with a guessed key, or
carrying sort keys no row has. `time_fields` and `with_time_value` put the extreme durations and
timestamps into every field that takes one.
"""

from __future__ import annotations

import base64
import json
import random
import struct as binary
from collections.abc import Sequence
from dataclasses import dataclass, field

from google.protobuf import duration_pb2, field_mask_pb2, struct_pb2, timestamp_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

INT32 = (0, 1, -1, 2, 3, 7, 100, 999, 1000, 1001, 2**31 - 1, -(2**31))
INT64 = INT32 + (2**53, 2**63 - 1, -(2**63))
UINT = (0, 1, 2, 1000, 2**32 - 1, 2**64 - 1)
FLOATS = (
    0.0,
    -0.0,
    0.5,
    1.0,
    -1.0,
    1e-300,
    1e300,
    -1e300,
    float("nan"),
    float("inf"),
    float("-inf"),
    10_000.0,
    10_001.0,
    0.001,
)
DURATION_SECONDS = (0, 1, 5, 60, 86_400, 86_401, 315_576_000_000, 315_576_000_001, -1, -5, 2**63 - 1, -(2**63))
DURATION_NANOS = (0, 1, 500_000_000, 999_999_999, 1_000_000_000, -1, -999_999_999, 2**31 - 1, -(2**31))
TIMESTAMP_SECONDS = (
    0,
    1_771_063_200,  # 2026-02-14
    -62_135_596_800,  # 0001-01-01, the smallest valid
    -62_135_596_801,
    253_402_300_799,  # 9999-12-31T23:59:59, the largest valid
    253_402_300_800,
    2**63 - 1,
    -(2**63),
)
TEXTS = (
    "",
    " ",
    "a",
    "emails",
    "send",
    "*",
    "%",
    "_",
    "\\",
    "'",
    '"',
    "'; DROP TABLE queue_jobs; --",
    "1 OR 1=1",
    "\x00",
    "nul\x00inside",
    "\t\n\r",
    "\x7f",
    "\u202eevil",
    "名前",
    "😀" * 10,
    "e\u0301",
    "\ufeff",
    "\U0010ffff",
    "a" * 100,
    "a" * 101,
    "a" * 255,
    "a" * 256,
    "RECOVERY_STATUS_PENDING",
    "job_id",
    "*.*",
    "a,b",
    "jobs.0.job_id",
)
WIRE_TYPES = (0, 1, 2, 5)
# (seconds, nanos): the protobuf range's ends, just past ten years, below the 1 µs resolution.
EXTREME_DURATIONS = (
    (315_576_000_000, 999_999_999),
    (-315_576_000_000, -999_999_999),
    (315_537_897_600, 0),  # 9,999 years
    (86_400 * 3650 + 1, 0),
    (2**31, 0),
    (0, 1),
    (0, -5),
    (0, 999),
    (1, 1),
    (0, 0),
)
EXTREME_TIMESTAMPS = (
    (-62_135_596_800, 0),  # 0001-01-01T00:00:00Z
    (-62_135_596_800, 1),
    (253_402_300_799, 999_999_999),  # 9999-12-31T23:59:59.999999999Z
    (0, 0),
    (0, 1),
)
# Sort keys for forged page tokens: past int64, year 0 once in UTC, NUL, deep nesting, wrong types.
FORGED_KEYS = (
    [2**63],
    [-(2**63) - 1],
    [2**63, "0001-01-01T00:00:00+14:00", "x"],
    ["0001-01-01T00:00:00+14:00", 1],
    ["9999-12-31T23:59:59-14:00", 1],
    [0, "2026-02-14T10:00:00+00:00", "nul\x00"],
    ["nul\x00"],
    [[[[[["deep"]]]]]],
    [None, True, 1.5],
    [],
)


@dataclass
class KnownValues:
    """Names and ids of rows that exist, so that some cases get past "not found"."""

    texts: list[str] = field(default_factory=list)
    ints: list[int] = field(default_factory=list)


class RequestFuzzer:
    def __init__(self, rng: random.Random, known: KnownValues | None = None, *, max_depth: int = 4) -> None:
        self.rng = rng
        self.known = known or KnownValues()
        self.max_depth = max_depth
        # Each case may hold one huge value and one long repeated field, so that it stays quick to send.
        self._huge_left = 1
        self._long_left = 1

    # Whole cases

    def case(self, descriptor: Descriptor) -> bytes:
        """The bytes of one request for a method taking `descriptor`."""
        self._huge_left = 1
        self._long_left = 1
        roll = self.rng.random()
        if roll < 0.70:
            return self.message(descriptor).SerializeToString()
        if roll < 0.80:
            return self.mutate(self.message(descriptor).SerializeToString())
        if roll < 0.93:
            return self.wrong_wire_types(descriptor)
        return self.noise()

    def message(self, descriptor: Descriptor, depth: int = 0) -> Message:
        message = GetMessageClass(descriptor)()
        self.fill(message, depth)
        return message

    # Messages

    def fill(self, message: Message, depth: int) -> None:
        descriptor = message.DESCRIPTOR
        special = SPECIAL_TYPES.get(descriptor.full_name)
        if special is not None:
            special(self, message, depth)
            return
        oneofs_done: set[str] = set()
        for item in descriptor.fields:
            if self.rng.random() < 0.35:
                continue  # leave it unset
            if item.containing_oneof is not None:
                if item.containing_oneof.name in oneofs_done:
                    continue
                oneofs_done.add(item.containing_oneof.name)
            self.set_field(message, item, depth)

    def set_field(self, message: Message, item: FieldDescriptor, depth: int) -> None:
        if item.message_type is not None and item.message_type.GetOptions().map_entry:
            target = getattr(message, item.name)
            value_field = item.message_type.fields_by_name["value"]
            for _ in range(self.count()):
                key = self.text()
                if value_field.message_type is not None:
                    self.fill(target[key], depth + 1)
                else:
                    target[key] = self.scalar(value_field)
            return
        if item.is_repeated:
            target = getattr(message, item.name)
            for _ in range(self.count()):
                if item.message_type is not None:
                    if depth < self.max_depth:
                        self.fill(target.add(), depth + 1)
                else:
                    target.append(self.scalar(item))
            return
        if item.message_type is not None:
            if depth < self.max_depth:
                self.fill(getattr(message, item.name), depth + 1)
            return
        if item.name == "page_token" and self.rng.random() < 0.6:
            setattr(message, item.name, self.forged_page_token())
            return
        setattr(message, item.name, self.scalar(item))

    def count(self) -> int:
        roll = self.rng.random()
        if roll < 0.85 or not self._long_left:
            return self.rng.randint(0, 4)
        self._long_left -= 1
        if roll < 0.97:
            return self.rng.choice((999, 1000, 1001))
        return self.rng.randint(5, 50)

    def take_huge(self) -> bool:
        if not self._huge_left:
            return False
        self._huge_left -= 1
        return True

    # Scalars

    def scalar(self, item: FieldDescriptor):
        kind = item.type
        if kind == FieldDescriptor.TYPE_STRING:
            return self.text()
        if kind == FieldDescriptor.TYPE_BYTES:
            return self.noise()
        if kind == FieldDescriptor.TYPE_BOOL:
            return self.rng.random() < 0.5
        if kind == FieldDescriptor.TYPE_ENUM:
            known = [value.number for value in item.enum_type.values]
            return self.rng.choice(known + [len(known), 99, -1, 2**31 - 1, -(2**31)])
        if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            value = self.rng.choice(FLOATS + (self.rng.uniform(-1e6, 1e6),))
            if kind == FieldDescriptor.TYPE_FLOAT and value == value and abs(value) > 3.4e38:
                value = float("inf") if value > 0 else float("-inf")
            return value
        if kind in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
            return self.rng.choice([value for value in UINT if value < 2**32])
        if kind in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
            return self.rng.choice(UINT)
        if kind in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64):
            return self.integer(INT64)
        return self.integer(INT32)

    def integer(self, extremes: Sequence[int]) -> int:
        if self.known.ints and self.rng.random() < 0.2:
            return self.rng.choice(self.known.ints)
        if self.rng.random() < 0.5:
            return self.rng.choice(extremes)
        return self.rng.randint(-5, 20)

    def text(self) -> str:
        roll = self.rng.random()
        if roll < 0.30 and self.known.texts:
            return self.rng.choice(self.known.texts)
        if roll < 0.65:
            return self.rng.choice(TEXTS)
        if roll < 0.97 or not self.take_huge():
            length = self.rng.choice((1, 3, 10, 40, 100, 300))
            return "".join(self.character() for _ in range(self.rng.randint(1, length)))
        # Huge: past every text limit, some past the 1 MiB payload and the 8 MiB message limits.
        return self.rng.choice("ab😀\x00") * self.rng.choice((10_001, 70_000, 1_100_000, 9_000_000))

    def character(self) -> str:
        roll = self.rng.random()
        if roll < 0.7:
            return chr(self.rng.randint(0x20, 0x7E))
        if roll < 0.8:
            return chr(self.rng.randint(0, 0x1F))
        code = self.rng.randint(0x80, 0x10FFFF)
        if 0xD800 <= code <= 0xDFFF:  # surrogates cannot be encoded; invalid UTF-8 comes from mutate()
            code = 0xFFFD
        return chr(code)

    # Well-known types

    def duration(self, message: duration_pb2.Duration, _depth: int) -> None:
        if self.rng.random() < 0.5:
            message.seconds = self.rng.randint(0, 3)
            message.nanos = self.rng.randint(0, 999_999_999)
        else:
            message.seconds = self.rng.choice(DURATION_SECONDS)
            message.nanos = self.rng.choice(DURATION_NANOS)

    def timestamp(self, message: timestamp_pb2.Timestamp, _depth: int) -> None:
        message.seconds = self.rng.choice(TIMESTAMP_SECONDS)
        message.nanos = self.rng.choice(DURATION_NANOS)

    def field_mask(self, message: field_mask_pb2.FieldMask, _depth: int) -> None:
        names = ["*", "admin_notes", "assigned_to", "priority", "max_retries", "retry_delays", "max_delay", "jitter"]
        names += ["max_active", "max_starts_per_second"]
        for _ in range(self.rng.randint(0, 4)):
            message.paths.append(self.rng.choice(names + [self.text()]))

    def struct(self, message: struct_pb2.Struct, depth: int) -> None:
        roll = self.rng.random()
        if roll < 0.11 and not self.take_huge():
            roll = 1.0
        if roll < 0.08:
            deep = self.deep_value(self.rng.choice((50, 99, 150, 400)))
            message.fields[self.text()].CopyFrom(deep)
            return
        if roll < 0.11:  # past the 1 MiB payload limit, inside the 8 MiB message limit
            message.fields["blob"].string_value = "x" * self.rng.choice((1_048_577, 2_000_000))
            return
        for _ in range(self.rng.randint(0, 5)):
            self.json_value(message.fields[self.text()], depth + 1)

    def deep_value(self, depth: int) -> struct_pb2.Value:
        value = struct_pb2.Value(string_value="bottom")
        for level in range(depth):
            outer = struct_pb2.Value()
            if level % 2:
                outer.list_value.values.add().CopyFrom(value)
            else:
                outer.struct_value.fields["k"].CopyFrom(value)
            value = outer
        return value

    def json_value(self, value: struct_pb2.Value, depth: int) -> None:
        kinds = ["null", "number", "string", "bool"] + (["struct", "list"] if depth < self.max_depth + 2 else [])
        kind = self.rng.choice(kinds)
        if kind == "null":
            value.null_value = struct_pb2.NULL_VALUE
        elif kind == "number":
            value.number_value = self.rng.choice(FLOATS + (float(self.rng.randint(-(2**63), 2**63)),))
        elif kind == "string":
            value.string_value = self.text()
        elif kind == "bool":
            value.bool_value = self.rng.random() < 0.5
        elif kind == "struct":
            self.struct(value.struct_value, depth)
        else:
            for _ in range(self.rng.randint(0, 4)):
                self.json_value(value.list_value.values.add(), depth + 1)

    def value(self, message: struct_pb2.Value, depth: int) -> None:
        self.json_value(message, depth)

    def list_value(self, message: struct_pb2.ListValue, depth: int) -> None:
        for _ in range(self.rng.randint(0, 4)):
            self.json_value(message.values.add(), depth + 1)

    def forged_page_token(self) -> str:
        """A token the server did not sign: unsigned, or with a made-up or borrowed signature."""
        key = self.rng.choice(FORGED_KEYS)
        filters = self.rng.choice(("0" * 16, "f" * 16, self.text()))
        raw = json.dumps({"k": key, "f": filters}).encode()
        if self.rng.random() < 0.1:
            raw = b'{"k":' + b"[" * 50_000 + b"]" * 50_000 + b',"f":""}'
        body = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        roll = self.rng.random()
        if roll < 0.4:
            return body
        real = [text for text in self.known.texts if text.count(".") == 1]
        if roll < 0.7 and real:
            return f"{body}.{self.rng.choice(real).split('.')[1]}"
        return f"{body}.{base64.urlsafe_b64encode(self.noise(16)).decode().rstrip('=')}"

    # Malformed bytes

    def mutate(self, data: bytes) -> bytes:
        data = bytearray(data or b"\x0a\x01a")
        for _ in range(self.rng.randint(1, 4)):
            operation = self.rng.randrange(4)
            position = self.rng.randrange(len(data) + 1)
            if operation == 0:
                del data[position:]
            elif operation == 1 and data:
                index = min(position, len(data) - 1)
                data[index] ^= 1 << self.rng.randrange(8)
            elif operation == 2:
                data[position:position] = self.noise(8)
            else:
                data[position:position] = b"\xff\xfe\xc0\x80"  # invalid UTF-8 and an overlong NUL
            if not data:
                data = bytearray(self.noise(4))
        return bytes(data)

    def wrong_wire_types(self, descriptor: Descriptor) -> bytes:
        """A valid prefix, then known field numbers encoded with a wire type they do not have."""
        data = bytearray(self.message(descriptor).SerializeToString() if self.rng.random() < 0.5 else b"")
        numbers = [item.number for item in descriptor.fields] or [1]
        for _ in range(self.rng.randint(1, 4)):
            number = self.rng.choice(numbers + [self.rng.randint(1, 2**29 - 1)])
            wire_type = self.rng.choice(WIRE_TYPES + (3, 4, 6, 7))
            data += varint(number << 3 | wire_type)
            if wire_type == 0:
                data += varint(self.rng.choice((0, 1, 2**63, 2**64 - 1)))
            elif wire_type == 1:
                data += binary.pack("<d", self.rng.choice(FLOATS))
            elif wire_type == 2:
                body = self.rng.choice((b"", b"\xff\xfe", b"abc", self.noise(16), b"\x08" * 40))
                length = len(body) if self.rng.random() < 0.8 else len(body) + self.rng.randint(1, 2**20)
                data += varint(length) + body
            elif wire_type == 5:
                data += binary.pack("<f", 1.5)
        return bytes(data)

    def noise(self, size: int | None = None) -> bytes:
        size = self.rng.choice((0, 1, 2, 5, 64, 1024)) if size is None else size
        return self.rng.randbytes(size)


TIME_TYPES = {
    duration_pb2.Duration.DESCRIPTOR.full_name: "duration",
    timestamp_pb2.Timestamp.DESCRIPTOR.full_name: "timestamp",
}


def time_fields(
    descriptor: Descriptor, prefix: tuple[str, ...] = (), depth: int = 0
) -> list[tuple[tuple[str, ...], str]]:
    """The path of every Duration and Timestamp field of a request, nested messages included."""
    found = []
    for item in descriptor.fields:
        if item.message_type is None or item.message_type.GetOptions().map_entry:
            continue
        kind = TIME_TYPES.get(item.message_type.full_name)
        if kind:
            found.append(((*prefix, item.name), kind))
        elif not item.message_type.full_name.startswith("google.protobuf.") and depth < 3:
            found += time_fields(item.message_type, (*prefix, item.name), depth + 1)
    return found


def with_time_value(message: Message, path: Sequence[str], value: tuple[int, int]) -> Message:
    """A copy of `message` with the field at `path` set to (seconds, nanos); repeated fields get it first."""
    copy = type(message)()
    copy.CopyFrom(message)
    target = copy
    for name in path[:-1]:
        item = target.DESCRIPTOR.fields_by_name[name]
        if item.is_repeated:
            container = getattr(target, name)
            target = container[0] if len(container) else container.add()
        else:
            target = getattr(target, name)
    last = target.DESCRIPTOR.fields_by_name[path[-1]]
    field_value = getattr(target, path[-1])
    if last.is_repeated:
        element = field_value[0] if len(field_value) else field_value.add()
    else:
        element = field_value
    element.seconds, element.nanos = value
    element.SetInParent()  # present even when zero
    return copy


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


SPECIAL_TYPES = {
    duration_pb2.Duration.DESCRIPTOR.full_name: RequestFuzzer.duration,
    timestamp_pb2.Timestamp.DESCRIPTOR.full_name: RequestFuzzer.timestamp,
    field_mask_pb2.FieldMask.DESCRIPTOR.full_name: RequestFuzzer.field_mask,
    struct_pb2.Struct.DESCRIPTOR.full_name: RequestFuzzer.struct,
    struct_pb2.Value.DESCRIPTOR.full_name: RequestFuzzer.value,
    struct_pb2.ListValue.DESCRIPTOR.full_name: RequestFuzzer.list_value,
}
