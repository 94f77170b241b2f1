"""`mirador chains`: the named chains of personas Mirador can run."""

from __future__ import annotations

import click

from mirador.catalog.manifest import manifest_for
from mirador.settings import load_settings


@click.command()
def chains() -> None:
    """List the chains; run one with: mirador ask --chain NAME "..."."""
    manifest = manifest_for(load_settings())
    for chain in manifest.chains:
        click.echo(f"{chain.id:<24} {' → '.join(chain.steps)}")
        if chain.description:
            click.echo(f"{'':<24} {chain.description}")
