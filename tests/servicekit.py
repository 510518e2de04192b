"""Test helpers for the mail service: a configuration in a temporary folder, mail builders,
and a recording SMTP sink that plays the outbound relay (on loopback, port 0)."""
from __future__ import annotations

import asyncio
import email
import shutil
import socket
import ssl
import threading
import uuid
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.smtp import SMTP, AuthResult

SUPPORT = "acme@support.test"
NOREPLY = "noreply@support.test"
BOT = "support@support.test"
CONTACT = "eva.strand@acme.example"
OTHER_SUPPORT = "zenith@support.test"

TRIAGE_TOML = """\
[service]
database = "var/triage.db"
support_domain = "support.test"
workers = {workers}
queue_limit = {queue_limit}

[email]
listen = "127.0.0.1:{smtp_port}"
trusted_authserv_ids = ["mx.support.test"]
relay_url = "{relay_url}"
from_address = "{bot}"
max_message_size = {max_size}
reply_limits = {limits}
bounce_quiet_hours = 72

[web]
listen = "127.0.0.1:{web_port}"

[tenants]
folder = "tenants"
"""

ACME = """\
slug = "acme"
name = "Acme Metals AB"
language = "en"
timezone = "Europe/Stockholm"
support_addresses = ["{support}"]
noreply_addresses = ["{noreply}"]
internal_domains = ["acme.example"]
external_admins_can_add_users = true
directory = "acme.users.csv"
portal_url = "https://acme.portal.test"

[support_hours]
days = "mon-sun"
start = "00:00"
end = "23:59"

[[contacts]]
name = "Eva Strand"
email = "{contact}"
topics = ["business", "account"]
"""

ZENITH = """\
slug = "zenith"
name = "Zenith Power Ltd"
language = "en"
support_addresses = ["{other}"]
noreply_addresses = ["{noreply}"]
internal_domains = ["zenith.example"]

[[contacts]]
name = "Buyer Desk"
email = "buyers@zenith.example"
topics = ["business"]
"""

USERS = """\
email,name,company,role,status,invitation_expires
eva.strand@acme.example,Eva Strand,Acme Metals AB,internal_user,active,
tom@steelworks.example,Tom Steel,Steelworks Ltd,external_admin,active,
ola@kyivcable.example,Ola Koval,Kyiv Cable LLC,external_user,invited,2026-11-01
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(folder: Path, *, relay_url: str = "", smtp_port: int = 0, web_port: int = 0,
                 max_size: int = 1_000_000, limits: str = '["10/600", "25/3600"]', workers: int = 1,
                 queue_limit: int = 10000) -> Path:
    """A two-tenant configuration in ``folder`` (database under folder/var); one worker process
    unless asked (each loads a pipeline: tests start many services)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tenants").mkdir(exist_ok=True)
    (folder / "triage.toml").write_text(TRIAGE_TOML.format(
        smtp_port=smtp_port, web_port=web_port, relay_url=relay_url, bot=BOT, max_size=max_size, limits=limits,
        workers=workers, queue_limit=queue_limit))
    (folder / "tenants" / "acme.toml").write_text(ACME.format(support=SUPPORT, noreply=NOREPLY, contact=CONTACT))
    (folder / "tenants" / "acme.users.csv").write_text(USERS)
    (folder / "tenants" / "zenith.toml").write_text(ZENITH.format(other=OTHER_SUPPORT, noreply=NOREPLY))
    return folder


HELP_CENTRE = Path(__file__).resolve().parents[1] / "config" / "tenants" / "borealis-help"


def with_knowledge_base(folder: Path, tenant: str = "acme") -> Path:
    """The configuration in ``folder`` with the example tenant's help centre as ``tenant``'s
    knowledge base (the matching thresholds are set for a help centre of that size)."""
    shutil.copytree(HELP_CENTRE, folder / "tenants" / f"{tenant}-kb")
    path = folder / "tenants" / f"{tenant}.toml"
    path.write_text(f'knowledge_base = "{tenant}-kb"\n' + path.read_text())
    return folder


def mail(sender: str = "tom@steelworks.example", to: str = SUPPORT, subject: str = "Cannot log in",
         body: str = "Hello,\n\nI cannot log in to the supplier portal. The password reset link says it has "
                     "expired.\nCould you help?\n\nBest regards,\nTom",
         message_id: str | None = None, headers: dict[str, str] | None = None, name: str = "Tom Steel") -> bytes:
    msg = EmailMessage()
    msg["From"] = f"{name} <{sender}>" if name else sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = message_id or f"<{uuid.uuid4().hex}@steelworks.example>"
    for key, value in (headers or {}).items():
        msg[key] = value
    msg.set_content(body)
    return msg.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


