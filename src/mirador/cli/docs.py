"""`mirador docs`: the document folders the `search_docs` and `read_file` tools see."""

from __future__ import annotations

from pathlib import Path

import click

from mirador.settings import load_settings


@click.group()
def docs() -> None:
    """Index folders of documents (text, Markdown, PDF) for the search_docs tool.

    A persona whose 'tools:' list names search_docs (or read_file) can then answer
    from them. Nothing leaves this machine: chunks are embedded locally and kept
    under the Mirador home (docs/).
    """


@docs.command("add")
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
def add(path: Path) -> None:
    """Index the folder PATH (again: only changed files are re-read)."""
    from mirador.tools.docs import DocsIndex

    done = DocsIndex(load_settings()).add(path)
    click.echo(f"{done.folder}: {done.added} file(s) indexed ({done.chunks} chunks), "
               f"{done.unchanged} unchanged, {done.removed} removed")


@docs.command("list")
def list_() -> None:
    """The indexed folders and how many files each holds."""
    from mirador.tools.docs import DocsIndex

    index = DocsIndex(load_settings())
    folders, files = index.folders(), index.files()
    if not folders:
        click.echo("no folders indexed; add one with 'mirador docs add PATH'")
    for folder in folders:
        mine = [f for f in files if Path(folder) in Path(f).parents]
        chunks = sum(files[f]["chunks"] for f in mine)
        click.echo(f"{folder}  {len(mine)} file(s), {chunks} chunks")


@docs.command("remove")
@click.argument("path", type=click.Path(path_type=Path))
def remove(path: Path) -> None:
    """Forget the folder PATH and its chunks (the files themselves are untouched)."""
    from mirador.tools.docs import DocsIndex

    dropped = DocsIndex(load_settings()).remove(path)
    click.echo(f"removed {path} ({dropped} file(s) dropped from the index)")
