"""Attacks on ``POST /slack/events`` over the real socket, against the service in the test's
event loop with Slack on (tests/test_slack.py's ``env``): the attacks themselves are
tests/slackattacks.py, replayed against ``triage serve`` by tests/test_serve_attacks.py."""
from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests import slackattacks as sa
from tests.mailattacks import ACME
from tests.mailattacks import Ctx as MailCtx
from tests.test_slack import Env, env  # noqa: F401 - the running service with Slack on


@pytest.fixture
async def ctx(env: Env) -> AsyncIterator[sa.Ctx]:  # noqa: F811
    host, port = env.service.web_address
    mail = MailCtx(ACME, env.service.smtp_address, env.rows, env.sink, f"http://{host}:{port}/healthz")
    yield sa.Ctx(mail, f"http://{host}:{port}", env.api)


@pytest.mark.parametrize("attack", sa.ATTACKS, ids=lambda a: a.__name__.removeprefix("attack_"))
async def test_each_slack_attack_is_held(ctx, attack):
    await attack(ctx)
