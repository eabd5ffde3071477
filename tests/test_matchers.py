"""Matchers in Alertmanager's classic syntax: the cases of its pkg/labels parse and matcher
tests (inputs and expected results restated here, not its code)."""
from __future__ import annotations

import pytest

from actors.domain.matchers import Matcher, MatcherError, Op, parse_matchers

EQ, NE, RE, NRE = Op.EQUAL, Op.NOT_EQUAL, Op.REGEX, Op.NOT_REGEX

PARSED = [
    ("{}", []),
    ("{foo='}", [("foo", EQ, "'")]),
    ("{foo=`}", [("foo", EQ, "`")]),
    ('{foo=\\"}', [("foo", EQ, '"')]),
    ("{foo=bar}", [("foo", EQ, "bar")]),
    ('{foo="bar"}', [("foo", EQ, "bar")]),
    ("{foo=~bar.*}", [("foo", RE, "bar.*")]),
    ('{foo=~"bar.*"}', [("foo", RE, "bar.*")]),
    ("{foo!=bar}", [("foo", NE, "bar")]),
    ('{foo!="bar"}', [("foo", NE, "bar")]),
    ("{foo!~bar.*}", [("foo", NRE, "bar.*")]),
    ('{foo!~"bar.*"}', [("foo", NRE, "bar.*")]),
    ('{foo="bar", baz!="quux"}', [("foo", EQ, "bar"), ("baz", NE, "quux")]),
    ('{foo="bar", baz!~"quux.*"}', [("foo", EQ, "bar"), ("baz", NRE, "quux.*")]),
    ('{foo="bar",baz!~".*quux", derp="wat"}', [("foo", EQ, "bar"), ("baz", NRE, ".*quux"), ("derp", EQ, "wat")]),
    ('{foo="bar", baz!="quux", derp="wat"}', [("foo", EQ, "bar"), ("baz", NE, "quux"), ("derp", EQ, "wat")]),
    ('{foo="bar", baz!~".*quux.*", derp="wat"}', [("foo", EQ, "bar"), ("baz", NRE, ".*quux.*"), ("derp", EQ, "wat")]),
    ('{foo="bar", instance=~"some-api.*"}', [("foo", EQ, "bar"), ("instance", RE, "some-api.*")]),
    ('{foo=""}', [("foo", EQ, "")]),
    ('{foo="bar,quux", job="job1"}', [("foo", EQ, "bar,quux"), ("job", EQ, "job1")]),
    ('{foo = "bar", dings != "bums", }', [("foo", EQ, "bar"), ("dings", NE, "bums")]),
    ("foo=bar,dings!=bums", [("foo", EQ, "bar"), ("dings", NE, "bums")]),
    ('{quote="She said: \\"Hi, ladies! That\'s gender-neutral…\\""}',
     [("quote", EQ, 'She said: "Hi, ladies! That\'s gender-neutral…"')]),
    ('statuscode=~"5.."', [("statuscode", RE, "5..")]),
    ("tricky=~~~", [("tricky", RE, "~~")]),
    ('trickier==\\\\=\\=\\"', [("trickier", EQ, '=\\=\\="')]),
    ('contains_quote != "\\"" , contains_comma !~ "foo,bar" , ',
     [("contains_quote", NE, '"'), ("contains_comma", NRE, "foo,bar")]),
    ("{foo=bar}}", [("foo", EQ, "bar}")]),
    ("{foo=bar}},}", [("foo", EQ, "bar}}")]),
    ("{foo=,bar=}}", [("foo", EQ, ""), ("bar", EQ, "}")]),
    ("{foo=bar\\t}", [("foo", EQ, "bar\\t")]),
    ("{foo=bar\\n}", [("foo", EQ, "bar\n")]),
    ("{foo=bar\\}", [("foo", EQ, "bar\\")]),
    ("{foo=bar\\\\}", [("foo", EQ, "bar\\")]),
    ('{foo=bar\\"}', [("foo", EQ, 'bar"')]),
    ("job=", [("job", EQ, "")]),
    ("{foo=", [("foo", EQ, "")]),
    ("{foo=}b", [("foo", EQ, "}b")]),
]

