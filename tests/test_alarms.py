"""Alarm digests: each condition triggers, the same condition is not sent twice, and sending never breaks anything."""

from __future__ import annotations

import smtplib
from datetime import timedelta
from email.utils import format_datetime

import pytest
import requests
import responses
from django.core import mail
from django.utils import timezone

from accounting.models import Posting
from connector.alerts import record_reconcile_finding, send_alerts
from connector.models import AlertSettings, AlertState, Notification, WebhookEvent, X3Connection
from connector.reconcile import ReconcileResult, reconcile_all
from integrations.notify import post_text
from tests.conftest import order_json
from tests.fakes import FakeBigCommerce

HOOK = "https://chat.example.com/hooks/T000/B000/secret-part"
S = Posting.Status


@pytest.fixture
def now():
    return timezone.now()


@pytest.fixture
def recipients(tenant):
    return AlertSettings.objects.create(tenant=tenant, email_recipients="ops@example.com, books@example.com")


@pytest.fixture
def fresh_webhook(tenant):
    """A webhook just arrived, so the silence alarm stays quiet unless a test wants it."""
    return WebhookEvent.objects.create(
        tenant=tenant, delivery_key="k1", scope="store/order/created", body="{}"
    )


def park(
    tenant, order_id: int, status: str = S.NEEDS_ATTENTION, error: str = "X3 said: closed period"
) -> Posting:
    return Posting.objects.create(
        tenant=tenant, idempotency_key=f"order:{order_id}", order_id=order_id, status=status, last_error=error
    )


def test_one_digest_per_condition_change_not_per_run_and_not_per_order(
    tenant, recipients, fresh_webhook, now
):
    park(tenant, 250)
    park(tenant, 251)

    assert send_alerts(now) == "acme: sent"
    assert len(mail.outbox) == 1
    first = mail.outbox[0]
    assert first.to == ["ops@example.com", "books@example.com"]
    assert "2 postings need attention" in first.subject + first.body
    assert "order:250 (order 250): X3 said: closed period" in first.body

    # the same condition again: nothing sent
    assert send_alerts(now + timedelta(minutes=5)) == "acme: quiet"
    assert len(mail.outbox) == 1

    # one more parked posting: a new digest that names only the new one
    park(tenant, 252, error="Account 999 does not exist")
    send_alerts(now + timedelta(minutes=10))
    assert len(mail.outbox) == 2
    second = mail.outbox[1].body
    assert "3 postings need attention" in second
    assert "order:252" in second and "order:250" not in second

    # unchanged for longer than ALERT_RENOTIFY_HOURS: a reminder
    send_alerts(now + timedelta(hours=25))
    assert len(mail.outbox) == 3
    assert "STILL OPEN: 3 postings need attention" in mail.outbox[2].body

    # fixed: one "resolved" notice, then silence
    Posting.objects.filter(tenant=tenant).update(status=S.RETRY)
    send_alerts(now + timedelta(hours=25, minutes=5))
    assert len(mail.outbox) == 4
    assert "RESOLVED: 3 postings need attention" in mail.outbox[3].body
    send_alerts(now + timedelta(hours=25, minutes=10))
    assert len(mail.outbox) == 4
    assert Notification.objects.filter(outcome="sent", channel="email").count() == 4


def test_a_posting_that_leaves_and_comes_back_is_new_again(tenant, recipients, fresh_webhook, now):
    park(tenant, 250)
    park(tenant, 251)
    send_alerts(now)
    Posting.objects.filter(order_id=250).update(status=S.RETRY)
    send_alerts(now + timedelta(minutes=5))  # shrank: no mail
    assert len(mail.outbox) == 1
    Posting.objects.filter(order_id=250).update(status=S.NEEDS_ATTENTION)
    send_alerts(now + timedelta(minutes=10))
    assert len(mail.outbox) == 2
    assert "order:250" in mail.outbox[1].body


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (S.NEEDS_ATTENTION, "1 posting needs attention"),
        (S.NEEDS_MAPPING, "1 posting needs a channel mapping"),
        (S.NEEDS_REAUTH, "1 posting waits for Sage X3 re-authorization"),
    ],
)
def test_each_parked_status_raises_an_alarm(tenant, recipients, fresh_webhook, now, status, words):
    park(tenant, 250, status=status)
    send_alerts(now)
    assert words in mail.outbox[0].body
    assert AlertState.objects.get(tenant=tenant).condition == f"postings:{status}"


def test_nothing_to_report_sends_nothing(tenant, recipients, fresh_webhook, now):
    assert send_alerts(now) == "acme: quiet"
    assert mail.outbox == []
    assert not Notification.objects.exists()


