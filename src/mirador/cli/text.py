"""Query text as the CLI takes it: never empty, always valid Unicode.

Bytes that are not UTF-8 (a binary file piped in, a mis-encoded argument) reach
Python as lone surrogates, which no tokenizer or store accepts; they are refused
here with a message, before anything is generated or stored.
"""

from __future__ import annotations

import click


def text_problem(text: str) -> str | None:
    """What is wrong with `text` as a query, or None when it is fine."""
    if not text.strip():
        return "the query is empty; give a question, e.g. mirador ask \"...\""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (f"the query is not UTF-8 text (a stray byte at character {exc.start + 1}); "
                "give it as plain text, or save the file as UTF-8 before piping it in")
    return None


def query_text(raw: str) -> str:
    """`raw` stripped of surrounding space; a usage error if it is empty or not text."""
    problem = text_problem(raw)
    if problem is not None:
        raise click.UsageError(problem)
    return raw.strip()