REFUSED = [
    (",", "not a matcher"),
    ("{,}", "not a matcher"),
    ('job="value', "never closed"),
    ('job=value"', "double quote that is not escaped"),
    ('trickier==\\\\=\\=\\""', "double quote that is not escaped"),
    ('contains_unescaped_quote = foo"bar', "double quote that is not escaped"),
    ('{invalid-name = "valid label"}', "not a matcher"),
    ('{foo=~"invalid[regexp"}', "bad regular expression"),
    ('"{foo=\\"bar"}', "not a matcher"),
    ('"foo=\\"bar"', "not a matcher"),
    ('"foo=\\"bar\\""', "not a matcher"),
    ('"foo=\\"bar\\"', "not a matcher"),
    ('"{foo=\\"bar\\"}"', "not a matcher"),
    ('"foo="bar""', "not a matcher"),
    ("{{foo=", "not a matcher"),
]


@pytest.mark.parametrize("text, expected", PARSED, ids=[case[0] for case in PARSED])
def test_matcher_strings_parse_as_alertmanager_parses_them(text, expected):
    assert [(m.name, m.op, m.value) for m in parse_matchers(text)] == expected


@pytest.mark.parametrize("text, problem", REFUSED, ids=[case[0] for case in REFUSED])
def test_malformed_matcher_strings_are_refused_saying_what_is_wrong(text, problem):
    with pytest.raises(MatcherError, match=problem):
        parse_matchers(text)


MATCHES = [
    (EQ, "bar", "bar", True),
    (EQ, "bar", "foo-bar", False),
    (NE, "bar", "bar", False),
    (NE, "bar", "foo-bar", True),
    (RE, "bar", "bar", True),
    (RE, "bar", "foo-bar", False),  # anchored: the whole value must match
    (RE, ".*bar", "foo-bar", True),
    (NRE, "bar", "bar", False),
    (NRE, "bar", "foo-bar", True),
    (NRE, ".*bar", "foo-bar", False),
    (RE, "foo.bar", "foo-bar", True),
    (RE, "foo\\.bar", "foo-bar", False),
    (RE, "foo\\.bar", "foo.bar", True),
    (EQ, "foo\nbar", "foo\nbar", True),
    (RE, "foo.bar", "foo\nbar", False),
    (RE, "(?s)foo.bar", "foo\nbar", True),  # a leading inline flag applies to the whole expression
    (EQ, '~!="', '~!="', True),
    (RE, "db", "db\n", False),  # no end-of-line leniency
]


@pytest.mark.parametrize("op, value, text, expected", MATCHES)
def test_a_matcher_tests_a_value_as_alertmanager_does(op, value, text, expected):
    assert Matcher.of("foo", op, value).matches(text) is expected


@pytest.mark.parametrize("op, value, text", [(NE, "bar", "bar"), (NRE, "b.r", "bar")])
def test_a_negative_matcher_tested_positively_reads_as_its_positive_twin(op, value, text):
    matcher = Matcher.of("foo", op, value)
    assert matcher.matches_positively(text) and not matcher.matches(text)


@pytest.mark.parametrize("op, value, shown", [
    (EQ, "bar", 'foo="bar"'), (NE, "bar", 'foo!="bar"'), (RE, "bar", 'foo=~"bar"'), (NRE, "bar", 'foo!~"bar"'),
    (EQ, "back\\slash", 'foo="back\\\\slash"'), (EQ, 'double"quote', 'foo="double\\"quote"'),
    (EQ, "new\nline", 'foo="new\\nline"'),
])
def test_a_matcher_is_shown_in_the_syntax_that_reads_back_as_itself(op, value, shown):
    matcher = Matcher.of("foo", op, value)
    assert str(matcher) == shown
    assert parse_matchers(shown) == [matcher]
