"""Shared fixtures: every test's actors are stopped afterwards (pykka leaves threads otherwise);
``store`` and ``store_place`` run a test once per store engine (SQLite and a real PostgreSQL,
see tests/support/postgres.py)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import pykka
import pytest

from actors.store.base import Store
from actors.store.sqlite import SqliteStore
from tests.support import postgres

ENGINES = ("sqlite", "postgres")


@pytest.fixture(autouse=True)
def stop_all_actors():
    yield
    pykka.ActorRegistry.stop_all(block=True, timeout=10)


@dataclass
class StorePlace:
    """Where one test keeps its store: ``state`` is the ``[state]`` table naming it, ``open``
    opens it (again), and every store opened is closed at the end of the test."""

    kind: str
    state: dict[str, Any]
    _open: Callable[[], Store]
    opened: list[Store] = field(default_factory=list)

    def open(self) -> Store:
        store = self._open()
        self.opened.append(store)
        return store


@pytest.fixture(params=ENGINES)
def store_place(request, tmp_path) -> Iterator[StorePlace]:
    if request.param == "sqlite":
        path = str(tmp_path / "s.db")
        place = StorePlace("sqlite", {"path": path}, lambda: SqliteStore(path))
        yield place
        for store in place.opened:
            store.close()
        return
    postgres.require()
    from actors.store.postgres import PostgresStore  # only where psycopg is installed
    with postgres.fresh_schema() as url:
        place = StorePlace("postgres", {"url": url}, lambda: PostgresStore(url))
        try:
            yield place
        finally:
            for store in place.opened:
                store.close()


@pytest.fixture
def store(store_place: StorePlace) -> Store:
    """A new, empty store of each engine."""
    return store_place.open()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Every test skipped for want of a PostgreSQL server is reported at one place, so that
    the summary (``-ra``) folds them into one line: how many, why, and how to enable them."""
    report = yield
    if report.skipped and isinstance(report.longrepr, tuple) and postgres.SKIP_PREFIX in report.longrepr[2]:
        report.longrepr = (postgres.__file__, postgres.require.__code__.co_firstlineno, report.longrepr[2])
    return report
