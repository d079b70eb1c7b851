"""Create or update a tenant, its credentials and its channel mappings from a JSON or TOML document.

The format is documented in docs/configuration.md; ``examples/tenant.toml`` is a complete example.
"""

from __future__ import annotations

import json
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from accounting.models import ChannelMapping, TenderMapping
from integrations.sagex3.rest import effective_mapping, validate_mapping

from .models import AlertSettings, BigCommerceStore, Tenant, X3Connection

TENANT_FIELDS = {f.name for f in Tenant._meta.fields} - {"id", "slug", "created_at", "updated_at"}
STORE_FIELDS = {f.name for f in BigCommerceStore._meta.fields} - {"id", "tenant"}
# OAuth2 tokens and their bookkeeping are written only by "Connect to Sage X3" and refreshes, never by a file.
X3_RUNTIME_FIELDS = {
    "access_token",
    "access_token_expires_at",
    "refresh_token",
    "refresh_token_expires_at",
    "authorized_at",
    "tokens_refreshed_at",
    "authorization_error",
    "gateway_endpoint",
}
X3_FIELDS = {f.name for f in X3Connection._meta.fields} - {"id", "tenant"} - X3_RUNTIME_FIELDS
ALERT_FIELDS = {"enabled", "email_recipients", "webhook_url", "webhook_silence_hours"}
MAPPING_FIELDS = {f.name for f in ChannelMapping._meta.fields} - {
    "id",
    "tenant",
    "created_at",
    "updated_at",
    "created_by",
}
TENDER_FIELDS = {"gateway", "method", "account", "name"}


class ConfigurationError(Exception):
    pass


def load_document(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".toml":
            return tomllib.loads(text)
        return json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigurationError(f"{path}: {exc}") from exc


def _check_keys(section: str, data: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigurationError(f"[{section}] unknown key(s): {', '.join(unknown)}")


def _apply(obj, data: dict[str, Any], section: str) -> None:
    for key, value in data.items():
        setattr(obj, key, Decimal(str(value)) if key == "rounding_threshold" else value)
    try:
        obj.full_clean(exclude=["tenant"])
    except ValidationError as exc:
        raise ConfigurationError(
            f"[{section}] {'; '.join(f'{k}: {v}' for k, v in exc.message_dict.items())}"
        ) from exc
    obj.save()


@transaction.atomic
def apply_document(doc: dict[str, Any]) -> tuple[Tenant, bool]:
    """Apply a configuration document. Returns (tenant, created). All or nothing."""
    tenant_data = dict(doc.get("tenant") or {})
    slug = tenant_data.pop("slug", None)
    if not slug:
        raise ConfigurationError("[tenant] slug is required")
    _check_keys("tenant", tenant_data, TENANT_FIELDS)
    tenant, created = Tenant.objects.get_or_create(
        slug=slug, defaults={"name": tenant_data.get("name") or slug}
    )
    _apply(tenant, tenant_data, "tenant")

    if "bigcommerce" in doc:
        data = dict(doc["bigcommerce"])
        _check_keys("bigcommerce", data, STORE_FIELDS)
        store = BigCommerceStore.objects.filter(tenant=tenant).first() or BigCommerceStore(tenant=tenant)
        _apply(store, data, "bigcommerce")
    if "x3" in doc:
        data = dict(doc["x3"])
        _check_keys("x3", data, X3_FIELDS)
        if "rest_mapping" in data:
            problems = validate_mapping(effective_mapping(data["rest_mapping"] or {}))
            if problems:
                raise ConfigurationError("[x3.rest_mapping] " + "; ".join(problems))
        x3 = X3Connection.objects.filter(tenant=tenant).first() or X3Connection(tenant=tenant)
        _apply(x3, data, "x3")
    for i, data in enumerate(doc.get("channels") or []):
        data = dict(data)
        _check_keys(f"channels[{i}]", data, MAPPING_FIELDS)
        if "channel_id" not in data:
            raise ConfigurationError(f"[channels[{i}]] channel_id is required")
        mapping = ChannelMapping.objects.filter(tenant=tenant, channel_id=data["channel_id"]).first()
        _apply(mapping or ChannelMapping(tenant=tenant), data, f"channels[{i}]")
    for i, data in enumerate(doc.get("tenders") or []):
        data = dict(data)
        _check_keys(f"tenders[{i}]", data, TENDER_FIELDS)
        if not data.get("gateway"):
            raise ConfigurationError(f"[tenders[{i}]] gateway is required")
        gateway, method = str(data["gateway"]).strip().lower(), str(data.get("method", "")).strip().lower()
        tender = TenderMapping.objects.filter(tenant=tenant, gateway=gateway, method=method).first()
        _apply(tender or TenderMapping(tenant=tenant), data, f"tenders[{i}]")
    if "alerts" in doc:
        data = dict(doc["alerts"])
        _check_keys("alerts", data, ALERT_FIELDS)
        if isinstance(data.get("email_recipients"), list):
            data["email_recipients"] = "\n".join(data["email_recipients"])
        alerts = AlertSettings.objects.filter(tenant=tenant).first() or AlertSettings(tenant=tenant)
        _apply(alerts, data, "alerts")
    return tenant, created
