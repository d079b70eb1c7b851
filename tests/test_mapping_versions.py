"""Channel mapping versions (effective dates), per-channel X3 organisation and analytical dimensions, end to end
through planning and delivery (fakes), the model's checks, the admin and the import."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from tablib import Dataset

from accounting.admin import ChannelMappingResource
from accounting.chart import store_chart
from accounting.dimensions import dimension_problems
from accounting.models import BEGINNING, ChannelMapping, GlAccount, Posting
from accounting.planning import mapping_for
from connector.pipeline import sync_order
from integrations.sagex3.accounts import Account
from tests.conftest import order_json
from tests.fakes import FakeBigCommerce, FakeX3

D = Decimal
S = Posting.Status
# order_json's orders are created on 2026-03-05 (UTC): their GL date.
MARCH_5 = "Thu, 05 Mar 2026 21:40:11 +0000"
MARCH_20 = "Fri, 20 Mar 2026 10:00:00 +0000"


@pytest.fixture
def bc():
    return FakeBigCommerce()


@pytest.fixture
def x3():
    return FakeX3()


@pytest.fixture
def sync(tenant, bc, x3):
    def run(order_id: int = 250, *, refund_id: int | None = None):
        return sync_order(
            tenant=tenant,
            order_id=order_id,
            trigger="webhook",
            refund_id=refund_id,
            bc_client=bc,
            x3_client=x3,
        )

    return run


def new_version(tenant, effective_from: date, **changes) -> ChannelMapping:
    """A new version of channel 2 from ``effective_from``: the current one with ``changes``."""
    current = ChannelMapping.objects.filter(tenant=tenant, channel_id=2).order_by("-effective_from").first()
    current.pk = None
    current._state.adding = True
    current.effective_from = effective_from
    for key, value in changes.items():
        setattr(current, key, value)
    current.full_clean()
    current.save()
    return current


def accounts_of(entry) -> set[str]:
    return {line.account for line in entry.lines}


# --- selection by GL date -----------------------------------------------------------------------------------------


def test_the_version_in_force_is_the_latest_on_or_before_the_gl_date(tenant):
    v1 = ChannelMapping.objects.get(tenant=tenant, channel_id=2)
    assert v1.effective_from == BEGINNING
    v2 = new_version(tenant, date(2026, 3, 15), revenue_account="702001")
    v3 = new_version(tenant, date(2026, 4, 1), revenue_account="702002", is_active=False)

    assert mapping_for(tenant, 2, date(2026, 3, 14)) == v1
    assert mapping_for(tenant, 2, date(2026, 3, 15)) == v2  # effective on its own date
    assert mapping_for(tenant, 2, date(2026, 3, 31)) == v2
    assert v3.pk and mapping_for(tenant, 2, date(2026, 4, 1)) is None  # switched off from April: unmapped
    assert mapping_for(tenant, 2, date(1900, 1, 1)) == v1
    assert mapping_for(tenant, 9, date(2026, 3, 15)) is None


def test_a_mid_month_change_posts_earlier_dated_orders_on_the_old_accounts(tenant, bc, x3, sync):
    # given a new version of channel 2 from 15 March with a new revenue account, site, journal and dimensions
    v1 = ChannelMapping.objects.get(tenant=tenant, channel_id=2)
    v2 = new_version(
        tenant,
        date(2026, 3, 15),
        revenue_account="702001",
        site="FR012",
        company="FR10",
        journal="WEB",
        dimensions={"revenue": {"CCT": "WEB", "BRA": "{channel_id}"}},
    )
    # when an order of 5 March and one of 20 March are posted (after the change)
    bc.put_order(order_json(250, date_created=MARCH_5, date_modified=MARCH_5))
    bc.put_order(order_json(251, date_created=MARCH_20, date_modified=MARCH_20))
    sync(250)
    sync(251)

    # then the 5 March order uses the old accounts and organisation, the 20 March one the new
    early, late = x3.entries
    assert "702000" in accounts_of(early) and "702001" not in accounts_of(early)
    assert (early.site, early.company, early.journal, early.entry_type) == ("FR011", "", "VEN", "ODG")
    assert all(not line.dimensions for line in early.lines)
    assert "702001" in accounts_of(late) and "702000" not in accounts_of(late)
    assert (late.site, late.company, late.journal, late.entry_type) == ("FR012", "FR10", "WEB", "ODG")
    revenue = next(line for line in late.lines if line.account == "702001")
    assert revenue.dimensions == (("BRA", "2"), ("CCT", "WEB"))  # sorted by type
    assert all(not line.dimensions for line in late.lines if line.account != "702001")

    # and each posting records its version, its organisation and, on each line, the dimensions
    p250 = Posting.objects.get(tenant=tenant, idempotency_key="order:250")
    p251 = Posting.objects.get(tenant=tenant, idempotency_key="order:251")
    assert p250.mapping_version == v1 and p251.mapping_version == v2
    assert (p251.company, p251.site, p251.entry_type, p251.journal) == ("FR10", "FR012", "ODG", "WEB")
    assert (p250.company, p250.site, p250.entry_type, p250.journal) == ("", "FR011", "ODG", "VEN")
    assert p251.lines.get(role="revenue").dimensions == {"CCT": "WEB", "BRA": "2"}
    assert p251.lines.get(role="receivable").dimensions == {}


def test_refunds_and_adjustments_keep_the_orders_version_across_a_change(tenant, bc, x3, sync):
    # given an order posted on version 1 with dimensions on revenue
    ChannelMapping.objects.filter(tenant=tenant, channel_id=2).update(
        dimensions={"revenue": {"CCT": "OLD"}}, site="FR013"
    )
    v1 = ChannelMapping.objects.get(tenant=tenant, channel_id=2)
    bc.put_order(order_json(250, date_created=MARCH_5, date_modified=MARCH_5))
    sync()
    # and a version 2 from 6 March with other accounts, site and dimensions
    new_version(
        tenant,
        date(2026, 3, 6),
        revenue_account="799999",
        tax_account="449999",
        receivable_account="419999",
        site="FR099",
        dimensions={"revenue": {"CCT": "NEW"}},
    )

    # when the order is edited on 20 March and a mug is refunded in April (after the change)
    bc.put_order(order_json(250, date_created=MARCH_5, date_modified=MARCH_20, shipping_ex="12.00"))
    sync()
    bc.add_refund(
        250, 1, total="21.60", tax="1.60", items=[{"item_type": "PRODUCT", "item_id": 11, "quantity": 1}]
    )
    bc.put_order(
        order_json(250, status_id=14, date_created=MARCH_5, date_modified=MARCH_20, shipping_ex="12.00")
    )
    sync(refund_id=1)

    # then the adjustment and the refund post on the order's version 1 accounts, site and dimensions
    order, adjustment, refund = x3.entries
    assert adjustment.reference.endswith("-A1") and refund.reference.endswith("-R1")
    assert accounts_of(adjustment) <= accounts_of(order)
    assert accounts_of(refund) == {"412000", "702000", "442570"}
    assert {e.site for e in x3.entries} == {"FR013"}
    refund_revenue = next(line for line in refund.lines if line.account == "702000")
    assert refund_revenue.dimensions == (("CCT", "OLD"),)
    keys = ("order:250", "adjustment:250:1", "refund:250:1")
    assert {p.mapping_version for p in Posting.objects.filter(tenant=tenant, idempotency_key__in=keys)} == {
        v1
    }


# --- checks on a mapping ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dimensions", "expected"),
    [
        ({"revenue": {"CCT": "WEB", "BRA": "{channel_id}"}}, []),
        ({}, []),
        ({"sales": {"CCT": "WEB"}}, ["Unknown line role 'sales'"]),
        ({"revenue": {"CC T": "WEB"}}, ["dimension type 'CC T' must be an X3 code"]),
        ({"revenue": {"CCT": "WEB SHOP"}}, ["value 'WEB SHOP' must be an X3 dimension code"]),
        ({"revenue": {"CCT": "{order_id}"}}, ["value '{order_id}'"]),
        ({"revenue": ["CCT"]}, ["must be an object of dimension type -> value"]),
        (["revenue"], ["Dimensions must be a JSON object"]),
    ],
)
def test_dimensions_are_validated_in_plain_words(dimensions, expected):
    problems = dimension_problems(dimensions)
    assert len(problems) == len(expected)
    for problem, words in zip(problems, expected, strict=True):
        assert words in problem


def test_saving_a_mapping_with_bad_dimensions_fails(tenant):
    mapping = ChannelMapping.objects.get(tenant=tenant, channel_id=2)
    mapping.dimensions = {"revenu": {"CCT": "WEB"}}
    with pytest.raises(ValidationError) as caught:
        mapping.full_clean()
    assert "Unknown line role 'revenu'" in str(caught.value.message_dict["dimensions"])


def test_an_account_that_requires_a_dimension_type_needs_it_on_its_role(tenant):
    # given a chart in which revenue account 702000 requires dimension type CCT (and BRA)
    store_chart(
        tenant.pk,
        [
            Account(code=code, name=code, dimensions=("CCT", "BRA") if code == "702000" else ())
            for code in ("412000", "702000", "702800", "442570", "702900", "602000", "372000")
        ],
    )
    mapping = ChannelMapping.objects.get(tenant=tenant, channel_id=2)
    assert GlAccount.objects.get(tenant=tenant, code="702000").dimensions == ["CCT", "BRA"]

    # then a mapping without them cannot be saved, with a plain message naming the account, role and types
    with pytest.raises(ValidationError) as caught:
        mapping.full_clean()
    message = " ".join(caught.value.message_dict["dimensions"])
    assert "account 702000 (revenue) requires dimension types CCT, BRA" in message
    mapping.dimensions = {"revenue": {"CCT": "WEB"}}
    with pytest.raises(ValidationError, match="requires dimension type BRA"):
        mapping.full_clean()
    # and a dimension on another role does not count
    mapping.dimensions = {"tax": {"CCT": "WEB", "BRA": "1"}, "revenue": {"CCT": "WEB"}}
    with pytest.raises(ValidationError):
        mapping.full_clean()
    mapping.dimensions = {"revenue": {"CCT": "WEB", "BRA": "{channel_id}"}}
    mapping.full_clean()


def test_a_version_entries_used_is_frozen(tenant, bc, x3, sync):
    bc.put_order(order_json(250))
    sync()
    mapping = ChannelMapping.objects.get(tenant=tenant, channel_id=2)
    mapping.revenue_account = "702001"
    with pytest.raises(ValidationError, match="used by 1 entry.*add a new version.*revenue account"):
        mapping.full_clean()
    # a name or switching the channel off is still fine
    mapping.refresh_from_db()
    mapping.name = "Web shop"
    mapping.is_active = False
    mapping.full_clean()


# --- admin --------------------------------------------------------------------------------------------------------


def form_data(mapping: ChannelMapping, **changes) -> dict:
    data = {
        f: getattr(mapping, f) or ""
        for f in (
            "channel_id",
            "name",
            "receivable_account",
            "revenue_account",
            "shipping_account",
            "handling_account",
            "wrapping_account",
            "fee_account",
            "tax_account",
            "discount_account",
            "cogs_account",
            "inventory_account",
            "company",
            "site",
            "entry_type",
            "journal",
        )
    }
    data.update(
        tenant=mapping.tenant_id,
        is_active="on",
        effective_from=mapping.effective_from.isoformat(),
        dimensions="{}",
    )
    data.update(changes)
    return data


def test_admin_change_with_a_new_date_adds_a_version_and_shows_the_history(admin_client, admin_user, tenant):
    v1 = ChannelMapping.objects.get(tenant=tenant, channel_id=2)
    url = f"/admin/accounting/channelmapping/{v1.pk}/change/"
    response = admin_client.post(
        url,
        form_data(
            v1,
            effective_from="2026-03-15",
            revenue_account="702001",
            site="FR012",
            dimensions='{"revenue": {"CCT": "WEB"}}',
        ),
    )
    assert response.status_code == 302, response.content.decode()[-3000:]

    versions = list(ChannelMapping.objects.filter(tenant=tenant, channel_id=2).order_by("effective_from"))
    assert [v.effective_from for v in versions] == [BEGINNING, date(2026, 3, 15)]
    assert versions[0].revenue_account == "702000" and versions[0].site == ""  # the old one stays as it was
    assert versions[1].revenue_account == "702001" and versions[1].created_by == admin_user
    assert versions[1].dimensions == {"revenue": {"CCT": "WEB"}}

    page = admin_client.get(f"/admin/accounting/channelmapping/{versions[1].pk}/change/").content.decode()
    assert "from 1900-01-01" in page and "from 2026-03-15" in page
    assert "revenue account 702000 → 702001" in page and "first version" in page
    assert "in force today" in page


def test_admin_refuses_bad_dimensions_in_plain_words(admin_client, tenant):
    v1 = ChannelMapping.objects.get(tenant=tenant, channel_id=2)
    url = f"/admin/accounting/channelmapping/{v1.pk}/change/"
    response = admin_client.post(url, form_data(v1, dimensions='{"sales": {"CCT": "WEB"}}'))
    assert response.status_code == 200
    assert "Unknown line role &#x27;sales&#x27;" in response.content.decode()
    assert ChannelMapping.objects.get(pk=v1.pk).dimensions == {}


def test_posting_lines_show_their_dimensions_in_the_admin(admin_client, tenant, bc, x3, sync):
    ChannelMapping.objects.filter(tenant=tenant, channel_id=2).update(
        dimensions={"revenue": {"CCT": "WEBSHOP"}}
    )
    bc.put_order(order_json(250))
    sync()
    posting = Posting.objects.get(tenant=tenant, idempotency_key="order:250")
    page = admin_client.get(f"/admin/accounting/posting/{posting.pk}/change/").content.decode()
    assert "WEBSHOP" in page
    assert "Mapping version" in page and "Acme Ltd · channel 2 (Channel 2)" in page
    listing = admin_client.get("/admin/accounting/postingline/").content.decode()
    assert "WEBSHOP" in listing


# --- import -------------------------------------------------------------------------------------------------------


def import_rows(*rows: dict, dry_run: bool = False):
    headers = list(rows[0])
    data = Dataset(*[[row[h] for h in headers] for row in rows], headers=headers)
    return ChannelMappingResource().import_data(data, dry_run=dry_run)


def row(**changes) -> dict:
    base = {
        "tenant": "acme",
        "channel_id": 2,
        "effective_from": "1900-01-01",
        "name": "Channel 2",
        "is_active": 1,
        "receivable_account": "412000",
        "revenue_account": "702000",
        "shipping_account": "702800",
        "tax_account": "442570",
        "discount_account": "702900",
        "cogs_account": "602000",
        "inventory_account": "372000",
        "company": "",
        "site": "",
        "entry_type": "",
        "journal": "",
        "dimensions": "{}",
    }
    return {**base, **changes}


def test_import_adds_a_version_with_dimensions_and_refuses_bad_ones(tenant):
    result = import_rows(
        row(effective_from="2026-04-01", revenue_account="702001", dimensions='{"revenue": {"CCT": "WEB"}}')
    )
    assert not result.has_errors() and not result.has_validation_errors()
    new = ChannelMapping.objects.get(tenant=tenant, channel_id=2, effective_from=date(2026, 4, 1))
    assert new.dimensions == {"revenue": {"CCT": "WEB"}} and new.revenue_account == "702001"
    assert ChannelMapping.objects.get(
        tenant=tenant, channel_id=2, effective_from=BEGINNING
    ).revenue_account == ("702000")

    bad = import_rows(
        row(effective_from="2026-05-01", dimensions='{"revenue": {"CCT": "TOO-LONG-FOR-X3-CODE"}}')
    )
    assert bad.has_validation_errors()
    errors = str(bad.invalid_rows[0].error_dict)
    assert "must be an X3 dimension code" in errors
    assert not ChannelMapping.objects.filter(tenant=tenant, effective_from=date(2026, 5, 1)).exists()


def test_export_round_trips_dimensions(tenant):
    ChannelMapping.objects.filter(tenant=tenant, channel_id=2).update(dimensions={"tax": {"CCT": "TAX"}})
    exported = ChannelMappingResource().export()
    by_channel = {str(r["channel_id"]): r for r in exported.dict}
    assert "CCT" in str(by_channel["2"]["dimensions"]) and str(by_channel["2"]["effective_from"]).startswith(
        "1900"
    )


def test_an_order_posted_before_versions_existed_adjusts_on_its_recorded_accounts(tenant, bc, x3, sync):
    # given an order posted before this change: its posting holds only accounts and site, no version
    bc.put_order(order_json(250, date_created=MARCH_5, date_modified=MARCH_5))
    sync()
    legacy = {k: v for k, v in Posting.objects.get(idempotency_key="order:250").accounts.items()}
    legacy = {
        k: v
        for k, v in legacy.items()
        if k not in ("company", "entry_type", "journal", "dimensions", "version")
    }
    Posting.objects.filter(idempotency_key="order:250").update(
        accounts=legacy, mapping_version=None, site="", entry_type="", journal=""
    )
    new_version(tenant, date(2026, 3, 6), revenue_account="799999")

    # when the order is edited later
    bc.put_order(order_json(250, date_created=MARCH_5, date_modified=MARCH_20, shipping_ex="12.00"))
    sync()

    # then the adjustment posts on the recorded accounts, with the connection's organisation
    adjustment = x3.entries[1]
    assert "799999" not in accounts_of(adjustment)
    assert (adjustment.site, adjustment.entry_type, adjustment.journal) == ("FR011", "ODG", "VEN")
    posting = Posting.objects.get(idempotency_key="adjustment:250:1")
    assert posting.mapping_version is None and posting.site == "FR011"


def test_the_changelist_marks_the_version_in_force_today(admin_client, tenant):
    new_version(tenant, date(2999, 1, 1), revenue_account="702001")
    listing = admin_client.get("/admin/accounting/channelmapping/?channel_id=2").content.decode()
    # both versions are active; only the 1900 one is in force today
    assert listing.count('alt="True"') == 3 and listing.count('alt="False"') == 1


@pytest.mark.django_db(transaction=True)
def test_the_migration_makes_existing_mappings_version_one_from_1900():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    # The state before channel mapping versions, for both apps: later connector migrations add Tenant columns the
    # old models would not fill.
    before = [("accounting", "0015_may_exist_label"), ("connector", "0010_x3_chart_query")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    try:
        old = executor.loader.project_state(before).apps
        tenant = old.get_model("connector", "Tenant").objects.create(slug="old", name="Old Ltd")
        old.get_model("accounting", "ChannelMapping").objects.create(
            tenant=tenant,
            channel_id=1,
            receivable_account="411000",
            revenue_account="707000",
            shipping_account="708500",
            tax_account="445710",
        )
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())

    mapping = ChannelMapping.objects.get(tenant__slug="old", channel_id=1)
    assert mapping.effective_from == BEGINNING and mapping.dimensions == {}
    assert (mapping.company, mapping.entry_type, mapping.journal, mapping.created_by) == ("", "", "", None)
    assert mapping_for(mapping.tenant, 1, date(2026, 3, 5)) == mapping
