"""`mirador why`: why an answer used the chain it did, and what the learner believes now."""

from __future__ import annotations

import json

import click

from mirador.learning import Learner
from mirador.learning.explain import render
from mirador.settings import load_settings


@click.command()
@click.argument("answer_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="The explanation as JSON.")
def why(answer_id: str | None, as_json: bool) -> None:
    """Explain the choice of chain for ANSWER_ID (the last answer by default).

    Shows the query type and what decided it, the candidate chains with their
    evidence when the choice was made, the reason, the ratings given, and what
    the learner would believe now.
    """
    with Learner.for_ratings(load_settings()) as learner:
        data = learner.explain(answer_id)
    click.echo(json.dumps(data, indent=2, ensure_ascii=False) if as_json else render(data))
