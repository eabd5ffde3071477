"""The import rules between layers (ARCHITECTURE.md, "Layers and what each may import")."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STDLIB = set(sys.stdlib_module_names) | {"__future__"}

# layer → what its modules may import besides the stdlib (prefixes of module names)
RULES: dict[str, tuple[str, ...]] = {
    "actors.domain": ("actors.domain",),
    "actors.formatting": ("actors.domain", "actors.formatting"),
    "actors.channels": ("actors.domain", "actors.formatting", "actors.channels", "requests", "structlog"),
    "actors.store": ("actors.domain", "actors.store"),
    "actors.api": ("actors.api", "actors.domain", "actors.engine", "actors.events", "actors.messages",
                   "grpc", "grpc_health", "grpc_reflection", "google.protobuf", "protos", "structlog"),
    "actors.cli": ("actors.cli", "grpc", "google.protobuf", "protos"),
    # the embedding API: the actors layer plus the gRPC server it may start (via actors.api)
    "actors.embed": ("actors", "structlog"),
    # the actor classes (actors/*.py): everything but the gRPC edge and the CLI
    "actors": ("actors.domain", "actors.formatting", "actors.channels", "actors.store", "actors",
               "pykka", "structlog"),
}
FORBIDDEN_EVERYWHERE = ("server",)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str:
    for layer in sorted(RULES, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    raise AssertionError(f"{module} belongs to no layer")


def imports_of(path: Path) -> list[str]:
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                names.append(".".join(base + ([node.module] if node.module else [])))
            else:
                names.append(node.module or "")
    return names


def allowed(name: str, prefixes: tuple[str, ...]) -> bool:
    if name.split(".")[0] in STDLIB:
        return True
    return any(name == p or name.startswith(p + ".") for p in prefixes)


SOURCES = sorted((ROOT / "actors").rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_each_module_imports_only_what_its_layer_allows(path):
    module = module_name(path)
    prefixes = RULES[layer_of(module)]
    bad = [name for name in imports_of(path) if not allowed(name, prefixes)]
    assert not bad, f"{module} ({layer_of(module)}) may not import {bad}"


def test_nothing_imports_the_composition_root():
    for path in [*SOURCES, *sorted((ROOT / "tests").rglob("*.py"))]:
        assert not [n for n in imports_of(path) if n.split(".")[0] in FORBIDDEN_EVERYWHERE], path


def test_the_checker_catches_a_violation():
    assert not allowed("grpc", RULES["actors.domain"])
    assert not allowed("actors.store.sqlite", RULES["actors.formatting"])
    assert allowed("json", RULES["actors.domain"])
