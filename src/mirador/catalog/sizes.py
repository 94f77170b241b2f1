"""What a model will take once loaded, estimated from its GGUF header: the tensor data
(what llama.cpp allocates for the weights, byte for byte), the KV cache for the context
it gets (f16 keys and values for every layer), and an allowance for logits and compute
buffers."""

from __future__ import annotations

from dataclasses import dataclass

from mirador.catalog.gguf_info import GGUFInfo

MiB = 1 << 20
KV_BYTES = 2  # llama.cpp keeps keys and values as f16 by default
VOCAB_BYTES = 96  # per token: its text, score and lookup entries in llama.cpp's vocabulary


def format_bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"  # pragma: no cover


@dataclass(frozen=True)
class Estimate:
    """What a model is expected to take once loaded, in bytes."""

    weights: int
    kv_cache: int
    overhead: int

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.overhead


def estimate_gguf(info: GGUFInfo, n_ctx: int, n_batch: int) -> Estimate:
    """Weights + KV cache for `n_ctx` tokens + the vocabulary's tables, logits and the
    compute buffers a batch of `n_batch` touches."""
    n_vocab = info.array_lengths.get("tokenizer.ggml.tokens", 32000)
    n_embd = int(info.arch("embedding_length", 4096))
    overhead = n_vocab * (4 + VOCAB_BYTES) + n_batch * n_embd * 4 * 16 + 4 * MiB
    return Estimate(weights=info.tensor_bytes, kv_cache=kv_cache_bytes(info, n_ctx),
                    overhead=overhead)


def kv_cache_bytes(info: GGUFInfo, n_ctx: int) -> int:
    """f16 keys and values for every layer (llama.cpp sizes sliding-window layers fully too)."""
    layers = int(info.arch("block_count", 0))
    n_embd = int(info.arch("embedding_length", 0))
    heads = max(int(info.arch("attention.head_count", 1) or 1), 1)
    heads_kv = int(info.arch("attention.head_count_kv", heads) or heads)
    key = int(info.arch("attention.key_length", n_embd // heads))
    value = int(info.arch("attention.value_length", n_embd // heads))
    return n_ctx * layers * heads_kv * (key + value) * KV_BYTES
