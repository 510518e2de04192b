"""Shared fixtures. Tests that need ../shared (the evaluation set and real-mail corpora)
skip with a clear reason where it is absent, as on a user's clone; CI always has it."""
from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest

from triage.config import Config, load_config

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = REPO.parent / "shared"
TEST_CONFIG = HERE / "data" / "config"


def need_shared(*parts: str) -> Path:
    """The path under ../shared, or skip the test saying why."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared is only next to a CI or developer checkout)")
    return path


@pytest.fixture(scope="session")
def config() -> Config:
    return load_config(TEST_CONFIG)


def make_email(sender: str = "tom.user@steelworks.lt", to: str = "acme@support.test",
               subject: str = "Hello", body: str = "Hello", dmarc: str | None = "pass",
               authserv: str = "mx.support.test", headers: dict[str, str] | None = None,
               name: str = "") -> bytes:
    """A raw RFC 5322 message as a receiving MX would hand it over."""
    msg = EmailMessage()
    domain = sender.rpartition("@")[2]
    if dmarc is not None:
        msg["Authentication-Results"] = f"{authserv}; dmarc={dmarc} header.from={domain}"
    msg["From"] = f"{name} <{sender}>" if name else sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{abs(hash((sender, subject, body)))}@test>"
    for key, value in (headers or {}).items():
        msg[key] = value
    msg.set_content(body)
    return bytes(msg)
