"""What a verified package must pass before it is installed, short of running it.

- its base model is a model of this home, and the very file the publisher used
  (same SHA-256);
- every adapter is a LoRA GGUF that fits that base (`catalog.adapters`);
- no GGUF carries a chat template or metadata that could inject into a prompt or
  reach Python through Jinja (`template_problems`); an adapter has no business
  carrying a chat template at all;
- persona text (system prompt, examples, requests) holds no chat-control tokens
  that would forge another role's turn;
- its personas and chains merge into this home's manifest without clashing with
  an id already there and with every reference resolved.
"""

from __future__ import annotations

import re
from pathlib import Path

from mirador.catalog.adapters import adapter_problems
from mirador.catalog.gguf_info import GGUFInfo, read_gguf_info
from mirador.catalog.manifest import ChainEntry, Manifest, ModelEntry, PersonaEntry
from mirador.catalog.packaged import packaged_gguf, recorded_sha256, sha256_of
from mirador.errors import ModelFileError, PackageRefusedError
from mirador.market.manifest import PackageManifest
from mirador.settings import Settings

# Jinja reaching Python internals, or templates pulling in other templates.
_JINJA_ESCAPES = re.compile(r"__\w+__|\bmro\b|\bimport\b|\binclude\b|\bextends\b|\bpopen\b|"
                            r"\beval\b|\bexec\b|\bos\.|\bsys\.|\bsubprocess\b|\bgetattr\b")
# Tokens that open or close a turn in common chat formats: in persona text they forge one.
_CHAT_CONTROL = re.compile(r"<\|im_start\|>|<\|im_end\|>|<\|(?:system|user|assistant|"
                           r"start_header_id|end_header_id|eot_id|endoftext)\|>|\[/?INST\]|"
                           r"<</?SYS>>|<start_of_turn>|<end_of_turn>")
_MAX_METADATA_STRING = 64_000


def base_gguf(settings: Settings, entry: ModelEntry) -> Path:
    """The GGUF file of a llama.cpp base model of this home."""
    if entry.path:
        return Path(entry.path).expanduser()
    if entry.package:
        return packaged_gguf(entry.package, settings.models_dir)
    raise PackageRefusedError(f"the package's base model '{entry.id}' runs on {entry.backend}, "
                              "not on a GGUF file; packages are for llama.cpp base models")


def base_sha256(entry: ModelEntry, path: Path) -> str:
    """The base GGUF's SHA-256: pip's record for a packaged model, else the file hashed."""
    recorded = recorded_sha256(entry.package, path) if entry.package else None
    return recorded or sha256_of(path)


def check_base(settings: Settings, home: Manifest, package: PackageManifest) -> Path:
    """The base GGUF the package is made for, found in this home; refused otherwise."""
    wanted = package.base_model
    if not home.has_model(wanted.id):
        raise PackageRefusedError(f"the package is made for base model '{wanted.id}', which "
                                  "this home does not have; add it (mirador pull) and install "
                                  "again")
    entry = home.model(wanted.id)
    path = base_gguf(settings, entry)
    actual = base_sha256(entry, path)
    if actual != wanted.sha256:
        raise PackageRefusedError(f"the package is made for a '{wanted.id}' with SHA-256 "
                                  f"{wanted.sha256[:16]}..., and this home's is {actual[:16]}...:"
                                  " another file; its personas and adapters would not fit")
    return path


def check_adapters(directory: Path, package: PackageManifest, base: Path) -> None:
    """Every adapter is a LoRA that fits `base`, with clean metadata."""
    base_info = read_gguf_info(base)
    for relative in package.paths("adapter"):
        info = _gguf(directory, relative)
        problems = adapter_problems(info, base_info) + template_problems(info, adapter=True)
        if problems:
            raise PackageRefusedError(f"adapter '{relative}' is refused: {'; '.join(problems)}")


def _gguf(directory: Path, relative: str) -> GGUFInfo:
    path = directory / relative
    if not path.is_file():
        raise PackageRefusedError(f"the manifest lists adapter '{relative}', which is not in "
                                  "the package")
    try:
        return read_gguf_info(path)
    except ModelFileError as exc:
        raise PackageRefusedError(f"adapter '{relative}': {exc}") from None


def template_problems(info: GGUFInfo, adapter: bool) -> list[str]:
    """Metadata that could inject into prompts or escape a chat template's sandbox."""
    problems = []
    for key, value in info.metadata.items():
        if not isinstance(value, str):
            continue
        if adapter and key.startswith("tokenizer.chat_template"):
            problems.append(f"it carries a chat template ({key}), which an adapter never needs")
        if key.startswith("tokenizer.chat_template") and _JINJA_ESCAPES.search(value):
            found = _JINJA_ESCAPES.search(value)
            problems.append(f"its chat template ({key}) uses '{found.group(0) if found else ''}'"
                            ", which reaches outside a template")
        if len(value) > _MAX_METADATA_STRING:
            problems.append(f"metadata '{key}' is {len(value)} characters long")
    return problems


def check_persona_text(personas: list[PersonaEntry]) -> None:
    """No persona text may hold chat-control tokens (a forged system or user turn)."""
    for persona in personas:
        texts = [persona.system or "", persona.request or "",
                 *(t for e in persona.examples for t in (e.user, e.assistant))]
        for text in texts:
            found = _CHAT_CONTROL.search(text)
            if found:
                raise PackageRefusedError(
                    f"persona '{persona.id}' holds the chat-control token '{found.group(0)}', "
                    "which would forge a turn of the conversation (template injection)")


def check_references(package: PackageManifest, personas: list[PersonaEntry],
                     chains: list[ChainEntry], home: Manifest) -> None:
    """Ids declared twice or clashing with this home's, personas on another base,
    adapters the manifest does not list, chain steps that resolve nowhere."""
    for kind, ids in (("persona", [p.id for p in personas]), ("chain", [c.id for c in chains])):
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise PackageRefusedError(f"the package declares {kind} {', '.join(twice)} more "
                                      "than once")
    own = {p.id for p in personas}
    for persona in personas:
        _check_persona(persona, package, own, home)
    known = {c.id for c in home.chains}
    for chain in chains:
        if chain.id in known:
            raise PackageRefusedError(f"chain '{chain.id}' is already in this home's manifest")
        missing = [s for s in chain.steps
                   if s not in own and not home.has_persona(s) and not home.has_model(s)]
        if missing:
            raise PackageRefusedError(f"chain '{chain.id}' names {', '.join(missing)}, which "
                                      "are neither in the package nor in this home")


def _check_persona(persona: PersonaEntry, package: PackageManifest, own: set[str],
                   home: Manifest) -> None:
    if home.has_persona(persona.id) or home.has_model(persona.id):
        raise PackageRefusedError(f"persona '{persona.id}' is already in this home's "
                                  "manifest; uninstall the package that holds it or rename")
    if persona.model not in own and persona.model != package.base_model.id:
        raise PackageRefusedError(f"persona '{persona.id}' rides on '{persona.model}', "
                                  "which is neither the package's base model "
                                  f"'{package.base_model.id}' nor one of its personas")
    if persona.lora and persona.lora.path not in package.paths("adapter"):
        raise PackageRefusedError(f"persona '{persona.id}' uses adapter "
                                  f"'{persona.lora.path}', which the manifest does not list")
