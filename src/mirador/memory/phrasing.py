"""How the person phrased something: telling (a statement) or asking (a question or a
request), and a question turned into the statement that would answer it.

Both are plain English word patterns, cheap enough to run on every recall: memories are
what people *told*, recall questions *ask*, and a sentence model places a question nearer
other questions than the statement that answers it.
"""

from __future__ import annotations

import re

# How a question or a request to the assistant begins: an interrogative, an auxiliary, or
# one of the verbs people ask an assistant with. Anything else is something the person told.
_ASKED = re.compile(
    r"^\W*(what|what's|how|how's|why|when|where|which|who|whose|whom|can|could|should|would|"
    r"will|shall|is|are|was|were|do|does|did|may|give|tell|write|explain|suggest|list|help|"
    r"show|make|name|recommend|summari[sz]e|translate|describe|compare|please|hi|hello|hey|"
    r"good morning|good evening)\b", re.IGNORECASE)
_WH = re.compile(r"^(what's|what is|what are|what|which|who|whom|whose|where|when|"
                 r"how many|how much|how|why)\s+", re.IGNORECASE)
_AUX = r"(do|does|did|is|are|was|were|should|can|could|would|will|am|have|has)"
_FRONTED = re.compile(rf"^(\w+(?:\s+\w+)?)\s+{_AUX}\s+(I|we|my|our)\b(.*)$", re.IGNORECASE)
_LEADING_AUX = re.compile(rf"^{_AUX}\s+", re.IGNORECASE)


def is_told(text: str) -> bool:
    """Whether the person's words tell something (a statement: "I switched to a Pixel 8")
    rather than ask the assistant something (a question or a request)."""
    words = text.strip()
    return bool(words) and not words.endswith("?") and not _ASKED.match(words)


def as_statement(question: str) -> str | None:
    """The question put as a statement ("Which machine do I work on?" -> "I work on
    machine."), or None when it is not a question this knows how to turn."""
    text = question.strip().rstrip("?").strip()
    if not question.strip().endswith("?") and not _ASKED.match(text):
        return None
    text = _WH.sub("", text)
    fronted = _FRONTED.match(text)
    if fronted:
        text = f"{fronted.group(3)}{fronted.group(4)} {fronted.group(1)}"
    else:
        text = _LEADING_AUX.sub("", text)
    text = text.strip()
    if not text or text.lower() == question.strip().rstrip("?").strip().lower():
        return None
    return text[0].upper() + text[1:] + "."
