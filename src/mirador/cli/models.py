"""`mirador models`: what the manifest declares and what is loaded."""

from __future__ import annotations

import click

from mirador.models.manifest import Manifest, load_manifest
from mirador.settings import load_settings


@click.group(invoke_without_command=True)
@click.pass_context
def models(ctx: click.Context) -> None:
    """List models and personas (subcommands manage them)."""
    if ctx.invoked_subcommand is None:
        settings = load_settings()
        _print_manifest(load_manifest(settings.manifest_path))
        click.echo("\nLoaded: none in this process (models load on first use).")


@models.command()
def check() -> None:
    """Validate the manifest without loading anything."""
    settings = load_settings()
    manifest = load_manifest(settings.manifest_path)
    problems = manifest.check_files()
    for problem in problems:
        click.echo(f"{settings.manifest_path}: {problem}", err=True)
    if problems:
        raise SystemExit(1)
    click.echo(f"ok: {len(manifest.models)} models, {len(manifest.personas)} personas, "
               f"{len(manifest.chains)} chains")


def _print_manifest(manifest: Manifest) -> None:
    click.echo("Models:")
    for model in manifest.models:
        click.echo(f"  {model.id:<22} {model.backend:<9} {model.source}")
    click.echo("Personas:")
    for persona in manifest.personas:
        base = manifest.resolve(persona.id).model.id
        lora = f" + LoRA {persona.lora.path}" if persona.lora else ""
        click.echo(f"  {persona.id:<22} on {base}{lora}  {persona.description}")
