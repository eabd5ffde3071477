"""The PostgreSQL store's own parts: ``[state] url`` and its password rules, the lazy import of
psycopg, --check-config's report, versioned migrations under a lock, one server per store,
leasing that skips locked rows, counters kept as appended changes, and text PostgreSQL cannot
hold. (What every store does is tested on both engines in test_store.py, test_retention.py,
test_stale_sends.py and, end to end over gRPC, test_delivery.py.)"""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from actors.domain.changes import Change, PendingEvent
from actors.domain.config import settings_from_mapping
from actors.domain.errors import ConfigError
from actors.domain.models import (DeliveryStatus, EventKind, Incident, IncidentState, IncidentType, Outcome,
                                  Severity, utc_now)
from actors.domain.routing import Receiver
from actors.engine import Engine
from actors.store.base import AttemptRecord, Store
from actors.store.lock import StoreInUse
from actors.store.opening import check_store, open_store
from actors.store.postgres_migrations import VERSION
from tests.support import postgres
from tests.support.http_receiver import HttpReceiver
from tests.support.process import ROOT, ServerProcess
from tests.support.server import make_settings

HOOK = Receiver("webhook", "default")
SECRET = "hunter2-not-for-logs"
BLOCK_PSYCOPG = "import sys; sys.modules['psycopg'] = sys.modules['psycopg_pool'] = None; "


@pytest.fixture
def url():
    """The URL of a new, empty schema on the test server, dropped afterwards."""
    with postgres.fresh_schema() as schema_url:
        yield schema_url


def state(url: str, **more):
    return settings_from_mapping({"state": {"url": url, **more}}).state


def run_server(config: Path, *args: str, prelude: str = "") -> subprocess.CompletedProcess:
    code = f"{prelude}import server; sys.exit(server.main(['--config', {str(config)!r}, *{list(args)!r}]))"
    return subprocess.run([sys.executable, "-c", f"import sys; {code}"], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)


def change(incident_id: str) -> Change:
    now = utc_now()
    incident = Incident(incident_id, f"fp-{incident_id}", "title", "", Severity.P1, IncidentType.DATA,
                        IncidentState.DETECTED, "src", now, now, now)
    return Change(incident, True, (PendingEvent(EventKind.CREATED, now, "t", {}, "incident.detected", (HOOK,)),))


# -- [state] url -------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [f"postgresql://im:{SECRET}@db.example/incidents",
                                 f"postgresql://db.example/incidents?sslmode=require&password={SECRET}",
                                 f"postgresql://db.example/incidents?sslpassword={SECRET}",
                                 f"postgres://im:{SECRET}@[::1]:5432/incidents"])
def test_a_url_with_a_password_is_refused_without_showing_it(tmp_path, bad):
    with pytest.raises(ConfigError) as error:
        state(bad)
    assert error.value.key == "state.url" and SECRET not in str(error.value)
    assert "password_env" in str(error.value) and "PGPASSWORD" in str(error.value)
    config = tmp_path / "c.toml"
    config.write_text(f'[state]\nurl = "{bad}"\n')
    result = run_server(config, "--check-config")
    assert result.returncode == 2 and "state.url" in result.stderr
    assert SECRET not in result.stderr + result.stdout


def test_only_postgresql_urls_are_taken_and_password_env_only_with_one():
    for bad in ("mysql://db.example/incidents", "./data/incidents.db", "postgresql://[::1/x"):
        with pytest.raises(ConfigError) as error:
            state(bad)
        assert error.value.key == "state.url"
    assert state("postgres://im@db.example/incidents").url == "postgres://im@db.example/incidents"
    with pytest.raises(ConfigError) as error:
        settings_from_mapping({"state": {"password_env": "PGPASS"}})
    assert error.value.key == "state.password_env"
    with pytest.raises(ConfigError) as error:
        state("postgresql://db.example/x", pool_size=0)
    assert error.value.key == "state.pool_size"


def test_without_psycopg_sqlite_serves_and_postgresql_is_refused_naming_the_key_and_packages(tmp_path):
    sqlite_config = tmp_path / "sqlite.toml"
    sqlite_config.write_text(f'[state]\npath = "{tmp_path / "s.db"}"\n')
    served = run_server(sqlite_config, "--check-config", prelude=BLOCK_PSYCOPG)
    assert served.returncode == 0 and "configuration OK" in served.stdout, served.stderr
    pg_config = tmp_path / "pg.toml"
    pg_config.write_text('[server]\ngrpc_port = 0\n[state]\nurl = "postgresql://postgres@127.0.0.1:5432/test"\n')
    for args in (("--check-config",), ()):
        refused = run_server(pg_config, *args, prelude=BLOCK_PSYCOPG)
        assert refused.returncode == 2, refused.stderr
        assert "state.url" in refused.stderr and "psycopg-pool" in refused.stderr and "pip install" in refused.stderr
        assert "Traceback" not in refused.stderr


