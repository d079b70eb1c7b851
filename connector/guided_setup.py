"""The guided setup of one tenant: the state of each step, computed from the database, and the actions that call
BigCommerce or Sage X3 (each run only on an explicit request, its outcome kept as a :class:`SetupCheck`).

The page (connector/setup_views.py) only renders :func:`steps` and calls the ``run_*`` functions on a POST. The
actions reuse the connector's own code: ``check_store`` (BigCommerce test connection), the tenant's X3 client
(``connection_steps`` for SOAP, else ``test_connection``), ``refresh_chart``, :func:`connector.preview.preview_orders`
and :func:`connector.hooks.register_webhooks`. See docs/decisions/0020-guided-setup-and-dry-run.md.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from accounting.chart import mapping_account_problems
from accounting.models import ChannelMapping, GlChart
from integrations.bigcommerce.connection import check_store
from integrations.errors import IntegrationError

from . import clients
from .channels import store_listed
from .chart import refresh_chart
from .configuration import X3_FIELDS
from .hooks import register_webhooks, webhook_destination
from .models import BigCommerceStore, SetupCheck, Tenant, X3Connection
from .preview import PreviewResult, bigcommerce_problem, preview_orders

DONE, MISSING, FAILED, OPTIONAL = "done", "missing", "failed", "optional"
M = X3Connection.Method
Step = SetupCheck.Step


@dataclass(frozen=True)
class Link:
    url_name: str  # an admin URL name, reversed by the view with ``args``
    label: str
    args: tuple = ()
    query: str = ""


@dataclass(frozen=True)
class StepState:
    number: int
    key: str
    title: str
    state: str  # done, missing, failed, optional
    reason: str  # what we see, in plain words
    todo: str = ""  # what to do next
    action: str = ""  # the POST action this step offers ("" = none)
    action_label: str = ""
    credential: bool = False  # the action needs an operator (change_tenant) or a superuser
    details: tuple[str, ...] = ()
    links: tuple[Link, ...] = ()
    channels: tuple[dict, ...] = field(default=())  # step 7: one row per channel with its mapping
    checked_at: object = None

    @property
    def done(self) -> bool:
        return self.state == DONE


# --- fingerprints: has what a check ran with changed since? --------------------------------------------------------


def _hash(values: list) -> str:
    return hashlib.sha256(json.dumps(values, default=str, sort_keys=True).encode()).hexdigest()


def bc_fingerprint(tenant: Tenant) -> str:
    store = getattr(tenant, "bigcommerce", None)
    return _hash([store.store_hash, store.access_token, store.api_base_url]) if store else ""


def x3_fingerprint(tenant: Tenant) -> str:
    x3 = getattr(tenant, "x3", None)
    if x3 is None:
        return ""
    return _hash([getattr(x3, name) for name in sorted(X3_FIELDS)] + [x3.authorized_at])


def _record(
    tenant: Tenant, step: str, ok: bool, summary: str, details: list, fingerprint: str = "", user=None
) -> SetupCheck:
    check, _ = SetupCheck.objects.update_or_create(
        tenant=tenant,
        step=step,
        defaults={
            "ok": ok,
            "summary": summary[:500],
            "details": details,
            "fingerprint": fingerprint,
            "checked_at": timezone.now(),
            "checked_by": user if getattr(user, "pk", None) else None,
        },
    )
    return check


# --- actions (POST only) ------------------------------------------------------------------------------------------


def run_bc_test(tenant: Tenant, user=None) -> SetupCheck:
    """Read-only calls for each scope the connector needs (``check_store``); the channels it lists are kept too."""
    check = check_store(clients.bigcommerce_client(tenant))
    lines = [f"{'✓' if s.ok else '✗'} {s.name}: {s.detail}" for s in check.steps]
    if check.channels:
        _record(
            tenant,
            Step.CHANNELS,
            True,
            f"{len(check.channels)} channel(s)",
            _channels(check.channels),
            user=user,
        )
    summary = (
        "All checks passed." if check.ok else next((s.detail for s in check.steps if not s.ok), "No answer.")
    )
    return _record(tenant, Step.BC_TEST, check.ok, summary, lines, bc_fingerprint(tenant), user)


def _channels(channels) -> list[dict]:
    return [
        {"id": c.id, "name": c.name, "type": c.type, "platform": c.platform, "status": c.status}
        for c in channels
    ]


def run_channels(tenant: Tenant, user=None) -> SetupCheck:
    try:
        channels = clients.bigcommerce_client(tenant).list_channels()
    except IntegrationError as exc:
        return _record(tenant, Step.CHANNELS, False, bigcommerce_problem(exc), [], user=user)
    if not channels:
        return _record(tenant, Step.CHANNELS, False, "The store lists no channel.", [], user=user)
    store_listed(tenant, channels)  # the mapping form then lists them by name
    return _record(tenant, Step.CHANNELS, True, f"{len(channels)} channel(s)", _channels(channels), user=user)


def run_x3_test(tenant: Tenant, user=None) -> SetupCheck:
    """The same checks as the tenant page's "Test connection": SOAP step by step, the other methods one call."""
    client = clients.x3_client(tenant)
    fingerprint = x3_fingerprint(tenant)
    steps = getattr(client, "connection_steps", None)
    if steps is not None:
        results = list(steps())
        lines = [f"{'✓' if s.ok else '✗'} {s.name}: {s.detail}" for s in results]
        failed = next((s for s in results if not s.ok), None)
        summary = f"{failed.name}: {failed.detail}" if failed else "All checks passed."
        return _record(tenant, Step.X3_TEST, failed is None, summary, lines, fingerprint, user)
    try:
        answer = client.test_connection()
    except IntegrationError as exc:
        return _record(tenant, Step.X3_TEST, False, exc.message, [f"✗ {exc.message}"], fingerprint, user)
    return _record(tenant, Step.X3_TEST, True, "Sage X3 answered.", [f"✓ {answer}"], fingerprint, user)


