"""`mirador models`: what the manifest declares, what is loaded, and managing both.

`ps`, `load` and `unload` act on the running `mirador serve` for this home when
there is one (that is where models stay loaded); without a server, `load`
loads in this process to show what a model takes, and `ps` shows the budget
and what earlier loads measured. `pin` is kept under the home, so a running
server sees it too. `check` and `du` never load anything.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import click

from mirador.catalog.manifest import Manifest, ModelEntry, load_manifest, manifest_for
from mirador.catalog.sizes import format_bytes
from mirador.errors import BackendUnavailableError, MiradorError, ModelNotFoundError
from mirador.host import available_bytes
from mirador.models.budget import resolve_budget
from mirador.settings import Settings, load_settings

NO_SERVER = ("No 'mirador serve' is running for this home: models load inside each command and "
             "leave with it. Start 'mirador serve' to keep them loaded between questions.")


@click.group(invoke_without_command=True)
@click.pass_context
def models(ctx: click.Context) -> None:
    """List models and personas (subcommands manage them)."""
    if ctx.invoked_subcommand is None:
        settings = load_settings()
        _print_manifest(manifest_for(settings))
        click.echo("\nLoaded: none in this process (models load on first use; "
                   "'mirador models ps' shows a running server's).")


@models.command()
@click.argument("file", required=False, type=click.Path(path_type=Path, dir_okay=False))
def check(file: Path | None) -> None:
    """Validate a manifest (default: the home's) without loading any model."""
    from mirador.models.check import check_manifest

    settings = load_settings()
    path = file or settings.manifest_path
    if file is not None and not file.is_file():
        raise click.UsageError(f"{file} does not exist; give the path of a manifest YAML file")
    manifest = load_manifest(path)
    problems = check_manifest(manifest, settings)
    for problem in problems:
        click.echo(f"{path}: {problem}", err=True)
    if problems:
        raise SystemExit(1)
    click.echo(f"ok: {len(manifest.models)} models, {len(manifest.personas)} personas, "
               f"{len(manifest.chains)} chains")


@models.command()
def ps() -> None:
    """What is loaded in the running server, with sizes (or the budget, without one)."""
    settings = load_settings()
    server = _server(settings)
    if server is None:
        _print_offline_status(settings, manifest_for(settings))
        return
    rows = _call(server, "GET", "/mirador/ps")["models"]
    if not rows:
        click.echo("Nothing is loaded in the server.")
    for row in rows:
        click.echo(f"{row['id']:<24} {row['backend']:<9} {format_bytes(row['size']):>10}  "
                   f"{row.get('detail', '')}")


@models.command()
@click.argument("ref")
def load(ref: str) -> None:
    """Load REF (a model or persona id) now, so the next answer starts at once."""
    settings = load_settings()
    manifest = manifest_for(settings)
    model = _base_model(manifest, ref)
    server = _server(settings)
    if server is not None:
        reply = _call(server, "POST", f"/mirador/models/{model.id}/load")
        click.echo(f"loaded {model.id} in the server in {reply['seconds']:.2f} s")
        return
    asyncio.run(_load_here(settings, manifest, model))


@models.command()
@click.argument("ref")
def unload(ref: str) -> None:
    """Free the memory of REF (a model or persona id) once its answers finish."""
    settings = load_settings()
    model = _base_model(manifest_for(settings), ref)
    server = _server(settings)
    if server is None:
        click.echo(f"{model.id} is not loaded: {NO_SERVER}")
        return
    _call(server, "POST", f"/mirador/models/{model.id}/unload")
    click.echo(f"unloaded {model.id}")


@models.command()
@click.argument("ref")
@click.option("--off", is_flag=True, help="Unpin: let the budget evict it again.")
def pin(ref: str, off: bool) -> None:
    """Never evict REF's model (a model or persona id) to make room for another."""
    from mirador.models.pins import PinStore

    settings = load_settings()
    model = _base_model(manifest_for(settings), ref)
    PinStore(settings.models_dir / "pins.json").set(model.id, not off)
    if off:
        click.echo(f"unpinned {model.id}")
        return
    server = _server(settings)
    if server is not None:
        _call(server, "POST", f"/mirador/models/{model.id}/load")
    where = "loaded and pinned in the server" if server else "pinned (kept loaded once loaded)"
    click.echo(f"{model.id}: {where}")


@models.command()
def du() -> None:
    """Disk used by base models, adapters and personas, and what sharing bases saves."""
    from mirador.models.disk import disk_usage

    settings = load_settings()
    usage = disk_usage(manifest_for(settings), settings.models_dir)
    click.echo(f"{'Base models':<26} {'size':>10} {'personas':>9}  file")
    for row in usage.models:
        click.echo(f"  {row.name:<24} {format_bytes(row.bytes):>10} {row.personas:>9}  "
                   f"{row.where}")
    click.echo("Adapters" + ("" if usage.adapters else ": none"))
    for row in usage.adapters:
        click.echo(f"  {Path(row.name).name:<24} {format_bytes(row.bytes):>10} "
                   f"{row.personas:>9}  {row.where}")
    click.echo(f"Personas: {usage.personas}, prompts and options only (no model files).")
    share = f" ({usage.saved * 100 / usage.unshared:.0f}%)" if usage.unshared else ""
    click.echo(f"On disk: {format_bytes(usage.total)}. A model file per persona would take "
               f"{format_bytes(usage.unshared)}: sharing saves {format_bytes(usage.saved)}"
               f"{share}.")


# -- helpers ---------------------------------------------------------------------------


def _base_model(manifest: Manifest, ref: str) -> ModelEntry:
    if not (manifest.has_model(ref) or manifest.has_persona(ref)):
        raise ModelNotFoundError(
            f"'{ref}' is neither a model nor a persona in the manifest (models: "
            f"{', '.join(m.id for m in manifest.models)}); 'mirador models' lists personas too")
    return manifest.resolve(ref).model


def _server(settings: Settings) -> Any:
    from mirador.server.client import find_server

    return find_server(settings)


def _call(server: Any, method: str, path: str) -> Any:
    import httpx

    try:
        reply = httpx.request(method, f"{server.base_url}{path}", headers=server.headers,
                              timeout=httpx.Timeout(10.0, read=600.0))
    except httpx.HTTPError as exc:
        raise BackendUnavailableError(f"the Mirador server at {server.base_url} did not answer "
                                      f"({exc}); is it still running?") from None
    body = reply.json() if reply.content else {}
    if reply.status_code >= 400:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        message = error.get("message") if isinstance(error, dict) else error
        raise MiradorError(str(message or f"the server answered {reply.status_code}"))
    return body


async def _load_here(settings: Settings, manifest: Manifest, model: ModelEntry) -> None:
    from mirador.models.manager import ModelManager

    manager = ModelManager(settings, manifest)
    try:
        estimate = await manager.estimate(model)
        started = time.perf_counter()
        await manager.ensure_loaded(model)
        seconds = time.perf_counter() - started
        took = manager.used_bytes
    finally:
        await manager.aclose()
    click.echo(f"loaded {model.id} in {seconds:.2f} s: estimated {format_bytes(estimate)}, "
               f"took {format_bytes(took)} (budget {format_bytes(manager.budget)}).")
    click.echo(NO_SERVER)


def _print_offline_status(settings: Settings, manifest: Manifest) -> None:
    from mirador.models.budget import MemoryProfile
    from mirador.models.pins import PinStore

    config = settings.config.models
    budget = resolve_budget(config)
    how = "models.budget" if config.budget is not None else (
        f"{config.budget_fraction:.0%} of {format_bytes(available_bytes())} available")
    click.echo(NO_SERVER)
    click.echo(f"Budget: {format_bytes(budget)} ({how}).")
    pins = PinStore(settings.models_dir / "pins.json").pinned()
    pinned = sorted(pins | {m.id for m in manifest.models if m.pinned})
    click.echo(f"Pinned: {', '.join(pinned) or 'none'}.")
    profile = MemoryProfile(settings.models_dir / "memory.json")
    for model in manifest.models:
        measured = profile.measured(model.id)
        if measured:
            click.echo(f"  {model.id:<24} takes {format_bytes(measured)} when loaded (measured)")


def _print_manifest(manifest: Manifest) -> None:
    click.echo("Models:")
    for model in manifest.models:
        click.echo(f"  {model.id:<22} {model.backend:<9} {model.source}")
    click.echo("Personas:")
    for persona in manifest.personas:
        base = manifest.resolve(persona.id).model.id
        lora = f" + LoRA {persona.lora.path}" if persona.lora else ""
        click.echo(f"  {persona.id:<22} on {base}{lora}  {persona.description}")
