#!/usr/bin/env python3
"""Decision quality per labelled set: intent, actions, violations, coverage, per-language
intent and the confusion pairs (expected → got), with the rule ids of the held tickets.

It reuses the evaluation's own scorer (``../shared/eval/score.py``: the same inputs, the
same scoring), so the figures here are the figures the lead sees.

    python bench/quality.py CASES.jsonl [CASES.jsonl …] [--triage CMD] [--config DIR]
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import importlib.util
import io
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCORE = REPO.parent / "shared" / "eval" / "score.py"  # ../shared beside the clone, as in CI


def _scorer(path: Path):
    spec = importlib.util.spec_from_file_location("score", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"quality: cannot load the scorer {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def measure(scorer, cases_path: Path, triage: str, config: Path) -> dict:
    cases = [json.loads(line) for line in cases_path.read_text("utf-8").splitlines() if line.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        results = scorer.run_triage(triage, config, scorer.build_inputs(cases, config, Path(tmp)))
    with contextlib.redirect_stdout(io.StringIO()):
        summary = scorer.score(cases, results, False)
    confusion: collections.Counter[str] = collections.Counter()
    held: collections.Counter[str] = collections.Counter()
    for case in cases:
        exp, got = case["expect"], results.get(case["id"]) or {}
        if "intent" in exp:
            want = f"{exp['category']}/{exp['intent']}"
            have = f"{got.get('category')}/{got.get('intent')}"
            if want != have:
                confusion[f"{want} → {have}"] += 1
        if "hold_for_review" in (got.get("actions") or []):
            # the decision's rule is the last reason before the help-article rule (kb-…)
            held[next((r for r in reversed(got.get("reasons") or []) if not r.startswith("kb-")), "?")] += 1
    summary["confusion"] = dict(confusion.most_common())
    summary["held_by_rule"] = dict(held.most_common())
    return summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cases", nargs="+", type=Path)
    ap.add_argument("--triage", default=str(REPO / ".venv" / "bin" / "triage"))
    ap.add_argument("--config", type=Path, default=SCORE.parent / "config")
    ap.add_argument("--scorer", type=Path, default=SCORE)
    args = ap.parse_args()
    if not args.scorer.exists():
        raise SystemExit(f"quality: no scorer at {args.scorer} (the shared evaluation folder is absent)")
    scorer = _scorer(args.scorer)
    for path in args.cases:
        s = measure(scorer, path, args.triage, args.config.resolve())
        print(f"== {path.name}: cases={s['cases']} intent={s.get('intent')} actions={s['actions']} "
              f"violations={s['violations']} coverage={s['coverage']} leaks={s['leaks']}")
        print("   per language intent: " + " ".join(f"{k}={v}" for k, v in s["intent_by_language"].items()))
        for pair, n in s["confusion"].items():
            print(f"   confusion {n} × {pair}")
        print("   held by rule: " + (", ".join(f"{k}={v}" for k, v in s["held_by_rule"].items()) or "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
