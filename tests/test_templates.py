"""Receivers' templates: what they render and see, escaping per channel, the channels' limits
after rendering, the sandbox, configuration errors, and each channel using them (loopback)."""
from __future__ import annotations

import json
import re
from dataclasses import replace
from types import SimpleNamespace

import pytest

from actors.channels.pagerduty import PagerDutyChannel
from actors.channels.slack import SlackApiChannel, SlackWebhookChannel
from actors.channels.webhook import build as build_webhook
from actors.domain.config import load_settings, settings_from_mapping
from actors.domain.errors import ConfigError
from actors.domain.models import Delivery, IncidentState, OutcomeKind, Severity
from actors.formatting import email as email_format
from actors.formatting import pagerduty as pagerduty_format
from actors.formatting import slack as slack_format
from actors.formatting.templates import (MAX_OUTPUT_CHARS, TemplateFailure, Templates, check_rendering,
                                         compile_receivers, compile_templates, preview, rendered_fields,
                                         sample_deliveries, slack_message, webhook_body)
from actors.formatting.webhook import render as default_webhook_body
from actors.cli import main as imctl_main
from protos import alerts_pb2, notifications_pb2
from tests.support.http_receiver import HttpReceiver
from tests.support.process import ROOT
from tests.support.slack_api import FakeSlack
from tests.support.server import TIMEOUT, make_settings, running
from tests.test_cli import engine_logs_kept_off_stdout  # noqa: F401 (autouse: imctl's output stays its own)
from tests.test_config import run_server
from tests.test_delivery import wait_for_status
from tests.test_webhook_channel import SECRET, verifies

FIELDS = {"webhook": ("body",), "slack": ("text", "blocks"), "email": ("subject", "text", "html"),
          "pagerduty": ("summary",)}


def target(channel: str, **templates: str) -> SimpleNamespace:
    """A receiver's table on ``channel`` giving ``templates`` (field → source) inline."""
    values = {f"{field}_template{suffix}": None for field in FIELDS[channel] for suffix in ("", "_file")}
    values.update({f"{field}_template": source for field, source in templates.items()})
    return SimpleNamespace(**values)


def compiled(channel: str, receiver: str = "team", **templates: str) -> Templates:
    result = compile_templates(f"receivers.{receiver}.{channel}", channel, target(channel, **templates))
    assert result is not None
    return result


def delivery(channel: str, title: str = "Sample", resolved: bool = False, **changes: object) -> Delivery:
    detected, done = sample_deliveries(channel, "team")
    chosen = done if resolved else detected
    return replace(chosen, incident=replace(chosen.incident, title=title, **changes))


# -- rendering and context ------------------------------------------------------------------

def test_a_template_sees_the_snapshot_the_event_and_who_it_is_for():
    source = ("{{ incident.id }}|{{ incident.severity }}|{{ incident.labels.team }}|{{ incident.affected_services[1] }}|"
              "{{ display.state }}|{{ display.type }}|{{ display.event }}|{{ display.short_id }}|{{ event_type }}|"
              "{{ notification_id }}|{{ receiver }}|{{ channel }}|{{ is_test }}|{{ occurred_at }}")
    text = compiled("pagerduty", summary=source).render("summary", delivery("pagerduty"))
    assert text == ("00000000-sample-incident|P1|web|db|Detected|Performance|Incident detected|00000000|"
                    "incident.detected|sample-detected|team|pagerduty|False|2024-01-15T14:32:00.000Z")


def test_the_resolution_is_seen_once_resolved():
    templates = compiled("email", text="{% if incident.resolution %}fixed by {{ incident.resolution.resolved_by }}"
                                       "{% else %}open{% endif %}")
    assert templates.render("text", delivery("email")) == "open"
    assert templates.render("text", delivery("email", resolved=True)) == "fixed by oncall@example.com"


def test_a_receiver_without_templates_compiles_to_nothing_and_keeps_the_built_in_webhook_body():
    assert compile_templates("receivers.team.webhook", "webhook", target("webhook")) is None
    channel = build_webhook(settings_from_mapping({"notifications": {
        "webhook_enabled": True, "default_webhook_url": "http://127.0.0.1:9/hook"}}).notifications, {})
    assert [endpoint.templates for _, endpoint in channel._endpoints.values()] == [None]


