"""Property: no input bytes make the classify path raise.

``triage classify`` and the mail channels hand whatever arrives to parse_email and then
the whole pipeline (identify, trust, automated, classify, decide, render). Real mail is
mutated here — bits flipped, bytes and MIME/RFC 2047 syntax inserted, spans deleted, the
tail cut — and random bytes are fed too; every outcome must still serialise to the
contract's JSON line. Seeds are real corpus mails when ../shared is present (chosen for
their traps and kept small so 200 examples stay fast), plus built ones that always are.
"""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import SHARED, make_email
from triage.core.parse import parse_email
from triage.core.pipeline import Pipeline

CORPUS_SEEDS = [
    "corpora/zammad/test_data_mail/mail068.box",  # junk line before the headers
    "corpora/zammad/test_data_mail/mail005.box",  # display name in a comment
    "corpora/zammad/test_data_mail/mail078-content_transfer_encoding_x_uuencode.box",
    "corpora/zammad/test_data_mail/mail092.box",  # MAILER-DAEMON (comment) <address>
    "corpora/flufl_bounce/data/dsn_12.txt",  # RFC 3464 multipart/report
    "corpora/flufl_bounce/data/sina_01.txt",  # raw GB2312 subject
    "corpora/flufl_bounce/data/yahoo_04.txt",
    "corpora/cpython_email/msg_38.txt",
    "corpora/cpython_email/msg_39.txt",
]
BUILT_SEEDS = [
    make_email(subject="Cannot log in", body="Hello,\n\nI cannot log in since yesterday.\n\nBest regards\nTom"),
    make_email(sender="anna@firma.de", subject="=?utf-8?q?Passwort_vergessen?=", dmarc=None,
               headers={"Auto-Submitted": "auto-replied"}, body="Ich bin nicht im Büro."),
    "From: =?ISO-2022-JP?B?g2OBW4OL?= <a@b.jp>\r\nSubject: \u30c4\u30fc\u30eb\r\nTo: acme@support.test\r\n"
    "Content-Type: text/plain; charset=shift_jis\r\n\r\n\u30c4\u30fc\u30eb\r\n".encode("shift_jis"),
    (b"From: MAILER-DAEMON@mx.example.com (Mail Delivery System)\r\nTo: acme@support.test\r\n"
     b"Subject: Undelivered Mail Returned to Sender\r\nContent-Type: multipart/report; "
     b"report-type=delivery-status; boundary=\"B\"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nfailed\r\n"
     b"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
     b"Final-Recipient: rfc822; gone@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--B--\r\n"),
    (b"Junk before the headers\r\nFrom: \"Smith, Karoline\" <k@example.de>\r\nTo: acme@support.test\r\n"
     b"Received: from a\r\nby b with SMTP\r\nSubject: AW: Konto gesperrt\r\n"
     b"Content-Type: text/html; charset=iso-gb2312\r\n\r\n<p>Konto <b>gesperrt</b></p>"),
]
# Syntax the parser has special paths for: inserting it where it does not belong is the point.
TOKENS = [b"\r\n", b"\n\n", b"\r\n\r\n", b"=?", b"?=", b"?q?", b"?b?", b"=?utf-7?q?+AAA-?=", b"=?x-unknown?b?////?=",
          b"=?undefined?q?=FF?=", b"charset=base64", b"charset=idna",
          b"--", b"--B", b"(", b")", b"\"", b"\\", b"<", b">", b",", b":", b";", b"@", b"\x1b$B", b"\xff\xfe", b"\x00",
          b"Content-Type: multipart/mixed; boundary=B\r\n", b"Content-Transfer-Encoding: base64\r\n",
          b"Content-Type: message/rfc822\r\n", b"charset=\"iso-gb2312\"", b"From: ", b"Subject: \x83c\x81[\r\n"]


def _seeds() -> list[bytes]:
    corpus = [(SHARED / path).read_bytes() for path in CORPUS_SEEDS if (SHARED / path).exists()]
    return corpus + BUILT_SEEDS


@st.composite
def mutated_mail(draw: st.DrawFn) -> bytes:
    """A seed mail after 1–12 random edits."""
    raw = bytearray(draw(st.sampled_from(_seeds())))
    for _ in range(draw(st.integers(1, 12))):
        pos = draw(st.integers(0, len(raw)))
        edit = draw(st.sampled_from(["flip", "insert", "token", "delete", "truncate"]))
        if edit == "flip" and pos < len(raw):
            raw[pos] ^= 1 << draw(st.integers(0, 7))
        elif edit == "insert":
            raw[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif edit == "token":
            raw[pos:pos] = draw(st.sampled_from(TOKENS)) * draw(st.integers(1, 3))
        elif edit == "delete":
            del raw[pos:pos + draw(st.integers(1, 64))]
        elif edit == "truncate":
            del raw[pos:]
    return bytes(raw)


@pytest.fixture(scope="module")
def pipeline(config) -> Pipeline:
    return Pipeline(config)


def _classify(pipeline: Pipeline, raw: bytes) -> dict:
    line = pipeline.run(parse_email(raw), 1001).contract()
    json.dumps(line, ensure_ascii=False)  # the command prints it: it must serialise
    return line


def test_seeds_classify(pipeline):
    for raw in _seeds():
        assert "error" not in _classify(pipeline, raw)


@settings(max_examples=200, deadline=None)
@given(raw=mutated_mail())
def test_mutated_real_mail_never_raises(pipeline, raw):
    _classify(pipeline, raw)


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=3000))
def test_random_bytes_never_raise(pipeline, raw):
    _classify(pipeline, raw)