BUSINESS = dict(subject="Question about RFQ 2024-117",
                body="Hello,\n\nWhat volumes apply for 2025 in RFQ 2024-117, and are the payment terms 30 or "
                     "60 days?\n\nRegards,\nTom")


def parse(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=policy.default)  # type: ignore[return-value]


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def msg(self) -> EmailMessage:
        return parse(self.raw)


@dataclass
class _Recorder:
    messages: list[Received] = field(default_factory=list)
    data_code: str = "250 OK"
    rcpt_code: str = "250 OK"
    refused: set[str] = field(default_factory=set)  # these recipients get 550 5.1.1
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: ANN001
        if not self.rcpt_code.startswith("250"):
            return self.rcpt_code
        if address in self.refused:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001
        if self.data_code.startswith("250"):
            with self.lock:
                self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return self.data_code


class Sink:
    """An SMTP server in a thread of its own that records what it accepts: the test relay."""

    def __init__(self, port: int = 0, *, login: tuple[str, str] | None = None,
                 tls_context: ssl.SSLContext | None = None, smtputf8: bool = False):
        self.recorder = _Recorder()
        self.smtputf8 = smtputf8
        self.login = login
        self.tls_context = tls_context
        self.logins: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._start(port), self._loop).result(10)
        self.port: int = self._server.sockets[0].getsockname()[1]

    async def _start(self, port: int) -> asyncio.base_events.Server:
        options: dict = {"enable_SMTPUTF8": self.smtputf8}  # aiosmtpd answers 500 to lines over 998 octets
        if self.login:
            options.update(authenticator=self._authenticate, auth_required=True,
                           auth_require_tls=self.tls_context is not None)
        if self.tls_context:
            options.update(tls_context=self.tls_context, require_starttls=True)
        return await asyncio.get_running_loop().create_server(
            lambda: SMTP(self.recorder, hostname="relay.test", **options), "127.0.0.1", port)

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:  # noqa: ANN001
        ok = (auth_data.login.decode(), auth_data.password.decode()) == self.login
        if ok:
            self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def messages(self) -> list[Received]:
        with self.recorder.lock:
            return list(self.recorder.messages)

    def set_codes(self, data: str = "250 OK", rcpt: str = "250 OK") -> None:
        self.recorder.data_code, self.recorder.rcpt_code = data, rcpt

    def close(self) -> None:
        async def stop() -> None:
            self._server.close()
            await self._server.wait_closed()
        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()



def make_intake(config, store, pipeline, hold_local: bool = False):  # noqa: ANN001, ANN201
    """The service's intake without the SMTP listener, for tests that need no socket."""
    from triage.core.threading import Signer
    from triage.service.intake import Intake
    from triage.service.loops import Gate

    gate = Gate.from_config(config)
    return Intake(config, store, pipeline, Signer(b"test-key", "support.test"), gate, hold_local)


def rule_literals(module) -> set[str]:  # noqa: ANN001 - a module object
    """Every string in a module's source that looks like a rule id (``thread-…``, ``loop-…``):
    the tests check each one is in the module's RULES table, so none goes undocumented."""
    import ast
    import inspect
    import re

    shape = re.compile(r"^(thread|loop|outbox|intake|ticket)-[a-z0-9-]+$")
    tree = ast.parse(inspect.getsource(module))
    return {node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and shape.match(node.value)}


async def drained(service, timeout: float = 30.0) -> None:  # noqa: ANN001 - a triage Service
    """Wait until the service's inbound queue is empty: everything accepted is filed."""
    import time

    deadline = time.monotonic() + timeout
    while service.depth or service.dispatcher.inflight:
        assert time.monotonic() < deadline, f"the queue did not drain: {service.depth} waiting"
        await asyncio.sleep(0.02)


class TroublePipeline:
    """A pipeline for the worker processes that misbehaves on purpose, by subject: ``POISON``
    raises (deterministically, every time), ``KILLME`` kills its worker process, ``SLOW``
    takes three seconds (``SLOW8`` eight). Everything else is the real pipeline."""

    def __new__(cls, config):  # noqa: ANN001, ANN204 - a Pipeline factory for Workers
        import os
        import re
        import time

        from triage.core.pipeline import Pipeline

        class Trouble(Pipeline):
            def assess(self, msg, now=None):  # noqa: ANN001, ANN202
                if "POISON" in msg.subject:
                    raise RuntimeError("classifier exploded")
                if "KILLME" in msg.subject:
                    os._exit(3)
                slow = re.search(r"SLOW(\d*)", f"{msg.subject} {msg.text}")
                if slow:
                    time.sleep(int(slow.group(1) or 3))
                return super().assess(msg, now)

        return Trouble(config)
