"""CPython's email test data (../shared/corpora/cpython_email, PSF licence, read in place).

It is built to break MIME parsers: bad boundaries, nested message/rfc822, odd charsets,
RFC 2231 parameters, broken base64. CPython's asserts live in its test_email.py, so the
bar here is the robustness one: every message — the msg_*.txt files and each message of
mailbox_01.mbox, split with the stdlib mailbox module — goes through ``triage classify``
and the in-process pipeline without an error.
"""
from __future__ import annotations

import json
import mailbox
import subprocess
import sys
import time
import traceback
from pathlib import Path

from tests.conftest import need_shared
from triage.config import load_config
from triage.core.parse import parse_email
from triage.core.pipeline import Pipeline

RUN_SECONDS = 10.0  # per message, the whole classify path


def _messages(root: Path) -> list[tuple[str, bytes]]:
    """(name, raw bytes) of every message: one per msg_*.txt, one per mbox entry."""
    found = [(path.name, path.read_bytes()) for path in sorted(root.glob("msg_*.txt"))]
    box = mailbox.mbox(root / "mailbox_01.mbox", create=False)
    try:
        found += [(f"mailbox_01.mbox#{n}", box.get_bytes(key)) for n, key in enumerate(box.keys())]
    finally:
        box.close()
    return found


def test_every_message_goes_through_classify(tmp_path):
    """The command (in a subprocess, no line may carry "error") and parse_email +
    Pipeline.run in-process (no exception may escape), side by side."""
    root = need_shared("corpora", "cpython_email")
    config_dir = need_shared("eval", "config")
    messages = _messages(root)
    assert len(messages) >= 50 and any("#" in name for name, _ in messages), [n for n, _ in messages]
    files = []
    for n, (name, raw) in enumerate(messages):  # the command reads files: mbox entries get one each
        files.append(tmp_path / f"{n:03d}.eml")
        files[-1].write_bytes(raw)
    cli = subprocess.Popen([sys.executable, "-m", "triage.cli", "classify", "--config", str(config_dir),
                            *map(str, files)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pipeline = Pipeline(load_config(config_dir))
    failures: list[str] = []
    slow: list[tuple[float, str]] = []
    for n, (name, raw) in enumerate(messages):
        start = time.perf_counter()
        try:
            json.dumps(pipeline.run(parse_email(raw), 1001 + n).contract(), ensure_ascii=False)
        except Exception:
            failures.append(f"{name}: {traceback.format_exc(limit=-3)}")
        slow.append((time.perf_counter() - start, name))
    out, err = cli.communicate(timeout=600)
    lines = [json.loads(line) for line in out.splitlines()]
    errors = [f"{messages[n][0]}: {line['error']}" for n, line in enumerate(lines) if "error" in line]
    report = (f"in-process {len(messages) - len(failures)}/{len(messages)} without exception; "
              f"CLI {len(lines) - len(errors)}/{len(messages)} lines without error; "
              f"slowest: {[(round(s, 2), name) for s, name in sorted(slow, reverse=True)[:3]]}")
    assert not failures, report + "\n" + "\n".join(failures)
    assert cli.returncode == 0 and len(lines) == len(messages) and not errors, report + f"\n{errors}\n{err[-2000:]}"
    assert max(slow)[0] < RUN_SECONDS, report
