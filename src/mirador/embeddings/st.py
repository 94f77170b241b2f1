"""all-MiniLM-L6-v2 (or any sentence-transformers model folder) through sentence-transformers.

Needs torch, which takes seconds to import: prefer the `minilm` embedder for
start-up, this one for other sentence-transformers models.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mirador.errors import EmbedderError, MissingExtraError


class SentenceTransformerEmbedder:
    """Embeds with a local sentence-transformers model folder (never the hub)."""

    def __init__(self, model: Any) -> None:
        self._model = model
        # sentence-transformers 5+ renamed the method (the old name warns)
        size = getattr(model, "get_embedding_dimension", None) or \
            model.get_sentence_embedding_dimension
        self.dimension = int(size())

    @classmethod
    def load(cls, folder: str | Path | None = None) -> SentenceTransformerEmbedder:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise MissingExtraError("sentence-transformers", "st") from None
        from mirador.embeddings.minilm import packaged_model_dir

        path = Path(folder).expanduser() if folder else packaged_model_dir()
        if not (path / "modules.json").exists():
            raise EmbedderError(f"{path} is not a sentence-transformers model folder (no "
                                "modules.json); set memory.embedder_model to one")
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # its bar would break into an answer
        model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        return cls(model)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self._model.encode(list(texts), normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dimension)
