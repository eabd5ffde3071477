"""The routing tree and the explain record: Alertmanager's route cases (its dispatch/route_test.go
and the example of its configuration docs, restated in our TOML), nesting and ``continue``,
incident fields, channel floors, the refusals of bad trees, and ``imctl routes test``."""
from __future__ import annotations

import json
import subprocess
import sys
import tomllib

import pytest

from actors.cli import main as imctl
from actors.domain import routes as routes_module
from actors.domain import routing as routing_module
from actors.domain.config import ConfigError, settings_from_mapping
from actors.domain.models import Incident, IncidentState, IncidentType, Severity, utc_now
from actors.domain.routing import Decision, Receiver, Routing, Verdict, decisions_in, routing_warnings
from tests.support.process import ROOT

#: Alertmanager's TestRouteMatchers tree: `match`, `match_re` and `matchers` forms all in one.
ALERTMANAGER_TREE = """
[receivers.notify-def]
[receivers.notify-A]
[receivers.notify-testing]
[receivers.notify-productionA]
[receivers.notify-productionB]
[receivers.notify-BC]

[route]
receiver = "notify-def"

[[route.routes]]
matchers = ['{owner="team-A"}', '{level!="critical"}']
receiver = "notify-A"

  [[route.routes.routes]]
  matchers = ['{env="testing"}', '{baz!~".*quux"}']
  receiver = "notify-testing"

  [[route.routes.routes]]
  matchers = ['{env="production"}']
  receiver = "notify-productionA"
  continue = true

  [[route.routes.routes]]
  matchers = ['env=~"produ.*"', 'job=~".*"']
  receiver = "notify-productionB"

[[route.routes]]
matchers = ['owner=~"team-(B|C)"']
receiver = "notify-BC"

[[route.routes]]
matchers = ['group_by="role"']

  [[route.routes.routes]]
  matchers = ['{env="testing"}']
  receiver = "notify-testing"

    [[route.routes.routes.routes]]
    matchers = ['wait="long"']
"""

#: The example of Alertmanager's configuration docs (`service` is our affected-services field).
DOCS_TREE = """
[receivers.default-receiver]
[receivers.database-pager]
[receivers.frontend-pager]
[receivers.dev-pager]
[receivers.on-call-pager]

[route]
receiver = "default-receiver"

[[route.routes]]
receiver = "database-pager"
matchers = ['service=~"mysql|cassandra"']

[[route.routes]]
receiver = "frontend-pager"
matchers = ['team="frontend"']

[[route.routes]]
receiver = "dev-pager"
matchers = ['service="inhouse-service"']
continue = true

[[route.routes]]
receiver = "on-call-pager"
matchers = ['service="inhouse-service"']
"""


def routing_of(text: str) -> Routing:
    return Routing.of(settings_from_mapping(tomllib.loads(text)))


def incident(severity: Severity = Severity.P2, labels: dict[str, str] | None = None, services: tuple[str, ...] = (),
             state: IncidentState = IncidentState.DETECTED, type: IncidentType = IncidentType.APPLICATION,
             source: str = "sentinel") -> Incident:
    now = utc_now()
    return Incident("i-1", "fp", "title", "", severity, type, state, source, now, now, now,
                    labels=labels or {}, affected_services=services)


def matched(routing: Routing, target: Incident) -> tuple[list[str], list[str]]:
    """(receivers, route paths) the incident ends at, in Alertmanager's order."""
    routes = routing.tree.match(routing.tree.facts(target))
    return [name for route in routes for name in route.receivers], [route.path for route in routes]


