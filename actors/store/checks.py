"""Is ``[state] path`` usable for the store? Answered before anything is opened or created.

:func:`check_store_path` is what ``--check-config`` and the engine's start run (through
actors/store/opening.py) before the store is opened, so an unusable path stops it with a
``ConfigError("state.path", …)`` instead of a raw OS or SQLite error.
"""
from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

from ..domain.errors import ConfigError

KEY = "state.path"
#: The first 16 bytes of every SQLite 3 database file.
SQLITE_HEADER = b"SQLite format 3\x00"
#: Tables that mark a database as one of ours.
OUR_TABLES = frozenset({"incidents", "notifications"})


def check_store_path(path: str) -> None:
    """Raise ConfigError naming ``state.path`` unless ``path`` can hold the store.

    An existing path must be a regular file this user may read and write, in a directory it
    may write (SQLite keeps its journal beside the database), and either empty or a SQLite
    database that has no tables yet or has ours. A missing file is fine when its directory
    exists or can be created by this user (the store creates it on start). Creates nothing.
    """
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        _check_creatable(Path(path).parent)
        return
    except OSError as error:
        raise ConfigError(KEY, f"{path} cannot be accessed by this user: {error.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise ConfigError(KEY, f"{path} is a directory; name a database file in it, "
                               f"e.g. {Path(path) / 'incidents.db'}")
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(KEY, f"{path} is not a regular file")
    if not os.access(path, os.R_OK | os.W_OK):
        raise ConfigError(KEY, f"{path} cannot be read and written by this user")
    directory = Path(path).parent
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ConfigError(KEY, f"directory {directory} is not writable by this user "
                               "(SQLite writes its journal beside the database)")
    _check_database(path)


def _check_creatable(directory: Path) -> None:
    """The nearest existing ancestor of ``directory`` must be a directory this user may write."""
    ancestor = directory
    while not os.path.lexists(ancestor) and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConfigError(KEY, f"directory {directory} cannot be created: {ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        where = f"directory {directory} is" if ancestor == directory else \
            f"directory {directory} does not exist and cannot be created: {ancestor} is"
        raise ConfigError(KEY, f"{where} not writable by this user")


def _check_database(path: str) -> None:
    """An empty file, or a SQLite database with no tables or with ours."""
    try:
        with open(path, "rb") as file:
            header = file.read(len(SQLITE_HEADER))
    except OSError as error:
        raise ConfigError(KEY, f"{path} cannot be read: {error.strerror}") from None
    if not header:
        return
    if header != SQLITE_HEADER:
        raise ConfigError(KEY, f"{path} is not a SQLite database")
    try:
        connection = sqlite3.connect(path)
        try:
            connection.execute("PRAGMA query_only = ON")
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            connection.close()
    except sqlite3.Error as error:
        raise ConfigError(KEY, f"{path} is not a usable SQLite database: {error}") from None
    if tables and not OUR_TABLES <= tables:
        raise ConfigError(KEY, f"{path} is a SQLite database of something else "
                               f"(it has no {' and '.join(sorted(OUR_TABLES))} tables)")