# -- escaping per channel -------------------------------------------------------------------

HOSTILE = 'Disk <!channel> & "quotes"\n<script>alert(1)</script>'


def test_slack_text_is_escaped_for_mrkdwn_unless_marked_safe():
    templates = compiled("slack", text="*{{ incident.title }}* {{ '<https://x.example|link>' | safe }}")
    text = templates.render("text", delivery("slack", HOSTILE))
    assert text == ("*Disk &lt;!channel&gt; &amp; \"quotes\"\n&lt;script&gt;alert(1)&lt;/script&gt;* "
                    "<https://x.example|link>")


def test_email_html_is_escaped_for_html_and_the_subject_and_text_are_plain():
    templates = compiled("email", subject="[{{ display.short_id }}] {{ incident.title }}",
                         text="{{ incident.title }}", html="<h1>{{ incident.title }}</h1>")
    fields = rendered_fields(templates, delivery("email", 'A <b> & "c"'))
    assert fields == {"subject": '[00000000] A <b> & "c"', "text": 'A <b> & "c"',
                      "html": "<h1>A &lt;b&gt; &amp; &#34;c&#34;</h1>"}


def test_webhook_values_are_json_string_escaped_and_whole_values_printed_with_tojson():
    templates = compiled("webhook", body='{"title": "{{ incident.title }}", "labels": {{ incident.labels | tojson }}, '
                                        '"count": {{ incident.alert_count }}}')
    body = json.loads(webhook_body(templates, delivery("webhook", HOSTILE)))
    assert body == {"title": HOSTILE, "labels": {"team": "web", "env": "prod"}, "count": 1}


def test_slack_blocks_values_are_mrkdwn_then_json_escaped():
    templates = compiled("slack", blocks='[{"type": "section", "text": {"type": "mrkdwn", "text": "{{ incident.title }}"}}]')
    message = slack_message(templates, delivery("slack", HOSTILE), {"text": "fallback"})
    assert message["blocks"] == [{"type": "section", "text": {
        "type": "mrkdwn", "text": "Disk &lt;!channel&gt; &amp; \"quotes\"\n&lt;script&gt;alert(1)&lt;/script&gt;"}}]
    assert message["text"] == "fallback"


@pytest.mark.parametrize("channel,field,source,why", [
    ("webhook", "body", '{"title": {{ incident.title }}}', "did not render valid JSON"),
    ("slack", "blocks", '{"type": "divider"}', "must render a JSON list of block objects"),
    ("email", "subject", "{{ incident.title }}\nBcc: x@evil.example", "line break"),
    ("pagerduty", "summary", "{{ '' }}", "empty"),
])
def test_what_a_channel_cannot_send_is_a_failure_naming_the_setting(channel, field, source, why):
    templates = compiled(channel, **{field: source})
    with pytest.raises(TemplateFailure) as failure:
        if (channel, field) == ("slack", "blocks"):
            slack_message(templates, delivery(channel), {})
        else:
            rendered_fields(templates, delivery(channel))
    assert failure.value.key == f"receivers.team.{channel}.{field}_template" and why in str(failure.value)


# -- the channels' limits after rendering ---------------------------------------------------

def test_slack_limits_apply_after_rendering():
    templates = compiled("slack", text="{{ incident.title * 50 }}", blocks=(
        '[{"type": "header", "text": {"type": "plain_text", "text": "{{ incident.title }}"}}'
        '{% for i in range(60) %}, {"type": "divider"}{% endfor %}]'))
    message = slack_message(templates, delivery("slack", "&" * 1000), {})
    assert len(message["text"]) <= slack_format.MAX_MESSAGE_TEXT_CHARS and message["text"].endswith("…")
    assert not message["text"].removesuffix("…").endswith(("&", "&a", "&am", "&amp"))  # never inside an entity
    assert len(message["blocks"]) == slack_format.MAX_BLOCKS
    assert len(message["blocks"][0]["text"]["text"]) == slack_format.MAX_HEADER_CHARS


