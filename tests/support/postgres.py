"""A real PostgreSQL server for the tests: where it is, whether it can be reached, and a schema
of its own for each test (created empty, dropped afterwards), so tests never see each other's
rows.

The server is ``IM_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``).
When it cannot be reached (or psycopg is not installed) the PostgreSQL tests are skipped, and
the run's summary says so in one line (tests/conftest.py folds them), with how to enable them;
with ``IM_REQUIRE_POSTGRES=1`` (as .ci/run sets) they fail instead.
"""
from __future__ import annotations

import contextlib
import functools
import os
import urllib.parse
import uuid
from pathlib import Path
from typing import Iterator

import pytest

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
URL = os.environ.get("IM_TEST_POSTGRES_URL", DEFAULT_URL)
REQUIRED = os.environ.get("IM_REQUIRE_POSTGRES", "") == "1"
HOW_TO_ENABLE = (f"set IM_TEST_POSTGRES_URL to a server the tests may create schemas in "
                 f"(default {DEFAULT_URL}) to run them")
#: How the reason of every such skip begins.
SKIP_PREFIX = "PostgreSQL tests skipped:"


@functools.cache
def unavailable() -> str | None:
    """Why no PostgreSQL test can run here (None when they can): asked once per run."""
    try:
        import psycopg
    except ImportError as error:
        return f"psycopg is not installed ({error})"
    try:
        with psycopg.connect(URL, connect_timeout=3, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as error:
        return f"no PostgreSQL server at {URL} ({str(error).strip().splitlines()[0]})"
    return None


def require() -> None:
    """Skip the calling test (fail it under IM_REQUIRE_POSTGRES=1) when there is no server."""
    reason = unavailable()
    if reason is None:
        return
    if REQUIRED:
        pytest.fail(f"IM_REQUIRE_POSTGRES=1 but {reason}", pytrace=False)
    pytest.skip(f"{SKIP_PREFIX} {reason}; {HOW_TO_ENABLE}")


def url_in_schema(schema: str, base: str = URL) -> str:
    """``base`` with its connections' search_path set to ``schema`` (libpq's ``options``)."""
    parts = urllib.parse.urlsplit(base)
    query = urllib.parse.parse_qsl(parts.query)
    options = " ".join([value for key, value in query if key == "options"] + [f"-c search_path={schema}"])
    query = [(key, value) for key, value in query if key != "options"] + [("options", options)]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query, quote_via=urllib.parse.quote)))


def admin() -> "psycopg.Connection":
    import psycopg
    return psycopg.connect(URL, autocommit=True)


@contextlib.contextmanager
def fresh_schema() -> Iterator[str]:
    """The URL of a new, empty schema (skips or fails the test when there is no server);
    the schema is dropped with everything in it afterwards."""
    require()
    schema = f"im_test_{uuid.uuid4().hex[:12]}"
    with admin() as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield url_in_schema(schema)
    finally:
        with admin() as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


class OwnRole:
    """A login role of its own with a schema it owns: a store whose every connection is this
    test's, so the test can cut them (:meth:`cut`) or keep them out (:meth:`refuse`) without
    touching any other session on the shared server."""

    def __init__(self, name: str) -> None:
        self.name = name
        parts = urllib.parse.urlsplit(URL)
        self.url = url_in_schema(name, urllib.parse.urlunsplit(
            parts._replace(netloc=f"{name}@{parts.hostname}:{parts.port or 5432}")))

    def cut(self) -> int:
        """Terminate every backend of this role (as a server restart or a network failure
        would end them); returns how many there were."""
        with admin() as conn:
            return conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                "WHERE usename = %s AND pid <> pg_backend_pid()", (self.name,)).fetchone()[0]

    def refuse(self) -> None:
        """The database is unreachable to this role: no new connection, the open ones cut."""
        with admin() as conn:
            conn.execute(f'ALTER ROLE "{self.name}" NOLOGIN')
        self.cut()

    def admit(self) -> None:
        """The database is back."""
        with admin() as conn:
            conn.execute(f'ALTER ROLE "{self.name}" LOGIN')


@contextlib.contextmanager
def own_role() -> Iterator[OwnRole]:
    """A new role with its empty schema (see :class:`OwnRole`); both dropped afterwards."""
    require()
    role = OwnRole(f"im_test_{uuid.uuid4().hex[:12]}")
    with admin() as conn:
        conn.execute(f'CREATE ROLE "{role.name}" LOGIN')
        conn.execute(f'CREATE SCHEMA "{role.name}" AUTHORIZATION "{role.name}"')
    try:
        yield role
    finally:
        role.admit()
        role.cut()
        with admin() as conn:
            conn.execute(f'DROP SCHEMA "{role.name}" CASCADE')
            conn.execute(f'DROP OWNED BY "{role.name}"')
            conn.execute(f'DROP ROLE "{role.name}"')


def server_config(path: Path, url: str) -> Path:
    """A server configuration at ``path``: loopback, any free port, the store at ``url``, quiet logs."""
    path.write_text(f'[server]\nhost = "127.0.0.1"\ngrpc_port = 0\n[state]\nurl = "{url}"\n'
                    '[observability]\nlog_level = "warning"\n')
    return path
