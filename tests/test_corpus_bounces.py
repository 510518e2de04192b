"""flufl.bounce's real bounces from many MTAs (../shared/corpora/flufl_bounce, Apache-2.0).

Bars: every sample goes through ``triage classify`` without an error line; every bounce is
``automated``, suppressed (no reply, no relay) and has its bounced addresses extracted as
``expected_detectors.json`` lists them. That file lists, per flufl detector, what that one
detector must find; the union over a file's entries is the file's expected set.
"""
from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import need_shared
from triage.config import load_config
from triage.core.automated import Automation, detect
from triage.core.lexicon import Lexicon, load_lexicon
from triage.core.parse import parse_email
from triage.core.pipeline import Outcome, Pipeline

# Samples that are no bounce, with flufl's own word for it.
NOT_BOUNCES = {
    "groupwise_03.txt": "a person's reply (Outlook, \"RE: Vuille - (PO28169)\"); flufl's test: "
                        "\"Not a bounce but has confused groupwise\"",
}
# Machine mail that is no bounce: automated and suppressed, but with another intent.
AUTO_REPLIES = {
    "qmail_08.txt": "'Auto reply' with Precedence: auto_reply, an acknowledgement in Spanish",
}
# Samples where we find more than the expected set, and why that is right.
MORE_THAN_EXPECTED = {
    "simple_42.txt": "flufl only asks its simplematch detector for nothing here; the mail is an RFC 3464 "
                     "report whose Final-Recipient is david...@gmail.com, which we extract",
}


def _expected(root: Path) -> dict[str, tuple[set[str], bool]]:
    """File -> (bounced addresses, lower-cased; whether flufl calls the failure temporary)."""
    expected: dict[str, tuple[set[str], bool]] = {}
    for entry in json.loads((root / "expected_detectors.json").read_text("utf-8")):
        addresses, temporary = expected.get(entry["file"], (set(), False))
        addresses |= {a.lower() for a in entry["expected_addresses"]}
        temporary = temporary or (entry["is_temporary"] and bool(entry["expected_addresses"]))
        expected[entry["file"]] = (addresses, temporary)
    return expected


@pytest.fixture(scope="module")
def outcomes() -> dict[str, Outcome]:
    root = need_shared("corpora", "flufl_bounce", "data")
    pipeline = Pipeline(load_config(need_shared("eval", "config")))
    return {path.name: pipeline.run(parse_email(path.read_bytes()), 1001 + n)
            for n, path in enumerate(sorted(root.glob("*.txt")))}


def test_every_bounce_is_automated_and_suppressed(outcomes):
    suppressed = {name for name, o in outcomes.items()
                  if o.cls.category == "automated" and o.decision.actions == ["suppress"]
                  and o.reply is None and o.relay is None and o.relay_subject is None}
    bounces = {name for name, o in outcomes.items() if o.cls.intent == "bounce"}
    missed = {name: (o.cls.category, o.cls.intent, o.decision.actions) for name, o in outcomes.items()
              if name not in suppressed and name not in NOT_BOUNCES}
    report = (f"automated and suppressed {len(suppressed)}/{len(outcomes)} "
              f"({len(bounces)} as intent bounce); no bounces: {sorted(NOT_BOUNCES) + sorted(AUTO_REPLIES)}")
    assert len(outcomes) >= 117, report
    assert not missed, f"{report}; missed: {missed}"
    assert set(outcomes) - bounces == set(NOT_BOUNCES) | set(AUTO_REPLIES), report
    assert not suppressed & set(NOT_BOUNCES), f"{report}; a person's mail was suppressed"


def test_bounced_addresses_are_extracted(outcomes):
    expected = _expected(need_shared("corpora", "flufl_bounce"))
    found = {name: set(o.contract().get("failed_recipients", [])) for name, o in outcomes.items()}
    assert all(set(o.automation.failed_recipients) == found[n] for n, o in outcomes.items())
    equal = {name for name in outcomes if found[name] == expected.get(name, (set(), False))[0]}
    contains = {name for name in outcomes if found[name] >= expected.get(name, (set(), False))[0]}
    report = (f"addresses equal {len(equal)}/{len(outcomes)}, "
              f"found set contains the expected {len(contains)}/{len(outcomes)}")
    missing = {name: (sorted(found[name]), sorted(expected.get(name, (set(), False))[0]))
               for name in outcomes if name not in contains}
    assert not missing, f"{report}; ours vs expected: {missing}"
    assert set(outcomes) - equal == set(MORE_THAN_EXPECTED), f"{report}; {sorted(set(outcomes) - equal)}"


