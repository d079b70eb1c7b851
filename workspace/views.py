"""The accountant's workspace: admin pages (dashboard, reconciliation, trial balance) and their CSV/XLSX exports.

Views stay thin: the figures come from accounting/figures.py, the tables from workspace/tables.py, and every
tenant is one of the user's (connector/access.py). docs/workspace.md describes each page.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.timesince import timesince
from django.views.decorators.http import require_POST

from accounting import figures
from accounting.journal import quantize
from accounting.models import Posting
from connector.access import tenant_or_404, tenants_for
from connector.channels import channel_label, channel_names, refresh_channels, refresh_if_stale
from connector.models import ReReadRun, TieOutRow, TieOutRun
from connector.reconcile import start_reread
from connector.tieout import start_tie_out
from integrations.errors import IntegrationError

from .chart import chart_data, chart_json
from .tables import Cell, Table, csv_response, xlsx_response

S = Posting.Status
POSTINGS = "admin:accounting_posting_changelist"
LINES = "admin:accounting_postingline_changelist"
STATUS_CSS = {
    figures.MATCHED: "ws-ok",
    figures.NOT_POSTED_YET: "ws-wait",
    figures.DIFFERS: "ws-bad",
    figures.FAILED_STATUS: "ws-bad",
}


def _require(request: HttpRequest, perm: str = "accounting.view_posting") -> None:
    if not request.user.has_perm(perm):
        raise PermissionDenied


def _export(request: HttpRequest, tables: list[Table], filename: str) -> HttpResponse | None:
    fmt = request.GET.get("export")
    if not fmt:
        return None
    _require(request, "accounting.export_posting")
    if fmt == "csv":
        return csv_response(tables, filename)
    if fmt == "xlsx":
        return xlsx_response(tables, filename)
    return HttpResponse("Unknown export format: use csv or xlsx.", status=400, content_type="text/plain")


def _page(request, template: str, title: str, status: int = 200, **context) -> TemplateResponse:
    return TemplateResponse(
        request,
        template,
        {**admin.site.each_context(request), "title": title, **context},
        status=status,
    )


def _url(name: str, **params) -> str:
    return reverse(name) + "?" + urlencode({k: v for k, v in params.items() if v is not None})


def _export_links(request) -> dict[str, str]:
    if not request.user.has_perm("accounting.export_posting"):
        return {}
    params = request.GET.copy()
    links = {}
    for fmt in ("csv", "xlsx"):
        params["export"] = fmt
        links[fmt] = f"{request.path}?{params.urlencode()}"
    return links


def _channel_names(tenant) -> dict[int, str]:
    """BigCommerce's channel names (cached), else the mapping's name; the label falls back to the number."""
    return channel_names(tenant.pk)


class _Filters:
    """Tenant, period and channel from the query string; ``error`` says in plain words what was wrong."""

    def __init__(self, request: HttpRequest, data=None):
        self.tenants = list(tenants_for(request.user))
        self.error = ""
        self.tenant = None
        self.period = None
        get = request.GET if data is None else data
        self.kind = get.get("period", "last_month")
        self.on = get.get("on", "")
        self.start = get.get("start", "")
        self.end = get.get("end", "")
        self.channel = get.get("channel", "")
        self.channel_id = None
        if not self.tenants:
            self.error = "You have not been granted any tenant yet: ask an administrator."
            return
        tenant_id = get.get("tenant") or self.tenants[0].pk
        self.tenant = tenant_or_404(request.user, tenant_id)
        today = timezone.localdate()
        try:
            self.period = figures.period_for(
                self.kind,
                today,
                on=figures.parse_date(self.on, "The date"),
                start=figures.parse_date(self.start, "The start date"),
                end=figures.parse_date(self.end, "The end date"),
            )
            if self.channel:
                if not self.channel.isdigit():
                    raise figures.PeriodError(f"The channel must be a channel number, not {self.channel!r}.")
                self.channel_id = int(self.channel)
        except figures.PeriodError as exc:
            self.error = str(exc)
            self.period = None

    @property
    def channel_choices(self) -> list[tuple[str, str, bool]]:
        """The tenant's channels by name for the channel picker (and the one asked for, even if unknown)."""
        names = channel_names(self.tenant.pk) if self.tenant else {}
        ids = sorted(set(names) | ({self.channel_id} if self.channel_id is not None else set()))
        chosen = str(self.channel_id) if self.channel_id is not None else ""
        return [(str(i), channel_label(i, names), str(i) == chosen) for i in ids]

    @property
    def context(self) -> dict:
        return {
            "filters": self,
            "period_choices": figures.PERIOD_CHOICES,
        }


