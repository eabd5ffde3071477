"""``[state] path``: checked by --check-config and on start; a bad one exits 2 naming the key."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from actors.domain.config import ConfigError, settings_from_mapping
from actors.engine import Engine
from actors.store.checks import check_store_path
from actors.store.sqlite import SqliteStore
from tests.support.process import ROOT

AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def run_server(tmp_path: Path, store: Path, *args: str) -> subprocess.CompletedProcess:
    config = tmp_path / "c.toml"
    config.write_text(f'[server]\ngrpc_port = 0\n[state]\npath = "{store}"\n')
    return subprocess.run([sys.executable, str(ROOT / "server.py"), "--config", str(config), *args],
                          capture_output=True, text=True, timeout=60, cwd=ROOT, stdin=subprocess.DEVNULL)


def a_directory(tmp_path: Path) -> Path:
    (tmp_path / "dir").mkdir()
    return tmp_path / "dir"


def not_sqlite(tmp_path: Path) -> Path:
    (tmp_path / "notes.db").write_text("these are my notes, not a database\n")
    return tmp_path / "notes.db"


def under_a_file(tmp_path: Path) -> Path:
    (tmp_path / "file").write_text("x")
    return tmp_path / "file" / "sub" / "store.db"


def another_database(tmp_path: Path) -> Path:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE customers (id INTEGER)")
    connection.close()
    return path


BAD = {"a directory": (a_directory, "is a directory"),
       "not SQLite": (not_sqlite, "is not a SQLite database"),
       "under a file": (under_a_file, "cannot be created"),
       "another program's database": (another_database, "no incidents and notifications tables")}


@pytest.mark.parametrize("mode", [("--check-config",), ()], ids=["check-config", "start"])
@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_an_unusable_store_path_exits_2_naming_the_key(tmp_path, case, mode):
    make, reason = BAD[case]
    result = run_server(tmp_path, make(tmp_path), *mode)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "configuration error: state.path: " in result.stderr and reason in result.stderr
    assert "Traceback" not in result.stderr and "listening" not in result.stdout


@pytest.mark.skipif(AS_ROOT, reason="root may read and write any file")
@pytest.mark.parametrize("case, mode", [("unreadable file", 0o200), ("read-only directory", 0o500)])
def test_a_store_path_this_user_may_not_use_exits_2(tmp_path, case, mode):
    store = tmp_path / "d" / "store.db"
    store.parent.mkdir()
    SqliteStore(store).close()
    target = store if case == "unreadable file" else store.parent
    target.chmod(mode)
    try:
        result = run_server(tmp_path, store, "--check-config")
    finally:
        target.chmod(0o700)
    assert result.returncode == 2 and "state.path: " in result.stderr and "by this user" in result.stderr


def test_a_missing_directory_is_fine_and_check_config_does_not_create_it(tmp_path):
    store = tmp_path / "data" / "deeper" / "incidents.db"
    result = run_server(tmp_path, store, "--check-config")
    assert result.returncode == 0 and "configuration OK" in result.stdout
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("make", [lambda path: path.write_bytes(b""), lambda path: SqliteStore(path).close(),
                                  lambda path: sqlite3.connect(path).close()],
                         ids=["empty file", "our store", "a database with no tables"])
def test_an_existing_usable_store_passes(tmp_path, make: Callable[[Path], None]):
    store = tmp_path / "store.db"
    make(store)
    check_store_path(str(store))


def test_the_engine_refuses_an_unusable_store_with_a_config_error(tmp_path):
    settings = settings_from_mapping({"state": {"path": str(not_sqlite(tmp_path))}})
    with pytest.raises(ConfigError) as raised:
        Engine(settings).start()
    assert raised.value.key == "state.path" and "is not a SQLite database" in str(raised.value)