def run_chart(tenant: Tenant) -> str:
    return refresh_chart(tenant).message


def run_preview(tenant: Tenant, last: int, user=None) -> PreviewResult:
    result = preview_orders(tenant, last=last)
    if result.error and not result.orders:
        _record(tenant, Step.PREVIEW, False, result.error, [], user=user)
    else:
        gaps = result.gap_count
        summary = f"{len(result.orders)} order(s) previewed, " + (
            f"{gaps} gap(s) to fix." if gaps else "no gaps: every one would post as shown."
        )
        ok = not gaps and not result.error
        if not result.orders:
            summary = "The store has no orders yet: nothing to preview (run it again after the first order)."
        _record(tenant, Step.PREVIEW, ok, summary, [result.error] if result.error else [], user=user)
    return result


def run_webhooks(tenant: Tenant, base_url: str, user=None) -> SetupCheck:
    destination = webhook_destination(tenant, base_url)
    try:
        lines = register_webhooks(tenant, base_url)
    except IntegrationError as exc:
        return _record(tenant, Step.WEBHOOKS, False, bigcommerce_problem(exc), [destination], user=user)
    return _record(
        tenant,
        Step.WEBHOOKS,
        True,
        f"Webhooks point at {destination}",
        [destination, *lines],
        bc_fingerprint(tenant),
        user,
    )


# --- states (every page load, database only) ----------------------------------------------------------------------


def steps(tenant: Tenant) -> list[StepState]:
    checks = {c.step: c for c in SetupCheck.objects.filter(tenant=tenant)}
    store: BigCommerceStore | None = getattr(tenant, "bigcommerce", None)
    x3: X3Connection | None = getattr(tenant, "x3", None)
    out = [_bc_credentials(store)]
    out.append(
        _tested(
            2,
            "bc_test",
            "Test the BigCommerce connection",
            checks.get(Step.BC_TEST),
            bc_fingerprint(tenant),
            ready=out[0].done,
            not_ready="Add the store's credentials first (step 1).",
        )
    )
    out.append(_channels_state(checks.get(Step.CHANNELS), ready=out[0].done))
    out.append(_x3_settings(tenant, x3))
    out.append(
        _tested(
            5,
            "x3_test",
            "Test the Sage X3 connection",
            checks.get(Step.X3_TEST),
            x3_fingerprint(tenant),
            ready=out[3].done,
            not_ready="Complete the Sage X3 connection first (step 4).",
        )
    )
    out.append(_chart_state(tenant, ready=out[3].done))
    out.append(_mapping_state(tenant, checks.get(Step.CHANNELS)))
    out.append(_preview_state(checks.get(Step.PREVIEW), ready=out[0].done and out[3].done))
    out.append(_webhooks_state(checks.get(Step.WEBHOOKS), ready=out[0].done))
    return out


