"""LoRA adapters: whether one fits its base model, checked from both headers.

These are llama.cpp's own rules for a LoRA GGUF (general.type 'adapter',
adapter.type 'lora', the base's architecture, and `<tensor>.lora_a` /
`<tensor>.lora_b` pairs whose shapes fit a base tensor), checked before
llama.cpp sees the file, so a wrong adapter gets an error that says why.
"""

from __future__ import annotations

from mirador.catalog.gguf_info import GGUFInfo, TensorInfo

_SUFFIXES = (".lora_a", ".lora_b")


def adapter_problems(adapter: GGUFInfo, base: GGUFInfo) -> list[str]:
    """What stops `adapter` from applying to `base`; empty when it fits."""
    if adapter.general_type != "adapter":
        return [f"it is a '{adapter.general_type}' GGUF, not an adapter (general.type)"]
    kind = adapter.metadata.get("adapter.type")
    if kind != "lora":
        return [f"its adapter.type is {kind!r}; only 'lora' adapters are supported"]
    if adapter.architecture != base.architecture:
        return [f"it was made for '{adapter.architecture}' models and the base model is "
                f"'{base.architecture}'"]
    pairs, problems = _pairs(adapter)
    for name, (a, b) in sorted(pairs.items()):
        problems.extend(_pair_problems(name, a, b, base.tensor(name)))
    if not pairs and not problems:
        problems.append("it holds no lora_a/lora_b tensor pairs")
    return problems


def _pairs(adapter: GGUFInfo) -> tuple[dict[str, tuple[TensorInfo | None, TensorInfo | None]],
                                       list[str]]:
    pairs: dict[str, tuple[TensorInfo | None, TensorInfo | None]] = {}
    problems = []
    for tensor in adapter.tensors:
        suffix = next((s for s in _SUFFIXES if tensor.name.endswith(s)), None)
        if suffix is None:
            if not tensor.name.endswith("_norm.weight"):  # llama.cpp skips norms
                problems.append(f"tensor '{tensor.name}' is neither a lora_a nor a lora_b")
            continue
        base_name = tensor.name[: -len(suffix)]
        a, b = pairs.get(base_name, (None, None))
        pairs[base_name] = (tensor, b) if suffix == ".lora_a" else (a, tensor)
    return pairs, problems


def _pair_problems(name: str, a: TensorInfo | None, b: TensorInfo | None,
                   target: TensorInfo | None) -> list[str]:
    if a is None or b is None:
        return [f"'{name}' has only one of lora_a and lora_b"]
    if target is None:
        return [f"the base model has no tensor '{name}' (made for another model?)"]
    if name.endswith("token_embd.weight"):
        fits = target.shape[0] == b.shape[1] and target.shape[1] == a.shape[1]
    else:
        fits = (target.shape[0] == a.shape[0] and target.shape[1] == b.shape[1]
                and a.shape[1] == b.shape[0])
    if not fits:
        return [f"'{name}' has shapes {a.shape} and {b.shape}, which do not fit the base "
                f"tensor {target.shape} (made for another model size?)"]
    return []
