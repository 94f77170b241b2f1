"""`mirador privacy`: erase what Mirador keeps about you (see `mirador.privacy`).

Forgetting from the CLI goes through a running `mirador serve` on the same home
when there is one, so the server (which holds the store open) stays consistent;
otherwise it runs in this process.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

import click
import httpx

from mirador.errors import MiradorError
from mirador.settings import Settings, load_settings


@click.group()
def privacy() -> None:
    """Erase what Mirador keeps about you.

    'mirador memory forget ID | --all' erases exchanges; 'mirador privacy wipe'
    removes every personal file and keeps config, manifest and models.
    """


@privacy.command()
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def wipe(yes: bool) -> None:
    """Remove memories, session journals, the ratings database (and what it taught),
    preload and chat history. config.yaml, manifest.yaml and models are kept."""
    from mirador import privacy as erase
    from mirador.server.client import find_server

    settings = load_settings()
    if find_server(settings) is not None:
        raise MiradorError("'mirador serve' is running on this home and holds these files "
                           "open; stop it, then run 'mirador privacy wipe' again")
    if not yes:
        click.confirm(f"remove every memory, journal, rating and history under "
                      f"{settings.home}?", abort=True)
    removed = erase.wipe(settings)
    for path in removed:
        click.echo(f"removed {path}")
    click.echo("nothing personal is left" if removed else "there was nothing to remove")


def forget_memories(settings: Settings, ids: Sequence[str] | None,
                    must_exist: str | None = None) -> None:
    """Forget these memories (all when `ids` is None) everywhere; say what went.

    `must_exist` names the one id the person gave: an error if nothing had it.
    """
    from mirador import privacy as erase
    from mirador.server.client import find_server

    server = find_server(settings)
    if server is not None:
        counts = _through_server(server.base_url, server.headers, ids)
    elif ids is None:
        counts = erase.forget_all(settings).to_json()
    else:
        counts = erase.forget(settings, ids).to_json()
    if must_exist and not any(counts.values()):
        raise click.ClickException(f"no memory with id '{must_exist}'; 'mirador memory ls' "
                                   "lists them")
    gone = counts["memories"]
    click.echo(f"forgot {gone} memor{'y' if gone == 1 else 'ies'}")


def _through_server(base_url: str, headers: dict[str, str],
                    ids: Sequence[str] | None) -> dict[str, int]:
    """Forget through the running server's API; the counts it reports."""
    counts = {"memories": 0, "turns": 0, "answers": 0}
    try:
        with httpx.Client(base_url=base_url, headers=headers, timeout=120) as http:
            if ids is None:
                reply = http.delete("/mirador/memory")
                _check(reply)
                return {k: int(v) for k, v in reply.json()["forgotten"].items()}
            for memory_id in ids:
                reply = http.delete(f"/mirador/memory/{quote(memory_id, safe='')}")
                if reply.status_code != 404:
                    _check(reply)
                    counts["memories"] += 1
    except httpx.HTTPError as exc:
        raise MiradorError(f"the Mirador server at {base_url} stopped answering ({exc}); "
                           "nothing more was forgotten: run the command again") from None
    return counts


def _check(reply: httpx.Response) -> None:
    if reply.status_code != 200:
        raise MiradorError(f"the Mirador server refused to forget ({reply.status_code}: "
                           f"{reply.text[:200]}); run the command again, or stop the server "
                           "and run it with the server stopped")
