"""`mirador dna`: Model DNA, how you like answers, applied to every persona."""

from __future__ import annotations

import json
import time
from contextlib import closing

import click

from mirador.learning.dna import DNA, Version, changed, shaping
from mirador.learning.store import LearningStore
from mirador.settings import load_settings


def _store() -> closing[LearningStore]:
    settings = load_settings()
    settings.ensure_home()
    return closing(LearningStore.in_home(settings.home))


@click.group()
def dna() -> None:
    """Show and set Model DNA: verbosity, technical depth, reasoning style, ..."""


@dna.command("show")
@click.option("--json", "as_json", is_flag=True, help="The profile as JSON.")
@click.option("--history", is_flag=True, help="Every version, oldest first.")
def show(as_json: bool, history: bool) -> None:
    """The DNA in force and what it does to answers."""
    with _store() as store:
        versions = store.dna_history() if history else [store.dna()]
    if as_json:
        click.echo(json.dumps([_json(v) for v in versions], indent=2))
        return
    for version in versions:
        click.echo(render(version))


def _json(version: Version) -> dict[str, object]:
    return {"version": version.number, "source": version.source, "note": version.note,
            "created_at": version.created_at, "dna": version.dna.model_dump(mode="json")}


def render(version: Version) -> str:
    """A few lines: the version, each key, and what it does to a request."""
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(version.created_at)) \
        if version.created_at else "never set"
    head = f"Model DNA v{version.number} ({version.source}, {when})"
    if version.note:
        head += f" from the rating note {version.note!r}" if version.source == "learned" \
            else f": {version.note}"
    lines = [head] + [f"  {key:<16} {_value(value)}"
                      for key, value in version.dna.model_dump().items()]
    if version.number == 0:
        lines.append("  (never set: answers are not shaped; try: mirador dna set verbosity 0.2)")
    else:
        lines.append(f"  effect: {shaping(version.dna).effect()}")
    return "\n".join(lines)


def _value(value: object) -> str:
    return ", ".join(value) if isinstance(value, tuple | list) else str(value)


@dna.command("set")
@click.argument("key", metavar="KEY")
@click.argument("value", metavar="VALUE")
def set_key(key: str, value: str) -> None:
    """Set KEY to VALUE (lists: comma-separated), e.g. mirador dna set verbosity 0.2."""
    with _store() as store:
        profile = changed(store.dna().dna, key, value)
        saved = store.save_dna(profile, "set", f"{key}={value}")
    click.echo(render(saved))


@dna.command("reset")
def reset() -> None:
    """Back to the neutral profile (a new version; the history is kept)."""
    with _store() as store:
        saved = store.save_dna(DNA(), "reset")
    click.echo(render(saved))
