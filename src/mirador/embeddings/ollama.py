"""Embeddings from a running Ollama server (its /api/embed endpoint)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mirador.errors import BackendUnavailableError, EmbedderError

DEFAULT_MODEL = "all-minilm"


class OllamaEmbedder:
    """Asks Ollama to embed; the dimension is learnt from the first answer."""

    def __init__(self, host: str, model: str | None = None) -> None:
        import ollama

        self.host = host
        self.model = model or DEFAULT_MODEL
        self._client = ollama.Client(host=host)
        self._dimension: int | None = None

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._dimension = int(self.embed(["dimension probe"]).shape[1])
        return self._dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import httpx
        import ollama

        try:
            reply = self._client.embed(model=self.model, input=list(texts))
        except (httpx.HTTPError, ConnectionError) as exc:
            raise BackendUnavailableError(f"cannot reach Ollama at {self.host} to embed ({exc}); "
                                          "start it with 'ollama serve'") from None
        except ollama.ResponseError as exc:
            raise EmbedderError(f"Ollama could not embed with '{self.model}' ({exc.error}); "
                                f"pull it with: ollama pull {self.model}") from None
        vectors = np.asarray(reply.embeddings, dtype=np.float32).reshape(len(texts), -1)
        self._dimension = vectors.shape[1]
        norms = np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors / norms