def test_x3_circuit_open_longer_than_the_limit(tenant, recipients, fresh_webhook, now):
    from accounting.models import X3Circuit

    circuit = X3Circuit.objects.create(tenant=tenant, failures=3, opened_at=now - timedelta(minutes=10))
    send_alerts(now)
    assert mail.outbox == []  # open for 10 minutes: under ALERT_CIRCUIT_OPEN_MINUTES (30)
    X3Circuit.objects.filter(pk=circuit.pk).update(opened_at=now - timedelta(minutes=45))
    send_alerts(now)
    assert "Sage X3 unreachable for 45 minutes" in mail.outbox[0].body


def test_a_closed_circuit_raises_no_alarm(tenant, recipients, fresh_webhook, now):
    from accounting.models import X3Circuit

    X3Circuit.objects.create(tenant=tenant, failures=1, opened_at=None)
    send_alerts(now)
    assert mail.outbox == []


def _oauth(tenant, **fields):
    X3Connection.objects.filter(tenant=tenant).update(
        method=X3Connection.Method.GRAPHQL_OAUTH2, refresh_token="", **fields
    )
    x3 = X3Connection.objects.get(tenant=tenant)
    x3.refresh_token = "refresh-token-value"  # encrypted field: set through the model
    x3.save()


def test_refresh_token_expiring_within_the_warning_days(tenant, recipients, fresh_webhook, now):
    _oauth(tenant, refresh_token_expires_at=now + timedelta(days=10))
    send_alerts(now)
    assert mail.outbox == []
    send_alerts(now + timedelta(days=4))  # 6 days left
    assert "Sage X3 authorization expires in 6 days" in mail.outbox[0].body
    assert "Connect to Sage X3" in mail.outbox[0].body


def test_authorization_error_raises_an_alarm(tenant, recipients, fresh_webhook, now):
    _oauth(tenant, refresh_token_expires_at=now + timedelta(days=20), authorization_error="invalid_grant")
    send_alerts(now)
    assert "Sage X3 authorization must be renewed: invalid_grant" in mail.outbox[0].body


def test_reconciliation_finding_missed_orders_raises_an_alarm(tenant, recipients, fresh_webhook, monkeypatch):
    bc = FakeBigCommerce()
    modified = format_datetime(timezone.now() - timedelta(hours=1))
    bc.put_order(order_json(251, date_modified=modified))  # no webhook ever brought it
    monkeypatch.setattr("connector.clients.bigcommerce_client", lambda t: bc)
    monkeypatch.setattr("connector.tasks.enqueue_order_sync", lambda t, o: None)
    reconcile_all()

    send_alerts()
    body = mail.outbox[0].body
    assert "Reconciliation found 1 order that no webhook had brought" in body
    assert "/webhooks/bigcommerce/acme/" in body


def test_missed_orders_and_refunds_add_up_in_the_window(tenant, recipients, fresh_webhook):
    record_reconcile_finding(tenant, ReconcileResult(10, 2, 1, 0))
    record_reconcile_finding(tenant, ReconcileResult(10, 1, 0, 0))
    send_alerts()
    assert (
        "found 3 orders and 1 refund that no webhook had brought in the last 60 minutes"
        in mail.outbox[0].body
    )


def test_a_clean_reconciliation_records_nothing(tenant, recipients, fresh_webhook, now):
    record_reconcile_finding(tenant, ReconcileResult(5, 0, 0, 0))
    send_alerts(now)
    assert mail.outbox == []


def test_reactivated_hooks_raise_an_alarm_each_time(tenant, recipients, fresh_webhook):
    record_reconcile_finding(tenant, ReconcileResult(0, 0, 0, 2))
    send_alerts()
    assert "2 deactivated BigCommerce hooks, switched back on" in mail.outbox[0].body
    send_alerts()
    assert len(mail.outbox) == 1
    record_reconcile_finding(tenant, ReconcileResult(0, 0, 0, 1))
    send_alerts()
    assert len(mail.outbox) == 2


def test_no_webhook_for_the_configured_time(tenant, recipients):
    event = WebhookEvent.objects.create(
        tenant=tenant, delivery_key="k1", scope="store/order/created", body="{}"
    )
    now = event.received_at
    send_alerts(now + timedelta(hours=23))
    assert mail.outbox == []
    send_alerts(now + timedelta(hours=25))
    assert "No BigCommerce webhook for 25 hours" in mail.outbox[0].body


def test_silence_alarm_per_tenant_override(tenant, recipients):
    event = WebhookEvent.objects.create(
        tenant=tenant, delivery_key="k1", scope="store/order/created", body="{}"
    )
    now = event.received_at
    recipients.webhook_silence_hours = 2
    recipients.save()
    send_alerts(now + timedelta(hours=3))
    assert "No BigCommerce webhook for 3 hours" in mail.outbox[0].body
    recipients.webhook_silence_hours = 0  # a quiet store: never
    recipients.save()
    AlertState.objects.all().delete()
    send_alerts(now + timedelta(days=30))
    assert len(mail.outbox) == 1