def test_an_unreachable_server_stops_the_start_naming_the_url_never_the_password():
    unreachable = state("postgresql://postgres@127.0.0.1:1/test", password_env="IM_PG_PASSWORD")
    for attempt in (lambda: open_store(unreachable, {"IM_PG_PASSWORD": SECRET}),
                    lambda: check_store(unreachable, {"IM_PG_PASSWORD": SECRET})):
        with pytest.raises(ConfigError) as error:
            attempt()
        assert error.value.key == "state.url" and "127.0.0.1:1/test" in str(error.value)
        assert SECRET not in str(error.value)
    with pytest.raises(ConfigError) as error:
        open_store(unreachable, {})
    assert error.value.key == "state.password_env" and "IM_PG_PASSWORD" in str(error.value)


def test_the_password_comes_from_the_variable_password_env_names(url):
    opened = open_store(state(url, password_env="IM_PG_PASSWORD"), {"IM_PG_PASSWORD": SECRET})
    try:
        with opened.store._pool.connection() as conn:
            assert conn.info.password == SECRET  # the test server trusts anyone: libpq still sent it
    finally:
        opened.store.close()
        opened.lock.release()


# -- the schema ----------------------------------------------------------------------------------
def test_check_config_connects_reports_the_schema_version_and_creates_nothing(tmp_path, url):
    config = tmp_path / "c.toml"
    config.write_text(f'[state]\nurl = "{url}"\n')
    before = run_server(config, "--check-config")
    assert before.returncode == 0, before.stderr
    assert f"store: {url} (PostgreSQL 1" in before.stdout and "no schema yet: it is created at start" in before.stdout
    assert check_store(state(url), {}).endswith("no schema yet: it is created at start")  # nothing was made
    opened = open_store(state(url), {})
    opened.store.close()
    opened.lock.release()
    after = run_server(config, "--check-config")
    assert after.returncode == 0 and f"schema version {VERSION} (current)" in after.stdout, after.stderr


def test_check_config_names_the_sqlite_store_and_its_version_too(tmp_path):
    path = tmp_path / "s.db"
    assert check_store(settings_from_mapping({"state": {"path": str(path)}}).state, {}) == \
        f"store: {path} (SQLite), no schema yet: it is created at start"
    assert not path.exists()


