"""`mirador stats`: what Mirador has learned from ratings, per query type and chain."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mirador.learning import Learner
from mirador.learning.stats import (
    learning_stats,
    recent_answers,
    regret_curve,
    render_stats,
    stats_dict,
)
from mirador.settings import load_settings


@click.command()
@click.option("--plot", "plot_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Also draw ratings over time and the regret curve to this PNG file.")
@click.option("--recent", default=5, show_default=True, help="Recent answers to list.")
@click.option("--json", "as_json", is_flag=True, help="The figures as JSON.")
def stats(plot_file: Path | None, recent: int, as_json: bool) -> None:
    """Per query type: the chains tried, their mean rating, count and latency."""
    with Learner.for_ratings(load_settings()) as learner:
        rows = learner.store.answers_table()
        types = learning_stats(rows, learner.decide)
        regret, random_regret = regret_curve(rows, learner.decide)
    rated = [r for r in rows if r["rating"] is not None]
    if as_json:
        click.echo(json.dumps({"answers": len(rows), "rated": len(rated),
                               "types": stats_dict(types), "regret": regret,
                               "random_regret": random_regret}, indent=2))
    else:
        click.echo(render_stats(types, len(rows), len(rated)))
        if recent and rows:
            click.echo("\nrecent answers (rate one: mirador rate ID 1-5):")
            click.echo(recent_answers(rows, recent))
    if plot_file is not None:
        _plot(plot_file, rows, regret, random_regret)


def _plot(path: Path, rows: list[dict], regret: list[float], random_regret: list[float]) -> None:
    from mirador.learning.plot import plot_learning
    from mirador.learning.stats import rated_in_order

    ratings = [r["rating"] for r in rated_in_order(rows)]
    if not ratings:
        click.echo("no ratings yet, so no plot; rate some answers first (mirador rate 4)",
                   err=True)
        return
    plot_learning(path, ratings, regret, random_regret)
    click.echo(f"wrote {path}", err=True)