# --- Reconciliation ------------------------------------------------------------------------------------------------

RECON_COLUMNS = [
    "Day",
    "Channel",
    "Status",
    "Difference",
    "Currency",
    "Orders",
    "Refunds",
    "BC sales",
    "BC tax",
    "BC shipping",
    "BC refunds",
    "GL sales",
    "GL revenue",
    "GL discounts",
    "GL shipping",
    "GL tax",
    "GL COGS",
    "GL refunds",
    "What differs",
]
RECON_GROUPS = [("", 7), ("BigCommerce (order snapshots)", 4), ("Posted in the GL, by line role", 7)]


def _recon_cells(row: figures.ReconRow, tenant, names, *, total: bool = False) -> list[Cell]:
    status = row.status
    if total:
        day, channel = Cell(f"Total {row.currency}"), Cell("")
        orders, refunds = Cell(row.orders), Cell(row.refunds)
        status_cell = Cell(status, css=STATUS_CSS[status], note=row.notes)
    else:
        day = Cell(row.day)
        channel = Cell(channel_label(row.channel_id, names))
        orders = Cell(
            row.orders,
            href=_url(
                POSTINGS,
                tenant__id__exact=tenant.pk,
                channel_id=row.channel_id,
                gl_date=row.day,
                kind__exact="order",
            )
            if row.orders
            else "",
        )
        refunds = Cell(
            row.refunds,
            href=_url(
                POSTINGS,
                tenant__id__exact=tenant.pk,
                channel_id=row.channel_id,
                gl_date=row.day,
                kind__exact="refund",
            )
            if row.refunds
            else "",
        )
        problems = (
            _url(
                POSTINGS,
                tenant__id__exact=tenant.pk,
                order_id__in=",".join(map(str, row.problem_orders[:200])),
            )
            if row.problem_orders
            else ""
        )
        status_cell = Cell(status, href=problems, css=STATUS_CSS[status], note=row.notes)
    diff = row.difference
    return [
        day,
        channel,
        status_cell,
        Cell(diff, css="ws-bad" if diff else ""),
        Cell(row.currency),
        orders,
        refunds,
        *(Cell(row.bc[m]) for m in figures.MEASURES),
        *(Cell(row.gl[c]) for c in figures.GL_COLUMNS),
        Cell(row.notes),  # in the files a column; on screen the status cell's second line
    ]


def reconciliation_table(result: figures.Reconciliation, tenant) -> Table:
    names = _channel_names(tenant)
    return Table(
        title="Reconciliation",
        columns=RECON_COLUMNS,
        groups=RECON_GROUPS,
        screen_columns=len(RECON_COLUMNS) - 1,
        rows=[_recon_cells(r, tenant, names) for r in result.rows],
        totals=[_recon_cells(t, tenant, names, total=True) for t in result.totals],
    )


TIEOUT_COLUMNS = [
    "Problem",
    "Entry",
    "GL date",
    "Channel",
    "Currency",
    "Amount",
    "Reference",
    "X3 document",
    "Detail",
]


def tie_out_table(run: TieOutRun, tenant) -> Table:
    names = _channel_names(tenant)
    rows = []
    for r in run.rows.select_related("posting"):
        p = r.posting
        href = reverse("admin:accounting_posting_change", args=[p.pk]) if p else ""
        rows.append(
            [
                Cell(
                    r.get_problem_display(),
                    css="ws-bad" if r.problem != TieOutRow.Problem.ERROR else "ws-wait",
                ),
                Cell(p.entry_label if p else r.reference, href=href),
                Cell(p.gl_date if p else None),
                Cell(channel_label(p.channel_id, names) if p else ""),
                Cell(p.currency if p else ""),
                Cell(quantize(p.total, p.currency or "USD") if p else None),
                Cell(r.reference),
                Cell(r.x3_document_number),
                Cell(r.detail),
            ]
        )
    return Table(title="X3 tie-out", columns=TIEOUT_COLUMNS, rows=rows)


def tie_out_summary(run: TieOutRun) -> str:
    """ "X3 tie-out: checked 1,234 entries on 2026-12-03 10:15: 2 missing, 1 differs, 1,231 matched." """
    when = timezone.localtime(run.finished_at).strftime("%Y-%m-%d %H:%M") if run.finished_at else ""
    parts = [f"{run.missing:,} missing", f"{run.differs:,} differ{'s' if run.differs == 1 else ''}"]
    if run.errors:
        parts.append(f"{run.errors:,} could not be checked")
    parts.append(f"{run.matched:,} matched")
    entries = "entry" if run.checked == 1 else "entries"
    return f"X3 tie-out: checked {run.checked:,} {entries} on {when}: {', '.join(parts)}."


