"""GetStats in the Prometheus text exposition format (0.0.4), for node_exporter's textfile
collector: ``imctl notifications stats --format prometheus > DIR/incident_manager.prom.$$ &&
mv DIR/incident_manager.prom.$$ DIR/incident_manager.prom`` (the rename makes it atomic).

Every family gets its HELP and TYPE lines (even with no samples), label values are escaped
as the format requires, and no sample carries a timestamp (the textfile collector refuses them).
"""
from __future__ import annotations

from typing import Any, Iterable, NamedTuple

from protos import notifications_pb2

PREFIX = "incident_manager_"
STATUSES = ("queued", "in_flight", "retrying", "delivered", "skipped", "dead", "silenced", "inhibited")
QUANTILES = (("0.5", "latency_p50_ms"), ("0.99", "latency_p99_ms"))


class Family(NamedTuple):
    name: str
    kind: str  # gauge or counter
    help: str
    samples: list[tuple[dict[str, str], float]]


def exposition(stats: notifications_pb2.Stats) -> str:
    """The text to write to a ``.prom`` file; ends with a newline."""
    return "".join(_family_text(family) for family in families(stats))


def families(stats: notifications_pb2.Stats) -> list[Family]:
    return [
        Family(PREFIX + "notifications", "gauge",
               "Notifications by channel and delivery status (queued excludes those in flight).",
               [({"channel": c.channel, "status": status}, getattr(c, status))
                for c in stats.channels for status in STATUSES]),
        Family(PREFIX + "notification_latency_seconds", "gauge",
               "Time from an incident event to its delivery over the channel's recent deliveries, by quantile.",
               [({"channel": c.channel, "quantile": quantile}, getattr(c, field) / 1000.0)
                for c in stats.channels for quantile, field in QUANTILES]),
        Family(PREFIX + "actor_up", "gauge", "1 if the supervised actor is alive, else 0.",
               [(_actor_labels(a), 1 if a.alive else 0) for a in stats.actors]),
        Family(PREFIX + "actor_restarts_total", "counter",
               "Times the supervisor restarted the actor since the server started.",
               [(_actor_labels(a), a.restarts) for a in stats.actors]),
        Family(PREFIX + "store_up", "gauge",
               "1 if the server could read its store, 0 while the store's database cannot be reached "
               "(the notification counts are then missing).",
               [({}, 0 if stats.store.unavailable else 1)]),
    ]


def _family_text(family: Family) -> str:
    lines = [f"# HELP {family.name} {_escape_help(family.help)}", f"# TYPE {family.name} {family.kind}"]
    lines += [f"{family.name}{_labels(labels.items())} {_number(value)}" for labels, value in family.samples]
    return "\n".join(lines) + "\n"


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    """``{name="value",…}``, or nothing for a sample without labels."""
    text = ",".join(f'{name}="{_escape_label(value)}"' for name, value in pairs)
    return "{" + text + "}" if text else ""


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else repr(float(value))


def _actor_labels(actor: Any) -> dict[str, str]:
    """An actor's labels: its name, and its replica where replicas share a store."""
    return {"actor": actor.name, "replica": actor.replica} if actor.replica else {"actor": actor.name}
