"""The reports page of the console, against the running service: charts embedded, a CSV per
chart, the tenant filter limited to the agent's tenants. ``triage.desk.reports`` is built on
another branch; until both are merged this test is skipped."""
from __future__ import annotations

import importlib.util
from datetime import date, timedelta

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

    report = await console.run_db(reports.build, console.store, ["zenith"], "2020-01-01", "2100-01-01",
                                  console.config)
    chart = report.charts[0]
    status, csv, response = await client.get(f"/reports/{chart.name}.csv?since=2020-01-01&until=2100-01-01")
    assert status == 200 and response.content_type == "text/csv"
    assert csv == chart.csv()  # Zed's report: zenith only
    status, csv, _ = await client.get(f"/reports/{chart.name}.csv?tenant=acme")
    assert status == 404 and "Acme" not in csv  # another tenant's figures do not exist for Zed
    status, _, _ = await client.get("/reports?since=not-a-date")
    assert status == 400
    status, page, _ = await client.get("/reports?since=2026-12-05&until=2026-12-01")
    assert status == 400 and "since (2026-12-05) is after until (2026-12-01)" in page


async def test_reports_of_a_tenant_without_tickets_yet_are_empty_charts_not_an_error(console, client):
    await client.login(ZED)  # zenith only; nobody has written to zenith yet
    status, page, _ = await client.get("/reports")
    assert status == 200 and "No tickets in this range" in page
    for chart in ("volume-tenant", "due-share"):
        status, csv, _ = await client.get(f"/reports/{chart}.csv")
        assert status == 200 and csv.count("\n") == 1  # the header line alone


async def test_reports_count_in_the_tenants_own_support_hours(console, client):
    """Acme is staffed all week, round the clock; without the configuration a report would count
    Mon-Fri 09:00-17:00 UTC, and a ticket opened on a Saturday would look answered sooner."""
    from triage.desk import reports

    await send(console, mail(subject="Acme question"))
    today = date.today()
    saturday = today - timedelta(days=(today.weekday() - 5) % 7 or 7)
    await console.run_db(lambda: console.store.db.execute(
        "UPDATE tickets SET created_at = ?", [f"{saturday}T10:00:00.000000+00:00"]))
    await client.login()
    await client.post("/tickets/acme/1001/reply", {"csrf": client.csrf, "text": "Hello Tom, here is a new link."})

    def csv_of(config: object) -> str:
        return reports.build(console.store, None, None, None, config).chart("first-response").csv()
    expected, unconfigured = await console.run_db(csv_of, console.config), await console.run_db(csv_of, None)
    assert expected != unconfigured  # the support hours matter here
    assert (await client.get("/reports/first-response.csv"))[1] == expected  # the figures of `triage report`
