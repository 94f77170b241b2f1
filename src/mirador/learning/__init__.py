"""Learning from ratings: which chain of personas answers each kind of query best.

    from mirador.learning import Learner
    with Learner.for_ratings(load_settings()) as learner:
        learner.rate(None, 5, note="exactly what I needed")   # the last answer
        print(learner.explain(None)["reason"])

The parts: `store` (SQLite with named migrations), `querytypes` (domain by
nearest labelled neighbours in embedding space, complexity by the router),
`bandit` (discounted Thompson sampling with change detection), `learner`
(the orchestrator's chooser and answer sink), `explain`, `stats` and `plot`.
"""

from __future__ import annotations

from mirador.learning.bandit import BanditConfig, Decision, DiscountedThompson
from mirador.learning.learner import Candidates, Learner
from mirador.learning.querytypes import QueryClassifier, QueryType
from mirador.learning.store import AnswerLog, LearningStore, Rating

__all__ = [
    "AnswerLog",
    "BanditConfig",
    "Candidates",
    "Decision",
    "DiscountedThompson",
    "Learner",
    "LearningStore",
    "QueryClassifier",
    "QueryType",
    "Rating",
]
