"""Query types: a query's domain from its meaning, and its complexity from the router.

The domain is a vote of the query's nearest neighbours in embedding space
among labelled examples: the seed examples shipped in `seeds.yaml`, plus the
person's own queries whose answers they rated well (their history teaches the
classifier their way of asking). Neighbours vote with weight exp(sim / T), so
a close match outweighs several loose ones. The seeds' embeddings are cached on
disk under the home, keyed by embedder and seed-set hash, so only the query
itself is embedded per answer.

The default model's embeddings of the seeds ship with Mirador
(`seeds-minilm.npz`), so even a first run does not wait for them.

The complexity comes from `mirador.orchestration.routing.classify`. A query
type is written `domain/complexity`, e.g. `finance/complex`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import yaml

from mirador.embeddings import Embedder
from mirador.errors import ConfigError
from mirador.orchestration.routing import classify as classify_complexity
from mirador.yamlfile import SAFE_LOADER

SEEDS_FILE = "seeds.yaml"
SHIPPED_VECTORS = "seeds-minilm.npz"  # the seeds embedded by the default model, shipped
SHIPPED_MODEL = "minilm:default"


@dataclass(frozen=True)
class Neighbour:
    domain: str
    similarity: float
    text: str  # the example's text ('(your history)' for the person's own queries)


@dataclass(frozen=True)
class QueryType:
    """A query's domain and complexity, and what decided them."""

    domain: str
    complexity: str
    confidence: float = 1.0  # the winning domain's share of the neighbours' votes
    neighbours: tuple[Neighbour, ...] = ()
    complexity_reasons: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.domain}/{self.complexity}"


@dataclass(frozen=True)
class Examples:
    """Labelled example texts and their embeddings (rows aligned)."""

    texts: tuple[str, ...]
    domains: tuple[str, ...]
    vectors: np.ndarray  # (n, d) float32, unit rows


def load_seeds(path: Path | None = None) -> dict[str, list[str]]:
    """The seed examples, domain -> texts (the packaged ones unless `path` is given)."""
    if path is None:
        text = resources.files("mirador.learning").joinpath(SEEDS_FILE).read_text("utf-8")
    else:
        text = path.read_text("utf-8")
    data = yaml.load(text, Loader=SAFE_LOADER) or {}
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise ConfigError(f"{path or SEEDS_FILE}: give each domain a list of example queries")
    return {str(domain): [str(q) for q in queries] for domain, queries in data.items()}


def seed_examples(seeds: Mapping[str, Sequence[str]], embedder: Embedder, cache_dir: Path,
                  model_key: str) -> Examples:
    """The seeds embedded, read from the on-disk cache when the same model embedded them."""
    texts = tuple(q for queries in seeds.values() for q in queries)
    domains = tuple(d for d, queries in seeds.items() for _ in queries)
    digest = seeds_digest(seeds, model_key)
    path = cache_dir / f"query-seeds-{digest}.npy"
    vectors = _read_shipped(digest, len(texts)) if model_key == SHIPPED_MODEL else None
    vectors = vectors if vectors is not None else _read_cached(path, len(texts))
    if vectors is None:
        vectors = np.asarray(embedder.embed(list(texts)), dtype=np.float32)
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, vectors)
        tmp.replace(path)  # never leave a half-written cache behind
    return Examples(texts, domains, vectors)


def seeds_digest(seeds: Mapping[str, Sequence[str]], model_key: str) -> str:
    """Names one embedding of one seed set: it changes when either does."""
    lines = [model_key, *(f"{d}\t{q}" for d, queries in seeds.items() for q in queries)]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def _read_shipped(digest: str, rows: int) -> np.ndarray | None:
    try:
        with resources.as_file(resources.files("mirador.learning") / SHIPPED_VECTORS) as path:
            data = np.load(path)
            if str(data["digest"]) != digest:
                return None  # the seeds were edited since: embed them again
            vectors: np.ndarray = data["vectors"]
    except (OSError, ValueError, KeyError):
        return None
    return vectors if vectors.shape[0] == rows else None


def write_shipped_vectors(embedder: Embedder, folder: Path) -> Path:
    """Embed the packaged seeds with the default model and save them to ship."""
    seeds = load_seeds()
    vectors = np.asarray(embedder.embed([q for qs in seeds.values() for q in qs]), np.float32)
    path = folder / SHIPPED_VECTORS
    np.savez_compressed(path, digest=np.array(seeds_digest(seeds, SHIPPED_MODEL)),
                        vectors=vectors)
    return path


def _read_cached(path: Path, rows: int) -> np.ndarray | None:
    try:
        vectors = np.load(path)
    except (OSError, ValueError):
        return None  # absent or damaged: embed again
    return vectors if vectors.ndim == 2 and vectors.shape[0] == rows else None


class QueryClassifier:
    """Classifies queries by nearest labelled neighbours (seeds plus the person's history)."""

    def __init__(self, embedder: Embedder, seeds: Examples, neighbours: int = 7,
                 temperature: float = 0.05) -> None:
        self.embedder = embedder
        self.seeds = seeds
        self.k = neighbours
        self.temperature = temperature
        self._history = Examples((), (), np.zeros((0, seeds.vectors.shape[1]), np.float32))

    @property
    def domains(self) -> list[str]:
        return sorted(set(self.seeds.domains))

    def set_history(self, examples: Sequence[tuple[str, np.ndarray]]) -> None:
        """The person's own well-rated queries, as (domain, embedding)."""
        width = self.seeds.vectors.shape[1]
        usable = [(d, v) for d, v in examples if v.shape == (width,)]
        vectors = (np.stack([v for _, v in usable]).astype(np.float32) if usable
                   else np.zeros((0, width), np.float32))
        self._history = Examples(tuple("(your history)" for _ in usable),
                                 tuple(d for d, _ in usable), vectors)

    def embed(self, text: str) -> np.ndarray:
        return np.asarray(self.embedder.embed([text])[0], dtype=np.float32)

    def classify(self, text: str, vector: np.ndarray | None = None) -> QueryType:
        """The query's type; pass `vector` when its embedding is already known."""
        vector = self.embed(text) if vector is None else vector
        domain, confidence, near = self._vote(vector)
        route = classify_complexity(text)
        return QueryType(domain, route.complexity, confidence, near, route.reasons)

    def _vote(self, vector: np.ndarray) -> tuple[str, float, tuple[Neighbour, ...]]:
        texts = self.seeds.texts + self._history.texts
        domains = self.seeds.domains + self._history.domains
        sims = np.concatenate([self.seeds.vectors @ vector, self._history.vectors @ vector])
        top = np.argsort(-sims)[: self.k]
        weights = np.exp((sims[top] - sims[top[0]]) / self.temperature)
        votes: dict[str, float] = {}
        for index, weight in zip(top, weights, strict=True):
            votes[domains[index]] = votes.get(domains[index], 0.0) + float(weight)
        winner = max(votes, key=lambda d: votes[d])
        near = tuple(Neighbour(domains[i], round(float(sims[i]), 3), texts[i]) for i in top)
        return winner, round(votes[winner] / sum(votes.values()), 3), near
