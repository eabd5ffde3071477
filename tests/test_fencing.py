"""A sender that does not stop in time is fenced: it may still be inside a send beside its
replacement, but nothing it does afterwards takes effect, and GetStats shows it."""
from __future__ import annotations

import threading

import structlog.testing

from protos import admin_pb2, admin_pb2_grpc, alerts_pb2, notifications_pb2
from tests.support.http_receiver import HttpReceiver, Recorded, Reply
from tests.support.server import TIMEOUT, make_settings, running
from tests.support.waiting import wait_until

SENDER = "sender:webhook:0"


class HoldFirst:
    """Holds the first request until ``release`` is set; answers the others at once. Every
    request is noted in ``arrived`` as it arrives (the receiver records it only once answered)."""

    def __init__(self) -> None:
        self.arrived: list[Recorded] = []
        self.release = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, request: Recorded) -> Reply:
        with self._lock:
            self.arrived.append(request)
            first = len(self.arrived) == 1
        if first:
            self.release.wait(TIMEOUT)
        return Reply()

    def ids(self) -> list[str]:
        with self._lock:
            return [r.headers["webhook-id"] for r in self.arrived]


def alert(n: int) -> alerts_pb2.AlertRequest:
    return alerts_pb2.AlertRequest(alert_id=f"a-{n}", source="sentinel", title=f"alert {n}", severity=2, type=2)


def test_a_sender_stuck_in_a_send_is_fenced_and_its_replacement_delivers(tmp_path):
    held = HoldFirst()
    with HttpReceiver(held) as rx:
        settings = make_settings(tmp_path, server={"admin_enabled": True},
                                 notifications={"webhook_enabled": True, "worker_threads": 1,
                                                "default_webhook_url": rx.url + "/hook",
                                                # sends in the sender's own thread, so it is stuck in one
                                                # (with a worker process it stops at once: its worker
                                                # is ended, see test_post_worker.py)
                                                "webhook_worker_processes": False})
        with running(settings) as (engine, api, client), structlog.testing.capture_logs() as logs:
            engine.fencing.stop_timeout = 0.2
            client.alerts.SubmitAlert(alert(1), timeout=TIMEOUT)
            wait_until(lambda: len(held.arrived) == 1)
            zombie = engine.directory.get(SENDER)
            client.alerts.SubmitAlert(alert(2), timeout=TIMEOUT)  # waits in the stuck sender's mailbox
            wait_until(lambda: engine.stats().in_flight.get("webhook") == (2, 0))

            # its pool is stopped from outside (admin STOP): stopping the stuck sender times out, so
            # it is fenced and left behind; the top supervisor restarts the pool with a new sender
            engine.directory.get("pool:webhook").stop(block=True, timeout=TIMEOUT)
            wait_until(lambda: len(held.arrived) == 3)
            first, *again = held.ids()
            wait_until(lambda: sum(c.counts.get("delivered", 0) for c in engine.store.channel_counts()) == 2)

            held.release.set()  # the fenced sender's send returns now
            wait_until(lambda: not zombie.is_alive())
            stats = client.notifications.GetStats(notifications_pb2.StatsRequest(), timeout=TIMEOUT)
            actors = admin_pb2_grpc.AdminServiceStub(client.channel).ListActors(admin_pb2.ListActorsRequest(),
                                                                                  timeout=TIMEOUT)
            attempts = {nid: engine.notification(nid)[1] for nid in again}

    assert first in again and len(set(again)) == 2  # the replacement sent both, the held one included
    assert len(held.arrived) == 3  # the fenced sender did not send the delivery queued behind its stuck one
    assert all(len(made) == 1 for made in attempts.values())
    assert not [e for e in logs if e["event"] == "attempt_not_recorded"]  # it did not even try to record
    assert [e for e in logs if e["event"] == "actor_fenced" and e["actor"] == SENDER]
    assert next(a for a in stats.actors if a.name == SENDER).fenced == 1
    assert next(a for a in actors.actors if a.name == SENDER).fenced == 1
