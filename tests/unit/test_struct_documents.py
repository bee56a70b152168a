"""scalars.document reads a Struct exactly as json_format.MessageToDict does: the same dict, keys in
the same order, numbers as the same floats; and where MessageToDict fails, INVALID_ARGUMENT naming
the field."""

from __future__ import annotations

import json
import math

import pytest
from google.protobuf import struct_pb2
from google.protobuf.json_format import MessageToDict
from hypothesis import given, settings
from hypothesis import strategies as st

from queue_service.api.scalars import document
from queue_service.core.errors import InvalidArgument

keys = st.text(max_size=8)
numbers = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**60), 2**60).map(float)


def _value(kind: str, content) -> struct_pb2.Value:
    value = struct_pb2.Value()
    if kind == "unset":
        return value
    if kind == "null":
        value.null_value = struct_pb2.NULL_VALUE
    elif kind == "struct":
        value.struct_value.CopyFrom(content)
    elif kind == "list":
        value.list_value.values.extend(content)
    else:
        setattr(value, kind, content)
    return value


def _struct(items: list[tuple[str, struct_pb2.Value]]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    for key, value in items:
        message.fields[key].CopyFrom(value)
    return message


scalar_values = st.one_of(
    st.just(_value("unset", None)),
    st.just(_value("null", None)),
    st.booleans().map(lambda flag: _value("bool_value", flag)),
    numbers.map(lambda number: _value("number_value", number)),
    st.text().map(lambda text: _value("string_value", text)),
)
values = st.recursive(
    scalar_values,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5).map(lambda items: _value("list", items)),
        st.lists(st.tuples(keys, inner), max_size=5).map(lambda items: _value("struct", _struct(items))),
    ),
    max_leaves=40,
)
structs = st.lists(st.tuples(keys, values), max_size=8).map(_struct)


@settings(max_examples=500, deadline=None)
@given(structs)
def test_document_is_message_to_dict(message):
    expected = MessageToDict(message)
    read = document(message, "job_data")
    assert read == expected
    # Equal dicts may differ in key order and -0.0; the JSON stored from them may not.
    assert json.dumps(read) == json.dumps(expected)


def test_document_reads_every_kind():
    message = struct_pb2.Struct()
    message.update({"s": "x", "n": 3, "f": 1.5, "b": True, "z": None, "l": [1, "a", [None]], "o": {"k": {}}})
    message.fields["unset"].CopyFrom(struct_pb2.Value())
    assert document(message, "job_data") == {
        "s": "x",
        "n": 3.0,
        "f": 1.5,
        "b": True,
        "z": None,
        "l": [1.0, "a", [None]],
        "o": {"k": {}},
        "unset": None,
    }


def _nested(number: float, depth: int, in_list: bool) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    inner = message
    for _ in range(depth):
        inner = inner.fields["a"].struct_value
    if in_list:
        inner.fields["a"].list_value.values.add().number_value = number
    else:
        inner.fields["a"].number_value = number
    return message


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("depth", [0, 3])
@pytest.mark.parametrize("in_list", [False, True])
def test_a_number_json_cannot_hold_is_invalid_argument_naming_the_field(number, depth, in_list):
    message = _nested(number, depth, in_list)
    with pytest.raises(ValueError):
        MessageToDict(message)
    with pytest.raises(InvalidArgument, match="jobs\\[2\\].job_data is not a valid JSON object") as raised:
        document(message, "jobs[2].job_data")
    assert raised.value.field == "jobs[2].job_data"


def test_nesting_past_the_recursion_limit_is_invalid_argument():
    message = _nested(1.0, 5000, in_list=False)
    with pytest.raises(RecursionError):
        MessageToDict(message)
    with pytest.raises(InvalidArgument) as raised:
        document(message, "job_data")
    assert raised.value.field == "job_data"
