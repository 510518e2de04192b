"""The support desk's reports against a database of known tickets and events: every chart's
numbers, the CSV and the SVG, the filters, an empty database, the CLI; one ticket filed
and answered through the real intake and agents' actions so the report reads the events
those really write."""
from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.conftest import TEST_CONFIG
from tests.test_widget_browser import ARGS as BROWSER_ARGS
from tests.test_widget_browser import CHROMIUM
from triage.config import load_config
from triage.desk import reports
from triage.store import Store

SVG = "{http://www.w3.org/2000/svg}"
DECIDE = "acknowledge,notify_agents"


def at(text: str) -> str:
    """'2026-11-23 08:00' (UTC) as the store writes timestamps."""
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).isoformat(timespec="microseconds")


def ticket(store: Store, tenant: str, created: str, channel: str, label: str, requester: str, language: str,
           actions: str, rule: str, events: list[tuple[str, str, str]] = ()) -> int:
    """A ticket as intake files it (its thread and decision events, the automatic reply unless
    suppressed), then ``events``: (kind, rule, 'YYYY-MM-DD HH:MM')."""
    category, intent = label.split("/", 1)
    number = store.next_number(tenant)
    when = at(created)
    tid = store.create_ticket({"tenant": tenant, "number": number, "status": "new", "priority": "normal",
                               "category": category, "intent": intent, "requester": requester, "trust": "verified",
                               "language": language, "channel": channel, "subject": "s",
                               "requester_address": "a@b.example", "created_at": when, "updated_at": when})
    store.add_event(tid, "thread", ["thread-new-ticket"], "new ticket", when)
    store.add_event(tid, "decision", ["requester-external", "trust-dmarc-pass", rule], actions, when)
    if "suppress" not in actions:
        store.add_event(tid, "reply", [], "queued", when)
    for kind, event_rule, time in events:
        store.add_event(tid, kind, [event_rule] if event_rule else [], "", at(time),
                        detail={"from": label, "to": "account/data_change"} if kind == "reclassified" else {})
    return tid


def fill(store: Store) -> None:
    """Seven tickets, acme (Stockholm, Mon-Fri 08-17) and zenith (London, Mon-Fri 09-17:30),
    in the week of Monday 2026-11-23, some outside support hours and across the weekend."""
    with store.transaction():
        # Monday 09:00 in Stockholm; an agent answers by mail at 10:30 (its outbox 'reply' event
        # is an agent's, not an acknowledgement), resolved Tuesday 10:00 local: 8 h + 2 h.
        ticket(store, "acme", "2026-11-23 08:00", "email", "technical/access", "internal", "en", DECIDE,
               "technical-help", [("reply", "", "2026-11-23 09:30"), ("agent-reply", "agent-reply", "2026-11-23 09:30"),
                                  ("status", "agent-resolved", "2026-11-24 09:00")])
        # Friday 16:30 local, answered in the widget Monday 09:00 local: 0.5 h + 1 h over the weekend.
        ticket(store, "acme", "2026-11-27 15:30", "widget", "technical/howto", "external", "sv", DECIDE,
               "technical-help", [("widget-reply", "", "2026-11-30 08:00"),
                                  ("agent-reply", "agent-reply", "2026-11-30 08:00")])
        # Saturday, never answered, reclassified on Monday (the ticket now says account/data_change).
        tid = ticket(store, "acme", "2026-11-28 10:00", "email", "business/question", "external", "de",
                     "redirect_business,relay_to_company,notify_agents", "business-question-from-supplier",
                     [("reclassified", "agent-reclassified", "2026-11-30 09:00")])
        store.update_ticket(tid, {"category": "account", "intent": "data_change"})
        # Sunday out-of-office: suppressed, nobody involved.
        ticket(store, "acme", "2026-11-29 12:00", "email", "automated/auto_reply", "unknown", "en", "suppress",
               "automated-mail")
        # Monday 20:00 in London, held for review, approved Tuesday 11:00 (2 h), closed at 15:00 (6 h);
        # a follow-up's acknowledgement was suppressed.
        ticket(store, "zenith", "2026-11-23 20:00", "email", "technical/bug", "internal", "uk",
               "acknowledge,hold_for_review,notify_agents", "low-confidence",
               [("reply-suppressed", "loop-followup-acknowledged", "2026-11-24 08:00"),
                ("reply", "", "2026-11-24 11:00"), ("approved", "agent-approved", "2026-11-24 11:00"),
                ("status", "agent-closed", "2026-11-24 15:00")])
        # Wednesday 10:00, escalated, answered Thursday 11:00: 7.5 h + 2 h, past the 4 h due time.
        ticket(store, "zenith", "2026-11-25 10:00", "slack", "technical/access", "external", "en", DECIDE,
               "technical-help", [("escalated", "agent-escalated", "2026-11-25 10:30"),
                                  ("agent-reply", "agent-reply", "2026-11-26 11:00")])
        # Thursday: an internal note (no intervention) and resolved without an answer after 2 h.
        ticket(store, "zenith", "2026-11-26 12:00", "email", "technical/howto", "external", "en", DECIDE,
               "technical-help", [("note", "agent-note", "2026-11-26 13:00"),
                                  ("status", "agent-resolved", "2026-11-26 14:00")])


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "r.db")
    yield s
    s.close()


