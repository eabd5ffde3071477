"""The PostgreSQL store when its connections are lost: a read or a transaction that finds its
connection gone runs once more on a fresh one; one lost during COMMIT is not run again and says
its outcome is unknown; a database that stays unreachable is StoreUnavailable (UNAVAILABLE over
gRPC, never naming the URL), and the store works again once the database is back. The lock
that keeps one server per store, lost with its session, is taken again — or, when another
server took it meanwhile, the server stops with exit 4.

Each test has a role and a schema of its own (tests/support/postgres.py, ``own_role``): it
cuts only its own connections on the shared server."""
from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import grpc
import pytest
import structlog

from actors.domain.errors import OutcomeUnknown, StoreUnavailable
from actors.domain.models import utc_now
from actors.domain.silences import Silence
from actors.replicas import Heartbeat, Report
from actors.store.lock import StoreInUse
from actors.store.opening import open_store
from actors.store.postgres import PostgresStore
from actors.store.postgres_migrations import lock_keys
from protos import alerts_pb2, notifications_pb2
from tests.support import postgres
from tests.support.http_receiver import HttpReceiver, Reply
from tests.support.slack_api import FakeSlack, slack_error
from tests.support.process import ServerProcess
from tests.support.server import make_settings, running
from tests.support.waiting import wait_until
from tests.test_postgres import change, state


@pytest.fixture
def role():
    with postgres.own_role() as own:
        yield own


@pytest.fixture
def quick_outages(monkeypatch):
    """A store that gives up on an unreachable database after 1 s (not 10) and tries again
    within about a second once it is back."""
    from actors.store import postgres as engine

    monkeypatch.setattr(engine, "POOL_WAIT_SECS", 1.0)
    monkeypatch.setattr(engine, "RECONNECT_SECS", 1.0)


def silence(name: str) -> Silence:
    now = utc_now()
    return Silence(name, ("service=db",), now, now + timedelta(hours=1), "t", "c", now, now, False)


def test_reads_and_writes_on_cut_connections_run_again_on_fresh_ones(role):
    store = PostgresStore(role.url)
    try:
        store.save_silence(silence("s-1"))
        assert role.cut() >= 1
        assert [s.id for s in store.silences()] == ["s-1"]  # a read
        assert role.cut() >= 1
        applied = store.apply([change("i-1")])  # a transaction
        assert role.cut() >= 1
        store.save_silence(silence("s-2"))
        assert [e.id for e in store.timeline("i-1")] == [applied.events[0][0].id]  # written once
        assert sorted(s.id for s in store.silences()) == ["s-1", "s-2"]
    finally:
        store.close()


def end_backend_at_commit(role, table: str) -> None:
    """From now on a transaction inserting into ``table`` loses its connection at COMMIT (a
    deferred trigger terminates its own backend); ``commits_tried`` counts such COMMITs."""
    with postgres.admin() as admin:
        admin.execute(f'SET search_path = "{role.name}"')
        admin.execute("CREATE SEQUENCE commits_tried")
        admin.execute("CREATE FUNCTION end_own_backend() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                      "PERFORM nextval('commits_tried'); PERFORM pg_terminate_backend(pg_backend_pid()); "
                      "PERFORM pg_sleep(5); RETURN NULL; END $$")
        admin.execute(f"CREATE CONSTRAINT TRIGGER at_commit AFTER INSERT ON {table} DEFERRABLE INITIALLY "
                      "DEFERRED FOR EACH ROW EXECUTE FUNCTION end_own_backend()")
        admin.execute(f'GRANT USAGE, SELECT ON SEQUENCE commits_tried TO "{role.name}"')


def test_a_connection_lost_during_commit_is_not_run_again_and_says_the_outcome_is_unknown(role):
    store = PostgresStore(role.url)
    try:
        end_backend_at_commit(role, "silences")
        with pytest.raises(OutcomeUnknown, match="lost while committing.*may or may not"):
            store.save_silence(silence("s-1"))
        assert store._row("SELECT last_value FROM commits_tried")[0] == 1  # tried once
    finally:
        store.close()


def test_a_processor_whose_commit_outcome_is_unknown_is_restarted_to_read_the_store_again(tmp_path, role):
    settings = make_settings(tmp_path, state={"url": role.url})
    with running(settings) as (engine, api, client):
        end_backend_at_commit(role, "alerts")
        with pytest.raises(grpc.RpcError) as unknown:
            client.alerts.SubmitAlert(_alert("a-1"))
        assert unknown.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "may or may not" in unknown.value.details()
        wait_until(lambda: any(s.name == "processor" and s.restarts == 1 and s.alive
                               for s in engine.actor_statuses()))


