"""Write a trained LoRA as a llama.cpp GGUF adapter.

The format is llama.cpp's own (its `convert_lora_to_gguf.py` writes the same):
`general.type` "adapter", `adapter.type` "lora", `adapter.lora.alpha`, and per
base tensor a `<name>.lora_a` (rank x n_in) and `<name>.lora_b` (n_out x rank).
llama.cpp's converter permutes the rows of a llama model's query and key
weights (its rotary layout differs from transformers'); the same permutation
applies to B, whose rows are the projection's outputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mirador.training.lora import LoraWeights

GGUF_NAMES = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output"}


def permute_rows(weights: np.ndarray, n_head: int, n_head_kv: int | None) -> np.ndarray:
    """llama.cpp's reordering of a llama query/key projection's output rows."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    rows = weights.shape[0]
    return (weights.reshape(n_head, 2, rows // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def write_adapter(weights: LoraWeights, path: Path, *, architecture: str,
                  heads: tuple[int, int]) -> Path:
    """Write `weights` to `path` as a GGUF LoRA for a llama-architecture base."""
    import gguf

    n_head, n_head_kv = heads
    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(weights.alpha))
    for (layer, projection), (a, b) in sorted(weights.pairs.items()):
        if projection == "q_proj":
            b = permute_rows(b, n_head, n_head)
        elif projection == "k_proj":
            b = permute_rows(b, n_head, n_head_kv)
        name = f"blk.{layer}.{GGUF_NAMES[projection]}.weight"
        writer.add_tensor(f"{name}.lora_a", np.ascontiguousarray(a, dtype=np.float32))
        writer.add_tensor(f"{name}.lora_b", np.ascontiguousarray(b, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