@pytest.fixture
def filled(store: Store) -> Store:
    fill(store)
    return store


@pytest.fixture(scope="module")
def cfg():
    return load_config(TEST_CONFIG)


def rows(report: reports.Report, name: str) -> list[tuple]:
    return report.chart(name).rows


def test_every_chart_counts_the_database(filled, cfg):
    r = reports.build(filled, None, None, None, config=cfg)
    days = ["2026-11-23", "2026-11-24", "2026-11-25", "2026-11-26", "2026-11-27", "2026-11-28", "2026-11-29"]
    assert r.period == "day"
    assert r.chart("volume-tenant").columns == ["period", "acme", "zenith", "total"]
    assert rows(r, "volume-tenant") == [(d, *n) for d, n in zip(days, [
        (1, 1, 2), (0, 0, 0), (0, 1, 1), (0, 1, 1), (1, 0, 1), (1, 0, 1), (1, 0, 1)])]
    assert r.chart("volume-channel").columns == ["period", "email", "slack", "widget", "total"]
    assert [row[1:] for row in rows(r, "volume-channel")] == [
        (2, 0, 0, 2), (0, 0, 0, 0), (0, 1, 0, 1), (1, 0, 0, 1), (0, 0, 1, 1), (1, 0, 0, 1), (1, 0, 0, 1)]
    assert r.chart("volume-category").columns == ["period", "technical", "account", "automated", "total"]
    assert [row[1:] for row in rows(r, "volume-category")][:5] == [
        (2, 0, 0, 2), (0, 0, 0, 0), (1, 0, 0, 1), (1, 0, 0, 1), (1, 0, 0, 1)]
    assert r.chart("volume-intent").columns == ["intent", *days, "total"]
    assert rows(r, "volume-intent") == [
        ("technical/access", 1, 0, 1, 0, 0, 0, 0, 2), ("technical/howto", 0, 0, 0, 1, 1, 0, 0, 2),
        ("account/data_change", 0, 0, 0, 0, 0, 1, 0, 1), ("automated/auto_reply", 0, 0, 0, 0, 0, 0, 1, 1),
        ("technical/bug", 1, 0, 0, 0, 0, 0, 0, 1)]
    assert rows(r, "requesters") == [("acme", 1, 2, 0, 0.3333, 0.6667), ("zenith", 1, 2, 0, 0.3333, 0.6667),
                                     ("all tenants", 2, 4, 0, 0.3333, 0.6667)]
    assert rows(r, "first-response") == [("acme", 4, 3, 0.0, 0.0, 2, 1.5, 1.5), ("zenith", 3, 3, 0.0, 0.0, 2, 2.0, 9.5),
                                         ("all tenants", 7, 6, 0.0, 0.0, 4, 1.5, 9.5)]
    assert rows(r, "due-share") == [("acme", 3, 2, 0.6667, 4.0), ("zenith", 3, 1, 0.3333, 4.0),
                                    ("all tenants", 6, 3, 0.5, 4.0)]
    assert rows(r, "resolution") == [("acme", 1, 10.0, 10.0), ("zenith", 2, 2.0, 6.0), ("all tenants", 3, 6.0, 10.0)]
    assert rows(r, "handling") == [("acme", 4, 1, 3, 0, 0.25), ("zenith", 3, 1, 1, 1, 0.3333),
                                   ("all tenants", 7, 2, 4, 1, 0.2857)]
    assert rows(r, "suppressed") == [("automated-mail", 1), ("loop-followup-acknowledged", 1)]
    assert rows(r, "corrections") == [
        ("business/question", 1, 1, 1.0), ("technical/access", 2, 0, 0.0), ("technical/howto", 2, 0, 0.0),
        ("automated/auto_reply", 1, 0, 0.0), ("technical/bug", 1, 0, 0.0)]
    assert rows(r, "language") == [("en", 4, 0.5714), ("de", 1, 0.1429), ("sv", 1, 0.1429), ("uk", 1, 0.1429)]
    assert rows(r, "help-articles") == []  # no article was offered, answered or sent
    assert len({c.name for c in r.charts}) == len(r.charts) == 13