@pytest.mark.parametrize("labels, receivers, paths", [
    ({"owner": "team-A"}, ["notify-A"], ["root/0"]),
    ({"owner": "team-A", "env": "unset"}, ["notify-A"], ["root/0"]),
    ({"owner": "team-C"}, ["notify-BC"], ["root/1"]),
    ({"owner": "team-A", "env": "testing"}, ["notify-testing"], ["root/0/0"]),
    ({"owner": "team-A", "env": "production"}, ["notify-productionA", "notify-productionB"], ["root/0/1", "root/0/2"]),
    ({"group_by": "role"}, ["notify-def"], ["root/2"]),
    ({"env": "testing", "group_by": "role"}, ["notify-testing"], ["root/2/0"]),
    ({"env": "testing", "group_by": "role", "wait": "long"}, ["notify-testing"], ["root/2/0/0"]),
    ({"owner": "team-A", "level": "critical"}, ["notify-def"], ["root"]),  # a != that fails
    ({}, ["notify-def"], ["root"]),
])
def test_alertmanagers_route_cases_end_at_the_same_receivers(labels, receivers, paths):
    assert matched(routing_of(ALERTMANAGER_TREE), incident(labels=labels)) == (receivers, paths)


def test_a_route_without_receiver_inherits_its_parents_and_the_walk_is_depth_first():
    walked = [route.receivers for route in routing_of(ALERTMANAGER_TREE).tree.root.walk()]
    assert walked == [("notify-def",), ("notify-A",), ("notify-testing",), ("notify-productionA",),
                      ("notify-productionB",), ("notify-BC",), ("notify-def",), ("notify-testing",),
                      ("notify-testing",)]


@pytest.mark.parametrize("services, labels, receivers", [
    (("mysql",), {}, ["database-pager"]),
    (("api", "cassandra"), {}, ["database-pager"]),  # one of the services matching is enough
    ((), {"team": "frontend"}, ["frontend-pager"]),
    (("mysql",), {"team": "frontend"}, ["database-pager"]),  # the first match ends the search
    (("inhouse-service",), {}, ["dev-pager", "on-call-pager"]),  # continue = true goes on
    (("mysql-replica",), {}, ["default-receiver"]),  # regexes are anchored
    ((), {}, ["default-receiver"]),
])
def test_the_example_of_alertmanagers_docs_routes_as_documented(services, labels, receivers):
    assert matched(routing_of(DOCS_TREE), incident(services=services, labels=labels))[0] == receivers


FIELDS_TREE = """
[receivers.p0]
[receivers.db]
[receivers.security]
[receivers.closing]
[receivers.not-db]
[receivers.quiet]

[route]
receiver = "default"

[[route.routes]]
name = "closing"
matchers = ['state=~"resolved|closed"']
receiver = "closing"

[[route.routes]]
name = "security"
matchers = ['type="security"', 'source!~"scanner-.*"']
receiver = "security"

[[route.routes]]
name = "p0"
matchers = ['severity="P0"']
receiver = "p0"
continue = true

[[route.routes]]
name = "db"
matchers = ['service="db"']
receivers = ["db", "quiet"]

[[route.routes]]
name = "not-db"
matchers = ['service!="db"', 'service!=""']
receiver = "not-db"
"""


@pytest.mark.parametrize("target, receivers", [
    (incident(state=IncidentState.RESOLVED, severity=Severity.P0), ["closing"]),
    (incident(type=IncidentType.SECURITY), ["security"]),
    (incident(type=IncidentType.SECURITY, source="scanner-7"), ["default"]),
    (incident(severity=Severity.P0, services=("db",)), ["p0", "db", "quiet"]),
    (incident(severity=Severity.P1, services=("web", "db")), ["db", "quiet"]),
    (incident(services=("web",)), ["not-db"]),  # != holds when no service is db
    (incident(), ["default"]),  # no services: the one value is "", so service!="" fails
])
def test_severity_type_state_source_and_services_route_as_fields(target, receivers):
    assert matched(routing_of(FIELDS_TREE), target)[0] == receivers