def _bc_credentials(store: BigCommerceStore | None) -> StepState:
    common: dict[str, Any] = {
        "number": 1,
        "key": "bc_credentials",
        "title": "BigCommerce store credentials",
        "credential": True,
    }
    if store is None:
        return StepState(
            state=MISSING,
            reason="No BigCommerce store is set for this tenant.",
            todo="Open the tenant, fill in 'BigCommerce store' (store hash and API account access token), save.",
            **common,
        )
    missing = [
        label
        for label, value in (("store hash", store.store_hash), ("access token", store.access_token))
        if not value
    ]
    if missing:
        return StepState(
            state=MISSING,
            reason=f"The {' and '.join(missing)} is not set.",
            todo="Open the tenant and fill it in under 'BigCommerce store'.",
            **common,
        )
    return StepState(
        state=DONE,
        reason=f"Store {store.store_hash}, access token set"
        + (f", API host {store.api_base_url}" if store.api_base_url else "")
        + ".",
        **common,
    )


def _tested(
    number, key, title, check: SetupCheck | None, fingerprint: str, *, ready: bool, not_ready: str
) -> StepState:
    common: dict[str, Any] = {
        "number": number,
        "key": key,
        "title": title,
        "action": key,
        "action_label": "Test again" if check else "Test connection",
        "credential": True,
    }
    if not ready:
        return StepState(state=MISSING, reason=not_ready, **{**common, "action": ""})
    if check is None:
        return StepState(
            state=MISSING,
            reason="Not tested yet.",
            todo="Press the button: read-only calls, nothing is changed.",
            **common,
        )
    details = tuple(check.details)
    if check.fingerprint != fingerprint:
        return StepState(
            state=MISSING,
            reason="The settings changed since the last test.",
            todo="Test again.",
            details=details,
            checked_at=check.checked_at,
            **common,
        )
    if not check.ok:
        return StepState(
            state=FAILED,
            reason=check.summary,
            todo="Correct the settings on the tenant page (see the ✗ line), then test again.",
            details=details,
            checked_at=check.checked_at,
            **common,
        )
    return StepState(state=DONE, reason=check.summary, details=details, checked_at=check.checked_at, **common)


def _channels_state(check: SetupCheck | None, *, ready: bool) -> StepState:
    common: dict[str, Any] = {
        "number": 3,
        "key": "channels",
        "title": "The store's channels",
        "action": "channels",
        "action_label": "Read the channels",
    }
    if not ready:
        return StepState(
            state=MISSING, reason="Add the store's credentials first (step 1).", **{**common, "action": ""}
        )
    if check is None:
        return StepState(
            state=MISSING, reason="Not read yet.", todo="Press the button (a read-only call).", **common
        )
    if not check.ok:
        return StepState(
            state=FAILED,
            reason=check.summary,
            todo="Fix the cause, then read them again.",
            checked_at=check.checked_at,
            **common,
        )
    return StepState(
        state=DONE,
        reason=check.summary,
        details=tuple(
            f"{c['id']} · {c['name']} ({c['type']}, {c['platform']}, {c['status']})" for c in check.details
        ),
        checked_at=check.checked_at,
        **{**common, "action_label": "Read them again"},
    )