def test_help_articles_deflection_counts_offers_answers_and_agents(store, cfg):
    """Four tickets offered an article: one solved by it, one that still needed help (and
    was then solved by another line: solved wins), one without an answer (offered with a
    relay notice: the article written for its intent); one more ticket got its article from
    an agent, and another's offered article an agent marked "Not the answer"."""
    with store.transaction():
        for events, rule in (([("kb-feedback", "kb-solved", "2026-11-23 10:05")], "kb-suggested"),
                             ([("kb-feedback", "kb-not-solved", "2026-11-23 11:05")], "kb-suggested"),
                             ([("kb-feedback", "kb-not-solved", "2026-11-23 12:05"),
                               ("kb-feedback", "kb-solved", "2026-11-23 12:10")], "kb-suggested"),
                             ([], "kb-suggested-for-intent")):
            ticket(store, "acme", "2026-11-23 10:00", "widget", "technical/howto", "external", "en", DECIDE,
                   rule, events)
        ticket(store, "zenith", "2026-11-23 10:00", "email", "technical/access", "external", "en", DECIDE,
               "kb-no-match", [("article-sent", "agent-article-sent", "2026-11-23 11:00")])
        ticket(store, "zenith", "2026-11-23 10:00", "email", "technical/bug", "external", "en", DECIDE, "kb-no-match")
        ticket(store, "zenith", "2026-11-23 10:00", "email", "technical/howto", "external", "en", DECIDE,
               "kb-suggested", [("article-rejected", "agent-article-rejected", "2026-11-23 11:00")])
    r = reports.build(store, None, None, None, config=cfg)
    assert rows(r, "help-articles") == [("acme", 4, 2, 1, 0, 0, 0.5), ("zenith", 1, 0, 0, 1, 1, 0.0),
                                        ("all tenants", 5, 2, 1, 1, 1, 0.4)]
    assert "50% deflected" in r.chart("help-articles").svg()


def test_the_due_time_comes_from_the_configuration(filled, cfg, monkeypatch):
    monkeypatch.setitem(cfg.slack, "first_response_hours", 10.0)
    r = reports.build(filled, None, None, None, config=cfg)
    assert rows(r, "due-share")[-1] == ("all tenants", 6, 4, 0.6667, 10.0)
    assert r.chart("due-share").title == "Answered by an agent within 10 working hours"


def test_without_configuration_hours_are_mon_fri_nine_to_five_utc(filled):
    r = reports.build(filled)
    # acme's Monday 08:00 UTC ticket answered 09:30 UTC: 0.5 h after 09:00 UTC opening.
    assert rows(r, "first-response")[0][6] == 0.5


