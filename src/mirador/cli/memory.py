"""`mirador memory`: see, search, export, import and forget what Mirador remembers."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mirador.errors import ConfigError
from mirador.settings import Settings, load_settings

if TYPE_CHECKING:
    from mirador.memory import MemoryRecord, Recalled
    from mirador.memory.store import MemoryStore

NAMESPACE_HELP = "Only this namespace (project); default: all."


def _open() -> tuple[Settings, MemoryStore]:
    from mirador.memory import build_store

    settings = load_settings()
    if not settings.config.memory.enabled:
        raise ConfigError("memory is turned off (memory.enabled: false in config.yaml); "
                          "turn it on to see or change what is remembered")
    return settings, build_store(settings)


def _guard(function: Any, *args: Any, **kwargs: Any) -> Any:
    from mirador.memory.memory import guarded as guard

    return guard(lambda: function(*args, **kwargs))


@click.group()
def memory() -> None:
    """See, search, export, import and forget what Mirador remembers.

    Every finished answer is remembered (turn it off per query with --no-memory,
    or for good with memory.enabled: false in config.yaml).
    """


@memory.command("ls")
@click.option("--namespace", "-n", help=NAMESPACE_HELP)
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def list_memories(namespace: str | None, limit: int, as_json: bool) -> None:
    """List memories, newest first."""
    _, store = _open()
    records = list(_guard(store.records, namespace))[::-1][:limit]
    if as_json:
        for record in records:
            click.echo(json.dumps(record.to_json(), ensure_ascii=False))
        return
    if not records:
        click.echo("nothing remembered yet" + (f" in '{namespace}'" if namespace else ""))
        return
    for record in records:
        click.echo(_line(record))


@memory.command()
@click.argument("query", nargs=-1, required=True)
@click.option("--namespace", "-n", help=NAMESPACE_HELP)
@click.option("--limit", type=click.IntRange(1, 50), default=None,
              help="How many results (default: memory.recall_limit, 5).")
@click.option("--json", "as_json", is_flag=True, help="The ranked results with ids and scores.")
def search(query: tuple[str, ...], namespace: str | None, limit: int | None,
           as_json: bool) -> None:
    """Find the memories that bear on QUERY: always the best --limit, with their scores.

    score ranks (similarity in meaning, less a little for age; an older memory a newer
    one updates goes just below it); sim is the similarity in meaning; '*' marks what
    the context compiler would give a model (sim at least memory.min_relevance).
    """
    from dataclasses import replace

    text = " ".join(query)
    if not text.strip():
        raise click.UsageError("the query is blank; say what to search for")
    _, store = _open()
    params = replace(store.params, limit=limit) if limit else store.params
    hits = _guard(store.recall, text, time.time(), namespace, params)
    if as_json:
        click.echo(json.dumps([h.to_json() for h in hits], ensure_ascii=False, indent=2))
        return
    if not hits:
        click.echo("nothing remembered yet" + (f" in '{namespace}'" if namespace else ""))
    for hit in hits:
        mark = "*" if hit.similarity >= store.params.inject_similarity else " "
        click.echo(f"{hit.score:.3f} sim {hit.similarity:.2f}{mark} {_line(hit.record)}")


@memory.command()
@click.argument("memory_id")
@click.option("--json", "as_json", is_flag=True)
def show(memory_id: str, as_json: bool) -> None:
    """Show one memory in full."""
    _, store = _open()
    record = _guard(store.get, memory_id)
    if record is None:
        raise click.ClickException(f"no memory with id '{memory_id}'; 'mirador memory ls' "
                                   "lists them")
    if as_json:
        click.echo(json.dumps(record.to_json(), ensure_ascii=False, indent=2))
        return
    for key, value in record.to_json().items():
        if key != "answers":
            click.echo(f"{key}: {value}")
    for stage, text in record.answers.items():
        click.echo(f"\n[{stage}]\n{text}")


@memory.command()
@click.argument("memory_id", required=False)
@click.option("--query", "-q", help="Forget every memory this query recalls.")
@click.option("--all", "everything", is_flag=True, help="Forget everything.")
@click.option("--namespace", "-n", help="With --query: only this namespace.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def forget(memory_id: str | None, query: str | None, everything: bool, namespace: str | None,
           yes: bool) -> None:
    """Forget one memory (ID), those a query recalls (--query), or all (--all).

    Forgotten means gone: not searched, exported or used as context, also after a restart.
    """
    if sum(bool(x) for x in (memory_id, query, everything)) != 1:
        raise click.UsageError("give exactly one of: an ID, --query TEXT or --all")
    from mirador.cli.privacy import forget_memories

    settings, store = _open()
    if everything and not yes:
        click.confirm(f"forget all {_guard(store.count)} memories?", abort=True)
    ids = None if everything else [memory_id] if memory_id else _query_ids(
        store, str(query), namespace, yes)
    store.close()
    forget_memories(settings, ids, must_exist=memory_id)  # every file, via a server if one runs


def _query_ids(store: MemoryStore, query: str, namespace: str | None, yes: bool) -> list[str]:
    from dataclasses import replace

    from mirador.memory.ranking import relevant

    found: list[Recalled] = _guard(store.recall, query, time.time(), namespace,
                                   replace(store.params, limit=50))
    hits = relevant(found, store.params)  # only what is close in meaning, as for context
    if not hits:
        return []
    for hit in hits:
        click.echo(f"{hit.score:.3f}  {_line(hit.record)}")
    if not yes:
        click.confirm(f"forget these {len(hits)}?", abort=True)
    return [h.record.id for h in hits]


@memory.command("export")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@click.option("--namespace", "-n", help=NAMESPACE_HELP)
def export_memories(file: Path, namespace: str | None) -> None:
    """Write every memory to FILE as JSONL (- for standard output)."""
    from mirador.memory.transfer import write_jsonl

    _, store = _open()
    records = list(_guard(store.records, namespace))
    if str(file) == "-":
        write_jsonl(records, sys.stdout)
        return
    with file.open("w", encoding="utf-8") as handle:
        count = write_jsonl(records, handle)
    click.echo(f"exported {count} memories to {file}", err=True)


@memory.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--replace", is_flag=True, help="Overwrite memories whose ids are already stored.")
def import_memories(file: Path, replace: bool) -> None:
    """Add the memories in a JSONL FILE (id, namespace, query, response, [timestamp]).

    The whole file is checked first: a bad line is named and nothing is written.
    """
    from mirador.memory.transfer import read_jsonl

    _, store = _open()
    existing = {r.id for r in _guard(store.records)}
    records = read_jsonl(file, existing, replace=replace)
    _guard(store.add, records)
    click.echo(f"imported {len(records)} memories from {file}")


@memory.command("reindex")
@click.option("--namespace", "-n", help=NAMESPACE_HELP)
def reindex_memories(namespace: str | None) -> None:
    """Embed every memory again with the embedder configured now.

    Needed after changing memory.embedder or memory.embedder_model: vectors from two
    models cannot be compared, so until then memory refuses to search or write.
    """
    settings, store = _open()
    started = time.perf_counter()
    done = _guard(store.reindex, namespace)
    seconds = time.perf_counter() - started
    for name, count in done.items():
        click.echo(f"{name}: {count} memories embedded again")
    model = settings.config.memory.embedder_model or "its packaged model"
    click.echo(f"reindexed with {settings.config.memory.embedder} ({model}) in {seconds:.1f} s",
               err=True)


def _line(record: MemoryRecord) -> str:
    query = " ".join(record.query.split())
    short = query if len(query) <= 70 else query[:67] + "..."
    rated = f"  [{record.rating}/5]" if record.rating is not None else ""
    return f"{record.id}  {record.when[:10]}  {record.namespace:<10}  {short}{rated}"
