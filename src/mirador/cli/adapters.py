"""`mirador adapters`: the personal LoRA adapters `mirador train` made; use one, roll back."""

from __future__ import annotations

import time

import click

from mirador.learning.adapters import AdapterStore, AdapterVersion
from mirador.settings import load_settings

_PERSONA = click.option("--persona", default="quick", show_default=True,
                        help="The persona whose adapters these are.")


@click.group()
def adapters() -> None:
    """List, choose and roll back personal LoRA adapters."""


@adapters.command("ls")
@_PERSONA
def ls(persona: str) -> None:
    """Every adapter version, its verdict and held-out loss; * marks the one in use.
    Then what `mirador serve`'s training schedule last did and is waiting for."""
    from mirador.training.schedule import describe, read_state

    home = load_settings().home
    store = AdapterStore(home, persona)
    versions = store.versions()
    if not versions:
        click.echo(f"no adapters for '{persona}' yet; rate answers, then run: mirador train")
    deployed = store.state()["deployed"] if versions else None
    for version in versions:
        click.echo(_line(version, version.version == deployed))
    for line in describe(read_state(home)):
        click.echo(line)


def _line(version: AdapterVersion, in_use: bool) -> str:
    metrics = version.meta.get("metrics", {})
    made = time.strftime("%Y-%m-%d %H:%M", time.localtime(version.meta.get("created_at", 0)))
    loss = (f"held-out loss {metrics.get('held_out_loss_before', float('nan')):.3f} -> "
            f"{metrics.get('held_out_loss_after', float('nan')):.3f}")
    examples = len(version.meta.get("train_ids", []))
    return (f"{'*' if in_use else ' '} {version.version}  {made}  {version.verdict:<8}  "
            f"{examples} examples  {loss}  {version.meta.get('base_model', '?')}")


@adapters.command("use")
@click.argument("version")
@_PERSONA
def use(version: str, persona: str) -> None:
    """Answer with adapter VERSION (e.g. v0002) from now on."""
    chosen = AdapterStore(load_settings().home, persona).use(version)
    note = "" if chosen.verdict == "accepted" else f" (it was {chosen.verdict}: " \
        f"{chosen.meta.get('reason', '')})"
    click.echo(f"'{persona}' answers with adapter {chosen.version}{note}")


@adapters.command("rollback")
@_PERSONA
def rollback(persona: str) -> None:
    """Go back to the adapter used before the current one (or to none)."""
    previous = AdapterStore(load_settings().home, persona).rollback()
    if previous is None:
        click.echo(f"'{persona}' answers with the base model alone (no adapter)")
    else:
        click.echo(f"'{persona}' answers with adapter {previous.version} again")
