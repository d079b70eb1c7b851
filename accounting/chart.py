"""The tenant's cached X3 chart of accounts: store a refresh, name accounts, check mappings against it.

Reading the chart from X3 is the connector's job (connector/chart.py, through the tenant's client); this module only
keeps the result and answers questions about it, so accounting never calls up into the connector.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from integrations.sagex3.accounts import Account

from .dimensions import blank_roles, with_fallbacks
from .journal import Accounts
from .models import ACCOUNT_FIELDS, ChannelMapping, GlAccount, GlChart

MAPPING_ACCOUNT_FIELDS = ACCOUNT_FIELDS


def store_chart(tenant_id: int, accounts: Iterable[Account], *, now: datetime | None = None) -> GlChart:
    """Replace the tenant's cached chart with ``accounts`` (one transaction: readers see the old or the new one)."""
    now = now or timezone.now()
    accounts = list(accounts)
    with transaction.atomic():
        existing = {a.code: a for a in GlAccount.objects.select_for_update().filter(tenant_id=tenant_id)}
        seen = set()
        changed, created = [], []
        for account in accounts:
            code = account.code[:40]
            if code in seen:
                continue
            seen.add(code)
            row = existing.get(code)
            values = {
                "name": account.name[:200],
                "postable": account.postable,
                "dimensions": list(account.dimensions),
                "refreshed_at": now,
            }
            if row is None:
                created.append(GlAccount(tenant_id=tenant_id, code=code, **values))
            else:
                for key, value in values.items():
                    setattr(row, key, value)
                changed.append(row)
        GlAccount.objects.bulk_create(created, batch_size=500)
        GlAccount.objects.bulk_update(
            changed, ["name", "postable", "dimensions", "refreshed_at"], batch_size=500
        )
        gone = [row.pk for code, row in existing.items() if code not in seen]
        for start in range(
            0, len(gone), 500
        ):  # batches: no query with more parameters than the database allows
            GlAccount.objects.filter(pk__in=gone[start : start + 500]).delete()
        chart, _ = GlChart.objects.update_or_create(
            tenant_id=tenant_id,
            defaults={
                "refreshed_at": now,
                "attempted_at": now,
                "ok": True,
                "message": f"{len(seen)} accounts read from Sage X3",
                "account_count": len(seen),
            },
        )
    return chart


def record_failure(tenant_id: int, message: str, *, now: datetime | None = None) -> GlChart:
    """A refresh failed: say so, and keep the accounts of the last good refresh."""
    now = now or timezone.now()
    chart, _ = GlChart.objects.update_or_create(
        tenant_id=tenant_id, defaults={"attempted_at": now, "ok": False, "message": message[:2000]}
    )
    return chart


def account_names(tenant_id: int | None) -> dict[str, str]:
    """code -> name of the tenant's cached chart, in one query (for admin pages showing many codes)."""
    if tenant_id is None:
        return {}
    return dict(GlAccount.objects.filter(tenant_id=tenant_id).values_list("code", "name"))


def chart_loaded(tenant_id: int) -> bool:
    return GlAccount.objects.filter(tenant_id=tenant_id).exists()


def suggestions(code: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Codes close to ``code``: those sharing its longest prefix (at least 3 characters), then difflib's nearest."""
    pool = sorted(set(candidates))
    best: list[str] = []
    for length in range(len(code), 2, -1):
        best = [c for c in pool if c.startswith(code[:length])]
        if best:
            break
    close = difflib.get_close_matches(code, pool, n=n, cutoff=0.6)
    return list(dict.fromkeys([*best[:n], *close]))[:n]


def account_problems(tenant_id: int, codes: dict[str, str]) -> dict[str, str]:
    """field -> problem for each code that is not in the loaded chart or is closed; {} when no chart is loaded."""
    wanted = {c for c in codes.values() if c}
    if not wanted or not chart_loaded(tenant_id):
        return {}
    known = dict(
        GlAccount.objects.filter(tenant_id=tenant_id, code__in=wanted).values_list("code", "postable")
    )
    problems: dict[str, str] = {}
    postable_codes: list[str] | None = None
    for field, code in codes.items():
        if not code or known.get(code) is True:
            continue
        if postable_codes is None:
            postable_codes = list(
                GlAccount.objects.filter(tenant_id=tenant_id, postable=True).values_list("code", flat=True)
            )
        near = suggestions(code, postable_codes)
        hint = f" Did you mean {', '.join(near)}?" if near else ""
        if code in known:
            problems[field] = f"Account {code} is closed to postings in Sage X3.{hint}"
        else:
            problems[field] = f"Account {code} is not in the Sage X3 chart of accounts.{hint}"
    return problems


def mapping_account_problems(mapping: ChannelMapping) -> dict[str, str]:
    return account_problems(mapping.tenant_id, {f: getattr(mapping, f) for f in MAPPING_ACCOUNT_FIELDS})


def mapping_account_warnings(mapping: ChannelMapping) -> list[str]:
    """With no chart loaded, accounts cannot be checked: a warning (never an error) to say so."""
    if any(getattr(mapping, f) for f in MAPPING_ACCOUNT_FIELDS) and not chart_loaded(mapping.tenant_id):
        return [
            f"No Sage X3 chart of accounts is loaded for {mapping.tenant}: the accounts of channel "
            f"{mapping.channel_id} were not checked. Use 'Refresh chart of accounts' on the tenant."
        ]
    return []


def mapping_dimension_problems(mapping: ChannelMapping) -> dict[str, str]:
    """The dimension types the chart says an account requires, missing from the mapping's dimensions for the role
    that posts to that account: {"dimensions": "..."}; {} when none is missing or no chart is loaded."""
    accounts = dataclasses.asdict(Accounts.from_mapping(mapping))
    by_role = {role: code for role, code in accounts.items() if code}
    if not by_role:
        return {}
    required = {
        code: list(dims or [])
        for code, dims in GlAccount.objects.filter(
            tenant_id=mapping.tenant_id, code__in=set(by_role.values())
        ).values_list("code", "dimensions")
    }
    given = with_fallbacks(
        mapping.dimensions if isinstance(mapping.dimensions, dict) else {}, blank_roles(mapping)
    )
    missing = []
    for role, code in by_role.items():
        lacking = [d for d in required.get(code, []) if d not in (given.get(role) or {})]
        if lacking:
            missing.append(
                f"account {code} ({role}) requires dimension type{'s' if len(lacking) > 1 else ''} "
                f'{", ".join(lacking)}: add {", ".join(lacking)} under "{role}"'
            )
    if not missing:
        return {}
    return {"dimensions": "Sage X3 would refuse these lines: " + "; ".join(missing) + "."}