def _runs(tenant, period, channel_id):
    reread = ReReadRun.objects.filter(tenant=tenant).first()
    tie_out = TieOutRun.objects.filter(
        tenant=tenant, period_start=period.start, period_end=period.end, channel_id=channel_id
    ).first()
    return reread, tie_out


def reconciliation_view(request: HttpRequest) -> HttpResponse:
    _require(request)
    f = _Filters(request)
    title = "Reconciliation: BigCommerce vs the GL"
    if f.error or f.tenant is None or f.period is None:
        return _page(request, "workspace/reconciliation.html", title, status=400, **f.context)
    channel_warning = refresh_if_stale(f.tenant)
    reread, tie_out = _runs(f.tenant, f.period, f.channel_id)
    if request.GET.get("part") == "tieout":
        if tie_out is None or tie_out.status != TieOutRun.Status.DONE:
            why = (
                "No X3 tie-out has run for this period yet."
                if tie_out is None
                else f"The last X3 tie-out for this period is not complete ({tie_out.get_status_display()}). "
                f"{tie_out.message}"
            )
            return HttpResponse(why.strip(), status=404, content_type="text/plain")
        name = f"x3-tie-out-{f.tenant.slug}-{f.period.start}-{f.period.end}"
        response = _export(request, [tie_out_table(tie_out, f.tenant)], name)
        if response is not None:
            return response
    result = figures.reconcile(f.tenant, f.period, channel_id=f.channel_id)
    table = reconciliation_table(result, f.tenant)
    response = _export(request, [table], f"reconciliation-{f.tenant.slug}-{f.period.start}-{f.period.end}")
    if response is not None:
        return response
    tie_out_exports = {}
    if tie_out is not None and tie_out.status == TieOutRun.Status.DONE:
        tie_out_exports = {
            fmt: link.replace("export=", "part=tieout&export=")
            for fmt, link in _export_links(request).items()
        }
    can_operate = request.user.has_perm(OPERATE)
    return _page(
        request,
        "workspace/reconciliation.html",
        title,
        table=table,
        result=result,
        exports=_export_links(request),
        channel_warning=channel_warning,
        reread=reread,
        tie_out=tie_out,
        tie_out_summary=tie_out_summary(tie_out)
        if tie_out and tie_out.status == TieOutRun.Status.DONE
        else "",
        tie_out_table=tie_out_table(tie_out, f.tenant)
        if tie_out and tie_out.status == TieOutRun.Status.DONE
        else None,
        tie_out_exports=tie_out_exports,
        can_operate=can_operate,
        action_fields=_action_fields(f),
        tb_url=request.get_full_path().replace(
            reverse("workspace-reconciliation"), reverse("workspace-trial-balance")
        ),
        **f.context,
    )


# --- Actions on the reconciliation page (POST only, CSRF-protected by the admin, one of the user's tenants) -----------

OPERATE = "accounting.operate_posting"
FILTER_FIELDS = ("tenant", "period", "on", "start", "end", "channel")


def _action_fields(f: _Filters) -> list[tuple[str, str]]:
    """The filters as hidden form fields, so an action returns to the same page."""
    values = {
        "tenant": str(f.tenant.pk) if f.tenant else "",
        "period": f.kind,
        "on": f.on,
        "start": f.start,
        "end": f.end,
        "channel": f.channel,
    }
    return [(k, v) for k, v in values.items() if v]


def _back(request: HttpRequest) -> HttpResponseRedirect:
    params = {k: request.POST[k] for k in FILTER_FIELDS if request.POST.get(k)}
    return HttpResponseRedirect(reverse("workspace-reconciliation") + "?" + urlencode(params))


def _action_filters(request: HttpRequest, perm: str) -> _Filters:
    _require(request, perm)
    if not request.POST.get("tenant"):
        raise Http404("No such tenant")
    return _Filters(request, request.POST)  # another merchant's tenant: 404