def test_csv_equals_the_rows_and_svg_is_wellformed(filled, cfg):
    for chart in reports.build(filled, None, None, None, config=cfg).charts:
        parsed = list(csv.reader(io.StringIO(chart.csv())))
        assert parsed[0] == chart.columns
        assert parsed[1:] == [["" if v is None else str(v) for v in row] for row in chart.rows], chart.name
        root = ET.fromstring(chart.svg())
        assert root.tag == f"{SVG}svg" and "viewBox" in root.attrib and "width" not in root.attrib
        assert root.find(f"{SVG}title").text == chart.title
        assert root.find(f"{SVG}desc").text
        texts = {t.text for t in root.iter(f"{SVG}text")}
        for row in chart.rows:  # every label is written on the chart
            assert str(row[0]) in texts or chart.name.startswith("volume-") and chart.name != "volume-intent", \
                (chart.name, row[0])


def test_labels_are_escaped(store):
    evil = "<script>alert(1)</script>"
    with store.transaction():
        ticket(store, evil, "2026-11-23 08:00", "email", f"technical/{evil}", "external", "en", DECIDE,
               "technical-help")
    r = reports.build(store)
    for chart in r.charts:
        svg = chart.svg()
        assert "<script" not in svg, chart.name
        ET.fromstring(svg)
    assert "&lt;script&gt;" in r.chart("volume-tenant").svg()
    assert f"technical/&lt;script&gt;alert(1)&lt;/script&gt;" in r.chart("volume-intent").svg()
    assert rows(r, "volume-tenant")[0] == ("2026-11-23", 1, 1)


def test_filters_by_tenant_and_date(filled, cfg):
    r = reports.build(filled, ["zenith"], "2026-11-24", "2026-11-26", config=cfg)
    assert rows(r, "volume-tenant") == [("2026-11-24", 0, 0), ("2026-11-25", 1, 1), ("2026-11-26", 1, 1)]
    assert rows(r, "first-response") == [("zenith", 2, 2, 0.0, 0.0, 1, 9.5, 9.5),
                                         ("all tenants", 2, 2, 0.0, 0.0, 1, 9.5, 9.5)]
    assert rows(r, "language") == [("en", 2, 1.0)]
    both = reports.build(filled, ["acme", "zenith"], "2026-11-23", "2026-11-23", config=cfg)
    assert rows(both, "volume-tenant") == [("2026-11-23", 1, 1, 2)]


def test_a_long_range_is_counted_per_week(filled, cfg):
    r = reports.build(filled, None, "2026-11-01", "2026-12-31", config=cfg)
    assert r.period == "week"
    weeks = rows(r, "volume-tenant")
    assert weeks[0][0] == "2026-10-26" and weeks[-1][0] == "2026-12-28" and len(weeks) == 10
    assert dict((w[0], w[1:]) for w in weeks)["2026-11-23"] == (4, 3, 7)
    assert sum(w[-1] for w in weeks) == 7
    assert reports.build(filled, None, "2026-01-01", "2026-12-31").period == "month"


def test_bad_dates_and_unknown_tenants_are_errors(filled, cfg):
    with pytest.raises(reports.ReportError, match="since must be a date"):
        reports.build(filled, None, "23.11.2026", None)
    with pytest.raises(reports.ReportError, match="is after until"):
        reports.build(filled, None, "2026-11-30", "2026-11-01")
    with pytest.raises(reports.ReportError, match=r"unknown tenant 'nope' \(known: acme, zenith\)"):
        reports.build(filled, ["nope"], None, None, config=cfg)


def test_an_empty_database_gives_empty_charts(store, cfg):
    r = reports.build(store, None, None, None, config=cfg)
    assert r.charts and all(c.rows == [] for c in r.charts)
    for chart in r.charts:
        ET.fromstring(chart.svg())
        assert chart.csv() == ",".join(chart.columns) + "\n"
    assert "No tickets in this range" in r.text()
    dated = reports.build(store, None, "2026-11-01", "2026-11-03", config=cfg)
    assert all(c.rows == [] for c in dated.charts)


@pytest.mark.parametrize("tenants, since, until", [(["acme"], "2026-11-23", "2026-11-29"),
                                                    (None, "2026-11-23", "2026-11-29"), (["zenith"], None, None)])
