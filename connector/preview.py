"""Dry run: what the store's real orders would become in Sage X3, without writing anything anywhere.

Reads orders from BigCommerce through the tenant's client, runs the planning rule (``accounting.planning.target_for``)
and the pure journal builder on each, and asks the tenant's X3 client for the exact request body it would send
(``X3Client.preview``: api1 JSON, GraphQL query + variables, or the SOAP object XML) — never ``create_entry``. No
``Posting`` row is created and nothing is sent to X3: the only calls made are BigCommerce reads.

Used by ``manage.py preview_orders`` and step 8 of the guided setup page (connector/setup_views.py); both only
render the :class:`PreviewResult` returned here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal

from accounting import planning
from accounting.chart import suggestions
from accounting.dimensions import with_dimensions
from accounting.journal import Accounts, Journal, Policy, build_order_journal, quantize
from accounting.models import ChannelMapping, GlAccount, Posting
from integrations.bigcommerce.types import Order
from integrations.errors import AuthenticationError, IntegrationError, NotFoundError
from integrations.sagex3.types import Entry, EntryLine

from . import clients
from .channels import channel_names
from .models import Tenant, X3Connection

MAX_ORDERS = 100  # one BigCommerce call per order: a dry run of more than this is a backfill, not a preview
REQUIRED_ACCOUNT_FIELDS = ChannelMapping.REQUIRED_ACCOUNTS
BODY_FORMAT: dict[str, str] = {
    X3Connection.Method.REST_BASIC: "api1 JSON",
    X3Connection.Method.SOAP_BASIC: "SOAP object XML",
    X3Connection.Method.GRAPHQL_OAUTH2: "GraphQL query and variables",
    X3Connection.Method.GRAPHQL_JWT: "GraphQL query and variables",
}
STATE_WORDS = {
    "post": "would be posted",
    "void": "would not be posted (cancelled, declined or archived)",
    "wait": "would wait: its status is not a confirmed one yet",
    "shipment": "would wait for shipment: it is booked once everything is shipped",
    "unmapped": "would wait as 'needs mapping'",
    "empty": "would be skipped: every amount is zero",
}


@dataclass(frozen=True)
class Gap:
    """Something that stops (or would change) the posting, in plain words with what to do."""

    kind: str  # no_mapping, inactive_mapping, blank_account, unknown_account, closed_account, x3_request
    message: str


@dataclass(frozen=True)
class PreviewLine:
    role: str
    account: str
    account_name: str
    debit: Decimal  # at the currency's precision
    credit: Decimal
    description: str

    @property
    def is_rounding(self) -> bool:
        return self.role == "rounding"


@dataclass(frozen=True)
class OrderPreview:
    order_id: int
    channel_id: int = 0
    channel_name: str = ""
    status: str = ""
    currency: str = ""
    state: str = ""  # post, void, wait, unmapped, empty; "" when the order could not be read
    state_words: str = ""
    reference: str = ""
    accounting_date: date | None = None
    lines: tuple[PreviewLine, ...] = ()
    total_debit: Decimal = Decimal(0)
    total_credit: Decimal = Decimal(0)
    rounding: Decimal = Decimal(0)  # the amount on the rounding line, signed as a credit (0: none)
    flag_reason: str = ""
    notes: tuple[str, ...] = ()
    gaps: tuple[Gap, ...] = ()
    body_format: str = ""
    body: str = ""  # the exact request body the tenant's X3 client would send; "" when none can be built
    error: str = ""  # the order could not be read (e.g. it does not exist)

    @property
    def balanced(self) -> bool:
        return self.total_debit == self.total_credit

    @property
    def ok(self) -> bool:
        return not self.error and not self.gaps


@dataclass(frozen=True)
class PreviewResult:
    tenant: str
    method: str
    chart_loaded: bool
    orders: tuple[OrderPreview, ...] = ()
    error: str = ""  # BigCommerce could not be read at all: one plain line

    @property
    def gap_count(self) -> int:
        return sum(len(o.gaps) + bool(o.error) for o in self.orders)


def preview_orders(
    tenant: Tenant, *, last: int = 20, order_ids: list[int] | tuple[int, ...] = ()
) -> PreviewResult:
    """The last ``last`` orders (newest first), or exactly ``order_ids``, as the X3 entries they would become."""
    if not order_ids and not 1 <= last <= MAX_ORDERS:
        raise ValueError(f"--last must be between 1 and {MAX_ORDERS}")
    x3 = getattr(tenant, "x3", None)
    result = PreviewResult(
        tenant=tenant.slug,
        method=x3.get_method_display() if x3 else "",
        chart_loaded=GlAccount.objects.filter(tenant=tenant).exists(),
    )
    if not hasattr(tenant, "bigcommerce"):
        return _replace(result, error="This tenant has no BigCommerce store: add its credentials first.")
    if x3 is None:
        return _replace(result, error="This tenant has no Sage X3 connection: add it first.")
    bc = clients.bigcommerce_client(tenant)
    try:
        ids = list(order_ids) or [
            s["id"] for s in bc.list_orders(limit=last, page=1, sort="date_created:desc")
        ]
    except IntegrationError as exc:
        return _replace(result, error=bigcommerce_problem(exc))
    context = _Context.load(tenant)
    previews = []
    for order_id in ids:
        try:
            order = bc.get_order(order_id)
        except NotFoundError:
            previews.append(
                OrderPreview(order_id=order_id, error=f"Order {order_id} does not exist in the store.")
            )
            continue
        except IntegrationError as exc:
            if isinstance(exc, AuthenticationError) or exc.retryable:
                return _replace(result, error=bigcommerce_problem(exc), orders=tuple(previews))
            previews.append(OrderPreview(order_id=order_id, error=f"BigCommerce: {exc.message}"))
            continue
        previews.append(preview_order(tenant, order, context))
    return _replace(result, orders=tuple(previews))


def bigcommerce_problem(exc: IntegrationError) -> str:
    """One plain line for a BigCommerce failure, with what to do."""
    if isinstance(exc, AuthenticationError):
        return (
            "BigCommerce refused the access token (401): check the store hash and access token in the tenant's "
            "BigCommerce store settings."
        )
    if exc.retryable:
        return f"BigCommerce could not be reached ({exc.message}): try again in a few minutes."
    return f"BigCommerce answered with an error: {exc.message}"


@dataclass
class _Context:
    """What every order of one run needs from the database, read once."""

    mappings: list[ChannelMapping] = field(default_factory=list)  # every version, latest effective date first
    chart: dict[str, tuple[str, bool]] = field(default_factory=dict)  # code -> (name, postable)
    posted: dict[int, str] = field(default_factory=dict)  # order id -> status of its existing order posting
    names: dict[int, str] = field(
        default_factory=dict
    )  # channel -> the store's name for it, else the mapping's

    def version(self, channel_id: int, on: date) -> ChannelMapping | None:
        """The channel's mapping version in force on ``on`` (active or not), as planning.version_in_force."""
        return next((m for m in self.mappings if m.channel_id == channel_id and m.effective_from <= on), None)

    @classmethod
    def load(cls, tenant: Tenant) -> _Context:
        return cls(
            mappings=list(ChannelMapping.objects.filter(tenant=tenant).order_by("-effective_from")),
            names=channel_names(tenant.pk),
            chart={
                code: (name, postable)
                for code, name, postable in GlAccount.objects.filter(tenant=tenant).values_list(
                    "code", "name", "postable"
                )
            },
        )


