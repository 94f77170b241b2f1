"""Personas from a sentence: a system prompt, triggers and a chain derived from a description.

`mirador create "Legal document analyzer for contracts"` makes a persona on the
default model (or `--base`), with the description as its role, its content
words as triggers, up to two of `--examples` as few-shot exchanges, and a
one-step chain that runs it. It is added to the person's manifest only after
the whole manifest passes `models check`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from mirador.atomic import write_text_atomic
from mirador.catalog.manifest import Manifest, load_manifest
from mirador.errors import ConfigError
from mirador.training.examples import Exchange
from mirador.yamlfile import read_yaml

_STOP = frozenset({
    "a", "an", "the", "and", "or", "for", "of", "to", "in", "on", "with", "my", "your",
    "about", "from", "that", "this", "who", "which", "what", "helps", "helper", "assistant"})
_WORD = re.compile(r"[A-Za-z][A-Za-z-]+")
SHOWN_EXAMPLES = 2  # a small model copies what it is shown; two is plenty


def content_words(description: str) -> list[str]:
    """The description's words that say what it is about, in order, once each."""
    seen: list[str] = []
    for word in _WORD.findall(description.lower()):
        if word not in _STOP and len(word) >= 4 and word not in seen:
            seen.append(word)
    return seen


def persona_id(description: str) -> str:
    words = content_words(description)[:3]
    if not words:
        raise ConfigError(f"cannot make a persona from {description!r}: describe what it "
                          "does, e.g. \"Legal document analyzer for contracts\"")
    return "-".join(words)


def read_examples(folder: Path) -> list[Exchange]:
    """Every {"user": ..., "assistant": ...} line of the folder's *.jsonl files."""
    if not folder.is_dir():
        raise ConfigError(f"--examples {folder}: no such folder; give a folder of .jsonl "
                          "files, one example per line: {\"user\": \"...\", "
                          "\"assistant\": \"...\"}")
    files = sorted(folder.glob("*.jsonl"))
    if not files:
        raise ConfigError(f"{folder} holds no .jsonl files; put example exchanges there, one "
                          "per line: {\"user\": \"...\", \"assistant\": \"...\"}")
    found: list[Exchange] = []
    for path in files:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                found.append(_example(path, number, line, len(found)))
    return found


def _example(path: Path, number: int, line: str, index: int) -> Exchange:
    try:
        data = json.loads(line)
        return Exchange(f"example-{index:04d}", str(data["user"]), str(data["assistant"]),
                        "example")
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"{path}:{number}: not an example; write one JSON object per line "
                          "with 'user' and 'assistant'") from None


def persona_entries(description: str, base: str, examples: list[Exchange],
                    name: str | None = None) -> dict[str, Any]:
    """The manifest entries (a persona and a one-step chain) for `description`."""
    ident = name or persona_id(description)
    role = description.strip().rstrip(".")
    persona: dict[str, Any] = {
        "id": ident, "model": base, "description": role,
        "system": (f"You are a {role[0].lower() + role[1:]}. Answer the person's question "
                   "as that specialist would: precise, practical, and plain about what you "
                   "are not sure of."),
        "triggers": content_words(description)[:6]}
    if examples:
        persona["examples"] = [{"user": e.query, "assistant": e.answer}
                               for e in examples[:SHOWN_EXAMPLES]]
    chain = {"id": ident, "description": role, "steps": [ident]}
    return {"personas": [persona], "chains": [chain]}


def with_entries(manifest_path: Path, entries: dict[str, Any]) -> dict[str, Any]:
    """The person's manifest data with `entries` added; an id already used is refused."""
    data = read_yaml(manifest_path) if manifest_path.exists() else {}
    known = load_manifest(manifest_path if manifest_path.exists() else None)
    for persona in entries["personas"]:
        if known.has_persona(persona["id"]) or known.has_model(persona["id"]):
            raise ConfigError(f"'{persona['id']}' is already in the manifest; choose another "
                              "id with --id")
    for key in ("personas", "chains"):
        data[key] = list(data.get(key) or []) + entries[key]
    return data


def validated(data: dict[str, Any], scratch: Path) -> Manifest:
    """The manifest `data` would make (written to `scratch` and loaded as Mirador would)."""
    scratch.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return load_manifest(scratch)


def write_manifest(path: Path, data: dict[str, Any]) -> None:
    write_text_atomic(path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
