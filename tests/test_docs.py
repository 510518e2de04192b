"""Every rule id, action, configuration key, template part and CLI command is documented
in README.md (a rule nobody can look up is a rule nobody can trust)."""
from __future__ import annotations

import re

from channels import imap, slack, widget
from tests.conftest import REPO
from triage.cli import build_parser
from triage.config import SERVICE_KEYS, TENANT_KEYS, WEBHOOK_KEYS
from triage.core import classify, knowledge, relabel, threading, trust, widget_identity
from triage.core.policy import ACTIONS, FORGED_NOT_RELAYED, MARGIN_RULE_IDS, RULES
from triage.desk import agents
from triage.service import intake, loops, notifier, outbox, renewal, webhooks

README = (REPO / "README.md").read_text(encoding="utf-8")


def test_rule_ids_documented():
    ids = [r.id for r in RULES] + MARGIN_RULE_IDS + [FORGED_NOT_RELAYED] + [r.id for r in relabel.RULES]
    for module in (threading, intake, loops, outbox, agents, notifier, imap, widget, trust, widget_identity,
                   slack, knowledge, webhooks, renewal, classify):
        ids += list(module.RULES)
    missing = [i for i in ids if f"`{i}`" not in README]
    assert not missing, f"rules missing from README: {missing}"


def test_actions_documented():
    missing = [a for a in ACTIONS if a not in README]
    assert not missing


def test_config_keys_documented():
    keys = [f"`{section}.{key}`" for section, schema in SERVICE_KEYS.items() for key in schema]
    keys += [f"`{key}`" for key in TENANT_KEYS]
    keys += [f"`webhooks.{key}`" for key in WEBHOOK_KEYS]
    missing = [k for k in keys if k not in README]
    assert not missing, f"configuration keys missing from README: {missing}"


def test_cli_commands_documented():
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    missing = [c for c in commands if not re.search(rf"triage {re.escape(c)}\b", README)]
    assert not missing, f"CLI commands missing from README: {missing}"


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text()
    assert "bash tests/run" in README and "bash tests/run" in ci


def test_readme_set_up_command_exists():
    """The README's first command works from a fresh clone: the wrapper is there and executable."""
    assert "    bin/triage serve\n" in README
    wrapper = REPO / "bin" / "triage"
    assert wrapper.is_file() and wrapper.stat().st_mode & 0o111
    assert "bin/venv test" in (REPO / "tests" / "run").read_text()


def test_every_cli_option_has_help():
    """`triage X --help` explains every argument: none may be left bare."""
    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, __import__("argparse")._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from walk(sub, f"{path} {name}")
            elif action.dest != "help" and not action.help:
                yield f"{path} {'/'.join(action.option_strings) or action.dest}"
    bare = list(walk(build_parser(), "triage"))
    assert not bare, f"arguments without help: {bare}"
