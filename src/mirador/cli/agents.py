"""`mirador agents`: the declared agents, their last runs and their notifications;
enable, disable, or run one now."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from typing import TYPE_CHECKING

import click

from mirador.errors import ConfigError
from mirador.settings import load_settings

if TYPE_CHECKING:
    from mirador.agents import Agent, AgentStore, RunRecord


def _declared() -> tuple[list[Agent], AgentStore]:
    from mirador.agents import AgentStore, declared_agents

    settings = load_settings()
    return declared_agents(settings), AgentStore(settings.home)


def _named(name: str) -> tuple[Agent, AgentStore]:
    agents, store = _declared()
    for agent in agents:
        if agent.name == name:
            return agent, store
    known = ", ".join(a.name for a in agents) or "none; declare one under agents: in config.yaml"
    raise ConfigError(f"no agent named '{name}' (declared: {known})")


def _when(moment: float | None) -> str:
    return "never" if moment is None else datetime.fromtimestamp(moment).strftime("%Y-%m-%d %H:%M")


@click.group(invoke_without_command=True)
@click.pass_context
def agents(ctx: click.Context) -> None:
    """Agents that watch: list them, their last runs and their notifications.

    Agents are declared in config.yaml (agents:) or with @mirador.agent; each is
    disabled until you enable it, and `mirador serve` runs the enabled ones.
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_agents)


@agents.command("ls")
@click.option("--limit", type=click.IntRange(min=0), default=5, show_default=True,
              help="Notifications to show.")
def list_agents(limit: int = 5) -> None:
    """List agents (enabled or not, trigger, last run) and the latest notifications."""
    declared, store = _declared()
    enabled, last = store.enabled(), store.last_runs()
    if not declared:
        click.echo("No agents declared. Add one under agents: in config.yaml, e.g.\n"
                   "  agents:\n  - {name: morning, trigger: 'daily 08:00', prompt: '...'}")
    for agent in declared:
        state = "enabled " if agent.name in enabled else "disabled"
        click.echo(f"{state}  {agent.name:<16} {agent.trigger!s:<14} last run: "
                   f"{_when(last.get(agent.name))}"
                   + (f"  when {agent.when.tool_name} {agent.when.op} {agent.when.value:g}"
                      if agent.when else ""))
    _show_notifications(store, limit)


def _show_notifications(store: AgentStore, limit: int, agent: str | None = None) -> None:
    notes = store.notifications(limit, agent)
    if limit and notes:
        click.echo("\nNotifications (newest first):")
    for note in notes:
        click.echo(f"[{_when(note.at)}] {note.agent} ({note.status}): {note.text.strip()}")


@agents.command()
@click.argument("name")
def enable(name: str) -> None:
    """Let `mirador serve` run agent NAME on its trigger."""
    agent, store = _named(name)
    store.enable(agent.name, time.time())
    first = agent.trigger.next_after(time.time())
    click.echo(f"Enabled {agent.name} ({agent.trigger}); first run {_when(first)} while "
               "`mirador serve` runs.")


@agents.command()
@click.argument("name")
def disable(name: str) -> None:
    """Stop running agent NAME."""
    agent, store = _named(name)
    was = store.disable(agent.name)
    click.echo(f"Disabled {agent.name}." if was else f"{agent.name} was not enabled.")


@agents.command()
@click.argument("name", required=False)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def log(name: str | None, limit: int, as_json: bool) -> None:
    """Every run (of NAME, or of all agents), with what it did."""
    from dataclasses import asdict

    _, store = _declared()
    for record in store.runs(limit, name):
        if as_json:
            click.echo(json.dumps(asdict(record), ensure_ascii=False))
            continue
        said = record.error or record.condition or f"answer {record.answer_id}"
        click.echo(f"[{_when(record.at)}] {record.agent} {record.did} ({record.seconds:.1f} s)"
                   f": {said}")


@agents.command("run")
@click.argument("name")
def run_now(name: str) -> None:
    """Run agent NAME once now, enabled or not, and show its notification."""
    agent, store = _named(name)
    record = asyncio.run(_run(agent, store))
    if record.did == "answered":
        _show_notifications(store, 1, agent.name)
    else:
        click.echo(f"{agent.name} {record.did}: {record.error or record.condition}")


async def _run(agent: Agent, store: AgentStore) -> RunRecord:
    from mirador.agents.runner import AgentRunner, orchestrator_ask
    from mirador.compose import open_for_one_answer

    async with await open_for_one_answer(load_settings()) as orchestrator:
        runner = AgentRunner([agent], store, orchestrator_ask(orchestrator))
        return await runner.run(agent)
