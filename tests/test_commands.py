"""Both edges apply the same command rules (actors/domain/commands.py).

One table of inputs goes through the gRPC servicers (a real server on loopback, started by
the embedded manager with ``grpc=True``) and through the embedding API of that same
manager; every row must come out the same on both: accepted with the same stored values
(a blank actor or author becomes the edge's own name) or rejected with INVALID_ARGUMENT
naming the same field.
"""
from __future__ import annotations

from typing import Any, Callable

import grpc
import pytest

from actors.embed import IncidentManager, IncidentType, InvalidArgument, Severity
from protos import incidents_pb2
from tests.support.server import TIMEOUT, Client, client_for

EDGE_ACTOR = {"grpc": "api", "embed": "embedded"}
MAX_TEXT = 100


class Rejected(Exception):
    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


def grpc_call(call: Callable[..., Any], request: Any) -> Any:
    try:
        return call(request, timeout=TIMEOUT)
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
        raise Rejected(error.details().split(":")[0]) from None


def embed_call(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except InvalidArgument as error:
        raise Rejected(error.field) from None


# -- the two edges, each taking the same plain inputs -----------------------------------------
def via_grpc(client: Client, im: IncidentManager, command: str, incident_id: str, f: dict[str, Any]) -> dict:
    stub = client.incidents
    if command == "create":
        incident = grpc_call(stub.CreateIncident, incidents_pb2.CreateIncidentRequest(
            title=f["title"], severity=incidents_pb2.P2, type=incidents_pb2.DATA, source=f["source"],
            actor=f["actor"], description=f.get("description", "")))
        return {"source": incident.source, "actor": im.timeline(incident.id)[0].actor}
    if command == "update":
        grpc_call(stub.UpdateIncident, incidents_pb2.UpdateIncidentRequest(id=incident_id, actor=f["actor"],
                                                                          title=f["title"]))
        return {"actor": im.timeline(incident_id)[-1].actor}
    if command == "transition":
        grpc_call(stub.TransitionIncident, incidents_pb2.TransitionIncidentRequest(
            id=incident_id, to_state=incidents_pb2.TRIAGED, actor=f["actor"], note=f["note"]))
        return {"actor": im.timeline(incident_id)[-1].actor}
    if command == "resolve":
        incident = grpc_call(stub.ResolveIncident, incidents_pb2.ResolveIncidentRequest(
            id=incident_id, resolved_by=f["resolved_by"], method=incidents_pb2.MANUAL))
        return {"resolved_by": incident.resolution.resolved_by}
    entry = grpc_call(stub.AddNote, incidents_pb2.AddNoteRequest(id=incident_id, author=f["author"], text=f["text"]))
    return {"actor": entry.actor}


def via_embed(client: Client, im: IncidentManager, command: str, incident_id: str, f: dict[str, Any]) -> dict:
    if command == "create":
        incident = embed_call(lambda: im.create_incident(f["title"], "P2", "data", source=f["source"],
                                                         actor=f["actor"], description=f.get("description", "")))
        return {"source": incident.source, "actor": im.timeline(incident.id)[0].actor}
    if command == "update":
        embed_call(lambda: im.update_incident(incident_id, title=f["title"], actor=f["actor"]))
        return {"actor": im.timeline(incident_id)[-1].actor}
    if command == "transition":
        embed_call(lambda: im.transition(incident_id, "TRIAGED", f["actor"], f["note"]))
        return {"actor": im.timeline(incident_id)[-1].actor}
    if command == "resolve":
        incident = embed_call(lambda: im.resolve(incident_id, f["resolved_by"], "MANUAL"))
        return {"resolved_by": incident.resolution.resolved_by}
    return {"actor": embed_call(lambda: im.add_note(incident_id, f["author"], f["text"])).actor}


EDGE = "<edge>"  # stands for the edge's own name in an expected value

# command, inputs, expected values or the rejected field
TABLE: list[tuple[str, dict[str, Any], dict[str, str] | str]] = [
    ("create", {"title": "Disk full", "source": "cron", "actor": "ana"}, {"source": "cron", "actor": "ana"}),
    ("create", {"title": " Disk full ", "source": " cron ", "actor": "  "}, {"source": "cron", "actor": EDGE}),
    ("create", {"title": "Disk full", "source": "", "actor": "ana"}, "source"),
    ("create", {"title": "Disk full", "source": "   ", "actor": "ana"}, "source"),
    ("create", {"title": "", "source": "cron", "actor": "ana"}, "title"),
    ("create", {"title": "t", "source": "cron", "actor": "a" * 257}, "actor"),
    ("create", {"title": "t", "source": "cron", "actor": "ana", "description": "d" * (MAX_TEXT + 1)}, "description"),
    ("update", {"title": "New title", "actor": ""}, {"actor": EDGE}),
    ("update", {"title": "New title", "actor": "bo"}, {"actor": "bo"}),
    ("update", {"title": " ", "actor": "bo"}, "title"),
    ("transition", {"actor": "", "note": ""}, {"actor": EDGE}),
    ("transition", {"actor": "cy", "note": "looking"}, {"actor": "cy"}),
    ("transition", {"actor": "cy", "note": "n" * (MAX_TEXT + 1)}, "note"),
    ("resolve", {"resolved_by": "oncall"}, {"resolved_by": "oncall"}),
    ("resolve", {"resolved_by": ""}, "resolved_by"),
    ("resolve", {"resolved_by": "  "}, "resolved_by"),
    ("note", {"author": "", "text": "rolled back"}, {"actor": EDGE}),
    ("note", {"author": "dee", "text": "rolled back"}, {"actor": "dee"}),
    ("note", {"author": "dee", "text": " "}, "text"),
    ("note", {"author": "dee\x00", "text": "x"}, "author"),
]


def outcome(run: Callable[..., dict], client: Client, im: IncidentManager, command: str,
            inputs: dict[str, Any]) -> dict | str:
    """What the edge made of one row: the values it stored, or the field it rejected."""
    incident_id = im.create_incident("target", Severity.P3, IncidentType.DATA, source="test").id
    try:
        return run(client, im, command, incident_id, inputs)
    except Rejected as rejected:
        return rejected.field


@pytest.mark.parametrize("edge", ["grpc", "embed"])
def test_both_edges_apply_the_same_rules(tmp_path, edge):
    run = via_grpc if edge == "grpc" else via_embed
    with IncidentManager({"server": {"host": "127.0.0.1", "grpc_port": 0}, "state": {"path": str(tmp_path / "s.db")},
                          "processing": {"max_field_bytes": MAX_TEXT}}, grpc=True) as im:
        assert im.grpc_port is not None
        with client_for(im.grpc_port) as client:
            got = [outcome(run, client, im, command, inputs) for command, inputs, _ in TABLE]
    wanted = [expected if isinstance(expected, str) else
              {key: EDGE_ACTOR[edge] if value == EDGE else value for key, value in expected.items()}
              for _, _, expected in TABLE]
    assert [(row[0], row[1], g) for row, g in zip(TABLE, got)] == [(row[0], row[1], w) for row, w in zip(TABLE, wanted)]
