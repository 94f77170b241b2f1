"""`mirador rate`: rate an answer from 1 to 5, so the learner knows which chains serve you."""

from __future__ import annotations

import click

from mirador.errors import RatingError
from mirador.ratings import rate_answer
from mirador.settings import load_settings


@click.command()
@click.argument("args", nargs=-1, required=True, metavar="[ANSWER_ID] RATING")
@click.option("--note", help="A few words on why (kept with the rating).")
def rate(args: tuple[str, ...], note: str | None) -> None:
    """Rate an answer from 1 (bad) to 5 (excellent): the last answer unless ANSWER_ID is given.

    Rating an answer again replaces its rating (the earlier one is kept in the history).
    """
    answer_id, rating = parse_args(args)
    stored = rate_answer(load_settings(), answer_id, rating, note)
    chain = stored.chain or "the stages you named"
    click.echo(f"rated {stored.answer_id} {stored.rating}/5 ({stored.query_type}, {chain}); "
               f"see why it chose that chain: mirador why {stored.answer_id}")


def parse_args(args: tuple[str, ...]) -> tuple[str | None, int]:
    """`RATING` or `ANSWER_ID RATING`."""
    if len(args) > 2:
        raise click.UsageError("give at most an answer id and a rating, e.g. mirador rate 3f2a 4")
    answer_id = args[0] if len(args) == 2 else None
    return answer_id, parse_rating(args[-1])


def parse_rating(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise RatingError(f"a rating is a whole number from 1 (bad) to 5 (excellent), "
                          f"not '{text}'") from None
    if not 1 <= value <= 5:
        raise RatingError(f"a rating is a whole number from 1 (bad) to 5 (excellent), not {value}")
    return value
