"""The chart of accounts end to end: the stack refreshes it from the simulated X3 (real HTTP, api1 and SOAP) when it
configures the tenant; names and the closed account land in the cache."""

from __future__ import annotations

import os

import pytest

from accounting.models import GlAccount, GlChart
from simulators.sagex3 import DEFAULT_CHART
from simulators.stack import EXTRA_ACCOUNTS, start_stack

from .conftest import database_url

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("x3_method", ["rest_basic", "soap_basic"])
def test_the_stack_loads_the_chart_through_the_tenants_method(transactional_db, tmp_path, x3_method):
    with start_stack(
        database_url=database_url(),
        redis_url=os.environ.get("REDIS_URL", ""),
        log_dir=tmp_path,
        migrate=False,
        x3_method=x3_method,
    ):
        chart = GlChart.objects.get()
        assert chart.ok and chart.account_count == len(set(DEFAULT_CHART) | set(EXTRA_ACCOUNTS))
        names = dict(GlAccount.objects.values_list("code", "name"))
        assert names["707100"] == "Sales of goods - wholesale" and names["411000"] == "Customers"
        assert GlAccount.objects.get(code="580000").postable is False
