"""What the store's shared SQL (actors/store/base.py) needs of a database connection, and the
few spellings in which SQLite and PostgreSQL differ.

The shared SQL is written for SQLite, with ``?`` placeholders: a ``sqlite3.Connection`` is a
:class:`Session` as it is, so the SQLite store runs it with no layer in between, and the
PostgreSQL store hands it to psycopg through a session that rewrites the placeholders once
per statement text (actors/store/postgres.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Protocol, Sequence


class Cursor(Protocol):
    """The result of one statement: its rows, or how many rows it changed."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Session(Protocol):
    """A connection inside a transaction (or, for reads, outside one)."""

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]], /) -> Cursor: ...


@dataclass(frozen=True, slots=True)
class Dialect:
    #: The function building a JSON object from key/value arguments, as text.
    json_object: str
    #: SQL of the alert id that a timeline row's ``detail`` JSON names (NULL when none).
    detail_alert_id: str
    #: What ends a SELECT that locks the rows it reads until the transaction ends (SQLite's
    #: write transactions hold the whole database already).
    lock_rows: str = ""


SQLITE = Dialect(json_object="json_object", detail_alert_id="json_extract(detail, '$.alert_id')")
#: ``json_build_object`` gives json, stored as text by the INSERT's assignment cast.
POSTGRES = Dialect(json_object="json_build_object", detail_alert_id="(CAST(detail AS json) ->> 'alert_id')",
                   lock_rows=" FOR UPDATE")