def test_an_unreachable_database_is_store_unavailable_and_the_store_works_once_it_is_back(role, quick_outages):
    store = PostgresStore(role.url)
    try:
        role.refuse()
        for call in (store.silences, lambda: store.save_silence(silence("s-1"))):
            with pytest.raises(StoreUnavailable, match="cannot be reached") as raised:
                call()
            assert role.name not in str(raised.value) and "postgresql://" not in str(raised.value)
        role.admit()
        wait_until(lambda: _works(lambda: store.save_silence(silence("s-2"))), timeout=10)
        assert [s.id for s in store.silences()] == ["s-2"]
    finally:
        store.close()


def test_grpc_callers_get_unavailable_while_the_database_is_down_and_nothing_accepted_is_lost(
        tmp_path, role, quick_outages):
    settings = make_settings(tmp_path, state={"url": role.url})
    with running(settings) as (engine, api, client):
        accepted = client.alerts.SubmitAlert(_alert("before"))
        role.refuse()
        with pytest.raises(grpc.RpcError) as refused:
            client.alerts.SubmitAlert(_alert("during"))
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "cannot be reached" in refused.value.details() and role.name not in refused.value.details()
        role.admit()
        wait_until(lambda: _works(lambda: client.alerts.SubmitAlert(_alert("after"))), timeout=10)
        assert engine.incident(accepted.incident_id).id == accepted.incident_id
        assert all(status.alive for status in engine.actor_statuses())


# -- an outage longer than the supervisors' restart window ---------------------------------
@pytest.fixture
def quick_outage_backoff(monkeypatch):
    """Actors the outage ended are restarted after 0.1 s, at most 0.5 s (not 0.5 s, 10 s)."""
    from actors import supervision

    monkeypatch.setattr(supervision, "OUTAGE_BACKOFF_SECS", 0.1)
    monkeypatch.setattr(supervision, "OUTAGE_BACKOFF_MAX_SECS", 0.5)


def test_the_server_stays_up_through_an_outage_longer_than_its_restart_window_and_then_sends_what_it_owes(
        tmp_path, role, quick_outages, quick_outage_backoff):
    """Sends in flight when the database goes away finish meanwhile and are recorded once it is
    back (none is made again); actors the outage ends (here the router, crashed once by hand,
    whose restarts need the store) wait for it without counting toward the restart intensity;
    callers hear UNAVAILABLE; what was accepted before is sent after, each id once."""
    arrived, gate = threading.Event(), threading.Event()

    def answer(request):
        arrived.set()
        gate.wait(30)
        return Reply()

    with HttpReceiver(answer) as receiver:
        settings = make_settings(tmp_path, state={"url": role.url},
                                 supervision={"max_restarts": 2, "within_secs": 4.0},
                                 notifications={"webhook_enabled": True, "default_webhook_url": receiver.url,
                                                "webhook": {"pool_size": 1}})
        with running(settings) as (engine, api, client):
            for n in range(3):  # the first is being sent (the receiver holds it), the others wait behind it
                client.alerts.SubmitAlert(_alert(f"before-{n}"))
            assert arrived.wait(10)
            role.refuse()
            gate.set()  # they are delivered while the store cannot record it
            with pytest.raises(grpc.RpcError) as refused:
                client.alerts.SubmitAlert(_alert("during"))
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            engine.faults.crash_next_message("router")  # its restarts need the store
            # each restart waits 1 s for a connection: five take longer than the restart window
            wait_until(lambda: engine.failed.is_set() or _status(engine, "router").restarts >= 5, timeout=30)
            assert not engine.failed.is_set()
            stats = client.notifications.GetStats(notifications_pb2.StatsRequest(), timeout=10)
            assert "cannot be reached" in stats.store.unavailable and role.name not in stats.store.unavailable
            assert [a.last_failure.startswith("waiting for the store") for a in stats.actors if a.name == "router"] \
                == [True]
            role.admit()
            wait_until(lambda: _works(lambda: client.alerts.SubmitAlert(_alert("after"))), timeout=20)
            wait_until(lambda: len(engine.notifications(status="delivered")[0]) == 4, timeout=20)
            assert not engine.failed.is_set()
            wait_until(lambda: all(status.alive for status in engine.actor_statuses()))
            owed = {record.id for record in engine.notifications(status="delivered")[0]}
        delivered = Counter(request.headers["webhook-id"] for request in receiver.requests)
    assert set(delivered) == owed and set(delivered.values()) == {1}  # each id once: none was in flight twice


