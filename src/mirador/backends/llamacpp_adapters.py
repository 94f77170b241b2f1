"""LoRA adapters on a loaded llama.cpp model's `Llama` context (see `llamacpp.py`).

Each adapter is read once (`llama_adapter_lora_init`) and switched per request on the
context (`llama_set_adapters_lora`); switching resets the prompt cache, whose keys and
values were computed with the old adapters.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import TYPE_CHECKING

from mirador.catalog.adapters import adapter_problems
from mirador.catalog.gguf_info import read_gguf_info
from mirador.catalog.manifest import LoraAdapter
from mirador.errors import ModelFileError, ModelLoadError

if TYPE_CHECKING:
    from mirador.backends.llamacpp import _Loaded


def adapter_path(lora: LoraAdapter) -> str:
    """Where `lora`'s file is, as the key its adapter is kept under."""
    return str(Path(lora.path).expanduser())


def init_adapter(loaded: _Loaded, model_id: str, path: str) -> None:
    """Worker thread: check the adapter against the model's header, then read it."""
    import llama_cpp

    problems = adapter_problems(read_gguf_info(Path(path)), read_gguf_info(loaded.path))
    if problems:
        raise ModelFileError(f"LoRA {path} does not fit model '{model_id}': {problems[0]}")
    adapter = llama_cpp.llama_adapter_lora_init(loaded.llm.model, path.encode("utf-8"))
    if not adapter:
        raise ModelLoadError(f"llama.cpp could not read the LoRA adapter {path} for model "
                             f"'{model_id}'; check that it was made for this base model")
    loaded.adapters[path] = adapter


def free_adapter(loaded: _Loaded, path: str) -> None:
    """Free the adapter read from `path` (taking it off the context first if set)."""
    import llama_cpp

    if any(p == path for p, _ in loaded.active):
        set_adapters(loaded, ())
    llama_cpp.llama_adapter_lora_free(loaded.adapters.pop(path))


def activate(loaded: _Loaded, model_id: str, loras: tuple[LoraAdapter, ...]) -> None:
    """Worker thread: make the context run with exactly `loras` (reading any new one)."""
    wanted = tuple((adapter_path(lora), lora.scale) for lora in loras)
    for path, _ in wanted:
        if path not in loaded.adapters:
            init_adapter(loaded, model_id, path)
    if wanted != loaded.active:
        set_adapters(loaded, wanted)


def set_adapters(loaded: _Loaded, wanted: tuple[tuple[str, float], ...]) -> None:
    """Set exactly `wanted` (path, scale) on the context."""
    import llama_cpp

    count = len(wanted)
    adapters = (llama_cpp.llama_adapter_lora_p_ctypes * count)(
        *(loaded.adapters[path] for path, _ in wanted)) if count else None
    scales = (ctypes.c_float * count)(*(scale for _, scale in wanted)) if count else None
    if llama_cpp.llama_set_adapters_lora(loaded.llm.ctx, adapters, count, scales):
        raise ModelLoadError(f"llama.cpp could not switch LoRA adapters on {loaded.path}")
    loaded.llm.reset()  # cached keys and values were computed with the old adapters
    loaded.active = wanted
