"""Hypothesis strategies for hostile input: text with NUL, control and bidi characters and
lengths around the limits, any number an integer field can carry, timestamps far outside
what a datetime holds, and whole protobuf messages built from their descriptors."""
from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

from actors.domain.limits import MAX_ID, MAX_LABEL_VALUE, MAX_LABELS, MAX_NAME, MAX_PAGE, MAX_TITLE

#: NUL, C0/C1 controls, bidi overrides and isolates, zero-width and byte-order marks, a lone
#: combining mark, whitespace of several kinds.
SPECIAL = "\x00\x01\x07\x08\x1b\x7f\x85\u200b\u200e\u200f\u202a\u202b\u202d\u202e\u2066\u2067\u2068\u2069" \
          "\ufeff\u0301\ufffd \t\r\n\u3000"
CHARACTERS = st.one_of(st.sampled_from(SPECIAL), st.characters(codec="utf-8"))
#: Lengths just below, at and just above each text limit (in characters; multi-byte ones go over).
LIMIT_LENGTHS = sorted({n + d for n in (MAX_ID, MAX_NAME, MAX_TITLE, MAX_LABEL_VALUE) for d in (-1, 0, 1)})


def hostile_text() -> st.SearchStrategy[str]:
    short = st.text(CHARACTERS, max_size=24)
    at_a_limit = st.builds(lambda ch, n: ch * n, st.sampled_from("aé€\x00\u202e𝄞 "), st.sampled_from(LIMIT_LENGTHS))
    return st.one_of(short, short, short, at_a_limit)


def integers(bits: int, signed: bool = True) -> st.SearchStrategy[int]:
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)
    edges = st.sampled_from([v for v in (low, high, -1, 0, 1, 2, 7, MAX_PAGE, MAX_PAGE + 1) if low <= v <= high])
    return st.one_of(edges, st.integers(-3, 12).filter(lambda v: low <= v <= high), st.integers(low, high))


def timestamp_fields() -> st.SearchStrategy[dict[str, int]]:
    """seconds and nanos of a Timestamp: ordinary, at the edges of years 1..9999, or anything."""
    seconds = st.one_of(st.sampled_from([0, 1, -1, -62135596800, -62135596801, 253402300799, 253402300800]),
                        st.integers(0, 4_000_000_000), integers(64))
    nanos = st.one_of(st.just(0), st.integers(0, 999_999_999), integers(32))
    return st.fixed_dictionaries({"seconds": seconds, "nanos": nanos})


_SCALARS: dict[int, st.SearchStrategy[Any]] = {
    FieldDescriptor.TYPE_STRING: hostile_text(),
    FieldDescriptor.TYPE_BYTES: st.binary(max_size=64),
    FieldDescriptor.TYPE_BOOL: st.booleans(),
    FieldDescriptor.TYPE_DOUBLE: st.floats(),
    FieldDescriptor.TYPE_FLOAT: st.floats(width=32),
    FieldDescriptor.TYPE_ENUM: integers(32),
    **{t: integers(32) for t in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32,
                                 FieldDescriptor.TYPE_SFIXED32)},
    **{t: integers(64) for t in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64,
                                 FieldDescriptor.TYPE_SFIXED64)},
    **{t: integers(32, signed=False) for t in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32)},
    **{t: integers(64, signed=False) for t in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64)},
}


def _value(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return messages(field.message_type, depth + 1)
    return _SCALARS[field.type]


def _field(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        key, value = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
        return st.one_of(st.dictionaries(_value(key, depth), _value(value, depth), max_size=4),
                         st.dictionaries(st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=3),
                                         st.just("v"), min_size=MAX_LABELS, max_size=MAX_LABELS + 2))
    if field.is_repeated:
        few = st.lists(_value(field, depth), max_size=4)
        return few if field.type == FieldDescriptor.TYPE_MESSAGE else st.one_of(
            few, st.lists(st.just("x"), min_size=MAX_LABELS + 1, max_size=MAX_LABELS + 1)
            if field.type == FieldDescriptor.TYPE_STRING else few)
    return _value(field, depth)


def messages(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    """Messages of ``descriptor``'s type with any subset of their fields set to hostile values."""
    from google.protobuf import message_factory
    cls = message_factory.GetMessageClass(descriptor)
    if descriptor.full_name == "google.protobuf.Timestamp":
        return st.builds(lambda fields: cls(**fields), timestamp_fields())
    if depth > 3:
        return st.just(cls())
    optional = {f.name: _field(f, depth) for f in descriptor.fields}
    return st.builds(lambda fields: _filled(cls(), fields), st.fixed_dictionaries({}, optional=optional))


def _filled(message: Message, fields: dict[str, Any]) -> Message:
    for name, value in fields.items():
        field = message.DESCRIPTOR.fields_by_name[name]
        target = getattr(message, name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            for key, item in value.items():
                if isinstance(item, Message):
                    target[key].CopyFrom(item)
                else:
                    target[key] = item
        elif field.is_repeated:
            target.extend(value)
        elif isinstance(value, Message):
            target.CopyFrom(value)
        else:
            setattr(message, name, value)
    return message
