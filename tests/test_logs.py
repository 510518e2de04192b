"""Operator log lines: text and JSON, fields kept, addresses shortened unless debugging."""
from __future__ import annotations

import io
import json
import logging

import pytest

from triage.service.logs import configure, event, redact


@pytest.fixture(autouse=True)
def _restore_loggers():
    """configure() is for a process; give the next test back the loggers pytest expects."""
    yield
    for name in ("triage", "channels"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.setLevel(logging.NOTSET)
        logger.propagate = True


def _lines(fmt: str, level: str = "info") -> tuple[io.StringIO, logging.Logger]:
    stream = io.StringIO()
    configure(level, fmt, stream, background=False)
    return stream, logging.getLogger("triage.test")


def test_json_lines_carry_the_fields():
    stream, log = _lines("json")
    event(log, logging.INFO, "mail accepted", ticket=1042, tenant="acme", rule="technical-help", ms=3.2)
    line = json.loads(stream.getvalue())
    assert line["msg"] == "mail accepted" and line["level"] == "info" and line["logger"] == "triage.test"
    assert (line["ticket"], line["tenant"], line["rule"], line["ms"]) == (1042, "acme", "technical-help", 3.2)


def test_text_lines_are_greppable():
    stream, log = _lines("text")
    event(log, logging.WARNING, "mail refused", code=550, reason="no such recipient here", ticket=None)
    line = stream.getvalue().strip()
    assert " warning " in line and "mail refused code=550" in line
    assert 'reason="no such recipient here"' in line and "ticket=" not in line


def test_addresses_are_shortened_unless_debugging():
    _lines("text", "info")
    assert redact("tom.user@steelworks.lt") == "t***@steelworks.lt"
    _lines("text", "debug")
    assert redact("tom.user@steelworks.lt") == "tom.user@steelworks.lt"
    _lines("text", "info")


def test_debug_lines_are_hidden_at_info():
    stream, log = _lines("text", "info")
    event(log, logging.DEBUG, "noise")
    event(log, logging.INFO, "signal")
    assert "noise" not in stream.getvalue() and "signal" in stream.getvalue()


def test_serve_says_where_everything_is_and_logs_each_mail_as_json(tmp_path):
    """`triage serve --log-format json`: the start-up lines name the widget demo, the console and
    Slack's state; each accepted mail, each refusal and each filing is one JSON line."""
    import os
    import smtplib
    import subprocess
    import sys
    import threading
    import time

    from tests.servicekit import free_port, mail, write_config

    smtp_port = free_port()
    folder = write_config(tmp_path, smtp_port=smtp_port, web_port=free_port())
    env = {**os.environ, "TRIAGE_COMMAND": "bin/triage"}  # as bin/triage sets it: the hints name it
    proc = subprocess.Popen([sys.executable, "-m", "triage.cli", "--config", str(folder), "serve", "--log-format",
                             "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    errors: list[str] = []
    threading.Thread(target=lambda: errors.extend(proc.stderr), daemon=True).start()  # type: ignore[arg-type]
    try:
        banner = []
        for line in proc.stdout:  # type: ignore[union-attr]
            banner.append(line)
            if line.startswith("triage serve: ready"):
                break
        said = "".join(banner)
        assert "triage serve: widget demo http://" in said and "/widget/demo?tenant=" in said
        assert "triage serve: console http://" in said and "add one with: bin/triage agents add" in said
        assert "triage serve: slack off" in said
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=20) as client:
            client.sendmail("tom@steelworks.example", ["acme@support.test"], mail())
            try:
                client.sendmail("tom@steelworks.example", ["nobody@elsewhere.example"], mail())
            except smtplib.SMTPRecipientsRefused:
                pass
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any('"mail filed"' in e for e in errors):
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(30)
    lines = [json.loads(e) for e in errors if e.startswith("{")]
    by_msg = {line["msg"]: line for line in lines}
    assert by_msg["mail accepted"]["sender"] == "t***@steelworks.example"  # redacted at info
    assert by_msg["mail refused"]["code"] == 550
    filed = by_msg["mail filed"]
    assert filed["tenant"] == "acme" and filed["ticket"] == 1001 and filed["rule"] and filed["ms"] >= 0
    assert filed["held_local"] == 1  # no relay: the acknowledgement waits in the outbox, and the log says so


def test_a_stderr_nobody_reads_never_blocks_the_caller():
    """Under a flood of mail the service logs thousands of lines; if the pipe behind stderr
    is full, lines are dropped, never waited for (the event loop must keep answering)."""
    import os
    import threading
    import time

    from triage.service import logs

    read_end, write_end = os.pipe()  # nobody reads: the pipe fills after ~64 KiB
    stream = os.fdopen(write_end, "w")
    configure("info", "text", stream)
    log = logging.getLogger("triage.test")
    done = threading.Event()

    def flood() -> None:
        for n in range(30_000):
            event(log, logging.INFO, "mail accepted", queue_id=n, sender="t***@steelworks.example")
        done.set()

    threading.Thread(target=flood, daemon=True).start()
    assert done.wait(30), "logging blocked on a full stderr"
    background = logs._background
    assert background is not None and background.dropped > 0
    drained = threading.Thread(target=lambda: [None for _ in iter(lambda: os.read(read_end, 65536), b"")],
                               daemon=True)
    drained.start()  # a reader comes back: the writer thread catches up, then stops
    deadline = time.monotonic() + 30
    while background.lines and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not background.lines, "the writer thread did not catch up once stderr was read"
    background.close()
    logs._background = None
    stream.close()
    drained.join(10)
    os.close(read_end)
