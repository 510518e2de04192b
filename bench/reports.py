#!/usr/bin/env python3
"""How long ``triage report`` takes on a large database, and what its charts look like.

Generates N tickets (default 200,000) over a year for the tenants of a configuration, with
the events intake and agents write (thread, decision, acknowledgement, agents' answers,
approvals, reclassifications, resolutions, suppressed replies), times a full-range report
and a one-month, one-tenant report, and with ``--png DIR`` renders every chart's SVG to a
PNG in headless Chromium (Debian's, through Playwright) at a laptop and a phone width.
The baseline beside it is one plain ``count(*) GROUP BY tenant`` over the same rows: the
least any report over them costs.

    python bench/reports.py [--tickets 200000] [--config DIR] [--db FILE] [--png DIR]
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from triage.desk import reports  # noqa: E402
from triage.core.classify import INTENTS  # noqa: E402
from triage.config import load_config  # noqa: E402
from triage.store import Store, iso  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync", "--disable-quic"]
LABELS = [f"{c}/{i}" for c, intents in INTENTS.items() for i in intents]
START = datetime(2025, 12, 1, tzinfo=timezone.utc)


def generate(store: Store, tenants: list[str], count: int, seed: int = 7) -> None:
    """Tickets and events written with plain INSERTs in batches (as fast as SQLite takes them)."""
    rnd = random.Random(seed)
    tickets, events = [], []
    numbers = {t: 1000 for t in tenants}
    ticket_id = 0
    # Tickets are numbered as they arrive, so ids grow with created_at (as in a real database).
    for offset in sorted(rnd.randrange(365 * 86400) for _ in range(count)):
        ticket_id += 1
        tenant = rnd.choice(tenants)
        numbers[tenant] += 1
        created = START + timedelta(seconds=offset)
        label = rnd.choice(LABELS)
        category, intent = label.split("/")
        automated = category == "automated"
        held = not automated and rnd.random() < 0.2
        actions = "suppress" if automated else ("acknowledge,hold_for_review,notify_agents" if held
                                                else "acknowledge,notify_agents")
        rule = "automated-mail" if automated else ("low-confidence" if held else "technical-help")
        at = iso(created)
        tickets.append((ticket_id, tenant, numbers[tenant], "new", "normal", category, intent,
                        rnd.choice(["internal", "internal", "internal", "external", "unknown"]), "verified",
                        rnd.choice(["en", "en", "sv", "de", "uk", "ru"]), rnd.choice(["email", "email", "widget"]),
                        "subject", "x@y.example", at, at))
        events.append((ticket_id, "thread", '["thread-new-ticket"]', "new ticket", at, "{}"))
        events.append((ticket_id, "decision", f'["requester-external", "{rule}"]', actions, at, "{}"))
        if automated:
            continue
        events.append((ticket_id, "reply", "[]", "queued", at, "{}"))
        later = created + timedelta(minutes=rnd.randrange(10, 3 * 24 * 60))
        if rnd.random() < 0.05:
            events.append((ticket_id, "reclassified", '["agent-reclassified"]', actions, iso(later),
                           f'{{"from": "{label}", "to": "{rnd.choice(LABELS)}"}}'))
        if rnd.random() < 0.7:
            kind, event_rule = ("approved", "agent-approved") if held else ("agent-reply", "agent-reply")
            events.append((ticket_id, "reply", "[]", "queued", iso(later), "{}"))
            events.append((ticket_id, kind, f'["{event_rule}"]', "sent", iso(later), "{}"))
        if rnd.random() < 0.5:
            resolved = iso(later + timedelta(hours=2))
            events.append((ticket_id, "status", '["agent-resolved"]', "resolved", resolved, "{}"))
        if rnd.random() < 0.05:
            events.append((ticket_id, "reply-suppressed", '["loop-rate-limit"]', "not sent", iso(later), "{}"))
    with store.transaction():
        store.db.conn.executemany(
            "INSERT INTO tickets (id, tenant, number, status, priority, category, intent, requester, trust, language, "
            "channel, subject, requester_address, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            tickets)
        store.db.conn.executemany(
            "INSERT INTO events (ticket, kind, rules, outcome, created_at, detail) VALUES (?,?,?,?,?,?)", events)


def timed(label: str, run) -> float:  # noqa: ANN001 - a callable
    began = time.perf_counter()
    run()
    seconds = time.perf_counter() - began
    print(f"{label:<44} {seconds:8.2f} s")
    return seconds


def render(report: reports.Report, folder: Path) -> None:
    """Every chart's SVG as a PNG at 1000 and 390 CSS pixels wide, as a page would show it."""
    from playwright.sync_api import sync_playwright

    folder.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            for width in (1000, 390):
                page = browser.new_page(viewport={"width": width, "height": 800})
                for chart in report.charts:
                    page.set_content("<!doctype html><body style='margin:8px'><div style='overflow-x:auto'>"
                                     f"{chart.svg()}</div></body>")
                    page.locator("svg").screenshot(path=str(folder / f"{chart.name}-{width}.png"))
                page.close()
        finally:
            browser.close()
    print(f"PNGs in {folder}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=200_000)
    parser.add_argument("--config", default=str(REPO / "tests" / "data" / "config"))
    parser.add_argument("--db", help="database file (default: a temporary one); kept and reused if it exists")
    parser.add_argument("--png", help="folder to render the charts into")
    args = parser.parse_args()
    config = load_config(args.config)
    path = Path(args.db) if args.db else Path(tempfile.mkdtemp()) / "bench.db"
    fresh = not path.exists()
    store = Store(path)
    if fresh:
        timed(f"generate {args.tickets:,} tickets", lambda: generate(store, sorted(config.tenants), args.tickets))
    tickets = store.db.execute("SELECT count(*) FROM tickets").fetchone()[0]
    events = store.db.execute("SELECT count(*) FROM events").fetchone()[0]
    print(f"database {path}: {tickets:,} tickets, {events:,} events")
    timed("baseline: count(*) GROUP BY tenant", lambda: store.db.execute(
        "SELECT tenant, count(*) FROM tickets GROUP BY tenant").fetchall())
    full = timed("report: everything, all tenants", lambda: reports.build(store, config=config))
    tenant = sorted(config.tenants)[0]
    month = timed(f"report: one month, {tenant}", lambda: reports.build(store, [tenant], "2026-03-01", "2026-03-31",
                                                                         config=config))
    print(f"per ticket, full range: {full / max(tickets, 1) * 1e6:.1f} µs; one month: {month:.2f} s")
    if args.png:
        render(reports.build(store, None, "2026-03-02", "2026-03-29", config=config), Path(args.png))
    store.close()


if __name__ == "__main__":
    main()
