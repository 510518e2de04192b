"""Every widget and Slack attack replayed against ``triage serve`` started as a subprocess on
a copy of ../shared/eval/config (the mail attacks' replay is in tests/test_mail_attacks.py),
watched by tests/serving.py: /healthz answers 200 every 0.2 s throughout, the process is up
at the end and no request anywhere ended in a 500.

The copy turns the widget on for the tenant nordvik (its secret from the environment) and
Slack on, its secrets in the subprocess's environment and ``slack.api_url`` pointing at
tests/slackkit.py's FakeSlackApi: a local stand-in for Slack's Web API, an HTTP server on
127.0.0.1 that records every call (only Slack can answer the real one). The relay is a
recording aiosmtpd sink."""
from __future__ import annotations

import re
from pathlib import Path

import aiohttp

from tests import slackattacks, widgetattacks
from tests import slackkit as sk
from tests.mailattacks import EVAL
from tests.mailattacks import Ctx as MailCtx
from tests.servicekit import Sink
from tests.serving import serve_config, triage_serve

SECRET = "nordvik-widget-secret-for-the-replay"
ORIGIN = "https://portal.nordvik.example"


def with_widget_and_slack(folder: Path, api: sk.FakeSlackApi) -> Path:
    """The widget for nordvik as tests/test_widget_api.py sets it up for acme (500 bytes a
    message; a generous rate limit, since one replay posts what many tests do; the secret from
    the environment, over the file's), its agents in slackkit's channel, and Slack's Web API
    on the stand-in."""
    tenant = folder / "tenants" / "nordvik.toml"
    text = re.sub(r"(?m)^(widget_origins|slack_channel) = .*\n", "", tenant.read_text())  # replaced below
    tenant.write_text(f'widget_secret_env = "NORDVIK_WIDGET_SECRET"\nwidget_origins = ["{ORIGIN}"]\n'
                      'widget_max_message_size = 500\nwidget_rate_limits = ["200/60"]\n'
                      f'slack_channel = "{sk.CHANNEL}"\n' + text)
    toml = folder / "triage.toml"
    toml.write_text(toml.read_text() + f'\n[slack]\napi_url = "{api.base_url}"\n')
    return folder


async def test_triage_serve_on_the_eval_config_holds_every_widget_and_slack_attack(tmp_path):
    api, sink = sk.FakeSlackApi(), Sink()
    await api.start()
    env = {"NORDVIK_WIDGET_SECRET": SECRET, "SLACK_BOT_TOKEN": sk.BOT_TOKEN,
           "SLACK_SIGNING_SECRET": sk.SIGNING_SECRET, "SLACK_APP_TOKEN": ""}
    try:
        folder = with_widget_and_slack(serve_config(tmp_path / "config", sink.url), api)
        async with triage_serve(folder, env) as served:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
                widget = widgetattacks.Ctx(served.base, "nordvik", "helios", SECRET, ORIGIN, served.query, session)
                for attack in widgetattacks.ATTACKS:
                    await attack(widget)
            slack = slackattacks.Ctx(MailCtx(EVAL, served.smtp, served.query, sink, served.healthz), served.base, api)
            for attack in slackattacks.ATTACKS:
                await attack(slack)
            assert api.posted("auth.test") or api.posted()  # Slack really was on, against the stand-in
    finally:
        sink.close()
        await api.close()
