"""Tiny GGUF models written with the `gguf` package, for fast tests of real llama.cpp loading.

`write_tiny_llama` writes a llama-architecture model with random weights and a
SentencePiece-style vocabulary (byte tokens plus a few words). llama.cpp loads
and runs it like any other GGUF; its output is gibberish, produced fast.
Sizes are exact and known, which the memory-budget tests rely on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

WORDS = ["▁the", "▁a", "▁and", "▁to", "▁of", "▁is", "▁you", "▁it", "▁in", "▁that",
         "▁plan", "▁focus", "▁today", "▁work", "▁rest", "▁time", "▁goal", "▁step",
         "▁first", "▁next", "▁good", "▁idea", "▁think", "▁make", "▁list", "."]

CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class TinySpec:
    n_embd: int = 64
    n_layer: int = 2
    n_head: int = 4
    n_ff: int = 128
    n_ctx: int = 512
    seed: int = 0
    chat_template: str | None = CHATML_TEMPLATE
    name: str = "tiny-llama"


def vocabulary() -> tuple[list[str], list[float], list[int]]:
    """Tokens, scores and token types: <unk> <s> </s>, chat markers, 256 bytes, words."""
    tokens = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
    types = [2, 3, 3, 3, 3]  # unknown, control...
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [6] * 256  # byte
    tokens += WORDS
    types += [1] * len(WORDS)  # normal
    scores = [0.0] * (5 + 256) + [-float(i) for i in range(len(WORDS))]
    return tokens, scores, types


def write_tiny_llama(path: Path, spec: TinySpec = TinySpec()) -> Path:
    """Write a tiny llama GGUF to `path` and return it."""
    import gguf

    rng = np.random.default_rng(spec.seed)
    tokens, scores, types = vocabulary()
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(spec.name)
    writer.add_context_length(spec.n_ctx)
    writer.add_embedding_length(spec.n_embd)
    writer.add_block_count(spec.n_layer)
    writer.add_feed_forward_length(spec.n_ff)
    writer.add_head_count(spec.n_head)
    writer.add_head_count_kv(spec.n_head)
    writer.add_rope_dimension_count(spec.n_embd // spec.n_head)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(4 if spec.chat_template else 2)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(True)
    if spec.chat_template:
        writer.add_chat_template(spec.chat_template)
    for name, array in _tensors(spec, len(tokens), rng):
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _tensors(spec: TinySpec, n_vocab: int, rng: np.random.Generator):  # type: ignore[no-untyped-def]
    def w(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.5).astype(np.float32)

    e, f = spec.n_embd, spec.n_ff
    yield "token_embd.weight", w(n_vocab, e)
    yield "output_norm.weight", np.ones(e, dtype=np.float32)
    yield "output.weight", w(n_vocab, e)
    for i in range(spec.n_layer):
        yield f"blk.{i}.attn_norm.weight", np.ones(e, dtype=np.float32)
        yield f"blk.{i}.attn_q.weight", w(e, e)
        yield f"blk.{i}.attn_k.weight", w(e, e)
        yield f"blk.{i}.attn_v.weight", w(e, e)
        yield f"blk.{i}.attn_output.weight", w(e, e)
        yield f"blk.{i}.ffn_norm.weight", np.ones(e, dtype=np.float32)
        yield f"blk.{i}.ffn_gate.weight", w(f, e)
        yield f"blk.{i}.ffn_up.weight", w(f, e)
        yield f"blk.{i}.ffn_down.weight", w(e, f)


LORA_TARGETS = ("attn_q", "attn_v", "ffn_up", "ffn_down")


def write_lora_for(base: Path, path: Path, *, rank: int = 4, alpha: float = 8.0,
                   seed: int = 1, strength: float = 1.0, targets: tuple[str, ...] = LORA_TARGETS,
                   architecture: str | None = None) -> Path:
    """Write a random LoRA GGUF that fits the model at `base` (every layer's `targets`).

    Shapes follow llama.cpp's loader: for a base tensor of ggml shape (n_in, n_out),
    `lora_a` is (n_in, rank) and `lora_b` is (rank, n_out). `architecture` writes a
    different one, to make an adapter that does not fit.
    """
    import gguf

    from mirador.catalog.gguf_info import read_gguf_info

    info = read_gguf_info(base)
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), architecture or info.architecture)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    for tensor in info.tensors:
        if tensor.name.startswith("blk.") and tensor.name.split(".")[2] in targets:
            n_in, n_out = tensor.shape[0], tensor.shape[1]
            scale = strength / np.sqrt(n_in)
            writer.add_tensor(f"{tensor.name}.lora_a",
                              (rng.standard_normal((rank, n_in)) * scale).astype(np.float32))
            writer.add_tensor(f"{tensor.name}.lora_b",
                              (rng.standard_normal((n_out, rank)) * strength).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_tiny_lora(path: Path, base: Path, **options: object) -> Path:
    """A LoRA for a tiny model written by `write_tiny_llama` (see `write_lora_for`)."""
    return write_lora_for(base, path, **options)  # type: ignore[arg-type]
