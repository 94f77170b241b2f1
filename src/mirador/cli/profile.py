"""`mirador profile [NAME|auto]`: the energy profile in force, and why; or pin one."""

from __future__ import annotations

import json

import click

from mirador.catalog.manifest import manifest_for
from mirador.energy.power import PsutilPower
from mirador.energy.profiles import AUTO, OverrideStore, Profile, choose
from mirador.errors import ConfigError
from mirador.orchestration.profiles import check_chains
from mirador.settings import load_settings


@click.command()
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the profiles as JSON.")
def profile(name: str | None, as_json: bool) -> None:
    """Show the energy profile in force and why; NAME pins one, 'auto' follows the power."""
    settings = load_settings()
    config, store = settings.config.energy, OverrideStore(settings.profile_path)
    if name is not None:
        if name != AUTO and name not in config.all_profiles():
            raise ConfigError(f"'{name}' is not a profile (known: "
                              f"{', '.join(config.all_profiles())}); or 'auto' to follow "
                              "the power state")
        store.set(name)
    check_chains(config, manifest_for(settings))
    choice = choose(config, PsutilPower().read(), store.get())
    if as_json:
        click.echo(json.dumps({"profile": choice.name, "reason": choice.reason,
                               "pinned": store.get(),
                               "profiles": {n: p.model_dump(exclude_none=True)
                                            for n, p in config.all_profiles().items()}},
                              indent=2))
        return
    click.echo(f"profile: {choice.name} ({choice.reason})")
    for pname, p in config.all_profiles().items():
        mark = "*" if pname == choice.name else " "
        when = p.when.describe() if p.when is not None else "only when named"
        click.echo(f"{mark} {pname:<12} {p.description or '-'}; when: {when}; "
                   f"{_limits(p)}")


def _limits(p: Profile) -> str:
    parts = ["all stages" if p.deeper_stages else "first stage only",
             f"max {p.max_tokens} tokens a stage" if p.max_tokens else "no token cap",
             "preload" if p.preload else "no preload",
             f"{p.threads} threads" if p.threads else "configured threads",
             f"chains {', '.join(p.chains)}" if p.chains is not None else "any chain",
             ("speculative decoding" + (" and prefill" if p.prefill else ""))
             if p.speculate else "no speculation"]
    return ", ".join(parts)
