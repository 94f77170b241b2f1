"""`mirador create`: a new persona (and a chain that runs it) from one sentence."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click
import yaml

from mirador.catalog.manifest import BUILTIN_DEFAULT_MODEL
from mirador.settings import Settings, load_settings
from mirador.training.examples import Exchange

MIN_TRAIN_EXAMPLES = 2  # one to train on and one held out to judge by


@click.command()
@click.argument("description")
@click.option("--examples", "folder", type=click.Path(path_type=Path, file_okay=False),
              help="A folder of .jsonl example exchanges ({\"user\": ..., \"assistant\": ...}).")
@click.option("--base", help="The model (or persona) it runs on (default: the default model).")
@click.option("--id", "name", help="Its id (default: from the description's words).")
@click.option("--train", is_flag=True, help="Also train an adapter on the examples.")
@click.option("--max-steps", type=click.IntRange(1), help="With --train: stop after this many "
              "training steps.")
@click.option("--threads", type=click.IntRange(1), help="With --train: CPU threads.")
@click.option("--yes", is_flag=True, help="Write it without asking.")
def create(description: str, folder: Path | None, base: str | None, name: str | None,
           train: bool, max_steps: int | None, threads: int | None, yes: bool) -> None:
    """Create a persona from DESCRIPTION, e.g. "Legal document analyzer for contracts".

    Writes a persona and a one-step chain into ~/.mirador/manifest.yaml once the
    manifest with them passes `mirador models check`; shows them first.
    """
    from mirador.models.check import check_manifest
    from mirador.training.personas import (
        persona_entries,
        read_examples,
        validated,
        with_entries,
        write_manifest,
    )

    if train and folder is None:
        raise click.UsageError("--train needs --examples DIR: the exchanges to train on")
    if not train and (max_steps or threads):
        raise click.UsageError("--max-steps and --threads are for --train")
    settings = load_settings()
    examples = read_examples(folder) if folder is not None else []
    if train and len(examples) < MIN_TRAIN_EXAMPLES:
        raise click.ClickException(f"--train needs at least {MIN_TRAIN_EXAMPLES} examples in "
                                   f"{folder}; it holds {len(examples)}: add exchanges, one "
                                   "JSON line each")
    entries = persona_entries(description, base or BUILTIN_DEFAULT_MODEL, examples, name)
    data = with_entries(settings.manifest_path, entries)
    with tempfile.TemporaryDirectory() as scratch:
        manifest = validated(data, Path(scratch) / "manifest.yaml")
    problems = check_manifest(manifest, settings)
    if problems:
        raise click.ClickException("the new persona does not pass models check: "
                                   + "; ".join(problems))
    click.echo(yaml.safe_dump(entries, sort_keys=False, allow_unicode=True))
    if not yes and not click.confirm(f"add this to {settings.manifest_path}?", default=True):
        click.echo("nothing written")
        return
    settings.ensure_home()
    write_manifest(settings.manifest_path, data)
    ident = entries["personas"][0]["id"]
    click.echo(f"added persona and chain '{ident}'; try: mirador ask --chain {ident} \"...\"")
    if train:
        _train(settings, ident, examples, max_steps, threads)


def _train(settings: Settings, ident: str, examples: list[Exchange], max_steps: int | None,
           threads: int | None) -> None:
    from mirador.cli.train import BarReporter, gated
    from mirador.training.lora import TrainConfig
    from mirador.training.trainer import TrainOptions, train_adapter

    options = gated(TrainOptions(persona=ident, min_examples=MIN_TRAIN_EXAMPLES,
                                 threads=threads, config=TrainConfig(max_steps=max_steps)),
                    settings)
    outcome = train_adapter(settings, options, BarReporter(), exchanges=examples)
    verdict = "deployed" if outcome.deployed else "rejected"
    click.echo(f"\nadapter {outcome.version.version} {verdict}: {outcome.reason}")
