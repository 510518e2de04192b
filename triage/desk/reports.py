"""The support desk's figures: volume, requesters, response and resolution times, automation,
suppressed mail, agents' corrections and languages, for a date range and some tenants.

Everything is counted in SQL, in one read transaction (one snapshot: the charts agree with
each other): one grouped scan of ``tickets`` for the volumes, and one temporary table of
per-ticket facts (its first decision, first automatic acknowledgement, first agent
response, resolution, first agent intervention) read through the ``events(ticket)``
index. Times are counted in support hours: a temporary calendar of each tenant's staffed
periods (``triage/core/hours.py``, in its time zone) with the staffed seconds before each, so
"working seconds until t" is one indexed lookup and a difference of two is the working
time between them. Medians and 90th percentiles are nearest-rank, read from one sorted
column (SQLite has no percentile aggregate). README's "Reports" section defines every figure.
"""
from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from triage.config import Config, SupportHours
from triage.core import hours
from triage.core.knowledge import OFFERED_RULES
from triage.desk import charts
from triage.store import Store

DEFAULT_HOURS = SupportHours(days=(0, 1, 2, 3, 4), start=time(9), end=time(17))  # as a tenant file's default
DEFAULT_DUE_HOURS = 4.0
NO_TENANT = "(no tenant)"
ALL = "all tenants"
MAX_SERIES = 7  # more series than this are drawn as "other" (the rows and CSV keep them all)
AGENT_ANSWER = ("agent-reply", "approved", "widget-reply", "article-sent")
AGENT_TOUCH = ("approved", "reclassified", "agent-reply", "widget-reply", "escalated", "article-sent")
REFUSED_MAIL = ("reply-suppressed", "relay-suppressed", "mail-suppressed")
# Help articles: offered with the decision, the widget visitor's answer, an agent's sending.
FEEDBACK, SOLVED, NOT_SOLVED, ARTICLE_SENT = "kb-feedback", "kb-solved", "kb-not-solved", "article-sent"
ARTICLE_REJECTED = "article-rejected"  # an agent's "Not the answer" on the offered article
OFFERED = " OR ".join(f"instr(e.rules, '\"{rule}\"') > 0" for rule in OFFERED_RULES)
RAW_TMP, TICKETS_TMP, HOURS_TMP = "temp.report_raw", "temp.report_tickets", "temp.report_hours"


class ReportError(ValueError):
    """A bad date or an unknown tenant: said to the user in one line."""