def test_the_pagerduty_summary_is_cut_to_1024_characters_and_marked_for_a_test():
    templates = compiled("pagerduty", summary="{{ incident.title }}")
    sent = delivery("pagerduty", "x" * 5000)
    summary = rendered_fields(templates, sent)["summary"]
    event = pagerduty_format.render(sent, "k" * 32, summary_text=summary)
    assert len(event["payload"]["summary"]) == 1024 and event["payload"]["summary"].endswith("…")
    test_event = pagerduty_format.render(replace(sent, is_test=True), "k" * 32, summary_text="short")
    assert test_event["payload"]["summary"] == "[TEST] short"


def test_the_email_uses_the_rendered_parts_and_keeps_its_threading_and_test_mark():
    templates = compiled("email", subject="{{ display.severity }}: {{ incident.title }}",
                         text="Plain {{ incident.title }}", html="<p>{{ incident.title }}</p>")
    sent = replace(delivery("email", "Disk <full>"), is_test=True)
    message = email_format.render(sent, "im@example.com", None, ["ops@example.com"], rendered_fields(templates, sent))
    assert message["Subject"] == "[TEST] P1: Disk <full>"
    plain, html = (part.get_content() for part in message.iter_parts())
    assert plain == "Plain Disk <full>\n" and html == "<p>Disk &lt;full&gt;</p>\n"
    assert message["Message-ID"] == email_format.thread_for(sent, "example.com").message_id


# -- the sandbox ----------------------------------------------------------------------------

@pytest.mark.parametrize("source", [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ incident.__class__ }}",
    "{{ incident.labels.update({'x': 1}) }}",
    "{{ 'x' * 10000000 }}",
    "{{ 10 ** 100000 }}",
])
def test_the_sandbox_refuses_attribute_games_mutation_and_huge_values(source):
    templates = compiled("slack", text=source)
    with pytest.raises(TemplateFailure) as failure:
        templates.render("text", delivery("slack"))
    assert "SecurityError" in str(failure.value)


def test_an_unknown_name_fails_instead_of_printing_nothing():
    with pytest.raises(TemplateFailure, match="UndefinedError: 'dict object' has no attribute 'titel'"):
        compiled("slack", text="{{ incident.titel }}").render("text", delivery("slack"))


def test_output_beyond_the_bound_is_refused():
    templates = compiled("email", text="{% for i in range(100000) %}{{ incident.description }}{% endfor %}")
    with pytest.raises(TemplateFailure, match=f"more than {MAX_OUTPUT_CHARS}"):
        templates.render("text", delivery("email", description="d" * 20))


# -- configuration --------------------------------------------------------------------------

def receivers(**tables: dict) -> dict:
    return {"notifications": {"webhook_enabled": True, "slack_enabled": True},
            "receivers": {"team": {"webhook": {"url": "http://127.0.0.1:9/hook", **tables.get("webhook", {})},
                                   "slack": {"webhook_env": "TEAM_SLACK", **tables.get("slack", {})}}}}


def test_a_template_given_inline_and_in_a_file_is_refused_naming_the_key():
    with pytest.raises(ConfigError) as error:
        settings_from_mapping(receivers(slack={"text_template": "a", "text_template_file": "t.j2"}))
    assert error.value.key == "receivers.team.slack.text_template" and "not both" in str(error.value)


def test_templates_come_from_files_and_an_unreadable_one_is_named(tmp_path):
    (tmp_path / "body.json.j2").write_text('{"id": "{{ incident.id }}"}\n', encoding="utf-8")
    settings = settings_from_mapping(receivers(webhook={"body_template_file": str(tmp_path / "body.json.j2")}))
    templates = compile_receivers(settings.receivers)[("team", "webhook")]
    assert json.loads(webhook_body(templates, delivery("webhook"))) == {"id": "00000000-sample-incident"}
    missing = settings_from_mapping(receivers(webhook={"body_template_file": str(tmp_path / "none.j2")}))
    with pytest.raises(ConfigError) as error:
        compile_receivers(missing.receivers)
    assert error.value.key == "receivers.team.webhook.body_template_file" and "cannot read" in str(error.value)


def test_a_syntax_error_stops_the_build_naming_the_key_and_line():
    settings = settings_from_mapping(receivers(slack={"text_template": "ok\n{% if %}"}))
    with pytest.raises(ConfigError) as error:
        compile_receivers(settings.receivers)
    assert error.value.key == "receivers.team.slack.text_template" and "line 2" in str(error.value)


