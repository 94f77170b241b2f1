"""`mirador tools`: the tools models may call, where each comes from, and its parameters."""

from __future__ import annotations

import json

import click

from mirador.settings import load_settings


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON array, with each JSON schema.")
def tools(as_json: bool) -> None:
    """List the tools models may call (built-ins, your @mirador.tool functions, plugins',
    the sandbox's and MCP servers'). A persona uses one when its 'tools:' list names it."""
    from mirador.tools.registry import available_tools

    found = available_tools(load_settings())
    if as_json:
        click.echo(json.dumps([{"name": t.name, "source": t.source, "description": t.description,
                                "parameters": t.parameters, "timeout": t.timeout}
                               for t in found.values()], indent=2))
        return
    for tool in found.values():
        click.echo(f"{tool.name:<16} {tool.source:<10} {tool.description}")
        click.echo(f"{'':<27} ({_parameters(tool.parameters)})")


def _parameters(schema: dict) -> str:
    required = set(schema.get("required", []))
    props = schema.get("properties", {})
    return ", ".join(f"{name}: {spec.get('type', 'any')}{'' if name in required else '?'}"
                     for name, spec in props.items()) or "no parameters"