def test_servers_starting_together_migrate_once_under_the_lock(url):
    from actors.store.postgres import PostgresStore
    start = threading.Barrier(3)
    opened: list[Store] = []
    failures: list[BaseException] = []

    def open_one() -> None:
        start.wait()
        try:
            opened.append(PostgresStore(url))
        except BaseException as error:  # noqa: BLE001 - reported below
            failures.append(error)

    threads = [threading.Thread(target=open_one) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    try:
        assert failures == [] and len(opened) == 3
        assert opened[0]._rows("SELECT version FROM schema_version") == [(VERSION,)]
    finally:
        for store in opened:
            store.close()


def test_a_schema_holding_someone_elses_tables_is_refused(url):
    with postgres.admin() as conn:
        conn.execute(f"CREATE TABLE {schema_of(url)}.incidents (id int)")
    for attempt in (lambda: open_store(state(url), {}), lambda: check_store(state(url), {})):
        with pytest.raises(ConfigError) as error:
            attempt()
        assert error.value.key == "state.url" and "did not make" in str(error.value)


def test_a_schema_newer_than_this_server_is_refused(url):
    opened = open_store(state(url), {})
    opened.store.close()
    opened.lock.release()
    with postgres.admin() as conn:
        conn.execute(f"UPDATE {schema_of(url)}.schema_version SET version = {VERSION + 1}")
    for attempt in (lambda: open_store(state(url), {}), lambda: check_store(state(url), {})):
        with pytest.raises(ConfigError) as error:
            attempt()
        assert error.value.key == "state.url" and f"version {VERSION + 1}, newer" in str(error.value)


def schema_of(url: str) -> str:
    return url.rsplit("search_path%3D", 1)[1]


# -- one server per store ------------------------------------------------------------------------
def test_one_server_per_store_and_the_next_one_may_once_it_is_gone(url):
    first = open_store(state(url), {})
    try:
        with pytest.raises(StoreInUse, match="in use by another server"):
            open_store(state(url), {})
        with postgres.fresh_schema() as elsewhere:  # another schema of the database is another store
            other = open_store(state(elsewhere), {})
            other.store.close()
            other.lock.release()
    finally:
        first.store.close()
        first.lock.release()
    second = open_store(state(url), {})
    second.store.close()
    second.lock.release()


def test_a_second_server_process_on_the_store_exits_4(tmp_path, url):
    config = postgres.server_config(tmp_path / "c.toml", url)
    first = ServerProcess(config)
    try:
        first.start()
        second = run_server(config)
    finally:
        first.stop()
    assert second.returncode == 4 and "in use by another server" in second.stderr
    assert "Traceback" not in second.stderr


def test_an_engine_on_postgresql_delivers_what_was_owed_before_it_started(tmp_path, url):
    opened = open_store(state(url), {})
    (owed,) = opened.store.apply([change("i-1")]).deliveries  # leased to nobody, as a dead server leaves it
    opened.store.close()
    opened.lock.release()
    with HttpReceiver() as rx:
        settings = make_settings(tmp_path, state={"url": url},
                                 notifications={"webhook_enabled": True, "default_webhook_url": rx.url + "/hook"})
        with Engine(settings):
            (request,) = rx.wait_for(1)
    assert request.json()["notification_id"] == owed.notification_id


# -- what differs from SQLite --------------------------------------------------------------------
def test_leasing_skips_a_row_another_transaction_holds_instead_of_waiting(url):
    opened = open_store(state(url), {})
    store = opened.store
    try:
        (held,) = store.apply([change("i-1")]).deliveries
        (free,) = store.apply([change("i-2")]).deliveries
        with postgres.admin() as other, other.transaction():
            other.execute(f"SELECT 1 FROM {schema_of(url)}.notifications WHERE id = %s FOR UPDATE",
                          (held.notification_id,))
            leased: list = []
            pull = threading.Thread(target=lambda: leased.extend(
                store.lease_due("webhook", "default", time.time() + 1, 10, "s:1")))
            pull.start()
            pull.join(10)
            assert not pull.is_alive(), "lease_due waited for the locked row"
        assert [d.notification_id for d in leased] == [free.notification_id]
        assert [d.notification_id for d in store.lease_due("webhook", "default", time.time() + 1, 10, "s:1")] == \
            [held.notification_id]
    finally:
        store.close()
        opened.lock.release()


def test_counter_changes_are_folded_into_one_row_per_status_keeping_the_counts(url, monkeypatch):
    from actors.store import postgres as pg
    monkeypatch.setattr(pg, "FOLD_AFTER", 3)
    opened = open_store(state(url), {})
    store = opened.store
    try:
        deliveries = store.apply([change(f"i-{n}") for n in range(4)]).deliveries
        store.record_attempts([AttemptRecord(d, Outcome.delivered(), DeliveryStatus.DELIVERED, time.time(), 1.0)
                               for d in deliveries[:3]])
        assert store._row("SELECT count(*) FROM notification_counts")[0] == 4 + 3 * 2  # +1 each; -1 +1 each
        expected = {"queued": 1, "delivered": 3}
        assert store.channel_counts()[0].counts == expected  # summed, then folded
        assert sorted(store._rows("SELECT status, count FROM notification_counts")) == [("delivered", 3),
                                                                                       ("queued", 1)]
        assert store.channel_counts()[0].counts == expected
    finally:
        store.close()
        opened.lock.release()


def test_a_nul_in_a_receivers_answer_is_stored_as_a_replacement_character(url):
    opened = open_store(state(url), {})
    store = opened.store
    try:
        (delivery,) = store.apply([change("i-1")]).deliveries
        (recorded,) = store.record_attempts([AttemptRecord(delivery, Outcome.failed("HTTP 400: bad\x00body", 400),
                                                           DeliveryStatus.DEAD, time.time(), 1.0)])
        assert recorded
        assert store.notification(delivery.notification_id).last_error == "HTTP 400: bad\ufffdbody"
        assert store.timeline("i-1")[-1].detail["error"] == "HTTP 400: bad\ufffdbody"
    finally:
        store.close()
        opened.lock.release()