def test_a_field_the_channel_does_not_have_is_an_unknown_key():
    with pytest.raises(ConfigError) as error:
        settings_from_mapping(receivers(webhook={"summary_template": "x"}))
    assert error.value.key == "receivers.team.webhook.summary_template"


def test_checking_renders_against_a_resolved_sample_too_and_names_the_broken_field():
    settings = settings_from_mapping(receivers(slack={
        "text_template": "fine", "blocks_template": '[{% if incident.resolution %}{{ incident.resolution.note }}'
                                                    '{% endif %}]'}))
    with pytest.raises(ConfigError) as error:
        check_rendering(compile_receivers(settings.receivers))
    assert error.value.key == "receivers.team.slack.blocks_template"
    assert "incident.resolved" in str(error.value) and "note" in str(error.value)


def test_a_preview_shows_each_field_or_its_error():
    templates = compiled("slack", text="*{{ incident.title }}*", blocks="[{{ nope }}]")
    shown = preview(templates, delivery("slack", "<x>"))
    assert [(r.field, r.setting, r.text) for r in shown] == [
        ("text", "receivers.team.slack.text_template", "*&lt;x&gt;*"),
        ("blocks", "receivers.team.slack.blocks_template", "")]
    assert "'nope' is undefined" in shown[1].error


# -- the channels, on loopback --------------------------------------------------------------

def test_the_webhook_posts_and_signs_the_rendered_body_and_fails_a_broken_one_without_posting(monkeypatch):
    monkeypatch.setenv("TEAM_SECRET", SECRET)
    with HttpReceiver() as rx:
        settings = settings_from_mapping({"notifications": {"webhook_enabled": True, "webhook_worker_processes": False},
                                          "receivers": {"team": {"webhook": {
                                              "url": rx.url + "/hook", "secret_env": "TEAM_SECRET",
                                              "body_template": '{"text": "{{ incident.title }}"}'}},
                                              "broken": {"webhook": {"url": rx.url + "/broken",
                                                                     "body_template": "{{ incident.nope }}"}}}})
        channel = build_webhook(settings.notifications, {"TEAM_SECRET": SECRET}, settings.receivers)
        try:
            sent = channel.deliver(delivery("webhook", 'say "hi"'))
            broken = channel.deliver(replace(delivery("webhook"), destination="broken"))
        finally:
            channel.close()
        (request,) = rx.wait_for(1)
    assert sent.kind is OutcomeKind.DELIVERED and request.json() == {"text": 'say "hi"'} and verifies(request)
    assert broken.kind is OutcomeKind.FAILED and broken.detail.startswith(
        "template receivers.broken.webhook.body_template failed: UndefinedError")
    assert [r.path for r in rx.requests] == ["/hook"]
    assert default_webhook_body(delivery("webhook")) != request.body  # the template, not the built-in body


def test_slack_posts_the_rendered_text_with_the_built_in_blocks():
    with HttpReceiver() as rx:
        channel = SlackWebhookChannel(rx.url + "/services/T/B/x", 5.0, "team",
                                      compiled("slack", text="{{ display.emoji }} {{ incident.title }}"))
        try:
            outcome = channel.deliver(delivery("slack", "<!here> db down"))
        finally:
            channel.close()
        (request,) = rx.wait_for(1)
    assert outcome.kind is OutcomeKind.DELIVERED
    posted = request.json()
    assert posted["text"] == "🟠 &lt;!here&gt; db down"
    assert posted["blocks"][0]["type"] == "header" and posted["attachments"][0]["color"]


def test_pagerduty_fails_a_broken_summary_without_posting():
    with HttpReceiver() as rx:
        channel = PagerDutyChannel("k" * 32, rx.url + "/v2/enqueue", 5.0, "team",
                                   compiled("pagerduty", summary="{{ 1 // 0 }}"))
        try:
            outcome = channel.deliver(delivery("pagerduty"))
        finally:
            channel.close()
    assert outcome.kind is OutcomeKind.FAILED and "ZeroDivisionError" in outcome.detail and rx.requests == []