def test_permanent_and_temporary_failures_are_told_apart(outcomes):
    """A hard bounce stops automatic mail to the address; a delay must not (see intake)."""
    expected = _expected(need_shared("corpora", "flufl_bounce"))
    with_addresses = {name: temporary for name, (addresses, temporary) in expected.items() if addresses}
    wrong = sorted(name for name, temporary in with_addresses.items()
                   if outcomes[name].automation.permanent == temporary)
    assert not wrong, (f"permanent flag right for {len(with_addresses) - len(wrong)}/{len(with_addresses)}; "
                       f"wrong: {wrong}")


def test_every_sample_goes_through_the_command():
    root = need_shared("corpora", "flufl_bounce", "data")
    files = sorted(root.glob("*.txt"))
    result = subprocess.run([sys.executable, "-m", "triage.cli", "classify", "--config",
                             str(need_shared("eval", "config")), *map(str, files)],
                            capture_output=True, text=True, timeout=600)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    errors = [line for line in lines if "error" in line]
    assert result.returncode == 0 and len(lines) == len(files) and not errors, (
        f"{len(lines) - len(errors)}/{len(files)} lines without error: {errors} {result.stderr[-2000:]}")


# --- The same rules on built mail, so they are tested on every clone.

QMAIL_BODY = (b"Hi. This is the qmail-send program at mx.example.com.\r\nI'm afraid I wasn't able to deliver "
              b"your message to the following addresses.\r\nThis is a permanent error; I've given up. Sorry it "
              b"didn't work out.\r\n\r\n<gone@example.com>:\r\nSorry, no mailbox here by that name.\r\n")


@functools.cache
def _lexicon() -> Lexicon:
    return load_lexicon()


def _detect(raw: bytes) -> Automation:
    return detect(parse_email(raw), _lexicon())


def test_bounce_titled_and_readable_by_flufl_is_a_bounce():
    auto = _detect(b"From: antivirus@gw.example.com\r\nSubject: Delivery failure\r\n\r\n" + QMAIL_BODY)
    assert (auto.kind, auto.failed_recipients, auto.permanent) == ("bounce", ["gone@example.com"], True)


def test_person_forwarding_a_bounce_is_no_bounce():
    auto = _detect(b"From: anna@firma.de\r\nSubject: Fwd: Delivery failure\r\n\r\nWhy did this bounce?\r\n\r\n"
                   + QMAIL_BODY)
    assert auto.kind == "" and auto.failed_recipients == []


def test_mailer_daemon_return_path_is_a_bounce():
    auto = _detect(b"Return-Path: <MAILER-DAEMON@mx.example.com>\r\nFrom: imss@example.be\r\n"
                   b"Subject: Mail could not be delivered\r\n\r\n" + QMAIL_BODY)
    assert "auto-return-path-mailer-daemon" in auto.reasons and auto.failed_recipients == ["gone@example.com"]


def test_delayed_delivery_is_not_permanent():
    raw = (b"From: MAILER-DAEMON@mx.example.com\r\nSubject: Delayed Mail (still being retried)\r\n"
           b"Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n"
           b"--B\r\nContent-Type: text/plain\r\n\r\nstill trying\r\n"
           b"--B\r\nContent-Type: message/delivery-status\r\n\r\n"
           b"Reporting-MTA: dns; mx.example.com\r\n\r\nOriginal-Recipient: rfc822;late@example.com\r\n"
           b"Final-Recipient: rfc822;late@relay.example.com\r\nAction: delayed\r\nStatus: 4.4.7\r\n\r\n--B--\r\n")
    auto = _detect(raw)
    assert (auto.kind, auto.failed_recipients, auto.permanent) == ("bounce", ["late@example.com"], False)