@require_POST
def reread_view(request: HttpRequest) -> HttpResponse:
    f = _action_filters(request, OPERATE)
    if f.error or f.tenant is None or f.period is None:
        messages.error(request, f.error or "Choose a tenant and a period.")
        return _back(request)
    if not hasattr(f.tenant, "bigcommerce"):
        messages.error(
            request, "This tenant has no BigCommerce store configured: set it up on the tenant first."
        )
        return _back(request)
    started = start_reread(f.tenant, f.period.start, f.period.end, channel_id=f.channel_id, user=request.user)
    if started.created:
        days = (f.period.end - f.period.start).days + 1
        messages.success(
            request, f"Re-reading {days} day{'s' if days != 1 else ''} from BigCommerce; refresh in a minute."
        )
    else:
        messages.warning(
            request,
            f"A re-read for {f.tenant.name} is already under way (asked at "
            f"{timezone.localtime(started.run.requested_at):%H:%M}); refresh in a minute.",
        )
    return _back(request)


@require_POST
def tie_out_view(request: HttpRequest) -> HttpResponse:
    f = _action_filters(request, OPERATE)
    if f.error or f.tenant is None or f.period is None:
        messages.error(request, f.error or "Choose a tenant and a period.")
        return _back(request)
    if not hasattr(f.tenant, "x3"):
        messages.error(request, "This tenant has no Sage X3 connection: set it up on the tenant first.")
        return _back(request)
    count = Posting.objects.filter(
        tenant=f.tenant, status=S.POSTED, gl_date__gte=f.period.start, gl_date__lte=f.period.end
    )
    if f.channel_id is not None:
        count = count.filter(channel_id=f.channel_id)
    run, created = start_tie_out(
        f.tenant, f.period.start, f.period.end, channel_id=f.channel_id, user=request.user
    )
    if created:
        messages.success(
            request, f"Checking {count.count():,} posted entries against Sage X3; refresh in a few minutes."
        )
    else:
        messages.warning(
            request, f"A tie-out for {f.tenant.name} is already under way; refresh in a few minutes."
        )
    return _back(request)


@require_POST
def refresh_channels_view(request: HttpRequest) -> HttpResponse:
    f = _action_filters(request, "accounting.view_posting")
    if f.tenant is None or not hasattr(f.tenant, "bigcommerce"):
        messages.error(request, "This tenant has no BigCommerce store configured.")
        return _back(request)
    try:
        n = refresh_channels(f.tenant)
    except IntegrationError as exc:
        messages.error(
            request,
            f"BigCommerce could not be read ({exc.message}); the last known channel names stay in use. Try again later.",
        )
    else:
        messages.success(request, f"Read {n} channel name{'s' if n != 1 else ''} from BigCommerce.")
    return _back(request)


# --- Trial balance -------------------------------------------------------------------------------------------------

TB_COLUMNS = ["Channel", "Account", "Name", "Roles", "Currency", "Lines", "Debit", "Credit", "Balance"]


def trial_balance_table(result: figures.TrialBalance, tenant) -> Table:
    names = _channel_names(tenant)
    period = result.period
    rows = []
    for r in result.rows:
        href = _url(
            LINES,
            posting__tenant__id__exact=tenant.pk,
            posting__channel_id=r.channel_id,
            account=r.account,
            posting__currency=r.currency,
            posting__status__exact=S.POSTED,
            posting__gl_date__gte=period.start,
            posting__gl_date__lte=period.end,
        )
        rows.append(
            [
                Cell(channel_label(r.channel_id, names)),
                Cell(r.account, href=href),
                Cell(r.name),
                Cell(", ".join(r.roles)),
                Cell(r.currency),
                Cell(r.lines, href=href),
                Cell(r.debit, blank_zero=True),
                Cell(r.credit, blank_zero=True),
                Cell(r.balance),
            ]
        )
    totals = [
        [
            Cell(f"Total {t.currency}"),
            Cell(""),
            Cell(""),
            Cell(""),
            Cell(t.currency),
            Cell(t.lines),
            Cell(t.debit),
            Cell(t.credit),
            Cell(t.balance, css="ws-bad" if t.balance else ""),
        ]
        for t in result.totals
    ]
    return Table(title="Trial balance", columns=TB_COLUMNS, rows=rows, totals=totals)


def trial_balance_view(request: HttpRequest) -> HttpResponse:
    _require(request)
    f = _Filters(request)
    title = "Trial balance of the posted entries"
    if f.error or f.tenant is None or f.period is None:
        return _page(request, "workspace/trial_balance.html", title, status=400, **f.context)
    table = trial_balance_table(figures.trial_balance(f.tenant, f.period, channel_id=f.channel_id), f.tenant)
    response = _export(request, [table], f"trial-balance-{f.tenant.slug}-{f.period.start}-{f.period.end}")
    if response is not None:
        return response
    return _page(
        request,
        "workspace/trial_balance.html",
        title,
        table=table,
        exports=_export_links(request),
        recon_url=request.get_full_path().replace(
            reverse("workspace-trial-balance"), reverse("workspace-reconciliation")
        ),
        **f.context,
    )


