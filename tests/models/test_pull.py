"""`mirador pull`'s download and registration, against real local HTTP servers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mirador.catalog.manifest import load_manifest
from mirador.errors import BackendUnavailableError, ConfigError, DownloadError, ModelFileError
from mirador.models.pull import Meter, Progress, parse_ref, pull, register
from mirador.settings import Settings, load_settings
from tests.support.fake_ollama import FakeOllama
from tests.support.file_server import FileServer, sha256_of

REPO = "someone/Tiny-GGUF"
HF_REF = f"hf:{REPO}/tiny.gguf"


@pytest.fixture
def not_gguf(tmp_path: Path) -> Path:
    path = tmp_path / "fake.gguf"
    path.write_bytes(b"<html>this is not a model</html>" * 100)
    return path


@pytest.fixture
def server(tiny_gguf: Path, not_gguf: Path) -> Iterator[FileServer]:
    with FileServer(repos={REPO: {"tiny.gguf": tiny_gguf}},
                    files={"tiny.gguf": tiny_gguf, "fake.gguf": not_gguf}) as running:
        yield running


@pytest.fixture
def hf_settings(server: FileServer, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("MIRADOR_HF_ENDPOINT", server.url)
    return load_settings()


def downloaded(settings: Settings, name: str = "tiny.gguf") -> Path:
    return settings.models_dir / name


def same_bytes(a: Path, b: Path) -> bool:
    return a.read_bytes() == b.read_bytes()


def size_of(path: Path) -> int:
    return path.stat().st_size


def leftovers(settings: Settings) -> list[str]:
    return sorted(p.name for p in settings.models_dir.glob("tiny.gguf*"))


async def test_hf_pull_follows_the_redirect_checks_the_sha_and_registers(
        hf_settings: Settings, server: FileServer, tiny_gguf: Path) -> None:
    seen: list[Progress] = []
    pulled = await pull(HF_REF, hf_settings, progress=seen.append)
    assert same_bytes(downloaded(hf_settings), tiny_gguf)
    assert pulled.sha256 == sha256_of(tiny_gguf) and pulled.sha256_checked
    assert [p for p, _ in server.requests][0] == f"/{REPO}/resolve/main/tiny.gguf"
    assert server.requests[1][0].startswith("/cdn/")
    assert seen[-1].done == seen[-1].total == size_of(tiny_gguf)
    assert leftovers(hf_settings) == ["tiny.gguf"]
    registered = register(hf_settings, pulled)
    manifest = load_manifest(hf_settings.manifest_path)
    assert registered.model_id == "tiny"
    assert manifest.model("tiny").path == str(downloaded(hf_settings))


async def test_use_for_points_that_stages_persona_at_the_model(hf_settings: Settings) -> None:
    before = load_manifest(hf_settings.manifest_path).resolve("analyst")
    registered = register(hf_settings, await pull(HF_REF, hf_settings), "deep_analysis")
    after = load_manifest(hf_settings.manifest_path).resolve("analyst")
    assert (registered.stage, registered.persona) == ("deep_analysis", "analyst")
    assert after.model.id == "tiny"
    assert (after.system, after.options) == (before.system, before.options)
    assert load_manifest(hf_settings.manifest_path).resolve("quick").model.id != "tiny"


async def test_an_unknown_stage_is_refused_before_anything_changes(hf_settings: Settings) -> None:
    pulled = await pull(HF_REF, hf_settings)
    with pytest.raises(ConfigError, match="no stage is called 'nope'|no stage is called that"):
        register(hf_settings, pulled, "nope")
    assert not hf_settings.manifest_path.exists()


async def test_an_interrupted_download_resumes_with_a_range_request(
        hf_settings: Settings, server: FileServer, tiny_gguf: Path) -> None:
    server.cut_after, server.chunk = 30_000, 10_000
    with pytest.raises(DownloadError, match=r"kept in .*tiny\.gguf\.part; run the same command"):
        await pull(HF_REF, hf_settings)
    assert (hf_settings.models_dir / "tiny.gguf.part").stat().st_size == 30_000
    assert not downloaded(hf_settings).exists() and not hf_settings.manifest_path.exists()
    server.cut_after = None
    seen: list[Progress] = []
    pulled = await pull(HF_REF, hf_settings, progress=seen.append)
    assert "bytes=30000-" in server.ranges()
    assert seen[0].resumed_from == 30_000
    assert same_bytes(downloaded(hf_settings), tiny_gguf)
    assert pulled.sha256_checked and leftovers(hf_settings) == ["tiny.gguf"]


async def test_a_server_that_ignores_ranges_gets_a_fresh_download(
        hf_settings: Settings, server: FileServer, tiny_gguf: Path) -> None:
    server.cut_after, server.chunk = 30_000, 10_000
    with pytest.raises(DownloadError):
        await pull(HF_REF, hf_settings)
    server.cut_after, server.honour_ranges = None, False
    await pull(HF_REF, hf_settings)
    assert same_bytes(downloaded(hf_settings), tiny_gguf)


async def test_a_sha_mismatch_removes_the_download(hf_settings: Settings,
                                                   server: FileServer) -> None:
    server.wrong_sha = True
    with pytest.raises(DownloadError, match="SHA-256 is [0-9a-f]{64}, but the source says 0000"):
        await pull(HF_REF, hf_settings)
    assert leftovers(hf_settings) == [] and not hf_settings.manifest_path.exists()


@pytest.mark.parametrize(("ref", "message"), [
    ("hf:nobody/Nothing-GGUF/x.gguf", "no such repository on Hugging Face"),
    (f"hf:{REPO}/missing.gguf", r"no such file \(HTTP 404\); check the file name"),
])
async def test_unknown_repositories_and_files_are_named(hf_settings: Settings, ref: str,
                                                        message: str) -> None:
    with pytest.raises(DownloadError, match=message):
        await pull(ref, hf_settings)
    assert not any(hf_settings.models_dir.glob("*.part"))


async def test_a_plain_url_404(hf_settings: Settings, server: FileServer) -> None:
    with pytest.raises(DownloadError, match=r"no such file \(HTTP 404\); check the URL"):
        await pull(f"{server.url}/files/gone.gguf", hf_settings)


async def test_a_file_that_is_not_a_gguf_is_refused_and_removed(hf_settings: Settings,
                                                                server: FileServer) -> None:
    with pytest.raises(ModelFileError, match="is not a GGUF file"):
        await pull(f"{server.url}/files/fake.gguf", hf_settings)
    assert not list(hf_settings.models_dir.glob("fake.gguf*"))


async def test_no_room_on_disk_stops_before_writing(hf_settings: Settings) -> None:
    with pytest.raises(DownloadError, match="not enough disk space in .* is free; free some"):
        await pull(HF_REF, hf_settings, free_space=lambda path: 1_000)
    assert leftovers(hf_settings) == []


async def test_a_relative_redirect_and_a_given_sha256(hf_settings: Settings, server: FileServer,
                                                      tiny_gguf: Path) -> None:
    plain = await pull(f"{server.url}/moved/tiny.gguf", hf_settings)
    assert not plain.sha256_checked  # an MD5 ETag says nothing about SHA-256
    downloaded(hf_settings).unlink()
    with pytest.raises(DownloadError, match="source says 1111"):
        await pull(f"{server.url}/moved/tiny.gguf", hf_settings, sha256="1" * 64)
    checked = await pull(f"{server.url}/files/tiny.gguf", hf_settings,
                         sha256=sha256_of(tiny_gguf).upper())
    assert checked.sha256_checked


async def test_a_file_pulled_before_is_not_downloaded_again(hf_settings: Settings,
                                                            server: FileServer) -> None:
    await pull(HF_REF, hf_settings)
    count = len(server.requests)
    again = await pull(HF_REF, hf_settings)
    assert again.already_there and len(server.requests) == count


async def test_a_broken_user_manifest_is_left_alone(hf_settings: Settings) -> None:
    pulled = await pull(HF_REF, hf_settings)
    hf_settings.manifest_path.write_text("personas:\n  - {id: p, model: nowhere}\n")
    with pytest.raises(ConfigError, match="nothing was registered"):
        register(hf_settings, pulled)
    assert "nowhere" in hf_settings.manifest_path.read_text()
    assert "tiny" not in hf_settings.manifest_path.read_text()


@pytest.mark.parametrize("ref", ["tiny.gguf", "hf:only/two", "ftp://x/y.gguf",
                                 "https://example.org/page.html", "ollama:"])
def test_references_that_cannot_be_pulled(settings: Settings, ref: str) -> None:
    with pytest.raises(ConfigError):
        parse_ref(ref, settings)


def test_hf_endpoint_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MIRADOR_HF_ENDPOINT", raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    assert parse_ref("hf:a/b/c.gguf", load_settings()).url == \
        "https://huggingface.co/a/b/resolve/main/c.gguf"
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9/")
    assert parse_ref("hf:a/b/sub/C.gguf", load_settings()).url == \
        "http://127.0.0.1:9/a/b/resolve/main/sub/C.gguf"


async def test_ollama_pull_streams_progress_and_registers(
        tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeOllama(models={}, library={"tiny:1b": tiny_gguf}) as ollama:
        monkeypatch.setenv("OLLAMA_HOST", ollama.url)
        settings = load_settings()
        seen: list[Progress] = []
        pulled = await pull("ollama:tiny:1b", settings, progress=seen.append)
        assert [m["name"] for m in ollama.tags()["models"]] == ["tiny:1b"]
    assert seen[0].status == "pulling manifest" and seen[-1].status == "success"
    assert any(p.total == size_of(tiny_gguf) and p.done == p.total for p in seen)
    register(settings, pulled, "quick")
    quick = load_manifest(settings.manifest_path).resolve("quick").model
    assert (quick.id, quick.backend, quick.name) == ("tiny-1b", "ollama", "tiny:1b")


async def test_ollama_unknown_tags_and_a_stopped_ollama(tiny_gguf: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeOllama(models={}, library={}) as ollama:
        monkeypatch.setenv("OLLAMA_HOST", ollama.url)
        with pytest.raises(DownloadError, match="Ollama has no model 'nope'"):
            await pull("ollama:nope", load_settings())
        url = ollama.url
    with pytest.raises(BackendUnavailableError, match="start it with 'ollama serve'"):
        await pull("ollama:nope", load_settings(env={**os.environ, "OLLAMA_HOST": url}))


def test_the_meter_measures_speed_over_a_window() -> None:
    now = [0.0]
    meter = Meter(window=5.0, clock=lambda: now[0])
    assert meter.rate(0) is None
    now[0] = 1.0
    assert meter.rate(1_000_000) == pytest.approx(1_000_000)
    now[0] = 10.0
    assert meter.rate(2_000_000) == pytest.approx(1_000_000 / 9)


async def test_a_given_sha256_checks_a_file_pulled_before(hf_settings: Settings, server: FileServer,
                                                          tiny_gguf: Path) -> None:
    await pull(HF_REF, hf_settings)
    count = len(server.requests)
    again = await pull(HF_REF, hf_settings, sha256=sha256_of(tiny_gguf))
    assert again.already_there and again.sha256_checked and len(server.requests) == count
    with pytest.raises(DownloadError, match="source says 2222"):
        await pull(HF_REF, hf_settings, sha256="2" * 64)  # downloads again, still mismatched