def test_no_recipients_or_switched_off_sends_nothing(tenant, now):
    park(tenant, 250)
    assert send_alerts(now) == "acme: no recipients"
    AlertSettings.objects.create(tenant=tenant, email_recipients="ops@example.com", enabled=False)
    assert send_alerts(now) == "acme: off"
    assert mail.outbox == []


def test_alert_emails_setting_receives_every_tenant(tenant, fresh_webhook, now, settings):
    settings.CONNECTOR = {**settings.CONNECTOR, "ALERT_EMAILS": ["noc@example.com"]}
    park(tenant, 250)
    send_alerts(now)
    assert mail.outbox[0].to == ["noc@example.com"]


def test_links_to_the_admin_when_the_base_url_is_set(tenant, recipients, fresh_webhook, now, settings):
    settings.CONNECTOR = {**settings.CONNECTOR, "ALERT_LINK_BASE_URL": "https://connector.example.com/"}
    park(tenant, 250)
    send_alerts(now)
    assert (
        f"https://connector.example.com/admin/accounting/posting/?tenant__id__exact={tenant.pk}"
        "&status__exact=needs_attention"
    ) in mail.outbox[0].body


# --- channels and their failures ------------------------------------------------------------------------------------


@responses.activate
def test_chat_webhook_gets_the_digest_as_json_text(tenant, fresh_webhook, now):
    AlertSettings.objects.create(tenant=tenant, webhook_url=HOOK)
    responses.post(HOOK, body="ok")
    park(tenant, 250)
    assert send_alerts(now) == "acme: sent"
    sent = responses.calls[0].request
    assert sent.headers["Content-Type"] == "application/json"
    import json

    text = json.loads(sent.body)["text"]
    assert text.startswith("Acme Ltd: alarms (1 new)") and "order:250" in text
    row = Notification.objects.get()
    assert (row.channel, row.outcome, row.recipients) == ("webhook", "sent", "chat.example.com")


@responses.activate
@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ({"status": 500, "body": "oops"}, "HTTP 500: oops"),
        ({"body": requests.exceptions.ConnectTimeout("slow")}, "Connection to chat.example.com timed out"),
        ({"body": requests.exceptions.ReadTimeout("slow")}, "No response from chat.example.com in time"),
    ],
)
def test_a_failing_chat_webhook_is_recorded_and_tried_again_next_run(
    tenant, fresh_webhook, now, answer, error
):
    AlertSettings.objects.create(tenant=tenant, webhook_url=HOOK)
    responses.post(HOOK, **answer)
    park(tenant, 250)
    assert send_alerts(now) == "acme: failed"
    row = Notification.objects.get()
    assert row.outcome == "failed" and error in row.error
    assert "secret-part" not in row.error + row.recipients
    assert not AlertState.objects.exists()  # not marked as notified
    responses.replace(responses.POST, HOOK, body="ok")
    assert send_alerts(now + timedelta(minutes=5)) == "acme: sent"


@responses.activate
def test_notifier_outcomes():
    responses.post(HOOK, body="ok")
    assert post_text(HOOK, "hello").ok
    responses.replace(responses.POST, HOOK, status=500, body="down")
    result = post_text(HOOK, "hello")
    assert (result.ok, result.status_code, result.error) == (False, 500, "HTTP 500: down")
    responses.replace(responses.POST, HOOK, body=requests.exceptions.ReadTimeout("slow"))
    result = post_text(HOOK, "hello")
    assert not result.ok and result.status_code is None and "timed out" not in result.error
    assert "in time" in result.error


def test_mail_failure_is_recorded_and_never_raises(tenant, recipients, fresh_webhook, now, monkeypatch):
    def refuse(self, fail_silently=False):
        raise smtplib.SMTPRecipientsRefused({"ops@example.com": (550, b"no")})

    monkeypatch.setattr("django.core.mail.EmailMessage.send", refuse)
    park(tenant, 250)
    assert send_alerts(now) == "acme: failed"
    assert Notification.objects.get().outcome == "failed"


@responses.activate
def test_one_channel_working_is_enough(tenant, fresh_webhook, now):
    AlertSettings.objects.create(tenant=tenant, email_recipients="ops@example.com", webhook_url=HOOK)
    responses.post(HOOK, status=503)
    park(tenant, 250)
    assert send_alerts(now) == "acme: sent"
    assert len(mail.outbox) == 1
    assert sorted(Notification.objects.values_list("channel", "outcome")) == [
        ("email", "sent"),
        ("webhook", "failed"),
    ]
    assert send_alerts(now + timedelta(minutes=5)) == "acme: quiet"