#: Many routes under one parent, tested for given values of one field or another: the parent
#: tries only those that can match (a dispatch), and must end where trying each would.
WIDE_TREE = "[route]\nreceiver = \"default\"\n" + "".join(
    f"[[route.routes]]\nname = \"r{n}\"\nmatchers = [{matchers}]\ncontinue = {continues}\n"
    for n, (matchers, continues) in enumerate([
        ("'service=\"db\"'", "true"), ("'service=\"web\"', 'team=\"a\"'", "false"),
        ("'service=~\"ca.*\"'", "false"), ("'severity=~\"P0|P1\"'", "true"), ("'service=\"db\"', 'severity=\"P0\"'", "false"),
        ("'service=\"\"'", "false"), ("'team=\"a\"'", "false"), ("'service=\"web\"'", "true"),
        ("'service=\"api\"'", "false"), ("'service!=\"db\"'", "false")]))


@pytest.mark.parametrize("services", [(), ("db",), ("web",), ("cache",), ("api",), ("db", "web"), ("web", "api"),
                                      ("db", "cache", "x"), ("x",)])
@pytest.mark.parametrize("severity", [Severity.P0, Severity.P2])
@pytest.mark.parametrize("team", ["a", "b"])
def test_a_parent_of_many_routes_tries_only_those_that_can_match_and_ends_where_trying_all_would(
        monkeypatch, services, severity, team):
    wide = routing_of(WIDE_TREE)
    assert wide.tree.root.dispatch is not None
    monkeypatch.setattr(routes_module, "DISPATCH_AT", 1000)
    narrow = routing_of(WIDE_TREE)
    assert narrow.tree.root.dispatch is None
    target = incident(severity, labels={"team": team}, services=services)
    assert matched(wide, target) == matched(narrow, target)


DESTINATIONS = """
[notifications]
webhook_enabled = true
default_webhook_url = "http://127.0.0.1:9/default"
pagerduty_enabled = true
[notifications.pagerduty]
min_severity = "P1"

[receivers.team-db.webhook]
url = "http://127.0.0.1:9/db"
[receivers.team-db.pagerduty]
integration_key_env = "DB_PD_KEY"
[receivers.silent]
"""


def test_every_destination_gets_a_decision_the_route_that_reached_it_or_why_not():
    routing = routing_of(DESTINATIONS + """
[route]
receiver = "default"
[[route.routes]]
name = "team-db"
matchers = ['service="db"']
receiver = "team-db"
""")
    assert routing.destinations == (Receiver("webhook", "default"), Receiver("webhook", "team-db"),
                                    Receiver("pagerduty", "team-db", Severity.P1))
    urgent = routing.route(incident(Severity.P0, services=("db",)))
    assert urgent.decisions == (Decision("webhook", "default", Verdict.NO_ROUTE),
                                Decision("webhook", "team-db", Verdict.ROUTED, "root/team-db"),
                                Decision("pagerduty", "team-db", Verdict.ROUTED, "root/team-db"))
    assert urgent.owed == routing.destinations[1:]
    minor = routing.route(incident(Severity.P3, services=("db",)))
    assert minor.owed == (Receiver("webhook", "team-db"),)
    assert minor.decisions[2] == Decision("pagerduty", "team-db", Verdict.BELOW_MIN_SEVERITY, "root/team-db", "P1")
    assert minor.decisions[2].reason == ("route root/team-db matched, but the incident is less severe than "
                                         "[notifications.pagerduty] min_severity P1")
    assert [d.reason for d in minor.decisions[:2]] == ["no route matched", "route root/team-db"]
    assert decisions_in(minor.record) == minor.decisions  # what the store keeps reads back the same


def test_without_routes_every_destination_hears_everything_its_channel_floor_admits_as_before():
    routing = routing_of(DESTINATIONS)
    for severity in Severity:
        routed = routing.route(incident(severity))
        assert routed.owed == tuple(d for d in routing.destinations if severity <= d.min_severity)
        assert {d.route for d in routed.decisions} == {"root"}


def test_a_configuration_without_destinations_routes_nothing_and_records_nothing():
    routed = routing_of("").route(incident(Severity.P0))
    assert (routed.owed, routed.decisions, routed.record) == ((), (), "")