# -- end to end: a real gRPC server, loopback receivers ----------------------------------------

BODY_NEEDING_A_RUNBOOK_FOR_P0 = ('{% if incident.severity == "P0" %}{{ incident.labels.runbook }}{% endif %}'
                                 '{"title": "{{ incident.title }}", "event": "{{ event_type }}"}')


def templated_server_settings(tmp_path, hook_url: str):
    return make_settings(
        tmp_path, notifications={"webhook_enabled": True, "slack_enabled": True, "max_retries": 3,
                                 "retry_backoff_secs": 0.05, "slack": {"rate_per_sec": 100}},
        receivers={"team": {"webhook": {"url": hook_url, "body_template": BODY_NEEDING_A_RUNBOOK_FOR_P0}},
                   "chat": {"slack": {"webhook_env": "CHAT_SLACK", "text_template": "{{ display.emoji }} "
                                                                                    "{{ incident.title }}"}}})


def submit(client, alert_id: str, severity: int, title: str) -> str:
    return client.alerts.SubmitAlert(alerts_pb2.AlertRequest(alert_id=alert_id, source="sentinel", title=title,
                                                             severity=severity, type=5), timeout=TIMEOUT).incident_id


def test_a_template_failing_at_send_time_makes_that_notification_dead_with_the_reason(tmp_path, monkeypatch):
    with HttpReceiver() as hook, HttpReceiver() as slack:
        monkeypatch.setenv("CHAT_SLACK", slack.url + "/services/T/B/x")
        with running(templated_server_settings(tmp_path, hook.url + "/hook")) as (_, _, client):
            fine = submit(client, "a-1", 2, "cache <slow>")
            broken = submit(client, "a-2", 1, "db down")
            (posted,) = hook.wait_for(1)
            chat = slack.wait_for(2)
            dead = client.notifications.ListNotifications(notifications_pb2.ListNotificationsRequest(
                incident_id=broken, channel="webhook"), timeout=TIMEOUT).notifications
            detail = wait_for_status(client, dead[0].id, notifications_pb2.DEAD)
            stats = client.notifications.GetStats(notifications_pb2.StatsRequest(), timeout=TIMEOUT)
    assert posted.json() == {"title": "cache <slow>", "event": "incident.detected"}
    assert sorted(r.json()["text"] for r in chat) == ["🔴 db down", "🟠 cache &lt;slow&gt;"]
    assert detail.notification.attempts == 1  # failed for good: not retried
    assert detail.notification.last_error.startswith(
        "template receivers.team.webhook.body_template failed: UndefinedError") and "runbook" in \
        detail.notification.last_error
    assert all(actor.restarts == 0 for actor in stats.actors)  # no sender crashed
    assert fine != broken


def test_render_template_and_imctl_templates_render_preview_without_sending(tmp_path, monkeypatch, capsys):
    with HttpReceiver() as hook, HttpReceiver() as slack:
        monkeypatch.setenv("CHAT_SLACK", slack.url + "/services/T/B/x")
        with running(templated_server_settings(tmp_path, hook.url + "/hook")) as (engine, api, client):
            incident = submit(client, "a-1", 1, "db <down>")
            hook_answer = client.notifications.RenderTemplate(notifications_pb2.RenderTemplateRequest(
                receiver="team", incident_id=incident[:8], event_type="incident.resolved"), timeout=TIMEOUT)
            slack.wait_for(1)
            sent_before = len(slack.requests) + len(hook.requests)
            capsys.readouterr()
            code = imctl_main(["--server", f"127.0.0.1:{api.port}", "templates", "render", "--receiver", "chat",
                               "--incident", incident])
            shown = capsys.readouterr().out
            unknown = imctl_main(["--server", f"127.0.0.1:{api.port}", "templates", "render", "--receiver", "nobody",
                                  "--incident", incident])
            failing_code = imctl_main(["--server", f"127.0.0.1:{api.port}", "templates", "render", "--receiver",
                                       "team", "--incident", incident])
            failing = capsys.readouterr()
            sent_after = len(slack.requests) + len(hook.requests)
    (rendered,) = hook_answer.templates
    assert (rendered.channel, rendered.field, rendered.setting) == ("webhook", "body",
                                                                    "receivers.team.webhook.body_template")
    assert rendered.text == "" and "runbook" in rendered.error  # a P0 without a runbook label
    assert code == 0 and shown == "== slack text (receivers.chat.slack.text_template)\n🔴 db &lt;down&gt;\n"
    assert unknown == 1 and "there is no receiver 'nobody'" in failing.err
    assert failing_code == 1 and "error: UndefinedError" in failing.out
    assert sent_after == sent_before  # previews send nothing