@dataclass
class Chart:
    """One figure: its rows (the data, the CSV and the SVG show the same numbers)."""

    name: str
    title: str
    columns: list[str]
    rows: list[tuple[Any, ...]]
    draw: Callable[[Chart], str] = field(repr=False)

    def svg(self) -> str:
        return self.draw(self)

    def csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(self.columns)
        writer.writerows(self.rows)
        return out.getvalue()

    def text(self) -> str:
        """An aligned table for the terminal."""
        shares = [c.endswith(("share", "_rate")) for c in self.columns]
        cells = [[str(c) for c in self.columns]] + [[_cell(v, share) for v, share in zip(row, shares)]
                                                    for row in self.rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(self.columns))]
        lines = [f"{self.title} [{self.name}]"]
        if not self.rows:
            return lines[0] + f"\n  {charts.EMPTY}"
        for n, row in enumerate(cells):
            lines.append("  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                          for i, (c, w) in enumerate(zip(row, widths))).rstrip())
            if n == 0:
                lines.append("  " + "  ".join("-" * w for w in widths))
        return "\n".join(lines)


@dataclass
class Report:
    since: date | None
    until: date | None
    tenants: list[str] | None
    period: str  # day, week or month
    charts: list[Chart]

    def chart(self, name: str) -> Chart:
        return next(c for c in self.charts if c.name == name)

    def text(self) -> str:
        scope = ", ".join(self.tenants) if self.tenants else "all tenants"
        head = (f"Support report: {self.since or 'first ticket'} to {self.until or 'last ticket'} (UTC days), {scope}, "
                f"per {self.period}")
        return "\n\n".join([head] + [c.text() for c in self.charts]) + "\n"

    def csv(self) -> str:
        return "\n".join(f"# {c.name}\n{c.csv()}" for c in self.charts)


def _cell(value: Any, share: bool) -> str:
    if value is None:
        return "-"
    if share:
        return f"{value * 100:.1f}%"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def parse_day(value: str | None, name: str) -> date | None:
    if value is None or value == "":
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ReportError(f"{name} must be a date like 2026-11-23, not {value!r}") from None


# -- the build ------------------------------------------------------------------------------


def build(store: Store, tenants: list[str] | None = None, since: str | None = None, until: str | None = None,
          config: Config | None = None) -> Report:
    """All figures for tickets created from ``since`` to ``until`` (ISO dates, UTC, inclusive) of
    ``tenants`` (None: all). ``config`` gives support hours, time zones and the first-response due
    time; without it every tenant has Mon-Fri 09:00-17:00 UTC and 4 hours."""
    first, last = parse_day(since, "since"), parse_day(until, "until")
    if first and last and first > last:
        raise ReportError(f"since ({first}) is after until ({last})")
    if tenants:
        _check_tenants(store, tenants, config)
    where, params = _where(tenants, first, last)
    with store.transaction():
        db = store.db
        span = db.execute(f"SELECT min(created_at), max(created_at) FROM tickets t{where}", params).fetchone()
        start = first or (date.fromisoformat(span[0][:10]) if span[0] else None)
        end = last or (date.fromisoformat(span[1][:10]) if span[1] else None)
        period = _period(start, end)
        periods = _periods(period, start, end) if span[0] else []
        volume = list(db.execute(
            f"SELECT {_PERIOD_SQL[period]}, coalesce(tenant, ''), coalesce(channel, ''), coalesce(category, ''), "
            f"coalesce(category, '') || '/' || coalesce(intent, ''), coalesce(requester, ''), "
            f"coalesce(language, ''), count(*) FROM tickets t{where} GROUP BY 1, 2, 3, 4, 5, 6, 7", params))
        facts = _TicketFacts(store, config, where, params)
        try:
            figures = [
                *_volume_charts(volume, periods, period),
                _requesters(volume),
                *facts.charts(),
                _language(volume),
            ]
        finally:
            facts.drop()
    return Report(first, last, tenants, period, figures)


def _check_tenants(store: Store, tenants: list[str], config: Config | None) -> None:
    known = set(config.tenants) if config else set()
    for tenant in tenants:
        if tenant in known or store.db.execute("SELECT 1 FROM tickets WHERE tenant = ? LIMIT 1", [tenant]).fetchone():
            continue
        names = sorted(known | {r[0] for r in store.db.execute("SELECT DISTINCT tenant FROM tickets") if r[0]})
        raise ReportError(f"unknown tenant {tenant!r} (known: {', '.join(names) or 'none'})")


def _where(tenants: list[str] | None, first: date | None, last: date | None) -> tuple[str, list[Any]]:
    """The tickets filter: created_at is UTC ISO text, so a day bound is a text comparison (indexed)."""
    clauses, params = [], []
    if first:
        clauses.append("t.created_at >= ?")
        params.append(first.isoformat())
    if last:
        clauses.append("t.created_at < ?")
        params.append((last + timedelta(days=1)).isoformat())
    if tenants:
        clauses.append(f"t.tenant IN ({', '.join('?' * len(tenants))})")
        params += tenants
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


_PERIOD_SQL = {
    "day": "substr(t.created_at, 1, 10)",
    "week": "date(substr(t.created_at, 1, 10), 'weekday 0', '-6 days')",  # the Monday of its ISO week
    "month": "substr(t.created_at, 1, 7) || '-01'",
}


def _period(start: date | None, end: date | None) -> str:
    """Days up to a month, weeks up to half a year, months beyond: 4 to 30 bars in most ranges."""
    days = (end - start).days + 1 if start and end else 1
    return "day" if days <= 31 else "week" if days <= 183 else "month"


def _periods(period: str, start: date, end: date) -> list[str]:
    """Every period of the range, the empty ones too (a quiet week is a figure)."""
    if period == "week":
        start -= timedelta(days=start.weekday())
    elif period == "month":
        start = start.replace(day=1)
    out = []
    while start <= end:
        out.append(start.isoformat())
        if period == "day":
            start += timedelta(days=1)
        elif period == "week":
            start += timedelta(days=7)
        else:
            start = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    return out


def _tenant_label(slug: str) -> str:
    return slug or NO_TENANT


# -- volume, requesters, languages (from the one grouped scan) ---------------------------------


def _volume_charts(volume: list[tuple[Any, ...]], periods: list[str], period: str) -> list[Chart]:
    out = []
    for key, index, what in (("tenant", 1, "tenant"), ("channel", 2, "channel"), ("category", 3, "category")):
        counts: dict[str, Counter[str]] = defaultdict(Counter)
        for row in volume:
            label = _tenant_label(row[index]) if key == "tenant" else (row[index] or "(none)")
            counts[label][row[0]] += row[-1]
        names = sorted(counts, key=lambda n: (-sum(counts[n].values()), n))
        rows = [(p, *(counts[n][p] for n in names), sum(counts[n][p] for n in names)) for p in periods]
        out.append(Chart(f"volume-{key}", f"Tickets per {period} by {what}", ["period", *names, "total"],
                         rows if names else [], _draw_volume(period)))
    by_label: dict[str, Counter[str]] = defaultdict(Counter)
    for row in volume:
        by_label[row[4]][row[0]] += row[-1]
    labels = sorted(by_label, key=lambda n: (-sum(by_label[n].values()), n))
    rows = [(label, *(by_label[label][p] for p in periods), sum(by_label[label].values())) for label in labels]
    out.append(Chart("volume-intent", f"Tickets per {period} by intent", ["intent", *periods, "total"], rows,
                     lambda c: charts.heatmap(c.name, c.title, [r[0] for r in c.rows], c.columns[1:-1],
                                              [list(r[1:-1]) for r in c.rows], x_label=period)))
    return out


def _draw_volume(period: str) -> Callable[[Chart], str]:
    def draw(c: Chart) -> str:
        names = c.columns[1:-1]
        series = [(n, [r[1 + i] for r in c.rows]) for i, n in enumerate(names)]
        return charts.stacked_columns(c.name, c.title, [r[0] for r in c.rows], _fold(series),
                                      x_label=period.capitalize() + " (UTC)", y_label="tickets")
    return draw


def _fold(series: list[tuple[str, list[float]]]) -> list[tuple[str, list[float]]]:
    """At most MAX_SERIES colours: the smallest series (they come sorted) drawn together as "other"."""
    if len(series) <= MAX_SERIES + 1:
        return series
    rest = series[MAX_SERIES:]
    return series[:MAX_SERIES] + [("other", [sum(v) for v in zip(*(values for _n, values in rest))])]


def _requesters(volume: list[tuple[Any, ...]]) -> Chart:
    """Internal (the tenant's staff) vs external (suppliers) requesters of people's tickets;
    automatic mail is not a requester. Shares are of the identified (internal + external)."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for row in volume:
        if row[3] != "automated":
            counts[_tenant_label(row[1])][row[5] or "unknown"] += row[-1]
            counts[ALL][row[5] or "unknown"] += row[-1]
    rows = []
    for tenant in sorted(counts, key=lambda t: (t == ALL, t)):
        c = counts[tenant]
        known = c["internal"] + c["external"]
        rows.append((tenant, c["internal"], c["external"], c["unknown"],
                     round(c["internal"] / known, 4) if known else None,
                     round(c["external"] / known, 4) if known else None))
    return Chart("requesters", "Internal vs external requesters",
                 ["tenant", "internal", "external", "unknown", "internal_share", "external_share"], rows,
                 lambda c: charts.bars(c.name, c.title, [r[0] for r in c.rows],
                                       [("internal", [r[4] or 0 for r in c.rows]),
                                        ("external", [r[5] or 0 for r in c.rows])],
                                       x_label="share of identified requesters (the APS desk reports 77% / 23%)",
                                       fmt=charts.percent,
                                       notes=[f"{r[1]} internal, {r[2]} external, {r[3]} unknown" for r in c.rows]))


def _language(volume: list[tuple[Any, ...]]) -> Chart:
    counts: Counter[str] = Counter()
    for row in volume:
        counts[row[6] or "(unknown)"] += row[-1]
    total = sum(counts.values())
    rows = [(lang, n, round(n / total, 4)) for lang, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    return Chart("language", "Language mix", ["language", "tickets", "share"], rows,
                 lambda c: charts.bars(c.name, c.title, [r[0] for r in c.rows], [("tickets", [r[1] for r in c.rows])],
                                       x_label="tickets", notes=[charts.percent(r[2]) for r in c.rows]))


# -- per-ticket facts: responses, resolution, handling, suppressed mail, corrections -----------


def _staffed(column: str) -> str:
    """SQL for the staffed seconds of the ticket's tenant before the epoch ``column``."""
    return (f"coalesce((SELECT c.cum + min(max({column} - c.start, 0), c.stop - c.start) FROM {HOURS_TMP} c "
            f"WHERE c.tenant = r.tenant AND c.start <= {column} ORDER BY c.start DESC LIMIT 1), 0)")


def _kinds(kinds: Sequence[str]) -> str:
    return ", ".join(f"'{k}'" for k in kinds)


class _TicketFacts:
    """The temporary per-ticket table and the figures aggregated from it."""

    def __init__(self, store: Store, config: Config | None, where: str, params: list[Any]):
        self.db = store.db
        self.config = config
        self.due_hours = float(config.slack.get("first_response_hours", DEFAULT_DUE_HOURS)) if config \
            else DEFAULT_DUE_HOURS
        self.drop()
        # The selected tickets first (by the created_at or tenant index, not a scan in id order), then
        # one pass over their events (a few each: one range of the events(ticket) index). ``min(created_at ||
        # US || x)`` is the x of the earliest such event; the first automatic reply is the first
        # outgoing reply before any agent's answer (an agent's mail is an outbox 'reply' too).
        self.db.execute(f"""
            CREATE TABLE {RAW_TMP} AS WITH t AS MATERIALIZED (
              SELECT t.id, t.tenant, t.category, t.intent, t.created_at FROM tickets t{where})
            SELECT t.id AS id, coalesce(t.tenant, '') AS tenant,
              coalesce(t.category, '') || '/' || coalesce(t.intent, '') AS label, t.created_at AS created,
              min(CASE WHEN e.kind = 'decision' THEN e.created_at || char(31) || coalesce(e.outcome, '') END) AS decision,
              min(CASE WHEN e.kind = 'reply' THEN e.created_at END) AS reply,
              min(CASE WHEN e.kind IN ({_kinds(AGENT_ANSWER)}) THEN e.created_at END) AS answered,
              min(CASE WHEN e.kind = 'status' AND (instr(e.rules, '"agent-resolved"') > 0
                       OR instr(e.rules, '"agent-closed"') > 0) THEN e.created_at END) AS resolved,
              min(CASE WHEN e.kind IN ({_kinds(AGENT_TOUCH)}) THEN e.created_at END) AS touched,
              min(CASE WHEN e.kind = 'reclassified' THEN e.created_at || char(31) || coalesce(e.detail, '') END) AS corrected,
              max(e.kind = 'decision' AND ({OFFERED})) AS offered,
              max(e.kind = '{FEEDBACK}' AND instr(e.rules, '"{SOLVED}"') > 0) AS solved,
              max(e.kind = '{FEEDBACK}' AND instr(e.rules, '"{NOT_SOLVED}"') > 0) AS not_solved,
              max(e.kind = '{ARTICLE_SENT}') AS article_sent,
              max(e.kind = '{ARTICLE_REJECTED}') AS article_rejected
            FROM t LEFT JOIN events e ON e.ticket = t.id
            GROUP BY t.id""", params)
        self.db.execute(f"""
            CREATE TABLE {TICKETS_TMP} AS SELECT id, tenant, label, unixepoch(created) AS created,
              substr(decision, instr(decision, char(31)) + 1) AS decision,
              unixepoch(CASE WHEN answered IS NULL OR reply < answered THEN reply END) AS ack,
              unixepoch(answered) AS answered, unixepoch(resolved) AS resolved, unixepoch(touched) AS touched,
              CASE WHEN corrected IS NOT NULL THEN coalesce(json_extract(
                nullif(substr(corrected, instr(corrected, char(31)) + 1), ''), '$.from'), label) END AS corrected_from,
              coalesce(offered, 0) AS offered, coalesce(solved, 0) AS solved,
              coalesce(not_solved AND NOT solved, 0) AS not_solved, coalesce(article_sent, 0) AS article_sent,
              coalesce(article_rejected, 0) AS article_rejected,
              NULL AS staffed, NULL AS ack_s, NULL AS answered_s, NULL AS resolved_s
            FROM {RAW_TMP}""")
        self.db.execute(f"DROP TABLE {RAW_TMP}")
        self._calendar()
        self.db.execute(f"UPDATE {TICKETS_TMP} AS r SET staffed = {_staffed('r.created')}")
        self.db.execute(f"""
            UPDATE {TICKETS_TMP} AS r SET
              ack_s = CASE WHEN ack IS NOT NULL THEN {_staffed('r.ack')} - staffed END,
              answered_s = CASE WHEN answered IS NOT NULL THEN {_staffed('r.answered')} - staffed END,
              resolved_s = CASE WHEN resolved IS NOT NULL THEN {_staffed('r.resolved')} - staffed END
            WHERE ack IS NOT NULL OR answered IS NOT NULL OR resolved IS NOT NULL""")

    def drop(self) -> None:
        for table in (RAW_TMP, TICKETS_TMP):
            self.db.execute(f"DROP TABLE IF EXISTS {table}")
        self.db.execute(f"DROP TABLE IF EXISTS {HOURS_TMP}")

    def _calendar(self) -> None:
        """Each tenant's staffed periods over the days the tickets and their answers span."""
        self.db.execute(f"CREATE TABLE {HOURS_TMP} (tenant TEXT, start INTEGER, stop INTEGER, cum INTEGER)")
        low, high = self.db.execute(
            f"SELECT min(created), max(max(created, coalesce(ack, 0), coalesce(answered, 0), coalesce(resolved, 0))) "
            f"FROM {TICKETS_TMP}").fetchone()
        if low is None:
            return
        first = datetime.fromtimestamp(low, timezone.utc).date() - timedelta(days=1)
        last = datetime.fromtimestamp(high, timezone.utc).date() + timedelta(days=1)
        for (tenant,) in self.db.execute(f"SELECT DISTINCT tenant FROM {TICKETS_TMP}").fetchall():
            known = self.config.tenants.get(tenant) if self.config else None
            support, zone = (known.hours, known.timezone) if known else (DEFAULT_HOURS, "UTC")
            cum, rows = 0, []
            for start, stop in hours.staffed_intervals(support, zone, first, last):
                a, b = int(start.timestamp()), int(stop.timestamp())
                rows.append((tenant, a, b, cum))
                cum += b - a
            self.db.conn.executemany(f"INSERT INTO {HOURS_TMP} VALUES (?, ?, ?, ?)", rows)
        self.db.execute(f"CREATE INDEX {HOURS_TMP}_idx ON report_hours (tenant, start)")

    # -- aggregation ---------------------------------------------------------------------------

    def _per_tenant(self, select: str, where: str = "") -> dict[str, tuple[Any, ...]]:
        """Counts (``select`` is sums and counts only) per tenant, and their sums over all (key ALL)."""
        sql = f"SELECT tenant, {select} FROM {TICKETS_TMP}{' WHERE ' + where if where else ''} GROUP BY 1"
        out = {_tenant_label(r[0]): tuple(r[1:]) for r in self.db.execute(sql)}
        if out:
            out[ALL] = tuple(sum(column) for column in zip(*out.values()))
        return out

    def _quantiles(self, column: str) -> dict[str, tuple[float | None, float | None]]:
        """Nearest-rank median and 90th percentile of ``column`` (seconds) in hours, per tenant and
        overall. SQLite has no percentile aggregate and window functions cost more than reading the
        sorted numbers once: one column of one temporary table, sorted by SQLite."""
        values: dict[str, list[float]] = defaultdict(list)
        for tenant, value in self.db.execute(
                f"SELECT tenant, {column} FROM {TICKETS_TMP} WHERE {column} IS NOT NULL ORDER BY {column}"):
            values[_tenant_label(tenant)].append(value)
            values[ALL].append(value)
        return {k: (_hours(v[(len(v) + 1) // 2 - 1]), _hours(v[(9 * len(v) + 9) // 10 - 1])) for k, v in values.items()}

    def charts(self) -> list[Chart]:
        return [self._first_response(), self._due_share(), self._resolution(), self._handling(),
                self._articles(), self._suppressed(), self._corrections()]

    def _first_response(self) -> Chart:
        counts = self._per_tenant("count(*), count(ack), count(answered)")
        ack = self._quantiles("ack_s")
        agent = self._quantiles("answered_s")
        rows = [(t, n, acked, *ack.get(t, (None, None)), answered, *agent.get(t, (None, None)))
                for t, (n, acked, answered) in _ordered(counts)]
        return Chart("first-response", "First response in support hours (median)",
                     ["tenant", "tickets", "acknowledged", "ack_median_h", "ack_p90_h", "answered_by_agent",
                      "response_median_h", "response_p90_h"], rows,
                     lambda c: charts.bars(
                         c.name, c.title, [r[0] for r in c.rows],
                         [("automatic acknowledgement", [r[3] or 0 for r in c.rows]),
                          ("first agent response", [r[6] or 0 for r in c.rows])],
                         x_label="working hours (median)",
                         notes=[f"{r[5]} of {r[1]} answered by an agent" for r in c.rows]))

    def _due_share(self) -> Chart:
        due = self.due_hours * 3600
        counts = self._per_tenant(f"count(*), sum(answered_s IS NOT NULL AND answered_s <= {due})",
                                  "instr(decision, 'notify_agents') > 0")
        rows = [(t, n, within, round(within / n, 4), self.due_hours) for t, (n, within) in _ordered(counts)]
        return Chart("due-share", f"Answered by an agent within {charts.number(self.due_hours)} working hours",
                     ["tenant", "needing_agent", "within_due", "share", "due_hours"], rows,
                     lambda c: charts.bars(c.name, c.title, [r[0] for r in c.rows], [("share", [r[3] for r in c.rows])],
                                           x_label="share of the tickets sent to agents", fmt=charts.percent,
                                           notes=[f"{r[2]} of {r[1]}" for r in c.rows]))

    def _resolution(self) -> Chart:
        counts = self._per_tenant("count(resolved)", "resolved IS NOT NULL")
        q = self._quantiles("resolved_s")
        rows = [(t, n, *q.get(t, (None, None))) for t, (n,) in _ordered(counts)]
        return Chart("resolution", "Resolution time in support hours",
                     ["tenant", "resolved", "median_h", "p90_h"], rows,
                     lambda c: charts.bars(c.name, c.title, [r[0] for r in c.rows],
                                           [("median", [r[2] or 0 for r in c.rows]),
                                            ("90th percentile", [r[3] or 0 for r in c.rows])],
                                           x_label="working hours from the first message to resolved or closed",
                                           notes=[f"{r[1]} resolved" for r in c.rows]))

    def _handling(self) -> Chart:
        held = "instr(coalesce(decision, ''), 'hold_for_review') > 0"
        touched = "touched IS NOT NULL AND (resolved IS NULL OR touched <= resolved)"
        counts = self._per_tenant(f"count(*), sum(NOT ({held}) AND NOT ({touched})), "
                                  f"sum(NOT ({held}) AND ({touched})), sum({held})")
        rows = [(t, n, auto, agent, hold, round(auto / n, 4)) for t, (n, auto, agent, hold) in _ordered(counts)]
        return Chart("handling", "Decided automatically, by an agent, or held for review",
                     ["tenant", "tickets", "automated", "agent_handled", "held_for_review", "automation_rate"], rows,
                     lambda c: charts.stacked_columns(c.name, c.title, [r[0] for r in c.rows],
                                                      [("automated", [r[2] for r in c.rows]),
                                                       ("agent handled", [r[3] for r in c.rows]),
                                                       ("held for review", [r[4] for r in c.rows])],
                                                      x_label="tenant", y_label="tickets"))

    def _articles(self) -> Chart:
        """Deflection: of the tickets offered a help article, those whose requester said one
        solved it (the widget's "This solved it"; mail has no such button, so its share is a
        lower bound), those who still needed help, the tickets an agent sent an article, and those
        whose offered article an agent marked "Not the answer" (the bot's wrong articles, as
        agents found them)."""
        counts = self._per_tenant("sum(offered), sum(solved), sum(not_solved), sum(article_sent), "
                                  "sum(article_rejected)",
                                  "offered OR solved OR not_solved OR article_sent OR article_rejected")
        rows = [(t, offered, solved, unsolved, sent, rejected, round(solved / offered, 4) if offered else None)
                for t, (offered, solved, unsolved, sent, rejected) in _ordered(counts)]
        return Chart("help-articles", "Help articles: offered, solved by one, sent or rejected by agents",
                     ["tenant", "offered", "solved_by_article", "still_needed_help", "sent_by_agent",
                      "rejected_by_agent", "deflection_rate"], rows,
                     lambda c: charts.bars(c.name, c.title, [r[0] for r in c.rows],
                                           [("offered", [r[1] for r in c.rows]),
                                            ("solved by the article", [r[2] for r in c.rows]),
                                            ("sent by an agent", [r[4] for r in c.rows]),
                                            ("rejected by an agent", [r[5] for r in c.rows])],
                                           x_label="tickets",
                                           notes=[f"{charts.percent(r[6])} deflected" if r[6] is not None
                                                  else "none offered" for r in c.rows]))

    def _suppressed(self) -> Chart:
        rows = list(self.db.execute(f"""
            SELECT rule, count(*) FROM (
              SELECT json_extract(e.rules, '$[#-1]') AS rule FROM events e JOIN {TICKETS_TMP} r ON r.id = e.ticket
                WHERE e.kind = 'decision' AND instr(e.outcome, 'suppress') > 0
              UNION ALL
              SELECT json_extract(e.rules, '$[0]') FROM events e JOIN {TICKETS_TMP} r ON r.id = e.ticket
                WHERE e.kind IN ({_kinds(REFUSED_MAIL)}))
            GROUP BY 1 ORDER BY 2 DESC, 1"""))
        return Chart("suppressed", "Automatic mail not sent, by rule", ["rule", "mails"],
                     [(rule or "(none)", n) for rule, n in rows],
                     lambda c: charts.bars(c.name, c.title, [r[0] for r in c.rows], [("mails", [r[1] for r in c.rows])],
                                           x_label="messages answered with silence or replies refused"))

    def _corrections(self) -> Chart:
        rows = list(self.db.execute(f"""
            SELECT coalesce(corrected_from, label) AS original, count(*), count(corrected_from)
            FROM {TICKETS_TMP} GROUP BY 1 ORDER BY 3 DESC, 2 DESC, 1"""))
        return Chart("corrections", "Agents' corrections by the classifier's intent",
                     ["intent", "tickets", "corrected", "share"],
                     [(label, n, fixed, round(fixed / n, 4)) for label, n, fixed in rows],
                     lambda c: charts.bars(c.name, c.title, [r[0] for r in c.rows],
                                           [("corrected", [r[2] for r in c.rows])], x_label="tickets reclassified",
                                           notes=[f"{charts.percent(r[3])} of {r[1]}" for r in c.rows]))


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 3600, 2)


def _ordered(per_tenant: dict[str, tuple[Any, ...]]) -> list[tuple[str, tuple[Any, ...]]]:
    """Tenants by name, the all-tenants row last."""
    return sorted(per_tenant.items(), key=lambda kv: (kv[0] == ALL, kv[0]))
