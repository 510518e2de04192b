"""The reports page in a real headless Chromium against the running service: after sign-in,
the numbers each chart shows (the value of every bar or cell, and the totals written on the
chart) are the numbers SQL counts on the store — for all tickets, after the tenant filter and
after a date filter — and each chart's *Download CSV* link gives the same numbers."""
from __future__ import annotations

import csv
import io
import re
from collections import Counter
from datetime import date, timedelta

import aiohttp
import pytest

from tests.servicekit import BUSINESS, OTHER_SUPPORT, mail
from tests.test_console_browser import browser, signed_in  # noqa: F401 - shared fixtures
from tests.test_console_http import SWEDISH, WIDGET_LINE, base, console, relay  # noqa: F401 - shared fixtures
from tests.test_service_e2e import rows, send
from tests.test_widget_browser import CHROMIUM
from tests.waiting import until
from triage.service.app import Service

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (Debian package chromium)")

# what each chart counts, as SQL on the store (the labels the charts give an empty value)
TRUTH = {
    "volume-tenant": "coalesce(tenant, '(no tenant)')",
    "volume-channel": "CASE WHEN coalesce(channel, '') = '' THEN '(none)' ELSE channel END",
    "volume-intent": "coalesce(category, '') || '/' || coalesce(intent, '')",
    "language": "CASE WHEN coalesce(language, '') = '' THEN '(unknown)' ELSE language END",
}
NUMBER = re.compile(r"^\d+$")


async def _count(service: Service, tickets: int) -> bool:
    return len(await rows(service, "SELECT id FROM tickets")) == tickets


async def counted(service: Service, chart: str, where: str = "", params: list | None = None) -> dict[str, int]:
    """The store's own count of tickets per the chart's label."""
    found = await rows(service, f"SELECT {TRUTH[chart]} AS label, count(*) AS n FROM tickets "
                                f"{'WHERE ' + where if where else ''} GROUP BY 1", params)
    return {r["label"]: r["n"] for r in found}


async def shown(page, chart: str) -> dict[str, int]:  # noqa: ANN001 - a Playwright page
    """The numbers the chart shows: every bar or cell's value (its tooltip, "x, series: value")
    summed per series (volume by tenant or channel), per row (the intent heatmap) or per bar."""
    tips = await page.locator(f"#chart-{chart} svg rect > title").all_text_contents()
    out: Counter[str] = Counter()
    for tip in tips:
        where, _, value = tip.rpartition(": ")
        row, _, series = where.partition(", ")
        out[series if chart in ("volume-tenant", "volume-channel") else row] += int(value)
    return {label: n for label, n in out.items() if n}


async def written(page, chart: str, bold: bool) -> list[int]:  # noqa: ANN001 - a Playwright page
    """The whole numbers written on the chart in bold (column and row totals) or not (values)."""
    texts = page.locator(f"#chart-{chart} svg text" + ("[font-weight=bold]" if bold else ":not([font-weight])"))
    return [int(t) for t in await texts.all_text_contents() if NUMBER.match(t)]


async def downloaded(page, chart: str) -> dict[str, int]:  # noqa: ANN001 - a Playwright page
    """The chart's CSV as the browser downloads it from its link, counted per label."""
    async with page.expect_download() as info:
        await page.click(f"#chart-{chart} a:text('Download CSV')")
    download = await info.value
    assert download.suggested_filename == f"{chart}.csv"
    table = list(csv.reader(io.StringIO(open(await download.path(), encoding="utf-8").read())))
    head, body = table[0], table[1:]
    if chart in ("volume-tenant", "volume-channel"):  # period, one column per series, total
        return {name: sum(int(r[i]) for r in body) for i, name in enumerate(head[1:-1], 1)
                if sum(int(r[i]) for r in body)}
    return {r[0]: int(r[-1] if chart == "volume-intent" else r[1]) for r in body}


async def check_page(page, service: Service, where: str = "", params: list | None = None) -> None:  # noqa: ANN001
    """Every chart of the page against the store, on the chart and in its CSV."""
    for chart in TRUTH:
        truth = await counted(service, chart, where, params)
        assert truth, f"the test data has no tickets for {chart} ({where})"
        assert await shown(page, chart) == truth, chart
        assert await downloaded(page, chart) == truth, chart
    total = sum((await counted(service, "volume-tenant", where, params)).values())
    assert sum(await written(page, "volume-tenant", bold=True)) == total  # the totals on the columns
    assert sorted(await written(page, "volume-intent", bold=True)) == sorted(
        (await counted(service, "volume-intent", where, params)).values())  # the heatmap's row totals
    assert sorted(await written(page, "language", bold=False)) == sorted(
        (await counted(service, "language", where, params)).values())  # the value beside each bar


async def test_report_charts_and_their_csv_show_the_numbers_of_the_store(console, relay, browser):
    await send(console, mail(subject="Cannot log in"))
    await send(console, mail(**BUSINESS))
    await send(console, mail(subject="Inloggning", body=SWEDISH))
    await send(console, mail(subject="Zenith portal down", to=OTHER_SUPPORT,
                             body="Hello,\n\nThe portal shows error 500 on every page.\n\nTom"), [OTHER_SUPPORT])
    await send(console, mail(subject="Zenith login", to=OTHER_SUPPORT), [OTHER_SUPPORT])
    async with aiohttp.ClientSession() as session:
        async with session.post(base(console) + "/widget/api/acme/messages", json=WIDGET_LINE) as r:
            assert r.status == 200
    # the widget line is filed by the writer, a moment after its answer
    await until(lambda: _count(console, 6))
    # two tickets (one per tenant) filed forty days ago: a date range that holds only them
    old = (date.today() - timedelta(days=40)).isoformat()
    await console.run_db(lambda: console.store.db.execute(
        "UPDATE tickets SET created_at = ? WHERE subject IN ('Question about RFQ 2024-117', 'Zenith login')",
        [f"{old}T10:00:00.000000+00:00"]))

    page = await signed_in(browser, console)
    await page.goto(base(console) + "/reports")
    await check_page(page, console)

    await page.select_option("select[name=tenant]", "acme")
    await page.click("form.filters button[type=submit]")
    await page.wait_for_url(re.compile(r"tenant=acme"))
    await check_page(page, console, "tenant = ?", ["acme"])
    assert "zenith" not in await shown(page, "volume-tenant")

    await page.select_option("select[name=tenant]", "")
    await page.fill("input[name=since]", old)
    await page.fill("input[name=until]", old)
    await page.click("form.filters button[type=submit]")
    await page.wait_for_url(re.compile(r"since=" + old))
    await check_page(page, console, "substr(created_at, 1, 10) = ?", [old])
    assert await counted(console, "volume-tenant", "substr(created_at, 1, 10) = ?", [old]) == {"acme": 1, "zenith": 1}
