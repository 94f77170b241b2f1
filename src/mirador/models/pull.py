"""`mirador pull`: fetch a GGUF (or have Ollama fetch a tag) and register it in the manifest.

Three sources, looked up by the reference's scheme:

    hf:OWNER/REPO/FILE.gguf   Hugging Face's file download URL (OWNER/REPO/resolve/main/FILE)
    https://HOST/.../FILE.gguf any URL that serves a GGUF file
    ollama:TAG                 a running Ollama pulls it (its /api/pull, progress streamed)

A file download goes to `<home>/models/FILE.gguf.part`, resumes from there
with an HTTP Range request after an interruption, is checked against the
SHA-256 the source gives (Hugging Face's `X-Linked-Etag`, an ETag that is a
SHA-256, or `--sha256`) and against the GGUF magic, and only then is renamed
into place. Registration in the user's manifest is a single atomic write that
happens after that, so nothing is ever half-registered.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

from mirador.atomic import write_text_atomic
from mirador.catalog.gguf_info import MAGIC
from mirador.errors import BackendUnavailableError, ConfigError, DownloadError, ModelFileError
from mirador.settings import Settings

HF_ENDPOINT = "https://huggingface.co"
HF_ENDPOINT_VARS = ("MIRADOR_HF_ENDPOINT", "HF_ENDPOINT")
"""Environment variables that move `hf:` to another host (a mirror, or a test server)."""

SPACE_MARGIN = 64 << 20
"""Free space kept on the disk after a download (bytes)."""

_MAX_REDIRECTS = 10
_SHA256 = re.compile(r'^(?:W/)?"?([0-9a-f]{64})"?$')


@dataclass(frozen=True)
class Progress:
    """Where a pull is: bytes (or Ollama's layer bytes) done out of total, and a status."""

    done: int
    total: int | None
    status: str = "downloading"
    resumed_from: int = 0


ProgressFn = Callable[[Progress], None]
FreeSpaceFn = Callable[[Path], int]


def disk_free(path: Path) -> int:
    """Bytes free on the disk that holds `path` (the default free-space check)."""
    return shutil.disk_usage(path).free


@dataclass(frozen=True)
class Source:
    """What a reference names: a file URL to download, or a tag for Ollama to pull."""

    ref: str
    model_id: str
    url: str | None = None
    filename: str | None = None
    ollama_tag: str | None = None
    expected_sha256: str | None = None


@dataclass(frozen=True)
class Pulled:
    """A finished pull: the manifest entry to register and what was checked."""

    source: Source
    entry: dict[str, Any]
    path: Path | None = None
    size: int = 0
    sha256: str | None = None
    sha256_checked: bool = False
    resumed_from: int = 0
    already_there: bool = False


# -- references ----------------------------------------------------------------

def _hf_source(ref: str, rest: str, settings: Settings) -> Source:
    parts = rest.strip("/").split("/")
    if len(parts) < 3 or not all(parts):
        raise ConfigError(f"'{ref}' is not a Hugging Face file reference; write "
                          "hf:OWNER/REPO/FILE.gguf, e.g. "
                          "hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf")
    owner, repo, file = parts[0], parts[1], "/".join(parts[2:])
    url = f"{hf_endpoint(settings)}/{owner}/{repo}/resolve/main/{quote(file)}"
    return _file_source(ref, url, file.rsplit("/", 1)[-1])


def _url_source(ref: str, rest: str, settings: Settings) -> Source:
    name = Path(urlsplit(ref).path).name
    return _file_source(ref, ref, name)


def _ollama_source(ref: str, rest: str, settings: Settings) -> Source:
    tag = rest.strip()
    if not tag or any(c.isspace() for c in tag):
        raise ConfigError(f"'{ref}' names no Ollama model; write ollama:TAG, e.g. ollama:llama3.2")
    return Source(ref=ref, model_id=_model_id(tag.replace(":", "-")), ollama_tag=tag)


def _file_source(ref: str, url: str, filename: str) -> Source:
    if not filename.lower().endswith(".gguf"):
        raise ConfigError(f"'{ref}' does not name a .gguf file; Mirador runs GGUF models "
                          "(look for a file ending in .gguf, e.g. a Q4_K_M quantization)")
    return Source(ref=ref, model_id=_model_id(filename[:-5]), url=url, filename=filename)


_SCHEMES: dict[str, Callable[[str, str, Settings], Source]] = {
    "hf": _hf_source, "https": _url_source, "http": _url_source, "ollama": _ollama_source}


def parse_ref(ref: str, settings: Settings) -> Source:
    """The source a `mirador pull` reference names."""
    scheme, sep, rest = ref.partition(":")
    parser = _SCHEMES.get(scheme.lower()) if sep else None
    if parser is None:
        raise ConfigError(f"'{ref}' is not something mirador pull can fetch; give "
                          "hf:OWNER/REPO/FILE.gguf, https://.../FILE.gguf or ollama:TAG")
    return parser(ref, rest, settings)


def hf_endpoint(settings: Settings) -> str:
    """Hugging Face's base URL, or the one set in $MIRADOR_HF_ENDPOINT / $HF_ENDPOINT."""
    for var in HF_ENDPOINT_VARS:
        if settings.env.get(var):
            return settings.env[var].rstrip("/")
    return HF_ENDPOINT


def _model_id(stem: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", stem.lower()).strip("-") or "model"


# -- file downloads -------------------------------------------------------------

@dataclass
class _Download:
    """A download in progress: where it goes and what the server said about it."""

    source: Source
    target: Path
    have: int = 0
    total: int | None = None
    sha256: str | None = None
    etag: str | None = None

    @property
    def part(self) -> Path:
        return self.target.with_name(self.target.name + ".part")

    @property
    def meta(self) -> Path:
        return self.target.with_name(self.target.name + ".part.json")


async def download(source: Source, settings: Settings, progress: ProgressFn | None = None,
                   free_space: FreeSpaceFn = disk_free) -> Pulled:
    """Download `source`'s file into the models folder, resuming a `.part` left before."""
    import httpx

    assert source.url and source.filename
    target = settings.models_dir / source.filename
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    job = _Download(source, target)
    async with httpx.AsyncClient(follow_redirects=False, timeout=httpx.Timeout(30.0)) as client:
        try:
            return await _fetch(client, job, progress or (lambda p: None), free_space)
        except httpx.TransportError as exc:
            raise DownloadError(f"the download from {_host(source.url)} failed "
                                f"({type(exc).__name__}: {exc}); {_kept(job)}") from None


async def _fetch(client: Any, job: _Download, progress: ProgressFn,
                 free_space: FreeSpaceFn) -> Pulled:
    job.have = _resumable_bytes(job)
    async with _opened(client, job) as response:
        if response.status_code == 416 and job.have:  # the part is already whole
            job.total = job.have
        else:
            if response.status_code == 200 and job.have:
                job.have = 0  # the server ignored the range: start again
            _check_space(job, free_space)
            _write_meta(job)
            await _write_body(response, job, progress)
    return _finish(job)


@asynccontextmanager
async def _opened(client: Any, job: _Download) -> AsyncIterator[Any]:
    """GET the file, following redirects by hand to read each hop's headers."""
    url = job.source.url
    assert url
    for _ in range(_MAX_REDIRECTS):
        headers = {"Accept-Encoding": "identity", "User-Agent": "mirador-pull"}
        if job.have:
            headers["Range"] = f"bytes={job.have}-"
        response = await client.send(client.build_request("GET", url, headers=headers),
                                     stream=True)
        _read_headers(job, response.headers)
        if not response.is_redirect:
            break
        url = urljoin(url, response.headers["location"])
        await response.aclose()
    else:
        raise DownloadError(f"{job.source.ref}: too many redirects; check the URL")
    try:
        _check_status(job, response)
        yield response
    finally:
        await response.aclose()


def _read_headers(job: _Download, headers: Any) -> None:
    """Take the file's SHA-256 and size from whichever hop gives them first."""
    for name in ("x-linked-etag", "etag"):
        match = _SHA256.match(headers.get(name, "").strip().lower())
        if match and job.sha256 is None:
            job.sha256 = match.group(1)
    if job.etag is None and headers.get("etag"):
        job.etag = headers["etag"]
    linked = headers.get("x-linked-size")
    if linked and linked.isdigit() and job.total is None:
        job.total = int(linked)


def _check_status(job: _Download, response: Any) -> None:
    status = response.status_code
    if status in (200, 206) or (status == 416 and job.have):
        _size_from(job, response)
        return
    ref = job.source.ref
    code = response.headers.get("x-error-code", "")
    if code == "RepoNotFound" or (status == 401 and ref.startswith("hf:")):
        raise DownloadError(f"{ref}: no such repository on Hugging Face (or it is private or "
                            "gated); check OWNER/REPO on the model's page")
    if code == "EntryNotFound" or status == 404:
        raise DownloadError(f"{ref}: no such file (HTTP 404); check the file name in the "
                            "repository's 'Files' list" if ref.startswith("hf:") else
                            f"{ref}: no such file (HTTP 404); check the URL")
    if status in (401, 403):
        raise DownloadError(f"{ref}: the server refuses access (HTTP {status}); the model may "
                            "need a login: download it in a browser and use its path")
    raise DownloadError(f"{ref}: the server answered HTTP {status}; try again later")


def _size_from(job: _Download, response: Any) -> None:
    content_range = response.headers.get("content-range", "")
    if "/" in content_range and content_range.rsplit("/", 1)[1].isdigit():
        job.total = int(content_range.rsplit("/", 1)[1])
    elif response.status_code == 200 and response.headers.get("content-length", "").isdigit():
        job.total = int(response.headers["content-length"])
    if response.status_code == 200 and "text/html" in response.headers.get("content-type", ""):
        raise ModelFileError(f"{job.source.ref} is a web page, not a GGUF file; use the file's "
                             "download link (on Hugging Face: hf:OWNER/REPO/FILE.gguf)")


def _check_space(job: _Download, free_space: FreeSpaceFn) -> None:
    if job.total is None:
        return
    needed = job.total - job.have
    free = free_space(job.target.parent)
    if needed + SPACE_MARGIN > free:
        raise DownloadError(f"not enough disk space in {job.target.parent}: "
                            f"{job.source.filename} needs {human_size(needed)} more, "
                            f"{human_size(free)} is free; free some space, or set MIRADOR_HOME "
                            "to a disk with room")


async def _write_body(response: Any, job: _Download, progress: ProgressFn) -> None:
    resumed = job.have
    progress(Progress(job.have, job.total, resumed_from=resumed))
    with job.part.open("r+b" if job.have else "wb") as sink:
        sink.seek(job.have)
        sink.truncate()
        async for block in response.aiter_raw():
            if job.have < len(MAGIC):
                _check_magic_start(job, sink, block)
            try:
                sink.write(block)
            except OSError as exc:
                raise DownloadError(f"cannot write {job.part} ({exc.strerror}); "
                                    f"{_kept(job)} once there is room") from None
            job.have += len(block)
            progress(Progress(job.have, job.total, resumed_from=resumed))
    if job.total is not None and job.have < job.total:
        raise DownloadError(f"the server closed the connection after {human_size(job.have)} of "
                            f"{human_size(job.total)}; {_kept(job)}")


def _check_magic_start(job: _Download, sink: Any, block: bytes) -> None:
    head = (job.part.read_bytes()[:job.have] if job.have else b"") + block
    if len(head) >= len(MAGIC) and head[:len(MAGIC)] != MAGIC:
        sink.close()
        _discard(job)
        raise ModelFileError(f"{job.source.ref} is not a GGUF file (it starts with "
                             f"{head[:8]!r}); check the link points at the .gguf file itself")


def _finish(job: _Download) -> Pulled:
    with job.part.open("rb") as f:
        if f.read(len(MAGIC)) != MAGIC:
            _discard(job)
            raise ModelFileError(f"{job.source.ref} is not a GGUF file; check the link")
    digest = _sha256_of(job.part)
    expected = job.source.expected_sha256 or job.sha256
    if expected and digest != expected.lower():
        _discard(job)
        raise DownloadError(f"{job.source.filename}: the download's SHA-256 is {digest}, but the "
                            f"source says {expected}; it was removed, run the pull again")
    os.replace(job.part, job.target)
    job.meta.unlink(missing_ok=True)
    entry = {"id": job.source.model_id, "backend": "llamacpp", "path": str(job.target)}
    return Pulled(source=job.source, entry=entry, path=job.target, size=job.have,
                  sha256=digest, sha256_checked=bool(expected))


def _resumable_bytes(job: _Download) -> int:
    """Bytes of an earlier `.part` of the same file, or 0 (a stale part is dropped)."""
    if not job.part.exists():
        return 0
    try:
        meta = json.loads(job.meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        meta = {}
    if meta.get("url") != job.source.url:
        _discard(job)
        return 0
    job.sha256, job.etag = meta.get("sha256"), meta.get("etag")
    return job.part.stat().st_size


def _write_meta(job: _Download) -> None:
    meta = {"url": job.source.url, "sha256": job.sha256, "etag": job.etag, "total": job.total}
    job.meta.write_text(json.dumps(meta), encoding="utf-8")


def _discard(job: _Download) -> None:
    job.part.unlink(missing_ok=True)
    job.meta.unlink(missing_ok=True)


def resume_hint(source: Source, settings: Settings) -> str:
    """What is kept of an interrupted download of `source`, and how to go on."""
    if source.filename is None:
        return "run the same command again; Ollama resumes its own downloads"
    return _kept(_Download(source, settings.models_dir / source.filename))


def _kept(job: _Download) -> str:
    if job.part.exists() and job.part.stat().st_size:
        return (f"{human_size(job.part.stat().st_size)} are kept in {job.part}; run the same "
                "command again to resume")
    return "run the same command again to retry"


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while block := source.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def existing(source: Source, settings: Settings) -> Pulled | None:
    """A file pulled before (same name, no `.part` left): nothing to download."""
    if source.filename is None:
        return None
    target = settings.models_dir / source.filename
    part = target.with_name(target.name + ".part")
    if not target.is_file() or part.exists():
        return None
    entry = {"id": source.model_id, "backend": "llamacpp", "path": str(target)}
    return Pulled(source=source, entry=entry, path=target, size=target.stat().st_size,
                  already_there=True)


def _host(url: str) -> str:
    return urlsplit(url).netloc or url


def human_size(n: int) -> str:
    """Bytes in B, KB, MB or GB (powers of 1000)."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return f"{n} B"  # pragma: no cover


# -- Ollama ----------------------------------------------------------------------

async def ollama_pull(source: Source, settings: Settings,
                      progress: ProgressFn | None = None) -> Pulled:
    """Have the Ollama at settings' host pull `source`'s tag, streaming its progress."""
    import httpx

    assert source.ollama_tag
    host = settings.ollama_host.rstrip("/")
    show = progress or (lambda p: None)
    body = {"model": source.ollama_tag, "stream": True}
    try:
        async with httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=None)) as client, \
                client.stream("POST", f"{host}/api/pull", json=body) as response:
            if response.status_code != 200:
                await response.aread()
                raise DownloadError(_ollama_error(source, _error_of(response.text)))
            async for line in response.aiter_lines():
                if line.strip():
                    _ollama_line(source, json.loads(line), show)
    except httpx.ConnectError:
        raise BackendUnavailableError(
            f"Ollama is not reachable at {host}; start it with 'ollama serve' or set "
            "OLLAMA_HOST / backends.ollama.host in ~/.mirador/config.yaml") from None
    except httpx.TransportError as exc:
        raise DownloadError(f"Ollama at {host} stopped answering ({exc}); run the pull again, "
                            "Ollama resumes its own downloads") from None
    entry = {"id": source.model_id, "backend": "ollama", "name": source.ollama_tag}
    return Pulled(source=source, entry=entry)


def _ollama_line(source: Source, obj: dict[str, Any], show: ProgressFn) -> None:
    if "error" in obj:
        raise DownloadError(_ollama_error(source, str(obj["error"])))
    status = str(obj.get("status", ""))
    total = obj.get("total")
    show(Progress(int(obj.get("completed") or 0), int(total) if total else None, status))


def _error_of(text: str) -> str:
    try:
        return str(json.loads(text).get("error", text))
    except (ValueError, AttributeError):
        return text.strip()


def _ollama_error(source: Source, message: str) -> str:
    if "file does not exist" in message or "not found" in message:
        return (f"Ollama has no model '{source.ollama_tag}' in its library ({message}); "
                "check the tag on ollama.com/library")
    return f"Ollama could not pull '{source.ollama_tag}': {message}"


# -- the whole pull ---------------------------------------------------------------

async def pull(ref: str, settings: Settings, *, progress: ProgressFn | None = None,
               sha256: str | None = None, model_id: str | None = None,
               free_space: FreeSpaceFn = disk_free) -> Pulled:
    """Fetch what `ref` names (see the module docstring); register nothing yet."""
    source = parse_ref(ref, settings)
    source = replace(source, expected_sha256=sha256.lower() if sha256 else None,
                     model_id=model_id or source.model_id)
    if source.ollama_tag:
        return await ollama_pull(source, settings, progress)
    found = existing(source, settings)
    if found is not None and found.path is not None and sha256:
        checked = _sha256_of(found.path) == source.expected_sha256
        found = replace(found, sha256=source.expected_sha256, sha256_checked=True) if checked \
            else None  # a different file under that name: download the right one
    return found or await download(source, settings, progress, free_space)


class Meter:
    """Download speed over the last few seconds, from a stream of byte counts."""

    def __init__(self, window: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window, self.clock = window, clock
        self.samples: list[tuple[float, int]] = []

    def rate(self, done: int) -> float | None:
        """Bytes per second after `done` bytes; None until there is enough to tell."""
        now = self.clock()
        if self.samples and done < self.samples[-1][1]:
            self.samples.clear()  # a new layer (Ollama) or a restart
        self.samples.append((now, done))
        while len(self.samples) > 2 and now - self.samples[1][0] > self.window:
            self.samples.pop(0)
        t0, d0 = self.samples[0]
        return (done - d0) / (now - t0) if now - t0 >= 0.2 else None


# -- registration -----------------------------------------------------------------

@dataclass(frozen=True)
class Registered:
    """What registration changed in the user's manifest."""

    model_id: str
    manifest: Path
    persona: str | None = None
    stage: str | None = None


def register(settings: Settings, pulled: Pulled, use_for: str | None = None) -> Registered:
    """Add the pulled model (and, with `use_for`, a stage's persona on it) to the manifest.

    The new manifest is checked whole before one atomic write replaces the old.
    """
    from mirador.catalog.manifest import builtin_manifest_data, merge_manifest_data
    from mirador.yamlfile import read_yaml

    path = settings.manifest_path
    data = read_yaml(path) if path.exists() else {}
    models = [m for m in data.get("models") or [] if m.get("id") != pulled.entry["id"]]
    data["models"] = [*models, pulled.entry]
    stage = persona_id = None
    if use_for:
        stage, persona_id = stage_persona(settings, use_for)
        effective = merge_manifest_data(builtin_manifest_data(), data)
        persona = next(p for p in effective["personas"] if p.get("id") == persona_id)
        others = [p for p in data.get("personas") or [] if p.get("id") != persona_id]
        data["personas"] = [*others, {**persona, "model": pulled.entry["id"]}]
    _write_manifest(path, data)
    return Registered(pulled.entry["id"], path, persona_id, stage)


def stage_persona(settings: Settings, use_for: str) -> tuple[str, str]:
    """The stage `use_for` names (by its name or its persona's) and that stage's persona."""
    from mirador.catalog.manifest import manifest_for

    stages = settings.config.stages
    found = [s for s in stages if use_for in (s.name, s.persona)]
    if not found:
        known = ", ".join(f"{s.name} (persona {s.persona})" for s in stages)
        raise ConfigError(f"--use-for {use_for}: no stage is called that (stages: {known})")
    stage = found[0]
    if not manifest_for(settings).has_persona(stage.persona):
        raise ConfigError(f"stage {stage.name} runs model '{stage.persona}' directly, not a "
                          "persona; set its 'persona' in config.yaml to the pulled model's id")
    return stage.name, stage.persona


def _write_manifest(path: Path, data: dict[str, Any]) -> None:
    """Check `data` merged over the built-in manifest, then replace `path` atomically."""
    import yaml
    from pydantic import ValidationError

    from mirador.catalog.manifest import Manifest, builtin_manifest_data, merge_manifest_data
    from mirador.yamlfile import describe_validation_error

    try:
        manifest = Manifest.model_validate(merge_manifest_data(builtin_manifest_data(), data))
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(path, exc) + "\nnothing was registered; "
                          "fix the manifest and run the pull again") from None
    problems = manifest.check_references()
    if problems:
        raise ConfigError("\n".join(f"{path}: {p}" for p in problems)
                          + "\nnothing was registered; fix the manifest and pull again")
    write_text_atomic(path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True),
                      suffix=".tmp")