# --- Dashboard -----------------------------------------------------------------------------------------------------

ATTENTION_LABELS = {
    S.NEEDS_ATTENTION: "Needs attention (X3 refused)",
    S.NEEDS_MAPPING: "Needs mapping",
    S.NEEDS_REAUTH: "Needs re-authorization",
    S.AWAITING_APPROVAL: "Awaiting approval",
    S.HELD: "Held: period closed",
    S.UNKNOWN: "Outcome unknown",
}


def _age(moment, now) -> str:
    return "—" if moment is None else f"{timesince(moment, now)} ago"


def dashboard_tables(summaries, today, now) -> tuple[Table, Table]:
    posted = Table(
        title="Posted",
        columns=[
            "Tenant",
            "Channel",
            "Currency",
            "Today",
            "Entries today",
            "This month",
            "Entries this month",
        ],
    )
    work = Table(
        title="Needs a person",
        columns=["Tenant", *ATTENTION_LABELS.values(), "Last webhook received", "Oldest unfinished posting"],
    )
    for s in summaries:
        names = _channel_names(s.tenant)
        for p in s.posted:
            posted.rows.append(
                [
                    Cell(s.tenant.name),
                    Cell(channel_label(p["channel_id"], names)),
                    Cell(p["currency"]),
                    Cell(p["today"]),
                    Cell(p["today_count"]),
                    Cell(p["month"]),
                    Cell(p["month_count"]),
                ]
            )
        work.rows.append(
            [
                Cell(s.tenant.name),
                *(
                    Cell(
                        s.attention[status],
                        href=_url(POSTINGS, tenant__id__exact=s.tenant.pk, status__exact=status),
                        css="ws-bad" if s.attention[status] else "",
                    )
                    for status in ATTENTION_LABELS
                ),
                Cell(s.last_webhook),
                Cell(_age(s.oldest_unfinished, now), css="ws-wait" if s.oldest_unfinished else ""),
            ]
        )
    return posted, work


def dashboard_view(request: HttpRequest) -> HttpResponse:
    _require(request)
    from connector.admin import x3_authorization_summary

    tenants = list(tenants_for(request.user).select_related("x3"))
    if request.GET.get("tenant"):
        tenants = [tenant_or_404(request.user, request.GET["tenant"])]
    today, now = timezone.localdate(), timezone.now()
    try:
        days = int(request.GET.get("days", "30"))
    except ValueError:
        days = 0
    if days not in (30, 90):
        return HttpResponse("The chart covers 30 or 90 days.", status=400, content_type="text/plain")
    summaries = figures.dashboard(tenants, today)
    posted, work = dashboard_tables(summaries, today, now)
    response = _export(request, [posted, work], f"dashboard-{today}")
    if response is not None:
        return response
    chart_days = [today - timedelta(days=i) for i in range(days - 1, -1, -1)]
    cards = []
    for s in summaries:
        names = _channel_names(s.tenant)
        series = figures.revenue_by_day(s.tenant, chart_days[0], today)
        charts = []
        for currency in sorted({c for _, c in series}):
            lines = [
                (channel_label(ch, names), points)
                for (ch, cur), points in sorted(series.items(), key=lambda i: (i[0][0] or 0, i[0][1]))
                if cur == currency
            ]
            data = chart_data(chart_days, lines, unit=currency)
            charts.append(
                {
                    "id": f"chart-{s.tenant.pk}-{currency}",
                    "currency": currency,
                    "data": data,
                    "json": chart_json(data),
                }
            )
        x3 = getattr(s.tenant, "x3", None)
        level, text = x3_authorization_summary(x3) if x3 else ("error", "No Sage X3 connection configured.")
        cards.append(
            {
                "summary": s,
                "charts": charts,
                "x3_level": level,
                "x3_text": text or (f"{x3.get_method_display()}" if x3 else ""),
                "posted": [r for r in posted.rows if r[0].value == s.tenant.name],
                "work": next(r for r in work.rows if r[0].value == s.tenant.name),
                "recon_url": _url("workspace-reconciliation", tenant=s.tenant.pk, period="month"),
                "last_month_url": _url("workspace-reconciliation", tenant=s.tenant.pk, period="last_month"),
            }
        )
    return _page(
        request,
        "workspace/dashboard.html",
        "Dashboard",
        cards=cards,
        posted=posted,
        work=work,
        days=days,
        today=today,
        exports=_export_links(request),
    )