def test_answers_are_cached_by_what_the_tree_reads_and_the_cache_is_bounded(monkeypatch):
    routing = routing_of(FIELDS_TREE)
    assert routing.reads == ("severity", "state", "type", "source", "service")
    first = routing.route(incident(services=("db",), labels={"team": "a"}))
    assert routing.route(incident(services=("db",), labels={"team": "b"})) is first  # labels are not read
    assert routing.route(incident(services=("web",))) is not first
    monkeypatch.setattr(routing_module, "CACHED", 3)
    for n in range(10):
        routing.route(incident(source=f"s{n}"))
    assert len(routing._by_facts) == 3


@pytest.mark.parametrize("route, key, problem", [
    ("[[route.routes]]\nmatchers = ['team=\"x\"']\nreceiver = \"nobody\"",
     "route.routes[0].receiver", "route 'root/0' names receiver 'nobody', which is not defined"),
    ("[[route.routes]]\nmatchers = ['team=~\"[x\"']", "route.routes[0].matchers[0]", "bad regular expression"),
    ("[[route.routes]]\nmatchers = ['team']", "route.routes[0].matchers[0]", "not a matcher"),
    ("[[route.routes]]\nmatchers = ['severity=\"p0\"']", "route.routes[0].matchers[0]", "'p0' is not a severity"),
    ("[[route.routes]]\nname = \"all\"\n[[route.routes]]\nname = \"late\"\nmatchers = ['team=\"x\"']",
     "route.routes[1]", "route 'root/late' can never be reached: the route before it, 'root/all'"),
    ("[[route.routes]]\nmatchers = ['severity=~\"P0|P1\"']\n[[route.routes]]\nmatchers = ['severity=\"P0\"']",
     "route.routes[1]", "can never be reached"),
    ("[[route.routes]]\nmatchers = ['team=\"x\"']\n[[route.routes]]\nmatchers = ['team=\"x\"', 'env=\"y\"']",
     "route.routes[1]", "can never be reached"),
    ("[[route.routes]]\nmatchers = ['severity=\"P0\"', 'severity=\"P1\"']",
     "route.routes[0]", "no severity satisfies"),
    ("[[route.routes]]\nmatchers = ['severity=\"P0\"']\n[[route.routes.routes]]\nmatchers = ['severity=~\"P[1-4]\"']",
     "route.routes[0].routes[0]", "route 'root/0/0' can never match"),
    ("[[route.routes]]\nmatchers = ['state!~\".*\"']", "route.routes[0]", "no state satisfies"),
    ("[[route.routes]]\nmatchers = ['source=\"a\"', 'source!=\"a\"']", "route.routes[0]", "source cannot be 'a'"),
    ("[[route.routes]]\nmatchers = ['service=\"db\"', 'service!~\"d.\"']", "route.routes[0]", "service cannot be"),
    ("[[route.routes]]\nname = \"a/b\"", "route.routes[0].name", "one segment of the route's path"),
    ("[[route.routes]]\nname = \"x\"\n[[route.routes]]\nname = \"x\"\ncontinue = true", "route.routes[1].name",
     "is called 'x' too"),
    ("[[route.routes]]\nreceiver = \"default\"\nreceivers = [\"default\"]", "route.routes[0].receivers", "not both"),
    ("matchers = ['team=\"x\"']", "route.matchers", "the root route matches every incident"),
    ("continue = true", "route.continue", "no siblings"),
])
def test_a_bad_tree_is_refused_naming_the_route(route, key, problem):
    with pytest.raises(ConfigError) as refused:
        routing_of(f'[route]\nreceiver = "default"\n{route}\n')
    assert refused.value.key == key and problem in refused.value.reason


@pytest.mark.parametrize("route", [
    "[[route.routes]]\nmatchers = ['service=\"db\"', 'service=\"cache\"']",  # services are several
    "[[route.routes]]\nmatchers = ['team=\"x\"']\ncontinue = true\n[[route.routes]]\nmatchers = ['team=\"x\"']",
    "[[route.routes]]\nmatchers = ['severity=\"P0\"']\n[[route.routes]]\nmatchers = ['severity=~\"P0|P1\"']",
])
def test_trees_that_only_look_alike_are_accepted(route):
    routing_of(f'[route]\nreceiver = "default"\n{route}\n')


