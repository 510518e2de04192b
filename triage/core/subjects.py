"""Subject lines: the reply and forward prefixes of mail clients, from data.

Classification reads a subject without them, replies add exactly one "Re:", and a
forwarded bounce text is told from a real bounce by them; one list serves all three.
"""
from __future__ import annotations

import re
import tomllib

from triage import DATA

_DATA = tomllib.loads((DATA / "subjects.toml").read_text("utf-8"))
_REPLY = "|".join(_DATA["reply_prefixes"])
_FORWARD = "|".join(_DATA["forward_prefixes"])
# "Re: ", "AW[2]: ", "Fwd: " repeated; the optional [n] is Outlook's reply counter
PREFIXES = re.compile(rf"^\s*(?:(?:{_REPLY}|{_FORWARD})\s*(?:\[\d+\])?\s*:\s*)+", re.I)
# a forward, possibly answered: "Fwd:", "Re: Fwd:"
FORWARDED = re.compile(rf"^\s*(?:(?:{_REPLY})\s*(?:\[\d+\])?\s*:\s*)*(?:{_FORWARD})\s*:", re.I)
# an answer in a thread: "Re:", "SV: AW:" (its subject names the thread's first topic)
REPLIED = re.compile(rf"^\s*(?:{_REPLY})\s*(?:\[\d+\])?\s*:", re.I)
TAG = re.compile(r"\[#\d+\]")


def strip_prefixes(subject: str) -> str:
    """``AW: SV: Fwd: Order`` -> ``Order``."""
    return PREFIXES.sub("", subject)
