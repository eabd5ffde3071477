#!/usr/bin/env python3
"""Embed the incident manager in a program: ``python examples/embedded.py``.

Starts a tiny webhook receiver on 127.0.0.1, then the whole engine in-process (threads, no
gRPC server) with a throw-away store and a webhook channel pointed at that receiver. It
submits one alert, resolves the incident it opened, waits for both webhook deliveries
(incident.detected and incident.resolved) to settle, prints what happened and stops.
Exits 0 when everything arrived, 1 otherwise. Uses no network beyond loopback.
"""
from __future__ import annotations

import json
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

# So the example also runs from a plain checkout, without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actors.embed import DeliverySettled, IncidentManager, IncidentType, Severity  # noqa: E402

TIMEOUT_SECS = 10.0
EXPECTED_EVENTS = ("incident.detected", "incident.resolved")


class WebhookReceiver:
    """Records the ``event_type`` of every JSON body POSTed to it and answers 200."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server naming)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.received.append({"webhook_id": self.headers.get("webhook-id"), **json.loads(body)})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep the example's output readable

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks/incidents"

    def __enter__(self) -> "WebhookReceiver":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="embedded-example-") as workdir, WebhookReceiver() as receiver:
        config = {
            "state": {"path": str(Path(workdir) / "incidents.db")},
            "observability": {"log_level": "warning"},  # engine logs go to stderr
            "notifications": {"webhook_enabled": True, "default_webhook_url": receiver.url,
                              "webhook_timeout_secs": 5, "retry_backoff_secs": 0.2},
        }
        with IncidentManager(config, configure_logs=True) as im:
            deliveries = im.subscribe(incidents=False, deliveries=True)

            result = im.submit_alert("High latency on checkout", "example-monitor", Severity.P1,
                                     IncidentType.PERFORMANCE, description="p99 above 2 s for 5 minutes",
                                     labels={"service": "checkout"}, affected_services=["checkout"])
            incident = im.get_incident(result.incident_id)
            print(f"incident {incident.id} opened: state={incident.state.name} "
                  f"severity={incident.severity.name} new={result.new_incident}")

            resolved = im.resolve(incident.id, "oncall@example.com", notes="rolled back the deploy",
                                  root_cause="bad deploy")
            print(f"incident {resolved.id} resolved: state={resolved.state.name} "
                  f"by={resolved.resolution.resolved_by if resolved.resolution else '?'}")

            settled: list[DeliverySettled] = []
            while len(settled) < len(EXPECTED_EVENTS):
                event = deliveries.get(timeout=TIMEOUT_SECS)
                if event is None:
                    print(f"timed out waiting for deliveries ({len(settled)} settled)", file=sys.stderr)
                    return 1
                assert isinstance(event, DeliverySettled)
                settled.append(event)
                print(f"delivery {event.delivery.event_type} -> {event.delivery.channel}/"
                      f"{event.delivery.destination}: {event.status} (HTTP {event.outcome.status_code})")
            deliveries.close()

            states = [entry.detail.get("to", "DETECTED") for entry in im.timeline(incident.id)
                      if entry.kind.value in ("created", "state_changed")]
            print(f"timeline states: {' -> '.join(states)}")
        print("engine stopped")

        got = [body["event_type"] for body in receiver.received]
        print(f"webhook receiver got {len(got)} requests: {', '.join(got)}")
        ok = (sorted(got) == sorted(EXPECTED_EVENTS)
              and all(e.status == "delivered" for e in settled)
              and all(body["incident"]["id"] == incident.id for body in receiver.received))
        print("OK" if ok else "UNEXPECTED RESULT")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
