"""triage: the support desk's mail and chat triage.

``core`` decides (pure functions of a message and the configuration), ``service`` runs the
desk (queues, workers, the outbox, webhooks), ``desk`` is what agents use (actions,
reports, search); ``channels`` (beside this package) carry messages in and out.
"""
import os
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"  # the packaged lexicon, model, examples and tables


def command() -> str:
    """How the user runs the CLI (``bin/triage`` from a clone, ``triage`` in an activated
    venv), so that the hints printed for the next step can be copied as they are."""
    return os.environ.get("TRIAGE_COMMAND") or "triage"