def test_report_queries_search_the_indexes_instead_of_scanning_tickets(filled, cfg, tenants, since, until):
    """Every statement that reads tickets seeks them by an index on created_at or tenant, none scans."""
    seen: list[str] = []
    filled.db.conn.set_trace_callback(seen.append)
    try:
        reports.build(filled, tenants, since, until, config=cfg)
    finally:
        filled.db.conn.set_trace_callback(None)
    reading = [sql for sql in seen if "FROM tickets t" in sql]
    assert len(reading) == 3  # the range, the volumes, the per-ticket facts
    for sql in reading:
        query = sql[sql.index(" AS ") + 4:] if sql.lstrip().startswith("CREATE") else sql
        plan = [row[3] for row in filled.db.execute("EXPLAIN QUERY PLAN " + query)]
        assert any(step.startswith("SEARCH t USING") for step in plan), (query, plan)


def test_report_reads_what_intake_and_agents_write(tmp_path, cfg):
    """A real mail through intake, an agent's answer and resolution through Agents."""
    from tests.conftest import make_email
    from tests.servicekit import make_intake
    from triage.core.pipeline import Pipeline
    from triage.desk.agents import Agents
    from triage.service.intake import Delivery

    store = Store(tmp_path / "real.db")
    try:
        pipeline = Pipeline(cfg)
        intake = make_intake(cfg, store, pipeline, hold_local=True)
        agents = Agents(cfg, store, pipeline, intake)
        monday = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)  # 09:00 in Stockholm
        raw = make_email(subject="Cannot log in", body="I cannot log in, the password reset link has expired.")
        [result] = intake.process_batch([Delivery(raw, "tom.user@steelworks.lt", ["acme@support.test"], monday)])
        agents.reply(result.ticket, "Here is a new link.", "kim", monday.replace(hour=10))
        agents.resolve(result.ticket, "kim", monday.replace(hour=12))
        r = reports.build(store, None, None, None, config=cfg)
        acme = rows(r, "first-response")[0]
        assert acme[:3] == ("acme", 1, 1) and acme[3] == 0.0 and acme[5:7] == (1, 2.0)
        assert rows(r, "resolution")[0] == ("acme", 1, 4.0, 4.0)
        assert rows(r, "handling")[0][2:5] == (0, 1, 0)  # the agent answered: not automated
        assert rows(r, "due-share")[0][:3] == ("acme", 1, 1)
    finally:
        store.close()


# -- the command line ---------------------------------------------------------------------------


@pytest.fixture
def cli_config(tmp_path: Path) -> Path:
    folder = tmp_path / "config"
    shutil.copytree(TEST_CONFIG, folder)
    toml = folder / "triage.toml"
    toml.write_text(toml.read_text().replace('database = "test.db"', f'database = "{tmp_path / "cli.db"}"'))
    store = Store(tmp_path / "cli.db")
    fill(store)
    store.close()
    return folder


def triage(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "triage.cli", "report", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=120)


def test_cli_text_and_csv(cli_config):
    text = triage(cli_config, "--tenant", "acme")
    assert text.returncode == 0, text.stderr
    assert "Tickets per day by tenant [volume-tenant]" in text.stdout
    assert re.search(r"^  2026-11-23 +1 +1$", text.stdout, re.M)  # period, acme, total
    assert re.search(r"^  acme +1 +2 +0 +33.3% +66.7%$", text.stdout, re.M)  # requesters: shares in percent
    out = triage(cli_config, "--format", "csv", "--since", "2026-11-23", "--until", "2026-11-29")
    assert out.returncode == 0, out.stderr
    blocks = out.stdout.strip("\n").split("\n\n")
    assert [b.splitlines()[0] for b in blocks][:3] == ["# volume-tenant", "# volume-channel", "# volume-category"]
    due = next(b for b in blocks if b.startswith("# due-share"))
    assert list(csv.reader(io.StringIO(due)))[1:] == [
        ["tenant", "needing_agent", "within_due", "share", "due_hours"],
        ["acme", "3", "2", "0.6667", "4.0"], ["zenith", "3", "1", "0.3333", "4.0"],
        ["all tenants", "6", "3", "0.5", "4.0"]]


@pytest.mark.parametrize("args, message", [
    (["--since", "2026-13-01"], "since must be a date"),
    (["--until", "yesterday"], "until must be a date"),
    (["--tenant", "acme", "--tenant", "nobody"], "unknown tenant 'nobody'"),
])
def test_cli_errors_are_one_line_and_exit_2(cli_config, args, message):
    proc = triage(cli_config, *args)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and message in proc.stderr


