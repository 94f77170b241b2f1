"""GGUF headers read without loading: the figures llama.cpp itself would use."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirador.catalog.gguf_info import read_gguf_info
from mirador.catalog.sizes import MiB, kv_cache_bytes
from mirador.errors import ModelFileError
from tests.support.tiny_gguf import TinySpec, vocabulary, write_tiny_lora


def test_the_real_default_header_matches_llama_cpps_own_figures(smollm_gguf: Path) -> None:
    info = read_gguf_info(smollm_gguf)
    assert info.architecture == "llama" and info.general_type == "model"
    assert info.arch("block_count") == 30
    assert info.array_lengths["tokenizer.ggml.tokens"] == 49152
    assert info.tensor_bytes == 96_576_768, "llama_model_size() of this file"
    assert kv_cache_bytes(info, 4096) == 90 * MiB, "llama.cpp's 'KV buffer size' at n_ctx 4096"


def test_a_tiny_models_weights_are_counted_to_the_byte(tiny_gguf: Path) -> None:
    spec, n_vocab = TinySpec(), len(vocabulary()[0])
    e, f = spec.n_embd, spec.n_ff
    floats = 2 * n_vocab * e + e + spec.n_layer * (4 * e * e + 3 * e * f + 2 * e)
    info = read_gguf_info(tiny_gguf)
    assert info.tensor_bytes == 4 * floats
    assert info.tensor("blk.0.ffn_up.weight").shape == (e, f)  # type: ignore[union-attr]


def test_an_adapter_says_so(tiny_gguf: Path, tmp_path: Path) -> None:
    info = read_gguf_info(write_tiny_lora(tmp_path / "lora.gguf", tiny_gguf))
    assert info.general_type == "adapter" and info.metadata["adapter.type"] == "lora"
    assert info.architecture == "llama"


@pytest.mark.parametrize(("content", "message"), [
    (b"not a model at all", "not a GGUF file"),
    (None, "is not a complete GGUF file"),
])
def test_bad_files_get_errors_that_say_what_to_do(tmp_path: Path, tiny_gguf: Path,
                                                 content: bytes | None, message: str) -> None:
    path = tmp_path / "bad.gguf"
    path.write_bytes(content if content is not None else tiny_gguf.read_bytes()[:3000])
    with pytest.raises(ModelFileError, match=message):
        read_gguf_info(path)
    with pytest.raises(ModelFileError, match="does not exist; fix the 'path'"):
        read_gguf_info(tmp_path / "missing.gguf")
