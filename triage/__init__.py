"""triage: the support desk's mail and chat triage.

``core`` decides (pure functions of a message and the configuration), ``service`` runs the
desk (queues, workers, the outbox, webhooks), ``desk`` is what agents use (actions,
reports, search); ``channels`` (beside this package) carry messages in and out.
"""
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"  # the packaged lexicon, model, examples and tables