def test_check_config_renders_every_template_and_names_a_broken_one(tmp_path):
    def config(html: str) -> str:
        path = tmp_path / "templated.toml"
        path.write_text(f"""
[state]
path = "{tmp_path / 'store.db'}"
[notifications]
email_enabled = true
smtp_server = "127.0.0.1"
email_from = "im@example.com"
webhook_enabled = true
[receivers.team.webhook]
url = "http://127.0.0.1:9/hook"
body_template = '{{"id": "{{{{ incident.id }}}}"}}'
[receivers.team.email]
to = ["ops@example.com"]
subject_template = "{{{{ display.short_id }}}}: {{{{ incident.title }}}}"
html_template = '{html}'
""")
        return str(path)
    good = run_server("--config", config("<p>{{ incident.title }}</p>"), "--check-config")
    broken = run_server("--config", config("<p>{{ incident.resolution.root_causes }}</p>"), "--check-config")
    assert good.returncode == 0, good.stderr
    assert broken.returncode == 2
    assert "receivers.team.email.html_template" in broken.stderr and "root_causes" in broken.stderr


def test_the_readme_example_is_the_example_file_and_renders_what_the_readme_shows(monkeypatch):
    readme = (ROOT / "README.md").read_text(encoding="utf-8").split("\n### Templates\n", 1)[1].split("\n## ", 1)[0]
    (example,) = re.findall(r"```toml\n(.*?)```", readme, flags=re.S)
    (console,) = re.findall(r"```console\n(.*?)```", readme, flags=re.S)
    config = ROOT / "examples" / "config"
    assert example in (config / "templates.toml").read_text(encoding="utf-8")
    monkeypatch.chdir(config)  # html_template_file is relative to the working directory
    compiled_example = compile_receivers(load_settings("templates.toml").receivers)
    check_rendering(compiled_example)
    disk_full = delivery("slack", "Disk full on db-1", severity=Severity.P0, labels={"env": "prod"})
    (shown,) = preview(compiled_example[("team-db", "slack")], replace(disk_full, destination="team-db"))
    assert console.strip().splitlines()[1:] == [f"== slack text ({shown.setting})", shown.text]


def test_slack_threads_use_the_templates_for_the_root_its_update_and_the_reply_and_a_failure_posts_nothing():
    slack = FakeSlack("xoxb-template-test")
    with HttpReceiver(slack) as rx:
        channel = SlackApiChannel("xoxb-template-test", "#incidents", rx.url + "/api", 5.0, "team",
                                  compiled("slack", text="{{ display.state }}: {{ incident.title }}"))
        broken = SlackApiChannel("xoxb-template-test", "#incidents", rx.url + "/api", 5.0, "team",
                                 compiled("slack", text="{{ incident.labels.runbook }}"))
        try:
            detected = delivery("slack", "db <down>")
            posted = channel.deliver(detected)
            investigating = replace(detected, notification_id="n-2", event_type="incident.investigating",
                                    incident=replace(detected.incident, state=IncidentState.INVESTIGATING),
                                    state=posted.state or {})
            followed = channel.deliver(investigating)
            failed = broken.deliver(investigating)
        finally:
            channel.close()
            broken.close()
        calls = len(rx.requests)
    assert posted.kind is followed.kind is OutcomeKind.DELIVERED
    (root,) = slack.roots()
    assert root.payload["text"] == "Investigating: db &lt;down&gt;"  # updated with the template
    assert [reply.payload["text"] for reply in slack.replies(root.ts)] == ["Investigating: db &lt;down&gt;"]
    assert failed.kind is OutcomeKind.FAILED and "receivers.team.slack.text_template" in failed.detail
    assert calls == 3  # post, update, reply: nothing for the failed one