def test_the_root_needs_a_receiver():
    with pytest.raises(ConfigError) as refused:
        routing_of("[route]\n")
    assert refused.value.key == "route.receiver"


@pytest.mark.parametrize("receivers, key, problem", [
    ('[receivers.default.webhook]\nurl = "http://x/"', "receivers.default", "give this one another name"),
    ('[receivers."a b"]', "receivers.a b", "a receiver's name"),
    ('[receivers.x.email]\nto = ["a@example.com"]', "receivers.x.email", "needs [notifications] email_enabled"),
    ('[receivers.x.webhook]\nsecret_env = "S"', "receivers.x.webhook.url", "required"),
    ('[receivers.x.slack]\nwebhook_env = "A"\nchannel = "#b"', "receivers.x.slack", "one of them"),
    ('[receivers.x.slack]\nchannel = "#b"', "receivers.x.slack.channel", "slack_bot_token_env"),
    ('[receivers.x.pagerduty]', "receivers.x.pagerduty.integration_key_env", "required"),
])
def test_a_bad_receiver_is_refused_naming_its_key(receivers, key, problem):
    enabled = "[notifications]\nwebhook_enabled = true\nslack_enabled = true\npagerduty_enabled = true\n" \
              'slack_webhook_env = "H"\npagerduty_integration_key_env = "K"\n'
    with pytest.raises(ConfigError) as refused:
        routing_of(enabled + receivers)
    assert refused.value.key == key and problem in refused.value.reason


def test_receivers_of_a_channel_stand_in_for_its_notifications_destination():
    settings = settings_from_mapping(tomllib.loads(
        '[notifications]\nslack_enabled = true\npagerduty_enabled = true\n'
        '[receivers.ops.slack]\nwebhook_env = "OPS_SLACK"\n'
        '[receivers.ops.pagerduty]\nintegration_key_env = "OPS_PD"\n'))
    assert Routing.of(settings).destinations == (Receiver("slack", "ops"), Receiver("pagerduty", "ops"))


def test_a_receiver_with_destinations_that_no_route_names_is_warned_about():
    settings = settings_from_mapping(tomllib.loads(DESTINATIONS + '[route]\nreceiver = "silent"\n'))
    assert routing_warnings(settings) == [
        "receiver 'default' is named by no route, so it hears about nothing (it is the [notifications] destinations)",
        "receiver 'team-db' is named by no route, so it hears about nothing"]
    assert routing_warnings(settings_from_mapping(tomllib.loads(DESTINATIONS))) == []