def test_an_attempt_that_needs_the_store_waits_for_it_unsent_and_is_made_once_it_is_back(
        tmp_path, role, quick_outages, quick_outage_backoff):
    """A Slack thread's state is read from the store before each attempt: a retry that comes due
    during the outage is put off, unsent, and made once the store is back; its sender is never
    restarted."""
    slack = FakeSlack(SLACK_TOKEN)
    slack.script("chat.postMessage", slack_error("ratelimited", 429, {"Retry-After": "1"}))
    with HttpReceiver(slack) as api:
        settings = make_settings(tmp_path, state={"url": role.url}, notifications={
            "slack_enabled": True, "slack_bot_token_env": "SLACK_TOKEN", "slack_default_channel": "#incidents",
            "slack_api_url": api.url + "/api", "slack": {"pool_size": 1}})
        with running(settings, environ={"SLACK_TOKEN": SLACK_TOKEN}) as (engine, _, client), \
                structlog.testing.capture_logs() as logs:
            client.alerts.SubmitAlert(_alert("rate-limited"))
            api.wait_for(1)  # answered 429: retried in a second
            role.refuse()
            # the retry came due (1 s) and was put off: the store was tried three times (1 s each)
            wait_until(lambda: sum(e["event"] == "sender_waiting_for_store" for e in logs) >= 3, timeout=20)
            assert len(api.requests) == 1
            role.admit()
            wait_until(lambda: len(engine.notifications(status="delivered")[0]) == 1, timeout=20)
            assert _status(engine, "sender:slack:0").restarts == 0
        assert len(api.requests) == 2 and len(slack.roots()) == 1


# -- the lock: one server per store ---------------------------------------------------------
def test_a_lone_server_whose_lock_session_ends_takes_the_lock_again_and_keeps_the_store(role):
    opened = open_store(state(role.url), {})
    retaken, lost = threading.Event(), threading.Event()
    opened.lock.watch(lambda reason: retaken.set(), lambda reason: lost.set())
    try:
        role.cut()
        assert retaken.wait(10) and not lost.is_set()
        with pytest.raises(StoreInUse, match="in use by another server"):
            open_store(state(role.url), {})
    finally:
        opened.store.close()
        opened.lock.release()


def test_a_server_whose_lock_another_server_took_meanwhile_exits_4_saying_so(tmp_path, role):
    config = postgres.server_config(tmp_path / "c.toml", role.url)
    server = ServerProcess(config)
    try:
        server.start()
        role.refuse()  # the lock's session ends, and the server cannot take the lock again yet
        with postgres.admin() as other:  # another server takes the store meanwhile
            other.execute(f'SET search_path = "{role.name}"')
            assert other.execute("SELECT pg_try_advisory_lock(%s, %s)", lock_keys(other, "server")).fetchone()[0]
            role.admit()
            assert server.wait(timeout=20) == 4
    finally:
        server.stop()
    output = "".join(server.output)
    assert "store_lock_lost" in output and "another server took the store" in output
    assert "Traceback" not in output


def _alert(title: str) -> alerts_pb2.AlertRequest:
    return alerts_pb2.AlertRequest(alert_id=title, title=title, source="outage-test", severity=2, type=1)


SLACK_TOKEN = "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"


def _status(engine, actor: str):
    return next(status for status in engine.actor_statuses() if status.name == actor)


def _works(call) -> bool:
    try:
        call()
    except (StoreUnavailable, grpc.RpcError):
        return False
    return True


def test_a_replicas_heartbeat_logs_a_row_of_failed_beats_once_and_the_first_beat_after_them(role, quick_outages):
    store = PostgresStore(role.url, shared=True)
    heartbeat = Heartbeat(store, "replica-1", 0.3, lambda: Report([], {}))
    try:
        with structlog.testing.capture_logs() as logs:
            heartbeat.start()
            role.refuse()

            def failed() -> list[str]:
                return [e["log_level"] for e in logs if e["event"] == "replica_heartbeat_failed"]
            wait_until(lambda: len(failed()) >= 3)
            role.admit()
            wait_until(lambda: any(e["event"] == "replica_heartbeat_back" for e in logs))
        assert failed()[:3] == ["warning", "debug", "debug"]
    finally:
        heartbeat.stop()
        store.close()
