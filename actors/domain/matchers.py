"""Matchers in Alertmanager's (classic) syntax: ``name="value"``, ``!=``, ``=~``, ``!~`` (pure).

A matcher string holds one matcher or several separated by commas, optionally inside one pair
of braces: ``{service="db", severity=~"P0|P1"}``; a trailing comma is allowed. A name is a
Prometheus label name (``[a-zA-Z_:][a-zA-Z0-9_:]*``); whitespace around each part is ignored.
A value may be written bare or inside double quotes; within it ``\\"`` is a double quote,
``\\n`` a line feed and ``\\\\`` a backslash, any other backslash is itself, and a double
quote elsewhere than around the whole value is an error. Commas inside double quotes belong
to the value.

``=~`` and ``!~`` take a regular expression that must match the *whole* value (anchored, as
``^(?:…)$`` in Alertmanager): ``=~"db"`` matches ``db``, not ``db-replica``. Expressions are
Python's ``re`` dialect, which for the common cases (classes, alternation, ``.*``, inline flags
such as ``(?i)`` or ``(?s)`` at the start) reads as Go's RE2 does. Everything is compiled when
parsed, so matching never compiles anything.
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Callable

#: One matcher: name, operator, then the rest (the value, maybe quoted), whitespace around each.
_MATCHER = re.compile(r"\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(=~|=|!=|!~)\s*(.*?)\s*", re.S | re.A)
#: Global inline flags at the start of an expression, which Python accepts only there.
_LEADING_FLAGS = re.compile(r"\(\?[aiLmsux]+\)")


class MatcherError(ValueError):
    """A matcher string that cannot be parsed; the message quotes the offending part."""


class Op(str, enum.Enum):
    EQUAL = "="
    NOT_EQUAL = "!="
    REGEX = "=~"
    NOT_REGEX = "!~"

    @property
    def negative(self) -> bool:
        return self in (Op.NOT_EQUAL, Op.NOT_REGEX)


@dataclass(frozen=True, slots=True)
class Matcher:
    """``name op value``; ``matches(text)`` says whether a value satisfies it."""

    name: str
    op: Op
    value: str
    #: The test itself, and the test without its negation (``!=`` read as ``=``, ``!~`` as ``=~``).
    matches: Callable[[str], bool] = field(repr=False, compare=False)
    matches_positively: Callable[[str], bool] = field(repr=False, compare=False)
    #: The compiled expression of ``=~`` and ``!~`` (None for the others).
    pattern: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, name: str, op: Op, value: str) -> "Matcher":
        """A matcher; raises MatcherError for a regular expression that does not compile."""
        if op in (Op.REGEX, Op.NOT_REGEX):
            pattern = anchored(value)
            found: Callable[[str], bool] = lambda text: pattern.fullmatch(text) is not None  # noqa: E731
            missing: Callable[[str], bool] = lambda text: pattern.fullmatch(text) is None  # noqa: E731
            return cls(name, op, value, missing if op.negative else found, found, pattern)
        return cls(name, op, value, value.__ne__ if op.negative else value.__eq__, value.__eq__)

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.op.value}"{escaped}"'


def anchored(expression: str) -> re.Pattern[str]:
    """``expression`` compiled to match whole values only; MatcherError if it is not a valid
    regular expression. Global inline flags (``(?s)foo.bar``) stay at the front."""
    flags = _LEADING_FLAGS.match(expression)
    head = flags.group(0) if flags else ""
    try:
        return re.compile(f"{head}(?:{expression[len(head):]})")
    except re.error as error:
        raise MatcherError(f"bad regular expression {expression!r}: {error}") from None


def parse_matchers(text: str) -> list[Matcher]:
    """Every matcher of a matcher string (see the module docstring); ``{}`` gives none.
    Raises MatcherError naming the part that is not a matcher."""
    body = text.removeprefix("{").removesuffix("}")
    tokens, token, quoted, escaped = [], [], False, False
    for char in body:
        if char == "," and not quoted:
            tokens.append("".join(token))
            token = []
            continue
        if char == '"':
            quoted = quoted if escaped else not quoted
            escaped = False
        elif char == "\\":
            escaped = not escaped
        else:
            escaped = False
        token.append(char)
    last = "".join(token).strip()
    if last:
        tokens.append(last)
    return [parse_matcher(token) for token in tokens]


def parse_matcher(text: str) -> Matcher:
    """One ``name op value``; MatcherError when it is not one, or holds a stray double quote
    or a bad regular expression."""
    found = _MATCHER.fullmatch(text)
    if found is None:
        raise MatcherError(f"not a matcher (name, then =, !=, =~ or !~, then a value): {text.strip()!r}")
    name, op, raw = found.groups()
    return Matcher.of(name, Op(op), _unquoted(raw))


def _unquoted(raw: str) -> str:
    """The value as written: without its surrounding double quotes, escapes resolved."""
    quoted = raw.startswith('"')
    rest = raw[1:] if quoted else raw
    value: list[str] = []
    escaped = closed = False
    for index, char in enumerate(rest):
        if escaped:
            escaped = False
            value.append({"n": "\n", '"': '"', "\\": "\\"}.get(char, "\\" + char))
        elif char == "\\" and index < len(rest) - 1:
            escaped = True
        elif char == '"':
            if not quoted or closed or index < len(rest) - 1:
                raise MatcherError(f"the value holds a double quote that is not escaped (write \\\"): {raw!r}")
            closed = True
        else:
            value.append(char)
    if quoted and not closed:
        raise MatcherError(f"the value's opening double quote is never closed: {raw!r}")
    return "".join(value)
