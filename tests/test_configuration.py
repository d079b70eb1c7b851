"""Tenants from a file; secrets encrypted at rest and write-only in the admin; production settings are sound."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import connection

from accounting.models import ChannelMapping
from connector.forms import BigCommerceStoreForm, X3ConnectionForm
from connector.models import BigCommerceStore, Tenant, X3Connection
from tests.conftest import ACCESS_TOKEN, CLIENT_SECRET, X3_PASSWORD

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.django_db
def test_configure_tenant_from_the_example_toml_and_again_idempotently():
    call_command("configure_tenant", str(ROOT / "examples" / "tenant.toml"))
    call_command("configure_tenant", str(ROOT / "examples" / "tenant.toml"))
    tenant = Tenant.objects.get(slug="acme")
    assert tenant.bigcommerce.store_hash == "abc123"
    assert tenant.bigcommerce.client_secret == "replace-with-client-secret"
    assert tenant.x3.folder == "SEED" and tenant.x3.password == "replace-with-password"
    assert sorted(tenant.channel_mappings.values_list("channel_id", flat=True)) == [1, 2]
    assert ChannelMapping.objects.count() == 2
    assert list(tenant.tender_mappings.values_list("gateway", "method", "account")) == [
        ("braintree", "credit_card", "512100")
    ]


@pytest.mark.django_db
def test_configure_tenant_from_json_updates_in_place(tmp_path, tenant):
    path = tmp_path / "t.json"
    path.write_text(
        '{"tenant": {"slug": "acme", "rounding_threshold": "0.10"},'
        ' "channels": [{"channel_id": 2, "revenue_account": "799999"}]}'
    )
    call_command("configure_tenant", str(path))
    tenant.refresh_from_db()
    assert str(tenant.rounding_threshold) == "0.1000"
    assert tenant.channel_mappings.get(channel_id=2).revenue_account == "799999"
    assert tenant.bigcommerce.access_token == ACCESS_TOKEN  # untouched sections stay as they were


@pytest.mark.django_db
@pytest.mark.parametrize(
    "text,message",
    [
        ('{"tenant": {}}', "slug is required"),
        ('{"tenant": {"slug": "x", "colour": "red"}}', "unknown key(s): colour"),
        (
            '{"tenant": {"slug": "x", "rounding_account": "1"}, "channels": [{"name": "no id"}]}',
            "channel_id is required",
        ),
        (
            '{"tenant": {"slug": "x", "rounding_account": "1"}, "x3": {"server_url": "not a url", "folder": "S",'
            ' "entry_type": "A", "journal": "B", "site": "C"}}',
            "server_url",
        ),
        (
            '{"tenant": {"slug": "x", "rounding_account": "1"}, "x3": {"rest_mapping": {"amount_style": "weird"}}}',
            "amount_style",
        ),
        ("{broken", "t.json"),
    ],
)
def test_configure_tenant_errors_are_clear_and_change_nothing(tmp_path, text, message):
    path = tmp_path / "t.json"
    path.write_text(text)
    with pytest.raises(CommandError) as caught:
        call_command("configure_tenant", str(path))
    assert message in str(caught.value)
    assert not Tenant.objects.exists()


def raw_column(model, field: str, pk: int) -> bytes:
    table = model._meta.db_table
    column = model._meta.get_field(field).column
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT "{column}" FROM "{table}" WHERE id = %s', [pk])  # noqa: S608 - names from _meta
        return bytes(cursor.fetchone()[0])


def test_secrets_are_encrypted_at_rest(tenant):
    store, x3 = tenant.bigcommerce, tenant.x3
    for model, pk, field, secret in [
        (BigCommerceStore, store.pk, "access_token", ACCESS_TOKEN),
        (BigCommerceStore, store.pk, "client_secret", CLIENT_SECRET),
        (BigCommerceStore, store.pk, "webhook_header_value", "custom-header-secret-value"),
        (X3Connection, x3.pk, "password", X3_PASSWORD),
    ]:
        raw = raw_column(model, field, pk)
        assert secret.encode() not in raw
        assert secret[-6:].encode() not in raw
        assert len(raw) > len(secret)  # something is stored: a Fernet token, not an empty value
    store.refresh_from_db()
    assert store.access_token == ACCESS_TOKEN  # and it decrypts


def test_encryption_uses_its_own_key_not_secret_key(settings):
    from django_cryptography.conf import CryptographyConf  # noqa: F401 - configures settings.CRYPTOGRAPHY_*

    assert settings.CRYPTOGRAPHY_KEY != settings.SECRET_KEY


def test_admin_forms_never_render_secrets_and_blank_keeps_them(tenant):
    store = tenant.bigcommerce
    form = BigCommerceStoreForm(instance=store)
    html = form.as_p()
    assert ACCESS_TOKEN not in html and CLIENT_SECRET not in html
    assert "ijkl" not in html and "••••" not in html  # not even the last characters of a secret
    assert html.count("Set — leave blank to keep it") == 3  # token, client secret, custom header value

    data = {f: getattr(store, f) for f in ("store_hash", "client_id", "api_base_url", "webhook_header_name")}
    data.update(
        tenant=tenant.pk,
        accept_standard_webhooks="on",
        access_token="",
        client_secret="",
        webhook_header_value="",
    )
    form = BigCommerceStoreForm(data=data, instance=store)
    assert form.is_valid(), form.errors
    form.save()
    store.refresh_from_db()
    assert store.access_token == ACCESS_TOKEN and store.client_secret == CLIENT_SECRET

    data["access_token"] = "brand-new-token-9999"
    form = BigCommerceStoreForm(data=data, instance=store)
    assert form.is_valid(), form.errors
    form.save()
    store.refresh_from_db()
    assert store.access_token == "brand-new-token-9999"


def test_admin_form_validates_the_x3_mapping(tenant):
    x3 = tenant.x3
    data = {
        f: getattr(x3, f)
        for f in (
            "method",
            "server_url",
            "folder",
            "username",
            "entry_type",
            "journal",
            "site",
            "timeout_seconds",
        )
    }
    data.update(tenant=tenant.pk, password="", rest_mapping='{"amount_style": "sideways"}', verify_tls="on")
    form = X3ConnectionForm(data=data, instance=x3)
    assert not form.is_valid()
    assert "amount_style" in str(form.errors["rest_mapping"])


def test_secrets_never_appear_in_the_admin_pages(admin_client, tenant):
    for url in ("/admin/connector/tenant/", f"/admin/connector/tenant/{tenant.pk}/change/"):
        html = admin_client.get(url).content.decode()
        for secret in (ACCESS_TOKEN, CLIENT_SECRET, X3_PASSWORD, "custom-header-secret-value"):
            assert secret not in html, (url, secret)
        assert (
            "ijkl" not in html and "ZYXW" not in html
        )  # not even the token's and password's last characters


def test_x3_secret_hints_say_only_whether_they_are_set(tenant):
    x3 = tenant.x3
    x3.oauth_client_secret = "oauth-client-secret-QRST"
    x3.save()
    html = X3ConnectionForm(instance=x3).as_p()
    assert X3_PASSWORD[-4:] not in html and "QRST" not in html and "••••" not in html
    assert html.count("Set — leave blank to keep it") == 2  # the password and the OAuth client secret
    assert html.count("Not set — type a value to set it.") == 1  # the connected-app secret


def test_production_settings_pass_check_deploy_without_warnings(tmp_path):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_URL"))},
        "DJANGO_SETTINGS_MODULE": "connector.settings",
        "CONNECTOR_ENV": "production",
        "SECRET_KEY": "k" * 20 + "Zq8#x!v2@Lm9$wE4^rT6&yU1*iO3(pA5)sD7-fG0+hJ",
        "ENCRYPTION_KEY": "another-long-random-key-for-credentials",
        "ALLOWED_HOSTS": "connector.example.com",
        "CONNECTOR_VAR_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'deploy.sqlite3'}",
    }
    result = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_an_encryption_key(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("ENCRYPTION_KEY", "DATABASE_URL")}
    env.update(
        DJANGO_SETTINGS_MODULE="connector.settings",
        CONNECTOR_ENV="production",
        SECRET_KEY="Zq8#x!v2@Lm9$wE4^rT6&yU1*iO3(pA5)sD7-fG0+hJ-secret-key",
        ALLOWED_HOSTS="a.example.com",
        CONNECTOR_VAR_DIR=str(tmp_path),
    )
    result = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "ENCRYPTION_KEY" in result.stderr


@pytest.mark.django_db
def test_admin_actions_are_registered_and_offered(admin_client):
    from django.contrib import admin

    from accounting.models import Posting
    from connector.models import WebhookEvent

    posting_actions = admin.site._registry[Posting].get_actions(_request(admin_client))
    event_actions = admin.site._registry[WebhookEvent].get_actions(_request(admin_client))
    assert {"repost_orders", "retry_now"} <= set(posting_actions)
    assert "retry_events" in event_actions


def _request(admin_client):
    from django.test import RequestFactory

    request = RequestFactory().get("/admin/")
    request.user = User.objects.get(username="admin")
    return request


def test_production_refuses_to_start_without_a_database_url(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(
        DJANGO_SETTINGS_MODULE="connector.settings",
        CONNECTOR_ENV="production",
        SECRET_KEY="Zq8#x!v2@Lm9$wE4^rT6&yU1*iO3(pA5)sD7-fG0+hJ-secret-key",
        ENCRYPTION_KEY="another-long-random-key-for-credentials",
        ALLOWED_HOSTS="a.example.com",
        CONNECTOR_VAR_DIR=str(tmp_path),
    )
    result = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "DATABASE_URL" in result.stderr


@pytest.mark.django_db
def test_tenant_file_gets_the_same_webhook_checks_as_the_admin(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(
        '{"tenant": {"slug": "x", "rounding_account": "1"}, "bigcommerce": {"store_hash": "h",'
        ' "accept_custom_header": true, "webhook_header_value": ""}}'
    )
    with pytest.raises(CommandError, match="custom header scheme needs"):
        call_command("configure_tenant", str(path))


def test_tenant_form_offers_statuses_as_checkboxes(tenant):
    from connector.forms import TenantForm

    form = TenantForm(instance=tenant)
    html = form.as_p()
    assert 'type="checkbox"' in html and "11 · Awaiting Fulfillment" in html
    data = {
        "name": "Acme",
        "slug": "acme",
        "is_active": "on",
        "confirmed_status_ids": ["10", "2"],
        "gl_date_policy": "created",
        "rounding_account": "658000",
        "rounding_threshold": "0.05",
        "order_refund_policy": "refund_account",
        "refund_account": "",
        "review_policy": "off",
        "closed_period_policy": "park",
    }
    form = TenantForm(data=data, instance=tenant)
    assert form.is_valid(), form.errors
    form.save()
    tenant.refresh_from_db()
    assert sorted(tenant.confirmed_status_ids) == [2, 10]


def test_credentials_do_not_depend_on_secret_key(tenant, settings):
    import pickle

    from django_cryptography.core.signing import FernetSigner
    from django_cryptography.utils.crypto import FernetBytes

    from connector.fields import mac_key

    raw = raw_column(BigCommerceStore, "access_token", tenant.bigcommerce.pk)
    original_secret_key = settings.SECRET_KEY
    # signed with a key derived from ENCRYPTION_KEY: readable whatever SECRET_KEY is …
    settings.SECRET_KEY = "rotated-" + "x" * 50
    assert pickle.loads(FernetBytes(signer=FernetSigner(key=mac_key())).decrypt(raw)) == ACCESS_TOKEN  # noqa: S301
    tenant.bigcommerce.refresh_from_db()
    assert tenant.bigcommerce.access_token == ACCESS_TOKEN
    # … and not with SECRET_KEY, which upstream django-cryptography would have used
    with pytest.raises(Exception):  # noqa: B017 - the library raises its own BadSignature
        FernetBytes(signer=FernetSigner(key=original_secret_key)).decrypt(raw)
