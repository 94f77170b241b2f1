"""LoRA personas on a shared base: real adapters written with `gguf`, applied by llama.cpp."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirador.catalog.gguf_info import read_gguf_info
from mirador.catalog.manifest import Manifest
from mirador.errors import ModelFileError, ModelLoadError
from mirador.models.check import check_manifest
from mirador.settings import Settings
from tests.models.conftest import ManagerFactory, MiB, manifest_of, room_for_one
from tests.models.test_manager import answer, request
from tests.support.tiny_gguf import write_lora_for, write_tiny_lora


@pytest.fixture(scope="session")
def lora_path(sized_ggufs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_lora(tmp_path_factory.mktemp("lora") / "styled.gguf", sized_ggufs["alpha"],
                           strength=2.0)


def lora_manifest(sized_ggufs: dict[str, Path], lora: Path, **extra: object) -> Manifest:
    return manifest_of(sized_ggufs, [
        {"id": "plain", "model": "alpha", "system": "Answer."},
        {"id": "styled", "model": "alpha", "system": "Answer.",
         "lora": {"path": str(lora), "scale": 1.0}},
        {"id": "styled_brief", "model": "styled", "options": {"top_k": 1}},
        {"id": "other", "model": "beta", "system": "Answer."},
    ], **extra)


async def test_an_adapter_changes_the_output_and_removing_it_restores_it(
        make_manager: ManagerFactory, sized_ggufs: dict[str, Path], lora_path: Path) -> None:
    manifest = lora_manifest(sized_ggufs, lora_path)
    manager = make_manager(manifest, budget=500 * MiB)
    plain = await answer(manager, request(manifest, "plain", max_tokens=12))
    styled = await answer(manager, request(manifest, "styled", max_tokens=12))
    again = await answer(manager, request(manifest, "plain", max_tokens=12))
    inherited = await answer(manager, request(manifest, "styled_brief", max_tokens=12))
    assert plain, "greedy decoding on the base gives some text"
    assert styled != plain, "the adapter must change what the model says"
    assert again == plain, "without the adapter, the base answers exactly as before"
    assert inherited == styled, "a persona built on a LoRA persona keeps its adapter"
    assert manager.loads == {"alpha": 1}, "a LoRA persona switch never reloads the base"
    assert [what for _, what, _, _ in manager.history] == ["load", "adapter"]


async def test_the_adapter_counts_in_the_budget_and_leaves_with_its_base(
        make_manager: ManagerFactory, sized_ggufs: dict[str, Path], lora_path: Path) -> None:
    manifest = lora_manifest(sized_ggufs, lora_path)
    manager = make_manager(manifest, budget=500 * MiB)
    await answer(manager, request(manifest, "plain"))
    base_only = manager.used_bytes
    await answer(manager, request(manifest, "styled"))
    adapter = read_gguf_info(lora_path).tensor_bytes
    assert manager.used_bytes >= base_only + adapter
    [status] = manager.status()
    assert status.adapters == (str(lora_path),)
    manager.budget = await room_for_one(manager, manifest.model("beta"))
    await answer(manager, request(manifest, "other"))  # evicts alpha, adapter and all
    assert [s.model_id for s in manager.status()] == ["beta"]
    assert manager.used_bytes <= manager.budget


async def test_an_adapter_for_another_model_is_refused_with_the_reason(
        make_manager: ManagerFactory, sized_ggufs: dict[str, Path], tiny_gguf: Path,
        tmp_path: Path) -> None:
    wrong_arch = write_lora_for(sized_ggufs["alpha"], tmp_path / "arch.gguf",
                                architecture="gemma3")
    wrong_size = write_tiny_lora(tmp_path / "size.gguf", tiny_gguf)  # 64 wide, alpha is 256
    for lora, reason in ((wrong_arch, "made for 'gemma3' models"),
                         (wrong_size, "do not fit the base tensor")):
        manifest = lora_manifest(sized_ggufs, lora)
        manager = make_manager(manifest, budget=500 * MiB)
        with pytest.raises(ModelFileError, match=reason):
            await answer(manager, request(manifest, "styled"))
        assert await answer(manager, request(manifest, "plain")), "the base still answers"


async def test_a_model_file_given_as_adapter_is_refused(
        make_manager: ManagerFactory, sized_ggufs: dict[str, Path]) -> None:
    manifest = lora_manifest(sized_ggufs, sized_ggufs["beta"])
    manager = make_manager(manifest, budget=500 * MiB)
    with pytest.raises(ModelFileError, match="not an adapter"):
        await answer(manager, request(manifest, "styled"))


def test_check_finds_adapter_problems_without_loading(
        settings: Settings, sized_ggufs: dict[str, Path], tiny_gguf: Path,
        tmp_path: Path) -> None:
    good = write_tiny_lora(tmp_path / "good.gguf", sized_ggufs["alpha"])
    assert check_manifest(lora_manifest(sized_ggufs, good), settings) == []
    wrong = write_tiny_lora(tmp_path / "wrong.gguf", tiny_gguf)
    [problem] = check_manifest(lora_manifest(sized_ggufs, wrong), settings)
    assert problem.startswith("persona 'styled': LoRA") and "does not fit 'alpha'" in problem


def test_a_lora_persona_on_an_ollama_model_is_a_check_error(
        settings: Settings, lora_path: Path) -> None:
    manifest = Manifest.model_validate({
        "models": [{"id": "llama", "backend": "ollama", "name": "llama3.2"}],
        "personas": [{"id": "styled", "model": "llama", "lora": {"path": str(lora_path)}}]})
    [problem] = check_manifest(manifest, settings)
    assert "runs on ollama, which cannot apply adapters" in problem


async def test_a_lora_persona_on_a_backend_without_adapters_fails_clearly(
        make_manager: ManagerFactory, lora_path: Path) -> None:
    from mirador.backends.scripted import ScriptedBackend

    manifest = Manifest.model_validate({
        "models": [{"id": "remote", "backend": "scripted", "name": "x"}],
        "personas": [{"id": "styled", "model": "remote", "lora": {"path": str(lora_path)}}]})
    manager = make_manager(manifest, budget=500 * MiB)
    manager.use_backend("scripted", ScriptedBackend())  # type: ignore[arg-type]
    with pytest.raises(ModelLoadError, match="cannot apply LoRA adapters"):
        await answer(manager, request(manifest, "styled"))


async def test_preparing_a_persona_reads_its_adapter_once_and_switches_cheaply(
        make_manager: ManagerFactory, sized_ggufs: dict[str, Path], lora_path: Path) -> None:
    manifest = lora_manifest(sized_ggufs, lora_path)
    manager = make_manager(manifest, budget=500 * MiB)
    for persona in ["plain", "styled", "plain", "styled_brief", "styled"]:
        resolved = manifest.resolve(persona)
        await manager.prepare(resolved.model, resolved.loras)
    assert manager.loads == {"alpha": 1}
    assert [what for _, what, _, _ in manager.history] == ["load", "adapter"]
    assert manager.status()[0].busy == 0, "preparing leaves the model free"