X3_REQUIRED: dict[str, tuple[tuple[str, str], ...]] = {
    M.REST_BASIC: (("username", "user name"), ("password", "password")),
    M.SOAP_BASIC: (
        ("username", "user name"),
        ("password", "password"),
        ("soap_public_name", "SOAP publication"),
    ),
    M.GRAPHQL_JWT: (
        ("app_client_id", "connected app client ID"),
        ("app_secret", "connected app secret"),
        ("app_user", "connected app user"),
    ),
    M.GRAPHQL_OAUTH2: (
        ("oauth_client_id", "OAuth client ID"),
        ("oauth_client_secret", "OAuth client secret"),
        ("oauth_authorise_url", "authorise URL"),
        ("oauth_token_url", "token URL"),
    ),
}


def _x3_settings(tenant: Tenant, x3: X3Connection | None) -> StepState:
    common: dict[str, Any] = {
        "number": 4,
        "key": "x3_settings",
        "title": "Sage X3 connection",
        "credential": True,
    }
    if x3 is None:
        return StepState(
            state=MISSING,
            reason="No Sage X3 connection is set for this tenant.",
            todo="Open the tenant and fill in 'Sage X3 connection': method, server URL, folder, entry type, journal, site.",
            **common,
        )
    required = (
        ("server_url", "server URL"),
        ("folder", "folder"),
        ("entry_type", "entry type"),
        ("journal", "journal"),
        ("site", "site"),
        *X3_REQUIRED.get(x3.method, ()),
    )
    missing = [label for name, label in required if not getattr(x3, name)]
    method = x3.get_method_display()
    if missing:
        return StepState(
            state=MISSING,
            reason=f"{method}: {', '.join(missing)} not set.",
            todo="Open the tenant and fill them in under 'Sage X3 connection'.",
            **common,
        )
    if x3.method == M.GRAPHQL_OAUTH2 and not (x3.refresh_token and x3.authorized_at):
        return StepState(
            state=MISSING,
            reason=f"{method}: not connected to Sage yet.",
            todo="Use 'Connect to Sage X3' and approve access for this connector.",
            links=(Link("admin:connector_tenant_x3_connect", "Connect to Sage X3", (tenant.pk,)),),
            **common,
        )
    if x3.authorization_error:
        return StepState(
            state=FAILED,
            reason=f"Sage refused the authorization: {x3.authorization_error}",
            todo="Connect to Sage X3 again.",
            links=(Link("admin:connector_tenant_x3_connect", "Connect to Sage X3", (tenant.pk,)),),
            **common,
        )
    return StepState(state=DONE, reason=f"{method} to {x3.server_url}, folder {x3.folder}.", **common)


def _chart_state(tenant: Tenant, *, ready: bool) -> StepState:
    common: dict[str, Any] = {
        "number": 6,
        "key": "chart",
        "title": "Chart of accounts",
        "action": "chart",
        "action_label": "Read the chart of accounts",
        "credential": True,
    }
    if not ready:
        return StepState(
            state=MISSING,
            reason="Complete the Sage X3 connection first (step 4).",
            **{**common, "action": ""},
        )
    chart = GlChart.objects.filter(tenant=tenant).first()
    if chart is None:
        return StepState(
            state=OPTIONAL,
            reason="Not loaded. Without it, account codes are not checked and no names are shown.",
            todo="Read it from Sage X3 (read-only; it is also refreshed daily).",
            **common,
        )
    when = (
        f"refreshed {timezone.localtime(chart.refreshed_at):%Y-%m-%d %H:%M}"
        if chart.refreshed_at
        else "never read"
    )
    if not chart.ok:
        return StepState(
            state=FAILED,
            reason=f"The last read failed: {chart.message}"
            + (f" (the chart {when} is kept)" if chart.account_count else ""),
            todo="Check the chart of accounts query on the Sage X3 connection, then read it again.",
            **common,
        )
    return StepState(
        state=DONE,
        reason=f"{chart.account_count} accounts, {when}.",
        **{**common, "action_label": "Read it again"},
    )