def preview_order(tenant: Tenant, order: Order, context: _Context | None = None) -> OrderPreview:
    """One order as the X3 entry it would become now, with everything that would stop or change it."""
    context = context or _Context.load(tenant)
    x3: X3Connection = tenant.x3
    # A first posting's GL date, and the channel's mapping version in force on it (what planning would use).
    accounting_date = planning._gl_date(tenant, order, Posting(tenant=tenant), True)
    mapping = context.version(order.channel_id, accounting_date)
    gaps: list[Gap] = []
    target = planning.target_for(tenant, order, on=accounting_date)
    state = target.state
    if state == "post" and planning._waits_for_shipment(tenant, order):
        state = "shipment"  # shipped_last: the lines show what it would post once everything is shipped
    notes: list[str] = []
    if mapping is None:
        gaps.append(
            Gap(
                "no_mapping",
                f"No GL mapping for channel {order.channel_id}: add one (Channel mappings → Add), then preview again.",
            )
        )
    elif not mapping.is_active:
        gaps.append(
            Gap(
                "inactive_mapping",
                f"The mapping of channel {order.channel_id} is inactive: the order would wait as 'needs mapping'. "
                "Tick 'active' on the mapping to post it (the lines below show what it would post).",
            )
        )
    existing = (
        Posting.objects.filter(tenant=tenant, idempotency_key=planning.order_key(order.id))
        .values_list("status", flat=True)
        .first()
    )
    if existing:
        notes.append(
            f"Already known to the connector (its posting is '{Posting.Status(existing).label}'): a sync would "
            "post only what differs from what is already posted."
        )
    journal: Journal | None = target.journal
    if journal is None and mapping is not None and state in ("unmapped", "wait"):
        # Not postable as things stand, but show what it would post once mapped / confirmed.
        journal = build_order_journal(
            order,
            Accounts.from_mapping(mapping),
            Policy(rounding_account=tenant.rounding_account, rounding_threshold=tenant.rounding_threshold),
        )
    if state == "post" and journal is not None and journal.is_empty:
        state = "empty"
    if target.message and state != "unmapped":
        notes.append(target.message)
    if state == "post" and tenant.review_policy != tenant.ReviewPolicy.OFF:
        if tenant.review_policy == tenant.ReviewPolicy.ALL or (journal and journal.flagged):
            notes.append("It would wait for an accountant's approval before being sent (review policy).")
    currency = order.currency_code
    lines: tuple[PreviewLine, ...] = ()
    body = ""
    reference = ""
    if journal is not None and not journal.is_empty and mapping is not None:
        lines = tuple(
            PreviewLine(
                role=line.role,
                account=line.account,
                account_name=context.chart.get(line.account, ("", False))[0],
                debit=quantize(line.debit, currency),
                credit=quantize(line.credit, currency),
                description=line.description,
            )
            for line in journal.lines
        )
        gaps += _account_gaps(tenant, mapping, lines, context)
        # The same reference, date, description and site the planner gives a new order posting.
        reference = planning.x3_reference(
            tenant, Posting(tenant=tenant, kind=Posting.Kind.ORDER, order_id=order.id)
        )
        # The organisation (company, site, entry type, journal) and dimensions the version gives the entry.
        organisation = Posting(tenant=tenant)
        planning._record_organisation(organisation, target.accounts)
        dimensions = (target.accounts or {}).get("dimensions")
        entry = Entry(
            reference=reference,
            accounting_date=accounting_date,
            currency=currency,
            description=f"BigCommerce order {order.id}",
            entry_type=organisation.entry_type or x3.entry_type,
            journal=organisation.journal or x3.journal,
            site=organisation.site or mapping.site or x3.site,
            company=organisation.company,
            lines=tuple(
                EntryLine(
                    account=ln.account,
                    debit=ln.debit,
                    credit=ln.credit,
                    description=ln.description,
                    dimensions=ln.dimensions,
                )
                for ln in with_dimensions(journal.lines, dimensions)
            ),
            source_document=str(order.id),
        )
        try:
            body = clients.x3_client(tenant).preview(entry)
        except (IntegrationError, ValueError) as exc:
            gaps.append(
                Gap(
                    "x3_request",
                    f"The Sage X3 request cannot be built: {getattr(exc, 'message', exc)}. Fix the Sage X3 "
                    "connection settings of the tenant.",
                )
            )
    total_debit = sum((ln.debit for ln in lines), Decimal(0))
    total_credit = sum((ln.credit for ln in lines), Decimal(0))
    return OrderPreview(
        order_id=order.id,
        channel_id=order.channel_id,
        channel_name=context.names.get(order.channel_id) or (mapping.name if mapping else ""),
        status=order.status,
        currency=currency,
        state=state,
        state_words=STATE_WORDS.get(state, state),
        reference=reference,
        accounting_date=accounting_date,
        lines=lines,
        total_debit=total_debit,
        total_credit=total_credit,
        rounding=quantize(journal.difference, currency) if journal is not None else Decimal(0),
        flag_reason=journal.flag_reason if journal is not None else "",
        notes=tuple(notes),
        gaps=tuple(gaps),
        body_format=BODY_FORMAT.get(x3.method, x3.method) if body else "",
        body=body,
    )


