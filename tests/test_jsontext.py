"""Compact JSON text (actors/domain/jsontext.py): orjson's text is the standard library's for
what the store holds, and what orjson refuses is still encoded."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, strategies as st

from actors.domain.jsontext import ascii_compact, compact, parse

_scalars = st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.text()
_documents = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                          | st.dictionaries(st.text(), inner, max_size=4), max_leaves=12)


@given(_documents)
def test_the_text_is_the_standard_librarys_and_parses_back(value):
    expected_compact = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    expected_ascii = json.dumps(value, separators=(",", ":"), ensure_ascii=True)
    assert compact(value) == expected_compact
    assert ascii_compact(value) == expected_ascii
    assert parse(expected_ascii) == value


def test_non_ascii_text_is_escaped_only_by_ascii_compact():
    assert ascii_compact({"t": "Zürich ☃"}) == '{"t":"Z\\u00fcrich \\u2603"}'
    assert compact({"t": "Zürich ☃"}) == '{"t":"Zürich ☃"}'


@pytest.mark.parametrize("value", [{"t": "lone \ud800 surrogate"}, {"n": 2**70}, {1: "int key"}],
                         ids=["lone-surrogate", "int-beyond-64-bits", "int-key"])
def test_what_orjson_refuses_is_encoded_by_the_standard_library(value):
    assert ascii_compact(value) == json.dumps(value, separators=(",", ":"), ensure_ascii=True)


def test_parse_takes_what_only_the_standard_library_reads_and_refuses_what_is_not_json():
    assert parse('{"n":1180591620717411303424}') == {"n": 2**70}
    with pytest.raises(ValueError):
        parse('{"unterminated":')