def _mapping_state(tenant: Tenant, channels_check: SetupCheck | None) -> StepState:
    common: dict[str, Any] = {"number": 7, "key": "mappings", "title": "Map each channel to GL accounts"}
    mappings = {m.channel_id: m for m in ChannelMapping.objects.filter(tenant=tenant)}
    known = {
        c["id"]: c["name"] for c in (channels_check.details if channels_check and channels_check.ok else [])
    }
    rows = []
    for channel_id in sorted(set(known) | set(mappings)):
        mapping = mappings.get(channel_id)
        name = known.get(channel_id) or (mapping.name if mapping else "")
        if mapping is None:
            status, problem = MISSING, "Not mapped: its orders would wait as 'needs mapping'."
        elif not mapping.is_active:
            status, problem = MISSING, "Mapping inactive: its orders would wait as 'needs mapping'."
        else:
            problems = mapping_account_problems(mapping)
            status, problem = (FAILED, " ".join(problems.values())) if problems else (DONE, "")
        if channel_id not in known and known:
            problem = (problem + " " if problem else "") + "The store does not list this channel."
        rows.append(
            {
                "id": channel_id,
                "name": name,
                "state": status,
                "problem": problem,
                "mapping_id": mapping.pk if mapping else None,
            }
        )
    unmapped = [r for r in rows if r["state"] == MISSING and r["id"] in known]
    wrong = [r for r in rows if r["state"] == FAILED]
    if not known:
        state, reason = MISSING, "The store's channels are not known yet: read them (step 3)."
        if mappings:
            reason += f" {len(mappings)} mapping(s) exist."
    elif unmapped:
        state, reason = (
            MISSING,
            f"{len(unmapped)} of {len(known)} channel(s) not mapped: "
            + ", ".join(f"{r['id']} ({r['name']})" for r in unmapped)
            + ".",
        )
    elif wrong:
        state, reason = FAILED, f"{len(wrong)} mapping(s) use accounts Sage X3 does not accept."
    else:
        state, reason = DONE, f"All {len(known)} channel(s) mapped."
    return StepState(
        state=state,
        reason=reason,
        todo="Add or change the mappings below." if state != DONE else "",
        channels=tuple(rows),
        **common,
    )


def _preview_state(check: SetupCheck | None, *, ready: bool) -> StepState:
    common: dict[str, Any] = {
        "number": 8,
        "key": "preview",
        "title": "Dry run on the store's last orders",
        "action": "preview",
        "action_label": "Run the dry run",
    }
    if not ready:
        return StepState(state=MISSING, reason="Complete steps 1 and 4 first.", **{**common, "action": ""})
    if check is None:
        return StepState(
            state=MISSING,
            reason="Not run yet.",
            todo="Run it: nothing is sent to Sage X3 and nothing is stored as a posting.",
            **common,
        )
    if not check.ok:
        return StepState(
            state=FAILED,
            reason=check.summary,
            todo="Fix the gaps listed, then run it again.",
            checked_at=check.checked_at,
            **{**common, "action_label": "Run it again"},
        )
    return StepState(
        state=DONE,
        reason=check.summary,
        checked_at=check.checked_at,
        **{**common, "action_label": "Run it again"},
    )


def _webhooks_state(check: SetupCheck | None, *, ready: bool) -> StepState:
    common: dict[str, Any] = {
        "number": 9,
        "key": "webhooks",
        "title": "Register the webhooks",
        "action": "webhooks",
        "action_label": "Register the webhooks",
        "credential": True,
    }
    if not ready:
        return StepState(
            state=MISSING, reason="Add the store's credentials first (step 1).", **{**common, "action": ""}
        )
    if check is None:
        return StepState(
            state=MISSING,
            reason="Not registered from here yet.",
            todo="Check the public address of this connector below, then register.",
            **common,
        )
    if not check.ok:
        return StepState(
            state=FAILED,
            reason=check.summary,
            todo="Fix the cause, then register again.",
            details=tuple(check.details),
            checked_at=check.checked_at,
            **common,
        )
    return StepState(
        state=DONE,
        reason=check.summary,
        details=tuple(check.details[1:]),
        checked_at=check.checked_at,
        **{**common, "action_label": "Register again"},
    )


def all_done(states: list[StepState]) -> bool:
    return all(s.state in (DONE, OPTIONAL) for s in states)