def _account_gaps(
    tenant: Tenant, mapping: ChannelMapping, lines: tuple[PreviewLine, ...], context: _Context
) -> list[Gap]:
    gaps = []
    for name in REQUIRED_ACCOUNT_FIELDS:
        if not getattr(mapping, name):
            label = name.replace("_", " ")
            gaps.append(
                Gap(
                    "blank_account",
                    f"The {label} of channel {mapping.channel_id}'s mapping is blank: set it on the mapping.",
                )
            )
    seen: set[str] = set()
    for line in lines:
        if not line.account:
            if line.is_rounding:
                gaps.append(
                    Gap(
                        "blank_account",
                        "A rounding line is needed but the tenant has no rounding account: set it.",
                    )
                )
            continue
        if line.account in seen or not context.chart:
            continue
        seen.add(line.account)
        known = context.chart.get(line.account)
        postable = [c for c, (_, ok) in context.chart.items() if ok]
        near = suggestions(line.account, postable)
        hint = f" Did you mean {', '.join(near)}?" if near else ""
        where = (
            "the tenant's rounding account" if line.is_rounding else f"the {line.role} account of the mapping"
        )
        if known is None:
            gaps.append(
                Gap(
                    "unknown_account",
                    f"Account {line.account} ({where}) is not in the Sage X3 chart of accounts.{hint}",
                )
            )
        elif not known[1]:
            gaps.append(
                Gap(
                    "closed_account",
                    f"Account {line.account} ({where}) is closed to postings in Sage X3.{hint}",
                )
            )
    return gaps


def _replace(result: PreviewResult, **changes) -> PreviewResult:
    return replace(result, **changes)
