"""Support hours: are humans at work now, and when will they be?

Acknowledgements promise an answer within the tenant's support hours, so the reply says
"support is back Monday 08:00" on a Saturday rather than a vague "soon".
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from triage.config import SupportHours

# Time zone names are validated when the configuration loads (a misspelt one is an error
# there), so here a name is always one ZoneInfo knows.


def is_open(hours: SupportHours, timezone: str, now: datetime) -> bool:
    local = now.astimezone(ZoneInfo(timezone))
    return local.weekday() in hours.days and hours.start <= local.time() < hours.end


def next_open(hours: SupportHours, timezone: str, now: datetime) -> datetime:
    """``now`` when open, else the start of the next staffed period (local time)."""
    local = now.astimezone(ZoneInfo(timezone))
    if is_open(hours, timezone, now):
        return local
    for days_ahead in range(0, 8):
        day = (local + timedelta(days=days_ahead)).date()
        start = datetime.combine(day, hours.start, tzinfo=local.tzinfo)
        if day.weekday() in hours.days and start > local:
            return start
    return local  # no staffed day configured: promise nothing better than now


def staffed_intervals(hours: SupportHours, timezone: str, first: date, last: date) -> list[tuple[datetime, datetime]]:
    """The staffed periods of the local days ``first``..``last`` as (start, end) in the tenant's
    time zone: what reports count response times in ("4 working hours", not "4 hours")."""
    zone = ZoneInfo(timezone)
    out = []
    day = first
    while day <= last:
        if day.weekday() in hours.days:
            start = datetime.combine(day, hours.start, tzinfo=zone)
            end = datetime.combine(day, hours.end, tzinfo=zone)
            if end > start:
                out.append((start, end))
        day += timedelta(days=1)
    return out


def first_response_due(support: SupportHours, timezone: str, created: datetime, working_hours: float) -> datetime:
    """``working_hours`` of staffed time after ``created`` (support hours, tenant time zone): when
    a first response is due (the Slack reminder, the console's inbox), never late at night."""
    left = timedelta(hours=working_hours)
    at = created
    for _ in range(400):  # a year of days at most: bounded even for odd configurations
        start = next_open(support, timezone, at)
        end = datetime.combine(start.date(), support.end, tzinfo=start.tzinfo)
        if end <= start or start + left <= end:
            return start + left
        left -= end - start
        at = end + timedelta(minutes=1)
    return at
