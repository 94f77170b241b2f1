"""`mirador route`: the routing decision for a query, without generating anything."""

from __future__ import annotations

import json

import click

from mirador.orchestration.routing import classify
from mirador.settings import load_settings


@click.command()
@click.argument("query", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print the decision as JSON.")
def route(query: tuple[str, ...], as_json: bool) -> None:
    """Show the complexity of QUERY and the stages it would run."""
    text = " ".join(query)
    decision = classify(text)
    stages = load_settings().config.routing.stages_for(decision.complexity)
    if as_json:
        click.echo(json.dumps({"complexity": decision.complexity, "stages": stages,
                               "score": decision.score, "reasons": list(decision.reasons)}))
        return
    click.echo(f"{decision.complexity}: {' → '.join(stages)}  (score {decision.score})")
    for reason in decision.reasons:
        click.echo(f"  - {reason}")