def test_a_broken_tenant_does_not_stop_the_others(tenant, recipients, fresh_webhook, now, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("bug")

    monkeypatch.setattr("connector.alerts.gather_conditions", boom)
    assert send_alerts(now) == "acme: error"


# --- configuration ------------------------------------------------------------------------------------------------


def test_recipients_are_checked(tenant):
    from django.core.exceptions import ValidationError

    settings_row = AlertSettings(tenant=tenant, email_recipients="ops@example.com\nnot-an-address")
    with pytest.raises(ValidationError, match="not-an-address"):
        settings_row.full_clean()
    settings_row = AlertSettings(tenant=tenant, webhook_url="http://chat.example.com/hook")
    with pytest.raises(ValidationError, match="https"):
        settings_row.full_clean()


def test_admin_keeps_the_chat_webhook_url_write_only(admin_client, tenant):
    AlertSettings.objects.create(tenant=tenant, webhook_url=HOOK)
    page = admin_client.get(f"/admin/connector/tenant/{tenant.pk}/change/").content.decode()
    assert "Alarm recipients" in page
    assert "secret-part" not in page
    assert admin_client.get("/admin/connector/notification/").status_code == 200
    assert admin_client.get("/admin/connector/alertstate/").status_code == 200


def test_the_alarm_schedule_exists_after_migrate(db):
    from django_q.models import Schedule

    assert Schedule.objects.filter(name="connector-alerts", func="connector.tasks.send_alerts").exists()


def test_send_alerts_command(tenant, recipients, fresh_webhook):
    from io import StringIO

    from django.core.management import call_command

    park(tenant, 250)
    out = StringIO()
    call_command("send_alerts", stdout=out)
    assert out.getvalue().strip() == "acme: sent"
    assert len(mail.outbox) == 1


def test_the_recipients_form_keeps_replaces_or_removes_the_chat_webhook_url(tenant):
    from connector.forms import AlertSettingsForm

    row = AlertSettings.objects.create(tenant=tenant, webhook_url=HOOK)
    data = {"enabled": "on", "email_recipients": "", "webhook_url": "", "webhook_silence_hours": ""}
    form = AlertSettingsForm(data, instance=row)
    assert "secret-part" not in str(form) and "chat.example.com" in str(form)
    assert form.is_valid(), form.errors
    assert form.save().webhook_url == HOOK  # blank keeps it
    form = AlertSettingsForm({**data, "webhook_url": "http://chat.example.com/x"}, instance=row)
    assert not form.is_valid()
    form = AlertSettingsForm({**data, "remove_webhook_url": "on"}, instance=row)
    assert form.is_valid(), form.errors
    assert AlertSettings.objects.get(pk=form.save().pk).webhook_url == ""


def test_recipients_from_a_tenant_file(tenant, tmp_path):
    from django.core.management import call_command

    path = tmp_path / "t.toml"
    path.write_text(
        '[tenant]\nslug = "acme"\n[alerts]\nemail_recipients = ["a@example.com", "b@example.com"]\n'
        f'webhook_url = "{HOOK}"\nwebhook_silence_hours = 0\n'
    )
    call_command("configure_tenant", str(path))
    row = AlertSettings.objects.get(tenant=tenant)
    assert (row.emails, row.webhook_url, row.webhook_silence_hours) == (
        ["a@example.com", "b@example.com"],
        HOOK,
        0,
    )
    path.write_text('[tenant]\nslug = "acme"\n[alerts]\nwebhook_url = "http://insecure.example.com/"\n')
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match=r"\[alerts\] webhook_url: \['Enter an https:// URL.'\]$"):
        call_command("configure_tenant", str(path))


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"EMAIL_URL": "smtp+ssl://digest:pw@mail.example.com:465"},
            [
                "django.core.mail.backends.smtp.EmailBackend",
                "mail.example.com",
                465,
                True,
                False,
                "digest",
                20,
            ],
        ),
        (
            {
                "EMAIL_HOST": "relay.example.com",
                "EMAIL_PORT": "587",
                "EMAIL_USE_TLS": "true",
                "EMAIL_TIMEOUT": "5",
            },
            ["django.core.mail.backends.smtp.EmailBackend", "relay.example.com", 587, False, True, "", 5],
        ),
        ({}, ["django.core.mail.backends.console.EmailBackend", "localhost", 25, False, False, "", 20]),
    ],
)
def test_mail_settings_from_the_environment(tmp_path, env, expected):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    names = ("EMAIL_BACKEND", "EMAIL_HOST", "EMAIL_PORT", "EMAIL_USE_SSL", "EMAIL_USE_TLS", "EMAIL_HOST_USER")
    code = (
        "import json; from connector import settings as s; "
        f"print(json.dumps([getattr(s, n) for n in {names!r}] + [s.EMAIL_TIMEOUT]))"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EMAIL_")}
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code],
        cwd=Path(__file__).parent.parent,
        env={**clean, "CONNECTOR_ENV": "development", "CONNECTOR_VAR_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == expected
