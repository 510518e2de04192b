"""The reports page of the console, against the running service: charts embedded, a CSV per
chart, the tenant filter limited to the agent's tenants. ``triage.desk.reports`` is built on
another branch; until both are merged this test is skipped."""
from __future__ import annotations

import importlib.util

import pytest

from tests.servicekit import OTHER_SUPPORT, mail
from tests.test_console_http import ZED, client, console, relay  # noqa: F401 - shared fixtures
from tests.test_service_e2e import send

pytestmark = pytest.mark.skipif(importlib.util.find_spec("triage.desk.reports") is None,
                                reason="triage.desk.reports is not on this branch (it comes with the reports branch)")


async def test_reports_page_charts_and_csv_limited_to_the_agents_tenants(console, client):
    await send(console, mail(subject="Acme question"))
    await send(console, mail(subject="Zenith question", to=OTHER_SUPPORT), [OTHER_SUPPORT])
    await client.login(ZED)
    status, page, _ = await client.get("/reports?since=2020-01-01&until=2100-01-01")
    assert status == 200 and "<svg" in page and "Download CSV" in page
    from triage.desk import reports

    report = await console.run_db(reports.build, console.store, ["zenith"], "2020-01-01", "2100-01-01")
    chart = report.charts[0]
    status, csv, response = await client.get(f"/reports/{chart.name}.csv?since=2020-01-01&until=2100-01-01")
    assert status == 200 and response.content_type == "text/csv"
    assert csv == chart.csv()  # Zed's report: zenith only
    status, csv, _ = await client.get(f"/reports/{chart.name}.csv?tenant=acme")
    assert status == 404 and "Acme" not in csv  # another tenant's figures do not exist for Zed
    status, _, _ = await client.get("/reports?since=not-a-date")
    assert status == 400
