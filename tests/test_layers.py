"""The import rules between layers (README.md, "Architecture": "Layers and their import rules").

Each module's imports are read with ``ast`` (never executed). A relative import is resolved
against the module's package, and ``from X import y`` counts as importing ``X.y`` too, so
``from . import api`` in ``actors/router.py`` is seen as ``actors.api``."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STDLIB = set(sys.stdlib_module_names) | {"__future__"}

# layer → what its modules may import besides the stdlib (prefixes of module names)
RULES: dict[str, tuple[str, ...]] = {
    "actors.domain": ("actors.domain", "orjson"),
    "actors.formatting": ("actors.domain", "actors.formatting", "jinja2", "markupsafe"),
    "actors.channels": ("actors.domain", "actors.formatting", "actors.channels", "structlog"),
    "actors.store": ("actors.domain", "actors.store", "psycopg", "psycopg_pool"),
    "actors.api": ("actors.api", "actors.domain", "actors.engine", "actors.events",
                   "grpc", "grpc_health", "grpc_reflection", "google.protobuf", "protos", "structlog",
                   "cryptography"),
    # imctl: a gRPC client; ``routes test`` reads the configuration with the (stdlib-only) domain layer
    "actors.cli": ("actors.cli", "actors.domain", "grpc", "google.protobuf", "protos"),
    # the embedding API: the actors layer plus the gRPC server it may start (via actors.api)
    "actors.embed": ("actors", "structlog"),
    # the actor classes (actors/*.py): the layers below and each other, never what sits above them
    "actors": ("actors.domain", "actors.formatting", "actors.channels", "actors.store", "actors",
               "pykka", "structlog"),
}
# layer → prefixes it may not import even though one of its RULES prefixes covers them
EXCLUDED: dict[str, tuple[str, ...]] = {
    "actors": ("actors.api", "actors.cli", "actors.embed"),
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


def imports_in(source: str, package: str) -> list[str]:
    """The absolute names a module in ``package`` imports: ``import a.b`` gives ``a.b``;
    ``from a import b`` gives ``a`` and ``a.b`` (``b`` may be a submodule)."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names += [base, *(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")]
    return names


def imports_of(path: Path) -> list[str]:
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    return imports_in(path.read_text(encoding="utf-8"), package)


def covered(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def allowed(name: str, layer: str) -> bool:
    if name.split(".")[0] in STDLIB:
        return True
    return covered(name, RULES[layer]) and not covered(name, EXCLUDED.get(layer, ()))


def violations(module: str, source: str, is_package: bool = False) -> list[str]:
    """What ``module`` (with this ``source``) imports that its layer may not."""
    package = module if is_package else module.rpartition(".")[0]
    layer = layer_of(module)
    return [name for name in imports_in(source, package) if not allowed(name, layer)]


SOURCES = sorted((ROOT / "actors").rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_each_module_imports_only_what_its_layer_allows(path):
    module = module_name(path)
    bad = violations(module, path.read_text(encoding="utf-8"), is_package=path.name == "__init__.py")
    assert not bad, f"{module} ({layer_of(module)}) may not import {bad}"


def test_nothing_imports_the_composition_root():
    for path in [*SOURCES, *sorted((ROOT / "tests").rglob("*.py"))]:
        assert not [n for n in imports_of(path) if n.split(".")[0] in FORBIDDEN_EVERYWHERE], path


def test_the_checker_catches_a_violation():
    assert violations("actors.domain.models", "import grpc\n") == ["grpc"]
    assert violations("actors.formatting.slack", "from ..store.sqlite import SqliteStore\n")
    assert violations("actors.domain.models", "import json\nfrom .errors import NotFound\n") == []


@pytest.mark.parametrize("source", [
    "from .api import errors\n",
    "from . import api\n",
    "from .cli.render import table\n",
    "from . import cli\n",
    "import actors.api.server\n",
    "from actors import embed\n",
])
def test_an_actor_module_importing_the_grpc_edge_the_cli_or_the_embedding_api_is_caught(source):
    assert violations("actors.router", source), source


def test_actor_modules_may_import_each_other_and_the_layers_below():
    source = ("from . import directory\nfrom .events import Event\nfrom .store.sqlite import SqliteStore\n"
              "from .domain.models import Incident\nimport pykka\n")
    assert violations("actors.router", source) == []
