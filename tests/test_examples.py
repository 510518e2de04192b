"""The sample messages in examples/ do what examples/README.md says they show."""
from __future__ import annotations

import json
import re
import subprocess
import sys

from tests.conftest import REPO

EXAMPLES = REPO / "examples"


def documented() -> dict[str, tuple[str, list[str]]]:
    """id -> (intent, actions) from the README's table."""
    rows = {}
    for line in (EXAMPLES / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or not cells[0].startswith("`"):
            continue
        names = re.findall(r"`([^`]+)`", cells[0])
        key = names[-1].removesuffix(".eml")
        key = f"<{key}@examples.triage>" if names[0].endswith(".eml") else key
        rows[key] = (cells[2], [a.strip() for a in cells[3].split(",")])
    return rows


def test_every_example_is_documented_and_does_what_it_says():
    rows = documented()
    inputs = sorted(str(p) for p in EXAMPLES.glob("*.eml")) + [str(EXAMPLES / "chat.jsonl")]
    proc = subprocess.run([sys.executable, "-m", "triage.cli", "classify", "--config", str(REPO / "config"), *inputs],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert {line["id"] for line in lines} == set(rows), "every sample has exactly one row in examples/README.md"
    for line in lines:
        intent, actions = rows[line["id"]]
        assert f"{line['category']}/{line['intent']}" == intent, line["id"]
        assert set(actions) <= set(line["actions"]), (line["id"], line["actions"])
        assert not line.get("error"), line