def check_config(tmp_path, text: str) -> subprocess.CompletedProcess:
    path = tmp_path / "config.toml"
    path.write_text(f'[state]\npath = "{tmp_path / "store.db"}"\n{text}')
    return subprocess.run([sys.executable, str(ROOT / "server.py"), "--config", str(path), "--check-config"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


@pytest.mark.parametrize("route, named", [
    ('[[route.routes]]\nname = "team-db"\nreceiver = "team-dbb"', "route.routes[0].receiver: route 'root/team-db' "
                                                                  "names receiver 'team-dbb', which is not defined"),
    ('[[route.routes]]\nname = "team-db"\nmatchers = [\'service=~"db("\']',
     "route.routes[0].matchers[0]: route 'root/team-db': bad regular expression"),
    ('[[route.routes]]\nname = "all"\n[[route.routes]]\nname = "team-db"\nmatchers = [\'service="db"\']',
     "route.routes[1]: route 'root/team-db' can never be reached"),
])
def test_check_config_rejects_an_unknown_receiver_a_bad_regex_and_an_unreachable_route(tmp_path, route, named):
    result = check_config(tmp_path, f'[receivers.team-db]\n[route]\nreceiver = "team-db"\n{route}\n')
    assert result.returncode == 2 and named in result.stderr, result.stderr


def test_check_config_warns_about_a_receiver_no_route_names(tmp_path):
    result = check_config(tmp_path, '[notifications]\nwebhook_enabled = true\n'
                                    '[receivers.db.webhook]\nurl = "http://127.0.0.1:9/db"\n'
                                    '[receivers.rest.webhook]\nurl = "http://127.0.0.1:9/rest"\n'
                                    '[route]\nreceiver = "rest"\n')
    assert result.returncode == 0, result.stderr
    assert "warning: receiver 'db' is named by no route, so it hears about nothing" in result.stderr


# -- imctl routes test ------------------------------------------------------------------------

@pytest.fixture
def config(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(DESTINATIONS + """
[route]
receiver = "default"
[[route.routes]]
name = "team-db"
matchers = ['service="db"', 'severity=~"P0|P1"']
receiver = "team-db"
continue = true
[[route.routes]]
name = "everyone"
matchers = ['type="security"']
receivers = ["default", "team-db"]
""")
    return str(path)


def test_imctl_routes_test_prints_the_receivers_and_each_destinations_decision_offline(config, capsys):
    # no server runs: --server points nowhere, and nothing is asked of it
    assert imctl(["--server", "127.0.0.1:1", "routes", "test", "--config", config, "severity=P0", "service=db",
                  "type=data"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "team-db"
    assert [line.split(None, 2) for line in lines[2:]] == [
        ["default", "webhook", "no route matched"], ["team-db", "webhook", "route root/team-db"],
        ["team-db", "pagerduty", "route root/team-db"]]


def test_imctl_routes_test_follows_continue_and_shows_floors(config, capsys):
    assert imctl(["--json", "routes", "test", "--config", config, "severity=P1", "service=db", "type=Security"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["receivers"] == ["team-db", "default"]
    assert shown["routes"] == ["root/team-db", "root/everyone"]
    assert [d["verdict"] for d in shown["decisions"]] == ["routed", "routed", "routed"]
    assert imctl(["--json", "routes", "test", "--config", config, "severity=P2", "type=security"]) == 0
    below = json.loads(capsys.readouterr().out)["decisions"][2]
    assert below["verdict"] == "below_min_severity" and "min_severity P1" in below["reason"]


def test_imctl_routes_test_verifies_the_receivers_it_is_told_to_expect(config, capsys):
    assert imctl(["routes", "test", "--config", config, "--verify-receivers", "team-db", "severity=P0",
                  "service=db", "type=data"]) == 0
    assert imctl(["routes", "test", "--config", config, "--verify-receivers", "default", "severity=P0",
                  "service=db", "type=data"]) == 1
    assert "expected receivers default, got team-db" in capsys.readouterr().err


@pytest.mark.parametrize("arguments, problem", [
    (["service=db"], "give the incident's severity"),
    (["severity=P7"], "severity='P7': not a severity; one of P0, P1, P2, P3, P4"),
    (["severity=P0", "state=open"], "state='open': not a state"),
])
def test_imctl_routes_test_refuses_a_missing_or_bad_field(config, capsys, arguments, problem):
    assert imctl(["routes", "test", "--config", config, *arguments]) == 2
    assert problem in capsys.readouterr().err


def test_imctl_routes_test_asks_for_the_type_only_when_routes_match_on_it(tmp_path, config, capsys):
    assert imctl(["routes", "test", "--config", config, "severity=P0"]) == 2  # the "everyone" route reads it
    assert "the routes match on type" in capsys.readouterr().err
    plain = tmp_path / "plain.toml"
    plain.write_text(DESTINATIONS)
    assert imctl(["routes", "test", "--config", str(plain), "severity=P0"]) == 0


def test_imctl_routes_test_names_the_key_of_a_bad_configuration(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[route]\nreceiver = "nobody"\n')
    assert imctl(["routes", "test", "--config", str(bad), "severity=P0"]) == 2
    assert "route.receiver: route 'root' names receiver 'nobody'" in capsys.readouterr().err
