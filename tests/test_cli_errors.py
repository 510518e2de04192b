"""Every ``triage`` command given bad arguments, as an operator would type them: one line on
stderr naming the problem, exit code 2, never a traceback. Most run ``main([...])`` in this
process (fast); the reviewer's own example runs as a real subprocess."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.servicekit import write_config
from triage.cli import main

HUGE = "99999999999999999999"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return write_config(tmp_path / "config")


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors
        code = int(e.code or 0)
    captured = capsys.readouterr()
    return code, captured.err


def one_line_error(code: int, err: str, says: str) -> None:
    assert code == 2, (code, err)
    assert "Traceback" not in err and err.count("\n") == 1 and err.endswith("\n"), err
    assert says in err, err


BAD_ARGUMENTS = [
    (["ticket", HUGE], "out of range"),
    (["ticket", "0"], "out of range"),
    (["ticket", "-5"], "out of range"),
    (["ticket", "abc"], "not a whole number"),
    (["ticket", "1001", "--tenant", "nope"], "unknown tenant 'nope'"),
    (["tickets", "--limit", HUGE], "out of range"),
    (["tickets", "--limit", "0"], "out of range"),
    (["tickets", "--tenant", "nope"], "unknown tenant 'nope'"),
    (["tickets", "--status", "bogus"], "invalid choice"),
    (["search", "invoice", "--limit", "-1"], "out of range"),
    (["search"], "required"),
    (["outbox", "--limit", HUGE], "out of range"),
    (["outbox", "--status", "bogus"], "invalid choice"),
    (["directory", "import", "nope", "x.csv"], "unknown tenant 'nope'"),
    (["directory", "import", "acme", "/nonexistent/users.csv"], "file not found"),
    (["directory", "import", "acme"], "required"),
    (["demo", "--tenant", "nope"], "unknown tenant 'nope'"),
    (["imap-check", "nope"], "unknown tenant 'nope'"),
    (["imap-check", "acme"], "no [[imap]] mailboxes"),
    (["imap-check", "acme", "--timeout", "nan"], "out of range"),
    (["imap-check", "acme", "--timeout", "-1"], "out of range"),
    (["imap-check", "acme", "--timeout", "1e400"], "out of range"),
    (["imap-check", "acme", "--timeout", "soon"], "not a number"),
    (["kb", "search", "login", "--limit", "-5"], "out of range"),
    (["kb", "search", "login", "--limit", HUGE], "out of range"),
    (["kb", "search", "login", "--limit", "ten"], "not a whole number"),
    (["kb", "search", "login", "--tenant", "nope"], "unknown tenant 'nope'"),
    (["agents", "add", "kim@desk.example"], "required"),
    (["agents", "bogus"], "invalid choice"),
    (["reply", HUGE, "hello"], "out of range"),
    (["reply", "1001"], "required"),
    (["note", "0", "x"], "out of range"),
    (["approve", "-3"], "out of range"),
    (["resolve", "abc"], "not a whole number"),
    (["close", HUGE], "out of range"),
    (["assign", "1001"], "required"),
    (["assign", "1001", "kim@desk.example", "--tenant", "nope"], "unknown tenant 'nope'"),
    (["report", "--since", "2026-02-31"], "since"),
    (["report", "--until", "yesterday"], "until"),
    (["report", "--tenant", "nope"], "unknown tenant 'nope'"),
    (["report", "--format", "pdf"], "invalid choice"),
    (["webhooks", "redeliver", "-1"], "out of range"),
    (["webhooks", "redeliver", HUGE], "out of range"),
    (["webhooks", "redeliver", "x1"], "not a whole number"),
    (["webhooks", "bogus"], "invalid choice"),
    (["webhooks", "test"], "required"),
    (["frobnicate"], "invalid choice"),
]


@pytest.mark.parametrize("argv, says", BAD_ARGUMENTS, ids=[" ".join(a) for a, _ in BAD_ARGUMENTS])
def test_bad_arguments_are_one_line_and_exit_2(folder, capsys, argv, says):
    one_line_error(*run(["--config", str(folder), *argv], capsys), says)


def test_an_agent_for_an_unknown_tenant(folder, capsys, monkeypatch):
    monkeypatch.setenv("TRIAGE_AGENT_PASSWORD", "correct horse battery staple")
    one_line_error(*run(["--config", str(folder), "agents", "add", "kim@desk.example", "--name", "Kim",
                         "--tenant", "nope"], capsys), "unknown tenant nope")


def test_bad_dates_and_values_in_a_directory_file(folder, tmp_path, capsys):
    bad = tmp_path / "users.csv"
    bad.write_text("email,name,company,role,status,invitation_expires\n"
                   "a@b.example,A,B,external_user,invited,31/02/2026\n")
    one_line_error(*run(["--config", str(folder), "directory", "import", "acme", str(bad)], capsys), "users.csv")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00\x01email\n")
    one_line_error(*run(["--config", str(folder), "directory", "import", "acme", str(binary)], capsys),
                   "binary.csv")
    one_line_error(*run(["--config", str(folder), "directory", "import", "acme", str(tmp_path)], capsys),
                   str(tmp_path))


@pytest.mark.parametrize("command", [["check-config"], ["tickets"], ["ticket", "1"], ["serve"], ["train"],
                                     ["search", "x"], ["outbox"], ["demo"], ["imap-check", "acme"]])
def test_a_missing_or_unreadable_configuration(tmp_path, capsys, command):
    one_line_error(*run(["--config", str(tmp_path / "nowhere"), *command], capsys), "file not found")
    as_folder = tmp_path / "folder-config"
    (as_folder / "triage.toml").mkdir(parents=True)  # a folder where the file should be
    one_line_error(*run(["--config", str(as_folder), *command], capsys), "configuration error")
    not_utf8 = write_config(tmp_path / "latin1")
    (not_utf8 / "triage.toml").write_bytes((not_utf8 / "triage.toml").read_bytes() + "# hälsning\n".encode("latin-1"))
    one_line_error(*run(["--config", str(not_utf8), *command], capsys), "configuration error")


@pytest.mark.parametrize("command", [["tickets"], ["ticket", "1001"], ["search", "x"], ["outbox"], ["train"]])
def test_a_database_that_cannot_be_opened(tmp_path, capsys, command):
    folder = write_config(tmp_path / "config")
    (folder / "var" / "triage.db").mkdir(parents=True)  # the database path is a folder
    one_line_error(*run(["--config", str(folder), *command], capsys), "triage.db")


def test_the_reviewers_example_in_a_real_process(folder):
    proc = subprocess.run([sys.executable, "-m", "triage.cli", "--config", str(folder), "ticket", HUGE],
                          capture_output=True, text=True, timeout=120)
    one_line_error(proc.returncode, proc.stderr, "out of range")
    proc = subprocess.run([sys.executable, "-m", "triage.cli", "--config", str(folder), "tickets", "--tenant", "x"],
                          capture_output=True, text=True, timeout=120)
    one_line_error(proc.returncode, proc.stderr, "unknown tenant 'x'")