def test_rule_kinds_the_report_reads_are_the_ones_written():
    """The event kinds the report looks for are written by intake, agents and the store."""
    import inspect

    from triage import store
    from triage.desk import agents
    from triage.core import knowledge
    from triage.service import chat, intake
    source = "".join(inspect.getsource(m) for m in (agents, intake, store, chat, knowledge))
    for kind in {*reports.AGENT_ANSWER, *reports.AGENT_TOUCH, *reports.REFUSED_MAIL, "reply", "decision", "status",
                 reports.FEEDBACK, reports.ARTICLE_SENT}:
        assert f'"{kind}"' in source, kind
    for rule in ("agent-resolved", "agent-closed", reports.SOLVED, reports.NOT_SOLVED):
        assert f'"{rule}"' in source, rule
    assert set(knowledge.OFFERED_RULES) <= set(knowledge.RULES)  # each offering rule is a knowledge rule


# -- the charts in a real browser -------------------------------------------------------------

XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (Debian package chromium)")
def test_charts_render_in_chromium_with_every_text_inside_and_no_script_run(filled, cfg, tmp_path):
    """All charts inline in one page, as the console shows them, at a laptop's and a phone's width:
    each has a size, no upright text runs out of its frame, and a hostile tenant name stays text."""
    from playwright.sync_api import sync_playwright

    with filled.transaction():
        ticket(filled, XSS, "2026-11-24 09:00", "email", "technical/bug", "external", "en", DECIDE, "kb-suggested",
               [("agent-reply", "agent-reply", "2026-11-24 10:00"), ("kb-feedback", "kb-not-solved", "2026-11-24 09:05")])
    report = reports.build(filled, None, None, None, config=cfg)
    page_html = "<!doctype html><meta charset=utf-8><body>" + "".join(
        f"<div style='overflow-x:auto'>{c.svg()}</div>" for c in report.charts) + "</body>"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS, timeout=30_000)
        try:
            for width in (1000, 390):
                page = browser.new_page(viewport={"width": width, "height": 800})
                page.set_content(page_html)
                page.wait_for_timeout(200)  # a broken image's onerror would have fired
                assert page.evaluate("window.__xss") is None
                assert page.locator("svg img, svg script").count() == 0
                boxes = page.evaluate("""() => [...document.querySelectorAll('svg')].map(svg => {
                    const [, , w, h] = svg.getAttribute('viewBox').split(' ').map(Number);
                    const out = [...svg.querySelectorAll('text:not([transform])')].filter(t => {
                        const b = t.getBBox();
                        return b.x < -1 || b.y < -1 || b.x + b.width > w + 1 || b.y + b.height > h + 1;
                    }).map(t => t.textContent);
                    const r = svg.getBoundingClientRect();
                    return {width: r.width, height: r.height, outside: out};
                })""")
                assert len(boxes) == len(report.charts)
                for chart, box in zip(report.charts, boxes):
                    assert box["width"] > 300 and box["height"] > 60, (chart.name, box)
                    assert box["outside"] == [], (chart.name, width, box["outside"])
                page.close()
        finally:
            browser.close()


def test_count_axes_have_whole_number_gridlines():
    """An axis of 5 tickets read 0 1.2 2.5 3.8 5 (3.75 rounded): a count chart's gridlines are whole."""
    from triage.desk import charts

    svg = charts.stacked_columns("x", "Tickets", ["2026-12-03"], [("acme", [3]), ("zenith", [1])],
                                 x_label="Day", y_label="tickets")
    grid = re.findall(r'<text [^>]*text-anchor="end" fill="#555555">([^<]*)</text>', svg)
    assert grid == ["0", "1", "2", "3", "4", "5"]
    hours = charts.stacked_columns("y", "Hours", ["a"], [("h", [0.5])], x_label="", y_label="hours")
    assert re.findall(r'<text [^>]*text-anchor="end" fill="#555555">([^<]*)</text>', hours) == [
        "0", "0.1", "0.2", "0.3", "0.4", "0.5"]
