"""`mirador plugins`: the installed plugins and what each registered."""

from __future__ import annotations

import contextlib
import sys

import click

from mirador.errors import ConfigError

EXIT_BROKEN = 1


@click.command()
def plugins() -> None:
    """List installed plugins (entry points in the 'mirador' group) and what they add."""
    found = _load_everything()
    if not found:
        click.echo("No plugins installed. A plugin is a package with an entry point in the "
                   "'mirador' group; see the README's 'Plugins' section.")
        return
    for info in found:
        click.echo(f"{info.name:<20} {info.distribution} {info.version}")
        for hook, names in sorted(info.registered.items()):
            click.echo(f"{'':<20} {hook.removeprefix('register_')}: {', '.join(names)}")
        if info.error is not None:
            click.echo(f"{'':<20} BROKEN: {info.error}; fix it, or remove it with "
                       f"'pip uninstall {info.distribution}'")
    if any(info.error is not None for info in found):
        sys.exit(EXIT_BROKEN)


def _load_everything() -> list:
    """Run every registration hook, so each plugin's list is complete (broken ones too)."""
    from mirador import plugins
    from mirador.backends import backend_names
    from mirador.catalog.manifest import plugin_chains
    from mirador.embeddings import embedder_names
    from mirador.tools.registry import registry

    for register in (backend_names, embedder_names, plugin_chains, registry.registered):
        with contextlib.suppress(ConfigError):  # recorded on the plugin it names, shown below
            register()
    return plugins.load()
