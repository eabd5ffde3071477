"""The store ``[state]`` configures — SQLite at ``path``, or PostgreSQL at ``url`` — opened with
its lock for a server, or checked for ``--check-config``.

Either way a store that cannot be used stops the start with a ConfigError naming the key
(``state.path`` or ``state.url``), and another server holding it with StoreInUse (replicas,
``[state] replicas = true``, share a PostgreSQL store with each other only). psycopg is
imported only when ``url`` is set: a server on SQLite runs without it installed, and one asked
for PostgreSQL without it is told which packages to install.
"""
from __future__ import annotations

import contextlib
import sqlite3
from types import ModuleType
from typing import Callable, Iterator, Mapping, NamedTuple, Protocol

from ..domain.config import Secret, StateSettings, read_secret
from ..domain.errors import ConfigError
from .base import Store
from .checks import check_store_path
from .lock import StoreLock
from .migrations import VERSION as SQLITE_VERSION
from .migrations import file_version
from .postgres_migrations import VERSION as POSTGRES_VERSION
from .postgres_migrations import SchemaError
from .sqlite import SqliteStore

URL_KEY = "state.url"
#: Seconds to wait for the PostgreSQL server unless the URL says (``connect_timeout``).
CONNECT_TIMEOUT_SECS = 10
POSTGRES_PACKAGES = "pip install 'psycopg[binary]>=3.3,<3.4' 'psycopg-pool>=3.3,<3.4'"


class Lock(Protocol):
    def watch(self, on_retaken: Callable[[str], None], on_lost: Callable[[str], None]) -> None: ...

    def release(self) -> None: ...


class OpenStore(NamedTuple):
    store: Store
    #: Held while the server uses the store; released after the store is closed.
    lock: Lock


def describe(state: StateSettings) -> str:
    """Where the store is, for logs and messages (a URL never holds a password: see
    actors/domain/config.py)."""
    return state.url.strip() if state.url is not None else state.path


def open_store(state: StateSettings, environ: Mapping[str, str]) -> OpenStore:
    """Check the store, take its lock (before anything of it is read), open it and bring its
    schema to this server's version. Raises ConfigError naming the key for a store that
    cannot be used, StoreInUse when another server holds it; nothing is left held then."""
    if state.url is not None:
        return _open_postgres(state, environ)
    check_store_path(state.path)
    lock = StoreLock(state.path)
    try:
        return OpenStore(_open_sqlite(state.path, state.synchronous), lock)
    except BaseException:
        lock.release()
        raise


def check_store(state: StateSettings, environ: Mapping[str, str]) -> str:
    """What ``--check-config`` says of the store: where it is and its schema version (for
    PostgreSQL after connecting). Creates and changes nothing; raises ConfigError naming the
    key when the store cannot be used."""
    if state.url is None:
        check_store_path(state.path)
        return f"store: {state.path} (SQLite), {_version_text(file_version(state.path), SQLITE_VERSION)}"
    postgres = _postgres()
    conninfo, password = _conninfo(state, environ)
    with _as_config_error(state, password):
        version, server = postgres.inspect(conninfo)
    return f"store: {describe(state)} (PostgreSQL {server}), {_version_text(version, POSTGRES_VERSION)}"


def _open_sqlite(path: str, synchronous: str) -> SqliteStore:
    """The opened store, for a path :func:`check_store_path` has passed; a failure to open it
    (a damaged database, a disk error) is a ConfigError naming ``state.path`` as well."""
    try:
        return SqliteStore(path, synchronous)
    except (sqlite3.Error, OSError) as error:
        raise ConfigError("state.path", f"{path} cannot be opened as the store: {error}") from None


def _open_postgres(state: StateSettings, environ: Mapping[str, str]) -> OpenStore:
    postgres = _postgres()
    conninfo, password = _conninfo(state, environ)
    with _as_config_error(state, password):
        lock = postgres.ServerLock(conninfo, describe(state), state.replicas)
        try:
            return OpenStore(postgres.PostgresStore(conninfo, state.pool_size, state.replicas), lock)
        except BaseException:
            lock.release()
            raise


def _postgres() -> ModuleType:
    """actors.store.postgres, or a ConfigError naming ``state.url`` and the packages to install."""
    try:
        from . import postgres
    except ImportError as error:
        raise ConfigError(URL_KEY, f"a PostgreSQL store needs the packages psycopg and psycopg-pool, which "
                                   f"cannot be imported ({error}): {POSTGRES_PACKAGES}") from None
    return postgres


def _conninfo(state: StateSettings, environ: Mapping[str, str]) -> tuple[str, Secret | None]:
    """libpq's connection string for ``[state] url``, with the password from
    ``password_env`` (none: libpq reads PGPASSWORD or PGPASSFILE itself) and a connect
    timeout unless the URL has one; and that password, to keep it out of messages."""
    from psycopg import Error
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    assert state.url is not None
    password = read_secret("state.password_env", state.password_env, environ) if state.password_env else None
    url = state.url.strip()
    try:
        given = conninfo_to_dict(url)
    except Error as error:
        raise ConfigError(URL_KEY, f"is not a connection URL libpq takes: {error}") from None
    extra: dict[str, object] = {} if "connect_timeout" in given else {"connect_timeout": CONNECT_TIMEOUT_SECS}
    if password:
        extra["password"] = str(password)
    return make_conninfo(url, **extra), password


@contextlib.contextmanager
def _as_config_error(state: StateSettings, password: Secret | None) -> Iterator[None]:
    """The database's errors, and a schema that is not ours to use, as ConfigError naming
    ``state.url``; the password, should an error quote it, shown as ``***``."""
    from psycopg import Error

    try:
        yield
    except (Error, SchemaError) as error:
        text = str(error).strip()
        if password:
            text = text.replace(password, "***")
        raise ConfigError(URL_KEY, f"{describe(state)} cannot be used as the store: {text}") from None


def _version_text(found: int, current: int) -> str:
    if found == 0:
        return "no schema yet: it is created at start"
    if found < current:
        return f"schema version {found}: migrated to {current} at start"
    if found > current:
        return f"schema version {found} (newer than this server's {current})"
    return f"schema version {found} (current)"
