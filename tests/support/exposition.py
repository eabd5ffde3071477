"""A strict line-by-line reader of the Prometheus text exposition format (version 0.0.4).

:func:`parse` checks each line against the format's rules and what node_exporter's textfile
collector adds (no timestamps), and returns the samples with their labels unescaped. Any
broken rule raises AssertionError naming the line.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}
SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}
ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}


@dataclass
class Exposition:
    types: dict[str, str] = field(default_factory=dict)
    helps: dict[str, str] = field(default_factory=dict)
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = field(default_factory=dict)

    def value(self, name: str, **labels: str) -> float:
        return self.samples[(name, frozenset(labels.items()))]

    def series(self, name: str) -> list[dict[str, str]]:
        return [dict(labels) for sample, labels in self.samples if sample == name]


def parse(text: str) -> Exposition:
    assert text.endswith("\n"), "the exposition must end with a newline"
    result = Exposition()
    current, finished = "", set()  # a family's lines are contiguous: once left it may not come back

    def enter(family: str, where: str) -> None:
        nonlocal current
        if family != current:
            assert family not in finished, f"{where}: family {family} continues after another family"
            if current:
                finished.add(current)
            current = family

    for number, line in enumerate(text[:-1].split("\n"), 1):
        where = f"line {number} {line!r}"
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) < 3 or parts[1] not in ("HELP", "TYPE"):
                continue  # a plain comment
            keyword, name, rest = parts[1], parts[2], parts[3] if len(parts) == 4 else ""
            assert NAME.fullmatch(name), f"{where}: bad metric name"
            enter(name, where)
            if keyword == "HELP":
                assert name not in result.helps, f"{where}: second HELP for {name}"
                result.helps[name] = _unescape(rest, ("\\", "n"), where)
            else:
                assert rest in TYPES, f"{where}: unknown type {rest!r}"
                assert name not in result.types, f"{where}: second TYPE for {name}"
                assert not result.series(name), f"{where}: TYPE after samples of {name}"
                result.types[name] = rest
            continue
        name, labels, rest = _sample(line, where)
        enter(_family(name, result.types), where)
        key = (name, frozenset(labels.items()))
        assert key not in result.samples, f"{where}: duplicate series"
        value, *timestamp = rest.split(" ")
        assert not timestamp, f"{where}: a timestamp (the textfile collector refuses them)"
        result.samples[key] = _float(value, where)
    return result


def _family(sample: str, types: dict[str, str]) -> str:
    for family, kind in types.items():
        if sample == family or sample in (family + suffix for suffix in SUFFIXES.get(kind, ())):
            return family
    return sample  # untyped


def _sample(line: str, where: str) -> tuple[str, dict[str, str], str]:
    match = NAME.match(line)
    assert match, f"{where}: no metric name"
    name, i, labels = match.group(), match.end(), {}
    if line[i:i + 1] == "{":
        i += 1
        while line[i:i + 1] != "}":
            label = LABEL_NAME.match(line, i)
            assert label, f"{where}: bad label name at {i}"
            key = label.group()
            assert not key.startswith("__") and key not in labels, f"{where}: reserved or repeated label {key}"
            i = label.end()
            assert line[i:i + 2] == '="', f"{where}: expected =\" at {i}"
            i += 2
            value = []
            while line[i:i + 1] != '"':
                assert i < len(line), f"{where}: unterminated label value"
                if line[i] == "\\":
                    assert line[i + 1:i + 2] in ESCAPES, f"{where}: bad escape at {i}"
                    value.append(ESCAPES[line[i + 1]])
                    i += 2
                else:
                    assert line[i] != "\n", f"{where}: raw newline in a label value"
                    value.append(line[i])
                    i += 1
            labels[key] = "".join(value)
            i += 1
            if line[i:i + 1] == ",":
                i += 1
        i += 1
    assert line[i:i + 1] == " " and line[i + 1:i + 2] not in ("", " "), f"{where}: expected one space, then a value"
    return name, labels, line[i + 1:]


def _float(text: str, where: str) -> float:
    if text in ("NaN", "+Inf", "-Inf"):
        return {"NaN": math.nan, "+Inf": math.inf, "-Inf": -math.inf}[text]
    assert re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", text), f"{where}: bad value {text!r}"
    return float(text)


def _unescape(text: str, allowed: tuple[str, ...], where: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\":
            assert text[i + 1:i + 2] in allowed, f"{where}: bad escape at {i}"
            out.append(ESCAPES[text[i + 1]])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)
