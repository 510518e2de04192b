"""Attacks on the help widget's HTTP API against the service in the test's event loop: the
attacks themselves are tests/widgetattacks.py (replayed against ``triage serve`` by
tests/test_serve_attacks.py); here also what only the service's insides can show (the
refusal summariser on a moved clock, a refusal whose event cannot be written)."""
from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests import widgetattacks as wa
from tests.test_widget_api import PORTAL, SECRET, rows, service, session  # noqa: F401
from triage.service.app import Service

EVIL = wa.EVIL


@pytest.fixture
async def ctx(service: Service, session: aiohttp.ClientSession) -> AsyncIterator[wa.Ctx]:  # noqa: F811
    host, port = service.web_address

    async def query(sql: str, params: list) -> list[dict]:
        return await rows(service, sql, params)

    yield wa.Ctx(f"http://{host}:{port}", "acme", "zenith", SECRET, PORTAL, query, session)


async def test_a_flood_of_refused_requests_writes_a_bounded_number_of_rows(ctx):
    await wa.attack_flood_of_refused_requests(ctx)


async def test_the_refusal_summary_carries_the_count(service, session, ctx):
    url = f"{ctx.base}/messages"
    for _ in range(25):
        async with session.post(url, json=ctx.body(), headers={"Origin": EVIL}) as r:
            assert r.status == 403
    await service.widget.refusals.flush()  # what a stop or the end of the window does
    [event] = await rows(service, "SELECT rules, detail FROM events")
    detail = json.loads(event["detail"])
    assert json.loads(event["rules"]) == ["widget-origin-refused"]
    assert detail["count"] == 25 and detail["source"] == "127.0.0.1" and detail["origin"] == EVIL


async def test_refusal_windows_end_and_many_sources_share_one_summary():
    """The summariser alone, on a clock the test moves: a new window is a new event, the old
    one gets its final count, and sources past max_sources are counted together."""
    from channels.widget_limits import MANY, Refusals

    events: dict[int, dict] = {}
    now = [0.0]

    async def write(kind: str, rules: list[str], detail: dict) -> int:
        events[len(events) + 1] = {"rules": rules, **detail}
        return len(events)

    async def update(event: int, detail: dict) -> None:
        events[event].update(detail)

    refusals = Refusals(write, update, window=60, max_sources=3, clock=lambda: now[0])
    for _ in range(10):
        await refusals.note("10.0.0.1", "origin-refused", "widget-origin-refused", {})
    now[0] = 61
    await refusals.note("10.0.0.1", "origin-refused", "widget-origin-refused", {})
    assert [e["count"] for e in events.values()] == [10, 1]
    for i in range(50):  # fifty new addresses in one window
        await refusals.note(f"10.0.1.{i}", "origin-refused", "widget-origin-refused", {})
    await refusals.flush()
    assert len(events) == 2 + 2 + 1  # two more sources, then one shared summary
    assert events[5]["source"] == MANY and events[5]["count"] == 48


async def test_a_refusal_is_answered_even_when_its_event_cannot_be_written(service, session, ctx, monkeypatch):
    def broken(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise OSError("disk full")

    monkeypatch.setattr(service.store, "add_event", broken)
    async with session.post(f"{ctx.base}/messages", json=ctx.body(), headers={"Origin": EVIL}) as r:
        assert r.status == 403 and (await r.json())["rule"] == "widget-origin-refused"
    assert "disk full" in service.last_error
    monkeypatch.undo()
    async with session.post(f"{ctx.base}/messages", json=ctx.body(), headers={"Origin": EVIL}) as r:
        assert r.status == 403
    assert len(await rows(service, "SELECT id FROM events")) == 1  # the window opened again


# -- the rest: each attack once, against a fresh service -----------------------------------------

async def test_malformed_bodies_get_a_400_naming_the_problem(ctx):
    await wa.attack_malformed_bodies(ctx)


async def test_wrong_field_types_and_values_get_a_400_naming_the_field(ctx):
    await wa.attack_wrong_field_types_and_values(ctx)


async def test_a_strange_event_position_is_a_400_not_a_crash(ctx):
    await wa.attack_strange_event_position(ctx)


async def test_strange_tokens_in_the_query_are_4xx(ctx):
    await wa.attack_strange_tokens_in_the_query(ctx)


async def test_the_transcript_endpoint_is_checked_the_same_way(ctx):
    await wa.attack_the_transcript_endpoint(ctx)


async def test_a_chunked_body_past_the_limit_is_refused_without_being_read_whole(ctx):
    await wa.attack_chunked_body_past_the_limit(ctx)


async def test_a_body_arriving_in_pieces_is_read_whole(ctx):
    await wa.attack_slow_body(ctx)


async def test_fuzzed_bodies_never_get_a_5xx_and_never_grow_the_database_unbounded(ctx):
    await wa.attack_fuzzed_bodies(ctx)


async def test_one_source_cannot_hold_unbounded_event_streams_open(ctx):
    await wa.attack_unbounded_event_streams(ctx)


async def test_the_demo_page_does_not_list_the_tenants_nor_reflect_markup(ctx):
    await wa.attack_demo_page_markup(ctx)


async def test_a_header_with_crlf_does_not_split_the_response(ctx):
    await wa.attack_header_with_crlf(ctx)
